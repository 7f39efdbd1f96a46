//! PKCS#10 certification requests (RFC 2986): reading them and checking their
//! self-signature.

use const_oid::db::{rfc5912, rfc8410};
use kmssh_core::{EcPublicKey, EcdsaSignature, ErrorKind};
use sha2::Digest as _;
use x509_cert::der::Encode as _;
use x509_cert::request::CertReq;
use x509_cert::spki::ObjectIdentifier;

use super::decode;
use crate::error::{Error, Field, Result};
use crate::subject_key::MAX_RSA_BITS;

/// Reads a PEM (`CERTIFICATE REQUEST`) or DER PKCS#10 request. Its signature is not
/// checked here: see [`verify_certification_request`] (which
/// [`issue_leaf`](super::issue_leaf) calls).
///
/// # Errors
/// [`Error::InvalidField`] naming [`Field::CertificationRequest`] when it is neither.
pub fn parse_certification_request(bytes: &[u8]) -> Result<CertReq> {
    decode(bytes, Field::CertificationRequest)
}

/// The signature families a request can be signed with, each with the key type it needs.
enum Scheme {
    /// ECDSA with the hash the signature algorithm names (not the curve's: openssl signs
    /// P-384 requests with SHA-256 unless told otherwise).
    Ecdsa(Hash),
    /// Pure Ed25519.
    Ed25519,
    /// RSA PKCS#1 v1.5.
    Rsa(Hash),
}

#[derive(Clone, Copy)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Scheme {
    fn of(oid: ObjectIdentifier) -> Option<Self> {
        Some(match oid {
            rfc5912::ECDSA_WITH_SHA_256 => Self::Ecdsa(Hash::Sha256),
            rfc5912::ECDSA_WITH_SHA_384 => Self::Ecdsa(Hash::Sha384),
            rfc5912::ECDSA_WITH_SHA_512 => Self::Ecdsa(Hash::Sha512),
            rfc8410::ID_ED_25519 => Self::Ed25519,
            rfc5912::SHA_256_WITH_RSA_ENCRYPTION => Self::Rsa(Hash::Sha256),
            rfc5912::SHA_384_WITH_RSA_ENCRYPTION => Self::Rsa(Hash::Sha384),
            rfc5912::SHA_512_WITH_RSA_ENCRYPTION => Self::Rsa(Hash::Sha512),
            _ => return None,
        })
    }

    /// The SubjectPublicKeyInfo algorithm a key signing with this scheme has.
    fn key_oid(&self) -> ObjectIdentifier {
        match self {
            Self::Ecdsa(_) => rfc5912::ID_EC_PUBLIC_KEY,
            Self::Ed25519 => rfc8410::ID_ED_25519,
            Self::Rsa(_) => rfc5912::RSA_ENCRYPTION,
        }
    }
}

fn unverified(detail: impl Into<String>) -> Error {
    Error::does_not_verify(Field::CertificationRequest, detail)
}

