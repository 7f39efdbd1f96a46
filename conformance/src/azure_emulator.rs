//! An in-process emulator of the Azure Key Vault keys data plane the Azure backend uses,
//! on 127.0.0.1 over HTTPS with a test CA generated at start (the SDK sends tokens only
//! over TLS). No emulator with the keys data plane and real crypto exists on a registry
//! reachable here, so the suite carries this one.
//!
//! It behaves as Key Vault does where the backend can tell: the first request without a
//! token gets 401 and a `WWW-Authenticate: Bearer authorization=…, resource=…` challenge;
//! `api-version` is required; keys are JWKs (base64url `x`, `y`); `sign` takes
//! `{"alg","value"}` and answers base64url fixed-width `r||s`; errors use Azure's
//! `{"error":{"code","message"}}` shape. Each key has its own [`FaultHandle`] (the shared
//! fault layer), rendered in Key Vault's shape by [`AzureDialect`] (429 with
//! `Retry-After`, latency, a wrong-length `r||s`, a flipped byte…).
//!
//! Names are looked up case-insensitively and answered in their stored spelling, as Key
//! Vault does. A key can be disabled or expired after it was opened (`sign` is then
//! refused with 403, as the service does) or put behind the vault's firewall (403
//! `ForbiddenByFirewall`). An emulator made with [`AzureKeyVaultEmulator::start_managed_hsm`]
//! challenges for Managed HSM's audience.
//!
//! The same TLS listener stands in for the Entra ID token endpoint
//! (`POST /{tenant}/oauth2/v2.0/token`: client secret, client certificate assertion checked
//! against the registered certificate, federated token), and
//! [`ManagedIdentityStandIn`] for the platform's managed identity endpoints (IMDS, App
//! Service, Cloud Shell) over plain HTTP. Tokens they hand out are accepted by the vault.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use kmssh_backend_local::{LocalKey, LocalOptions};
use kmssh_core::{Algorithm, KmsKey};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls;

use crate::faults::{
    Dialect, ErrorAnswer, FaultHandle, Intercept, Operation, edit_answer, retry_after_header,
};
use crate::http::{header, read_message, reason, spawn_loopback_server};

/// The bearer token the test credential hands out and the emulator accepts.
pub const TEST_TOKEN: &str = "kmssh-conformance-token";
/// The challenge's authority.
const AUTHORITY: &str = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000";
/// Key Vault's token audience, which its challenge names.
pub const VAULT_RESOURCE: &str = "https://vault.azure.net";
/// Managed HSM's token audience.
pub const MANAGED_HSM_RESOURCE: &str = "https://managedhsm.azure.net";

/// What kind of key a test key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// An EC key on a curve kmssh signs with.
    Ec(Algorithm),
    /// An EC key on secp256k1 (`P-256K`).
    EcP256K,
    /// An RSA key.
    Rsa,
    /// A symmetric (`oct`) key.
    Oct,
}

/// How a test key is set up.
#[derive(Clone, Debug)]
pub struct KeySetup {
    /// Its kind.
    pub kind: KeyKind,
    /// Its `key_ops`.
    pub key_ops: Vec<&'static str>,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Expiry, Unix seconds.
    pub expires: Option<i64>,
}

impl KeySetup {
    /// An enabled signing key of `kind`.
    #[must_use]
    pub fn signing(kind: KeyKind) -> Self {
        Self {
            kind,
            key_ops: vec!["sign", "verify"],
            enabled: true,
            expires: None,
        }
    }
}

struct Version {
    id: String,
    key: Option<LocalKey>,
}

struct StoredKey {
    setup: KeySetup,
    versions: Vec<Version>,
    faults: FaultHandle,
    /// Behind the vault's firewall: every request for it is refused.
    firewalled: bool,
}

/// What an app registration proves itself with at the token endpoint.
#[derive(Clone, Debug)]
pub enum AppCredential {
    /// A client secret.
    Secret(String),
    /// A client certificate: assertions must carry its SHA-1 thumbprint and verify
    /// against its RSA key.
    Certificate(ClientCertificate),
    /// A federated credential: the assertion must be exactly this token (the content of
    /// the workload's token file).
    Federated(String),
}

struct App {
    tenant: String,
    client_id: String,
    credential: AppCredential,
}

