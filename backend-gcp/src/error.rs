//! Cloud KMS errors mapped to kmssh's kinds and retry status: the one table,
//! [`map_sdk_error`]. It uses only the SDK error's public accessors (`status()`,
//! `http_status_code()`, `is_timeout()`, `is_serialization()`, `is_deserialization()`,
//! the `source()` chain), never the predicates gax documents as not public API.
//!
//! | what came back | kind | retried |
//! |---|---|---|
//! | a Google error (`{"error":{"status":…}}`) | by its status code, below | as below |
//! | `FAILED_PRECONDITION`, the version still `PENDING_GENERATION` or `PENDING_IMPORT` | invalid key | yes |
//! | `FAILED_PRECONDITION`, any other state (disabled, destroyed…) | invalid key | no |
//! | `UNAUTHENTICATED` / `PERMISSION_DENIED` / `NOT_FOUND` | unauthenticated / permission denied / not found | no |
//! | `RESOURCE_EXHAUSTED` / `UNAVAILABLE`, `INTERNAL`, `UNKNOWN`, `ABORTED` / `DEADLINE_EXCEEDED` | throttled / unavailable / timeout | yes |
//! | an HTTP error without a Google error (a proxy's page, a wrong endpoint) | by HTTP status: 401, 403, 404, 400 permanent; 408, 429, 5xx retried | as the status |
//! | the credentials could not make a token, temporarily (token endpoint down) | unavailable | yes |
//! | the credentials could not make a token, permanently (`invalid_grant`, bad file) | unauthenticated | no |
//! | no HTTP answer (connection refused or dropped) / the call timed out | unavailable / timeout | yes |

use google_cloud_gax::error::CredentialsError;
use google_cloud_gax::error::binding::BindingError;
use google_cloud_gax::error::rpc::{Code, Status, StatusDetails};
use kmssh_core::{Error, ErrorKind, ErrorStatus};

/// What Cloud KMS puts in a `FAILED_PRECONDITION`'s details (a `PreconditionFailure`
/// violation's `type`) for a version that becomes `ENABLED` by itself: worth waiting for.
pub(crate) const PENDING_VIOLATIONS: [&str; 2] = ["KEY_PENDING_GENERATION", "KEY_PENDING_IMPORT"];

/// The same states as the message names them ("… is not enabled, current state is:
/// PENDING_GENERATION."), for an answer that carries no details.
const PENDING_STATES: [&str; 2] = ["PENDING_GENERATION", "PENDING_IMPORT"];

