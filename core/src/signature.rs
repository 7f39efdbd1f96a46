//! A curve-typed ECDSA signature and its wire forms: DER (AWS, GCP, openssl),
//! fixed-width `r || s` (Azure, JOSE), and the `r`/`s` integers OpenSSH wants.

use spki::SignatureBitStringEncoding;
use spki::der::asn1::BitString;

use crate::{Algorithm, Error, ErrorKind, Result};

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

fn malformed(algorithm: Algorithm, form: &str, detail: String) -> Error {
    Error::new(
        ErrorKind::BadSignature,
        format!("malformed {algorithm} signature ({form}): {detail}"),
    )
}

impl EcdsaSignature {
    /// The algorithm (curve) of this signature.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::P256(_) => Algorithm::EcdsaP256Sha256,
            Self::P384(_) => Algorithm::EcdsaP384Sha384,
            Self::P521(_) => Algorithm::EcdsaP521Sha512,
        }
    }

    /// Decodes an ASN.1 DER `Ecdsa-Sig-Value` (AWS `Sign`, GCP `asymmetricSign`).
    ///
    /// # Errors
    /// [`ErrorKind::BadSignature`] for invalid DER or out-of-range `r`/`s`.
    pub fn from_der(algorithm: Algorithm, der: &[u8]) -> Result<Self> {
        let parsed = match algorithm {
            Algorithm::EcdsaP256Sha256 => p256::ecdsa::Signature::from_der(der).map(Self::P256),
            Algorithm::EcdsaP384Sha384 => p384::ecdsa::Signature::from_der(der).map(Self::P384),
            Algorithm::EcdsaP521Sha512 => p521::ecdsa::Signature::from_der(der).map(Self::P521),
        };
        parsed.map_err(|_| {
            malformed(
                algorithm,
                "DER",
                format!("{} bytes do not decode", der.len()),
            )
        })
    }

    /// Decodes fixed-width big-endian `r || s` (Azure Key Vault, JOSE), which must be
    /// exactly twice [`Algorithm::field_len`] long.
    ///
    /// # Errors
    /// [`ErrorKind::BadSignature`] for a wrong length or out-of-range `r`/`s`.
    pub fn from_fixed(algorithm: Algorithm, bytes: &[u8]) -> Result<Self> {
        let expected = 2 * algorithm.field_len();
        if bytes.len() != expected {
            return Err(malformed(
                algorithm,
                "r||s",
                format!("expected {expected} bytes, got {}", bytes.len()),
            ));
        }
        let parsed = match algorithm {
            Algorithm::EcdsaP256Sha256 => p256::ecdsa::Signature::from_slice(bytes).map(Self::P256),
            Algorithm::EcdsaP384Sha384 => p384::ecdsa::Signature::from_slice(bytes).map(Self::P384),
            Algorithm::EcdsaP521Sha512 => p521::ecdsa::Signature::from_slice(bytes).map(Self::P521),
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
