//! The signing mechanisms the token offers, and how each turns the caller's bytes into
//! what a [`KmsKey`](kmssh_core::KmsKey) signs.
//!
//! | mechanism | input | what the key signs |
//! |---|---|---|
//! | `CKM_ECDSA` | a digest, 1 to 64 bytes | the digest fitted to the curve's hash length (below) |
//! | `CKM_ECDSA_SHA256/384/512` | the message, single or multi-part | its hash, fitted likewise |
//! | `CKM_RSA_PKCS` | a DER `DigestInfo` of SHA-256/384/512 | that digest, PKCS#1 v1.5 with that hash |
//! | `CKM_SHA256/384/512_RSA_PKCS` | the message | its hash |
//! | `CKM_EDDSA` | the message (no prehash, no context) | the message |
//!
//! ECDSA uses the leftmost bits of the digest, as many as the curve order has (X9.62):
//! for P-256 and P-384 whole bytes, so a longer digest is cut to 32 or 48 bytes and a
//! shorter one is the same number as itself padded on the left with zeros. Fitting the
//! digest to the length the key's algorithm takes (32, 48, 64 bytes) therefore gives the
//! very signature X9.62 defines for the caller's digest, which the key (a KMS that signs
//! digests of one hash) can make. OpenSSH always sends the curve's own hash.

use cryptoki_sys::{
    CK_FLAGS, CK_KEY_TYPE, CK_MECHANISM_INFO, CK_MECHANISM_TYPE, CK_RV, CKF_EC_F_P,
    CKF_EC_NAMEDCURVE, CKF_EC_UNCOMPRESS, CKF_HW, CKF_SIGN, CKK_EC, CKK_EC_EDWARDS, CKK_RSA,
    CKM_ECDSA, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512, CKM_EDDSA, CKM_RSA_PKCS,
    CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS, CKR_DATA_INVALID,
    CKR_DATA_LEN_RANGE, CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_TYPE_INCONSISTENT,
};
use kmssh_core::rsa::traits::PublicKeyParts as _;
use kmssh_core::{Algorithm, HashAlgorithm, KeyFamily, MAX_RSA_BITS, MIN_RSA_BITS, PublicKey};
use sha2::Digest as _;

/// The longest message `CKM_EDDSA` collects (the CLI's limit for Ed25519 messages).
pub const MAX_EDDSA_MESSAGE: usize = 64 * 1024 * 1024;

/// The longest digest `CKM_ECDSA` takes: SHA-512's.
pub const MAX_ECDSA_DIGEST: usize = 64;

/// Why a signing request is refused: the return value and a reason for stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The PKCS#11 return value.
    pub rv: CK_RV,
    /// Why, for the one stderr line.
    pub reason: String,
}

impl Refusal {
    /// A refusal with `rv` and `reason`.
    pub fn new(rv: CK_RV, reason: impl Into<String>) -> Self {
        Self {
            rv,
            reason: reason.into(),
        }
    }
}

/// A mechanism the token signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// `CKM_ECDSA`: a digest in, `r‖s` out.
    Ecdsa,
    /// `CKM_ECDSA_SHA256`.
    EcdsaSha256,
    /// `CKM_ECDSA_SHA384`.
    EcdsaSha384,
    /// `CKM_ECDSA_SHA512`.
    EcdsaSha512,
    /// `CKM_RSA_PKCS`: a `DigestInfo` in.
    RsaPkcs,
    /// `CKM_SHA256_RSA_PKCS`.
    Sha256RsaPkcs,
    /// `CKM_SHA384_RSA_PKCS`.
    Sha384RsaPkcs,
    /// `CKM_SHA512_RSA_PKCS`.
    Sha512RsaPkcs,
    /// `CKM_EDDSA` (Ed25519, pure).
    Eddsa,
}

impl Mechanism {
    /// Every mechanism, in `C_GetMechanismList` order.
    pub const ALL: [Mechanism; 9] = [
        Self::Ecdsa,
        Self::EcdsaSha256,
        Self::EcdsaSha384,
        Self::EcdsaSha512,
        Self::RsaPkcs,
        Self::Sha256RsaPkcs,
        Self::Sha384RsaPkcs,
        Self::Sha512RsaPkcs,
        Self::Eddsa,
    ];

