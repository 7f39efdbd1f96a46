//! `kmssh sign-message`: a message signature in the form `openssl` reads (raw or base64)
//! or SSHSIG form (`ssh-keygen -Y verify`). For pre-hashed algorithms the message is
//! streamed through the hash: only its digest is held, whatever its size. Ed25519 signs
//! the message itself, so it is read whole, up to [`MAX_ED25519_MESSAGE`].

use std::io::Read;
use std::path::Path;

use kmssh_core::{Algorithm, SigningInput};
use kmssh_pki::{message, sshsig};

use crate::args::{KeyArgs, MessageFormat};
use crate::exit::Failure;
use crate::io::{open_key, write_output};

/// The largest message signed with Ed25519, which needs the whole message in memory
/// (a provider may allow less: AWS KMS signs at most 4096 bytes).
pub const MAX_ED25519_MESSAGE: u64 = 64 * 1024 * 1024;

/// Signs the message file (`-` for stdin) and prints the signature.
pub async fn sign_message(
    uri: &str,
    key: &KeyArgs,
    format: MessageFormat,
    sig_alg: Option<Algorithm>,
    namespace: &str,
    path: &Path,
) -> Result<(), Failure> {
    if sig_alg.is_some() && matches!(format, MessageFormat::SshSig) {
        return Err(Failure::input(
            "--sig-alg applies to --format der and base64: an SSH signature is made as `ssh-keygen -Y sign` makes it (rsa-sha2-512 for RSA keys)",
        ));
    }
    // The message must be readable before the key is touched.
    let mut reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(path)
                .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?,
        )
    };
    let unreadable = |e: std::io::Error| Failure::input(format!("{}: {e}", path.display()));
    let key = open_key(uri, key, 1).await?;
    let output = match format {
        MessageFormat::SshSig => {
            let digest = sshsig::sha512_reader(&mut reader).map_err(unreadable)?;
            let signature = sshsig::sign_sshsig_digest(key.as_ref(), namespace, &digest).await?;
            sshsig::sshsig_to_pem(&signature)?.into_bytes()
        }
        MessageFormat::Der | MessageFormat::Base64 => {
            let algorithm = sig_alg.unwrap_or_else(|| key.algorithm());
            // An algorithm the key does not sign is the command line's fault: exit 3.
            kmssh_core::check_algorithm(key.as_ref(), algorithm)
                .map_err(|e| Failure::input(format!("--sig-alg: {}", e.message())))?;
            let signature = match algorithm.hash() {
                Some(hash) => {
                    let digest = message::digest_reader(hash, &mut reader).map_err(unreadable)?;
                    message::sign_message_digest(key.as_ref(), algorithm, &digest).await?
                }
                None => {
                    let mut whole = Vec::new();
                    (&mut reader)
                        .take(MAX_ED25519_MESSAGE + 1)
                        .read_to_end(&mut whole)
                        .map_err(unreadable)?;
                    if whole.len() as u64 > MAX_ED25519_MESSAGE {
                        return Err(Failure::input(format!(
                            "{}: over {} MiB; Ed25519 signs the whole message, held in memory",
                            path.display(),
                            MAX_ED25519_MESSAGE >> 20
                        )));
                    }
                    let signature = key.sign(algorithm, SigningInput::Message(&whole)).await?;
                    message::MessageSignature::new(signature)
                }
            };
            match format {
                MessageFormat::Der => signature.to_bytes(),
                MessageFormat::Base64 | MessageFormat::SshSig => {
                    format!("{}\n", signature.to_base64()).into_bytes()
                }
            }
        }
    };
    write_output(None, &output, false)
}
