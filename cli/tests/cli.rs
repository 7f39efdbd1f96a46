//! The `kmssh` binary driven as a user would, with the local backend; its output checked
//! by `ssh-keygen` and `openssl`.

mod common;

use std::process::Command;

use common::{keygen, kmssh, openssl, run, ssh_keygen_list};

#[test]
fn sign_creates_the_ca_and_writes_a_certificate_ssh_keygen_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user = keygen(dir.path(), "id_ed25519");
    let ca = format!("local:{}", dir.path().join("ca_key").display());
    let (code, _, err) = run(kmssh()
        .args([
            "sign",
            "--ca",
            &ca,
            "--create",
            "--curve",
            "p384",
            "-n",
            "alice,bob",
            "-I",
            "alice@example.com",
            "-z",
            "18446744073709551615",
            "-V",
            "-5m:+8h",
            "-O",
            "force-command=/bin/date",
            "-O",
            "no-pty",
        ])
        .arg(user.with_extension("pub")));
    assert_eq!(code, 0, "{err}");
    let cert = dir.path().join("id_ed25519-cert.pub");
    let listing = ssh_keygen_list(&cert);
    assert!(listing.contains("Signing CA: ECDSA"), "{listing}");
    assert!(listing.contains("Key ID: \"alice@example.com\""));
    assert!(listing.contains("Serial: 18446744073709551615"));
    assert!(listing.contains("force-command /bin/date"));
    assert!(!listing.contains("permit-pty"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("ca_key"))
            .expect("ca")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // Not overwritten without --force (exit 3), overwritten with it; the CA file is reused.
    let (code, _, err) = run(kmssh()
        .args(["sign", "--ca", &ca, "-n", "alice"])
        .arg(user.with_extension("pub")));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--force"), "{err}");
    let (code, _, err) = run(kmssh()
        .args(["sign", "--ca", &ca, "-n", "alice", "--force"])
        .arg(user.with_extension("pub")));
    assert_eq!(code, 0, "{err}");

    // The CA line verifies the certificate; another principal does not (exit 6).
    let (code, ca_line, _) = run(kmssh().args(["pubkey", "--ca", &ca, "--comment", "test CA"]));
    assert_eq!(code, 0);
    let ca_file = dir.path().join("ca.pub");
    std::fs::write(&ca_file, &ca_line).expect("write");
    let (code, out, _) = run(kmssh()
        .args(["verify", "--ca"])
        .arg(&ca_file)
        .args(["--principal", "alice"])
        .arg(&cert));
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = run(kmssh()
        .args(["verify", "--ca"])
        .arg(&ca_file)
        .args(["--principal", "mallory"])
        .arg(&cert));
    assert_eq!(code, 6, "{err}");

    // Validity is checked at --at: inside the default one-hour window, after it, before it.
    for (at, expected, reason) in [
        ("+30m", 0, "valid"),
        ("+2h", 6, "expired"),
        ("-1h", 6, "not valid yet"),
        ("@0", 6, "not valid yet"),
        ("tomorrow", 3, "expected YYYYMMDD"),
    ] {
        let (code, out, err) = run(kmssh()
            .args(["verify", "--ca"])
            .arg(&ca_file)
            .args(["--at", at])
            .arg(&cert));
        assert_eq!(code, expected, "--at {at}: {out}{err}");
        assert!(
            out.contains(reason) || err.contains(reason),
            "--at {at}: {out}{err}"
        );
    }

    let (code, json, _) = run(kmssh().args(["inspect", "--json"]).arg(&cert));
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(value["principals"], serde_json::json!(["alice"]));
}

#[test]
fn stdin_in_stdout_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user = keygen(dir.path(), "id");
    let stdout = common::succeed(
        kmssh()
            .args([
                "sign",
                "--ca",
                "local:ephemeral?curve=p256",
                "-n",
                "alice",
                "-",
            ])
            .stdin(std::fs::File::open(user.with_extension("pub")).expect("pub")),
    );
    let line = String::from_utf8_lossy(&stdout);
    assert!(
        line.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{line}"
    );
}

#[test]
fn message_signatures_verify_with_openssl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = format!("local:{}", dir.path().join("key").display());
    assert_eq!(
        run(kmssh().args(["pubkey", "--ca", &ca, "--create", "--format", "pem"])).0,
        0
    );
    let pem = run(kmssh().args(["pubkey", "--ca", &ca, "--format", "pem"])).1;
    std::fs::write(dir.path().join("pub.pem"), pem).expect("write");
    std::fs::write(dir.path().join("msg"), vec![b'x'; 10_000]).expect("write");
    let stdout = common::succeed(
        kmssh()
            .args(["sign-message", "--key", &ca, "--format", "der"])
            .arg(dir.path().join("msg")),
    );
    std::fs::write(dir.path().join("msg.sig"), &stdout).expect("write");
    let verified = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(dir.path().join("pub.pem"))
        .arg("-signature")
        .arg(dir.path().join("msg.sig"))
        .arg(dir.path().join("msg"))
        .output()
        .expect("openssl");
    assert!(String::from_utf8_lossy(&verified.stdout).contains("Verified OK"));
}

