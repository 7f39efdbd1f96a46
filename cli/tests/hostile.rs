//! The `kmssh` binary against what a hostile requester, a careless operator or a planted
//! file can put in its way (issue 12): symlinks and shell syntax where certificates are
//! written, inputs that never end or never answer, unprotected CA keys, outputs that
//! would destroy inputs, control characters on the operator's terminal, and the rough
//! edges of the command line. Every command runs under a 60-second guard, so a
//! regression to a hang fails the test instead of stalling the suite; nothing is timed.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{keygen, kmssh, ssh_keygen_list};

/// The binary under test (`CARGO_BIN_EXE_kmssh` at run time, as `common::kmssh` finds it,
/// else the one this test was built with).
fn kmssh_path() -> PathBuf {
    std::env::var_os("CARGO_BIN_EXE_kmssh")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kmssh")), PathBuf::from)
}

/// Runs a command to its end, or kills it after 60 seconds (the test then fails on its
/// exit code, -1): exit code, stdout, stderr.
fn guarded(command: &mut Command) -> (i32, String, String) {
    let command = std::mem::replace(command, Command::new("true"));
    common::run_within(command, Duration::from_secs(60))
}

/// `kmssh ARGS…` under `sh -c 'umask MASK; exec kmssh …'`.
fn under_umask(mask: &str, dir: &Path) -> Command {
    let mut command = Command::new("sh");
    command
        .current_dir(dir)
        .args(["-c", &format!("umask {mask}; exec \"$0\" \"$@\"")])
        .arg(kmssh_path());
    command
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(ok.success());
}

/// A new P-256 CA key file (0600, made by `kmssh --create`) and its `local:` URI.
fn local_ca(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let uri = format!("local:{}", path.display());
    let (code, _, err) = guarded(kmssh().args(["pubkey", "--ca", &uri, "--create"]));
    assert_eq!(code, 0, "{err}");
    (path, uri)
}

/// The one-line error contract: nothing on stdout, one line on stderr.
fn one_line(err: &str) {
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

// 1. Planted symlinks and the submitter's comment.

#[test]
fn a_planted_symlink_is_never_written_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let user = keygen(d, "id").with_extension("pub");
    let (_, ca) = local_ca(d, "ca");
    let cert = d.join("id-cert.pub");

    // Dangling: refused without --force, and the link's target is not created.
    let victim = d.join("victim");
    std::os::unix::fs::symlink(&victim, &cert).expect("symlink");
    let (code, _, err) = guarded(kmssh().args(["sign", "--ca", &ca, "-n", "a"]).arg(&user));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--force"), "{err}");
    one_line(&err);
    assert!(!victim.exists(), "the symlink's target was created");
    assert!(cert.symlink_metadata().expect("link").is_symlink());

    // With --force the link itself is replaced; what it pointed to is untouched.
    std::fs::write(&victim, "precious\n").expect("write");
    let (code, _, err) = guarded(
        kmssh()
            .args(["sign", "--ca", &ca, "-n", "a", "--force"])
            .arg(&user),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n"
    );
    assert!(!cert.symlink_metadata().expect("cert").is_symlink());
    assert!(ssh_keygen_list(&cert).contains("user certificate"));
    assert_eq!(mode(&cert), 0o644);

    // A dangling link at `-o` is refused without --force as well.
    let out = d.join("out-cert.pub");
    let other = d.join("other-victim");
    std::os::unix::fs::symlink(&other, &out).expect("symlink");
    let csr = write_csr(d);
    let (code, _, err) = guarded(
        kmssh()
            .args(["sign", "--ca", &ca, "--csr"])
            .arg(&csr)
            .args(["--csr-format", "base64", "-o"])
            .arg(&out),
    );
    assert_eq!(code, 3, "{err}");
    assert!(!other.exists(), "the symlink's target was created");
}

