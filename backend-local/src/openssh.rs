//! OpenSSH private key files (`openssh-key-v1`, PROTOCOL.key): read for ECDSA, RSA and
//! Ed25519, with every other key type and encrypted files refused by name.

use kmssh_core::{Curve, Result};
use ssh_key::encoding::Decode;
use zeroize::Zeroizing;

use crate::SecretKey;
use crate::error::invalid;
use crate::load::unsupported;
use crate::secret::check_rsa_modulus;

const MAGIC: &[u8] = b"openssh-key-v1\0";

/// What the unencrypted envelope of an `openssh-key-v1` file says before its keys.
struct Envelope {
    cipher: String,
    count: u32,
    key_type: String,
}

/// The file's binary blob (base64 between the armour lines).
fn blob(text: &str) -> Result<Zeroizing<Vec<u8>>> {
    use base64ct::Encoding as _;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.trim().chars())
        .collect();
    Ok(Zeroizing::new(
        base64ct::Base64::decode_vec(&body)
            .map_err(|_| invalid("OpenSSH private key is not base64"))?,
    ))
}

fn malformed<E>(_: E) -> kmssh_core::Error {
    invalid("malformed OpenSSH private key")
}

/// Reads the envelope: cipher, key count and the first public key's type, which are
/// stored in the clear even in passphrase-protected files.
fn envelope(blob: &[u8]) -> Result<Envelope> {
    let mut reader = blob
        .strip_prefix(MAGIC)
        .ok_or_else(|| invalid("not an openssh-key-v1 key"))?;
    let cipher = String::decode(&mut reader).map_err(malformed)?;
    let _kdf = String::decode(&mut reader).map_err(malformed)?;
    let _kdf_options = Vec::<u8>::decode(&mut reader).map_err(malformed)?;
    let count = u32::decode(&mut reader).map_err(malformed)?;
    let public = Vec::<u8>::decode(&mut reader).map_err(malformed)?;
    let key_type = String::decode(&mut public.as_slice()).map_err(malformed)?;
    Ok(Envelope {
        cipher,
        count,
        key_type,
    })
}

/// Parses an OpenSSH private key file.
pub(crate) fn parse(text: &str) -> Result<SecretKey> {
    use ssh_key::private::KeypairData;
    let blob = blob(text)?;
    let envelope = envelope(&blob)?;
    // Refusals first, by name, from the envelope: ssh-key would fail on some of these
    // with a less useful message (or not at all, for an encrypted key it cannot use).
    if envelope.cipher != "none" {
        return Err(invalid(format!(
            "the OpenSSH key is passphrase-protected ({}): kmssh reads unencrypted keys (`ssh-keygen -p -N '' -f KEY`)",
            envelope.cipher
        )));
    }
    if envelope.count != 1 {
        return Err(invalid(format!(
            "the OpenSSH file holds {} keys: kmssh reads files with one",
            envelope.count
        )));
    }
    match envelope.key_type.as_str() {
        "ssh-rsa" | "ssh-ed25519" => {}
        t if t.starts_with("ecdsa-sha2-") => {}
        "ssh-dss" => return Err(unsupported("DSA (ssh-dss)")),
        t if t.starts_with("sk-") => {
            return Err(kmssh_core::Error::new(
                kmssh_core::ErrorKind::UnsupportedAlgorithm,
                format!(
                    "{t} keys are FIDO security keys, not supported: their private key never leaves the token, so kmssh cannot sign with the file"
                ),
            ));
        }
        other => return Err(unsupported(&format!("OpenSSH {other}"))),
    }
    let key = match ssh_key::PrivateKey::from_bytes(&blob) {
        Ok(key) => key,
        // ssh-key 0.7.0-rc.12 refuses an ECDSA scalar whose mpint is under 32 bytes
        // (a 31-byte mpint: 1 in 512 P-256 keys that ssh-keygen makes).
        Err(e) if envelope.key_type.starts_with("ecdsa-sha2-") => {
            return ecdsa_fallback(&blob)
                .map_err(|_| invalid("malformed OpenSSH private key").with_source(e.to_string()));
        }
        Err(e) => {
            return Err(invalid(format!(
                "malformed OpenSSH {} private key",
                envelope.key_type
            ))
            .with_source(e.to_string()));
        }
    };
    match key.key_data() {
        KeypairData::Ecdsa(pair) => {
            let curve = match pair.curve() {
                ssh_key::EcdsaCurve::NistP256 => Curve::P256,
                ssh_key::EcdsaCurve::NistP384 => Curve::P384,
                ssh_key::EcdsaCurve::NistP521 => Curve::P521,
            };
            ecdsa_from_parts(curve, pair.public_key_bytes(), pair.private_key_bytes())
        }
        KeypairData::Rsa(pair) => {
            check_rsa_modulus(pair.public().n().as_bytes())?;
            // Checks that the primes multiply to the modulus and `d` inverts `e`.
            let secret = kmssh_core::rsa::PrivateKey::try_from(pair).map_err(|e| {
                invalid("malformed OpenSSH RSA private key").with_source(e.to_string())
            })?;
            Ok(SecretKey::Rsa(Box::new(secret)))
        }
        KeypairData::Ed25519(pair) => {
            // ssh-key checked that the stored public key is the seed's.
            Ok(SecretKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
                &pair.private.to_bytes(),
            )))
        }
        other => Err(unsupported(
            other
                .algorithm()
                .map(|a| a.to_string())
                .as_deref()
                .unwrap_or("this OpenSSH"),
        )),
    }
}

