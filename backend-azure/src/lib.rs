//! kmssh's Azure Key Vault (and Managed HSM) backend: signs with an EC key on P-256,
//! P-384 or P-521 (`ES256`, `ES384`, `ES512`).
//!
//! ```text
//! azure-kv:https://VAULT.vault.azure.net/keys/NAME
//! azure-kv:https://VAULT.vault.azure.net/keys/NAME/VERSION
//! azure-kv:https://HSM.managedhsm.azure.net/keys/NAME/VERSION
//! ```
//!
//! Built on Microsoft's maintained `azure_security_keyvault_keys` 1.x with `azure_identity`
//! (the older `azure_security_keyvault` 0.x crate is superseded). Credentials, in the order
//! `DefaultAzureCredential` tries them: a service principal from the environment
//! (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), workload identity
//! (`AZURE_FEDERATED_TOKEN_FILE`), managed identity (`IDENTITY_ENDPOINT`/`MSI_ENDPOINT`,
//! or on request), then the Azure CLI.
//!
//! Without a version, the current version is resolved once at open and pinned: signing
//! and verification use the same version even if the key is rotated meanwhile. The public
//! key comes from the JWK once and is cached. Each signature is one `sign` call on the
//! locally computed digest; its `r||s` answer must be exactly twice the field size, and is
//! verified before it is returned. HTTPS only: an extra trusted CA (PEM) and a vault
//! endpoint override are options, never plain http.
//!
//! Linking this crate registers the `azure-kv:` scheme (`use kmssh_backend_azure as _;`).
//! Keys opened through the registry read `KMSSH_AZURE_ENDPOINT`, `KMSSH_AZURE_CA_FILE`,
//! `KMSSH_AZURE_ACCESS_TOKEN` and `KMSSH_AZURE_VERIFY_CHALLENGE_RESOURCE`
//! ([`AzureKeyVaultOptions::from_env`]).

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_security_keyvault_keys::models::{
    CurveName, KeyClientGetKeyOptions, KeyClientSignOptions, KeyOperation, KeyType, SignParameters,
    SignatureAlgorithm,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use kmssh_core::{
    Algorithm, Backend, EcPublicKey, EcdsaSignature, Error, ErrorKind, KeyUri, KmsKey, OpenFuture,
    RawSigner, Result, RetryPolicy, VerifiedSigner,
};

/// The key URI scheme this backend serves.
pub const SCHEME: &str = "azure-kv";

/// Default per-call timeout.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What to set explicitly.
#[derive(Clone, Default)]
pub struct AzureKeyVaultOptions {
    /// Send requests to this `https://` endpoint instead of the URI's vault (a private
    /// endpoint, a proxy, an emulator). The URI still names the key.
    pub endpoint: Option<String>,
    /// An extra CA certificate (PEM) to trust, beside the system roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// The credential (default: the chain in the crate docs).
    pub credential: Option<Arc<dyn TokenCredential>>,
    /// Whether the auth challenge's resource must match the vault's domain (default true).
    pub verify_challenge_resource: Option<bool>,
    /// The longest one API call may take (default 10 s).
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

/// `KMSSH_AZURE_ENDPOINT`: [`AzureKeyVaultOptions::endpoint`] for registry-opened keys.
pub const ENDPOINT_ENV: &str = "KMSSH_AZURE_ENDPOINT";
/// `KMSSH_AZURE_CA_FILE`: a PEM file with an extra CA to trust, for registry-opened keys.
pub const CA_FILE_ENV: &str = "KMSSH_AZURE_CA_FILE";
/// `KMSSH_AZURE_ACCESS_TOKEN`: a bearer token obtained elsewhere (for example
/// `az account get-access-token --resource https://vault.azure.net`), used instead of the
/// credential chain for registry-opened keys.
pub const ACCESS_TOKEN_ENV: &str = "KMSSH_AZURE_ACCESS_TOKEN";
/// `KMSSH_AZURE_VERIFY_CHALLENGE_RESOURCE=false`: accept an auth challenge whose resource
/// is not the vault's domain (needed with an endpoint on another host).
pub const VERIFY_CHALLENGE_RESOURCE_ENV: &str = "KMSSH_AZURE_VERIFY_CHALLENGE_RESOURCE";

impl AzureKeyVaultOptions {
    /// The options for keys opened through the registry (`kmssh_core::open`, the CLI),
    /// from [`ENDPOINT_ENV`], [`CA_FILE_ENV`], [`ACCESS_TOKEN_ENV`] and
    /// [`VERIFY_CHALLENGE_RESOURCE_ENV`]; everything else default.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the CA file cannot be read or a flag is not yes/no.
    pub fn from_env() -> Result<Self> {
        let extra_ca_pem = match kmssh_core::env_setting(CA_FILE_ENV) {
            Some(path) => Some(std::fs::read(&path).map_err(|e| {
                Error::new(ErrorKind::Config, format!("{CA_FILE_ENV}={path}: {e}"))
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

/// A credential that hands out one bearer token obtained elsewhere. Its expiry is not
/// known here: when the vault stops accepting it, calls fail as permission denied.
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

/// The parts of a key URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLocation {
    /// `https://vault.vault.azure.net` (scheme, host, port).
    pub vault: String,
    /// The key name.
    pub name: String,
    /// The version, if the URL pins one.
    pub version: Option<String>,
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 127 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Parses `https://HOST[:PORT]/keys/NAME[/VERSION]`.
///
/// # Errors
/// [`ErrorKind::InvalidUri`] for another scheme (plain http included) or path.
pub fn parse_key_url(uri: &KeyUri) -> Result<KeyLocation> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::InvalidUri,
            format!("{why}: expected azure-kv:https://VAULT.vault.azure.net/keys/NAME[/VERSION]"),
        )
        .with_context("uri", uri)
    };
    let url = uri.body();
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| bad("the key URL must be https"))?;
    let (host, path) = rest.split_once('/').ok_or_else(|| bad("no key path"))?;
    if host.is_empty() || host.contains(['@', '?', '#']) {
        return Err(bad("bad vault host"));
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["keys", name] if is_name(name) => Ok(KeyLocation {
            vault: format!("https://{host}"),
            name: (*name).to_owned(),
            version: None,
        }),
        ["keys", name, version] if is_name(name) && is_name(version) => Ok(KeyLocation {
            vault: format!("https://{host}"),
            name: (*name).to_owned(),
            version: Some((*version).to_owned()),
        }),
        _ => Err(bad("bad key path")),
    }
}

/// The credential chain described in the crate docs.
///
/// # Errors
/// [`ErrorKind::Config`] when the chosen credential cannot be built.
pub fn default_credential() -> Result<Arc<dyn TokenCredential>> {
    let env = kmssh_core::env_setting;
    let built: azure_core::Result<Arc<dyn TokenCredential>> = match (
        env("AZURE_TENANT_ID"),
        env("AZURE_CLIENT_ID"),
        env("AZURE_CLIENT_SECRET"),
    ) {
        (Some(tenant), Some(client), Some(secret)) => azure_identity::ClientSecretCredential::new(
            &tenant,
            client,
            azure_core::credentials::Secret::new(secret),
            None,
        )
        .map(|c| c as Arc<dyn TokenCredential>),
        _ if env("AZURE_FEDERATED_TOKEN_FILE").is_some() => {
            azure_identity::WorkloadIdentityCredential::new(None)
                .map(|c| c as Arc<dyn TokenCredential>)
        }
        _ if env("IDENTITY_ENDPOINT").is_some() || env("MSI_ENDPOINT").is_some() => {
            azure_identity::ManagedIdentityCredential::new(None)
                .map(|c| c as Arc<dyn TokenCredential>)
        }
        _ => azure_identity::AzureCliCredential::new(None).map(|c| c as Arc<dyn TokenCredential>),
    };
    built.map_err(|e| {
        Error::new(ErrorKind::Config, "cannot set up Azure credentials").with_source(e)
    })
}

fn http_client(options: &AzureKeyVaultOptions) -> Result<reqwest::Client> {
    let call_timeout = options.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT);
    let mut builder = reqwest::Client::builder()
        .https_only(true)
        .timeout(call_timeout)
        .connect_timeout(call_timeout.min(Duration::from_secs(5)));
    if let Some(pem) = &options.extra_ca_pem {
        let ca = reqwest::Certificate::from_pem(pem).map_err(|e| {
            Error::new(ErrorKind::Config, "the extra CA is not a PEM certificate").with_source(e)
        })?;
        builder = builder.tls_certs_merge([ca]);
    }
    builder
        .build()
        .map_err(|e| Error::new(ErrorKind::Config, "cannot build the HTTPS client").with_source(e))
}

/// Which permission an operation needs, for 403 messages.
fn permission(operation: &str) -> &'static str {
    if operation == "sign" {
        "keys/sign"
    } else {
        "keys/get"
    }
}

/// Whether a transport error was a timeout (reqwest's, or an I/O `TimedOut`) anywhere in
/// its chain of causes.
fn timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

fn map_azure_error(operation: &'static str, err: azure_core::Error) -> Error {
    use azure_core::error::ErrorKind as Az;
    let (kind, detail, retry_after) = match err.kind() {
        Az::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let code = u16::from(*status);
            let service = error_code.clone().unwrap_or_default();
            let retry_after = raw_response
                .as_ref()
                .and_then(|r| {
                    r.headers()
                        .get_optional_str(&azure_core::http::headers::RETRY_AFTER)
                })
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let kind = match code {
                401 => ErrorKind::PermissionDenied,
                403 => ErrorKind::PermissionDenied,
                404 => ErrorKind::NotFound,
                408 => ErrorKind::Timeout,
                429 => ErrorKind::Throttled,
                400 | 409 => ErrorKind::InvalidInput,
                c if c >= 500 => ErrorKind::Unavailable,
                _ => ErrorKind::Unexpected,
            };
            let detail = match code {
                401 => format!("HTTP 401 {service}: the credential was not accepted"),
                403 => format!(
                    "HTTP 403 {service}: the identity lacks the {} permission (or the key forbids {operation})",
                    permission(operation)
                ),
                _ => format!("HTTP {code} {service}"),
            };
            (kind, detail, retry_after)
        }
        Az::Io | Az::Connection => {
            if timed_out(&err) {
                (ErrorKind::Timeout, "the call timed out".to_owned(), None)
            } else {
                (
                    ErrorKind::Unavailable,
                    "could not reach Key Vault".to_owned(),
                    None,
                )
            }
        }
        Az::Credential => (
            ErrorKind::PermissionDenied,
            "could not obtain a token".to_owned(),
            None,
        ),
        Az::DataConversion => (
            ErrorKind::Unavailable,
            "unreadable answer from Key Vault".to_owned(),
            None,
        ),
        _ => (ErrorKind::Unexpected, "unexpected failure".to_owned(), None),
    };
    let mut error = Error::new(kind, format!("Key Vault {operation}: {detail}")).with_source(err);
    if let Some(wait) = retry_after {
        error = error.with_retry_after(wait);
    }
    error
}

/// An Azure Key Vault key version, opened and checked.
pub struct AzureKey {
    uri: KeyUri,
    client: KeyClient,
    name: String,
    version: String,
    algorithm: SignatureAlgorithm,
    public: EcPublicKey,
    retry: RetryPolicy,
}

fn coordinate(field: Option<&Vec<u8>>, len: usize, which: &str) -> Result<Vec<u8>> {
    let bytes = field
        .ok_or_else(|| Error::new(ErrorKind::InvalidKey, format!("the JWK has no `{which}`")))?;
    if bytes.len() > len {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!(
                "JWK `{which}` is {} bytes, more than the curve's {len}",
                bytes.len()
            ),
        ));
    }
    let mut padded = vec![0u8; len - bytes.len()];
    padded.extend_from_slice(bytes);
    Ok(padded)
}

