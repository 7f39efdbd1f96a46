//! The AWS fixture: keys of every [`kmssh_core::KeySpec`] (`ECC_NIST_P256/P384/P521`,
//! `RSA_2048/3072/4096`, `ECC_NIST_EDWARDS25519`) in ministack (or, with
//! `KMSSH_AWS_KEY_IDS` set, in real AWS KMS), created through the AWS SDK, opened through
//! kmssh's backend; faults injected by a [`FaultProxy`] between the backend and ministack,
//! in AWS's wire shape ([`AwsDialect`]).
//!
//! ministack checks no signature, region or credential, so the proxy does, through an
//! [`AwsGate`]: the region a request's SigV4 signature is scoped to (against the region
//! the proxy expects, and against the region of an ARN in the body), access keys to
//! refuse as AWS would (`UnrecognizedClientException`, `ExpiredTokenException`,
//! `AccessDeniedException`), and scripted error answers (`KeyUnavailableException`).
//! Nor does ministack enforce KMS's limits on `Sign`'s `Message` (1 to 4096 bytes; what
//! an Ed25519 key signs whole, as `MessageType=RAW`): every AWS proxy does
//! ([`kms_validation`], a `ValidationException` as KMS answers), and the shared cases'
//! keys ([`Fixture::key`]) reach ministack through such a proxy too, so a client that
//! sends a longer message fails here as it would against AWS. ministack makes keys on its
//! one event loop (an RSA-4096 key can stall it for a second), so the fixture makes one
//! key of each spec when the emulator starts and every case signs with those
//! ([`AwsFixture::emulator_key_id`]), each opening it afresh.
//! [`stand_in`] serves the credential sources of the SDK's default chain on loopback: STS
//! (`AssumeRoleWithWebIdentity`), the SSO portal (`GetRoleCredentials`), IMDSv2 and the
//! ECS container endpoint.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use base64ct::{Base64, Encoding};
use kmssh_backend_aws::{AwsKmsKey, AwsKmsOptions};
use kmssh_core::{Curve, KeyUri, KmsKey, Options};
use serde_json::{Value, json};

use crate::fault_proxy::{FaultProxy, Gate, ServiceRule};
use crate::faults::{Dialect, ErrorAnswer, FAULT_CALL_TIMEOUT, Operation, fault_retry_policy};
use crate::fixture::{Capabilities, FaultyKey, Fixture, cloud_capabilities, real_keys};
use crate::http::{Message, header};
use crate::ministack::Ministack;

/// The backend's name in `KNOWN_BACKENDS`.
pub const NAME: &str = "aws";

/// The region the emulator pretends to be.
pub const EMULATOR_REGION: &str = "us-east-1";

/// Options that reach an emulator at `endpoint` with test credentials; short timeouts so
/// fault tests finish quickly.
#[must_use]
pub fn emulator_options(endpoint: &str) -> AwsKmsOptions {
    AwsKmsOptions {
        region: Some(EMULATOR_REGION.to_owned()),
        endpoint_url: Some(endpoint.to_owned()),
        credentials: Some(aws_sdk_kms::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "kmssh-conformance",
        )),
        call_timeout: Some(Duration::from_secs(5)),
        retry: Some(crate::emulator_retry_policy()),
        grant_tokens: Vec::new(),
        imds_timeout: None,
        imds_attempts: None,
    }
}

/// An SDK client for administration in `region` (ministack keeps keys per region, as AWS
/// does: a key made here has an ARN naming `region` and is found only there).
pub async fn admin_client_in(endpoint: &str, region: &str) -> aws_sdk_kms::Client {
    AwsKmsOptions {
        region: Some(region.to_owned()),
        ..emulator_options(endpoint)
    }
    .client()
    .await
    .expect("emulator client")
}

/// Creates a key and gives its ARN.
///
/// # Panics
/// If the emulator refuses.
pub async fn create_key_arn(
    client: &aws_sdk_kms::Client,
    spec: KeySpec,
    usage: KeyUsageType,
) -> String {
    created_key(client, spec, usage)
        .await
        .arn()
        .expect("ARN")
        .to_owned()
}

