//! Signing keys' public halves, as fetched once from a KMS: [`PublicKey`] over the
//! NIST-curve ECDSA [`EcPublicKey`], RSA and Ed25519.

use rsa::traits::PublicKeyParts as _;
use signature::hazmat::PrehashVerifier;
use spki::{EncodePublicKey, ObjectIdentifier, SubjectPublicKeyInfoRef};

use crate::{Algorithm, Curve, EcdsaSignature, Error, ErrorKind, KeyFamily, Result, Signature};

/// `id-ecPublicKey` (RFC 5480).
pub(crate) const ID_EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// An ECDSA verifying key on P-256, P-384 or P-521.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EcPublicKey {
    /// A P-256 key.
    P256(p256::ecdsa::VerifyingKey),
    /// A P-384 key.
    P384(p384::ecdsa::VerifyingKey),
    /// A P-521 key.
    P521(p521::ecdsa::VerifyingKey),
}

impl EcPublicKey {
    /// The algorithm this key signs with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.curve().algorithm()
    }

    /// The key's curve.
    #[must_use]
    pub fn curve(&self) -> Curve {
        match self {
            Self::P256(_) => Curve::P256,
            Self::P384(_) => Curve::P384,
            Self::P521(_) => Curve::P521,
        }
    }

    /// Parses a SEC1 point (uncompressed or compressed) on the given curve.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidKey`] when the bytes are not a point on that curve.
    pub fn from_sec1_bytes(curve: Curve, bytes: &[u8]) -> Result<Self> {
        let parsed = match curve {
            Curve::P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map(Self::P256),
            Curve::P384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map(Self::P384),
            Curve::P521 => p521::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map(Self::P521),
        };
        parsed.map_err(|e| {
            Error::new(
                ErrorKind::InvalidKey,
                format!("{} bytes are not a {} public key point", bytes.len(), curve),
            )
            .with_source(e.to_string())
        })
    }

    /// Parses a DER `SubjectPublicKeyInfo` holding an EC key.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedAlgorithm`] for a non-EC key or another curve (naming its
    /// OID), [`ErrorKind::InvalidKey`] for malformed DER.
    pub fn from_public_key_der(der: &[u8]) -> Result<Self> {
        Self::from_spki(&parse_spki(der)?)
    }

    fn from_spki(info: &SubjectPublicKeyInfoRef<'_>) -> Result<Self> {
        if info.algorithm.oid != ID_EC_PUBLIC_KEY {
            return Err(Error::new(
                ErrorKind::UnsupportedAlgorithm,
                format!(
                    "public key algorithm {} is not EC (id-ecPublicKey); PublicKey::from_public_key_der reads RSA and Ed25519 keys too",
                    info.algorithm.oid
                ),
            ));
        }
        let curve = info.algorithm.parameters_oid().map_err(|e| {
            Error::new(
                ErrorKind::InvalidKey,
                "EC public key has no named-curve parameter",
            )
            .with_source(e.to_string())
        })?;
        let curve = Curve::from_oid(&curve)?;
        let bytes = info.subject_public_key.as_bytes().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidKey,
                "EC public key bit string has unused bits",
            )
        })?;
        Self::from_sec1_bytes(curve, bytes)
    }

    /// Parses a PEM `PUBLIC KEY` block holding an EC key.
    ///
    /// # Errors
    /// As [`EcPublicKey::from_public_key_der`], or [`ErrorKind::InvalidKey`] for bad PEM.
    pub fn from_public_key_pem(pem: &str) -> Result<Self> {
        Self::from_public_key_der(pem_to_der(pem)?.as_bytes())
    }

    /// The uncompressed SEC1 point (`04 || x || y`), as OpenSSH key blobs carry it.
    #[must_use]
    pub fn to_sec1_bytes(&self) -> Vec<u8> {
        match self {
            Self::P256(k) => k.to_sec1_bytes().to_vec(),
            Self::P384(k) => k.to_sec1_bytes().to_vec(),
            Self::P521(k) => k.to_sec1_bytes().to_vec(),
        }
    }

    /// The SubjectPublicKeyInfo as PEM, the form `openssl dgst -verify` reads.
    ///
    /// # Errors
    /// [`ErrorKind::Unexpected`] if encoding fails (it does not for valid keys).
    pub fn to_pem(&self) -> Result<String> {
        encode_pem(self)
    }

    /// Checks an ECDSA signature over a prehashed digest. High-`s` signatures are accepted,
    /// as OpenSSH and every KMS produce them.
    ///
    /// # Errors
    /// [`ErrorKind::BadSignature`] when the signature is for another curve or does not verify.
    pub fn verify_digest(&self, digest: &[u8], signature: &EcdsaSignature) -> Result<()> {
        #[cfg(feature = "aws-lc")]
        if let Some(verified) = self.verify_digest_aws_lc(digest, signature) {
            return verified.map_err(|_| self.does_not_verify());
        }
        let verified = match (self, signature) {
            (Self::P256(k), EcdsaSignature::P256(s)) => k.verify_prehash(digest, s),
            (Self::P384(k), EcdsaSignature::P384(s)) => k.verify_prehash(digest, s),
            (Self::P521(k), EcdsaSignature::P521(s)) => k.verify_prehash(digest, s),
            _ => {
                return Err(Error::new(
                    ErrorKind::BadSignature,
                    format!(
                        "{} signature cannot come from a {} key",
                        signature.algorithm(),
                        self.algorithm()
                    ),
                ));
            }
        };
        verified.map_err(|_| self.does_not_verify())
    }

    fn does_not_verify(&self) -> Error {
        Error::new(
            ErrorKind::BadSignature,
            format!(
                "{} signature does not verify against the public key",
                self.algorithm()
            ),
        )
    }

    /// AWS-LC's ECDSA over a digest of the curve's own hash (what every KMS answer is):
    /// the same verdicts as RustCrypto's `verify_prehash`, high `s` accepted. `None` for a
    /// signature of another curve or a digest of another length (an X.509 signature with
    /// another hash), which the RustCrypto path judges instead.
    #[cfg(feature = "aws-lc")]
    fn verify_digest_aws_lc(
        &self,
        digest: &[u8],
        signature: &EcdsaSignature,
    ) -> Option<std::result::Result<(), aws_lc_rs::error::Unspecified>> {
        use aws_lc_rs::digest::{Digest, SHA256, SHA384, SHA512};
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ECDSA_P521_SHA512_FIXED,
            UnparsedPublicKey,
        };
        if signature.curve() != self.curve() {
            return None;
        }
        let (verifier, hash) = match self.curve() {
            Curve::P256 => (&ECDSA_P256_SHA256_FIXED, &SHA256),
            Curve::P384 => (&ECDSA_P384_SHA384_FIXED, &SHA384),
            Curve::P521 => (&ECDSA_P521_SHA512_FIXED, &SHA512),
        };
        let digest = Digest::import_less_safe(digest, hash).ok()?;
        Some(
            UnparsedPublicKey::new(verifier, self.to_sec1_bytes())
                .verify_digest(&digest, &signature.to_fixed()),
        )
    }
}