/// Whether a `FAILED_PRECONDITION` says the version is still being generated or
/// imported: its details first, the message when there are none.
pub(crate) fn is_pending(status: &Status) -> bool {
    let in_details = status.details.iter().any(|detail| match detail {
        StatusDetails::PreconditionFailure(failure) => failure
            .violations
            .iter()
            .any(|v| PENDING_VIOLATIONS.contains(&v.r#type.as_str())),
        StatusDetails::ErrorInfo(info) => PENDING_VIOLATIONS.contains(&info.reason.as_str()),
        _ => false,
    });
    let has_precondition_details = status
        .details
        .iter()
        .any(|d| matches!(d, StatusDetails::PreconditionFailure(_)));
    in_details
        || (!has_precondition_details
            && PENDING_STATES.iter().any(|state| {
                status
                    .message
                    .contains(&format!("current state is: {state}"))
            }))
}

/// Kind, retry status and (for failures the SDK error does not describe well) a detail.
type Class = (ErrorKind, ErrorStatus, Option<String>);

fn temporary(kind: ErrorKind, detail: Option<String>) -> Class {
    (kind, ErrorStatus::Temporary, detail)
}

fn permanent(kind: ErrorKind, detail: Option<String>) -> Class {
    (kind, ErrorStatus::Permanent, detail)
}

/// A Google error (`{"error":{"code","message","status","details"}}`).
fn from_status(status: &Status, http_status: Option<u16>) -> Class {
    match status.code {
        Code::NotFound => permanent(ErrorKind::NotFound, None),
        Code::Unauthenticated => permanent(
            ErrorKind::Unauthenticated,
            Some("the credentials were refused".into()),
        ),
        Code::PermissionDenied => permanent(ErrorKind::PermissionDenied, None),
        Code::FailedPrecondition if is_pending(status) => temporary(
            ErrorKind::InvalidKey,
            Some("the key version is not ready yet".into()),
        ),
        Code::FailedPrecondition => permanent(ErrorKind::InvalidKey, None),
        Code::ResourceExhausted => temporary(ErrorKind::Throttled, None),
        // A JSON error body without a status Google knows: judge by the HTTP status.
        Code::Unknown => match http_status {
            Some(code) => from_http_status(code),
            None => temporary(ErrorKind::Unavailable, None),
        },
        Code::Unavailable | Code::Internal | Code::Aborted => {
            temporary(ErrorKind::Unavailable, None)
        }
        Code::DeadlineExceeded => temporary(ErrorKind::Timeout, None),
        Code::InvalidArgument | Code::OutOfRange => permanent(ErrorKind::InvalidInput, None),
        // `Code` is the provider's open enum (OK, CANCELLED, ALREADY_EXISTS…).
        _ => permanent(ErrorKind::Unexpected, None),
    }
}

/// An HTTP error whose body is not a Google error: a proxy's or load balancer's page,
/// or an endpoint that is not Cloud KMS.
fn from_http_status(code: u16) -> Class {
    let not_google = "(not a Cloud KMS error)";
    match code {
        401 => permanent(
            ErrorKind::Unauthenticated,
            Some(format!("HTTP 401 {not_google}")),
        ),
        403 => permanent(
            ErrorKind::PermissionDenied,
            Some(format!(
                "HTTP 403 {not_google} (a proxy or firewall refused it?)"
            )),
        ),
        404 => permanent(
            ErrorKind::NotFound,
            Some(format!(
                "HTTP 404 {not_google} (is the endpoint Cloud KMS?)"
            )),
        ),
        407 => permanent(
            ErrorKind::Config,
            Some("HTTP 407: the proxy wants credentials".into()),
        ),
        408 => temporary(ErrorKind::Timeout, Some(format!("HTTP 408 {not_google}"))),
        429 => temporary(ErrorKind::Throttled, Some(format!("HTTP 429 {not_google}"))),
        500..=599 => temporary(
            ErrorKind::Unavailable,
            Some(format!("HTTP {code} {not_google}")),
        ),
        400..=499 => permanent(
            ErrorKind::InvalidInput,
            Some(format!("HTTP {code} {not_google}")),
        ),
        _ => permanent(
            ErrorKind::Unexpected,
            Some(format!("HTTP {code} {not_google}")),
        ),
    }
}

/// The first cause of type `T` in `err`'s source chain.
fn cause<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = err.source();
    while let Some(cause) = next {
        if let Some(found) = cause.downcast_ref::<T>() {
            return Some(found);
        }
        next = cause.source();
    }
    None
}

fn classify(err: &google_cloud_kms_v1::Error) -> Class {
    if let Some(status) = err.status() {
        return from_status(status, err.http_status_code());
    }
    // An HTTP answer whose body is not a Google error: its status says what it is. This
    // comes before anything that looks at the transport.
    if let Some(code) = err.http_status_code() {
        return from_http_status(code);
    }
    if let Some(credentials) = cause::<CredentialsError>(err) {
        return if credentials.is_transient() {
            temporary(
                ErrorKind::Unavailable,
                Some("could not obtain an access token (temporary)".into()),
            )
        } else {
            permanent(
                ErrorKind::Unauthenticated,
                Some("could not obtain an access token".into()),
            )
        };
    }
    if err.is_timeout() {
        return temporary(ErrorKind::Timeout, Some("the call timed out".into()));
    }
    if err.is_serialization() || cause::<BindingError>(err).is_some() {
        return permanent(
            ErrorKind::InvalidInput,
            Some("the request could not be formed".into()),
        );
    }
    if err.is_deserialization() {
        return permanent(
            ErrorKind::Unexpected,
            Some("the answer is not a Cloud KMS response (is the endpoint Cloud KMS?)".into()),
        );
    }
    // No HTTP answer at all: the connection failed, was refused or dropped.
    temporary(
        ErrorKind::Unavailable,
        Some("could not reach Cloud KMS".into()),
    )
}

/// Maps an SDK error from `operation` to a kmssh error, keeping the SDK error as source.
/// An answer from Cloud KMS carries its code and message in that source, so the message
/// here only names the operation (and, where it helps, what kmssh concluded).
pub(crate) fn map_sdk_error(operation: &str, err: google_cloud_kms_v1::Error) -> Error {
    let (kind, status, detail) = classify(&err);
    let message = match detail {
        Some(detail) => format!("Cloud KMS {operation}: {detail}"),
        None => format!("Cloud KMS {operation}"),
    };
    let mut error = Error::new(kind, message).with_status(status);
    if let Some(code) = err.http_status_code() {
        error = error.with_context("http_status", code);
    }
    error.with_source(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Google error as Cloud KMS sends it on the wire, through the SDK's own types.
    fn answered(json: serde_json::Value) -> Error {
        let status: Status = serde_json::from_value(json).expect("a google.rpc.Status");
        map_sdk_error("getPublicKey", google_cloud_kms_v1::Error::service(status))
    }

    /// `google.rpc.Code` numbers, as the SDK's `Status` holds them.
    fn coded(status: &str) -> Error {
        let code = match status {
            "DEADLINE_EXCEEDED" => 4,
            "NOT_FOUND" => 5,
            "PERMISSION_DENIED" => 7,
            "RESOURCE_EXHAUSTED" => 8,
            "UNAVAILABLE" => 14,
            "UNAUTHENTICATED" => 16,
            _ => 3,
        };
        answered(serde_json::json!({"code": code, "message": "m"}))
    }

    const NAME: &str = "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1";

    fn precondition(state: &str, violation: Option<&str>) -> Error {
        let mut json = serde_json::json!({
            "code": 9,
            "message": format!("{NAME} is not enabled, current state is: {state}."),
        });
        if let Some(violation) = violation {
            json["details"] = serde_json::json!([{
                "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
                "violations": [{"type": violation, "subject": NAME}],
            }]);
        }
        answered(json)
    }

    #[test]
    fn codes_map_to_kinds_and_retry_status() {
        for (status, kind, retry) in [
            ("NOT_FOUND", ErrorKind::NotFound, ErrorStatus::Permanent),
            (
                "UNAUTHENTICATED",
                ErrorKind::Unauthenticated,
                ErrorStatus::Permanent,
            ),
            (
                "PERMISSION_DENIED",
                ErrorKind::PermissionDenied,
                ErrorStatus::Permanent,
            ),
            (
                "RESOURCE_EXHAUSTED",
                ErrorKind::Throttled,
                ErrorStatus::Temporary,
            ),
            (
                "UNAVAILABLE",
                ErrorKind::Unavailable,
                ErrorStatus::Temporary,
            ),
            (
                "DEADLINE_EXCEEDED",
                ErrorKind::Timeout,
                ErrorStatus::Temporary,
            ),
            (
                "INVALID_ARGUMENT",
                ErrorKind::InvalidInput,
                ErrorStatus::Permanent,
            ),
        ] {
            let err = coded(status);
            assert_eq!((err.kind(), err.status()), (kind, retry), "{status}: {err}");
        }
    }

    /// The shape Cloud KMS sends for a version still being generated (a
    /// `PreconditionFailure` whose violation type is `KEY_PENDING_GENERATION`) is worth
    /// waiting for; a disabled or destroyed version is not.
    #[test]
    fn only_a_pending_version_is_retried() {
        let pending = precondition("PENDING_GENERATION", Some("KEY_PENDING_GENERATION"));
        assert_eq!(
            (pending.kind(), pending.status()),
            (ErrorKind::InvalidKey, ErrorStatus::Temporary),
            "{pending}"
        );
        for (state, violation) in [
            ("DISABLED", Some("KEY_DISABLED")),
            ("DESTROYED", Some("KEY_DESTROYED")),
            ("DESTROY_SCHEDULED", None),
            ("DISABLED", None),
        ] {
            let err = precondition(state, violation);
            assert_eq!(
                (err.kind(), err.status()),
                (ErrorKind::InvalidKey, ErrorStatus::Permanent),
                "{state}: {err}"
            );
        }
        // Details win over the message: a detail that says DISABLED is not retried
        // whatever the message says.
        let err = precondition("PENDING_GENERATION", Some("KEY_DISABLED"));
        assert_eq!(err.status(), ErrorStatus::Permanent, "{err}");
        // Without details, the message is what there is.
        let err = precondition("PENDING_GENERATION", None);
        assert_eq!(err.status(), ErrorStatus::Temporary, "{err}");
        // An API not enabled in the project is FAILED_PRECONDITION too: not retried.
        let err = answered(serde_json::json!({
            "code": 9, "status": "FAILED_PRECONDITION",
            "message": "Cloud KMS API has not been used in project 1 before or it is disabled.",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                         "reason": "SERVICE_DISABLED", "domain": "googleapis.com"}],
        }));
        assert_eq!(err.status(), ErrorStatus::Permanent, "{err}");
    }

    #[test]
    fn the_service_message_is_shown_once() {
        let shown = precondition("DISABLED", Some("KEY_DISABLED")).to_string();
        assert_eq!(shown.matches("current state is").count(), 1, "{shown}");
        assert!(
            shown.starts_with("invalid key (permanent): Cloud KMS getPublicKey: "),
            "{shown}"
        );
    }

    #[test]
    fn a_client_side_timeout_is_temporary() {
        let err = map_sdk_error(
            "asymmetricSign",
            google_cloud_kms_v1::Error::timeout("attempt timeout"),
        );
        assert_eq!(
            (err.kind(), err.status()),
            (ErrorKind::Timeout, ErrorStatus::Temporary)
        );
    }
}
