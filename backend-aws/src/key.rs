//! [`AwsKmsKey`]: a KMS key opened and checked (`DescribeKey`, `GetPublicKey`), pinned by
//! ARN, signing with `Sign`: digests (`MessageType=DIGEST`) for ECDSA and RSA, the
//! message itself (`MessageType=RAW`, at most [`MAX_RAW_MESSAGE_LEN`] bytes) for Ed25519.

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec};
use kmssh_core::{
    Algorithm, Curve, Error, ErrorKind, KeyFamily, KeyUri, PublicKey, RawSigner, Result,
    RetryPolicy, Signature, SigningPayload, VerifiedSigner,
};

use crate::AwsKmsOptions;
use crate::error::map_sdk_error;

/// The key specs this backend signs with.
pub const SUPPORTED_KEY_SPECS: [&str; 7] = [
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_EDWARDS25519",
];

/// The longest message AWS KMS signs with `MessageType=RAW` (its `Message` field holds 1
/// to 4096 bytes): the bound on an Ed25519 to-be-signed message, checked before any call
/// (as is an empty one).
pub const MAX_RAW_MESSAGE_LEN: usize = 4096;

/// An AWS KMS key, opened and checked; [`AwsKmsKey::open`] returns it inside
/// [`VerifiedSigner`], which checks every signature before handing it out.
#[derive(Debug)]
pub struct AwsKmsKey {
    uri: KeyUri,
    client: aws_sdk_kms::Client,
    key_arn: String,
    public: PublicKey,
    algorithms: Vec<Algorithm>,
    retry: RetryPolicy,
    grant_tokens: Vec<String>,
}

/// kmssh's kind of key for a KMS key spec, or why that spec is refused (one line, naming
/// it). A `_` arm is right here: `KeySpec` is the provider's open enum.
fn spec_kind(spec: &KeySpec) -> std::result::Result<kmssh_core::KeySpec, String> {
    use kmssh_core::KeySpec as Kind;
    let why = match spec {
        KeySpec::EccNistP256 => return Ok(Kind::Ecdsa(Curve::P256)),
        KeySpec::EccNistP384 => return Ok(Kind::Ecdsa(Curve::P384)),
        KeySpec::EccNistP521 => return Ok(Kind::Ecdsa(Curve::P521)),
        KeySpec::Rsa2048 => return Ok(Kind::Rsa(2048)),
        KeySpec::Rsa3072 => return Ok(Kind::Rsa(3072)),
        KeySpec::Rsa4096 => return Ok(Kind::Rsa(4096)),
        KeySpec::EccNistEdwards25519 => return Ok(Kind::Ed25519),
        KeySpec::EccSecgP256K1 => "secp256k1, which OpenSSH does not sign with",
        KeySpec::SymmetricDefault => "a symmetric encryption key, which cannot sign",
        KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => {
            "an HMAC key, which makes MACs, not signatures"
        }
        KeySpec::Sm2 => "the SM2 curve, which OpenSSH does not sign with",
        KeySpec::MlDsa44 | KeySpec::MlDsa65 | KeySpec::MlDsa87 => {
            "ML-DSA, which OpenSSH does not sign with"
        }
        KeySpec::MlKem512 | KeySpec::MlKem768 | KeySpec::MlKem1024 => {
            "an ML-KEM key-encapsulation key, which cannot sign"
        }
        _ => "not a key spec kmssh knows",
    };
    Err(format!(
        "KeySpec {} is not supported ({why}): kmssh signs with SIGN_VERIFY keys of spec {}",
        spec.as_str(),
        SUPPORTED_KEY_SPECS.join(", ")
    ))
}

