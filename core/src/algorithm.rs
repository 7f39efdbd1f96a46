//! The signing algorithms kmssh supports: ECDSA on the NIST curves (each with the hash
//! OpenSSH pairs it with, RFC 5656 §6.2.1), RSA PKCS#1 v1.5 with SHA-2 (RFC 8332) and
//! Ed25519 (RFC 8709).

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;
use spki::ObjectIdentifier;

use crate::{Error, ErrorKind, Result};

/// The three key families kmssh signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyFamily {
    /// ECDSA on P-256, P-384 or P-521.
    Ecdsa,
    /// RSA, signing PKCS#1 v1.5.
    Rsa,
    /// Ed25519.
    Ed25519,
}

impl KeyFamily {
    /// The family's name as `--type` spells it: `ecdsa`, `rsa`, `ed25519`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ecdsa => "ecdsa",
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyFamily {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsa" | "ec" => Ok(Self::Ecdsa),
            "rsa" => Ok(Self::Rsa),
            "ed25519" => Ok(Self::Ed25519),
            _ => Err(Error::new(
                ErrorKind::UnsupportedAlgorithm,
                format!("key type `{s}` is not supported: use ecdsa, rsa or ed25519"),
            )),
        }
    }
}

/// A NIST curve ECDSA keys live on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Curve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
    /// NIST P-521 (secp521r1).
    P521,
}

impl Curve {
    /// Every curve, smallest first.
    pub const ALL: [Curve; 3] = [Self::P256, Self::P384, Self::P521];

    /// The curve's NIST name: `P-256`, `P-384`, `P-521`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    /// The curve identifier inside OpenSSH key blobs: `nistp256`, `nistp384`, `nistp521`.
    #[must_use]
    pub fn ssh_name(self) -> &'static str {
        match self {
            Self::P256 => "nistp256",
            Self::P384 => "nistp384",
            Self::P521 => "nistp521",
        }
    }

    /// Length in bytes of one field element (and of `r` or `s` in fixed-width form).
    #[must_use]
    pub fn field_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    /// The ECDSA algorithm OpenSSH pairs with this curve.
    #[must_use]
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::P256 => Algorithm::EcdsaP256Sha256,
            Self::P384 => Algorithm::EcdsaP384Sha384,
            Self::P521 => Algorithm::EcdsaP521Sha512,
        }
    }

    /// The curve's named-curve OID (RFC 5480), as SEC1, PKCS#8 and SPKI carry it.
    #[must_use]
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::P256 => ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"),
            Self::P384 => ObjectIdentifier::new_unwrap("1.3.132.0.34"),
            Self::P521 => ObjectIdentifier::new_unwrap("1.3.132.0.35"),
        }
    }

    /// The curve for a named-curve OID.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedAlgorithm`] naming any other curve (secp256k1 included).
    pub fn from_oid(oid: &ObjectIdentifier) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|curve| curve.oid() == *oid)
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
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Curve {
    type Err = Error;

    /// Accepts the usual spellings: `p256`, `P-256`, `nistp256`, `secp256r1`,
    /// `prime256v1`, `ecdsa-sha2-nistp256`, `256` (and the same for 384 and 521).
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        let name = lower.strip_prefix("ecdsa-sha2-").unwrap_or(&lower);
        match name {
            "p256" | "p-256" | "nistp256" | "secp256r1" | "prime256v1" | "256" => Ok(Self::P256),
            "p384" | "p-384" | "nistp384" | "secp384r1" | "384" => Ok(Self::P384),
            "p521" | "p-521" | "nistp521" | "secp521r1" | "521" => Ok(Self::P521),
            _ => Err(Error::new(
                ErrorKind::UnsupportedAlgorithm,
                format!("curve `{s}` is not supported: use p256, p384 or p521"),
            )),
        }
    }
}

/// A SHA-2 hash a pre-hashed algorithm signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    /// The hash's name as `openssl dgst` spells it: `sha256`, `sha384`, `sha512`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    /// Length in bytes of the digest.
    #[must_use]
    #[allow(
        clippy::len_without_is_empty,
        reason = "the hash's output length; a digest is never empty"
    )]
    pub fn len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// Hashes `message`.
    #[must_use]
    pub fn digest(self, message: &[u8]) -> MessageDigest {
        let mut bytes = [0u8; 64];
        match self {
            Self::Sha256 => bytes[..32].copy_from_slice(&sha2::Sha256::digest(message)),
            Self::Sha384 => bytes[..48].copy_from_slice(&sha2::Sha384::digest(message)),
            Self::Sha512 => bytes.copy_from_slice(&sha2::Sha512::digest(message)),
        }
        MessageDigest {
            bytes,
            len: self.len(),
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sha256 => "SHA-256",
            Self::Sha384 => "SHA-384",
            Self::Sha512 => "SHA-512",
        })
    }
}

