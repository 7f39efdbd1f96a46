//! Signatures: [`Signature`] over a curve-typed [`EcdsaSignature`] (with its wire forms:
//! DER for AWS, GCP and openssl; fixed-width `r || s` for Azure and JOSE; the `r`/`s`
//! integers OpenSSH wants), an [`RsaSignature`] and an Ed25519 signature.

use spki::SignatureBitStringEncoding;
use spki::der::asn1::BitString;

use crate::{Algorithm, Curve, Error, ErrorKind, HashAlgorithm, Result};

/// An ECDSA signature on P-256, P-384 or P-521.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcdsaSignature {
    /// A P-256 signature.
    P256(p256::ecdsa::Signature),
    /// A P-384 signature.
    P384(p384::ecdsa::Signature),
    /// A P-521 signature.
    P521(p521::ecdsa::Signature),
}

fn malformed(algorithm: impl std::fmt::Display, form: &str, detail: String) -> Error {
    Error::new(
        ErrorKind::BadSignature,
        format!("malformed {algorithm} signature ({form}): {detail}"),
    )
}

impl EcdsaSignature {
    /// The algorithm (curve) of this signature.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.curve().algorithm()
    }

    /// The signature's curve.
    #[must_use]
    pub fn curve(&self) -> Curve {
        match self {
            Self::P256(_) => Curve::P256,
            Self::P384(_) => Curve::P384,
            Self::P521(_) => Curve::P521,
        }
    }

    /// Decodes an ASN.1 DER `Ecdsa-Sig-Value` (AWS `Sign`, GCP `asymmetricSign`).
    ///
    /// # Errors
    /// [`ErrorKind::BadSignature`] for invalid DER or out-of-range `r`/`s`.
    pub fn from_der(curve: Curve, der: &[u8]) -> Result<Self> {
        let parsed = match curve {
            Curve::P256 => p256::ecdsa::Signature::from_der(der).map(Self::P256),
            Curve::P384 => p384::ecdsa::Signature::from_der(der).map(Self::P384),
            Curve::P521 => p521::ecdsa::Signature::from_der(der).map(Self::P521),
        };
        parsed.map_err(|_| {
            malformed(
                curve.algorithm(),
                "DER",
                format!("{} bytes do not decode", der.len()),
            )
        })
    }

    /// Decodes fixed-width big-endian `r || s` (Azure Key Vault, JOSE), which must be
    /// exactly twice [`Curve::field_len`] long.
    ///
    /// # Errors
    /// [`ErrorKind::BadSignature`] for a wrong length or out-of-range `r`/`s`.
    pub fn from_fixed(curve: Curve, bytes: &[u8]) -> Result<Self> {
        let algorithm = curve.algorithm();
        let expected = 2 * curve.field_len();
        if bytes.len() != expected {
            return Err(malformed(
                algorithm,
                "r||s",
                format!("expected {expected} bytes, got {}", bytes.len()),
            ));
        }
        let parsed = match curve {
            Curve::P256 => p256::ecdsa::Signature::from_slice(bytes).map(Self::P256),
            Curve::P384 => p384::ecdsa::Signature::from_slice(bytes).map(Self::P384),
            Curve::P521 => p521::ecdsa::Signature::from_slice(bytes).map(Self::P521),
        };
        parsed.map_err(|_| {
            malformed(
                algorithm,
                "r||s",
                "r or s is zero or not below the group order".into(),
            )
        })
    }

    /// The ASN.1 DER encoding, as `openssl dgst -verify` and X.509 expect.
    #[must_use]
    pub fn to_der(&self) -> Vec<u8> {
        match self {
            Self::P256(s) => s.to_der().as_bytes().to_vec(),
            Self::P384(s) => s.to_der().as_bytes().to_vec(),
            Self::P521(s) => s.to_der().as_bytes().to_vec(),
        }
    }

    /// The fixed-width `r || s` encoding.
    #[must_use]
    pub fn to_fixed(&self) -> Vec<u8> {
        match self {
            Self::P256(s) => s.to_bytes().to_vec(),
            Self::P384(s) => s.to_bytes().to_vec(),
            Self::P521(s) => s.to_bytes().to_vec(),
        }
    }

    /// `r` and `s` as fixed-width big-endian integers (leading zeros kept).
    #[must_use]
    pub fn r_s(&self) -> (Vec<u8>, Vec<u8>) {
        let mut fixed = self.to_fixed();
        let s = fixed.split_off(fixed.len() / 2);
        (fixed, s)
    }
}