    /// The mechanism for a `CKM_*` value, if the token has it.
    #[must_use]
    pub fn from_type(mechanism: CK_MECHANISM_TYPE) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.ck_type() == mechanism)
    }

    /// Its `CKM_*` value.
    #[must_use]
    pub fn ck_type(self) -> CK_MECHANISM_TYPE {
        match self {
            Self::Ecdsa => CKM_ECDSA,
            Self::EcdsaSha256 => CKM_ECDSA_SHA256,
            Self::EcdsaSha384 => CKM_ECDSA_SHA384,
            Self::EcdsaSha512 => CKM_ECDSA_SHA512,
            Self::RsaPkcs => CKM_RSA_PKCS,
            Self::Sha256RsaPkcs => CKM_SHA256_RSA_PKCS,
            Self::Sha384RsaPkcs => CKM_SHA384_RSA_PKCS,
            Self::Sha512RsaPkcs => CKM_SHA512_RSA_PKCS,
            Self::Eddsa => CKM_EDDSA,
        }
    }

    /// A name for messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ecdsa => "CKM_ECDSA",
            Self::EcdsaSha256 => "CKM_ECDSA_SHA256",
            Self::EcdsaSha384 => "CKM_ECDSA_SHA384",
            Self::EcdsaSha512 => "CKM_ECDSA_SHA512",
            Self::RsaPkcs => "CKM_RSA_PKCS",
            Self::Sha256RsaPkcs => "CKM_SHA256_RSA_PKCS",
            Self::Sha384RsaPkcs => "CKM_SHA384_RSA_PKCS",
            Self::Sha512RsaPkcs => "CKM_SHA512_RSA_PKCS",
            Self::Eddsa => "CKM_EDDSA",
        }
    }

    /// The key family it signs with.
    #[must_use]
    pub fn family(self) -> KeyFamily {
        match self {
            Self::Ecdsa | Self::EcdsaSha256 | Self::EcdsaSha384 | Self::EcdsaSha512 => {
                KeyFamily::Ecdsa
            }
            Self::RsaPkcs | Self::Sha256RsaPkcs | Self::Sha384RsaPkcs | Self::Sha512RsaPkcs => {
                KeyFamily::Rsa
            }
            Self::Eddsa => KeyFamily::Ed25519,
        }
    }

    /// The `CKK_*` of the keys it works with.
    #[must_use]
    pub fn key_type(self) -> CK_KEY_TYPE {
        key_type(self.family())
    }

    /// The hash a hash-and-sign mechanism computes here; `None` when the caller's bytes
    /// are signed as given.
    #[must_use]
    pub fn hash(self) -> Option<HashAlgorithm> {
        match self {
            Self::EcdsaSha256 | Self::Sha256RsaPkcs => Some(HashAlgorithm::Sha256),
            Self::EcdsaSha384 | Self::Sha384RsaPkcs => Some(HashAlgorithm::Sha384),
            Self::EcdsaSha512 | Self::Sha512RsaPkcs => Some(HashAlgorithm::Sha512),
            Self::Ecdsa | Self::RsaPkcs | Self::Eddsa => None,
        }
    }

    /// `C_GetMechanismInfo`: key sizes in bits (RSA modulus, EC field), and the flags.
    #[must_use]
    pub fn info(self) -> CK_MECHANISM_INFO {
        // CKF_HW: the signature is made by the device, here the KMS (or key file) behind
        // the token; clients such as pkcs11-tool look for it.
        let sign: CK_FLAGS = CKF_HW | CKF_SIGN;
        let ec = sign | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
        let (min, max, flags) = match self.family() {
            KeyFamily::Ecdsa => (256, 521, ec),
            KeyFamily::Rsa => (MIN_RSA_BITS, MAX_RSA_BITS, sign),
            KeyFamily::Ed25519 => (255, 255, sign),
        };
        CK_MECHANISM_INFO {
            ulMinKeySize: to_ulong(min),
            ulMaxKeySize: to_ulong(max),
            flags,
        }
    }

    /// Whether `key` (whose provider signs `algorithms`) can sign with this mechanism.
    ///
    /// # Errors
    /// `CKR_KEY_TYPE_INCONSISTENT` for another key type, `CKR_KEY_FUNCTION_NOT_PERMITTED`
    /// for an RSA hash the provider does not allow for this key (a Cloud KMS key bound to
    /// one hash).
    pub fn check_key(self, key: &PublicKey, algorithms: &[Algorithm]) -> Result<(), Refusal> {
        if key.family() != self.family() {
            return Err(Refusal::new(
                CKR_KEY_TYPE_INCONSISTENT,
                format!(
                    "{} does not sign with this {} key",
                    self.name(),
                    key.description()
                ),
            ));
        }
        if let (KeyFamily::Rsa, Some(hash)) = (self.family(), self.hash()) {
            let algorithm = rsa_algorithm(hash);
            if !algorithms.contains(&algorithm) {
                return Err(Refusal::new(
                    CKR_KEY_FUNCTION_NOT_PERMITTED,
                    format!("the provider does not let this key sign {algorithm}"),
                ));
            }
        }
        Ok(())
    }

    /// The longest input a raw (not hash-and-sign) mechanism collects for `key`.
    fn max_input(self, key: &PublicKey) -> usize {
        match (self, key) {
            (Self::Ecdsa, _) => MAX_ECDSA_DIGEST,
            // PKCS#1 v1.5 needs 11 bytes of padding in the modulus (RFC 8017 §9.2).
            (Self::RsaPkcs, PublicKey::Rsa(k)) => k.size().saturating_sub(11),
            _ => MAX_EDDSA_MESSAGE,
        }
    }

    /// The signature length for `key`: `2 × field` (ECDSA `r‖s`), the modulus length (RSA),
    /// 64 (Ed25519).
    #[must_use]
    pub fn signature_len(key: &PublicKey) -> usize {
        match key {
            PublicKey::Ecdsa(k) => 2 * k.curve().field_len(),
            PublicKey::Rsa(k) => k.size(),
            PublicKey::Ed25519(_) => 64,
        }
    }
}

