//! What several test files share: the key types every product is checked with, and a
//! provider-like signer over a local key.
// Each test file uses some of these.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use kmssh_backend_local::{LocalKey, LocalOptions};
use kmssh_core::{
    Algorithm, Curve, KeyFamily, KeySpec, KeyUri, KmsKey as _, PublicKey, RawSigner, Signature,
    SigningInput, SigningPayload, VerifiedSigner,
};

/// The CA key types: the three curves, RSA-2048 and RSA-4096, Ed25519.
pub const SPECS: [KeySpec; 6] = [
    KeySpec::Ecdsa(Curve::P256),
    KeySpec::Ecdsa(Curve::P384),
    KeySpec::Ecdsa(Curve::P521),
    KeySpec::Rsa(2048),
    KeySpec::Rsa(4096),
    KeySpec::Ed25519,
];

/// A new in-memory key (RSA from AWS-LC's generator: RSA-4096 in well under a second).
pub fn key(spec: KeySpec) -> LocalKey {
    LocalKey::generate(spec, LocalOptions::default()).expect("local key")
}

/// How `ssh-keygen -l` and `-L` name a key type.
pub fn ssh_keygen_label(spec: KeySpec) -> &'static str {
    match spec.family() {
        KeyFamily::Ecdsa => "ECDSA",
        KeyFamily::Rsa => "RSA",
        KeyFamily::Ed25519 => "ED25519",
    }
}

/// A local key behind [`VerifiedSigner`], as a cloud key is: the provider may bind it to
/// fewer algorithms than its type allows (a Cloud KMS RSA key signs one hash) and limit
/// the messages it signs (AWS signs at most 4096 bytes of Ed25519 message). Counts the
/// calls that reach it, so a test can tell a refusal happened before any signing.
#[derive(Debug)]
pub struct Provider {
    inner: LocalKey,
    algorithms: Vec<Algorithm>,
    max_message_len: Option<usize>,
    calls: AtomicUsize,
}

impl Provider {
    /// `inner` bound to `algorithms` (its first the default) and `max_message_len`.
    pub fn new(
        inner: LocalKey,
        algorithms: &[Algorithm],
        max_message_len: Option<usize>,
    ) -> VerifiedSigner<Self> {
        VerifiedSigner::new(Self {
            inner,
            algorithms: algorithms.to_vec(),
            max_message_len,
            calls: AtomicUsize::new(0),
        })
    }

    /// A provider key that signs everything its type allows.
    pub fn unbound(inner: LocalKey) -> VerifiedSigner<Self> {
        let algorithms = inner.public_key().algorithms().to_vec();
        Self::new(inner, &algorithms, None)
    }

    /// How many signatures were asked of the provider.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[kmssh_core::async_trait]
impl RawSigner for Provider {
    fn uri(&self) -> &KeyUri {
        self.inner.uri()
    }

    fn public_key(&self) -> &PublicKey {
        self.inner.public_key()
    }

    fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    fn max_message_len(&self) -> Option<usize> {
        self.max_message_len
    }

    async fn sign_unverified(&self, payload: &SigningPayload<'_>) -> kmssh_core::Result<Signature> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let input = if payload.algorithm().is_prehashed() {
            SigningInput::Digest(payload.as_bytes())
        } else {
            SigningInput::Message(payload.as_bytes())
        };
        self.inner.sign_sync(payload.algorithm(), input)
    }
}