/// Checks a PKCS#10 request's self-signature, so a request cannot name a key its sender
/// does not hold. ECDSA (P-256/384/521 with SHA-256/384/512), Ed25519 and RSA PKCS#1
/// v1.5 (SHA-256/384/512) are understood.
///
/// # Errors
/// [`Error::SignatureRejected`] naming [`Field::CertificationRequest`] when the
/// signature is malformed, made with an algorithm that does not fit the key, or does not
/// verify; [`Error::UnsupportedKey`] for another signature algorithm or EC curve;
/// [`Error::InvalidField`] naming [`Field::CertificationRequest`] for an undecodable key.
pub fn verify_certification_request(request: &CertReq) -> Result<()> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        Error::field(Field::CertificationRequest, format!("{what}: {e}"))
    };
    let oid = request.algorithm.oid;
    let scheme = Scheme::of(oid).ok_or_else(|| Error::UnsupportedKey {
        field: Field::CertificationRequest,
        algorithm: oid.to_string(),
        detail: ": ECDSA with SHA-2, Ed25519 and RSA PKCS#1 v1.5 with SHA-2 are supported".into(),
    })?;
    let key_oid = request.info.public_key.algorithm.oid;
    if key_oid != scheme.key_oid() {
        return Err(unverified(format!(
            "signature algorithm {oid} cannot come from a key of type {key_oid}"
        )));
    }
    let info = request
        .info
        .to_der()
        .map_err(|e| invalid("certificationRequestInfo", &e))?;
    let spki = request
        .info
        .public_key
        .to_der()
        .map_err(|e| invalid("public key", &e))?;
    let signature = request
        .signature
        .as_bytes()
        .ok_or_else(|| unverified("the signature BIT STRING is not a whole number of bytes"))?;
    match scheme {
        Scheme::Ecdsa(hash) => {
            let key = EcPublicKey::from_public_key_der(&spki).map_err(|e| {
                if e.kind() == ErrorKind::UnsupportedAlgorithm {
                    Error::UnsupportedKey {
                        field: Field::CertificationRequest,
                        algorithm: "EC".into(),
                        detail: format!(": {e}"),
                    }
                } else {
                    invalid("public key", &e)
                }
            })?;
            let digest = match hash {
                Hash::Sha256 => sha2::Sha256::digest(&info).to_vec(),
                Hash::Sha384 => sha2::Sha384::digest(&info).to_vec(),
                Hash::Sha512 => sha2::Sha512::digest(&info).to_vec(),
            };
            let signature = EcdsaSignature::from_der(key.curve(), signature)
                .map_err(|e| unverified(e.to_string()))?;
            key.verify_digest(&digest, &signature)
                .map_err(|e| unverified(e.to_string()))
        }
        Scheme::Ed25519 => {
            use ed25519_dalek::pkcs8::DecodePublicKey as _;
            use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
            let key = VerifyingKey::from_public_key_der(&spki)
                .map_err(|e| invalid("Ed25519 public key", &e))?;
            let signature =
                Signature::from_slice(signature).map_err(|e| unverified(e.to_string()))?;
            key.verify(&info, &signature)
                .map_err(|e| unverified(e.to_string()))
        }
        Scheme::Rsa(hash) => match hash {
            Hash::Sha256 => verify_rsa::<sha2::Sha256>(&spki, &info, signature),
            Hash::Sha384 => verify_rsa::<sha2::Sha384>(&spki, &info, signature),
            Hash::Sha512 => verify_rsa::<sha2::Sha512>(&spki, &info, signature),
        },
    }
}

fn verify_rsa<D>(spki: &[u8], info: &[u8], signature: &[u8]) -> Result<()>
where
    D: sha2::Digest + const_oid::AssociatedOid,
{
    use rsa::pkcs1::der::Decode as _;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier as _;
    let bad_key = |e: &dyn std::fmt::Display| {
        Error::field(Field::CertificationRequest, format!("RSA public key: {e}"))
    };
    let key_info =
        x509_cert::spki::SubjectPublicKeyInfoRef::from_der(spki).map_err(|e| bad_key(&e))?;
    let bits = key_info
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| bad_key(&"the key BIT STRING is not a whole number of bytes"))?;
    let parts = rsa::pkcs1::RsaPublicKeyRef::from_der(bits).map_err(|e| bad_key(&e))?;
    // Up to the largest modulus kmssh certifies, not only `rsa`'s default of 8192 bits.
    let key = rsa::PublicKey::new_with_size_limits(
        rsa::BoxedUint::from_be_slice_vartime(parts.modulus.as_bytes()),
        rsa::BoxedUint::from_be_slice_vartime(parts.public_exponent.as_bytes()),
        rsa::PublicKey::MIN_SIZE..=MAX_RSA_BITS as usize,
    )
    .map_err(|e| bad_key(&e))?;
    let signature = Signature::try_from(signature).map_err(|e| unverified(e.to_string()))?;
    VerifyingKey::<D>::new(key)
        .verify(info, &signature)
        .map_err(|e| unverified(e.to_string()))
}
