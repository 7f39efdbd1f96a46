//! Retrying temporary failures with jittered exponential backoff, inside a deadline.
//! One policy for every cloud backend, so they all back off the same way.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::{Error, ErrorKind, Result};

/// How a backend retries temporary failures (throttling, 5xx, dropped connections,
/// timeouts of one attempt). Permanent failures are returned at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff's upper bound (each later one doubles, up to `max_backoff`).
    pub initial_backoff: Duration,
    /// The largest backoff.
    pub max_backoff: Duration,
    /// The whole operation, every attempt and backoff included, ends by then.
    pub deadline: Duration,
    /// At most this many attempts.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 100 ms doubling to 5 s, 10 attempts, 30 s in all.
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            deadline: Duration::from_secs(30),
            max_attempts: 10,
        }
    }
}

/// A uniformly random duration in `[0, bound]` ("full jitter"): clients that were
/// throttled together do not come back together.
fn jitter(bound: Duration) -> Duration {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return bound / 2;
    }
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(u64::from_le_bytes(bytes) % nanos.saturating_add(1))
}

impl RetryPolicy {
    /// Runs `attempt` until it succeeds, fails permanently, or the attempts or deadline
    /// run out; then the last error is returned marked persistent, with the attempt count
    /// in its context. A provider's retry-after hint is honoured when it is longer than
    /// the backoff.
    ///
    /// # Errors
    /// The last attempt's error; if the deadline cuts an attempt short, the error before
    /// it, or [`ErrorKind::Timeout`] when there was none.
    pub async fn run<T, F, Fut>(&self, operation: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = Instant::now();
        let mut backoff = self.initial_backoff;
        let mut attempts = 0u32;
        let mut last_error: Option<Error> = None;
        loop {
            attempts += 1;
            let remaining = self.deadline.saturating_sub(start.elapsed());
            let outcome = match tokio::time::timeout(remaining, attempt()).await {
                Ok(outcome) => outcome,
                // Cut short by the deadline: what kept failing before says more than "timeout".
                Err(_) => {
                    let error = last_error.take().unwrap_or_else(|| {
                        Error::new(
                            ErrorKind::Timeout,
                            format!(
                                "{operation} did not finish within its {:?} deadline",
                                self.deadline
                            ),
                        )
                    });
                    return Err(error.persist().with_context("attempts", attempts));
                }
            };
            let error = match outcome {
                Ok(value) => return Ok(value),
                Err(e) if !e.is_temporary() => return Err(e.with_context("attempts", attempts)),
                Err(e) => e,
            };
            let pause = jitter(backoff).max(error.retry_after().unwrap_or_default());
            if attempts >= self.max_attempts || start.elapsed() + pause >= self.deadline {
                return Err(error.persist().with_context("attempts", attempts));
            }
            tracing::info!(
                operation,
                attempt = attempts,
                retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                error = %error,
                "temporary failure, retrying"
            );
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(self.max_backoff);
            last_error = Some(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::ErrorStatus;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            deadline: Duration::from_secs(10),
            ..RetryPolicy::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn temporary_failures_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let value = policy()
            .run("sign", || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(Error::new(ErrorKind::Throttled, "slow down")),
                    _ => Ok(7),
                }
            })
            .await
            .expect("third attempt succeeds");
        assert_eq!((value, calls.load(Ordering::SeqCst)), (7, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let err = policy()
            .run("sign", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::new(ErrorKind::PermissionDenied, "no kms:Sign"))
            })
            .await
            .expect_err("permanent");
        assert_eq!(
            (err.kind(), calls.load(Ordering::SeqCst)),
            (ErrorKind::PermissionDenied, 1)
        );
        assert_eq!(err.status(), ErrorStatus::Permanent);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_deadline_and_say_persistent() {
        let calls = AtomicU32::new(0);
        let err = policy()
            .run("sign", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(
                    Error::new(ErrorKind::Unavailable, "503")
                        .with_retry_after(Duration::from_secs(4)),
                )
            })
            .await
            .expect_err("never succeeds");
        assert_eq!(err.status(), ErrorStatus::Persistent);
        // Retry-After of 4 s inside a 10 s deadline leaves room for three attempts.
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(err.context("attempts"), Some("3"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_attempt_is_cut_at_the_deadline() {
        let err = policy()
            .run("sign", || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<(), Error>(())
            })
            .await
            .expect_err("deadline");
        assert_eq!(err.kind(), ErrorKind::Timeout);
    }
}
