//! The conformance suite against Azure Key Vault: the in-process HTTPS emulator by
//! default, or the keys in `KMSSH_AZURE_KEYS` in a real vault. Then what is Azure's own:
//! one `get key` per open, version pinning, refusals, and every fault switch.

use std::sync::Arc;
use std::time::Duration;

use kmssh_conformance::azure::{emulator_options, emulator_uri, open, real_keys, suite_key};
use kmssh_conformance::azure_emulator::{AzureKeyVaultEmulator, Faults, KeyKind, KeySetup};
use kmssh_conformance::cases::issue_test_certificate;
use kmssh_conformance::conformance_suite;
use kmssh_core::{Algorithm, ErrorKind, KmsKey, RetryPolicy};

conformance_suite!(p256, suite_key(Algorithm::EcdsaP256Sha256));
conformance_suite!(p384, suite_key(Algorithm::EcdsaP384Sha384));
conformance_suite!(p521, suite_key(Algorithm::EcdsaP521Sha512));

fn emulator() -> Option<&'static AzureKeyVaultEmulator> {
    if real_keys().is_some() {
        eprintln!("skipped: needs the emulator");
        return None;
    }
    Some(AzureKeyVaultEmulator::shared())
}

async fn emulated(
    algorithm: Algorithm,
) -> Option<(&'static AzureKeyVaultEmulator, String, Arc<dyn KmsKey>)> {
    let emulator = emulator()?;
    let name = emulator.create_key(KeySetup::signing(KeyKind::Ec(algorithm)));
    let key = open(&emulator_uri(&name, None), &emulator_options(emulator))
        .await
        .expect("opens");
    Some((emulator, name, key))
}

/// One `get key` per opened key (after the 401 challenge), however many signatures follow.
#[tokio::test]
async fn one_get_per_opened_key() {
    let Some((emulator, name, key)) = emulated(Algorithm::EcdsaP256Sha256).await else {
        return;
    };
    for i in 0..30u32 {
        key.sign_message(&i.to_le_bytes()).await.expect("signs");
    }
    assert_eq!(emulator.count(&name, "get"), 1);
    assert_eq!(emulator.count(&name, "sign"), 30);
}

/// A versionless URI pins the version current at open: after a rotation the key keeps
/// signing with, and verifying against, that version.
#[tokio::test]
async fn versionless_uri_pins_the_current_version() {
    let Some((emulator, name, key)) = emulated(Algorithm::EcdsaP384Sha384).await else {
        return;
    };
    let pinned = emulator.versions(&name)[0].clone();
    let _newer = emulator.rotate(&name).expect("rotates");
    issue_test_certificate(key.as_ref())
        .await
        .expect("still signs with the pinned version");

    let explicit = open(
        &emulator_uri(&name, Some(&pinned)),
        &emulator_options(emulator),
    )
    .await
    .expect("opens");
    assert_eq!(explicit.public_key(), key.public_key());
    let latest = open(&emulator_uri(&name, None), &emulator_options(emulator))
        .await
        .expect("opens");
    assert_ne!(
        latest.public_key(),
        key.public_key(),
        "a new open pins the new version"
    );
}

/// Keys kmssh cannot sign with are refused at open with typed errors.
#[tokio::test]
async fn unusable_keys_are_refused() {
    let Some(emulator) = emulator() else { return };
    let options = emulator_options(emulator);
    let refuse = async |setup: KeySetup| {
        let name = emulator.create_key(setup);
        open(&emulator_uri(&name, None), &options)
            .await
            .expect_err("refused")
    };
    for kind in [KeyKind::EcP256K, KeyKind::Rsa, KeyKind::Oct] {
        let err = refuse(KeySetup::signing(kind)).await;
        assert_eq!(
            err.kind(),
            ErrorKind::UnsupportedAlgorithm,
            "{kind:?}: {err}"
        );
    }
    let mut verify_only = KeySetup::signing(KeyKind::Ec(Algorithm::EcdsaP256Sha256));
    verify_only.key_ops = vec!["verify"];
    let err = refuse(verify_only).await;
    assert_eq!(err.kind(), ErrorKind::InvalidKey);
    assert!(err.message().contains("lack `sign`"), "{err}");

    let mut disabled = KeySetup::signing(KeyKind::Ec(Algorithm::EcdsaP256Sha256));
    disabled.enabled = false;
    let err = refuse(disabled).await;
    assert!(
        err.kind() == ErrorKind::InvalidKey && err.message().contains("disabled"),
        "{err}"
    );

    let mut expired = KeySetup::signing(KeyKind::Ec(Algorithm::EcdsaP256Sha256));
    expired.expires = Some(1_600_000_000);
    let err = refuse(expired).await;
    assert!(
        err.kind() == ErrorKind::InvalidKey && err.message().contains("expired"),
        "{err}"
    );

    let err = open(&emulator_uri("no-such-key", None), &options)
        .await
        .expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    let err = open(
        "azure-kv:http://kmssh-test.vault.azure.net/keys/k",
        &options,
    )
    .await
    .expect_err("plain http");
    assert_eq!(err.kind(), ErrorKind::InvalidUri);
}

