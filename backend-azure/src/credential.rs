//! Azure credentials: [`CredentialChain`], the chain a key uses when code gives no
//! credential, in the order Azure's SDKs document for `DefaultAzureCredential`
//! (environment, workload identity, managed identity, Azure CLI, Azure Developer CLI); the
//! client-certificate credential (PEM or PFX) the environment source builds; a managed
//! identity credential for IMDS, App Service / Functions / Container Apps and Cloud Shell,
//! whose IMDS endpoint can be moved and whose IMDS probe is bounded; and the guard that
//! hands out tokens only for the audience of the key's own host.

use std::ffi::OsStr;
use std::fmt;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind as AzKind;
use azure_core::http::{ClientMethodOptions, ClientOptions, RetryOptions, Transport, Url};
use azure_core::time::OffsetDateTime;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, AzureDeveloperCliCredential,
    AzureDeveloperCliCredentialOptions, ClientAssertion, ClientAssertionCredential,
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    Executor, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use kmssh_core::{DEFAULT_CALL_TIMEOUT, Error, ErrorKind, Result};
use serde_json::{Value, json};

use crate::AzureKeyVaultOptions;

/// `AZURE_AUTHORITY_HOST`: the Entra ID authority (default
/// `https://login.microsoftonline.com`; `https://login.microsoftonline.us` for US
/// Government, `https://login.chinacloudapi.cn` for China). HTTPS only.
pub const AUTHORITY_HOST_ENV: &str = "AZURE_AUTHORITY_HOST";
/// `AZURE_POD_IDENTITY_AUTHORITY_HOST`: the base URL of the instance metadata service
/// (IMDS) that managed identity asks for tokens, instead of `http://169.254.169.254`. Azure's
/// other SDKs read the same variable (it was made for AAD Pod Identity); tests point it at
/// a loopback stand-in.
pub const IMDS_AUTHORITY_ENV: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
/// `AZURE_TOKEN_CREDENTIALS`: narrows the chain as Azure's other SDKs do: `prod`
/// (environment, workload identity, managed identity), `dev` (Azure CLI, Azure Developer
/// CLI), or one source by its SDK name (`EnvironmentCredential`,
/// `WorkloadIdentityCredential`, `ManagedIdentityCredential`, `AzureCliCredential`,
/// `AzureDeveloperCliCredential`).
pub const TOKEN_CREDENTIALS_ENV: &str = "AZURE_TOKEN_CREDENTIALS";
/// How long the chain waits for IMDS to answer its first (probe) request before deciding
/// this machine has none and moving on: 1 s, as Azure's other SDKs do.
pub const IMDS_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
const DEFAULT_IMDS: &str = "http://169.254.169.254";
/// The most a certificate file may hold.
const MAX_CERTIFICATE_FILE: u64 = 1024 * 1024;
/// Attempts at a managed identity endpoint that answers 404, 410, 429 or 5xx.
const MANAGED_IDENTITY_ATTEMPTS: u32 = 3;

fn config(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Config, message)
}

fn credential_error(message: impl Into<String>) -> azure_core::Error {
    azure_core::Error::with_message(AzKind::Credential, message.into())
}

/// What one source did when asked for a token.
enum Attempt {
    Token(AccessToken),
    /// Not available here: the chain moves on.
    Unavailable(String),
    /// Configured but failed or refused: the chain stops here.
    Failed(azure_core::Error),
}

enum Source {
    /// Not configured here, and why.
    Skipped(String),
    /// Configured from the environment: a failure ends the chain.
    Configured(Arc<dyn TokenCredential>),
    ManagedIdentity(ManagedIdentity),
    /// A developer tool: a failure moves on.
    Tool(Arc<dyn TokenCredential>),
}

struct Link {
    name: String,
    source: Source,
}