impl std::fmt::Debug for AzureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKey")
            .field("uri", &self.uri)
            .field("version", &self.version)
            .field("algorithm", &self.public.algorithm())
            .finish_non_exhaustive()
    }
}

impl AzureKey {
    /// Opens a key with a client built from `options`.
    ///
    /// # Errors
    /// As [`AzureKey::open_with_client`], plus configuration errors.
    pub async fn open(
        uri: &KeyUri,
        options: &AzureKeyVaultOptions,
    ) -> Result<VerifiedSigner<Self>> {
        let location = parse_key_url(uri)?;
        let endpoint = options
            .endpoint
            .clone()
            .unwrap_or_else(|| location.vault.clone());
        if !endpoint.starts_with("https://") {
            return Err(
                Error::new(ErrorKind::Config, "the vault endpoint must be https")
                    .with_context("uri", uri),
            );
        }
        let credential = match &options.credential {
            Some(c) => c.clone(),
            None => default_credential()?,
        };
        let client_options = KeyClientOptions {
            client_options: ClientOptions {
                retry: RetryOptions::none(),
                transport: Some(Transport::new(Arc::new(http_client(options)?))),
                ..ClientOptions::default()
            },
            verify_challenge_resource: options.verify_challenge_resource.or(Some(true)),
            ..KeyClientOptions::default()
        };
        let client = KeyClient::new(&endpoint, credential, Some(client_options)).map_err(|e| {
            Error::new(ErrorKind::Config, "cannot create the Key Vault client").with_source(e)
        })?;
        Self::open_with_client(uri, &location, client, options.retry.unwrap_or_default()).await
    }

