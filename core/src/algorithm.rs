//! The signing algorithms kmssh supports: ECDSA on the NIST curves, each with the hash
//! OpenSSH pairs it with (RFC 5656 §6.2.1).

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;
use spki::ObjectIdentifier;

use crate::{Error, ErrorKind, Result};

/// ECDSA curve and hash, as OpenSSH pairs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// NIST P-256 with SHA-256 (`ecdsa-sha2-nistp256`).
    EcdsaP256Sha256,
    /// NIST P-384 with SHA-384 (`ecdsa-sha2-nistp384`).
    EcdsaP384Sha384,
    /// NIST P-521 with SHA-512 (`ecdsa-sha2-nistp521`).
    EcdsaP521Sha512,
}

impl Algorithm {
    /// Every supported algorithm, smallest curve first.
    pub const ALL: [Algorithm; 3] = [
        Self::EcdsaP256Sha256,
        Self::EcdsaP384Sha384,
        Self::EcdsaP521Sha512,
    ];

    /// The curve's NIST name: `P-256`, `P-384`, `P-521`.
    #[must_use]
    pub fn curve_name(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "P-256",
            Self::EcdsaP384Sha384 => "P-384",
            Self::EcdsaP521Sha512 => "P-521",
        }
    }

    /// The curve identifier inside OpenSSH key blobs: `nistp256`, `nistp384`, `nistp521`.
    #[must_use]
    pub fn ssh_curve(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "nistp256",
            Self::EcdsaP384Sha384 => "nistp384",
            Self::EcdsaP521Sha512 => "nistp521",
        }
    }

    /// The OpenSSH key and signature algorithm name, e.g. `ecdsa-sha2-nistp256`.
    #[must_use]
    pub fn ssh_name(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "ecdsa-sha2-nistp256",
            Self::EcdsaP384Sha384 => "ecdsa-sha2-nistp384",
            Self::EcdsaP521Sha512 => "ecdsa-sha2-nistp521",
        }
    }

    /// The hash's name as `openssl dgst` spells it: `sha256`, `sha384`, `sha512`.
    #[must_use]
    pub fn hash_name(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "sha256",
            Self::EcdsaP384Sha384 => "sha384",
            Self::EcdsaP521Sha512 => "sha512",
        }
    }

    /// Length in bytes of the digest this algorithm signs.
    #[must_use]
    pub fn digest_len(self) -> usize {
        match self {
            Self::EcdsaP256Sha256 => 32,
            Self::EcdsaP384Sha384 => 48,
            Self::EcdsaP521Sha512 => 64,
        }
    }

    /// Length in bytes of one field element (and of `r` or `s` in fixed-width form).
    #[must_use]
    pub fn field_len(self) -> usize {
        match self {
            Self::EcdsaP256Sha256 => 32,
            Self::EcdsaP384Sha384 => 48,
            Self::EcdsaP521Sha512 => 66,
        }
    }

    /// The curve's named-curve OID (RFC 5480), as SEC1, PKCS#8 and SPKI carry it.
    #[must_use]
    pub fn curve_oid(self) -> ObjectIdentifier {
        match self {
            Self::EcdsaP256Sha256 => ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"),
            Self::EcdsaP384Sha384 => ObjectIdentifier::new_unwrap("1.3.132.0.34"),
            Self::EcdsaP521Sha512 => ObjectIdentifier::new_unwrap("1.3.132.0.35"),
        }
    }

    /// The algorithm for a named-curve OID.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedAlgorithm`] naming any other curve (secp256k1 included).
    pub fn from_curve_oid(oid: &ObjectIdentifier) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.curve_oid() == *oid)
            .ok_or_else(|| {
                let name = match oid.to_string().as_str() {
                    "1.3.132.0.10" => " (secp256k1)",
                    "1.3.36.3.3.2.8.1.1.7" => " (brainpoolP256r1)",
                    _ => "",
                };
                Error::new(
                    ErrorKind::UnsupportedAlgorithm,
                    format!("EC curve {oid}{name} is not supported: use P-256, P-384 or P-521"),
                )
            })
    }

    /// Hashes `message` with this algorithm's hash.
    #[must_use]
    pub fn digest(self, message: &[u8]) -> MessageDigest {
        let mut bytes = [0u8; 64];
        match self {
            Self::EcdsaP256Sha256 => bytes[..32].copy_from_slice(&sha2::Sha256::digest(message)),
            Self::EcdsaP384Sha384 => bytes[..48].copy_from_slice(&sha2::Sha384::digest(message)),
            Self::EcdsaP521Sha512 => bytes.copy_from_slice(&sha2::Sha512::digest(message)),
        }
        MessageDigest {
            bytes,
            len: self.digest_len(),
        }
    }

    /// Refuses a digest whose length is not [`Algorithm::digest_len`].
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming both lengths.
    pub fn check_digest(self, digest: &[u8]) -> Result<()> {
        if digest.len() == self.digest_len() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} signs a {}-byte {} digest, got {} bytes",
                    self,
                    self.digest_len(),
                    self.hash_name(),
                    digest.len()
                ),
            )
            .with_context("field", "digest"))
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ECDSA {}", self.curve_name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Accepts the usual spellings of each curve: `p256`, `P-256`, `nistp256`,
    /// `secp256r1`, `prime256v1`, `ecdsa-sha2-nistp256` (and the same for 384 and 521).
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        let name = lower.strip_prefix("ecdsa-sha2-").unwrap_or(&lower);
        match name {
            "p256" | "p-256" | "nistp256" | "secp256r1" | "prime256v1" => Ok(Self::EcdsaP256Sha256),
            "p384" | "p-384" | "nistp384" | "secp384r1" => Ok(Self::EcdsaP384Sha384),
            "p521" | "p-521" | "nistp521" | "secp521r1" => Ok(Self::EcdsaP521Sha512),
            _ => Err(Error::new(
                ErrorKind::UnsupportedAlgorithm,
                format!("curve `{s}` is not supported: use p256, p384 or p521"),
            )),
        }
    }
}

