//! The conformance suite against Cloud KMS: the in-process emulator by default, or the
//! key versions in `KMSSH_GCP_KEY_VERSIONS` in real Cloud KMS. Then what is GCP's own:
//! refusals, FAILED_PRECONDITION (only a version being generated is waited for), HTTP
//! errors that are not Google's, credentials that are refused or temporarily missing,
//! bearer tokens, `version=latest`, `protection=`, the CRC32C integrity fields on
//! `digest` and `data` requests, and the key version algorithms: versions bound to one
//! hash, raw PKCS#1 versions signing every hash, Ed25519 sent the message as `data`.
//! Everything goes through Google's client library over loopback: to the emulator, and
//! to stand-ins for a proxy and the OAuth token endpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use kmssh_backend_gcp::google_cloud_auth::credentials::{Credentials, user_account};
use kmssh_backend_gcp::google_cloud_kms_v1::model::Digest;
use kmssh_backend_gcp::{GcpKmsOptions, Protection};
use kmssh_conformance::cases::issue_test_certificate;
use kmssh_conformance::faults::{Fault, Operation, Rewrite};
use kmssh_conformance::fixture::{Capability, faulty_key_for};
use kmssh_conformance::gcp::{
    GcpFixture, authorized_user_json, emulator_options, emulator_options_with, open,
};
use kmssh_conformance::gcp_emulator::{
    EC_SIGN_SECP256K1_SHA256, GcpKmsEmulator, HMAC_SHA256, PQ_SIGN_ML_DSA_65, PROTECTION_HSM,
    RSA_DECRYPT_OAEP_2048_SHA256, RSA_SIGN_PSS_2048_SHA256, Reply, SignField, StandIn, TokenAnswer,
    VersionAlgorithm, VersionState, oauth_token_endpoint, refusing_proxy,
};
use kmssh_core::{
    Algorithm, Curve, Error, ErrorKind, ErrorStatus, HashAlgorithm, KeySpec, KmsKey, RetryPolicy,
    Signature, SigningInput,
};

kmssh_conformance::conformance_suite!(kmssh_conformance::gcp::GcpFixture::shared());

/// The refresh token in the test `authorized_user` files.
const REFRESH_TOKEN: &str = "kmssh-test-refresh-token";

/// Quick backoff inside `deadline`.
fn quick(deadline: Duration) -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        deadline,
        max_attempts: 100,
    }
}

/// The emulator's options with the default retry policy (a 30 s deadline): what is
/// refused at once must be refused well inside it.
fn default_retries(emulator: &GcpKmsEmulator) -> GcpKmsOptions {
    GcpKmsOptions {
        retry: None,
        ..emulator_options(&emulator.url())
    }
}

/// `authorized_user` credentials whose token endpoint is `endpoint`.
fn user_credentials(endpoint: &StandIn) -> Credentials {
    user_account::Builder::new(authorized_user_json(
        &format!("{}/token", endpoint.url()),
        REFRESH_TOKEN,
    ))
    .build()
    .expect("authorized_user credentials")
}