/// Creates a key in the emulator; returns its metadata.
async fn created_key(
    client: &aws_sdk_kms::Client,
    spec: KeySpec,
    usage: KeyUsageType,
) -> aws_sdk_kms::types::KeyMetadata {
    client
        .create_key()
        .key_spec(spec.clone())
        .key_usage(usage)
        .description("kmssh conformance")
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateKey {spec:?}: {e:?}"))
        .key_metadata
        .expect("metadata")
}

/// An SDK client for administration (creating keys), straight to the emulator.
pub async fn admin_client(endpoint: &str) -> aws_sdk_kms::Client {
    emulator_options(endpoint)
        .client()
        .await
        .expect("emulator client")
}

/// Creates a key in the emulator; returns its id.
///
/// # Panics
/// If the emulator refuses.
pub async fn create_key(
    client: &aws_sdk_kms::Client,
    spec: KeySpec,
    usage: KeyUsageType,
) -> String {
    created_key(client, spec, usage).await.key_id().to_owned()
}

/// Opens `aws-kms:<id>` with the given options.
///
/// # Errors
/// As [`AwsKmsKey::open`].
pub async fn open(key_id: &str, options: &AwsKmsOptions) -> kmssh_core::Result<Arc<dyn KmsKey>> {
    let uri = KeyUri::parse(&format!("aws-kms:{key_id}"))?;
    let key: Arc<dyn KmsKey> = Arc::new(AwsKmsKey::open(&uri, options).await?);
    Ok(key)
}

/// The AWS KMS key spec of a kind of key; `None` for RSA sizes KMS does not offer.
#[must_use]
pub fn key_spec(spec: kmssh_core::KeySpec) -> Option<KeySpec> {
    match spec {
        kmssh_core::KeySpec::Ecdsa(Curve::P256) => Some(KeySpec::EccNistP256),
        kmssh_core::KeySpec::Ecdsa(Curve::P384) => Some(KeySpec::EccNistP384),
        kmssh_core::KeySpec::Ecdsa(Curve::P521) => Some(KeySpec::EccNistP521),
        kmssh_core::KeySpec::Rsa(2048) => Some(KeySpec::Rsa2048),
        kmssh_core::KeySpec::Rsa(3072) => Some(KeySpec::Rsa3072),
        kmssh_core::KeySpec::Rsa(4096) => Some(KeySpec::Rsa4096),
        kmssh_core::KeySpec::Rsa(_) => None,
        kmssh_core::KeySpec::Ed25519 => Some(KeySpec::EccNistEdwards25519),
    }
}

/// The most bytes AWS KMS takes in `Sign`'s `Message` (RAW or DIGEST alike; at least 1).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// AWS KMS's validation of what ministack accepts unchecked ([`ServiceRule`]): a `Sign`
/// whose `Message` is missing, empty or longer than [`MAX_MESSAGE_LEN`] bytes is answered
/// as KMS answers it (its API model says `min: 1, max: 4096`), `ValidationException`
/// (400), never signed.
#[must_use]
pub fn kms_validation(operation: Option<Operation>, request: &Message) -> Option<ErrorAnswer> {
    if operation != Some(Operation::Sign) {
        return None;
    }
    let refused = |constraint: &str| {
        Some(aws_error(
            400,
            "ValidationException",
            &format!("1 validation error detected: {constraint}"),
        ))
    };
    let body = body_json(&request.body);
    let Some(encoded) = body["Message"].as_str() else {
        return refused(
            "Value null at 'message' failed to satisfy constraint: Member must not be null",
        );
    };
    // Not base64: left for the emulator to refuse.
    let message = Base64::decode_vec(encoded).ok()?;
    if message.is_empty() {
        refused(
            "Value at 'message' failed to satisfy constraint: \
             Member must have length greater than or equal to 1",
        )
    } else if message.len() > MAX_MESSAGE_LEN {
        refused(&format!(
            "Value at 'message' failed to satisfy constraint: \
             Member must have length less than or equal to {MAX_MESSAGE_LEN}"
        ))
    } else {
        None
    }
}

/// The operation of a request to AWS KMS: its `X-Amz-Target` (`TrentService.Sign`).
#[must_use]
pub fn operation(head: &str) -> Option<Operation> {
    let target = crate::http::header(head, "x-amz-target")?;
    match target.rsplit('.').next()? {
        "DescribeKey" => Some(Operation::Describe),
        "GetPublicKey" => Some(Operation::GetPublicKey),
        "Sign" => Some(Operation::Sign),
        _ => None,
    }
}

