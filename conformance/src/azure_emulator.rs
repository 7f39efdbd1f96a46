//! An in-process emulator of the Azure Key Vault keys data plane the Azure backend uses,
//! on 127.0.0.1 over HTTPS with a test CA generated at start (the SDK sends tokens only
//! over TLS). No emulator with the keys data plane and real crypto exists on a registry
//! reachable here, so the suite carries this one.
//!
//! It behaves as Key Vault does where the backend can tell: the first request without a
//! token gets 401 and a `WWW-Authenticate: Bearer authorization=…, resource=…` challenge;
//! `api-version` is required; keys are JWKs (`EC` with base64url `crv`, `x`, `y`; `RSA`
//! with `n`, `e`; `-HSM` types in a Managed HSM); `create` makes EC keys (P-256, P-384,
//! P-521, P-256K) and RSA keys of 2048, 3072 or 4096 bits; `sign` takes `{"alg","value"}`
//! (`ES256`/`ES384`/`ES512`, `RS256`/`RS384`/`RS512`), checks the algorithm against the
//! key and the digest's length against the algorithm with the service's words, and
//! answers base64url fixed-width `r||s` or the modulus-length RSA signature; errors use
//! Azure's `{"error":{"code","message"}}` shape. Each key has its own [`FaultHandle`] (the shared
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

use base64ct::Base64;
use base64ct::{Base64UrlUnpadded, Encoding};
use kmssh_backend_local::{LocalKey, LocalOptions, SecretKey, ephemeral_uri};
use kmssh_core::rsa::traits::PublicKeyParts as _;
use kmssh_core::{Algorithm, Curve, KeySpec, KmsKey, PublicKey, Signature, SigningInput};
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

/// What kind of key a test key is. Its JWK's `kty` gains `-HSM` in a Managed HSM
/// emulator ([`AzureKeyVaultEmulator::start_managed_hsm`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// An EC key on a curve kmssh signs with (`EC`).
    Ec(Curve),
    /// An EC key on secp256k1 (`P-256K`); it cannot sign here.
    EcP256K,
    /// An RSA key of this many bits (`RSA`). Key Vault's sizes (2048, 3072, 4096) sign;
    /// any other size is a public modulus only, to check that the backend refuses it.
    Rsa(u32),
    /// A symmetric (`oct`) key.
    Oct,
    /// A JWK of a type Key Vault does not have: `OKP` on `Ed25519`, what an Ed25519 key
    /// would look like. It cannot sign.
    Okp,
}

impl KeyKind {
    /// The kind of key Key Vault holds for `spec`; `None` for Ed25519, which it has not.
    #[must_use]
    pub fn for_spec(spec: KeySpec) -> Option<Self> {
        match spec {
            KeySpec::Ecdsa(curve) => Some(Self::Ec(curve)),
            KeySpec::Rsa(bits) => Some(Self::Rsa(bits)),
            KeySpec::Ed25519 => None,
        }
    }
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
    /// Shared so that signing runs without the vault's lock.
    key: Option<Arc<LocalKey>>,
}