fn attempts(err: &Error) -> u32 {
    err.context("attempts")
        .and_then(|a| a.parse().ok())
        .unwrap_or_default()
}

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

    for (wire, name, reason) in [
        (
            EC_SIGN_SECP256K1_SHA256,
            "EC_SIGN_SECP256K1_SHA256",
            "secp256k1",
        ),
        (
            RSA_SIGN_PSS_2048_SHA256,
            "RSA_SIGN_PSS_2048_SHA256",
            "RSASSA-PSS",
        ),
        (HMAC_SHA256, "HMAC_SHA256", "HMAC"),
        (PQ_SIGN_ML_DSA_65, "PQ_SIGN_ML_DSA_65", "post-quantum"),
        (
            RSA_DECRYPT_OAEP_2048_SHA256,
            "RSA_DECRYPT_OAEP_2048_SHA256",
            "decryption",
        ),
    ] {
        let name_of_version = emulator.create_version_with(KeySpec::Ecdsa(Curve::P256), wire);
        let err = open(&name_of_version, &options)
            .await
            .expect_err("unsupported algorithm");
        assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm, "{err}");
        assert!(err.message().contains(name), "{err}");
        assert!(err.message().contains(reason), "{name}: {err}");
        assert!(err.message().contains("EC_SIGN_P256_SHA256"), "{err}");
        assert!(err.message().contains("EC_SIGN_ED25519"), "{err}");
        assert_eq!(
            emulator.count(&name_of_version, Operation::Sign),
            0,
            "{name}"
        );
    }

    // The PEM must hold the key the algorithm names: its family, curve or RSA size.
    for (holds, reports, says) in [
        (
            KeySpec::Rsa(3072),
            VersionAlgorithm::RsaSignPkcs1_2048Sha256,
            "RSA-3072",
        ),
        (
            KeySpec::Ecdsa(Curve::P256),
            VersionAlgorithm::EcSignEd25519,
            "ECDSA P-256",
        ),
        (
            KeySpec::Ed25519,
            VersionAlgorithm::EcSignP384Sha384,
            "Ed25519",
        ),
    ] {
        let name = emulator.create_version_with(holds, reports.wire());
        let err = open(&name, &options).await.expect_err("a mismatched key");
        assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
        assert!(
            err.message().contains(says) && err.message().contains(reports.name()),
            "{err}"
        );
        assert!(err.message().contains(&reports.spec().to_string()), "{err}");
    }

    let missing = "projects/kmssh-test/locations/global/keyRings/conformance/cryptoKeys/none/cryptoKeyVersions/9";
    let err = open(missing, &options).await.expect_err("unknown version");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::NotFound, ErrorStatus::Permanent),
        "{err}"
    );
}

/// A version still being generated (`FAILED_PRECONDITION` with a `KEY_PENDING_GENERATION`
/// violation) is waited for inside the deadline: used once it is enabled, persistent
/// when it never is.
#[tokio::test]
async fn a_version_being_generated_is_waited_for() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let name = emulator.create_key_version(Algorithm::EcdsaP384Sha384);
    emulator.set_state(&name, VersionState::PendingGeneration);
    let mut options = emulator_options(&emulator.url());
    options.retry = Some(quick(Duration::from_millis(600)));
    let err = open(&name, &options).await.expect_err("stays pending");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::InvalidKey, ErrorStatus::Persistent),
        "{err}"
    );
    assert!(
        emulator.count(&name, Operation::GetPublicKey) > 1,
        "a pending version was not waited for"
    );

    let before = emulator.count(&name, Operation::GetPublicKey);
    let opening = tokio::spawn({
        let options = emulator_options(&emulator.url());
        let name = name.clone();
        async move { open(&name, &options).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    emulator.set_state(&name, VersionState::Enabled);
    let key = opening.await.expect("task").expect("opens once generated");
    assert!(emulator.count(&name, Operation::GetPublicKey) > before + 1);
    key.sign_message(b"generated now").await.expect("signs");
}

/// A disabled, destroyed or soon destroyed version is refused at once, with one request
/// and Cloud KMS's message, although the retry deadline is 30 s; a version disabled after
/// open is refused at its first signature the same way.
#[tokio::test]
async fn disabled_or_destroyed_versions_are_refused_at_once() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let options = default_retries(emulator);
    for state in [
        VersionState::Disabled,
        VersionState::Destroyed,
        VersionState::DestroyScheduled,
    ] {
        let name = emulator.create_key_version(Algorithm::EcdsaP256Sha256);
        emulator.set_state(&name, state);
        let started = Instant::now();
        let err = open(&name, &options).await.expect_err("not enabled");
        assert_eq!(
            (err.kind(), err.status()),
            (ErrorKind::InvalidKey, ErrorStatus::Permanent),
            "{state:?}: {err}"
        );
        assert!(err.to_string().contains(state.name()), "{err}");
        assert_eq!(emulator.count(&name, Operation::GetPublicKey), 1, "{err}");
        assert!(started.elapsed() < Duration::from_secs(5), "{err}");
    }

    let name = emulator.create_key_version(Algorithm::EcdsaP256Sha256);
    let key = open(&name, &options).await.expect("opens");
    emulator.set_state(&name, VersionState::Disabled);
    let err = key
        .sign_message(b"disabled now")
        .await
        .expect_err("disabled");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::InvalidKey, ErrorStatus::Permanent),
        "{err}"
    );
    assert_eq!(emulator.count(&name, Operation::Sign), 1);
}

