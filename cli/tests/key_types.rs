//! RSA and Ed25519 CA keys through the binary: `--create --type`, `--ca-sig-alg`, every
//! product (certificates, SSH signatures, message signatures, X.509, CA lines), each
//! judged by ssh-keygen, an sshd-compatible listing, or openssl.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use common::{keygen, kmssh, openssl, run, ssh_keygen_list, ssh_keygen_verify, succeed};

/// `kmssh pubkey --create` for a new local key of this type; its OpenSSH line.
fn create(dir: &Path, name: &str, args: &[&str]) -> String {
    let uri = format!("local:{}", dir.join(name).display());
    let line = succeed(
        kmssh()
            .args(["pubkey", "--ca", &uri, "--create"])
            .args(args),
    );
    String::from_utf8(line).expect("UTF-8")
}

#[test]
fn create_makes_each_type_0600_and_ssh_keygen_reads_its_line() {
    let dir = tempfile::tempdir().expect("dir");
    for (name, args, type_word, bits) in [
        ("rsa", &["--type", "rsa"][..], "ssh-rsa", "3072"),
        (
            "rsa2048",
            &["--type", "rsa", "--bits", "2048"][..],
            "ssh-rsa",
            "2048",
        ),
        ("ed", &["--type", "ed25519"][..], "ssh-ed25519", "256"),
        (
            "p384",
            &["--type", "ecdsa", "--curve", "p384"][..],
            "ecdsa-sha2-nistp384",
            "384",
        ),
        (
            "p521bits",
            &["--type", "ecdsa", "--bits", "521"][..],
            "ecdsa-sha2-nistp521",
            "521",
        ),
    ] {
        let line = create(dir.path(), name, args);
        assert!(line.starts_with(&format!("{type_word} ")), "{name}: {line}");
        let mode = std::fs::metadata(dir.path().join(name))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
        let pub_path = dir.path().join(format!("{name}.pub"));
        std::fs::write(&pub_path, &line).expect("write");
        let listed = succeed(
            std::process::Command::new("ssh-keygen")
                .arg("-lf")
                .arg(&pub_path),
        );
        let listed = String::from_utf8_lossy(&listed);
        assert!(listed.starts_with(&format!("{bits} ")), "{name}: {listed}");
        // Created once: the same key again.
        assert_eq!(create(dir.path(), name, args), line, "{name}");
    }
}

#[test]
fn create_refuses_sizes_and_curves_the_type_does_not_take() {
    let dir = tempfile::tempdir().expect("dir");
    for args in [
        &["--type", "rsa", "--bits", "1024"][..],
        &["--type", "rsa", "--bits", "3001"],
        &["--type", "ed25519", "--bits", "256"],
        &["--type", "rsa", "--curve", "p256"],
        &["--type", "ecdsa", "--bits", "2048"],
    ] {
        let uri = format!("local:{}", dir.path().join("refused").display());
        let (code, _, stderr) = run(kmssh()
            .args(["pubkey", "--ca", &uri, "--create"])
            .args(args));
        assert_eq!(code, 3, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!dir.path().join("refused").exists(), "{args:?} made a key");
    }
}