/// The credential chain a key uses when code gives no credential: the sources
/// `DefaultAzureCredential` tries in Azure's other SDKs, in their order. The first source
/// that gives a token is used from then on.
///
/// 1. **Environment**: a service principal, `AZURE_TENANT_ID` and `AZURE_CLIENT_ID` with
///    `AZURE_CLIENT_SECRET`, or with `AZURE_CLIENT_CERTIFICATE_PATH` (a PEM file with the
///    certificate and its RSA key, or a PFX/PKCS#12 file; `AZURE_CLIENT_CERTIFICATE_PASSWORD`
///    if it is encrypted; `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN=true` sends the chain
///    for subject-name/issuer authentication). [`AUTHORITY_HOST_ENV`] moves the authority.
/// 2. **Workload identity** (AKS, federated credentials): `AZURE_FEDERATED_TOKEN_FILE`
///    with `AZURE_TENANT_ID` and `AZURE_CLIENT_ID`.
/// 3. **Managed identity**: App Service, Functions and Container Apps
///    (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), Cloud Shell (`MSI_ENDPOINT`), otherwise
///    the VM / scale set / AKS node instance metadata service (IMDS, `http://169.254.169.254`
///    or [`IMDS_AUTHORITY_ENV`]). `AZURE_CLIENT_ID` chooses a user-assigned identity (not
///    in Cloud Shell, which has none). IMDS is probed first, for at most
///    [`IMDS_PROBE_TIMEOUT`]: a machine without one moves on at once. Azure Arc, Service
///    Fabric and Azure ML identities are not supported.
/// 4. **Azure CLI**: `az account get-access-token` for the account of `az login`.
/// 5. **Azure Developer CLI**: `azd auth token`.
///
/// A source that is not set up is skipped; one that is set up but fails (a refused secret,
/// an unreadable token file, an identity endpoint answering an error) ends the chain with
/// its error, as in Azure's SDKs. Each source is bounded by the call timeout. When none
/// gives a token, the error names every source and why it was skipped.
/// [`TOKEN_CREDENTIALS_ENV`] narrows the chain.
pub struct CredentialChain {
    links: Vec<Link>,
    chosen: Mutex<Option<usize>>,
    call_timeout: Duration,
}

impl fmt::Debug for CredentialChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialChain")
            .field("sources", &self.sources())
            .finish_non_exhaustive()
    }
}

/// Which sources [`TOKEN_CREDENTIALS_ENV`] lets in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Environment,
    Workload,
    Managed,
    Cli,
    DeveloperCli,
}

fn selected(value: Option<&str>) -> Result<Vec<Kind>> {
    use Kind::{Cli, DeveloperCli, Environment, Managed, Workload};
    let Some(value) = value.map(str::trim) else {
        return Ok(vec![Environment, Workload, Managed, Cli, DeveloperCli]);
    };
    let kinds = match value.to_ascii_lowercase().as_str() {
        "prod" => vec![Environment, Workload, Managed],
        "dev" => vec![Cli, DeveloperCli],
        "environmentcredential" => vec![Environment],
        "workloadidentitycredential" => vec![Workload],
        "managedidentitycredential" => vec![Managed],
        "azureclicredential" => vec![Cli],
        "azuredeveloperclicredential" => vec![DeveloperCli],
        _ => {
            return Err(config(format!(
                "{TOKEN_CREDENTIALS_ENV}={value:?}: expected prod, dev, EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential, AzureCliCredential or AzureDeveloperCliCredential"
            )));
        }
    };
    Ok(kinds)
}

impl CredentialChain {
    /// The chain for this process's environment, its HTTPS requests made as `options`
    /// says (extra CA, call timeout).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when a source is set up wrongly: an authority that is not
    /// https, an unreadable or unusable certificate or token file, an unknown
    /// [`TOKEN_CREDENTIALS_ENV`].
    pub fn from_env(options: &AzureKeyVaultOptions) -> Result<Self> {
        Self::with_lookup(options, &kmssh_core::env_setting)
    }

