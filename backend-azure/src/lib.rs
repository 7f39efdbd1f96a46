//! kmssh's Azure Key Vault (and Managed HSM) backend: signs with an EC key on P-256,
//! P-384 or P-521 (`ES256`, `ES384`, `ES512`).
//!
//! # Key URIs
//!
//! ```text
//! azure-kv:https://VAULT.vault.azure.net/keys/NAME
//! azure-kv:https://VAULT.vault.azure.net/keys/NAME/VERSION
//! azure-kv:https://HSM.managedhsm.azure.net/keys/NAME/VERSION
//! ```
//!
//! HTTPS only: a plain `http://` key URL or endpoint is refused.
//!
//! # Configuration
//!
//! Built on Microsoft's maintained `azure_security_keyvault_keys` 1.x with `azure_identity`
//! (the older `azure_security_keyvault` 0.x crate is superseded). Credentials, in the order
//! [`default_credential`] tries them: a service principal from the environment
//! (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), workload identity
//! (`AZURE_FEDERATED_TOKEN_FILE`), managed identity (`IDENTITY_ENDPOINT`/`MSI_ENDPOINT`),
//! then the Azure CLI. A credential that cannot be obtained or is refused is reported as
//! a configuration or permission error, never as the service being unavailable.
//!
//! Code sets the credential, a vault endpoint override, an extra trusted CA (PEM),
//! timeouts and retries with [`AzureKeyVaultOptions`], directly
//! ([`AzureKeyVaultKey::open`]) or through the registry
//! (`kmssh_core::open_with(uri, &Options::new().with(AzureKeyVaultOptions { … }))`). A key
//! opened by URI alone takes its options from the environment
//! ([`BackendOptions::from_env`](kmssh_core::BackendOptions::from_env)):
//! [`ENDPOINT_ENV`] (`KMSSH_AZURE_ENDPOINT`), [`CA_FILE_ENV`] (`KMSSH_AZURE_CA_FILE`),
//! [`ACCESS_TOKEN_ENV`] (`KMSSH_AZURE_ACCESS_TOKEN`) and
//! [`VERIFY_CHALLENGE_RESOURCE_ENV`] (`KMSSH_AZURE_VERIFY_CHALLENGE_RESOURCE`).
//!
//! # What opening checks
//!
//! Opening costs one `get key`. The key must be an EC key (`EC` or `EC-HSM`) on P-256,
//! P-384 or P-521, allow the `sign` operation, be enabled, and be inside its validity
//! window (`nbf`, `exp`); otherwise opening fails with the reason. Without a version in
//! the URI, the current version is resolved once at open and pinned: signing and
//! verification use the same version even if the key is rotated meanwhile. The public key
//! comes from the JWK once and is cached.
//!
//! Each signature is one `sign` call on the locally computed digest; its `r||s` answer
//! must be exactly twice the field size and come from the pinned version, and is verified
//! before it is returned. Throttling (honouring `Retry-After`), 5xx answers, dropped
//! connections and timed-out attempts are retried with jittered exponential backoff
//! inside a deadline.
//!
//! Linking this crate registers the `azure-kv:` scheme (`use kmssh_backend_azure as _;`).

#![forbid(unsafe_code)]

mod error;
mod key;
mod options;

pub use key::{AzureKeyVaultKey, KeyLocation, parse_key_url};
pub use options::{
    ACCESS_TOKEN_ENV, AccessTokenCredential, AzureKeyVaultOptions, CA_FILE_ENV, ENDPOINT_ENV,
    VERIFY_CHALLENGE_RESOURCE_ENV, default_credential,
};

/// The key URI scheme this backend serves.
pub const SCHEME: &str = "azure-kv";

kmssh_core::register_backend! {
    scheme: SCHEME,
    description: "Azure Key Vault / Managed HSM: azure-kv:https://VAULT.vault.azure.net/keys/NAME[/VERSION], EC P-256/P-384/P-521",
    options: AzureKeyVaultOptions,
    open: AzureKeyVaultKey::open,
}
