//! OIDC ID tokens: verified with the issuer's published keys (JWKS), then matched to a caller.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{AuthConfigError, AuthError, CallerConfig, base_attributes, glob_match, identity};
use crate::{AuthMethod, Identity};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
const LEEWAY: u64 = 60;
/// Larger discovery documents or key sets are refused: they are a few KiB in practice.
const MAX_DOCUMENT: usize = 1 << 20;
/// Keys kept from one key set; tokens without `kid` are tried against each, so bound them.
const MAX_KEYS: usize = 64;
/// Names accepted in a token's `alg`: asymmetric only, never `none` or HMAC.
const ALGORITHMS: &str = "RS256, RS384, RS512, ES256, ES384, EdDSA";

/// Which ID tokens a caller presents: from `issuer`, with a `sub` matching `subject` and every
/// listed claim matching its glob (`*` any run, `?` one character; case-sensitive).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcMatch {
    /// The issuer (`iss`), exactly as in one of the configured OIDC issuers.
    pub issuer: String,
    /// Glob the token's `sub` must match (`"*"` for any).
    pub subject: String,
    /// Claim name → glob its value must match. A string claim is matched as is, a boolean or
    /// number as its JSON text, an array when any element matches; a missing claim never matches.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
}

/// An OIDC issuer whose ID tokens are accepted.
///
/// URLs must be `https://`; `http://` is accepted only for loopback hosts (`127.0.0.1`, `::1`,
/// `localhost`), which is what tests use.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuerConfig {
    /// The issuer identifier: the tokens' `iss`, and where discovery starts.
    pub issuer: String,
    /// The audience (`aud`) tokens must be issued for.
    pub audience: String,
    /// Where the issuer publishes its keys; by default found through discovery at
    /// `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// A PEM file of extra root certificates for the issuer's HTTPS, beside the system's.
    #[serde(default)]
    pub ca_certificate: Option<PathBuf>,
}

/// How long issuer keys are trusted and how often they are fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JwksTiming {
    /// Keys are refetched once this old (default 10 minutes).
    pub cache_ttl: Duration,
    /// A token with an unknown `kid` triggers a refetch at most this often (default 30 s), so
    /// forged `kid`s cannot make the server hammer the issuer.
    pub min_refetch_interval: Duration,
    /// Bound on one discovery or key-set request (default 5 s).
    pub fetch_timeout: Duration,
}

impl Default for JwksTiming {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(600),
            min_refetch_interval: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// The configured issuers, each with its callers.
pub(super) struct Oidc {
    issuers: Vec<Issuer>,
    timing: JwksTiming,
}

impl fmt::Debug for Oidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Oidc")
            .field(
                "issuers",
                &self.issuers.iter().map(|i| &i.issuer).collect::<Vec<_>>(),
            )
            .field("timing", &self.timing)
            .finish()
    }
}

struct OidcCaller {
    caller: String,
    policy: String,
    subject: String,
    claims: BTreeMap<String, String>,
}

struct Issuer {
    issuer: String,
    audience: String,
    jwks_uri: Option<Url>,
    discovery: Url,
    client: reqwest::Client,
    callers: Vec<OidcCaller>,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching, so concurrent requests share one fetch.
    fetch: tokio::sync::Mutex<FetchState>,
}

#[derive(Default)]
struct FetchState {
    /// The `jwks_uri` discovery found.
    discovered: Option<Url>,
    last_attempt: Option<Instant>,
    last_failure: Option<(Instant, String)>,
}

struct KeySet {
    keys: Vec<Arc<VerifyKey>>,
    fetched_at: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

struct VerifyKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The JWK's `alg`, when it pins one.
    algorithm: Option<Algorithm>,
    key: DecodingKey,
}