impl SignatureBitStringEncoding for EcdsaSignature {
    fn to_bitstring(&self) -> spki::der::Result<BitString> {
        BitString::from_bytes(&self.to_der())
    }
}

impl From<p256::ecdsa::Signature> for EcdsaSignature {
    fn from(s: p256::ecdsa::Signature) -> Self {
        Self::P256(s)
    }
}

impl From<p384::ecdsa::Signature> for EcdsaSignature {
    fn from(s: p384::ecdsa::Signature) -> Self {
        Self::P384(s)
    }
}

impl From<p521::ecdsa::Signature> for EcdsaSignature {
    fn from(s: p521::ecdsa::Signature) -> Self {
        Self::P521(s)
    }
}

/// An RSA PKCS#1 v1.5 signature: the big-endian integer, as long as the modulus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaSignature {
    hash: HashAlgorithm,
    bytes: Box<[u8]>,
}

impl RsaSignature {
    /// Wraps the signature bytes a provider returned for a PKCS#1 v1.5 signature with
    /// `hash`. Their length is checked against the modulus when verified.
    ///
    /// # Errors
    /// [`ErrorKind::BadSignature`] when empty.
    pub fn new(hash: HashAlgorithm, bytes: impl Into<Box<[u8]>>) -> Result<Self> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(malformed("RSA", "PKCS#1 v1.5", "no bytes".into()));
        }
        Ok(Self { hash, bytes })
    }

    /// The hash the signature was made over.
    #[must_use]
    pub fn hash(&self) -> HashAlgorithm {
        self.hash
    }

    /// The algorithm of this signature.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        match self.hash {
            HashAlgorithm::Sha256 => Algorithm::RsaPkcs1Sha256,
            HashAlgorithm::Sha384 => Algorithm::RsaPkcs1Sha384,
            HashAlgorithm::Sha512 => Algorithm::RsaPkcs1Sha512,
        }
    }

    /// The signature integer, big-endian, modulus-length.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A signature from any supported algorithm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signature {
    /// ECDSA.
    Ecdsa(EcdsaSignature),
    /// RSA PKCS#1 v1.5.
    Rsa(RsaSignature),
    /// Ed25519.
    Ed25519(ed25519_dalek::Signature),
}

impl Signature {
    /// The algorithm that made this signature.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Ecdsa(s) => s.algorithm(),
            Self::Rsa(s) => s.algorithm(),
            Self::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// Decodes a signature in the form X.509, PKCS#10, `openssl` and AWS and GCP carry
    /// (see [`Signature::to_bytes`]).
    ///
    /// # Errors
    /// [`ErrorKind::BadSignature`] when the bytes are not such a signature.
    pub fn from_bytes(algorithm: Algorithm, bytes: &[u8]) -> Result<Self> {
        match (algorithm.curve(), algorithm.hash()) {
            (Some(curve), _) => EcdsaSignature::from_der(curve, bytes).map(Self::Ecdsa),
            (None, Some(hash)) => RsaSignature::new(hash, bytes).map(Self::Rsa),
            (None, None) => ed25519_dalek::Signature::from_slice(bytes)
                .map(Self::Ed25519)
                .map_err(|_| {
                    malformed(
                        algorithm,
                        "R||S",
                        format!("expected 64 bytes, got {}", bytes.len()),
                    )
                }),
        }
    }

    /// The signature as X.509, PKCS#10 and `openssl` carry it: a DER `Ecdsa-Sig-Value`
    /// for ECDSA, the modulus-length integer for RSA, the 64 bytes `R || S` for Ed25519.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Ecdsa(s) => s.to_der(),
            Self::Rsa(s) => s.as_bytes().to_vec(),
            Self::Ed25519(s) => s.to_bytes().to_vec(),
        }
    }

    /// The ECDSA signature, if this is one.
    #[must_use]
    pub fn as_ecdsa(&self) -> Option<&EcdsaSignature> {
        match self {
            Self::Ecdsa(s) => Some(s),
            _ => None,
        }
    }
}

impl SignatureBitStringEncoding for Signature {
    fn to_bitstring(&self) -> spki::der::Result<BitString> {
        BitString::from_bytes(&self.to_bytes())
    }
}

impl From<EcdsaSignature> for Signature {
    fn from(s: EcdsaSignature) -> Self {
        Self::Ecdsa(s)
    }
}

impl From<RsaSignature> for Signature {
    fn from(s: RsaSignature) -> Self {
        Self::Rsa(s)
    }
}

impl From<ed25519_dalek::Signature> for Signature {
    fn from(s: ed25519_dalek::Signature) -> Self {
        Self::Ed25519(s)
    }
}
