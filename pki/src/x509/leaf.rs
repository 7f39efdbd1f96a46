//! Leaf (end-entity) certificates under a CA certificate of the same KMS key.

use std::net::IpAddr;

use const_oid::db::{rfc5280, rfc5912, rfc8410};
use kmssh_core::{Algorithm, Curve, KmsKey, PublicKey};
use x509_cert::Certificate;
use x509_cert::builder::CertificateBuilder;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::certificate::TbsCertificate;
use x509_cert::der::Encode as _;
use x509_cert::der::asn1::Ia5String;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::request::CertReq;
use x509_cert::spki::{ObjectIdentifier, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};

use super::{
    DEFAULT_LEAF_DAYS, build_error, check_name, key_spki, parse_name, serial_number, sign,
    signature_algorithm_for, validity, verify_certification_request,
};
use crate::error::{Error, Field, Result};
use crate::subject_key::{check_ec_point, check_ed25519, check_rsa};

/// Where a leaf's public key (and, for a request, its default subject) comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeafKey {
    /// A PKCS#10 request: its self-signature is checked, so nobody gets a certificate for
    /// a key they do not hold; its subject is kept unless [`LeafRequest::subject`] is
    /// given; its requested extensions are not copied (the CA decides, as
    /// `openssl x509 -req` does).
    Request(CertReq),
    /// A bare SubjectPublicKeyInfo; [`LeafRequest::subject`] or a subjectAltName is then
    /// required.
    PublicKey(SubjectPublicKeyInfoOwned),
}

/// What a leaf certificate says: built with [`LeafRequest::new`], then adjusted field by
/// field.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeafRequest {
    /// The CA certificate of the signing key (from [`super::issue_ca`]); its subject
    /// becomes the issuer.
    pub ca_certificate: Certificate,
    /// The subject's key.
    pub key: LeafKey,
    /// The subject name, RFC 4514; replaces a request's.
    pub subject: Option<String>,
    /// DNS names for subjectAltName.
    pub dns_names: Vec<String>,
    /// IP addresses for subjectAltName.
    pub ip_addresses: Vec<IpAddr>,
    /// Add the serverAuth extended key usage.
    pub server_auth: bool,
    /// Add the clientAuth extended key usage.
    pub client_auth: bool,
    /// Days of validity from now (default [`DEFAULT_LEAF_DAYS`]); the leaf may not outlive
    /// its CA certificate.
    pub days: u32,
    /// The serial (positive), or `None` for 136 random bits.
    pub serial: Option<u64>,
    /// The CA's signature algorithm, one its key signs; `None` for the default
    /// ([`crate::x509::signature_algorithm_for`]).
    pub signature_algorithm: Option<Algorithm>,
}

impl LeafRequest {
    /// A request for a leaf for `key` under `ca_certificate`: [`DEFAULT_LEAF_DAYS`] days,
    /// a random serial, no alternative names and no extended key usage.
    #[must_use]
    pub fn new(ca_certificate: Certificate, key: LeafKey) -> Self {
        Self {
            ca_certificate,
            key,
            subject: None,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            server_auth: false,
            client_auth: false,
            days: DEFAULT_LEAF_DAYS,
            serial: None,
            signature_algorithm: None,
        }
    }
}

/// An end-entity certificate under the CA: not a CA, digitalSignature, the extended key
/// usages asked for, key identifiers, and the alternative names given.
struct Leaf {
    issuer: Name,
    subject: Name,
    alt_names: Vec<GeneralName>,
    extended_usages: Vec<ObjectIdentifier>,
}

impl BuilderProfile for Leaf {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    #[allow(
        clippy::vec_init_then_push,
        reason = "each extension is made knowing the ones before it"
    )]
    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let subject = tbs.subject();
        let mut extensions = Vec::new();
        extensions.push(
            BasicConstraints {
                ca: false,
                path_len_constraint: None,
            }
            .to_extension(subject, &extensions)?,
        );
        extensions
            .push(KeyUsage(KeyUsages::DigitalSignature.into()).to_extension(subject, &extensions)?);
        if !self.extended_usages.is_empty() {
            extensions.push(
                ExtendedKeyUsage(self.extended_usages.clone())
                    .to_extension(subject, &extensions)?,
            );
        }
        if !self.alt_names.is_empty() {
            extensions
                .push(SubjectAltName(self.alt_names.clone()).to_extension(subject, &extensions)?);
        }
        extensions.push(
            AuthorityKeyIdentifier::try_from(issuer_spk)?.to_extension(subject, &extensions)?,
        );
        extensions.push(SubjectKeyIdentifier::try_from(spk)?.to_extension(subject, &extensions)?);
        Ok(extensions)
    }
}

