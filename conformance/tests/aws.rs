//! The conformance suite against AWS KMS: ministack on 127.0.0.1 by default, or the keys
//! in `KMSSH_AWS_KEY_IDS` in real AWS. Then what is AWS's own: one `GetPublicKey` per
//! opened key, refusals of unusable keys, and faults injected by a proxy.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use kmssh_conformance::aws::{
    ProxiedKey, admin_client, create_key, emulator_options, open, real_key_ids, suite_key,
};
use kmssh_conformance::conformance_suite;
use kmssh_conformance::fault_proxy::Fault;
use kmssh_conformance::ministack::Ministack;
use kmssh_core::{Algorithm, ErrorKind, ErrorStatus, KmsKey, RetryPolicy};
use kmssh_pki::{CertificateParameters, issue, parse_subject_key};

conformance_suite!(p256, suite_key(KeySpec::EccNistP256));
conformance_suite!(p384, suite_key(KeySpec::EccNistP384));
conformance_suite!(p521, suite_key(KeySpec::EccNistP521));

/// The emulator-only cases create keys or inject faults: against real AWS they are skipped.
fn emulator_only() -> bool {
    if real_key_ids().is_some() {
        eprintln!("skipped: needs the emulator");
        return false;
    }
    true
}

async fn proxied(spec: KeySpec) -> (ProxiedKey, Arc<dyn KmsKey>) {
    let proxied = ProxiedKey::create(spec, KeyUsageType::SignVerify).await;
    let key = proxied.open().await.expect("opens");
    (proxied, key)
}

/// The public key is fetched once per opened key, however many signatures follow; each
/// signature is one `Sign` call.
#[tokio::test]
async fn one_get_public_key_per_opened_key() {
    if !emulator_only() {
        return;
    }
    let (proxied, key) = proxied(KeySpec::EccNistP384).await;
    assert_eq!(
        (
            proxied.proxy.count("DescribeKey"),
            proxied.proxy.count("GetPublicKey")
        ),
        (1, 1)
    );
    for i in 0..50u32 {
        key.sign_message(&i.to_le_bytes()).await.expect("signs");
    }
    assert_eq!(proxied.proxy.count("GetPublicKey"), 1);
    assert_eq!(proxied.proxy.count("Sign"), 50);
    let _second = proxied.open().await.expect("opens again");
    assert_eq!(
        proxied.proxy.count("GetPublicKey"),
        2,
        "a second open fetches once more"
    );
}