/// AWS KMS's wire shape for faults: `__type` errors in `application/x-amz-json-1.1`,
/// signatures in base64 in `Signature` (DER for ECDSA, the raw integer for RSA, 64 bytes
/// for Ed25519).
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsDialect;

/// An AWS KMS error answer: `status` with `{"__type": kind, "message": …}`.
#[must_use]
pub fn aws_error(status: u16, kind: &str, message: &str) -> ErrorAnswer {
    ErrorAnswer {
        status,
        headers: vec![("Content-Type", "application/x-amz-json-1.1".to_owned())],
        body: json!({"__type": kind, "message": message}),
    }
}

fn edit_signature(answer: &mut Value, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut der =
        Base64::decode_vec(answer["Signature"].as_str().unwrap_or_default()).unwrap_or_default();
    if der.is_empty() {
        return;
    }
    edit(&mut der);
    answer["Signature"] = json!(Base64::encode_string(&der));
}

impl Dialect for AwsDialect {
    fn throttled(&self, _retry_after: Option<Duration>) -> ErrorAnswer {
        // AWS KMS sends no Retry-After.
        aws_error(400, "ThrottlingException", "Rate exceeded")
    }

    fn server_error(&self) -> ErrorAnswer {
        aws_error(500, "KMSInternalException", "internal error")
    }

    fn denied(&self) -> ErrorAnswer {
        aws_error(
            400,
            "AccessDeniedException",
            "User: arn:aws:iam::000000000000:user/test is not authorized to perform: kms:Sign",
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

/// The SigV4 credential scope of a request: `Credential=AKID/DATE/REGION/SERVICE/aws4_request`
/// in its `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigV4Scope {
    /// The access key id that signed.
    pub access_key_id: String,
    /// The region the signature is scoped to.
    pub region: String,
    /// The service the signature is scoped to (`kms`).
    pub service: String,
}

/// The SigV4 scope of a request head, if it carries one.
#[must_use]
pub fn sigv4_scope(head: &str) -> Option<SigV4Scope> {
    let authorization = header(head, "authorization")?;
    let credential = authorization
        .split([',', ' '])
        .find_map(|part| part.trim().strip_prefix("Credential="))?;
    let mut parts = credential.split('/');
    let access_key_id = parts.next()?.to_owned();
    let _date = parts.next()?;
    let region = parts.next()?.to_owned();
    let service = parts.next()?.to_owned();
    (parts.next() == Some("aws4_request")).then_some(SigV4Scope {
        access_key_id,
        region,
        service,
    })
}

/// A request body as JSON (`Value::Null` when it is not JSON).
#[must_use]
pub fn body_json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// What an [`AwsGate`] checks in each request, before the fault layer and ministack.
#[derive(Clone, Debug, Default)]
pub struct SigV4Checks {
    /// The region every request must be signed for; `None`: any. Whatever this says, a
    /// request whose `KeyId` is an ARN must be signed for the ARN's region.
    pub region: Option<String>,
    /// Access key ids answered `UnrecognizedClientException` (400), as AWS answers an
    /// unknown or deleted key.
    pub unrecognized: Vec<String>,
    /// Access key ids answered `ExpiredTokenException` (400), as AWS answers a session
    /// whose token has expired.
    pub expired: Vec<String>,
    /// Access key ids answered `AccessDeniedException` (400): known, without permission.
    pub denied: Vec<String>,
}

#[derive(Default)]
struct GateState {
    checks: SigV4Checks,
    /// (operation, answer, how many more requests it applies to)
    scripted: Vec<(Operation, ErrorAnswer, usize)>,
}

/// The AWS proxy's gate ([`Gate`]): refuses what real AWS KMS would refuse before looking
/// at the key (a missing signature, a signature scoped to another region or service, a
/// refused access key), and answers scripted errors. Clones share their state.
#[derive(Clone, Default)]
pub struct AwsGate(Arc<Mutex<GateState>>);

impl std::fmt::Debug for AwsGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AwsGate").field(&self.lock().checks).finish()
    }
}