/// The `CKK_*` of a key family.
#[must_use]
pub fn key_type(family: KeyFamily) -> CK_KEY_TYPE {
    match family {
        KeyFamily::Ecdsa => CKK_EC,
        KeyFamily::Rsa => CKK_RSA,
        KeyFamily::Ed25519 => CKK_EC_EDWARDS,
    }
}

/// The mechanisms a key can sign with (its `CKA_ALLOWED_MECHANISMS`).
#[must_use]
pub fn mechanisms_for(key: &PublicKey, algorithms: &[Algorithm]) -> Vec<Mechanism> {
    Mechanism::ALL
        .into_iter()
        .filter(|m| m.check_key(key, algorithms).is_ok())
        .collect()
}

fn rsa_algorithm(hash: HashAlgorithm) -> Algorithm {
    match hash {
        HashAlgorithm::Sha256 => Algorithm::RsaPkcs1Sha256,
        HashAlgorithm::Sha384 => Algorithm::RsaPkcs1Sha384,
        HashAlgorithm::Sha512 => Algorithm::RsaPkcs1Sha512,
    }
}

fn to_ulong(value: usize) -> cryptoki_sys::CK_ULONG {
    cryptoki_sys::CK_ULONG::try_from(value).unwrap_or(cryptoki_sys::CK_ULONG::MAX)
}

/// The DER prefixes of a PKCS#1 v1.5 `DigestInfo` (RFC 8017 §9.2 note 1), before the digest.
const DIGEST_INFO_PREFIXES: [(HashAlgorithm, &[u8]); 3] = [
    (
        HashAlgorithm::Sha256,
        &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
    ),
    (
        HashAlgorithm::Sha384,
        &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
    ),
    (
        HashAlgorithm::Sha512,
        &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    ),
];

/// The SHA-1 `DigestInfo` prefix, recognised only to name it in the refusal.
const SHA1_DIGEST_INFO_PREFIX: &[u8] = &[
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];

