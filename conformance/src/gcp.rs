//! The GCP fixture: key versions in the in-process Cloud KMS emulator or, with
//! `KMSSH_GCP_KEY_VERSIONS` set, in real Cloud KMS (with Application Default Credentials).
//! Cloud KMS offers ECDSA P-256 and P-384 (no P-521), RSA-2048/3072/4096 and Ed25519.
//! Against the emulator each RSA size runs one request shape
//! ([`VersionAlgorithm::for_spec`]): RSA-2048 a SHA-256-only version (`digest`), RSA-3072
//! a raw PKCS#1 version (a `DigestInfo` in `data`, every hash), RSA-4096 a SHA-512-only
//! version (`digest`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kmssh_backend_gcp::google_cloud_auth::credentials::Credentials;
use kmssh_backend_gcp::{GcpKmsKey, GcpKmsOptions};
use kmssh_core::{Curve, KeySpec, KeyUri, KmsKey, Options};
use serde_json::{Value, json};

use crate::faults::{FAULT_CALL_TIMEOUT, fault_retry_policy};
use crate::fixture::{Capabilities, FaultyKey, Fixture, cloud_capabilities, real_keys};
use crate::gcp_emulator::{GcpKmsEmulator, VersionAlgorithm};

/// The backend's name in `KNOWN_BACKENDS`.
pub const NAME: &str = "gcp";

/// The kinds of key Cloud KMS signs with.
pub const KEY_SPECS: [KeySpec; 6] = [
    KeySpec::Ecdsa(Curve::P256),
    KeySpec::Ecdsa(Curve::P384),
    KeySpec::Rsa(2048),
    KeySpec::Rsa(3072),
    KeySpec::Rsa(4096),
    KeySpec::Ed25519,
];

/// Options that reach the emulator anonymously, with short timeouts.
#[must_use]
pub fn emulator_options(endpoint: &str) -> GcpKmsOptions {
    GcpKmsOptions {
        endpoint: Some(endpoint.to_owned()),
        anonymous: true,
        call_timeout: Some(Duration::from_secs(5)),
        retry: Some(crate::emulator_retry_policy()),
        ..GcpKmsOptions::default()
    }
}

/// Options that reach the emulator with `credentials` (built by any `google-cloud-auth`
/// builder), with short timeouts.
#[must_use]
pub fn emulator_options_with(endpoint: &str, credentials: Credentials) -> GcpKmsOptions {
    GcpKmsOptions {
        anonymous: false,
        credentials: Some(credentials),
        ..emulator_options(endpoint)
    }
}

/// An `authorized_user` credentials file (what `gcloud auth application-default login`
/// writes) whose token endpoint is `token_uri`.
#[must_use]
pub fn authorized_user_json(token_uri: &str, refresh_token: &str) -> Value {
    json!({
        "type": "authorized_user",
        "client_id": "kmssh-test.apps.googleusercontent.com",
        "client_secret": "kmssh-test-secret",
        "refresh_token": refresh_token,
        "token_uri": token_uri,
    })
}

/// The audience of the workload identity pool provider in [`external_account_json`].
pub const WIF_AUDIENCE: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/kmssh/providers/ci";

/// An `external_account` credentials file (workload identity federation, what `gcloud iam
/// workload-identity-pools create-cred-config` writes) reading its OIDC subject token
/// from `subject_token_file` and exchanging it at `sts_url`.
#[must_use]
pub fn external_account_json(sts_url: &str, subject_token_file: &str) -> Value {
    json!({
        "type": "external_account",
        "audience": WIF_AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": sts_url,
        "credential_source": {"file": subject_token_file},
    })
}

/// A service account key file for `client_email`, with an RSA private key in PKCS#8 PEM
/// (as `openssl genpkey -algorithm RSA` writes it).
#[must_use]
pub fn service_account_json(
    client_email: &str,
    private_key_id: &str,
    private_key_pem: &str,
) -> Value {
    json!({
        "type": "service_account",
        "project_id": "kmssh-test",
        "private_key_id": private_key_id,
        "private_key": private_key_pem,
        "client_email": client_email,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "universe_domain": "googleapis.com",
    })
}