#[test]
fn the_submitters_comment_cannot_carry_shell_syntax() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let user = keygen(d, "id").with_extension("pub");
    let (_, ca) = local_ca(d, "ca");
    let line = std::fs::read_to_string(&user).expect("pub");
    let mut fields = line.split_whitespace();
    let (kind, blob) = (fields.next().expect("type"), fields.next().expect("blob"));
    for comment in [
        "alice;touch${IFS}/tmp/pwned",
        "$(reboot)`id`|&>x<'\"#!*?~\\",
        "bob\u{1b}]0;owned\u{7}",
        "carol\u{202e}gpj.exe",
    ] {
        std::fs::write(&user, format!("{kind} {blob} {comment}\n")).expect("write");
        let (code, _, err) = guarded(
            kmssh()
                .args(["sign", "--ca", &ca, "-n", "a", "--force"])
                .arg(&user),
        );
        assert_eq!(code, 0, "{err}");
        let cert = std::fs::read_to_string(d.join("id-cert.pub")).expect("cert");
        let written = cert.trim_end().splitn(3, ' ').nth(2).unwrap_or("");
        assert!(!written.is_empty(), "{cert}");
        assert!(
            written
                .chars()
                .all(|c| c.is_alphanumeric() || " @._-+:/=,".contains(c)),
            "{comment:?} was written as {written:?}"
        );
        assert_eq!(cert.lines().count(), 1);
        assert!(ssh_keygen_list(&d.join("id-cert.pub")).contains("user certificate"));
    }
    let (code, _, err) = guarded(
        kmssh()
            .args(["sign", "--ca", &ca, "-n", "a", "--force"])
            .arg(&user),
    );
    assert_eq!(code, 0, "{err}");
}

// 5. Bounded reads, inputs that never end, --timeout.

#[test]
fn devices_and_fifos_as_key_files_fail_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    for (key, what) in [
        ("local:/dev/zero".to_owned(), "character device"),
        (format!("local:{}", fifo.display()), "FIFO"),
        (format!("local:{}", dir.path().display()), "directory"),
    ] {
        let (code, _, err) = guarded(kmssh().args(["pubkey", "--ca", &key]));
        assert_eq!(code, 4, "{key}: {err}");
        assert!(err.contains(what) && err.contains("regular file"), "{err}");
        one_line(&err);
    }
}

#[test]
fn endless_inputs_are_cut_at_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (_, ca) = local_ca(d, "ca");
    let zero = "/dev/zero";
    let cases: [&[&str]; 6] = [
        &["inspect", zero],
        &["verify", "--ca", zero, zero],
        &["sign", "--ca", &ca, "-n", "a", zero],
        &["sign", "--ca", &ca, "--csr", zero],
        &[
            "x509",
            "leaf",
            "--ca",
            &ca,
            "--ca-cert",
            zero,
            "--csr",
            zero,
        ],
        &[
            "x509",
            "leaf",
            "--ca",
            &ca,
            "--ca-cert",
            zero,
            "--public-key",
            zero,
        ],
    ];
    for args in cases {
        let (code, _, err) = guarded(kmssh().current_dir(d).args(args));
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(err.contains("too large"), "{args:?}: {err}");
        one_line(&err);
    }
    // `verify --ca /dev/zero` above read the certificate first; the CA file too.
    let user = keygen(d, "id").with_extension("pub");
    let (code, _, err) = guarded(kmssh().args(["sign", "--ca", &ca, "-n", "a"]).arg(&user));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = guarded(
        kmssh()
            .args(["verify", "--ca", zero])
            .arg(d.join("id-cert.pub")),
    );
    assert_eq!(code, 3, "{err}");
}