/// Checks that `ca` is a CA certificate for exactly `key`, fit to sign certificates:
/// the same SubjectPublicKeyInfo, basicConstraints cA=TRUE, and keyCertSign if it has a
/// keyUsage.
///
/// # Errors
/// [`Error::KeyMismatch`] naming [`Field::CaCertificate`] for a certificate of another
/// key or one that is not a CA; [`Error::InvalidField`] for undecodable extensions.
pub fn check_issuer(ca: &Certificate, key: &PublicKey) -> Result<()> {
    let refuse = |reason: String| Error::KeyMismatch {
        field: Field::CaCertificate,
        reason,
    };
    let undecodable = |what: &str, e: x509_cert::der::Error| {
        Error::field(Field::CaCertificate, format!("{what}: {e}"))
    };
    let tbs = ca.tbs_certificate();
    let encode = |spki: &SubjectPublicKeyInfoOwned| {
        spki.to_der()
            .map_err(|e| Error::field(Field::CaCertificate, format!("public key: {e}")))
    };
    if encode(tbs.subject_public_key_info())? != encode(&key_spki(key)?)? {
        return Err(refuse(format!(
            "the certificate ({}) is for another key than this {} key",
            tbs.subject(),
            key.description()
        )));
    }
    let constraints = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| undecodable("basicConstraints", e))?;
    if !constraints.is_some_and(|(_, c)| c.ca) {
        return Err(refuse(format!(
            "the certificate ({}) is not a CA: basicConstraints has no cA=TRUE",
            tbs.subject()
        )));
    }
    let usage = tbs
        .get_extension::<KeyUsage>()
        .map_err(|e| undecodable("keyUsage", e))?;
    if let Some((_, usage)) = usage
        && !usage.key_cert_sign()
    {
        return Err(refuse(format!(
            "the certificate ({}) key usage does not allow keyCertSign",
            tbs.subject()
        )));
    }
    Ok(())
}

/// Checks a subject key by the rules of [`crate::subject_key`]: an uncompressed EC point
/// on P-256, P-384 or P-521 that OpenSSH would accept, an Ed25519 key that decodes
/// canonically and is not of small order, an RSA key of 2048 to 16384 bits with a sound
/// modulus and exponent. Any other algorithm is refused: kmssh cannot tell whether such a
/// key is usable.
fn check_subject_key(spki: &SubjectPublicKeyInfoOwned) -> Result<()> {
    let oid = spki.algorithm.oid;
    let key = || {
        spki.subject_public_key.as_bytes().ok_or_else(|| {
            Error::field(
                Field::SubjectKey,
                "the key BIT STRING is not a whole number of bytes",
            )
        })
    };
    let (algorithm, refused) = if oid == rfc5912::ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .map(|parameters| parameters.decode_as::<ObjectIdentifier>())
            .and_then(std::result::Result::ok)
            .ok_or_else(|| {
                Error::field(
                    Field::SubjectKey,
                    "EC key without a named curve (RFC 5480 namedCurve)",
                )
            })?;
        let curve = Curve::from_oid(&curve).map_err(|e| Error::UnsupportedKey {
            field: Field::SubjectKey,
            algorithm: "EC".into(),
            detail: format!(": {e}"),
        })?;
        (format!("EC {curve}"), check_ec_point(curve, key()?))
    } else if oid == rfc8410::ID_ED_25519 {
        ("Ed25519".to_owned(), check_ed25519(key()?))
    } else if oid == rfc5912::RSA_ENCRYPTION {
        use rsa::pkcs1::der::Decode as _;
        let rsa = rsa::pkcs1::RsaPublicKeyRef::from_der(key()?).map_err(|e| {
            Error::field(
                Field::SubjectKey,
                format!("not an RSA public key (PKCS#1 RSAPublicKey): {e}"),
            )
        })?;
        (
            "RSA".to_owned(),
            check_rsa(rsa.modulus.as_bytes(), rsa.public_exponent.as_bytes()),
        )
    } else {
        let name = const_oid::db::DB
            .by_oid(&oid)
            .map_or_else(|| oid.to_string(), |name| format!("{name} ({oid})"));
        return Err(Error::UnsupportedKey {
            field: Field::SubjectKey,
            algorithm: name,
            detail: ": kmssh certifies EC (P-256, P-384, P-521), Ed25519 and RSA keys".into(),
        });
    };
    refused.map_err(|refusal| refusal.into_error(Field::SubjectKey, &algorithm))
}

