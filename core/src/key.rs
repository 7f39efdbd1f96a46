//! The `KmsKey` trait every backend provides, and the verification wrapper that every
//! signature crossing a process boundary goes through.

use std::borrow::Cow;
use std::fmt;

use async_trait::async_trait;

use crate::{Algorithm, Error, ErrorKind, KeyUri, PublicKey, Result, Signature};

/// What a caller hands a key to sign.
#[derive(Clone, Copy, Debug)]
pub enum SigningInput<'a> {
    /// The message itself: hashed here for pre-hashed algorithms, sent as is for Ed25519.
    Message(&'a [u8]),
    /// A digest already computed with the algorithm's hash (a streamed file). Refused for
    /// Ed25519, which signs messages.
    Digest(&'a [u8]),
}

/// The bytes a provider signs for one algorithm: the digest for pre-hashed algorithms,
/// the message for Ed25519. Built by [`SigningPayload::new`], which checks it.
#[derive(Clone, Debug)]
pub struct SigningPayload<'a> {
    algorithm: Algorithm,
    bytes: Cow<'a, [u8]>,
}

impl<'a> SigningPayload<'a> {
    /// Turns an input into what `algorithm` signs: hashes a message for pre-hashed
    /// algorithms, checks a digest's length, refuses a digest for Ed25519.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a digest of the wrong length or a digest for
    /// Ed25519.
    pub fn new(algorithm: Algorithm, input: SigningInput<'a>) -> Result<Self> {
        let bytes = match (input, algorithm.hash()) {
            (SigningInput::Message(message), Some(hash)) => {
                Cow::Owned(hash.digest(message).to_vec())
            }
            (SigningInput::Message(message), None) => Cow::Borrowed(message),
            (SigningInput::Digest(digest), _) => {
                algorithm.check_digest(digest)?;
                Cow::Borrowed(digest)
            }
        };
        Ok(Self { algorithm, bytes })
    }

    /// The algorithm it is for.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The digest (pre-hashed algorithms) or message (Ed25519).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Refuses an algorithm the key cannot sign with, naming those it can.
///
/// # Errors
/// [`ErrorKind::UnsupportedAlgorithm`].
pub fn check_algorithm(key: &dyn KmsKey, algorithm: Algorithm) -> Result<()> {
    if key.algorithms().contains(&algorithm) {
        return Ok(());
    }
    let offered: Vec<String> = key.algorithms().iter().map(ToString::to_string).collect();
    Err(Error::new(
        ErrorKind::UnsupportedAlgorithm,
        format!(
            "{} key cannot sign {algorithm}: it signs {}",
            key.public_key().description(),
            offered.join(", ")
        ),
    )
    .with_context("uri", key.uri()))
}

/// A signing key held somewhere (a KMS, an HSM, a file).
///
/// Object safe: backends hand out `Arc<dyn KmsKey>`. The public key is fetched once when
/// the key is opened and cached; no method exports private material.
#[async_trait]
pub trait KmsKey: Send + Sync + fmt::Debug {
    /// The URI this key was opened from, stable and safe to log.
    fn uri(&self) -> &KeyUri;

    /// The cached public key.
    fn public_key(&self) -> &PublicKey;

    /// The algorithms this key signs with, preferred first: every algorithm its key type
    /// allows unless the provider binds the key to fewer.
    fn algorithms(&self) -> &[Algorithm] {
        self.public_key().algorithms()
    }

    /// The algorithm used when the caller does not choose: the first of
    /// [`KmsKey::algorithms`].
    fn algorithm(&self) -> Algorithm {
        self.algorithms()
            .first()
            .copied()
            .unwrap_or_else(|| self.public_key().algorithms()[0])
    }

    /// The longest message the provider signs for algorithms that sign messages
    /// (Ed25519), when it has a limit.
    fn max_message_len(&self) -> Option<usize> {
        None
    }

