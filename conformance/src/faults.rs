//! The one fault layer: a vocabulary of faults ([`Fault`]), the operations they apply to
//! ([`Operation`]), and a per-key queue with request counters ([`FaultHandle`]).
//!
//! Every place that can misbehave on purpose consults a [`FaultHandle`] the same way: the
//! AWS [`FaultProxy`](crate::fault_proxy::FaultProxy) in front of ministack, and the
//! in-process Cloud KMS and Key Vault emulators. Each renders a fault in its provider's
//! wire shape through a [`Dialect`] (AWS's `__type` JSON, Google's `error.status`, Azure's
//! `error.code` with `Retry-After`…), so the shared fault cases
//! ([`crate::cases::faults`]) are written once and run against every fixture that has
//! the [`faults`](crate::fixture::Capabilities::faults) capability.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;

/// The calls a key makes, named the same for every provider (each fixture maps its wire
/// operations onto these).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Reading the key's metadata (AWS `DescribeKey`).
    Describe,
    /// Fetching the public key (AWS `GetPublicKey`, Cloud KMS `getPublicKey`, Key Vault
    /// `get key`).
    GetPublicKey,
    /// Signing a digest.
    Sign,
}

/// Rewrites a successful JSON answer in place: for provider-specific faults (a changed
/// field, a wrong integrity checksum).
pub type Rewrite = Arc<dyn Fn(&mut Value) + Send + Sync>;

/// What to do to one request instead of (or on top of) answering it honestly.
#[derive(Clone)]
pub enum Fault {
    /// The provider's throttling answer (with `Retry-After` where the provider sends one).
    Throttle {
        /// The hint the answer carries, whole seconds on the wire.
        retry_after: Option<Duration>,
    },
    /// A 5xx answer the provider means as "try again".
    ServerError,
    /// The provider's permission-denied answer (permanent: never retried).
    Denied,
    /// Wait this long, then answer.
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
    /// Answer with a well-formed signature that does not verify (integrity fields, where
    /// the provider has them, computed over the corrupted bytes: the service signed wrong).
    CorruptSignature,
    /// Answer with a signature too short to decode.
    ShortSignature,
    /// Answer honestly, then rewrite the JSON answer.
    Rewrite(Rewrite),
}

impl Fault {
    /// The fault's name without its parameters (`Throttle`, `Delay`…).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Throttle { .. } => "Throttle",
            Self::ServerError => "ServerError",
            Self::Denied => "Denied",
            Self::Delay(_) => "Delay",
            Self::Drop => "Drop",
            Self::CorruptSignature => "CorruptSignature",
            Self::ShortSignature => "ShortSignature",
            Self::Rewrite(_) => "Rewrite",
        }
    }
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Throttle { retry_after } => write!(f, "Throttle({retry_after:?})"),
            Self::ServerError => f.write_str("ServerError"),
            Self::Denied => f.write_str("Denied"),
            Self::Delay(d) => write!(f, "Delay({d:?})"),
            Self::Drop => f.write_str("Drop"),
            Self::CorruptSignature => f.write_str("CorruptSignature"),
            Self::ShortSignature => f.write_str("ShortSignature"),
            Self::Rewrite(_) => f.write_str("Rewrite"),
        }
    }
}

#[derive(Default)]
struct State {
    counts: HashMap<Operation, usize>,
    /// Faults applied so far, by [`Fault::kind`].
    applied: HashMap<&'static str, usize>,
    /// (operation, fault, how many more requests it applies to)
    queue: Vec<(Operation, Fault, usize)>,
}

/// One key's fault queue and request counters; clones share them. Faults queued for an
/// operation apply to its next requests in order.
#[derive(Clone, Default)]
pub struct FaultHandle(Arc<Mutex<State>>);

impl fmt::Debug for FaultHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("FaultHandle")
            .field("counts", &state.counts)
            .field("queued", &state.queue.len())
            .finish()
    }
}

impl FaultHandle {
    /// A handle with no faults and zero counts.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `fault` to the next `times` requests for `operation` (`usize::MAX`: all).
    pub fn inject(&self, operation: Operation, fault: Fault, times: usize) {
        self.lock().queue.push((operation, fault, times));
    }

    /// Removes every pending fault.
    pub fn clear(&self) {
        self.lock().queue.clear();
    }

    /// Faults applied so far (taken by a request), by [`Fault::kind`].
    #[must_use]
    pub fn applied(&self) -> std::collections::BTreeMap<&'static str, usize> {
        self.lock().applied.iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// Requests seen for `operation` so far, faulted ones included.
    #[must_use]
    pub fn count(&self, operation: Operation) -> usize {
        self.lock().counts.get(&operation).copied().unwrap_or(0)
    }