    /// Opens a key: one `get key`, its JWK and attributes checked, the version pinned.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedAlgorithm`] for RSA, oct and P-256K keys;
    /// [`ErrorKind::InvalidKey`] for keys without the `sign` operation, disabled, expired
    /// or not yet valid; provider failures mapped to kinds after retries.
    pub async fn open_with_client(
        uri: &KeyUri,
        location: &KeyLocation,
        client: KeyClient,
        retry: RetryPolicy,
    ) -> Result<VerifiedSigner<Self>> {
        let at_uri = |e: Error| e.with_context("uri", uri);
        let key = retry
            .run("get key", || async {
                let options = KeyClientGetKeyOptions {
                    key_version: location.version.clone(),
                    ..KeyClientGetKeyOptions::default()
                };
                let response = client
                    .get_key(&location.name, Some(options))
                    .await
                    .map_err(|e| map_azure_error("get", e))?;
                response.into_model().map_err(|e| map_azure_error("get", e))
            })
            .await
            .map_err(at_uri)?;
        let invalid = |why: String| at_uri(Error::new(ErrorKind::InvalidKey, why));
        let unsupported = |why: String| at_uri(Error::new(ErrorKind::UnsupportedAlgorithm, why));
        let jwk = key
            .key
            .as_ref()
            .ok_or_else(|| invalid("the key has no JWK".into()))?;
        match &jwk.kty {
            Some(KeyType::Ec | KeyType::EcHsm) => {}
            other => {
                let kty = other
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), ToString::to_string);
                return Err(unsupported(format!(
                    "key type {kty} is not supported: kmssh signs with EC keys on P-256, P-384 or P-521"
                )));
            }
        }
        let (algorithm, signature_algorithm) = match &jwk.crv {
            Some(CurveName::P256) => (Algorithm::EcdsaP256Sha256, SignatureAlgorithm::Es256),
            Some(CurveName::P384) => (Algorithm::EcdsaP384Sha384, SignatureAlgorithm::Es384),
            Some(CurveName::P521) => (Algorithm::EcdsaP521Sha512, SignatureAlgorithm::Es512),
            other => {
                let crv = other
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), ToString::to_string);
                return Err(unsupported(format!(
                    "curve {crv} is not supported: use P-256, P-384 or P-521"
                )));
            }
        };
        let ops = jwk.key_ops.clone().unwrap_or_default();
        if !ops.iter().any(|op| op == KeyOperation::Sign.as_ref()) {
            return Err(invalid(format!(
                "the key's key_ops {ops:?} lack `sign`: add it (az keyvault key set-attributes --ops sign verify)"
            )));
        }
        if let Some(attributes) = &key.attributes {
            if attributes.enabled == Some(false) {
                return Err(invalid("the key is disabled: enable it to sign".into()));
            }
            let now = azure_core::time::OffsetDateTime::now_utc();
            if let Some(expires) = attributes.expires
                && expires <= now
            {
                return Err(invalid(format!("the key expired at {expires}")));
            }
            if let Some(not_before) = attributes.not_before
                && not_before > now
            {
                return Err(invalid(format!("the key is not valid before {not_before}")));
            }
        }
        let field = algorithm.field_len();
        let mut point = vec![0x04];
        point.extend(coordinate(jwk.x.as_ref(), field, "x").map_err(at_uri)?);
        point.extend(coordinate(jwk.y.as_ref(), field, "y").map_err(at_uri)?);
        let public = EcPublicKey::from_sec1_bytes(algorithm, &point).map_err(at_uri)?;
        let version = match &location.version {
            Some(v) => v.clone(),
            None => {
                let kid = jwk.kid.as_deref().unwrap_or_default();
                let pinned = kid
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if !is_name(&pinned) {
                    return Err(invalid(format!(
                        "cannot read the current version from kid `{kid}`"
                    )));
                }
                tracing::info!(uri = %uri, version = %pinned, "pinned the current Key Vault key version");
                pinned
            }
        };
        Ok(VerifiedSigner::new(Self {
            uri: uri.clone(),
            client,
            name: location.name.clone(),
            version,
            algorithm: signature_algorithm,
            public,
            retry,
        }))
    }

    /// The key version every signature uses.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }
}

