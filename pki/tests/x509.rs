//! X.509 (feature `x509`): a CA certificate and a leaf for an openssl-made request pass
//! `openssl verify` for ECDSA, RSA (sha256WithRSAEncryption by default, the hash asked for
//! otherwise) and Ed25519 CA keys; forged requests, foreign CA certificates, algorithms the
//! CA key does not sign and KMS failures are refused with the right kind.
#![cfg(feature = "x509")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use common::{Provider, SPECS, key};
use kmssh_backend_local::LocalKey;
use kmssh_core::{
    Algorithm, Curve, ErrorKind, KeyFamily, KeySpec, KeyUri, KmsKey, PublicKey, Signature,
    SigningInput,
};
use kmssh_pki::x509::{
    CaRequest, LeafKey, LeafRequest, NOT_BEFORE_BACKDATE, certificate_to_der, certificate_to_pem,
    check_issuer, issue_ca, issue_leaf, parse_certificate, parse_certification_request,
    parse_public_key, signature_algorithm_for,
};
use kmssh_pki::x509_cert::Certificate;
use kmssh_pki::x509_cert::der::asn1::BitString;
use kmssh_pki::x509_cert::der::{Any, Encode as _};
use kmssh_pki::x509_cert::spki::{
    AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned,
};
use kmssh_pki::{Error, Field, SignatureFailure};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

fn run(command: &mut Command) -> Output {
    let out = command.output().expect("runs");
    assert!(
        out.status.success(),
        "{command:?}: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `openssl req -new -newkey … -nodes -subj …`: a request signed by a fresh key.
fn openssl_csr(dir: &Path, name: &str, newkey: &[&str]) -> Vec<u8> {
    let csr = dir.join(format!("{name}.csr"));
    run(Command::new("openssl")
        .args(["req", "-new", "-nodes", "-subj", "/CN=www.example.com"])
        .args(newkey)
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(&csr));
    std::fs::read(csr).expect("read CSR")
}

fn openssl_text(path: &Path) -> String {
    let out = run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(path));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl_verify(ca: &Path, leaf: &Path) -> Output {
    Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(ca)
        .arg(leaf)
        .output()
        .expect("openssl verify runs")
}

async fn ca_for(key: &LocalKey) -> Certificate {
    let mut request = CaRequest::new("CN=kmssh test CA,O=Example");
    request.path_len = Some(0);
    issue_ca(key, &request).await.expect("CA certificate")
}

/// How `openssl x509 -text` names a signature algorithm.
fn openssl_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::EcdsaP256Sha256 => "ecdsa-with-SHA256",
        Algorithm::EcdsaP384Sha384 => "ecdsa-with-SHA384",
        Algorithm::EcdsaP521Sha512 => "ecdsa-with-SHA512",
        Algorithm::RsaPkcs1Sha256 => "sha256WithRSAEncryption",
        Algorithm::RsaPkcs1Sha384 => "sha384WithRSAEncryption",
        Algorithm::RsaPkcs1Sha512 => "sha512WithRSAEncryption",
        Algorithm::Ed25519 => "ED25519",
    }
}

/// The certificate is signed with `algorithm`, in both places it says so, with RFC 4055's
/// NULL parameters for RSA and none otherwise (RFC 5758, RFC 8410), and openssl agrees.
fn assert_signed_with(cert: &Certificate, path: &Path, algorithm: Algorithm) {
    let identifier = cert.signature_algorithm();
    assert_eq!(identifier.oid, algorithm.x509_oid(), "{algorithm}");
    assert_eq!(
        identifier,
        cert.tbs_certificate().signature(),
        "{algorithm}: outer and inner identifiers"
    );
    match algorithm.family() {
        KeyFamily::Rsa => assert_eq!(identifier.parameters, Some(Any::null()), "{algorithm}"),
        _ => assert_eq!(identifier.parameters, None, "{algorithm}"),
    }
    let text = openssl_text(path);
    let line = format!("Signature Algorithm: {}", openssl_name(algorithm));
    assert_eq!(text.matches(&line).count(), 2, "{algorithm}: {text}");
}