/// The KMS signing algorithm for one of kmssh's. RSA PSS, `ED25519_PH_SHA_512` (Ed25519ph,
/// not `ssh-ed25519`), SM2DSA and ML-DSA have no counterpart, so are never used.
fn signing_algorithm(algorithm: Algorithm) -> SigningAlgorithmSpec {
    match algorithm {
        Algorithm::EcdsaP256Sha256 => SigningAlgorithmSpec::EcdsaSha256,
        Algorithm::EcdsaP384Sha384 => SigningAlgorithmSpec::EcdsaSha384,
        Algorithm::EcdsaP521Sha512 => SigningAlgorithmSpec::EcdsaSha512,
        Algorithm::RsaPkcs1Sha256 => SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
        Algorithm::RsaPkcs1Sha384 => SigningAlgorithmSpec::RsassaPkcs1V15Sha384,
        Algorithm::RsaPkcs1Sha512 => SigningAlgorithmSpec::RsassaPkcs1V15Sha512,
        Algorithm::Ed25519 => SigningAlgorithmSpec::Ed25519Sha512,
    }
}

/// The algorithms a key of kind `kind` signs with, given the `SigningAlgorithms` KMS lists
/// for it, in kmssh's order of preference. An empty list (not what AWS sends for a
/// `SIGN_VERIFY` key) is taken as everything the kind allows.
fn offered_algorithms(
    kind: kmssh_core::KeySpec,
    offered: &[SigningAlgorithmSpec],
) -> Vec<Algorithm> {
    kind.algorithms()
        .iter()
        .copied()
        .filter(|a| offered.is_empty() || offered.contains(&signing_algorithm(*a)))
        .collect()
}

/// Checks the URI body looks like a key id, key ARN, alias name or alias ARN.
fn key_id(uri: &KeyUri) -> Result<&str> {
    let id = uri.body();
    let well_formed = !id.is_empty()
        && id.len() <= 2048
        && !id.chars().any(char::is_whitespace)
        && (!id.starts_with("arn:") || id.contains(":key/") || id.contains(":alias/"))
        && id != "alias/";
    if well_formed {
        Ok(id)
    } else {
        Err(Error::new(
            ErrorKind::InvalidUri,
            "expected aws-kms:<key id | key ARN | alias/NAME | alias ARN>",
        )
        .with_context("uri", uri))
    }
}

/// The region a key or alias ARN names (`arn:PARTITION:kms:REGION:ACCOUNT:…`).
fn arn_region(id: &str) -> Option<&str> {
    let mut parts = id.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_partition), Some("kms"), Some(region)) if !region.is_empty() => {
            Some(region)
        }
        _ => None,
    }
}

