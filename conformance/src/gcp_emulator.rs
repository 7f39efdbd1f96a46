//! An in-process emulator of the Cloud KMS v1 REST calls the GCP backend makes, on
//! 127.0.0.1, backed by real local keys, and loopback stand-ins for the Google endpoints
//! credentials talk to ([`StandIn`]: an OAuth token endpoint, STS, the metadata server).
//! No emulator with `getPublicKey` and `asymmetricSign` exists on any registry reachable
//! here, so the suite carries this one.
//!
//! It serves the key version algorithms kmssh signs with ([`VersionAlgorithm`]): ECDSA
//! P-256 and P-384, RSA PKCS#1 v1.5 bound to a hash (`RSA_SIGN_PKCS1_*_SHA256`,
//! `RSA_SIGN_PKCS1_4096_SHA512`), raw PKCS#1 (`RSA_SIGN_RAW_PKCS1_*`) and Ed25519
//! (`EC_SIGN_ED25519`); a version can also report any other algorithm number, for
//! refusal tests.
//!
//! It is strict where Cloud KMS is:
//! - `asymmetricSign` takes `digest` or `data`, never both; versions bound to a hash
//!   take a `digest` of that hash and length, raw PKCS#1 and Ed25519 versions take
//!   `data` (a `DigestInfo` for raw PKCS#1, at most the modulus length less 11 bytes;
//!   the message for Ed25519, where no `data` is the empty message: proto3 does not send
//!   empty bytes). Anything else is 400 `INVALID_ARGUMENT`, as Cloud KMS
//!   answers a malformed request; the messages are the emulator's own wording.
//!   Google's documentation says `data` is required by raw and Ed25519 versions; older
//!   revisions of the API's own reference said it was honoured only for raw PKCS#1
//!   versions, so the emulator refuses `data` for versions bound to a hash (kmssh never
//!   sends it there). Raw PKCS#1 in Cloud KMS pads and signs whatever `data` holds; the
//!   emulator signs through a local key, so it accepts only a SHA-256, SHA-384 or SHA-512
//!   `DigestInfo` (what kmssh sends) and refuses other bytes with 400;
//! - a `digestCrc32c` or `dataCrc32c` that is sent must match, and `verifiedDigestCrc32c`
//!   / `verifiedDataCrc32c` is true only when one was sent and matched (false without
//!   one, as the real service answers);
//! - an unknown version is 404 `NOT_FOUND`; a version that is not `ENABLED` is 400
//!   `FAILED_PRECONDITION` with the message Cloud KMS writes ("… is not enabled, current
//!   state is: DISABLED.") and a `google.rpc.PreconditionFailure` detail whose violation
//!   type is `KEY_<STATE>`: `KEY_PENDING_GENERATION` is what Cloud KMS sends for a
//!   version still being generated; the other states follow the same pattern;
//! - a key can require a bearer token ([`GcpKmsEmulator::require_token`]): a request
//!   without `Authorization: Bearer …` is 401 `UNAUTHENTICATED` with an `ErrorInfo`
//!   `CREDENTIALS_MISSING`, one with another token 401 with `ACCESS_TOKEN_EXPIRED` (the
//!   emulator cannot tell an expired token from a wrong one), both with Google's
//!   messages and `WWW-Authenticate` header;
//! - a path that is no Cloud KMS method is Google's frontend HTML 404 page, not JSON.
//!
//! Errors use Google's JSON shape with `details` (`ErrorInfo` for throttling, denial and
//! authentication). Wire details as the official client sends them: enums as integers,
//! int64 as strings, bytes as standard base64. Each key version has its own
//! [`FaultHandle`] (the shared fault layer: counters and a fault queue), so tests running
//! in parallel do not disturb each other; faults are rendered in Cloud KMS's shape by
//! [`GoogleDialect`]. `cryptoKeyVersions.list` is served (paged) for `version=latest`.
//! The field each version's latest `asymmetricSign` carried is recorded
//! ([`GcpKmsEmulator::last_sign_field`]), so tests can check what the backend sends.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use base64ct::{Base64, Encoding};
use kmssh_backend_local::{LocalKey, LocalOptions};
use kmssh_core::rsa::Pkcs1v15Sign;
use kmssh_core::rsa::sha2::{Sha256, Sha384, Sha512};
use kmssh_core::{Algorithm, Curve, HashAlgorithm, KeySpec, KmsKey, SigningInput};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::faults::{
    Dialect, ErrorAnswer, FaultHandle, Intercept, Operation, edit_answer, retry_after_header,
};
use crate::http::{header, read_message, reason, spawn_loopback_server};

/// `CryptoKeyVersionAlgorithm` numbers on the wire.
pub const EC_SIGN_P256_SHA256: i32 = 12;
/// See [`EC_SIGN_P256_SHA256`].
pub const EC_SIGN_P384_SHA384: i32 = 13;
/// An algorithm kmssh does not sign with: ECDSA on secp256k1.
pub const EC_SIGN_SECP256K1_SHA256: i32 = 31;
/// Another one: RSA-PSS 2048 with SHA-256.
pub const RSA_SIGN_PSS_2048_SHA256: i32 = 2;
/// Another one: HMAC-SHA256 (a MAC key, no public key).
pub const HMAC_SHA256: i32 = 32;
/// Another one: ML-DSA-65, post-quantum.
pub const PQ_SIGN_ML_DSA_65: i32 = 56;
/// Another one: an RSA decryption key (OAEP 2048 with SHA-256).
pub const RSA_DECRYPT_OAEP_2048_SHA256: i32 = 8;

/// A key version algorithm the emulator signs with, as Cloud KMS names and numbers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VersionAlgorithm {
    /// `EC_SIGN_P256_SHA256` (12).
    EcSignP256Sha256,
    /// `EC_SIGN_P384_SHA384` (13).
    EcSignP384Sha384,
    /// `RSA_SIGN_PKCS1_2048_SHA256` (5).
    RsaSignPkcs1_2048Sha256,
    /// `RSA_SIGN_PKCS1_3072_SHA256` (6).
    RsaSignPkcs1_3072Sha256,
    /// `RSA_SIGN_PKCS1_4096_SHA256` (7).
    RsaSignPkcs1_4096Sha256,
    /// `RSA_SIGN_PKCS1_4096_SHA512` (16).
    RsaSignPkcs1_4096Sha512,
    /// `RSA_SIGN_RAW_PKCS1_2048` (28).
    RsaSignRawPkcs1_2048,
    /// `RSA_SIGN_RAW_PKCS1_3072` (29).
    RsaSignRawPkcs1_3072,
    /// `RSA_SIGN_RAW_PKCS1_4096` (30).
    RsaSignRawPkcs1_4096,
    /// `EC_SIGN_ED25519` (40).
    EcSignEd25519,
}

