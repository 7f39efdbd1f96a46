//! The conformance suite against Azure Key Vault: the in-process HTTPS emulator by
//! default, or the keys in `KMSSH_AZURE_KEYS` in a real vault, for EC P-256/384/521 and
//! RSA-2048/3072/4096 keys (Key Vault has no Ed25519 keys). Then what is Azure's own: RSA
//! keys signing RS256/RS384/RS512, refusals by name (OKP, oct, P-256K, RSA-1024, no
//! `sign` in `key_ops`), version pinning, `Retry-After`, case-insensitive names, 401/403
//! answers, the token audience of vaults and Managed HSMs (`EC-HSM`, `RSA-HSM`), and
//! every source of the credential chain against loopback stand-ins (Entra ID, IMDS, App
//! Service, Cloud Shell).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kmssh_backend_azure::{
    AUTHORITY_HOST_ENV, AccessTokenCredential, IMDS_AUTHORITY_ENV, TOKEN_CREDENTIALS_ENV,
};
use kmssh_conformance::azure::{
    AzureFixture, chain_options, closed_loopback_url, emulator_options, emulator_uri, open,
};
use kmssh_conformance::azure_emulator::{
    APP_SERVICE_SECRET, AppCredential, AzureKeyVaultEmulator, ClientCertificate, KeyKind, KeySetup,
};
use kmssh_conformance::cases::issue_test_certificate;
use kmssh_conformance::faults::{Fault, Operation};
use kmssh_conformance::fixture::{Capability, faulty_key_for};
use kmssh_core::rsa::pkcs1::EncodeRsaPublicKey as _;
use kmssh_core::{Algorithm, Curve, ErrorKind, KeySpec, KmsKey, PublicKey, SigningInput};

kmssh_conformance::conformance_suite!(kmssh_conformance::azure::AzureFixture::shared());

