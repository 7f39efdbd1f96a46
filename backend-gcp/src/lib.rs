//! kmssh's Google Cloud KMS backend: signs with an asymmetric key **version** of ECDSA
//! (`EC_SIGN_P256_SHA256`, `EC_SIGN_P384_SHA384`), RSA PKCS#1 v1.5
//! (`RSA_SIGN_PKCS1_2048/3072/4096_SHA256`, `RSA_SIGN_PKCS1_4096_SHA512`,
//! `RSA_SIGN_RAW_PKCS1_2048/3072/4096`) or Ed25519 (`EC_SIGN_ED25519`).
//!
//! # Key version algorithms
//!
//! A Cloud KMS version is bound to its algorithm, and the key's
//! [`algorithms()`](kmssh_core::KmsKey::algorithms) follow it:
//!
//! | version algorithm | key | signs | `asymmetricSign` carries |
//! |---|---|---|---|
//! | `EC_SIGN_P256_SHA256` / `EC_SIGN_P384_SHA384` | ECDSA P-256 / P-384 | `ecdsa-sha2-nistp256` / `nistp384` | `digest` |
//! | `RSA_SIGN_PKCS1_{2048,3072,4096}_SHA256` | RSA of that size | `rsa-sha2-256` only | `digest` (`sha256`) |
//! | `RSA_SIGN_PKCS1_4096_SHA512` | RSA-4096 | `rsa-sha2-512` only | `digest` (`sha512`) |
//! | `RSA_SIGN_RAW_PKCS1_{2048,3072,4096}` | RSA of that size | `rsa-sha2-512` (preferred), `rsa-sha2-256`, SHA-384 | `data`: the DER `DigestInfo` of the digest |
//! | `EC_SIGN_ED25519` | Ed25519 | `ssh-ed25519` | `data`: the message itself |
//!
//! A `_SHA256` RSA version cannot make the `rsa-sha2-512` signatures `ssh-keygen -s`
//! makes by default: kmssh then signs `rsa-sha2-256`, and asking for SHA-512 is refused
//! before any call, naming what the key signs. A raw version signs any of the three
//! hashes (Cloud KMS pads and signs the `DigestInfo` as given); creating one needs
//! Google's extra role for raw PKCS#1 keys. Every other algorithm is refused by name
//! with the reason: RSA-PSS (OpenSSH verifies only PKCS#1 v1.5), secp256k1, HMAC,
//! post-quantum (ML-DSA, SLH-DSA), decryption and encryption keys.
//!
//! # Key URIs
//!
//! ```text
//! gcp-kms:projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N
//! gcp-kms:projects/P/locations/L/keyRings/R/cryptoKeys/K?version=latest
//! gcp-kms:projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N?protection=hsm
//! ```
//!
//! Asymmetric signing happens at the key version level: a URI that stops at the crypto
//! key is refused, with the reason, unless it opts in with `?version=latest` (or
//! [`GcpKmsOptions::resolve_latest_version`]): the key's versions are listed at open
//! and the newest `ENABLED` one (the highest version number) is used for the key's
//! lifetime; this needs `cloudkms.cryptoKeyVersions.list` besides the usual permissions.
//! `protection=software|hsm|external|external-vpc` (or
//! [`GcpKmsOptions::required_protection`]) refuses a version of any other protection
//! level (`getPublicKey` reports it; `HSM_SINGLE_TENANT` counts as `hsm`). Parameters
//! join with `&`; an unknown parameter is refused.
//!
//! # Configuration
//!
//! Built on Google's official `google-cloud-kms-v1` crate (JSON over REST), with
//! credentials from `google-cloud-auth`. The community `google-cloud-kms` crate speaks
//! gRPC only to Google's own TLS endpoint and cannot be pointed at a local emulator, so
//! it could not be tested here; the official crate takes an endpoint and credentials,
//! which is how the conformance suite reaches its emulator.
//!
//! Credentials are Application Default Credentials, in ADC's order: the file named by
//! `GOOGLE_APPLICATION_CREDENTIALS` (a service account key, `authorized_user`,
//! `external_account` for workload identity federation, `impersonated_service_account`);
//! gcloud's file (`~/.config/gcloud/application_default_credentials.json`, written by
//! `gcloud auth application-default login`); the metadata server
//! (`metadata.google.internal`, or `GCE_METADATA_HOST`), which is first probed for at
//! most [`METADATA_PROBE_TIMEOUT`]. With none of them, opening fails at once with
//! [`ErrorKind::Unauthenticated`](kmssh_core::ErrorKind::Unauthenticated) naming each
//! source tried. A token that cannot be had for now (token endpoint down) is retried
//! like any unavailable service; one that is refused (`invalid_grant`, a bad file) is
//! `Unauthenticated` at once, with the source in the error's context.
//!
//! Code sets the endpoint, credentials (or anonymous access), timeouts, retries and the
//! opt-ins with [`GcpKmsOptions`], directly ([`GcpKmsKey::open`]) or through the
//! registry (`kmssh_core::open_with(uri, &Options::new().with(GcpKmsOptions { … }))`). A
//! key opened by URI alone takes its options from the environment
//! ([`BackendOptions::from_env`](kmssh_core::BackendOptions::from_env)): the endpoint from
//! [`ENDPOINT_ENV`] (`KMSSH_GCP_ENDPOINT`) and, for emulators, [`ANONYMOUS_ENV`]
//! (`KMSSH_GCP_ANONYMOUS=true`).
//!
//! # What opening checks
//!
//! Opening costs one `getPublicKey` (after the listing, with `version=latest`): the
//! version's algorithm must be one of the [`SUPPORTED_ALGORITHMS`], the PEM must match
//! its `pemCrc32c`, the key in the PEM must be the one the algorithm names (its curve,
//! Ed25519, or an RSA key of exactly the algorithm's size), and the protection level
//! must be the one required, if any. The public key is cached for the key's lifetime.
//!
//! Integrity, as Google asks of every client: every `asymmetricSign` sends the CRC32C of
//! what it carries (`digestCrc32c` or `dataCrc32c`) and checks the answer
//! (`verifiedDigestCrc32c` or `verifiedDataCrc32c` true, `name` the requested version,
//! `signatureCrc32c` over the signature). A mismatch is retried once, then refused; a
//! signature that passes is still verified against the cached public key before it is
//! returned.
//!
//! # Errors and retries
//!
//! Throttling, 5xx answers, dropped connections, timed-out attempts and temporary token
//! failures are retried with jittered exponential backoff inside the
//! [`RetryPolicy`](kmssh_core::RetryPolicy) deadline (30 s by default, each attempt at
//! most [`DEFAULT_CALL_TIMEOUT`](kmssh_core::DEFAULT_CALL_TIMEOUT)). `FAILED_PRECONDITION`
//! is retried only when Cloud KMS says the version is still being generated (or
//! imported); a disabled or destroyed version is refused at once. An HTTP error whose
//! body is not a Google error (a proxy's page, a wrong endpoint) is judged by its HTTP
//! status. The table is in the `error` module's source.
//!
//! Linking this crate registers the `gcp-kms:` scheme (`use kmssh_backend_gcp as _;`).

#![forbid(unsafe_code)]

mod credentials;
mod error;
mod key;
mod options;

/// The `google-cloud-auth` this crate builds credentials with (for
/// [`GcpKmsOptions::credentials`]).
pub use google_cloud_auth;
/// The `google-cloud-kms-v1` client this crate calls (for [`GcpKmsKey::open_with_client`]).
pub use google_cloud_kms_v1;

pub use credentials::{CREDENTIALS_FILE_ENV, METADATA_HOST_ENV, METADATA_PROBE_TIMEOUT};
pub use key::{GcpKmsKey, SUPPORTED_ALGORITHMS};
pub use options::{ANONYMOUS_ENV, ENDPOINT_ENV, GcpKmsOptions, Protection};

/// The key URI scheme this backend serves.
pub const SCHEME: &str = "gcp-kms";

kmssh_core::register_backend! {
    scheme: SCHEME,
    description: "Google Cloud KMS: gcp-kms:projects/…/cryptoKeyVersions/N (or …/cryptoKeys/K?version=latest), EC_SIGN_P256/P384, RSA_SIGN_PKCS1_*, RSA_SIGN_RAW_PKCS1_*, EC_SIGN_ED25519",
    options: GcpKmsOptions,
    open: GcpKmsKey::open,
}
