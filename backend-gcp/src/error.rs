//! Cloud KMS errors mapped to kmssh's kinds and retry status: the one table,
//! [`map_sdk_error`].

use google_cloud_gax::error::rpc::Code;
use kmssh_core::{Error, ErrorKind, ErrorStatus};

/// Maps an SDK error from `operation` to a kmssh error, keeping the SDK error as source.
/// An answer from Cloud KMS carries its code and message in that source, so the message
/// here only names the operation; other failures say what kmssh concluded.
pub(crate) fn map_sdk_error(operation: &str, err: google_cloud_kms_v1::Error) -> Error {
    let (kind, status, detail) = match err.status() {
        Some(status) => {
            let (kind, retry) = match status.code {
                Code::NotFound => (ErrorKind::NotFound, ErrorStatus::Permanent),
                Code::PermissionDenied | Code::Unauthenticated => {
                    (ErrorKind::PermissionDenied, ErrorStatus::Permanent)
                }
                // A version still being generated or not enabled yet: worth waiting for.
                Code::FailedPrecondition => (ErrorKind::InvalidKey, ErrorStatus::Temporary),
                Code::ResourceExhausted => (ErrorKind::Throttled, ErrorStatus::Temporary),
                Code::Unavailable | Code::Internal | Code::Unknown | Code::Aborted => {
                    (ErrorKind::Unavailable, ErrorStatus::Temporary)
                }
                Code::DeadlineExceeded => (ErrorKind::Timeout, ErrorStatus::Temporary),
                Code::InvalidArgument | Code::OutOfRange => {
                    (ErrorKind::InvalidInput, ErrorStatus::Permanent)
                }
                // `Code` is the provider's open enum (OK, CANCELLED, ALREADY_EXISTS…).
                _ => (ErrorKind::Unexpected, ErrorStatus::Permanent),
            };
            (kind, retry, None)
        }
        None if err.is_timeout() => (
            ErrorKind::Timeout,
            ErrorStatus::Temporary,
            Some("the call timed out".to_owned()),
        ),
        None if err.is_authentication() => (
            ErrorKind::PermissionDenied,
            ErrorStatus::Permanent,
            Some("could not obtain credentials".to_owned()),
        ),
        None if err.is_io()
            || err.is_connect()
            || err.is_transport()
            || err.is_deserialization() =>
        {
            (
                ErrorKind::Unavailable,
                ErrorStatus::Temporary,
                Some("could not reach Cloud KMS".to_owned()),
            )
        }
        None => match err.http_status_code() {
            Some(429) => (
                ErrorKind::Throttled,
                ErrorStatus::Temporary,
                Some("HTTP 429".to_owned()),
            ),
            Some(code) if code >= 500 => (
                ErrorKind::Unavailable,
                ErrorStatus::Temporary,
                Some(format!("HTTP {code}")),
            ),
            _ => (
                ErrorKind::Unexpected,
                ErrorStatus::Permanent,
                Some("unexpected failure".to_owned()),
            ),
        },
    };
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
    use google_cloud_gax::error::CredentialsError;
    use google_cloud_gax::error::rpc::Status;

    use super::*;

    fn answered(code: Code) -> Error {
        let status = Status::default()
            .set_code(code)
            .set_message("Key version projects/p/…/cryptoKeyVersions/1 is DISABLED");
        map_sdk_error("getPublicKey", google_cloud_kms_v1::Error::service(status))
    }

    #[test]
    fn codes_map_to_kinds_and_retry_status() {
        let err = answered(Code::NotFound);
        assert_eq!(
            (err.kind(), err.status()),
            (ErrorKind::NotFound, ErrorStatus::Permanent)
        );
        let err = answered(Code::FailedPrecondition);
        assert_eq!(
            (err.kind(), err.status()),
            (ErrorKind::InvalidKey, ErrorStatus::Temporary)
        );
        for code in [Code::PermissionDenied, Code::Unauthenticated] {
            let err = answered(code);
            assert_eq!(
                (err.kind(), err.status()),
                (ErrorKind::PermissionDenied, ErrorStatus::Permanent)
            );
        }
        assert_eq!(
            answered(Code::ResourceExhausted).kind(),
            ErrorKind::Throttled
        );
        assert_eq!(answered(Code::Unavailable).kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn the_service_message_is_shown_once() {
        let shown = answered(Code::FailedPrecondition).to_string();
        assert_eq!(shown.matches("is DISABLED").count(), 1, "{shown}");
        assert!(
            shown.starts_with("invalid key (temporary): Cloud KMS getPublicKey: "),
            "{shown}"
        );
    }

    #[test]
    fn a_credential_failure_is_not_unavailable() {
        let err = map_sdk_error(
            "asymmetricSign",
            google_cloud_kms_v1::Error::authentication(CredentialsError::from_msg(
                true,
                "metadata server unreachable",
            )),
        );
        assert_eq!(
            (err.kind(), err.status()),
            (ErrorKind::PermissionDenied, ErrorStatus::Permanent)
        );
        assert!(
            err.to_string().contains("metadata server unreachable"),
            "{err}"
        );
    }
}