impl AwsKmsKey {
    /// Opens a key with a client built from `options` (see [`AwsKmsOptions::client`]). A
    /// key or alias ARN's region is used for the key, whatever `AWS_REGION` or the
    /// profile says (and when neither says anything): the ARN says where the key lives.
    ///
    /// # Errors
    /// As [`AwsKmsKey::open_with_client`]; [`ErrorKind::Config`] without a region, or when
    /// [`AwsKmsOptions::region`] names another region than the key's ARN;
    /// [`ErrorKind::Unauthenticated`] when no credentials can be found or loaded.
    pub async fn open(uri: &KeyUri, options: &AwsKmsOptions) -> Result<VerifiedSigner<Self>> {
        let with_region;
        let options = match (arn_region(key_id(uri)?), options.region.as_deref()) {
            (Some(arn), Some(option)) if arn != option => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "the key's ARN names region {arn} but the region option says {option}: \
                         a key is reached in its own region, so drop the option or fix the ARN"
                    ),
                )
                .with_context("uri", uri));
            }
            (Some(arn), None) => {
                with_region = AwsKmsOptions {
                    region: Some(arn.to_owned()),
                    ..options.clone()
                };
                &with_region
            }
            _ => options,
        };
        let client = options
            .client()
            .await
            .map_err(|e| e.with_context("uri", uri))?;
        Self::open_with_client(uri, client, options).await
    }

    /// Opens a key with a client the caller built: one `DescribeKey` and one
    /// `GetPublicKey`, then the checks below. `options` gives the retry policy and grant
    /// tokens (sent with every call); its client settings are not used.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidUri`] for a body that is no key id, ARN or alias;
    /// [`ErrorKind::NotFound`] for an unknown key or alias; [`ErrorKind::InvalidKey`] for a
    /// key that is disabled, pending deletion or otherwise not enabled, whose usage is not
    /// `SIGN_VERIFY`, whose public key disagrees with its spec, or whose
    /// `SigningAlgorithms` hold none kmssh signs with; [`ErrorKind::UnsupportedAlgorithm`]
    /// naming any spec but the [`SUPPORTED_KEY_SPECS`] (`ECC_SECG_P256K1`, `HMAC_*`,
    /// `SYMMETRIC_DEFAULT`, `SM2`, `ML_DSA_*`…); provider failures mapped to kinds after
    /// retries.
    pub async fn open_with_client(
        uri: &KeyUri,
        client: aws_sdk_kms::Client,
        options: &AwsKmsOptions,
    ) -> Result<VerifiedSigner<Self>> {
        let id = key_id(uri)?;
        let retry = options.retry.unwrap_or_default();
        let grant_tokens = (!options.grant_tokens.is_empty()).then(|| options.grant_tokens.clone());
        let at_uri = |e: Error| e.with_context("uri", uri);

        let described = retry
            .run("DescribeKey", || async {
                client
                    .describe_key()
                    .key_id(id)
                    .set_grant_tokens(grant_tokens.clone())
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("DescribeKey", e))
            })
            .await
            .map_err(at_uri)?;
        let metadata = described.key_metadata().ok_or_else(|| {
            at_uri(Error::new(
                ErrorKind::Unexpected,
                "DescribeKey answered without KeyMetadata",
            ))
        })?;
        let invalid = |why: String| at_uri(Error::new(ErrorKind::InvalidKey, why));
        match metadata.key_state() {
            Some(KeyState::Enabled) if metadata.enabled() => {}
            Some(KeyState::Disabled) | Some(KeyState::Enabled) => {
                return Err(invalid(
                    "the key is disabled: enable it (kms:EnableKey) to sign".into(),
                ));
            }
            Some(KeyState::PendingDeletion) | Some(KeyState::PendingReplicaDeletion) => {
                let when = metadata
                    .deletion_date()
                    .map(|d| format!(" on {d}"))
                    .unwrap_or_default();
                return Err(invalid(format!(
                    "the key is pending deletion{when}: cancel the deletion to sign with it"
                )));
            }
            other => {
                let state = other.map_or("unknown", |s| s.as_str());
                return Err(invalid(format!("the key is in state {state}, not Enabled")));
            }
        }
        // The spec first: an HMAC or symmetric key is refused by what it is, whatever its
        // usage says.
        let spec = metadata
            .key_spec()
            .ok_or_else(|| invalid("DescribeKey gave no KeySpec".into()))?;
        let kind = spec_kind(spec)
            .map_err(|why| at_uri(Error::new(ErrorKind::UnsupportedAlgorithm, why)))?;
        if metadata.key_usage() != Some(&KeyUsageType::SignVerify) {
            let usage = metadata.key_usage().map_or("unknown", |u| u.as_str());
            return Err(invalid(format!(
                "the {} key's KeyUsage is {usage}, not SIGN_VERIFY: an SSH CA needs a signing \
                 key (usage is fixed at creation: create a SIGN_VERIFY key)",
                spec.as_str()
            )));
        }
        let key_arn = metadata.arn().unwrap_or(metadata.key_id()).to_owned();

        let fetched = retry
            .run("GetPublicKey", || async {
                client
                    .get_public_key()
                    .key_id(&key_arn)
                    .set_grant_tokens(grant_tokens.clone())
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("GetPublicKey", e))
            })
            .await
            .map_err(at_uri)?;
        let der = fetched
            .public_key()
            .ok_or_else(|| invalid("GetPublicKey answered without a public key".into()))?;
        let public = PublicKey::from_public_key_der(der.as_ref()).map_err(at_uri)?;
        if public.spec() != kind || fetched.key_spec().is_some_and(|s| s != spec) {
            return Err(invalid(format!(
                "GetPublicKey returned a {} key ({}) but DescribeKey says KeySpec {}",
                public.description(),
                fetched.key_spec().map_or("no KeySpec", KeySpec::as_str),
                spec.as_str()
            )));
        }
        let offered = fetched.signing_algorithms();
        let algorithms = offered_algorithms(kind, offered);
        if algorithms.is_empty() {
            let offered: Vec<&str> = offered.iter().map(SigningAlgorithmSpec::as_str).collect();
            let wanted: Vec<String> = kind
                .algorithms()
                .iter()
                .map(|a| signing_algorithm(*a).as_str().to_owned())
                .collect();
            return Err(invalid(format!(
                "the {} key offers {}, none of {} that kmssh signs with",
                spec.as_str(),
                offered.join(", "),
                wanted.join(", ")
            )));
        }
        Ok(VerifiedSigner::new(Self {
            uri: uri.clone(),
            client,
            key_arn,
            public,
            algorithms,
            retry,
            grant_tokens: options.grant_tokens.clone(),
        }))
    }

    /// The ARN the key was pinned to at open.
    #[must_use]
    pub fn key_arn(&self) -> &str {
        &self.key_arn
    }
}