impl VersionAlgorithm {
    /// Every algorithm the emulator signs with.
    pub const ALL: [VersionAlgorithm; 10] = [
        Self::EcSignP256Sha256,
        Self::EcSignP384Sha384,
        Self::RsaSignPkcs1_2048Sha256,
        Self::RsaSignPkcs1_3072Sha256,
        Self::RsaSignPkcs1_4096Sha256,
        Self::RsaSignPkcs1_4096Sha512,
        Self::RsaSignRawPkcs1_2048,
        Self::RsaSignRawPkcs1_3072,
        Self::RsaSignRawPkcs1_4096,
        Self::EcSignEd25519,
    ];

    /// The enum number the client reads.
    #[must_use]
    pub fn wire(self) -> i32 {
        match self {
            Self::EcSignP256Sha256 => EC_SIGN_P256_SHA256,
            Self::EcSignP384Sha384 => EC_SIGN_P384_SHA384,
            Self::RsaSignPkcs1_2048Sha256 => 5,
            Self::RsaSignPkcs1_3072Sha256 => 6,
            Self::RsaSignPkcs1_4096Sha256 => 7,
            Self::RsaSignPkcs1_4096Sha512 => 16,
            Self::RsaSignRawPkcs1_2048 => 28,
            Self::RsaSignRawPkcs1_3072 => 29,
            Self::RsaSignRawPkcs1_4096 => 30,
            Self::EcSignEd25519 => 40,
        }
    }

    /// The algorithm with this enum number, if the emulator signs with it.
    #[must_use]
    pub fn from_wire(wire: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.wire() == wire)
    }

    /// Cloud KMS's name (`RSA_SIGN_RAW_PKCS1_3072`…).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::EcSignP256Sha256 => "EC_SIGN_P256_SHA256",
            Self::EcSignP384Sha384 => "EC_SIGN_P384_SHA384",
            Self::RsaSignPkcs1_2048Sha256 => "RSA_SIGN_PKCS1_2048_SHA256",
            Self::RsaSignPkcs1_3072Sha256 => "RSA_SIGN_PKCS1_3072_SHA256",
            Self::RsaSignPkcs1_4096Sha256 => "RSA_SIGN_PKCS1_4096_SHA256",
            Self::RsaSignPkcs1_4096Sha512 => "RSA_SIGN_PKCS1_4096_SHA512",
            Self::RsaSignRawPkcs1_2048 => "RSA_SIGN_RAW_PKCS1_2048",
            Self::RsaSignRawPkcs1_3072 => "RSA_SIGN_RAW_PKCS1_3072",
            Self::RsaSignRawPkcs1_4096 => "RSA_SIGN_RAW_PKCS1_4096",
            Self::EcSignEd25519 => "EC_SIGN_ED25519",
        }
    }

    /// The kind of key a version of this algorithm holds.
    #[must_use]
    pub fn spec(self) -> KeySpec {
        match self {
            Self::EcSignP256Sha256 => KeySpec::Ecdsa(Curve::P256),
            Self::EcSignP384Sha384 => KeySpec::Ecdsa(Curve::P384),
            Self::RsaSignPkcs1_2048Sha256 | Self::RsaSignRawPkcs1_2048 => KeySpec::Rsa(2048),
            Self::RsaSignPkcs1_3072Sha256 | Self::RsaSignRawPkcs1_3072 => KeySpec::Rsa(3072),
            Self::RsaSignPkcs1_4096Sha256
            | Self::RsaSignPkcs1_4096Sha512
            | Self::RsaSignRawPkcs1_4096 => KeySpec::Rsa(4096),
            Self::EcSignEd25519 => KeySpec::Ed25519,
        }
    }

    /// The algorithm a version bound to one hash signs with (its `digest` is of that
    /// hash); `None` for raw PKCS#1 and Ed25519, which take `data`.
    #[must_use]
    pub fn prehashed(self) -> Option<Algorithm> {
        match self {
            Self::EcSignP256Sha256 => Some(Algorithm::EcdsaP256Sha256),
            Self::EcSignP384Sha384 => Some(Algorithm::EcdsaP384Sha384),
            Self::RsaSignPkcs1_2048Sha256
            | Self::RsaSignPkcs1_3072Sha256
            | Self::RsaSignPkcs1_4096Sha256 => Some(Algorithm::RsaPkcs1Sha256),
            Self::RsaSignPkcs1_4096Sha512 => Some(Algorithm::RsaPkcs1Sha512),
            Self::RsaSignRawPkcs1_2048
            | Self::RsaSignRawPkcs1_3072
            | Self::RsaSignRawPkcs1_4096
            | Self::EcSignEd25519 => None,
        }
    }

    /// The algorithm the conformance fixture uses for keys of kind `spec`, so that every
    /// request shape runs: RSA-2048 → `RSA_SIGN_PKCS1_2048_SHA256` (digest, SHA-256
    /// only), RSA-3072 → `RSA_SIGN_RAW_PKCS1_3072` (a `DigestInfo` in `data`, every
    /// hash), RSA-4096 → `RSA_SIGN_PKCS1_4096_SHA512` (digest, SHA-512 only). `None` for
    /// what Cloud KMS does not offer (P-521, other RSA sizes).
    #[must_use]
    pub fn for_spec(spec: KeySpec) -> Option<Self> {
        match spec {
            KeySpec::Ecdsa(Curve::P256) => Some(Self::EcSignP256Sha256),
            KeySpec::Ecdsa(Curve::P384) => Some(Self::EcSignP384Sha384),
            KeySpec::Rsa(2048) => Some(Self::RsaSignPkcs1_2048Sha256),
            KeySpec::Rsa(3072) => Some(Self::RsaSignRawPkcs1_3072),
            KeySpec::Rsa(4096) => Some(Self::RsaSignPkcs1_4096Sha512),
            KeySpec::Ed25519 => Some(Self::EcSignEd25519),
            _ => None,
        }
    }

    /// An algorithm whose versions sign with `algorithm`, as the fixture chooses (see
    /// [`VersionAlgorithm::for_spec`]): ECDSA by curve, `RsaPkcs1Sha256` on
    /// RSA-2048, `RsaPkcs1Sha512` on RSA-4096, `RsaPkcs1Sha384` on raw RSA-3072.
    /// `None` for P-521.
    #[must_use]
    pub fn signing(algorithm: Algorithm) -> Option<Self> {
        match algorithm {
            Algorithm::EcdsaP256Sha256 => Some(Self::EcSignP256Sha256),
            Algorithm::EcdsaP384Sha384 => Some(Self::EcSignP384Sha384),
            Algorithm::EcdsaP521Sha512 => None,
            Algorithm::RsaPkcs1Sha256 => Some(Self::RsaSignPkcs1_2048Sha256),
            Algorithm::RsaPkcs1Sha384 => Some(Self::RsaSignRawPkcs1_3072),
            Algorithm::RsaPkcs1Sha512 => Some(Self::RsaSignPkcs1_4096Sha512),
            Algorithm::Ed25519 => Some(Self::EcSignEd25519),
        }
    }
}