#[test]
fn timeout_bounds_a_command_blocked_on_an_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Nobody ever opens these FIFOs for writing: a plain open blocks forever.
    let fifo = d.join("fifo");
    mkfifo(&fifo);
    let fifo_arg = fifo.display().to_string();
    let cases: [&[&str]; 5] = [
        &["inspect", &fifo_arg],
        &["verify", "--ca", "local:ephemeral", &fifo_arg],
        &["sign", "--ca", "local:ephemeral", "-n", "a", &fifo_arg],
        &["sign-message", "--key", "local:ephemeral", &fifo_arg],
        &[
            "x509",
            "leaf",
            "--ca",
            "local:ephemeral",
            "--ca-cert",
            &fifo_arg,
            "--csr",
            "x",
        ],
    ];
    for args in cases {
        let (code, _, err) = guarded(kmssh().args(["--timeout", "1s"]).args(args));
        assert_eq!(code, 5, "{args:?}: {err}");
        assert!(err.contains("--timeout 1s"), "{args:?}: {err}");
        one_line(&err);
    }

    // A stdin pipe held open and silent.
    for args in [
        &["inspect", "-"][..],
        &["sign-message", "--key", "local:ephemeral", "-"],
    ] {
        let mut child = kmssh()
            .args(["--timeout", "1s"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawns");
        let stdin = child.stdin.take();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        drop(stdin);
        let status = status.expect("kmssh exited while its stdin stayed open");
        assert_eq!(status.code(), Some(5), "{args:?}");
    }
}

#[test]
fn messages_are_streamed_not_read_whole() {
    // Beyond the 1 MiB limit of every other input: only a digest is kept.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (_, key) = local_ca(d, "key");
    let message = d.join("big.bin");
    let file = std::fs::File::create(&message).expect("create");
    file.set_len(5 * 1024 * 1024 + 3).expect("sparse");
    let (code, pem, err) = guarded(kmssh().args(["pubkey", "--ca", &key, "--format", "pem"]));
    assert_eq!(code, 0, "{err}");
    std::fs::write(d.join("pub.pem"), pem).expect("write");
    let der = common::succeed(
        kmssh()
            .args(["sign-message", "--key", &key, "--format", "der"])
            .arg(&message),
    );
    std::fs::write(d.join("big.sig"), der).expect("write");
    let verified = common::openssl(
        d,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "big.sig",
            "big.bin",
        ],
    );
    assert!(verified.contains("Verified OK"), "{verified}");
}

// 6. Unprotected CA key files.

#[test]
fn an_unprotected_ca_key_is_refused_unless_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let user = keygen(d, "id").with_extension("pub");
    let (path, ca) = local_ca(d, "ca");
    for bits in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bits)).expect("chmod");
        let (code, _, err) = guarded(
            kmssh()
                .args(["sign", "--ca", &ca, "-n", "a", "--force"])
                .arg(&user),
        );
        assert_eq!(code, 4, "{bits:o}: {err}");
        one_line(&err);
        for needed in [
            "UNPROTECTED".to_owned(),
            path.display().to_string(),
            format!("{bits:04o}"),
            "chmod 600".to_owned(),
        ] {
            assert!(err.contains(&needed), "{needed}: {err}");
        }
        assert!(!d.join("id-cert.pub").exists());
    }
    // The explicit opt-in, as a URI parameter.
    let (code, _, err) = guarded(
        kmssh()
            .args(["sign", "--ca", &format!("{ca}?permissions=any"), "-n", "a"])
            .arg(&user),
    );
    assert_eq!(code, 0, "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    let (code, _, err) = guarded(kmssh().args(["pubkey", "--ca", &ca]));
    assert_eq!(code, 0, "0400 is protected: {err}");
}