#[async_trait]
impl RawSigner for AzureKey {
    fn uri(&self) -> &KeyUri {
        &self.uri
    }

    fn public_key(&self) -> &EcPublicKey {
        &self.public
    }

    async fn sign_digest_unverified(&self, digest: &[u8]) -> Result<EcdsaSignature> {
        let result = self
            .retry
            .run("sign", || async {
                let parameters = SignParameters {
                    algorithm: Some(self.algorithm.clone()),
                    value: Some(digest.to_vec()),
                };
                let body = parameters
                    .try_into()
                    .map_err(|e| map_azure_error("sign", e))?;
                let options = KeyClientSignOptions {
                    key_version: Some(self.version.clone()),
                    ..KeyClientSignOptions::default()
                };
                let response = self
                    .client
                    .sign(&self.name, body, Some(options))
                    .await
                    .map_err(|e| map_azure_error("sign", e))?;
                response
                    .into_model()
                    .map_err(|e| map_azure_error("sign", e))
            })
            .await?;
        let algorithm = self.public.algorithm();
        let raw = result
            .result
            .ok_or_else(|| Error::new(ErrorKind::BadSignature, "sign answered without a value"))?;
        if raw.len() != 2 * algorithm.field_len() {
            return Err(Error::new(
                ErrorKind::BadSignature,
                format!(
                    "Key Vault returned a {}-byte signature; {algorithm} r||s is exactly {} bytes",
                    raw.len(),
                    2 * algorithm.field_len()
                ),
            ));
        }
        if let Some(kid) = &result.kid
            && !kid
                .trim_end_matches('/')
                .ends_with(&format!("/{}/{}", self.name, self.version))
        {
            return Err(Error::new(
                ErrorKind::BadSignature,
                format!("signed by {kid}, not the pinned version {}", self.version),
            ));
        }
        EcdsaSignature::from_fixed(algorithm, &raw)
    }
}

