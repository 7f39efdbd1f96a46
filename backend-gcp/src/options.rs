//! [`GcpKmsOptions`]: the endpoint, credentials, timeouts, retries and the key-choice
//! opt-ins, how the environment fills them for keys opened by URI alone, and the client
//! built from them.

use std::fmt;
use std::time::Duration;

use google_cloud_auth::credentials::Credentials;
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::ProtectionLevel;
use kmssh_core::{BackendOptions, DEFAULT_CALL_TIMEOUT, Error, ErrorKind, Result, RetryPolicy};

use crate::credentials;

/// `KMSSH_GCP_ENDPOINT`: [`GcpKmsOptions::endpoint`] for keys opened through the registry
/// without options (a Private Service Connect endpoint, an emulator).
pub const ENDPOINT_ENV: &str = "KMSSH_GCP_ENDPOINT";
/// `KMSSH_GCP_ANONYMOUS=true`: [`GcpKmsOptions::anonymous`] for keys opened through the
/// registry without options (emulators only).
pub const ANONYMOUS_ENV: &str = "KMSSH_GCP_ANONYMOUS";

/// A Cloud KMS protection level a key version can be required to have
/// ([`GcpKmsOptions::required_protection`], `?protection=` in a key URI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protection {
    /// `SOFTWARE`: the key is kept and used in Google's software.
    Software,
    /// `HSM` (or `HSM_SINGLE_TENANT`): the key never leaves a Cloud HSM.
    Hsm,
    /// `EXTERNAL`: the key is in an external key manager, reached over the internet.
    External,
    /// `EXTERNAL_VPC`: the key is in an external key manager, reached through a VPC.
    ExternalVpc,
}

impl Protection {
    /// Every level, in the order they are listed in messages.
    pub const ALL: [Self; 4] = [Self::Software, Self::Hsm, Self::External, Self::ExternalVpc];

    /// The URI spelling: `software`, `hsm`, `external`, `external-vpc`.
    #[must_use]
    pub fn uri_value(self) -> &'static str {
        match self {
            Self::Software => "software",
            Self::Hsm => "hsm",
            Self::External => "external",
            Self::ExternalVpc => "external-vpc",
        }
    }

    /// Cloud KMS's name: `SOFTWARE`, `HSM`, `EXTERNAL`, `EXTERNAL_VPC`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Software => "SOFTWARE",
            Self::Hsm => "HSM",
            Self::External => "EXTERNAL",
            Self::ExternalVpc => "EXTERNAL_VPC",
        }
    }

    /// Parses a URI value or a Cloud KMS name, any case (`hsm`, `HSM`, `external_vpc`).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL.into_iter().find(|p| p.uri_value() == wanted)
    }

    /// Whether a version of `level` has this protection (`HSM_SINGLE_TENANT` is an HSM).
    pub(crate) fn admits(self, level: &ProtectionLevel) -> bool {
        matches!(
            (self, level),
            (Self::Software, ProtectionLevel::Software)
                | (
                    Self::Hsm,
                    ProtectionLevel::Hsm | ProtectionLevel::HsmSingleTenant
                )
                | (Self::External, ProtectionLevel::External)
                | (Self::ExternalVpc, ProtectionLevel::ExternalVpc)
        )
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to set explicitly; by default the client reaches Google with Application
/// Default Credentials.
#[derive(Clone, Debug, Default)]
pub struct GcpKmsOptions {
    /// An endpoint override (`https://…` or, for an emulator, `http://127.0.0.1:PORT`).
    pub endpoint: Option<String>,
    /// Use no credentials at all (emulators only).
    pub anonymous: bool,
    /// Credentials built in code (any `google-cloud-auth` builder) instead of
    /// Application Default Credentials; not together with [`GcpKmsOptions::anonymous`].
    pub credentials: Option<Credentials>,
    /// The longest one API call may take (default [`DEFAULT_CALL_TIMEOUT`]).
    pub call_timeout: Option<Duration>,
    /// Backoff and deadline for each operation (default: [`RetryPolicy::default`]).
    pub retry: Option<RetryPolicy>,
    /// Opt-in: a key URI naming a crypto key without a version opens the key's newest
    /// `ENABLED` version (the highest version number), as `?version=latest` does. It
    /// costs a `cryptoKeyVersions.list` call (permission
    /// `cloudkms.cryptoKeyVersions.list`) at open; the version is then fixed for the
    /// key's lifetime. URIs naming a version are not affected.
    pub resolve_latest_version: bool,
    /// Refuse key versions of any other protection level (as `?protection=hsm` does). A
    /// URI's own `protection=` must agree with it.
    pub required_protection: Option<Protection>,
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

/// A client and where its credentials came from.
pub(crate) struct Connection {
    pub client: KeyManagementService,
    /// For authentication and permission errors; `None` for anonymous access.
    pub credentials: Option<String>,
}

impl GcpKmsOptions {
    /// Builds a client: the credentials (given, anonymous, or Application Default
    /// Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's well-known file, the
    /// metadata server after a probe bounded by
    /// [`METADATA_PROBE_TIMEOUT`](crate::METADATA_PROBE_TIMEOUT)), the endpoint
    /// override, and no retries of the SDK's own (kmssh's [`RetryPolicy`] is the one
    /// retry loop).
    ///
    /// # Errors
    /// [`ErrorKind::Unauthenticated`] when no credentials can be found (naming the
    /// sources tried) or the ones found cannot be used; [`ErrorKind::Config`] when
    /// options contradict each other or the client cannot start.
    pub async fn client(&self) -> Result<KeyManagementService> {
        Ok(self.connect().await?.client)
    }

    pub(crate) async fn connect(&self) -> Result<Connection> {
        let (credentials, source) = match (&self.credentials, self.anonymous) {
            (Some(_), true) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "GcpKmsOptions: credentials and anonymous are both set; choose one",
                ));
            }
            (Some(given), false) => (given.clone(), Some("credentials given in code".into())),
            (None, true) => (
                google_cloud_auth::credentials::anonymous::Builder::new().build(),
                None,
            ),
            (None, false) => {
                let found = credentials::application_default().await?;
                (found.credentials, Some(found.source))
            }
        };
        let mut builder = KeyManagementService::builder()
            .with_retry_policy(google_cloud_gax::retry_policy::NeverRetry)
            .with_attempt_timeout(self.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT))
            .with_credentials(credentials);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let client = builder.build().await.map_err(|e| {
            Error::new(ErrorKind::Config, "cannot create the Cloud KMS client").with_source(e)
        })?;
        Ok(Connection {
            client,
            credentials: source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protection_levels_parse_in_uri_and_cloud_spellings() {
        for (text, level) in [
            ("hsm", Protection::Hsm),
            ("HSM", Protection::Hsm),
            ("software", Protection::Software),
            ("external-vpc", Protection::ExternalVpc),
            ("EXTERNAL_VPC", Protection::ExternalVpc),
        ] {
            assert_eq!(Protection::parse(text), Some(level), "{text}");
        }
        assert_eq!(Protection::parse("hardware"), None);
        assert!(Protection::Hsm.admits(&ProtectionLevel::HsmSingleTenant));
        assert!(!Protection::Hsm.admits(&ProtectionLevel::Software));
        assert!(!Protection::Software.admits(&ProtectionLevel::Unspecified));
    }
}