impl Oidc {
    pub(super) fn new(
        configs: &[OidcIssuerConfig],
        callers: &[(&CallerConfig, &OidcMatch)],
    ) -> Result<Self, AuthConfigError> {
        let mut issuers: Vec<Issuer> = Vec::with_capacity(configs.len());
        for config in configs {
            if issuers.iter().any(|known| known.issuer == config.issuer) {
                return Err(AuthConfigError::issuer(
                    &config.issuer,
                    "configured more than once",
                ));
            }
            issuers.push(Issuer::new(config)?);
        }
        for (caller, matcher) in callers {
            let issuer = issuers
                .iter_mut()
                .find(|issuer| issuer.issuer == matcher.issuer)
                .ok_or_else(|| {
                    AuthConfigError::caller(
                        &caller.name,
                        format!(
                            "oidc issuer `{}` is not a configured OIDC issuer",
                            matcher.issuer
                        ),
                    )
                })?;
            if matcher.subject.is_empty() {
                return Err(AuthConfigError::caller(
                    &caller.name,
                    "oidc subject is empty (\"*\" matches any)",
                ));
            }
            if matcher.claims.keys().any(String::is_empty) {
                return Err(AuthConfigError::caller(
                    &caller.name,
                    "oidc claims has an empty claim name",
                ));
            }
            issuer.callers.push(OidcCaller {
                caller: caller.name.clone(),
                policy: caller.policy.clone(),
                subject: matcher.subject.clone(),
                claims: matcher.claims.clone(),
            });
        }
        Ok(Self {
            issuers,
            timing: JwksTiming::default(),
        })
    }

    pub(super) fn set_timing(&mut self, timing: JwksTiming) {
        self.timing = timing;
    }

    pub(super) async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        let mut parts = token.split('.');
        let header = decode_part(parts.next(), "header")?;
        let unverified = decode_part(parts.next(), "payload")?;

        let algorithm = match header.get("alg").and_then(Value::as_str) {
            None => return Err(rejected("header has no `alg`")),
            Some("none") => return Err(rejected("unsigned token (`alg: none`) refused")),
            Some(name) => accepted_algorithm(name).ok_or_else(|| {
                rejected(format!(
                    "algorithm `{name}` not accepted (only {ALGORITHMS})"
                ))
            })?,
        };
        if header.contains_key("crit") {
            return Err(rejected(
                "critical header parameters (`crit`) not supported",
            ));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(rejected("header `kid` is not a string")),
        };
        // Only selects which keys to verify with; the signature check below covers `iss` too.
        let claimed_issuer = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| rejected("token has no `iss` claim"))?;
        let issuer = self
            .issuers
            .iter()
            .find(|issuer| issuer.issuer == claimed_issuer)
            .ok_or_else(|| rejected(format!("issuer `{claimed_issuer}` not configured")))?;

        let keys = issuer.keys_for(kid, algorithm, &self.timing).await?;
        let claims = issuer.verify(token, algorithm, &keys)?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| rejected("claim `sub` is not a string"))?;
        if let Some(iat) = claims.get("iat") {
            let iat = iat
                .as_f64()
                .ok_or_else(|| rejected("claim `iat` is not a number"))?;
            #[expect(
                clippy::cast_precision_loss,
                reason = "seconds since 1970 fit f64 exactly"
            )]
            let latest = (unix_now() + LEEWAY) as f64;
            if iat > latest {
                return Err(rejected("token issued in the future (`iat`)"));
            }
        }

        let caller = issuer
            .callers
            .iter()
            .find(|caller| caller.matches(subject, &claims))
            .ok_or_else(|| AuthError::NoOidcCaller {
                issuer: issuer.issuer.clone(),
                subject: subject.to_owned(),
            })?;
        Ok(identity(
            &caller.caller,
            &caller.policy,
            AuthMethod::Oidc,
            attributes(&caller.caller, subject, &issuer.issuer, &claims),
        ))
    }
}

impl OidcCaller {
    fn matches(&self, subject: &str, claims: &Map<String, Value>) -> bool {
        glob_match(&self.subject, subject)
            && self.claims.iter().all(|(name, pattern)| {
                claims
                    .get(name)
                    .is_some_and(|value| claim_matches(pattern, value))
            })
    }
}