#[test]
fn bad_input_gets_its_exit_code_and_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user = keygen(dir.path(), "id");
    let pubkey = user.with_extension("pub");
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &[
                "sign",
                "--ca",
                "local:ephemeral",
                "-n",
                "a",
                "-O",
                "permit-everything",
            ],
            3,
            "unknown -O option",
        ),
        (
            &["sign", "--ca", "local:ephemeral", "-n", "a", "-V", "+1x"],
            3,
            "unknown time unit",
        ),
        (&["sign", "--ca", "local:ephemeral"], 3, "no principals"),
        (
            &["sign", "--ca", "local:/nonexistent/key", "-n", "a"],
            4,
            "cannot read key file",
        ),
        (
            &["sign", "--ca", "nosuch:key", "-n", "a"],
            3,
            "unknown key URI scheme",
        ),
        (
            &[
                "sign",
                "--ca",
                "local:ephemeral",
                "-n",
                "a",
                "-V",
                "+1h:+1m",
            ],
            3,
            "must be later",
        ),
    ];
    for (args, expected, text) in cases {
        let (code, _, err) = run(kmssh().args(args).arg(&pubkey));
        assert_eq!(code, expected, "{args:?}: {err}");
        assert!(err.contains(text), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
    }
    let (code, _, _) = run(kmssh().args(["sign", "--bogus"]));
    assert_eq!(code, 2);
}

#[test]
fn backends_lists_every_compiled_in_scheme() {
    let (code, out, _) = run(kmssh().arg("backends"));
    assert_eq!(code, 0);
    for scheme in ["local:", "aws-kms:", "gcp-kms:", "azure-kv:"] {
        assert!(out.contains(scheme), "{out}");
    }
}

/// A paramiko-cloud CSR is issued exactly as asked; flags beside --csr are refused.
#[test]
fn csr_requests_are_issued_as_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The `ecdsa-host` request paramiko-cloud serialized (pki's vector file).
    let csr_b64 = "CAEiBndlYi0wMSgHMhJ3ZWItMDEuZXhhbXBsZS5jb20yCTEwLjAuMC4xNTiA4s+qBkCA1/SqBkoTZWNkc2Etc2hhMi1uaXN0cDI1NlJRAAAACG5pc3RwMjU2AAAAQQTORp10I9ljwfpFOmX6dNGgshjXG8N9I2GHmoYZQhGTkt2vUgg87dplLiUxUq2c8Sf/EgDTbO4MsDNPa0B7rzdD";
    let csr = dir.path().join("host.csr");
    std::fs::write(&csr, csr_b64).expect("write");
    let cert = dir.path().join("host-cert.pub");
    let (code, _, err) = run(kmssh()
        .args(["sign", "--ca", "local:ephemeral?curve=p256", "--csr"])
        .arg(&csr)
        .args(["--csr-format", "base64", "-o"])
        .arg(&cert));
    assert_eq!(code, 0, "{err}");
    let listing = ssh_keygen_list(&cert);
    assert!(listing.contains("host certificate"), "{listing}");
    assert!(
        listing.contains("Key ID: \"web-01\"") && listing.contains("Serial: 7"),
        "{listing}"
    );
    assert!(
        listing.contains("web-01.example.com") && listing.contains("10.0.0.15"),
        "{listing}"
    );
    assert!(
        listing.contains("Valid: from 2023-11-14T22:13:20 to 2023-11-21T22:13:20"),
        "{listing}"
    );
    assert!(listing.contains("Extensions: (none)"), "{listing}");

    let (code, _, err) = run(kmssh()
        .args(["sign", "--ca", "local:ephemeral", "--csr"])
        .arg(&csr)
        .args(["-n", "extra"]));
    assert_eq!(code, 2, "{err}");
    std::fs::write(&csr, "not base64 at all!").expect("write");
    let (code, _, _) = run(kmssh()
        .args(["sign", "--ca", "local:ephemeral", "--csr"])
        .arg(&csr)
        .args(["--csr-format", "base64"]));
    assert_eq!(code, 3);
}