/// A signature algorithm: key family, curve and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// NIST P-256 with SHA-256 (`ecdsa-sha2-nistp256`).
    EcdsaP256Sha256,
    /// NIST P-384 with SHA-384 (`ecdsa-sha2-nistp384`).
    EcdsaP384Sha384,
    /// NIST P-521 with SHA-512 (`ecdsa-sha2-nistp521`).
    EcdsaP521Sha512,
    /// RSA PKCS#1 v1.5 with SHA-256 (`rsa-sha2-256`, sha256WithRSAEncryption, `RS256`).
    RsaPkcs1Sha256,
    /// RSA PKCS#1 v1.5 with SHA-384 (sha384WithRSAEncryption, `RS384`; no SSH name).
    RsaPkcs1Sha384,
    /// RSA PKCS#1 v1.5 with SHA-512 (`rsa-sha2-512`, sha512WithRSAEncryption, `RS512`).
    RsaPkcs1Sha512,
    /// Pure Ed25519 (`ssh-ed25519`), which signs the message itself, not a digest.
    Ed25519,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 7] = [
        Self::EcdsaP256Sha256,
        Self::EcdsaP384Sha384,
        Self::EcdsaP521Sha512,
        Self::RsaPkcs1Sha256,
        Self::RsaPkcs1Sha384,
        Self::RsaPkcs1Sha512,
        Self::Ed25519,
    ];

    /// The ECDSA algorithms, smallest curve first.
    pub const ECDSA: [Algorithm; 3] = [
        Self::EcdsaP256Sha256,
        Self::EcdsaP384Sha384,
        Self::EcdsaP521Sha512,
    ];

    /// What an RSA key can sign, in kmssh's order of preference (SHA-512 first, as
    /// `ssh-keygen -s` signs `rsa-sha2-512` by default).
    pub const RSA: [Algorithm; 3] = [
        Self::RsaPkcs1Sha512,
        Self::RsaPkcs1Sha256,
        Self::RsaPkcs1Sha384,
    ];

    /// The key family that signs with this algorithm.
    #[must_use]
    pub fn family(self) -> KeyFamily {
        match self {
            Self::EcdsaP256Sha256 | Self::EcdsaP384Sha384 | Self::EcdsaP521Sha512 => {
                KeyFamily::Ecdsa
            }
            Self::RsaPkcs1Sha256 | Self::RsaPkcs1Sha384 | Self::RsaPkcs1Sha512 => KeyFamily::Rsa,
            Self::Ed25519 => KeyFamily::Ed25519,
        }
    }

    /// The ECDSA curve, for ECDSA algorithms.
    #[must_use]
    pub fn curve(self) -> Option<Curve> {
        match self {
            Self::EcdsaP256Sha256 => Some(Curve::P256),
            Self::EcdsaP384Sha384 => Some(Curve::P384),
            Self::EcdsaP521Sha512 => Some(Curve::P521),
            _ => None,
        }
    }

    /// The hash the key signs a digest of, or `None` for Ed25519, which signs the
    /// message itself.
    #[must_use]
    pub fn hash(self) -> Option<HashAlgorithm> {
        match self {
            Self::EcdsaP256Sha256 | Self::RsaPkcs1Sha256 => Some(HashAlgorithm::Sha256),
            Self::EcdsaP384Sha384 | Self::RsaPkcs1Sha384 => Some(HashAlgorithm::Sha384),
            Self::EcdsaP521Sha512 | Self::RsaPkcs1Sha512 => Some(HashAlgorithm::Sha512),
            Self::Ed25519 => None,
        }
    }

    /// Whether the key signs a digest (computed here) rather than the message.
    #[must_use]
    pub fn is_prehashed(self) -> bool {
        self.hash().is_some()
    }

    /// The OpenSSH signature algorithm name (`ecdsa-sha2-nistp256`, `rsa-sha2-512`,
    /// `ssh-ed25519`), or `None` for RSA with SHA-384, which SSH does not define.
    #[must_use]
    pub fn ssh_name(self) -> Option<&'static str> {
        match self {
            Self::EcdsaP256Sha256 => Some("ecdsa-sha2-nistp256"),
            Self::EcdsaP384Sha384 => Some("ecdsa-sha2-nistp384"),
            Self::EcdsaP521Sha512 => Some("ecdsa-sha2-nistp521"),
            Self::RsaPkcs1Sha256 => Some("rsa-sha2-256"),
            Self::RsaPkcs1Sha512 => Some("rsa-sha2-512"),
            Self::RsaPkcs1Sha384 => None,
            Self::Ed25519 => Some("ssh-ed25519"),
        }
    }

    /// The X.509 signature algorithm OID: ecdsa-with-SHA* (RFC 5758), sha*WithRSAEncryption
    /// (RFC 8017) or id-Ed25519 (RFC 8410).
    #[must_use]
    pub fn x509_oid(self) -> ObjectIdentifier {
        match self {
            Self::EcdsaP256Sha256 => ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
            Self::EcdsaP384Sha384 => ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3"),
            Self::EcdsaP521Sha512 => ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4"),
            Self::RsaPkcs1Sha256 => ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11"),
            Self::RsaPkcs1Sha384 => ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12"),
            Self::RsaPkcs1Sha512 => ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13"),
            Self::Ed25519 => ObjectIdentifier::new_unwrap("1.3.101.112"),
        }
    }

    /// Hashes `message` with this algorithm's hash; `None` for Ed25519.
    #[must_use]
    pub fn digest(self, message: &[u8]) -> Option<MessageDigest> {
        self.hash().map(|hash| hash.digest(message))
    }

    /// Refuses a digest whose length is not this algorithm's hash length, and any digest
    /// for Ed25519 (which signs messages).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming both lengths.
    pub fn check_digest(self, digest: &[u8]) -> Result<()> {
        match self.hash() {
            Some(hash) if digest.len() == hash.len() => Ok(()),
            Some(hash) => Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} signs a {}-byte {} digest, got {} bytes",
                    self,
                    hash.len(),
                    hash.name(),
                    digest.len()
                ),
            )
            .with_context("field", "digest")),
            None => Err(Error::new(
                ErrorKind::InvalidInput,
                "Ed25519 signs the message itself, not a digest: pass the message",
            )
            .with_context("field", "digest")),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.curve(), self.hash()) {
            (Some(curve), _) => write!(f, "ECDSA {curve}"),
            (None, Some(hash)) => write!(f, "RSA PKCS#1 v1.5 {hash}"),
            (None, None) => f.write_str("Ed25519"),
        }
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Accepts the spellings of each curve (`p256`, `P-256`, `nistp256`, `secp256r1`,
    /// `prime256v1`, `ecdsa-sha2-nistp256`…), the SSH and JOSE names of RSA
    /// (`rsa-sha2-256`, `rsa-sha2-512`, `RS256`, `RS384`, `RS512`) and `ed25519` or
    /// `ssh-ed25519`. `ssh-rsa` (SHA-1) is refused by name.
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "rsa-sha2-256" | "rs256" => return Ok(Self::RsaPkcs1Sha256),
            // RFC 8332 defines no `rsa-sha2-384`: the JOSE name only.
            "rs384" => return Ok(Self::RsaPkcs1Sha384),
            "rsa-sha2-512" | "rs512" => return Ok(Self::RsaPkcs1Sha512),
            "ed25519" | "ssh-ed25519" => return Ok(Self::Ed25519),
            "ssh-rsa" | "rsa-sha1" => {
                return Err(Error::new(
                    ErrorKind::UnsupportedAlgorithm,
                    "`ssh-rsa` signs with SHA-1, which sshd's default CASignatureAlgorithms refuse: use rsa-sha2-512 or rsa-sha2-256",
                ));
            }
            _ => {}
        }
        lower.parse::<Curve>().map(Curve::algorithm).map_err(|_| {
            Error::new(
                ErrorKind::UnsupportedAlgorithm,
                format!(
                    "algorithm `{s}` is not supported: use p256, p384, p521, rsa-sha2-512, rsa-sha2-256 or ed25519"
                ),
            )
        })
    }
}

