//! The two ways a local key signs: AWS-LC (fast, C) or RustCrypto (pure Rust).

use std::fmt;
use std::str::FromStr;

use kmssh_core::{
    Curve, EcdsaSignature, Error, ErrorKind, HashAlgorithm, KeyFamily, KeySpec, Result,
    RsaSignature, Signature, SigningPayload,
};
use signature::hazmat::PrehashSigner;

use crate::SecretKey;

/// Which library makes a local key's signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningEngine {
    /// AWS-LC through `aws-lc-rs` (feature `aws-lc`, on by default).
    AwsLc,
    /// RustCrypto's `p256`/`p384`/`p521`, `rsa` and `ed25519-dalek` crates: pure Rust,
    /// always available.
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
/// RustCrypto and moves to AWS-LC when an ECDSA key reaches this many signatures (see
/// [`auto_aws_lc_from`] for every kind of key).
///
/// AWS-LC's first random bytes seed its CPU-jitter entropy pool, about 45 ms of CPU once
/// per process (measured with `perf`: most of a one-shot `kmssh sign`); each P-256
/// signature then costs ~72 µs less than RustCrypto's, so the pool pays for itself near
/// 600 signatures on P-256 (~300 on P-384, ~1,100 on P-521).
pub const AUTO_AWS_LC_FROM_SIGNATURES: u64 = 512;

/// After how many signatures an automatically chosen engine moves a key of kind `spec`
/// to AWS-LC (and from how many expected signatures it starts there): when what AWS-LC
/// costs once has been paid back by its faster signatures. Measured on one core (x86-64,
/// dependencies optimised):
///
/// - ECDSA: [`AUTO_AWS_LC_FROM_SIGNATURES`].
/// - RSA: 16 below 3072 bits, 8 below 4096, 4 from 4096. AWS-LC's blinding seeds its
///   entropy pool (25–45 ms once); RustCrypto's signature then costs more by ~2.0 ms
///   (RSA-2048: 2.3 ms against 0.31 ms), ~4.1 ms (RSA-3072) and ~8.5 ms (RSA-4096:
///   10.3 ms against 1.8 ms).
/// - Ed25519: 32. Ed25519 signing is deterministic, so AWS-LC needs no entropy; setting
///   up its key costs ~0.1–0.2 ms and each signature then saves ~8.5 µs (9.5 µs against
///   18 µs).
#[must_use]
pub fn auto_aws_lc_from(spec: KeySpec) -> u64 {
    match spec {
        KeySpec::Ecdsa(_) => AUTO_AWS_LC_FROM_SIGNATURES,
        KeySpec::Rsa(bits) if bits < 3072 => 16,
        KeySpec::Rsa(bits) if bits < 4096 => 8,
        KeySpec::Rsa(_) => 4,
        KeySpec::Ed25519 => 32,
    }
}

/// The engine a key signs with: fixed, or chosen automatically and upgraded to AWS-LC
/// once the key has signed [`auto_aws_lc_from`] times.
pub(crate) struct Signer {
    first: Engine,
    #[cfg(feature = "aws-lc")]
    upgrade: Option<Upgrade>,
}

/// The AWS-LC engine an automatic choice moves to, made on first need.
#[cfg(feature = "aws-lc")]
struct Upgrade {
    secret: SecretKey,
    from: u64,
    signed: std::sync::atomic::AtomicU64,
    engine: std::sync::OnceLock<Option<Engine>>,
}