impl AwsGate {
    /// A gate with these checks.
    #[must_use]
    pub fn new(checks: SigV4Checks) -> Self {
        Self(Arc::new(Mutex::new(GateState {
            checks,
            scripted: Vec::new(),
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts this gate in front of `proxy`.
    pub fn install(&self, proxy: &FaultProxy) {
        let gate = self.clone();
        let gate: Gate = Arc::new(move |operation, request| gate.check(operation, request));
        proxy.set_gate(Some(gate));
    }

    /// Replaces the checks.
    pub fn set_checks(&self, checks: SigV4Checks) {
        self.lock().checks = checks;
    }

    /// Answers the next `times` requests for `operation` with this AWS error (after the
    /// signature checks pass).
    pub fn answer(
        &self,
        operation: Operation,
        status: u16,
        code: &str,
        message: &str,
        times: usize,
    ) {
        self.lock()
            .scripted
            .push((operation, aws_error(status, code, message), times));
    }

    /// What the gate answers `request` with, if anything.
    fn check(&self, operation: Option<Operation>, request: &Message) -> Option<ErrorAnswer> {
        let mut state = self.lock();
        let Some(scope) = sigv4_scope(&request.head) else {
            return Some(aws_error(
                400,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ));
        };
        if scope.service != "kms" {
            return Some(aws_error(
                400,
                "InvalidSignatureException",
                "Credential should be scoped to correct service: 'kms'.",
            ));
        }
        if let Some(region) = &state.checks.region
            && *region != scope.region
        {
            return Some(aws_error(
                400,
                "InvalidSignatureException",
                &format!(
                    "Credential should be scoped to a valid region, not '{}'. (this endpoint is {region})",
                    scope.region
                ),
            ));
        }
        let key_id = body_json(&request.body)["KeyId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(arn_region) = key_id
            .strip_prefix("arn:")
            .and_then(|rest| rest.split(':').nth(2))
            && arn_region != scope.region
        {
            return Some(aws_error(
                400,
                "NotFoundException",
                &format!(
                    "Invalid arn {arn_region} (request signed for {})",
                    scope.region
                ),
            ));
        }
        let key = &scope.access_key_id;
        if state.checks.unrecognized.contains(key) {
            return Some(aws_error(
                400,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
        if state.checks.expired.contains(key) {
            return Some(aws_error(
                400,
                "ExpiredTokenException",
                "The security token included in the request is expired",
            ));
        }
        if state.checks.denied.contains(key) {
            return Some(aws_error(
                400,
                "AccessDeniedException",
                &format!(
                    "User: arn:aws:iam::000000000000:user/{key} is not authorized to perform this operation"
                ),
            ));
        }
        let operation = operation?;
        let due = state
            .scripted
            .iter_mut()
            .find(|(o, _, left)| *o == operation && *left > 0)?;
        due.2 -= 1;
        Some(due.1.clone())
    }
}

/// A proxy in front of the shared ministack whose gate expects requests signed for
/// `region`, enforcing [`kms_validation`]; the gate is returned to change its checks or
/// script answers.
pub async fn gated_proxy(ministack: &Ministack, region: &str) -> (FaultProxy, AwsGate) {
    let rule: ServiceRule = kms_validation;
    let proxy = FaultProxy::start_with_rule(
        ministack.address(),
        Arc::new(AwsDialect),
        operation,
        Some(rule),
    )
    .await;
    let gate = AwsGate::new(SigV4Checks {
        region: Some(region.to_owned()),
        ..SigV4Checks::default()
    });
    gate.install(&proxy);
    (proxy, gate)
}

/// The AWS fixture: ministack (started once per test process), or the keys listed in
/// `KMSSH_AWS_KEY_IDS`.
#[derive(Debug)]
pub struct AwsFixture;

impl AwsFixture {
    /// The one instance.
    #[must_use]
    pub fn shared() -> &'static Self {
        static FIXTURE: AwsFixture = AwsFixture;
        &FIXTURE
    }

    /// The shared emulator: ministack, a key of every spec in it, and the proxy the shared
    /// cases' keys go through. Made once per test process, on a runtime of its own (each
    /// test's runtime ends with the test), before any case gets ministack's address.
    fn emulator() -> &'static Emulator {
        static EMULATOR: OnceLock<Emulator> = OnceLock::new();
        EMULATOR.get_or_init(|| {
            let ministack = Ministack::shared();
            // A thread of its own: this may be called from inside a test's runtime, where
            // blocking on another is not allowed.
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("aws-emulator-proxy")
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                let (keys, proxy) = runtime.block_on(async {
                    let admin = admin_client(&ministack.url()).await;
                    let mut keys = Vec::new();
                    for spec in kmssh_core::KeySpec::ALL {
                        let kms_spec = key_spec(spec).expect("KMS offers every KeySpec::ALL");
                        keys.push((
                            spec,
                            create_key(&admin, kms_spec, KeyUsageType::SignVerify).await,
                        ));
                    }
                    let (proxy, _gate) = gated_proxy(ministack, EMULATOR_REGION).await;
                    (keys, proxy)
                });
                Emulator {
                    ministack,
                    keys,
                    proxy,
                    _runtime: runtime,
                }
            })
            .join()
            .expect("start the AWS emulator")
        })
    }

    /// The proxy (gated for [`EMULATOR_REGION`], enforcing [`kms_validation`]) in front of
    /// the shared ministack that the shared cases' keys go through.
    ///
    /// # Panics
    /// If the emulator cannot start.
    #[must_use]
    pub fn shared_proxy() -> &'static FaultProxy {
        &Self::emulator().proxy
    }

    /// The id of the shared ministack's `SIGN_VERIFY` key of `spec`, one per spec, made
    /// when the emulator starts. The shared cases and the fault cases (each through a
    /// proxy of its own, which counts its calls) sign with these rather than with keys
    /// made for each case: ministack generates keys on its one event loop, so making an
    /// RSA-4096 key (up to a second) would stall every call in flight, and a fault case's
    /// 500 ms call timeout would turn that into a retry.
    ///
    /// # Panics
    /// If the emulator cannot start.
    #[must_use]
    pub fn emulator_key_id(spec: kmssh_core::KeySpec) -> Option<&'static str> {
        Self::emulator()
            .keys
            .iter()
            .find(|(s, _)| *s == spec)
            .map(|(_, id)| id.as_str())
    }

    /// The shared ministack (started on first use, with its keys), unless the fixture runs
    /// against real AWS (then it says `skipped:` and gives `None`).
    #[must_use]
    pub fn ministack(&self) -> Option<&'static Ministack> {
        if crate::fixture::requires(self, crate::fixture::Capability::Emulated) {
            Some(Self::emulator().ministack)
        } else {
            None
        }
    }
}

/// What [`AwsFixture::emulator`] makes once.
struct Emulator {
    ministack: &'static Ministack,
    keys: Vec<(kmssh_core::KeySpec, String)>,
    proxy: FaultProxy,
    _runtime: tokio::runtime::Runtime,
}

#[async_trait]
impl Fixture for AwsFixture {
    fn name(&self) -> &'static str {
        NAME
    }

    fn key_specs(&self) -> &'static [kmssh_core::KeySpec] {
        &kmssh_core::KeySpec::ALL
    }

