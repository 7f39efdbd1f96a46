//! The one error type every kmssh crate returns.
//!
//! An [`Error`] says *what kind* of thing went wrong ([`ErrorKind`]), *whether trying
//! again can help* ([`ErrorStatus`]), a human message, a few `key=value` context pairs
//! (the key URI, the field, the operation), and the provider's own error as `source`.

use std::error::Error as StdError;
use std::fmt;

/// Shorthand for results carrying a kmssh [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, independent of the provider that reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The key (or key version) does not exist, or the caller may not know it exists.
    NotFound,
    /// No credentials were found, or the provider refused the ones given (expired,
    /// malformed, revoked): the message names the credential sources tried.
    Unauthenticated,
    /// The caller's identity lacks a permission (for example `kms:Sign`).
    PermissionDenied,
    /// The key exists but cannot be used: malformed, disabled, wrong usage, pending deletion.
    InvalidKey,
    /// The key or subject uses an algorithm or curve kmssh does not support.
    UnsupportedAlgorithm,
    /// The provider asked us to slow down.
    Throttled,
    /// The provider could not be reached or failed on its side (5xx, dropped connection).
    Unavailable,
    /// A call or the overall deadline ran out.
    Timeout,
    /// A signature did not verify against the key's public key, or could not be decoded.
    BadSignature,
    /// The caller passed a value that is not acceptable (a field, a digest, a file).
    InvalidInput,
    /// A key URI could not be parsed, or names a scheme nobody knows.
    InvalidUri,
    /// The key URI names a backend that exists but is not compiled into this binary.
    BackendNotCompiled,
    /// Configuration (credentials, region, options) is missing or contradictory.
    Config,
    /// Something that should not happen: a bug in kmssh or an unexpected provider answer.
    Unexpected,
}

impl ErrorKind {
    /// Whether errors of this kind are worth retrying by default.
    #[must_use]
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Throttled | Self::Unavailable | Self::Timeout)
    }

    /// A short stable name, used in messages and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not found",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission denied",
            Self::InvalidKey => "invalid key",
            Self::UnsupportedAlgorithm => "unsupported algorithm",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::BadSignature => "bad signature",
            Self::InvalidInput => "invalid input",
            Self::InvalidUri => "invalid key URI",
            Self::BackendNotCompiled => "backend not compiled in",
            Self::Config => "configuration",
            Self::Unexpected => "unexpected",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether retrying the failed operation can succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorStatus {
    /// Retrying the same call will fail the same way.
    Permanent,
    /// Retrying later may succeed (throttling, a 5xx, a timeout).
    Temporary,
    /// It was temporary, but kept failing after every retry the deadline allowed.
    Persistent,
}

impl fmt::Display for ErrorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Permanent => "permanent",
            Self::Temporary => "temporary",
            Self::Persistent => "persistent",
        })
    }
}

