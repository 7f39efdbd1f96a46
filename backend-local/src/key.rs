//! [`LocalKey`]: a secret key in this process, behind the [`KmsKey`] trait.

use std::path::Path;

use async_trait::async_trait;
use kmssh_core::{
    Algorithm, Error, KeySpec, KeyUri, KmsKey, PublicKey, Result, Signature, SigningInput,
    SigningPayload, check_algorithm,
};

use crate::engine::Signer;
use crate::options::{LocalLocation, ephemeral_uri, parse_uri};
use crate::{LocalOptions, SCHEME, SecretKey, SigningEngine};

/// A signing key held in this process: ECDSA, RSA or Ed25519.
pub struct LocalKey {
    uri: KeyUri,
    public: PublicKey,
    signer: Signer,
    verify: bool,
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey")
            .field("uri", &self.uri)
            .field("key", &self.public.description())
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
    /// an unknown or misplaced parameter; otherwise as [`SecretKey::generate`] and
    /// [`LocalKey::from_file`].
    pub fn open_sync(uri: &KeyUri, options: &LocalOptions) -> Result<Self> {
        let (location, mut options) = parse_uri(uri, *options)?;
        let secret = match location {
            LocalLocation::Ephemeral(spec) => {
                options = generated_options(spec, options);
                SecretKey::generate(spec).map_err(|e| e.with_context("uri", uri))?
            }
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
    /// refuses the key, [`ErrorKind::UnsupportedAlgorithm`](kmssh_core::ErrorKind::UnsupportedAlgorithm)
    /// for an RSA key outside 2048..=8192 bits.
    pub fn from_secret(uri: KeyUri, secret: &SecretKey, options: LocalOptions) -> Result<Self> {
        let with_uri = |e: Error| e.with_context("uri", &uri);
        let public = match secret.public_key() {
            // A `SecretKey::Rsa` made outside this crate has not had its size checked.
            PublicKey::Rsa(k) => PublicKey::rsa(k).map_err(with_uri)?,
            other => other,
        };
        Ok(Self {
            public,
            signer: Signer::new(options.engine, options.expected_signatures, secret)
                .map_err(with_uri)?,
            verify: options.verify,
            uri,
        })
    }

    /// A new random key of kind `spec` in memory, named by its `local:ephemeral?…` URI
    /// (`?curve=p384`, `?type=rsa&bits=3072`, `?type=ed25519`). RSA keys come from
    /// AWS-LC's generator when it is compiled in (see [`SecretKey::generate`]); with the
    /// automatic engine they then sign with AWS-LC from the first signature, its entropy
    /// pool being seeded already.
    ///
    /// # Errors
    /// As [`SecretKey::generate`] and [`LocalKey::from_secret`].
    pub fn generate(spec: KeySpec, options: LocalOptions) -> Result<Self> {
        let secret = SecretKey::generate(spec)?;
        Self::from_secret(
            ephemeral_uri(spec)?,
            &secret,
            generated_options(spec, options),
        )
    }

    /// Reads a key file: OpenSSH, PKCS#8, PKCS#1 or SEC1 (see [`SecretKey::from_pem`]),
    /// refused if open to group or others unless [`LocalOptions::allow_unprotected`].
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

    /// Signs synchronously; what [`KmsKey::sign`] does, without a future. Pre-hashed
    /// algorithms (ECDSA, RSA) take a digest or a message (hashed here); Ed25519 takes
    /// the message.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedAlgorithm`](kmssh_core::ErrorKind::UnsupportedAlgorithm)
    /// for an algorithm the key does not sign with;
    /// [`ErrorKind::InvalidInput`](kmssh_core::ErrorKind::InvalidInput) for a digest of
    /// the wrong length or a digest for Ed25519; with `verify` on,
    /// [`ErrorKind::BadSignature`](kmssh_core::ErrorKind::BadSignature) if a signature
    /// fails its check.
    pub fn sign_sync(&self, algorithm: Algorithm, input: SigningInput<'_>) -> Result<Signature> {
        check_algorithm(self, algorithm)?;
        let with_uri = |e: Error| e.with_context("uri", &self.uri);
        let payload = SigningPayload::new(algorithm, input).map_err(with_uri)?;
        let signature = self.signer.sign(&payload).map_err(with_uri)?;
        if self.verify {
            self.public
                .verify(algorithm, payload.as_bytes(), &signature)
                .map_err(with_uri)?;
        }
        Ok(signature)
    }
}

/// The options for a key [`SecretKey::generate`] just made: an automatic engine starts
/// on AWS-LC when AWS-LC made the key (its one-off cost is paid).
fn generated_options(spec: KeySpec, mut options: LocalOptions) -> LocalOptions {
    if options.engine.is_none() && crate::secret::aws_lc_generates(spec) {
        options.engine = Some(SigningEngine::AwsLc);
    }
    options
}

#[async_trait]
impl KmsKey for LocalKey {
    fn uri(&self) -> &KeyUri {
        &self.uri
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    async fn sign(&self, algorithm: Algorithm, input: SigningInput<'_>) -> Result<Signature> {
        self.sign_sync(algorithm, input)
    }
}