fn claim_matches(pattern: &str, value: &Value) -> bool {
    match value {
        Value::String(text) => glob_match(pattern, text),
        Value::Bool(_) | Value::Number(_) => glob_match(pattern, &value.to_string()),
        Value::Array(items) => items
            .iter()
            .any(|item| !item.is_array() && claim_matches(pattern, item)),
        Value::Null | Value::Object(_) => false,
    }
}

/// `caller`, `sub`, `iss`, `claim.NAME` for every top-level string claim, and `email.local`
/// from `email` unless the token says that address is not verified.
fn attributes(
    caller: &str,
    subject: &str,
    issuer: &str,
    claims: &Map<String, Value>,
) -> BTreeMap<String, String> {
    let mut attributes = base_attributes(caller);
    attributes.insert("sub".to_owned(), subject.to_owned());
    attributes.insert("iss".to_owned(), issuer.to_owned());
    for (name, value) in claims {
        if let Value::String(value) = value {
            attributes.insert(format!("claim.{name}"), value.clone());
        }
    }
    // Some issuers send `email_verified` as a string.
    let unverified = matches!(claims.get("email_verified"), Some(Value::Bool(false)))
        || claims
            .get("email_verified")
            .and_then(Value::as_str)
            .is_some_and(|verified| verified.eq_ignore_ascii_case("false"));
    if !unverified
        && let Some((local, _domain)) = claims
            .get("email")
            .and_then(Value::as_str)
            .and_then(|email| email.rsplit_once('@'))
        && !local.is_empty()
    {
        attributes.insert("email.local".to_owned(), local.to_owned());
    }
    attributes
}

fn rejected(message: impl Into<String>) -> AuthError {
    AuthError::IdToken(message.into())
}