/// One request the Entra ID stand-in answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The tenant in the path.
    pub tenant: String,
    /// `client_id`.
    pub client_id: String,
    /// `secret`, `certificate`, `federated`, or what the request carried otherwise.
    pub proof: String,
    /// `scope`.
    pub scope: String,
    /// Whether a token was issued.
    pub granted: bool,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, StoredKey>,
    /// Bearer tokens the vault accepts besides [`TEST_TOKEN`].
    accepted: HashSet<String>,
    apps: Vec<App>,
    token_requests: Vec<TokenRequest>,
    issued: usize,
}

impl State {
    /// A key by name, compared case-insensitively as Key Vault does; with its stored name.
    fn key(&self, name: &str) -> Option<(&String, &StoredKey)> {
        self.keys.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    fn key_mut(&mut self, name: &str) -> Option<&mut StoredKey> {
        self.keys
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn issue(&mut self, label: &str) -> String {
        self.issued += 1;
        let token = format!("kmssh-issued-{label}-{}", self.issued);
        self.accepted.insert(token.clone());
        token
    }
}

type Keys = Arc<Mutex<State>>;

fn lock(keys: &Keys) -> std::sync::MutexGuard<'_, State> {
    keys.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The emulator: a TLS listener on its own thread and runtime, and its keys.
pub struct AzureKeyVaultEmulator {
    address: SocketAddr,
    ca_pem: String,
    keys: Keys,
}

fn test_pki() -> (String, rustls::ServerConfig) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kmssh conformance test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().expect("server key");
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    leaf.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .expect("server certificate");

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server TLS config");
    (ca_cert.pem(), config)
}

impl AzureKeyVaultEmulator {
    /// One emulator for the whole test process, on a thread of its own.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<AzureKeyVaultEmulator> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// Starts an emulator on 127.0.0.1 and a free port, with a fresh test CA.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    #[must_use]
    pub fn start() -> Self {
        Self::start_for(VAULT_RESOURCE)
    }

    /// Starts an emulator of a Managed HSM: its challenge names
    /// [`MANAGED_HSM_RESOURCE`].
    ///
    /// # Panics
    /// If no loopback port can be bound.
    #[must_use]
    pub fn start_managed_hsm() -> Self {
        Self::start_for(MANAGED_HSM_RESOURCE)
    }

