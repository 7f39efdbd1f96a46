//! What the CLI tests share: running the binary and the OpenSSH / OpenSSL tools.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

/// The `kmssh` binary under test.
pub fn kmssh() -> Command {
    Command::cargo_bin("kmssh").expect("binary")
}

/// A new Ed25519 key pair `dir/name` (and `name.pub`) from ssh-keygen.
pub fn keygen(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ed25519", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen");
    assert!(ok.success());
    path
}

/// `ssh-keygen -L` of a certificate, in UTC.
pub fn ssh_keygen_list(cert: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .env("TZ", "UTC")
        .arg("-L")
        .arg("-f")
        .arg(cert)
        .output()
        .expect("ssh-keygen -L");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command: exit code, stdout, stderr.
pub fn run(command: &mut Command) -> (i32, String, String) {
    let out = command.output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command to its end, or kills it after `limit` (its exit code is then -1): exit
/// code, stdout, stderr. For commands that must not hang.
pub fn run_within(command: Command, limit: std::time::Duration) -> (i32, String, String) {
    let out = assert_cmd::Command::from_std(command)
        .timeout(limit)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command that must succeed (else the test fails with its stderr); its stdout.
pub fn succeed(command: &mut Command) -> Vec<u8> {
    let out = command.output().expect("runs");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `ssh-keygen -Y verify` of `signature` over `message` for `signer`'s OpenSSH key line.
pub fn ssh_keygen_verify(
    dir: &Path,
    key_line: &str,
    namespace: &str,
    message: &Path,
    signature: &Path,
) -> bool {
    let signers = dir.join("allowed_signers");
    std::fs::write(&signers, format!("ops@example.com {key_line}")).expect("write");
    Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(&signers)
        .args(["-I", "ops@example.com", "-n", namespace, "-s"])
        .arg(signature)
        .stdin(std::fs::File::open(message).expect("message"))
        .output()
        .expect("ssh-keygen -Y verify")
        .status
        .success()
}

/// `openssl` with these arguments succeeds, or the test fails with its stderr.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
