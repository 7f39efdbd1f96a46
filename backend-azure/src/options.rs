//! [`AzureKeyVaultOptions`]: the credential, endpoint, trusted CA, timeouts and retries;
//! how the environment fills them for keys opened by URI alone; the credential chain;
//! and the Key Vault client built from them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use kmssh_core::{
    BackendOptions, DEFAULT_CALL_TIMEOUT, Error, ErrorKind, KeyUri, Result, RetryPolicy,
};

use crate::credential::AudienceGuard;
use crate::{CredentialChain, key_vault_resource, parse_key_url};

/// `KMSSH_AZURE_ENDPOINT`: [`AzureKeyVaultOptions::endpoint`] for keys opened through the
/// registry without options.
pub const ENDPOINT_ENV: &str = "KMSSH_AZURE_ENDPOINT";
/// `KMSSH_AZURE_CA_FILE`: a PEM file with an extra CA to trust
/// ([`AzureKeyVaultOptions::extra_ca_pem`]), for keys opened through the registry without
/// options.
pub const CA_FILE_ENV: &str = "KMSSH_AZURE_CA_FILE";
/// `KMSSH_AZURE_ACCESS_TOKEN`: a bearer token obtained elsewhere, used instead of the
/// credential chain for keys opened through the registry without options. Its audience
/// must be the key's host's: `az account get-access-token --resource
/// https://vault.azure.net` for a vault (`*.vault.azure.net`), `--resource
/// https://managedhsm.azure.net` for a Managed HSM (`*.managedhsm.azure.net`).
pub const ACCESS_TOKEN_ENV: &str = "KMSSH_AZURE_ACCESS_TOKEN";
/// `KMSSH_AZURE_VERIFY_CHALLENGE_RESOURCE=false`: accept an auth challenge whose resource
/// is not the vault's domain (needed with an endpoint on another host).
pub const VERIFY_CHALLENGE_RESOURCE_ENV: &str = "KMSSH_AZURE_VERIFY_CHALLENGE_RESOURCE";

/// What to set explicitly.
#[derive(Clone, Default)]
pub struct AzureKeyVaultOptions {
    /// Send requests to this `https://` endpoint instead of the URI's vault (a private
    /// endpoint, a proxy, an emulator). The URI still names the key.
    pub endpoint: Option<String>,
    /// An extra CA certificate (PEM) to trust, beside the system roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// The credential (default: [`CredentialChain::from_env`], the chain
    /// `DefaultAzureCredential` documents). Whichever it is, a token is only handed to a
    /// vault whose challenge asks for the audience of the key URI's host (Key Vault or
    /// Managed HSM, see [`key_vault_resource`]).
    pub credential: Option<Arc<dyn TokenCredential>>,
    /// Whether the auth challenge's resource must match the vault's domain (default true).
    pub verify_challenge_resource: Option<bool>,
    /// The longest one API call may take (default [`DEFAULT_CALL_TIMEOUT`]).
    pub call_timeout: Option<Duration>,
    /// Backoff and deadline for each operation (default: [`RetryPolicy::default`]).
    pub retry: Option<RetryPolicy>,
}

impl std::fmt::Debug for AzureKeyVaultOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKeyVaultOptions")
            .field("endpoint", &self.endpoint)
            .field("extra_ca_pem", &self.extra_ca_pem.as_ref().map(Vec::len))
            .field("credential", &self.credential.is_some())
            .field("verify_challenge_resource", &self.verify_challenge_resource)
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

impl BackendOptions for AzureKeyVaultOptions {
    /// [`ENDPOINT_ENV`], [`CA_FILE_ENV`], [`ACCESS_TOKEN_ENV`] and
    /// [`VERIFY_CHALLENGE_RESOURCE_ENV`]; everything else default (the credential chain
    /// reads its own environment when the client is built).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the CA file cannot be read or a flag is not yes/no.
    fn from_env() -> Result<Self> {
        let extra_ca_pem = match kmssh_core::env_setting(CA_FILE_ENV) {
            Some(path) => Some(std::fs::read(&path).map_err(|e| {
                Error::new(ErrorKind::Config, format!("{CA_FILE_ENV}={path}")).with_source(e)
            })?),
            None => None,
        };
        let credential = kmssh_core::env_setting(ACCESS_TOKEN_ENV).map(|token| {
            Arc::new(AccessTokenCredential::new(token.trim())) as Arc<dyn TokenCredential>
        });
        Ok(Self {
            endpoint: kmssh_core::env_setting(ENDPOINT_ENV),
            extra_ca_pem,
            credential,
            verify_challenge_resource: kmssh_core::env_flag(VERIFY_CHALLENGE_RESOURCE_ENV)?,
            ..Self::default()
        })
    }
}

