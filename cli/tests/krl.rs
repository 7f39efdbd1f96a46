//! `kmssh krl` judged by OpenSSH: `ssh-keygen -Q` agrees with `kmssh krl --check` on KRLs
//! written by either tool, `--update` changes a KRL in place, `--sign` makes an SSHSIG
//! `ssh-keygen -Y verify` accepts, and a real sshd with `RevokedKeys` refuses a revoked
//! certificate and accepts an unrevoked one from the same CA.

mod common;

use std::path::Path;
use std::process::Command;

use common::{keygen, kmssh, run};

fn ssh_keygen(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("ssh-keygen")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("ssh-keygen runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Issues a certificate for `key` with `serial` and `key_id` into `name`.
fn issue(dir: &Path, key: &Path, serial: u64, key_id: &str, name: &str) -> std::path::PathBuf {
    let (code, stdout, err) = run(kmssh()
        .current_dir(dir)
        .args([
            "sign",
            "--ca",
            "local:ca_key",
            "--create",
            "-n",
            &common_user(),
            "-z",
            &serial.to_string(),
            "-I",
            key_id,
        ])
        .arg("-")
        .stdin(std::fs::File::open(key).expect("pub")));
    assert_eq!(code, 0, "{err}");
    let path = dir.join(name);
    std::fs::write(&path, stdout).expect("write certificate");
    path
}

fn common_user() -> String {
    kmssh_conformance::openssh::current_user()
}

/// Whether ssh-keygen -Q and kmssh krl --check both say revoked (asserting they agree).
fn revoked(dir: &Path, krl: &str, file: &Path) -> bool {
    let file = file.display().to_string();
    let (theirs, text) = ssh_keygen(dir, &["-Q", "-f", krl, &file]);
    assert!(matches!(theirs, 0 | 1), "ssh-keygen -Q: {text}");
    let (ours, stdout, err) = run(kmssh()
        .current_dir(dir)
        .args(["krl", "--check", krl, &file]));
    assert!(matches!(ours, 0 | 8), "kmssh krl --check: {stdout}{err}");
    assert_eq!(
        theirs == 1,
        ours == 8,
        "{file} in {krl}: ssh-keygen says {text}, kmssh says {stdout}{err}"
    );
    assert_eq!(ours == 8, stdout.contains("REVOKED"), "{stdout}");
    ours == 8
}

#[test]
fn ssh_keygen_and_kmssh_agree_on_krls_written_by_either_tool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let user = keygen(d, "user").with_extension("pub");
    let stolen = keygen(d, "stolen").with_extension("pub");
    let certs: Vec<_> = [
        (1000, "alice", "c1000-cert.pub"),
        (1050, "alice", "c1050-cert.pub"),
        (1100, "alice", "c1100-cert.pub"),
        (77, "laptop", "c77-cert.pub"),
        (78, "desk", "c78-cert.pub"),
    ]
    .iter()
    .map(|&(serial, id, name)| issue(d, &user, serial, id, name))
    .collect();
    let stolen_cert = issue(d, &stolen, 5, "other", "stolen-cert.pub");
    let (code, ca_line, err) = run(kmssh()
        .current_dir(d)
        .args(["pubkey", "--ca", "local:ca_key"]));
    assert_eq!(code, 0, "{err}");
    std::fs::write(d.join("ca.pub"), &ca_line).expect("ca.pub");

    // Ours: serials 1000-1099 and key id laptop, from the CA key itself.
    let (code, _, err) = run(kmssh().current_dir(d).args([
        "krl",
        "--ca",
        "local:ca_key",
        "--revoke-serial",
        "1000-1099",
        "--revoke-key-id",
        "laptop",
        "--revoke-key",
        "stolen.pub",
        "-o",
        "ours.krl",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("version 1"), "{err}");
    // ssh-keygen's: the same, from the CA's public key.
    std::fs::write(
        d.join("spec"),
        format!(
            "serial: 1000-1099\nid: laptop\nkey: {}",
            std::fs::read_to_string(&stolen).expect("pub")
        ),
    )
    .expect("spec");
    let (code, text) = ssh_keygen(d, &["-k", "-f", "theirs.krl", "-s", "ca.pub", "spec"]);
    assert_eq!(code, 0, "{text}");

    let expected = [true, true, false, true, false];
    for krl in ["ours.krl", "theirs.krl"] {
        for (cert, &want) in certs.iter().zip(&expected) {
            assert_eq!(revoked(d, krl, cert), want, "{} in {krl}", cert.display());
        }
        assert!(
            revoked(d, krl, &stolen_cert),
            "a certificate for a revoked key"
        );
        assert!(revoked(d, krl, &stolen), "the revoked key itself");
        assert!(!revoked(d, krl, &user), "the user's plain key");
    }

    // --update in place: the version goes up, earlier revocations stay.
    let (code, _, err) = run(kmssh().current_dir(d).args([
        "krl",
        "--ca",
        "ca.pub",
        "--update",
        "ours.krl",
        "--revoke-serial",
        "1100",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("version 2"), "{err}");
    assert!(revoked(d, "ours.krl", &certs[2]));
    assert!(revoked(d, "ours.krl", &certs[0]));

    // A new KRL never replaces a file by surprise; serial 0 is refused.
    let (code, _, err) = run(kmssh().current_dir(d).args([
        "krl",
        "--ca",
        "ca.pub",
        "--revoke-serial",
        "5",
        "-o",
        "ours.krl",
    ]));
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = run(kmssh().current_dir(d).args([
        "krl",
        "--ca",
        "ca.pub",
        "--revoke-serial",
        "0",
        "-o",
        "zero.krl",
    ]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("key id"), "{err}");
    assert!(!d.join("zero.krl").exists());

    // --check on something that is not a KRL is bad input, not "ok".
    let (code, _, err) = run(kmssh()
        .current_dir(d)
        .args(["krl", "--check", "ca.pub", "user.pub"]));
    assert_eq!(code, 3, "{err}");
}

#[test]
fn a_signed_krl_verifies_with_ssh_keygen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (code, _, err) = run(kmssh().current_dir(d).args([
        "krl",
        "--ca",
        "local:ca_key",
        "--create",
        "--revoke-key-id",
        "x",
        "--sign",
        "-o",
        "signed.krl",
    ]));
    // --create is not a krl option: the CA must exist.
    assert_eq!(code, 2, "{err}");
    let (code, ca_line, err) =
        run(kmssh()
            .current_dir(d)
            .args(["pubkey", "--ca", "local:ca_key", "--create"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(kmssh().current_dir(d).args([
        "krl",
        "--ca",
        "local:ca_key",
        "--revoke-key-id",
        "x",
        "--sign",
        "-o",
        "signed.krl",
    ]));
    assert_eq!(code, 0, "{err}");
    std::fs::write(d.join("allowed"), format!("krl-ca {ca_line}")).expect("allowed");
    let out = Command::new("ssh-keygen")
        .current_dir(d)
        .args([
            "-Y",
            "verify",
            "-f",
            "allowed",
            "-I",
            "krl-ca",
            "-n",
            "file",
            "-s",
            "signed.krl.sig",
        ])
        .stdin(std::fs::File::open(d.join("signed.krl")).expect("krl"))
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn sshd_with_revoked_keys_refuses_the_revoked_certificate_only() {
    use kmssh_conformance::openssh::{SshLogin, Sshd, SshdConfig};
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let client = keygen(d, "client");
    let client_pub = client.with_extension("pub");
    let revoked_cert = issue(d, &client_pub, 500, "client", "revoked-cert.pub");
    let good_cert = issue(d, &client_pub, 501, "client", "good-cert.pub");
    let (code, ca_line, err) = run(kmssh()
        .current_dir(d)
        .args(["pubkey", "--ca", "local:ca_key"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(kmssh().current_dir(d).args([
        "krl",
        "--ca",
        "local:ca_key",
        "--revoke-serial",
        "500",
        "-o",
        "revoked.krl",
    ]));
    assert_eq!(code, 0, "{err}");
    let host_key = keygen(d, "host");
    let host_line = std::fs::read_to_string(host_key.with_extension("pub")).expect("host");
    let sshd = Sshd::start(&SshdConfig {
        dir: d,
        trusted_user_ca: ca_line.trim(),
        host_key: &host_key,
        host_certificate: None,
        revoked_keys: Some(&d.join("revoked.krl")),
        authorized_keys: None,
    });
    let user = common_user();
    let known_hosts = format!("[127.0.0.1]:{} {}", sshd.port(), host_line.trim());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let login = |cert: &Path| {
        runtime.block_on(
            SshLogin {
                dir: d,
                port: sshd.port(),
                user: &user,
                identity: &client,
                certificate: Some(cert),
                known_hosts: &known_hosts,
                command: "echo logged-in",
            }
            .run(),
        )
    };
    let good = login(&good_cert);
    assert!(
        good.status.success() && String::from_utf8_lossy(&good.stdout).contains("logged-in"),
        "the unrevoked certificate: {good:?}\n{}",
        sshd.log_text()
    );
    let refused = login(&revoked_cert);
    assert!(
        !refused.status.success(),
        "the revoked certificate logged in"
    );
    assert!(
        sshd.log_text().contains("revoked"),
        "sshd says why: {}",
        sshd.log_text()
    );
}
