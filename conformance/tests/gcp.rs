//! The conformance suite against Cloud KMS: the in-process emulator by default, or the
//! key versions in `KMSSH_GCP_KEY_VERSIONS` in real Cloud KMS. Then what is GCP's own: one
//! `getPublicKey` per opened version, refusals, and every fault switch of the emulator.

use std::sync::Arc;
use std::time::Duration;

use kmssh_conformance::cases::issue_test_certificate;
use kmssh_conformance::conformance_suite;
use kmssh_conformance::gcp::{emulator_options, open, real_key_versions, suite_key};
use kmssh_conformance::gcp_emulator::{
    EC_SIGN_SECP256K1_SHA256, Faults, GcpKmsEmulator, RSA_SIGN_PSS_2048_SHA256,
};
use kmssh_core::{Algorithm, ErrorKind, ErrorStatus, KmsKey, RetryPolicy};

conformance_suite!(p256, suite_key(Algorithm::EcdsaP256Sha256));
conformance_suite!(p384, suite_key(Algorithm::EcdsaP384Sha384));

fn emulator() -> Option<&'static GcpKmsEmulator> {
    if real_key_versions().is_some() {
        eprintln!("skipped: needs the emulator");
        return None;
    }
    Some(GcpKmsEmulator::shared())
}

async fn emulated(
    algorithm: Algorithm,
) -> Option<(&'static GcpKmsEmulator, String, Arc<dyn KmsKey>)> {
    let emulator = emulator()?;
    let name = emulator.create_key_version(algorithm);
    let key = open(&name, &emulator_options(&emulator.url()))
        .await
        .expect("opens");
    Some((emulator, name, key))
}

/// One `getPublicKey` per opened key version, however many signatures follow.
#[tokio::test]
async fn one_get_public_key_per_opened_version() {
    let Some((emulator, name, key)) = emulated(Algorithm::EcdsaP256Sha256).await else {
        return;
    };
    for i in 0..40u32 {
        key.sign_message(&i.to_le_bytes()).await.expect("signs");
    }
    assert_eq!(emulator.count(&name, "getPublicKey"), 1);
    assert_eq!(emulator.count(&name, "asymmetricSign"), 40);
}

/// Names and versions kmssh cannot use are refused with typed errors.
#[tokio::test]
async fn unusable_versions_are_refused() {
    let Some(emulator) = emulator() else { return };
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
    let Some(emulator) = emulator() else { return };
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
        emulator.count(&name, "getPublicKey") > 1,
        "FAILED_PRECONDITION was not retried"
    );

    let before = emulator.count(&name, "getPublicKey");
    let opening = tokio::spawn({
        let options = emulator_options(&emulator.url());
        let name = name.clone();
        async move { open(&name, &options).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    emulator.set_enabled(&name, true);
    let key = opening.await.expect("task").expect("opens once enabled");
    assert!(emulator.count(&name, "getPublicKey") > before);
    key.sign_message(b"enabled now").await.expect("signs");
}

/// 429 RESOURCE_EXHAUSTED is survived.
#[tokio::test]
async fn throttling_is_survived() {
    let Some((emulator, name, key)) = emulated(Algorithm::EcdsaP256Sha256).await else {
        return;
    };
    emulator.set_faults(
        &name,
        Faults {
            throttle: 3,
            ..Faults::default()
        },
    );
    issue_test_certificate(key.as_ref())
        .await
        .expect("issued after throttling");
    assert_eq!(emulator.count(&name, "asymmetricSign"), 4);
}

/// Added latency beyond the per-call timeout ends in `Timeout`, never a certificate.
#[tokio::test]
async fn latency_past_the_deadline_times_out() {
    let Some(emulator) = emulator() else { return };
    let name = emulator.create_key_version(Algorithm::EcdsaP256Sha256);
    let mut options = emulator_options(&emulator.url());
    options.call_timeout = Some(Duration::from_millis(200));
    options.retry = Some(RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        deadline: Duration::from_secs(1),
        max_attempts: 100,
    });
    let key = open(&name, &options).await.expect("opens");
    emulator.set_faults(
        &name,
        Faults {
            latency: Some(Duration::from_millis(500)),
            ..Faults::default()
        },
    );
    let err = issue_test_certificate(key.as_ref())
        .await
        .expect_err("too slow");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}

/// Each integrity fault is retried once: once is survived, twice is refused, and no
/// certificate is made over the bad answer.
#[tokio::test]
async fn integrity_faults_are_retried_once_then_refused() {
    let Some((emulator, name, key)) = emulated(Algorithm::EcdsaP384Sha384).await else {
        return;
    };
    type FaultsFor = fn(usize) -> Faults;
    let cases: [(&str, FaultsFor); 3] = [
        ("wrong signatureCrc32c", |n| Faults {
            wrong_signature_crc: n,
            ..Faults::default()
        }),
        ("flipped signature byte", |n| Faults {
            flip_signature_byte: n,
            ..Faults::default()
        }),
        ("verifiedDigestCrc32c false", |n| Faults {
            unverified_digest: n,
            ..Faults::default()
        }),
    ];
    for (what, faults) in cases {
        let before = emulator.count(&name, "asymmetricSign");
        emulator.set_faults(&name, faults(1));
        issue_test_certificate(key.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{what} once should be retried: {e}"));
        assert_eq!(
            emulator.count(&name, "asymmetricSign") - before,
            2,
            "{what}: one retry"
        );

        emulator.set_faults(&name, faults(2));
        let err = issue_test_certificate(key.as_ref()).await.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::BadSignature, "{what}: {err}");
    }
}

/// Thousands of P-384 signatures through the REST path, all verified.
#[tokio::test]
async fn many_signatures_verify() {
    let Some(key) = suite_key(Algorithm::EcdsaP384Sha384).await else {
        return;
    };
    for i in 0..1000u32 {
        let message = i.to_be_bytes();
        let signature = key.sign_message(&message).await.expect("signs");
        key.public_key()
            .verify_digest(&key.algorithm().digest(&message), &signature)
            .expect("verifies");
    }
}
