//! Plain message signatures, in the forms `openssl` checks:
//! - ECDSA over `H(message)` with the key's own hash, as DER `ECDSA-Sig-Value`:
//!   `openssl dgst -sha256 -verify pub.pem -signature sig message` (`-sha384` for P-384,
//!   `-sha512` for P-521);
//! - RSA PKCS#1 v1.5 with SHA-256, SHA-384 or SHA-512, the modulus-length integer:
//!   `openssl dgst -sha512 -verify pub.pem -signature sig message`;
//! - Ed25519 over the message itself, 64 bytes:
//!   `openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in message -sigfile sig`.
//!
//! ```no_run
//! # async fn demo(key: &dyn kmssh_core::KmsKey) -> Result<(), kmssh_pki::Error> {
//! use kmssh_pki::message::{sign_message, verify_message};
//! let signature = sign_message(key, b"challenge").await?;
//! println!("{}", signature.to_base64());
//! verify_message(key.public_key(), signature.algorithm(), b"challenge", &signature.to_bytes())?;
//! # Ok(()) }
//! ```

use std::io::{self, Read};

use base64ct::{Base64, Encoding as _};
use kmssh_core::{Algorithm, HashAlgorithm, KmsKey, PublicKey, Signature, SigningInput};

use crate::error::{Error, Field, Result};
/// Bytes read at a time by the streaming digest helpers.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// A signature over a message by a key, with its wire forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageSignature {
    signature: Signature,
}

impl MessageSignature {
    /// Wraps a signature already made (for instance by [`KmsKey::sign`]).
    #[must_use]
    pub fn new(signature: Signature) -> Self {
        Self { signature }
    }

    /// Reads a signature made with `algorithm` in the form `openssl` reads (DER for
    /// ECDSA, the raw integer for RSA, 64 bytes for Ed25519).
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming [`Field::MessageSignature`] for bytes that are not
    /// one, or whose `r`/`s` are out of range for the curve.
    pub fn from_bytes(algorithm: Algorithm, bytes: &[u8]) -> Result<Self> {
        Signature::from_bytes(algorithm, bytes)
            .map(Self::new)
            .map_err(|e| Error::field(Field::MessageSignature, e.to_string()))
    }

    /// Reads base64 of [`MessageSignature::to_bytes`] (whitespace, line breaks included,
    /// is ignored).
    ///
    /// # Errors
    /// As [`MessageSignature::from_bytes`], and for text that is not base64.
    pub fn from_base64(algorithm: Algorithm, text: &str) -> Result<Self> {
        let compact: String = text.split_whitespace().collect();
        let bytes = Base64::decode_vec(&compact)
            .map_err(|e| Error::field(Field::MessageSignature, format!("not base64: {e}")))?;
        Self::from_bytes(algorithm, &bytes)
    }

    /// The algorithm it was made with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.signature.algorithm()
    }

    /// The form `openssl` reads: DER `ECDSA-Sig-Value`, the RSA integer, or Ed25519's 64
    /// bytes.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.signature.to_bytes()
    }

    /// [`MessageSignature::to_bytes`] in standard base64 (padded, one line).
    #[must_use]
    pub fn to_base64(&self) -> String {
        Base64::encode_string(&self.to_bytes())
    }

    /// The signature as core's typed value.
    #[must_use]
    pub fn as_signature(&self) -> &Signature {
        &self.signature
    }
}

impl From<Signature> for MessageSignature {
    fn from(signature: Signature) -> Self {
        Self::new(signature)
    }
}

/// Signs `message` with the key's default algorithm: hashed here for pre-hashed
/// algorithms (only the digest sent to the key), sent whole for Ed25519.
///
/// # Errors
/// [`Error::Signing`] when the key fails (its kind kept).
pub async fn sign_message(key: &dyn KmsKey, message: &[u8]) -> Result<MessageSignature> {
    sign_message_with(key, key.algorithm(), message).await
}

/// As [`sign_message`], with one of the key's algorithms chosen.
///
/// # Errors
/// As [`sign_message`]; [`Error::Signing`] with kind `UnsupportedAlgorithm` for an
/// algorithm the key does not sign.
pub async fn sign_message_with(
    key: &dyn KmsKey,
    algorithm: Algorithm,
    message: &[u8],
) -> Result<MessageSignature> {
    let signature = key.sign(algorithm, SigningInput::Message(message)).await?;
    Ok(MessageSignature::new(signature))
}

