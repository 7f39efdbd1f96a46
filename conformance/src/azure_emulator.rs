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

use std::collections::HashMap;
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
/// The challenge's authority and resource.
const CHALLENGE: &str = r#"Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net""#;

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
}

type Keys = Arc<Mutex<HashMap<String, StoredKey>>>;

fn lock(keys: &Keys) -> std::sync::MutexGuard<'_, HashMap<String, StoredKey>> {
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
        let (ca_pem, config) = test_pki();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let keys: Keys = Arc::default();
        let served = keys.clone();
        let address = spawn_loopback_server("azure-kv-emulator", move |stream, address| {
            let (acceptor, keys) = (acceptor.clone(), served.clone());
            async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve(tls, keys, address).await;
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
        let mut keys = lock(&self.keys);
        let name = format!("key-{}", keys.len() + 1);
        let version = new_version(setup.kind);
        keys.insert(
            name.clone(),
            StoredKey {
                setup,
                versions: vec![version],
                faults: FaultHandle::new(),
            },
        );
        name
    }

    /// Adds a new current version to a key (rotation); returns its id.
    #[must_use]
    pub fn rotate(&self, name: &str) -> Option<String> {
        let mut keys = lock(&self.keys);
        let key = keys.get_mut(name)?;
        let version = new_version(key.setup.kind);
        let id = version.id.clone();
        key.versions.push(version);
        Some(id)
    }

    /// The ids of a key's versions, oldest first.
    #[must_use]
    pub fn versions(&self, name: &str) -> Vec<String> {
        lock(&self.keys)
            .get(name)
            .map(|k| k.versions.iter().map(|v| v.id.clone()).collect())
            .unwrap_or_default()
    }

    /// A key's fault queue and counters (`None` for an unknown key).
    #[must_use]
    pub fn faults(&self, name: &str) -> Option<FaultHandle> {
        lock(&self.keys).get(name).map(|k| k.faults.clone())
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

    fn denied(&self) -> ErrorAnswer {
        error_answer(
            403,
            "Forbidden",
            "The user, group or application does not have keys sign permission on key vault 'kmssh-test'.",
        )
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

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, keys: Keys, address: SocketAddr) {
    let mut buffer = Vec::new();
    while let Ok(Some(request)) = read_message(&mut stream, &mut buffer, false).await {
        let mut start = request.head.lines().next().unwrap_or("").split_whitespace();
        let method = start.next().unwrap_or("").to_owned();
        let target = start.next().unwrap_or("").to_owned();
        let authorized =
            header(&request.head, "authorization") == Some(&format!("Bearer {TEST_TOKEN}"));
        let (status, headers, body) = if authorized {
            let route = key_route(&method, &target);
            let faults = route
                .as_ref()
                .and_then(|(name, _)| lock(&keys).get(name).map(|k| k.faults.clone()));
            let intercept = match (&route, faults) {
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
            let (status, mut headers, body) = azure_error(
                401,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.",
            );
            headers.push(("WWW-Authenticate", CHALLENGE.to_owned()));
            (status, headers, body)
        };
        let body = body.to_string();
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            reason(status),
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(body.as_bytes()).await.is_err()
        {
            return;
        }
        let _ = stream.flush().await;
    }
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
    let keys = lock(keys);
    let Some(key) = keys.get(name) else {
        return azure_error(
            404,
            "KeyNotFound",
            &format!("A key with (name/id) {name} was not found in this key vault."),
        );
    };
    let found = if version.is_empty() {
        key.versions.last()
    } else {
        key.versions.iter().find(|v| v.id == version)
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
        return azure_error(
            403,
            "Forbidden",
            "Operation sign is not allowed on a disabled key.",
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
