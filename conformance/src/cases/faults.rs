//! The shared fault cases: each takes a [`FaultyKey`] (a fresh key behind the fault
//! layer, opened with [`FAULT_CALL_TIMEOUT`] and a [`FAULT_DEADLINE`]), queues faults on
//! its [`FaultHandle`](crate::faults::FaultHandle), and checks what the backend makes of
//! them. Every fixture with the `faults` capability runs them all, for every curve it
//! offers; [`one_public_key_fetch_per_open`] needs `counts_calls`.

use std::time::{Duration, Instant};

use kmssh_core::{ErrorKind, ErrorStatus};

use super::issue_test_certificate;
use crate::faults::{FAULT_CALL_TIMEOUT, FAULT_DEADLINE, Fault, Operation};
use crate::fixture::FaultyKey;

/// Signing requests made while `f` runs.
async fn sign_requests<F: Future>(key: &FaultyKey, f: F) -> (F::Output, usize) {
    let before = key.faults.count(Operation::Sign);
    let output = f.await;
    (output, key.faults.count(Operation::Sign) - before)
}

/// Throttling is retried (with backoff) and the certificate is issued.
pub async fn throttling_is_retried(key: FaultyKey) {
    key.faults
        .inject(Operation::Sign, Fault::Throttle { retry_after: None }, 3);
    let (issued, requests) = sign_requests(&key, issue_test_certificate(key.key.as_ref())).await;
    issued.expect("issued after throttling");
    assert_eq!(requests, 4, "three throttled attempts, then success");
}

/// A 5xx answer is retried.
pub async fn server_errors_are_retried(key: FaultyKey) {
    key.faults.inject(Operation::Sign, Fault::ServerError, 2);
    let (issued, requests) = sign_requests(&key, issue_test_certificate(key.key.as_ref())).await;
    issued.expect("issued after 5xx answers");
    assert_eq!(requests, 3, "two 5xx answers, then success");
}

/// A connection closed without an answer is retried.
pub async fn dropped_connections_are_retried(key: FaultyKey) {
    key.faults.inject(Operation::Sign, Fault::Drop, 2);
    let (issued, requests) = sign_requests(&key, issue_test_certificate(key.key.as_ref())).await;
    issued.expect("issued after dropped connections");
    assert_eq!(requests, 3, "two dropped connections, then success");
}

/// Latency under the per-call timeout is waited for; one answer slower than it is
/// abandoned and retried; answers that never come in time end in `Timeout` at the
/// deadline, never in a certificate.
pub async fn latency_within_the_deadline(key: FaultyKey) {
    key.faults
        .inject(Operation::Sign, Fault::Delay(FAULT_CALL_TIMEOUT / 4), 1);
    let (issued, requests) = sign_requests(&key, issue_test_certificate(key.key.as_ref())).await;
    issued.expect("a slow answer within the call timeout");
    assert_eq!(requests, 1, "a slow answer in time is not retried");

    key.faults
        .inject(Operation::Sign, Fault::Delay(FAULT_CALL_TIMEOUT * 3), 1);
    let (issued, requests) = sign_requests(&key, issue_test_certificate(key.key.as_ref())).await;
    issued.expect("the retry after one too-slow answer");
    assert_eq!(requests, 2, "the too-slow attempt is abandoned and retried");

    key.faults.inject(
        Operation::Sign,
        Fault::Delay(FAULT_DEADLINE * 3),
        usize::MAX,
    );
    let started = Instant::now();
    let err = issue_test_certificate(key.key.as_ref())
        .await
        .expect_err("never answered in time");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        started.elapsed() < FAULT_DEADLINE + Duration::from_secs(2),
        "gave up after {:?}, past the {FAULT_DEADLINE:?} deadline",
        started.elapsed()
    );
}

/// Throttling that outlasts the deadline ends in a persistent `Throttled` error.
pub async fn throttling_past_the_deadline_is_persistent(key: FaultyKey) {
    key.faults.inject(
        Operation::Sign,
        Fault::Throttle { retry_after: None },
        usize::MAX,
    );
    let err = key
        .key
        .sign_message(b"never")
        .await
        .expect_err("throttled to the end");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Throttled, ErrorStatus::Persistent),
        "{err}"
    );
}

/// Permission denied is permanent: one request, no retry.
pub async fn permission_denied_is_not_retried(key: FaultyKey) {
    key.faults.inject(Operation::Sign, Fault::Denied, 1);
    let (err, requests) = sign_requests(&key, key.key.sign_message(b"denied")).await;
    let err = err.expect_err("denied");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::PermissionDenied, ErrorStatus::Permanent),
        "{err}"
    );
    assert_eq!(requests, 1, "a permanent error was retried");
}

/// A well-formed signature that does not verify is `BadSignature`, never a certificate;
/// the next honest answer issues.
pub async fn corrupted_signatures_never_become_certificates(key: FaultyKey) {
    key.faults
        .inject(Operation::Sign, Fault::CorruptSignature, 1);
    let err = issue_test_certificate(key.key.as_ref())
        .await
        .expect_err("a corrupted signature became a certificate");
    assert_eq!(err.kind(), ErrorKind::BadSignature, "{err}");
    issue_test_certificate(key.key.as_ref())
        .await
        .expect("the next, honest answer issues");
}

/// A signature too short to decode is `BadSignature`, never a certificate.
pub async fn short_signatures_are_refused(key: FaultyKey) {
    key.faults.inject(Operation::Sign, Fault::ShortSignature, 1);
    let err = issue_test_certificate(key.key.as_ref())
        .await
        .expect_err("a short signature became a certificate");
    assert_eq!(err.kind(), ErrorKind::BadSignature, "{err}");
    issue_test_certificate(key.key.as_ref())
        .await
        .expect("the next, honest answer issues");
}

/// Throttling and 5xx answers while a key is opened are retried too.
pub async fn opening_survives_transient_faults(key: FaultyKey) {
    let before = key.faults.count(Operation::GetPublicKey);
    key.faults.inject(
        Operation::GetPublicKey,
        Fault::Throttle { retry_after: None },
        1,
    );
    key.faults
        .inject(Operation::GetPublicKey, Fault::ServerError, 1);
    let reopened = key.reopen().await.expect("opens after transient faults");
    assert_eq!(
        key.faults.count(Operation::GetPublicKey) - before,
        3,
        "two faulted fetches, then success"
    );
    assert_eq!(reopened.public_key(), key.key.public_key());
    reopened
        .sign_message(b"reopened")
        .await
        .expect("the reopened key signs");
}

/// The public key is fetched once per opened key, however many signatures follow, and
/// each signature is one request.
pub async fn one_public_key_fetch_per_open(key: FaultyKey) {
    assert_eq!(key.faults.count(Operation::GetPublicKey), 1, "at open");
    for i in 0..20u32 {
        key.key.sign_message(&i.to_le_bytes()).await.expect("signs");
    }
    assert_eq!(
        key.faults.count(Operation::GetPublicKey),
        1,
        "after signing"
    );
    assert_eq!(key.faults.count(Operation::Sign), 20);
    let _again = key.reopen().await.expect("opens again");
    assert_eq!(
        key.faults.count(Operation::GetPublicKey),
        2,
        "a second open fetches once more"
    );
    assert!(
        key.faults.count(Operation::Describe) <= 2,
        "more than one metadata read per open"
    );
}