/// A versionless URI pins the version current at open: after a rotation the key keeps
/// signing with, and verifying against, that version.
#[tokio::test]
async fn versionless_uri_pins_the_current_version() {
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
    let name = emulator.create_key(KeySetup::signing(KeyKind::Ec(Curve::P384)));
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

/// Keys kmssh cannot sign with are refused at open with typed errors naming what is
/// wrong: the key type (an Ed25519 `OKP` JWK, which Key Vault has not; a symmetric `oct`
/// key), the curve (P-256K), the RSA size (RSA-1024), a `key_ops` without `sign`.
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
    for (kind, words) in [
        (
            KeyKind::Okp,
            &["OKP", "Azure Key Vault has no Ed25519 signing keys"][..],
        ),
        (KeyKind::Rsa(1024), &["RSA-1024", "2048 to 8192 bits"][..]),
        (KeyKind::Oct, &["oct", "symmetric"][..]),
        (KeyKind::EcP256K, &["P-256K"][..]),
    ] {
        let err = refuse(KeySetup::signing(kind)).await;
        assert_eq!(
            err.kind(),
            ErrorKind::UnsupportedAlgorithm,
            "{kind:?}: {err}"
        );
        for word in words {
            assert!(err.message().contains(word), "{kind:?}: {err}");
        }
    }
    for kind in [KeyKind::Rsa(2048), KeyKind::Ec(Curve::P256)] {
        let mut verify_only = KeySetup::signing(kind);
        verify_only.key_ops = vec!["verify", "encrypt"];
        let err = refuse(verify_only).await;
        assert_eq!(err.kind(), ErrorKind::InvalidKey, "{kind:?}: {err}");
        assert!(err.message().contains("lack `sign`"), "{kind:?}: {err}");
    }

    let mut disabled = KeySetup::signing(KeyKind::Ec(Curve::P256));
    disabled.enabled = false;
    let err = refuse(disabled).await;
    assert!(
        err.kind() == ErrorKind::InvalidKey && err.message().contains("disabled"),
        "{err}"
    );

    let mut expired = KeySetup::signing(KeyKind::Ec(Curve::P256));
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

/// Checks an RSA PKCS#1 v1.5 signature over `message` with AWS-LC, not with the
/// RustCrypto verifier the backend already ran.
fn aws_lc_verifies(key: &dyn KmsKey, algorithm: Algorithm, message: &[u8], signature: &[u8]) {
    let PublicKey::Rsa(public) = key.public_key() else {
        panic!("not an RSA key: {}", key.public_key().description());
    };
    let der = public.to_pkcs1_der().expect("PKCS#1 DER");
    let parameters = match algorithm {
        Algorithm::RsaPkcs1Sha256 => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RsaPkcs1Sha384 => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA384,
        _ => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA512,
    };
    aws_lc_rs::signature::UnparsedPublicKey::new(parameters, der.as_bytes())
        .verify(message, signature)
        .unwrap_or_else(|_| panic!("{algorithm} signature does not verify with AWS-LC"));
}

/// Key Vault RSA keys of each size sign every PKCS#1 v1.5 algorithm kmssh offers, SHA-512
/// first, each as its `RS*` (never `PS*`); the modulus-length answers verify with an
/// independent verifier, and a digest is signed as it is given.
#[tokio::test]
async fn rsa_keys_sign_rs256_rs384_and_rs512() {
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
    let message = b"kmssh signs with Key Vault RSA keys";
    for bits in KeySpec::RSA_SIZES {
        let name = emulator.create_key(KeySetup::signing(KeyKind::Rsa(bits)));
        let key = open(&emulator_uri(&name, None), &emulator_options(emulator))
            .await
            .expect("opens");
        assert_eq!(key.public_key().spec(), KeySpec::Rsa(bits));
        assert_eq!(key.algorithms(), &Algorithm::RSA[..]);
        assert_eq!(key.algorithm(), Algorithm::RsaPkcs1Sha512);
        for algorithm in Algorithm::RSA {
            let signature = key
                .sign(algorithm, SigningInput::Message(message))
                .await
                .unwrap_or_else(|e| panic!("RSA-{bits} {algorithm}: {e}"));
            assert_eq!(signature.algorithm(), algorithm);
            let bytes = signature.to_bytes();
            assert_eq!(bytes.len(), usize::try_from(bits / 8).expect("size"));
            aws_lc_verifies(key.as_ref(), algorithm, message, &bytes);

            let digest = algorithm.digest(message).expect("pre-hashed");
            let again = key
                .sign(algorithm, SigningInput::Digest(&digest))
                .await
                .expect("signs a digest");
            // PKCS#1 v1.5 is deterministic: the same digest, the same signature.
            assert_eq!(again.to_bytes(), bytes, "RSA-{bits} {algorithm}");
        }
        assert_eq!(
            emulator.signed_algorithms(&name),
            ["RS512", "RS512", "RS256", "RS256", "RS384", "RS384"],
            "RSA-{bits}"
        );
        issue_test_certificate(key.as_ref())
            .await
            .expect("an RSA CA issues a certificate");
        assert_eq!(
            emulator.signed_algorithms(&name).last().map(String::as_str),
            Some("RS512")
        );

        let err = key
            .sign(Algorithm::EcdsaP256Sha256, SigningInput::Message(message))
            .await
            .expect_err("not an EC key");
        assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm, "{err}");
        let err = key
            .sign(Algorithm::Ed25519, SigningInput::Message(message))
            .await
            .expect_err("Key Vault has no Ed25519");
        assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm, "{err}");
    }
}

