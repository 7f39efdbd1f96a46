//! [`AwsKmsKey`]: a KMS key opened and checked (`DescribeKey`, `GetPublicKey`), pinned by
//! ARN, signing digests with `Sign`.

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec};
use kmssh_core::{
    Algorithm, EcPublicKey, EcdsaSignature, Error, ErrorKind, KeyUri, RawSigner, Result,
    RetryPolicy, VerifiedSigner,
};

use crate::AwsKmsOptions;
use crate::error::map_sdk_error;

/// The key specs this backend signs with.
pub const SUPPORTED_KEY_SPECS: [&str; 3] = ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"];

/// An AWS KMS key, opened and checked; [`AwsKmsKey::open`] returns it inside
/// [`VerifiedSigner`], which checks every signature before handing it out.
#[derive(Debug)]
pub struct AwsKmsKey {
    uri: KeyUri,
    client: aws_sdk_kms::Client,
    key_arn: String,
    public: EcPublicKey,
    signing_algorithm: SigningAlgorithmSpec,
    retry: RetryPolicy,
    grant_tokens: Vec<String>,
}

/// The algorithm kmssh signs with for a key spec, and the KMS name for it. A `_` arm is
/// right here: `KeySpec` is the provider's open enum (RSA, SM2, HMAC, ML-DSA…).
fn spec_algorithm(spec: &KeySpec) -> Option<(Algorithm, SigningAlgorithmSpec)> {
    match spec {
        KeySpec::EccNistP256 => Some((
            Algorithm::EcdsaP256Sha256,
            SigningAlgorithmSpec::EcdsaSha256,
        )),
        KeySpec::EccNistP384 => Some((
            Algorithm::EcdsaP384Sha384,
            SigningAlgorithmSpec::EcdsaSha384,
        )),
        KeySpec::EccNistP521 => Some((
            Algorithm::EcdsaP521Sha512,
            SigningAlgorithmSpec::EcdsaSha512,
        )),
        _ => None,
    }
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
    /// `SIGN_VERIFY`, or whose public key disagrees with its spec;
    /// [`ErrorKind::UnsupportedAlgorithm`] for a spec other than the three NIST curves;
    /// provider failures mapped to kinds after retries.
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
        if metadata.key_usage() != Some(&KeyUsageType::SignVerify) {
            let usage = metadata.key_usage().map_or("unknown", |u| u.as_str());
            return Err(invalid(format!(
                "KeyUsage is {usage}, not SIGN_VERIFY: an SSH CA needs a signing key"
            )));
        }
        let spec = metadata
            .key_spec()
            .ok_or_else(|| invalid("DescribeKey gave no KeySpec".into()))?;
        let (algorithm, signing_algorithm) = spec_algorithm(spec).ok_or_else(|| {
            at_uri(Error::new(
                ErrorKind::UnsupportedAlgorithm,
                format!(
                    "KeySpec {} is not supported: kmssh signs with {}",
                    spec.as_str(),
                    SUPPORTED_KEY_SPECS.join(", ")
                ),
            ))
        })?;
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
        let public = EcPublicKey::from_public_key_der(der.as_ref()).map_err(at_uri)?;
        if public.algorithm() != algorithm || fetched.key_spec().is_some_and(|s| s != spec) {
            return Err(invalid(format!(
                "GetPublicKey returned a {} key but DescribeKey says KeySpec {}",
                public.algorithm(),
                spec.as_str()
            )));
        }
        let offered = fetched.signing_algorithms();
        if !offered.is_empty() && !offered.contains(&signing_algorithm) {
            let offered: Vec<&str> = offered.iter().map(SigningAlgorithmSpec::as_str).collect();
            return Err(invalid(format!(
                "the key offers {offered:?}, not {} which its KeySpec {} requires",
                signing_algorithm.as_str(),
                spec.as_str()
            )));
        }
        Ok(VerifiedSigner::new(Self {
            uri: uri.clone(),
            client,
            key_arn,
            public,
            signing_algorithm,
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

    fn public_key(&self) -> &EcPublicKey {
        &self.public
    }

    async fn sign_digest_unverified(&self, digest: &[u8]) -> Result<EcdsaSignature> {
        let grant_tokens = (!self.grant_tokens.is_empty()).then(|| self.grant_tokens.clone());
        let signed = self
            .retry
            .run("Sign", || async {
                self.client
                    .sign()
                    .key_id(&self.key_arn)
                    .message(Blob::new(digest))
                    .message_type(MessageType::Digest)
                    .signing_algorithm(self.signing_algorithm.clone())
                    .set_grant_tokens(grant_tokens.clone())
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("Sign", e))
            })
            .await?;
        let der = signed.signature().ok_or_else(|| {
            Error::new(ErrorKind::BadSignature, "Sign answered without a signature")
        })?;
        EcdsaSignature::from_der(self.public.algorithm(), der.as_ref())
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
    fn only_the_three_nist_specs_sign() {
        assert_eq!(
            spec_algorithm(&KeySpec::EccNistP384).map(|(a, _)| a),
            Some(Algorithm::EcdsaP384Sha384)
        );
        assert!(spec_algorithm(&KeySpec::Rsa2048).is_none());
        assert!(spec_algorithm(&KeySpec::EccSecgP256K1).is_none());
    }
}