/// The emulator answers as Cloud KMS does: `verifiedDigestCrc32c` only for a CRC32C that
/// was sent (false without one), `FAILED_PRECONDITION` with a `PreconditionFailure`
/// detail naming the state. Asked through Google's client directly, not the backend.
#[tokio::test]
async fn the_emulator_confirms_only_a_crc_it_was_sent_and_details_its_errors() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let client = emulator_options(&emulator.url())
        .client()
        .await
        .expect("client");
    let name = emulator.create_key_version(Algorithm::EcdsaP256Sha256);
    let digest = [7u8; 32];
    let sign = || {
        client
            .asymmetric_sign()
            .set_name(&name)
            .set_digest(Digest::new().set_sha256(digest.to_vec()))
    };
    let answer = sign().send().await.expect("signs without a CRC32C");
    assert!(!answer.verified_digest_crc32c, "no CRC32C was sent");
    let crc = i64::from(crc32c::crc32c(&digest));
    let answer = sign().set_digest_crc32c(crc).send().await.expect("signs");
    assert!(answer.verified_digest_crc32c);
    let err = sign()
        .set_digest_crc32c(crc ^ 1)
        .send()
        .await
        .expect_err("a wrong CRC32C");
    assert_eq!(err.http_status_code(), Some(400), "{err}");

    let pending = emulator.create_key_version(Algorithm::EcdsaP256Sha256);
    emulator.set_state(&pending, VersionState::PendingGeneration);
    let err = client
        .get_public_key()
        .set_name(&pending)
        .send()
        .await
        .expect_err("pending");
    let status = serde_json::to_value(err.status().expect("a Google error")).expect("json");
    assert_eq!(status["code"], 9, "{status}");
    assert_eq!(
        status["details"][0]["violations"][0]["type"], "KEY_PENDING_GENERATION",
        "{status}"
    );
    assert_eq!(
        status["details"][0]["violations"][0]["subject"],
        pending.as_str(),
        "{status}"
    );
}

/// An HTTP error whose body is not a Google error is judged by its status: a proxy's 403
/// page is a permission error and a wrong endpoint's 404 page a missing key, both at
/// once; a gateway's 502 page is retried.
#[tokio::test]
async fn http_errors_that_are_not_google_errors_are_judged_by_their_status() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let name = emulator.create_key_version(Algorithm::EcdsaP256Sha256);

    let proxy = refusing_proxy(Reply::html(
        403,
        "<html><head><title>Access Denied</title></head><body>Blocked by corporate policy.</body></html>",
    ));
    let options = GcpKmsOptions {
        retry: None,
        ..emulator_options(&proxy.url())
    };
    let started = Instant::now();
    let err = open(&name, &options).await.expect_err("the proxy refuses");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::PermissionDenied, ErrorStatus::Permanent),
        "{err}"
    );
    assert!(err.to_string().contains("HTTP 403"), "{err}");
    assert_eq!(proxy.requests().len(), 1, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");

    let wrong_endpoint = GcpKmsOptions {
        retry: None,
        ..emulator_options(&format!("{}/not-cloud-kms", emulator.url()))
    };
    let started = Instant::now();
    let err = open(&name, &wrong_endpoint)
        .await
        .expect_err("no such path");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::NotFound, ErrorStatus::Permanent),
        "{err}"
    );
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");

    // JSON, but without a status Google knows: judged by the HTTP status too.
    let json_proxy = refusing_proxy(Reply::json(
        404,
        &serde_json::json!({"error": {"code": 404, "message": "no route"}}),
    ));
    let options = GcpKmsOptions {
        retry: None,
        ..emulator_options(&json_proxy.url())
    };
    let err = open(&name, &options).await.expect_err("no route");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::NotFound, ErrorStatus::Permanent),
        "{err}"
    );
    assert_eq!(json_proxy.requests().len(), 1, "{err}");

    let gateway = refusing_proxy(Reply::html(502, "<html><body>Bad Gateway</body></html>"));
    let mut options = emulator_options(&gateway.url());
    options.retry = Some(quick(Duration::from_millis(500)));
    let err = open(&name, &options).await.expect_err("the gateway fails");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Unavailable, ErrorStatus::Persistent),
        "{err}"
    );
    assert!(gateway.requests().len() > 1, "a 502 was not retried");
}

