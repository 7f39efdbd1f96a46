//! The rules a public key must pass before kmssh certifies it: the checks OpenSSH applies
//! when it reads a key (`sshkey.c`: `sshkey_ec_validate_public`, the RSA modulus limits)
//! and OpenSSL applies in its public-key check (`EVP_PKEY_public_check`), plus kmssh's own
//! RSA minimum. A certificate for a key that fails them would be unusable (sshd and
//! `ssh-keygen` refuse the key) or worthless (anyone can forge a weak key's signatures).
//!
//! | key | refused |
//! |---|---|
//! | ECDSA, `sk-ecdsa-sha2-nistp256` | a point that is compressed (OpenSSH reads only uncompressed points), the point at infinity, not on its curve, with a coordinate of half the group order's bits or fewer, or not below the order minus one (OpenSSH's `sshkey_ec_validate_public`); a curve name that does not match the key type is refused when the key is read |
//! | Ed25519, `sk-ssh-ed25519` | not 32 bytes, not a point (does not decompress), not canonically encoded (RFC 8032 §5.1.3), or of small order (the all-zero key among them) |
//! | RSA | under [`MIN_RSA_BITS`] or over [`MAX_RSA_BITS`] bits (counted exactly, not rounded to bytes), an even modulus or one with an odd prime factor up to 751 (OpenSSL's check), a public exponent that is even, 1, or not below the modulus |
//! | DSA, certificates, other types | always |
//!
//! The same rules apply to X.509 subject keys (feature `x509`), read from their
//! SubjectPublicKeyInfo.

use base64ct::{Base64, Encoding as _};
use kmssh_core::Curve;
use ssh_key::encoding::Encode as _;
use ssh_key::public::{EcdsaPublicKey, KeyData};

use crate::error::{Error, Field, Result};

/// Smallest RSA subject key certified: 2048 bits (NIST SP 800-131A), counted exactly (a
/// 2041-bit modulus is refused); OpenSSH itself still accepts 1024.
pub const MIN_RSA_BITS: u32 = 2048;

/// Largest RSA subject key certified: 16384 bits, the largest modulus OpenSSH reads
/// (`SSHBUF_MAX_BIGNUM`) and OpenSSL accepts (`OPENSSL_RSA_MAX_MODULUS_BITS`).
pub const MAX_RSA_BITS: u32 = 16384;

/// Largest small prime whose multiples are refused as RSA moduli: OpenSSL's public-key
/// check refuses a modulus sharing a factor with the product of the odd primes up to it.
const LARGEST_SMALL_FACTOR: u32 = 751;

/// Why a key is refused: a key type or size kmssh does not certify, or key material that
/// is not a valid key of its type. Each caller turns it into an [`Error`] naming its field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// [`Error::UnsupportedKey`]: the rule, worded to follow "unsupported key type `x`: ".
    Unsupported(String),
    /// [`Error::InvalidField`]: the rule, worded to follow "`<key type>` key ".
    Invalid(String),
}

impl Refusal {
    /// The error for `field`, the key type named `algorithm`.
    pub(crate) fn into_error(self, field: Field, algorithm: &str) -> Error {
        match self {
            Self::Unsupported(detail) => Error::UnsupportedKey {
                field,
                algorithm: algorithm.to_owned(),
                detail: format!(": {detail}"),
            },
            Self::Invalid(reason) => Error::InvalidField {
                field,
                reason: format!("{algorithm} key {reason}"),
            },
        }
    }
}

/// Checks a subject key can be certified: every OpenSSH key type except DSA (removed
/// from OpenSSH), certificates and unknown types, and only keys that pass the rules in
/// this module's table (points on their curve, no weak Ed25519 keys, RSA from
/// [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits with a sound modulus and exponent).
///
/// # Errors
/// [`Error::UnsupportedKey`] naming [`Field::SubjectKey`] for a key type or RSA size
/// kmssh does not certify; [`Error::InvalidField`] naming it for key material that is not
/// a valid key; each with the rule that failed.
pub fn check_subject_key(subject: &KeyData) -> Result<()> {
    let refused = match subject {
        KeyData::Ecdsa(key) => {
            let curve = match key {
                EcdsaPublicKey::NistP256(_) => Curve::P256,
                EcdsaPublicKey::NistP384(_) => Curve::P384,
                EcdsaPublicKey::NistP521(_) => Curve::P521,
            };
            check_ec_point(curve, key.as_sec1_bytes())
        }
        KeyData::SkEcdsaSha2NistP256(key) => check_ec_point(Curve::P256, key.ec_point().as_bytes()),
        KeyData::Ed25519(key) => check_ed25519(&key.0),
        KeyData::SkEd25519(key) => check_ed25519(&key.public_key().0),
        KeyData::Rsa(key) => match (key.n().as_positive_bytes(), key.e().as_positive_bytes()) {
            (Some(n), Some(e)) => check_rsa(n, e),
            _ => Err(Refusal::Invalid(
                "has a modulus or exponent that is not positive".into(),
            )),
        },
        KeyData::Dsa(_) => Err(Refusal::Unsupported("DSA was removed from OpenSSH".into())),
        KeyData::Certificate(_) => Err(Refusal::Unsupported(
            "a certificate cannot be certified; give the plain public key".into(),
        )),
        _ => Err(Refusal::Unsupported(
            "kmssh certifies ECDSA, Ed25519, RSA and their security-key forms".into(),
        )),
    };
    refused.map_err(|refusal| refusal.into_error(Field::SubjectKey, subject.algorithm().as_str()))
}

