//! The kmssh conformance suite: one list of cases ([`cases`]) that every backend's test
//! target runs against keys of every curve it offers, judged by real OpenSSH
//! ([`openssh`]): `ssh-keygen -L`, and `sshd`/`ssh` on 127.0.0.1; and one list of fault
//! cases ([`cases::faults`]) run through one fault layer ([`faults`]).
//!
//! A backend's test target is one [`Fixture`](fixture::Fixture) and one macro line:
//!
//! ```ignore
//! kmssh_conformance::conformance_suite!(kmssh_conformance::gcp::GcpFixture::shared());
//! ```
//!
//! The fixture names its backend (as in `kmssh_core::KNOWN_BACKENDS`), the curves it
//! offers, its [`Capabilities`](fixture::Capabilities) (`emulated`, `faults`,
//! `counts_calls`), and makes keys: [`Fixture::key`](fixture::Fixture::key) for the shared
//! cases, [`Fixture::faulty_key`](fixture::Fixture::faulty_key) for the fault cases. The
//! macro makes a module per curve (`p256`, `p384`, `p521`) holding every shared case and,
//! in `faults`, every fault case; a case the fixture cannot run (a curve it does not offer,
//! a capability it lacks, a real-cloud run without a key of that curve) passes with a
//! `skipped: …` line on stderr. Cloud fixtures run against their emulator unless the
//! variable `KNOWN_BACKENDS` names for them lists real keys (`KMSSH_AWS_KEY_IDS`,
//! `KMSSH_GCP_KEY_VERSIONS`, `KMSSH_AZURE_KEYS`); then the emulator-only cases (faults,
//! counts, keys of other states) are skipped.
//!
//! The fault layer: a [`Fault`](faults::Fault) (throttling, 5xx, denial, latency, a
//! dropped connection, a corrupted or short signature, a JSON rewrite) is queued on a
//! key's [`FaultHandle`](faults::FaultHandle) for an [`Operation`](faults::Operation)
//! (describe, get public key, sign); the handle also counts requests. The AWS
//! [`FaultProxy`](fault_proxy::FaultProxy) in front of ministack and the in-process GCP
//! and Azure emulators consult it the same way, each rendering faults in its provider's
//! wire shape through a [`Dialect`](faults::Dialect).
//!
//! Adding a backend: its crate, its line in `KNOWN_BACKENDS`, a feature and a `[[test]]`
//! here, and a fixture (`src/NAME.rs`, with an emulator of the provider's wire API on
//! 127.0.0.1 that consults a `FaultHandle` per key if it is to run the fault cases), then
//! `tests/NAME.rs` with the one macro line and whatever is the provider's own.

#![forbid(unsafe_code)]

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "azure")]
pub mod azure_emulator;
pub mod cases;
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
pub mod chaos;
pub mod fault_proxy;
pub mod faults;
pub mod fixture;
#[cfg(feature = "gcp")]
pub mod gcp;
#[cfg(feature = "gcp")]
pub mod gcp_emulator;
pub mod hostile;
pub mod http;
#[cfg(feature = "local")]
pub mod local;
pub mod ministack;
pub mod openssh;

#[cfg(feature = "aws")]
pub use kmssh_backend_aws;
#[cfg(feature = "azure")]
pub use kmssh_backend_azure;
#[cfg(feature = "gcp")]
pub use kmssh_backend_gcp;
#[cfg(feature = "local")]
pub use kmssh_backend_local;
pub use kmssh_core;

