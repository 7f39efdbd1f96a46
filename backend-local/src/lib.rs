//! kmssh's local backend: P-256, P-384 and P-521 keys held in this process, generated in
//! memory or read from a file, registered under the `local:` key URI scheme.
//!
//! ```text
//! local:ephemeral?curve=p384            a new key in memory, gone when the process ends
//! local:/etc/ssh-ca/ca_key              an OpenSSH, SEC1 (`EC PRIVATE KEY`) or PKCS#8 PEM file
//! local:ca_key?engine=rustcrypto&verify=true
//! ```
//!
//! Query parameters: `curve` (ephemeral keys only: `p256` default, `p384`, `p521`),
//! `engine` (`aws-lc`, the default when the `aws-lc` feature is on, or `rustcrypto`),
//! and `verify` (`true` to check every signature against the public key; off by default
//! because an in-process signer is trusted the way `ssh-keygen` trusts its own key).
//!
//! Signing engines: with the default `aws-lc` feature, signatures come from AWS-LC (about
//! 5× RustCrypto's rate on P-256 on one core); without it, from the pure-Rust
//! RustCrypto `p256`/`p384`/`p521` crates. Both are always tested.
//!
//! Linking this crate registers the backend: binaries that choose it write
//! `use kmssh_backend_local as _;`.

#![forbid(unsafe_code)]

mod engine;
mod load;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use kmssh_core::{
    Algorithm, Backend, EcPublicKey, EcdsaSignature, Error, ErrorKind, KeyUri, KmsKey, OpenFuture,
    Result,
};

use engine::Engine;
pub use engine::SigningEngine;
pub use load::SecretKey;

/// The key URI scheme this backend serves.
pub const SCHEME: &str = "local";

/// The body of a URI naming a new in-memory key.
pub const EPHEMERAL: &str = "ephemeral";

/// How a local key signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalKeyOptions {
    /// The signing engine (default: AWS-LC when compiled in, else RustCrypto).
    pub engine: SigningEngine,
    /// Verify each signature against the public key before returning it (default off).
    pub verify: bool,
}

impl Default for LocalKeyOptions {
    fn default() -> Self {
        Self {
            engine: SigningEngine::DEFAULT,
            verify: false,
        }
    }
}

/// A signing key held in this process.
pub struct LocalKey {
    uri: KeyUri,
    public: EcPublicKey,
    engine: Engine,
    verify: bool,
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey")
            .field("uri", &self.uri)
            .field("algorithm", &self.public.algorithm())
            .field("engine", &self.engine.kind())
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

impl LocalKey {
    /// Wraps a secret key, naming it with `uri` in logs and errors.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] if the engine is not compiled in, [`ErrorKind::InvalidKey`]
    /// if the engine refuses the key.
    pub fn from_secret(uri: KeyUri, secret: &SecretKey, options: LocalKeyOptions) -> Result<Self> {
        Ok(Self {
            public: secret.public_key(),
            engine: Engine::new(options.engine, secret)?,
            verify: options.verify,
            uri,
        })
    }

    /// A new random key in memory, named `local:ephemeral?curve=…`.
    ///
    /// # Errors
    /// As [`LocalKey::from_secret`], or [`ErrorKind::Unexpected`] if the OS RNG fails.
    pub fn generate(algorithm: Algorithm, options: LocalKeyOptions) -> Result<Self> {
        let uri = KeyUri::parse(&format!(
            "{SCHEME}:{EPHEMERAL}?curve={}",
            curve_param(algorithm)
        ))?;
        Self::from_secret(uri, &SecretKey::generate(algorithm)?, options)
    }

    /// Reads a key file: OpenSSH private key, SEC1 `EC PRIVATE KEY` or PKCS#8 `PRIVATE KEY`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] / [`ErrorKind::PermissionDenied`] for the file,
    /// [`ErrorKind::InvalidKey`] for malformed or encrypted keys,
    /// [`ErrorKind::UnsupportedAlgorithm`] for other key types and curves.
    pub fn from_file(path: &Path, options: LocalKeyOptions) -> Result<Self> {
        let uri = KeyUri::parse(&format!("{SCHEME}:{}", path.display()))?;
        Self::from_secret(uri.clone(), &SecretKey::read_file(path)?, options)
    }

    /// Opens a `local:` URI (see the crate docs for its forms and parameters).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidUri`] for another scheme or an unknown or misplaced parameter;
    /// otherwise as [`LocalKey::generate`] and [`LocalKey::from_file`].
    pub fn open(uri: &KeyUri) -> Result<Self> {
        let bad = |why: String| Error::new(ErrorKind::InvalidUri, why).with_context("uri", uri);
        if uri.scheme() != SCHEME {
            return Err(bad(format!(
                "the local backend opens `{SCHEME}:` URIs, not `{}:`",
                uri.scheme()
            )));
        }
        let mut options = LocalKeyOptions::default();
        let mut curve = None;
        for (name, value) in uri.query_pairs() {
            match name {
                "curve" => {
                    curve =
                        Some(Algorithm::from_str(value).map_err(|e| e.with_context("uri", uri))?)
                }
                "engine" => {
                    options.engine =
                        SigningEngine::from_str(value).map_err(|e| e.with_context("uri", uri))?
                }
                "verify" => {
                    options.verify = match value {
                        "" | "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        other => {
                            return Err(bad(format!("`verify={other}`: expected true or false")));
                        }
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown parameter `{other}`: the local backend takes curve, engine and verify"
                    )));
                }
            }
        }
        let secret = if uri.body() == EPHEMERAL {
            SecretKey::generate(curve.unwrap_or(Algorithm::EcdsaP256Sha256))?
        } else {
            if curve.is_some() {
                return Err(bad(
                    "`curve` applies to `local:ephemeral` only: a key file has its own curve"
                        .into(),
                ));
            }
            SecretKey::read_file(Path::new(uri.body())).map_err(|e| e.with_context("uri", uri))?
        };
        Self::from_secret(uri.clone(), &secret, options)
    }

    /// The engine that makes this key's signatures.
    #[must_use]
    pub fn engine(&self) -> SigningEngine {
        self.engine.kind()
    }

    /// Signs a digest synchronously; what [`KmsKey::sign_digest`] does, without a future.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a digest of the wrong length; with `verify` on,
    /// [`ErrorKind::BadSignature`] if a signature fails its check.
    pub fn sign_digest_sync(&self, digest: &[u8]) -> Result<EcdsaSignature> {
        self.public.algorithm().check_digest(digest)?;
        let signature = self.engine.sign_digest(digest)?;
        if self.verify {
            self.public
                .verify_digest(digest, &signature)
                .map_err(|e| e.with_context("uri", &self.uri))?;
        }
        Ok(signature)
    }
}

fn curve_param(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::EcdsaP384Sha384 => "p384",
        Algorithm::EcdsaP521Sha512 => "p521",
        _ => "p256",
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

fn open_registered(uri: KeyUri) -> OpenFuture {
    Box::pin(async move {
        let key: Arc<dyn KmsKey> = Arc::new(LocalKey::open(&uri)?);
        Ok(key)
    })
}

inventory::submit! {
    Backend {
        scheme: SCHEME,
        description: "keys in this process: local:ephemeral?curve=p256|p384|p521, or local:PATH (OpenSSH, SEC1 or PKCS#8 PEM)",
        open: open_registered,
    }
}
