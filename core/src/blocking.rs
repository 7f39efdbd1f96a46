//! A blocking [`signature::Signer`] over a [`KmsKey`], for synchronous callers.
//!
//! It owns a small single-threaded tokio runtime and drives each signature to completion
//! on it. Called from inside a tokio runtime it would block that runtime's worker (and
//! deadlock a single-threaded one), so there it refuses with a clear error instead: use
//! [`KmsSigner`](crate::KmsSigner), which is async.

use std::sync::Arc;

use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier};

use crate::bridge::{
    check_curve, check_ecdsa, ecdsa_of, narrow, to_signature_error, x509_signature_algorithm,
};
use crate::{EcdsaSignature, Error, ErrorKind, KmsKey, PublicKey, Result, Signature};

/// A [`KmsKey`] behind the synchronous `Signer` and `Keypair` traits.
#[derive(Debug)]
pub struct BlockingSigner {
    key: Arc<dyn KmsKey>,
    runtime: tokio::runtime::Runtime,
}

fn refuse_inside_runtime() -> Result<()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "BlockingSigner used inside an async runtime, where blocking would stall or deadlock it: use the async KmsSigner there",
        ));
    }
    Ok(())
}

fn new_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Error::new(ErrorKind::Unexpected, "cannot start a signing runtime").with_source(e)
        })
}

impl BlockingSigner {
    /// Opens a key by URI on this signer's own runtime. Prefer this to [`Self::new`]
    /// for cloud keys: their HTTP clients then live on the runtime that drives them.
    ///
    /// # Errors
    /// Refuses inside an async runtime; otherwise as [`crate::open`].
    pub fn open(uri: &str) -> Result<Self> {
        refuse_inside_runtime()?;
        let runtime = new_runtime()?;
        let key = runtime.block_on(crate::open(uri))?;
        Ok(Self { key, runtime })
    }

    /// Wraps a key that is already open.
    ///
    /// # Errors
    /// Refuses inside an async runtime.
    pub fn new(key: Arc<dyn KmsKey>) -> Result<Self> {
        refuse_inside_runtime()?;
        Ok(Self {
            key,
            runtime: new_runtime()?,
        })
    }

    /// The wrapped key.
    #[must_use]
    pub fn key(&self) -> &Arc<dyn KmsKey> {
        &self.key
    }

    /// Signs `message` with the key's default algorithm, blocking until the key answers.
    ///
    /// # Errors
    /// Refuses inside an async runtime; otherwise as [`KmsKey::sign_message`].
    pub fn sign_message(&self, message: &[u8]) -> Result<Signature> {
        refuse_inside_runtime()?;
        self.runtime.block_on(self.key.sign_message(message))
    }
}

impl signature::Signer<Signature> for BlockingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Signature, signature::Error> {
        self.sign_message(msg).map_err(to_signature_error)
    }
}

impl signature::Signer<EcdsaSignature> for BlockingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<EcdsaSignature, signature::Error> {
        check_ecdsa(self.key.as_ref())?;
        ecdsa_of(self.sign_message(msg).map_err(to_signature_error)?)
    }
}

macro_rules! blocking_curve_signer {
    ($krate:ident) => {
        impl signature::Signer<$krate::ecdsa::Signature> for BlockingSigner {
            fn try_sign(&self, msg: &[u8]) -> Result<$krate::ecdsa::Signature, signature::Error> {
                check_curve::<$krate::ecdsa::Signature>(self.key.as_ref())?;
                narrow(ecdsa_of(
                    self.sign_message(msg).map_err(to_signature_error)?,
                )?)
            }
        }
    };
}

blocking_curve_signer!(p256);
blocking_curve_signer!(p384);
blocking_curve_signer!(p521);

impl signature::Keypair for BlockingSigner {
    type VerifyingKey = PublicKey;
    fn verifying_key(&self) -> PublicKey {
        self.key.public_key().clone()
    }
}

impl DynSignatureAlgorithmIdentifier for BlockingSigner {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(x509_signature_algorithm(self.key.algorithm()))
    }
}