/// Parses a subject public key line (`ssh-ed25519 AAAA… comment`) and checks it
/// ([`check_subject_key`]). The key blob must be exactly the key's encoding: nothing
/// left over inside a field or after the last one (OpenSSH refuses such blobs).
///
/// # Errors
/// [`Error::InvalidField`] naming [`Field::SubjectKey`] for unparsable, truncated or
/// padded keys; otherwise as [`check_subject_key`].
pub fn parse_subject_key(line: &str) -> Result<KeyData> {
    let line = line.trim();
    let received = line
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|text| Base64::decode_vec(text).ok());
    // A blob whose key field breaks a rule is named by that rule, not by how the parser
    // happens to stumble on it.
    if let Some(refused) = received.as_deref().and_then(diagnose) {
        return Err(refused);
    }
    let key = ssh_key::PublicKey::from_openssh(line)
        .map_err(|e| Error::field(Field::SubjectKey, format!("not an OpenSSH public key: {e}")))?;
    let data = key.key_data();
    if received.is_none() || received != data.encode_vec().ok() {
        return Err(Error::field(
            Field::SubjectKey,
            format!(
                "the {} key blob is not in canonical form: it has bytes its fields do not account for",
                data.algorithm()
            ),
        ));
    }
    check_subject_key(data)?;
    Ok(data.clone())
}

/// The rule an ECDSA or Ed25519 key blob (`string type, …`) breaks in its key field, read
/// field by field: a curve name that does not match the key type, a point that is not
/// uncompressed on its curve, an Ed25519 key that is not 32 bytes. `None` when the blob
/// is not such a key or its key field passes.
fn diagnose(blob: &[u8]) -> Option<Error> {
    fn string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let (field, tail) = (tail.get(..len)?, tail.get(len..)?);
        *rest = tail;
        Some(field)
    }
    let mut rest = blob;
    let key_type = std::str::from_utf8(string(&mut rest)?).ok()?;
    let curve = match key_type {
        "ecdsa-sha2-nistp256" | "sk-ecdsa-sha2-nistp256@openssh.com" => Some(Curve::P256),
        "ecdsa-sha2-nistp384" => Some(Curve::P384),
        "ecdsa-sha2-nistp521" => Some(Curve::P521),
        "ssh-ed25519" | "sk-ssh-ed25519@openssh.com" => None,
        _ => return None,
    };
    let refused = match curve {
        Some(curve) => {
            let name = string(&mut rest)?;
            if name == curve.ssh_name().as_bytes() {
                check_ec_point(curve, string(&mut rest)?)
            } else {
                Err(Refusal::Invalid(format!(
                    "names curve {}; its key type needs {}",
                    crate::error::shown(&String::from_utf8_lossy(name)),
                    curve.ssh_name()
                )))
            }
        }
        None => check_ed25519(string(&mut rest)?),
    };
    refused
        .err()
        .map(|refusal| refusal.into_error(Field::SubjectKey, key_type))
}

/// The rules for a SEC1 point on `curve`, as OpenSSH applies them to ECDSA keys.
pub(crate) fn check_ec_point(curve: Curve, point: &[u8]) -> Result<(), Refusal> {
    let len = curve.field_len();
    let name = curve.name();
    match point.first() {
        None => return Err(Refusal::Invalid("has an empty point".into())),
        Some(0x00) => return Err(Refusal::Invalid("is the point at infinity".into())),
        Some(0x02 | 0x03) => {
            return Err(Refusal::Invalid(format!(
                "is a compressed {name} point; OpenSSH reads only uncompressed points (04 || x || y)"
            )));
        }
        Some(0x04) if point.len() == 1 + 2 * len => {}
        Some(_) => {
            return Err(Refusal::Invalid(format!(
                "is not an uncompressed {name} point: {} bytes, not 04 then x and y of {len} bytes each",
                point.len()
            )));
        }
    }
    if kmssh_core::EcPublicKey::from_sec1_bytes(curve, point).is_err() {
        return Err(Refusal::Invalid(format!(
            "is not a point on the {name} curve"
        )));
    }
    let (x, y) = point[1..].split_at(len);
    let (order_bits, order_minus_one) = order_minus_one(curve);
    let half = order_bits / 2;
    if bit_length(x) <= half || bit_length(y) <= half {
        return Err(Refusal::Invalid(format!(
            "is a {name} point with a coordinate of {half} bits or fewer; OpenSSH refuses it"
        )));
    }
    // Both sides are big-endian and `len` bytes long, so the bytes compare as the numbers.
    if x >= order_minus_one.as_slice() || y >= order_minus_one.as_slice() {
        return Err(Refusal::Invalid(format!(
            "is a {name} point with a coordinate not below the group order minus 1; OpenSSH refuses it"
        )));
    }
    Ok(())
}