fn open_registered(uri: KeyUri) -> OpenFuture {
    Box::pin(async move {
        let key: Arc<dyn KmsKey> =
            Arc::new(AzureKey::open(&uri, &AzureKeyVaultOptions::from_env()?).await?);
        Ok(key)
    })
}

inventory::submit! {
    Backend {
        scheme: SCHEME,
        description: "Azure Key Vault / Managed HSM: azure-kv:https://VAULT.vault.azure.net/keys/NAME[/VERSION], EC P-256/P-384/P-521",
        open: open_registered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_urls_parse_and_http_is_refused() {
        let uri =
            KeyUri::parse("azure-kv:https://v.vault.azure.net/keys/ca/0123abcd").expect("uri");
        let loc = parse_key_url(&uri).expect("parses");
        assert_eq!(loc.vault, "https://v.vault.azure.net");
        assert_eq!(
            (loc.name.as_str(), loc.version.as_deref()),
            ("ca", Some("0123abcd"))
        );
        let hsm = KeyUri::parse("azure-kv:https://h.managedhsm.azure.net/keys/ca").expect("uri");
        assert_eq!(parse_key_url(&hsm).expect("parses").version, None);
        for bad in [
            "azure-kv:http://v.vault.azure.net/keys/ca",
            "azure-kv:https://v.vault.azure.net/secrets/ca",
            "azure-kv:https://v.vault.azure.net/keys/",
            "azure-kv:https://v.vault.azure.net/keys/c_a",
            "azure-kv:https://v.vault.azure.net/keys/ca/1/2",
        ] {
            let err = parse_key_url(&KeyUri::parse(bad).expect("uri")).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidUri, "{bad}");
        }
    }
}