    fn start_for(resource: &'static str) -> Self {
        let (ca_pem, config) = test_pki();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let keys: Keys = Arc::default();
        let served = keys.clone();
        let address = spawn_loopback_server("azure-kv-emulator", move |stream, address| {
            let (acceptor, keys) = (acceptor.clone(), served.clone());
            async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve(tls, keys, address, resource).await;
                }
            }
        });
        Self {
            address,
            ca_pem,
            keys,
        }
    }

    /// `https://127.0.0.1:PORT`: the vault endpoint the backend is pointed at.
    #[must_use]
    pub fn url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// The test CA, to be trusted by the client.
    #[must_use]
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Creates a key with one version; returns its name.
    #[must_use]
    pub fn create_key(&self, setup: KeySetup) -> String {
        let mut state = lock(&self.keys);
        let name = format!("key-{}", state.keys.len() + 1);
        let version = new_version(setup.kind);
        state.keys.insert(
            name.clone(),
            StoredKey {
                setup,
                versions: vec![version],
                faults: FaultHandle::new(),
                firewalled: false,
            },
        );
        name
    }

    /// Enables or disables a key (its versions' `enabled`), as `az keyvault key
    /// set-attributes --enabled` does; `false` for an unknown key.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> bool {
        lock(&self.keys)
            .key_mut(name)
            .map(|k| k.setup.enabled = enabled)
            .is_some()
    }

    /// Sets a key's expiry (Unix seconds); `false` for an unknown key.
    pub fn set_expires(&self, name: &str, expires: Option<i64>) -> bool {
        lock(&self.keys)
            .key_mut(name)
            .map(|k| k.setup.expires = expires)
            .is_some()
    }

    /// Puts a key behind the vault's firewall (every request for it is refused with 403
    /// `Forbidden`/`ForbiddenByFirewall`), or takes it out; `false` for an unknown key.
    pub fn set_firewalled(&self, name: &str, firewalled: bool) -> bool {
        lock(&self.keys)
            .key_mut(name)
            .map(|k| k.firewalled = firewalled)
            .is_some()
    }

    /// Registers an app (service principal) with the Entra ID stand-in.
    pub fn register_app(&self, tenant: &str, client_id: &str, credential: AppCredential) {
        lock(&self.keys).apps.push(App {
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            credential,
        });
    }

    /// The token requests the Entra ID stand-in has answered for `client_id`.
    #[must_use]
    pub fn token_requests(&self, client_id: &str) -> Vec<TokenRequest> {
        lock(&self.keys)
            .token_requests
            .iter()
            .filter(|r| r.client_id == client_id)
            .cloned()
            .collect()
    }

    /// A new bearer token the vault accepts (for stand-ins of other token sources).
    #[must_use]
    pub fn issue_token(&self, label: &str) -> String {
        lock(&self.keys).issue(label)
    }

    /// Starts a managed identity stand-in whose tokens this vault accepts: a
    /// system-assigned identity if `system_assigned`, and user-assigned identities with
    /// these client ids.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    #[must_use]
    pub fn start_managed_identity(
        &self,
        system_assigned: bool,
        user_assigned: &[&str],
    ) -> ManagedIdentityStandIn {
        ManagedIdentityStandIn::start(
            self.keys.clone(),
            system_assigned,
            user_assigned.iter().map(|s| (*s).to_owned()).collect(),
        )
    }

    /// Adds a new current version to a key (rotation); returns its id.
    #[must_use]
    pub fn rotate(&self, name: &str) -> Option<String> {
        let mut state = lock(&self.keys);
        let key = state.key_mut(name)?;
        let version = new_version(key.setup.kind);
        let id = version.id.clone();
        key.versions.push(version);
        Some(id)
    }

    /// The ids of a key's versions, oldest first.
    #[must_use]
    pub fn versions(&self, name: &str) -> Vec<String> {
        lock(&self.keys)
            .key(name)
            .map(|(_, k)| k.versions.iter().map(|v| v.id.clone()).collect())
            .unwrap_or_default()
    }

    /// A key's fault queue and counters (`None` for an unknown key).
    #[must_use]
    pub fn faults(&self, name: &str) -> Option<FaultHandle> {
        lock(&self.keys).key(name).map(|(_, k)| k.faults.clone())
    }

    /// How many authenticated requests of `operation` (`get` is
    /// [`Operation::GetPublicKey`]) a key has seen.
    #[must_use]
    pub fn count(&self, name: &str, operation: Operation) -> usize {
        self.faults(name).map_or(0, |f| f.count(operation))
    }
}

fn new_version(kind: KeyKind) -> Version {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).expect("random version id");
    let key = match kind {
        KeyKind::Ec(algorithm) => {
            Some(LocalKey::generate(algorithm, LocalOptions::default()).expect("key"))
        }
        _ => None,
    };
    Version {
        id: id.iter().map(|b| format!("{b:02x}")).collect(),
        key,
    }
}