#[test]
fn create_is_exclusive_and_0600_whatever_the_umask() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (code, _, err) =
        guarded(under_umask("000", d).args(["pubkey", "--ca", "local:made", "--create"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(mode(&d.join("made")), 0o600);
    // An existing file is used, never replaced.
    let before = std::fs::read(d.join("made")).expect("key");
    let (code, _, err) = guarded(kmssh().current_dir(d).args([
        "pubkey",
        "--ca",
        "local:made",
        "--create",
        "--curve",
        "p521",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(d.join("made")).expect("key"), before);
    // A planted symlink is not written through.
    std::os::unix::fs::symlink(d.join("victim"), d.join("planted")).expect("symlink");
    let (code, _, err) =
        guarded(
            kmssh()
                .current_dir(d)
                .args(["pubkey", "--ca", "local:planted", "--create"]),
        );
    assert_ne!(code, 0, "{err}");
    assert!(
        !d.join("victim").exists(),
        "a key was written through the link"
    );
}

// 7. Outputs that would destroy inputs; atomic and mode-exact writes.

/// The `ecdsa-host` request paramiko-cloud serialized (pki's vector file), base64.
const CSR_B64: &str = "CAEiBndlYi0wMSgHMhJ3ZWItMDEuZXhhbXBsZS5jb20yCTEwLjAuMC4xNTiA4s+qBkCA1/SqBkoTZWNkc2Etc2hhMi1uaXN0cDI1NlJRAAAACG5pc3RwMjU2AAAAQQTORp10I9ljwfpFOmX6dNGgshjXG8N9I2GHmoYZQhGTkt2vUgg87dplLiUxUq2c8Sf/EgDTbO4MsDNPa0B7rzdD";

fn write_csr(dir: &Path) -> PathBuf {
    let csr = dir.join("host.csr");
    std::fs::write(&csr, CSR_B64).expect("write");
    csr
}

#[test]
fn an_output_is_never_one_of_the_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (key_path, ca) = local_ca(d, "ca_key");
    let key_before = std::fs::read(&key_path).expect("key");
    let csr = write_csr(d);
    let csr_before = std::fs::read(&csr).expect("csr");
    std::fs::create_dir(d.join("sub")).expect("mkdir");
    std::os::unix::fs::symlink(&key_path, d.join("key-link")).expect("symlink");
    let sign_csr = |out: &str| {
        let mut command = kmssh();
        command
            .current_dir(d)
            .args(["sign", "--ca", &ca, "--csr", "host.csr", "--csr-format"])
            .args(["base64", "--force", "-o", out]);
        guarded(&mut command)
    };
    for out in ["ca_key", "./sub/../ca_key", "key-link", "host.csr"] {
        let (code, stdout, err) = sign_csr(out);
        assert_eq!(code, 3, "-o {out}: {err}");
        assert!(err.contains("is the input"), "{err}");
        assert!(stdout.is_empty());
        one_line(&err);
    }
    assert_eq!(std::fs::read(&key_path).expect("key"), key_before);
    assert_eq!(std::fs::read(&csr).expect("csr"), csr_before);

    // x509: the CA key and the CA certificate are inputs too.
    let (code, _, err) = guarded(kmssh().current_dir(d).args([
        "x509",
        "ca",
        "--ca",
        &ca,
        "--subject",
        "CN=CA",
        "-o",
        "ca_key",
    ]));
    assert_eq!(code, 3, "{err}");
    assert_eq!(std::fs::read(&key_path).expect("key"), key_before);
    let (code, _, err) = guarded(kmssh().current_dir(d).args([
        "x509",
        "ca",
        "--ca",
        &ca,
        "--subject",
        "CN=CA",
        "-o",
        "ca.pem",
    ]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = guarded(
        kmssh()
            .current_dir(d)
            .args(["x509", "leaf", "--ca", &ca, "--ca-cert", "ca.pem"])
            .args([
                "--public-key",
                "ca.pem",
                "--subject",
                "CN=x",
                "-o",
                "ca.pem",
            ]),
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is the input"), "{err}");

    // x509 -o replaces an existing file only with --force.
    let ca_pem = std::fs::read(d.join("ca.pem")).expect("ca.pem");
    let again = |force: bool| {
        let mut command = kmssh();
        command.current_dir(d).args([
            "x509",
            "ca",
            "--ca",
            &ca,
            "--subject",
            "CN=CA",
            "-o",
            "ca.pem",
        ]);
        if force {
            command.arg("--force");
        }
        guarded(&mut command)
    };
    let (code, _, err) = again(false);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(d.join("ca.pem")).expect("ca.pem"), ca_pem);
    let (code, _, err) = again(true);
    assert_eq!(code, 0, "{err}");
    assert_ne!(std::fs::read(d.join("ca.pem")).expect("ca.pem"), ca_pem);

    // sign: a certificate file that is the CA key (even one --create would make).
    let user = keygen(d, "id").with_extension("pub");
    for ca in [
        format!("local:{}", d.join("id-cert.pub").display()),
        format!("local:{}", d.join("sub/../id-cert.pub").display()),
    ] {
        let (code, _, err) = guarded(
            kmssh()
                .args(["sign", "--ca", &ca, "--create", "-n", "a", "--force"])
                .arg(&user),
        );
        assert_eq!(code, 3, "{err}");
        assert!(!d.join("id-cert.pub").exists(), "nothing was created");
    }
}

#[test]
fn two_inputs_for_one_certificate_are_refused_before_signing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let user = keygen(d, "a").with_extension("pub");
    std::fs::copy(&user, d.join("a")).expect("copy");
    let ca = format!("local:{}", d.join("ca").display());
    for inputs in [["a", "a.pub"], ["a.pub", "./a.pub"]] {
        let (code, _, err) = guarded(
            kmssh()
                .current_dir(d)
                .args(["sign", "--ca", &ca, "--create", "-n", "x", "--force"])
                .args(inputs),
        );
        assert_eq!(code, 3, "{err}");
        one_line(&err);
        assert!(
            err.contains(inputs[0]) && err.contains(inputs[1]) && err.contains("a-cert.pub"),
            "{err}"
        );
        assert!(!d.join("a-cert.pub").exists(), "nothing written");
        assert!(
            !d.join("ca").exists(),
            "nothing signed: the CA was not even made"
        );
    }
}

#[test]
fn modes_are_exact_whatever_the_umask() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    keygen(d, "id");
    write_csr(d);
    for mask in ["000", "022", "077"] {
        let (code, _, err) = guarded(under_umask(mask, d).args([
            "sign",
            "--ca",
            &format!("local:ca{mask}"),
            "--create",
            "-n",
            "a",
            "--force",
            "id.pub",
        ]));
        assert_eq!(code, 0, "{err}");
        assert_eq!(mode(&d.join("id-cert.pub")), 0o644, "umask {mask}");
        assert_eq!(mode(&d.join(format!("ca{mask}"))), 0o600, "umask {mask}");
        let _ = std::fs::remove_file(d.join("host-cert.pub"));
        let (code, _, err) = guarded(under_umask(mask, d).args([
            "sign",
            "--ca",
            "local:ephemeral",
            "--csr",
            "host.csr",
            "--csr-format",
            "base64",
            "-o",
            "host-cert.pub",
        ]));
        assert_eq!(code, 0, "{err}");
        assert_eq!(mode(&d.join("host-cert.pub")), 0o644, "umask {mask}");
        let (code, _, err) = guarded(under_umask(mask, d).args([
            "x509",
            "ca",
            "--ca",
            &format!("local:ca{mask}"),
            "--subject",
            "CN=CA",
            "-o",
            &format!("ca{mask}.pem"),
        ]));
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            mode(&d.join(format!("ca{mask}.pem"))),
            0o644,
            "umask {mask}"
        );
    }
}

#[test]
fn force_applies_to_csr_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write_csr(d);
    let out = d.join("host-cert.pub");
    std::fs::write(&out, "old\n").expect("write");
    let sign = |force: bool| {
        let mut command = kmssh();
        command.current_dir(d).args([
            "sign",
            "--ca",
            "local:ephemeral",
            "--csr",
            "host.csr",
            "--csr-format",
            "base64",
            "-o",
            "host-cert.pub",
        ]);
        if force {
            command.arg("--force");
        }
        guarded(&mut command)
    };
    let (code, _, err) = sign(false);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).expect("out"), "old\n");
    let (code, _, err) = sign(true);
    assert_eq!(code, 0, "{err}");
    assert!(ssh_keygen_list(&out).contains("host certificate"));
}

