//! The conformance suite against AWS KMS: ministack on 127.0.0.1 by default, or the keys
//! in `KMSSH_AWS_KEY_IDS` in real AWS. Then what is AWS's own: refusals of unusable keys
//! (usage, spec by name, state, alias) and of answers whose spec and algorithms disagree;
//! RSA keys signing with each PKCS#1 v1.5 algorithm as DIGEST, Ed25519 as RAW within
//! KMS's 4096-byte limit (a longer certificate refused before any call); the region a key
//! ARN names; grant tokens on every call; which refusals are retried.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use base64ct::{Base64, Encoding};
use kmssh_backend_aws::{AwsKmsOptions, MAX_RAW_MESSAGE_LEN};
use kmssh_conformance::aws::{
    AwsFixture, EMULATOR_REGION, MAX_MESSAGE_LEN, SigV4Checks, admin_client, admin_client_in,
    body_json, create_key, create_key_arn, emulator_options, gated_proxy, open, sigv4_scope,
};
use kmssh_conformance::fault_proxy::FaultProxy;
use kmssh_conformance::faults::{Fault, Operation};
use kmssh_conformance::fixture::{Capability, faulty_key_for};
use kmssh_core::{
    Algorithm, Curve, ErrorKind, ErrorStatus, HashAlgorithm, PublicKey, Signature, SigningInput,
};
use kmssh_pki::{CertificateParameters, issue, parse_subject_key};
use tokio::process::Command;

kmssh_conformance::conformance_suite!(kmssh_conformance::aws::AwsFixture::shared());

/// A subject key for certificates.
const SUBJECT: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR";

