//! The GCP side of the suite: key versions in the in-process emulator or, with
//! `KMSSH_GCP_KEY_VERSIONS` set, in real Cloud KMS (with Application Default Credentials).

use std::sync::Arc;
use std::time::Duration;

use kmssh_backend_gcp::{GcpKmsKey, GcpKmsOptions};
use kmssh_core::{Algorithm, KeyUri, KmsKey};

use crate::gcp_emulator::GcpKmsEmulator;

/// Comma-separated key version names in real Cloud KMS to test instead of the emulator.
pub const REAL_KEYS_ENV: &str = "KMSSH_GCP_KEY_VERSIONS";

/// The real key versions to test, if the environment names any.
#[must_use]
pub fn real_key_versions() -> Option<Vec<String>> {
    crate::env_list(REAL_KEYS_ENV)
}

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

/// A key version for one conformance test: new in the shared emulator, or the first real
/// one of that algorithm (`None` if none is listed).
pub async fn suite_key(algorithm: Algorithm) -> Option<Arc<dyn KmsKey>> {
    if let Some(names) = real_key_versions() {
        for name in names {
            let key = open(&name, &GcpKmsOptions::default())
                .await
                .expect("open real key version");
            if key.algorithm() == algorithm {
                return Some(key);
            }
        }
        eprintln!("skipped: {REAL_KEYS_ENV} lists no {algorithm} key version");
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