    /// The chain for the environment `lookup` describes (a variable's value, `None`
    /// when unset or empty), as [`CredentialChain::from_env`] does for the process's.
    ///
    /// # Errors
    /// As [`CredentialChain::from_env`].
    pub fn with_lookup(
        options: &AzureKeyVaultOptions,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let lookup = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let call_timeout = options.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT);
        let authority = lookup(AUTHORITY_HOST_ENV).unwrap_or_else(|| DEFAULT_AUTHORITY.to_owned());
        if !authority.starts_with("https://") {
            return Err(config(format!(
                "{AUTHORITY_HOST_ENV}={authority}: the Entra ID authority must be https"
            )));
        }
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host.clone_from(&authority);
        let client_options = ClientOptions {
            retry: RetryOptions::none(),
            transport: Some(Transport::new(Arc::new(options.http_client()?))),
            cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
            ..ClientOptions::default()
        };
        let kinds = selected(lookup(TOKEN_CREDENTIALS_ENV).as_deref())?;
        let mut links = Vec::new();
        for kind in kinds {
            links.push(match kind {
                Kind::Environment => environment(&lookup, &client_options, &authority)?,
                Kind::Workload => workload_identity(&lookup, &client_options)?,
                Kind::Managed => managed_identity(&lookup, call_timeout)?,
                Kind::Cli => Link {
                    name: "Azure CLI".into(),
                    source: Source::Tool(
                        AzureCliCredential::new(Some(AzureCliCredentialOptions {
                            executor: Some(Arc::new(BoundedExecutor)),
                            ..AzureCliCredentialOptions::default()
                        }))
                        .map_err(|e| {
                            config("cannot set up the Azure CLI credential").with_source(e)
                        })?,
                    ),
                },
                Kind::DeveloperCli => Link {
                    name: "Azure Developer CLI".into(),
                    source: Source::Tool(
                        AzureDeveloperCliCredential::new(Some(
                            AzureDeveloperCliCredentialOptions {
                                executor: Some(Arc::new(BoundedExecutor)),
                                ..AzureDeveloperCliCredentialOptions::default()
                            },
                        ))
                        .map_err(|e| {
                            config("cannot set up the Azure Developer CLI credential")
                                .with_source(e)
                        })?,
                    ),
                },
            });
        }
        Ok(Self {
            links,
            chosen: Mutex::new(None),
            call_timeout,
        })
    }

    /// The chain's sources, in order, as its messages name them.
    #[must_use]
    pub fn sources(&self) -> Vec<String> {
        self.links.iter().map(|l| l.name.clone()).collect()
    }

    async fn attempt(
        &self,
        link: &Link,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> Attempt {
        let bounded = |credential: &Arc<dyn TokenCredential>| {
            let credential = credential.clone();
            let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
            let options = options.clone();
            async move {
                let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                tokio::time::timeout(self.call_timeout, credential.get_token(&scopes, options))
                    .await
            }
        };
        match &link.source {
            Source::Skipped(why) => Attempt::Unavailable(why.clone()),
            Source::Configured(credential) => match bounded(credential).await {
                Ok(Ok(token)) => Attempt::Token(token),
                Ok(Err(e)) => Attempt::Failed(e),
                Err(_) => Attempt::Failed(credential_error(format!(
                    "no token within {:?}",
                    self.call_timeout
                ))),
            },
            Source::ManagedIdentity(identity) => identity.attempt(scopes).await,
            Source::Tool(credential) => match bounded(credential).await {
                Ok(Ok(token)) => Attempt::Token(token),
                Ok(Err(e)) => Attempt::Unavailable(
                    e.to_string().lines().next().unwrap_or_default().to_owned(),
                ),
                Err(_) => Attempt::Unavailable(format!("no token within {:?}", self.call_timeout)),
            },
        }
    }
}

#[async_trait]
impl TokenCredential for CredentialChain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let chosen = *self.chosen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(link) = chosen.and_then(|i| self.links.get(i)) {
            return match self.attempt(link, scopes, options).await {
                Attempt::Token(token) => Ok(token),
                Attempt::Unavailable(why) => Err(credential_error(format!("{}: {why}", link.name))),
                Attempt::Failed(e) => Err(azure_core::Error::with_error(
                    AzKind::Credential,
                    e,
                    format!("Azure credential from {} failed", link.name),
                )),
            };
        }
        let mut tried = Vec::new();
        for (i, link) in self.links.iter().enumerate() {
            match self.attempt(link, scopes, options.clone()).await {
                Attempt::Token(token) => {
                    tracing::info!(source = %link.name, "using Azure credential");
                    *self.chosen.lock().unwrap_or_else(PoisonError::into_inner) = Some(i);
                    return Ok(token);
                }
                Attempt::Unavailable(why) => {
                    tracing::debug!(source = %link.name, %why, "Azure credential source unavailable");
                    tried.push(format!("{}: {why}", link.name));
                }
                Attempt::Failed(e) => {
                    return Err(azure_core::Error::with_error(
                        AzKind::Credential,
                        e,
                        format!("Azure credential from {} failed", link.name),
                    ));
                }
            }
        }
        Err(credential_error(if tried.is_empty() {
            format!("no Azure credential source is enabled ({TOKEN_CREDENTIALS_ENV})")
        } else {
            format!("no Azure credential found; tried {}", tried.join("; "))
        }))
    }
}