/// The field an `asymmetricSign` request carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignField {
    /// `digest`, of this hash.
    Digest(HashAlgorithm),
    /// `data`.
    Data,
}

/// `ProtectionLevel` `SOFTWARE` on the wire (what a new version gets).
pub const PROTECTION_SOFTWARE: i32 = 1;
/// `ProtectionLevel` `HSM` on the wire.
pub const PROTECTION_HSM: i32 = 2;

/// A key version's state, as Cloud KMS names and numbers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionState {
    /// `PENDING_GENERATION` (5): being generated; becomes `ENABLED` by itself.
    PendingGeneration,
    /// `ENABLED` (1).
    Enabled,
    /// `DISABLED` (2).
    Disabled,
    /// `DESTROYED` (3).
    Destroyed,
    /// `DESTROY_SCHEDULED` (4).
    DestroyScheduled,
}

impl VersionState {
    /// The enum number the client reads.
    #[must_use]
    pub fn wire(self) -> i32 {
        match self {
            Self::Enabled => 1,
            Self::Disabled => 2,
            Self::Destroyed => 3,
            Self::DestroyScheduled => 4,
            Self::PendingGeneration => 5,
        }
    }

    /// Cloud KMS's name (`PENDING_GENERATION`…).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Enabled => "ENABLED",
            Self::Disabled => "DISABLED",
            Self::Destroyed => "DESTROYED",
            Self::DestroyScheduled => "DESTROY_SCHEDULED",
            Self::PendingGeneration => "PENDING_GENERATION",
        }
    }
}

/// Decides whether a bearer token is accepted (for tokens not known in advance, such as
/// a service account's self-signed JWT).
pub type TokenCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

struct Version {
    key: LocalKey,
    wire_algorithm: i32,
    state: VersionState,
    protection: i32,
    faults: FaultHandle,
    last_sign_field: Option<SignField>,
}

#[derive(Default)]
struct State {
    versions: HashMap<String, Version>,
    /// Per crypto key: the bearer tokens it accepts (none: anyone, anonymous included).
    tokens: HashMap<String, TokenCheck>,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The emulator: a listener on its own thread and runtime, and the key versions it serves.
pub struct GcpKmsEmulator {
    address: SocketAddr,
    state: Shared,
    keys: AtomicUsize,
}

fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// The crypto key a version belongs to (`…/cryptoKeys/K` of `…/cryptoKeys/K/cryptoKeyVersions/N`).
fn key_of(name: &str) -> &str {
    name.split_once("/cryptoKeyVersions/")
        .map_or(name, |(key, _)| key)
}

/// One HTTP answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// Headers besides `Content-Length`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON answer.
    #[must_use]
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec![(
                "Content-Type".into(),
                "application/json; charset=UTF-8".into(),
            )],
            body: body.to_string().into_bytes(),
        }
    }

    /// A plain text answer.
    #[must_use]
    pub fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=UTF-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// An HTML page, as a proxy or Google's frontend sends for what is not an API error.
    #[must_use]
    pub fn html(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "text/html; charset=UTF-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// Google's frontend page for a path no API serves.
#[must_use]
pub fn google_404_page(path: &str) -> Reply {
    Reply::html(
        404,
        &format!(
            "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n  \
             <p><b>404.</b> <ins>That\u{2019}s an error.</ins>\n  <p>The requested URL <code>{path}</code> was not found on \
             this server.  <ins>That\u{2019}s all we know.</ins>\n"
        ),
    )
}

fn error_body(code: u16, status: &str, message: &str, details: &[Value]) -> Value {
    let mut error = json!({"code": code, "message": message, "status": status});
    if !details.is_empty() {
        error["details"] = json!(details);
    }
    json!({ "error": error })
}

fn error(code: u16, status: &str, message: &str, details: &[Value]) -> Reply {
    Reply::json(code, &error_body(code, status, message, details))
}

/// A `google.rpc.ErrorInfo` detail.
fn error_info(reason: &str, domain: &str, metadata: &Value) -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": domain,
        "metadata": metadata,
    })
}

/// Cloud KMS's wire shape for faults: `{"error":{"code","message","status","details"}}`
/// errors, signatures as base64 bytes (DER for ECDSA, the modulus-length integer for
/// RSA, 64 bytes for Ed25519) with a `signatureCrc32c` that matches the bytes sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct GoogleDialect;

fn google_error(code: u16, status: &str, message: &str, details: &[Value]) -> ErrorAnswer {
    ErrorAnswer {
        status: code,
        headers: vec![("Content-Type", "application/json; charset=UTF-8".to_owned())],
        body: error_body(code, status, message, details),
    }
}

