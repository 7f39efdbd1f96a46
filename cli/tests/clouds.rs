//! The `kmssh` binary against each cloud backend's emulator, configured only through the
//! environment a user would set: every command's output checked by `ssh-keygen` and
//! `openssl`, and the failure classes a cloud adds (missing key, refused credential) by
//! their exit codes.

mod common;

use std::path::Path;
use std::process::Command;

use common::{keygen, kmssh, openssl, run, ssh_keygen_list, ssh_keygen_verify};

/// A cloud key as the CLI reaches it: its URI, the environment it needs, and the hash
/// its signatures use.
struct CloudKey {
    uri: String,
    env: Vec<(&'static str, String)>,
    openssl_hash: &'static str,
}

impl CloudKey {
    /// `kmssh` with this key's environment (and none of the caller's cloud settings).
    fn kmssh(&self) -> Command {
        let mut command = kmssh();
        for (name, _) in std::env::vars() {
            if name.starts_with("AWS_") || name.starts_with("KMSSH_") || name.starts_with("AZURE_")
            {
                command.env_remove(name);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }
}

/// Every command of the CLI with one cloud key.
fn every_command_works(key: &CloudKey, dir: &Path) {
    let uri = key.uri.as_str();
    let (code, ca_line, err) = run(key.kmssh().args(["pubkey", "--ca", uri, "--comment", "CA"]));
    assert_eq!(code, 0, "pubkey: {err}");
    std::fs::write(dir.join("ca.pub"), &ca_line).expect("write");
    let (code, pem, err) = run(key.kmssh().args(["pubkey", "--ca", uri, "--format", "pem"]));
    assert_eq!(code, 0, "pubkey pem: {err}");
    std::fs::write(dir.join("ca.pub.pem"), &pem).expect("write");

    // Certificates for a batch of keys, checked by ssh-keygen and by `kmssh verify`.
    let users: Vec<_> = (0..5)
        .map(|i| keygen(dir, &format!("user{i}")).with_extension("pub"))
        .collect();
    let (code, _, err) = run(key
        .kmssh()
        .args([
            "sign",
            "--ca",
            uri,
            "-n",
            "alice",
            "-I",
            "alice@example.com",
        ])
        .args(["-V", "-5m:+1h", "-O", "no-pty"])
        .args(&users));
    assert_eq!(code, 0, "sign: {err}");
    for i in 0..5 {
        let cert = dir.join(format!("user{i}-cert.pub"));
        let listing = ssh_keygen_list(&cert);
        assert!(
            listing.contains("Key ID: \"alice@example.com\""),
            "{listing}"
        );
        assert!(!listing.contains("permit-pty"), "{listing}");
        let (code, _, err) = run(kmssh()
            .args(["verify", "--ca"])
            .arg(dir.join("ca.pub"))
            .args(["--principal", "alice"])
            .arg(&cert));
        assert_eq!(code, 0, "verify: {err}");
    }
    let (code, _, err) = run(key
        .kmssh()
        .args(["verify", "--ca", uri, "--principal", "alice"])
        .arg(dir.join("user0-cert.pub")));
    assert_eq!(code, 0, "verify against the key URI: {err}");

    // Message signatures: DER for openssl, SSHSIG for ssh-keygen.
    let message = dir.join("challenge.bin");
    std::fs::write(&message, b"nonce 8f2a1c".repeat(100)).expect("write");
    let stdout = common::succeed(
        key.kmssh()
            .args(["sign-message", "--key", uri, "--format", "der"])
            .arg(&message),
    );
    std::fs::write(dir.join("challenge.sig"), &stdout).expect("write");
    let verified = openssl(
        dir,
        &[
            "dgst",
            key.openssl_hash,
            "-verify",
            "ca.pub.pem",
            "-signature",
            "challenge.sig",
            "challenge.bin",
        ],
    );
    assert!(verified.contains("Verified OK"), "{verified}");
    let (code, sshsig, err) = run(key
        .kmssh()
        .args([
            "sign-message",
            "--key",
            uri,
            "--format",
            "ssh-sig",
            "--namespace",
            "file",
        ])
        .arg(&message));
    assert_eq!(code, 0, "ssh-sig: {err}");
    std::fs::write(dir.join("challenge.sshsig"), sshsig).expect("write");
    assert!(ssh_keygen_verify(
        dir,
        &ca_line,
        "file",
        &message,
        &dir.join("challenge.sshsig")
    ));

    // X.509: a CA certificate for the key and a leaf under it.
    let (code, _, err) = run(key.kmssh().current_dir(dir).args([
        "x509",
        "ca",
        "--ca",
        uri,
        "--subject",
        "CN=Cloud CA",
        "-o",
        "ca.pem",
    ]));
    assert_eq!(code, 0, "x509 ca: {err}");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=leaf",
        ],
    );
    let (code, _, err) = run(key
        .kmssh()
        .current_dir(dir)
        .args([
            "x509",
            "leaf",
            "--ca",
            uri,
            "--ca-cert",
            "ca.pem",
            "--csr",
            "leaf.csr",
        ])
        .args(["--client-auth", "-o", "leaf.pem"]));
    assert_eq!(code, 0, "x509 leaf: {err}");
    let verified = openssl(dir, &["verify", "-CAfile", "ca.pem", "leaf.pem"]);
    assert!(verified.contains("leaf.pem: OK"), "{verified}");
}

/// A key the provider does not have is a key error (exit 4), in one line.
fn missing_key_is_a_key_error(key: &CloudKey, missing_uri: &str) {
    let (code, _, err) = run(key.kmssh().args(["pubkey", "--ca", missing_uri]));
    assert_eq!(code, 4, "{missing_uri}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[cfg(feature = "aws")]
#[test]
fn aws_kms_through_ministack() {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    use kmssh_conformance::aws::{EMULATOR_REGION, admin_client, create_key};
    use kmssh_conformance::ministack::Ministack;

    let endpoint = Ministack::shared().url();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let id = runtime.block_on(async {
        let client = admin_client(&endpoint).await;
        create_key(&client, KeySpec::EccNistP384, KeyUsageType::SignVerify).await
    });
    let key = CloudKey {
        uri: format!("aws-kms:{id}"),
        env: vec![
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_REGION", EMULATOR_REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ],
        openssl_hash: "-sha384",
    };
    let dir = tempfile::tempdir().expect("tempdir");
    every_command_works(&key, dir.path());
    missing_key_is_a_key_error(&key, "aws-kms:alias/kmssh-no-such-key");
}

#[cfg(feature = "gcp")]
#[test]
fn gcp_kms_through_its_emulator() {
    use kmssh_conformance::gcp_emulator::GcpKmsEmulator;
    use kmssh_core::Algorithm;

    let emulator = GcpKmsEmulator::shared();
    let name = emulator.create_key_version(Algorithm::EcdsaP256Sha256);
    let key = CloudKey {
        uri: format!("gcp-kms:{name}"),
        env: vec![
            ("KMSSH_GCP_ENDPOINT", emulator.url()),
            ("KMSSH_GCP_ANONYMOUS", "true".to_owned()),
        ],
        openssl_hash: "-sha256",
    };
    let dir = tempfile::tempdir().expect("tempdir");
    every_command_works(&key, dir.path());
    missing_key_is_a_key_error(
        &key,
        "gcp-kms:projects/p/locations/global/keyRings/r/cryptoKeys/none/cryptoKeyVersions/1",
    );
}

/// A provider that cannot be reached is "unavailable, retry later" (exit 5) once the
/// backend's retries are spent, with the cause in the one line.
#[cfg(feature = "gcp")]
#[test]
fn an_unreachable_provider_is_unavailable() {
    // Port 1 on loopback: nothing listens there, so every connection is refused.
    let key = CloudKey {
        uri: "gcp-kms:projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"
            .to_owned(),
        env: vec![
            ("KMSSH_GCP_ENDPOINT", "http://127.0.0.1:1".to_owned()),
            ("KMSSH_GCP_ANONYMOUS", "true".to_owned()),
        ],
        openssl_hash: "-sha256",
    };
    let (code, _, err) = run(key.kmssh().args(["pubkey", "--ca", &key.uri]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("could not reach Cloud KMS"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[cfg(feature = "azure")]
#[test]
fn azure_key_vault_through_its_emulator() {
    use kmssh_conformance::azure::emulator_uri;
    use kmssh_conformance::azure_emulator::{AzureKeyVaultEmulator, KeyKind, KeySetup, TEST_TOKEN};

    let emulator = AzureKeyVaultEmulator::shared();
    let name = emulator.create_key(KeySetup::signing(KeyKind::Ec(kmssh_core::Curve::P521)));
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("vault-ca.pem");
    std::fs::write(&ca_file, emulator.ca_pem()).expect("write");
    let env = |token: &str| {
        vec![
            ("KMSSH_AZURE_ENDPOINT", emulator.url()),
            ("KMSSH_AZURE_CA_FILE", ca_file.display().to_string()),
            ("KMSSH_AZURE_ACCESS_TOKEN", token.to_owned()),
            ("KMSSH_AZURE_VERIFY_CHALLENGE_RESOURCE", "false".to_owned()),
        ]
    };
    let key = CloudKey {
        uri: emulator_uri(&name, None),
        env: env(TEST_TOKEN),
        openssl_hash: "-sha512",
    };
    every_command_works(&key, dir.path());
    missing_key_is_a_key_error(&key, &emulator_uri("no-such-key", None));

    // A token the vault refuses is a permission problem (exit 4), not a retry.
    let refused = CloudKey {
        env: env("expired-token"),
        ..key
    };
    let (code, _, err) = run(refused.kmssh().args(["pubkey", "--ca", &refused.uri]));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("401"), "{err}");

    // A vault that keeps throttling: --timeout bounds the retries, exit 5, and --verbose
    // shows them.
    let name = emulator.create_key(KeySetup::signing(KeyKind::Ec(kmssh_core::Curve::P256)));
    {
        use kmssh_conformance::faults::{Fault, Operation};
        let faults = emulator.faults(&name).expect("the key's fault handle");
        for operation in [Operation::GetPublicKey, Operation::Sign] {
            faults.inject(operation, Fault::Throttle { retry_after: None }, 1000);
        }
    }
    let throttled = CloudKey {
        uri: emulator_uri(&name, None),
        env: env(TEST_TOKEN),
        openssl_hash: "-sha256",
    };
    let (code, _, err) = run(throttled
        .kmssh()
        .args([
            "--verbose",
            "--timeout",
            "3s",
            "sign-message",
            "--key",
            &throttled.uri,
        ])
        .arg(dir.path().join("challenge.bin")));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("--timeout 3s"), "{err}");
    // --verbose shows each retry and why.
    assert!(err.contains("temporary failure, retrying"), "{err}");
    assert!(err.contains("throttled"), "{err}");
    assert!(
        emulator.count(&name, kmssh_conformance::faults::Operation::GetPublicKey) >= 2,
        "the throttled open was retried"
    );
}