fn azure_error(
    status: u16,
    code: &str,
    message: &str,
) -> (u16, Vec<(&'static str, String)>, Value) {
    (
        status,
        Vec::new(),
        json!({"error": {"code": code, "message": message}}),
    )
}

/// Key Vault's wire shape for faults: `{"error":{"code","message"}}` errors, 429 with
/// `Retry-After`, signatures as base64url fixed-width `r||s` in `value`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AzureDialect;

fn error_answer(status: u16, code: &str, message: &str) -> ErrorAnswer {
    let (status, headers, body) = azure_error(status, code, message);
    ErrorAnswer {
        status,
        headers,
        body,
    }
}

fn edit_signature(answer: &mut Value, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut raw = Base64UrlUnpadded::decode_vec(answer["value"].as_str().unwrap_or_default())
        .unwrap_or_default();
    if raw.is_empty() {
        return;
    }
    edit(&mut raw);
    answer["value"] = json!(Base64UrlUnpadded::encode_string(&raw));
}

impl Dialect for AzureDialect {
    fn throttled(&self, retry_after: Option<Duration>) -> ErrorAnswer {
        let mut answer = error_answer(
            429,
            "Throttled",
            "Request was not processed because too many requests were received.",
        );
        answer.headers.extend(retry_after.map(retry_after_header));
        answer
    }

    fn server_error(&self) -> ErrorAnswer {
        error_answer(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable.",
        )
    }

    /// An access policy without `keys/sign`, as Key Vault words it.
    fn denied(&self) -> ErrorAnswer {
        let mut answer = error_answer(
            403,
            "Forbidden",
            "The user, group or application 'appid=00000000-0000-0000-0000-000000000000' does not have keys sign permission on key vault 'kmssh-test;location=westeurope'.",
        );
        answer.body["error"]["innererror"] = json!({"code": "AccessDenied"});
        answer
    }

    fn corrupt_signature(&self, answer: &mut Value) {
        edit_signature(answer, |raw| {
            let middle = raw.len() / 2 + 1;
            if let Some(byte) = raw.get_mut(middle) {
                *byte ^= 0x40;
            }
        });
    }

    fn shorten_signature(&self, answer: &mut Value) {
        edit_signature(answer, |raw| {
            raw.pop();
        });
    }
}

/// The answer to a request that carries no token the vault accepts: Key Vault's 401 and
/// its bearer challenge.
fn challenge(resource: &str) -> (u16, Vec<(&'static str, String)>, Value) {
    let (status, mut headers, body) = azure_error(
        401,
        "Unauthorized",
        "AKV10000: Request is missing a Bearer or PoP token.",
    );
    headers.push((
        "WWW-Authenticate",
        format!(r#"Bearer authorization="{AUTHORITY}", resource="{resource}""#),
    ));
    (status, headers, body)
}

/// Key Vault's firewall refusal.
fn firewall_refusal() -> (u16, Vec<(&'static str, String)>, Value) {
    (
        403,
        Vec::new(),
        json!({"error": {
            "code": "Forbidden",
            "message": "Client address is not authorized and caller is not a trusted service.\r\nClient address: 127.0.0.1\r\nCaller: appid=00000000-0000-0000-0000-000000000000\r\nVault: kmssh-test;location=westeurope",
            "innererror": {"code": "ForbiddenByFirewall"},
        }}),
    )
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    keys: Keys,
    address: SocketAddr,
    resource: &'static str,
) {
    let mut buffer = Vec::new();
    while let Ok(Some(request)) = read_message(&mut stream, &mut buffer, false).await {
        let mut start = request.head.lines().next().unwrap_or("").split_whitespace();
        let method = start.next().unwrap_or("").to_owned();
        let target = start.next().unwrap_or("").to_owned();
        let token = header(&request.head, "authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let authorized = token
            .as_deref()
            .is_some_and(|t| t == TEST_TOKEN || lock(&keys).accepted.contains(t));
        let (status, headers, body) = if let Some(tenant) = token_endpoint_tenant(&method, &target)
        {
            let (status, body) = entra_token(&keys, &tenant, &request.body, address);
            (status, Vec::new(), body)
        } else if authorized {
            let route = key_route(&method, &target);
            let (faults, firewalled) = route
                .as_ref()
                .and_then(|(name, _)| {
                    lock(&keys)
                        .key(name)
                        .map(|(_, k)| (Some(k.faults.clone()), k.firewalled))
                })
                .unwrap_or((None, false));
            let intercept = match (&route, faults) {
                _ if firewalled => Intercept::Respond(ErrorAnswer {
                    status: 403,
                    headers: Vec::new(),
                    body: firewall_refusal().2,
                }),
                (Some((_, operation)), Some(faults)) => {
                    faults.intercept(*operation, &AzureDialect).await
                }
                _ => Intercept::Answer(None),
            };
            match intercept {
                Intercept::Drop => return,
                Intercept::Respond(answer) => (answer.status, answer.headers, answer.body),
                Intercept::Answer(edit) => {
                    let (status, headers, mut body) =
                        handle(&method, &target, &request.body, &keys, address);
                    if status == 200 {
                        edit_answer(&AzureDialect, edit.as_ref(), &mut body);
                    }
                    (status, headers, body)
                }
            }
        } else {
            challenge(resource)
        };
        if write_json(&mut stream, status, &headers, &body.to_string())
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn write_json<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    headers: &[(&'static str, String)],
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}

/// The tenant of `POST /{tenant}/oauth2/v2.0/token`.
fn token_endpoint_tenant(method: &str, target: &str) -> Option<String> {
    let path = target.split('?').next()?;
    let tenant = path.strip_prefix('/')?.strip_suffix("/oauth2/v2.0/token")?;
    (method == "POST" && !tenant.is_empty() && !tenant.contains('/')).then(|| tenant.to_owned())
}

/// The pairs of an `application/x-www-form-urlencoded` body.
fn form(body: &[u8]) -> HashMap<String, String> {
    azure_core::http::Url::parse(&format!("http://form/?{}", String::from_utf8_lossy(body)))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// Entra ID's error shape.
fn entra_error(status: u16, error: &str, code: u32, description: &str) -> (u16, Value) {
    (
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}"),
            "error_codes": [code],
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
        }),
    )
}

/// The Entra ID stand-in: checks the client's proof against its registration, records
/// the request, and issues a token the vault accepts.
fn entra_token(keys: &Keys, tenant: &str, body: &[u8], address: SocketAddr) -> (u16, Value) {
    let form = form(body);
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let client_id = field("client_id");
    let scope = field("scope");
    let mut state = lock(keys);
    let app = state
        .apps
        .iter()
        .find(|a| a.tenant == tenant && a.client_id == client_id)
        .map(|a| a.credential.clone());
    let proof = if form.contains_key("client_secret") {
        "secret"
    } else if form.contains_key("client_assertion") {
        match &app {
            Some(AppCredential::Federated(_)) => "federated",
            _ => "certificate",
        }
    } else {
        "none"
    };
    let audience = format!("https://{address}/{tenant}/oauth2/v2.0/token");
    let refusal = match (&app, field("grant_type").as_str()) {
        (_, grant) if grant != "client_credentials" => Some(entra_error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        )),
        (None, _) => Some(entra_error(
            400,
            "unauthorized_client",
            700_016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        )),
        (Some(AppCredential::Secret(secret)), _) => (form.get("client_secret") != Some(secret))
            .then(|| {
                entra_error(
                    401,
                    "invalid_client",
                    7_000_215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                )
            }),
        (Some(AppCredential::Federated(expected)), _) => {
            (form.get("client_assertion") != Some(expected)).then(|| {
                entra_error(
                    400,
                    "invalid_client",
                    70_021,
                    "No matching federated identity record found for presented assertion.",
                )
            })
        }
        (Some(AppCredential::Certificate(certificate)), _) => certificate
            .check_assertion(&field("client_assertion"), &client_id, &audience)
            .err()
            .map(|why| entra_error(401, "invalid_client", 700_027, &why)),
    };
    let granted = refusal.is_none();
    state.token_requests.push(TokenRequest {
        tenant: tenant.to_owned(),
        client_id: client_id.clone(),
        proof: proof.to_owned(),
        scope,
        granted,
    });
    if let Some(refusal) = refusal {
        return refusal;
    }
    let token = state.issue(proof);
    (
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )
}

/// The key name and operation of `GET /keys/{name}[/{version}]` (`get key`) and
/// `POST /keys/{name}/{version}/sign`.
fn key_route(method: &str, target: &str) -> Option<(String, Operation)> {
    let path = target.split('?').next()?;
    let segments: Vec<&str> = path.strip_prefix("/keys/")?.split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", [name, ..]) if segments.len() <= 2 => {
            Some(((*name).to_owned(), Operation::GetPublicKey))
        }
        ("POST", [name, _, "sign"]) => Some(((*name).to_owned(), Operation::Sign)),
        _ => None,
    }
}

fn handle(
    method: &str,
    target: &str,
    body: &[u8],
    keys: &Keys,
    address: SocketAddr,
) -> (u16, Vec<(&'static str, String)>, Value) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if !query
        .split('&')
        .any(|pair| pair.starts_with("api-version=") && pair.len() > "api-version=".len())
    {
        return azure_error(
            400,
            "BadParameter",
            "The 'api-version' query parameter is required.",
        );
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (name, version, operation) = match (method, segments.as_slice()) {
        ("GET", ["keys", name]) | ("GET", ["keys", name, ""]) => (*name, "", "get"),
        ("GET", ["keys", name, version]) => (*name, *version, "get"),
        ("POST", ["keys", name, version, "sign"]) => (*name, *version, "sign"),
        _ => {
            return azure_error(
                404,
                "NotFound",
                &format!("no such operation: {method} {path}"),
            );
        }
    };
    let state = lock(keys);
    let Some((name, key)) = state.key(name) else {
        return azure_error(
            404,
            "KeyNotFound",
            &format!("A key with (name/id) {name} was not found in this key vault."),
        );
    };
    let found = if version.is_empty() {
        key.versions.last()
    } else {
        key.versions
            .iter()
            .find(|v| v.id.eq_ignore_ascii_case(version))
    };
    let Some(found) = found else {
        return azure_error(
            404,
            "KeyNotFound",
            &format!("A key with (name/id) {name}/{version} was not found in this key vault."),
        );
    };
    let kid = format!("https://{address}/keys/{name}/{}", found.id);
    if operation == "get" {
        return (200, Vec::new(), jwk_json(&key.setup, found, &kid));
    }
    if !key.setup.enabled {
        let (status, headers, mut body) = azure_error(
            403,
            "Forbidden",
            "Operation sign is not allowed on a disabled key.",
        );
        body["error"]["innererror"] = json!({"code": "KeyDisabled"});
        return (status, headers, body);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if key.setup.expires.is_some_and(|exp| exp <= now) {
        return azure_error(
            403,
            "Forbidden",
            "Operation sign is not allowed on an expired key.",
        );
    }
    if !key.setup.key_ops.contains(&"sign") {
        return azure_error(
            403,
            "Forbidden",
            "Operation sign is not permitted on this key.",
        );
    }
    let Some(local) = &found.key else {
        return azure_error(400, "BadParameter", "Key does not support ECDSA signing.");
    };
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return azure_error(400, "BadParameter", "The request body is not JSON.");
    };
    let algorithm = local.algorithm();
    let expected_alg = match algorithm {
        Algorithm::EcdsaP256Sha256 => "ES256",
        Algorithm::EcdsaP384Sha384 => "ES384",
        _ => "ES512",
    };
    if request.get("alg").and_then(Value::as_str) != Some(expected_alg) {
        return azure_error(
            400,
            "BadParameter",
            &format!("Invalid algorithm for this key: expected {expected_alg}."),
        );
    }
    let Some(digest) = request
        .get("value")
        .and_then(Value::as_str)
        .and_then(|v| Base64UrlUnpadded::decode_vec(v.trim_end_matches('=')).ok())
    else {
        return azure_error(400, "BadParameter", "value is not base64url.");
    };
    if digest.len() != algorithm.digest_len() {
        return azure_error(
            400,
            "BadParameter",
            &format!("Invalid digest length {} for {expected_alg}.", digest.len()),
        );
    }
    let Ok(signature) = local.sign_digest_sync(&digest) else {
        return azure_error(500, "InternalServerError", "signing failed");
    };
    let raw = signature.to_fixed();
    (
        200,
        Vec::new(),
        json!({"kid": kid, "value": Base64UrlUnpadded::encode_string(&raw)}),
    )
}

fn jwk_json(setup: &KeySetup, version: &Version, kid: &str) -> Value {
    let b64 = |bytes: &[u8]| Base64UrlUnpadded::encode_string(bytes);
    let mut jwk = match (setup.kind, &version.key) {
        (KeyKind::Ec(algorithm), Some(key)) => {
            let point = key.public_key().to_sec1_bytes();
            let field = algorithm.field_len();
            json!({
                "kty": "EC",
                "crv": algorithm.curve_name(),
                "x": b64(&point[1..=field]),
                "y": b64(&point[field + 1..]),
            })
        }
        (KeyKind::EcP256K, _) => {
            json!({"kty": "EC", "crv": "P-256K", "x": b64(&[7u8; 32]), "y": b64(&[9u8; 32])})
        }
        (KeyKind::Rsa, _) => json!({"kty": "RSA", "n": b64(&[0xc5u8; 256]), "e": b64(&[1, 0, 1])}),
        _ => json!({"kty": "oct"}),
    };
    jwk["kid"] = json!(kid);
    jwk["key_ops"] = json!(setup.key_ops);
    let mut attributes = json!({
        "enabled": setup.enabled,
        "created": 1_700_000_000,
        "updated": 1_700_000_000,
        "recoveryLevel": "Recoverable+Purgeable",
    });
    if let Some(expires) = setup.expires {
        attributes["exp"] = json!(expires);
    }
    json!({"key": jwk, "attributes": attributes})
}

/// An RSA client certificate for a test app registration (Entra ID certificate
/// credentials are RSA), self-signed.
#[derive(Clone, Debug)]
pub struct ClientCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The RSA public key (PKCS#1 DER), which assertions must verify against.
    public_key: Vec<u8>,
}

impl ClientCertificate {
    /// A new 2048-bit RSA key and a self-signed certificate for it.
    ///
    /// # Panics
    /// If the key or certificate cannot be made.
    #[must_use]
    pub fn generate(common_name: &str) -> Self {
        use rcgen::{CertificateParams, DnType, KeyPair, PKCS_RSA_SHA256};
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256).expect("RSA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params.self_signed(&key).expect("certificate");
        Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            public_key: key.public_key_raw().to_vec(),
        }
    }

    /// Checks a client assertion as Entra ID does: an RS256 JWT whose `x5t` is this
    /// certificate's SHA-1 thumbprint, signed by its key, for `client_id` and `audience`,
    /// and within its validity.
    fn check_assertion(
        &self,
        assertion: &str,
        client_id: &str,
        audience: &str,
    ) -> Result<(), String> {
        let parts: Vec<&str> = assertion.split('.').collect();
        let [header, claims, signature] = parts.as_slice() else {
            return Err("Client assertion is not a JWT.".into());
        };
        let json = |part: &str| {
            Base64UrlUnpadded::decode_vec(part)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                .ok_or_else(|| "Client assertion is not a JWT.".to_owned())
        };
        let (header_json, claims_json) = (json(header)?, json(claims)?);
        let thumbprint =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.cert_der);
        if header_json["alg"] != "RS256"
            || header_json["x5t"] != Base64UrlUnpadded::encode_string(thumbprint.as_ref())
        {
            return Err(
                "Client assertion contains an invalid signature. [Reason - The key was not found.]"
                    .into(),
            );
        }
        let signature = Base64UrlUnpadded::decode_vec(signature)
            .map_err(|_| "Client assertion signature is not base64url.".to_owned())?;
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            &self.public_key,
        )
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "Client assertion failed signature validation.".to_owned())?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if claims_json["aud"] != audience {
            return Err(format!(
                "The audience {} in the client assertion is not {audience}.",
                claims_json["aud"]
            ));
        }
        if claims_json["iss"] != client_id || claims_json["sub"] != client_id {
            return Err("The client assertion's iss and sub must be the client id.".into());
        }
        let exp = claims_json["exp"].as_i64().unwrap_or(0);
        let nbf = claims_json["nbf"].as_i64().unwrap_or(i64::MAX);
        if exp <= now || nbf > now + 300 || exp - nbf > 3600 {
            return Err("The client assertion is outside its validity.".into());
        }
        Ok(())
    }
}

/// The `X-IDENTITY-HEADER` value the App Service stand-in requires (`IDENTITY_HEADER`).
pub const APP_SERVICE_SECRET: &str = "kmssh-test-identity-header";

/// One request a [`ManagedIdentityStandIn`] answered.
#[derive(Clone, Debug)]
pub struct IdentityRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The path.
    pub path: String,
    /// Query (and, for Cloud Shell, form body) parameters.
    pub params: HashMap<String, String>,
    /// Whether it carried `Metadata: true`.
    pub metadata: bool,
    /// Its `X-IDENTITY-HEADER`.
    pub identity_header: Option<String>,
    /// The HTTP status it was answered with.
    pub status: u16,
}

