//! SSH signatures of files and messages (PROTOCOL.sshsig): what `ssh-keygen -Y sign`
//! writes and `ssh-keygen -Y verify` checks.
//!
//! An `SSHSIG` signs a small blob, not the message: the magic `SSHSIG`, the namespace,
//! an empty reserved string, the hash algorithm's name and `H(message)`. kmssh always
//! hashes with SHA-512 (as `ssh-keygen` does by default), so a file of any size costs
//! one streaming pass ([`sha512_reader`]) and one small signature through the key
//! ([`sign_sshsig_digest`]).
//!
//! ```no_run
//! # async fn demo(key: &dyn kmssh_core::KmsKey) -> Result<(), kmssh_pki::Error> {
//! use kmssh_pki::sshsig::{sign_sshsig, sshsig_to_pem, verify_sshsig};
//! let signature = sign_sshsig(key, "file", b"hello").await?;
//! print!("{}", sshsig_to_pem(&signature)?);
//! let allowed = kmssh_pki::ssh_public_key(key.public_key());
//! verify_sshsig(&allowed, "file", b"hello", &signature)?;
//! # Ok(()) }
//! ```

use std::io::{self, Read};

use kmssh_core::KmsKey;
use sha2::Digest as _;
/// The signature type [`sign_sshsig`] returns (re-exported from `ssh-key`).
pub use ssh_key::SshSig;
use ssh_key::public::KeyData;
use ssh_key::{HashAlg, LineEnding};

use crate::certificate::{ssh_public_key, ssh_signature_for};
use crate::error::{Error, Field, Result, SignatureFailure, shown};
use crate::message::hash_reader;

/// The hash kmssh signs `SSHSIG`s over: SHA-512, `ssh-keygen -Y sign`'s default.
pub const SSHSIG_HASH: HashAlg = HashAlg::Sha512;

/// Length of the SHA-512 digest [`sign_sshsig_digest`] takes.
pub const SSHSIG_DIGEST_LEN: usize = 64;

fn check_namespace(namespace: &str) -> Result<()> {
    if namespace.is_empty() {
        return Err(Error::field(
            Field::Namespace,
            "must not be empty (PROTOCOL.sshsig); `file` is the usual one for files",
        ));
    }
    Ok(())
}

fn sshsig_error(e: ssh_key::Error) -> Error {
    Error::field(Field::SshSignature, format!("cannot encode: {e}"))
}

/// Signs `message` for `namespace` through the key: SHA-512 locally, then one signature
/// over the small PROTOCOL.sshsig blob.
///
/// # Errors
/// [`Error::InvalidField`] naming [`Field::Namespace`] for an empty namespace (nothing is
/// sent to the key then), [`Error::Signing`] when the key fails (its kind kept).
pub async fn sign_sshsig(key: &dyn KmsKey, namespace: &str, message: &[u8]) -> Result<SshSig> {
    let digest: [u8; SSHSIG_DIGEST_LEN] = sha2::Sha512::digest(message).into();
    sign_sshsig_digest(key, namespace, &digest).await
}

/// As [`sign_sshsig`], given the message's SHA-512 instead of the message (for instance
/// from [`sha512_reader`] over a file too large to hold in memory). The result is the
/// same signature `sign_sshsig` makes over the message.
///
/// # Errors
/// As [`sign_sshsig`].
pub async fn sign_sshsig_digest(
    key: &dyn KmsKey,
    namespace: &str,
    sha512_digest: &[u8; SSHSIG_DIGEST_LEN],
) -> Result<SshSig> {
    check_namespace(namespace)?;
    // rsa-sha2-512 for RSA keys that allow it, as `ssh-keygen -Y sign` signs.
    let algorithm = crate::certificate::ssh_signature_algorithm(key, None)?;
    let signed_data = SshSig::signed_data_for_prehash(namespace, SSHSIG_HASH, sha512_digest)
        .map_err(sshsig_error)?;
    let signature = key
        .sign(algorithm, kmssh_core::SigningInput::Message(&signed_data))
        .await?;
    SshSig::new(
        ssh_public_key(key.public_key()),
        namespace,
        SSHSIG_HASH,
        ssh_signature_for(&signature, Field::SshSignature)?,
    )
    .map_err(sshsig_error)
}

/// As [`sign_sshsig`], returned armored as `ssh-keygen -Y sign` writes it
/// (`-----BEGIN SSH SIGNATURE-----` … with a final newline).
///
/// # Errors
/// As [`sign_sshsig`].
pub async fn sign_sshsig_pem(key: &dyn KmsKey, namespace: &str, message: &[u8]) -> Result<String> {
    sshsig_to_pem(&sign_sshsig(key, namespace, message).await?)
}

