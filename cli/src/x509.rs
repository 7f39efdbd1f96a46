//! `kmssh x509`: X.509 certificates signed through the KMS key by RustCrypto's
//! `x509-cert` builder, driven by the core [`KmsSigner`] bridge.
//!
//! The two profiles are written here rather than taken from `x509_cert::builder::profile`
//! because its CA/B Forum `Root` demands C, O and CN in every CA name and its `Subscriber`
//! only covers domain-validated TLS servers; an SSH CA operator wants neither limit.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use const_oid::db::rfc5280;
use kmssh_core::{Algorithm, EcPublicKey, EcdsaSignature, KmsKey, KmsSigner};
use x509_cert::Certificate;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{AsyncBuilder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::der::asn1::Ia5String;
use x509_cert::der::{Decode, DecodePem, Encode, EncodePem, pem::LineEnding};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::request::CertReq;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{
    EncodePublicKey, ObjectIdentifier, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef,
};
use x509_cert::time::Validity;

use crate::{Class, Failure, input};

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

/// What `kmssh x509 ca` asks for.
pub struct CaRequest<'a> {
    /// The CA's distinguished name, RFC 4514 (`CN=Example SSH CA,O=Example`).
    pub subject: &'a str,
    /// Days of validity from now.
    pub days: u32,
    /// The serial, or a random 136-bit one.
    pub serial: Option<u64>,
    /// The pathLenConstraint, if any.
    pub path_len: Option<u8>,
}

/// What `kmssh x509 leaf` asks for.
pub struct LeafRequest<'a> {
    /// The CA certificate (PEM or DER) whose subject becomes the issuer.
    pub ca_certificate: &'a [u8],
    /// The subject's key: a PKCS#10 request (PEM or DER), its signature checked.
    pub csr: Option<&'a [u8]>,
    /// The subject's key: a SubjectPublicKeyInfo (PEM or DER).
    pub public_key: Option<&'a [u8]>,
    /// The subject name; required with a bare public key, replaces a CSR's.
    pub subject: Option<&'a str>,
    /// DNS names for subjectAltName.
    pub dns_names: &'a [String],
    /// IP addresses for subjectAltName.
    pub ip_addresses: &'a [IpAddr],
    /// Add the serverAuth extended key usage.
    pub server_auth: bool,
    /// Add the clientAuth extended key usage.
    pub client_auth: bool,
    /// Days of validity from now.
    pub days: u32,
    /// The serial, or a random 136-bit one.
    pub serial: Option<u64>,
}

fn parse_name(text: &str) -> Result<Name, Failure> {
    Name::from_str(text).map_err(|e| input(format!("subject {text:?}: not an RFC 4514 name: {e}")))
}

fn serial_number(serial: Option<u64>) -> Result<SerialNumber, Failure> {
    match serial {
        Some(0) => Err(input(
            "--serial 0: X.509 serials must be positive (RFC 5280 §4.1.2.2)",
        )),
        // DER INTEGERs are signed: a leading zero keeps the high bit from making it negative.
        Some(value) => {
            let mut bytes = vec![0];
            bytes.extend_from_slice(&value.to_be_bytes());
            let start = bytes
                .iter()
                .position(|b| *b != 0)
                .map_or(bytes.len() - 1, |i| {
                    if bytes[i] & 0x80 != 0 { i - 1 } else { i }
                });
            SerialNumber::new(&bytes[start..]).map_err(|e| input(format!("serial {value}: {e}")))
        }
        None => {
            use kmssh_pki::ssh_key::{getrandom::SysRng, rand_core::UnwrapErr};
            Ok(SerialNumber::generate(&mut UnwrapErr(SysRng)))
        }
    }
}

fn validity(days: u32) -> Result<Validity, Failure> {
    if days == 0 {
        return Err(input("--days must be at least 1"));
    }
    Validity::from_now(Duration::from_secs(u64::from(days) * 86_400)).map_err(|_| {
        input(format!(
            "--days {days}: ends after 9999-12-31, the last date X.509 can hold"
        ))
    })
}

/// Reads a PEM or DER document of one type.
fn decode<T>(bytes: &[u8], what: &str) -> Result<T, Failure>
where
    T: DecodePem + for<'a> Decode<'a>,
{
    let pem = bytes.trim_ascii_start().starts_with(b"-----BEGIN");
    let decoded = if pem {
        T::from_pem(bytes).map_err(|e| e.to_string())
    } else {
        T::from_der(bytes).map_err(|e| e.to_string())
    };
    decoded.map_err(|e| input(format!("{what}: {e}")))
}

fn build_error(e: x509_cert::builder::Error) -> Failure {
    // A signing failure keeps the KMS error's class (throttled, denied, bad signature).
    if let x509_cert::builder::Error::Signature(signature) = &e
        && let Some(kms) =
            std::error::Error::source(signature).and_then(|s| s.downcast_ref::<kmssh_core::Error>())
    {
        return Failure {
            class: Class::of(kms.kind()),
            message: kms.to_string(),
        };
    }
    Failure {
        class: Class::Other,
        message: format!("cannot build the certificate: {e}"),
    }
}

