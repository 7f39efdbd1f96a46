//! The conformance suite against Cloud KMS: the in-process emulator by default, or the
//! key versions in `KMSSH_GCP_KEY_VERSIONS` in real Cloud KMS. Then what is GCP's own:
//! refusals, FAILED_PRECONDITION, and the CRC32C integrity fields.

use std::sync::Arc;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use kmssh_conformance::cases::issue_test_certificate;
use kmssh_conformance::faults::{Fault, Operation, Rewrite};
use kmssh_conformance::fixture::{Capability, faulty_key_for};
use kmssh_conformance::gcp::{GcpFixture, emulator_options, open};
use kmssh_conformance::gcp_emulator::{EC_SIGN_SECP256K1_SHA256, RSA_SIGN_PSS_2048_SHA256};
use kmssh_core::{Algorithm, ErrorKind, ErrorStatus, RetryPolicy};

kmssh_conformance::conformance_suite!(kmssh_conformance::gcp::GcpFixture::shared());

/// Names and versions kmssh cannot use are refused with typed errors.
#[tokio::test]
async fn unusable_versions_are_refused() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let options = emulator_options(&emulator.url());

    let key_only = "projects/kmssh-test/locations/global/keyRings/conformance/cryptoKeys/key-1";
    let err = open(key_only, &options).await.expect_err("no version");
    assert_eq!(err.kind(), ErrorKind::InvalidUri);
    assert!(err.message().contains("key version level"), "{err}");

    for wire in [EC_SIGN_SECP256K1_SHA256, RSA_SIGN_PSS_2048_SHA256] {
        let name = emulator.create_version_with(Algorithm::EcdsaP256Sha256, wire);
        let err = open(&name, &options)
            .await
            .expect_err("unsupported algorithm");
        assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm, "{err}");
        assert!(err.message().contains("EC_SIGN_P256_SHA256"), "{err}");
    }

    let missing = "projects/kmssh-test/locations/global/keyRings/conformance/cryptoKeys/none/cryptoKeyVersions/9";
    let err = open(missing, &options).await.expect_err("unknown version");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::NotFound, ErrorStatus::Permanent),
        "{err}"
    );
}

/// A disabled (or not yet generated) version is FAILED_PRECONDITION: retried inside the
/// deadline, so a version enabled meanwhile is used, and one that stays disabled fails.
#[tokio::test]
async fn failed_precondition_is_retried_within_the_deadline() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let name = emulator.create_key_version(Algorithm::EcdsaP384Sha384);
    emulator.set_enabled(&name, false);
    let mut options = emulator_options(&emulator.url());
    options.retry = Some(RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        deadline: Duration::from_millis(600),
        max_attempts: 100,
    });
    let err = open(&name, &options).await.expect_err("stays disabled");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::InvalidKey, ErrorStatus::Persistent),
        "{err}"
    );
    assert!(
        emulator.count(&name, Operation::GetPublicKey) > 1,
        "FAILED_PRECONDITION was not retried"
    );

    let before = emulator.count(&name, Operation::GetPublicKey);
    let opening = tokio::spawn({
        let options = emulator_options(&emulator.url());
        let name = name.clone();
        async move { open(&name, &options).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    emulator.set_enabled(&name, true);
    let key = opening.await.expect("task").expect("opens once enabled");
    assert!(emulator.count(&name, Operation::GetPublicKey) > before);
    key.sign_message(b"enabled now").await.expect("signs");
}

/// Damage in transit, which the CRC32C fields reveal: the signature changed after its
/// checksum was computed, a wrong `signatureCrc32c`, `verifiedDigestCrc32c: false`.
fn integrity_faults() -> [(&'static str, Rewrite); 3] {
    [
        (
            "flipped signature byte",
            Arc::new(|answer: &mut serde_json::Value| {
                let mut der = Base64::decode_vec(answer["signature"].as_str().unwrap_or_default())
                    .unwrap_or_default();
                if let Some(last) = der.last_mut() {
                    *last ^= 0x01;
                }
                answer["signature"] = serde_json::json!(Base64::encode_string(&der));
            }),
        ),
        (
            "wrong signatureCrc32c",
            Arc::new(|answer: &mut serde_json::Value| {
                let crc: u64 = answer["signatureCrc32c"]
                    .as_str()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_default();
                answer["signatureCrc32c"] = serde_json::json!(((crc + 1) % (1 << 32)).to_string());
            }),
        ),
        (
            "verifiedDigestCrc32c false",
            Arc::new(|answer: &mut serde_json::Value| {
                answer["verifiedDigestCrc32c"] = serde_json::json!(false);
            }),
        ),
    ]
}

/// Each integrity fault is retried once: once is survived, twice is refused, and no
/// certificate is made over the bad answer.
#[tokio::test]
async fn integrity_faults_are_retried_once_then_refused() {
    let Some(key) = faulty_key_for(
        GcpFixture::shared(),
        Algorithm::EcdsaP384Sha384,
        Capability::Faults,
    )
    .await
    else {
        return;
    };
    for (what, rewrite) in integrity_faults() {
        let before = key.faults.count(Operation::Sign);
        key.faults
            .inject(Operation::Sign, Fault::Rewrite(rewrite.clone()), 1);
        issue_test_certificate(key.key.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{what} once should be retried: {e}"));
        assert_eq!(
            key.faults.count(Operation::Sign) - before,
            2,
            "{what}: one retry"
        );

        key.faults
            .inject(Operation::Sign, Fault::Rewrite(rewrite), 2);
        let err = issue_test_certificate(key.key.as_ref())
            .await
            .expect_err(what);
        assert_eq!(err.kind(), ErrorKind::BadSignature, "{what}: {err}");
    }
}