/// Keys kmssh cannot sign with are refused at open, each with its own kind and reason.
#[tokio::test]
async fn unusable_keys_are_refused_with_typed_errors() {
    let Some(ministack) = AwsFixture::shared().ministack() else {
        return;
    };
    let admin = admin_client(&ministack.url()).await;
    let options = emulator_options(&ministack.url());
    let refusal = async |id: &str| open(id, &options).await.expect_err("must be refused");

    // A signing spec with another usage: the usage is what is wrong.
    for (spec, usage) in [
        (KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt),
        (KeySpec::EccNistP256, KeyUsageType::KeyAgreement),
    ] {
        let id = create_key(&admin, spec.clone(), usage.clone()).await;
        let err = refusal(&id).await;
        assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
        assert!(
            err.message().contains(spec.as_str())
                && err.message().contains(usage.as_str())
                && err.message().contains("not SIGN_VERIFY"),
            "{err}"
        );
    }

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

/// Every key spec kmssh does not sign with is refused at open by its name, in one line:
/// those ministack makes (secp256k1, HMAC, symmetric) for real, those it does not (SM2,
/// ML-DSA) by rewriting what DescribeKey says.
#[tokio::test]
async fn refused_key_specs_are_named() {
    let Some(ministack) = AwsFixture::shared().ministack() else {
        return;
    };
    let admin = admin_client(&ministack.url()).await;
    let options = emulator_options(&ministack.url());
    let refused_by_name = |err: kmssh_core::Error, name: &str| {
        assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm, "{name}: {err}");
        assert!(
            err.message().starts_with(&format!("KeySpec {name} ")),
            "{name}: {err}"
        );
        assert!(
            err.message().contains("ECC_NIST_EDWARDS25519")
                && err.message().contains("RSA_4096")
                && !err.message().contains('\n'),
            "{name}: {err}"
        );
    };
    for (spec, usage) in [
        (KeySpec::EccSecgP256K1, KeyUsageType::SignVerify),
        (KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac),
        (KeySpec::Hmac512, KeyUsageType::GenerateVerifyMac),
        (KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt),
    ] {
        let id = create_key(&admin, spec.clone(), usage).await;
        let err = open(&id, &options).await.expect_err(spec.as_str());
        refused_by_name(err, spec.as_str());
    }

    let Some(key) = faulty_key_for(
        AwsFixture::shared(),
        kmssh_core::KeySpec::Ecdsa(Curve::P256),
        Capability::Faults,
    )
    .await
    else {
        return;
    };
    for name in ["SM2", "ML_DSA_65", "ML_KEM_768"] {
        key.faults.inject(
            Operation::Describe,
            Fault::Rewrite(Arc::new(move |json| {
                json["KeyMetadata"]["KeySpec"] = serde_json::json!(name);
            })),
            1,
        );
        let before = key.faults.count(Operation::GetPublicKey);
        let err = key.reopen().await.expect_err(name);
        refused_by_name(err, name);
        assert_eq!(key.faults.count(Operation::GetPublicKey), before, "{name}");
    }
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
        kmssh_core::KeySpec::Ecdsa(Curve::P256),
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

/// An RSA key signs with the PKCS#1 v1.5 algorithms its `SigningAlgorithms` list (never
/// PSS); one listing only PSS is refused, and a key whose public key is not the size its
/// spec says too. An Ed25519 key listing only `ED25519_PH_SHA_512` (Ed25519ph, not
/// `ssh-ed25519`) is refused.
#[tokio::test]
async fn rsa_and_ed25519_algorithm_lists_are_honoured() {
    let Some(rsa) = faulty_key_for(
        AwsFixture::shared(),
        kmssh_core::KeySpec::Rsa(2048),
        Capability::CountsCalls,
    )
    .await
    else {
        return;
    };
    assert_eq!(rsa.key.algorithms(), Algorithm::RSA);
    assert_eq!(rsa.key.algorithm(), Algorithm::RsaPkcs1Sha512);
    assert_eq!(rsa.key.max_message_len(), None);

    let only = |algorithms: &'static [&'static str]| {
        Fault::Rewrite(Arc::new(move |json| {
            json["SigningAlgorithms"] = serde_json::json!(algorithms);
        }))
    };
    rsa.faults.inject(
        Operation::GetPublicKey,
        only(&["RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PSS_SHA_512"]),
        1,
    );
    let sha256_only = rsa.reopen().await.expect("a SHA-256 key opens");
    assert_eq!(sha256_only.algorithms(), [Algorithm::RsaPkcs1Sha256]);
    assert_eq!(sha256_only.algorithm(), Algorithm::RsaPkcs1Sha256);
    let signs = rsa.faults.count(Operation::Sign);
    let digest = HashAlgorithm::Sha512.digest(b"not offered");
    let err = sha256_only
        .sign(Algorithm::RsaPkcs1Sha512, SigningInput::Digest(&digest))
        .await
        .expect_err("SHA-512 is not offered");
    assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm, "{err}");
    assert_eq!(
        rsa.faults.count(Operation::Sign),
        signs,
        "refused before any call"
    );
    sha256_only.sign_message(b"sha-256").await.expect("signs");

    rsa.faults.inject(
        Operation::GetPublicKey,
        only(&[
            "RSASSA_PSS_SHA_256",
            "RSASSA_PSS_SHA_384",
            "RSASSA_PSS_SHA_512",
        ]),
        1,
    );
    let err = rsa.reopen().await.expect_err("PSS only");
    assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
    assert!(
        err.message().contains("RSASSA_PSS_SHA_256")
            && err.message().contains("RSASSA_PKCS1_V1_5_SHA_512"),
        "{err}"
    );

    rsa.faults.inject(
        Operation::Describe,
        Fault::Rewrite(Arc::new(|json| {
            json["KeyMetadata"]["KeySpec"] = serde_json::json!("RSA_4096");
        })),
        1,
    );
    let err = rsa
        .reopen()
        .await
        .expect_err("RSA-2048 key said to be RSA_4096");
    assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
    assert!(
        err.message().contains("RSA-2048") && err.message().contains("RSA_4096"),
        "{err}"
    );

    let Some(ed25519) = faulty_key_for(
        AwsFixture::shared(),
        kmssh_core::KeySpec::Ed25519,
        Capability::CountsCalls,
    )
    .await
    else {
        return;
    };
    assert_eq!(ed25519.key.algorithms(), [Algorithm::Ed25519]);
    assert_eq!(ed25519.key.max_message_len(), Some(MAX_RAW_MESSAGE_LEN));
    ed25519
        .faults
        .inject(Operation::GetPublicKey, only(&["ED25519_PH_SHA_512"]), 1);
    let err = ed25519.reopen().await.expect_err("Ed25519ph only");
    assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
    assert!(
        err.message().contains("ED25519_PH_SHA_512") && err.message().contains("ED25519_SHA_512"),
        "{err}"
    );
}