/// Signs the certificate through the key, then checks the signature against the key's
/// public key before anything is written.
async fn build<P: BuilderProfile>(
    builder: CertificateBuilder<P>,
    key: &Arc<dyn KmsKey>,
) -> Result<String, Failure> {
    let signer = KmsSigner::new(key.clone());
    let certificate = builder
        .build_async::<_, EcdsaSignature>(&signer)
        .await
        .map_err(build_error)?;
    let tbs = certificate
        .tbs_certificate()
        .to_der()
        .map_err(|e| input(format!("certificate encoding: {e}")))?;
    let algorithm = key.algorithm();
    let signature = EcdsaSignature::from_der(algorithm, certificate.signature().raw_bytes())?;
    key.public_key()
        .verify_digest(algorithm.digest(&tbs).as_ref(), &signature)?;
    certificate
        .to_pem(LineEnding::LF)
        .map_err(|e| input(format!("certificate encoding: {e}")))
}

fn spki_der(key: &EcPublicKey) -> Result<Vec<u8>, Failure> {
    Ok(key
        .to_public_key_der()
        .map_err(|e| input(format!("public key encoding: {e}")))?
        .into_vec())
}

/// A self-signed CA certificate for the key, as PEM.
pub async fn issue_ca(key: &Arc<dyn KmsKey>, request: &CaRequest<'_>) -> Result<String, Failure> {
    let subject = parse_name(request.subject)?;
    if subject.is_empty() {
        return Err(input("a CA certificate needs a non-empty --subject"));
    }
    let spki = SubjectPublicKeyInfoOwned::from_der(&spki_der(key.public_key())?)
        .map_err(|e| input(format!("public key encoding: {e}")))?;
    let builder = CertificateBuilder::new(
        SelfSignedCa {
            subject,
            path_len: request.path_len,
        },
        serial_number(request.serial)?,
        validity(request.days)?,
        spki,
    )
    .map_err(build_error)?;
    build(builder, key).await
}

/// Checks that `ca` is a CA certificate for exactly this key, fit to sign certificates.
fn check_issuer(ca: &Certificate, key: &dyn KmsKey) -> Result<(), Failure> {
    let refuse = |message: String| Failure {
        class: Class::Key,
        message,
    };
    let tbs = ca.tbs_certificate();
    let ca_spki = tbs
        .subject_public_key_info()
        .to_der()
        .map_err(|e| input(format!("CA certificate: {e}")))?;
    if ca_spki != spki_der(key.public_key())? {
        return Err(refuse(format!(
            "the CA certificate ({}) is for another key than {}",
            tbs.subject(),
            key.uri()
        )));
    }
    let constraints = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| input(format!("CA certificate basicConstraints: {e}")))?;
    if !constraints.is_some_and(|(_, c)| c.ca) {
        return Err(refuse(format!(
            "the CA certificate ({}) is not a CA: basicConstraints has no cA=TRUE",
            tbs.subject()
        )));
    }
    let usage = tbs
        .get_extension::<KeyUsage>()
        .map_err(|e| input(format!("CA certificate keyUsage: {e}")))?;
    if let Some((_, usage)) = usage
        && !usage.key_cert_sign()
    {
        return Err(refuse(format!(
            "the CA certificate ({}) key usage does not allow keyCertSign",
            tbs.subject()
        )));
    }
    Ok(())
}