impl EncodePublicKey for EcPublicKey {
    fn to_public_key_der(&self) -> spki::Result<spki::Document> {
        match self {
            Self::P256(k) => k.to_public_key_der(),
            Self::P384(k) => k.to_public_key_der(),
            Self::P521(k) => k.to_public_key_der(),
        }
    }
}

impl From<p256::ecdsa::VerifyingKey> for EcPublicKey {
    fn from(key: p256::ecdsa::VerifyingKey) -> Self {
        Self::P256(key)
    }
}

impl From<p384::ecdsa::VerifyingKey> for EcPublicKey {
    fn from(key: p384::ecdsa::VerifyingKey) -> Self {
        Self::P384(key)
    }
}

impl From<p521::ecdsa::VerifyingKey> for EcPublicKey {
    fn from(key: p521::ecdsa::VerifyingKey) -> Self {
        Self::P521(key)
    }
}

/// `rsaEncryption` (RFC 8017).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-Ed25519` (RFC 8410).
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The smallest RSA signing key kmssh accepts: NIST SP 800-131A and every KMS's minimum.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA signing key kmssh accepts (the `rsa` crate's verification bound).
pub const MAX_RSA_BITS: usize = 8192;

fn parse_spki(der: &[u8]) -> Result<SubjectPublicKeyInfoRef<'_>> {
    SubjectPublicKeyInfoRef::try_from(der).map_err(|e| {
        Error::new(
            ErrorKind::InvalidKey,
            "public key is not a DER SubjectPublicKeyInfo",
        )
        .with_source(e.to_string())
    })
}

fn pem_to_der(pem: &str) -> Result<spki::Document> {
    let (label, doc) = spki::Document::from_pem(pem).map_err(|e| {
        Error::new(ErrorKind::InvalidKey, "public key is not PEM").with_source(e.to_string())
    })?;
    if label != "PUBLIC KEY" {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!("expected a PEM `PUBLIC KEY` block, found `{label}`"),
        ));
    }
    Ok(doc)
}

