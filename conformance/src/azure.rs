//! The Azure fixture: keys in the in-process Key Vault emulator (HTTPS, test CA) or, with
//! `KMSSH_AZURE_KEYS` set, in a real vault (with the default credential chain).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kmssh_backend_azure::{
    AccessTokenCredential, AzureKeyVaultKey, AzureKeyVaultOptions, CredentialChain,
};
use kmssh_core::{Curve, KeySpec, KeyUri, KmsKey, Options};

use crate::azure_emulator::{AzureKeyVaultEmulator, KeyKind, KeySetup, TEST_TOKEN};
use crate::faults::{FAULT_CALL_TIMEOUT, fault_retry_policy};
use crate::fixture::{Capabilities, FaultyKey, Fixture, cloud_capabilities, real_keys};

/// The backend's name in `KNOWN_BACKENDS`.
pub const NAME: &str = "azure";

/// The kinds of key Key Vault offers that kmssh signs with: EC on the three curves and
/// RSA of its three sizes. Key Vault has no Ed25519 keys.
pub const KEY_SPECS: [KeySpec; 6] = [
    KeySpec::Ecdsa(Curve::P256),
    KeySpec::Ecdsa(Curve::P384),
    KeySpec::Ecdsa(Curve::P521),
    KeySpec::Rsa(2048),
    KeySpec::Rsa(3072),
    KeySpec::Rsa(4096),
];

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

/// Options that reach the emulator as [`emulator_options`] does, but authenticate with
/// the credential chain set up from `env` alone (variable, value), not the process's
/// environment: the chain's Entra ID requests trust the emulator's CA.
///
/// # Panics
/// If the chain cannot be set up from `env`.
#[must_use]
pub fn chain_options(
    emulator: &AzureKeyVaultEmulator,
    env: &[(&str, String)],
) -> AzureKeyVaultOptions {
    let mut options = emulator_options(emulator);
    options.credential = None;
    let chain = CredentialChain::with_lookup(&options, &|name| {
        env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    })
    .expect("credential chain");
    options.credential = Some(Arc::new(chain));
    options
}

/// `http://127.0.0.1:PORT` for a loopback port nothing listens on (bound, then closed):
/// an IMDS that is not there.
///
/// # Panics
/// If no loopback port can be bound.
#[must_use]
pub fn closed_loopback_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
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

/// The Azure fixture: the shared in-process emulator, or the keys listed in
/// `KMSSH_AZURE_KEYS`.
#[derive(Debug)]
pub struct AzureFixture;

impl AzureFixture {
    /// The one instance.
    #[must_use]
    pub fn shared() -> &'static Self {
        static FIXTURE: AzureFixture = AzureFixture;
        &FIXTURE
    }

    /// The shared emulator, unless the fixture runs against a real vault (then it says
    /// `skipped:` and gives `None`).
    #[must_use]
    pub fn emulator(&self) -> Option<&'static AzureKeyVaultEmulator> {
        if crate::fixture::requires(self, crate::fixture::Capability::Emulated) {
            Some(AzureKeyVaultEmulator::shared())
        } else {
            None
        }
    }
}

#[async_trait]
impl Fixture for AzureFixture {
    fn name(&self) -> &'static str {
        NAME
    }

    fn key_specs(&self) -> &'static [KeySpec] {
        &KEY_SPECS
    }

    fn capabilities(&self) -> Capabilities {
        cloud_capabilities(NAME)
    }

    /// The emulator's endpoint, its CA (in a file written once per process), the test
    /// token; the challenge's resource is not the emulator's host.
    fn child_environment(&self) -> Option<Vec<(String, String)>> {
        static CA_FILE: std::sync::OnceLock<tempfile::NamedTempFile> = std::sync::OnceLock::new();
        if real_keys(NAME).is_some() {
            return Some(Vec::new());
        }
        let emulator = AzureKeyVaultEmulator::shared();
        let ca_file = CA_FILE.get_or_init(|| {
            let mut file = tempfile::NamedTempFile::new().expect("CA file");
            std::io::Write::write_all(&mut file, emulator.ca_pem().as_bytes()).expect("write CA");
            file
        });
        Some(vec![
            (kmssh_backend_azure::ENDPOINT_ENV.to_owned(), emulator.url()),
            (
                kmssh_backend_azure::CA_FILE_ENV.to_owned(),
                ca_file.path().display().to_string(),
            ),
            (
                kmssh_backend_azure::ACCESS_TOKEN_ENV.to_owned(),
                TEST_TOKEN.to_owned(),
            ),
            (
                kmssh_backend_azure::VERIFY_CHALLENGE_RESOURCE_ENV.to_owned(),
                "false".to_owned(),
            ),
        ])
    }

    /// A new key in the shared emulator, or the first real key of that kind.
    async fn key(&self, spec: KeySpec) -> Option<Arc<dyn KmsKey>> {
        if let Some(urls) = real_keys(NAME) {
            for url in urls {
                let key = open(&format!("azure-kv:{url}"), &AzureKeyVaultOptions::default())
                    .await
                    .expect("open real key");
                if key.public_key().spec() == spec {
                    return Some(key);
                }
            }
            return None;
        }
        let emulator = AzureKeyVaultEmulator::shared();
        let name = emulator.create_key(KeySetup::signing(KeyKind::for_spec(spec)?));
        Some(
            open(&emulator_uri(&name, None), &emulator_options(emulator))
                .await
                .expect("open emulator key"),
        )
    }

    /// A new emulator key; its fault handle is the emulator's for that key.
    async fn faulty_key(&self, spec: KeySpec) -> Option<FaultyKey> {
        if !self.capabilities().faults {
            return None;
        }
        let emulator = AzureKeyVaultEmulator::shared();
        let name = emulator.create_key(KeySetup::signing(KeyKind::for_spec(spec)?));
        let mut azure = emulator_options(emulator);
        azure.call_timeout = Some(FAULT_CALL_TIMEOUT);
        azure.retry = Some(fault_retry_policy());
        let uri = emulator_uri(&name, None);
        let options = Options::new().with(azure);
        let key = kmssh_core::open_with(&uri, &options)
            .await
            .expect("open emulator key");
        Some(FaultyKey {
            key,
            faults: emulator.faults(&name).expect("the key just made"),
            uri,
            options,
            guard: None,
            child_environment: self.child_environment().unwrap_or_default(),
        })
    }
}
