//! kmssh's Azure Key Vault (and Managed HSM) backend: signs with an EC key on P-256,
//! P-384 or P-521 (`ES256`, `ES384`, `ES512`) or an RSA key of 2048 to 8192 bits (PKCS#1
//! v1.5: `RS512`, `RS256`, `RS384`). Key Vault has no Ed25519 keys.
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
//! (the older `azure_security_keyvault` 0.x crate is superseded). Credentials come from
//! [`CredentialChain`], in the order `DefaultAzureCredential` documents in Azure's other
//! SDKs: a service principal from the environment (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`
//! with `AZURE_CLIENT_SECRET` or `AZURE_CLIENT_CERTIFICATE_PATH`, PEM or PFX), workload
//! identity (`AZURE_FEDERATED_TOKEN_FILE`), managed identity (App Service / Container Apps
//! through `IDENTITY_ENDPOINT`, Cloud Shell through `MSI_ENDPOINT`, otherwise IMDS at
//! `http://169.254.169.254` or [`IMDS_AUTHORITY_ENV`], probed for at most
//! [`IMDS_PROBE_TIMEOUT`]; `AZURE_CLIENT_ID` picks a user-assigned identity), the Azure
//! CLI, then the Azure Developer CLI; [`TOKEN_CREDENTIALS_ENV`] narrows it. A credential
//! that cannot be obtained or is refused is [`ErrorKind::Unauthenticated`](kmssh_core::ErrorKind)
//! naming the sources tried, never retried as the service being unavailable.
//!
//! A token is requested for the audience of the key URI's host, as the vault's challenge
//! names it: `https://vault.azure.net` for `*.vault.azure.net`,
//! `https://managedhsm.azure.net` for `*.managedhsm.azure.net` (and the US Government and
//! China equivalents, [`key_vault_resource`]); a challenge for another audience gets no
//! token. Key Vault's 401 is unauthenticated; its 403 keeps the service's code and message
//! (a firewall block, a key disabled or expired since open, a key whose `key_ops` lack
//! `sign`, or an identity without `keys/get`/`keys/sign`). Key names compare
//! case-insensitively, as Key Vault's do.
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
//! P-384 or P-521 or an RSA key (`RSA` or `RSA-HSM`) of 2048 to 8192 bits, allow the
//! `sign` operation, be enabled, and be inside its validity window (`nbf`, `exp`);
//! otherwise opening fails with the reason. Other key types are refused by name: `oct`
//! and `oct-HSM` (symmetric), and anything else such as `OKP`, since Key Vault has no
//! Ed25519 signing keys; so are P-256K and RSA keys smaller than 2048 bits. Without a version in
//! the URI, the current version is resolved once at open and pinned: signing and
//! verification use the same version even if the key is rotated meanwhile. The public key
//! comes from the JWK once and is cached.
//!
//! An EC key signs with its curve's algorithm; an RSA key signs any of
//! [`Algorithm::RSA`](kmssh_core::Algorithm::RSA) (`RS512` first, as `ssh-keygen -s`
//! signs `rsa-sha2-512`; `RS256`; `RS384`), never `PS*`. Each signature is one `sign`
//! call on the locally computed digest (Key Vault builds the PKCS#1 DigestInfo itself);
//! its answer must be exactly twice the field size (`r||s`) or exactly the modulus length
//! (RSA), come from the pinned version, and is verified before it is returned. Throttling (honouring `Retry-After`), 5xx answers, dropped
//! connections and timed-out attempts are retried with jittered exponential backoff
//! inside a deadline.
//!
//! Linking this crate registers the `azure-kv:` scheme (`use kmssh_backend_azure as _;`).

#![forbid(unsafe_code)]

mod credential;
mod error;
mod key;
mod options;

pub use credential::{
    AUTHORITY_HOST_ENV, CredentialChain, IMDS_AUTHORITY_ENV, IMDS_PROBE_TIMEOUT,
    TOKEN_CREDENTIALS_ENV, key_vault_resource,
};
pub use key::{AzureKeyVaultKey, KeyLocation, parse_key_url};
pub use options::{
    ACCESS_TOKEN_ENV, AccessTokenCredential, AzureKeyVaultOptions, CA_FILE_ENV, ENDPOINT_ENV,
    VERIFY_CHALLENGE_RESOURCE_ENV, default_credential,
};

/// The key URI scheme this backend serves.
pub const SCHEME: &str = "azure-kv";

kmssh_core::register_backend! {
    scheme: SCHEME,
    description: "Azure Key Vault / Managed HSM: azure-kv:https://VAULT.vault.azure.net/keys/NAME[/VERSION], EC P-256/P-384/P-521, RSA 2048-8192",
    options: AzureKeyVaultOptions,
    open: AzureKeyVaultKey::open,
}