/// Source 1: a service principal from the environment.
fn environment(
    lookup: &dyn Fn(&str) -> Option<String>,
    client_options: &ClientOptions,
    authority: &str,
) -> Result<Link> {
    let tenant = lookup("AZURE_TENANT_ID");
    let client = lookup("AZURE_CLIENT_ID");
    let secret = lookup("AZURE_CLIENT_SECRET");
    let certificate = lookup("AZURE_CLIENT_CERTIFICATE_PATH");
    let (Some(tenant), Some(client), true) = (
        tenant.clone(),
        client.clone(),
        secret.is_some() || certificate.is_some(),
    ) else {
        let mut missing = Vec::new();
        if tenant.is_none() {
            missing.push("AZURE_TENANT_ID");
        }
        if client.is_none() {
            missing.push("AZURE_CLIENT_ID");
        }
        if secret.is_none() && certificate.is_none() {
            missing.push("AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH");
        }
        return Ok(Link {
            name: "environment".into(),
            source: Source::Skipped(format!("{} not set", missing.join(", "))),
        });
    };
    if let Some(secret) = secret {
        let credential = ClientSecretCredential::new(
            &tenant,
            client,
            Secret::new(secret),
            Some(ClientSecretCredentialOptions {
                client_options: client_options.clone(),
            }),
        )
        .map_err(|e| config("cannot set up the client secret credential").with_source(e))?;
        return Ok(Link {
            name: "environment (client secret)".into(),
            source: Source::Configured(credential),
        });
    }
    let path = certificate.unwrap_or_default();
    let send_chain = lookup("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN")
        .is_some_and(|v| v.trim() == "1" || v.trim().eq_ignore_ascii_case("true"));
    let assertion = CertificateAssertion::from_file(
        &path,
        lookup("AZURE_CLIENT_CERTIFICATE_PASSWORD").as_deref(),
        send_chain,
        &client,
        &token_endpoint(authority, &tenant)?,
    )
    .map_err(|e| e.with_context("AZURE_CLIENT_CERTIFICATE_PATH", &path))?;
    let credential: Arc<dyn TokenCredential> = ClientAssertionCredential::new(
        tenant,
        client,
        assertion,
        Some(ClientAssertionCredentialOptions {
            client_options: client_options.clone(),
        }),
    )
    .map_err(|e| config("cannot set up the client certificate credential").with_source(e))?;
    Ok(Link {
        name: "environment (client certificate)".into(),
        source: Source::Configured(credential),
    })
}

/// The Entra ID token endpoint, as `azure_identity` builds it (the assertion's audience).
fn token_endpoint(authority: &str, tenant: &str) -> Result<String> {
    Url::parse(authority)
        .and_then(|a| a.join(&format!("/{tenant}/oauth2/v2.0/token")))
        .map(|u| u.to_string())
        .map_err(|e| config(format!("{AUTHORITY_HOST_ENV}={authority}: not a URL")).with_source(e))
}

/// Source 2: workload identity.
fn workload_identity(
    lookup: &dyn Fn(&str) -> Option<String>,
    client_options: &ClientOptions,
) -> Result<Link> {
    let name = "workload identity".to_owned();
    let Some(file) = lookup("AZURE_FEDERATED_TOKEN_FILE") else {
        return Ok(Link {
            name,
            source: Source::Skipped("AZURE_FEDERATED_TOKEN_FILE not set".into()),
        });
    };
    let (Some(tenant), Some(client)) = (lookup("AZURE_TENANT_ID"), lookup("AZURE_CLIENT_ID"))
    else {
        return Ok(Link {
            name,
            source: Source::Skipped(
                "AZURE_FEDERATED_TOKEN_FILE is set but AZURE_TENANT_ID or AZURE_CLIENT_ID is not"
                    .into(),
            ),
        });
    };
    let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: client_options.clone(),
        },
        client_id: Some(client),
        tenant_id: Some(tenant),
        token_file_path: Some(file.clone().into()),
    }))
    .map_err(|e| {
        config("cannot set up the workload identity credential")
            .with_context("AZURE_FEDERATED_TOKEN_FILE", &file)
            .with_source(e)
    })?;
    Ok(Link {
        name,
        source: Source::Configured(credential),
    })
}

