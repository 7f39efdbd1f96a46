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
    /// AWS-LC when compiled in, RustCrypto otherwise.
    pub const DEFAULT: Self = if cfg!(feature = "aws-lc") {
        Self::AwsLc
    } else {
        Self::RustCrypto
    };

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
                    _ => &lc::ECDSA_P521_SHA512_FIXED_SIGNING,
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
            _ => SigningEngine::RustCrypto,
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
                    _ => &digest::SHA512,
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
