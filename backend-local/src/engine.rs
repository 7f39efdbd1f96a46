//! The two ways a local key signs: AWS-LC (fast, C) or RustCrypto (pure Rust).

use std::fmt;
use std::str::FromStr;

#[cfg(feature = "aws-lc")]
use kmssh_core::Algorithm;
use kmssh_core::{EcdsaSignature, Error, ErrorKind, Result};
use signature::hazmat::PrehashSigner;

use crate::SecretKey;

/// Which library makes a local key's signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningEngine {
    /// AWS-LC through `aws-lc-rs` (feature `aws-lc`, on by default).
    AwsLc,
    /// RustCrypto's `p256`/`p384`/`p521` crates: pure Rust, always available.
    RustCrypto,
}

impl SigningEngine {
    /// The engines compiled into this build.
    #[must_use]
    pub fn available() -> &'static [SigningEngine] {
        if cfg!(feature = "aws-lc") {
            &[Self::AwsLc, Self::RustCrypto]
        } else {
            &[Self::RustCrypto]
        }
    }

    /// The name used in key URIs: `aws-lc` or `rustcrypto`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwsLc => "aws-lc",
            Self::RustCrypto => "rustcrypto",
        }
    }
}

impl fmt::Display for SigningEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningEngine {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "aws-lc" => Ok(Self::AwsLc),
            "rustcrypto" => Ok(Self::RustCrypto),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("unknown signing engine `{other}`: expected aws-lc or rustcrypto"),
            )),
        }
    }
}

/// Below this many expected signatures, an automatically chosen engine starts with
/// RustCrypto and moves to AWS-LC when a key reaches this many signatures.
///
/// AWS-LC's first random bytes seed its CPU-jitter entropy pool, about 45 ms of CPU once
/// per process (measured with `perf`: most of a one-shot `kmssh sign`); each P-256
/// signature then costs ~72 µs less than RustCrypto's, so the pool pays for itself near
/// 600 signatures on P-256 (~300 on P-384, ~1,100 on P-521).
pub const AUTO_AWS_LC_FROM_SIGNATURES: u64 = 512;

/// The engine a key signs with: fixed, or chosen automatically and upgraded to AWS-LC
/// once the key has signed [`AUTO_AWS_LC_FROM_SIGNATURES`] times.
pub(crate) struct Signer {
    first: Engine,
    #[cfg(feature = "aws-lc")]
    upgrade: Option<Upgrade>,
}

/// The AWS-LC engine an automatic choice moves to, made on first need.
#[cfg(feature = "aws-lc")]
struct Upgrade {
    secret: SecretKey,
    signed: std::sync::atomic::AtomicU64,
    engine: std::sync::OnceLock<Option<Engine>>,
}

impl Signer {
    /// `choice` `None` is automatic: AWS-LC at once when `expected` signatures reach the
    /// threshold, else RustCrypto with a later upgrade.
    pub(crate) fn new(
        choice: Option<SigningEngine>,
        expected: Option<u64>,
        secret: &SecretKey,
    ) -> Result<Self> {
        let fixed = |engine| {
            Ok(Self {
                first: Engine::new(engine, secret)?,
                #[cfg(feature = "aws-lc")]
                upgrade: None,
            })
        };
        match choice {
            Some(engine) => fixed(engine),
            None if !cfg!(feature = "aws-lc") => fixed(SigningEngine::RustCrypto),
            None if expected.is_some_and(|n| n >= AUTO_AWS_LC_FROM_SIGNATURES) => {
                fixed(SigningEngine::AwsLc)
            }
            None => Ok(Self {
                first: Engine::new(SigningEngine::RustCrypto, secret)?,
                #[cfg(feature = "aws-lc")]
                upgrade: Some(Upgrade {
                    secret: secret.clone(),
                    signed: std::sync::atomic::AtomicU64::new(0),
                    engine: std::sync::OnceLock::new(),
                }),
            }),
        }
    }

    /// The engine the latest signature came from (the first one's, before any).
    pub(crate) fn kind(&self) -> SigningEngine {
        #[cfg(feature = "aws-lc")]
        if let Some(Some(engine)) = self.upgrade.as_ref().and_then(|u| u.engine.get()) {
            return engine.kind();
        }
        self.first.kind()
    }

    /// The engine for the next signature, counting it.
    fn current(&self) -> &Engine {
        #[cfg(feature = "aws-lc")]
        if let Some(upgrade) = &self.upgrade {
            if let Some(Some(engine)) = upgrade.engine.get() {
                return engine;
            }
            let signed = upgrade
                .signed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if signed >= AUTO_AWS_LC_FROM_SIGNATURES {
                // If AWS-LC refuses the key (it never has), RustCrypto keeps signing.
                let made = upgrade
                    .engine
                    .get_or_init(|| Engine::new(SigningEngine::AwsLc, &upgrade.secret).ok());
                if let Some(engine) = made {
                    return engine;
                }
            }
        }
        &self.first
    }