/// A kind of key to create or look for: a curve, an RSA size, or Ed25519.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeySpec {
    /// ECDSA on a curve.
    Ecdsa(Curve),
    /// RSA with a modulus of this many bits.
    Rsa(u32),
    /// Ed25519.
    Ed25519,
}

impl KeySpec {
    /// The key types every backend's tests cover: the three curves, RSA-2048/3072/4096
    /// and Ed25519.
    pub const ALL: [KeySpec; 7] = [
        Self::Ecdsa(Curve::P256),
        Self::Ecdsa(Curve::P384),
        Self::Ecdsa(Curve::P521),
        Self::Rsa(2048),
        Self::Rsa(3072),
        Self::Rsa(4096),
        Self::Ed25519,
    ];

    /// The RSA sizes cloud KMSs offer.
    pub const RSA_SIZES: [u32; 3] = [2048, 3072, 4096];

    /// The family of keys of this kind.
    #[must_use]
    pub fn family(self) -> KeyFamily {
        match self {
            Self::Ecdsa(_) => KeyFamily::Ecdsa,
            Self::Rsa(_) => KeyFamily::Rsa,
            Self::Ed25519 => KeyFamily::Ed25519,
        }
    }

    /// The algorithms such a key signs with, preferred first.
    #[must_use]
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            Self::Ecdsa(Curve::P256) => &[Algorithm::EcdsaP256Sha256],
            Self::Ecdsa(Curve::P384) => &[Algorithm::EcdsaP384Sha384],
            Self::Ecdsa(Curve::P521) => &[Algorithm::EcdsaP521Sha512],
            Self::Rsa(_) => &Algorithm::RSA,
            Self::Ed25519 => &[Algorithm::Ed25519],
        }
    }

    /// The spec from a `--type` family and its `--bits` or `--curve` (defaults: P-256,
    /// RSA-3072, as `ssh-keygen` chooses).
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedAlgorithm`] for an RSA size outside 2048..=8192 or not a
    /// multiple of 8, or a size or curve given to a family that takes none.
    pub fn new(family: KeyFamily, bits: Option<u32>, curve: Option<Curve>) -> Result<Self> {
        match (family, bits, curve) {
            (KeyFamily::Ecdsa, None, curve) => Ok(Self::Ecdsa(curve.unwrap_or(Curve::P256))),
            (KeyFamily::Ecdsa, Some(bits), None) => match bits {
                256 => Ok(Self::Ecdsa(Curve::P256)),
                384 => Ok(Self::Ecdsa(Curve::P384)),
                521 => Ok(Self::Ecdsa(Curve::P521)),
                _ => Err(Error::new(
                    ErrorKind::UnsupportedAlgorithm,
                    format!("ECDSA keys are 256, 384 or 521 bits, not {bits}"),
                )),
            },
            (KeyFamily::Rsa, bits, None) => {
                let bits = bits.unwrap_or(3072);
                if (2048..=8192).contains(&bits) && bits % 8 == 0 {
                    Ok(Self::Rsa(bits))
                } else {
                    Err(Error::new(
                        ErrorKind::UnsupportedAlgorithm,
                        format!(
                            "RSA keys of {bits} bits are not supported: use 2048 to 8192, a multiple of 8"
                        ),
                    ))
                }
            }
            (KeyFamily::Ed25519, None, None) => Ok(Self::Ed25519),
            (family, _, _) => Err(Error::new(
                ErrorKind::UnsupportedAlgorithm,
                format!("{family} keys take neither these bits nor a curve"),
            )),
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ecdsa(curve) => write!(f, "ECDSA {curve}"),
            Self::Rsa(bits) => write!(f, "RSA-{bits}"),
            Self::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// A digest computed by [`HashAlgorithm::digest`]; dereferences to its bytes.
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
            (&["rsa-sha2-256", "RS256"][..], Algorithm::RsaPkcs1Sha256),
            (&["rsa-sha2-512", "rs512"][..], Algorithm::RsaPkcs1Sha512),
            (&["ed25519", "ssh-ed25519"][..], Algorithm::Ed25519),
        ] {
            for name in names {
                assert_eq!(name.parse::<Algorithm>().ok(), Some(alg), "{name}");
            }
        }
        for refused in ["secp256k1", "ssh-rsa", "ssh-dss"] {
            let err = refused.parse::<Algorithm>().err().map(|e| e.kind());
            assert_eq!(err, Some(ErrorKind::UnsupportedAlgorithm), "{refused}");
        }
        let sha1 = "ssh-rsa".parse::<Algorithm>().err().map(|e| e.to_string());
        assert!(sha1.is_some_and(|m| m.contains("SHA-1")));
    }

    #[test]
    fn every_algorithm_has_one_ssh_name_that_parses_back() {
        for alg in Algorithm::ALL {
            if let Some(name) = alg.ssh_name() {
                assert_eq!(name.parse::<Algorithm>().ok(), Some(alg), "{name}");
            }
        }
        assert_eq!(Algorithm::RsaPkcs1Sha384.ssh_name(), None);
    }

    #[test]
    fn digest_lengths_match_the_hash() {
        for alg in Algorithm::ALL {
            match alg.digest(b"abc") {
                Some(d) => {
                    assert!(alg.check_digest(&d).is_ok());
                    assert!(alg.check_digest(&d[1..]).is_err());
                }
                None => {
                    assert_eq!(alg, Algorithm::Ed25519);
                    assert!(alg.check_digest(&[0; 64]).is_err());
                }
            }
        }
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(
            format!("{:?}", HashAlgorithm::Sha256.digest(b"abc")),
            "MessageDigest(ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad)"
        );
    }
}