/// Edits the signature of an `asymmetricSign` answer and recomputes its CRC32C, as a
/// service that signed wrong would send it.
fn edit_signature(answer: &mut Value, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut signature =
        Base64::decode_vec(answer["signature"].as_str().unwrap_or_default()).unwrap_or_default();
    if signature.is_empty() {
        return;
    }
    edit(&mut signature);
    answer["signature"] = json!(Base64::encode_string(&signature));
    answer["signatureCrc32c"] = json!(crc32c(&signature).to_string());
}

impl Dialect for GoogleDialect {
    fn throttled(&self, retry_after: Option<Duration>) -> ErrorAnswer {
        let mut answer = google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Cryptographic requests' and limit 'Cryptographic requests per minute'.",
            &[error_info(
                "RATE_LIMIT_EXCEEDED",
                "googleapis.com",
                &json!({
                    "service": "cloudkms.googleapis.com",
                    "quota_metric": "cloudkms.googleapis.com/crypto_requests",
                }),
            )],
        );
        answer.headers.extend(retry_after.map(retry_after_header));
        answer
    }

    fn server_error(&self) -> ErrorAnswer {
        google_error(
            503,
            "UNAVAILABLE",
            "The service is currently unavailable.",
            &[],
        )
    }

    fn denied(&self) -> ErrorAnswer {
        google_error(
            403,
            "PERMISSION_DENIED",
            "Permission 'cloudkms.cryptoKeyVersions.useToSign' denied on resource (or it may not exist).",
            &[error_info(
                "IAM_PERMISSION_DENIED",
                "iam.googleapis.com",
                &json!({"permission": "cloudkms.cryptoKeyVersions.useToSign"}),
            )],
        )
    }

    fn corrupt_signature(&self, answer: &mut Value) {
        edit_signature(answer, |signature| {
            if let Some(last) = signature.last_mut() {
                *last ^= 0x01;
            }
        });
    }

    fn shorten_signature(&self, answer: &mut Value) {
        edit_signature(answer, |signature| signature.truncate(signature.len() / 2));
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
        let state: Shared = Arc::default();
        let served = state.clone();
        let address = spawn_loopback_server("gcp-kms-emulator", move |stream, _| {
            serve(stream, served.clone())
        });
        Self {
            address,
            state,
            keys: AtomicUsize::new(0),
        }
    }

    /// `http://127.0.0.1:PORT`, the endpoint the client is given.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Creates a key with one enabled version whose algorithm signs with `algorithm`
    /// (chosen as [`VersionAlgorithm::signing`] says); returns the version's resource name.
    ///
    /// # Panics
    /// For ECDSA P-521, which Cloud KMS does not offer.
    #[must_use]
    pub fn create_key_version(&self, algorithm: Algorithm) -> String {
        let version = VersionAlgorithm::signing(algorithm)
            .unwrap_or_else(|| panic!("Cloud KMS has no {algorithm} signing keys"));
        self.create_version(version)
    }

    /// Creates a key with one enabled version of `algorithm`; returns its resource name.
    #[must_use]
    pub fn create_version(&self, algorithm: VersionAlgorithm) -> String {
        self.create_version_with(algorithm.spec(), algorithm.wire())
    }

    /// Creates a key with one enabled version holding a key of kind `spec` and reporting
    /// algorithm number `wire_algorithm`, which need not match (for refusal tests).
    #[must_use]
    pub fn create_version_with(&self, spec: KeySpec, wire_algorithm: i32) -> String {
        let key = self.create_key();
        self.insert_version(&key, spec, wire_algorithm, VersionState::Enabled)
    }

    /// A new crypto key with no versions yet; returns its resource name.
    #[must_use]
    pub fn create_key(&self) -> String {
        let n = self.keys.fetch_add(1, Ordering::SeqCst) + 1;
        format!("projects/kmssh-test/locations/global/keyRings/conformance/cryptoKeys/key-{n}")
    }

    /// Adds the next version (1, 2, …) of crypto key `key`, of `algorithm`, in `state`;
    /// returns its name.
    #[must_use]
    pub fn add_version(
        &self,
        key: &str,
        algorithm: VersionAlgorithm,
        state: VersionState,
    ) -> String {
        self.insert_version(key, algorithm.spec(), algorithm.wire(), state)
    }

    fn insert_version(
        &self,
        key: &str,
        spec: KeySpec,
        wire_algorithm: i32,
        state: VersionState,
    ) -> String {
        let local = LocalKey::generate(spec, LocalOptions::default()).expect("key");
        let mut shared = lock(&self.state);
        let prefix = format!("{key}/cryptoKeyVersions/");
        let number = shared
            .versions
            .keys()
            .filter(|name| name.starts_with(&prefix))
            .count()
            + 1;
        let name = format!("{prefix}{number}");
        shared.versions.insert(
            name.clone(),
            Version {
                key: local,
                wire_algorithm,
                state,
                protection: PROTECTION_SOFTWARE,
                faults: FaultHandle::new(),
                last_sign_field: None,
            },
        );
        name
    }

    /// Enables or disables a version.
    pub fn set_enabled(&self, name: &str, enabled: bool) {
        let state = if enabled {
            VersionState::Enabled
        } else {
            VersionState::Disabled
        };
        self.set_state(name, state);
    }

    /// Puts a version in `state`.
    pub fn set_state(&self, name: &str, state: VersionState) {
        if let Some(v) = lock(&self.state).versions.get_mut(name) {
            v.state = state;
        }
    }

    /// Sets a version's protection level ([`PROTECTION_SOFTWARE`], [`PROTECTION_HSM`]…).
    pub fn set_protection(&self, name: &str, wire_protection: i32) {
        if let Some(v) = lock(&self.state).versions.get_mut(name) {
            v.protection = wire_protection;
        }
    }

    /// Requires `Authorization: Bearer TOKEN` on every request for the crypto key `name`
    /// names (a key, or any of its versions).
    pub fn require_token(&self, name: &str, token: &str) {
        let token = token.to_owned();
        self.require_token_with(name, Arc::new(move |sent| sent == token));
    }

    /// Requires a bearer token that `check` accepts on every request for the crypto key
    /// `name` names.
    pub fn require_token_with(&self, name: &str, check: TokenCheck) {
        lock(&self.state)
            .tokens
            .insert(key_of(name).to_owned(), check);
    }

    /// A version's fault queue and counters (`None` for an unknown version).
    #[must_use]
    pub fn faults(&self, name: &str) -> Option<FaultHandle> {
        lock(&self.state)
            .versions
            .get(name)
            .map(|v| v.faults.clone())
    }

    /// The field the version's latest `asymmetricSign` that reached the signer carried
    /// (`None` before any).
    #[must_use]
    pub fn last_sign_field(&self, name: &str) -> Option<SignField> {
        lock(&self.state)
            .versions
            .get(name)
            .and_then(|v| v.last_sign_field)
    }

    /// How many requests of `operation` a version has seen.
    #[must_use]
    pub fn count(&self, name: &str, operation: Operation) -> usize {
        self.faults(name).map_or(0, |f| f.count(operation))
    }
}

