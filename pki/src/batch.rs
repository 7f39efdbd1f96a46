//! Issuing many certificates with one CA key: a bounded number of signatures in flight
//! (enough to hide a KMS round trip, few enough to stay inside provider quotas), results
//! in request order, and every request answered on its own: one failure does not stop
//! the rest.
//!
//! Runtime-free (futures' `buffered` on the caller's task), like the rest of this crate:
//! a rate limit waits through a `sleep` the caller provides (`tokio::time::sleep`).

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream;
use kmssh_core::KmsKey;
use ssh_key::public::KeyData;

use crate::{Certificate, CertificateParameters, Error, Field, Result, issue};

/// How many signatures a batch keeps in flight unless told otherwise.
pub const DEFAULT_BATCH_CONCURRENCY: usize = 32;

/// Provider quotas a rate limit is usually set from (requests per second per key, or per
/// account and region): AWS KMS ECC `Sign`, 1,000/s per account and region by default.
pub const AWS_KMS_ECC_SIGN_PER_SECOND: u32 = 1_000;
/// Azure Key Vault EC keys in an HSM: 2,000 transactions per 10 s per vault.
pub const AZURE_KEY_VAULT_EC_HSM_PER_SECOND: u32 = 200;

/// Spaces signatures evenly at most `per_second` a second, across every task that shares
/// it (a batch, or a service's requests for one key). Runtime-free: it says how long to
/// wait; the caller sleeps.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer letting `per_second` signatures start each second.
    ///
    /// # Errors
    /// [`Error::InvalidField`] for 0.
    pub fn new(per_second: u32) -> Result<Self> {
        if per_second == 0 {
            return Err(Error::field(
                Field::RateLimit,
                "a rate limit of 0 per second would never sign",
            ));
        }
        Ok(Self {
            interval: Duration::from_secs(1) / per_second,
            next: Mutex::new(None),
        })
    }

    /// The time between two starts.
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Takes the next slot: how long to wait from `now` before starting. Slots never
    /// pile up: after an idle spell the next one is now, not a burst of the time missed.
    pub fn take(&self, now: Instant) -> Duration {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = next.map_or(now, |n| n.max(now));
        *next = Some(slot + self.interval);
        slot - now
    }
}

/// How a batch runs: how many signatures in flight, and at most how many start a second.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// Signatures in flight at once (at least one).
    pub concurrency: usize,
    /// Signatures started per second, at most; `None`: as fast as the key answers.
    pub per_second: Option<u32>,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_BATCH_CONCURRENCY,
            per_second: None,
        }
    }
}

/// Issues a certificate for each subject with the same parameters (each gets its own
/// random serial unless the parameters fix one, and its own nonce), at most
/// `concurrency` at a time (at least one). `progress` is called with the number done
/// after each one finishes.
///
/// # Errors
/// The parameters are checked once before anything is signed: bad parameters are the
/// outer error, and the key is never called. Each subject's own result is inside.
pub async fn issue_batch(
    ca: &dyn KmsKey,
    params: &CertificateParameters,
    subjects: &[KeyData],
    concurrency: usize,
    progress: impl FnMut(usize),
) -> Result<Vec<Result<Certificate>>> {
    let limits = BatchLimits {
        concurrency,
        per_second: None,
    };
    issue_batch_paced(ca, params, subjects, limits, no_sleep, progress).await
}

async fn no_sleep(_: Duration) {}

/// As [`issue_batch`], with `limits.per_second` kept by waiting through `sleep` (the
/// caller's runtime's, e.g. `tokio::time::sleep`) before each signature that would start
/// too early: the batch stays under a provider quota
/// ([`AWS_KMS_ECC_SIGN_PER_SECOND`], [`AZURE_KEY_VAULT_EC_HSM_PER_SECOND`]) instead of
/// being throttled.
///
/// # Errors
/// As [`issue_batch`]; [`Error::InvalidField`] for a rate of 0.
pub async fn issue_batch_paced<S, F>(
    ca: &dyn KmsKey,
    params: &CertificateParameters,
    subjects: &[KeyData],
    limits: BatchLimits,
    sleep: S,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Result<Certificate>>>
where
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    params.resolve(crate::unix_now())?;
    crate::ssh_signature_algorithm(ca, params.ca_signature_algorithm())?;
    let pacer = limits.per_second.map(Pacer::new).transpose()?;
    let (pacer, sleep) = (pacer.as_ref(), &sleep);
    // The futures are made up front: a stream combinator over a borrowing closure would
    // make the whole future unusable on a multi-threaded runtime (not `Send` for every
    // lifetime). Each takes its slot when it starts, so at most `concurrency` wait.
    let pending: Vec<_> = subjects
        .iter()
        .map(|subject| async move {
            if let Some(pacer) = pacer {
                let wait = pacer.take(Instant::now());
                if !wait.is_zero() {
                    sleep(wait).await;
                }
            }
            issue(ca, subject, params).await
        })
        .collect();
    let mut in_order = stream::iter(pending).buffered(limits.concurrency.max(1));
    let mut results = Vec::with_capacity(subjects.len());
    while let Some(result) = in_order.next().await {
        results.push(result);
        progress(results.len());
    }
    Ok(results)
}
