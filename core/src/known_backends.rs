//! The one list of the backends kmssh has, whether or not this build links them.
//!
//! Everything that names backends derives from [`KNOWN_BACKENDS`]: the registry's message
//! for a scheme whose crate is not compiled in, `cargo xtask conformance`, and the test
//! that checks the CLI's and the conformance crate's Cargo features and the docs against
//! it. This file depends on nothing, so `xtask` includes it as a module without building
//! this crate.

/// A backend kmssh has: its URI scheme and the names the build and the tests know it by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownBackend {
    /// The URI scheme, without the colon (`aws-kms`).
    pub scheme: &'static str,
    /// The short name: the Cargo feature of `kmssh` and `kmssh-conformance` that links it,
    /// its conformance test target, and `cargo xtask conformance --backend NAME`.
    pub name: &'static str,
    /// The crate (`kmssh-backend-aws`).
    pub package: &'static str,
    /// The provider, for people (`AWS KMS`).
    pub provider: &'static str,
    /// For cloud backends: the variable that names real keys for the conformance suite,
    /// which then runs against the real service instead of the emulator.
    pub real_keys_env: Option<&'static str>,
    /// What the conformance target runs against when no real keys are named.
    pub emulated_by: &'static str,
}

/// Every backend, in the order the docs list them.
pub const KNOWN_BACKENDS: &[KnownBackend] = &[
    KnownBackend {
        scheme: "local",
        name: "local",
        package: "kmssh-backend-local",
        provider: "keys in this process (memory or file)",
        real_keys_env: None,
        emulated_by: "keys in memory and in files, both signing engines",
    },
    KnownBackend {
        scheme: "aws-kms",
        name: "aws",
        package: "kmssh-backend-aws",
        provider: "AWS KMS",
        real_keys_env: Some("KMSSH_AWS_KEY_IDS"),
        emulated_by: "ministack on 127.0.0.1",
    },
    KnownBackend {
        scheme: "gcp-kms",
        name: "gcp",
        package: "kmssh-backend-gcp",
        provider: "Google Cloud KMS",
        real_keys_env: Some("KMSSH_GCP_KEY_VERSIONS"),
        emulated_by: "the in-process Cloud KMS emulator on 127.0.0.1",
    },
    KnownBackend {
        scheme: "azure-kv",
        name: "azure",
        package: "kmssh-backend-azure",
        provider: "Azure Key Vault / Managed HSM",
        real_keys_env: Some("KMSSH_AZURE_KEYS"),
        emulated_by: "the in-process Key Vault emulator over HTTPS on 127.0.0.1",
    },
];