/// Opens `gcp-kms:<name>`.
///
/// # Errors
/// As [`GcpKmsKey::open`].
pub async fn open(name: &str, options: &GcpKmsOptions) -> kmssh_core::Result<Arc<dyn KmsKey>> {
    let uri = KeyUri::parse(&format!("gcp-kms:{name}"))?;
    let key: Arc<dyn KmsKey> = Arc::new(GcpKmsKey::open(&uri, options).await?);
    Ok(key)
}

/// The GCP fixture: the shared in-process emulator, or the versions listed in
/// `KMSSH_GCP_KEY_VERSIONS`.
#[derive(Debug)]
pub struct GcpFixture;

impl GcpFixture {
    /// The one instance.
    #[must_use]
    pub fn shared() -> &'static Self {
        static FIXTURE: GcpFixture = GcpFixture;
        &FIXTURE
    }

    /// The version algorithm the emulator makes for keys of kind `spec`
    /// ([`VersionAlgorithm::for_spec`]); `None`, saying so, for a kind Cloud KMS lacks.
    fn version_algorithm(spec: KeySpec) -> Option<VersionAlgorithm> {
        let algorithm = VersionAlgorithm::for_spec(spec);
        if algorithm.is_none() {
            eprintln!("skipped: Cloud KMS has no {spec} signing keys");
        }
        algorithm
    }

    /// The shared emulator, unless the fixture runs against real Cloud KMS (then it says
    /// `skipped:` and gives `None`).
    #[must_use]
    pub fn emulator(&self) -> Option<&'static GcpKmsEmulator> {
        if crate::fixture::requires(self, crate::fixture::Capability::Emulated) {
            Some(GcpKmsEmulator::shared())
        } else {
            None
        }
    }
}

#[async_trait]
impl Fixture for GcpFixture {
    fn name(&self) -> &'static str {
        NAME
    }

    fn key_specs(&self) -> &'static [KeySpec] {
        &KEY_SPECS
    }

    fn capabilities(&self) -> Capabilities {
        cloud_capabilities(NAME)
    }

    /// The emulator's endpoint, without credentials.
    fn child_environment(&self) -> Option<Vec<(String, String)>> {
        if real_keys(NAME).is_some() {
            return Some(Vec::new());
        }
        Some(vec![
            (
                kmssh_backend_gcp::ENDPOINT_ENV.to_owned(),
                GcpKmsEmulator::shared().url(),
            ),
            (
                kmssh_backend_gcp::ANONYMOUS_ENV.to_owned(),
                "true".to_owned(),
            ),
        ])
    }

    /// A new version in the shared emulator, or the first real one holding that kind of
    /// key.
    async fn key(&self, spec: KeySpec) -> Option<Arc<dyn KmsKey>> {
        if let Some(names) = real_keys(NAME) {
            for name in names {
                let key = open(&name, &GcpKmsOptions::default())
                    .await
                    .expect("open real key version");
                if key.public_key().spec() == spec {
                    return Some(key);
                }
            }
            return None;
        }
        let emulator = GcpKmsEmulator::shared();
        let name = emulator.create_version(Self::version_algorithm(spec)?);
        Some(
            open(&name, &emulator_options(&emulator.url()))
                .await
                .expect("open emulator key version"),
        )
    }

    /// A new emulator version; its fault handle is the emulator's for that version.
    async fn faulty_key(&self, spec: KeySpec) -> Option<FaultyKey> {
        if !self.capabilities().faults {
            return None;
        }
        let emulator = GcpKmsEmulator::shared();
        let name = emulator.create_version(Self::version_algorithm(spec)?);
        let mut gcp = emulator_options(&emulator.url());
        gcp.call_timeout = Some(FAULT_CALL_TIMEOUT);
        gcp.retry = Some(fault_retry_policy());
        let uri = format!("gcp-kms:{name}");
        let options = Options::new().with(gcp);
        let key = kmssh_core::open_with(&uri, &options)
            .await
            .expect("open emulator key version");
        Some(FaultyKey {
            key,
            faults: emulator.faults(&name).expect("the version just made"),
            uri,
            options,
            guard: None,
            child_environment: self.child_environment().unwrap_or_default(),
        })
    }
}
