//! The kmssh conformance suite: one list of cases ([`cases`]) that every backend's test
//! target runs against keys of every curve it offers, judged by real OpenSSH
//! ([`openssh`]): `ssh-keygen -L`, and `sshd`/`ssh` on 127.0.0.1.
//!
//! A backend test target calls [`conformance_suite!`] once per key it can open:
//!
//! ```ignore
//! kmssh_conformance::conformance_suite!(p256, kmssh_conformance::open_key("local:ephemeral?curve=p256"));
//! ```

#![forbid(unsafe_code)]

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "azure")]
pub mod azure_emulator;
pub mod cases;
pub mod fault_proxy;
#[cfg(feature = "gcp")]
pub mod gcp;
#[cfg(feature = "gcp")]
pub mod gcp_emulator;
pub mod http;
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

/// Declares a test module named `$name` running every shared case against the key that
/// `$key` (a future of `Option<Arc<dyn KmsKey>>`, evaluated per test) yields; `None`
/// skips the case (a real-cloud run without a key of that curve).
#[macro_export]
macro_rules! conformance_suite {
    ($name:ident, $key:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn key() -> Option<::std::sync::Arc<dyn ::kmssh_core::KmsKey>> {
                $key.await
            }

            $crate::conformance_suite!(@cases
                public_key_matches_ssh_keygen,
                sign_verify_round_trips,
                wrong_digest_length_is_refused,
                message_signatures_verify_with_openssl,
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
            async fn concurrent_issuing() {
                if let Some(key) = key().await {
                    $crate::cases::concurrent_issuing(key).await;
                }
            }
        }
    };
    (@cases $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                if let Some(key) = key().await {
                    $crate::cases::$case(key.as_ref()).await;
                }
            }
        )*
    };
}