/// `--format ssh-sig` output verifies with `ssh-keygen -Y verify`.
#[test]
fn ssh_signatures_verify_with_ssh_keygen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = format!("local:{}", dir.path().join("key").display());
    assert_eq!(
        run(kmssh().args(["pubkey", "--ca", &key, "--create", "--curve", "p521"])).0,
        0
    );
    let line = run(kmssh().args(["pubkey", "--ca", &key])).1;
    let message = dir.path().join("release.tar");
    std::fs::write(&message, vec![42u8; 100_000]).expect("write");
    let (code, sig, err) = run(kmssh()
        .args([
            "sign-message",
            "--key",
            &key,
            "--format",
            "ssh-sig",
            "--namespace",
            "release",
        ])
        .arg(&message));
    assert_eq!(code, 0, "{err}");
    assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----"), "{sig}");
    std::fs::write(dir.path().join("release.sig"), sig).expect("write");
    let signature = dir.path().join("release.sig");
    assert!(common::ssh_keygen_verify(
        dir.path(),
        &line,
        "release",
        &message,
        &signature
    ));
    assert!(!common::ssh_keygen_verify(
        dir.path(),
        &line,
        "other",
        &message,
        &signature
    ));
}

/// A self-signed CA from the key, and leaves for openssl requests of every key type and
/// for a bare public key, all accepted by `openssl verify`; bad requests refused.
#[test]
fn x509_certificates_verify_with_openssl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = format!("local:{}", d.join("ca_key").display());
    let (code, _, err) = run(kmssh()
        .current_dir(d)
        .args(["x509", "ca", "--ca", &ca, "--create", "--curve", "p384"])
        .args(["--subject", "CN=Example SSH CA,O=Example", "-o", "ca.pem"]));
    assert_eq!(code, 0, "{err}");
    let text = openssl(d, &["x509", "-in", "ca.pem", "-noout", "-text"]);
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(text.contains("ecdsa-with-SHA384"), "{text}");

    let key_types: [&[&str]; 4] = [
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
        &["-newkey", "rsa:2048"],
        &["-newkey", "ed25519"],
    ];
    for new_key in key_types {
        openssl(
            d,
            &[
                &[
                    "req", "-new", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
                ],
                new_key,
                &["-subj", "/CN=server.example.com"],
            ]
            .concat(),
        );
        let (code, _, err) = run(kmssh()
            .current_dir(d)
            .args(["x509", "leaf", "--ca", &ca, "--ca-cert", "ca.pem"])
            .args(["--csr", "leaf.csr", "--dns-name", "server.example.com"])
            .args([
                "--ip",
                "127.0.0.1",
                "--server-auth",
                "-o",
                "leaf.pem",
                "--force",
            ]));
        assert_eq!(code, 0, "{new_key:?}: {err}");
        let verified = openssl(d, &["verify", "-CAfile", "ca.pem", "leaf.pem"]);
        assert!(verified.contains("leaf.pem: OK"), "{new_key:?}: {verified}");
        let text = openssl(d, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
        assert!(text.contains("CN=server.example.com") || text.contains("CN = server.example.com"));
        assert!(
            text.contains("DNS:server.example.com, IP Address:127.0.0.1"),
            "{text}"
        );
        assert!(text.contains("TLS Web Server Authentication"), "{text}");
    }

    // A bare public key with a subject, the full u64 serial, read from stdin.
    openssl(
        d,
        &["pkey", "-in", "leaf.key", "-pubout", "-out", "leaf.pub.pem"],
    );
    let stdout = common::succeed(
        kmssh()
            .current_dir(d)
            .args([
                "x509",
                "leaf",
                "--ca",
                &ca,
                "--ca-cert",
                "ca.pem",
                "--public-key",
                "-",
            ])
            .args([
                "--subject",
                "CN=client",
                "--client-auth",
                "--serial",
                "18446744073709551615",
            ])
            .stdin(std::fs::File::open(d.join("leaf.pub.pem")).expect("public key")),
    );
    std::fs::write(d.join("client.pem"), &stdout).expect("write");
    assert!(openssl(d, &["verify", "-CAfile", "ca.pem", "client.pem"]).contains("OK"));
    let serial = openssl(d, &["x509", "-in", "client.pem", "-noout", "-serial"]);
    assert_eq!(serial.trim(), "serial=FFFFFFFFFFFFFFFF");

    // A request whose signed content was altered after signing.
    openssl(
        d,
        &[
            "req", "-in", "leaf.csr", "-outform", "DER", "-out", "leaf.der",
        ],
    );
    let mut tampered = std::fs::read(d.join("leaf.der")).expect("read");
    let at = tampered
        .windows(6)
        .position(|w| w == b"server")
        .expect("subject in request");
    tampered[at] = b'S';
    std::fs::write(d.join("tampered.der"), tampered).expect("write");

    let leaf = |extra: &[&str]| {
        let mut command = kmssh();
        command
            .current_dir(d)
            .args(["x509", "leaf", "--ca-cert", "ca.pem"])
            .args(extra);
        run(&mut command)
    };
    let other = format!("local:{}", d.join("other_key").display());
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &["--ca", &ca, "--csr", "tampered.der"],
            6,
            "does not verify",
        ),
        (
            &["--ca", &other, "--create", "--csr", "leaf.csr"],
            4,
            "for another key",
        ),
        (
            &["--ca", &ca, "--csr", "leaf.csr", "--days", "5000"],
            3,
            "outlive its CA",
        ),
        (
            &["--ca", &ca, "--public-key", "leaf.pub.pem"],
            3,
            "needs a subject name or at least one DNS name",
        ),
        (
            &["--ca", &ca, "--ca-cert", "client.pem", "--csr", "leaf.csr"],
            2,
            "",
        ),
        (&["--ca", &ca, "--csr", "leaf.key"], 3, "CSR"),
    ];
    for (args, expected, text) in cases {
        let (code, _, err) = leaf(args);
        assert_eq!(code, expected, "{args:?}: {err}");
        assert!(err.contains(text), "{args:?}: {err}");
    }
    // A leaf certificate is no CA: signing under it is refused as a key problem.
    let (code, _, err) = run(kmssh().current_dir(d).args([
        "x509",
        "leaf",
        "--ca",
        &ca,
        "--ca-cert",
        "client.pem",
        "--csr",
        "leaf.csr",
    ]));
    assert_eq!(code, 4, "{err}");
    let (code, _, err) =
        run(kmssh()
            .current_dir(d)
            .args(["x509", "ca", "--ca", &ca, "--subject", "not a name"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("RFC 4514"), "{err}");
    for (flag, value, reason) in [
        ("--days", "0", "at least 1"),
        ("--days", "3000000", "9999-12-31"),
        ("--serial", "0", "must be positive"),
    ] {
        let (code, _, err) = run(kmssh().current_dir(d).args([
            "x509",
            "ca",
            "--ca",
            &ca,
            "--subject",
            "CN=x",
            flag,
            value,
        ]));
        assert_eq!(code, 3, "{err}");
        assert!(err.contains(reason), "{err}");
    }
}

/// A batch is signed whole: one unwritable target fails with its name and exit 7 (an
/// output that cannot be written), every other certificate is still written and accepted
/// by ssh-keygen.
#[test]
fn batch_signing_writes_every_certificate_it_can() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs: Vec<_> = (0..40)
        .map(|i| keygen(dir.path(), &format!("user{i}")).with_extension("pub"))
        .collect();
    std::fs::create_dir(dir.path().join("user7-cert.pub")).expect("mkdir");
    let ca = format!("local:{}", dir.path().join("ca").display());
    let (code, _, err) = run(kmssh()
        .args(["sign", "--ca", &ca, "--create", "-n", "alice", "--force"])
        .args(&inputs));
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("user7-cert.pub"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for i in (0..40).filter(|i| *i != 7) {
        let listing = ssh_keygen_list(&dir.path().join(format!("user{i}-cert.pub")));
        assert!(
            listing.contains("Type: ssh-ed25519-cert-v01@openssh.com user"),
            "{listing}"
        );
    }
}

/// `kmssh inspect` says what `ssh-keygen -L` says (times in UTC, marked `Z`).
#[test]
fn inspect_reads_like_ssh_keygen_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user = keygen(dir.path(), "id").with_extension("pub");
    for (curve, extra) in [
        (
            "p256",
            vec![
                "-O",
                "force-command=/usr/bin/true",
                "-O",
                "source-address=10.0.0.0/8",
            ],
        ),
        ("p521", vec!["--host", "-V", "always:forever"]),
        ("p384", vec!["-V", "always:+1d"]),
        ("p256", vec!["-V", "-1d:forever", "-O", "clear"]),
    ] {
        let ca = format!("local:{}", dir.path().join(format!("ca_{curve}")).display());
        let (code, _, err) = run(kmssh()
            .args(["sign", "--ca", &ca, "--create", "--curve", curve, "--force"])
            .args(["-n", "alice,bob", "-I", "id 1", "-z", "7"])
            .args(&extra)
            .arg(&user));
        assert_eq!(code, 0, "{err}");
        let cert = dir.path().join("id-cert.pub");
        let (code, ours, err) = run(kmssh().arg("inspect").arg(&cert));
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            ours.replace("Z ", " ").replace("Z\n", "\n"),
            ssh_keygen_list(&cert)
        );
    }
}
