//! Key Vault errors mapped to kmssh's kinds (which say whether a retry can help): the one
//! table, [`map_sdk_error`].

use std::time::Duration;

use kmssh_core::{Error, ErrorKind};

use crate::credential::AudienceMismatch;

/// Which permission an operation needs, for 403 messages.
fn permission(operation: &str) -> &'static str {
    if operation == "sign" {
        "keys/sign"
    } else {
        "keys/get"
    }
}

/// Key Vault's error body: `{"error":{"code","message","innererror":{"code"}}}`.
#[derive(Debug, Default, PartialEq, Eq)]
struct ServiceError {
    code: String,
    message: String,
    inner: Option<String>,
}

impl ServiceError {
    fn parse(body: &[u8], header_code: Option<&str>) -> Self {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let error = &value["error"];
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        let inner = error
            .get("innererror")
            .or_else(|| error.get("innerError"))
            .and_then(|i| text(&i["code"]));
        Self {
            code: text(&error["code"])
                .or_else(|| header_code.map(str::to_owned))
                .unwrap_or_default(),
            // One line: the service separates its details with CR LF.
            message: text(&error["message"])
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            inner,
        }
    }

    /// `Forbidden/ForbiddenByFirewall: message`.
    fn describe(&self) -> String {
        let mut code = self.code.clone();
        if let Some(inner) = &self.inner {
            code = format!("{code}/{inner}");
        }
        match (code.is_empty(), self.message.is_empty()) {
            (true, true) => String::new(),
            (false, true) => format!(" {code}"),
            (true, false) => format!(": {}", self.message),
            (false, false) => format!(" {code}: {}", self.message),
        }
    }
}