/// Source 3: managed identity, from the platform's variables.
fn managed_identity(
    lookup: &dyn Fn(&str) -> Option<String>,
    call_timeout: Duration,
) -> Result<Link> {
    let skipped = |why: &str| Link {
        name: "managed identity".into(),
        source: Source::Skipped(why.to_owned()),
    };
    let endpoint = lookup("IDENTITY_ENDPOINT");
    let header = lookup("IDENTITY_HEADER");
    let kind = match (&endpoint, &header, lookup("MSI_ENDPOINT")) {
        (Some(_), Some(_), _) if lookup("IDENTITY_SERVER_THUMBPRINT").is_some() => {
            return Ok(skipped(
                "Service Fabric managed identity (IDENTITY_SERVER_THUMBPRINT) is not supported",
            ));
        }
        (Some(endpoint), Some(header), _) => ManagedIdentityKind::AppService {
            endpoint: endpoint.clone(),
            header: Secret::new(header.clone()),
        },
        (Some(_), None, _) if lookup("IMDS_ENDPOINT").is_some() => {
            return Ok(skipped(
                "Azure Arc managed identity (IDENTITY_ENDPOINT with IMDS_ENDPOINT) is not supported",
            ));
        }
        (_, _, Some(_)) if lookup("MSI_SECRET").is_some() => {
            return Ok(skipped(
                "Azure Machine Learning managed identity (MSI_ENDPOINT with MSI_SECRET) is not supported",
            ));
        }
        (_, _, Some(msi)) => ManagedIdentityKind::CloudShell { endpoint: msi },
        _ => ManagedIdentityKind::Imds {
            base: lookup(IMDS_AUTHORITY_ENV)
                .unwrap_or_else(|| DEFAULT_IMDS.to_owned())
                .trim_end_matches('/')
                .to_owned(),
            probed: AtomicBool::new(false),
        },
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(call_timeout)
        .connect_timeout(call_timeout.min(Duration::from_secs(5)))
        .build()
        .map_err(|e| config("cannot build the managed identity HTTP client").with_source(e))?;
    let identity = ManagedIdentity {
        kind,
        client_id: lookup("AZURE_CLIENT_ID"),
        http,
        call_timeout,
    };
    Ok(Link {
        name: format!("managed identity ({})", identity.kind.describe()),
        source: Source::ManagedIdentity(identity),
    })
}

enum ManagedIdentityKind {
    Imds { base: String, probed: AtomicBool },
    AppService { endpoint: String, header: Secret },
    CloudShell { endpoint: String },
}

impl ManagedIdentityKind {
    fn describe(&self) -> String {
        match self {
            Self::Imds { base, .. } => format!("IMDS at {base}"),
            Self::AppService { endpoint, .. } => format!("App Service at {endpoint}"),
            Self::CloudShell { endpoint } => format!("Cloud Shell at {endpoint}"),
        }
    }
}

/// Managed identity over plain HTTP (the platform's local endpoints), without proxies.
struct ManagedIdentity {
    kind: ManagedIdentityKind,
    client_id: Option<String>,
    http: reqwest::Client,
    call_timeout: Duration,
}

/// A transport error's innermost cause, for one-line messages.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// At most 300 characters of an answer's body, on one line.
fn excerpt(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.chars().take(300).collect()
}

impl ManagedIdentity {
    fn identity(&self) -> String {
        match &self.client_id {
            Some(id) => format!("user-assigned identity with client id {id}"),
            None => "system-assigned identity".into(),
        }
    }

    async fn attempt(&self, scopes: &[&str]) -> Attempt {
        let [scope] = scopes else {
            return Attempt::Failed(credential_error("managed identity takes exactly one scope"));
        };
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        match &self.kind {
            ManagedIdentityKind::Imds { base, probed } => self.imds(base, probed, resource).await,
            ManagedIdentityKind::AppService { endpoint, header } => {
                let mut pairs = vec![("api-version", "2019-08-01"), ("resource", resource)];
                if let Some(id) = &self.client_id {
                    pairs.push(("client_id", id));
                }
                let url = match with_query(endpoint, &pairs) {
                    Ok(url) => url,
                    Err(e) => return Attempt::Failed(e),
                };
                let request = || {
                    self.http
                        .get(url.as_str())
                        .header("X-IDENTITY-HEADER", header.secret())
                };
                self.fetch(&self.kind.describe(), request).await
            }
            ManagedIdentityKind::CloudShell { endpoint } => {
                let body = match with_query("http://localhost/", &[("resource", resource)]) {
                    Ok(url) => url.query().unwrap_or_default().to_owned(),
                    Err(e) => return Attempt::Failed(e),
                };
                let request = || {
                    self.http
                        .post(endpoint.as_str())
                        .header("Metadata", "true")
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .body(body.clone())
                };
                self.fetch(&self.kind.describe(), request).await
            }
        }
    }

    /// IMDS: a probe without the `Metadata` header (IMDS answers it at once with 400)
    /// bounded by [`IMDS_PROBE_TIMEOUT`], then the token request.
    async fn imds(&self, base: &str, probed: &AtomicBool, resource: &str) -> Attempt {
        let mut pairs = vec![("api-version", "2018-02-01"), ("resource", resource)];
        if let Some(id) = &self.client_id {
            pairs.push(("client_id", id));
        }
        let url = match with_query(&format!("{base}/metadata/identity/oauth2/token"), &pairs) {
            Ok(url) => url,
            Err(e) => return Attempt::Failed(e),
        };
        if !probed.load(Ordering::Relaxed) {
            let probe = self
                .http
                .get(url.as_str())
                .timeout(IMDS_PROBE_TIMEOUT)
                .send()
                .await;
            if let Err(e) = probe {
                return Attempt::Unavailable(format!(
                    "no answer from IMDS at {base} within {}s ({})",
                    IMDS_PROBE_TIMEOUT.as_secs(),
                    root_cause(&e)
                ));
            }
            probed.store(true, Ordering::Relaxed);
        }
        let request = || self.http.get(url.as_str()).header("Metadata", "true");
        match self.fetch(&format!("IMDS at {base}"), request).await {
            // IMDS says no such identity is assigned to this machine: not available here.
            Attempt::Failed(e) if e.http_status().map(u16::from) == Some(400) => {
                Attempt::Unavailable(format!("IMDS at {base} has no {}: {e}", self.identity()))
            }
            other => other,
        }
    }

    /// Sends `request` until it answers a token, a permanent error, or the attempts or the
    /// call timeout run out (404, 410, 429 and 5xx are retried, as the platform asks).
    async fn fetch(
        &self,
        endpoint: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Attempt {
        let deadline = Instant::now() + self.call_timeout;
        let mut backoff = Duration::from_millis(500);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let response = match request().send().await {
                Ok(response) => response,
                Err(e) => {
                    return Attempt::Failed(credential_error(format!(
                        "{endpoint} could not be reached: {}",
                        root_cause(&e)
                    )));
                }
            };
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            if status == 200 {
                return match parse_token(&body) {
                    Ok(token) => Attempt::Token(token),
                    Err(e) => Attempt::Failed(e),
                };
            }
            let retryable = matches!(status, 404 | 410 | 429 | 500..=599);
            if retryable
                && attempts < MANAGED_IDENTITY_ATTEMPTS
                && Instant::now() + backoff < deadline
            {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                continue;
            }
            return Attempt::Failed(azure_core::Error::with_message(
                AzKind::HttpResponse {
                    status: status.into(),
                    error_code: None,
                    raw_response: None,
                },
                format!(
                    "{endpoint} answered HTTP {status} for the {}: {}",
                    self.identity(),
                    excerpt(&body)
                ),
            ));
        }
    }
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> azure_core::Result<Url> {
    let mut url = Url::parse(base).map_err(|e| {
        azure_core::Error::with_error(AzKind::Credential, e, format!("{base} is not a URL"))
    })?;
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(url)
}

/// A managed identity token answer: `access_token`, and `expires_on` (Unix seconds, a
/// string or a number) or `expires_in`.
fn parse_token(body: &str) -> azure_core::Result<AccessToken> {
    let bad = |why: &str| {
        azure_core::Error::with_message(
            AzKind::DataConversion,
            format!("unreadable managed identity token answer: {why}"),
        )
    };
    let value: Value = serde_json::from_str(body).map_err(|_| bad("not JSON"))?;
    let token = value["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no access_token"))?;
    let seconds = |v: &Value| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse::<i64>().ok()))
    };
    let expires_on = match (seconds(&value["expires_on"]), seconds(&value["expires_in"])) {
        (Some(at), _) => {
            OffsetDateTime::from_unix_timestamp(at).map_err(|_| bad("expires_on out of range"))?
        }
        (None, Some(after)) => {
            OffsetDateTime::now_utc() + azure_core::time::Duration::seconds(after)
        }
        (None, None) => return Err(bad("no expires_on")),
    };
    Ok(AccessToken::new(Secret::new(token.to_owned()), expires_on))
}