impl AzureKeyVaultOptions {
    /// Builds a client for the vault `uri` names (or [`AzureKeyVaultOptions::endpoint`]):
    /// the credential, the extra CA, the per-call timeout, and no retries of the SDK's own
    /// (kmssh's [`RetryPolicy`] is the one retry loop).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidUri`] as [`parse_key_url`]; [`ErrorKind::Config`] for an
    /// endpoint that is not `https://`, a credential that cannot be set up, or an extra CA
    /// that is not PEM.
    pub fn client(&self, uri: &KeyUri) -> Result<KeyClient> {
        let location = parse_key_url(uri)?;
        self.client_for(&location.vault)
            .map_err(|e| e.with_context("uri", uri))
    }

    fn client_for(&self, vault: &str) -> Result<KeyClient> {
        let endpoint = self.endpoint.as_deref().unwrap_or(vault);
        if !endpoint.starts_with("https://") {
            return Err(Error::new(
                ErrorKind::Config,
                "the vault endpoint must be https",
            ));
        }
        let mut credential = match &self.credential {
            Some(c) => c.clone(),
            None => Arc::new(CredentialChain::from_env(self)?) as Arc<dyn TokenCredential>,
        };
        let host = vault.trim_start_matches("https://");
        if let Some(resource) = key_vault_resource(host) {
            credential = Arc::new(AudienceGuard {
                inner: credential,
                host: host.to_owned(),
                resource,
            });
        }
        let client_options = KeyClientOptions {
            client_options: ClientOptions {
                retry: RetryOptions::none(),
                transport: Some(Transport::new(Arc::new(self.http_client()?))),
                ..ClientOptions::default()
            },
            verify_challenge_resource: self.verify_challenge_resource.or(Some(true)),
            ..KeyClientOptions::default()
        };
        KeyClient::new(endpoint, credential, Some(client_options)).map_err(|e| {
            Error::new(ErrorKind::Config, "cannot create the Key Vault client").with_source(e)
        })
    }

    /// The HTTPS client under the SDK (and under the credential chain's Entra ID
    /// requests): https only, the per-call timeout, the extra CA.
    pub(crate) fn http_client(&self) -> Result<reqwest::Client> {
        let call_timeout = self.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT);
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .timeout(call_timeout)
            .connect_timeout(call_timeout.min(Duration::from_secs(5)));
        if let Some(pem) = &self.extra_ca_pem {
            let ca = reqwest::Certificate::from_pem(pem).map_err(|e| {
                Error::new(ErrorKind::Config, "the extra CA is not a PEM certificate")
                    .with_source(e)
            })?;
            builder = builder.tls_certs_merge([ca]);
        }
        builder.build().map_err(|e| {
            Error::new(ErrorKind::Config, "cannot build the HTTPS client").with_source(e)
        })
    }
}

/// The credential chain of the crate docs for this process's environment
/// ([`CredentialChain::from_env`] with default options), shared behind an `Arc`.
///
/// # Errors
/// [`ErrorKind::Config`] when a configured source cannot be set up.
pub fn default_credential() -> Result<Arc<dyn TokenCredential>> {
    Ok(Arc::new(CredentialChain::from_env(
        &AzureKeyVaultOptions::default(),
    )?))
}

/// A credential that hands out one bearer token obtained elsewhere. Its expiry is not
/// known here: when the vault stops accepting it, calls fail as unauthenticated (401).
pub struct AccessTokenCredential {
    token: azure_core::credentials::Secret,
}

impl AccessTokenCredential {
    /// Wraps a bearer token.
    #[must_use]
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: azure_core::credentials::Secret::new(token.into()),
        }
    }
}

impl std::fmt::Debug for AccessTokenCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessTokenCredential(…)")
    }
}

#[async_trait]
impl TokenCredential for AccessTokenCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        // Claimed valid for the next hour so the client does not ask again per request.
        let expires =
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1);
        Ok(azure_core::credentials::AccessToken::new(
            self.token.clone(),
            expires,
        ))
    }
}