/// Keys kmssh cannot sign with are refused at open, each with its own kind and reason.
#[tokio::test]
async fn unusable_keys_are_refused_with_typed_errors() {
    if !emulator_only() {
        return;
    }
    let ministack = Ministack::shared();
    let admin = admin_client(&ministack.url()).await;
    let options = emulator_options(&ministack.url());
    let refusal = async |id: &str| open(id, &options).await.expect_err("must be refused");

    let symmetric = create_key(
        &admin,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let err = refusal(&symmetric).await;
    assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
    assert!(err.message().contains("not SIGN_VERIFY"), "{err}");

    let rsa = create_key(&admin, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let err = refusal(&rsa).await;
    assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm, "{err}");
    assert!(
        err.message().contains("RSA_2048") && err.message().contains("ECC_NIST_P256"),
        "{err}"
    );

    let k1 = create_key(&admin, KeySpec::EccSecgP256K1, KeyUsageType::SignVerify).await;
    assert_eq!(refusal(&k1).await.kind(), ErrorKind::UnsupportedAlgorithm);

    let disabled = create_key(&admin, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    admin
        .disable_key()
        .key_id(&disabled)
        .send()
        .await
        .expect("DisableKey");
    let err = refusal(&disabled).await;
    assert_eq!(err.kind(), ErrorKind::InvalidKey);
    assert!(err.message().contains("disabled"), "{err}");

    let doomed = create_key(&admin, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    admin
        .schedule_key_deletion()
        .key_id(&doomed)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("ScheduleKeyDeletion");
    let err = refusal(&doomed).await;
    assert_eq!(err.kind(), ErrorKind::InvalidKey);
    assert!(err.message().contains("pending deletion"), "{err}");

    let err = refusal("11111111-2222-3333-4444-555555555555").await;
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.status(), ErrorStatus::Permanent);

    let err = refusal("alias/no-such-alias").await;
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// A key reached through an alias signs, pinned to the key it named at open.
#[tokio::test]
async fn aliases_open_and_sign() {
    if !emulator_only() {
        return;
    }
    let ministack = Ministack::shared();
    let admin = admin_client(&ministack.url()).await;
    let id = create_key(&admin, KeySpec::EccNistP521, KeyUsageType::SignVerify).await;
    let alias = format!("alias/kmssh-{}", &id[..8]);
    admin
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&id)
        .send()
        .await
        .expect("CreateAlias");
    let key = open(&alias, &emulator_options(&ministack.url()))
        .await
        .expect("alias opens");
    assert_eq!(key.algorithm(), Algorithm::EcdsaP521Sha512);
    key.sign_message(b"via alias").await.expect("signs");
}

/// Answers whose KeySpec, public key and signing algorithms disagree are refused.
#[tokio::test]
async fn spec_and_algorithm_mismatches_are_refused() {
    if !emulator_only() {
        return;
    }
    let proxied = ProxiedKey::create(KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    proxied.proxy.inject(
        "GetPublicKey",
        Fault::Rewrite(Arc::new(|json| {
            json["SigningAlgorithms"] = serde_json::json!(["ECDSA_SHA_384"])
        })),
        1,
    );
    let err = proxied.open().await.expect_err("algorithm mismatch");
    assert_eq!(err.kind(), ErrorKind::InvalidKey);
    assert!(err.message().contains("ECDSA_SHA_256"), "{err}");

    proxied.proxy.inject(
        "DescribeKey",
        Fault::Rewrite(Arc::new(|json| {
            json["KeyMetadata"]["KeySpec"] = serde_json::json!("ECC_NIST_P384")
        })),
        1,
    );
    let err = proxied.open().await.expect_err("spec mismatch");
    assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
}

/// Messages over AWS's 4096-byte RAW limit sign fine: only a digest is sent.
#[tokio::test]
async fn messages_over_4096_bytes_sign() {
    let Some(key) = suite_key(KeySpec::EccNistP256).await else {
        return;
    };
    let message = vec![0x5a; 64 * 1024];
    let signature = key
        .sign_message(&message)
        .await
        .expect("signs a 64 KiB message");
    key.public_key()
        .verify_digest(&key.algorithm().digest(&message), &signature)
        .expect("verifies");
}

fn throttled() -> Fault {
    Fault::Respond {
        status: 400,
        headers: vec![("Content-Type".into(), "application/x-amz-json-1.1".into())],
        body: r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into(),
    }
}

fn internal_error() -> Fault {
    Fault::Respond {
        status: 500,
        headers: vec![("Content-Type".into(), "application/x-amz-json-1.1".into())],
        body: r#"{"__type":"KMSInternalException","message":"internal error"}"#.into(),
    }
}

/// Throttling, 5xx answers and dropped connections are retried and survived.
#[tokio::test]
async fn transient_faults_are_retried_and_survived() {
    if !emulator_only() {
        return;
    }
    let (proxied, key) = proxied(KeySpec::EccNistP256).await;
    proxied.proxy.inject("Sign", throttled(), 3);
    key.sign_message(b"after throttling")
        .await
        .expect("survives throttling");
    assert_eq!(
        proxied.proxy.count("Sign"),
        4,
        "three throttled attempts, then success"
    );

    proxied.proxy.inject("Sign", internal_error(), 2);
    key.sign_message(b"after 500s").await.expect("survives 5xx");
    proxied.proxy.inject("Sign", Fault::Drop, 2);
    key.sign_message(b"after drops")
        .await
        .expect("survives dropped connections");
    assert_eq!(proxied.proxy.count("Sign"), 4 + 3 + 3);
}

/// Throttling that outlasts the deadline ends in a persistent `Throttled` error.
#[tokio::test]
async fn throttling_past_the_deadline_is_persistent() {
    if !emulator_only() {
        return;
    }
    let mut proxied = ProxiedKey::create(KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    proxied.options.retry = Some(RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        deadline: Duration::from_secs(1),
        max_attempts: 1000,
    });
    let key = proxied.open().await.expect("opens");
    proxied.proxy.inject("Sign", throttled(), usize::MAX);
    let err = key
        .sign_message(b"never")
        .await
        .expect_err("throttled to the end");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Throttled, ErrorStatus::Persistent),
        "{err}"
    );
}

/// A permanent error is not retried.
#[tokio::test]
async fn permanent_errors_are_not_retried() {
    if !emulator_only() {
        return;
    }
    let (proxied, key) = proxied(KeySpec::EccNistP256).await;
    proxied.proxy.inject(
        "Sign",
        Fault::Respond {
            status: 400,
            headers: vec![("Content-Type".into(), "application/x-amz-json-1.1".into())],
            body: r#"{"__type":"AccessDeniedException","message":"not authorized to perform kms:Sign"}"#.into(),
        },
        1,
    );
    let err = key.sign_message(b"denied").await.expect_err("denied");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert_eq!(proxied.proxy.count("Sign"), 1);
}

/// A call slower than the per-call timeout is abandoned and retried; past the deadline
/// it is a `Timeout`.
#[tokio::test]
async fn slow_calls_time_out() {
    if !emulator_only() {
        return;
    }
    let mut proxied = ProxiedKey::create(KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    proxied.options.call_timeout = Some(Duration::from_millis(300));
    proxied.options.retry = Some(RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        deadline: Duration::from_secs(2),
        max_attempts: 100,
    });
    let key = proxied.open().await.expect("opens");
    proxied
        .proxy
        .inject("Sign", Fault::Delay(Duration::from_secs(1)), 1);
    key.sign_message(b"one slow call")
        .await
        .expect("the retry succeeds");
    assert_eq!(proxied.proxy.count("Sign"), 2);

    proxied
        .proxy
        .inject("Sign", Fault::Delay(Duration::from_secs(5)), usize::MAX);
    let err = key
        .sign_message(b"always slow")
        .await
        .expect_err("times out");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}

fn flip_signature_byte(json: &mut serde_json::Value) {
    use base64ct::{Base64, Encoding};
    let text = json["Signature"].as_str().unwrap_or_default();
    let mut der = Base64::decode_vec(text).unwrap_or_default();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    json["Signature"] = serde_json::json!(Base64::encode_string(&der));
}

/// A signature that does not verify, or does not decode, never becomes a certificate.
#[tokio::test]
async fn corrupted_signatures_never_become_certificates() {
    if !emulator_only() {
        return;
    }
    let (proxied, key) = proxied(KeySpec::EccNistP384).await;
    let subject = parse_subject_key(kmssh_conformance::cases::TEST_SUBJECT).expect("subject");
    let mut params = CertificateParameters::user();
    params.principal("alice").expect("principal");

    proxied
        .proxy
        .inject("Sign", Fault::Rewrite(Arc::new(flip_signature_byte)), 1);
    let err = issue(key.as_ref(), &subject, &params)
        .await
        .expect_err("flipped byte");
    assert_eq!(err.kind(), ErrorKind::BadSignature, "{err}");

    proxied.proxy.inject(
        "Sign",
        Fault::Rewrite(Arc::new(|json| {
            use base64ct::{Base64, Encoding};
            let der = Base64::decode_vec(json["Signature"].as_str().unwrap_or_default())
                .unwrap_or_default();
            json["Signature"] = serde_json::json!(Base64::encode_string(&der[..der.len() / 2]));
        })),
        1,
    );
    let err = issue(key.as_ref(), &subject, &params)
        .await
        .expect_err("truncated");
    assert_eq!(err.kind(), ErrorKind::BadSignature, "{err}");

    issue(key.as_ref(), &subject, &params)
        .await
        .expect("the next, honest answer issues");
}