#[tokio::test]
async fn ca_and_leaf_pass_openssl_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    for spec in SPECS {
        let key = key(spec);
        let algorithm = signature_algorithm_for(&key, None).expect("default");
        // sha256WithRSAEncryption for RSA, as `openssl req -x509` chooses.
        let expected = match spec.family() {
            KeyFamily::Rsa => Algorithm::RsaPkcs1Sha256,
            _ => spec.algorithms()[0],
        };
        assert_eq!(algorithm, expected, "{spec}");
        let ca = ca_for(&key).await;
        check_issuer(&ca, key.public_key()).expect("the CA is for this key");
        let ca_pem = certificate_to_pem(&ca).expect("PEM");
        let ca_path = write(dir.path(), "ca.pem", ca_pem.as_bytes());
        // DER and PEM read back to the same certificate.
        assert_eq!(parse_certificate(ca_pem.as_bytes()).expect("PEM"), ca);
        assert_eq!(
            parse_certificate(&certificate_to_der(&ca).expect("DER")).expect("DER"),
            ca
        );

        let text = openssl_text(&ca_path);
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
        // RFC 4514 writes the last RDN first: openssl prints DER order.
        assert!(
            text.contains("Issuer: O = Example, CN = kmssh test CA"),
            "{text}"
        );
        assert!(
            text.contains("Subject: O = Example, CN = kmssh test CA"),
            "{text}"
        );
        let public_key = match spec {
            KeySpec::Ecdsa(_) => "Public Key Algorithm: id-ecPublicKey".to_owned(),
            KeySpec::Rsa(bits) => format!("Public-Key: ({bits} bit)"),
            KeySpec::Ed25519 => "Public Key Algorithm: ED25519".to_owned(),
        };
        assert!(text.contains(&public_key), "{spec}: {text}");
        assert_signed_with(&ca, &ca_path, algorithm);
        let self_check = openssl_verify(&ca_path, &ca_path);
        assert!(
            self_check.status.success(),
            "{spec}: {}",
            String::from_utf8_lossy(&self_check.stderr)
        );

        let csr = parse_certification_request(&openssl_csr(
            dir.path(),
            "p256",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ))
        .expect("CSR");
        let mut request = LeafRequest::new(ca.clone(), LeafKey::Request(csr.clone()));
        request.dns_names = vec!["www.example.com".into(), "example.com".into()];
        request.ip_addresses = vec!["192.0.2.7".parse().expect("IP")];
        request.server_auth = true;
        request.days = 30;
        request.serial = Some(0x8000_0000_0000_0001);
        let leaf = issue_leaf(&key, &request).await.expect("leaf");
        let leaf_path = write(
            dir.path(),
            "leaf.pem",
            certificate_to_pem(&leaf).expect("PEM").as_bytes(),
        );

        let out = openssl_verify(&ca_path, &leaf_path);
        assert!(
            out.status.success(),
            "{spec}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("leaf.pem: OK"));
        assert_signed_with(&leaf, &leaf_path, algorithm);

        let tbs = leaf.tbs_certificate();
        assert_eq!(
            tbs.subject(),
            &csr.info.subject,
            "the request's subject is kept"
        );
        assert_eq!(tbs.issuer(), ca.tbs_certificate().subject());
        assert_eq!(tbs.subject_public_key_info(), &csr.info.public_key);
        let text = openssl_text(&leaf_path);
        for expected in [
            "Subject: CN = www.example.com",
            "CA:FALSE",
            "DNS:www.example.com, DNS:example.com, IP Address:192.0.2.7",
            "TLS Web Server Authentication",
            "Serial Number:",
            "80:00:00:00:00:00:00:01",
        ] {
            assert!(text.contains(expected), "{spec}: {expected}\n{text}");
        }
        // Both start a few minutes in the past, so a relying party whose clock lags (or a
        // freshly booted machine whose clock NTP steps back) does not see "not yet valid".
        let now = SystemTime::now();
        for certificate in [&ca, &leaf] {
            let validity = certificate.tbs_certificate().validity();
            let not_before = validity.not_before.to_system_time();
            let lead = now
                .duration_since(not_before)
                .expect("notBefore is in the past");
            assert!(
                lead >= NOT_BEFORE_BACKDATE && lead < NOT_BEFORE_BACKDATE + Duration::from_secs(60),
                "{spec}: notBefore {lead:?} before now"
            );
        }
        let days = leaf.tbs_certificate().validity().not_after.to_system_time();
        let ahead = days.duration_since(now).expect("notAfter is ahead");
        assert!(
            ahead > Duration::from_secs(30 * 86_400 - 60),
            "{spec}: {ahead:?}"
        );
    }
}

/// An openssl-made P-256 request for `www.example.com`.
fn p256_request(dir: &Path, name: &str) -> LeafKey {
    LeafKey::Request(
        parse_certification_request(&openssl_csr(
            dir,
            name,
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ))
        .expect("CSR"),
    )
}