    /// Signs a digest whose length the caller has checked.
    pub(crate) fn sign_digest(&self, digest: &[u8]) -> Result<EcdsaSignature> {
        self.current().sign_digest(digest)
    }
}

/// A key ready to sign with one engine.
pub(crate) enum Engine {
    #[cfg(feature = "aws-lc")]
    AwsLc(aws_lc_rs::signature::EcdsaKeyPair, Algorithm),
    RustCryptoP256(p256::ecdsa::SigningKey),
    RustCryptoP384(p384::ecdsa::SigningKey),
    RustCryptoP521(p521::ecdsa::SigningKey),
}

fn engine_failed(engine: SigningEngine, what: &str) -> Error {
    Error::new(ErrorKind::Unexpected, format!("{engine} {what}"))
}

impl Engine {
    pub(crate) fn new(kind: SigningEngine, secret: &SecretKey) -> Result<Self> {
        match kind {
            SigningEngine::RustCrypto => Ok(match secret {
                SecretKey::P256(k) => Self::RustCryptoP256(k.into()),
                SecretKey::P384(k) => Self::RustCryptoP384(k.into()),
                SecretKey::P521(k) => Self::RustCryptoP521(k.into()),
            }),
            #[cfg(feature = "aws-lc")]
            SigningEngine::AwsLc => {
                use aws_lc_rs::signature as lc;
                let algorithm = secret.algorithm();
                let lc_algorithm = match algorithm {
                    Algorithm::EcdsaP256Sha256 => &lc::ECDSA_P256_SHA256_FIXED_SIGNING,
                    Algorithm::EcdsaP384Sha384 => &lc::ECDSA_P384_SHA384_FIXED_SIGNING,
                    Algorithm::EcdsaP521Sha512 => &lc::ECDSA_P521_SHA512_FIXED_SIGNING,
                };
                let der = secret.to_sec1_der()?;
                let pair =
                    lc::EcdsaKeyPair::from_private_key_der(lc_algorithm, &der).map_err(|e| {
                        Error::new(
                            ErrorKind::InvalidKey,
                            format!("AWS-LC refuses the {algorithm} key"),
                        )
                        .with_source(e)
                    })?;
                Ok(Self::AwsLc(pair, algorithm))
            }
            #[cfg(not(feature = "aws-lc"))]
            SigningEngine::AwsLc => Err(Error::new(
                ErrorKind::Config,
                "signing engine aws-lc is not compiled in: enable Cargo feature `aws-lc` of kmssh-backend-local",
            )),
        }
    }

    pub(crate) fn kind(&self) -> SigningEngine {
        match self {
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(..) => SigningEngine::AwsLc,
            Self::RustCryptoP256(_) | Self::RustCryptoP384(_) | Self::RustCryptoP521(_) => {
                SigningEngine::RustCrypto
            }
        }
    }

    /// Signs a digest whose length the caller has checked.
    pub(crate) fn sign_digest(&self, digest: &[u8]) -> Result<EcdsaSignature> {
        let rc_failed = |_| engine_failed(SigningEngine::RustCrypto, "failed to sign");
        match self {
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(pair, algorithm) => {
                use aws_lc_rs::digest;
                let hash = match algorithm {
                    Algorithm::EcdsaP256Sha256 => &digest::SHA256,
                    Algorithm::EcdsaP384Sha384 => &digest::SHA384,
                    Algorithm::EcdsaP521Sha512 => &digest::SHA512,
                };
                let failed = |_| engine_failed(SigningEngine::AwsLc, "failed to sign");
                let digest = digest::Digest::import_less_safe(digest, hash).map_err(failed)?;
                let signature = pair.sign_digest(&digest).map_err(failed)?;
                EcdsaSignature::from_fixed(*algorithm, signature.as_ref())
            }
            Self::RustCryptoP256(k) => Ok(EcdsaSignature::P256(
                k.sign_prehash(digest).map_err(rc_failed)?,
            )),
            Self::RustCryptoP384(k) => Ok(EcdsaSignature::P384(
                k.sign_prehash(digest).map_err(rc_failed)?,
            )),
            Self::RustCryptoP521(k) => Ok(EcdsaSignature::P521(
                k.sign_prehash(digest).map_err(rc_failed)?,
            )),
        }
    }
}
