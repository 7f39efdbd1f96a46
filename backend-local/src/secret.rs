//! [`SecretKey`]: a local private key of any family, generated here or read by
//! [`crate::load`].

use kmssh_core::rsa::traits::PublicKeyParts as _;
use kmssh_core::{
    Curve, EcPublicKey, Error, ErrorKind, KeyFamily, KeySpec, MAX_RSA_BITS, MIN_RSA_BITS,
    PublicKey, Result,
};
use p256::elliptic_curve::Generate;
use zeroize::Zeroizing;

/// A secret key: ECDSA on P-256, P-384 or P-521, RSA of [`MIN_RSA_BITS`] to
/// [`MAX_RSA_BITS`] bits, or Ed25519. Every variant's crate zeroizes it on drop.
#[derive(Clone)]
pub enum SecretKey {
    /// A P-256 key.
    P256(p256::SecretKey),
    /// A P-384 key.
    P384(p384::SecretKey),
    /// A P-521 key.
    P521(p521::SecretKey),
    /// An RSA key (two primes; its size is checked wherever this crate makes one).
    Rsa(Box<kmssh_core::rsa::PrivateKey>),
    /// An Ed25519 key.
    Ed25519(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.spec())
    }
}

fn rng_failed(e: getrandom::Error) -> Error {
    Error::new(ErrorKind::Unexpected, "the OS RNG failed").with_source(e)
}

impl SecretKey {
    /// A new random key of kind `spec` from the operating system's RNG. RSA keys are
    /// made by AWS-LC when the `aws-lc` feature is on and the size is one it makes
    /// (2048, 3072, 4096, 8192), else by RustCrypto's `rsa` (as fast since 0.10:
    /// RSA-4096 takes ~0.5–0.7 s either way, RSA-2048 ~50–70 ms).
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedAlgorithm`] for an RSA size outside 2048..=8192 or not a
    /// multiple of 8; [`ErrorKind::Unexpected`] if the RNG or the generator fails.
    pub fn generate(spec: KeySpec) -> Result<Self> {
        let mut rng = getrandom::SysRng;
        Ok(match spec {
            KeySpec::Ecdsa(Curve::P256) => {
                Self::P256(p256::SecretKey::try_generate_from_rng(&mut rng).map_err(rng_failed)?)
            }
            KeySpec::Ecdsa(Curve::P384) => {
                Self::P384(p384::SecretKey::try_generate_from_rng(&mut rng).map_err(rng_failed)?)
            }
            KeySpec::Ecdsa(Curve::P521) => {
                Self::P521(p521::SecretKey::try_generate_from_rng(&mut rng).map_err(rng_failed)?)
            }
            KeySpec::Rsa(bits) => {
                // The same sizes `--bits` accepts, refused the same way.
                KeySpec::new(KeyFamily::Rsa, Some(bits), None)?;
                Self::Rsa(Box::new(generate_rsa(bits)?))
            }
            KeySpec::Ed25519 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                getrandom::fill(seed.as_mut_slice()).map_err(rng_failed)?;
                Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
        })
    }

    /// The kind of key this is (`ECDSA P-256`, `RSA-3072`, `Ed25519`).
    #[must_use]
    pub fn spec(&self) -> KeySpec {
        match self {
            Self::P256(_) => KeySpec::Ecdsa(Curve::P256),
            Self::P384(_) => KeySpec::Ecdsa(Curve::P384),
            Self::P521(_) => KeySpec::Ecdsa(Curve::P521),
            Self::Rsa(k) => KeySpec::Rsa(k.n().bit_width_vartime()),
            Self::Ed25519(_) => KeySpec::Ed25519,
        }
    }

    /// The key's family.
    #[must_use]
    pub fn family(&self) -> KeyFamily {
        self.spec().family()
    }

    /// The matching public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::P256(k) => PublicKey::Ecdsa(EcPublicKey::P256(k.public_key().into())),
            Self::P384(k) => PublicKey::Ecdsa(EcPublicKey::P384(k.public_key().into())),
            Self::P521(k) => PublicKey::Ecdsa(EcPublicKey::P521(k.public_key().into())),
            // Keys outside 2048 to 8192 bits are refused when read or made, and
            // `PublicKey::verify` holds RSA keys to that range again.
            Self::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
            Self::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
        }
    }

    /// The SEC1 DER `ECPrivateKey` of an ECDSA key, for engines that import keys that way.
    #[cfg(feature = "aws-lc")]
    pub(crate) fn to_sec1_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        let der = match self {
            Self::P256(k) => k.to_sec1_der(),
            Self::P384(k) => k.to_sec1_der(),
            Self::P521(k) => k.to_sec1_der(),
            Self::Rsa(_) | Self::Ed25519(_) => {
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    format!("a {} key has no SEC1 form", self.spec()),
                ));
            }
        };
        der.map_err(|e| {
            Error::new(ErrorKind::Unexpected, "cannot SEC1-encode the key")
                .with_source(e.to_string())
        })
    }
}

/// Refuses an RSA modulus (big-endian bytes, leading zeros allowed) outside
/// [`MIN_RSA_BITS`]..=[`MAX_RSA_BITS`], naming its size, before any arithmetic on it.
pub(crate) fn check_rsa_modulus(modulus: &[u8]) -> Result<()> {
    let digits = modulus
        .iter()
        .position(|&b| b != 0)
        .map_or(&[][..], |i| &modulus[i..]);
    let bits = digits
        .first()
        .map_or(0, |&top| 8 * digits.len() - top.leading_zeros() as usize);
    if (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::UnsupportedAlgorithm,
            format!("RSA-{bits} keys are not supported: use {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"),
        ))
    }
}

/// Whether [`SecretKey::generate`] makes keys of kind `spec` with AWS-LC (which then has
/// seeded its entropy pool, the cost [`crate::auto_aws_lc_from`] weighs).
pub(crate) fn aws_lc_generates(spec: KeySpec) -> bool {
    cfg!(feature = "aws-lc") && matches!(spec, KeySpec::Rsa(2048 | 3072 | 4096 | 8192))
}

/// A new RSA key: AWS-LC's generator when compiled in and it makes this size, else
/// RustCrypto's.
fn generate_rsa(bits: u32) -> Result<kmssh_core::rsa::PrivateKey> {
    #[cfg(feature = "aws-lc")]
    {
        use aws_lc_rs::encoding::{AsDer as _, Pkcs8V1Der};
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        use kmssh_core::rsa::pkcs8::DecodePrivateKey as _;
        let size = match bits {
            2048 => Some(KeySize::Rsa2048),
            3072 => Some(KeySize::Rsa3072),
            4096 => Some(KeySize::Rsa4096),
            8192 => Some(KeySize::Rsa8192),
            _ => None,
        };
        if let Some(size) = size {
            let failed = |what: &str| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("AWS-LC failed to {what} an RSA-{bits} key"),
                )
            };
            let pair = KeyPair::generate(size).map_err(|_| failed("generate"))?;
            let der: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| failed("export"))?;
            return kmssh_core::rsa::PrivateKey::from_pkcs8_der(der.as_ref()).map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("AWS-LC made an RSA-{bits} key RustCrypto refuses"),
                )
                .with_source(e.to_string())
            });
        }
    }
    kmssh_core::rsa::PrivateKey::new(&mut getrandom::SysRng, bits as usize).map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("cannot generate an RSA-{bits} key"),
        )
        .with_source(e.to_string())
    })
}