/// The curve's group order in bits, and the order minus one, big-endian, one field
/// element long.
fn order_minus_one(curve: Curve) -> (u32, Vec<u8>) {
    use kmssh_core::p256::elliptic_curve::PrimeField;
    fn of<S: PrimeField>() -> (u32, Vec<u8>) {
        (S::NUM_BITS, (-S::ONE).to_repr().as_ref().to_vec())
    }
    match curve {
        Curve::P256 => of::<kmssh_core::p256::Scalar>(),
        Curve::P384 => of::<kmssh_core::p384::Scalar>(),
        Curve::P521 => of::<kmssh_core::p521::Scalar>(),
    }
}

/// The rules for an Ed25519 public key: RFC 8032 §5.1.3 decoding, no small-order point.
pub(crate) fn check_ed25519(key: &[u8]) -> Result<(), Refusal> {
    let Ok(bytes) = <&[u8; 32]>::try_from(key) else {
        return Err(Refusal::Invalid(format!("is {} bytes, not 32", key.len())));
    };
    let Ok(point) = ed25519_dalek::VerifyingKey::from_bytes(bytes) else {
        return Err(Refusal::Invalid(
            "is not a point on Curve25519 (it does not decompress)".into(),
        ));
    };
    if !is_canonical_ed25519(bytes) {
        return Err(Refusal::Invalid(
            "is not canonically encoded (RFC 8032 §5.1.3: y is not reduced, or x is 0 with its sign bit set)"
                .into(),
        ));
    }
    if point.is_weak() {
        return Err(Refusal::Invalid(
            "is a small-order (weak) point, such as the all-zero key: its signatures can be forged"
                .into(),
        ));
    }
    Ok(())
}

/// RFC 8032 §5.1.3's canonical encoding, read from the bytes alone: `y` (the low 255
/// bits, little-endian) below p = 2^255 - 19, and no sign bit on x = 0, which happens
/// only at y = 1 and y = p - 1. The same verdict as re-compressing the decompressed point,
/// without the field inversion that costs as much as the decompression itself.
fn is_canonical_ed25519(bytes: &[u8; 32]) -> bool {
    /// p - 1 = 2^255 - 20, little-endian.
    const P_MINUS_1: [u8; 32] = {
        let mut p = [0xff; 32];
        p[0] = 0xec;
        p[31] = 0x7f;
        p
    };
    const ONE: [u8; 32] = {
        let mut one = [0; 32];
        one[0] = 1;
        one
    };
    let mut y = *bytes;
    let sign = y[31] >> 7 == 1;
    y[31] &= 0x7f;
    // Little-endian comparison with p - 1: y < p  <=>  y <= p - 1.
    let below_p = y.iter().rev().cmp(P_MINUS_1.iter().rev()) != std::cmp::Ordering::Greater;
    below_p && !(sign && (y == ONE || y == P_MINUS_1))
}

/// The rules for an RSA public key, modulus `n` and exponent `e` as big-endian unsigned
/// numbers (leading zero bytes allowed).
pub(crate) fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), Refusal> {
    let n = strip_zeros(n);
    let e = strip_zeros(e);
    let bits = bit_length(n);
    if bits < MIN_RSA_BITS {
        return Err(Refusal::Unsupported(format!(
            "{bits}-bit modulus, at least {MIN_RSA_BITS} bits required"
        )));
    }
    if bits > MAX_RSA_BITS {
        return Err(Refusal::Unsupported(format!(
            "{bits}-bit modulus, at most {MAX_RSA_BITS} bits (the largest OpenSSH and OpenSSL accept)"
        )));
    }
    if n.last().is_none_or(|low| low & 1 == 0) {
        return Err(Refusal::Invalid("has an even modulus".into()));
    }
    if e.last().is_none_or(|low| low & 1 == 0) || e == [1] {
        let shown = match e {
            [] => "0".to_owned(),
            [b] => b.to_string(),
            _ => format!("of {} bits, even", bit_length(e)),
        };
        return Err(Refusal::Invalid(format!(
            "has public exponent {shown}: it must be odd and greater than 1"
        )));
    }
    if e.len() > n.len() || (e.len() == n.len() && e >= n) {
        return Err(Refusal::Invalid(
            "has a public exponent not below its modulus".into(),
        ));
    }
    if let Some(p) = small_factor(n) {
        return Err(Refusal::Invalid(format!("has a modulus divisible by {p}")));
    }
    Ok(())
}