/// An ECDSA secret from its OpenSSH scalar (big-endian, possibly short or with a sign
/// byte), checked against the stored public point.
fn ecdsa_from_parts(curve: Curve, point: &[u8], scalar: &[u8]) -> Result<SecretKey> {
    let digits = scalar
        .iter()
        .position(|&b| b != 0)
        .map_or(&[][..], |i| &scalar[i..]);
    let field = curve.field_len();
    if digits.is_empty() || digits.len() > field {
        return Err(invalid("OpenSSH ECDSA private scalar is out of range"));
    }
    let mut padded = Zeroizing::new(vec![0u8; field]);
    padded[field - digits.len()..].copy_from_slice(digits);
    let secret = match curve {
        Curve::P256 => p256::SecretKey::from_slice(&padded).map(SecretKey::P256),
        Curve::P384 => p384::SecretKey::from_slice(&padded).map(SecretKey::P384),
        Curve::P521 => p521::SecretKey::from_slice(&padded).map(SecretKey::P521),
    }
    .map_err(|_| invalid("OpenSSH ECDSA private scalar is out of range"))?;
    let derived = secret.public_key();
    let derived = derived
        .as_ecdsa()
        .map(kmssh_core::EcPublicKey::to_sec1_bytes);
    if derived.as_deref() != Some(point) {
        return Err(invalid(
            "OpenSSH key file's public key does not match its private key",
        ));
    }
    Ok(secret)
}

/// Reads an unencrypted single-key ECDSA `openssh-key-v1` blob directly: the fallback
/// for keys `ssh-key` cannot read (see [`parse`]).
fn ecdsa_fallback(blob: &[u8]) -> Result<SecretKey> {
    let mut reader = blob
        .strip_prefix(MAGIC)
        .ok_or_else(|| invalid("not an openssh-key-v1 key"))?;
    let _cipher = String::decode(&mut reader).map_err(malformed)?;
    let _kdf = String::decode(&mut reader).map_err(malformed)?;
    let _kdf_options = Vec::<u8>::decode(&mut reader).map_err(malformed)?;
    let _count = u32::decode(&mut reader).map_err(malformed)?;
    let _public = Vec::<u8>::decode(&mut reader).map_err(malformed)?;
    let private = Zeroizing::new(Vec::<u8>::decode(&mut reader).map_err(malformed)?);
    let mut reader = private.as_slice();
    let (check1, check2) = (
        u32::decode(&mut reader).map_err(malformed)?,
        u32::decode(&mut reader).map_err(malformed)?,
    );
    if check1 != check2 {
        return Err(invalid(
            "OpenSSH private key check bytes differ: corrupt file",
        ));
    }
    let key_type = String::decode(&mut reader).map_err(malformed)?;
    let curve_name = String::decode(&mut reader).map_err(malformed)?;
    let curve: Curve = curve_name.parse()?;
    if key_type != format!("ecdsa-sha2-{}", curve.ssh_name()) {
        return Err(invalid(format!(
            "OpenSSH key type {key_type} does not match its curve {curve_name}"
        )));
    }
    let point = Vec::<u8>::decode(&mut reader).map_err(malformed)?;
    let scalar = Zeroizing::new(Vec::<u8>::decode(&mut reader).map_err(malformed)?);
    ecdsa_from_parts(curve, &point, &scalar)
}