/// The routes the emulator serves.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Route {
    /// `GET /v1/{version}/publicKey`, `POST /v1/{version}:asymmetricSign`.
    Version(String, Operation),
    /// `GET /v1/{key}/cryptoKeyVersions`.
    List(String),
}

impl Route {
    /// The method name Google puts in `ErrorInfo` metadata.
    fn method(&self) -> &'static str {
        match self {
            Self::Version(_, Operation::GetPublicKey) => {
                "google.cloud.kms.v1.KeyManagementService.GetPublicKey"
            }
            Self::Version(..) => "google.cloud.kms.v1.KeyManagementService.AsymmetricSign",
            Self::List(_) => "google.cloud.kms.v1.KeyManagementService.ListCryptoKeyVersions",
        }
    }

    fn key(&self) -> &str {
        match self {
            Self::Version(name, _) => key_of(name),
            Self::List(key) => key,
        }
    }
}

fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v1/")?;
    if let Some(name) = rest.strip_suffix("/publicKey") {
        return Some(Route::Version(name.to_owned(), Operation::GetPublicKey));
    }
    if let Some(key) = rest.strip_suffix("/cryptoKeyVersions") {
        return Some(Route::List(key.to_owned()));
    }
    rest.strip_suffix(":asymmetricSign")
        .map(|name| Route::Version(name.to_owned(), Operation::Sign))
}

/// The 401 Google answers without acceptable credentials, or `None` when the key takes
/// the request's.
fn refuse_unauthenticated(head: &str, route: &Route, state: &Shared) -> Option<Reply> {
    let check = lock(state).tokens.get(route.key()).cloned()?;
    let metadata = json!({"service": "cloudkms.googleapis.com", "method": route.method()});
    let challenge = "Bearer realm=\"https://accounts.google.com/\"";
    let token = header(head, "authorization").and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    match token {
        Some(token) if check(token) => None,
        Some(_) => Some(
            error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                &[error_info("ACCESS_TOKEN_EXPIRED", "googleapis.com", &metadata)],
            )
            .with_header("WWW-Authenticate", &format!("{challenge}, error=\"invalid_token\"")),
        ),
        None => Some(
            error(
                401,
                "UNAUTHENTICATED",
                "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                &[error_info("CREDENTIALS_MISSING", "googleapis.com", &metadata)],
            )
            .with_header("WWW-Authenticate", challenge),
        ),
    }
}

async fn write_reply(stream: &mut TcpStream, reply: &Reply) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&reply.body).await
}

async fn serve(mut stream: TcpStream, state: Shared) {
    let mut buffer = Vec::new();
    while let Ok(Some(request)) = read_message(&mut stream, &mut buffer, false).await {
        let mut start = request.head.lines().next().unwrap_or("").split_whitespace();
        let method = start.next().unwrap_or("").to_owned();
        let target = start.next().unwrap_or("").to_owned();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let route = route(path);
        let faults = match &route {
            Some(Route::Version(name, _)) => {
                lock(&state).versions.get(name).map(|v| v.faults.clone())
            }
            _ => None,
        };
        let intercept = match (&route, faults) {
            (Some(Route::Version(_, operation)), Some(faults)) => {
                faults.intercept(*operation, &GoogleDialect).await
            }
            _ => Intercept::Answer(None),
        };
        let reply = match intercept {
            Intercept::Drop => return,
            Intercept::Respond(answer) => {
                let mut reply = Reply::json(answer.status, &answer.body);
                reply.headers.extend(
                    answer
                        .headers
                        .into_iter()
                        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-type"))
                        .map(|(name, value)| (name.to_owned(), value)),
                );
                reply
            }
            Intercept::Answer(edit) => match &route {
                None => google_404_page(path),
                Some(route) => match refuse_unauthenticated(&request.head, route, &state) {
                    Some(refusal) => refusal,
                    None => {
                        let (status, mut body) =
                            handle(&method, route, query, &request.body, &state);
                        if status == 200 {
                            edit_answer(&GoogleDialect, edit.as_ref(), &mut body);
                        }
                        Reply::json(status, &body)
                    }
                },
            },
        };
        if write_reply(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

fn handle(method: &str, route: &Route, query: &str, body: &[u8], state: &Shared) -> (u16, Value) {
    let expected_method = match route {
        Route::Version(_, Operation::Sign) => "POST",
        _ => "GET",
    };
    if method != expected_method {
        return (
            405,
            error_body(
                405,
                "INVALID_ARGUMENT",
                &format!("{} is {expected_method}", route.method()),
                &[],
            ),
        );
    }
    let (name, operation) = match route {
        Route::List(key) => return list(key, query, state),
        Route::Version(name, operation) => (name, *operation),
    };
    let mut state = lock(state);
    let Some(version) = state.versions.get_mut(name) else {
        return (
            404,
            error_body(
                404,
                "NOT_FOUND",
                &format!("CryptoKeyVersion {name} not found."),
                &[],
            ),
        );
    };
    if version.state != VersionState::Enabled {
        let state_name = version.state.name();
        return (
            400,
            error_body(
                400,
                "FAILED_PRECONDITION",
                &format!("{name} is not enabled, current state is: {state_name}."),
                &[json!({
                    "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
                    "violations": [{"type": format!("KEY_{state_name}"), "subject": name}],
                })],
            ),
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
                "protectionLevel": version.protection,
            }),
        );
    }
    sign(name, version, body)
}

/// A query parameter's value (the client sends plain numbers and tokens).
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(n, v)| (n == name).then_some(v))
}