    fn capabilities(&self) -> Capabilities {
        cloud_capabilities(NAME)
    }

    /// The shared proxy in front of ministack, the region and test credentials; no
    /// instance metadata lookups.
    fn child_environment(&self) -> Option<Vec<(String, String)>> {
        if real_keys(NAME).is_some() {
            return Some(Vec::new());
        }
        Some(
            [
                ("AWS_ENDPOINT_URL", Self::shared_proxy().url()),
                ("AWS_REGION", EMULATOR_REGION.to_owned()),
                ("AWS_ACCESS_KEY_ID", "test".to_owned()),
                ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
                ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        )
    }

    /// The emulator's key of that spec ([`AwsFixture::emulator_key_id`]), opened afresh
    /// through [`AwsFixture::shared_proxy`]; against real AWS, the first listed key of that
    /// spec.
    async fn key(&self, spec: kmssh_core::KeySpec) -> Option<Arc<dyn KmsKey>> {
        if let Some(ids) = real_keys(NAME) {
            let spec = key_spec(spec)?;
            let options = AwsKmsOptions::default();
            let client = options
                .client()
                .await
                .expect("AWS client from the environment");
            for id in ids {
                let described = client
                    .describe_key()
                    .key_id(&id)
                    .send()
                    .await
                    .expect("DescribeKey");
                if described.key_metadata().and_then(|m| m.key_spec()) == Some(&spec) {
                    return Some(open(&id, &options).await.expect("open real key"));
                }
            }
            return None;
        }
        let id = Self::emulator_key_id(spec)?;
        Some(
            open(id, &emulator_options(&Self::shared_proxy().url()))
                .await
                .expect("open emulator key"),
        )
    }

    /// The emulator's key of that spec, opened afresh behind a proxy of its own (whose
    /// fault queue and counters are the key's alone).
    async fn faulty_key(&self, spec: kmssh_core::KeySpec) -> Option<FaultyKey> {
        if !self.capabilities().faults {
            return None;
        }
        let id = Self::emulator_key_id(spec)?;
        // Every fault case also checks that requests are signed for the emulator's region.
        let (proxy, _gate) = gated_proxy(Self::emulator().ministack, EMULATOR_REGION).await;
        let mut aws = emulator_options(&proxy.url());
        aws.call_timeout = Some(FAULT_CALL_TIMEOUT);
        aws.retry = Some(fault_retry_policy());
        let uri = format!("aws-kms:{id}");
        let options = Options::new().with(aws);
        let key = kmssh_core::open_with(&uri, &options)
            .await
            .expect("open emulator key through the proxy");
        let mut child_environment = self.child_environment().unwrap_or_default();
        for (name, value) in &mut child_environment {
            if name == "AWS_ENDPOINT_URL" {
                *value = proxy.url();
            }
        }
        Some(FaultyKey {
            key,
            faults: proxy.faults().clone(),
            uri,
            options,
            guard: Some(Box::new(proxy)),
            child_environment,
        })
    }
}

/// Loopback stand-ins for the AWS endpoints the SDK's default credential chain calls, so
/// each source can be tested here: STS `AssumeRoleWithWebIdentity` (reached through
/// `AWS_ENDPOINT_URL_STS`), the SSO portal's `GetRoleCredentials` (`AWS_ENDPOINT_URL_SSO`),
/// IMDSv2 (`AWS_EC2_METADATA_SERVICE_ENDPOINT`), the ECS container endpoint
/// (`AWS_CONTAINER_CREDENTIALS_FULL_URI`), and a silent server that accepts and never
/// answers (an IMDS address that swallows packets). Each records what it was sent and
/// stops when its handle drops.
pub mod stand_in {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::{Arc, Mutex, PoisonError};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    use crate::http::{IO_TIMEOUT, Message, header, read_message, reason};

