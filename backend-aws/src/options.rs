//! [`AwsKmsOptions`]: what code sets explicitly on top of the standard AWS chain, and the
//! SDK client built from it (the default credential chain resolved once, within a bound,
//! before the client is handed out).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use kmssh_core::{BackendOptions, DEFAULT_CALL_TIMEOUT, Error, ErrorKind, Result, RetryPolicy};

use crate::error::{credentials_error, is_not_loaded};

/// The EC2 instance metadata service's timeout when neither the option nor
/// `AWS_METADATA_SERVICE_TIMEOUT` says otherwise: the AWS CLI's 1 s.
pub const DEFAULT_IMDS_TIMEOUT: Duration = Duration::from_secs(1);

/// Attempts per instance metadata request when neither the option nor
/// `AWS_METADATA_SERVICE_NUM_ATTEMPTS` says otherwise: 2, one retry of a 5xx or 401 answer
/// (timeouts and refused connections are never retried: off EC2, the metadata address
/// answers nothing and a laptop should not wait for it). The SDK's own default is 4
/// attempts with backoff, the AWS CLI's 1.
pub const DEFAULT_IMDS_ATTEMPTS: u32 = 2;

/// What to set explicitly; everything left `None` comes from the standard AWS chain.
#[derive(Clone, Debug, Default)]
pub struct AwsKmsOptions {
    /// The region (else `AWS_REGION` / the profile). A key or alias ARN names its own
    /// region, which is used whatever the environment says; setting this option to a
    /// different region than the ARN's is a configuration error.
    pub region: Option<String>,
    /// An endpoint URL override (else `AWS_ENDPOINT_URL_KMS` / `AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// Static credentials (else the default credential chain).
    pub credentials: Option<aws_sdk_kms::config::Credentials>,
    /// The longest one API call may take (default [`DEFAULT_CALL_TIMEOUT`]).
    pub call_timeout: Option<Duration>,
    /// Backoff and overall deadline for each operation (default: [`RetryPolicy::default`]).
    /// Its deadline also bounds resolving credentials when the client is built.
    pub retry: Option<RetryPolicy>,
    /// Grant tokens to send with every call (`DescribeKey`, `GetPublicKey`, `Sign`); none
    /// are sent unless given here.
    pub grant_tokens: Vec<String>,
    /// How long each request to the EC2 instance metadata service (IMDS, the last source
    /// of the credential chain) may wait to connect and to be answered (else
    /// `AWS_METADATA_SERVICE_TIMEOUT` in seconds, else [`DEFAULT_IMDS_TIMEOUT`]).
    pub imds_timeout: Option<Duration>,
    /// Attempts per IMDS request (else `AWS_METADATA_SERVICE_NUM_ATTEMPTS`, else
    /// [`DEFAULT_IMDS_ATTEMPTS`]).
    pub imds_attempts: Option<u32>,
}

impl BackendOptions for AwsKmsOptions {
    /// The defaults: `aws-config` reads the standard AWS environment (region, endpoint,
    /// profile, credential chain) itself when the client is built, so kmssh adds no
    /// variables of its own.
    fn from_env() -> Result<Self> {
        Ok(Self::default())
    }
}

/// A variable's value parsed, `None` when unset or empty, a configuration error when
/// it does not parse.
fn env_value<T>(name: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => parse(value.trim()).map(Some).ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!("{name}={value:?} is not a valid value"),
            )
        }),
        _ => Ok(None),
    }
}