/// A re-sign that fails after the CA key was opened (the provider refuses to sign)
/// leaves the certificate that was there whole.
#[cfg(feature = "gcp")]
#[test]
fn a_failed_re_sign_leaves_the_old_certificate() {
    use kmssh_conformance::faults::{Fault, Operation};
    use kmssh_conformance::gcp_emulator::GcpKmsEmulator;
    use kmssh_core::Algorithm;

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let user = keygen(d, "id").with_extension("pub");
    let emulator = GcpKmsEmulator::shared();
    let name = emulator.create_key_version(Algorithm::EcdsaP256Sha256);
    let uri = format!("gcp-kms:{name}");
    let with_env = |command: &mut Command| {
        command
            .env("KMSSH_GCP_ENDPOINT", emulator.url())
            .env("KMSSH_GCP_ANONYMOUS", "true");
    };
    let mut first = kmssh();
    with_env(first.args(["sign", "--ca", &uri, "-n", "alice"]).arg(&user));
    let (code, _, err) = guarded(&mut first);
    assert_eq!(code, 0, "{err}");
    let cert = d.join("id-cert.pub");
    let before = std::fs::read(&cert).expect("cert");

    emulator
        .faults(&name)
        .expect("the key's fault handle")
        .inject(Operation::Sign, Fault::Denied, 1000);
    let mut again = kmssh();
    with_env(
        again
            .args(["sign", "--ca", &uri, "-n", "bob", "--force"])
            .arg(&user),
    );
    let (code, _, err) = guarded(&mut again);
    assert_eq!(code, 4, "{err}");
    assert!(
        emulator.count(&name, Operation::Sign) >= 2,
        "the key was opened and asked to sign"
    );
    assert_eq!(std::fs::read(&cert).expect("cert"), before, "untouched");
    assert!(ssh_keygen_list(&cert).contains("alice"));
    let leftovers = std::fs::read_dir(d)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".kmssh-"))
        .count();
    assert_eq!(leftovers, 0, "no temporary file left");
}

