//! kmssh's AWS KMS backend: signs with an asymmetric `SIGN_VERIFY` key of spec
//! `ECC_NIST_P256`, `ECC_NIST_P384` or `ECC_NIST_P521` through `aws-sdk-kms`.
//!
//! ```text
//! aws-kms:1234abcd-12ab-34cd-56ef-1234567890ab
//! aws-kms:arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
//! aws-kms:alias/ssh-user-ca
//! aws-kms:arn:aws:kms:eu-west-1:111122223333:alias/ssh-user-ca
//! ```
//!
//! Configuration comes from the standard AWS chain (`AWS_REGION`, `AWS_PROFILE`,
//! `AWS_ENDPOINT_URL_KMS`, environment credentials, profiles, IMDS…) as `aws-config`
//! loads it, and from [`AwsKmsOptions`] for what code wants to set explicitly.
//!
//! Opening a key costs one `DescribeKey` and one `GetPublicKey`; the public key is cached
//! for the key's lifetime, and the key is pinned by ARN (an alias re-pointed later does
//! not change which key signs). Each signature is one `Sign` call with
//! `MessageType=DIGEST` (the message is hashed locally, so any size works), and is
//! verified against the cached public key before it is returned. Throttling, 5xx answers,
//! dropped connections and timed-out attempts are retried with jittered exponential
//! backoff inside a deadline; permanent errors are not.
//!
//! Linking this crate registers the `aws-kms:` scheme (`use kmssh_backend_aws as _;`).

#![forbid(unsafe_code)]

mod error;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec};
use kmssh_core::{
    Algorithm, Backend, EcPublicKey, EcdsaSignature, Error, ErrorKind, KeyUri, KmsKey, OpenFuture,
    RawSigner, Result, RetryPolicy, VerifiedSigner,
};

use crate::error::map_sdk_error;

/// The key URI scheme this backend serves.
pub const SCHEME: &str = "aws-kms";

/// The key specs this backend signs with.
pub const SUPPORTED_KEY_SPECS: [&str; 3] = ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"];

/// What to set explicitly; everything left `None` comes from the standard AWS chain.
#[derive(Clone, Debug, Default)]
pub struct AwsKmsOptions {
    /// The region (else `AWS_REGION` / the profile).
    pub region: Option<String>,
    /// An endpoint URL override (else `AWS_ENDPOINT_URL_KMS` / `AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// Static credentials (else the default credential chain).
    pub credentials: Option<aws_sdk_kms::config::Credentials>,
    /// The longest one API call may take (default 10 s).
    pub call_timeout: Option<Duration>,
    /// Backoff and overall deadline for each operation (default: [`RetryPolicy::default`]).
    pub retry: Option<RetryPolicy>,
    /// Grant tokens to send with `Sign`; none are sent unless given here.
    pub grant_tokens: Vec<String>,
}

/// Default per-call timeout.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl AwsKmsOptions {
    /// Builds an SDK client: the standard chain plus these overrides, with the SDK's own
    /// retries off (kmssh's [`RetryPolicy`] is the one retry loop).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when no region can be found.
    pub async fn client(&self) -> Result<aws_sdk_kms::Client> {
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;
        let call_timeout = self.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT);
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(call_timeout)
                    .connect_timeout(call_timeout.min(Duration::from_secs(5)))
                    .build(),
            );
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(credentials) = &self.credentials {
            loader = loader.credentials_provider(credentials.clone());
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(Error::new(
                ErrorKind::Config,
                "no AWS region: set AWS_REGION (or a profile region), or the region option",
            ));
        }
        Ok(aws_sdk_kms::Client::new(&config))
    }
}

/// An AWS KMS key, opened and checked; wrap-free use goes through [`AwsKmsKey::open`],
/// which returns it inside [`VerifiedSigner`].
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

impl AwsKmsKey {
    /// Opens a key with a client built from `options` (see [`AwsKmsOptions::client`]).
    ///
    /// # Errors
    /// As [`AwsKmsKey::open_with_client`], or [`ErrorKind::Config`] without a region.
    pub async fn open(uri: &KeyUri, options: &AwsKmsOptions) -> Result<VerifiedSigner<Self>> {
        let client = options
            .client()
            .await
            .map_err(|e| e.with_context("uri", uri))?;
        Self::open_with_client(uri, client, options).await
    }

    /// Opens a key with a client the caller built: one `DescribeKey` and one
    /// `GetPublicKey`, then the checks below.
    ///
    /// # Errors
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
        let at_uri = |e: Error| e.with_context("uri", uri);

        let described = retry
            .run("DescribeKey", || async {
                client
                    .describe_key()
                    .key_id(id)
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

fn open_registered(uri: KeyUri) -> OpenFuture {
    Box::pin(async move {
        let key: Arc<dyn KmsKey> =
            Arc::new(AwsKmsKey::open(&uri, &AwsKmsOptions::default()).await?);
        Ok(key)
    })
}

inventory::submit! {
    Backend {
        scheme: SCHEME,
        description: "AWS KMS: aws-kms:<key id | key ARN | alias/NAME | alias ARN>, ECC_NIST_P256/P384/P521 SIGN_VERIFY keys",
        open: open_registered,
    }
}
