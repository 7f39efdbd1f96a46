//! X.509 certificates signed through a [`KmsKey`] (feature `x509`): a self-signed CA
//! certificate for the key ([`issue_ca`]), leaf certificates under it for a PKCS#10
//! request or a bare public key ([`issue_leaf`]), and PKCS#10 self-signature checks
//! ([`verify_certification_request`]).
//!
//! Certificates are built with RustCrypto's `x509-cert` builder: the to-be-signed
//! certificate is finalized here, signed with one [`KmsKey::sign`] call with the chosen
//! algorithm ([`signature_algorithm_for`]; so a
//! KMS failure keeps its [`kmssh_core::ErrorKind`] inside [`Error::Signing`]) and
//! assembled. The key's own signing path has already verified the signature (every key
//! whose signatures come from outside the process is a `VerifiedSigner`), so it is not
//! checked twice.
//!
//! The two profiles are written here rather than taken from
//! `x509_cert::builder::profile`: its CA/B Forum `Root` demands C, O and CN in every CA
//! name and its `Subscriber` only covers domain-validated TLS servers; an SSH CA
//! operator wants neither limit.
//!
//! ```no_run
//! # async fn demo(key: &dyn kmssh_core::KmsKey, csr_pem: &[u8]) -> Result<(), kmssh_pki::Error> {
//! use kmssh_pki::x509::{CaRequest, LeafKey, LeafRequest, certificate_to_pem, issue_ca, issue_leaf,
//!     parse_certification_request};
//! let ca = issue_ca(key, &CaRequest::new("CN=Example CA,O=Example")).await?;
//! let csr = parse_certification_request(csr_pem)?;
//! let mut leaf = LeafRequest::new(ca.clone(), LeafKey::Request(csr));
//! leaf.dns_names.push("www.example.com".into());
//! leaf.server_auth = true;
//! print!("{}", certificate_to_pem(&issue_leaf(key, &leaf).await?)?);
//! # Ok(()) }
//! ```

mod ca;
mod leaf;
mod pkcs10;

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use kmssh_core::{Algorithm, KmsKey, PublicKey, SigningInput, x509_signature_algorithm};
use x509_cert::Certificate;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder as _, CertificateBuilder};
use x509_cert::der::pem::LineEnding;
use x509_cert::der::{Decode, DecodePem, Encode as _, EncodePem as _};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, SignatureBitStringEncoding as _,
    SubjectPublicKeyInfoOwned,
};
use x509_cert::time::{Time, Validity};

pub use ca::{CaRequest, issue_ca};
pub use leaf::{LeafKey, LeafRequest, check_issuer, issue_leaf};
pub use pkcs10::{parse_certification_request, verify_certification_request};

use crate::error::{Error, Field, Result};

/// Days a CA certificate lasts unless the request says otherwise (about ten years).
pub const DEFAULT_CA_DAYS: u32 = 3650;

/// Days a leaf certificate lasts unless the request says otherwise.
pub const DEFAULT_LEAF_DAYS: u32 = 365;

/// Bytes in a random serial: 17, the 136 bits `x509-cert` and CA/B Forum practice use
/// (here with the top two bits fixed so the integer is positive and never shorter).
const RANDOM_SERIAL_LEN: usize = 17;

/// Reads a PEM or DER certificate (PEM when the text starts with `-----BEGIN`).
///
/// # Errors
/// [`Error::InvalidField`] naming [`Field::CaCertificate`] when it is neither.
pub fn parse_certificate(bytes: &[u8]) -> Result<Certificate> {
    decode(bytes, Field::CaCertificate)
}

/// Reads a PEM (`PUBLIC KEY`) or DER `SubjectPublicKeyInfo`, for [`LeafKey::PublicKey`].
///
/// # Errors
/// [`Error::InvalidField`] naming [`Field::SubjectKey`] when it is neither.
pub fn parse_public_key(bytes: &[u8]) -> Result<SubjectPublicKeyInfoOwned> {
    decode(bytes, Field::SubjectKey)
}

/// A certificate as PEM (`-----BEGIN CERTIFICATE-----`, LF line endings).
///
/// # Errors
/// [`Error::InvalidField`] naming [`Field::Certificate`] if it cannot be encoded.
pub fn certificate_to_pem(certificate: &Certificate) -> Result<String> {
    certificate
        .to_pem(LineEnding::LF)
        .map_err(|e| Error::field(Field::Certificate, format!("cannot encode: {e}")))
}

/// A certificate as DER.
///
/// # Errors
/// [`Error::InvalidField`] naming [`Field::Certificate`] if it cannot be encoded.
pub fn certificate_to_der(certificate: &Certificate) -> Result<Vec<u8>> {
    certificate
        .to_der()
        .map_err(|e| Error::field(Field::Certificate, format!("cannot encode: {e}")))
}