/// A Managed HSM's keys are `RSA-HSM` and `EC-HSM`: both open and sign.
#[tokio::test]
async fn managed_hsm_rsa_hsm_and_ec_hsm_keys_sign() {
    if AzureFixture::shared().emulator().is_none() {
        return;
    }
    let hsm = AzureKeyVaultEmulator::start_managed_hsm();
    assert!(hsm.is_managed_hsm());
    for kind in [KeyKind::Rsa(3072), KeyKind::Ec(Curve::P256)] {
        let name = hsm.create_key(KeySetup::signing(kind));
        let uri = format!("azure-kv:https://kmssh-test.managedhsm.azure.net/keys/{name}");
        let key = open(&uri, &emulator_options(&hsm)).await.expect("opens");
        issue_test_certificate(key.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    }
    let name = hsm.create_key(KeySetup::signing(KeyKind::Oct));
    let uri = format!("azure-kv:https://kmssh-test.managedhsm.azure.net/keys/{name}");
    let err = open(&uri, &emulator_options(&hsm))
        .await
        .expect_err("symmetric");
    assert!(err.message().contains("oct-HSM"), "{err}");
}

/// Keys made through the SDK's `create key` (`kty` RSA, `key_size` 2048/3072/4096) open
/// and sign; Key Vault refuses other sizes with its own words.
#[tokio::test]
async fn keys_created_through_the_sdk_sign() {
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
    let options = emulator_options(emulator);
    let uri = |name: &str| emulator_uri(name, None);
    let client = options
        .client(&kmssh_core::KeyUri::parse(&uri("any")).expect("uri"))
        .expect("client");
    for (name, body, spec) in [
        (
            "sdk-rsa-3072",
            r#"{"kty":"RSA","key_size":3072,"key_ops":["sign","verify"]}"#,
            KeySpec::Rsa(3072),
        ),
        ("sdk-rsa-default", r#"{"kty":"RSA"}"#, KeySpec::Rsa(2048)),
        (
            "sdk-ec-p384",
            r#"{"kty":"EC","crv":"P-384","key_ops":["sign"]}"#,
            KeySpec::Ecdsa(Curve::P384),
        ),
    ] {
        let created = client
            .create_key(
                name,
                azure_core::Bytes::from_static(body.as_bytes()).into(),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .into_model()
            .expect("a key bundle");
        let kid = created.key.and_then(|jwk| jwk.kid).unwrap_or_default();
        assert!(kid.contains(&format!("/keys/{name}/")), "{kid}");
        let key = open(&uri(name), &options).await.expect("opens");
        assert_eq!(key.public_key().spec(), spec, "{name}");
        issue_test_certificate(key.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let err = client
        .create_key(
            "sdk-rsa-1024",
            azure_core::Bytes::from_static(br#"{"kty":"RSA","key_size":1024}"#).into(),
            None,
        )
        .await
        .expect_err("Key Vault makes no RSA-1024 keys");
    assert!(
        err.to_string().contains("Unsupported key size (1024)")
            || format!("{err:?}").contains("Unsupported key size (1024)"),
        "{err:?}"
    );
}

/// An RSA answer one byte short is refused naming the modulus length.
#[tokio::test]
async fn short_rsa_signature_names_the_modulus_length() {
    let Some(key) = faulty_key_for(
        AzureFixture::shared(),
        KeySpec::Rsa(2048),
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
    assert!(
        err.to_string().contains("255-byte") && err.to_string().contains("256 bytes"),
        "{err}"
    );
}

/// Key Vault's 429 carries `Retry-After`, and it is waited out.
#[tokio::test]
async fn throttling_with_retry_after_is_waited_out() {
    let Some(key) = faulty_key_for(
        AzureFixture::shared(),
        KeySpec::Ecdsa(Curve::P256),
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
        KeySpec::Ecdsa(Curve::P521),
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

/// Key Vault names and versions compare case-insensitively: a URI spelling the name
/// `KEY-7` reaches the key stored as `key-7`, and its signatures, whose `kid` names the
/// stored spelling, are accepted.
#[tokio::test]
async fn key_names_compare_case_insensitively() {
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
    let name = emulator.create_key(KeySetup::signing(KeyKind::Ec(Curve::P256)));
    let version = emulator.versions(&name)[0].to_uppercase();
    let shouted = name.to_uppercase();
    assert_ne!(shouted, name);
    for uri in [
        emulator_uri(&shouted, None),
        emulator_uri(&shouted, Some(&version)),
    ] {
        let key = open(&uri, &emulator_options(emulator))
            .await
            .unwrap_or_else(|e| panic!("{uri}: {e}"));
        issue_test_certificate(key.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{uri} signs: {e}"));
    }
}

/// A 403 keeps Key Vault's code and message: a firewall block, a key disabled or expired
/// after open, and only a real access-policy denial says the identity lacks keys/sign.
/// None of them is retried.
#[tokio::test]
async fn forbidden_answers_keep_key_vaults_reason() {
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
    let options = emulator_options(emulator);
    let opened = async || {
        let name = emulator.create_key(KeySetup::signing(KeyKind::Ec(Curve::P256)));
        let key = open(&emulator_uri(&name, None), &options)
            .await
            .expect("opens");
        (name, key)
    };

    let (name, key) = opened().await;
    assert!(emulator.set_firewalled(&name, true));
    let started = Instant::now();
    let err = issue_test_certificate(key.as_ref())
        .await
        .expect_err("firewall");
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{text}");
    assert!(text.contains("ForbiddenByFirewall"), "{text}");
    assert!(text.contains("Client address is not authorized"), "{text}");
    assert!(
        text.contains("firewall") && !text.contains("keys/sign"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "not retried");
    let err = open(&emulator_uri(&name, None), &options)
        .await
        .expect_err("firewall at open");
    assert!(err.to_string().contains("ForbiddenByFirewall"), "{err}");

    let (name, key) = opened().await;
    assert!(emulator.set_enabled(&name, false));
    let err = issue_test_certificate(key.as_ref())
        .await
        .expect_err("disabled");
    assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
    assert!(
        err.to_string().contains("KeyDisabled") && !err.to_string().contains("keys/sign"),
        "{err}"
    );

    let (name, key) = opened().await;
    assert!(emulator.set_expires(&name, Some(1_600_000_000)));
    let err = issue_test_certificate(key.as_ref())
        .await
        .expect_err("expired");
    assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
    assert!(err.to_string().contains("expired key"), "{err}");

    let (name, key) = opened().await;
    emulator
        .faults(&name)
        .expect("faults")
        .inject(Operation::Sign, Fault::Denied, 1);
    let err = issue_test_certificate(key.as_ref())
        .await
        .expect_err("no keys/sign");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("keys/sign") && text.contains("AccessDenied"),
        "{text}"
    );
    assert!(text.contains("Key Vault Crypto User"), "{text}");
}

/// A token the vault refuses (401) is a credential problem, not a permission one, and is
/// not retried.
#[tokio::test]
async fn a_refused_token_is_unauthenticated() {
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
    let name = emulator.create_key(KeySetup::signing(KeyKind::Ec(Curve::P256)));
    let mut options = emulator_options(emulator);
    options.credential = Some(Arc::new(AccessTokenCredential::new("expired-token")));
    let err = open(&emulator_uri(&name, None), &options)
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(!err.is_temporary(), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
}

/// A Managed HSM key asks for a Managed HSM token (the HSM's challenge names
/// `https://managedhsm.azure.net`), and a challenge for another audience (a vault's, at an
/// endpoint that is not the HSM) gets no token at all.
#[tokio::test]
async fn the_token_audience_follows_the_key_host() {
    if AzureFixture::shared().emulator().is_none() {
        return;
    }
    let hsm = AzureKeyVaultEmulator::start_managed_hsm();
    let identity = hsm.start_managed_identity(true, &[]);
    let name = hsm.create_key(KeySetup::signing(KeyKind::Ec(Curve::P384)));
    let options = chain_options(
        &hsm,
        &[
            (IMDS_AUTHORITY_ENV, identity.imds_url()),
            (TOKEN_CREDENTIALS_ENV, "prod".into()),
        ],
    );
    let uri = format!("azure-kv:https://kmssh-test.managedhsm.azure.net/keys/{name}");
    let key = open(&uri, &options).await.expect("opens");
    issue_test_certificate(key.as_ref()).await.expect("signs");
    let asked: Vec<String> = identity
        .requests()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.params["resource"].clone())
        .collect();
    assert_eq!(asked, ["https://managedhsm.azure.net"]);

    let vault = AzureKeyVaultEmulator::shared();
    let identity = vault.start_managed_identity(true, &[]);
    let name = vault.create_key(KeySetup::signing(KeyKind::Ec(Curve::P256)));
    let options = chain_options(
        vault,
        &[
            (IMDS_AUTHORITY_ENV, identity.imds_url()),
            (TOKEN_CREDENTIALS_ENV, "prod".into()),
        ],
    );
    let uri = format!("azure-kv:https://kmssh-test.managedhsm.azure.net/keys/{name}");
    let err = open(&uri, &options).await.expect_err("another audience");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("https://vault.azure.net") && text.contains("https://managedhsm.azure.net"),
        "{text}"
    );
    assert!(identity.requests().is_empty(), "no token was asked for");
}

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// What every in-process chain test sets: the Entra ID stand-in as authority, no IMDS,
/// and no developer tools (they would run this machine's `az`).
fn base_env(emulator: &AzureKeyVaultEmulator) -> Vec<(&'static str, String)> {
    vec![
        (AUTHORITY_HOST_ENV, emulator.url()),
        (IMDS_AUTHORITY_ENV, closed_loopback_url()),
        (TOKEN_CREDENTIALS_ENV, "prod".into()),
    ]
}

async fn signs_with(
    emulator: &AzureKeyVaultEmulator,
    env: &[(&str, String)],
) -> kmssh_core::Result<()> {
    let name = emulator.create_key(KeySetup::signing(KeyKind::Ec(Curve::P256)));
    let key = open(&emulator_uri(&name, None), &chain_options(emulator, env)).await?;
    issue_test_certificate(key.as_ref())
        .await
        .map(|_| ())
        .map_err(|e| kmssh_core::Error::new(e.kind(), e.to_string()))
}

/// The environment's client secret is used first (before a managed identity that is also
/// there); a refused secret ends the chain at once as unauthenticated, naming Entra ID's
/// reason.
#[tokio::test]
async fn client_secret_from_the_environment() {
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
    emulator.register_app(TENANT, "secret-app", AppCredential::Secret("s3cret".into()));
    let identity = emulator.start_managed_identity(true, &[]);
    let mut env = base_env(emulator);
    env.retain(|(k, _)| *k != IMDS_AUTHORITY_ENV);
    env.extend([
        (IMDS_AUTHORITY_ENV, identity.imds_url()),
        ("AZURE_TENANT_ID", TENANT.into()),
        ("AZURE_CLIENT_ID", "secret-app".into()),
        ("AZURE_CLIENT_SECRET", "s3cret".into()),
    ]);
    signs_with(emulator, &env).await.expect("signs");
    let requests = emulator.token_requests("secret-app");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].granted && requests[0].proof == "secret");
    assert_eq!(requests[0].scope, "https://vault.azure.net/.default");
    assert!(
        identity.requests().is_empty(),
        "the environment comes first"
    );

    for (k, v) in &mut env {
        if *k == "AZURE_CLIENT_SECRET" {
            *v = "wrong".into();
        }
    }
    let started = Instant::now();
    let err = signs_with(emulator, &env).await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.to_string().contains("AADSTS7000215"), "{err}");
    assert!(
        err.to_string().contains("environment (client secret)"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "not retried");
    assert!(identity.requests().is_empty(), "a refusal ends the chain");
}

/// `AZURE_CLIENT_CERTIFICATE_PATH`: a PEM file (plain or encrypted key) or a PFX file
/// (AES or 3DES), signed assertions checked by the stand-in against the registered
/// certificate; a certificate Entra ID does not know is refused.
#[tokio::test]
async fn client_certificate_pem_and_pfx() {
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
    let certificate = ClientCertificate::generate("kmssh test app");
    emulator.register_app(
        TENANT,
        "certificate-app",
        AppCredential::Certificate(certificate.clone()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("cert.pem"), &certificate.cert_pem).expect("write");
    std::fs::write(path("key.pem"), &certificate.key_pem).expect("write");
    std::fs::write(
        path("both.pem"),
        format!("{}{}", certificate.key_pem, certificate.cert_pem),
    )
    .expect("write");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (cert, key) = (path("cert.pem"), path("key.pem"));
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        &cert,
        "-inkey",
        &key,
        "-out",
        &path("aes.pfx"),
        "-passout",
        "pass:pfx-pass",
    ]);
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        &cert,
        "-inkey",
        &key,
        "-out",
        &path("3des.pfx"),
        "-passout",
        "pass:pfx-pass",
        "-certpbe",
        "PBE-SHA1-3DES",
        "-keypbe",
        "PBE-SHA1-3DES",
        "-macalg",
        "sha1",
    ]);
    openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        &key,
        "-out",
        &path("encrypted-key.pem"),
        "-passout",
        "pass:pem-pass",
    ]);
    let encrypted = std::fs::read_to_string(path("encrypted-key.pem")).expect("read");
    std::fs::write(
        path("encrypted.pem"),
        format!("{}{encrypted}", certificate.cert_pem),
    )
    .expect("write");

    let files = [
        ("both.pem", None),
        ("aes.pfx", Some("pfx-pass")),
        ("3des.pfx", Some("pfx-pass")),
        ("encrypted.pem", Some("pem-pass")),
    ];
    for (file, password) in files {
        let mut env = base_env(emulator);
        env.extend([
            ("AZURE_TENANT_ID", TENANT.into()),
            ("AZURE_CLIENT_ID", "certificate-app".into()),
            ("AZURE_CLIENT_CERTIFICATE_PATH", path(file)),
        ]);
        if let Some(password) = password {
            env.push(("AZURE_CLIENT_CERTIFICATE_PASSWORD", password.into()));
        }
        signs_with(emulator, &env)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let requests = emulator.token_requests("certificate-app");
    assert_eq!(requests.len(), files.len(), "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.granted && r.proof == "certificate")
    );

    let stranger = ClientCertificate::generate("not registered");
    std::fs::write(
        path("stranger.pem"),
        format!("{}{}", stranger.cert_pem, stranger.key_pem),
    )
    .expect("write");
    let mut env = base_env(emulator);
    env.extend([
        ("AZURE_TENANT_ID", TENANT.into()),
        ("AZURE_CLIENT_ID", "certificate-app".into()),
        ("AZURE_CLIENT_CERTIFICATE_PATH", path("stranger.pem")),
    ]);
    let err = signs_with(emulator, &env)
        .await
        .expect_err("unknown certificate");
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.to_string().contains("AADSTS700027"), "{err}");

    // A key that is not the certificate's is refused before anything is sent.
    std::fs::write(
        path("mismatched.pem"),
        format!("{}{}", certificate.cert_pem, stranger.key_pem),
    )
    .expect("write");
    env.retain(|(k, _)| *k != "AZURE_CLIENT_CERTIFICATE_PATH");
    env.push(("AZURE_CLIENT_CERTIFICATE_PATH", path("mismatched.pem")));
    let options =
        kmssh_backend_azure::CredentialChain::with_lookup(&emulator_options(emulator), &|name| {
            env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
        })
        .expect_err("mismatched key");
    assert_eq!(options.kind(), ErrorKind::Config, "{options}");
}

/// Workload identity: the federated token file is the client assertion.
#[tokio::test]
async fn workload_identity_token_file() {
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a21zc2gifQ.c2ln";
    emulator.register_app(
        TENANT,
        "workload-app",
        AppCredential::Federated(token.into()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, token).expect("write");
    let mut env = base_env(emulator);
    env.extend([
        ("AZURE_TENANT_ID", TENANT.into()),
        ("AZURE_CLIENT_ID", "workload-app".into()),
        ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
    ]);
    signs_with(emulator, &env).await.expect("signs");
    let requests = emulator.token_requests("workload-app");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].granted && requests[0].proof == "federated");
}

/// Managed identity through IMDS (moved to a loopback stand-in): probed once without the
/// `Metadata` header, then asked; `AZURE_CLIENT_ID` chooses a user-assigned identity, and
/// one the machine does not have is reported, not retried.
#[tokio::test]
async fn managed_identity_through_imds() {
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
    let identity = emulator.start_managed_identity(true, &["user-assigned-id"]);
    let env = |client_id: Option<&str>| {
        let mut env = base_env(emulator);
        env.retain(|(k, _)| *k != IMDS_AUTHORITY_ENV);
        env.push((IMDS_AUTHORITY_ENV, identity.imds_url()));
        env.extend(client_id.map(|id| ("AZURE_CLIENT_ID", id.to_owned())));
        env
    };
    signs_with(emulator, &env(None))
        .await
        .expect("system-assigned");
    let requests = identity.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        !requests[0].metadata && requests[0].status == 400,
        "the probe"
    );
    assert!(requests[1].metadata && requests[1].status == 200);
    assert_eq!(requests[1].params["api-version"], "2018-02-01");
    assert_eq!(requests[1].params["resource"], "https://vault.azure.net");
    assert!(!requests[1].params.contains_key("client_id"));

    signs_with(emulator, &env(Some("user-assigned-id")))
        .await
        .expect("user-assigned");
    let last = identity.requests().pop().expect("asked");
    assert_eq!(
        last.params.get("client_id").map(String::as_str),
        Some("user-assigned-id")
    );

    let err = signs_with(emulator, &env(Some("someone-else")))
        .await
        .expect_err("no such identity");
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("client id someone-else") && text.contains("Identity not found"),
        "{text}"
    );
    assert!(text.contains("environment: AZURE_TENANT_ID"), "{text}");
}