/// 429 with `Retry-After` is waited out and survived.
#[tokio::test]
async fn throttling_with_retry_after_is_survived() {
    let Some((emulator, name, key)) = emulated(Algorithm::EcdsaP256Sha256).await else {
        return;
    };
    emulator.set_faults(
        &name,
        Faults {
            throttle: 2,
            ..Faults::default()
        },
    );
    let started = std::time::Instant::now();
    issue_test_certificate(key.as_ref())
        .await
        .expect("issued after throttling");
    assert_eq!(emulator.count(&name, "sign"), 3);
    // Retry-After: 1 was honoured twice (a bound from below, not a timing assertion on speed).
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After was not honoured"
    );
}

/// Latency beyond the per-call timeout ends in `Timeout`.
#[tokio::test]
async fn latency_past_the_deadline_times_out() {
    let Some(emulator) = emulator() else { return };
    let name = emulator.create_key(KeySetup::signing(KeyKind::Ec(Algorithm::EcdsaP256Sha256)));
    let mut options = emulator_options(emulator);
    options.call_timeout = Some(Duration::from_millis(300));
    options.retry = Some(RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        deadline: Duration::from_millis(1500),
        max_attempts: 100,
    });
    let key = open(&emulator_uri(&name, None), &options)
        .await
        .expect("opens");
    emulator.set_faults(
        &name,
        Faults {
            latency: Some(Duration::from_millis(800)),
            ..Faults::default()
        },
    );
    let err = issue_test_certificate(key.as_ref())
        .await
        .expect_err("too slow");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}

/// A wrong-length `r||s` and a flipped byte are refused; no certificate is made.
#[tokio::test]
async fn bad_signatures_never_become_certificates() {
    let Some((emulator, name, key)) = emulated(Algorithm::EcdsaP521Sha512).await else {
        return;
    };
    emulator.set_faults(
        &name,
        Faults {
            wrong_length: 1,
            ..Faults::default()
        },
    );
    let err = issue_test_certificate(key.as_ref())
        .await
        .expect_err("wrong length");
    assert_eq!(err.kind(), ErrorKind::BadSignature, "{err}");
    assert!(err.to_string().contains("132 bytes"), "{err}");

    emulator.set_faults(
        &name,
        Faults {
            flip_byte: 1,
            ..Faults::default()
        },
    );
    let err = issue_test_certificate(key.as_ref())
        .await
        .expect_err("flipped byte");
    assert_eq!(err.kind(), ErrorKind::BadSignature, "{err}");

    issue_test_certificate(key.as_ref())
        .await
        .expect("an honest answer issues");
}

/// A P-521 key signs thousands of times with zero failures: fixed-width 66-byte r and s,
/// leading zeros included, survive the conversion.
#[tokio::test]
async fn p521_signs_thousands_of_times() {
    let Some(key) = suite_key(Algorithm::EcdsaP521Sha512).await else {
        return;
    };
    let mut leading_zero = 0;
    for i in 0..2000u32 {
        let message = i.to_be_bytes();
        let signature = key.sign_message(&message).await.expect("signs");
        key.public_key()
            .verify_digest(&key.algorithm().digest(&message), &signature)
            .expect("verifies");
        let (r, s) = signature.r_s();
        if r[0] == 0 || s[0] == 0 {
            leading_zero += 1;
        }
    }
    assert!(
        leading_zero > 0,
        "no r or s with a leading zero byte in 2000 P-521 signatures"
    );
}