/// Runs the CLI tools with tokio, killing them if the chain stops waiting.
#[derive(Debug)]
struct BoundedExecutor;

#[async_trait]
impl Executor for BoundedExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> std::io::Result<Output> {
        tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
    }
}

/// An RSA private key as read from a file.
enum PrivateKey {
    Pkcs8(Vec<u8>),
    Pkcs1(Vec<u8>),
}

/// A service principal's certificate: signs the client assertion (RS256 JWT) Entra ID
/// takes instead of a secret.
struct CertificateAssertion {
    key: aws_lc_rs::signature::RsaKeyPair,
    /// The JWT header, base64url.
    header: String,
    client_id: String,
    audience: String,
}

impl fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The PEM blocks of a file, as (label, DER).
fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let end = block
            .find("-----END ")
            .and_then(|end| {
                block[end + 9..]
                    .find("-----")
                    .map(|close| end + 9 + close + 5)
            })
            .ok_or_else(|| config("a PEM block has no END line"))?;
        let normalized = block[..end].replace("\r\n", "\n");
        let (label, der) = pem_rfc7468::decode_vec(normalized.as_bytes())
            .map_err(|e| config(format!("unreadable PEM block: {e}")))?;
        blocks.push((label.to_owned(), der));
        rest = &block[end..];
    }
    Ok(blocks)
}