/// A kmssh error: kind, retry status, message, context, and the underlying cause.
pub struct Error {
    kind: ErrorKind,
    status: ErrorStatus,
    message: String,
    context: Vec<(&'static str, String)>,
    retry_after: Option<std::time::Duration>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl Error {
    /// A new error; its status is temporary for throttling, unavailability and timeouts,
    /// permanent otherwise.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: if kind.is_transient() {
                ErrorStatus::Temporary
            } else {
                ErrorStatus::Permanent
            },
            message: message.into(),
            context: Vec::new(),
            retry_after: None,
            source: None,
        }
    }

    /// Records the provider's hint of how long to wait before retrying (`Retry-After`).
    #[must_use]
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// The provider's retry-after hint, if it gave one.
    #[must_use]
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }

    /// Adds a `key=value` pair shown after the message (the key URI, a field name…).
    #[must_use]
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.context.push((key, value.to_string()));
        self
    }

    /// Keeps the provider's (or a library's) error as the cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Overrides the retry status.
    #[must_use]
    pub fn with_status(mut self, status: ErrorStatus) -> Self {
        self.status = status;
        self
    }

    /// Marks a temporary error as persistent: the retries ran out. Others are unchanged.
    #[must_use]
    pub fn persist(mut self) -> Self {
        if self.status == ErrorStatus::Temporary {
            self.status = ErrorStatus::Persistent;
        }
        self
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying can help.
    #[must_use]
    pub fn status(&self) -> ErrorStatus {
        self.status
    }

    /// True when a retry may succeed.
    #[must_use]
    pub fn is_temporary(&self) -> bool {
        self.status == ErrorStatus::Temporary
    }

    /// The human message, without kind, status or context.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The value of a context key, if set.
    #[must_use]
    pub fn context(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Error {
    /// Kind, status, message and context: this error without its causes.
    fn fmt_head(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.kind, self.status, self.message)?;
        for (i, (key, value)) in self.context.iter().enumerate() {
            let sep = if i == 0 { " [" } else { ", " };
            write!(f, "{sep}{key}={value}")?;
        }
        if !self.context.is_empty() {
            f.write_str("]")?;
        }
        Ok(())
    }

    /// The causes below this error, outermost first, as each displays itself. A cause
    /// that is itself a kmssh [`Error`] shows only its own head (its causes follow it),
    /// and a cause whose text its parent already showed is left out.
    #[must_use]
    pub fn causes(&self) -> Vec<String> {
        let mut causes: Vec<String> = Vec::new();
        let mut shown = self.message.clone();
        let mut next = StdError::source(self);
        while let Some(cause) = next {
            let text = match cause.downcast_ref::<Error>() {
                Some(inner) => Head(inner).to_string(),
                None => cause.to_string(),
            };
            if !text.is_empty() && !shown.contains(&text) {
                shown = text.clone();
                causes.push(text);
            }
            next = cause.source();
        }
        causes
    }
}

/// Displays an [`Error`] without its causes.
struct Head<'a>(&'a Error);

impl fmt::Display for Head<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_head(f)
    }
}

/// One line: `kind (status): message [context]: cause: cause…`, so a user reads why, not
/// only what. The alternate form (`{:#}`) puts each cause on its own `caused by:` line.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_head(f)?;
        for cause in self.causes() {
            if f.alternate() {
                write!(f, "\n  caused by: {cause}")?;
            } else {
                write!(f, ": {cause}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind)
            .field("status", &self.status)
            .field("message", &self.message);
        if !self.context.is_empty() {
            d.field("context", &self.context);
        }
        if let Some(source) = &self.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_kind_and_persist_only_touches_temporary() {
        let throttled = Error::new(ErrorKind::Throttled, "slow down");
        assert!(throttled.is_temporary());
        assert_eq!(throttled.persist().status(), ErrorStatus::Persistent);

        let missing = Error::new(ErrorKind::NotFound, "no such key");
        assert_eq!(missing.status(), ErrorStatus::Permanent);
        assert_eq!(missing.persist().status(), ErrorStatus::Permanent);
    }

    #[test]
    fn display_is_one_line_with_context_and_source_is_kept() {
        let err = Error::new(ErrorKind::InvalidInput, "principal is empty")
            .with_context("field", "principals[0]")
            .with_context("uri", "local:ephemeral")
            .with_source(std::io::Error::other("inner"));
        assert_eq!(
            err.to_string(),
            "invalid input (permanent): principal is empty [field=principals[0], uri=local:ephemeral]: inner"
        );
        assert_eq!(err.context("field"), Some("principals[0]"));
        assert_eq!(
            StdError::source(&err).map(ToString::to_string).as_deref(),
            Some("inner")
        );
    }

    #[test]
    fn display_shows_the_cause_chain_once() {
        let io = std::io::Error::other("connection refused");
        let inner = Error::new(ErrorKind::Unavailable, "cannot reach the endpoint").with_source(io);
        let outer = Error::new(ErrorKind::Config, "cannot create the client").with_source(inner);
        assert_eq!(
            outer.to_string(),
            "configuration (permanent): cannot create the client: \
             unavailable (temporary): cannot reach the endpoint: connection refused"
        );
        assert_eq!(
            format!("{outer:#}"),
            "configuration (permanent): cannot create the client\n  \
             caused by: unavailable (temporary): cannot reach the endpoint\n  \
             caused by: connection refused"
        );
        // A cause whose text the message already carries is not repeated.
        let echoed = Error::new(ErrorKind::InvalidKey, "bad key: not PEM")
            .with_source(std::io::Error::other("not PEM"));
        assert_eq!(
            echoed.to_string(),
            "invalid key (permanent): bad key: not PEM"
        );
    }
}