fn decode_part(part: Option<&str>, what: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = Base64UrlUnpadded::decode_vec(part.unwrap_or_default())
        .map_err(|_| rejected(format!("token {what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| rejected(format!("token {what} is not a JSON object")))
}

fn accepted_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `https://`, or `http://` on a loopback host.
fn check_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| format!("`{text}` is not a URL: {error}"))?;
    if url_allowed(&url) {
        Ok(url)
    } else {
        Err(format!(
            "`{text}` must be https:// (http:// only on 127.0.0.1, ::1 or localhost)"
        ))
    }
}

fn url_allowed(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => url.host_str().is_some_and(|host| {
            // IPv6 hosts come bracketed (`[::1]`).
            let address = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || address
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

/// An error and its causes on one line (reqwest's own message alone rarely says why).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

impl Issuer {
    fn new(config: &OidcIssuerConfig) -> Result<Self, AuthConfigError> {
        let fail = |message: String| AuthConfigError::issuer(&config.issuer, message);
        check_url(&config.issuer).map_err(|message| fail(format!("issuer {message}")))?;
        if config.audience.is_empty() {
            return Err(fail("empty audience".to_owned()));
        }
        let discovery = check_url(&format!(
            "{}/.well-known/openid-configuration",
            config.issuer.trim_end_matches('/')
        ))
        .map_err(fail)?;
        let jwks_uri = config
            .jwks_uri
            .as_deref()
            .map(check_url)
            .transpose()
            .map_err(|message| fail(format!("jwks_uri {message}")))?;

        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= 3 {
                    attempt.error("more than 3 redirects")
                } else if url_allowed(attempt.url()) {
                    attempt.follow()
                } else {
                    attempt.error("redirect to a URL that is neither https:// nor loopback")
                }
            }))
            .user_agent(concat!("kmssh-server/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_certificate {
            let pem = std::fs::read(path).map_err(|source| AuthConfigError::CaCertificate {
                issuer: config.issuer.clone(),
                path: path.clone(),
                source,
            })?;
            let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
                fail(format!(
                    "ca_certificate {}: {}",
                    path.display(),
                    error_chain(&error)
                ))
            })?;
            if roots.is_empty() {
                return Err(fail(format!(
                    "ca_certificate {} holds no PEM certificate",
                    path.display()
                )));
            }
            builder = builder.tls_certs_merge(roots);
        }
        let client = builder.build().map_err(|error| {
            fail(format!(
                "cannot build the HTTPS client: {}",
                error_chain(&error)
            ))
        })?;
        Ok(Self {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            jwks_uri,
            discovery,
            client,
            callers: Vec::new(),
            keys: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        })
    }

    fn cached(&self) -> Option<Arc<KeySet>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The keys that may have signed a token with this `kid` and algorithm: from the cache while
    /// it is fresh, else (or when the `kid` is unknown, at most once per
    /// `min_refetch_interval`) from the issuer.
    async fn keys_for(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
        timing: &JwksTiming,
    ) -> Result<Vec<Arc<VerifyKey>>, AuthError> {
        let seen = self.cached();
        if let Some(set) = &seen
            && set.fetched_at.elapsed() < timing.cache_ttl
        {
            let keys = set.find(kid, algorithm);
            if !keys.is_empty() {
                return Ok(keys);
            }
        }

        let mut state = self.fetch.lock().await;
        let current = self.cached();
        // Another request may have fetched while this one waited for the lock.
        if let Some(set) = &current
            && !seen.as_ref().is_some_and(|seen| Arc::ptr_eq(seen, set))
        {
            let keys = set.find(kid, algorithm);
            if !keys.is_empty() {
                return Ok(keys);
            }
        }
        let fresh = current
            .as_ref()
            .is_some_and(|set| set.fetched_at.elapsed() < timing.cache_ttl);
        let recent = |at: Instant| at.elapsed() < timing.min_refetch_interval;
        if fresh && state.last_attempt.is_some_and(recent) {
            return Err(self.unknown_key(kid, algorithm));
        }
        if let Some((at, message)) = &state.last_failure
            && recent(*at)
        {
            // The issuer failed moments ago: answer from the old keys or with that failure
            // rather than make every request wait for another timeout.
            return match current.map(|set| set.find(kid, algorithm)) {
                Some(keys) if !keys.is_empty() => Ok(keys),
                _ => Err(self.unavailable(message.clone())),
            };
        }

        state.last_attempt = Some(Instant::now());
        match self.fetch_keys(&mut state, timing).await {
            Ok(set) => {
                state.last_failure = None;
                let set = Arc::new(set);
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(set.clone());
                let keys = set.find(kid, algorithm);
                if keys.is_empty() {
                    Err(self.unknown_key(kid, algorithm))
                } else {
                    Ok(keys)
                }
            }
            Err(message) => {
                tracing::warn!(issuer = %self.issuer, "fetching the issuer's keys failed: {message}");
                state.last_failure = Some((Instant::now(), message.clone()));
                // Past their lifetime the old keys still beat refusing every caller while the
                // issuer is unreachable.
                match current.map(|set| set.find(kid, algorithm)) {
                    Some(keys) if !keys.is_empty() => Ok(keys),
                    _ => Err(self.unavailable(message)),
                }
            }
        }
    }

    fn unknown_key(&self, kid: Option<&str>, algorithm: Algorithm) -> AuthError {
        match kid {
            Some(kid) => rejected(format!(
                "key `{kid}` ({algorithm:?}) not in the keys of issuer `{}`",
                self.issuer
            )),
            None => rejected(format!(
                "issuer `{}` publishes no {algorithm:?} key",
                self.issuer
            )),
        }
    }

    fn unavailable(&self, message: String) -> AuthError {
        AuthError::KeysUnavailable {
            issuer: self.issuer.clone(),
            message,
        }
    }

    async fn fetch_keys(
        &self,
        state: &mut FetchState,
        timing: &JwksTiming,
    ) -> Result<KeySet, String> {
        let uri = match (&self.jwks_uri, &state.discovered) {
            (Some(uri), _) | (None, Some(uri)) => uri.clone(),
            (None, None) => {
                let uri = self.discover(timing).await?;
                state.discovered = Some(uri.clone());
                uri
            }
        };
        match self.get_json::<RawKeySet>(&uri, timing).await {
            Ok(raw) => Ok(KeySet::new(raw, &self.issuer)),
            Err(message) => {
                // The issuer may have moved its keys: discover again next time.
                state.discovered = None;
                Err(message)
            }
        }
    }

    async fn discover(&self, timing: &JwksTiming) -> Result<Url, String> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let document: Discovery = self.get_json(&self.discovery, timing).await?;
        if document.issuer != self.issuer {
            return Err(format!(
                "{} names issuer `{}`, not `{}`",
                self.discovery, document.issuer, self.issuer
            ));
        }
        check_url(&document.jwks_uri).map_err(|message| format!("discovered jwks_uri {message}"))
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        url: &Url,
        timing: &JwksTiming,
    ) -> Result<T, String> {
        let fail = |error: &dyn std::error::Error| format!("GET {url}: {}", error_chain(error));
        let mut response = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(timing.fetch_timeout)
            .send()
            .await
            .map_err(|error| fail(&error))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| fail(&error))? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(format!("GET {url}: response over {MAX_DOCUMENT} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|error| format!("GET {url}: {error}"))
    }

    /// Verifies the signature with each candidate key, then `exp`/`nbf` (with leeway), `iss`
    /// and `aud`.
    fn verify(
        &self,
        token: &str,
        algorithm: Algorithm,
        keys: &[Arc<VerifyKey>],
    ) -> Result<Map<String, Value>, AuthError> {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        for key in keys {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                // With no `kid`, several keys are candidates: try the next.
                Err(error) if matches!(error.kind(), ErrorKind::InvalidSignature) => {}
                Err(error) => return Err(self.describe(error.kind())),
            }
        }
        Err(rejected("signature invalid"))
    }

    fn describe(&self, kind: &ErrorKind) -> AuthError {
        rejected(match kind {
            ErrorKind::ExpiredSignature => "token expired".to_owned(),
            ErrorKind::ImmatureSignature => "token not yet valid (`nbf`)".to_owned(),
            ErrorKind::InvalidAudience => format!(
                "audience mismatch: issuer `{}` tokens must be for `{}`",
                self.issuer, self.audience
            ),
            ErrorKind::InvalidIssuer => "issuer mismatch".to_owned(),
            ErrorKind::InvalidSignature => "signature invalid".to_owned(),
            ErrorKind::MissingRequiredClaim(claim) => format!("claim `{claim}` missing"),
            ErrorKind::InvalidClaimFormat(claim) => format!("claim `{claim}` malformed"),
            ErrorKind::InvalidAlgorithm => "algorithm does not match the key".to_owned(),
            other => format!("{other:?}"),
        })
    }
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<Value>,
}

