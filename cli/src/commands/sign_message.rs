//! `kmssh sign-message`: a message signature in DER, base64 DER (`openssl dgst -verify`)
//! or SSHSIG form (`ssh-keygen -Y verify`). The message is streamed through the hash:
//! only its digest is held, whatever its size.

use std::io::Read;
use std::path::Path;

use kmssh_pki::{message, sshsig};

use crate::args::{KeyArgs, MessageFormat};
use crate::exit::Failure;
use crate::io::{open_key, write_output};

/// Signs the message file (`-` for stdin) and prints the signature.
pub async fn sign_message(
    uri: &str,
    key: &KeyArgs,
    format: MessageFormat,
    namespace: &str,
    path: &Path,
) -> Result<(), Failure> {
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
            let digest =
                message::digest_reader(key.algorithm(), &mut reader).map_err(unreadable)?;
            let signature = message::sign_message_digest(key.as_ref(), &digest).await?;
            match format {
                MessageFormat::Der => signature.to_der(),
                MessageFormat::Base64 | MessageFormat::SshSig => {
                    format!("{}\n", signature.to_base64()).into_bytes()
                }
            }
        }
    };
    write_output(None, &output, false)
}