struct StoredKey {
    setup: KeySetup,
    versions: Vec<Version>,
    faults: FaultHandle,
    /// Behind the vault's firewall: every request for it is refused.
    firewalled: bool,
    /// The `alg` of every signature made, in order.
    signed: Vec<String>,
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
    /// Keys made by [`AzureKeyVaultEmulator::create_key`], for their names.
    created: usize,
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
    hsm: bool,
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
        let hsm = resource == MANAGED_HSM_RESOURCE;
        let address = spawn_loopback_server("azure-kv-emulator", move |stream, address| {
            let (acceptor, keys) = (acceptor.clone(), served.clone());
            async move {
                // Answers go out at once: with Nagle's algorithm, the client's delayed
                // ACK holds each answer for up to 40 ms (thousands of signatures per key).
                let _ = stream.set_nodelay(true);
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve(tls, keys, address, resource).await;
                }
            }
        });
        Self {
            address,
            ca_pem,
            keys,
            hsm,
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

    /// Whether this emulates a Managed HSM (key types `EC-HSM`, `RSA-HSM`, `oct-HSM`).
    #[must_use]
    pub fn is_managed_hsm(&self) -> bool {
        self.hsm
    }

    /// Creates a key with one version; returns its name.
    ///
    /// # Panics
    /// If the key cannot be generated.
    #[must_use]
    pub fn create_key(&self, setup: KeySetup) -> String {
        // Generated before the lock: RSA-4096 takes a while, and the vault keeps serving.
        let version = new_version(setup.kind);
        let mut state = lock(&self.keys);
        let name = loop {
            state.created += 1;
            let name = format!("key-{}", state.created);
            if state.key(&name).is_none() {
                break name;
            }
        };
        state.keys.insert(
            name.clone(),
            StoredKey {
                setup,
                versions: vec![version],
                faults: FaultHandle::new(),
                firewalled: false,
                signed: Vec::new(),
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
        let kind = lock(&self.keys).key(name)?.1.setup.kind;
        let version = new_version(kind);
        let id = version.id.clone();
        lock(&self.keys).key_mut(name)?.versions.push(version);
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

    /// The JWS `alg` of every signature a key has made, in order (`RS512`, `ES256`…).
    #[must_use]
    pub fn signed_algorithms(&self, name: &str) -> Vec<String> {
        lock(&self.keys)
            .key(name)
            .map(|(_, k)| k.signed.clone())
            .unwrap_or_default()
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
        KeyKind::Ec(curve) => Some(Arc::new(
            LocalKey::generate(KeySpec::Ecdsa(curve), LocalOptions::default()).expect("EC key"),
        )),
        KeyKind::Rsa(bits) if KeySpec::RSA_SIZES.contains(&bits) => Some(Arc::new(rsa_key(bits))),
        _ => None,
    };
    Version {
        id: id.iter().map(|b| format!("{b:02x}")).collect(),
        key,
    }
}

/// A new RSA key of one of Key Vault's sizes. Generated by AWS-LC, whatever engines the
/// local backend was built with: RustCrypto's prime search takes seconds for RSA-4096,
/// and the suite makes a key for every case. Signed with by the local backend.
fn rsa_key(bits: u32) -> LocalKey {
    use aws_lc_rs::encoding::AsDer as _;
    let size = match bits {
        2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
        3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
        _ => aws_lc_rs::rsa::KeySize::Rsa4096,
    };
    let pair = aws_lc_rs::rsa::KeyPair::generate(size).expect("RSA key");
    let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = pair.as_der().expect("PKCS#8");
    let base64 = Base64::encode_string(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in base64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let secret = SecretKey::from_pem(&pem).expect("the local backend reads PKCS#8 RSA");
    let spec = KeySpec::Rsa(bits);
    LocalKey::from_secret(
        ephemeral_uri(spec).expect("URI"),
        &secret,
        LocalOptions::default(),
    )
    .expect("RSA key")
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
                    // On a blocking thread: RSA signing and key generation take
                    // milliseconds to seconds, and the listener keeps serving meanwhile.
                    let (keys, method, target) = (keys.clone(), method.clone(), target.clone());
                    let hsm = resource == MANAGED_HSM_RESOURCE;
                    let answer = tokio::task::spawn_blocking(move || {
                        handle(&method, &target, &request.body, &keys, address, hsm)
                    })
                    .await;
                    let Ok((status, headers, mut body)) = answer else {
                        return;
                    };
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
    // One write: head and body in one TLS record and, mostly, one segment.
    head.push_str(body);
    stream.write_all(head.as_bytes()).await?;
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
    hsm: bool,
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
        ("POST", ["keys", name, "create"]) => return create(name, body, keys, address, hsm),
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
        return (200, Vec::new(), jwk_json(&key.setup, found, &kid, hsm));
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
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return azure_error(400, "BadParameter", "The request body is not JSON.");
    };
    let (name, local) = (name.clone(), found.key.clone());
    // Signed without the lock: concurrent requests for other keys (or this one) go on.
    drop(state);
    let answer = sign(local.as_deref(), &request, &kid);
    if answer.0 == 200
        && let Some(key) = lock(keys).key_mut(&name)
    {
        key.signed
            .push(request["alg"].as_str().unwrap_or_default().to_owned());
    }
    answer
}

/// The algorithm a JWS `alg` names, among those the emulator signs with.
fn signing_algorithm(alg: &str) -> Option<Algorithm> {
    Some(match alg {
        "ES256" => Algorithm::EcdsaP256Sha256,
        "ES384" => Algorithm::EcdsaP384Sha384,
        "ES512" => Algorithm::EcdsaP521Sha512,
        "RS256" => Algorithm::RsaPkcs1Sha256,
        "RS384" => Algorithm::RsaPkcs1Sha384,
        "RS512" => Algorithm::RsaPkcs1Sha512,
        _ => return None,
    })
}

/// `sign` on one key version: the algorithm must suit the key and the digest the
/// algorithm, refused with Key Vault's 400 `BadParameter` and its wording otherwise
/// ("Key and signing algorithm are incompatible…", "Invalid length of 'value': 10 bytes.
/// RS256 requires 32 bytes, encoded with base64url.").
fn sign(
    key: Option<&LocalKey>,
    request: &Value,
    kid: &str,
) -> (u16, Vec<(&'static str, String)>, Value) {
    let alg = request
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(algorithm) = signing_algorithm(alg) else {
        // Key Vault also signs PS256/384/512 (and ES256K); kmssh never asks for them.
        return azure_error(
            400,
            "BadParameter",
            &format!(
                "Invalid algorithm '{alg}': the emulator signs ES256, ES384, ES512, RS256, RS384 and RS512."
            ),
        );
    };
    let Some(key) = key else {
        return azure_error(
            400,
            "BadParameter",
            &format!("Key {kid} cannot sign with '{alg}'."),
        );
    };
    let public = key.public_key();
    if !public.can_sign(algorithm) {
        let message = match (public, algorithm.curve()) {
            (PublicKey::Ecdsa(k), Some(curve)) => format!(
                "Key and signing algorithm are incompatible. Key {kid} uses curve '{}', and algorithm '{alg}' can only be used with curve '{curve}'.",
                k.curve()
            ),
            _ => format!(
                "Key and signing algorithm are incompatible. Key {kid} is {}, and algorithm '{alg}' cannot be used with it.",
                public.description()
            ),
        };
        return azure_error(400, "BadParameter", &message);
    }
    let Some(digest) = request
        .get("value")
        .and_then(Value::as_str)
        .and_then(|v| Base64UrlUnpadded::decode_vec(v.trim_end_matches('=')).ok())
    else {
        return azure_error(400, "BadParameter", "value is not base64url.");
    };
    let expected = algorithm.hash().map_or(0, |hash| hash.len());
    if digest.len() != expected {
        return azure_error(
            400,
            "BadParameter",
            &format!(
                "Invalid length of 'value': {} bytes. {alg} requires {expected} bytes, encoded with base64url.",
                digest.len()
            ),
        );
    }
    let raw = match key.sign_sync(algorithm, SigningInput::Digest(&digest)) {
        // JWS forms (RFC 7518 §3.3, §3.4): fixed-width r||s, the modulus-length integer.
        Ok(Signature::Ecdsa(signature)) => signature.to_fixed(),
        Ok(signature) => signature.to_bytes(),
        Err(_) => return azure_error(500, "InternalServerError", "signing failed"),
    };
    (
        200,
        Vec::new(),
        json!({"kid": kid, "value": Base64UrlUnpadded::encode_string(&raw)}),
    )
}

/// `POST /keys/{name}/create`: a new key, or a new current version of an existing one,
/// as Key Vault does. `kty` `EC` (`crv` P-256, P-384, P-521 or P-256K, or `key_size`
/// 256/384/521) or `RSA` (`key_size` 2048, 3072 or 4096; 2048 when absent), with their
/// `-HSM` spellings; `key_ops` and `attributes.enabled`/`exp` as given.
fn create(
    name: &str,
    body: &[u8],
    keys: &Keys,
    address: SocketAddr,
    hsm: bool,
) -> (u16, Vec<(&'static str, String)>, Value) {
    let bad = |message: String| azure_error(400, "BadParameter", &message);
    if name.is_empty()
        || name.len() > 127
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return bad(format!(
            "The key name '{name}' is invalid: use 1 to 127 letters, digits and dashes."
        ));
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return bad("The request body is not JSON.".into());
    };
    let kty = request
        .get("kty")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let size = request.get("key_size").and_then(Value::as_u64);
    let crv = request.get("crv").and_then(Value::as_str);
    let kind = match kty.trim_end_matches("-HSM") {
        "EC" => match (crv, size) {
            (Some("P-256") | None, None | Some(256)) => KeyKind::Ec(Curve::P256),
            (Some("P-384"), None | Some(384)) | (None, Some(384)) => KeyKind::Ec(Curve::P384),
            (Some("P-521"), None | Some(521)) | (None, Some(521)) => KeyKind::Ec(Curve::P521),
            (Some("P-256K"), None | Some(256)) => KeyKind::EcP256K,
            (crv, size) => {
                return bad(format!(
                    "Unsupported curve {} with key size {}. Supported curves are [P-256, P-256K, P-384, P-521].",
                    crv.unwrap_or("none"),
                    size.map_or_else(|| "none".to_owned(), |s| s.to_string())
                ));
            }
        },
        "RSA" => match size.unwrap_or(2048) {
            bits @ (2048 | 3072 | 4096) => KeyKind::Rsa(u32::try_from(bits).unwrap_or(2048)),
            bits => {
                return bad(format!(
                    "Unsupported key size ({bits}). Supported sizes are [2048, 3072, 4096]"
                ));
            }
        },
        _ => return bad(format!("The key type '{kty}' is not supported.")),
    };
    let key_ops: Vec<&'static str> = match request.get("key_ops").and_then(Value::as_array) {
        Some(ops) => {
            let mut known = Vec::new();
            for op in ops {
                let op = op.as_str().unwrap_or_default();
                match KEY_OPERATIONS.iter().find(|known| **known == op) {
                    Some(known_op) => known.push(*known_op),
                    None => return bad(format!("Invalid key operation '{op}'.")),
                }
            }
            known
        }
        None if matches!(kind, KeyKind::Rsa(_)) => KEY_OPERATIONS.to_vec(),
        None => vec!["sign", "verify"],
    };
    let attributes = request.get("attributes");
    let setup = KeySetup {
        kind,
        key_ops,
        enabled: attributes
            .and_then(|a| a.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(true),
        expires: attributes
            .and_then(|a| a.get("exp"))
            .and_then(Value::as_i64),
    };
    // Generated without the lock (this runs on a blocking thread): RSA-4096 takes a while.
    let version = new_version(kind);
    let mut state = lock(keys);
    let stored = match state
        .keys
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
    {
        Some(existing) => existing,
        None => {
            state.keys.insert(
                name.to_owned(),
                StoredKey {
                    setup: setup.clone(),
                    versions: Vec::new(),
                    faults: FaultHandle::new(),
                    firewalled: false,
                    signed: Vec::new(),
                },
            );
            name.to_owned()
        }
    };
    let Some(key) = state.keys.get_mut(&stored) else {
        return azure_error(500, "InternalServerError", "the key vanished");
    };
    key.setup = setup;
    key.versions.push(version);
    let Some(latest) = key.versions.last() else {
        return azure_error(500, "InternalServerError", "the key has no version");
    };
    let kid = format!("https://{address}/keys/{stored}/{}", latest.id);
    (200, Vec::new(), jwk_json(&key.setup, latest, &kid, hsm))
}

/// The key operations Key Vault knows (`JsonWebKeyOperation`).
const KEY_OPERATIONS: [&str; 8] = [
    "encrypt",
    "decrypt",
    "sign",
    "verify",
    "wrapKey",
    "unwrapKey",
    "import",
    "export",
];

/// An unsigned big-endian integer without leading zero octets, as JWK members carry it
/// (RFC 7518 §6.3.1).
fn unsigned(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// A `bits`-bit odd number with its top bit set: the modulus of an RSA key of a size
/// the emulator does not make (nothing can sign with it; it is there to be refused).
fn placeholder_modulus(bits: u32) -> Vec<u8> {
    let len = usize::try_from(bits.div_ceil(8)).unwrap_or(0).max(1);
    let mut n = vec![0xc5u8; len];
    let top_bits = bits - 8 * (u32::try_from(len).unwrap_or(0) - 1);
    n[0] = (0xc5u8 | 0x80) >> (8 - top_bits.clamp(1, 8));
    n[len - 1] |= 1;
    n
}

fn jwk_json(setup: &KeySetup, version: &Version, kid: &str, hsm: bool) -> Value {
    let b64 = |bytes: &[u8]| Base64UrlUnpadded::encode_string(bytes);
    let public = version.key.as_deref().map(KmsKey::public_key);
    let mut jwk = match (setup.kind, public) {
        (KeyKind::Ec(curve), Some(PublicKey::Ecdsa(key))) => {
            let point = key.to_sec1_bytes();
            let field = curve.field_len();
            json!({
                "kty": "EC",
                "crv": curve.name(),
                "x": b64(&point[1..=field]),
                "y": b64(&point[field + 1..]),
            })
        }
        (KeyKind::Rsa(_), Some(PublicKey::Rsa(key))) => json!({
            "kty": "RSA",
            "n": b64(unsigned(&key.n().to_be_bytes())),
            "e": b64(unsigned(&key.e().to_be_bytes())),
        }),
        (KeyKind::Rsa(bits), _) => {
            json!({"kty": "RSA", "n": b64(&placeholder_modulus(bits)), "e": b64(&[1, 0, 1])})
        }
        (KeyKind::EcP256K, _) => {
            json!({"kty": "EC", "crv": "P-256K", "x": b64(&[7u8; 32]), "y": b64(&[9u8; 32])})
        }
        (KeyKind::Okp, _) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[0x3bu8; 32])}),
        _ => json!({"kty": "oct"}),
    };
    if hsm && jwk["kty"] != "OKP" {
        let kty = format!("{}-HSM", jwk["kty"].as_str().unwrap_or_default());
        jwk["kty"] = json!(kty);
    }
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
                let _ = stream.set_nodelay(true);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(alg: &str, value: &[u8]) -> Value {
        json!({"alg": alg, "value": Base64UrlUnpadded::encode_string(value)})
    }

    fn message(answer: &(u16, Vec<(&'static str, String)>, Value)) -> String {
        answer.2["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The digest's length is checked against the algorithm, and the algorithm against
    /// the key, as Key Vault words them.
    #[test]
    fn sign_refuses_as_key_vault_does() {
        let rsa = rsa_key(2048);
        let kid = "https://127.0.0.1/keys/k/1";
        let answer = sign(Some(&rsa), &request("RS256", &[0; 48]), kid);
        assert_eq!(
            (answer.0, answer.2["error"]["code"].as_str()),
            (400, Some("BadParameter"))
        );
        assert_eq!(
            message(&answer),
            "Invalid length of 'value': 48 bytes. RS256 requires 32 bytes, encoded with base64url."
        );
        let answer = sign(Some(&rsa), &request("ES256", &[0; 32]), kid);
        assert_eq!(answer.0, 400);
        assert!(message(&answer).starts_with("Key and signing algorithm are incompatible."));
        let answer = sign(Some(&rsa), &request("PS256", &[0; 32]), kid);
        assert_eq!(answer.0, 400);

        let ec = LocalKey::generate(KeySpec::Ecdsa(Curve::P256), LocalOptions::default())
            .expect("EC key");
        let answer = sign(Some(&ec), &request("ES384", &[0; 48]), kid);
        assert!(
            message(&answer).contains("uses curve 'P-256'"),
            "{}",
            message(&answer)
        );

        for (alg, len) in [("RS256", 32), ("RS384", 48), ("RS512", 64)] {
            let answer = sign(Some(&rsa), &request(alg, &vec![7; len]), kid);
            assert_eq!(answer.0, 200, "{alg}: {}", answer.2);
            let value =
                Base64UrlUnpadded::decode_vec(answer.2["value"].as_str().unwrap_or_default())
                    .expect("base64url");
            assert_eq!(value.len(), 256, "{alg}");
        }
    }

    #[test]
    fn placeholder_moduli_have_the_size_asked_for() {
        for bits in [1024u32, 1025, 1031, 2047] {
            let n = placeholder_modulus(bits);
            let width = n.len() * 8 - n[0].leading_zeros() as usize;
            assert_eq!(width, bits as usize);
            assert_eq!(n[n.len() - 1] & 1, 1);
        }
    }
}