/// The armored text of a signature, as `ssh-keygen -Y sign` writes it (LF line endings,
/// a final newline).
///
/// # Errors
/// [`Error::InvalidField`] naming [`Field::SshSignature`] if it cannot be encoded.
pub fn sshsig_to_pem(signature: &SshSig) -> Result<String> {
    let mut text = signature.to_pem(LineEnding::LF).map_err(sshsig_error)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Reads an armored signature (`-----BEGIN SSH SIGNATURE-----` …); surrounding
/// whitespace is ignored.
///
/// # Errors
/// [`Error::InvalidField`] naming [`Field::SshSignature`] for anything else, a version
/// above 1 or an empty namespace included.
pub fn parse_sshsig(armored: &str) -> Result<SshSig> {
    SshSig::from_pem(armored.trim()).map_err(|e| {
        Error::field(
            Field::SshSignature,
            format!("not an armored SSH signature: {e}"),
        )
    })
}

/// Checks that `signature` was made over `message` for `namespace` by `allowed` (any
/// OpenSSH key type, as an `allowed_signers` line names it), whatever hash it was made
/// with (SHA-256 or SHA-512).
///
/// # Errors
/// [`Error::InvalidField`] naming [`Field::Namespace`] for an empty namespace;
/// [`Error::SignatureRejected`] naming [`Field::SshSignature`] with
/// [`SignatureFailure::WrongNamespace`], [`SignatureFailure::WrongKey`] or
/// [`SignatureFailure::DoesNotVerify`].
pub fn verify_sshsig(
    allowed: &KeyData,
    namespace: &str,
    message: &[u8],
    signature: &SshSig,
) -> Result<()> {
    check_signer(allowed, namespace, signature)?;
    let digest = signature.hash_alg().digest(message);
    check_signature(allowed, namespace, &digest, signature)
}

/// As [`verify_sshsig`], given `H(message)` with the signature's own hash
/// ([`SshSig::hash_alg`]: SHA-512 for every signature kmssh makes and `ssh-keygen` makes
/// by default, see [`sha512_reader`]).
///
/// # Errors
/// As [`verify_sshsig`]; [`Error::InvalidField`] naming [`Field::Digest`] for a digest
/// whose length is not the signature's hash's.
pub fn verify_sshsig_digest(
    allowed: &KeyData,
    namespace: &str,
    digest: &[u8],
    signature: &SshSig,
) -> Result<()> {
    check_signer(allowed, namespace, signature)?;
    let expected = signature.hash_alg().digest_size();
    if digest.len() != expected {
        return Err(Error::field(
            Field::Digest,
            format!(
                "the signature is over {}, a {expected}-byte digest; got {} bytes",
                signature.hash_alg(),
                digest.len()
            ),
        ));
    }
    check_signature(allowed, namespace, digest, signature)
}

/// The namespace and key checks, before any hashing.
fn check_signer(allowed: &KeyData, namespace: &str, signature: &SshSig) -> Result<()> {
    check_namespace(namespace)?;
    if signature.namespace() != namespace {
        return Err(Error::rejected(
            Field::SshSignature,
            SignatureFailure::WrongNamespace {
                expected: namespace.to_owned(),
                found: signature.namespace().to_owned(),
            },
        ));
    }
    if signature.public_key() != allowed {
        return Err(Error::rejected(
            Field::SshSignature,
            SignatureFailure::WrongKey {
                signed_by: signature
                    .public_key()
                    .fingerprint(HashAlg::Sha256)
                    .to_string(),
                allowed: allowed.fingerprint(HashAlg::Sha256).to_string(),
            },
        ));
    }
    Ok(())
}

fn check_signature(
    allowed: &KeyData,
    namespace: &str,
    digest: &[u8],
    signature: &SshSig,
) -> Result<()> {
    let key = ssh_key::PublicKey::new(allowed.clone(), "");
    key.verify_prehash(namespace, digest, signature)
        .map_err(|e| {
            Error::does_not_verify(
                Field::SshSignature,
                format!(
                    "{e} (a {} signature over {} in namespace {})",
                    signature.algorithm(),
                    signature.hash_alg(),
                    shown(namespace)
                ),
            )
        })
}

/// SHA-512 of everything `reader` yields, read in 64 KiB chunks: the digest
/// [`sign_sshsig_digest`] and [`verify_sshsig_digest`] take, in bounded memory.
///
/// # Errors
/// The reader's errors ([`io::ErrorKind::Interrupted`] is retried).
pub fn sha512_reader(reader: impl Read) -> io::Result<[u8; SSHSIG_DIGEST_LEN]> {
    hash_reader::<sha2::Sha512>(reader).map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::READ_CHUNK;

    #[test]
    fn signed_data_is_the_protocol_blob() {
        // PROTOCOL.sshsig: "SSHSIG" || string namespace || string reserved ||
        // string hash_algorithm || string H(message).
        let digest = [7u8; SSHSIG_DIGEST_LEN];
        let blob = SshSig::signed_data_for_prehash("file", SSHSIG_HASH, &digest).expect("encodes");
        let mut expected = b"SSHSIG".to_vec();
        expected.extend_from_slice(b"\0\0\0\x04file");
        expected.extend_from_slice(b"\0\0\0\0");
        expected.extend_from_slice(b"\0\0\0\x06sha512");
        expected.extend_from_slice(b"\0\0\0\x40");
        expected.extend_from_slice(&digest);
        assert_eq!(blob, expected);
    }

    #[test]
    fn streaming_digest_equals_one_shot() {
        let message: Vec<u8> = (0..=250u8).cycle().take(3 * READ_CHUNK + 17).collect();
        let streamed = sha512_reader(message.as_slice()).expect("reads");
        let one_shot: [u8; 64] = sha2::Sha512::digest(&message).into();
        assert_eq!(streamed, one_shot);
    }
}