/// A key that requires a bearer token refuses a request without one and one with another
/// token (401 `UNAUTHENTICATED`: kmssh's `Unauthenticated`, not retried), and takes the
/// token its credentials' token endpoint grants.
#[tokio::test]
async fn bearer_tokens_are_checked_and_refusals_are_unauthenticated() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let name = emulator.create_key_version(Algorithm::EcdsaP256Sha256);
    emulator.require_token(&name, "kmssh-token-a");

    let err = open(&name, &default_retries(emulator))
        .await
        .expect_err("no token");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Unauthenticated, ErrorStatus::Permanent),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("missing required authentication credential"),
        "{err}"
    );
    assert_eq!(emulator.count(&name, Operation::GetPublicKey), 1);

    let other = oauth_token_endpoint(
        REFRESH_TOKEN,
        vec![TokenAnswer::Grant("kmssh-token-b".into())],
    );
    let mut options = emulator_options_with(&emulator.url(), user_credentials(&other));
    options.retry = None;
    let err = open(&name, &options).await.expect_err("another token");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Unauthenticated, ErrorStatus::Permanent),
        "{err}"
    );
    assert_eq!(
        err.context("credentials"),
        Some("credentials given in code"),
        "{err}"
    );
    assert_eq!(emulator.count(&name, Operation::GetPublicKey), 2);

    let granting = oauth_token_endpoint(
        REFRESH_TOKEN,
        vec![TokenAnswer::Grant("kmssh-token-a".into())],
    );
    let options = emulator_options_with(&emulator.url(), user_credentials(&granting));
    let key = open(&name, &options).await.expect("the right token");
    key.sign_message(b"authenticated").await.expect("signs");
}

/// Credentials the token endpoint refuses (`invalid_grant`: a revoked refresh token) are
/// `Unauthenticated` at once, with one token request and the endpoint's reason.
#[tokio::test]
async fn refused_credentials_are_unauthenticated_at_once() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let name = emulator.create_key_version(Algorithm::EcdsaP256Sha256);
    let refusing = oauth_token_endpoint(REFRESH_TOKEN, vec![TokenAnswer::InvalidGrant]);
    let mut options = emulator_options_with(&emulator.url(), user_credentials(&refusing));
    options.retry = None;
    let started = Instant::now();
    let err = open(&name, &options).await.expect_err("refused");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Unauthenticated, ErrorStatus::Permanent),
        "{err}"
    );
    assert!(err.to_string().contains("invalid_grant"), "{err}");
    assert_eq!(attempts(&err), 1, "{err}");
    assert_eq!(refusing.requests().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
    assert_eq!(emulator.count(&name, Operation::GetPublicKey), 0);
}

/// A token endpoint that is down for now is retried as gax does (the credentials' token
/// cache asks again 10 s after a temporary failure): unavailable and persistent when it
/// stays down, and used once it answers.
#[tokio::test]
async fn temporary_credential_failures_are_retried() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let name = emulator.create_key_version(Algorithm::EcdsaP256Sha256);
    emulator.require_token(&name, "kmssh-token-c");

    let down = oauth_token_endpoint(REFRESH_TOKEN, vec![TokenAnswer::Unavailable]);
    let mut options = emulator_options_with(&emulator.url(), user_credentials(&down));
    options.retry = Some(quick(Duration::from_millis(800)));
    let err = open(&name, &options).await.expect_err("stays down");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Unavailable, ErrorStatus::Persistent),
        "{err}"
    );
    assert!(attempts(&err) > 1, "{err}");

    let flaky = oauth_token_endpoint(
        REFRESH_TOKEN,
        vec![
            TokenAnswer::Unavailable,
            TokenAnswer::Grant("kmssh-token-c".into()),
        ],
    );
    let mut options = emulator_options_with(&emulator.url(), user_credentials(&flaky));
    options.retry = Some(RetryPolicy {
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
        deadline: Duration::from_secs(25),
        max_attempts: 100,
    });
    let key = open(&name, &options)
        .await
        .expect("opens once a token comes");
    assert_eq!(flaky.requests().len(), 2);
    key.sign_message(b"token at last").await.expect("signs");
}