/// `cryptoKeyVersions.list`: the key's versions by number, `pageSize` at a time but at
/// most [`LIST_PAGE_CAP`], the page token being the index of the next one.
/// The most versions one page of `cryptoKeyVersions.list` holds here (the real service
/// allows more): a key with more versions takes several pages, so paging is exercised.
pub const LIST_PAGE_CAP: usize = 10;

fn list(key: &str, query: &str, state: &Shared) -> (u16, Value) {
    let state = lock(state);
    let prefix = format!("{key}/cryptoKeyVersions/");
    let versions: BTreeMap<u64, (&String, &Version)> = state
        .versions
        .iter()
        .filter_map(|(name, v)| {
            let number = name.strip_prefix(&prefix)?.parse::<u64>().ok()?;
            Some((number, (name, v)))
        })
        .collect();
    if versions.is_empty() {
        return (
            404,
            error_body(
                404,
                "NOT_FOUND",
                &format!("CryptoKey {key} not found."),
                &[],
            ),
        );
    }
    let size = query_param(query, "pageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(LIST_PAGE_CAP)
        .min(LIST_PAGE_CAP);
    let start = query_param(query, "pageToken")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let page: Vec<Value> = versions
        .values()
        .skip(start)
        .take(size)
        .map(|(name, v)| {
            json!({
                "name": name,
                "state": v.state.wire(),
                "protectionLevel": v.protection,
                "algorithm": v.wire_algorithm,
            })
        })
        .collect();
    let mut answer = json!({"cryptoKeyVersions": page, "totalSize": versions.len()});
    if start + size < versions.len() {
        answer["nextPageToken"] = json!((start + size).to_string());
    }
    (200, answer)
}

/// A request's optional CRC32C field: `Ok(None)` when absent, `Err` when it does not
/// match `bytes`.
fn check_crc(request: &Value, crc_field: &str, field: &str, bytes: &[u8]) -> Result<bool, String> {
    match request.get(crc_field) {
        None | Some(Value::Null) => Ok(false),
        Some(sent) => {
            let sent = sent
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .or_else(|| sent.as_u64());
            if sent == Some(u64::from(crc32c(bytes))) {
                Ok(true)
            } else {
                let snake = crc_field.replace("Crc32c", "_crc32c");
                Err(format!(
                    "The checksum in field {snake} did not match the data in field {field}."
                ))
            }
        }
    }
}

/// The DER `DigestInfo` prefixes raw PKCS#1 data may carry, from the `rsa` crate (the
/// backend writes its own from RFC 8017, so the two are checked against each other).
fn digest_infos() -> [(HashAlgorithm, Box<[u8]>); 3] {
    [
        (HashAlgorithm::Sha256, Pkcs1v15Sign::new::<Sha256>().prefix),
        (HashAlgorithm::Sha384, Pkcs1v15Sign::new::<Sha384>().prefix),
        (HashAlgorithm::Sha512, Pkcs1v15Sign::new::<Sha512>().prefix),
    ]
}

fn rsa_algorithm(hash: HashAlgorithm) -> Algorithm {
    match hash {
        HashAlgorithm::Sha256 => Algorithm::RsaPkcs1Sha256,
        HashAlgorithm::Sha384 => Algorithm::RsaPkcs1Sha384,
        HashAlgorithm::Sha512 => Algorithm::RsaPkcs1Sha512,
    }
}

fn hash_of_field(field: &str) -> Option<HashAlgorithm> {
    match field {
        "sha256" => Some(HashAlgorithm::Sha256),
        "sha384" => Some(HashAlgorithm::Sha384),
        "sha512" => Some(HashAlgorithm::Sha512),
        _ => None,
    }
}

fn sign(name: &str, version: &mut Version, body: &[u8]) -> (u16, Value) {
    let invalid = |message: &str| (400, error_body(400, "INVALID_ARGUMENT", message, &[]));
    let Some(algorithm) = VersionAlgorithm::from_wire(version.wire_algorithm) else {
        return invalid(&format!(
            "the emulator does not sign with algorithm {}",
            version.wire_algorithm
        ));
    };
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return invalid("request body is not JSON");
    };
    let digest = request.get("digest").filter(|d| !d.is_null());
    // Empty bytes are proto3's default and never sent: for a version that takes `data`,
    // no `data` is empty data (an empty message is a valid Ed25519 input).
    let data = request
        .get("data")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .or((digest.is_none() && algorithm.prehashed().is_none()).then_some(""));
    let (algorithm_name, to_sign, field) = match (digest, data, algorithm.prehashed()) {
        (Some(_), Some(_), _) => {
            return invalid(
                "Only one of AsymmetricSignRequest.digest and AsymmetricSignRequest.data may be supplied.",
            );
        }
        (None, None, _) => {
            return invalid(&format!(
                "AsymmetricSignRequest.digest is required for algorithm {}.",
                algorithm.name()
            ));
        }
        (Some(_), None, None) => {
            return invalid(&format!(
                "AsymmetricSignRequest.digest is not supported for algorithm {}: supply AsymmetricSignRequest.data",
                algorithm.name()
            ));
        }
        (None, Some(_), Some(_)) => {
            return invalid(&format!(
                "AsymmetricSignRequest.data is not supported for algorithm {}: supply AsymmetricSignRequest.digest",
                algorithm.name()
            ));
        }
        (Some(digest), None, Some(signs)) => {
            let hash = signs.hash().expect("a pre-hashed algorithm");
            let fields: Vec<(&String, &Value)> = digest
                .as_object()
                .map(|o| o.iter().collect())
                .unwrap_or_default();
            let [(field, value)] = fields[..] else {
                return invalid("AsymmetricSignRequest.digest must hold exactly one digest");
            };
            if hash_of_field(field) != Some(hash) {
                return invalid(&format!(
                    "The digest type must be {} for algorithm {}.",
                    hash.name(),
                    algorithm.name()
                ));
            }
            let Some(bytes) = value.as_str().and_then(|b| Base64::decode_vec(b).ok()) else {
                return invalid("digest is not base64");
            };
            if bytes.len() != hash.len() {
                return invalid(&format!(
                    "Digest has the wrong length: {} bytes for {}",
                    bytes.len(),
                    hash.name()
                ));
            }
            let verified = match check_crc(&request, "digestCrc32c", "digest", &bytes) {
                Ok(verified) => verified,
                Err(message) => return invalid(&message),
            };
            (signs, (bytes, verified), SignField::Digest(hash))
        }
        (None, Some(data), None) => {
            let Ok(bytes) = Base64::decode_vec(data) else {
                return invalid("data is not base64");
            };
            let verified = match check_crc(&request, "dataCrc32c", "data", &bytes) {
                Ok(verified) => verified,
                Err(message) => return invalid(&message),
            };
            if algorithm == VersionAlgorithm::EcSignEd25519 {
                (Algorithm::Ed25519, (bytes, verified), SignField::Data)
            } else {
                // Raw PKCS#1: Cloud KMS pads at most k - 11 bytes (RFC 8017 §9.2).
                let modulus = version.key.public_key().rsa_bits().unwrap_or(0) / 8;
                if bytes.len() + 11 > modulus {
                    return invalid(&format!(
                        "AsymmetricSignRequest.data is {} bytes; algorithm {} signs at most {}",
                        bytes.len(),
                        algorithm.name(),
                        modulus.saturating_sub(11)
                    ));
                }
                let parsed = digest_infos().into_iter().find_map(|(hash, prefix)| {
                    let digest = bytes.strip_prefix(&*prefix)?;
                    (digest.len() == hash.len()).then(|| (hash, digest.to_vec()))
                });
                let Some((hash, digest)) = parsed else {
                    return invalid(
                        "the emulator signs raw PKCS#1 data only when it is a SHA-256, SHA-384 or SHA-512 DigestInfo",
                    );
                };
                (rsa_algorithm(hash), (digest, verified), SignField::Data)
            }
        }
    };
    let (bytes, verified) = to_sign;
    let input = if algorithm_name.is_prehashed() {
        SigningInput::Digest(&bytes)
    } else {
        SigningInput::Message(&bytes)
    };
    version.last_sign_field = Some(field);
    let signature = match version.key.sign_sync(algorithm_name, input) {
        Ok(signature) => signature.to_bytes(),
        Err(e) => {
            return (
                500,
                error_body(500, "INTERNAL", &format!("signing failed: {e}"), &[]),
            );
        }
    };
    let (verified_digest, verified_data) = match field {
        SignField::Digest(_) => (verified, false),
        SignField::Data => (false, verified),
    };
    (
        200,
        json!({
            "signature": Base64::encode_string(&signature),
            "signatureCrc32c": crc32c(&signature).to_string(),
            "verifiedDigestCrc32c": verified_digest,
            "verifiedDataCrc32c": verified_data,
            "name": name,
            "protectionLevel": version.protection,
        }),
    )
}

