//! An in-process emulator of the Cloud KMS v1 REST calls the GCP backend makes, on
//! 127.0.0.1, backed by real local keys. No emulator with `getPublicKey` and
//! `asymmetricSign` exists on any registry reachable here, so the suite carries this one.
//!
//! It is strict where Cloud KMS is: the digest must be of the version's hash and length
//! (else 400 `INVALID_ARGUMENT`), `digestCrc32c` must match, an unknown version is 404
//! `NOT_FOUND`, a disabled one 400 `FAILED_PRECONDITION`; errors use Google's JSON shape.
//! Wire details as the official client sends them: enums as integers, int64 as strings,
//! bytes as standard base64. Each key version has its own [`FaultHandle`] (the shared
//! fault layer: counters and a fault queue), so tests running in parallel do not disturb
//! each other; faults are rendered in Cloud KMS's shape by [`GoogleDialect`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use base64ct::{Base64, Encoding};
use kmssh_backend_local::{LocalKey, LocalOptions};
use kmssh_core::{Algorithm, KmsKey};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::faults::{
    Dialect, ErrorAnswer, FaultHandle, Intercept, Operation, edit_answer, retry_after_header,
};
use crate::http::{read_message, reason, spawn_loopback_server};

/// `CryptoKeyVersionAlgorithm` numbers on the wire.
pub const EC_SIGN_P256_SHA256: i32 = 12;
/// See [`EC_SIGN_P256_SHA256`].
pub const EC_SIGN_P384_SHA384: i32 = 13;
/// An algorithm kmssh does not sign with.
pub const EC_SIGN_SECP256K1_SHA256: i32 = 31;
/// Another one: RSA-PSS 2048 with SHA-256.
pub const RSA_SIGN_PSS_2048_SHA256: i32 = 2;
const PROTECTION_SOFTWARE: i32 = 1;

struct Version {
    key: LocalKey,
    wire_algorithm: i32,
    enabled: bool,
    faults: FaultHandle,
}

/// The emulator: a listener on its own thread and runtime, and the key versions it serves.
pub struct GcpKmsEmulator {
    address: SocketAddr,
    versions: Arc<Mutex<HashMap<String, Version>>>,
}

type Versions = Arc<Mutex<HashMap<String, Version>>>;

fn lock(versions: &Versions) -> std::sync::MutexGuard<'_, HashMap<String, Version>> {
    versions.lock().unwrap_or_else(PoisonError::into_inner)
}

fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

fn error(code: u16, status: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

/// Cloud KMS's wire shape for faults: `{"error":{"code","message","status"}}` errors,
/// signatures as base64 DER with a `signatureCrc32c` that matches the bytes sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct GoogleDialect;

fn google_error(code: u16, status: &str, message: &str) -> ErrorAnswer {
    let (code, body) = error(code, status, message);
    ErrorAnswer {
        status: code,
        headers: vec![("Content-Type", "application/json; charset=UTF-8".to_owned())],
        body,
    }
}

/// Edits the signature of an `asymmetricSign` answer and recomputes its CRC32C, as a
/// service that signed wrong would send it.
fn edit_signature(answer: &mut Value, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut der =
        Base64::decode_vec(answer["signature"].as_str().unwrap_or_default()).unwrap_or_default();
    if der.is_empty() {
        return;
    }
    edit(&mut der);
    answer["signature"] = json!(Base64::encode_string(&der));
    answer["signatureCrc32c"] = json!(crc32c(&der).to_string());
}

impl Dialect for GoogleDialect {
    fn throttled(&self, retry_after: Option<Duration>) -> ErrorAnswer {
        let mut answer = google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Cryptographic requests'.",
        );
        answer.headers.extend(retry_after.map(retry_after_header));
        answer
    }

    fn server_error(&self) -> ErrorAnswer {
        google_error(503, "UNAVAILABLE", "The service is currently unavailable.")
    }

    fn denied(&self) -> ErrorAnswer {
        google_error(
            403,
            "PERMISSION_DENIED",
            "Permission 'cloudkms.cryptoKeyVersions.useToSign' denied on resource (or it may not exist).",
        )
    }

    fn corrupt_signature(&self, answer: &mut Value) {
        edit_signature(answer, |der| {
            if let Some(last) = der.last_mut() {
                *last ^= 0x01;
            }
        });
    }

    fn shorten_signature(&self, answer: &mut Value) {
        edit_signature(answer, |der| der.truncate(der.len() / 2));
    }
}