#[test]
fn rsa_ca_signs_rsa_sha2_512_by_default_and_256_when_asked() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = format!("local:{}", dir.path().join("ca").display());
    let subject = keygen(dir.path(), "id_ed25519");
    let pub_path = dir.path().join("id_ed25519.pub");
    let cert = dir.path().join("id_ed25519-cert.pub");
    for (extra, expected) in [
        (&[][..], "rsa-sha2-512"),
        (&["--ca-sig-alg", "rsa-sha2-256"][..], "rsa-sha2-256"),
        (&["--ca-sig-alg", "rsa-sha2-512"][..], "rsa-sha2-512"),
    ] {
        succeed(
            kmssh()
                .args(["sign", "--ca", &ca, "--create", "--type", "rsa", "--force"])
                .args(["-n", "alice", "-I", "alice"])
                .args(extra)
                .arg(&pub_path),
        );
        let listing = ssh_keygen_list(&cert);
        assert!(
            listing.contains(&format!("(using {expected})")),
            "{extra:?}: {listing}"
        );
        assert!(listing.contains("Signing CA: RSA "), "{listing}");
        let ours = String::from_utf8(succeed(kmssh().arg("inspect").arg(&cert))).expect("UTF-8");
        assert!(ours.contains(&format!("(using {expected})")), "{ours}");
    }
    let _ = subject;

    // SHA-1 is never produced: refused as a usage error, nothing written.
    std::fs::remove_file(&cert).expect("remove");
    let (code, _, stderr) = run(kmssh()
        .args([
            "sign",
            "--ca",
            &ca,
            "--ca-sig-alg",
            "ssh-rsa",
            "-n",
            "alice",
        ])
        .arg(&pub_path));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("SHA-1"), "{stderr}");
    assert!(!cert.exists());

    // An algorithm the key does not sign is refused before signing.
    let ed = format!("local:{}", dir.path().join("ed_ca").display());
    let (code, _, stderr) = run(kmssh()
        .args(["sign", "--ca", &ed, "--create", "--type", "ed25519"])
        .args(["--ca-sig-alg", "rsa-sha2-256", "-n", "alice"])
        .arg(&pub_path));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("rsa-sha2-256"), "{stderr}");
    assert!(!cert.exists());
}

#[test]
fn ed25519_ca_certificates_list_and_verify() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = format!("local:{}", dir.path().join("ca").display());
    keygen(dir.path(), "id_ed25519");
    let pub_path = dir.path().join("id_ed25519.pub");
    succeed(
        kmssh()
            .args(["sign", "--ca", &ca, "--create", "--type", "ed25519"])
            .args(["-n", "alice", "-I", "alice"])
            .arg(&pub_path),
    );
    let cert = dir.path().join("id_ed25519-cert.pub");
    let listing = ssh_keygen_list(&cert);
    assert!(listing.contains("(using ssh-ed25519)"), "{listing}");
    let ca_line = create(dir.path(), "ca", &["--type", "ed25519"]);
    let ca_pub = dir.path().join("ca.pub");
    std::fs::write(&ca_pub, ca_line).expect("write");
    succeed(
        kmssh()
            .args(["verify", "--ca"])
            .arg(&ca_pub)
            .args(["--principal", "alice"])
            .arg(&cert),
    );
}

#[test]
fn ssh_signatures_of_rsa_and_ed25519_keys_verify_with_ssh_keygen() {
    let dir = tempfile::tempdir().expect("dir");
    let message = dir.path().join("message");
    std::fs::write(&message, b"release v1.2.3\n").expect("write");
    for (name, kind) in [("rsa", "rsa"), ("ed", "ed25519")] {
        let line = create(dir.path(), name, &["--type", kind]);
        let uri = format!("local:{}", dir.path().join(name).display());
        let armored = succeed(
            kmssh()
                .args(["sign-message", "--key", &uri, "--format", "ssh-sig"])
                .arg(&message),
        );
        let sig = dir.path().join(format!("{name}.sig"));
        std::fs::write(&sig, armored).expect("write");
        assert!(
            ssh_keygen_verify(dir.path(), &line, "file", &message, &sig),
            "{name}"
        );
        assert!(!ssh_keygen_verify(dir.path(), &line, "git", &message, &sig));
    }
}