/// What a 403 means: Key Vault answers 403 for network rules, for keys that are
/// disabled, expired or lack the operation, and for identities without the permission.
fn forbidden(service: &ServiceError, operation: &str) -> (ErrorKind, String) {
    let inner = service.inner.as_deref().unwrap_or_default();
    let message = service.message.to_ascii_lowercase();
    if inner.starts_with("ForbiddenBy") && inner != "ForbiddenByRbac" {
        return (
            ErrorKind::PermissionDenied,
            "the vault's network rules (firewall, private endpoint) refused this client".into(),
        );
    }
    if inner == "KeyDisabled" || message.contains("disabled key") {
        return (
            ErrorKind::InvalidKey,
            "the key is disabled: enable it to sign".into(),
        );
    }
    if inner == "KeyExpired"
        || inner == "KeyNotYetValid"
        || message.contains("expired key")
        || message.contains("not yet valid")
        || message.contains("is expired")
    {
        return (
            ErrorKind::InvalidKey,
            "the key is outside its validity window (exp/nbf)".into(),
        );
    }
    if message.contains("not permitted on this key") || message.contains("not allowed on this key")
    {
        return (
            ErrorKind::InvalidKey,
            format!("the key's key_ops do not allow {operation}"),
        );
    }
    if inner == "ForbiddenByRbac"
        || inner == "AccessDenied"
        || message.contains("does not have keys")
        || message.contains("not authorized to perform action")
    {
        return (
            ErrorKind::PermissionDenied,
            format!(
                "the identity lacks the {} permission (role \"Key Vault Crypto User\", an access policy with keys get and sign, or on a Managed HSM the local role \"Managed HSM Crypto User\")",
                permission(operation)
            ),
        );
    }
    (
        ErrorKind::PermissionDenied,
        "the vault refused the request".into(),
    )
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

/// Whether the guard refused a token for another audience, anywhere in the causes.
fn audience_mismatch(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<AudienceMismatch>().is_some() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The kind for an HTTP status from Key Vault (403 is refined by [`forbidden`]).
fn kind_for_status(code: u16) -> ErrorKind {
    match code {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        429 => ErrorKind::Throttled,
        400 | 409 => ErrorKind::InvalidInput,
        c if c >= 500 => ErrorKind::Unavailable,
        _ => ErrorKind::Unexpected,
    }
}

/// Maps an SDK error from `operation` to a kmssh error, keeping Key Vault's error code and
/// message (and the SDK error as source), and a `Retry-After` hint when there is one. A
/// credential that cannot give a token is [`ErrorKind::Unauthenticated`], never retried.
pub(crate) fn map_sdk_error(operation: &'static str, err: azure_core::Error) -> Error {
    use azure_core::error::ErrorKind as Az;
    let (kind, detail, retry_after) = match err.kind() {
        Az::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let code = u16::from(*status);
            let service = raw_response
                .as_ref()
                .map(|r| ServiceError::parse(r.body(), error_code.as_deref()))
                .unwrap_or_else(|| ServiceError {
                    code: error_code.clone().unwrap_or_default(),
                    ..ServiceError::default()
                });
            let retry_after = raw_response
                .as_ref()
                .and_then(|r| {
                    r.headers()
                        .get_optional_str(&azure_core::http::headers::RETRY_AFTER)
                })
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let said = service.describe();
            let (kind, detail) = match code {
                401 => (
                    ErrorKind::Unauthenticated,
                    format!("HTTP 401{said} (the vault did not accept the token)"),
                ),
                403 => {
                    let (kind, why) = forbidden(&service, operation);
                    (kind, format!("HTTP 403{said} ({why})"))
                }
                _ => (kind_for_status(code), format!("HTTP {code}{said}")),
            };
            (kind, detail, retry_after)
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
        Az::Credential if audience_mismatch(&err) => (
            ErrorKind::Config,
            "refused to authenticate".to_owned(),
            None,
        ),
        Az::Credential => (
            ErrorKind::Unauthenticated,
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
            (401, ErrorKind::Unauthenticated),
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
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert!(!err.is_temporary());
        assert!(err.to_string().contains("no IMDS endpoint"), "{err}");
    }

    fn forbidden_as(body: &str, operation: &str) -> (ErrorKind, String) {
        let service = ServiceError::parse(body.as_bytes(), None);
        let (kind, why) = forbidden(&service, operation);
        (kind, format!("{}: {why}", service.describe()))
    }

    #[test]
    fn a_403_keeps_key_vaults_reason() {
        let (kind, text) = forbidden_as(
            r#"{"error":{"code":"Forbidden","message":"Client address is not authorized and caller is not a trusted service.\r\nClient address: 203.0.113.9","innererror":{"code":"ForbiddenByFirewall"}}}"#,
            "sign",
        );
        assert_eq!(kind, ErrorKind::PermissionDenied);
        assert!(text.contains("ForbiddenByFirewall"), "{text}");
        assert!(text.contains("Client address: 203.0.113.9"), "{text}");
        assert!(
            text.contains("firewall") && !text.contains("keys/sign"),
            "{text}"
        );

        let (kind, text) = forbidden_as(
            r#"{"error":{"code":"Forbidden","message":"Operation sign is not allowed on a disabled key.","innererror":{"code":"KeyDisabled"}}}"#,
            "sign",
        );
        assert_eq!(kind, ErrorKind::InvalidKey, "{text}");

        let (kind, text) = forbidden_as(
            r#"{"error":{"code":"Forbidden","message":"Operation sign is not permitted on this key."}}"#,
            "sign",
        );
        assert_eq!(kind, ErrorKind::InvalidKey, "{text}");
        assert!(text.contains("key_ops"), "{text}");

        let (kind, text) = forbidden_as(
            r#"{"error":{"code":"Forbidden","message":"Caller is not authorized to perform action on resource.","innererror":{"code":"ForbiddenByRbac"}}}"#,
            "sign",
        );
        assert_eq!(kind, ErrorKind::PermissionDenied);
        assert!(text.contains("keys/sign"), "{text}");

        let (kind, text) = forbidden_as(
            r#"{"error":{"code":"Forbidden","message":"Something new."}}"#,
            "get",
        );
        assert_eq!(kind, ErrorKind::PermissionDenied);
        assert!(
            text.contains("Something new.") && !text.contains("keys/"),
            "{text}"
        );
    }
}