    /// Credentials a stand-in hands out.
    #[derive(Clone, Debug)]
    pub struct Issued {
        /// The access key id (what the KMS proxy sees in the signature).
        pub access_key_id: String,
        /// The secret.
        pub secret_access_key: String,
        /// The session token.
        pub session_token: String,
    }

    impl Issued {
        /// Credentials whose access key id is `access_key_id`.
        #[must_use]
        pub fn new(access_key_id: &str) -> Self {
            Self {
                access_key_id: access_key_id.to_owned(),
                secret_access_key: format!("secret-of-{access_key_id}"),
                session_token: format!("session-of-{access_key_id}"),
            }
        }
    }

    /// When the credentials stand-ins hand out expire (RFC 3339): far ahead.
    pub const EXPIRATION: &str = "2099-01-01T00:00:00Z";
    /// [`EXPIRATION`] in milliseconds since the epoch (the SSO portal's form).
    pub const EXPIRATION_MILLIS: i64 = 4_070_908_800_000;

    /// An answer: status, content type, extra headers, body; `None` never answers.
    pub type Reply = Option<(u16, &'static str, Vec<(&'static str, String)>, String)>;

    type Respond = Arc<dyn Fn(&Message) -> Reply + Send + Sync>;

    /// A running stand-in.
    pub struct StandIn {
        address: SocketAddr,
        seen: Arc<Mutex<Vec<Message>>>,
        accept: JoinHandle<()>,
        connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    }

    impl Drop for StandIn {
        fn drop(&mut self) {
            self.accept.abort();
            for connection in self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain(..)
            {
                connection.abort();
            }
        }
    }

    /// The most connections a stand-in serves (a bound for a misbehaving client).
    const MAX_CONNECTIONS: usize = 1_000;