/// Splits a `DigestInfo` into its hash and digest.
///
/// # Errors
/// `CKR_DATA_INVALID` for anything but a SHA-256/384/512 `DigestInfo`: a KMS signs digests
/// of those hashes, never raw PKCS#1 blocks.
pub fn parse_digest_info(data: &[u8]) -> Result<(HashAlgorithm, &[u8]), Refusal> {
    for (hash, prefix) in DIGEST_INFO_PREFIXES {
        if let Some(digest) = data.strip_prefix(prefix)
            && digest.len() == hash.len()
        {
            return Ok((hash, digest));
        }
    }
    let what = if data.starts_with(SHA1_DIGEST_INFO_PREFIX) {
        "a SHA-1 DigestInfo (SHA-1 signatures are not made)".to_owned()
    } else {
        format!("{} bytes that are not a DigestInfo", data.len())
    };
    Err(Refusal::new(
        CKR_DATA_INVALID,
        format!("CKM_RSA_PKCS signs a DER DigestInfo of SHA-256, SHA-384 or SHA-512; got {what}"),
    ))
}

/// Fits an ECDSA digest to the length `algorithm` takes (see the module docs).
fn fit_ecdsa_digest(algorithm: Algorithm, digest: &[u8]) -> Vec<u8> {
    let len = algorithm.hash().map_or(digest.len(), HashAlgorithm::len);
    if digest.len() >= len {
        digest[..len].to_vec()
    } else {
        let mut padded = vec![0; len - digest.len()];
        padded.extend_from_slice(digest);
        padded
    }
}