struct IdentityState {
    vault: Keys,
    system_assigned: bool,
    user_assigned: Vec<String>,
    requests: Vec<IdentityRequest>,
}

/// Loopback stand-ins for the managed identity endpoints of Azure hosts, over plain HTTP
/// as theirs are: IMDS (`GET /metadata/identity/oauth2/token`, `Metadata: true` required,
/// `api-version=2018-02-01`), App Service / Container Apps (`GET /msi/token` with
/// `X-IDENTITY-HEADER`, `api-version=2019-08-01`) and Cloud Shell (`POST
/// /cloudshell/token`, form body). Unknown identities get IMDS's 400. Its tokens are
/// accepted by the emulator that started it.
pub struct ManagedIdentityStandIn {
    address: SocketAddr,
    state: Arc<Mutex<IdentityState>>,
}

impl ManagedIdentityStandIn {
    fn start(vault: Keys, system_assigned: bool, user_assigned: Vec<String>) -> Self {
        let state = Arc::new(Mutex::new(IdentityState {
            vault,
            system_assigned,
            user_assigned,
            requests: Vec::new(),
        }));
        let served = state.clone();
        let address = spawn_loopback_server("azure-identity-stand-in", move |mut stream, _| {
            let state = served.clone();
            async move {
                let mut buffer = Vec::new();
                while let Ok(Some(request)) = read_message(&mut stream, &mut buffer, false).await {
                    let (status, body) = identity_answer(&state, &request);
                    if write_json(&mut stream, status, &[], &body.to_string())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        Self { address, state }
    }

    /// `http://127.0.0.1:PORT`: the IMDS base URL (`AZURE_POD_IDENTITY_AUTHORITY_HOST`).
    #[must_use]
    pub fn imds_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The App Service identity endpoint (`IDENTITY_ENDPOINT`).
    #[must_use]
    pub fn app_service_endpoint(&self) -> String {
        format!("http://{}/msi/token", self.address)
    }

    /// The Cloud Shell identity endpoint (`MSI_ENDPOINT`).
    #[must_use]
    pub fn cloud_shell_endpoint(&self) -> String {
        format!("http://{}/cloudshell/token", self.address)
    }

    /// Every request answered so far, in order.
    #[must_use]
    pub fn requests(&self) -> Vec<IdentityRequest> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .requests
            .clone()
    }
}

fn identity_error(status: u16, error: &str, description: &str) -> (u16, Value) {
    (
        status,
        json!({"error": error, "error_description": description}),
    )
}

fn identity_answer(state: &Mutex<IdentityState>, request: &crate::http::Message) -> (u16, Value) {
    let mut start = request.head.lines().next().unwrap_or("").split_whitespace();
    let method = start.next().unwrap_or("").to_owned();
    let target = start.next().unwrap_or("").to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut params = form(query.as_bytes());
    if method == "POST" {
        params.extend(form(&request.body));
    }
    let metadata = header(&request.head, "metadata") == Some("true");
    let identity_header = header(&request.head, "x-identity-header").map(str::to_owned);
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let param = |name: &str| params.get(name).cloned().unwrap_or_default();
    let refusal = match (method.as_str(), path) {
        ("GET", "/metadata/identity/oauth2/token") => {
            if !metadata {
                Some(identity_error(
                    400,
                    "invalid_request",
                    "Required metadata header not specified",
                ))
            } else if param("api-version").is_empty() {
                Some(identity_error(
                    400,
                    "invalid_request",
                    "Required query variable 'api-version' is missing",
                ))
            } else {
                None
            }
        }
        ("GET", "/msi/token") => {
            if identity_header.as_deref() != Some(APP_SERVICE_SECRET) {
                Some(identity_error(
                    401,
                    "unauthorized",
                    "X-IDENTITY-HEADER is missing or wrong",
                ))
            } else if param("api-version") != "2019-08-01" {
                Some(identity_error(
                    400,
                    "invalid_request",
                    "api-version 2019-08-01 required",
                ))
            } else {
                None
            }
        }
        ("POST", "/cloudshell/token") => (!metadata).then(|| {
            identity_error(
                400,
                "invalid_request",
                "Required metadata header not specified",
            )
        }),
        _ => Some(identity_error(404, "not_found", "no such endpoint")),
    };
    let refusal = refusal.or_else(|| {
        let known = match params.get("client_id") {
            Some(id) => state.user_assigned.contains(id),
            None => state.system_assigned,
        };
        if param("resource").is_empty() {
            Some(identity_error(
                400,
                "invalid_request",
                "Required query variable 'resource' is missing",
            ))
        } else if known {
            None
        } else {
            Some(identity_error(400, "invalid_request", "Identity not found"))
        }
    });
    let (status, body) = refusal.unwrap_or_else(|| {
        let token = lock(&state.vault).issue("managed-identity");
        let expires_on = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 3600;
        (
            200,
            json!({
                "access_token": token,
                "expires_on": expires_on.to_string(),
                "expires_in": "3599",
                "resource": param("resource"),
                "token_type": "Bearer",
                "client_id": params.get("client_id").cloned().unwrap_or_else(|| "system".into()),
            }),
        )
    });
    state.requests.push(IdentityRequest {
        method,
        path: path.to_owned(),
        params,
        metadata,
        identity_header,
        status,
    });
    (status, body)
}
