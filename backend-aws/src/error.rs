//! AWS KMS errors mapped to kmssh's kinds (which say whether a retry can help).

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use kmssh_core::{Error, ErrorKind};

/// The kind for an AWS KMS error code. The Rust SDK has no typed variant for
/// `ThrottlingException`, so codes are matched as strings throughout.
fn kind_for_code(code: &str) -> ErrorKind {
    match code {
        "NotFoundException" | "InvalidArnException" => ErrorKind::NotFound,
        "AccessDeniedException"
        | "AccessDeniedExceptionMessage"
        | "UnrecognizedClientException" => ErrorKind::PermissionDenied,
        "DisabledException"
        | "KMSInvalidStateException"
        | "InvalidKeyUsageException"
        | "UnsupportedOperationException"
        | "IncorrectKeyException"
        | "KeyUnavailableException" => ErrorKind::InvalidKey,
        "ThrottlingException"
        | "LimitExceededException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException" => ErrorKind::Throttled,
        "KMSInternalException"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => ErrorKind::Unavailable,
        "DependencyTimeoutException" => ErrorKind::Timeout,
        "ValidationException" | "InvalidGrantTokenException" => ErrorKind::InvalidInput,
        "ExpiredTokenException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken" => ErrorKind::Config,
        _ => ErrorKind::Unexpected,
    }
}

/// Maps an SDK error from `operation` to a kmssh error, keeping the SDK error as source.
pub(crate) fn map_sdk_error<E>(
    operation: &'static str,
    err: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let (kind, detail) = match &err {
        SdkError::ServiceError(_) => {
            let code = err.code().unwrap_or("unknown");
            let kind = match (kind_for_code(code), status) {
                (ErrorKind::Unexpected, Some(429)) => ErrorKind::Throttled,
                (ErrorKind::Unexpected, Some(s)) if s >= 500 => ErrorKind::Unavailable,
                (kind, _) => kind,
            };
            (
                kind,
                format!("{code}: {}", err.message().unwrap_or("no message")),
            )
        }
        SdkError::TimeoutError(_) => (ErrorKind::Timeout, "the call timed out".to_owned()),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            (ErrorKind::Timeout, "connecting timed out".to_owned())
        }
        SdkError::DispatchFailure(failure) if failure.is_user() => (
            ErrorKind::Config,
            "the request could not be sent (configuration)".to_owned(),
        ),
        SdkError::DispatchFailure(_) => {
            (ErrorKind::Unavailable, "could not reach AWS KMS".to_owned())
        }
        SdkError::ResponseError(_) => (
            ErrorKind::Unavailable,
            "unreadable response from AWS KMS".to_owned(),
        ),
        SdkError::ConstructionFailure(_) => (
            ErrorKind::Config,
            "the request could not be built".to_owned(),
        ),
        _ => (ErrorKind::Unexpected, "unknown SDK failure".to_owned()),
    };
    let mut error = Error::new(kind, format!("AWS KMS {operation}: {detail}")).with_source(err);
    if let Some(status) = status {
        error = error.with_context("http_status", status);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds_that_say_whether_to_retry() {
        assert_eq!(kind_for_code("ThrottlingException"), ErrorKind::Throttled);
        assert!(kind_for_code("ThrottlingException").is_transient());
        assert!(kind_for_code("KMSInternalException").is_transient());
        assert!(kind_for_code("DependencyTimeoutException").is_transient());
        for permanent in [
            "NotFoundException",
            "DisabledException",
            "KMSInvalidStateException",
            "InvalidKeyUsageException",
            "AccessDeniedException",
            "ValidationException",
        ] {
            assert!(!kind_for_code(permanent).is_transient(), "{permanent}");
        }
    }
}