impl KeySet {
    /// Keeps the usable signature keys; others (encryption keys, symmetric keys, unsupported
    /// types or curves) are skipped, so one odd key does not disable an issuer.
    fn new(raw: RawKeySet, issuer: &str) -> Self {
        let mut keys = Vec::new();
        for value in raw.keys {
            let kid = value.get("kid").and_then(Value::as_str).map(str::to_owned);
            match serde_json::from_value::<Jwk>(value)
                .map_err(|error| error.to_string())
                .and_then(|jwk| VerifyKey::new(&jwk))
            {
                Ok(key) if keys.len() < MAX_KEYS => keys.push(Arc::new(key)),
                Ok(_) => {
                    tracing::warn!(
                        issuer,
                        "key set holds over {MAX_KEYS} keys; ignoring the rest"
                    );
                    break;
                }
                Err(reason) => {
                    tracing::debug!(issuer, kid = kid.as_deref(), "skipping key: {reason}");
                }
            }
        }
        Self {
            keys,
            fetched_at: Instant::now(),
        }
    }

    fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Vec<Arc<VerifyKey>> {
        self.keys
            .iter()
            .filter(|key| kid.is_none_or(|kid| key.kid.as_deref() == Some(kid)))
            .filter(|key| key.accepts(algorithm))
            .cloned()
            .collect()
    }
}

