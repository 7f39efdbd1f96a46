//! Issuing and verifying certificates: the encoder agrees byte for byte with `ssh-key`'s
//! builder for ECDSA, RSA and Ed25519 CAs, `ssh-keygen -L` names each CA key type and
//! signature algorithm (`rsa-sha2-512` by default, `rsa-sha2-256` on request), algorithms
//! SSH cannot carry are refused before signing, every subject key type is accepted, and
//! verification catches each failure.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Provider, SPECS, key, ssh_keygen_label};
use kmssh_backend_local::{LocalKey, LocalOptions, SigningEngine};
use kmssh_core::{Algorithm, Curve, ErrorKind, KeyFamily, KeySpec, KmsKey};
use kmssh_pki::ssh_key::HashAlg;
use kmssh_pki::ssh_key::public::{Ed25519PublicKey, KeyData, SkEd25519};
use kmssh_pki::{
    Certificate, CertificateParameters, CertificateType, CriticalOption, Error, Extension, Field,
    VerifyFailure, VerifyOptions, cert_path_for, issue, issue_at, issue_with_nonce,
    parse_subject_key, pubkey_string, ssh_key_type, ssh_public_key, ssh_signature_algorithm,
};

const NOW: u64 = 1_750_000_000;

fn ssh_keygen(dir: &Path, name: &str, args: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-N", ""])
        .args(args)
        .arg("-f")
        .arg(&path)
        .output()
        .expect("ssh-keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn subject_from(path: &Path) -> KeyData {
    let line = std::fs::read_to_string(path.with_extension("pub")).expect("pub");
    parse_subject_key(&line).expect("subject")
}

/// `ssh-keygen` arguments for a CA key of each type.
const SSH_KEYGEN_CAS: [(&str, &[&str]); 6] = [
    ("p256", &["-t", "ecdsa", "-b", "256"]),
    ("p384", &["-t", "ecdsa", "-b", "384"]),
    ("p521", &["-t", "ecdsa", "-b", "521"]),
    ("rsa2048", &["-t", "rsa", "-b", "2048"]),
    ("rsa4096", &["-t", "rsa", "-b", "4096"]),
    ("ed25519", &["-t", "ed25519"]),
];

#[tokio::test]
async fn encoding_matches_ssh_key_builder_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let subject_path = ssh_keygen(dir.path(), "user", &["-t", "ed25519"]);
    let subject = subject_from(&subject_path);
    for (name, args) in SSH_KEYGEN_CAS {
        // The CA is made by ssh-keygen and read by both ssh-key and the local backend: the
        // same key on both sides.
        let ca_path = ssh_keygen(dir.path(), &format!("ca-{name}"), args);
        let ca_private =
            kmssh_pki::ssh_key::PrivateKey::read_openssh_file(&ca_path).expect("ssh-key reads");
        // RustCrypto signs ECDSA deterministically (RFC 6979), as ssh-key's builder does;
        // RSA PKCS#1 v1.5 and Ed25519 signatures are deterministic in every engine.
        let options = LocalOptions {
            engine: Some(SigningEngine::RustCrypto),
            verify: false,
            ..LocalOptions::default()
        };
        let ca = LocalKey::from_file(&ca_path, options).expect("ca");

        // The CA line is the one ssh-keygen wrote, byte for byte, and ssh-key's encoding.
        let written = std::fs::read_to_string(ca_path.with_extension("pub")).expect("pub");
        let written: Vec<&str> = written.split_whitespace().take(2).collect();
        assert_eq!(
            pubkey_string(ca.public_key(), ""),
            written.join(" "),
            "{name}"
        );
        assert_eq!(ssh_key_type(ca.public_key()), written[0], "{name}");
        assert_eq!(
            &ssh_public_key(ca.public_key()),
            ca_private.public_key().key_data(),
            "{name}"
        );

        let nonce = [7u8; 32];
        let mut params = CertificateParameters::user();
        params
            .principals(["alice", "bob"])
            .and_then(|p| p.key_id("alice@example.com"))
            .and_then(|p| p.serial(42))
            .and_then(|p| p.valid_after(NOW))
            .and_then(|p| p.valid_before(NOW + 600))
            .and_then(|p| p.critical_option(CriticalOption::ForceCommand("/bin/date".into())))
            .and_then(|p| p.critical_option(CriticalOption::SourceAddress("127.0.0.1/32".into())))
            .and_then(|p| p.extension(Extension::PermitPty))
            .and_then(|p| {
                p.extension(Extension::Custom {
                    name: "tag@example.com".into(),
                    value: "v".into(),
                })
            })
            .expect("params");
        let ours = issue_with_nonce(&ca, &subject, &params, NOW, &nonce, 0)
            .await
            .expect("issued");

        let mut builder = kmssh_pki::ssh_key::certificate::Builder::new(
            nonce.to_vec(),
            subject.clone(),
            NOW,
            NOW + 600,
        )
        .expect("builder");
        builder.serial(42).expect("serial");
        builder
            .cert_type(kmssh_pki::ssh_key::certificate::CertType::User)
            .expect("type");
        builder.key_id("alice@example.com").expect("key id");
        builder.valid_principal("alice").expect("p");
        builder.valid_principal("bob").expect("p");
        builder
            .critical_option("force-command", "/bin/date")
            .expect("o");
        builder
            .critical_option("source-address", "127.0.0.1/32")
            .expect("o");
        builder.extension("permit-pty", "").expect("e");
        builder.extension("tag@example.com", "v").expect("e");
        // ssh-key signs RSA certificates rsa-sha2-512, as kmssh does by default.
        let theirs = builder.sign(&ca_private).expect("ssh-key signs");

        assert_eq!(
            ours.as_bytes(),
            theirs.to_bytes().expect("bytes").as_slice(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn every_openssh_subject_key_type_is_certified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = LocalKey::generate(KeySpec::Ecdsa(Curve::P256), LocalOptions::default()).expect("ca");
    let mut subjects: Vec<KeyData> = [
        ("ed", vec!["-t", "ed25519"]),
        ("rsa", vec!["-t", "rsa", "-b", "2048"]),
        ("e256", vec!["-t", "ecdsa", "-b", "256"]),
        ("e384", vec!["-t", "ecdsa", "-b", "384"]),
        ("e521", vec!["-t", "ecdsa", "-b", "521"]),
    ]
    .iter()
    .map(|(name, args)| subject_from(&ssh_keygen(dir.path(), name, args)))
    .collect();
    // Security-key subjects: made from their parts, as no authenticator is attached here.
    subjects.push(KeyData::SkEd25519(SkEd25519::new(
        Ed25519PublicKey([9u8; 32]),
        "ssh:".to_owned(),
    )));
    let sk_ecdsa = "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBM5GnXQj2WPB+kU6Zfp00aCyGNcbw30jYYeahhlCEZOS3a9SCDzt2mUuJTFSrZzxJ/8SANNs7gywM09rQHuvN0MAAAAEc3NoOg==";
    subjects.push(parse_subject_key(sk_ecdsa).expect("sk-ecdsa parses"));

    let mut params = CertificateParameters::user();
    params.principal("alice").expect("p");
    for subject in &subjects {
        let cert = issue(&ca, subject, &params).await.expect("issued");
        assert_eq!(cert.as_ssh_key().public_key(), subject);
        let reparsed = Certificate::from_openssh(&cert.cert_string("c")).expect("line parses");
        assert_eq!(reparsed, cert);
        reparsed
            .verify(&ssh_public_key(ca.public_key()), &VerifyOptions::default())
            .expect("verifies");
    }
}

#[test]
fn unusable_subject_keys_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let small = ssh_keygen(dir.path(), "rsa1024", &["-t", "rsa", "-b", "1024"]);
    let line = std::fs::read_to_string(small.with_extension("pub")).expect("pub");
    assert!(matches!(
        parse_subject_key(&line),
        Err(Error::UnsupportedKey {
            field: Field::SubjectKey,
            ..
        })
    ));

    let good = std::fs::read_to_string(
        ssh_keygen(dir.path(), "ed", &["-t", "ed25519"]).with_extension("pub"),
    )
    .expect("pub");
    let field_of = |s: &str| parse_subject_key(s).err().and_then(|e| e.offending_field());
    assert_eq!(field_of(""), Some(Field::SubjectKey));
    assert_eq!(field_of("ssh-ed25519"), Some(Field::SubjectKey));
    assert_eq!(
        field_of(&good[..good.len() / 2]),
        Some(Field::SubjectKey),
        "truncated"
    );
    assert_eq!(
        field_of("ssh-foo AAAAB3NzaC1yc2E="),
        Some(Field::SubjectKey)
    );
    assert_eq!(
        field_of("ssh-ed25519 !!!notbase64"),
        Some(Field::SubjectKey)
    );
}

#[tokio::test]
async fn verification_catches_each_failure() {
    let ca = LocalKey::generate(KeySpec::Ecdsa(Curve::P384), LocalOptions::default()).expect("ca");
    let other =
        LocalKey::generate(KeySpec::Ecdsa(Curve::P384), LocalOptions::default()).expect("other");
    let subject = parse_subject_key(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR",
    )
    .expect("subject");
    let mut params = CertificateParameters::user();
    params.principal("alice").expect("p");
    let cert = issue_at(&ca, &subject, &params, NOW).await.expect("issued");
    let ca_key = ssh_public_key(ca.public_key());
    let at = |t: u64| VerifyOptions {
        at: Some(t),
        ..VerifyOptions::default()
    };

    cert.verify(
        &ca_key,
        &VerifyOptions {
            at: Some(NOW),
            principal: Some("alice".into()),
            cert_type: Some(CertificateType::User),
            ..VerifyOptions::default()
        },
    )
    .expect("valid");
    let failure = |r: Result<(), Error>| match r {
        Err(Error::Verify(f)) => f,
        other => panic!("expected a verify failure, got {other:?}"),
    };
    assert!(matches!(
        failure(cert.verify(&ssh_public_key(other.public_key()), &at(NOW))),
        VerifyFailure::WrongCa { .. }
    ));
    assert!(matches!(
        failure(cert.verify(&ca_key, &at(NOW - 61))),
        VerifyFailure::NotYetValid { .. }
    ));
    assert!(matches!(
        failure(cert.verify(&ca_key, &at(NOW + 3600))),
        VerifyFailure::Expired { .. }
    ));
    let bob = VerifyOptions {
        at: Some(NOW),
        principal: Some("bob".into()),
        ..VerifyOptions::default()
    };
    assert!(matches!(
        failure(cert.verify(&ca_key, &bob)),
        VerifyFailure::PrincipalNotListed { .. }
    ));
    let host = VerifyOptions {
        at: Some(NOW),
        cert_type: Some(CertificateType::Host),
        ..VerifyOptions::default()
    };
    assert!(matches!(
        failure(cert.verify(&ca_key, &host)),
        VerifyFailure::WrongType { .. }
    ));

    // Flip one bit of the key id ("" → no room), so flip inside the nonce: still parses.
    let mut tampered = cert.as_bytes().to_vec();
    tampered[40] ^= 1;
    let tampered = Certificate::from_bytes(&tampered).expect("still parses");
    assert!(matches!(
        failure(tampered.verify(&ca_key, &at(NOW))),
        VerifyFailure::BadSignature
    ));
}

#[tokio::test]
async fn output_lines_and_paths() {
    let ca = LocalKey::generate(KeySpec::Ecdsa(Curve::P256), LocalOptions::default()).expect("ca");
    let line = pubkey_string(ca.public_key(), "my ca");
    assert!(
        line.starts_with("ecdsa-sha2-nistp256 AAAAE2VjZHNh"),
        "{line}"
    );
    assert!(line.ends_with(" my ca"));
    let parsed = kmssh_pki::ssh_key::PublicKey::from_openssh(&line).expect("parses");
    assert_eq!(parsed.key_data(), &ssh_public_key(ca.public_key()));
    assert!(!pubkey_string(ca.public_key(), "").ends_with(' '));
    assert!(!pubkey_string(ca.public_key(), "a\nb").contains('\n'));

    assert_eq!(
        cert_path_for(Path::new("/home/a/.ssh/id_ed25519")),
        Path::new("/home/a/.ssh/id_ed25519-cert.pub")
    );
    assert_eq!(
        cert_path_for(Path::new("/home/a/.ssh/id_ed25519.pub")),
        Path::new("/home/a/.ssh/id_ed25519-cert.pub")
    );
    assert_eq!(
        cert_path_for(Path::new("host.pub")),
        Path::new("host-cert.pub")
    );
}

#[tokio::test]
async fn nothing_is_signed_for_bad_parameters() {
    let ca = LocalKey::generate(KeySpec::Ecdsa(Curve::P256), LocalOptions::default()).expect("ca");
    let subject = parse_subject_key(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR",
    )
    .expect("subject");
    let err = issue(&ca, &subject, &CertificateParameters::host())
        .await
        .expect_err("no principals");
    assert_eq!(err.offending_field(), Some(Field::Principals));
    assert_eq!(err.kind(), kmssh_core::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn pubkey_lines_carry_ssh_keys_encoding_for_every_key_type() {
    use kmssh_pki::ssh_key::encoding::Encode as _;
    let dir = tempfile::tempdir().expect("tempdir");
    for spec in SPECS {
        let ca = key(spec);
        let line = pubkey_string(ca.public_key(), "ca");
        let blob = ssh_public_key(ca.public_key())
            .encode_vec()
            .expect("ssh-key encodes");
        let parsed = kmssh_pki::ssh_key::PublicKey::from_openssh(&line).expect("parses");
        assert_eq!(parsed.to_bytes().expect("bytes"), blob, "{spec}");
        assert_eq!(
            parsed.key_data(),
            &ssh_public_key(ca.public_key()),
            "{spec}"
        );
        let key_type = match spec {
            KeySpec::Ecdsa(curve) => format!("ecdsa-sha2-{}", curve.ssh_name()),
            KeySpec::Rsa(_) => "ssh-rsa".to_owned(),
            KeySpec::Ed25519 => "ssh-ed25519".to_owned(),
        };
        assert_eq!(ssh_key_type(ca.public_key()), key_type);
        assert!(line.starts_with(&format!("{key_type} ")), "{line}");

        // ssh-keygen reads the line and agrees on the fingerprint and the size.
        let path = dir.path().join("ca.pub");
        std::fs::write(&path, format!("{line}\n")).expect("write");
        let out = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(&path)
            .output()
            .expect("ssh-keygen -l");
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bits = match spec {
            KeySpec::Ecdsa(Curve::P256) | KeySpec::Ed25519 => 256,
            KeySpec::Ecdsa(Curve::P384) => 384,
            KeySpec::Ecdsa(Curve::P521) => 521,
            KeySpec::Rsa(bits) => bits,
        };
        let fingerprint = parsed.fingerprint(HashAlg::Sha256).to_string();
        assert_eq!(
            listed.trim(),
            format!("{bits} {fingerprint} ca ({})", ssh_keygen_label(spec)),
            "{spec}"
        );
    }
}

fn ed25519_subject() -> KeyData {
    parse_subject_key(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR",
    )
    .expect("subject")
}

/// `ssh-keygen -L` of a certificate: its "Signing CA:" line.
fn signing_ca_line(dir: &Path, cert: &Certificate) -> String {
    let path = dir.join("id-cert.pub");
    std::fs::write(&path, format!("{}\n", cert.cert_string("id"))).expect("write");
    let out = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("ssh-keygen -L");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Signing CA: ").map(str::to_owned))
        .expect("a Signing CA line")
}

#[tokio::test]
async fn ssh_keygen_lists_certificates_from_every_ca_key_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let subject = ed25519_subject();
    for spec in SPECS {
        let ca = key(spec);
        let ca_key = ssh_public_key(ca.public_key());
        let fingerprint = ca_key.fingerprint(HashAlg::Sha256);
        // (asked for, SSH signature algorithm expected)
        let cases: Vec<(Option<Algorithm>, &str)> = match spec.family() {
            KeyFamily::Rsa => vec![
                (None, "rsa-sha2-512"),
                (Some(Algorithm::RsaPkcs1Sha512), "rsa-sha2-512"),
                (Some(Algorithm::RsaPkcs1Sha256), "rsa-sha2-256"),
            ],
            _ => {
                let only = spec.algorithms()[0];
                vec![
                    (None, only.ssh_name().expect("SSH name")),
                    (Some(only), only.ssh_name().expect("SSH name")),
                ]
            }
        };
        for (asked, expected) in cases {
            let mut params = CertificateParameters::user();
            params.principal("alice").expect("principal");
            if let Some(algorithm) = asked {
                params.ca_signature_algorithm_is(algorithm).expect("once");
            }
            assert_eq!(
                ssh_signature_algorithm(&ca, asked)
                    .expect("chosen")
                    .ssh_name(),
                Some(expected)
            );
            let cert = issue(&ca, &subject, &params).await.expect("issued");
            let what = format!("{spec} {asked:?}");
            assert_eq!(
                cert.as_ssh_key().signature().algorithm().as_str(),
                expected,
                "{what}"
            );
            assert_eq!(
                signing_ca_line(dir.path(), &cert),
                format!(
                    "{} {fingerprint} (using {expected})",
                    ssh_keygen_label(spec)
                ),
                "{what}"
            );
            cert.verify(
                &ca_key,
                &VerifyOptions {
                    principal: Some("alice".into()),
                    cert_type: Some(CertificateType::User),
                    ..VerifyOptions::default()
                },
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            // ssh-key's own check, over its own encoding of the signed fields.
            cert.as_ssh_key()
                .validate([&fingerprint])
                .unwrap_or_else(|e| panic!("{what}: ssh-key: {e}"));

            // One flipped bit in the CA signature fails both.
            let mut tampered = cert.as_bytes().to_vec();
            let last = tampered.len() - 1;
            tampered[last] ^= 1;
            let tampered = Certificate::from_bytes(&tampered).expect("still parses");
            assert!(
                matches!(
                    tampered.verify(&ca_key, &VerifyOptions::default()),
                    Err(Error::Verify(VerifyFailure::BadSignature))
                ),
                "{what}"
            );
            assert!(tampered.as_ssh_key().validate([&fingerprint]).is_err());
        }
    }
}

#[tokio::test]
async fn signature_algorithms_ssh_cannot_carry_are_refused_before_signing() {
    let subject = ed25519_subject();
    let rsa = Provider::unbound(key(KeySpec::Rsa(2048)));
    let ed25519 = Provider::unbound(key(KeySpec::Ed25519));
    let p256 = Provider::unbound(key(KeySpec::Ecdsa(Curve::P256)));
    for (ca, asked, says) in [
        (
            &rsa,
            Algorithm::RsaPkcs1Sha384,
            "unsupported key type `RSA-2048`: SSH defines no RSA PKCS#1 v1.5 SHA-384 signature: use rsa-sha2-512 or rsa-sha2-256",
        ),
        (
            &ed25519,
            Algorithm::RsaPkcs1Sha256,
            "unsupported key type `Ed25519`: the key cannot sign rsa-sha2-256; it signs ssh-ed25519",
        ),
        (
            &ed25519,
            Algorithm::RsaPkcs1Sha512,
            "the key cannot sign rsa-sha2-512; it signs ssh-ed25519",
        ),
        (
            &p256,
            Algorithm::Ed25519,
            "the key cannot sign ssh-ed25519; it signs ecdsa-sha2-nistp256",
        ),
        (
            &rsa,
            Algorithm::EcdsaP256Sha256,
            "the key cannot sign ecdsa-sha2-nistp256; it signs rsa-sha2-512, rsa-sha2-256",
        ),
    ] {
        let mut params = CertificateParameters::user();
        params.principal("alice").expect("principal");
        params.ca_signature_algorithm_is(asked).expect("once");
        let err = issue(ca, &subject, &params).await.expect_err("refused");
        assert!(
            matches!(
                err,
                Error::UnsupportedKey {
                    field: Field::SignatureAlgorithm,
                    ..
                }
            ),
            "{asked}: {err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm);
        assert!(err.to_string().contains(says), "{err} should say {says:?}");
        assert_eq!(ca.inner().calls(), 0, "{asked}: nothing signed");
    }
    // sshd's default CASignatureAlgorithms refuse ssh-rsa (SHA-1): it cannot be asked for.
    let err = "ssh-rsa".parse::<Algorithm>().expect_err("SHA-1");
    assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm);

    // The choice is made once.
    let mut params = CertificateParameters::user();
    params
        .ca_signature_algorithm_is(Algorithm::RsaPkcs1Sha256)
        .expect("first");
    let err = params
        .ca_signature_algorithm_is(Algorithm::RsaPkcs1Sha512)
        .expect_err("second");
    assert_eq!(err.offending_field(), Some(Field::SignatureAlgorithm));
}

#[tokio::test]
async fn a_key_bound_to_one_hash_signs_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let subject = ed25519_subject();
    let mut params = CertificateParameters::user();
    params.principal("alice").expect("principal");

    // A Cloud KMS RSA_SIGN_PKCS1_2048_SHA256 key: rsa-sha2-256 by default.
    let sha256_only = Provider::new(key(KeySpec::Rsa(2048)), &[Algorithm::RsaPkcs1Sha256], None);
    let ca_key = ssh_public_key(sha256_only.public_key());
    let cert = issue(&sha256_only, &subject, &params)
        .await
        .expect("issued");
    assert_eq!(sha256_only.inner().calls(), 1);
    assert_eq!(
        signing_ca_line(dir.path(), &cert),
        format!(
            "RSA {} (using rsa-sha2-256)",
            ca_key.fingerprint(HashAlg::Sha256)
        )
    );
    cert.verify(&ca_key, &VerifyOptions::default())
        .expect("verifies");
    // …and nothing else.
    let mut sha512 = params.clone();
    sha512
        .ca_signature_algorithm_is(Algorithm::RsaPkcs1Sha512)
        .expect("once");
    let err = issue(&sha256_only, &subject, &sha512)
        .await
        .expect_err("not this key's hash");
    assert!(err.to_string().contains("it signs rsa-sha2-256"), "{err}");

    // An RSA key that signs only SHA-384 signs nothing SSH defines.
    let sha384_only = Provider::new(key(KeySpec::Rsa(2048)), &[Algorithm::RsaPkcs1Sha384], None);
    let err = issue(&sha384_only, &subject, &params)
        .await
        .expect_err("no SSH algorithm");
    assert!(
        err.to_string().contains("signs no algorithm SSH defines"),
        "{err}"
    );
    assert_eq!(sha384_only.inner().calls(), 0);
}

#[tokio::test]
async fn an_ed25519_certificate_over_the_providers_message_limit_is_refused_before_signing() {
    // AWS KMS signs at most 4096 bytes of Ed25519 message; a certificate signs its whole
    // to-be-signed bytes.
    let ca = Provider::new(key(KeySpec::Ed25519), &[Algorithm::Ed25519], Some(4096));
    let subject = ed25519_subject();
    let mut small = CertificateParameters::user();
    small.principal("alice").expect("principal");
    let cert = issue(&ca, &subject, &small)
        .await
        .expect("a small one is signed");
    cert.verify(&ssh_public_key(ca.public_key()), &VerifyOptions::default())
        .expect("verifies");
    assert_eq!(ca.inner().calls(), 1);

    let mut large = CertificateParameters::user();
    large
        .principals((0..100).map(|i| format!("principal-{i:03}-{}", "x".repeat(40))))
        .expect("principals");
    let err = issue(&ca, &subject, &large).await.expect_err("too large");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(matches!(err, Error::Signing(_)), "{err:?}");
    assert!(err.to_string().contains("at most 4096 bytes"), "{err}");
    assert_eq!(ca.inner().calls(), 1, "refused before the call");
}

#[test]
fn certificates_ssh_keygen_signs_with_an_rsa_ca_verify_unless_signed_with_sha1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_path = ssh_keygen(dir.path(), "ca", &["-t", "rsa", "-b", "2048"]);
    let ca_line = std::fs::read_to_string(ca_path.with_extension("pub")).expect("ca.pub");
    let ca_key = kmssh_pki::ssh_key::PublicKey::from_openssh(ca_line.trim())
        .expect("CA key")
        .key_data()
        .clone();
    let user = ssh_keygen(dir.path(), "user", &["-t", "ed25519"]);
    // sshd's default CASignatureAlgorithms have refused `ssh-rsa` (SHA-1) since 8.2.
    for (algorithm, accepted) in [
        ("rsa-sha2-512", true),
        ("rsa-sha2-256", true),
        ("ssh-rsa", false),
    ] {
        let out = Command::new("ssh-keygen")
            .args(["-q", "-I", "id", "-n", "alice", "-t", algorithm, "-s"])
            .arg(&ca_path)
            .arg(user.with_extension("pub"))
            .output()
            .expect("ssh-keygen -s");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = std::fs::read_to_string(dir.path().join("user-cert.pub")).expect("cert");
        let cert = Certificate::from_openssh(&line).expect("parses");
        assert_eq!(
            cert.as_ssh_key().signature().algorithm().as_str(),
            algorithm
        );
        let verdict = cert.verify(&ca_key, &VerifyOptions::default());
        if accepted {
            verdict.unwrap_or_else(|e| panic!("{algorithm}: {e}"));
        } else {
            assert!(
                matches!(&verdict, Err(Error::Verify(VerifyFailure::Malformed { detail })) if detail.contains("ssh-rsa")),
                "{algorithm}: {verdict:?}"
            );
        }
    }
}