fn read_pem(text: &str, password: Option<&str>) -> Result<(PrivateKey, Vec<Vec<u8>>)> {
    let mut key = None;
    let mut certificates = Vec::new();
    for (label, der) in pem_blocks(text)? {
        match label.as_str() {
            "CERTIFICATE" => certificates.push(der),
            "PRIVATE KEY" => key = key.or(Some(PrivateKey::Pkcs8(der))),
            "RSA PRIVATE KEY" => key = key.or(Some(PrivateKey::Pkcs1(der))),
            "ENCRYPTED PRIVATE KEY" => {
                let password = password.ok_or_else(|| {
                    config("the private key is encrypted: set AZURE_CLIENT_CERTIFICATE_PASSWORD")
                })?;
                let encrypted = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                    .map_err(|e| config(format!("unreadable encrypted private key: {e}")))?;
                let document = encrypted.decrypt(password).map_err(|e| {
                    config(format!(
                        "cannot decrypt the private key (AZURE_CLIENT_CERTIFICATE_PASSWORD): {e}"
                    ))
                })?;
                key = key.or(Some(PrivateKey::Pkcs8(document.as_bytes().to_vec())));
            }
            _ => {}
        }
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(config(
            "legacy OpenSSL-encrypted PEM keys are not supported: convert with `openssl pkcs8 -topk8`",
        ));
    }
    let key = key.ok_or_else(|| config("the PEM file has no private key"))?;
    Ok((key, certificates))
}

fn read_pfx(bytes: &[u8], password: Option<&str>) -> Result<(PrivateKey, Vec<Vec<u8>>)> {
    use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
    let store = KeyStore::from_pkcs12(bytes, password.unwrap_or(""), Pkcs12ImportPolicy::Strict)
        .map_err(|e| {
            config(format!(
                "unreadable PFX/PKCS#12 file (wrong AZURE_CLIENT_CERTIFICATE_PASSWORD?): {e}"
            ))
        })?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| config("the PFX file has no private key with its certificate"))?;
    Ok((
        PrivateKey::Pkcs8(chain.key().as_der().to_vec()),
        chain.certs().iter().map(|c| c.as_der().to_vec()).collect(),
    ))
}

impl CertificateAssertion {
    fn from_file(
        path: &str,
        password: Option<&str>,
        send_chain: bool,
        client_id: &str,
        audience: &str,
    ) -> Result<Self> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_CERTIFICATE_FILE).read_to_end(&mut bytes))
            .map_err(|e| config("cannot read the client certificate").with_source(e))?;
        let (key, certificates) = match std::str::from_utf8(&bytes) {
            Ok(text) if text.contains("-----BEGIN ") => read_pem(text, password)?,
            _ => read_pfx(&bytes, password)?,
        };
        let key = match &key {
            PrivateKey::Pkcs8(der) => aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der),
            PrivateKey::Pkcs1(der) => aws_lc_rs::signature::RsaKeyPair::from_der(der),
        }
        .map_err(|e| {
            config(format!(
                "the client certificate's private key is not a usable RSA key ({e}): Entra ID certificate credentials are RSA"
            ))
        })?;
        let leaf = certificates
            .first()
            .ok_or_else(|| config("the client certificate file has no certificate"))?;
        let parsed = <x509_cert::Certificate as x509_cert::der::Decode>::from_der(leaf)
            .map_err(|e| config(format!("unreadable client certificate: {e}")))?;
        let certified = parsed
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes();
        if certified != aws_lc_rs::signature::KeyPair::public_key(&key).as_ref() {
            return Err(config(
                "the certificate is not the private key's (the first certificate must be the key's own)",
            ));
        }
        let thumbprint =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf);
        let mut header = json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": Base64UrlUnpadded::encode_string(thumbprint.as_ref()),
        });
        if send_chain {
            header["x5c"] = certificates
                .iter()
                .map(|c| Value::from(Base64::encode_string(c)))
                .collect();
        }
        Ok(Self {
            key,
            header: Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
            client_id: client_id.to_owned(),
            audience: audience.to_owned(),
        })
    }
}

#[async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|e| credential_error(format!("no randomness: {e}")))?;
        let claims = json!({
            "aud": self.audience,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        });
        let input = format!(
            "{}.{}",
            self.header,
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
        );
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| credential_error("cannot sign the client assertion"))?;
        Ok(format!(
            "{input}.{}",
            Base64UrlUnpadded::encode_string(&signature)
        ))
    }
}