#[tokio::test]
async fn an_rsa_ca_signs_with_the_hash_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bits in [2048, 4096] {
        let key = key(KeySpec::Rsa(bits));
        let mut request = CaRequest::new("CN=kmssh RSA CA");
        request.signature_algorithm = Some(Algorithm::RsaPkcs1Sha512);
        let ca = issue_ca(&key, &request).await.expect("CA");
        let ca_path = write(
            dir.path(),
            "ca.pem",
            certificate_to_pem(&ca).expect("PEM").as_bytes(),
        );
        assert_signed_with(&ca, &ca_path, Algorithm::RsaPkcs1Sha512);
        // The leaf's hash is chosen on its own: every one the key signs verifies.
        for algorithm in [
            None,
            Some(Algorithm::RsaPkcs1Sha512),
            Some(Algorithm::RsaPkcs1Sha384),
        ] {
            let mut request = LeafRequest::new(ca.clone(), p256_request(dir.path(), "leaf"));
            request.signature_algorithm = algorithm;
            let leaf = issue_leaf(&key, &request).await.expect("leaf");
            let leaf_path = write(
                dir.path(),
                "leaf.pem",
                certificate_to_pem(&leaf).expect("PEM").as_bytes(),
            );
            let out = openssl_verify(&ca_path, &leaf_path);
            assert!(
                out.status.success(),
                "RSA-{bits} {algorithm:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_signed_with(
                &leaf,
                &leaf_path,
                algorithm.unwrap_or(Algorithm::RsaPkcs1Sha256),
            );
        }
    }

    // A Cloud KMS RSA_SIGN_PKCS1_4096_SHA512 key signs SHA-512 without being asked.
    let sha512_only = Provider::new(key(KeySpec::Rsa(2048)), &[Algorithm::RsaPkcs1Sha512], None);
    assert_eq!(
        signature_algorithm_for(&sha512_only, None).expect("default"),
        Algorithm::RsaPkcs1Sha512
    );
    let ca = issue_ca(&sha512_only, &CaRequest::new("CN=bound CA"))
        .await
        .expect("CA");
    let ca_path = write(
        dir.path(),
        "ca.pem",
        certificate_to_pem(&ca).expect("PEM").as_bytes(),
    );
    assert_signed_with(&ca, &ca_path, Algorithm::RsaPkcs1Sha512);
    assert!(openssl_verify(&ca_path, &ca_path).status.success());
}

#[tokio::test]
async fn an_algorithm_the_ca_key_does_not_sign_is_refused_before_signing() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (spec, asked, bound) in [
        (KeySpec::Ed25519, Algorithm::RsaPkcs1Sha256, None),
        (
            KeySpec::Ecdsa(Curve::P256),
            Algorithm::EcdsaP384Sha384,
            None,
        ),
        (KeySpec::Rsa(2048), Algorithm::Ed25519, None),
        (
            KeySpec::Rsa(2048),
            Algorithm::RsaPkcs1Sha256,
            Some(&[Algorithm::RsaPkcs1Sha512][..]),
        ),
    ] {
        let local = key(spec);
        let ca = ca_for(&local).await;
        let key = match bound {
            Some(algorithms) => Provider::new(local, algorithms, None),
            None => Provider::unbound(local),
        };
        let what = format!("{spec} {asked}");
        let mut request = CaRequest::new("CN=CA");
        request.signature_algorithm = Some(asked);
        let err = issue_ca(&key, &request).await.expect_err(&what);
        let mut leaf = LeafRequest::new(ca, p256_request(dir.path(), "leaf"));
        leaf.signature_algorithm = Some(asked);
        let leaf_err = issue_leaf(&key, &leaf).await.expect_err(&what);
        for err in [err, leaf_err] {
            assert!(
                matches!(
                    err,
                    Error::UnsupportedKey {
                        field: Field::SignatureAlgorithm,
                        ..
                    }
                ),
                "{what}: {err:?}"
            );
            assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm);
            assert!(
                err.to_string()
                    .contains(&format!(": the key cannot sign {asked}")),
                "{what}: {err}"
            );
        }
        assert_eq!(key.inner().calls(), 0, "{what}: nothing signed");
    }
}

