//! The conformance suite against AWS KMS: ministack on 127.0.0.1 by default, or the keys
//! in `KMSSH_AWS_KEY_IDS` in real AWS. Then what is AWS's own: refusals of unusable keys
//! (usage, spec, state, alias) and of answers whose spec and algorithms disagree.

use std::sync::Arc;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use kmssh_conformance::aws::{AwsFixture, admin_client, create_key, emulator_options, open};
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
