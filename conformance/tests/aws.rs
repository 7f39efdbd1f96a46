//! The conformance suite against AWS KMS: ministack on 127.0.0.1 by default, or the keys
//! in `KMSSH_AWS_KEY_IDS` in real AWS. Then what is AWS's own: refusals of unusable keys
//! (usage, spec, state, alias) and of answers whose spec and algorithms disagree; the
//! region a key ARN names; grant tokens on every call; which refusals are retried.

use std::sync::Arc;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use kmssh_backend_aws::AwsKmsOptions;
use kmssh_conformance::aws::{
    AwsFixture, EMULATOR_REGION, SigV4Checks, admin_client, admin_client_in, body_json, create_key,
    create_key_arn, emulator_options, gated_proxy, open, sigv4_scope,
};
use kmssh_conformance::faults::{Fault, Operation};
use kmssh_conformance::fixture::{Capability, faulty_key_for};
use kmssh_core::{Algorithm, ErrorKind, ErrorStatus};

kmssh_conformance::conformance_suite!(kmssh_conformance::aws::AwsFixture::shared());

/// Keys kmssh cannot sign with are refused at open, each with its own kind and reason.
#[tokio::test]
async fn unusable_keys_are_refused_with_typed_errors() {
    let Some(ministack) = AwsFixture::shared().ministack() else {
        return;
    };
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
    let Some(ministack) = AwsFixture::shared().ministack() else {
        return;
    };
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
    let Some(key) = faulty_key_for(
        AwsFixture::shared(),
        Algorithm::EcdsaP256Sha256,
        Capability::Faults,
    )
    .await
    else {
        return;
    };
    key.faults.inject(
        Operation::GetPublicKey,
        Fault::Rewrite(Arc::new(|json| {
            json["SigningAlgorithms"] = serde_json::json!(["ECDSA_SHA_384"]);
        })),
        1,
    );
    let err = key.reopen().await.expect_err("algorithm mismatch");
    assert_eq!(err.kind(), ErrorKind::InvalidKey);
    assert!(err.message().contains("ECDSA_SHA_256"), "{err}");

    key.faults.inject(
        Operation::Describe,
        Fault::Rewrite(Arc::new(|json| {
            json["KeyMetadata"]["KeySpec"] = serde_json::json!("ECC_NIST_P384");
        })),
        1,
    );
    let err = key.reopen().await.expect_err("spec mismatch");
    assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
}

/// A key ARN (and an alias ARN) is reached in the region it names, whatever the options'
/// default says: the proxy expects eu-west-1 and refuses anything signed for another
/// region. An explicit region option that contradicts the ARN is a configuration error.
#[tokio::test]
async fn an_arn_is_reached_in_its_own_region() {
    let Some(ministack) = AwsFixture::shared().ministack() else {
        return;
    };
    let admin = admin_client_in(&ministack.url(), "eu-west-1").await;
    let arn = create_key_arn(&admin, KeySpec::EccNistP384, KeyUsageType::SignVerify).await;
    let (prefix, key_id) = arn.split_once(":key/").expect("key ARN");
    let alias_name = format!("alias/kmssh-eu-{}", &key_id[..8]);
    let alias_arn = format!("{prefix}:{alias_name}");
    admin
        .create_alias()
        .alias_name(&alias_name)
        .target_key_id(&arn)
        .send()
        .await
        .expect("CreateAlias");
    let (proxy, _gate) = gated_proxy(ministack, "eu-west-1").await;
    let options = AwsKmsOptions {
        region: None,
        ..emulator_options(&proxy.url())
    };
    for id in [&arn, &alias_arn] {
        let key = open(id, &options)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        key.sign_message(b"in eu-west-1").await.expect("signs");
    }
    let regions: Vec<String> = proxy
        .requests()
        .iter()
        .filter_map(|r| sigv4_scope(&r.head).map(|s| s.region))
        .collect();
    assert!(
        regions.len() >= 6 && regions.iter().all(|r| r == "eu-west-1"),
        "{regions:?}"
    );

    let contradicting = AwsKmsOptions {
        region: Some(EMULATOR_REGION.to_owned()),
        ..options.clone()
    };
    let err = open(&arn, &contradicting).await.expect_err("contradiction");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.message().contains("eu-west-1"), "{err}");

    // Without the ARN, the options' region is used, and the proxy refuses it as AWS would.
    let err = open(key_id, &contradicting)
        .await
        .expect_err("wrong region");
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.message().contains("InvalidSignatureException"), "{err}");
}