impl GcpKmsEmulator {
    /// One emulator for the whole test process, on a thread of its own (in-process: it
    /// ends with the process).
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<GcpKmsEmulator> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// Starts an emulator on 127.0.0.1 and a free port.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    #[must_use]
    pub fn start() -> Self {
        let versions: Versions = Arc::default();
        let served = versions.clone();
        let address = spawn_loopback_server("gcp-kms-emulator", move |stream, _| {
            serve(stream, served.clone())
        });
        Self { address, versions }
    }

    /// `http://127.0.0.1:PORT`, the endpoint the client is given.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Creates a key with one enabled version; returns the version's resource name.
    ///
    /// # Panics
    /// For an algorithm Cloud KMS does not offer on P-521.
    #[must_use]
    pub fn create_key_version(&self, algorithm: Algorithm) -> String {
        let wire = match algorithm {
            Algorithm::EcdsaP256Sha256 => EC_SIGN_P256_SHA256,
            Algorithm::EcdsaP384Sha384 => EC_SIGN_P384_SHA384,
            other => panic!("Cloud KMS has no {other} signing keys"),
        };
        self.create_version_with(algorithm, wire)
    }

    /// Creates a version reporting another algorithm number (for refusal tests).
    #[must_use]
    pub fn create_version_with(&self, algorithm: Algorithm, wire_algorithm: i32) -> String {
        let key = LocalKey::generate(algorithm, LocalOptions::default()).expect("key");
        let mut versions = lock(&self.versions);
        let name = format!(
            "projects/kmssh-test/locations/global/keyRings/conformance/cryptoKeys/key-{}/cryptoKeyVersions/1",
            versions.len() + 1
        );
        versions.insert(
            name.clone(),
            Version {
                key,
                wire_algorithm,
                enabled: true,
                faults: FaultHandle::new(),
            },
        );
        name
    }

    /// Enables or disables a version.
    pub fn set_enabled(&self, name: &str, enabled: bool) {
        if let Some(v) = lock(&self.versions).get_mut(name) {
            v.enabled = enabled;
        }
    }

    /// A version's fault queue and counters (`None` for an unknown version).
    #[must_use]
    pub fn faults(&self, name: &str) -> Option<FaultHandle> {
        lock(&self.versions).get(name).map(|v| v.faults.clone())
    }

    /// How many requests of `operation` a version has seen.
    #[must_use]
    pub fn count(&self, name: &str, operation: Operation) -> usize {
        self.faults(name).map_or(0, |f| f.count(operation))
    }
}

