//! [`AwsKmsOptions`]: what code sets explicitly on top of the standard AWS chain, and the
//! SDK client built from it.

use std::time::Duration;

use kmssh_core::{BackendOptions, DEFAULT_CALL_TIMEOUT, Error, ErrorKind, Result, RetryPolicy};

/// What to set explicitly; everything left `None` comes from the standard AWS chain.
#[derive(Clone, Debug, Default)]
pub struct AwsKmsOptions {
    /// The region (else `AWS_REGION` / the profile).
    pub region: Option<String>,
    /// An endpoint URL override (else `AWS_ENDPOINT_URL_KMS` / `AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// Static credentials (else the default credential chain).
    pub credentials: Option<aws_sdk_kms::config::Credentials>,
    /// The longest one API call may take (default [`DEFAULT_CALL_TIMEOUT`]).
    pub call_timeout: Option<Duration>,
    /// Backoff and overall deadline for each operation (default: [`RetryPolicy::default`]).
    pub retry: Option<RetryPolicy>,
    /// Grant tokens to send with `Sign`; none are sent unless given here.
    pub grant_tokens: Vec<String>,
}

impl BackendOptions for AwsKmsOptions {
    /// The defaults: `aws-config` reads the standard AWS environment (region, endpoint,
    /// profile, credential chain) itself when the client is built, so kmssh adds no
    /// variables of its own.
    fn from_env() -> Result<Self> {
        Ok(Self::default())
    }
}

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