/// Grant tokens go with every call: DescribeKey and GetPublicKey at open, and Sign.
#[tokio::test]
async fn grant_tokens_go_with_every_call() {
    let Some(ministack) = AwsFixture::shared().ministack() else {
        return;
    };
    let id = create_key(
        &admin_client(&ministack.url()).await,
        KeySpec::EccNistP256,
        KeyUsageType::SignVerify,
    )
    .await;
    let (proxy, _gate) = gated_proxy(ministack, EMULATOR_REGION).await;
    let options = AwsKmsOptions {
        grant_tokens: vec!["grant-token-1".to_owned(), "grant-token-2".to_owned()],
        ..emulator_options(&proxy.url())
    };
    let key = open(&id, &options).await.expect("opens");
    key.sign_message(b"with grants").await.expect("signs");
    let requests = proxy.requests();
    for operation in [
        Operation::Describe,
        Operation::GetPublicKey,
        Operation::Sign,
    ] {
        let sent: Vec<_> = requests
            .iter()
            .filter(|r| r.operation == Some(operation))
            .map(|r| body_json(&r.body)["GrantTokens"].clone())
            .collect();
        assert_eq!(
            sent,
            vec![serde_json::json!(["grant-token-1", "grant-token-2"])],
            "{operation:?}"
        );
    }
}

/// `KeyUnavailableException` (500, "you can retry") is retried; the key signs on the
/// second attempt.
#[tokio::test]
async fn key_unavailable_is_retried() {
    let Some(ministack) = AwsFixture::shared().ministack() else {
        return;
    };
    let id = create_key(
        &admin_client(&ministack.url()).await,
        KeySpec::EccNistP256,
        KeyUsageType::SignVerify,
    )
    .await;
    let (proxy, gate) = gated_proxy(ministack, EMULATOR_REGION).await;
    let key = open(&id, &emulator_options(&proxy.url()))
        .await
        .expect("opens");
    gate.answer(
        Operation::Sign,
        500,
        "KeyUnavailableException",
        "The request was rejected because the specified KMS key is not available.",
        1,
    );
    key.sign_message(b"after a moment").await.expect("retried");
    assert_eq!(proxy.count(Operation::Sign), 2);
}

/// Credentials AWS refuses are `Unauthenticated`, a missing permission
/// `PermissionDenied`; neither is retried.
#[tokio::test]
async fn refused_credentials_are_unauthenticated_and_not_retried() {
    let Some(ministack) = AwsFixture::shared().ministack() else {
        return;
    };
    let id = create_key(
        &admin_client(&ministack.url()).await,
        KeySpec::EccNistP256,
        KeyUsageType::SignVerify,
    )
    .await;
    let (proxy, gate) = gated_proxy(ministack, EMULATOR_REGION).await;
    gate.set_checks(SigV4Checks {
        region: Some(EMULATOR_REGION.to_owned()),
        unrecognized: vec!["AKIDUNKNOWN".to_owned()],
        expired: vec!["ASIAEXPIRED".to_owned()],
        denied: vec!["AKIDDENIED".to_owned()],
    });
    let mut before = 0;
    for (access_key, kind, code) in [
        (
            "AKIDUNKNOWN",
            ErrorKind::Unauthenticated,
            "UnrecognizedClientException",
        ),
        (
            "ASIAEXPIRED",
            ErrorKind::Unauthenticated,
            "ExpiredTokenException",
        ),
        (
            "AKIDDENIED",
            ErrorKind::PermissionDenied,
            "AccessDeniedException",
        ),
    ] {
        let options = AwsKmsOptions {
            credentials: Some(aws_sdk_kms::config::Credentials::new(
                access_key, "secret", None, None, "test",
            )),
            ..emulator_options(&proxy.url())
        };
        let err = open(&id, &options).await.expect_err(access_key);
        assert_eq!(err.kind(), kind, "{err}");
        assert_eq!(err.status(), ErrorStatus::Permanent, "{err}");
        assert!(err.message().contains(code), "{err}");
        let now = proxy.count(Operation::Describe);
        assert_eq!(now - before, 1, "{access_key} was retried");
        before = now;
    }
}
