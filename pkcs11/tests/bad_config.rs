//! Configurations that cannot be used, seen by a real client (`pkcs11-tool`): a bad file
//! fails `C_Initialize` with one stderr line naming the file and line; a key that cannot
//! be opened is left out, with one line naming it, and the other keys still serve.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use kmssh_core::{Curve, KeySpec};
use support::{KeySet, Output, module_lines, run};

const LIMIT: Duration = Duration::from_secs(60);

fn list_objects(config: &std::path::Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new("pkcs11-tool");
    command
        .arg("--module")
        .arg(support::module_path())
        .arg("--list-objects")
        .envs(env.iter().copied());
    run(command, config, LIMIT)
}

fn write(set: &KeySet, name: &str, text: &str) -> std::path::PathBuf {
    let path = set.dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// Asserts `C_Initialize` failed and the module said why in exactly one line.
fn assert_refused(out: &Output, want: &str) {
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains("C_Initialize failed: rv = CKR_GENERAL_ERROR"),
        "{}",
        out.stderr
    );
    let lines = module_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].contains(want),
        "{:?} does not contain {want:?}",
        lines[0]
    );
}

/// A missing file, an unknown key, a duplicate label, a duplicate id, a bad timeout.
#[test]
fn bad_files_fail_initialisation_naming_file_and_line() {
    let set = KeySet::new(&[("a", KeySpec::Ecdsa(Curve::P256))], "");
    let uri = &set.key("a").uri;
    let missing = set.dir.path().join("none.toml");
    assert_refused(
        &list_objects(&missing, &[]),
        &format!(
            "kmssh-pkcs11: {}: No such file or directory",
            missing.display()
        ),
    );
    let unknown = write(
        &set,
        "unknown.toml",
        &format!("[[key]]\nlabel = \"a\"\nuri = \"{uri}\"\ncolour = \"red\"\n"),
    );
    assert_refused(
        &list_objects(&unknown, &[]),
        &format!("{}:4: unknown field `colour`", unknown.display()),
    );
    let duplicate = write(
        &set,
        "duplicate.toml",
        &format!(
            "[[key]]\nlabel = \"a\"\nuri = \"{uri}\"\n\n[[key]]\nlabel = \"a\"\nuri = \"{uri}\"\n"
        ),
    );
    assert_refused(
        &list_objects(&duplicate, &[]),
        &format!(
            "{}:6: key[1].label: label `a` is already used by the key on line 1",
            duplicate.display()
        ),
    );
    let same_id = write(
        &set,
        "same-id.toml",
        &format!(
            "[[key]]\nlabel = \"a\"\nuri = \"{uri}\"\nid = \"01\"\n[[key]]\nlabel = \"b\"\nuri = \"{uri}\"\nid = \"01\"\n"
        ),
    );
    assert_refused(
        &list_objects(&same_id, &[]),
        &format!(
            "{}:8: key[1].id: id `01` is already used",
            same_id.display()
        ),
    );
    let timeout = write(&set, "timeout.toml", "timeout = \"soon\"\n");
    assert_refused(
        &list_objects(&timeout, &[]),
        &format!("{}:1: timeout: `soon`", timeout.display()),
    );
}

/// Keys that cannot be opened (a missing key file, an unknown scheme, an AWS KMS endpoint
/// nobody answers) are left out with one line each; the good key is still there, and the
/// unreachable one costs no more than the configured timeout.
#[test]
fn keys_that_cannot_be_opened_are_left_out() {
    let set = KeySet::new(&[("good", KeySpec::Ecdsa(Curve::P256))], "");
    let gone = set.dir.path().join("gone");
    let config = write(
        &set,
        "partial.toml",
        &format!(
            "timeout = \"2s\"\n[[key]]\nlabel = \"gone\"\nuri = \"local:{}\"\n[[key]]\nlabel = \"good\"\nuri = \"{}\"\n[[key]]\nlabel = \"odd\"\nuri = \"nope:thing\"\n[[key]]\nlabel = \"cloud\"\nuri = \"aws-kms:alias/nobody\"\n",
            gone.display(),
            set.key("good").uri
        ),
    );
    // Port 9 on loopback: nothing listens, so the AWS backend fails or times out.
    let aws = [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let started = Instant::now();
    let out = list_objects(&config, &aws);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout.matches("label:      good\n").count(),
        2,
        "{}",
        out.stdout
    );
    for label in ["gone", "odd", "cloud"] {
        assert!(
            !out.stdout.contains(&format!("label:      {label}")),
            "{}",
            out.stdout
        );
    }
    let lines = module_lines(&out.stderr);
    assert_eq!(lines.len(), 3, "one line per key left out: {}", out.stderr);
    assert!(
        lines[0].starts_with("kmssh-pkcs11: gone: not found"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(&gone.display().to_string()),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("kmssh-pkcs11: odd: "), "{}", lines[1]);
    assert!(
        lines[2].starts_with("kmssh-pkcs11: cloud: "),
        "{}",
        lines[2]
    );
    assert!(
        lines.iter().all(|l| l.ends_with("left out of the token")),
        "{lines:?}"
    );
}

/// Without `KMSSH_PKCS11_CONFIG`, the file is `~/.config/kmssh/pkcs11.toml`.
#[test]
fn default_path_is_under_home() {
    let set = KeySet::new(&[("home", KeySpec::Ecdsa(Curve::P384))], "");
    let home = set.dir.path().join("profile");
    std::fs::create_dir_all(home.join(".config/kmssh")).expect("mkdir");
    std::fs::copy(&set.config, home.join(".config/kmssh/pkcs11.toml")).expect("copy");
    let mut command = Command::new("pkcs11-tool");
    command
        .arg("--module")
        .arg(support::module_path())
        .arg("--list-objects")
        .env("HOME", &home);
    // An empty KMSSH_PKCS11_CONFIG counts as unset.
    let out = run(command, std::path::Path::new(""), LIMIT);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout.matches("label:      home\n").count(),
        2,
        "{}",
        out.stdout
    );
}