/// The smallest odd prime up to [`LARGEST_SMALL_FACTOR`] dividing `n`, if any.
fn small_factor(n: &[u8]) -> Option<u32> {
    let is_prime = |p: &u32| {
        (3..*p)
            .step_by(2)
            .take_while(|d| d * d <= *p)
            .all(|d| !p.is_multiple_of(d))
    };
    (3..=LARGEST_SMALL_FACTOR)
        .step_by(2)
        .filter(is_prime)
        .find(|&p| {
            n.iter()
                .fold(0u32, |rest, &byte| (rest * 256 + u32::from(byte)) % p)
                == 0
        })
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// The number of significant bits of a big-endian unsigned number.
pub(crate) fn bit_length(number: &[u8]) -> u32 {
    let number = strip_zeros(number);
    match number.first() {
        None => 0,
        Some(top) => {
            let bytes = u32::try_from(number.len()).unwrap_or(u32::MAX / 8);
            bytes.saturating_mul(8) - top.leading_zeros()
        }
    }
}

#[cfg(test)]
mod tests {
    use kmssh_core::p256::elliptic_curve::PrimeField as _;

    use super::*;

    #[test]
    fn bit_lengths_are_exact() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0, 0x80]), 8);
        assert_eq!(bit_length(&[0x01, 0xff]), 9);
        let mut n = vec![0xffu8; 256];
        n[0] = 0x01;
        assert_eq!(bit_length(&n), 2041);
    }

    #[test]
    fn the_orders_are_the_curves() {
        for curve in Curve::ALL {
            let (bits, order_minus_one) = order_minus_one(curve);
            assert_eq!(order_minus_one.len(), curve.field_len(), "{curve}");
            assert_eq!(bit_length(&order_minus_one), bits, "{curve}");
        }
        let (bits, p256) = order_minus_one(Curve::P256);
        assert_eq!(bits, 256);
        assert_eq!(
            p256,
            [
                0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2,
                0xfc, 0x63, 0x25, 0x50
            ]
        );
        // n − 1 is the largest scalar; n is not a scalar.
        let mut n = p256;
        n[31] += 1;
        let repr = kmssh_core::p256::FieldBytes::try_from(n.as_slice()).expect("32 bytes");
        assert!(bool::from(
            kmssh_core::p256::Scalar::from_repr(repr).is_none()
        ));
        assert_eq!(order_minus_one(Curve::P384).0, 384);
        assert_eq!(order_minus_one(Curve::P521).0, 521);
    }

    /// The byte rule agrees with re-compressing the decompressed point, on every encoding
    /// near p and ±1 (with and without the sign bit) and on a run of pseudo-random ones.
    #[test]
    fn canonical_ed25519_is_compress_after_decompress() {
        let mut encodings = Vec::new();
        for low in (0u8..=40).chain(0xd0..=0xff) {
            for top in [0x00, 0x7f] {
                let mut y = [if top == 0 { 0 } else { 0xff }; 32];
                y[0] = low;
                y[31] = top;
                encodings.push(y);
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..4000 {
            let mut y = [0u8; 32];
            for chunk in y.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes());
            }
            encodings.push(y);
        }
        let mut decompressed = 0;
        for y in encodings {
            for sign in [0, 0x80] {
                let mut bytes = y;
                bytes[31] = (bytes[31] & 0x7f) | sign;
                let Ok(point) = ed25519_dalek::VerifyingKey::from_bytes(&bytes) else {
                    continue;
                };
                decompressed += 1;
                assert_eq!(
                    is_canonical_ed25519(&bytes),
                    point.to_edwards().compress().to_bytes() == bytes,
                    "{bytes:02x?}"
                );
            }
        }
        assert!(decompressed > 4000, "{decompressed} points");
    }

    #[test]
    fn small_factors_are_the_odd_primes_to_751() {
        assert_eq!(small_factor(&[3 * 5]), Some(3));
        assert_eq!(small_factor(&[0x02, 0xef]), Some(751));
        assert_eq!(small_factor(&[0x02, 0xf5]), None, "757 is prime");
        assert_eq!(small_factor(&[0x08, 0xac, 0xbb]), Some(751), "751 × 757");
        assert_eq!(small_factor(&[0x08, 0xca, 0x4d]), None, "757 × 761");
    }
}
