//! Plain message signatures: an ECDSA signature over `H(message)` with the key's own
//! hash, as DER `ECDSA-Sig-Value` (or base64 of it), the form
//! `openssl dgst -sha256 -verify pub.pem -signature sig.der message` checks (`-sha384`
//! for P-384 keys, `-sha512` for P-521; see [`Algorithm::hash_name`]).
//!
//! ```no_run
//! # async fn demo(key: &dyn kmssh_core::KmsKey) -> Result<(), kmssh_pki::Error> {
//! use kmssh_pki::message::{sign_message, verify_message};
//! let signature = sign_message(key, b"challenge").await?;
//! println!("{}", signature.to_base64());
//! verify_message(key.public_key(), b"challenge", &signature.to_der())?;
//! # Ok(()) }
//! ```

use std::io::{self, Read};

use base64ct::{Base64, Encoding as _};
use kmssh_core::{Algorithm, EcPublicKey, EcdsaSignature, KmsKey};

use crate::error::{Error, Field, Result};
/// Bytes read at a time by the streaming digest helpers.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// A signature over a message by a key, with its wire forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageSignature {
    signature: EcdsaSignature,
}

impl MessageSignature {
    /// Wraps a signature already made (for instance by [`KmsKey::sign_digest`]).
    #[must_use]
    pub fn new(signature: EcdsaSignature) -> Self {
        Self { signature }
    }

    /// Reads a DER `ECDSA-Sig-Value` made with `algorithm`.
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming [`Field::MessageSignature`] for bytes that are not
    /// one, or whose `r`/`s` are out of range for the curve.
    pub fn from_der(algorithm: Algorithm, der: &[u8]) -> Result<Self> {
        EcdsaSignature::from_der(algorithm, der)
            .map(Self::new)
            .map_err(|e| Error::field(Field::MessageSignature, e.to_string()))
    }

    /// Reads base64 of a DER `ECDSA-Sig-Value` (whitespace, line breaks included, is
    /// ignored).
    ///
    /// # Errors
    /// As [`MessageSignature::from_der`], and for text that is not base64.
    pub fn from_base64(algorithm: Algorithm, text: &str) -> Result<Self> {
        let compact: String = text.split_whitespace().collect();
        let der = Base64::decode_vec(&compact)
            .map_err(|e| Error::field(Field::MessageSignature, format!("not base64: {e}")))?;
        Self::from_der(algorithm, &der)
    }

    /// The algorithm (curve and hash) it was made with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.signature.algorithm()
    }

    /// The DER `ECDSA-Sig-Value`, what `openssl dgst -verify -signature` reads.
    #[must_use]
    pub fn to_der(&self) -> Vec<u8> {
        self.signature.to_der()
    }

    /// The DER form in standard base64 (padded, one line).
    #[must_use]
    pub fn to_base64(&self) -> String {
        Base64::encode_string(&self.to_der())
    }

    /// The signature as core's curve-typed value (fixed-width `r || s`, SSH form…).
    #[must_use]
    pub fn as_ecdsa(&self) -> &EcdsaSignature {
        &self.signature
    }
}

impl From<EcdsaSignature> for MessageSignature {
    fn from(signature: EcdsaSignature) -> Self {
        Self::new(signature)
    }
}

/// Signs `message`: hashed here with the key's hash (SHA-256, SHA-384 or SHA-512 for
/// P-256, P-384, P-521), only the digest sent to the key.
///
/// # Errors
/// [`Error::Signing`] when the key fails (its kind kept).
pub async fn sign_message(key: &dyn KmsKey, message: &[u8]) -> Result<MessageSignature> {
    Ok(MessageSignature::new(key.sign_message(message).await?))
}

/// Signs a digest computed by the caller (for instance by [`digest_reader`] over a
/// large file): the same signature [`sign_message`] makes over the message.
///
/// # Errors
/// [`Error::InvalidField`] naming [`Field::Digest`] when its length is not the key's
/// hash's (nothing is sent to the key then); [`Error::Signing`] when the key fails.
pub async fn sign_message_digest(key: &dyn KmsKey, digest: &[u8]) -> Result<MessageSignature> {
    check_digest(key.algorithm(), digest)?;
    Ok(MessageSignature::new(key.sign_digest(digest).await?))
}

fn check_digest(algorithm: Algorithm, digest: &[u8]) -> Result<()> {
    if digest.len() == algorithm.digest_len() {
        Ok(())
    } else {
        Err(Error::field(
            Field::Digest,
            format!(
                "{algorithm} signs a {}-byte {} digest, got {} bytes",
                algorithm.digest_len(),
                algorithm.hash_name(),
                digest.len()
            ),
        ))
    }
}

/// Checks a DER signature over `message` with `public_key` (hashing with the key's
/// hash), as `openssl dgst -verify` does. High-`s` signatures are accepted, as openssl
/// accepts them.
///
/// # Errors
/// [`Error::SignatureRejected`] naming [`Field::MessageSignature`] when the signature is
/// malformed or does not verify.
pub fn verify_message(
    public_key: &EcPublicKey,
    message: &[u8],
    der_signature: &[u8],
) -> Result<()> {
    let digest = public_key.algorithm().digest(message);
    verify_message_digest(public_key, &digest, der_signature)
}

/// As [`verify_message`], given the message's digest with the key's hash.
///
/// # Errors
/// As [`verify_message`]; [`Error::InvalidField`] naming [`Field::Digest`] for a digest
/// of the wrong length.
pub fn verify_message_digest(
    public_key: &EcPublicKey,
    digest: &[u8],
    der_signature: &[u8],
) -> Result<()> {
    let algorithm = public_key.algorithm();
    check_digest(algorithm, digest)?;
    let signature = EcdsaSignature::from_der(algorithm, der_signature)
        .map_err(|e| Error::does_not_verify(Field::MessageSignature, e.to_string()))?;
    public_key
        .verify_digest(digest, &signature)
        .map_err(|e| Error::does_not_verify(Field::MessageSignature, e.to_string()))
}

/// The digest [`sign_message_digest`] and [`verify_message_digest`] take for a key of
/// `algorithm`: its hash over everything `reader` yields, read in 64 KiB chunks.
///
/// # Errors
/// The reader's errors ([`io::ErrorKind::Interrupted`] is retried).
pub fn digest_reader(algorithm: Algorithm, reader: impl Read) -> io::Result<Vec<u8>> {
    match algorithm {
        Algorithm::EcdsaP256Sha256 => hash_reader::<sha2::Sha256>(reader).map(|d| d.to_vec()),
        Algorithm::EcdsaP384Sha384 => hash_reader::<sha2::Sha384>(reader).map(|d| d.to_vec()),
        Algorithm::EcdsaP521Sha512 => hash_reader::<sha2::Sha512>(reader).map(|d| d.to_vec()),
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
        for algorithm in Algorithm::ALL {
            let streamed = digest_reader(algorithm, message.as_slice()).expect("reads");
            assert_eq!(streamed, algorithm.digest(&message).as_ref(), "{algorithm}");
        }
    }
}