/// Reads a PEM or DER document of one type, an error naming `field`.
pub(crate) fn decode<T>(bytes: &[u8], field: Field) -> Result<T>
where
    T: DecodePem + for<'a> Decode<'a>,
{
    let decoded = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        T::from_pem(bytes).map_err(|e| format!("not PEM of the expected type: {e}"))
    } else {
        T::from_der(bytes).map_err(|e| format!("not DER of the expected type: {e}"))
    };
    decoded.map_err(|reason| Error::field(field, reason))
}

/// Parses an RFC 4514 name (`CN=Example CA,O=Example`) and checks it ([`check_name`]).
pub(crate) fn parse_name(text: &str) -> Result<Name> {
    let name = Name::from_str(text).map_err(|e| {
        Error::field(
            Field::SubjectName,
            format!("{text:?} is not an RFC 4514 name: {e}"),
        )
    })?;
    check_name(&name, Field::SubjectName)?;
    Ok(name)
}

/// Checks every attribute of a name is a string OpenSSL and other readers accept and
/// display safely: a non-empty UTF8String (valid UTF-8), PrintableString or IA5String
/// (of their character sets), with no control character. RFC 4514 text can encode
/// anything (`CN=\FF` is a byte, `CN=#04…` any DER value), and a request's subject is
/// whatever its sender wrote; an error names `field`.
pub(crate) fn check_name(name: &Name, field: Field) -> Result<()> {
    use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
    use x509_cert::der::{Tag, Tagged as _};
    for attribute in name.iter() {
        let label = const_oid::db::DB
            .find_names_for_oid(attribute.oid)
            .min_by_key(|name| name.len())
            .map_or_else(|| attribute.oid.to_string(), str::to_uppercase);
        let refuse = |why: String| Error::field(field, format!("{label} value {why}"));
        let value = &attribute.value;
        let text = match value.tag() {
            Tag::Utf8String => Utf8StringRef::try_from(value)
                .map(|s| s.as_str())
                .map_err(|_| refuse("is not valid UTF-8".into()))?,
            Tag::PrintableString => PrintableStringRef::try_from(value)
                .map(|s| s.as_str())
                .map_err(|_| {
                    refuse("is a PrintableString with characters outside its set".into())
                })?,
            Tag::Ia5String => Ia5StringRef::try_from(value)
                .map(|s| s.as_str())
                .map_err(|_| refuse("is an IA5String with bytes outside ASCII".into()))?,
            tag => {
                return Err(refuse(format!(
                    "has type {tag}; only UTF8String, PrintableString and IA5String are written"
                )));
            }
        };
        if text.is_empty() {
            return Err(refuse("is empty".into()));
        }
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(refuse(format!(
                "contains the control character U+{:04X}",
                u32::from(c)
            )));
        }
    }
    Ok(())
}

/// The serial given (positive, as RFC 5280 §4.1.2.2 requires), or a random one.
pub(crate) fn serial_number(serial: Option<u64>) -> Result<SerialNumber> {
    match serial {
        Some(0) => Err(Error::field(
            Field::Serial,
            "0: X.509 serials must be positive (RFC 5280 §4.1.2.2)",
        )),
        // Encoded as a DER INTEGER with a leading zero byte where the high bit is set.
        Some(value) => Ok(SerialNumber::from(value)),
        None => {
            let mut bytes = [0u8; RANDOM_SERIAL_LEN];
            getrandom::fill(&mut bytes).map_err(|e| {
                Error::Signing(kmssh_core::Error::new(
                    kmssh_core::ErrorKind::Unexpected,
                    format!("the OS RNG failed: {e}"),
                ))
            })?;
            // High bit clear: positive without a padding byte; next bit set: no leading
            // zero byte, so every random serial is 17 bytes long.
            bytes[0] = (bytes[0] & 0x7f) | 0x40;
            SerialNumber::new(&bytes).map_err(|e| Error::field(Field::Serial, e.to_string()))
        }
    }
}

/// How far before the moment of issue `notBefore` is set. A relying party whose clock lags
/// the CA's (or a machine whose clock is stepped back by NTP right after boot) would
/// otherwise see a fresh certificate as "not yet valid".
pub const NOT_BEFORE_BACKDATE: Duration = Duration::from_secs(5 * 60);

/// `days` of validity from now; `notBefore` is [`NOT_BEFORE_BACKDATE`] earlier.
pub(crate) fn validity(days: u32) -> Result<Validity> {
    if days == 0 {
        return Err(Error::field(Field::Validity, "must be at least 1 day"));
    }
    let too_late = || {
        Error::field(
            Field::Validity,
            format!("{days} days from now ends after 9999-12-31, the last date X.509 can hold"),
        )
    };
    let now = SystemTime::now();
    let not_before = Time::try_from(now - NOT_BEFORE_BACKDATE)
        .map_err(|e| Error::field(Field::Validity, format!("the clock is unusable: {e}")))?;
    let not_after = now
        .checked_add(Duration::from_secs(u64::from(days) * 86_400))
        .ok_or_else(too_late)
        .and_then(|then| Time::try_from(then).map_err(|_| too_late()))?;
    Ok(Validity::new(not_before, not_after))
}

