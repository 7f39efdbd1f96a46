//! AWS KMS errors mapped to kmssh's kinds (which say whether a retry can help): the one
//! table, [`map_sdk_error`].

use aws_credential_types::provider::error::CredentialsError;
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

/// The first cause of type `T` in an error's chain, the error itself included.
fn find_cause<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        cause = e.source();
    }
    None
}

/// The kind for a failure of the credential chain: missing or misconfigured credentials
/// are configuration, a provider that failed or timed out is an authentication failure.
/// Never "unavailable": retrying does not make credentials appear.
fn kind_for_credentials(err: &CredentialsError) -> ErrorKind {
    match err {
        CredentialsError::CredentialsNotLoaded(_) | CredentialsError::InvalidConfiguration(_) => {
            ErrorKind::Config
        }
        _ => ErrorKind::PermissionDenied,
    }
}

/// Maps an SDK error from `operation` to a kmssh error, keeping the provider's error as
/// source: the operation's own error for an answer from KMS (its code and message are in
/// this error's message already), else the SDK error with its chain of causes.
pub(crate) fn map_sdk_error<E>(
    operation: &'static str,
    err: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let credentials = match &err {
        SdkError::ServiceError(_) => None,
        other => find_cause::<CredentialsError>(other).map(kind_for_credentials),
    };
    let (kind, detail) = match (&err, credentials) {
        (SdkError::ServiceError(_), _) => {
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
        (_, Some(kind)) => (
            kind,
            "no usable AWS credentials (the default chain: environment, profile, SSO, \
             credential_process, web identity, IMDS)"
                .to_owned(),
        ),
        (SdkError::TimeoutError(_), None) => (ErrorKind::Timeout, "the call timed out".to_owned()),
        (SdkError::DispatchFailure(failure), None) if failure.is_timeout() => {
            (ErrorKind::Timeout, "connecting timed out".to_owned())
        }
        (SdkError::DispatchFailure(failure), None) if failure.is_user() => (
            ErrorKind::Config,
            "the request could not be sent (configuration)".to_owned(),
        ),
        (SdkError::DispatchFailure(_), None) => {
            (ErrorKind::Unavailable, "could not reach AWS KMS".to_owned())
        }
        (SdkError::ResponseError(_), None) => (
            ErrorKind::Unavailable,
            "unreadable response from AWS KMS".to_owned(),
        ),
        (SdkError::ConstructionFailure(_), None) => (
            ErrorKind::Config,
            "the request could not be built".to_owned(),
        ),
        _ => (ErrorKind::Unexpected, "unknown SDK failure".to_owned()),
    };
    let error = Error::new(kind, format!("AWS KMS {operation}: {detail}"));
    let mut error = match err {
        SdkError::ServiceError(service) => error.with_source(service.into_err()),
        other => error.with_source(other),
    };
    if let Some(status) = status {
        error = error.with_context("http_status", status);
    }
    error
}

#[cfg(test)]
mod tests {
    use aws_sdk_kms::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_kms::operation::describe_key::DescribeKeyError;
    use aws_sdk_kms::types::error::NotFoundException;

    use super::*;

    type Response = aws_sdk_kms::config::http::HttpResponse;

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

    #[test]
    fn a_credential_failure_is_not_unavailable() {
        let failure = |credentials: CredentialsError| {
            let err: SdkError<DescribeKeyError, Response> =
                SdkError::dispatch_failure(ConnectorError::other(Box::new(credentials), None));
            map_sdk_error("DescribeKey", err)
        };
        let missing = failure(CredentialsError::not_loaded("no providers in chain"));
        assert_eq!(missing.kind(), ErrorKind::Config, "{missing}");
        assert!(!missing.is_temporary());
        assert!(
            missing.to_string().contains("no providers in chain"),
            "{missing}"
        );
        let refused = failure(CredentialsError::provider_error("SSO token expired"));
        assert_eq!(refused.kind(), ErrorKind::PermissionDenied, "{refused}");
        assert!(!refused.is_temporary());
        let elsewhere: SdkError<DescribeKeyError, Response> = SdkError::dispatch_failure(
            ConnectorError::io(Box::new(std::io::Error::other("connection refused"))),
        );
        assert_eq!(
            map_sdk_error("DescribeKey", elsewhere).kind(),
            ErrorKind::Unavailable
        );
    }

    #[test]
    fn a_service_error_is_shown_once() {
        let not_found = DescribeKeyError::NotFoundException(
            NotFoundException::builder()
                .message("Key 'x' does not exist")
                .meta(
                    ErrorMetadata::builder()
                        .code("NotFoundException")
                        .message("Key 'x' does not exist")
                        .build(),
                )
                .build(),
        );
        let response = Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).expect("status"),
            aws_smithy_types::body::SdkBody::empty(),
        );
        let err = map_sdk_error("DescribeKey", SdkError::service_error(not_found, response));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            err.to_string(),
            "not found (permanent): AWS KMS DescribeKey: NotFoundException: \
             Key 'x' does not exist [http_status=400]"
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}
