//! [`LocalKey`]: a secret key in this process, behind the [`KmsKey`] trait.

use std::path::Path;

use async_trait::async_trait;
use kmssh_core::{Algorithm, EcPublicKey, EcdsaSignature, KeyUri, KmsKey, Result};

use crate::engine::Signer;
use crate::options::{LocalLocation, parse_uri};
use crate::{EPHEMERAL, LocalOptions, SCHEME, SecretKey, SigningEngine};

/// A signing key held in this process.
pub struct LocalKey {
    uri: KeyUri,
    public: EcPublicKey,
    signer: Signer,
    verify: bool,
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey")
            .field("uri", &self.uri)
            .field("algorithm", &self.public.algorithm())
            .field("engine", &self.signer.kind())
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

impl LocalKey {
    /// Opens a `local:` URI (see the crate docs for its forms); the URI's parameters
    /// override `options`. Async only to match every backend's `open`: nothing waits.
    ///
    /// # Errors
    /// As [`LocalKey::open_sync`].
    pub async fn open(uri: &KeyUri, options: &LocalOptions) -> Result<Self> {
        Self::open_sync(uri, options)
    }

    /// Opens a `local:` URI without a future.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidUri`](kmssh_core::ErrorKind::InvalidUri) for another scheme or
    /// an unknown or misplaced parameter; otherwise as [`LocalKey::generate`] and
    /// [`LocalKey::from_file`].
    pub fn open_sync(uri: &KeyUri, options: &LocalOptions) -> Result<Self> {
        let (location, options) = parse_uri(uri, *options)?;
        let secret = match location {
            LocalLocation::Ephemeral(algorithm) => SecretKey::generate(algorithm)?,
            LocalLocation::File(path) => {
                SecretKey::read_file_with(&path, options.allow_unprotected)
                    .map_err(|e| e.with_context("uri", uri))?
            }
        };
        Self::from_secret(uri.clone(), &secret, options)
    }

    /// Wraps a secret key, naming it with `uri` in logs and errors.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](kmssh_core::ErrorKind::Config) if the engine asked for is not
    /// compiled in, [`ErrorKind::InvalidKey`](kmssh_core::ErrorKind::InvalidKey) if it
    /// refuses the key.
    pub fn from_secret(uri: KeyUri, secret: &SecretKey, options: LocalOptions) -> Result<Self> {
        Ok(Self {
            public: secret.public_key(),
            signer: Signer::new(options.engine, options.expected_signatures, secret)?,
            verify: options.verify,
            uri,
        })
    }

    /// A new random key in memory, named `local:ephemeral?curve=…`.
    ///
    /// # Errors
    /// As [`LocalKey::from_secret`], or [`ErrorKind::Unexpected`](kmssh_core::ErrorKind::Unexpected)
    /// if the OS RNG fails.
    pub fn generate(algorithm: Algorithm, options: LocalOptions) -> Result<Self> {
        let uri = KeyUri::parse(&format!(
            "{SCHEME}:{EPHEMERAL}?curve={}",
            algorithm.ssh_curve().trim_start_matches("nist")
        ))?;
        Self::from_secret(uri, &SecretKey::generate(algorithm)?, options)
    }

    /// Reads a key file: OpenSSH private key, SEC1 `EC PRIVATE KEY` or PKCS#8 `PRIVATE KEY`
    /// (refused if open to group or others, unless [`LocalOptions::allow_unprotected`]).
    ///
    /// # Errors
    /// As [`SecretKey::read_file_with`].
    pub fn from_file(path: &Path, options: LocalOptions) -> Result<Self> {
        let uri = KeyUri::parse(&format!("{SCHEME}:{}", path.display()))?;
        let secret = SecretKey::read_file_with(path, options.allow_unprotected)?;
        Self::from_secret(uri, &secret, options)
    }

    /// The engine that made the latest signature (or will make the first).
    #[must_use]
    pub fn engine(&self) -> SigningEngine {
        self.signer.kind()
    }

    /// Signs a digest synchronously; what [`KmsKey::sign_digest`] does, without a future.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](kmssh_core::ErrorKind::InvalidInput) for a digest of the
    /// wrong length; with `verify` on, [`ErrorKind::BadSignature`](kmssh_core::ErrorKind::BadSignature)
    /// if a signature fails its check.
    pub fn sign_digest_sync(&self, digest: &[u8]) -> Result<EcdsaSignature> {
        self.public.algorithm().check_digest(digest)?;
        let signature = self.signer.sign_digest(digest)?;
        if self.verify {
            self.public
                .verify_digest(digest, &signature)
                .map_err(|e| e.with_context("uri", &self.uri))?;
        }
        Ok(signature)
    }
}

#[async_trait]
impl KmsKey for LocalKey {
    fn uri(&self) -> &KeyUri {
        &self.uri
    }

    fn public_key(&self) -> &EcPublicKey {
        &self.public
    }

    async fn sign_digest(&self, digest: &[u8]) -> Result<EcdsaSignature> {
        self.sign_digest_sync(digest)
    }
}