#[tokio::test]
async fn requests_from_every_key_type_openssl_makes_are_checked_and_certified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key(KeySpec::Ecdsa(Curve::P256));
    let ca = ca_for(&key).await;
    let ca_path = write(
        dir.path(),
        "ca.pem",
        certificate_to_pem(&ca).expect("PEM").as_bytes(),
    );
    for (name, newkey) in [
        // openssl signs P-384 and P-521 requests with SHA-256 unless told otherwise.
        (
            "p384",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"][..],
        ),
        (
            "p521-sha512",
            &[
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-521",
                "-sha512",
            ][..],
        ),
        ("ed25519", &["-newkey", "ed25519"][..]),
        ("rsa", &["-newkey", "rsa:2048"][..]),
        ("rsa-sha384", &["-newkey", "rsa:2048", "-sha384"][..]),
    ] {
        let csr = parse_certification_request(&openssl_csr(dir.path(), name, newkey)).expect("CSR");
        let mut request = LeafRequest::new(ca.clone(), LeafKey::Request(csr));
        request.client_auth = true;
        let leaf = issue_leaf(&key, &request).await.expect(name);
        let leaf_path = write(
            dir.path(),
            "leaf.pem",
            certificate_to_pem(&leaf).expect("PEM").as_bytes(),
        );
        let out = openssl_verify(&ca_path, &leaf_path);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn a_request_with_a_broken_signature_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key(KeySpec::Ecdsa(Curve::P256));
    let ca = ca_for(&key).await;
    let csr = parse_certification_request(&openssl_csr(
        dir.path(),
        "forged",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    ))
    .expect("CSR");

    // A flipped bit in the signature.
    let mut flipped = csr.clone();
    let mut bytes = csr.signature.raw_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    flipped.signature = BitString::from_bytes(&bytes).expect("bit string");
    // A changed subject under the original signature.
    let mut renamed = csr.clone();
    renamed.info.subject = "CN=admin.example.com".parse().expect("name");
    // Another key under the original signature.
    let mut rekeyed = csr.clone();
    rekeyed.info.public_key =
        parse_public_key(key.public_key().to_pem().expect("PEM").as_bytes()).expect("SPKI");

    for (what, forged) in [
        ("signature", flipped),
        ("subject", renamed),
        ("key", rekeyed),
    ] {
        let request = LeafRequest::new(ca.clone(), LeafKey::Request(forged));
        let err = issue_leaf(&key, &request).await.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::BadSignature, "{what}: {err}");
        assert!(
            matches!(
                err,
                Error::SignatureRejected {
                    field: Field::CertificationRequest,
                    failure: SignatureFailure::DoesNotVerify { .. },
                }
            ),
            "{what}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_ca_certificate_for_another_key_or_not_a_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_a = key(KeySpec::Ecdsa(Curve::P256));
    let key_b = key(KeySpec::Ecdsa(Curve::P256));
    let ca_a = ca_for(&key_a).await;
    let csr = parse_certification_request(&openssl_csr(
        dir.path(),
        "leaf",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    ))
    .expect("CSR");

    let request = LeafRequest::new(ca_a.clone(), LeafKey::Request(csr.clone()));
    let err = issue_leaf(&key_b, &request).await.expect_err("another key");
    assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
    assert!(matches!(
        err,
        Error::KeyMismatch {
            field: Field::CaCertificate,
            ..
        }
    ));
    assert!(err.to_string().contains("another key"), "{err}");

    // A leaf for key A's own public key is a certificate for key A, but not a CA.
    let spki =
        parse_public_key(key_a.public_key().to_pem().expect("PEM").as_bytes()).expect("SPKI");
    let mut own = LeafRequest::new(ca_a.clone(), LeafKey::PublicKey(spki));
    own.subject = Some("CN=not a CA".into());
    let not_a_ca = issue_leaf(&key_a, &own).await.expect("leaf for key A");
    let request = LeafRequest::new(not_a_ca, LeafKey::Request(csr));
    let err = issue_leaf(&key_a, &request).await.expect_err("not a CA");
    assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
    assert!(err.to_string().contains("not a CA"), "{err}");
}

#[tokio::test]
async fn bad_fields_are_named_before_anything_is_signed() {
    let key = key(KeySpec::Ecdsa(Curve::P384));
    for (subject, days, serial, field) in [
        ("", 10, None, Field::SubjectName),
        ("not a name", 10, None, Field::SubjectName),
        ("CN=ok", 0, None, Field::Validity),
        ("CN=ok", u32::MAX, None, Field::Validity),
        ("CN=ok", 10, Some(0), Field::Serial),
    ] {
        let mut request = CaRequest::new(subject);
        request.days = days;
        request.serial = serial;
        let err = issue_ca(&key, &request).await.expect_err(subject);
        assert_eq!(
            err.offending_field(),
            Some(field),
            "{subject} {days}: {err}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    let mut short_ca = CaRequest::new("CN=short-lived CA");
    short_ca.days = 10;
    let ca = issue_ca(&key, &short_ca).await.expect("CA");
    let spki = parse_public_key(
        self::key(KeySpec::Ecdsa(Curve::P256))
            .public_key()
            .to_pem()
            .expect("PEM")
            .as_bytes(),
    )
    .expect("SPKI");

    let mut outliving = LeafRequest::new(ca.clone(), LeafKey::PublicKey(spki.clone()));
    outliving.subject = Some("CN=leaf".into());
    outliving.days = 365;
    let err = issue_leaf(&key, &outliving).await.expect_err("outlives");
    assert_eq!(err.offending_field(), Some(Field::Validity), "{err}");

    let nameless = LeafRequest::new(ca.clone(), LeafKey::PublicKey(spki.clone()));
    let err = issue_leaf(&key, &nameless).await.expect_err("no name");
    assert_eq!(err.offending_field(), Some(Field::SubjectName), "{err}");

    let mut bad_dns = LeafRequest::new(ca.clone(), LeafKey::PublicKey(spki));
    bad_dns.dns_names = vec!["bad name.example.com".into()];
    let err = issue_leaf(&key, &bad_dns).await.expect_err("bad DNS name");
    assert_eq!(err.offending_field(), Some(Field::DnsName), "{err}");

    for (bytes, field) in [
        (&b"garbage"[..], Field::CaCertificate),
        (
            &b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"[..],
            Field::CaCertificate,
        ),
    ] {
        let err = parse_certificate(bytes).expect_err("garbage");
        assert_eq!(err.offending_field(), Some(field));
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    let err = parse_certification_request(b"garbage").expect_err("garbage");
    assert_eq!(err.offending_field(), Some(Field::CertificationRequest));
}

/// A key whose provider is throttling: its error must reach the caller with its kind.
#[derive(Debug)]
struct ThrottledKey {
    uri: KeyUri,
    public_key: PublicKey,
}

#[kmssh_core::async_trait]
impl KmsKey for ThrottledKey {
    fn uri(&self) -> &KeyUri {
        &self.uri
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    async fn sign(
        &self,
        _algorithm: Algorithm,
        _input: SigningInput<'_>,
    ) -> kmssh_core::Result<Signature> {
        Err(kmssh_core::Error::new(
            ErrorKind::Throttled,
            "rate exceeded, slow down",
        ))
    }
}

#[tokio::test]
async fn a_kms_failure_keeps_its_kind() {
    let real = key(KeySpec::Ecdsa(Curve::P256));
    let throttled = ThrottledKey {
        uri: KeyUri::parse("local:ephemeral").expect("uri"),
        public_key: real.public_key().clone(),
    };
    let err = issue_ca(&throttled, &CaRequest::new("CN=CA"))
        .await
        .expect_err("throttled");
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert!(matches!(&err, Error::Signing(e) if e.kind() == ErrorKind::Throttled));

    let ca = ca_for(&real).await;
    let spki = parse_public_key(real.public_key().to_pem().expect("PEM").as_bytes()).expect("SPKI");
    let mut request = LeafRequest::new(ca, LeafKey::PublicKey(spki));
    request.subject = Some("CN=leaf".into());
    let err = issue_leaf(&throttled, &request)
        .await
        .expect_err("throttled");
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert!(err.kind().is_transient());
}

#[test]
fn files_read_from_disk_are_the_same_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = openssl_csr(
        dir.path(),
        "disk",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let der_path = dir.path().join("disk.der");
    run(Command::new("openssl")
        .args(["req", "-outform", "DER", "-in"])
        .arg(dir.path().join("disk.csr"))
        .arg("-out")
        .arg(&der_path));
    let from_pem = parse_certification_request(&pem).expect("PEM");
    let from_der =
        parse_certification_request(&std::fs::read(&der_path).expect("DER")).expect("DER");
    assert_eq!(from_pem, from_der);
    kmssh_pki::x509::verify_certification_request(&from_der).expect("self-signature");
}

#[tokio::test]
async fn a_bare_public_key_with_only_alt_names_gets_an_empty_subject_and_a_critical_san() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key(KeySpec::Ecdsa(Curve::P256));
    let ca = ca_for(&key).await;
    let ca_path = write(
        dir.path(),
        "ca.pem",
        certificate_to_pem(&ca).expect("PEM").as_bytes(),
    );
    let subject_key = self::key(KeySpec::Ecdsa(Curve::P521));
    let spki =
        parse_public_key(subject_key.public_key().to_pem().expect("PEM").as_bytes()).expect("SPKI");
    let mut request = LeafRequest::new(ca, LeafKey::PublicKey(spki));
    request.dns_names = vec!["api.example.com".into()];
    let leaf = issue_leaf(&key, &request).await.expect("leaf");
    assert!(leaf.tbs_certificate().subject().is_empty());
    let leaf_path = write(
        dir.path(),
        "leaf.pem",
        certificate_to_pem(&leaf).expect("PEM").as_bytes(),
    );
    let out = openssl_verify(&ca_path, &leaf_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = openssl_text(&leaf_path);
    assert!(
        text.contains("X509v3 Subject Alternative Name: critical"),
        "{text}"
    );
    assert!(text.contains("DNS:api.example.com"), "{text}");
}

// ---- subject keys and names kmssh refuses (issue 12, item 8) ---------------------------

/// `openssl req -new` for `subject` with a fresh key, the request's PEM.
fn openssl_csr_for(dir: &Path, name: &str, subject: &str, newkey: &[&str]) -> Vec<u8> {
    let csr = dir.join(format!("{name}.csr"));
    run(Command::new("openssl")
        .args(["req", "-new", "-nodes", "-subj", subject])
        .args(newkey)
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(&csr));
    std::fs::read(csr).expect("read CSR")
}

/// `openssl genpkey …`, then its public key as PEM (what `x509 --public-key` reads).
fn openssl_public_key(dir: &Path, name: &str, genpkey: &[&str]) -> Vec<u8> {
    let key = dir.join(format!("{name}.key"));
    run(Command::new("openssl")
        .arg("genpkey")
        .args(genpkey)
        .arg("-out")
        .arg(&key));
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key))
    .stdout
}

/// Whether OpenSSL's public-key check (`openssl pkey -pubin -pubcheck`) passes a DER key.
fn openssl_pubcheck(dir: &Path, spki: &SubjectPublicKeyInfoOwned) -> bool {
    let path = write(dir, "judged.der", &spki.to_der().expect("DER"));
    Command::new("openssl")
        .args([
            "pkey",
            "-pubin",
            "-inform",
            "DER",
            "-pubcheck",
            "-noout",
            "-in",
        ])
        .arg(path)
        .output()
        .expect("openssl runs")
        .status
        .success()
}

/// A leaf for `key` under a CA of `ca_key`, issued through a key that fails if asked to
/// sign: the refusal it returns shows nothing was signed.
async fn leaf_refused(ca_key: &LocalKey, key: LeafKey, subject: Option<&str>) -> Error {
    let never_signs = ThrottledKey {
        uri: KeyUri::parse("local:ephemeral").expect("uri"),
        public_key: ca_key.public_key().clone(),
    };
    let mut request = LeafRequest::new(ca_for(ca_key).await, key);
    request.subject = subject.map(str::to_owned);
    let err = issue_leaf(&never_signs, &request)
        .await
        .expect_err("refused");
    assert_ne!(err.kind(), ErrorKind::Throttled, "refused before signing");
    assert!(!err.to_string().contains('\n'), "one line: {err}");
    err
}

fn assert_unsupported_key(err: &Error, rule: &str) {
    assert!(
        matches!(
            err,
            Error::UnsupportedKey {
                field: Field::SubjectKey,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(rule), "{err} should say {rule:?}");
}

fn assert_invalid(err: &Error, field: Field, rule: &str) {
    assert!(
        matches!(err, Error::InvalidField { field: f, .. } if *f == field),
        "{err}"
    );
    assert!(err.to_string().contains(rule), "{err} should say {rule:?}");
}

/// The SubjectPublicKeyInfo of an RSA key with this modulus and exponent.
fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> SubjectPublicKeyInfoOwned {
    use rsa::pkcs1::der::Encode as _;
    use rsa::pkcs1::der::asn1::UintRef;
    let key = rsa::pkcs1::RsaPublicKeyRef {
        modulus: UintRef::new(modulus).expect("n"),
        public_exponent: UintRef::new(exponent).expect("e"),
    }
    .to_der()
    .expect("RSAPublicKey");
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1"),
            parameters: Some(Any::null()),
        },
        subject_public_key: BitString::from_bytes(&key).expect("bits"),
    }
}

#[tokio::test]
async fn small_rsa_and_unknown_algorithms_get_no_leaf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_key = key(KeySpec::Ecdsa(Curve::P256));

    // openssl makes and signs an RSA-1024 request; its signature is fine, its key is not.
    let csr = parse_certification_request(&openssl_csr(
        dir.path(),
        "rsa1024",
        &["-newkey", "rsa:1024"],
    ))
    .expect("CSR");
    kmssh_pki::x509::verify_certification_request(&csr).expect("a well-signed request");
    let err = leaf_refused(&ca_key, LeafKey::Request(csr), None).await;
    assert_unsupported_key(&err, "1024-bit modulus, at least 2048 bits required");

    // Bare public keys: sizes are counted in bits, so 2041 bits is not 2048.
    for bits in [512, 2041] {
        let pem = openssl_public_key(
            dir.path(),
            &format!("rsa{bits}"),
            &[
                "-algorithm",
                "RSA",
                "-pkeyopt",
                &format!("rsa_keygen_bits:{bits}"),
            ],
        );
        let spki = parse_public_key(&pem).expect("SPKI");
        let err = leaf_refused(&ca_key, LeafKey::PublicKey(spki), Some("CN=leaf")).await;
        assert_unsupported_key(
            &err,
            &format!("{bits}-bit modulus, at least 2048 bits required"),
        );
    }

    // Algorithms kmssh cannot judge are refused, not certified as given.
    for (name, genpkey, rule) in [
        ("ed448", &["-algorithm", "ed448"][..], "1.3.101.113"),
        ("x25519", &["-algorithm", "x25519"][..], "1.3.101.110"),
        (
            "k256",
            &[
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:secp256k1",
            ][..],
            "secp256k1",
        ),
    ] {
        let spki = parse_public_key(&openssl_public_key(dir.path(), name, genpkey)).expect("SPKI");
        let err = leaf_refused(&ca_key, LeafKey::PublicKey(spki), Some("CN=leaf")).await;
        assert_unsupported_key(&err, rule);
    }
}

#[tokio::test]
async fn invalid_ec_ed25519_and_rsa_subject_keys_get_no_leaf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_key = key(KeySpec::Ecdsa(Curve::P256));
    let refused = |spki: SubjectPublicKeyInfoOwned| {
        let ca_key = &ca_key;
        async move { leaf_refused(ca_key, LeafKey::PublicKey(spki), Some("CN=leaf")).await }
    };

    // EC: a compressed point (OpenSSL reads it, OpenSSH and many TLS stacks do not) and a
    // point off the curve (OpenSSL cannot even load it).
    let ec_key = dir.path().join("p256.key");
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&ec_key));
    let compressed = run(Command::new("openssl")
        .args(["ec", "-pubout", "-conv_form", "compressed", "-in"])
        .arg(&ec_key))
    .stdout;
    let err = refused(parse_public_key(&compressed).expect("SPKI")).await;
    assert_invalid(&err, Field::SubjectKey, "is a compressed P-256 point");
    let good = parse_public_key(
        &run(Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&ec_key))
        .stdout,
    )
    .expect("SPKI");
    assert!(openssl_pubcheck(dir.path(), &good));
    let mut point = good.subject_public_key.raw_bytes().to_vec();
    *point.last_mut().expect("y") ^= 1;
    let off_curve = SubjectPublicKeyInfoOwned {
        algorithm: good.algorithm.clone(),
        subject_public_key: BitString::from_bytes(&point).expect("bits"),
    };
    assert!(!openssl_pubcheck(dir.path(), &off_curve));
    let err = refused(off_curve).await;
    assert_invalid(&err, Field::SubjectKey, "is not a point on the P-256 curve");

    // Ed25519: the all-zero key, a small-order point anyone can forge signatures for.
    let mut zero = hex_der("302a300506032b6570032100");
    zero.extend_from_slice(&[0; 32]);
    let err = refused(parse_public_key(&zero).expect("SPKI")).await;
    assert_invalid(&err, Field::SubjectKey, "is a small-order (weak) point");
    let ed25519 = parse_public_key(&openssl_public_key(
        dir.path(),
        "ed",
        &["-algorithm", "ed25519"],
    ))
    .expect("SPKI");
    let mut request = LeafRequest::new(ca_for(&ca_key).await, LeafKey::PublicKey(ed25519));
    request.subject = Some("CN=ed25519 leaf".into());
    issue_leaf(&ca_key, &request)
        .await
        .expect("a sound Ed25519 key is certified");

    // RSA, judged by OpenSSL's public-key check: exponent 1, an even exponent, an even
    // modulus, a modulus with a small factor.
    let rsa = parse_public_key(&openssl_public_key(
        dir.path(),
        "rsa",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    ))
    .expect("SPKI");
    assert!(openssl_pubcheck(dir.path(), &rsa));
    let n = {
        use rsa::pkcs1::der::Decode as _;
        let parts = rsa::pkcs1::RsaPublicKeyRef::from_der(rsa.subject_public_key.raw_bytes())
            .expect("PKCS#1");
        parts.modulus.as_bytes().to_vec()
    };
    let mut even = n.clone();
    *even.last_mut().expect("n") &= 0xfe;
    // n − (n mod 3), 3 more off if that is even: odd and divisible by 3.
    let rem = n.iter().fold(0u32, |r, &b| (r * 256 + u32::from(b)) % 3);
    let mut by_three = n.clone();
    let mut borrow = if rem == 1 { 4 } else { rem };
    for byte in by_three.iter_mut().rev() {
        let value = i64::from(*byte) - i64::from(borrow);
        *byte = u8::try_from(value.rem_euclid(256)).expect("byte");
        borrow = u32::from(value < 0);
    }
    for (spki, rule) in [
        (
            rsa_spki(&n, &[1]),
            "has public exponent 1: it must be odd and greater than 1",
        ),
        (rsa_spki(&n, &[1, 0, 0]), "even: it must be odd"),
        (rsa_spki(&even, &[1, 0, 1]), "has an even modulus"),
        (
            rsa_spki(&by_three, &[1, 0, 1]),
            "has a modulus divisible by 3",
        ),
    ] {
        assert!(
            !openssl_pubcheck(dir.path(), &spki),
            "OpenSSL also refuses: {rule}"
        );
        let err = refused(spki).await;
        assert_invalid(&err, Field::SubjectKey, rule);
    }
}