impl AwsKmsOptions {
    /// The IMDS timeout and attempt count in force (options, environment, defaults).
    fn imds_settings(&self) -> Result<(Duration, u32)> {
        let timeout = match self.imds_timeout {
            Some(timeout) => timeout,
            None => env_value("AWS_METADATA_SERVICE_TIMEOUT", |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                    .map(Duration::from_secs_f64)
            })?
            .unwrap_or(DEFAULT_IMDS_TIMEOUT),
        };
        let attempts = match self.imds_attempts {
            Some(attempts) => attempts.max(1),
            None => env_value("AWS_METADATA_SERVICE_NUM_ATTEMPTS", |v| {
                v.parse::<u32>().ok().filter(|n| (1..=10).contains(n))
            })?
            .unwrap_or(DEFAULT_IMDS_ATTEMPTS),
        };
        Ok((timeout, attempts))
    }

    /// Builds an SDK client: the standard chain plus these overrides, with the SDK's own
    /// retries off for KMS calls (kmssh's [`RetryPolicy`] is the one retry loop).
    ///
    /// Unless static credentials are given, the SDK's default credential chain
    /// (environment, profile with SSO and `credential_process`, web identity, ECS, IMDS
    /// with a short bound) is resolved here, once, within the retry deadline; the
    /// credentials found are the client's first, and the chain refreshes them later.
    /// STS and SSO calls inside the chain keep the SDK's standard retries (kmssh's loop
    /// does not retry credentials) under the per-call timeouts.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when no region can be found or an IMDS setting does not
    /// parse; [`ErrorKind::Unauthenticated`] when the credential chain finds nothing,
    /// fails or does not answer in time, naming the sources it tried.
    pub async fn client(&self) -> Result<aws_sdk_kms::Client> {
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;
        let call_timeout = self.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT);
        let deadline = self.retry.unwrap_or_default().deadline;
        let timeouts = TimeoutConfig::builder()
            .operation_attempt_timeout(call_timeout)
            .connect_timeout(call_timeout.min(Duration::from_secs(5)))
            .build();
        let conf = ProviderConfig::default()
            .with_behavior_version(Some(aws_config::BehaviorVersion::latest()))
            .with_timeout_config(timeouts.clone());
        let imds = self.imds_client(&conf)?;
        // The region is resolved once (the option, else AWS_REGION / AWS_DEFAULT_REGION,
        // the profile, IMDS) and given to the client and the credential chain alike.
        let region = match &self.region {
            Some(region) => Some(aws_config::Region::new(region.clone())),
            None => {
                aws_config::meta::region::RegionProviderChain::first_try(
                    aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
                )
                .or_else(aws_config::profile::region::ProfileFileRegionProvider::new())
                .or_else(
                    aws_config::imds::region::ImdsRegionProvider::builder()
                        .imds_client(imds.clone())
                        .build(),
                )
                .region()
                .await
            }
        };
        let Some(region) = region else {
            return Err(Error::new(
                ErrorKind::Config,
                "no AWS region: set AWS_REGION (or a profile region), the region option, \
                 or name the key by its ARN",
            ));
        };
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(region.clone())
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts)
            .identity_cache(
                aws_config::identity::IdentityCache::lazy()
                    .load_timeout(deadline)
                    .build(),
            );
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        let chain = match &self.credentials {
            Some(credentials) => {
                loader = loader.credentials_provider(credentials.clone());
                None
            }
            None => {
                let chain = DefaultCredentialsChain::builder()
                    .configure(conf)
                    .region(region)
                    .imds_client(imds)
                    .build()
                    .await;
                let chain = Primed::new(SharedCredentialsProvider::new(chain));
                loader = loader.credentials_provider(chain.clone());
                Some(chain)
            }
        };
        let config = loader.load().await;
        if let Some(chain) = chain {
            chain.prime(deadline).await?;
        }
        Ok(aws_sdk_kms::Client::new(&config))
    }

    /// The instance metadata client of the credential and region chains, bounded
    /// ([`AwsKmsOptions::imds_timeout`], [`AwsKmsOptions::imds_attempts`]) so that a
    /// machine off EC2 learns in about a second that it has neither.
    fn imds_client(&self, conf: &ProviderConfig) -> Result<aws_config::imds::Client> {
        let (imds_timeout, imds_attempts) = self.imds_settings()?;
        // A metadata GET fetches its session token (with its own retries) inside its
        // attempt, so one attempt's bound covers every try of the token and the worst
        // backoffs between them (the standard strategy's 1 s doubling, jittered below).
        let backoffs: Duration = (0..imds_attempts.saturating_sub(1))
            .map(|i| Duration::from_secs(1u64 << i.min(4)).min(Duration::from_secs(20)))
            .sum();
        let bound = imds_timeout * 2 * imds_attempts + backoffs;
        Ok(aws_config::imds::Client::builder()
            .configure(conf)
            .max_attempts(imds_attempts)
            .connect_timeout(imds_timeout)
            .read_timeout(imds_timeout)
            .operation_attempt_timeout(bound)
            .operation_timeout(bound)
            .build())
    }
}

/// The default chain, with the credentials resolved when the client was built handed to
/// the SDK's identity cache on its first request (so the chain runs once, not twice:
/// `credential_process` and STS/SSO calls are not repeated); later requests go to the
/// chain, which the cache calls when the credentials near their expiry.
#[derive(Clone, Debug)]
struct Primed {
    chain: SharedCredentialsProvider,
    first: Arc<Mutex<Option<Credentials>>>,
}

impl Primed {
    fn new(chain: SharedCredentialsProvider) -> Self {
        Self {
            chain,
            first: Arc::new(Mutex::new(None)),
        }
    }

    /// Resolves the chain once within `deadline`.
    async fn prime(&self, deadline: Duration) -> Result<()> {
        match tokio::time::timeout(deadline, self.chain.provide_credentials()).await {
            Ok(Ok(credentials)) => {
                *self.first.lock().unwrap_or_else(PoisonError::into_inner) = Some(credentials);
                Ok(())
            }
            // When nothing was found the message names every source and why: no cause.
            Ok(Err(err)) if is_not_loaded(&err) => Err(credentials_error(&err)),
            Ok(Err(err)) => Err(credentials_error(&err).with_source(err)),
            Err(_) => Err(credentials_error(
                &provider::error::CredentialsError::provider_timed_out(deadline),
            )),
        }
    }
}

impl ProvideCredentials for Primed {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let first = self
            .first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .filter(|c| c.expiry().is_none_or(|expiry| expiry > SystemTime::now()));
        match first {
            Some(credentials) => provider::future::ProvideCredentials::ready(Ok(credentials)),
            None => self.chain.provide_credentials(),
        }
    }

    fn fallback_on_interrupt(&self) -> Option<Credentials> {
        self.chain.fallback_on_interrupt()
    }
}