impl VerifyKey {
    fn new(jwk: &Jwk) -> Result<Self, String> {
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|usage| *usage != PublicKeyUse::Signature)
        {
            return Err("not a signature key (`use`)".to_owned());
        }
        if jwk
            .common
            .key_operations
            .as_ref()
            .is_some_and(|operations| !operations.contains(&KeyOperations::Verify))
        {
            return Err("not a verification key (`key_ops`)".to_owned());
        }
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => KeyKind::P256,
                EllipticCurve::P384 => KeyKind::P384,
                ref other => return Err(format!("unsupported curve {other:?}")),
            },
            AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
                EllipticCurve::Ed25519 => KeyKind::Ed25519,
                ref other => return Err(format!("unsupported curve {other:?}")),
            },
            // Symmetric (`oct`) keys never verify: that would let anyone holding the
            // published key forge tokens.
            AlgorithmParameters::OctetKey(_) => return Err("symmetric key".to_owned()),
            _ => return Err("unsupported key type".to_owned()),
        };
        let algorithm = match jwk.common.key_algorithm {
            None => None,
            Some(named) => {
                let algorithm =
                    Algorithm::try_from(named).map_err(|_| format!("unsupported alg {named:?}"))?;
                if !kind.accepts(algorithm) {
                    return Err(format!("alg {algorithm:?} does not fit a {kind:?} key"));
                }
                Some(algorithm)
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|error| error.to_string())?;
        Ok(Self {
            kid: jwk.common.key_id.clone(),
            kind,
            algorithm,
            key,
        })
    }

    fn accepts(&self, algorithm: Algorithm) -> bool {
        self.kind.accepts(algorithm) && self.algorithm.is_none_or(|pinned| pinned == algorithm)
    }
}

impl KeyKind {
    fn accepts(self, algorithm: Algorithm) -> bool {
        matches!(
            (self, algorithm),
            (
                Self::Rsa,
                Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
            ) | (Self::P256, Algorithm::ES256)
                | (Self::P384, Algorithm::ES384)
                | (Self::Ed25519, Algorithm::EdDSA)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for ok in [
            "https://issuer.example",
            "http://127.0.0.1:8080/x",
            "http://[::1]:1/",
            "http://localhost:9",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://issuer.example",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "issuer",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn claims() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"email":"alice@example.com","email_verified":true,"n":3,"groups":["a","ops"],"admin":false}"#,
        )
        .expect("json");
        let found = attributes("c", "s", "i", &claims);
        assert_eq!(found["email.local"], "alice");
        assert_eq!(found["claim.email"], "alice@example.com");
        assert!(!found.contains_key("claim.n"));
        assert!(claim_matches("op?", &claims["groups"]));
        assert!(claim_matches("3", &claims["n"]));
        assert!(claim_matches("false", &claims["admin"]));
        assert!(!claim_matches("x*", &claims["groups"]));

        let unverified: Map<String, Value> =
            serde_json::from_str(r#"{"email":"bob@example.com","email_verified":"false"}"#)
                .expect("json");
        assert!(!attributes("c", "s", "i", &unverified).contains_key("email.local"));
    }

    #[test]
    fn algorithms() {
        for name in ["none", "HS256", "HS384", "HS512", "PS256", "ES512", "rs256"] {
            assert!(accepted_algorithm(name).is_none(), "{name}");
        }
        assert!(KeyKind::Rsa.accepts(Algorithm::RS512));
        assert!(!KeyKind::Rsa.accepts(Algorithm::HS256));
        assert!(!KeyKind::P256.accepts(Algorithm::ES384));
    }
}
