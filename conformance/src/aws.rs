//! The AWS fixture: keys in ministack (or, with `KMSSH_AWS_KEY_IDS` set, in real AWS KMS),
//! created through the AWS SDK, opened through kmssh's backend; faults injected by a
//! [`FaultProxy`] between the backend and ministack, in AWS's wire shape ([`AwsDialect`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use base64ct::{Base64, Encoding};
use kmssh_backend_aws::{AwsKmsKey, AwsKmsOptions};
use kmssh_core::{Algorithm, KeyUri, KmsKey, Options};
use serde_json::{Value, json};

use crate::fault_proxy::FaultProxy;
use crate::faults::{Dialect, ErrorAnswer, FAULT_CALL_TIMEOUT, Operation, fault_retry_policy};
use crate::fixture::{Capabilities, FaultyKey, Fixture, cloud_capabilities, real_keys};
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
    }
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
    let created = client
        .create_key()
        .key_spec(spec.clone())
        .key_usage(usage)
        .description("kmssh conformance")
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateKey {spec:?}: {e:?}"));
    created
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned()
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

/// The key spec of a curve.
#[must_use]
pub fn key_spec(algorithm: Algorithm) -> KeySpec {
    match algorithm {
        Algorithm::EcdsaP256Sha256 => KeySpec::EccNistP256,
        Algorithm::EcdsaP384Sha384 => KeySpec::EccNistP384,
        Algorithm::EcdsaP521Sha512 => KeySpec::EccNistP521,
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
/// signatures as base64 DER in `Signature`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsDialect;

fn aws_error(status: u16, kind: &str, message: &str) -> ErrorAnswer {
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

    /// The shared ministack (started on first use), unless the fixture runs against real
    /// AWS (then it says `skipped:` and gives `None`).
    #[must_use]
    pub fn ministack(&self) -> Option<&'static Ministack> {
        if crate::fixture::requires(self, crate::fixture::Capability::Emulated) {
            Some(Ministack::shared())
        } else {
            None
        }
    }
}

#[async_trait]
impl Fixture for AwsFixture {
    fn name(&self) -> &'static str {
        NAME
    }

    fn algorithms(&self) -> &'static [Algorithm] {
        &Algorithm::ALL
    }

    fn capabilities(&self) -> Capabilities {
        cloud_capabilities(NAME)
    }

    /// A fresh key in the shared emulator or, against real AWS, the first listed key of
    /// that spec.
    async fn key(&self, algorithm: Algorithm) -> Option<Arc<dyn KmsKey>> {
        let spec = key_spec(algorithm);
        if let Some(ids) = real_keys(NAME) {
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
        let ministack = Ministack::shared();
        let client = admin_client(&ministack.url()).await;
        let id = create_key(&client, spec, KeyUsageType::SignVerify).await;
        Some(
            open(&id, &emulator_options(&ministack.url()))
                .await
                .expect("open emulator key"),
        )
    }

    /// A fresh emulator key behind a proxy of its own.
    async fn faulty_key(&self, algorithm: Algorithm) -> Option<FaultyKey> {
        if !self.capabilities().faults {
            return None;
        }
        let ministack = Ministack::shared();
        let id = create_key(
            &admin_client(&ministack.url()).await,
            key_spec(algorithm),
            KeyUsageType::SignVerify,
        )
        .await;
        let proxy = FaultProxy::start(ministack.address(), Arc::new(AwsDialect), operation).await;
        let mut aws = emulator_options(&proxy.url());
        aws.call_timeout = Some(FAULT_CALL_TIMEOUT);
        aws.retry = Some(fault_retry_policy());
        let uri = format!("aws-kms:{id}");
        let options = Options::new().with(aws);
        let key = kmssh_core::open_with(&uri, &options)
            .await
            .expect("open emulator key through the proxy");
        Some(FaultyKey {
            key,
            faults: proxy.faults().clone(),
            uri,
            options,
            guard: Some(Box::new(proxy)),
        })
    }
}