/// Runs `openssl pkeyutl -verify` on `input` (a digest, or with `-rawin` a message) and
/// `signature` against `public`: an independent verifier.
async fn openssl_verifies(
    dir: &Path,
    public: &PublicKey,
    options: &[&str],
    input: &[u8],
    signature: &[u8],
) -> bool {
    let (key, data, sig) = (
        dir.join("key.pem"),
        dir.join("input.bin"),
        dir.join("signature.bin"),
    );
    std::fs::write(&key, public.to_pem().expect("PEM")).expect("write key");
    std::fs::write(&data, input).expect("write input");
    std::fs::write(&sig, signature).expect("write signature");
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new("openssl")
            .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
            .arg(&key)
            .arg("-in")
            .arg(&data)
            .arg("-sigfile")
            .arg(&sig)
            .args(options)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("openssl within 20 s")
    .expect("run openssl");
    out.status.success()
}

/// An RSA key of each size KMS offers signs a digest with each of its algorithms: one
/// `Sign` with `MessageType=DIGEST`, the matching `RSASSA_PKCS1_V1_5_SHA_*` and the digest
/// itself; every answer verifies with `openssl pkeyutl` and is as long as the modulus.
#[tokio::test]
async fn rsa_keys_sign_digests_with_each_algorithm() {
    let Some(ministack) = AwsFixture::shared().ministack() else {
        return;
    };
    let (proxy, _gate) = gated_proxy(ministack, EMULATOR_REGION).await;
    let dir = tempfile::tempdir().expect("tempdir");
    for bits in [2048, 3072, 4096] {
        let id = AwsFixture::emulator_key_id(kmssh_core::KeySpec::Rsa(bits)).expect("RSA key");
        let key = open(id, &emulator_options(&proxy.url()))
            .await
            .expect("RSA key opens");
        assert_eq!(key.public_key().rsa_bits(), Some(bits as usize));
        assert_eq!(key.algorithms(), Algorithm::RSA);
        for algorithm in Algorithm::RSA {
            let hash = algorithm.hash().expect("RSA is pre-hashed");
            let digest = hash.digest(format!("RSA-{bits} {algorithm}").as_bytes());
            let signature = key
                .sign(algorithm, SigningInput::Digest(&digest))
                .await
                .unwrap_or_else(|e| panic!("RSA-{bits} {algorithm}: {e}"));
            let Signature::Rsa(rsa) = &signature else {
                panic!("RSA-{bits} {algorithm}: {signature:?}");
            };
            assert_eq!(rsa.hash(), hash);
            assert_eq!(
                rsa.as_bytes().len(),
                bits as usize / 8,
                "RSA-{bits} {algorithm}"
            );
            assert!(
                openssl_verifies(
                    dir.path(),
                    key.public_key(),
                    &["-pkeyopt", &format!("digest:{}", hash.name())],
                    &digest,
                    rsa.as_bytes(),
                )
                .await,
                "openssl rejects RSA-{bits} {algorithm}"
            );
            let sent = proxy
                .requests()
                .into_iter()
                .rev()
                .find(|r| r.operation == Some(Operation::Sign))
                .map(|r| body_json(&r.body))
                .expect("a Sign request");
            let wanted = match algorithm {
                Algorithm::RsaPkcs1Sha256 => SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
                Algorithm::RsaPkcs1Sha384 => SigningAlgorithmSpec::RsassaPkcs1V15Sha384,
                _ => SigningAlgorithmSpec::RsassaPkcs1V15Sha512,
            };
            assert_eq!(sent["SigningAlgorithm"], wanted.as_str(), "{algorithm}");
            assert_eq!(sent["MessageType"], "DIGEST", "{algorithm}");
            assert_eq!(
                sent["Message"],
                Base64::encode_string(&digest),
                "{algorithm}"
            );
        }
    }
}