/// A digest computed by [`Algorithm::digest`]; dereferences to its bytes.
#[derive(Clone, Copy)]
pub struct MessageDigest {
    bytes: [u8; 64],
    len: usize,
}

impl AsRef<[u8]> for MessageDigest {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::ops::Deref for MessageDigest {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_ref()
    }
}

impl fmt::Debug for MessageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageDigest(")?;
        for b in self.as_ref() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_to_the_same_algorithm() {
        for (names, alg) in [
            (
                &[
                    "p256",
                    "P-256",
                    "nistp256",
                    "secp256r1",
                    "prime256v1",
                    "ecdsa-sha2-nistp256",
                ][..],
                Algorithm::EcdsaP256Sha256,
            ),
            (
                &["p384", "P-384", "secp384r1"][..],
                Algorithm::EcdsaP384Sha384,
            ),
            (
                &["p521", "NISTP521", "secp521r1"][..],
                Algorithm::EcdsaP521Sha512,
            ),
        ] {
            for name in names {
                assert_eq!(name.parse::<Algorithm>().ok(), Some(alg), "{name}");
            }
        }
        let err = "secp256k1".parse::<Algorithm>().err().map(|e| e.kind());
        assert_eq!(err, Some(ErrorKind::UnsupportedAlgorithm));
    }

    #[test]
    fn digest_lengths_match_the_hash() {
        for alg in Algorithm::ALL {
            let d = alg.digest(b"abc");
            assert_eq!(d.len(), alg.digest_len());
            assert!(alg.check_digest(&d).is_ok());
            assert!(alg.check_digest(&d[1..]).is_err());
        }
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(
            format!("{:?}", Algorithm::EcdsaP256Sha256.digest(b"abc")),
            "MessageDigest(ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad)"
        );
    }
}
