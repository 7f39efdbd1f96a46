//! kmssh's Google Cloud KMS backend: signs with an asymmetric key **version** of
//! algorithm `EC_SIGN_P256_SHA256` or `EC_SIGN_P384_SHA384`.
//!
//! # Key URIs
//!
//! ```text
//! gcp-kms:projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N
//! ```
//!
//! Asymmetric signing happens at the key version level: a URI that stops at the crypto
//! key is refused, with the reason.
//!
//! # Configuration
//!
//! Built on Google's official `google-cloud-kms-v1` crate (JSON over REST), with
//! Application Default Credentials from `google-cloud-auth` (`GOOGLE_APPLICATION_CREDENTIALS`,
//! `gcloud auth application-default login`, the metadata server). The community
//! `google-cloud-kms` crate speaks gRPC only to Google's own TLS endpoint and cannot be
//! pointed at a local emulator, so it could not be tested here; the official crate takes
//! an endpoint and anonymous credentials, which is how the conformance suite reaches its
//! emulator.
//!
//! Code sets the endpoint, anonymous access, timeouts and retries with [`GcpKmsOptions`],
//! directly ([`GcpKmsKey::open`]) or through the registry
//! (`kmssh_core::open_with(uri, &Options::new().with(GcpKmsOptions { … }))`). A key opened
//! by URI alone takes its options from the environment
//! ([`BackendOptions::from_env`](kmssh_core::BackendOptions::from_env)): the endpoint from
//! [`ENDPOINT_ENV`] (`KMSSH_GCP_ENDPOINT`) and, for emulators, [`ANONYMOUS_ENV`]
//! (`KMSSH_GCP_ANONYMOUS=true`). Missing or refused credentials are reported as a
//! configuration or permission error, never as the service being unavailable.
//!
//! # What opening checks
//!
//! Opening costs one `getPublicKey`: the version's algorithm must be one of the
//! [`SUPPORTED_ALGORITHMS`], the PEM must match its `pemCrc32c`, and the key in the PEM
//! must be on the algorithm's curve. The public key is cached for the key's lifetime.
//!
//! Integrity, as Google asks of every client: every `asymmetricSign` sends the digest's
//! CRC32C and checks the answer (`verifiedDigestCrc32c` true, `name` the requested
//! version, `signatureCrc32c` over the signature). A mismatch is retried once, then
//! refused; a signature that passes is still verified against the cached public key
//! before it is returned. Throttling, 5xx answers, dropped connections and timed-out
//! attempts are retried with jittered exponential backoff inside a deadline.
//!
//! Linking this crate registers the `gcp-kms:` scheme (`use kmssh_backend_gcp as _;`).

#![forbid(unsafe_code)]

mod error;
mod key;
mod options;

pub use key::{GcpKmsKey, SUPPORTED_ALGORITHMS};
pub use options::{ANONYMOUS_ENV, ENDPOINT_ENV, GcpKmsOptions};

/// The key URI scheme this backend serves.
pub const SCHEME: &str = "gcp-kms";

kmssh_core::register_backend! {
    scheme: SCHEME,
    description: "Google Cloud KMS: gcp-kms:projects/…/cryptoKeyVersions/N, EC_SIGN_P256_SHA256 / EC_SIGN_P384_SHA384",
    options: GcpKmsOptions,
    open: GcpKmsKey::open,
}
