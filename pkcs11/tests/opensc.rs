//! opensc's `pkcs11-tool` against the module: listing, signing (checked by `openssl`),
//! and its self-test. Each test runs pkcs11-tool as a child with its own configuration,
//! killed if it outlives its limit.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kmssh_core::{Curve, KeySpec, PublicKey};
use sha2::Digest as _;
use support::{ALL_SPECS, KeySet, Output, hex, module_lines, run};

const LIMIT: Duration = Duration::from_secs(60);

fn pkcs11_tool(set: &KeySet, args: &[&str]) -> Output {
    let mut command = Command::new("pkcs11-tool");
    command
        .arg("--module")
        .arg(support::module_path())
        .args(args);
    run(command, &set.config, LIMIT)
}

fn openssl(args: &[&str], dir: &Path) -> Output {
    let mut command = Command::new("openssl");
    command.args(args).current_dir(dir);
    // openssl does not read the module's configuration; the path is only passed along.
    run(command, Path::new("/nonexistent"), LIMIT)
}

/// The default CKA_ID of a key, in hex, computed here from its OpenSSH line.
fn id_hex(key: &PublicKey) -> String {
    let line = kmssh_pki::pubkey_string(key, "");
    let blob = kmssh_pki::ssh_key::PublicKey::from_openssh(&line)
        .expect("OpenSSH line")
        .to_bytes()
        .expect("blob");
    hex(&sha2::Sha256::digest(&blob)[..16])
}

