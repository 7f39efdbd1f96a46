//! The service's configuration file (TOML), read and validated before anything starts.
//!
//! ```toml
//! listen = "127.0.0.1:50051"
//!
//! [tls]                                  # required unless the address is loopback and
//! certificate = "server.pem"             # the service runs with --insecure-loopback
//! key = "server-key.pem"
//! client_ca = "clients-ca.pem"           # optional: enables client certificates (mTLS)
//!
//! [keys]
//! user-ca = "local:/var/lib/kmssh/user_ca"             # name = key URI
//! host-ca = { uri = "aws-kms:alias/host-ca", aliases = ["arn:aws:kms:…:alias/host-ca"] }
//! # (relative `local:` key paths, like every path here, are relative to this file's folder)
//!
//! [ledger]
//! url = "sqlite:/var/lib/kmssh/ledger.db"              # or postgres://…
//! [audit]
//! path = "/var/log/kmssh/audit.jsonl"
//!
//! [[caller]]                             # see kmssh_server::auth::CallerConfig
//! [policy.NAME]                          # see kmssh_server::policy::PolicyConfig
//! [[oidc]]                               # see kmssh_server::auth::OidcIssuerConfig
//! [limits]                               # see Limits
//! ```
//!
//! Every error names the file, the line and the key it is about.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::auth::{CallerConfig, OidcIssuerConfig};
use crate::policy::PolicyConfig;
use crate::wire::CloudProvider;

/// Largest configuration file read.
const MAX_CONFIG_LEN: u64 = 1024 * 1024;

/// The whole configuration, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: Spanned<SocketAddr>,
    /// Server certificate and key; client CA bundle for mTLS.
    pub tls: Option<TlsConfig>,
    /// The CA keys the service may sign with, by name.
    pub keys: BTreeMap<String, Spanned<KeyConfig>>,
    /// Where issued certificates and refusals are recorded.
    #[serde(default)]
    pub ledger: LedgerConfig,
    /// The JSON-lines audit log.
    pub audit: Option<AuditConfig>,
    /// OIDC issuers whose ID tokens callers may present.
    #[serde(default)]
    pub oidc: Vec<OidcIssuerConfig>,
    /// Who may call, and under which policy.
    #[serde(default)]
    pub caller: Vec<Spanned<CallerConfig>>,
    /// What each policy allows.
    #[serde(default)]
    pub policy: BTreeMap<String, Spanned<PolicyConfig>>,
    /// Concurrency, rate, size and time limits.
    #[serde(default)]
    pub limits: Limits,
    /// Where the file was read from (relative paths in it are relative to its folder).
    #[serde(skip)]
    pub path: PathBuf,
}

/// TLS settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain the server presents.
    pub certificate: PathBuf,
    /// PEM private key of that certificate.
    pub key: PathBuf,
    /// PEM bundle of CAs whose client certificates are accepted (enables mTLS).
    pub client_ca: Option<PathBuf>,
}

/// A CA key: a URI, or a table with the URI and how paramiko-cloud clients name it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum KeyConfig {
    /// `name = "uri"`.
    Uri(String),
    /// `name = { uri = "…", provider = "aws", aliases = ["…"], create = "ecdsa" }`.
    Table(KeyTable),
}

/// The long form of a [`KeyConfig`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyTable {
    /// The key URI (`local:…`, `aws-kms:…`, `gcp-kms:…`, `azure-kv:…`).
    pub uri: String,
    /// The wire `provider` requests must name (`aws`, `azure`, `gcp`, or `any`). Default:
    /// the URI's provider; `any` for local keys.
    pub provider: Option<String>,
    /// Other `kmsKeyId` values that name this key (e.g. the ARN a paramiko-cloud client
    /// already sends).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// For a `local:` key: create it on first start with this type (`ecdsa`, `rsa`,
    /// `ed25519`) when the file does not exist.
    pub create: Option<String>,
    /// At most this many signatures started per second with this key by this instance
    /// (across all callers), to stay under the provider's quota rather than be
    /// throttled: requests over it wait their turn, within the request timeout.
    pub max_rate: Option<u32>,
}