/// A comma-separated list from the environment (real-cloud key names), empty items
/// dropped; `None` when unset or empty.
#[must_use]
pub fn env_list(name: &str) -> Option<Vec<String>> {
    let value = std::env::var(name).ok()?;
    let items: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

/// Retries for tests against emulators: quick backoff, a 20 s deadline.
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
#[must_use]
pub fn emulator_retry_policy() -> kmssh_core::RetryPolicy {
    kmssh_core::RetryPolicy {
        initial_backoff: std::time::Duration::from_millis(20),
        max_backoff: std::time::Duration::from_millis(200),
        deadline: std::time::Duration::from_secs(20),
        max_attempts: 8,
    }
}

/// Opens a key by URI for a test, with the backend's error in the panic message.
///
/// # Panics
/// If the key cannot be opened.
pub async fn open_key(uri: &str) -> Option<std::sync::Arc<dyn kmssh_core::KmsKey>> {
    let key = kmssh_core::open(uri).await;
    Some(key.unwrap_or_else(|e| panic!("cannot open {uri}: {e}")))
}

/// Declares the whole suite for one fixture (an expression giving `&'static F` where
/// `F: Fixture`): a module per kind of key (`p256`, `p384`, `p521`, `rsa2048`, `rsa3072`,
/// `rsa4096`, `ed25519`) with every shared case, and
/// in it a `faults` module with every fault case; plus `fixture_is_sound`. What the
/// fixture cannot run is skipped at run time, with a `skipped: …` line.
///
/// `conformance_suite!(name => fixture)` puts all that in a module `name`, for targets
/// with several fixtures (the local backend's signing engines).
#[macro_export]
macro_rules! conformance_suite {
    (@spec $module:ident, $spec:expr, $fixture:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            fn fixture() -> &'static dyn $crate::fixture::Fixture {
                $crate::fixture::as_dyn($fixture)
            }

            const SPEC: $crate::kmssh_core::KeySpec = $spec;

            $crate::conformance_suite!(@cases
                public_key_matches_ssh_keygen,
                wrong_digest_length_is_refused,
                message_signatures_verify_with_openssl,
                sshsig_verifies_with_ssh_keygen,
                x509_chain_verifies_with_openssl,
                ca_signature_algorithm_is_chosen,
                user_certificates_listed_by_ssh_keygen,
                host_certificates_listed_by_ssh_keygen,
                security_key_subjects_listed_by_ssh_keygen,
                sshd_accepts_user_certificate,
                sshd_refuses_wrong_principal,
                sshd_refuses_expired_certificate,
                sshd_refuses_certificate_from_another_ca,
                sshd_runs_forced_command,
                sshd_enforces_source_address,
                ssh_accepts_host_certificate,
                ssh_refuses_host_certificate_from_another_ca
            );

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn service_certificate_logs_in() {
                if let Some(key) = $crate::fixture::key_for(fixture(), SPEC).await {
                    $crate::cases::service_certificate_logs_in(key).await;
                }
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sign_verify_round_trips() {
                if let Some(key) = $crate::fixture::key_for(fixture(), SPEC).await {
                    $crate::cases::sign_verify_round_trips(
                        key.as_ref(),
                        fixture().round_trips(SPEC),
                    )
                    .await;
                }
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn agent_logs_in() {
                if let Some(key) = $crate::fixture::key_for(fixture(), SPEC).await {
                    $crate::cases::login::agent_logs_in(key).await;
                }
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pkcs11_logs_in() {
                let Some(env) = $crate::fixture::child_environment_for(fixture()) else {
                    return;
                };
                if let Some(key) = $crate::fixture::key_for(fixture(), SPEC).await {
                    $crate::cases::login::pkcs11_logs_in(key, env).await;
                }
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_issuing() {
                if let Some(key) = $crate::fixture::key_for(fixture(), SPEC).await {
                    $crate::cases::concurrent_issuing(key).await;
                }
            }

            mod faults {
                #[allow(unused_imports)]
                use super::*;

                $crate::conformance_suite!(@fault_cases Faults:
                    throttling_is_retried,
                    server_errors_are_retried,
                    dropped_connections_are_retried,
                    latency_within_the_deadline,
                    throttling_past_the_deadline_is_persistent,
                    permission_denied_is_not_retried,
                    corrupted_signatures_never_become_certificates,
                    short_signatures_are_refused,
                    opening_survives_transient_faults
                );
                $crate::conformance_suite!(@fault_cases CountsCalls:
                    one_public_key_fetch_per_open
                );

                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn agent_survives_a_backend_outage() {
                    if let Some(key) = $crate::fixture::faulty_key_for(
                        fixture(),
                        SPEC,
                        $crate::fixture::Capability::Faults,
                    )
                    .await
                    {
                        $crate::cases::login::agent_survives_a_backend_outage(key).await;
                    }
                }

                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn pkcs11_survives_a_backend_outage() {
                    if let Some(key) = $crate::fixture::faulty_key_for(
                        fixture(),
                        SPEC,
                        $crate::fixture::Capability::Faults,
                    )
                    .await
                    {
                        $crate::cases::login::pkcs11_survives_a_backend_outage(key).await;
                    }
                }
            }
        }
    };
    (@cases $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                if let Some(key) = $crate::fixture::key_for(fixture(), SPEC).await {
                    $crate::cases::$case(key.as_ref()).await;
                }
            }
        )*
    };
    (@fault_cases $capability:ident: $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                if let Some(key) = $crate::fixture::faulty_key_for(
                    fixture(),
                    SPEC,
                    $crate::fixture::Capability::$capability,
                )
                .await
                {
                    $crate::cases::faults::$case(key).await;
                }
            }
        )*
    };
    ($name:ident => $fixture:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $crate::conformance_suite!($fixture);
        }
    };
    ($fixture:expr) => {
        #[test]
        fn fixture_is_sound() {
            $crate::fixture::check_fixture($crate::fixture::as_dyn($fixture));
        }

        $crate::conformance_suite!(@spec p256, $crate::kmssh_core::KeySpec::Ecdsa($crate::kmssh_core::Curve::P256), $fixture);
        $crate::conformance_suite!(@spec p384, $crate::kmssh_core::KeySpec::Ecdsa($crate::kmssh_core::Curve::P384), $fixture);
        $crate::conformance_suite!(@spec p521, $crate::kmssh_core::KeySpec::Ecdsa($crate::kmssh_core::Curve::P521), $fixture);
        $crate::conformance_suite!(@spec rsa2048, $crate::kmssh_core::KeySpec::Rsa(2048), $fixture);
        $crate::conformance_suite!(@spec rsa3072, $crate::kmssh_core::KeySpec::Rsa(3072), $fixture);
        $crate::conformance_suite!(@spec rsa4096, $crate::kmssh_core::KeySpec::Rsa(4096), $fixture);
        $crate::conformance_suite!(@spec ed25519, $crate::kmssh_core::KeySpec::Ed25519, $fixture);
    };
}
