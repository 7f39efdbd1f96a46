//! The GCP fixture: key versions in the in-process Cloud KMS emulator or, with
//! `KMSSH_GCP_KEY_VERSIONS` set, in real Cloud KMS (with Application Default Credentials).
//! Cloud KMS signs on P-256 and P-384 only.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kmssh_backend_gcp::{GcpKmsKey, GcpKmsOptions};
use kmssh_core::{Algorithm, KeyUri, KmsKey, Options};

use crate::faults::{FAULT_CALL_TIMEOUT, fault_retry_policy};
use crate::fixture::{Capabilities, FaultyKey, Fixture, cloud_capabilities, real_keys};
use crate::gcp_emulator::GcpKmsEmulator;

/// The backend's name in `KNOWN_BACKENDS`.
pub const NAME: &str = "gcp";

/// The curves Cloud KMS signs with.
pub const ALGORITHMS: [Algorithm; 2] = [Algorithm::EcdsaP256Sha256, Algorithm::EcdsaP384Sha384];

/// Options that reach the emulator anonymously, with short timeouts.
#[must_use]
pub fn emulator_options(endpoint: &str) -> GcpKmsOptions {
    GcpKmsOptions {
        endpoint: Some(endpoint.to_owned()),
        anonymous: true,
        call_timeout: Some(Duration::from_secs(5)),
        retry: Some(crate::emulator_retry_policy()),
    }
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

    fn algorithms(&self) -> &'static [Algorithm] {
        &ALGORITHMS
    }

    fn capabilities(&self) -> Capabilities {
        cloud_capabilities(NAME)
    }

    /// A new version in the shared emulator, or the first real one of that algorithm.
    async fn key(&self, algorithm: Algorithm) -> Option<Arc<dyn KmsKey>> {
        if let Some(names) = real_keys(NAME) {
            for name in names {
                let key = open(&name, &GcpKmsOptions::default())
                    .await
                    .expect("open real key version");
                if key.algorithm() == algorithm {
                    return Some(key);
                }
            }
            return None;
        }
        let emulator = GcpKmsEmulator::shared();
        let name = emulator.create_key_version(algorithm);
        Some(
            open(&name, &emulator_options(&emulator.url()))
                .await
                .expect("open emulator key version"),
        )
    }

    /// A new emulator version; its fault handle is the emulator's for that version.
    async fn faulty_key(&self, algorithm: Algorithm) -> Option<FaultyKey> {
        if !self.capabilities().faults {
            return None;
        }
        let emulator = GcpKmsEmulator::shared();
        let name = emulator.create_key_version(algorithm);
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
        })
    }
}