    impl StandIn {
        /// Serves 127.0.0.1 (a free port) with `respond` until dropped.
        ///
        /// # Panics
        /// If no loopback port can be bound.
        pub async fn start(respond: impl Fn(&Message) -> Reply + Send + Sync + 'static) -> Self {
            let respond: Respond = Arc::new(respond);
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("bind loopback");
            let address = listener.local_addr().expect("address");
            let seen = Arc::new(Mutex::new(Vec::new()));
            let connections = Arc::new(Mutex::new(Vec::new()));
            let accept = {
                let seen = Arc::clone(&seen);
                let connections = Arc::clone(&connections);
                tokio::spawn(async move {
                    for _ in 0..MAX_CONNECTIONS {
                        let Ok((stream, _)) = listener.accept().await else {
                            return;
                        };
                        let task =
                            tokio::spawn(serve(stream, Arc::clone(&respond), Arc::clone(&seen)));
                        connections
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(task);
                    }
                })
            };
            Self {
                address,
                seen,
                accept,
                connections,
            }
        }

        /// `http://127.0.0.1:PORT`.
        #[must_use]
        pub fn url(&self) -> String {
            format!("http://{}", self.address)
        }

        /// The requests received so far (start line and headers, body).
        #[must_use]
        pub fn requests(&self) -> Vec<(String, Vec<u8>)> {
            self.seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|m| (m.head.clone(), m.body.clone()))
                .collect()
        }

        /// STS answering `AssumeRoleWithWebIdentity` for `token` with `issued`, and
        /// anything else with `InvalidIdentityToken` (400).
        pub async fn sts(token: &str, issued: Issued) -> Self {
            let token = token.to_owned();
            Self::start(move |request| {
                let form = form(&request.body);
                let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
                if field("Action") != Some("AssumeRoleWithWebIdentity") {
                    return Some(sts_error(400, "InvalidAction", "unknown action"));
                }
                if field("WebIdentityToken") != Some(token.as_str()) || field("RoleArn").is_none() {
                    return Some(sts_error(400, "InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider"));
                }
                Some((200, "text/xml", Vec::new(), format!(
                    "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                     <AssumeRoleWithWebIdentityResult>\
                     <Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
                     <SessionToken>{}</SessionToken><Expiration>{EXPIRATION}</Expiration></Credentials>\
                     <AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/ssh-ca/kmssh</Arn>\
                     <AssumedRoleId>AROAEXAMPLE:kmssh</AssumedRoleId></AssumedRoleUser>\
                     <SubjectFromWebIdentityToken>system:serviceaccount:ca:kmssh</SubjectFromWebIdentityToken>\
                     </AssumeRoleWithWebIdentityResult>\
                     <ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata>\
                     </AssumeRoleWithWebIdentityResponse>",
                    issued.access_key_id, issued.secret_access_key, issued.session_token
                )))
            })
            .await
        }

        /// STS refusing every request: `AccessDenied` (403), as for a role whose trust
        /// policy does not admit the token's subject.
        pub async fn sts_refusing() -> Self {
            Self::start(|_| {
                Some(sts_error(
                    403,
                    "AccessDenied",
                    "Not authorized to perform sts:AssumeRoleWithWebIdentity",
                ))
            })
            .await
        }

        /// The SSO portal answering `GetRoleCredentials` (`GET /federation/credentials`)
        /// with `issued` when the bearer token is `access_token`, else
        /// `UnauthorizedException` (401).
        pub async fn sso_portal(access_token: &str, issued: Issued) -> Self {
            let access_token = access_token.to_owned();
            Self::start(move |request| {
                let path = request.head.split_whitespace().nth(1).unwrap_or_default();
                if !path.starts_with("/federation/credentials?")
                    || !path.contains("account_id=")
                    || !path.contains("role_name=")
                {
                    return Some((404, "application/json", Vec::new(), "{}".to_owned()));
                }
                if header(&request.head, "x-amz-sso_bearer_token") != Some(access_token.as_str()) {
                    return Some((
                        401,
                        "application/json",
                        vec![("x-amzn-errortype", "UnauthorizedException".to_owned())],
                        r#"{"message":"Session token not found or invalid"}"#.to_owned(),
                    ));
                }
                Some((
                    200,
                    "application/json",
                    Vec::new(),
                    serde_json::json!({
                        "roleCredentials": {
                            "accessKeyId": issued.access_key_id,
                            "secretAccessKey": issued.secret_access_key,
                            "sessionToken": issued.session_token,
                            "expiration": EXPIRATION_MILLIS,
                        }
                    })
                    .to_string(),
                ))
            })
            .await
        }

