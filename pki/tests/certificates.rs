//! Issuing and verifying certificates: the encoder agrees byte for byte with `ssh-key`'s
//! builder, every subject key type is accepted, and verification catches each failure.

use std::path::Path;
use std::process::Command;

use kmssh_backend_local::{LocalKey, LocalOptions, SigningEngine};
use kmssh_core::{Algorithm, KmsKey};
use kmssh_pki::ssh_key::public::{Ed25519PublicKey, KeyData, SkEd25519};
use kmssh_pki::{
    Certificate, CertificateParameters, CertificateType, CriticalOption, Error, Extension, Field,
    VerifyFailure, VerifyOptions, cert_path_for, issue, issue_at, issue_with_nonce,
    parse_subject_key, pubkey_string, ssh_public_key,
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

#[tokio::test]
async fn encoding_matches_ssh_key_builder_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    use kmssh_pki::ssh_key::{EcdsaCurve, getrandom::SysRng, rand_core::UnwrapErr};
    for (bits, curve) in [
        ("256", EcdsaCurve::NistP256),
        ("384", EcdsaCurve::NistP384),
        ("521", EcdsaCurve::NistP521),
    ] {
        // The CA is made by ssh-key and read back by the local backend: the same key on both sides.
        let ca_private = kmssh_pki::ssh_key::PrivateKey::random(
            &mut UnwrapErr(SysRng),
            kmssh_pki::ssh_key::Algorithm::Ecdsa { curve },
        )
        .expect("ssh-key generates");
        let ca_path = dir.path().join(format!("ca{bits}"));
        ca_private
            .write_openssh_file(&ca_path, Default::default())
            .expect("write CA");
        let subject_path = ssh_keygen(dir.path(), &format!("user{bits}"), &["-t", "ed25519"]);
        // RustCrypto signs deterministically (RFC 6979), as ssh-key's builder does.
        let options = LocalOptions {
            engine: Some(SigningEngine::RustCrypto),
            verify: false,
            ..LocalOptions::default()
        };
        let ca = LocalKey::from_file(&ca_path, options).expect("ca");
        let subject = subject_from(&subject_path);

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
        let theirs = builder.sign(&ca_private).expect("ssh-key signs");

        assert_eq!(
            ours.as_bytes(),
            theirs.to_bytes().expect("bytes").as_slice(),
            "P-{bits}"
        );
    }
}

#[tokio::test]
async fn every_openssh_subject_key_type_is_certified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = LocalKey::generate(Algorithm::EcdsaP256Sha256, LocalOptions::default()).expect("ca");
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
    let ca = LocalKey::generate(Algorithm::EcdsaP384Sha384, LocalOptions::default()).expect("ca");
    let other =
        LocalKey::generate(Algorithm::EcdsaP384Sha384, LocalOptions::default()).expect("other");
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
    let ca = LocalKey::generate(Algorithm::EcdsaP256Sha256, LocalOptions::default()).expect("ca");
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
    let ca = LocalKey::generate(Algorithm::EcdsaP256Sha256, LocalOptions::default()).expect("ca");
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
async fn pubkey_lines_carry_ssh_keys_encoding_on_every_curve() {
    use kmssh_pki::ssh_key::encoding::Encode as _;
    for algorithm in Algorithm::ALL {
        let ca = LocalKey::generate(algorithm, LocalOptions::default()).expect("ca");
        let line = pubkey_string(ca.public_key(), "ca");
        let blob = ssh_public_key(ca.public_key())
            .encode_vec()
            .expect("ssh-key encodes");
        let parsed = kmssh_pki::ssh_key::PublicKey::from_openssh(&line).expect("parses");
        assert_eq!(parsed.to_bytes().expect("bytes"), blob, "{algorithm}");
        assert!(
            line.starts_with(&format!("{} ", algorithm.ssh_name())),
            "{line}"
        );
    }
}
