//! A NIST-curve ECDSA public key, typed by curve, as fetched once from a KMS.

use signature::hazmat::PrehashVerifier;
use spki::{EncodePublicKey, ObjectIdentifier, SubjectPublicKeyInfoRef};

use crate::{Algorithm, EcdsaSignature, Error, ErrorKind, Result};

/// `id-ecPublicKey` (RFC 5480).
pub(crate) const ID_EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// An ECDSA verifying key on P-256, P-384 or P-521.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EcPublicKey {
    /// A P-256 key.
    P256(p256::ecdsa::VerifyingKey),
    /// A P-384 key.
    P384(p384::ecdsa::VerifyingKey),
    /// A P-521 key.
    P521(p521::ecdsa::VerifyingKey),
}

impl EcPublicKey {
    /// The algorithm this key signs with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::P256(_) => Algorithm::EcdsaP256Sha256,
            Self::P384(_) => Algorithm::EcdsaP384Sha384,
            Self::P521(_) => Algorithm::EcdsaP521Sha512,
        }
    }

    /// Parses a SEC1 point (uncompressed or compressed) on the given curve.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidKey`] when the bytes are not a point on that curve.
    pub fn from_sec1_bytes(algorithm: Algorithm, bytes: &[u8]) -> Result<Self> {
        let parsed = match algorithm {
            Algorithm::EcdsaP256Sha256 => {
                p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map(Self::P256)
            }
            Algorithm::EcdsaP384Sha384 => {
                p384::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map(Self::P384)
            }
            Algorithm::EcdsaP521Sha512 => {
                p521::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map(Self::P521)
            }
        };
        parsed.map_err(|e| {
            Error::new(
                ErrorKind::InvalidKey,
                format!(
                    "{} bytes are not a {} public key point",
                    bytes.len(),
                    algorithm.curve_name()
                ),
            )
            .with_source(e.to_string())
        })
    }

    /// Parses a DER `SubjectPublicKeyInfo` (what AWS `GetPublicKey` returns).
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedAlgorithm`] for a non-EC key or another curve (naming its
    /// OID), [`ErrorKind::InvalidKey`] for malformed DER.
    pub fn from_public_key_der(der: &[u8]) -> Result<Self> {
        let info = SubjectPublicKeyInfoRef::try_from(der).map_err(|e| {
            Error::new(
                ErrorKind::InvalidKey,
                "public key is not a DER SubjectPublicKeyInfo",
            )
            .with_source(e.to_string())
        })?;
        if info.algorithm.oid != ID_EC_PUBLIC_KEY {
            return Err(Error::new(
                ErrorKind::UnsupportedAlgorithm,
                format!(
                    "public key algorithm {} is not EC (id-ecPublicKey); kmssh signs with ECDSA P-256, P-384 or P-521",
                    info.algorithm.oid
                ),
            ));
        }
        let curve = info.algorithm.parameters_oid().map_err(|e| {
            Error::new(
                ErrorKind::InvalidKey,
                "EC public key has no named-curve parameter",
            )
            .with_source(e.to_string())
        })?;
        let algorithm = Algorithm::from_curve_oid(&curve)?;
        let bytes = info.subject_public_key.as_bytes().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidKey,
                "EC public key bit string has unused bits",
            )
        })?;
        Self::from_sec1_bytes(algorithm, bytes)
    }

    /// Parses a PEM `PUBLIC KEY` block (what Cloud KMS `getPublicKey` returns).
    ///
    /// # Errors
    /// As [`EcPublicKey::from_public_key_der`], or [`ErrorKind::InvalidKey`] for bad PEM.
    pub fn from_public_key_pem(pem: &str) -> Result<Self> {
        let (label, doc) = spki::Document::from_pem(pem).map_err(|e| {
            Error::new(ErrorKind::InvalidKey, "public key is not PEM").with_source(e.to_string())
        })?;
        if label != "PUBLIC KEY" {
            return Err(Error::new(
                ErrorKind::InvalidKey,
                format!("expected a PEM `PUBLIC KEY` block, found `{label}`"),
            ));
        }
        Self::from_public_key_der(doc.as_bytes())
    }

    /// The uncompressed SEC1 point (`04 || x || y`), as OpenSSH key blobs carry it.
    #[must_use]
    pub fn to_sec1_bytes(&self) -> Vec<u8> {
        match self {
            Self::P256(k) => k.to_sec1_bytes().to_vec(),
            Self::P384(k) => k.to_sec1_bytes().to_vec(),
            Self::P521(k) => k.to_sec1_bytes().to_vec(),
        }
    }

    /// The SubjectPublicKeyInfo as PEM, the form `openssl dgst -verify` reads.
    ///
    /// # Errors
    /// [`ErrorKind::Unexpected`] if encoding fails (it does not for valid keys).
    pub fn to_pem(&self) -> Result<String> {
        self.to_public_key_pem(spki::der::pem::LineEnding::LF)
            .map_err(|e| {
                Error::new(ErrorKind::Unexpected, "cannot PEM-encode public key")
                    .with_source(e.to_string())
            })
    }

    /// Checks an ECDSA signature over a prehashed digest. High-`s` signatures are accepted,
    /// as OpenSSH and every KMS produce them.
    ///
    /// # Errors
    /// [`ErrorKind::BadSignature`] when the signature is for another curve or does not verify.
    pub fn verify_digest(&self, digest: &[u8], signature: &EcdsaSignature) -> Result<()> {
        let verified = match (self, signature) {
            (Self::P256(k), EcdsaSignature::P256(s)) => k.verify_prehash(digest, s),
            (Self::P384(k), EcdsaSignature::P384(s)) => k.verify_prehash(digest, s),
            (Self::P521(k), EcdsaSignature::P521(s)) => k.verify_prehash(digest, s),
            _ => {
                return Err(Error::new(
                    ErrorKind::BadSignature,
                    format!(
                        "{} signature cannot come from a {} key",
                        signature.algorithm(),
                        self.algorithm()
                    ),
                ));
            }
        };
        verified.map_err(|_| {
            Error::new(
                ErrorKind::BadSignature,
                format!(
                    "{} signature does not verify against the public key",
                    self.algorithm()
                ),
            )
        })
    }
}

impl EncodePublicKey for EcPublicKey {
    fn to_public_key_der(&self) -> spki::Result<spki::Document> {
        match self {
            Self::P256(k) => k.to_public_key_der(),
            Self::P384(k) => k.to_public_key_der(),
            Self::P521(k) => k.to_public_key_der(),
        }
    }
}

impl From<p256::ecdsa::VerifyingKey> for EcPublicKey {
    fn from(key: p256::ecdsa::VerifyingKey) -> Self {
        Self::P256(key)
    }
}

impl From<p384::ecdsa::VerifyingKey> for EcPublicKey {
    fn from(key: p384::ecdsa::VerifyingKey) -> Self {
        Self::P384(key)
    }
}

impl From<p521::ecdsa::VerifyingKey> for EcPublicKey {
    fn from(key: p521::ecdsa::VerifyingKey) -> Self {
        Self::P521(key)
    }
}