// ---------------------------------------------------------------------------------------
// Loopback stand-ins for the Google endpoints credentials talk to.

/// A request a [`StandIn`] received.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`…
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query, without `?` (empty when none).
    pub query: String,
    /// The start line and headers.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value (names compared case-insensitively).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }

    /// A form (`application/x-www-form-urlencoded`) field of the body, decoded.
    #[must_use]
    pub fn form_field(&self, name: &str) -> Option<String> {
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| percent_decode(v))
    }

    /// A JSON body's string field.
    #[must_use]
    pub fn json_field(&self, name: &str) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()?
            .get(name)?
            .as_str()
            .map(str::to_owned)
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (byte, None) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// A loopback HTTP server answering with a handler, on a thread and runtime of its own
/// (so a `kmssh` child process or the test's own runtime can reach it), recording every
/// request. Dropping it stops it: the listener closes and its thread is joined.
pub struct StandIn {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for StandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandIn")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl StandIn {
    /// Starts serving 127.0.0.1 (a free port) with `handler`.
    ///
    /// # Panics
    /// If no loopback port can be bound or no thread started.
    pub fn start(name: &str, handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let handler: Handler = Arc::new(handler);
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let recorded = requests.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                        .await
                        .expect("bind loopback");
                    sender
                        .send(listener.local_addr().expect("address"))
                        .expect("report address");
                    let accepting = async {
                        while let Ok((stream, _)) = listener.accept().await {
                            // Small answers in two writes: no waiting on delayed ACKs.
                            let _ = stream.set_nodelay(true);
                            tokio::spawn(serve_stand_in(stream, handler.clone(), recorded.clone()));
                        }
                    };
                    tokio::select! {
                        () = accepting => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here ends every connection task.
            })
            .expect("stand-in thread");
        let address = receiver.recv().expect("stand-in address");
        Self {
            address,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `127.0.0.1:PORT`.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The requests received so far, in order.
    #[must_use]
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve_stand_in(
    mut stream: TcpStream,
    handler: Handler,
    requests: Arc<Mutex<Vec<Request>>>,
) {
    let mut buffer = Vec::new();
    while let Ok(Some(message)) = read_message(&mut stream, &mut buffer, false).await {
        let mut start = message.head.lines().next().unwrap_or("").split_whitespace();
        let method = start.next().unwrap_or("").to_owned();
        let target = start.next().unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let request = Request {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            head: message.head,
            body: message.body,
        };
        let reply = handler(&request);
        requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        if write_reply(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

/// What an OAuth token endpoint stand-in answers, in turn (the last one repeats).
#[derive(Clone, Debug)]
pub enum TokenAnswer {
    /// 200 with this access token (an hour's validity).
    Grant(String),
    /// 400 `invalid_grant`, as Google answers a revoked or expired refresh token.
    InvalidGrant,
    /// 503, a token endpoint that is down for now.
    Unavailable,
}

fn token_reply(answer: &TokenAnswer) -> Reply {
    match answer {
        TokenAnswer::Grant(token) => Reply::json(
            200,
            &json!({
                "access_token": token,
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/cloud-platform",
            }),
        ),
        TokenAnswer::InvalidGrant => Reply::json(
            400,
            &json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
        ),
        TokenAnswer::Unavailable => Reply::text(503, "Service Unavailable"),
    }
}

/// Google's OAuth token endpoint (`https://oauth2.googleapis.com/token`) for
/// `authorized_user` credentials: a `refresh_token` grant with the client id, secret and
/// refresh token of the file gets `answers` in turn; anything else is 400.
#[must_use]
pub fn oauth_token_endpoint(refresh_token: &str, answers: Vec<TokenAnswer>) -> StandIn {
    let refresh_token = refresh_token.to_owned();
    let turn = AtomicUsize::new(0);
    StandIn::start("oauth-token-stand-in", move |request| {
        let field = |name: &str| {
            request
                .json_field(name)
                .or_else(|| request.form_field(name))
        };
        let well_formed = request.method == "POST"
            && field("grant_type").as_deref() == Some("refresh_token")
            && field("client_id").is_some()
            && field("client_secret").is_some();
        if !well_formed {
            return Reply::json(400, &json!({"error": "invalid_request"}));
        }
        if field("refresh_token").as_deref() != Some(refresh_token.as_str()) {
            return token_reply(&TokenAnswer::InvalidGrant);
        }
        let n = turn.fetch_add(1, Ordering::SeqCst);
        answers
            .get(n.min(answers.len().saturating_sub(1)))
            .map_or_else(|| token_reply(&TokenAnswer::Unavailable), token_reply)
    })
}

/// Google's Security Token Service (`https://sts.googleapis.com/v1/token`) for workload
/// identity federation: an RFC 8693 token exchange of `subject_token` for `audience` gets
/// `access_token`; another subject token or audience is 400 `invalid_grant`.
#[must_use]
pub fn sts_endpoint(audience: &str, subject_token: &str, access_token: &str) -> StandIn {
    let (audience, subject_token, access_token) = (
        audience.to_owned(),
        subject_token.to_owned(),
        access_token.to_owned(),
    );
    StandIn::start("sts-stand-in", move |request| {
        let exchange = request.method == "POST"
            && request.form_field("grant_type").as_deref()
                == Some("urn:ietf:params:oauth:grant-type:token-exchange")
            && request.form_field("requested_token_type").as_deref()
                == Some("urn:ietf:params:oauth:token-type:access_token");
        if !exchange {
            return Reply::json(400, &json!({"error": "invalid_request"}));
        }
        if request.form_field("audience").as_deref() != Some(audience.as_str())
            || request.form_field("subject_token").as_deref() != Some(subject_token.as_str())
        {
            return Reply::json(
                400,
                &json!({"error": "invalid_grant", "error_description": "The subject token or audience is invalid."}),
            );
        }
        Reply::json(
            200,
            &json!({
                "access_token": access_token,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": 3600,
            }),
        )
    })
}

/// The GCE metadata server (`metadata.google.internal`, reached through
/// `GCE_METADATA_HOST`): every answer carries `Metadata-Flavor: Google`, a request
/// without that header is 403, and the default service account's token is
/// `access_token`.
#[must_use]
pub fn metadata_server(access_token: &str) -> StandIn {
    let access_token = access_token.to_owned();
    StandIn::start("metadata-stand-in", move |request| {
        let reply = if request.header("metadata-flavor") != Some("Google") {
            Reply::text(403, "Missing Metadata-Flavor:Google header.")
        } else {
            match request.path.as_str() {
                "/" => Reply::text(200, "computeMetadata/\n"),
                "/computeMetadata/v1/instance/service-accounts/default/token" => Reply::json(
                    200,
                    &json!({"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"}),
                ),
                "/computeMetadata/v1/universe/universe-domain" => {
                    Reply::text(200, "googleapis.com")
                }
                _ => Reply::text(404, "Not Found"),
            }
        };
        reply.with_header("Metadata-Flavor", "Google")
    })
}

/// A proxy that answers every request itself with `reply` (a 403 page, a 502…).
#[must_use]
pub fn refusing_proxy(reply: Reply) -> StandIn {
    StandIn::start("proxy-stand-in", move |_| reply.clone())
}

/// The claims of a JWT (its middle part), or `None` if it is not one.
#[must_use]
pub fn jwt_claims(token: &str) -> Option<Value> {
    use base64ct::Base64UrlUnpadded;
    let mut parts = token.split('.');
    let (_header, claims, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    serde_json::from_slice(&Base64UrlUnpadded::decode_vec(claims).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_numbers_and_names_are_the_sdks() {
        use kmssh_backend_gcp::google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionAlgorithm;
        for algorithm in VersionAlgorithm::ALL {
            let sdk = CryptoKeyVersionAlgorithm::from(algorithm.wire());
            assert_eq!(sdk.name(), Some(algorithm.name()), "{algorithm:?}");
            assert_eq!(
                VersionAlgorithm::from_wire(algorithm.wire()),
                Some(algorithm)
            );
        }
        for (wire, name) in [
            (EC_SIGN_SECP256K1_SHA256, "EC_SIGN_SECP256K1_SHA256"),
            (RSA_SIGN_PSS_2048_SHA256, "RSA_SIGN_PSS_2048_SHA256"),
            (HMAC_SHA256, "HMAC_SHA256"),
            (PQ_SIGN_ML_DSA_65, "PQ_SIGN_ML_DSA_65"),
            (RSA_DECRYPT_OAEP_2048_SHA256, "RSA_DECRYPT_OAEP_2048_SHA256"),
        ] {
            assert_eq!(CryptoKeyVersionAlgorithm::from(wire).name(), Some(name));
            assert_eq!(VersionAlgorithm::from_wire(wire), None);
        }
        for spec in KeySpec::ALL {
            match VersionAlgorithm::for_spec(spec) {
                Some(algorithm) => assert_eq!(algorithm.spec(), spec),
                None => assert_eq!(spec, KeySpec::Ecdsa(Curve::P521)),
            }
        }
        for algorithm in Algorithm::ALL {
            if let Some(version) = VersionAlgorithm::signing(algorithm) {
                let signs = version.prehashed().map_or_else(
                    || version.spec().algorithms().contains(&algorithm),
                    |only| only == algorithm,
                );
                assert!(signs, "{algorithm} from {version:?}");
            }
        }
    }

    #[test]
    fn forms_decode() {
        assert_eq!(percent_decode("a%3Ab+c%2F"), "a:b c/");
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
