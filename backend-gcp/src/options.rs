//! [`GcpKmsOptions`]: the endpoint, credentials, timeouts and retries, how the environment
//! fills them for keys opened by URI alone, and the client built from them.

use std::time::Duration;

use google_cloud_kms_v1::client::KeyManagementService;
use kmssh_core::{BackendOptions, DEFAULT_CALL_TIMEOUT, Error, ErrorKind, Result, RetryPolicy};

/// `KMSSH_GCP_ENDPOINT`: [`GcpKmsOptions::endpoint`] for keys opened through the registry
/// without options (a Private Service Connect endpoint, an emulator).
pub const ENDPOINT_ENV: &str = "KMSSH_GCP_ENDPOINT";
/// `KMSSH_GCP_ANONYMOUS=true`: [`GcpKmsOptions::anonymous`] for keys opened through the
/// registry without options (emulators only).
pub const ANONYMOUS_ENV: &str = "KMSSH_GCP_ANONYMOUS";

/// What to set explicitly; by default the client reaches Google with Application
/// Default Credentials.
#[derive(Clone, Debug, Default)]
pub struct GcpKmsOptions {
    /// An endpoint override (`https://…` or, for an emulator, `http://127.0.0.1:PORT`).
    pub endpoint: Option<String>,
    /// Use no credentials at all (emulators only).
    pub anonymous: bool,
    /// The longest one API call may take (default [`DEFAULT_CALL_TIMEOUT`]).
    pub call_timeout: Option<Duration>,
    /// Backoff and deadline for each operation (default: [`RetryPolicy::default`]).
    pub retry: Option<RetryPolicy>,
}

impl BackendOptions for GcpKmsOptions {
    /// [`ENDPOINT_ENV`] and [`ANONYMOUS_ENV`]; everything else default (Application
    /// Default Credentials find their own environment when the client is built).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when [`ANONYMOUS_ENV`] is not a yes/no value.
    fn from_env() -> Result<Self> {
        Ok(Self {
            endpoint: kmssh_core::env_setting(ENDPOINT_ENV),
            anonymous: kmssh_core::env_flag(ANONYMOUS_ENV)?.unwrap_or(false),
            ..Self::default()
        })
    }
}

impl GcpKmsOptions {
    /// Builds a client: ADC (or anonymous), the endpoint override, and no retries of the
    /// SDK's own (kmssh's [`RetryPolicy`] is the one retry loop).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when credentials cannot be found or the client cannot start.
    pub async fn client(&self) -> Result<KeyManagementService> {
        let mut builder = KeyManagementService::builder()
            .with_retry_policy(google_cloud_gax::retry_policy::NeverRetry)
            .with_attempt_timeout(self.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT));
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        if self.anonymous {
            builder = builder.with_credentials(
                google_cloud_auth::credentials::anonymous::Builder::new().build(),
            );
        }
        builder.build().await.map_err(|e| {
            Error::new(
                ErrorKind::Config,
                "cannot create the Cloud KMS client (Application Default Credentials?)",
            )
            .with_source(e)
        })
    }
}