fn hex_der(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test]
async fn names_must_be_valid_strings_without_control_characters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key(KeySpec::Ecdsa(Curve::P256));
    let never_signs = ThrottledKey {
        uri: KeyUri::parse("local:ephemeral").expect("uri"),
        public_key: key.public_key().clone(),
    };
    for (subject, rule) in [
        // `\FF` is one raw byte: a UTF8String OpenSSL cannot load.
        ("CN=\\FF", "CN value is not valid UTF-8"),
        ("CN=\\C3\\28 CA", "CN value is not valid UTF-8"),
        (
            "CN=bell\u{7}",
            "CN value contains the control character U+0007",
        ),
        (
            "CN=ok,O=x\u{1b}[31m",
            "O value contains the control character U+001B",
        ),
        ("CN=line\nbreak", "U+000A"),
        ("CN=del\u{7f}", "U+007F"),
        ("CN=c1\u{85}", "U+0085"),
        ("CN=#0403616263", "CN value has type OCTET STRING"),
        ("CN=ok,O=", "O value is empty"),
        (
            "C=D!",
            "C value is a PrintableString with characters outside its set",
        ),
        ("CN=ok,emailAddress=\u{e9}@example.com", "IA5String"),
    ] {
        let err = issue_ca(&never_signs, &CaRequest::new(subject))
            .await
            .expect_err(subject);
        assert_invalid(&err, Field::SubjectName, rule);
        assert!(!err.to_string().contains('\n'), "one line: {err}");
    }

    // UTF-8 that is valid is written, and OpenSSL reads it back.
    let ca = issue_ca(&key, &CaRequest::new("CN=Z\u{fc}rich CA,O=Example"))
        .await
        .expect("CA");
    let ca_path = write(
        dir.path(),
        "ca.pem",
        certificate_to_pem(&ca).expect("PEM").as_bytes(),
    );
    let out = run(Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "utf8", "-in"])
        .arg(&ca_path));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("CN=Z\u{fc}rich CA"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A leaf's name: given, or kept from a request whose sender put control characters in
    // it (openssl writes them as asked).
    let spki = parse_public_key(key.public_key().to_pem().expect("PEM").as_bytes()).expect("SPKI");
    let err = leaf_refused(
        &key,
        LeafKey::PublicKey(spki),
        Some("CN=x\u{1b}]0;title\u{7}"),
    )
    .await;
    assert_invalid(&err, Field::SubjectName, "U+001B");
    let csr = parse_certification_request(&openssl_csr_for(
        dir.path(),
        "bell",
        "/CN=a\u{7}b",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    ))
    .expect("CSR");
    let err = leaf_refused(&key, LeafKey::Request(csr.clone()), None).await;
    assert_invalid(
        &err,
        Field::SubjectName,
        "CN value contains the control character U+0007",
    );
    // Named anew, the same request is certified.
    let mut request = LeafRequest::new(ca_for(&key).await, LeafKey::Request(csr));
    request.subject = Some("CN=bell".into());
    issue_leaf(&key, &request).await.expect("renamed leaf");
}
