//! Issuing many certificates with one CA key: a bounded number of signatures in flight
//! (enough to hide a KMS round trip, few enough to stay inside provider quotas), results
//! in request order, and every request answered on its own: one failure does not stop
//! the rest.
//!
//! Runtime-free (futures' `buffered` on the caller's task), like the rest of this crate.

use futures_util::StreamExt as _;
use futures_util::stream;
use kmssh_core::KmsKey;
use ssh_key::public::KeyData;

use crate::{Certificate, CertificateParameters, Result, issue};

/// How many signatures a batch keeps in flight unless told otherwise.
pub const DEFAULT_BATCH_CONCURRENCY: usize = 32;

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
    mut progress: impl FnMut(usize),
) -> Result<Vec<Result<Certificate>>> {
    params.resolve(crate::unix_now())?;
    crate::ssh_signature_algorithm(ca, params.ca_signature_algorithm())?;
    // The futures are made up front: a stream combinator over a borrowing closure would
    // make the whole future unusable on a multi-threaded runtime (not `Send` for every
    // lifetime).
    let pending: Vec<_> = subjects
        .iter()
        .map(|subject| issue(ca, subject, params))
        .collect();
    let mut in_order = stream::iter(pending).buffered(concurrency.max(1));
    let mut results = Vec::with_capacity(subjects.len());
    while let Some(result) = in_order.next().await {
        results.push(result);
        progress(results.len());
    }
    Ok(results)
}