/// `…/cryptoKeys/K` opens the key's newest `ENABLED` version only when asked
/// (`?version=latest` or `resolve_latest_version`), across list pages, and a key
/// without an enabled version is refused.
#[tokio::test]
async fn a_key_name_opens_its_newest_enabled_version_only_when_asked() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let options = emulator_options(&emulator.url());
    let key = emulator.create_key();
    let p256 = VersionAlgorithm::EcSignP256Sha256;
    let _v1 = emulator.add_version(&key, p256, VersionState::Enabled);
    let v2 = emulator.add_version(&key, p256, VersionState::Enabled);
    let _v3 = emulator.add_version(&key, p256, VersionState::Disabled);
    let _v4 = emulator.add_version(&key, p256, VersionState::PendingGeneration);

    let err = open(&key, &options).await.expect_err("no opt-in");
    assert_eq!(err.kind(), ErrorKind::InvalidUri, "{err}");
    assert!(err.message().contains("?version=latest"), "{err}");

    let second = open(&v2, &options).await.expect("version 2");
    let latest = open(&format!("{key}?version=latest"), &options)
        .await
        .expect("the newest enabled version");
    assert_eq!(latest.public_key(), second.public_key());
    latest.sign_message(b"latest").await.expect("signs");
    let opted_in = GcpKmsOptions {
        resolve_latest_version: true,
        ..options.clone()
    };
    let latest = open(&key, &opted_in).await.expect("opted in in code");
    assert_eq!(latest.public_key(), second.public_key());

    // More versions than one page holds; the newest is disabled.
    let many = emulator.create_key();
    let versions: Vec<String> = (1..=12)
        .map(|n| {
            let state = if n == 12 {
                VersionState::Disabled
            } else {
                VersionState::Enabled
            };
            emulator.add_version(&many, VersionAlgorithm::EcSignP384Sha384, state)
        })
        .collect();
    let eleventh = open(&versions[10], &options).await.expect("version 11");
    let latest = open(&format!("{many}?version=latest"), &options)
        .await
        .expect("across pages");
    assert_eq!(latest.public_key(), eleventh.public_key());

    let none = emulator.create_key();
    let _ = emulator.add_version(&none, p256, VersionState::Disabled);
    let _ = emulator.add_version(&none, p256, VersionState::Destroyed);
    let err = open(&format!("{none}?version=latest"), &options)
        .await
        .expect_err("nothing enabled");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::InvalidKey, ErrorStatus::Permanent),
        "{err}"
    );
    assert!(err.message().contains("no ENABLED version"), "{err}");
    assert!(err.message().contains("DISABLED"), "{err}");
}

/// `?protection=hsm` (or `required_protection`) refuses a SOFTWARE version with a clear
/// error and opens an HSM one.
#[tokio::test]
async fn a_required_protection_level_refuses_other_versions() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let options = emulator_options(&emulator.url());
    let software = emulator.create_key_version(Algorithm::EcdsaP256Sha256);
    let err = open(&format!("{software}?protection=hsm"), &options)
        .await
        .expect_err("software");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::InvalidKey, ErrorStatus::Permanent),
        "{err}"
    );
    assert!(
        err.message().contains("SOFTWARE") && err.message().contains("protection=hsm"),
        "{err}"
    );
    open(&format!("{software}?protection=software"), &options)
        .await
        .expect("software, as asked");

    let hsm = emulator.create_key_version(Algorithm::EcdsaP384Sha384);
    emulator.set_protection(&hsm, PROTECTION_HSM);
    let key = open(&format!("{hsm}?protection=hsm"), &options)
        .await
        .expect("an HSM version");
    key.sign_message(b"in an HSM").await.expect("signs");

    let required = GcpKmsOptions {
        required_protection: Some(Protection::Hsm),
        ..options.clone()
    };
    let err = open(&software, &required).await.expect_err("software");
    assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
    open(&hsm, &required).await.expect("an HSM version");

    let key_name = emulator.create_key();
    let version = emulator.add_version(
        &key_name,
        VersionAlgorithm::EcSignP256Sha256,
        VersionState::Enabled,
    );
    emulator.set_protection(&version, PROTECTION_HSM);
    open(
        &format!("{key_name}?version=latest&protection=hsm"),
        &options,
    )
    .await
    .expect("the newest version, an HSM one");
}

