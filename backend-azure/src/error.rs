//! Key Vault errors mapped to kmssh's kinds (which say whether a retry can help): the one
//! table, [`map_sdk_error`].

use std::time::Duration;

use kmssh_core::{Error, ErrorKind};

/// Which permission an operation needs, for 403 messages.
fn permission(operation: &str) -> &'static str {
    if operation == "sign" {
        "keys/sign"
    } else {
        "keys/get"
    }
}

/// Whether a transport error was a timeout (reqwest's, or an I/O `TimedOut`) anywhere in
/// its chain of causes.
fn timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The kind for an HTTP status from Key Vault.
fn kind_for_status(code: u16) -> ErrorKind {
    match code {
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        429 => ErrorKind::Throttled,
        400 | 409 => ErrorKind::InvalidInput,
        c if c >= 500 => ErrorKind::Unavailable,
        _ => ErrorKind::Unexpected,
    }
}

/// Maps an SDK error from `operation` to a kmssh error, keeping the SDK error (which
/// carries the service's message) as source, and a `Retry-After` hint when there is one.
pub(crate) fn map_sdk_error(operation: &'static str, err: azure_core::Error) -> Error {
    use azure_core::error::ErrorKind as Az;
    let (kind, detail, retry_after) = match err.kind() {
        Az::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let code = u16::from(*status);
            let service = error_code.clone().unwrap_or_default();
            let retry_after = raw_response
                .as_ref()
                .and_then(|r| {
                    r.headers()
                        .get_optional_str(&azure_core::http::headers::RETRY_AFTER)
                })
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let detail = match code {
                401 => format!("HTTP 401 {service}: the credential was not accepted"),
                403 => format!(
                    "HTTP 403 {service}: the identity lacks the {} permission (or the key forbids {operation})",
                    permission(operation)
                ),
                _ => format!("HTTP {code} {service}"),
            };
            (kind_for_status(code), detail, retry_after)
        }
        Az::Io | Az::Connection => {
            if timed_out(&err) {
                (ErrorKind::Timeout, "the call timed out".to_owned(), None)
            } else {
                (
                    ErrorKind::Unavailable,
                    "could not reach Key Vault".to_owned(),
                    None,
                )
            }
        }
        Az::Credential => (
            ErrorKind::PermissionDenied,
            "could not obtain a token".to_owned(),
            None,
        ),
        Az::DataConversion => (
            ErrorKind::Unavailable,
            "unreadable answer from Key Vault".to_owned(),
            None,
        ),
        // The SDK's kind is its own open enum (`Other`, later additions).
        _ => (ErrorKind::Unexpected, "unexpected failure".to_owned(), None),
    };
    let mut error = Error::new(kind, format!("Key Vault {operation}: {detail}")).with_source(err);
    if let Some(wait) = retry_after {
        error = error.with_retry_after(wait);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds_that_say_whether_to_retry() {
        for transient in [408, 429, 500, 503] {
            assert!(kind_for_status(transient).is_transient(), "{transient}");
        }
        for (code, kind) in [
            (401, ErrorKind::PermissionDenied),
            (403, ErrorKind::PermissionDenied),
            (404, ErrorKind::NotFound),
            (400, ErrorKind::InvalidInput),
        ] {
            assert_eq!(kind_for_status(code), kind, "{code}");
            assert!(!kind.is_transient());
        }
    }

    #[test]
    fn a_credential_failure_is_not_unavailable() {
        let failed = azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "ManagedIdentityCredential authentication failed: no IMDS endpoint",
        );
        let err = map_sdk_error("get", failed);
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(!err.is_temporary());
        assert!(err.to_string().contains("no IMDS endpoint"), "{err}");
    }
}