    /// Signs with one of [`KmsKey::algorithms`].
    ///
    /// The returned signature is of that algorithm and, for every key whose signatures
    /// cross a process boundary, has already been verified against
    /// [`KmsKey::public_key`] (see [`VerifiedSigner`]).
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedAlgorithm`] for an algorithm the key does not sign,
    /// [`ErrorKind::InvalidInput`] for a bad digest or a message over the provider's
    /// limit, [`ErrorKind::BadSignature`] when the provider's answer does not verify,
    /// and the provider's failures mapped to kinds.
    async fn sign(&self, algorithm: Algorithm, input: SigningInput<'_>) -> Result<Signature>;

    /// Signs a digest with [`KmsKey::algorithm`] (which must be pre-hashed).
    ///
    /// # Errors
    /// As [`KmsKey::sign`].
    async fn sign_digest(&self, digest: &[u8]) -> Result<Signature> {
        self.sign(self.algorithm(), SigningInput::Digest(digest))
            .await
    }

    /// Signs `message` with [`KmsKey::algorithm`]: hashed locally for pre-hashed
    /// algorithms, so messages of any size work and only the digest leaves the process.
    ///
    /// # Errors
    /// As [`KmsKey::sign`].
    async fn sign_message(&self, message: &[u8]) -> Result<Signature> {
        self.sign(self.algorithm(), SigningInput::Message(message))
            .await
    }
}

/// What a backend implements when its signatures come from outside this process (a
/// cloud KMS, an HSM): signing without the verification step. Wrap it in
/// [`VerifiedSigner`] to get a [`KmsKey`].
#[async_trait]
pub trait RawSigner: Send + Sync + fmt::Debug {
    /// The URI this key was opened from.
    fn uri(&self) -> &KeyUri;

    /// The public key fetched when the key was opened.
    fn public_key(&self) -> &PublicKey;

    /// The algorithms the provider lets this key sign with, preferred first.
    fn algorithms(&self) -> &[Algorithm] {
        self.public_key().algorithms()
    }

    /// The provider's limit on a signed message (Ed25519), checked before any call.
    fn max_message_len(&self) -> Option<usize> {
        None
    }

    /// Asks the provider to sign the payload (already checked: an algorithm of
    /// [`RawSigner::algorithms`], a digest of the right length, a message within
    /// [`RawSigner::max_message_len`]) and decodes its answer. The result is not trusted
    /// yet.
    ///
    /// # Errors
    /// The provider's failures, mapped to [`ErrorKind`](crate::ErrorKind)s.
    async fn sign_unverified(&self, payload: &SigningPayload<'_>) -> Result<Signature>;
}

/// Turns a [`RawSigner`] into a [`KmsKey`] whose signatures are verified against the
/// cached public key before anyone sees them: a KMS answer that does not verify (a
/// corrupted response, a wrong key version, a buggy emulator) becomes
/// [`ErrorKind::BadSignature`](crate::ErrorKind::BadSignature), never a certificate.
#[derive(Debug)]
pub struct VerifiedSigner<S> {
    inner: S,
}

impl<S: RawSigner> VerifiedSigner<S> {
    /// Wraps a raw signer.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The wrapped signer.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

/// Refuses a message over a provider's limit before the call, naming the limit.
///
/// # Errors
/// [`ErrorKind::InvalidInput`].
pub fn check_message_len(payload: &SigningPayload<'_>, limit: Option<usize>) -> Result<()> {
    match limit {
        Some(limit) if !payload.algorithm().is_prehashed() && payload.as_bytes().len() > limit => {
            Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} signs the whole message and this provider signs at most {limit} bytes; the message is {} bytes",
                    payload.algorithm(),
                    payload.as_bytes().len()
                ),
            )
            .with_context("field", "message"))
        }
        _ => Ok(()),
    }
}

#[async_trait]
impl<S: RawSigner> KmsKey for VerifiedSigner<S> {
    fn uri(&self) -> &KeyUri {
        self.inner.uri()
    }

    fn public_key(&self) -> &PublicKey {
        self.inner.public_key()
    }

    fn algorithms(&self) -> &[Algorithm] {
        self.inner.algorithms()
    }

    fn max_message_len(&self) -> Option<usize> {
        self.inner.max_message_len()
    }

    async fn sign(&self, algorithm: Algorithm, input: SigningInput<'_>) -> Result<Signature> {
        check_algorithm(self, algorithm)?;
        let with_uri = |e: Error| e.with_context("uri", self.inner.uri());
        let payload = SigningPayload::new(algorithm, input).map_err(with_uri)?;
        check_message_len(&payload, self.inner.max_message_len()).map_err(with_uri)?;
        let signature = self
            .inner
            .sign_unverified(&payload)
            .await
            .map_err(with_uri)?;
        self.inner
            .public_key()
            .verify(algorithm, payload.as_bytes(), &signature)
            .map_err(with_uri)?;
        Ok(signature)
    }
}