        /// IMDSv2 with an instance role: `PUT /latest/api/token`, then the role's name and
        /// its credentials under `/latest/meta-data/iam/security-credentials/`, each GET
        /// requiring the session token.
        pub async fn imds(issued: Issued) -> Self {
            const TOKEN: &str = "kmssh-imds-session-token";
            const ROLE: &str = "kmssh-instance-role";
            Self::start(move |request| {
                let mut line = request.head.split_whitespace();
                let (method, path) = (
                    line.next().unwrap_or_default(),
                    line.next().unwrap_or_default(),
                );
                let text =
                    |status: u16, body: String| Some((status, "text/plain", Vec::new(), body));
                match (method, path) {
                    ("PUT", "/latest/api/token") => Some((
                        200,
                        "text/plain",
                        vec![("x-aws-ec2-metadata-token-ttl-seconds", "21600".to_owned())],
                        TOKEN.to_owned(),
                    )),
                    ("GET", _)
                        if header(&request.head, "x-aws-ec2-metadata-token") != Some(TOKEN) =>
                    {
                        text(401, String::new())
                    }
                    ("GET", "/latest/meta-data/iam/security-credentials/") => {
                        text(200, ROLE.to_owned())
                    }
                    ("GET", p)
                        if p == format!("/latest/meta-data/iam/security-credentials/{ROLE}") =>
                    {
                        text(
                            200,
                            serde_json::json!({
                                "Code": "Success",
                                "LastUpdated": "2026-01-01T00:00:00Z",
                                "Type": "AWS-HMAC",
                                "AccessKeyId": issued.access_key_id,
                                "SecretAccessKey": issued.secret_access_key,
                                "Token": issued.session_token,
                                "Expiration": EXPIRATION,
                            })
                            .to_string(),
                        )
                    }
                    _ => text(404, String::new()),
                }
            })
            .await
        }

        /// The ECS container credentials endpoint: any GET answers `issued`.
        pub async fn ecs(issued: Issued) -> Self {
            Self::start(move |_| {
                Some((
                    200,
                    "application/json",
                    Vec::new(),
                    serde_json::json!({
                        "AccessKeyId": issued.access_key_id,
                        "SecretAccessKey": issued.secret_access_key,
                        "Token": issued.session_token,
                        "Expiration": EXPIRATION,
                        "RoleArn": "arn:aws:iam::111122223333:role/kmssh-task",
                    })
                    .to_string(),
                ))
            })
            .await
        }

        /// Accepts connections, reads requests and never answers (until the client gives
        /// up, or 30 s): a metadata address that swallows packets.
        pub async fn silent() -> Self {
            Self::start(|_| None).await
        }
    }

    /// `application/x-www-form-urlencoded` pairs, decoded.
    fn form(body: &[u8]) -> Vec<(String, String)> {
        let decode = |s: &str| {
            let bytes = s.replace('+', " ").into_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match (bytes[i], hex) {
                    (b'%', Some(byte)) => {
                        out.push(byte);
                        i += 3;
                    }
                    (byte, _) => {
                        out.push(byte);
                        i += 1;
                    }
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        };
        String::from_utf8_lossy(body)
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (decode(k), decode(v)))
            .collect()
    }

    /// An STS (awsQuery) error answer.
    fn sts_error(
        status: u16,
        code: &str,
        message: &str,
    ) -> (u16, &'static str, Vec<(&'static str, String)>, String) {
        (
            status,
            "text/xml",
            Vec::new(),
            format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
            ),
        )
    }

    async fn serve(mut stream: TcpStream, respond: Respond, seen: Arc<Mutex<Vec<Message>>>) {
        let mut buffer = Vec::new();
        while let Ok(Some(request)) = read_message(&mut stream, &mut buffer, false).await {
            let reply = respond(&request);
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Message {
                    head: request.head.clone(),
                    body: request.body.clone(),
                });
            let Some((status, content_type, headers, body)) = reply else {
                // Silent: hold the connection until the client closes it (or the bound).
                let mut sink = [0u8; 1024];
                let _ = tokio::time::timeout(IO_TIMEOUT, async {
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                })
                .await;
                return;
            };
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\n",
                reason(status)
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            if stream.write_all(head.as_bytes()).await.is_err()
                || stream.write_all(body.as_bytes()).await.is_err()
            {
                return;
            }
        }
    }
}
