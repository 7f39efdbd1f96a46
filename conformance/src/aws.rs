//! The AWS side of the suite: keys in ministack (or, with `KMSSH_AWS_KEY_IDS` set, in
//! real AWS KMS), created through the AWS SDK, opened through kmssh's backend.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use kmssh_backend_aws::{AwsKmsKey, AwsKmsOptions};
use kmssh_core::{KeyUri, KmsKey};

use crate::fault_proxy::FaultProxy;
use crate::ministack::Ministack;

/// Comma-separated key ids, ARNs or aliases of real AWS KMS keys to test instead of the
/// emulator (with the standard AWS environment for region and credentials).
pub const REAL_KEYS_ENV: &str = "KMSSH_AWS_KEY_IDS";

/// The region the emulator pretends to be.
pub const EMULATOR_REGION: &str = "us-east-1";

/// The keys to test against real AWS, if the environment names any.
#[must_use]
pub fn real_key_ids() -> Option<Vec<String>> {
    crate::env_list(REAL_KEYS_ENV)
}

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

/// A fresh signing key of `spec` for one conformance test: created in the shared
/// emulator, or, against real AWS, the first listed key of that spec (`None` if none is).
pub async fn suite_key(spec: KeySpec) -> Option<Arc<dyn KmsKey>> {
    if let Some(ids) = real_key_ids() {
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
        eprintln!("skipped: {REAL_KEYS_ENV} lists no {} key", spec.as_str());
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

/// An emulator key behind its own fault proxy, for fault and counting tests.
pub struct ProxiedKey {
    /// The proxy between the backend and ministack.
    pub proxy: FaultProxy,
    /// The key's id in ministack.
    pub key_id: String,
    /// Options that go through the proxy.
    pub options: AwsKmsOptions,
}

impl ProxiedKey {
    /// Creates a key of `spec`/`usage` in the shared emulator and a proxy in front of it.
    pub async fn create(spec: KeySpec, usage: KeyUsageType) -> Self {
        let ministack = Ministack::shared();
        let key_id = create_key(&admin_client(&ministack.url()).await, spec, usage).await;
        let proxy = FaultProxy::start(ministack.address()).await;
        let options = emulator_options(&proxy.url());
        Self {
            proxy,
            key_id,
            options,
        }
    }

    /// Opens the key through the proxy.
    ///
    /// # Errors
    /// As [`AwsKmsKey::open`].
    pub async fn open(&self) -> kmssh_core::Result<Arc<dyn KmsKey>> {
        open(&self.key_id, &self.options).await
    }
}