/// Damage in transit, which the CRC32C fields reveal: the signature changed after its
/// checksum was computed, a wrong `signatureCrc32c`, the request's CRC32C not confirmed
/// (`verifiedDigestCrc32c` or, for `data` requests, `verifiedDataCrc32c` false).
fn integrity_faults(verified_flag: &'static str) -> [(&'static str, Rewrite); 3] {
    [
        (
            "flipped signature byte",
            Arc::new(|answer: &mut serde_json::Value| {
                let mut signature =
                    Base64::decode_vec(answer["signature"].as_str().unwrap_or_default())
                        .unwrap_or_default();
                if let Some(last) = signature.last_mut() {
                    *last ^= 0x01;
                }
                answer["signature"] = serde_json::json!(Base64::encode_string(&signature));
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
            verified_flag,
            Arc::new(move |answer: &mut serde_json::Value| {
                answer[verified_flag] = serde_json::json!(false);
            }),
        ),
    ]
}

/// Each integrity fault is retried once: once is survived, twice is refused, and no
/// certificate is made over the bad answer. For `digest` requests (ECDSA) and `data`
/// requests (Ed25519's message, raw PKCS#1's DigestInfo) alike.
#[tokio::test]
async fn integrity_faults_are_retried_once_then_refused() {
    for (spec, verified_flag) in [
        (KeySpec::Ecdsa(Curve::P384), "verifiedDigestCrc32c"),
        (KeySpec::Ed25519, "verifiedDataCrc32c"),
        (KeySpec::Rsa(3072), "verifiedDataCrc32c"),
    ] {
        let Some(key) = faulty_key_for(GcpFixture::shared(), spec, Capability::Faults).await else {
            return;
        };
        for (what, rewrite) in integrity_faults(verified_flag) {
            let before = key.faults.count(Operation::Sign);
            key.faults
                .inject(Operation::Sign, Fault::Rewrite(rewrite.clone()), 1);
            issue_test_certificate(key.key.as_ref())
                .await
                .unwrap_or_else(|e| panic!("{spec}: {what} once should be retried: {e}"));
            assert_eq!(
                key.faults.count(Operation::Sign) - before,
                2,
                "{spec}: {what}: one retry"
            );

            key.faults
                .inject(Operation::Sign, Fault::Rewrite(rewrite), 2);
            let err = issue_test_certificate(key.key.as_ref())
                .await
                .expect_err(what);
            assert_eq!(err.kind(), ErrorKind::BadSignature, "{spec}: {what}: {err}");
        }
    }
}

/// Whether `openssl` verifies `signature` over `message` with `algorithm` and the key's
/// PEM: an independent check of what the emulator signed and the backend returned.
async fn openssl_verifies(
    key: &dyn KmsKey,
    algorithm: Algorithm,
    message: &[u8],
    signature: &Signature,
) -> bool {
    let dir = tempfile::tempdir().expect("scratch directory");
    let pem = dir.path().join("pub.pem");
    let msg = dir.path().join("message");
    let sig = dir.path().join("message.sig");
    std::fs::write(&pem, key.public_key().to_pem().expect("PEM")).expect("write");
    std::fs::write(&msg, message).expect("write");
    std::fs::write(&sig, signature.to_bytes()).expect("write");
    let mut command = tokio::process::Command::new("openssl");
    match algorithm.hash() {
        Some(hash) => command
            .arg("dgst")
            .arg(format!("-{}", hash.name()))
            .arg("-verify")
            .arg(&pem)
            .arg("-signature")
            .arg(&sig)
            .arg(&msg),
        None => command
            .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
            .arg(&pem)
            .arg("-in")
            .arg(&msg)
            .arg("-sigfile")
            .arg(&sig),
    };
    let run = tokio::time::timeout(Duration::from_secs(30), command.kill_on_drop(true).output())
        .await
        .expect("openssl within 30 s")
        .expect("run openssl");
    run.status.success()
}

/// A version bound to one hash (`RSA_SIGN_PKCS1_*_SHA256`, `RSA_SIGN_PKCS1_4096_SHA512`)
/// signs only with it: asking for another hash (SHA-512, what `ssh-keygen -s` signs by
/// default, from a SHA-256 version) is refused before any call, naming what the key
/// signs. What it does sign goes out as a `digest` of its hash and verifies with openssl.
#[tokio::test]
async fn a_version_bound_to_one_hash_refuses_the_others_before_any_call() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let options = emulator_options(&emulator.url());
    for (version, signs) in [
        (
            VersionAlgorithm::RsaSignPkcs1_2048Sha256,
            Algorithm::RsaPkcs1Sha256,
        ),
        (
            VersionAlgorithm::RsaSignPkcs1_3072Sha256,
            Algorithm::RsaPkcs1Sha256,
        ),
        (
            VersionAlgorithm::RsaSignPkcs1_4096Sha256,
            Algorithm::RsaPkcs1Sha256,
        ),
        (
            VersionAlgorithm::RsaSignPkcs1_4096Sha512,
            Algorithm::RsaPkcs1Sha512,
        ),
    ] {
        let name = emulator.create_version(version);
        let key = open(&name, &options).await.expect("opens");
        assert_eq!(key.public_key().spec(), version.spec(), "{version:?}");
        assert_eq!(key.algorithms(), [signs], "{version:?}");
        assert_eq!(key.algorithm(), signs, "{version:?}");
        for other in Algorithm::ALL.into_iter().filter(|a| *a != signs) {
            let err = key
                .sign(other, SigningInput::Message(b"another hash"))
                .await
                .expect_err("a hash the version is not bound to");
            assert_eq!(
                err.kind(),
                ErrorKind::UnsupportedAlgorithm,
                "{version:?} {other}: {err}"
            );
            assert!(err.message().contains(&signs.to_string()), "{err}");
        }
        assert_eq!(
            emulator.count(&name, Operation::Sign),
            0,
            "{version:?}: a refused algorithm reached Cloud KMS"
        );
        let message = b"bound to one hash";
        let signature = key.sign_message(message).await.expect("signs");
        assert_eq!(signature.algorithm(), signs);
        let hash = signs.hash().expect("RSA PKCS#1 is pre-hashed");
        assert_eq!(
            emulator.last_sign_field(&name),
            Some(SignField::Digest(hash)),
            "{version:?}"
        );
        assert!(
            openssl_verifies(key.as_ref(), signs, message, &signature).await,
            "{version:?}: openssl refused the signature"
        );
    }
}

/// A raw PKCS#1 version signs each hash kmssh offers for RSA, SHA-512 first (the
/// `rsa-sha2-512` `ssh-keygen -s` makes): the request carries the DigestInfo in `data`,
/// and openssl verifies every signature. Cloud KMS's request rules, checked through
/// Google's client: a `digest` is refused for such a version, and so is data longer than
/// the modulus less 11 bytes.
#[tokio::test]
async fn a_raw_version_signs_every_hash_with_a_digest_info_in_data() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let options = emulator_options(&emulator.url());
    let name = emulator.create_version(VersionAlgorithm::RsaSignRawPkcs1_2048);
    let key = open(&name, &options).await.expect("opens");
    assert_eq!(key.algorithms(), Algorithm::RSA);
    assert_eq!(key.algorithm(), Algorithm::RsaPkcs1Sha512);
    for algorithm in Algorithm::RSA {
        let message = format!("raw PKCS#1 with {algorithm}");
        let signature = key
            .sign(algorithm, SigningInput::Message(message.as_bytes()))
            .await
            .unwrap_or_else(|e| panic!("{algorithm}: {e}"));
        assert_eq!(signature.algorithm(), algorithm);
        assert_eq!(emulator.last_sign_field(&name), Some(SignField::Data));
        assert!(
            openssl_verifies(key.as_ref(), algorithm, message.as_bytes(), &signature).await,
            "openssl refused the {algorithm} signature"
        );
        // A digest the caller computed is wrapped the same way.
        let digest = algorithm.digest(message.as_bytes()).expect("pre-hashed");
        let signature = key
            .sign(algorithm, SigningInput::Digest(&digest))
            .await
            .unwrap_or_else(|e| panic!("{algorithm} digest: {e}"));
        assert!(
            openssl_verifies(key.as_ref(), algorithm, message.as_bytes(), &signature).await,
            "openssl refused the {algorithm} signature of a digest"
        );
    }

    let client = options.client().await.expect("client");
    let digest = HashAlgorithm::Sha256.digest(b"raw");
    let err = client
        .asymmetric_sign()
        .set_name(&name)
        .set_digest(Digest::new().set_sha256(digest.to_vec()))
        .send()
        .await
        .expect_err("a digest for a raw version");
    assert_eq!(err.http_status_code(), Some(400), "{err}");
    let too_long = vec![0x30u8; 2048 / 8 - 10];
    let err = client
        .asymmetric_sign()
        .set_name(&name)
        .set_data(too_long)
        .send()
        .await
        .expect_err("more than k - 11 bytes");
    assert_eq!(err.http_status_code(), Some(400), "{err}");
}