/// A streaming hash for the hash-and-sign mechanisms.
#[derive(Clone, Debug)]
enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(hash: HashAlgorithm) -> Self {
        match hash {
            HashAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha384 => Self::Sha384(sha2::Sha384::new()),
            HashAlgorithm::Sha512 => Self::Sha512(sha2::Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha384(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// What the caller has given so far.
#[derive(Clone, Debug)]
enum Input {
    Hashing(Hasher),
    Collecting(Vec<u8>),
}

/// The input of one signing operation, single or multi-part, up to the bytes a key signs.
#[derive(Clone, Debug)]
pub struct SignInput {
    mechanism: Mechanism,
    input: Input,
    max_input: usize,
}

/// What to ask the key for once the input is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignRequest {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The digest (ECDSA, RSA) or the message (Ed25519).
    pub payload: Vec<u8>,
}

impl SignInput {
    /// A new operation with `mechanism` on `key` (checked with [`Mechanism::check_key`]).
    #[must_use]
    pub fn new(mechanism: Mechanism, key: &PublicKey, max_message_len: Option<usize>) -> Self {
        let input = match mechanism.hash() {
            Some(hash) => Input::Hashing(Hasher::new(hash)),
            None => Input::Collecting(Vec::new()),
        };
        let mut max_input = mechanism.max_input(key);
        if let (Mechanism::Eddsa, Some(limit)) = (mechanism, max_message_len) {
            max_input = max_input.min(limit);
        }
        Self {
            mechanism,
            input,
            max_input,
        }
    }

    /// The mechanism.
    #[must_use]
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Adds a part.
    ///
    /// # Errors
    /// `CKR_DATA_LEN_RANGE` when a raw mechanism's input grows past what it signs.
    pub fn update(&mut self, data: &[u8]) -> Result<(), Refusal> {
        match &mut self.input {
            Input::Hashing(hasher) => hasher.update(data),
            Input::Collecting(buffer) => {
                if buffer.len().saturating_add(data.len()) > self.max_input {
                    return Err(Refusal::new(
                        CKR_DATA_LEN_RANGE,
                        format!(
                            "{} takes at most {} bytes of input for this key; got {}",
                            self.mechanism.name(),
                            self.max_input,
                            buffer.len().saturating_add(data.len())
                        ),
                    ));
                }
                buffer.extend_from_slice(data);
            }
        }
        Ok(())
    }

    /// The request for `key`, whose provider signs `algorithms`.
    ///
    /// # Errors
    /// `CKR_DATA_LEN_RANGE` for an empty ECDSA digest, `CKR_DATA_INVALID` for input that
    /// is not a supported `DigestInfo` (`CKM_RSA_PKCS`),
    /// `CKR_KEY_FUNCTION_NOT_PERMITTED` for a hash the provider does not allow.
    pub fn finish(self, key: &PublicKey, algorithms: &[Algorithm]) -> Result<SignRequest, Refusal> {
        let bytes = match self.input {
            Input::Hashing(hasher) => hasher.finish(),
            Input::Collecting(buffer) => buffer,
        };
        match (self.mechanism.family(), key) {
            (KeyFamily::Ecdsa, PublicKey::Ecdsa(k)) => {
                if bytes.is_empty() {
                    return Err(Refusal::new(CKR_DATA_LEN_RANGE, "CKM_ECDSA: empty digest"));
                }
                let algorithm = k.algorithm();
                Ok(SignRequest {
                    algorithm,
                    payload: fit_ecdsa_digest(algorithm, &bytes),
                })
            }
            (KeyFamily::Rsa, PublicKey::Rsa(_)) => {
                let (hash, digest) = match self.mechanism.hash() {
                    Some(hash) => (hash, bytes.as_slice()),
                    None => parse_digest_info(&bytes)?,
                };
                let algorithm = rsa_algorithm(hash);
                if !algorithms.contains(&algorithm) {
                    return Err(Refusal::new(
                        CKR_KEY_FUNCTION_NOT_PERMITTED,
                        format!("the provider does not let this key sign {algorithm}"),
                    ));
                }
                Ok(SignRequest {
                    algorithm,
                    payload: digest.to_vec(),
                })
            }
            (KeyFamily::Ed25519, PublicKey::Ed25519(_)) => Ok(SignRequest {
                algorithm: Algorithm::Ed25519,
                payload: bytes,
            }),
            _ => Err(Refusal::new(
                CKR_KEY_TYPE_INCONSISTENT,
                format!(
                    "{} does not sign with this {} key",
                    self.mechanism.name(),
                    key.description()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every DigestInfo prefix is what the `rsa` crate uses for the same hash.
    #[test]
    fn digest_info_prefixes_and_refusals() {
        let digest = [7u8; 48];
        let mut info = DIGEST_INFO_PREFIXES[1].1.to_vec();
        info.extend_from_slice(&digest);
        assert_eq!(
            parse_digest_info(&info),
            Ok((HashAlgorithm::Sha384, &digest[..]))
        );
        // A right prefix with a short digest, SHA-1, raw data.
        let refused = |data: &[u8]| parse_digest_info(data).expect_err("refused");
        assert_eq!(refused(&info[..info.len() - 1]).rv, CKR_DATA_INVALID);
        let mut sha1 = SHA1_DIGEST_INFO_PREFIX.to_vec();
        sha1.extend_from_slice(&[0; 20]);
        assert!(refused(&sha1).reason.contains("SHA-1"));
        assert!(refused(b"hello").reason.contains("5 bytes"));
    }

    /// Digests are cut or left-padded to the key's hash length.
    #[test]
    fn ecdsa_digests_fit_the_curve() {
        let long: Vec<u8> = (1..=64).collect();
        assert_eq!(
            fit_ecdsa_digest(Algorithm::EcdsaP256Sha256, &long),
            long[..32]
        );
        assert_eq!(
            fit_ecdsa_digest(Algorithm::EcdsaP384Sha384, &long),
            long[..48]
        );
        let short = fit_ecdsa_digest(Algorithm::EcdsaP521Sha512, &long[..20]);
        assert_eq!(short.len(), 64);
        assert_eq!(&short[..44], &[0; 44]);
        assert_eq!(&short[44..], &long[..20]);
    }

    /// Mechanism values round-trip.
    #[test]
    fn mechanism_types_round_trip() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_type(m.ck_type()), Some(m));
        }
        assert_eq!(Mechanism::from_type(cryptoki_sys::CKM_SHA1_RSA_PKCS), None);
    }
}
