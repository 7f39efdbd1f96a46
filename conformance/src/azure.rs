//! The Azure side of the suite: keys in the in-process Key Vault emulator (HTTPS, test CA)
//! or, with `KMSSH_AZURE_KEYS` set, in a real vault (with the default credential chain).

use std::sync::Arc;
use std::time::Duration;

use kmssh_backend_azure::{AccessTokenCredential, AzureKeyVaultKey, AzureKeyVaultOptions};
use kmssh_core::{Algorithm, KeyUri, KmsKey};

use crate::azure_emulator::{AzureKeyVaultEmulator, KeyKind, KeySetup, TEST_TOKEN};

/// Comma-separated key URLs (`https://VAULT.vault.azure.net/keys/NAME[/VERSION]`) of a
/// real vault to test instead of the emulator.
pub const REAL_KEYS_ENV: &str = "KMSSH_AZURE_KEYS";

/// The real keys to test, if the environment names any.
#[must_use]
pub fn real_keys() -> Option<Vec<String>> {
    crate::env_list(REAL_KEYS_ENV)
}

/// Options that reach the emulator: its endpoint, its CA, the test credential, short
/// timeouts; the challenge's resource (vault.azure.net) is not the emulator's host.
#[must_use]
pub fn emulator_options(emulator: &AzureKeyVaultEmulator) -> AzureKeyVaultOptions {
    AzureKeyVaultOptions {
        endpoint: Some(emulator.url()),
        extra_ca_pem: Some(emulator.ca_pem().as_bytes().to_vec()),
        credential: Some(Arc::new(AccessTokenCredential::new(TEST_TOKEN))),
        verify_challenge_resource: Some(false),
        call_timeout: Some(Duration::from_secs(5)),
        retry: Some(crate::emulator_retry_policy()),
    }
}

/// The URI of an emulator key (named as a real vault would be; the endpoint option
/// sends requests to the emulator).
#[must_use]
pub fn emulator_uri(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("azure-kv:https://kmssh-test.vault.azure.net/keys/{name}/{v}"),
        None => format!("azure-kv:https://kmssh-test.vault.azure.net/keys/{name}"),
    }
}

/// Opens a key URI with the given options.
///
/// # Errors
/// As [`AzureKeyVaultKey::open`].
pub async fn open(
    uri: &str,
    options: &AzureKeyVaultOptions,
) -> kmssh_core::Result<Arc<dyn KmsKey>> {
    let uri = KeyUri::parse(uri)?;
    let key: Arc<dyn KmsKey> = Arc::new(AzureKeyVaultKey::open(&uri, options).await?);
    Ok(key)
}

/// A key for one conformance test: new in the shared emulator, or the first real key on
/// that curve (`None` if none is listed).
pub async fn suite_key(algorithm: Algorithm) -> Option<Arc<dyn KmsKey>> {
    if let Some(urls) = real_keys() {
        for url in urls {
            let key = open(&format!("azure-kv:{url}"), &AzureKeyVaultOptions::default())
                .await
                .expect("open real key");
            if key.algorithm() == algorithm {
                return Some(key);
            }
        }
        eprintln!("skipped: {REAL_KEYS_ENV} lists no {algorithm} key");
        return None;
    }
    let emulator = AzureKeyVaultEmulator::shared();
    let name = emulator.create_key(KeySetup::signing(KeyKind::Ec(algorithm)));
    Some(
        open(&emulator_uri(&name, None), &emulator_options(emulator))
            .await
            .expect("open emulator key"),
    )
}