// 10. What inspect shows.

#[test]
fn inspect_shows_control_characters_as_escapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let user = keygen(d, "id").with_extension("pub");
    let ca = d.join("ssh_ca");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ecdsa", "-f"])
        .arg(&ca)
        .status()
        .expect("ssh-keygen");
    assert!(ok.success());
    // ssh-keygen issues what it is asked, newlines and escape sequences included.
    let ok = Command::new("ssh-keygen")
        .arg("-q")
        .arg("-s")
        .arg(&ca)
        .args([
            "-I",
            "evil\n        Principals: \n                root\u{1b}[31m",
            "-n",
            "alice,bob\u{1b}[2J",
            "-O",
            "force-command=/bin/sh\n                \u{1b}]0;owned\u{7}",
            "-O",
            "extension:x@example.com=\u{9b}31m\u{202e}",
        ])
        .arg(&user)
        .status()
        .expect("ssh-keygen -s");
    assert!(ok.success());
    let (code, out, err) = guarded(kmssh().arg("inspect").arg(d.join("id-cert.pub")));
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
        "raw control characters on the screen: {out:?}"
    );
    let principals_lines = out
        .lines()
        .filter(|l| l.trim_start().starts_with("Principals:"))
        .count();
    assert_eq!(principals_lines, 1, "a faked Principals line: {out}");
    assert!(!out.lines().any(|l| l.trim() == "root"), "{out}");
    assert!(
        out.contains(r#"Key ID: "evil\n        Principals: \n                root\x1b[31m""#),
        "{out}"
    );
    assert!(out.contains(r"bob\x1b[2J"), "{out}");
    assert!(out.contains(r"force-command /bin/sh\n"), "{out}");
    assert!(out.contains(r"x@example.com \u{9b}31m\u{202e}"), "{out}");
    // JSON escapes them as JSON does, and keeps the values exact.
    let (code, json, err) = guarded(
        kmssh()
            .args(["inspect", "--json"])
            .arg(d.join("id-cert.pub")),
    );
    assert_eq!(code, 0, "{err}");
    assert!(!json.contains('\u{1b}'), "{json}");
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        value["key_id"],
        "evil\n        Principals: \n                root\u{1b}[31m"
    );
}

// 11. Rough edges of the command line.

#[test]
fn flags_for_csr_only_are_usage_errors_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let user = keygen(d, "id").with_extension("pub");
    for flags in [&["-o", "out"][..], &["--csr-format", "base64"]] {
        let (code, _, err) = guarded(
            kmssh()
                .current_dir(d)
                .args(["sign", "--ca", "local:ephemeral", "-n", "a"])
                .args(flags)
                .arg(&user),
        );
        assert_eq!(code, 2, "{flags:?}: {err}");
        assert!(err.contains("--csr"), "{err}");
        assert!(!d.join("out").exists() && !d.join("id-cert.pub").exists());
    }
}