/// Ed25519 versions are sent the message itself in `data`, with its CRC32C, never a
/// digest: a digest is refused before any call (by kmssh) and by the emulator as by
/// Cloud KMS; the signature verifies with openssl. Through Google's client:
/// `verifiedDataCrc32c` only for a `dataCrc32c` that was sent and matched, a wrong one
/// is 400; a `digest` for an ECDSA version is fine and `data` is refused there.
#[tokio::test]
async fn ed25519_versions_are_sent_the_message_as_data() {
    let Some(emulator) = GcpFixture::shared().emulator() else {
        return;
    };
    let options = emulator_options(&emulator.url());
    let name = emulator.create_version(VersionAlgorithm::EcSignEd25519);
    let key = open(&name, &options).await.expect("opens");
    assert_eq!(key.algorithms(), [Algorithm::Ed25519]);
    assert_eq!(key.public_key().spec(), KeySpec::Ed25519);
    let message: Vec<u8> = (0..700u32)
        .map(|i| u8::try_from(i % 251).unwrap_or_default())
        .collect();
    let signature = key.sign_message(&message).await.expect("signs");
    assert_eq!(emulator.last_sign_field(&name), Some(SignField::Data));
    assert!(
        openssl_verifies(key.as_ref(), Algorithm::Ed25519, &message, &signature).await,
        "openssl refused the Ed25519 signature"
    );
    let signed = emulator.count(&name, Operation::Sign);
    let err = key
        .sign_digest(&[7u8; 64])
        .await
        .expect_err("a digest for Ed25519");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(emulator.count(&name, Operation::Sign), signed);

    let client = options.client().await.expect("client");
    let data = b"pure Ed25519 data".to_vec();
    let crc = i64::from(crc32c::crc32c(&data));
    let sign = || {
        client
            .asymmetric_sign()
            .set_name(&name)
            .set_data(data.clone())
    };
    let answer = sign().send().await.expect("signs without a CRC32C");
    assert!(!answer.verified_data_crc32c, "no CRC32C was sent");
    let answer = sign().set_data_crc32c(crc).send().await.expect("signs");
    assert!(answer.verified_data_crc32c);
    assert!(!answer.verified_digest_crc32c, "no digest was sent");
    assert_eq!(answer.signature.len(), 64);
    let err = sign()
        .set_data_crc32c(crc ^ 1)
        .send()
        .await
        .expect_err("a wrong CRC32C");
    assert_eq!(err.http_status_code(), Some(400), "{err}");
    let err = client
        .asymmetric_sign()
        .set_name(&name)
        .set_digest(Digest::new().set_sha512(vec![7u8; 64]))
        .send()
        .await
        .expect_err("a digest for an Ed25519 version");
    assert_eq!(err.http_status_code(), Some(400), "{err}");
    assert!(err.to_string().contains("EC_SIGN_ED25519"), "{err}");

    let ecdsa = emulator.create_version(VersionAlgorithm::EcSignP256Sha256);
    let err = client
        .asymmetric_sign()
        .set_name(&ecdsa)
        .set_data(data.clone())
        .send()
        .await
        .expect_err("data for a version bound to SHA-256");
    assert_eq!(err.http_status_code(), Some(400), "{err}");
}