impl Signer {
    /// `choice` `None` is automatic: AWS-LC at once when `expected` signatures reach the
    /// key's threshold ([`auto_aws_lc_from`]), else RustCrypto with a later upgrade.
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
        let from = auto_aws_lc_from(secret.spec());
        match choice {
            Some(engine) => fixed(engine),
            None if !cfg!(feature = "aws-lc") => fixed(SigningEngine::RustCrypto),
            None if expected.is_some_and(|n| n >= from) => fixed(SigningEngine::AwsLc),
            None => Ok(Self {
                first: Engine::new(SigningEngine::RustCrypto, secret)?,
                #[cfg(feature = "aws-lc")]
                upgrade: Some(Upgrade {
                    secret: secret.clone(),
                    from,
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
            if signed >= upgrade.from {
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

    /// Signs a checked payload (an algorithm of the key, a digest of the right length).
    pub(crate) fn sign(&self, payload: &SigningPayload<'_>) -> Result<Signature> {
        self.current().sign(payload)
    }
}

/// A key ready to sign with one engine.
pub(crate) enum Engine {
    #[cfg(feature = "aws-lc")]
    AwsLcEcdsa(aws_lc_rs::signature::EcdsaKeyPair, Curve),
    #[cfg(feature = "aws-lc")]
    AwsLcRsa(aws_lc_rs::rsa::KeyPair),
    #[cfg(feature = "aws-lc")]
    AwsLcEd25519(aws_lc_rs::signature::Ed25519KeyPair),
    RustCryptoP256(p256::ecdsa::SigningKey),
    RustCryptoP384(p384::ecdsa::SigningKey),
    RustCryptoP521(p521::ecdsa::SigningKey),
    RustCryptoRsa(Box<kmssh_core::rsa::PrivateKey>),
    RustCryptoEd25519(Box<ed25519_dalek::SigningKey>),
}

/// The engine's failure to sign, with its error as the cause.
fn sign_failed<E: fmt::Display>(engine: SigningEngine) -> impl Fn(E) -> Error {
    move |e| {
        Error::new(ErrorKind::Unexpected, format!("{engine} failed to sign"))
            .with_source(e.to_string())
    }
}

#[cfg(feature = "aws-lc")]
fn aws_lc_refuses(spec: KeySpec) -> impl Fn(aws_lc_rs::error::KeyRejected) -> Error {
    move |e| {
        Error::new(
            ErrorKind::InvalidKey,
            format!("AWS-LC refuses the {spec} key"),
        )
        .with_source(e)
    }
}

impl Engine {
    pub(crate) fn new(kind: SigningEngine, secret: &SecretKey) -> Result<Self> {
        match kind {
            SigningEngine::RustCrypto => Ok(match secret {
                SecretKey::P256(k) => Self::RustCryptoP256(k.into()),
                SecretKey::P384(k) => Self::RustCryptoP384(k.into()),
                SecretKey::P521(k) => Self::RustCryptoP521(k.into()),
                SecretKey::Rsa(k) => Self::RustCryptoRsa(k.clone()),
                SecretKey::Ed25519(k) => Self::RustCryptoEd25519(Box::new(k.clone())),
            }),
            #[cfg(feature = "aws-lc")]
            SigningEngine::AwsLc => {
                use aws_lc_rs::signature as lc;
                let spec = secret.spec();
                match secret {
                    SecretKey::P256(_) | SecretKey::P384(_) | SecretKey::P521(_) => {
                        let curve = match secret {
                            SecretKey::P256(_) => Curve::P256,
                            SecretKey::P384(_) => Curve::P384,
                            _ => Curve::P521,
                        };
                        let lc_algorithm = match curve {
                            Curve::P256 => &lc::ECDSA_P256_SHA256_FIXED_SIGNING,
                            Curve::P384 => &lc::ECDSA_P384_SHA384_FIXED_SIGNING,
                            Curve::P521 => &lc::ECDSA_P521_SHA512_FIXED_SIGNING,
                        };
                        let der = secret.to_sec1_der()?;
                        lc::EcdsaKeyPair::from_private_key_der(lc_algorithm, &der)
                            .map(|pair| Self::AwsLcEcdsa(pair, curve))
                            .map_err(aws_lc_refuses(spec))
                    }
                    SecretKey::Rsa(k) => {
                        use kmssh_core::rsa::pkcs1::EncodeRsaPrivateKey as _;
                        let der = k.to_pkcs1_der().map_err(|e| {
                            Error::new(ErrorKind::Unexpected, "cannot PKCS#1-encode the key")
                                .with_source(e.to_string())
                        })?;
                        aws_lc_rs::rsa::KeyPair::from_der(der.as_bytes())
                            .map(Self::AwsLcRsa)
                            .map_err(aws_lc_refuses(spec))
                    }
                    SecretKey::Ed25519(k) => lc::Ed25519KeyPair::from_seed_and_public_key(
                        k.as_bytes(),
                        k.verifying_key().as_bytes(),
                    )
                    .map(Self::AwsLcEd25519)
                    .map_err(aws_lc_refuses(spec)),
                }
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
            Self::AwsLcEcdsa(..) | Self::AwsLcRsa(_) | Self::AwsLcEd25519(_) => {
                SigningEngine::AwsLc
            }
            Self::RustCryptoP256(_)
            | Self::RustCryptoP384(_)
            | Self::RustCryptoP521(_)
            | Self::RustCryptoRsa(_)
            | Self::RustCryptoEd25519(_) => SigningEngine::RustCrypto,
        }
    }

    /// Signs a payload whose digest length the caller has checked; refuses an algorithm
    /// of another key type.
    pub(crate) fn sign(&self, payload: &SigningPayload<'_>) -> Result<Signature> {
        let algorithm = payload.algorithm();
        let bytes = payload.as_bytes();
        let kind = self.kind();
        let mismatch = || {
            Error::new(
                ErrorKind::UnsupportedAlgorithm,
                format!("a {kind} {} key cannot sign {algorithm}", self.family()),
            )
        };
        match (self, algorithm.curve(), algorithm.hash()) {
            #[cfg(feature = "aws-lc")]
            (Self::AwsLcEcdsa(pair, curve), Some(wanted), Some(hash)) if wanted == *curve => {
                let digest = aws_lc_digest(bytes, hash).map_err(sign_failed(kind))?;
                let signature = pair.sign_digest(&digest).map_err(sign_failed(kind))?;
                EcdsaSignature::from_fixed(*curve, signature.as_ref()).map(Signature::Ecdsa)
            }
            #[cfg(feature = "aws-lc")]
            (Self::AwsLcRsa(pair), None, Some(hash)) => {
                use aws_lc_rs::signature as lc;
                let encoding: &'static dyn lc::RsaEncoding = match hash {
                    HashAlgorithm::Sha256 => &lc::RSA_PKCS1_SHA256,
                    HashAlgorithm::Sha384 => &lc::RSA_PKCS1_SHA384,
                    HashAlgorithm::Sha512 => &lc::RSA_PKCS1_SHA512,
                };
                let digest = aws_lc_digest(bytes, hash).map_err(sign_failed(kind))?;
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign_digest(encoding, &digest, &mut signature)
                    .map_err(sign_failed(kind))?;
                RsaSignature::new(hash, signature).map(Signature::Rsa)
            }
            #[cfg(feature = "aws-lc")]
            (Self::AwsLcEd25519(pair), None, None) => {
                let signature = pair.try_sign(bytes).map_err(sign_failed(kind))?;
                ed25519_dalek::Signature::from_slice(signature.as_ref())
                    .map(Signature::Ed25519)
                    .map_err(sign_failed(kind))
            }
            (Self::RustCryptoP256(k), Some(Curve::P256), _) => k
                .sign_prehash(bytes)
                .map(|s| Signature::Ecdsa(EcdsaSignature::P256(s)))
                .map_err(sign_failed(kind)),
            (Self::RustCryptoP384(k), Some(Curve::P384), _) => k
                .sign_prehash(bytes)
                .map(|s| Signature::Ecdsa(EcdsaSignature::P384(s)))
                .map_err(sign_failed(kind)),
            (Self::RustCryptoP521(k), Some(Curve::P521), _) => k
                .sign_prehash(bytes)
                .map(|s| Signature::Ecdsa(EcdsaSignature::P521(s)))
                .map_err(sign_failed(kind)),
            (Self::RustCryptoRsa(k), None, Some(hash)) => {
                use kmssh_core::rsa::Pkcs1v15Sign;
                let scheme = match hash {
                    HashAlgorithm::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
                    HashAlgorithm::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
                    HashAlgorithm::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
                };
                // The RNG blinds the private operation against timing attacks.
                let signature = k
                    .sign_with_rng(&mut getrandom::SysRng, scheme, bytes)
                    .map_err(sign_failed(kind))?;
                RsaSignature::new(hash, signature).map(Signature::Rsa)
            }
            (Self::RustCryptoEd25519(k), None, None) => {
                use signature::Signer as _;
                k.try_sign(bytes)
                    .map(Signature::Ed25519)
                    .map_err(sign_failed(kind))
            }
            _ => Err(mismatch()),
        }
    }

    fn family(&self) -> KeyFamily {
        match self {
            #[cfg(feature = "aws-lc")]
            Self::AwsLcEcdsa(..) => KeyFamily::Ecdsa,
            #[cfg(feature = "aws-lc")]
            Self::AwsLcRsa(_) => KeyFamily::Rsa,
            #[cfg(feature = "aws-lc")]
            Self::AwsLcEd25519(_) => KeyFamily::Ed25519,
            Self::RustCryptoP256(_) | Self::RustCryptoP384(_) | Self::RustCryptoP521(_) => {
                KeyFamily::Ecdsa
            }
            Self::RustCryptoRsa(_) => KeyFamily::Rsa,
            Self::RustCryptoEd25519(_) => KeyFamily::Ed25519,
        }
    }
}

/// A digest computed elsewhere, as AWS-LC's `sign_digest` takes it.
#[cfg(feature = "aws-lc")]
fn aws_lc_digest(
    bytes: &[u8],
    hash: HashAlgorithm,
) -> std::result::Result<aws_lc_rs::digest::Digest, aws_lc_rs::error::Unspecified> {
    use aws_lc_rs::digest;
    let algorithm = match hash {
        HashAlgorithm::Sha256 => &digest::SHA256,
        HashAlgorithm::Sha384 => &digest::SHA384,
        HashAlgorithm::Sha512 => &digest::SHA512,
    };
    digest::Digest::import_less_safe(bytes, algorithm)
}