/// Managed identity on App Service / Container Apps (`IDENTITY_ENDPOINT` +
/// `IDENTITY_HEADER`) and in Cloud Shell (`MSI_ENDPOINT`).
#[tokio::test]
async fn managed_identity_on_app_service_and_cloud_shell() {
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
    let identity = emulator.start_managed_identity(true, &[]);
    let mut env = base_env(emulator);
    env.extend([
        ("IDENTITY_ENDPOINT", identity.app_service_endpoint()),
        ("IDENTITY_HEADER", APP_SERVICE_SECRET.into()),
    ]);
    signs_with(emulator, &env).await.expect("App Service");
    let requests = identity.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/msi/token");
    assert_eq!(
        requests[0].identity_header.as_deref(),
        Some(APP_SERVICE_SECRET)
    );
    assert_eq!(requests[0].params["api-version"], "2019-08-01");

    let mut env = base_env(emulator);
    env.push(("MSI_ENDPOINT", identity.cloud_shell_endpoint()));
    signs_with(emulator, &env).await.expect("Cloud Shell");
    let last = identity.requests().pop().expect("asked");
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("POST", "/cloudshell/token")
    );
    assert_eq!(last.params["resource"], "https://vault.azure.net");
}

/// With nothing configured, the chain fails quickly as unauthenticated, naming each
/// source; an IMDS address that accepts connections but never answers costs the probe's
/// second, not the call timeout.
#[tokio::test]
async fn no_credentials_fail_quickly_naming_the_sources() {
    let Some(emulator) = AzureFixture::shared().emulator() else {
        return;
    };
    let started = Instant::now();
    let err = signs_with(emulator, &base_env(emulator))
        .await
        .expect_err("no credentials");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    let text = err.to_string();
    for source in [
        "environment: ",
        "workload identity: ",
        "managed identity (IMDS at http://127.0.0.1:",
    ] {
        assert!(text.contains(source), "{source}: {text}");
    }

    // A silent IMDS: connections are accepted and held, never answered (10 s at most).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = silent.local_addr().expect("address");
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                accepted = silent.accept() => match accepted {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => break,
                },
            }
        }
    });
    let mut env = base_env(emulator);
    env.retain(|(k, _)| *k != IMDS_AUTHORITY_ENV);
    env.push((IMDS_AUTHORITY_ENV, format!("http://{address}")));
    let started = Instant::now();
    let err = signs_with(emulator, &env).await.expect_err("silent IMDS");
    let elapsed = started.elapsed();
    holder.abort();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.to_string().contains("within 1s"), "{err}");
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
}