#[test]
fn message_signatures_of_rsa_and_ed25519_keys_verify_with_openssl() {
    let dir = tempfile::tempdir().expect("dir");
    let message = dir.path().join("message");
    std::fs::write(&message, vec![0x5a; 100_000]).expect("write");
    for (name, kind, sig_alg, openssl_args) in [
        ("rsa", "rsa", None, &["dgst", "-sha512"][..]),
        ("rsa", "rsa", Some("rs256"), &["dgst", "-sha256"][..]),
        ("rsa", "rsa", Some("rs384"), &["dgst", "-sha384"][..]),
        ("ed", "ed25519", None, &["pkeyutl"][..]),
    ] {
        let uri = format!("local:{}", dir.path().join(name).display());
        let pem = succeed(
            kmssh()
                .args(["pubkey", "--ca", &uri, "--create", "--type", kind])
                .args(["--format", "pem"]),
        );
        std::fs::write(dir.path().join("pub.pem"), pem).expect("write");
        let mut sign = kmssh();
        sign.args(["sign-message", "--key", &uri, "--format", "der"]);
        if let Some(alg) = sig_alg {
            sign.args(["--sig-alg", alg]);
        }
        let signature = succeed(sign.arg(&message));
        std::fs::write(dir.path().join("sig"), signature).expect("write");
        let out = if openssl_args[0] == "pkeyutl" {
            openssl(
                dir.path(),
                &[
                    "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in",
                    "message", "-sigfile", "sig",
                ],
            )
        } else {
            let mut args = openssl_args.to_vec();
            args.extend(["-verify", "pub.pem", "-signature", "sig", "message"]);
            openssl(dir.path(), &args)
        };
        assert!(
            out.contains("Verified OK") || out.contains("Signature Verified Successfully"),
            "{name} {sig_alg:?}: {out}"
        );
    }
    // Ed25519 takes no hash choice.
    let uri = format!("local:{}", dir.path().join("ed").display());
    let (code, _, stderr) = run(kmssh()
        .args(["sign-message", "--key", &uri, "--sig-alg", "rs256"])
        .arg(&message));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("--sig-alg"), "{stderr}");
    // With an SSH signature it is refused before the key is made.
    let fresh = format!("local:{}", dir.path().join("fresh").display());
    let (code, _, stderr) = run(kmssh()
        .args(["sign-message", "--key", &fresh, "--create", "--type", "rsa"])
        .args(["--format", "ssh-sig", "--sig-alg", "rs256"])
        .arg(&message));
    assert_eq!(code, 3, "{stderr}");
    assert!(!dir.path().join("fresh").exists());
}

#[test]
fn x509_chains_from_rsa_and_ed25519_keys_verify_with_openssl() {
    let dir = tempfile::tempdir().expect("dir");
    for (name, kind, sig_alg, shown) in [
        ("rsa", "rsa", None, "sha256WithRSAEncryption"),
        ("rsa512", "rsa", Some("rs512"), "sha512WithRSAEncryption"),
        ("ed", "ed25519", None, "ED25519"),
    ] {
        let uri = format!("local:{}", dir.path().join(name).display());
        let ca_pem = dir.path().join(format!("{name}-ca.pem"));
        let mut ca = kmssh();
        ca.args(["x509", "ca", "--ca", &uri, "--create", "--type", kind])
            .args(["--subject", &format!("CN={name} CA")])
            .arg("-o")
            .arg(&ca_pem);
        if let Some(alg) = sig_alg {
            ca.args(["--ca-sig-alg", alg]);
        }
        succeed(&mut ca);
        openssl(
            dir.path(),
            &["genpkey", "-algorithm", "ed25519", "-out", "leaf.key"],
        );
        openssl(
            dir.path(),
            &[
                "req",
                "-new",
                "-key",
                "leaf.key",
                "-subj",
                "/CN=www.example.com",
                "-out",
                "leaf.csr",
            ],
        );
        let leaf_pem = dir.path().join(format!("{name}-leaf.pem"));
        let mut leaf = kmssh();
        leaf.args(["x509", "leaf", "--ca", &uri, "--ca-cert"])
            .arg(&ca_pem)
            .args(["--csr", "leaf.csr", "--dns-name", "www.example.com", "-o"])
            .arg(&leaf_pem)
            .current_dir(dir.path());
        if let Some(alg) = sig_alg {
            leaf.args(["--ca-sig-alg", alg]);
        }
        succeed(&mut leaf);
        let ca_arg = ca_pem.display().to_string();
        let leaf_arg = leaf_pem.display().to_string();
        let out = openssl(dir.path(), &["verify", "-CAfile", &ca_arg, &leaf_arg]);
        assert!(out.contains(": OK"), "{name}: {out}");
        let text = openssl(dir.path(), &["x509", "-noout", "-text", "-in", &leaf_arg]);
        assert!(text.contains(shown), "{name}: {text}");
    }
}