fn encode_pem(key: &impl EncodePublicKey) -> Result<String> {
    key.to_public_key_pem(spki::der::pem::LineEnding::LF)
        .map_err(|e| {
            Error::new(ErrorKind::Unexpected, "cannot PEM-encode public key")
                .with_source(e.to_string())
        })
}

fn does_not_verify(algorithm: Algorithm) -> Error {
    Error::new(
        ErrorKind::BadSignature,
        format!("{algorithm} signature does not verify against the public key"),
    )
}

/// Refuses RSA keys outside [`MIN_RSA_BITS`]..=[`MAX_RSA_BITS`], naming the size.
fn check_rsa_size(key: &rsa::PublicKey) -> Result<()> {
    let bits = key.n().bit_width_vartime() as usize;
    if (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::UnsupportedAlgorithm,
        format!(
            "RSA-{bits} signing keys are not supported: use {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
        ),
    ))
}

/// A signing key's public half: ECDSA, RSA or Ed25519.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// An ECDSA key on a NIST curve.
    Ecdsa(EcPublicKey),
    /// An RSA key of [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits.
    Rsa(rsa::PublicKey),
    /// An Ed25519 key (never a small-order point).
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// Wraps an RSA key, refusing sizes outside [`MIN_RSA_BITS`]..=[`MAX_RSA_BITS`].
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedAlgorithm`] naming the size.
    pub fn rsa(key: rsa::PublicKey) -> Result<Self> {
        check_rsa_size(&key)?;
        Ok(Self::Rsa(key))
    }

    /// Wraps an Ed25519 key given as its 32 bytes, refusing non-points and small-order
    /// points.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidKey`].
    pub fn ed25519(bytes: &[u8]) -> Result<Self> {
        let array: &[u8; 32] = bytes.try_into().map_err(|_| {
            Error::new(
                ErrorKind::InvalidKey,
                format!("an Ed25519 public key is 32 bytes, got {}", bytes.len()),
            )
        })?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(array).map_err(|e| {
            Error::new(ErrorKind::InvalidKey, "bytes are not an Ed25519 public key")
                .with_source(e.to_string())
        })?;
        if key.is_weak() {
            return Err(Error::new(
                ErrorKind::InvalidKey,
                "Ed25519 public key is a small-order point",
            ));
        }
        Ok(Self::Ed25519(key))
    }

    /// The key's family.
    #[must_use]
    pub fn family(&self) -> KeyFamily {
        match self {
            Self::Ecdsa(_) => KeyFamily::Ecdsa,
            Self::Rsa(_) => KeyFamily::Rsa,
            Self::Ed25519(_) => KeyFamily::Ed25519,
        }
    }

    /// The algorithms this kind of key can sign with, preferred first. A provider may
    /// allow fewer (a Cloud KMS RSA key is bound to one hash): see `KmsKey::algorithms`.
    #[must_use]
    pub fn algorithms(&self) -> &'static [Algorithm] {
        match self {
            Self::Ecdsa(k) => match k.curve() {
                Curve::P256 => &[Algorithm::EcdsaP256Sha256],
                Curve::P384 => &[Algorithm::EcdsaP384Sha384],
                Curve::P521 => &[Algorithm::EcdsaP521Sha512],
            },
            Self::Rsa(_) => &Algorithm::RSA,
            Self::Ed25519(_) => &[Algorithm::Ed25519],
        }
    }

    /// Whether this kind of key can make signatures with `algorithm`.
    #[must_use]
    pub fn can_sign(&self, algorithm: Algorithm) -> bool {
        self.algorithms().contains(&algorithm)
    }

    /// The kind of key this is.
    #[must_use]
    pub fn spec(&self) -> crate::KeySpec {
        match self {
            Self::Ecdsa(k) => crate::KeySpec::Ecdsa(k.curve()),
            Self::Rsa(k) => crate::KeySpec::Rsa(k.n().bit_width_vartime()),
            Self::Ed25519(_) => crate::KeySpec::Ed25519,
        }
    }

    /// The modulus size in bits, for RSA keys.
    #[must_use]
    pub fn rsa_bits(&self) -> Option<usize> {
        match self {
            Self::Rsa(k) => Some(k.n().bit_width_vartime() as usize),
            _ => None,
        }
    }

    /// A short description for messages: `ECDSA P-256`, `RSA-3072`, `Ed25519`.
    #[must_use]
    pub fn description(&self) -> String {
        match self {
            Self::Ecdsa(k) => format!("ECDSA {}", k.curve()),
            Self::Rsa(k) => format!("RSA-{}", k.n().bit_width_vartime()),
            Self::Ed25519(_) => "Ed25519".to_owned(),
        }
    }

    /// The ECDSA key, if this is one.
    #[must_use]
    pub fn as_ecdsa(&self) -> Option<&EcPublicKey> {
        match self {
            Self::Ecdsa(k) => Some(k),
            _ => None,
        }
    }

    /// Parses a DER `SubjectPublicKeyInfo` (what AWS `GetPublicKey` returns): EC on a
    /// NIST curve, `rsaEncryption` or `id-Ed25519`.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedAlgorithm`] for another key type (naming its OID), curve or
    /// RSA size; [`ErrorKind::InvalidKey`] for malformed DER.
    pub fn from_public_key_der(der: &[u8]) -> Result<Self> {
        let info = parse_spki(der)?;
        let oid = info.algorithm.oid;
        if oid == ID_EC_PUBLIC_KEY {
            EcPublicKey::from_spki(&info).map(Self::Ecdsa)
        } else if oid == RSA_ENCRYPTION {
            let key = rsa::PublicKey::try_from(info).map_err(|e| {
                Error::new(ErrorKind::InvalidKey, "malformed RSA public key")
                    .with_source(e.to_string())
            })?;
            Self::rsa(key)
        } else if oid == ID_ED25519 {
            if info.algorithm.parameters.is_some() {
                return Err(Error::new(
                    ErrorKind::InvalidKey,
                    "Ed25519 public key has algorithm parameters (RFC 8410 forbids them)",
                ));
            }
            let bytes = info.subject_public_key.as_bytes().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidKey,
                    "Ed25519 public key bit string has unused bits",
                )
            })?;
            Self::ed25519(bytes)
        } else {
            Err(Error::new(
                ErrorKind::UnsupportedAlgorithm,
                format!(
                    "public key algorithm {oid} is not supported: kmssh signs with ECDSA (P-256, P-384, P-521), RSA or Ed25519"
                ),
            ))
        }
    }

    /// Parses a PEM `PUBLIC KEY` block (what Cloud KMS `getPublicKey` returns).
    ///
    /// # Errors
    /// As [`PublicKey::from_public_key_der`], or [`ErrorKind::InvalidKey`] for bad PEM.
    pub fn from_public_key_pem(pem: &str) -> Result<Self> {
        Self::from_public_key_der(pem_to_der(pem)?.as_bytes())
    }

    /// The SubjectPublicKeyInfo as PEM, the form `openssl` reads.
    ///
    /// # Errors
    /// [`ErrorKind::Unexpected`] if encoding fails (it does not for valid keys).
    pub fn to_pem(&self) -> Result<String> {
        encode_pem(self)
    }

    /// Checks a signature made with `algorithm`. `payload` is the digest for pre-hashed
    /// algorithms and the message for Ed25519.
    ///
    /// # Errors
    /// [`ErrorKind::BadSignature`] when the signature is of another algorithm, was made
    /// by another key, or does not verify.
    pub fn verify(
        &self,
        algorithm: Algorithm,
        payload: &[u8],
        signature: &Signature,
    ) -> Result<()> {
        if signature.algorithm() != algorithm || !self.can_sign(algorithm) {
            return Err(Error::new(
                ErrorKind::BadSignature,
                format!(
                    "{} signature cannot be a {algorithm} signature from a {} key",
                    signature.algorithm(),
                    self.description()
                ),
            ));
        }
        match (self, signature) {
            (Self::Ecdsa(key), Signature::Ecdsa(s)) => key.verify_digest(payload, s),
            (Self::Rsa(key), Signature::Rsa(s)) => {
                // The variant is public: a key built around `PublicKey::rsa` is still held
                // to its size rule before anything it signed is trusted.
                check_rsa_size(key)?;
                let scheme = match s.hash() {
                    crate::HashAlgorithm::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    crate::HashAlgorithm::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                    crate::HashAlgorithm::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                };
                if s.as_bytes().len() != key.size() {
                    return Err(Error::new(
                        ErrorKind::BadSignature,
                        format!(
                            "RSA signature is {} bytes; the {}-byte modulus needs exactly that many",
                            s.as_bytes().len(),
                            key.size()
                        ),
                    ));
                }
                key.verify(scheme, payload, s.as_bytes())
                    .map_err(|_| does_not_verify(algorithm))
            }
            (Self::Ed25519(key), Signature::Ed25519(s)) => key
                .verify_strict(payload, s)
                .map_err(|_| does_not_verify(algorithm)),
            _ => Err(does_not_verify(algorithm)),
        }
    }
}