/// Ed25519 signs the message itself, `MessageType=RAW`, up to KMS's 4096 bytes (which
/// `openssl` verifies). A certificate whose to-be-signed bytes are longer (hundreds of
/// long principals) is refused before any call, naming the limit; and the proxy refuses
/// such a `Sign` as KMS does, so a client without the check would fail here too.
#[tokio::test]
async fn ed25519_messages_over_4096_bytes_are_refused_before_any_call() {
    let Some(key) = faulty_key_for(
        AwsFixture::shared(),
        kmssh_core::KeySpec::Ed25519,
        Capability::CountsCalls,
    )
    .await
    else {
        return;
    };
    assert_eq!(key.key.max_message_len(), Some(4096));
    let dir = tempfile::tempdir().expect("tempdir");

    // Exactly at the limit: signed whole, as RAW.
    let message = vec![b'm'; MAX_RAW_MESSAGE_LEN];
    let signature = key
        .key
        .sign(Algorithm::Ed25519, SigningInput::Message(&message))
        .await
        .expect("4096 bytes sign");
    assert!(
        openssl_verifies(
            dir.path(),
            key.key.public_key(),
            &["-rawin"],
            &message,
            &signature.to_bytes()
        )
        .await,
        "openssl rejects the Ed25519 signature"
    );
    let proxy = key
        .guard
        .as_ref()
        .and_then(|guard| guard.downcast_ref::<FaultProxy>())
        .expect("the key's proxy");
    let sent = proxy
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.operation == Some(Operation::Sign))
        .map(|r| body_json(&r.body))
        .expect("a Sign request");
    assert_eq!(sent["SigningAlgorithm"], "ED25519_SHA_512");
    assert_eq!(sent["MessageType"], "RAW");
    assert_eq!(sent["Message"], Base64::encode_string(&message));

    // A certificate with 200 principals of 40 bytes: over 8 KB to be signed.
    let subject = parse_subject_key(SUBJECT).expect("subject key");
    let mut params = CertificateParameters::user();
    for i in 0..200 {
        params
            .principal(format!("principal-{i:03}-{}", "x".repeat(26)))
            .expect("principal");
    }
    let signs = key.faults.count(Operation::Sign);
    let err = issue(key.key.as_ref(), &subject, &params)
        .await
        .expect_err("over AWS's 4096-byte RAW limit");
    assert_eq!(
        key.faults.count(Operation::Sign),
        signs,
        "refused before any call"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let text = err.to_string();
    assert!(text.contains("4096"), "{text}");
    assert!(!text.contains("ValidationException"), "sent anyway: {text}");
    let err = key
        .key
        .sign(Algorithm::Ed25519, SigningInput::Message(&[0; 4097]))
        .await
        .expect_err("4097 bytes");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(
        key.faults.count(Operation::Sign),
        signs,
        "refused before any call"
    );
    let err = key
        .key
        .sign(Algorithm::Ed25519, SigningInput::Message(b""))
        .await
        .expect_err("KMS signs no empty message");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("1 to 4096 bytes"), "{err}");
    assert_eq!(
        key.faults.count(Operation::Sign),
        signs,
        "refused before any call"
    );
    let digest = HashAlgorithm::Sha512.digest(b"Ed25519 takes no digest");
    let err = key
        .key
        .sign(Algorithm::Ed25519, SigningInput::Digest(&digest))
        .await
        .expect_err("a digest for Ed25519");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(
        key.faults.count(Operation::Sign),
        signs,
        "refused before any call"
    );

    // A client without the checks: the proxy answers as KMS does and ministack never signs.
    let client = admin_client(&proxy.url()).await;
    let id = key.uri.strip_prefix("aws-kms:").expect("aws-kms URI");
    for (size, constraint) in [
        (MAX_MESSAGE_LEN + 1, "less than or equal to 4096"),
        (0, "greater than or equal to 1"),
    ] {
        let err = client
            .sign()
            .key_id(id)
            .message(Blob::new(vec![b'm'; size]))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::Ed25519Sha512)
            .send()
            .await
            .expect_err("KMS refuses the size");
        let err = err.into_service_error();
        assert_eq!(
            aws_sdk_kms::error::ProvideErrorMetadata::code(&err),
            Some("ValidationException"),
            "{size}: {err:?}"
        );
        assert!(format!("{err:?}").contains(constraint), "{size}: {err:?}");
    }
    assert_eq!(key.faults.count(Operation::Sign), signs + 2);
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