/// Signs a digest computed by the caller with `algorithm` (for instance by
/// [`digest_reader`] over a large file): the same signature [`sign_message_with`] makes
/// over the message.
///
/// # Errors
/// [`Error::InvalidField`] naming [`Field::Digest`] when its length is not the hash's, or
/// for Ed25519, which signs messages (nothing is sent to the key then);
/// [`Error::Signing`] when the key fails.
pub async fn sign_message_digest(
    key: &dyn KmsKey,
    algorithm: Algorithm,
    digest: &[u8],
) -> Result<MessageSignature> {
    check_digest(algorithm, digest)?;
    let signature = key.sign(algorithm, SigningInput::Digest(digest)).await?;
    Ok(MessageSignature::new(signature))
}

fn check_digest(algorithm: Algorithm, digest: &[u8]) -> Result<()> {
    algorithm
        .check_digest(digest)
        .map_err(|e| Error::field(Field::Digest, e.message().to_owned()))
}

/// Checks a signature over `message` made by `public_key` with `algorithm`, as `openssl`
/// does. High-`s` ECDSA signatures are accepted, as openssl accepts them.
///
/// # Errors
/// [`Error::SignatureRejected`] naming [`Field::MessageSignature`] when the signature is
/// malformed or does not verify.
pub fn verify_message(
    public_key: &PublicKey,
    algorithm: Algorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<()> {
    match algorithm.digest(message) {
        Some(digest) => verify_message_digest(public_key, algorithm, &digest, signature),
        None => verify_payload(public_key, algorithm, message, signature),
    }
}

/// As [`verify_message`], given the message's digest with the algorithm's hash.
///
/// # Errors
/// As [`verify_message`]; [`Error::InvalidField`] naming [`Field::Digest`] for a digest
/// of the wrong length or for Ed25519.
pub fn verify_message_digest(
    public_key: &PublicKey,
    algorithm: Algorithm,
    digest: &[u8],
    signature: &[u8],
) -> Result<()> {
    check_digest(algorithm, digest)?;
    verify_payload(public_key, algorithm, digest, signature)
}

fn verify_payload(
    public_key: &PublicKey,
    algorithm: Algorithm,
    payload: &[u8],
    signature: &[u8],
) -> Result<()> {
    let rejected =
        |e: kmssh_core::Error| Error::does_not_verify(Field::MessageSignature, e.to_string());
    let signature = Signature::from_bytes(algorithm, signature).map_err(rejected)?;
    public_key
        .verify(algorithm, payload, &signature)
        .map_err(rejected)
}

/// The digest [`sign_message_digest`] and [`verify_message_digest`] take: `hash` over
/// everything `reader` yields, read in 64 KiB chunks.
///
/// # Errors
/// The reader's errors ([`io::ErrorKind::Interrupted`] is retried).
pub fn digest_reader(hash: HashAlgorithm, reader: impl Read) -> io::Result<Vec<u8>> {
    match hash {
        HashAlgorithm::Sha256 => hash_reader::<sha2::Sha256>(reader).map(|d| d.to_vec()),
        HashAlgorithm::Sha384 => hash_reader::<sha2::Sha384>(reader).map(|d| d.to_vec()),
        HashAlgorithm::Sha512 => hash_reader::<sha2::Sha512>(reader).map(|d| d.to_vec()),
    }
}

/// `D` over everything `reader` yields, in [`READ_CHUNK`]-byte reads.
pub(crate) fn hash_reader<D: sha2::Digest>(
    mut reader: impl Read,
) -> io::Result<sha2::digest::Output<D>> {
    let mut hasher = D::new();
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(hasher.finalize()),
            Ok(n) => hasher.update(buffer.get(..n).ok_or_else(overlong_read)?),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A reader that claims to have read more than the buffer holds breaks `Read`'s contract.
fn overlong_read() -> io::Error {
    io::Error::other("the reader returned more bytes than the buffer holds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_digest_equals_the_algorithm_digest() {
        let message: Vec<u8> = (0..=250u8).cycle().take(2 * READ_CHUNK + 5).collect();
        for hash in [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha512,
        ] {
            let streamed = digest_reader(hash, message.as_slice()).expect("reads");
            assert_eq!(streamed, hash.digest(&message).as_ref(), "{hash}");
        }
    }
}
