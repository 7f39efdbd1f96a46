//! Bridges from [`KmsKey`] to RustCrypto's signer traits, so crates such as `x509-cert`
//! (whose `AsyncBuilder` takes an `AsyncSigner + Keypair`) can sign with a KMS key.

use std::sync::Arc;

use spki::der::asn1::{AnyRef, Null};
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier};

use crate::{Algorithm, EcdsaSignature, Error, ErrorKind, KeyFamily, KmsKey, PublicKey, Signature};

/// Wraps a kmssh error for `signature::Error`, keeping it as the source.
pub(crate) fn to_signature_error(err: Error) -> signature::Error {
    signature::Error::from_source(Box::new(err))
}

/// A [`KmsKey`] as a RustCrypto signer: [`signature::AsyncSigner`] for [`Signature`],
/// for [`EcdsaSignature`] and each curve's own signature type, [`signature::Keypair`],
/// and the X.509 signature algorithm identifier. It signs with the key's default
/// [`KmsKey::algorithm`].
///
/// Messages are hashed locally for pre-hashed algorithms; only the digest goes to the KMS.
#[derive(Clone, Debug)]
pub struct KmsSigner {
    key: Arc<dyn KmsKey>,
}

impl KmsSigner {
    /// Wraps an opened key.
    #[must_use]
    pub fn new(key: Arc<dyn KmsKey>) -> Self {
        Self { key }
    }

    /// The wrapped key.
    #[must_use]
    pub fn key(&self) -> &Arc<dyn KmsKey> {
        &self.key
    }
}

impl signature::AsyncSigner<Signature> for KmsSigner {
    async fn sign_async(&self, msg: &[u8]) -> Result<Signature, signature::Error> {
        self.key.sign_message(msg).await.map_err(to_signature_error)
    }
}

impl signature::AsyncSigner<EcdsaSignature> for KmsSigner {
    async fn sign_async(&self, msg: &[u8]) -> Result<EcdsaSignature, signature::Error> {
        check_ecdsa(self.key.as_ref())?;
        ecdsa_of(
            self.key
                .sign_message(msg)
                .await
                .map_err(to_signature_error)?,
        )
    }
}

/// Refuses, before any KMS call, an ECDSA signature from a key of another family.
pub(crate) fn check_ecdsa(key: &dyn KmsKey) -> Result<(), signature::Error> {
    if key.public_key().family() == KeyFamily::Ecdsa {
        Ok(())
    } else {
        Err(to_signature_error(Error::new(
            ErrorKind::UnsupportedAlgorithm,
            format!(
                "asked for an ECDSA signature from a {} key",
                key.public_key().description()
            ),
        )))
    }
}

/// The ECDSA signature inside a [`Signature`].
pub(crate) fn ecdsa_of(signature: Signature) -> Result<EcdsaSignature, signature::Error> {
    match signature {
        Signature::Ecdsa(s) => Ok(s),
        other => Err(to_signature_error(Error::new(
            ErrorKind::UnsupportedAlgorithm,
            format!("expected an ECDSA signature, got {}", other.algorithm()),
        ))),
    }
}

/// Picks one curve's signature out of an [`EcdsaSignature`], or says which curve it was.
pub(crate) trait CurveSignature: Sized {
    /// The curve this type belongs to.
    const ALGORITHM: Algorithm;
    /// The signature, if it is on this curve.
    fn from_any(signature: EcdsaSignature) -> Option<Self>;
}

macro_rules! curve_signature {
    ($krate:ident, $variant:ident, $alg:ident) => {
        impl CurveSignature for $krate::ecdsa::Signature {
            const ALGORITHM: Algorithm = Algorithm::$alg;
            fn from_any(signature: EcdsaSignature) -> Option<Self> {
                match signature {
                    EcdsaSignature::$variant(s) => Some(s),
                    _ => None,
                }
            }
        }

        impl signature::AsyncSigner<$krate::ecdsa::Signature> for KmsSigner {
            async fn sign_async(
                &self,
                msg: &[u8],
            ) -> Result<$krate::ecdsa::Signature, signature::Error> {
                check_curve::<$krate::ecdsa::Signature>(self.key.as_ref())?;
                narrow(ecdsa_of(
                    self.key
                        .sign_message(msg)
                        .await
                        .map_err(to_signature_error)?,
                )?)
            }
        }
    };
}

fn curve_mismatch(wanted: Algorithm, key: Algorithm) -> signature::Error {
    to_signature_error(Error::new(
        ErrorKind::UnsupportedAlgorithm,
        format!("asked for a {wanted} signature from a {key} key"),
    ))
}

/// Refuses, before any KMS call, to make one curve's signature with another curve's key.
pub(crate) fn check_curve<S: CurveSignature>(key: &dyn KmsKey) -> Result<(), signature::Error> {
    if key.algorithm() == S::ALGORITHM {
        Ok(())
    } else {
        Err(curve_mismatch(S::ALGORITHM, key.algorithm()))
    }
}

/// Converts to one curve's signature type.
pub(crate) fn narrow<S: CurveSignature>(signature: EcdsaSignature) -> Result<S, signature::Error> {
    let algorithm = signature.algorithm();
    S::from_any(signature).ok_or_else(|| curve_mismatch(S::ALGORITHM, algorithm))
}

curve_signature!(p256, P256, EcdsaP256Sha256);
curve_signature!(p384, P384, EcdsaP384Sha384);
curve_signature!(p521, P521, EcdsaP521Sha512);

impl signature::Keypair for KmsSigner {
    type VerifyingKey = PublicKey;
    fn verifying_key(&self) -> PublicKey {
        self.key.public_key().clone()
    }
}

impl DynSignatureAlgorithmIdentifier for KmsSigner {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(x509_signature_algorithm(self.key.algorithm()))
    }
}

/// The X.509 `AlgorithmIdentifier` for signatures with this algorithm: parameters
/// absent for ECDSA (RFC 5758) and Ed25519 (RFC 8410), NULL for RSA (RFC 8017).
#[must_use]
pub fn x509_signature_algorithm(algorithm: Algorithm) -> AlgorithmIdentifierOwned {
    let parameters = match algorithm.family() {
        KeyFamily::Rsa => Some(AnyRef::from(Null).into()),
        KeyFamily::Ecdsa | KeyFamily::Ed25519 => None,
    };
    AlgorithmIdentifierOwned {
        oid: algorithm.x509_oid(),
        parameters,
    }
}