impl KeyConfig {
    /// The key URI.
    #[must_use]
    pub fn uri(&self) -> &str {
        match self {
            Self::Uri(uri) => uri,
            Self::Table(table) => &table.uri,
        }
    }

    /// The key type to create on first start, if any.
    #[must_use]
    pub fn create(&self) -> Option<&str> {
        match self {
            Self::Uri(_) => None,
            Self::Table(table) => table.create.as_deref(),
        }
    }

    fn aliases(&self) -> &[String] {
        match self {
            Self::Uri(_) => &[],
            Self::Table(table) => &table.aliases,
        }
    }
}

/// The ledger database.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// `sqlite:PATH` (the default, `sqlite:kmssh-ledger.db` beside the configuration) or
    /// `postgres://…` when several instances share one ledger.
    pub url: Option<String>,
}

/// The audit log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The JSON-lines file (appended to, created 0600).
    pub path: PathBuf,
}

/// Limits; every field has a default fit for a small team's CA.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Requests handled at once, all connections together.
    pub max_concurrent_requests: usize,
    /// Requests handled at once on one connection (HTTP/2 streams).
    pub max_concurrent_per_connection: u32,
    /// Largest request message, bytes.
    pub max_request_bytes: usize,
    /// Requests per second one caller may make (sustained).
    pub caller_requests_per_second: u32,
    /// Requests one caller may make in a burst.
    pub caller_burst: u32,
    /// Longest a request may take (a client's shorter `grpc-timeout` wins), e.g. `"10s"`.
    pub request_timeout: String,
    /// How long in-flight requests may run after SIGTERM/SIGINT before the service exits.
    pub shutdown_grace: String,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_requests: 1024,
            max_concurrent_per_connection: 128,
            max_request_bytes: 64 * 1024,
            caller_requests_per_second: 100,
            caller_burst: 200,
            request_timeout: "10s".into(),
            shutdown_grace: "10s".into(),
        }
    }
}

/// A configuration that does not hold, with the place it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (the message has the line).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and column.
        message: String,
    },
    /// A value that parsed but does not make sense.
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The key or table it is about.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// How a wire request's `provider` + `kmsKeyId` find a configured key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRoute {
    /// The configured key name.
    pub name: String,
    /// The provider a request naming the key by a provider id must name; `None` accepts
    /// any (local keys). A request naming the key by its configured name may name any.
    pub provider: Option<CloudProvider>,
    /// Other `kmsKeyId` values that select this key: the URI's key id (for cloud keys) and
    /// the configured aliases, as paramiko-cloud clients send them.
    pub ids: Vec<String>,
    /// The key's `max_rate`, if any.
    pub max_rate: Option<u32>,
}

impl Config {
    /// Reads and validates `path`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the line and key of the first problem.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        use std::io::Read as _;
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut text = String::new();
        file.take(MAX_CONFIG_LEN + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_CONFIG_LEN {
            return Err(ConfigError::Syntax {
                path: path.to_owned(),
                message: format!("larger than {MAX_CONFIG_LEN} bytes"),
            });
        }
        Self::parse(&text, path)
    }