impl EncodePublicKey for PublicKey {
    fn to_public_key_der(&self) -> spki::Result<spki::Document> {
        match self {
            Self::Ecdsa(k) => k.to_public_key_der(),
            Self::Rsa(k) => k.to_public_key_der(),
            Self::Ed25519(k) => k.to_public_key_der(),
        }
    }
}

impl From<EcPublicKey> for PublicKey {
    fn from(key: EcPublicKey) -> Self {
        Self::Ecdsa(key)
    }
}

/// With AWS-LC verifying, the verdicts stay RustCrypto's: a good signature and its
/// high-`s` twin pass, a changed digest, `r` or `s` fails, a digest of another length is
/// still judged (by RustCrypto).
#[cfg(all(test, feature = "aws-lc"))]
mod aws_lc_tests {
    use ecdsa::elliptic_curve::PrimeField as _;
    use signature::hazmat::PrehashSigner as _;

    use super::*;

    fn cases<C>(key: &ecdsa::SigningKey<C>, curve: Curve, digest: &[u8])
    where
        C: ecdsa::EcdsaCurve + ecdsa::elliptic_curve::CurveArithmetic,
        ecdsa::SigningKey<C>: signature::hazmat::PrehashSigner<ecdsa::Signature<C>>,
        EcPublicKey: From<ecdsa::VerifyingKey<C>>,
        ecdsa::VerifyingKey<C>: signature::hazmat::PrehashVerifier<ecdsa::Signature<C>>,
    {
        let public = EcPublicKey::from(*key.verifying_key());
        let signed: ecdsa::Signature<C> = key.sign_prehash(digest).expect("signs");
        let (r, s) = signed.split_scalars();
        let twin = ecdsa::Signature::<C>::from_scalars(r.to_repr(), (-s).to_repr())
            .expect("n - s is a scalar");
        let ours = |sig: &ecdsa::Signature<C>| {
            EcdsaSignature::from_fixed(curve, &sig.to_bytes()).expect("fixed width")
        };
        let rust_crypto = |d: &[u8], sig: &ecdsa::Signature<C>| {
            key.verifying_key().verify_prehash(d, sig).is_ok()
        };
        let mut changed = digest.to_vec();
        changed[0] ^= 1;
        let mut bad_r = signed.to_bytes().to_vec();
        bad_r[3] ^= 0x40;
        for (what, d, sig, valid) in [
            ("signature", digest, ours(&signed), true),
            ("high-s twin", digest, ours(&twin), true),
            ("changed digest", &changed[..], ours(&signed), false),
        ] {
            assert_eq!(
                public.verify_digest(d, &sig).is_ok(),
                valid,
                "{curve} {what}"
            );
        }
        if let Ok(tampered) = EcdsaSignature::from_fixed(curve, &bad_r) {
            assert!(
                public.verify_digest(digest, &tampered).is_err(),
                "{curve} r"
            );
        }
        // A digest shorter than the curve's hash: AWS-LC is not asked; RustCrypto's
        // verdict stands.
        let short = &digest[..digest.len() - 8];
        let short_signed: ecdsa::Signature<C> = key.sign_prehash(short).expect("signs");
        assert_eq!(
            public.verify_digest(short, &ours(&short_signed)).is_ok(),
            rust_crypto(short, &short_signed),
            "{curve} short digest"
        );
        assert!(
            rust_crypto(digest, &twin),
            "{curve}: RustCrypto takes high s"
        );
    }

    #[test]
    fn verdicts_match_rust_crypto() {
        let p256 = p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("scalar");
        cases(&p256, Curve::P256, &[0xa5; 32]);
        let p384 = p384::ecdsa::SigningKey::from_slice(&[7; 48]).expect("scalar");
        cases(&p384, Curve::P384, &[0xa5; 48]);
        let mut scalar = [7u8; 66];
        scalar[0] = 1;
        let p521 = p521::ecdsa::SigningKey::from_slice(&scalar).expect("scalar");
        cases(&p521, Curve::P521, &[0xa5; 64]);

        // A signature of another curve is refused as such, before either library is asked.
        let p256_signed: p256::ecdsa::Signature = p256.sign_prehash(&[0xa5; 32]).expect("signs");
        let p256_signed =
            EcdsaSignature::from_fixed(Curve::P256, &p256_signed.to_bytes()).expect("fixed width");
        let err = EcPublicKey::from(*p384.verifying_key())
            .verify_digest(&[0xa5; 48], &p256_signed)
            .expect_err("a P-256 signature from a P-384 key");
        assert_eq!(err.kind(), ErrorKind::BadSignature);
        assert!(err.to_string().contains("cannot come from"), "{err}");
    }
}