#[async_trait]
impl RawSigner for AwsKmsKey {
    fn uri(&self) -> &KeyUri {
        &self.uri
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// What the key's `SigningAlgorithms` allow of what kmssh signs with: RSA
    /// `RSASSA_PKCS1_V1_5_SHA_512`, `_256`, `_384` in that order (never PSS); Ed25519
    /// `ED25519_SHA_512` only.
    fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// [`MAX_RAW_MESSAGE_LEN`] for Ed25519, whose message goes to KMS whole.
    fn max_message_len(&self) -> Option<usize> {
        (self.public.family() == KeyFamily::Ed25519).then_some(MAX_RAW_MESSAGE_LEN)
    }

    async fn sign_unverified(&self, payload: &SigningPayload<'_>) -> Result<Signature> {
        let algorithm = payload.algorithm();
        // Pre-hashed algorithms send the digest; Ed25519 (ED25519_SHA_512) signs the
        // message itself, which KMS takes only as RAW.
        let message_type = if algorithm.is_prehashed() {
            MessageType::Digest
        } else {
            MessageType::Raw
        };
        // KMS's `Message` holds 1 to 4096 bytes: the upper bound is checked before this
        // (max_message_len), an empty message here, before any call.
        if payload.as_bytes().is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "AWS KMS signs {algorithm} messages of 1 to {MAX_RAW_MESSAGE_LEN} bytes; \
                     the message is empty"
                ),
            )
            .with_context("field", "message"));
        }
        let grant_tokens = (!self.grant_tokens.is_empty()).then(|| self.grant_tokens.clone());
        let signed = self
            .retry
            .run("Sign", || async {
                self.client
                    .sign()
                    .key_id(&self.key_arn)
                    .message(Blob::new(payload.as_bytes()))
                    .message_type(message_type.clone())
                    .signing_algorithm(signing_algorithm(algorithm))
                    .set_grant_tokens(grant_tokens.clone())
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("Sign", e))
            })
            .await?;
        let bytes = signed.signature().ok_or_else(|| {
            Error::new(ErrorKind::BadSignature, "Sign answered without a signature")
        })?;
        // DER for ECDSA, the modulus-length integer for RSA, 64 bytes for Ed25519.
        Signature::from_bytes(algorithm, bytes.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_arns_and_aliases_are_accepted() {
        for ok in [
            "aws-kms:1234abcd-12ab-34cd-56ef-1234567890ab",
            "aws-kms:arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "aws-kms:alias/ssh-user-ca",
            "aws-kms:arn:aws:kms:eu-west-1:111122223333:alias/ssh-user-ca",
        ] {
            assert!(key_id(&KeyUri::parse(ok).expect("uri")).is_ok(), "{ok}");
        }
        for bad in [
            "aws-kms:alias/",
            "aws-kms:arn:aws:kms:eu-west-1:111122223333:grant/x",
        ] {
            let err = key_id(&KeyUri::parse(bad).expect("uri")).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidUri, "{bad}");
        }
    }

    #[test]
    fn arns_name_their_region() {
        assert_eq!(
            arn_region("arn:aws:kms:eu-west-1:111122223333:key/1234abcd"),
            Some("eu-west-1")
        );
        assert_eq!(
            arn_region("arn:aws-cn:kms:cn-north-1:111122223333:alias/ca"),
            Some("cn-north-1")
        );
        assert_eq!(arn_region("alias/ssh-user-ca"), None);
        assert_eq!(arn_region("1234abcd-12ab-34cd-56ef-1234567890ab"), None);
        assert_eq!(arn_region("arn:aws:s3:::bucket"), None);
    }

    #[test]
    fn supported_specs_map_and_the_rest_are_refused_by_name() {
        use kmssh_core::KeySpec as Kind;
        for (spec, kind) in [
            (KeySpec::EccNistP384, Kind::Ecdsa(Curve::P384)),
            (KeySpec::Rsa2048, Kind::Rsa(2048)),
            (KeySpec::Rsa4096, Kind::Rsa(4096)),
            (KeySpec::EccNistEdwards25519, Kind::Ed25519),
        ] {
            assert_eq!(spec_kind(&spec), Ok(kind), "{spec:?}");
        }
        for name in SUPPORTED_KEY_SPECS {
            assert!(spec_kind(&KeySpec::from(name)).is_ok(), "{name}");
        }
        for refused in [
            "ECC_SECG_P256K1",
            "HMAC_256",
            "SYMMETRIC_DEFAULT",
            "SM2",
            "ML_DSA_65",
            "ML_KEM_768",
            "SOMETHING_NEW",
        ] {
            let why = spec_kind(&KeySpec::from(refused)).expect_err(refused);
            assert!(why.starts_with(&format!("KeySpec {refused} ")), "{why}");
            assert!(why.contains("ECC_NIST_EDWARDS25519"), "{why}");
            assert!(!why.contains('\n'), "{why}");
        }
    }

    #[test]
    fn algorithms_are_what_the_key_offers_in_our_order() {
        use SigningAlgorithmSpec as S;
        let all_rsa = [
            S::RsassaPkcs1V15Sha256,
            S::RsassaPkcs1V15Sha384,
            S::RsassaPkcs1V15Sha512,
            S::RsassaPssSha256,
            S::RsassaPssSha384,
            S::RsassaPssSha512,
        ];
        assert_eq!(
            offered_algorithms(kmssh_core::KeySpec::Rsa(3072), &all_rsa),
            Algorithm::RSA
        );
        assert_eq!(
            offered_algorithms(
                kmssh_core::KeySpec::Rsa(2048),
                &[S::RsassaPssSha512, S::RsassaPkcs1V15Sha256]
            ),
            [Algorithm::RsaPkcs1Sha256]
        );
        assert!(
            offered_algorithms(kmssh_core::KeySpec::Rsa(2048), &[S::RsassaPssSha256]).is_empty()
        );
        assert_eq!(
            offered_algorithms(
                kmssh_core::KeySpec::Ed25519,
                &[S::Ed25519Sha512, S::Ed25519PhSha512]
            ),
            [Algorithm::Ed25519]
        );
        // Ed25519ph is not ssh-ed25519.
        assert!(offered_algorithms(kmssh_core::KeySpec::Ed25519, &[S::Ed25519PhSha512]).is_empty());
        assert_eq!(
            offered_algorithms(kmssh_core::KeySpec::Ecdsa(Curve::P521), &[S::EcdsaSha512]),
            [Algorithm::EcdsaP521Sha512]
        );
        for algorithm in Algorithm::ALL {
            assert!(
                !signing_algorithm(algorithm).as_str().contains("PSS")
                    && signing_algorithm(algorithm) != S::Ed25519PhSha512,
                "{algorithm}"
            );
        }
    }
}