async fn serve(mut stream: TcpStream, versions: Versions) {
    let mut buffer = Vec::new();
    while let Ok(Some(request)) = read_message(&mut stream, &mut buffer, false).await {
        let mut start = request.head.lines().next().unwrap_or("").split_whitespace();
        let method = start.next().unwrap_or("").to_owned();
        let path = start
            .next()
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("")
            .to_owned();
        let route = route_name(&path);
        let faults = route
            .as_ref()
            .and_then(|(name, _)| lock(&versions).get(name).map(|v| v.faults.clone()));
        let intercept = match (&route, faults) {
            (Some((_, operation)), Some(faults)) => {
                faults.intercept(*operation, &GoogleDialect).await
            }
            _ => Intercept::Answer(None),
        };
        let mut extra_headers = Vec::new();
        let (status, body) = match intercept {
            Intercept::Drop => return,
            Intercept::Respond(answer) => {
                extra_headers = answer
                    .headers
                    .into_iter()
                    .filter(|(name, _)| !name.eq_ignore_ascii_case("content-type"))
                    .collect();
                (answer.status, answer.body)
            }
            Intercept::Answer(edit) => {
                let (status, mut body) = handle(&method, &path, &request.body, &versions);
                if status == 200 {
                    edit_answer(&GoogleDialect, edit.as_ref(), &mut body);
                }
                (status, body)
            }
        };
        let body = body.to_string();
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: {}\r\n",
            reason(status),
            body.len()
        );
        for (name, value) in extra_headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(body.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

/// `(version name, operation)` for `/v1/{name}/publicKey` (`getPublicKey`) and
/// `/v1/{name}:asymmetricSign`.
fn route_name(path: &str) -> Option<(String, Operation)> {
    let rest = path.strip_prefix("/v1/")?;
    if let Some(name) = rest.strip_suffix("/publicKey") {
        return Some((name.to_owned(), Operation::GetPublicKey));
    }
    rest.strip_suffix(":asymmetricSign")
        .map(|name| (name.to_owned(), Operation::Sign))
}

fn handle(method: &str, path: &str, body: &[u8], versions: &Versions) -> (u16, Value) {
    let Some((name, operation)) = route_name(path) else {
        return error(
            404,
            "NOT_FOUND",
            &format!("no such method: {method} {path}"),
        );
    };
    let (wire_name, expected_method) = match operation {
        Operation::GetPublicKey => ("getPublicKey", "GET"),
        _ => ("asymmetricSign", "POST"),
    };
    if method != expected_method {
        return error(
            405,
            "INVALID_ARGUMENT",
            &format!("{wire_name} is {expected_method}"),
        );
    }
    let versions = lock(versions);
    let Some(version) = versions.get(&name) else {
        return error(
            404,
            "NOT_FOUND",
            &format!("CryptoKeyVersion {name} not found."),
        );
    };
    if !version.enabled {
        return error(
            400,
            "FAILED_PRECONDITION",
            &format!("{name} is not enabled, current state is: DISABLED."),
        );
    }
    if operation == Operation::GetPublicKey {
        let pem = version.key.public_key().to_pem().unwrap_or_default();
        return (
            200,
            json!({
                "pem": pem,
                "algorithm": version.wire_algorithm,
                "pemCrc32c": crc32c(pem.as_bytes()).to_string(),
                "name": name,
                "protectionLevel": PROTECTION_SOFTWARE,
            }),
        );
    }
    sign(&name, version, body)
}

fn sign(name: &str, version: &Version, body: &[u8]) -> (u16, Value) {
    let invalid = |message: &str| error(400, "INVALID_ARGUMENT", message);
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return invalid("request body is not JSON");
    };
    let Some(digest) = request.get("digest").and_then(Value::as_object) else {
        return invalid("AsymmetricSignRequest.digest is required for EC keys");
    };
    let algorithm = version.key.algorithm();
    let expected_field = match algorithm {
        Algorithm::EcdsaP256Sha256 => "sha256",
        _ => "sha384",
    };
    if digest.len() != 1 || !digest.contains_key(expected_field) {
        return invalid(&format!(
            "the digest type must be {expected_field} for this key version"
        ));
    }
    let Some(bytes) = digest[expected_field]
        .as_str()
        .and_then(|b| Base64::decode_vec(b).ok())
    else {
        return invalid("digest is not base64");
    };
    if bytes.len() != algorithm.digest_len() {
        return invalid(&format!(
            "Digest has the wrong length: {} bytes for {expected_field}",
            bytes.len()
        ));
    }
    if let Some(sent) = request.get("digestCrc32c") {
        let sent = sent
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .or_else(|| sent.as_u64());
        if sent != Some(u64::from(crc32c(&bytes))) {
            return invalid(
                "The checksum in field digest_crc32c did not match the data in field digest.",
            );
        }
    }
    let Ok(signature) = version.key.sign_digest_sync(&bytes) else {
        return error(500, "INTERNAL", "signing failed");
    };
    let der = signature.to_der();
    (
        200,
        json!({
            "signature": Base64::encode_string(&der),
            "signatureCrc32c": crc32c(&der).to_string(),
            "verifiedDigestCrc32c": true,
            "name": name,
            "protectionLevel": PROTECTION_SOFTWARE,
        }),
    )
}
