//! The verification wrapper, the registry and the RustCrypto bridges, driven by a
//! software key that signs in-process (the cloud backends are tested against emulators).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kmssh_core::{
    Algorithm, BackendOptions, EcPublicKey, EcdsaSignature, ErrorKind, KeyUri, KmsKey, KmsSigner,
    Options, RawSigner, VerifiedSigner, async_trait,
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
    public: EcPublicKey,
    corrupt: AtomicBool,
}

impl SoftKey {
    fn new(uri: &str) -> Self {
        let signing =
            p256::ecdsa::SigningKey::try_generate_from_rng(&mut getrandom::SysRng).expect("rng");
        let public = EcPublicKey::P256(*signing.verifying_key());
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
    fn public_key(&self) -> &EcPublicKey {
        &self.public
    }
    async fn sign_digest_unverified(&self, digest: &[u8]) -> kmssh_core::Result<EcdsaSignature> {
        let signer = if self.corrupt.load(Ordering::Relaxed) {
            p256::ecdsa::SigningKey::try_generate_from_rng(&mut getrandom::SysRng).expect("rng")
        } else {
            self.signing.clone()
        };
        let signature: p256::ecdsa::Signature = signer.sign_prehash(digest).expect("sign");
        Ok(signature.into())
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
    let digest = Algorithm::EcdsaP256Sha256.digest(b"options");
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
    let digest = Algorithm::EcdsaP256Sha256.digest(b"hello");
    let good = key.sign_digest(&digest).await.expect("good signature");
    key.public_key()
        .verify_digest(&digest, &good)
        .expect("verifies");

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
    let digest = Algorithm::EcdsaP256Sha256.digest(&message);
    key.public_key()
        .verify_digest(&digest, &any)
        .expect("verifies");

    let typed = AsyncSigner::<p256::ecdsa::Signature>::sign_async(&signer, &message)
        .await
        .expect("P-256");
    let EcPublicKey::P256(vk) = key.public_key() else {
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
        let signature: EcdsaSignature = signer.try_sign(b"message").expect("sign");
        let digest = Algorithm::EcdsaP256Sha256.digest(b"message");
        signer
            .verifying_key()
            .verify_digest(&digest, &signature)
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