#[test]
fn usage_errors_are_one_line_and_a_hint() {
    let cases: [&[&str]; 6] = [
        &["sign", "--bogus"],
        &[
            "sign",
            "--ca",
            "local:ephemeral",
            "--csr",
            "x",
            "-n",
            "extra",
        ],
        &[
            "sign",
            "--ca",
            "local:ephemeral",
            "--curve",
            "p999",
            "x.pub",
        ],
        &["x509", "leaf", "--ca", "local:ephemeral"],
        &["nosuchcommand"],
        &[],
    ];
    for args in cases {
        let (code, out, err) = guarded(kmssh().args(args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{out}");
        let lines: Vec<&str> = err.trim_end().lines().collect();
        assert_eq!(lines.len(), 2, "{args:?}: {err}");
        assert!(lines[0].starts_with("kmssh: "), "{err}");
        assert!(
            lines[1].starts_with("Try 'kmssh") && lines[1].ends_with("--help'."),
            "{err}"
        );
    }
    let (_, _, err) = guarded(kmssh().args(["x509", "leaf", "--bogus"]));
    assert!(err.contains("Try 'kmssh x509 leaf --help'."), "{err}");
    // Help itself is not an error.
    let (code, out, _) = guarded(kmssh().args(["sign", "--help"]));
    assert_eq!(code, 0);
    assert!(out.contains("--csr-format"), "{out}");
}

#[test]
fn an_unsupported_subject_key_is_bad_input_and_an_unsupported_ca_a_key_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let rsa = d.join("rsa");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "rsa", "-b", "1024", "-f"])
        .arg(&rsa)
        .status()
        .expect("ssh-keygen");
    assert!(ok.success());
    let (code, _, err) = guarded(
        kmssh()
            .args(["sign", "--ca", "local:ephemeral", "-n", "a"])
            .arg(rsa.with_extension("pub")),
    );
    assert_eq!(code, 3, "{err}");
    one_line(&err);
    // An RSA-1024 CA key file: kmssh signs with RSA keys of 2048 bits or more.
    let user = keygen(d, "id").with_extension("pub");
    let (code, _, err) = guarded(
        kmssh()
            .args([
                "sign",
                "--ca",
                &format!("local:{}", rsa.display()),
                "-n",
                "a",
            ])
            .arg(&user),
    );
    assert!(err.contains("RSA-1024"), "{err}");
    assert_eq!(code, 4, "{err}");
}

