//! The `KmsKey` trait every backend provides, and the verification wrapper that every
//! signature crossing a process boundary goes through.

use std::fmt;

use async_trait::async_trait;

use crate::{Algorithm, EcPublicKey, EcdsaSignature, KeyUri, Result};

/// A signing key held somewhere (a KMS, an HSM, a file) that signs digests.
///
/// Object safe: backends hand out `Arc<dyn KmsKey>`. The public key is fetched once when
/// the key is opened and cached; no method exports private material.
#[async_trait]
pub trait KmsKey: Send + Sync + fmt::Debug {
    /// The URI this key was opened from, stable and safe to log.
    fn uri(&self) -> &KeyUri;

    /// The cached public key.
    fn public_key(&self) -> &EcPublicKey;

    /// The curve and hash this key signs with.
    fn algorithm(&self) -> Algorithm {
        self.public_key().algorithm()
    }

    /// Signs a digest of exactly [`Algorithm::digest_len`] bytes.
    ///
    /// The returned signature is for this key's curve and, for every key whose signatures
    /// cross a process boundary, has already been verified against
    /// [`KmsKey::public_key`] (see [`VerifiedSigner`]).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a digest of the
    /// wrong length, [`ErrorKind::BadSignature`](crate::ErrorKind::BadSignature) when the
    /// provider's answer does not verify, and the provider's failures mapped to kinds.
    async fn sign_digest(&self, digest: &[u8]) -> Result<EcdsaSignature>;

    /// Hashes `message` locally with the key's hash and signs the digest, so messages of
    /// any size work and only the digest leaves the process.
    ///
    /// # Errors
    /// As [`KmsKey::sign_digest`].
    async fn sign_message(&self, message: &[u8]) -> Result<EcdsaSignature> {
        let digest = self.algorithm().digest(message);
        self.sign_digest(&digest).await
    }
}

/// What a backend implements when its signatures come from outside this process (a
/// cloud KMS, an HSM): signing without the verification step. Wrap it in
/// [`VerifiedSigner`] to get a [`KmsKey`].
#[async_trait]
pub trait RawSigner: Send + Sync + fmt::Debug {
    /// The URI this key was opened from.
    fn uri(&self) -> &KeyUri;

    /// The public key fetched when the key was opened.
    fn public_key(&self) -> &EcPublicKey;

    /// Asks the provider to sign a digest (already checked to have the right length) and
    /// decodes its answer. The result is not trusted yet.
    ///
    /// # Errors
    /// The provider's failures, mapped to [`ErrorKind`](crate::ErrorKind)s.
    async fn sign_digest_unverified(&self, digest: &[u8]) -> Result<EcdsaSignature>;
}

/// Turns a [`RawSigner`] into a [`KmsKey`] whose signatures are verified against the
/// cached public key before anyone sees them: a KMS answer that does not verify (a
/// corrupted response, a wrong key version, a buggy emulator) becomes
/// [`ErrorKind::BadSignature`](crate::ErrorKind::BadSignature), never a certificate.
#[derive(Debug)]
pub struct VerifiedSigner<S> {
    inner: S,
}

impl<S: RawSigner> VerifiedSigner<S> {
    /// Wraps a raw signer.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The wrapped signer.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: RawSigner> KmsKey for VerifiedSigner<S> {
    fn uri(&self) -> &KeyUri {
        self.inner.uri()
    }

    fn public_key(&self) -> &EcPublicKey {
        self.inner.public_key()
    }

    async fn sign_digest(&self, digest: &[u8]) -> Result<EcdsaSignature> {
        let public_key = self.inner.public_key();
        public_key.algorithm().check_digest(digest)?;
        let signature = self
            .inner
            .sign_digest_unverified(digest)
            .await
            .map_err(|e| e.with_context("uri", self.inner.uri()))?;
        public_key
            .verify_digest(digest, &signature)
            .map_err(|e| e.with_context("uri", self.inner.uri()))?;
        Ok(signature)
    }
}