/// The subjectAltName entries: DNS names (ASCII, 1 to 253 bytes, labels of 1 to 63
/// bytes, no spaces) and IP addresses.
fn alt_names(dns_names: &[String], ip_addresses: &[IpAddr]) -> Result<Vec<GeneralName>> {
    let mut names = Vec::with_capacity(dns_names.len() + ip_addresses.len());
    for name in dns_names {
        let bad = |why: &str| Error::field(Field::DnsName, format!("{name:?}: {why}"));
        if name.is_empty() || name.len() > 253 {
            return Err(bad("not 1 to 253 bytes long"));
        }
        if !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "only ASCII letters, digits and punctuation are allowed",
            ));
        }
        if name
            .trim_end_matches('.')
            .split('.')
            .any(|label| label.is_empty() || label.len() > 63)
        {
            return Err(bad("every label must be 1 to 63 bytes long"));
        }
        let ia5 = Ia5String::new(name).map_err(|e| bad(&e.to_string()))?;
        names.push(GeneralName::DnsName(ia5));
    }
    names.extend(ip_addresses.iter().map(|ip| GeneralName::from(*ip)));
    Ok(names)
}

/// Issues a leaf certificate under `request.ca_certificate`, signed by the key.
///
/// Everything is checked before anything is sent to the key: the CA certificate is for
/// this key and a CA ([`check_issuer`]), the subject key passes the rules of
/// [`crate::subject_key`] (a valid EC point or Ed25519 key, an RSA key of at least
/// [`MIN_RSA_BITS`](crate::subject_key::MIN_RSA_BITS) bits; other algorithms are
/// refused), a request's self-signature verifies, the subject and issuer names hold only
/// valid strings without control characters, DNS names are well formed, and the leaf
/// does not outlive the CA certificate.
///
/// # Errors
/// [`Error::KeyMismatch`] naming [`Field::CaCertificate`] as [`check_issuer`];
/// [`Error::SignatureRejected`] naming [`Field::CertificationRequest`] for a request
/// whose signature does not verify; [`Error::UnsupportedKey`] for a request signed with
/// an algorithm kmssh cannot check, or naming [`Field::SubjectKey`] for a key algorithm
/// or RSA size it does not certify; [`Error::InvalidField`] naming [`Field::SubjectKey`]
/// for an invalid key, [`Field::SubjectName`] (or [`Field::CaCertificate`] for the
/// issuer's name), [`Field::DnsName`], [`Field::Validity`] or [`Field::Serial`];
/// [`Error::Signing`] when the key fails.
pub async fn issue_leaf(key: &dyn KmsKey, request: &LeafRequest) -> Result<Certificate> {
    let ca = &request.ca_certificate;
    check_issuer(ca, key.public_key())?;
    let algorithm = signature_algorithm_for(key, request.signature_algorithm)?;
    let (requested_subject, spki) = match &request.key {
        LeafKey::Request(csr) => (Some(&csr.info.subject), &csr.info.public_key),
        LeafKey::PublicKey(spki) => (None, spki),
    };
    // The key's rules first: a refused key is named as such, whatever its request says.
    check_subject_key(spki)?;
    if let LeafKey::Request(csr) = &request.key {
        verify_certification_request(csr)?;
    }
    let subject = match (&request.subject, requested_subject) {
        (Some(text), _) => parse_name(text)?,
        (None, Some(name)) => {
            check_name(name, Field::SubjectName)?;
            name.clone()
        }
        (None, None) => Name::default(),
    };
    let issuer = ca.tbs_certificate().subject();
    check_name(issuer, Field::CaCertificate)?;
    let alt_names = alt_names(&request.dns_names, &request.ip_addresses)?;
    if subject.is_empty() && alt_names.is_empty() {
        return Err(Error::field(
            Field::SubjectName,
            "a leaf needs a subject name or at least one DNS name or IP address",
        ));
    }
    let mut extended_usages = Vec::new();
    if request.server_auth {
        extended_usages.push(rfc5280::ID_KP_SERVER_AUTH);
    }
    if request.client_auth {
        extended_usages.push(rfc5280::ID_KP_CLIENT_AUTH);
    }
    let validity = validity(request.days)?;
    let ca_validity = ca.tbs_certificate().validity();
    if validity.not_after.to_system_time() > ca_validity.not_after.to_system_time() {
        return Err(Error::field(
            Field::Validity,
            format!(
                "{} days would outlive its CA certificate (not after {})",
                request.days, ca_validity.not_after
            ),
        ));
    }
    let builder = CertificateBuilder::new(
        Leaf {
            issuer: issuer.clone(),
            subject,
            alt_names,
            extended_usages,
        },
        serial_number(request.serial)?,
        validity,
        spki.clone(),
    )
    .map_err(build_error)?;
    sign(builder, key, algorithm).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_checked() {
        for good in [
            "www.example.com",
            "*.example.com",
            "localhost",
            "example.com.",
        ] {
            assert!(alt_names(&[good.to_owned()], &[]).is_ok(), "{good}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        for bad in [
            "",
            "a b.com",
            "a..com",
            "ex\u{e4}mple.com",
            long_label.as_str(),
        ] {
            assert!(
                matches!(
                    alt_names(&[bad.to_owned()], &[]),
                    Err(Error::InvalidField {
                        field: Field::DnsName,
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }
}