    /// Counts one request for `operation` and takes the fault due for it, if any.
    #[must_use]
    pub fn next(&self, operation: Operation) -> Option<Fault> {
        let mut state = self.lock();
        *state.counts.entry(operation).or_default() += 1;
        let due = state
            .queue
            .iter_mut()
            .find(|(o, _, left)| *o == operation && *left > 0)?;
        due.2 -= 1;
        let fault = due.1.clone();
        *state.applied.entry(fault.kind()).or_default() += 1;
        Some(fault)
    }

    /// Counts one request for `operation` and decides what to do with it, waiting out a
    /// [`Fault::Delay`] before returning.
    pub async fn intercept(&self, operation: Operation, dialect: &dyn Dialect) -> Intercept {
        match self.next(operation) {
            None => Intercept::Answer(None),
            Some(Fault::Throttle { retry_after }) => {
                Intercept::Respond(dialect.throttled(retry_after))
            }
            Some(Fault::ServerError) => Intercept::Respond(dialect.server_error()),
            Some(Fault::Denied) => Intercept::Respond(dialect.denied()),
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                Intercept::Answer(None)
            }
            Some(Fault::Drop) => Intercept::Drop,
            Some(fault @ (Fault::CorruptSignature | Fault::ShortSignature | Fault::Rewrite(_))) => {
                Intercept::Answer(Some(fault))
            }
        }
    }
}

/// An HTTP answer a fault stands in for.
#[derive(Clone, Debug)]
pub struct ErrorAnswer {
    /// The status.
    pub status: u16,
    /// Headers besides `Content-Length` (`Content-Type` included).
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: Value,
}

/// What an intercepted request gets.
#[derive(Debug)]
pub enum Intercept {
    /// This answer, without doing the operation.
    Respond(ErrorAnswer),
    /// Nothing: the connection is closed.
    Drop,
    /// The honest answer, edited by [`edit_answer`] with this fault when it succeeded.
    Answer(Option<Fault>),
}

/// How a provider says what a [`Fault`] means, on its wire.
pub trait Dialect: Send + Sync {
    /// The throttling answer.
    fn throttled(&self, retry_after: Option<Duration>) -> ErrorAnswer;
    /// A 5xx answer meant to be retried.
    fn server_error(&self) -> ErrorAnswer;
    /// A permission-denied answer.
    fn denied(&self) -> ErrorAnswer;
    /// Flips a bit of the signature in a successful sign answer, keeping it well formed
    /// and any integrity field consistent with the flipped bytes.
    fn corrupt_signature(&self, answer: &mut Value);
    /// Shortens the signature in a successful sign answer so it no longer decodes (with
    /// any integrity field consistent with the shortened bytes).
    fn shorten_signature(&self, answer: &mut Value);
}

/// Applies the answer-editing fault an [`Intercept::Answer`] carried to a successful
/// JSON answer.
pub fn edit_answer(dialect: &dyn Dialect, fault: Option<&Fault>, answer: &mut Value) {
    match fault {
        Some(Fault::CorruptSignature) => dialect.corrupt_signature(answer),
        Some(Fault::ShortSignature) => dialect.shorten_signature(answer),
        Some(Fault::Rewrite(rewrite)) => rewrite(answer),
        _ => {}
    }
}

/// `Retry-After` in whole seconds (rounded up, at least 1), as HTTP sends it.
#[must_use]
pub fn retry_after_header(retry_after: Duration) -> (&'static str, String) {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    ("Retry-After", seconds.max(1).to_string())
}

/// The per-call timeout of keys opened for fault cases ([`crate::fixture::FaultyKey`]).
pub const FAULT_CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// The retry deadline of keys opened for fault cases.
pub const FAULT_DEADLINE: Duration = Duration::from_secs(3);

/// The retry policy of keys opened for fault cases: quick backoff, many attempts, a
/// [`FAULT_DEADLINE`] that ends every case in seconds.
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
#[must_use]
pub fn fault_retry_policy() -> kmssh_core::RetryPolicy {
    kmssh_core::RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        deadline: FAULT_DEADLINE,
        max_attempts: 100,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_apply_in_order_and_run_out() {
        let handle = FaultHandle::new();
        handle.inject(Operation::Sign, Fault::Drop, 2);
        handle.inject(Operation::Sign, Fault::ServerError, 1);
        let seen: Vec<String> = (0..4)
            .map(|_| format!("{:?}", handle.next(Operation::Sign)))
            .collect();
        assert_eq!(
            seen,
            ["Some(Drop)", "Some(Drop)", "Some(ServerError)", "None"]
        );
        assert_eq!(handle.count(Operation::Sign), 4);
        assert_eq!(handle.count(Operation::GetPublicKey), 0);
        assert!(handle.next(Operation::GetPublicKey).is_none());
    }

    #[test]
    fn retry_after_is_whole_seconds() {
        assert_eq!(retry_after_header(Duration::from_millis(1500)).1, "2");
        assert_eq!(retry_after_header(Duration::ZERO).1, "1");
        assert_eq!(retry_after_header(Duration::from_secs(3)).1, "3");
    }
}