/// The key's SubjectPublicKeyInfo.
pub(crate) fn key_spki(key: &PublicKey) -> Result<SubjectPublicKeyInfoOwned> {
    SubjectPublicKeyInfoOwned::from_key(key)
        .map_err(|e| Error::field(Field::CaKey, format!("cannot encode the public key: {e}")))
}

fn build_error(e: x509_cert::builder::Error) -> Error {
    Error::field(Field::Certificate, format!("cannot build: {e}"))
}

/// What `x509-cert`'s builder needs to know of the issuer: its public key and signature
/// algorithm. It never signs; [`sign`] does, through the [`KmsKey`].
struct Issuer<'a> {
    public_key: &'a PublicKey,
    algorithm: Algorithm,
}

impl signature::Keypair for Issuer<'_> {
    type VerifyingKey = PublicKey;

    fn verifying_key(&self) -> PublicKey {
        self.public_key.clone()
    }
}

impl DynSignatureAlgorithmIdentifier for Issuer<'_> {
    fn signature_algorithm_identifier(&self) -> x509_cert::spki::Result<AlgorithmIdentifierOwned> {
        Ok(x509_signature_algorithm(self.algorithm))
    }
}

/// The algorithm an X.509 certificate is signed with: `requested` if the key signs it,
/// else sha256WithRSAEncryption for RSA keys that allow it (what `openssl req -x509`
/// chooses), else the key's default algorithm.
///
/// # Errors
/// [`Error::UnsupportedKey`] naming [`Field::SignatureAlgorithm`] for an algorithm the
/// key does not sign.
pub fn signature_algorithm_for(
    key: &dyn KmsKey,
    requested: Option<Algorithm>,
) -> Result<Algorithm> {
    let offered = key.algorithms();
    match requested {
        Some(algorithm) if offered.contains(&algorithm) => Ok(algorithm),
        Some(algorithm) => Err(Error::UnsupportedKey {
            field: Field::SignatureAlgorithm,
            algorithm: key.public_key().description(),
            detail: format!(": the key cannot sign {algorithm}"),
        }),
        None if offered.contains(&Algorithm::RsaPkcs1Sha256) => Ok(Algorithm::RsaPkcs1Sha256),
        None => Ok(key.algorithm()),
    }
}

/// Finalizes the to-be-signed certificate, has the key sign it, and assembles the
/// certificate. The signature is not verified again: [`KmsKey::sign_message`] returns
/// only signatures that verify against [`KmsKey::public_key`].
pub(crate) async fn sign<P: BuilderProfile>(
    mut builder: CertificateBuilder<P>,
    key: &dyn KmsKey,
    algorithm: Algorithm,
) -> Result<Certificate> {
    let issuer = Issuer {
        public_key: key.public_key(),
        algorithm,
    };
    let tbs = builder.finalize(&issuer).map_err(build_error)?;
    let signature = key.sign(algorithm, SigningInput::Message(&tbs)).await?;
    let bits = signature.to_bitstring().map_err(|e| {
        Error::field(
            Field::Certificate,
            format!("cannot encode the signature: {e}"),
        )
    })?;
    builder.assemble(bits, &issuer).map_err(build_error)
}

#[cfg(test)]
mod tests {
    use x509_cert::der::Encode as _;

    use super::*;

    #[test]
    fn serials_are_positive_der_integers() {
        for (value, der) in [
            (1u64, vec![0x02, 0x01, 0x01]),
            (0x80, vec![0x02, 0x02, 0x00, 0x80]),
            (
                u64::MAX,
                vec![
                    0x02, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                ],
            ),
        ] {
            let serial = serial_number(Some(value)).expect("serial");
            assert_eq!(serial.to_der().expect("der"), der, "{value}");
        }
        assert!(matches!(
            serial_number(Some(0)),
            Err(Error::InvalidField {
                field: Field::Serial,
                ..
            })
        ));
        let a = serial_number(None).expect("random");
        let b = serial_number(None).expect("random");
        assert_ne!(a, b);
        for serial in [a, b] {
            assert_eq!(serial.as_bytes().len(), RANDOM_SERIAL_LEN);
            assert!(serial.as_bytes()[0] & 0x80 == 0);
        }
    }

    #[test]
    fn validity_is_at_least_a_day_and_ends_by_9999() {
        assert!(validity(1).is_ok());
        for days in [0, u32::MAX] {
            assert!(matches!(
                validity(days),
                Err(Error::InvalidField {
                    field: Field::Validity,
                    ..
                })
            ));
        }
    }
}