/// `-L -M -O`: the slot, the token, every mechanism and both objects of every key.
#[test]
fn lists_slot_mechanisms_and_objects() {
    let set = KeySet::new(&ALL_SPECS, "");
    let out = pkcs11_tool(
        &set,
        &["--list-slots", "--list-mechanisms", "--list-objects"],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    for expected in [
        "token label        : kmssh",
        "token flags        : rng, token initialized",
        "ECDSA, keySize={256,521}, hw, sign",
        "ECDSA-SHA384, keySize={256,521}, hw, sign",
        "RSA-PKCS, keySize={2048,8192}, hw, sign",
        "SHA512-RSA-PKCS, keySize={2048,8192}, hw, sign",
        "EDDSA, keySize={255,255}, hw, sign",
        "Public Key Object; RSA 2048 bits",
        "EC_PARAMS:  06082a8648ce3d030107",
        "EC_PARAMS:  06052b81040022",
        "EC_PARAMS:  06052b81040023",
        "EC_PARAMS:  06032b6570",
        "Access:     sensitive, always sensitive, never extractable",
    ] {
        assert!(
            out.stdout.contains(expected),
            "missing {expected:?} in:\n{}",
            out.stdout
        );
    }
    for key in &set.keys {
        let id = format!("ID:         {}", id_hex(&key.public_key));
        assert_eq!(
            out.stdout.matches(&id).count(),
            2,
            "{}: both objects",
            key.label
        );
        assert_eq!(
            out.stdout
                .matches(&format!("label:      {}\n", key.label))
                .count(),
            2
        );
    }
    assert!(module_lines(&out.stderr).is_empty(), "{}", out.stderr);
}

/// `--sign` with every curve's hash-and-sign mechanism, raw `CKM_ECDSA` on a digest,
/// RSA PKCS#1 v1.5 and Ed25519; `openssl` verifies each signature with the key file's
/// public key.
#[test]
fn signatures_verify_with_openssl() {
    let set = KeySet::new(&ALL_SPECS, "");
    let dir = set.dir.path();
    std::fs::write(dir.join("msg"), b"signed by pkcs11-tool through kmssh\n").expect("msg");
    for key in &set.keys {
        std::fs::write(
            dir.join(format!("{}.pem", key.label)),
            key.public_key.to_pem().expect("PEM"),
        )
        .expect("pem");
    }
    let digest = sha2::Sha256::digest(b"signed by pkcs11-tool through kmssh\n");
    std::fs::write(dir.join("msg.sha256"), digest).expect("digest");
    let cases = [
        ("p256", "ECDSA-SHA256", "msg", "-sha256", true),
        ("p256", "ECDSA", "msg.sha256", "-sha256", true),
        ("p384", "ECDSA-SHA384", "msg", "-sha384", true),
        ("p521", "ECDSA-SHA512", "msg", "-sha512", true),
        ("rsa2048", "SHA256-RSA-PKCS", "msg", "-sha256", false),
        ("rsa2048", "SHA512-RSA-PKCS", "msg", "-sha512", false),
    ];
    for (label, mechanism, input, hash, ecdsa) in cases {
        let id = id_hex(&set.key(label).public_key);
        let signature = format!("{label}-{mechanism}.sig");
        let mut args = vec![
            "--sign",
            "--mechanism",
            mechanism,
            "--id",
            &id,
            "-i",
            input,
            "-o",
            &signature,
        ];
        if ecdsa {
            args.extend(["--signature-format", "openssl"]);
        }
        let args: Vec<String> = args
            .iter()
            .map(|a| match *a {
                "msg" | "msg.sha256" => dir.join(a).display().to_string(),
                a if a == signature => dir.join(a).display().to_string(),
                a => a.to_owned(),
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = pkcs11_tool(&set, &args);
        assert_eq!(out.code, Some(0), "{label} {mechanism}: {out:?}");
        let verified = openssl(
            &[
                "dgst",
                hash,
                "-verify",
                &format!("{label}.pem"),
                "-signature",
                &signature,
                "msg",
            ],
            dir,
        );
        assert_eq!(
            verified.stdout.trim(),
            "Verified OK",
            "{label} {mechanism}: {verified:?}"
        );
    }
    let id = id_hex(&set.key("ed25519").public_key);
    let signature = dir.join("ed.sig").display().to_string();
    let message = dir.join("msg").display().to_string();
    let out = pkcs11_tool(
        &set,
        &[
            "--sign",
            "--mechanism",
            "EDDSA",
            "--id",
            &id,
            "-i",
            &message,
            "-o",
            &signature,
        ],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let verified = openssl(
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "ed25519.pem",
            "-rawin",
            "-in",
            "msg",
            "-sigfile",
            "ed.sig",
        ],
        dir,
    );
    assert_eq!(
        verified.stdout.trim(),
        "Signature Verified Successfully",
        "{verified:?}"
    );
}

/// `--test` passes, with and without `--login` (any PIN), on EC and Ed25519 keys.
#[test]
fn self_test_passes() {
    let set = KeySet::new(
        &[
            ("p256", KeySpec::Ecdsa(Curve::P256)),
            ("p384", KeySpec::Ecdsa(Curve::P384)),
            ("ed25519", KeySpec::Ed25519),
        ],
        "",
    );
    for args in [&["--test"][..], &["--test", "--login", "--pin", "0000"]] {
        let out = pkcs11_tool(&set, args);
        assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
        assert!(out.stdout.contains("No errors"), "{args:?}: {}", out.stdout);
        assert!(out.stdout.contains("C_GenerateRandom"), "{}", out.stdout);
    }
}

/// `--test` on an RSA key stops where a KMS cannot follow: its first RSA signature is
/// over a SHA-1 DigestInfo, which no KMS signs, and the module says so on one line.
#[test]
fn self_test_rsa_stops_at_sha1() {
    let set = KeySet::new(&[("rsa2048", KeySpec::Rsa(2048))], "");
    let out = pkcs11_tool(&set, &["--test"]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains("C_SignFinal failed: rv = CKR_DATA_INVALID"),
        "{}",
        out.stderr
    );
    let lines = module_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].contains("rsa2048: CKM_RSA_PKCS") && lines[0].contains("SHA-1"),
        "{}",
        lines[0]
    );
}
