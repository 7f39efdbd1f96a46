//! The conformance suite against Azure Key Vault: the in-process HTTPS emulator by
//! default, or the keys in `KMSSH_AZURE_KEYS` in a real vault. Then what is Azure's own:
//! version pinning, refusals, and `Retry-After`.

use std::time::{Duration, Instant};

use kmssh_conformance::azure::{AzureFixture, emulator_options, emulator_uri, open};
use kmssh_conformance::azure_emulator::{KeyKind, KeySetup};
use kmssh_conformance::cases::issue_test_certificate;
use kmssh_conformance::faults::{Fault, Operation};
use kmssh_conformance::fixture::{Capability, faulty_key_for};
use kmssh_core::{Algorithm, ErrorKind};

kmssh_conformance::conformance_suite!(kmssh_conformance::azure::AzureFixture::shared());

/// A versionless URI pins the version current at open: after a rotation the key keeps
/// signing with, and verifying against, that version.
#[tokio::test]
async fn versionless_uri_pins_the_current_version() {
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
    let name = emulator.create_key(KeySetup::signing(KeyKind::Ec(Algorithm::EcdsaP384Sha384)));
    let key = open(&emulator_uri(&name, None), &emulator_options(emulator))
        .await
        .expect("opens");
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
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
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

/// Key Vault's 429 carries `Retry-After`, and it is waited out.
#[tokio::test]
async fn throttling_with_retry_after_is_waited_out() {
    let Some(key) = faulty_key_for(
        AzureFixture::shared(),
        Algorithm::EcdsaP256Sha256,
        Capability::Faults,
    )
    .await
    else {
        return;
    };
    key.faults.inject(
        Operation::Sign,
        Fault::Throttle {
            retry_after: Some(Duration::from_secs(1)),
        },
        2,
    );
    let started = Instant::now();
    issue_test_certificate(key.key.as_ref())
        .await
        .expect("issued after throttling");
    assert_eq!(key.faults.count(Operation::Sign), 3);
    // Retry-After: 1 was honoured twice (a bound from below, not a timing assertion on speed).
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After was not honoured"
    );
}

/// A signature one byte short is refused naming the length Key Vault must send.
#[tokio::test]
async fn short_signature_names_the_expected_length() {
    let Some(key) = faulty_key_for(
        AzureFixture::shared(),
        Algorithm::EcdsaP521Sha512,
        Capability::Faults,
    )
    .await
    else {
        return;
    };
    key.faults.inject(Operation::Sign, Fault::ShortSignature, 1);
    let err = issue_test_certificate(key.key.as_ref())
        .await
        .expect_err("wrong length");
    assert_eq!(err.kind(), ErrorKind::BadSignature, "{err}");
    assert!(err.to_string().contains("132 bytes"), "{err}");
}