/// The Entra ID resource (token audience) of keys at `host`: Key Vault's or Managed HSM's
/// in the public, US Government and China clouds; `None` for another host (a private
/// endpoint, an emulator), whose challenge alone decides.
#[must_use]
pub fn key_vault_resource(host: &str) -> Option<&'static str> {
    const KNOWN: [(&str, &str); 6] = [
        (".vault.azure.net", "https://vault.azure.net"),
        (".managedhsm.azure.net", "https://managedhsm.azure.net"),
        (
            ".vault.usgovcloudapi.net",
            "https://vault.usgovcloudapi.net",
        ),
        (
            ".managedhsm.usgovcloudapi.net",
            "https://managedhsm.usgovcloudapi.net",
        ),
        (".vault.azure.cn", "https://vault.azure.cn"),
        (".managedhsm.azure.cn", "https://managedhsm.azure.cn"),
    ];
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    KNOWN
        .iter()
        .find(|(suffix, _)| host.ends_with(suffix))
        .map(|(_, resource)| *resource)
}

/// A token was asked for another audience than the key's host takes.
#[derive(Debug)]
pub(crate) struct AudienceMismatch {
    asked: String,
    host: String,
    resource: &'static str,
}

impl fmt::Display for AudienceMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the vault's challenge asks for a token for {}, but keys at {} take tokens for {}: no token is sent to an endpoint that asks for another audience (check the endpoint, KMSSH_AZURE_ENDPOINT)",
            self.asked, self.host, self.resource
        )
    }
}

impl std::error::Error for AudienceMismatch {}

/// Hands the inner credential's tokens out only for the audience of the key's host.
pub(crate) struct AudienceGuard {
    pub(crate) inner: Arc<dyn TokenCredential>,
    pub(crate) host: String,
    pub(crate) resource: &'static str,
}

impl fmt::Debug for AudienceGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudienceGuard")
            .field("host", &self.host)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenCredential for AudienceGuard {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        for scope in scopes {
            let asked = scope.strip_suffix("/.default").unwrap_or(scope);
            if !asked
                .trim_end_matches('/')
                .eq_ignore_ascii_case(self.resource)
            {
                return Err(azure_core::Error::new(
                    AzKind::Credential,
                    AudienceMismatch {
                        asked: asked.to_owned(),
                        host: self.host.clone(),
                        resource: self.resource,
                    },
                ));
            }
        }
        self.inner.get_token(scopes, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_their_audience() {
        assert_eq!(
            key_vault_resource("ca.vault.azure.net"),
            Some("https://vault.azure.net")
        );
        assert_eq!(
            key_vault_resource("CA.ManagedHSM.azure.net:443"),
            Some("https://managedhsm.azure.net")
        );
        assert_eq!(
            key_vault_resource("ca.vault.usgovcloudapi.net"),
            Some("https://vault.usgovcloudapi.net")
        );
        assert_eq!(key_vault_resource("127.0.0.1:8443"), None);
        assert_eq!(key_vault_resource("evilvault.azure.net"), None);
    }

    #[test]
    fn token_credentials_narrows_the_chain() {
        assert_eq!(selected(None).expect("all").len(), 5);
        assert!(
            selected(Some("prod"))
                .expect("prod")
                .contains(&Kind::Managed)
        );
        assert!(!selected(Some("prod")).expect("prod").contains(&Kind::Cli));
        assert!(selected(Some("AzureCliCredential")).expect("one") == vec![Kind::Cli]);
        let err = selected(Some("everything")).err().expect("refused");
        assert_eq!(err.kind(), ErrorKind::Config);
    }

    #[test]
    fn managed_identity_answers_parse() {
        let token = parse_token(r#"{"access_token":"t","expires_on":"1900000000","resource":"r","token_type":"Bearer"}"#)
            .expect("string expires_on");
        assert_eq!(token.expires_on.unix_timestamp(), 1_900_000_000);
        let token = parse_token(r#"{"access_token":"t","expires_in":3599}"#).expect("expires_in");
        assert!(token.expires_on > OffsetDateTime::now_utc());
        assert!(parse_token(r#"{"expires_on":1}"#).is_err());
    }

    #[test]
    fn the_environment_source_names_what_is_missing() {
        let options = AzureKeyVaultOptions::default();
        let chain = CredentialChain::with_lookup(&options, &|name| {
            (name == "AZURE_TENANT_ID").then(|| "t".to_owned())
        })
        .expect("chain");
        let Source::Skipped(why) = &chain.links[0].source else {
            panic!("environment is not configured");
        };
        assert!(why.contains("AZURE_CLIENT_ID"), "{why}");
        assert!(!why.contains("AZURE_TENANT_ID"), "{why}");
        assert_eq!(
            chain.sources()[..2],
            ["environment".to_owned(), "workload identity".to_owned()]
        );
        assert_eq!(
            chain.sources()[2],
            "managed identity (IMDS at http://169.254.169.254)"
        );
    }
}