/// Checks a PKCS#10 request's self-signature, so a request cannot name a key its sender
/// does not hold. ECDSA (P-256/384/521), Ed25519 and RSA PKCS#1 v1.5 are understood.
fn verify_csr(request: &CertReq) -> Result<(), Failure> {
    use const_oid::db::{rfc5912, rfc8410};
    let unverified = |why: String| Failure {
        class: Class::Verification,
        message: format!("the CSR's signature does not verify: {why}"),
    };
    let info = request
        .info
        .to_der()
        .map_err(|e| input(format!("CSR: {e}")))?;
    let spki = request
        .info
        .public_key
        .to_der()
        .map_err(|e| input(format!("CSR public key: {e}")))?;
    let signature = request
        .signature
        .as_bytes()
        .ok_or_else(|| input("CSR signature: not a whole number of bytes"))?;
    let oid = request.algorithm.oid;
    let ecdsa_hash = match oid {
        rfc5912::ECDSA_WITH_SHA_256 => Some(Algorithm::EcdsaP256Sha256),
        rfc5912::ECDSA_WITH_SHA_384 => Some(Algorithm::EcdsaP384Sha384),
        rfc5912::ECDSA_WITH_SHA_512 => Some(Algorithm::EcdsaP521Sha512),
        _ => None,
    };
    if let Some(hash) = ecdsa_hash {
        // The hash is named by the signature algorithm, not the curve: openssl signs
        // P-384 requests with SHA-256 unless told otherwise.
        let key = EcPublicKey::from_public_key_der(&spki)?;
        let signature = EcdsaSignature::from_der(key.algorithm(), signature)
            .map_err(|e| unverified(e.to_string()))?;
        return key
            .verify_digest(hash.digest(&info).as_ref(), &signature)
            .map_err(|e| unverified(e.to_string()));
    }
    if oid == rfc8410::ID_ED_25519 {
        use ed25519_dalek::pkcs8::DecodePublicKey as _;
        use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
        let key = VerifyingKey::from_public_key_der(&spki)
            .map_err(|e| input(format!("CSR Ed25519 public key: {e}")))?;
        let signature = Signature::from_slice(signature).map_err(|e| unverified(e.to_string()))?;
        return key
            .verify(&info, &signature)
            .map_err(|e| unverified(e.to_string()));
    }
    let rsa = |hash: &str| -> Result<(), Failure> {
        use rsa::pkcs1v15::{Signature, VerifyingKey};
        use rsa::pkcs8::DecodePublicKey as _;
        use rsa::signature::Verifier as _;
        let key = rsa::PublicKey::from_public_key_der(&spki)
            .map_err(|e| input(format!("CSR RSA public key: {e}")))?;
        let signature = Signature::try_from(signature).map_err(|e| unverified(e.to_string()))?;
        let verified = match hash {
            "sha256" => VerifyingKey::<sha2::Sha256>::new(key).verify(&info, &signature),
            "sha384" => VerifyingKey::<sha2::Sha384>::new(key).verify(&info, &signature),
            _ => VerifyingKey::<sha2::Sha512>::new(key).verify(&info, &signature),
        };
        verified.map_err(|e| unverified(e.to_string()))
    };
    match oid {
        rfc5912::SHA_256_WITH_RSA_ENCRYPTION => rsa("sha256"),
        rfc5912::SHA_384_WITH_RSA_ENCRYPTION => rsa("sha384"),
        rfc5912::SHA_512_WITH_RSA_ENCRYPTION => rsa("sha512"),
        other => Err(input(format!(
            "CSR signature algorithm {other} is not supported \
             (ECDSA with SHA-2, Ed25519 or RSA PKCS#1 v1.5 with SHA-2 are)"
        ))),
    }
}

fn not_after(certificate: &Certificate) -> SystemTime {
    certificate
        .tbs_certificate()
        .validity()
        .not_after
        .to_system_time()
}

/// A leaf certificate signed by the key under its CA certificate, as PEM.
pub async fn issue_leaf(
    key: &Arc<dyn KmsKey>,
    request: &LeafRequest<'_>,
) -> Result<String, Failure> {
    let ca: Certificate = decode(request.ca_certificate, "CA certificate")?;
    check_issuer(&ca, key.as_ref())?;
    let (requested_subject, spki) = match (request.csr, request.public_key) {
        (Some(csr), None) => {
            let csr: CertReq = decode(csr, "CSR")?;
            verify_csr(&csr)?;
            (Some(csr.info.subject), csr.info.public_key)
        }
        (None, Some(public_key)) => (None, decode(public_key, "public key")?),
        _ => return Err(input("give exactly one of --csr and --public-key")),
    };
    if spki.algorithm.oid == const_oid::db::rfc5912::ID_EC_PUBLIC_KEY {
        // An EC point off its curve would make a certificate nobody can use.
        let der = spki
            .to_der()
            .map_err(|e| input(format!("public key: {e}")))?;
        EcPublicKey::from_public_key_der(&der)?;
    }
    let subject = match (request.subject, requested_subject) {
        (Some(text), _) => parse_name(text)?,
        (None, Some(name)) => name,
        (None, None) => return Err(input("--subject is required with --public-key")),
    };
    let mut alt_names = Vec::new();
    for name in request.dns_names {
        let ia5 = Ia5String::new(name)
            .map_err(|_| input(format!("--dns-name {name:?}: not an ASCII name")))?;
        if name.is_empty() || name.len() > 253 {
            return Err(input(format!("--dns-name {name:?}: not a DNS name")));
        }
        alt_names.push(GeneralName::DnsName(ia5));
    }
    alt_names.extend(request.ip_addresses.iter().map(|ip| GeneralName::from(*ip)));
    if subject.is_empty() && alt_names.is_empty() {
        return Err(input(
            "a leaf needs a subject name or at least one --dns-name / --ip",
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
    if validity.not_after.to_system_time() > not_after(&ca) {
        return Err(input(format!(
            "the leaf would outlive its CA certificate (not after {}): use a smaller --days",
            ca.tbs_certificate().validity().not_after
        )));
    }
    let builder = CertificateBuilder::new(
        Leaf {
            issuer: ca.tbs_certificate().subject().clone(),
            subject,
            alt_names,
            extended_usages,
        },
        serial_number(request.serial)?,
        validity,
        spki,
    )
    .map_err(build_error)?;
    build(builder, key).await
}
