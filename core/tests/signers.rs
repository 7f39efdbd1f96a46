//! The verification wrapper, the registry and the RustCrypto bridges, driven by a
//! software key that signs in-process (the cloud backends are tested against emulators).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kmssh_core::{
    Algorithm, BackendOptions, EcPublicKey, EcdsaSignature, ErrorKind, HashAlgorithm, KeyUri,
    KmsKey, KmsSigner, Options, PublicKey, RawSigner, Signature, SigningInput, SigningPayload,
    VerifiedSigner, async_trait,
};
use p256::elliptic_curve::Generate;
use signature::AsyncSigner;
use signature::hazmat::{PrehashSigner, PrehashVerifier};

/// A P-256 key signing in-process; `corrupt` makes it answer with another key's signature,
/// as a misbehaving KMS would.
#[derive(Debug)]
struct SoftKey {
    uri: KeyUri,
    signing: p256::ecdsa::SigningKey,
    public: PublicKey,
    corrupt: AtomicBool,
}

impl SoftKey {
    fn new(uri: &str) -> Self {
        let signing =
            p256::ecdsa::SigningKey::try_generate_from_rng(&mut getrandom::SysRng).expect("rng");
        let public = PublicKey::Ecdsa(EcPublicKey::P256(*signing.verifying_key()));
        Self {
            uri: KeyUri::parse(uri).expect("test URI"),
            signing,
            public,
            corrupt: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl RawSigner for SoftKey {
    fn uri(&self) -> &KeyUri {
        &self.uri
    }
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    async fn sign_unverified(&self, payload: &SigningPayload<'_>) -> kmssh_core::Result<Signature> {
        let digest = payload.as_bytes();
        let signer = if self.corrupt.load(Ordering::Relaxed) {
            p256::ecdsa::SigningKey::try_generate_from_rng(&mut getrandom::SysRng).expect("rng")
        } else {
            self.signing.clone()
        };
        let signature: p256::ecdsa::Signature = signer.sign_prehash(digest).expect("sign");
        Ok(EcdsaSignature::from(signature).into())
    }
}

/// An Ed25519 key signing in-process behind a provider-style message limit, counting the
/// calls that reach it.
#[derive(Debug)]
struct SoftEd25519 {
    uri: KeyUri,
    signing: ed25519_dalek::SigningKey,
    public: PublicKey,
    calls: AtomicUsize,
}

impl SoftEd25519 {
    fn new() -> Self {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let public =
            PublicKey::ed25519(signing.verifying_key().as_bytes()).expect("valid Ed25519 key");
        Self {
            uri: KeyUri::parse("soft-test:ed").expect("test URI"),
            signing,
            public,
            calls: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl RawSigner for SoftEd25519 {
    fn uri(&self) -> &KeyUri {
        &self.uri
    }
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    fn max_message_len(&self) -> Option<usize> {
        Some(4096)
    }
    async fn sign_unverified(&self, payload: &SigningPayload<'_>) -> kmssh_core::Result<Signature> {
        use ed25519_dalek::Signer as _;
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(self.signing.sign(payload.as_bytes()).into())
    }
}

/// The soft backend's options: whether its keys answer with bad signatures.
#[derive(Clone, Debug, Default)]
struct SoftOptions {
    corrupt: bool,
}

impl BackendOptions for SoftOptions {
    fn from_env() -> kmssh_core::Result<Self> {
        Ok(Self {
            corrupt: std::env::var_os("SOFT_TEST_CORRUPT").is_some(),
        })
    }
}

async fn open_soft(
    uri: &KeyUri,
    options: &SoftOptions,
) -> kmssh_core::Result<VerifiedSigner<SoftKey>> {
    let key = SoftKey::new(uri.as_str());
    key.corrupt.store(options.corrupt, Ordering::Relaxed);
    Ok(VerifiedSigner::new(key))
}

kmssh_core::register_backend! {
    scheme: "soft-test",
    description: "in-process P-256 key for core's tests",
    options: SoftOptions,
    open: open_soft,
}

/// Options given in code reach the backend through the registry; without them it reads
/// its environment.
#[tokio::test]
async fn registry_hands_options_to_the_backend() {
    let digest = HashAlgorithm::Sha256.digest(b"options");
    let plain = kmssh_core::open("soft-test:plain").await.expect("opens");
    plain.sign_digest(&digest).await.expect("signs");
    let corrupt = kmssh_core::open_with(
        "soft-test:corrupt",
        &Options::new().with(SoftOptions { corrupt: true }),
    )
    .await
    .expect("opens");
    let err = corrupt.sign_digest(&digest).await.expect_err("corrupt");
    assert_eq!(err.kind(), ErrorKind::BadSignature);
}

#[tokio::test]
async fn verified_signer_passes_good_signatures_and_stops_bad_ones() {
    let key = VerifiedSigner::new(SoftKey::new("soft-test:a"));
    let digest = HashAlgorithm::Sha256.digest(b"hello");
    let good = key.sign_digest(&digest).await.expect("good signature");
    key.public_key()
        .verify(Algorithm::EcdsaP256Sha256, &digest, &good)
        .expect("verifies");
    let err = key
        .sign(Algorithm::RsaPkcs1Sha256, SigningInput::Digest(&digest))
        .await
        .expect_err("a P-256 key does not sign RSA");
    assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm);

    key.inner().corrupt.store(true, Ordering::Relaxed);
    let err = key.sign_digest(&digest).await.expect_err("must not pass");
    assert_eq!(err.kind(), ErrorKind::BadSignature);
    assert_eq!(err.context("uri"), Some("soft-test:a"));

    let err = key
        .sign_digest(&digest[..20])
        .await
        .expect_err("short digest");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn ed25519_signs_messages_within_the_limit_and_refuses_before_the_call() {
    let key = VerifiedSigner::new(SoftEd25519::new());
    assert_eq!(key.algorithm(), Algorithm::Ed25519);
    let message = vec![1u8; 4096];
    let signature = key.sign_message(&message).await.expect("4096 bytes sign");
    key.public_key()
        .verify(Algorithm::Ed25519, &message, &signature)
        .expect("verifies over the message itself");
    assert_eq!(key.inner().calls.load(Ordering::Relaxed), 1);

    let err = key
        .sign_message(&[1u8; 4097])
        .await
        .expect_err("over the limit");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("4096 bytes"), "{err}");
    let err = key
        .sign_digest(&[0u8; 64])
        .await
        .expect_err("Ed25519 takes no digest");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(key.inner().calls.load(Ordering::Relaxed), 1, "no call made");
}

#[tokio::test]
async fn registry_opens_registered_schemes_and_names_missing_features() {
    let key = kmssh_core::open("soft-test:b").await.expect("registered");
    assert_eq!(key.uri().as_str(), "soft-test:b");
    assert!(
        kmssh_core::backends()
            .iter()
            .any(|b| b.scheme == "soft-test")
    );

    let err = kmssh_core::open("aws-kms:alias/ca")
        .await
        .expect_err("aws not linked here");
    assert_eq!(err.kind(), ErrorKind::BackendNotCompiled);
    assert!(
        err.message().contains("enable Cargo feature `aws`"),
        "{err}"
    );

    let err = kmssh_core::open("nosuch:thing")
        .await
        .expect_err("unknown scheme");
    assert_eq!(err.kind(), ErrorKind::InvalidUri);
    assert!(err.message().contains("`gcp-kms:`"), "{err}");
}

#[tokio::test]
async fn async_signer_hashes_locally_and_narrows_to_the_curve() {
    let key: Arc<dyn KmsKey> = Arc::new(VerifiedSigner::new(SoftKey::new("soft-test:c")));
    let signer = KmsSigner::new(key.clone());
    let message = vec![7u8; 10_000];

    let any: EcdsaSignature = AsyncSigner::<EcdsaSignature>::sign_async(&signer, &message)
        .await
        .expect("sign");
    let digest = HashAlgorithm::Sha256.digest(&message);
    key.public_key()
        .verify(Algorithm::EcdsaP256Sha256, &digest, &any.into())
        .expect("verifies");

    let typed = AsyncSigner::<p256::ecdsa::Signature>::sign_async(&signer, &message)
        .await
        .expect("P-256");
    let Some(EcPublicKey::P256(vk)) = key.public_key().as_ecdsa() else {
        panic!("P-256 key")
    };
    vk.verify_prehash(&digest, &typed).expect("typed verifies");

    let wrong = AsyncSigner::<p384::ecdsa::Signature>::sign_async(&signer, &message).await;
    let err = wrong.expect_err("P-384 from a P-256 key");
    assert!(
        err.to_string().contains("P-384") || format!("{err:?}").contains("P-384"),
        "{err:?}"
    );
}

#[cfg(feature = "blocking")]
mod blocking {
    use super::*;
    use kmssh_core::BlockingSigner;
    use signature::{Keypair, Signer};

    #[test]
    fn blocking_signer_works_outside_a_runtime() {
        let signer = BlockingSigner::open("soft-test:d").expect("open without a runtime");
        let signature: Signature = signer.try_sign(b"message").expect("sign");
        let digest = HashAlgorithm::Sha256.digest(b"message");
        signer
            .verifying_key()
            .verify(Algorithm::EcdsaP256Sha256, &digest, &signature)
            .expect("verifies");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn blocking_signer_refuses_inside_a_runtime_instead_of_deadlocking() {
        let key = kmssh_core::open("soft-test:e").await.expect("open");
        let err = BlockingSigner::new(key).expect_err("inside a runtime");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("async runtime"), "{err}");
    }

    #[test]
    fn blocking_signer_refuses_when_moved_into_a_runtime() {
        let signer = BlockingSigner::open("soft-test:f").expect("open");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let result: Result<EcdsaSignature, _> = runtime.block_on(async { signer.try_sign(b"x") });
        assert!(format!("{:?}", result.expect_err("refused")).contains("async runtime"));
        drop(signer);
    }
}