    /// Parses and validates `text`, as read from `path`.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.path = path.to_owned();
        config.validate(text)?;
        Ok(config)
    }

    fn invalid(
        &self,
        text: &str,
        span: std::ops::Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            line: line_of(text, span.start),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn validate(&self, text: &str) -> Result<(), ConfigError> {
        if self.keys.is_empty() {
            return Err(self.invalid(
                text,
                0..0,
                "keys",
                "no keys: add a [keys] table with name = \"key-uri\"",
            ));
        }
        for (name, key) in &self.keys {
            let at = format!("keys.{name}");
            if let Err(e) = kmssh_core::KeyUri::parse(key.get_ref().uri()) {
                return Err(self.invalid(text, key.span(), &at, e.to_string()));
            }
            if let KeyConfig::Table(table) = key.get_ref() {
                if let Some(provider) = &table.provider {
                    parse_provider(provider).map_err(|m| {
                        self.invalid(text, key.span(), &format!("{at}.provider"), m)
                    })?;
                }
                if table.max_rate == Some(0) {
                    return Err(self.invalid(
                        text,
                        key.span(),
                        &format!("{at}.max_rate"),
                        "0 signatures per second would never sign: remove it for no limit",
                    ));
                }
                if let Some(kind) = &table.create {
                    if !table.uri.starts_with("local:") {
                        return Err(self.invalid(
                            text,
                            key.span(),
                            &format!("{at}.create"),
                            "only local: keys can be created",
                        ));
                    }
                    if !matches!(kind.as_str(), "ecdsa" | "rsa" | "ed25519") {
                        return Err(self.invalid(
                            text,
                            key.span(),
                            &format!("{at}.create"),
                            format!("`{kind}`: expected ecdsa, rsa or ed25519"),
                        ));
                    }
                }
            }
        }
        let routes = self.key_routes();
        let all_ids = |r: &KeyRoute| {
            std::iter::once(r.name.clone())
                .chain(r.ids.clone())
                .collect::<Vec<_>>()
        };
        for (i, route) in routes.iter().enumerate() {
            for other in &routes[i + 1..] {
                if let Some(id) = all_ids(route)
                    .into_iter()
                    .find(|id| all_ids(other).contains(id))
                {
                    let span = self.keys[&other.name].span();
                    return Err(self.invalid(
                        text,
                        span,
                        &format!("keys.{}", other.name),
                        format!("`{id}` also names key `{}`", route.name),
                    ));
                }
            }
        }
        let key_names: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        for (name, policy) in &self.policy {
            crate::policy::Policy::compile(name, policy.get_ref(), &key_names).map_err(|e| {
                self.invalid(
                    text,
                    policy.span(),
                    &format!("policy.{name}.{}", e.field),
                    e.message,
                )
            })?;
        }
        let mut names = std::collections::BTreeSet::new();
        for caller in &self.caller {
            let c = caller.get_ref();
            let at = format!("caller `{}`", c.name);
            if !names.insert(c.name.as_str()) {
                return Err(self.invalid(
                    text,
                    caller.span(),
                    &at,
                    "a second caller with this name",
                ));
            }
            if !self.policy.contains_key(&c.policy) {
                return Err(self.invalid(
                    text,
                    caller.span(),
                    &at,
                    format!(
                        "policy `{}` is not defined (add [policy.{}])",
                        c.policy, c.policy
                    ),
                ));
            }
            if c.mtls.is_some()
                && self
                    .tls
                    .as_ref()
                    .and_then(|t| t.client_ca.as_ref())
                    .is_none()
            {
                return Err(self.invalid(
                    text,
                    caller.span(),
                    &at,
                    "authenticates by client certificate, but [tls] has no client_ca",
                ));
            }
        }
        let callers: Vec<CallerConfig> = self.caller.iter().map(|c| c.get_ref().clone()).collect();
        crate::auth::Authenticator::new(&callers, &self.oidc).map_err(|e| {
            self.invalid(text, span_of(text, "[[caller]]"), "caller", e.to_string())
        })?;
        let mut durations = Vec::new();
        for (key, value) in [
            ("request_timeout", &self.limits.request_timeout),
            ("shutdown_grace", &self.limits.shutdown_grace),
        ] {
            durations.push(parse_duration(value).map_err(|m| {
                self.invalid(text, span_of(text, key), &format!("limits.{key}"), m)
            })?);
        }
        // A request can then never outlive the grace period: the stop is a bound, not a
        // wish (tonic runs connections as tasks of their own, which a stop cannot cut).
        if durations[0] > durations[1] {
            return Err(self.invalid(
                text,
                span_of(text, "request_timeout"),
                "limits.request_timeout",
                format!(
                    "{} is longer than limits.shutdown_grace ({}): a request could outlive the stop",
                    self.limits.request_timeout, self.limits.shutdown_grace
                ),
            ));
        }
        if self.limits.max_concurrent_requests == 0
            || self.limits.max_concurrent_per_connection == 0
            || self.limits.caller_requests_per_second == 0
            || self.limits.caller_burst == 0
        {
            return Err(self.invalid(
                text,
                span_of(text, "[limits]"),
                "limits",
                "every limit must be at least 1",
            ));
        }
        Ok(())
    }

    /// How wire requests name each configured key.
    #[must_use]
    pub fn key_routes(&self) -> Vec<KeyRoute> {
        self.keys
            .iter()
            .map(|(name, key)| {
                let key = key.get_ref();
                let uri = key.uri();
                let (scheme, rest) = uri.split_once(':').unwrap_or((uri, ""));
                let provider = match key {
                    KeyConfig::Table(KeyTable {
                        provider: Some(p), ..
                    }) => parse_provider(p).ok().flatten(),
                    _ => CloudProvider::of_scheme(scheme),
                };
                let mut ids = Vec::new();
                if provider.is_some() && !rest.is_empty() {
                    ids.push(rest.to_owned());
                }
                ids.extend(key.aliases().iter().cloned());
                KeyRoute {
                    name: name.clone(),
                    provider,
                    ids,
                    max_rate: match key {
                        KeyConfig::Table(table) => table.max_rate,
                        KeyConfig::Uri(_) => None,
                    },
                }
            })
            .collect()
    }

    /// The request timeout.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        parse_duration(&self.limits.request_timeout).unwrap_or(Duration::from_secs(10))
    }

    /// The shutdown grace period.
    #[must_use]
    pub fn shutdown_grace(&self) -> Duration {
        parse_duration(&self.limits.shutdown_grace).unwrap_or(Duration::from_secs(10))
    }

    /// A path from the file, relative to the file's folder.
    #[must_use]
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// The URI to open for key `name`: as written, except that a relative `local:` key
    /// path is resolved against the file's folder, like every other path in it.
    #[must_use]
    pub fn key_uri(&self, name: &str) -> Option<String> {
        let uri = self.keys.get(name)?.get_ref().uri();
        Some(match uri.strip_prefix("local:") {
            Some(rest) if rest != "ephemeral" && !rest.starts_with("ephemeral?") => {
                let (path, query) = rest
                    .split_once('?')
                    .map_or((rest, None), |(p, q)| (p, Some(q)));
                let resolved = self.resolve_path(Path::new(path));
                match query {
                    Some(query) => format!("local:{}?{query}", resolved.display()),
                    None => format!("local:{}", resolved.display()),
                }
            }
            _ => uri.to_owned(),
        })
    }

    /// The ledger URL, with a relative SQLite path resolved against the file's folder.
    #[must_use]
    pub fn ledger_url(&self) -> String {
        let url = self
            .ledger
            .url
            .clone()
            .unwrap_or_else(|| "sqlite:kmssh-ledger.db".into());
        match url.strip_prefix("sqlite:") {
            Some(path) if !path.starts_with('/') && !path.starts_with("//") => {
                format!("sqlite:{}", self.resolve_path(Path::new(path)).display())
            }
            _ => url,
        }
    }
}

fn parse_provider(text: &str) -> Result<Option<CloudProvider>, String> {
    match text.to_ascii_lowercase().as_str() {
        "aws" => Ok(Some(CloudProvider::Aws)),
        "azure" => Ok(Some(CloudProvider::Azure)),
        "gcp" => Ok(Some(CloudProvider::Gcp)),
        "any" => Ok(None),
        _ => Err(format!("`{text}`: expected aws, azure, gcp or any")),
    }
}

/// `"10s"`, `"500ms"`, `"2m"`, `"1h"`.
///
/// # Errors
/// A message naming the value.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a duration like 10s, 500ms, 2m or 1h"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    Ok(duration)
}

/// Where `needle` first appears (for values toml gives no span for); the start otherwise.
fn span_of(text: &str, needle: &str) -> std::ops::Range<usize> {
    text.find(needle).map_or(0..0, |at| at..at + needle.len())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}
