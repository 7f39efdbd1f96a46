//! Self-signed CA certificates for a KMS key.

use kmssh_core::KmsKey;
use x509_cert::Certificate;
use x509_cert::builder::CertificateBuilder;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::spki::SubjectPublicKeyInfoRef;

use super::{
    DEFAULT_CA_DAYS, build_error, key_spki, parse_name, serial_number, sign,
    signature_algorithm_for, validity,
};
use crate::error::{Error, Field, Result};

/// What a self-signed CA certificate says: built with [`CaRequest::new`], then adjusted
/// field by field.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CaRequest {
    /// The CA's name, RFC 4514 (`CN=Example CA,O=Example`); it must not be empty.
    pub subject: String,
    /// Days of validity from now (default [`DEFAULT_CA_DAYS`]).
    pub days: u32,
    /// The serial (positive), or `None` for 136 random bits.
    pub serial: Option<u64>,
    /// The basicConstraints pathLenConstraint, if any.
    pub path_len: Option<u8>,
    /// The signature algorithm, one the key signs; `None` for the default
    /// ([`crate::x509::signature_algorithm_for`]: sha256WithRSAEncryption for RSA keys that
    /// allow it).
    pub signature_algorithm: Option<kmssh_core::Algorithm>,
}

impl CaRequest {
    /// A request for a CA named `subject`, valid [`DEFAULT_CA_DAYS`] days from now, with a
    /// random serial and no path length constraint.
    #[must_use]
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            days: DEFAULT_CA_DAYS,
            serial: None,
            path_len: None,
            signature_algorithm: None,
        }
    }
}

/// A self-signed CA certificate: critical basicConstraints CA, keyCertSign and cRLSign,
/// and a key identifier that is both subject and authority key identifier.
struct SelfSignedCa {
    subject: Name,
    path_len: Option<u8>,
}

impl BuilderProfile for SelfSignedCa {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
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
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let subject = tbs.subject();
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        let mut extensions = Vec::new();
        extensions.push(
            BasicConstraints {
                ca: true,
                path_len_constraint: self.path_len,
            }
            .to_extension(subject, &extensions)?,
        );
        extensions.push(
            KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)
                .to_extension(subject, &extensions)?,
        );
        extensions.push(
            AuthorityKeyIdentifier {
                key_identifier: Some(ski.0.clone()),
                ..Default::default()
            }
            .to_extension(subject, &extensions)?,
        );
        extensions.push(ski.to_extension(subject, &extensions)?);
        Ok(extensions)
    }
}

/// Issues a self-signed CA certificate for the key, signed by it.
///
/// # Errors
/// [`Error::InvalidField`] naming [`Field::SubjectName`] (unparsable, empty, or with a
/// value that is not a valid UTF8String, PrintableString or IA5String or that holds a
/// control character: `CN=\FF` would write invalid UTF-8 that OpenSSL cannot load),
/// [`Field::Serial`] or [`Field::Validity`] before anything is sent to the key;
/// [`Error::Signing`] when the key fails (its kind kept).
pub async fn issue_ca(key: &dyn KmsKey, request: &CaRequest) -> Result<Certificate> {
    let subject = parse_name(&request.subject)?;
    if subject.is_empty() {
        return Err(Error::field(
            Field::SubjectName,
            "a CA certificate needs a non-empty subject name",
        ));
    }
    let algorithm = signature_algorithm_for(key, request.signature_algorithm)?;
    let builder = CertificateBuilder::new(
        SelfSignedCa {
            subject,
            path_len: request.path_len,
        },
        serial_number(request.serial)?,
        validity(request.days)?,
        key_spki(key.public_key())?,
    )
    .map_err(build_error)?;
    sign(builder, key, algorithm).await
}