#[test]
fn local_paths_that_look_like_ephemeral_are_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pubkey = |extra: &[&str]| {
        let mut command = kmssh();
        command
            .current_dir(d)
            .args(["pubkey", "--ca", "local:ephemeral.key"])
            .args(extra);
        guarded(&mut command)
    };
    let (code, first, err) = pubkey(&["--create"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(mode(&d.join("ephemeral.key")), 0o600);
    let (code, second, err) = pubkey(&[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(first, second, "the same key file, not a new key in memory");
}

#[test]
fn a_bad_uri_with_create_creates_nothing_and_errors_show_the_uri_as_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let path = d.join("new_key");
    let (code, _, err) = guarded(kmssh().args([
        "pubkey",
        "--ca",
        &format!("local:{}?bad=1", path.display()),
        "--create",
    ]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("bad"), "{err}");
    assert!(
        !path.exists(),
        "the key was created before the URI was checked"
    );

    // Errors name the URI the user typed, nothing the CLI added (no `engine=`).
    let users: Vec<PathBuf> = (0..2)
        .map(|i| keygen(d, &format!("u{i}")).with_extension("pub"))
        .collect();
    let missing = format!("local:{}", d.join("missing").display());
    let (code, _, err) = guarded(
        kmssh()
            .args(["sign", "--ca", &missing, "-n", "a"])
            .args(&users),
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(&format!("uri={missing}]")), "{err}");
    assert!(!err.contains("engine"), "{err}");
}

#[test]
fn verify_takes_a_file_of_several_ca_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let user = keygen(d, "id").with_extension("pub");
    let (_, ours) = local_ca(d, "ours");
    let (_, other) = local_ca(d, "other");
    let (_, third) = local_ca(d, "third");
    let (code, _, err) = guarded(
        kmssh()
            .args(["sign", "--ca", &ours, "-n", "alice"])
            .arg(&user),
    );
    assert_eq!(code, 0, "{err}");
    let line = |uri: &str, comment: &str| {
        let (code, out, err) = guarded(kmssh().args(["pubkey", "--ca", uri, "--comment", comment]));
        assert_eq!(code, 0, "{err}");
        out
    };
    let trusted = d.join("trusted_user_ca_keys");
    std::fs::write(
        &trusted,
        format!(
            "# TrustedUserCAKeys\n\n{}\n   # retired\n{}\n",
            line(&other, "other").trim(),
            line(&ours, "ours").trim()
        ),
    )
    .expect("write");
    let cert = d.join("id-cert.pub");
    let (code, out, err) = guarded(
        kmssh()
            .args(["verify", "--ca"])
            .arg(&trusted)
            .args(["--principal", "alice"])
            .arg(&cert),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"), "{out}");
    // Not signed by any listed CA: verification fails (6).
    let untrusted = d.join("untrusted");
    std::fs::write(
        &untrusted,
        format!("{}{}", line(&other, "a"), line(&third, "b")),
    )
    .expect("write");
    let (code, _, err) = guarded(kmssh().args(["verify", "--ca"]).arg(&untrusted).arg(&cert));
    assert_eq!(code, 6, "{err}");
    one_line(&err);
    // A line that is not a key is named.
    std::fs::write(&untrusted, format!("{}not a key\n", line(&ours, "a"))).expect("write");
    let (code, _, err) = guarded(kmssh().args(["verify", "--ca"]).arg(&untrusted).arg(&cert));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("line 2"), "{err}");
}

/// The exit-status rows (`| N | meaning |`) of a text, in order.
fn exit_rows(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_start_matches("//! "))
        .filter(|l| {
            let b = l.as_bytes();
            b.len() > 4 && l.starts_with("| ") && b[2].is_ascii_digit() && &l[3..5] == " |"
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_exit_status_tables_in_the_code_the_readme_and_the_security_model_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect(p);
    let code = exit_rows(&read("cli/src/exit.rs"));
    assert_eq!(code.len(), 9, "{code:?}");
    let readme = read("README.md");
    let readme_rows = exit_rows(&readme[readme.find("Exit status:").expect("a table")..]);
    assert_eq!(readme_rows[..9], code[..], "README.md");
    let security = read("docs/SECURITY.md");
    let security_rows = exit_rows(&security[security.find("## Exit status").expect("a table")..]);
    assert_eq!(security_rows, code, "docs/SECURITY.md");
}

/// `kmssh verify` itself on the conformance suite's hostile certificates (whose sshd
/// verdicts `conformance/tests/hostile_inputs.rs` checks against a real sshd): the binary must
/// give sshd's verdict, or refuse where kmssh is deliberately stricter.
#[test]
fn kmssh_verify_gives_sshds_verdict_on_every_hostile_certificate() {
    use kmssh_conformance::hostile::{self, Verdict};
    use kmssh_conformance::kmssh_backend_local::{LocalKey, LocalOptions};
    use kmssh_core::{Curve, KeySpec, KmsKey as _};
    use kmssh_pki::ssh_key::public::KeyData;

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let key =
        || LocalKey::generate(KeySpec::Ecdsa(Curve::P256), LocalOptions::default()).expect("key");
    let (ca, other_ca) = (key(), key());
    let subject_path = keygen(d, "id").with_extension("pub");
    let subject: KeyData =
        kmssh_pki::parse_subject_key(&std::fs::read_to_string(&subject_path).expect("pub"))
            .expect("subject");
    std::fs::write(
        d.join("ca.pub"),
        format!("{}\n", kmssh_pki::pubkey_string(ca.public_key(), "ca")),
    )
    .expect("ca.pub");
    let now = kmssh_pki::unix_now();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cases = runtime.block_on(hostile::certificates(
        &ca, &other_ca, &subject, "alice", now,
    ));
    assert!(cases.len() > 10);
    for (i, case) in cases.iter().enumerate() {
        let path = d.join(format!("case{i}-cert.pub"));
        std::fs::write(
            &path,
            format!(
                "{}-cert-v01@openssh.com {}\n",
                subject.algorithm().as_str(),
                base64_encode(&case.blob)
            ),
        )
        .expect("write");
        let (code, stdout, err) = guarded(
            kmssh()
                .args(["verify", "--ca"])
                .arg(d.join("ca.pub"))
                .args(["--principal", "alice", "--type", "user"])
                .arg(&path),
        );
        let accepted = code == 0;
        let expected = case.openssh == Verdict::Accept && case.kmssh_stricter.is_none();
        assert_eq!(
            accepted, expected,
            "{}: exit {code}, {stdout}{err}",
            case.name
        );
        if !accepted {
            assert!(matches!(code, 3 | 6), "{}: exit {code}: {err}", case.name);
            one_line(&err);
        }
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64ct::{Base64, Encoding as _};
    Base64::encode_string(bytes)
}
