//! AWS KMS errors mapped to kmssh's kinds (which say whether a retry can help): the one
//! table, [`map_sdk_error`].

use aws_config::meta::ProviderChainError;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use kmssh_core::{Error, ErrorKind};

/// The kind for an AWS KMS error code. The Rust SDK has no typed variant for
/// `ThrottlingException`, so codes are matched as strings throughout.
///
/// Refused credentials (an unknown access key, a wrong secret, an expired session token,
/// a signature scoped to another region) are [`ErrorKind::Unauthenticated`]; a known
/// identity without the permission is [`ErrorKind::PermissionDenied`]. Neither is retried.
fn kind_for_code(code: &str) -> ErrorKind {
    match code {
        "NotFoundException" | "InvalidArnException" => ErrorKind::NotFound,
        "AccessDeniedException" | "AccessDeniedExceptionMessage" => ErrorKind::PermissionDenied,
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "IncompleteSignatureException"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException"
        | "ExpiredTokenException"
        | "RequestExpired" => ErrorKind::Unauthenticated,
        "DisabledException"
        | "KMSInvalidStateException"
        | "InvalidKeyUsageException"
        | "UnsupportedOperationException"
        | "IncorrectKeyException" => ErrorKind::InvalidKey,
        "ThrottlingException"
        | "LimitExceededException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException" => ErrorKind::Throttled,
        // KeyUnavailableException: "the key is not available; you can retry the request".
        "KMSInternalException"
        | "KeyUnavailableException"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => ErrorKind::Unavailable,
        "DependencyTimeoutException" => ErrorKind::Timeout,
        "ValidationException" | "InvalidGrantTokenException" => ErrorKind::InvalidInput,
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

/// Whether an error's chain holds the SDK identity cache's "identity resolver timed out"
/// (a private type, so recognised by its text): the credential chain took too long.
fn credentials_timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.to_string().starts_with("identity resolver timed out") {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The default chain's providers as `aws-config` names them, and what each reads.
const SOURCES: [(&str, &str); 5] = [
    (
        "Environment",
        "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
    ),
    (
        "Profile",
        "profile (~/.aws/config and ~/.aws/credentials: keys, SSO, credential_process, role)",
    ),
    (
        "WebIdentityToken",
        "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)",
    ),
    (
        "EcsContainer",
        "ECS container (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI)",
    ),
    ("Ec2InstanceMetadata", "EC2 instance metadata (IMDS)"),
];

/// The profile the chain reads: `AWS_PROFILE`, else `default`.
fn profile_name() -> String {
    std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// How a source is shown: what it reads, the profile's name included.
fn describe_source(name: &str) -> String {
    let described = SOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or_else(|| name.to_owned(), |(_, what)| (*what).to_owned());
    if name == "Profile" {
        described.replacen("profile", &format!("profile \"{}\"", profile_name()), 1)
    } else {
        described
    }
}

/// The first line of an error's text (a provider's reason can span lines).
fn first_line(err: &dyn std::error::Error) -> String {
    let text = err.to_string();
    text.lines().next().unwrap_or_default().trim().to_owned()
}

/// A failure of the credential chain as a kmssh error: always
/// [`ErrorKind::Unauthenticated`] (permanent: retrying does not make credentials appear),
/// its message naming the sources tried, in order, and why each gave nothing. The caller
/// attaches the SDK's error as the source.
pub(crate) fn credentials_error(err: &CredentialsError) -> Error {
    let message = match err {
        CredentialsError::CredentialsNotLoaded(_) => {
            match find_cause::<ProviderChainError<CredentialsError>>(err) {
                Some(chain) if !chain.attempts().is_empty() => {
                    let tried: Vec<String> = chain
                        .attempts()
                        .iter()
                        .map(|attempt| {
                            // A provider that found nothing to read says so without a cause.
                            let why = std::error::Error::source(attempt.error())
                                .map_or_else(|| "nothing configured".to_owned(), first_line);
                            format!("{}: {why}", describe_source(attempt.name()))
                        })
                        .collect();
                    format!(
                        "no AWS credentials found; tried, in order: {}",
                        tried.join("; ")
                    )
                }
                _ => format!(
                    "no AWS credentials found (sources, in order: {}): {}",
                    all_sources(),
                    std::error::Error::source(err)
                        .map_or_else(|| "nothing configured".to_owned(), first_line)
                ),
            }
        }
        CredentialsError::ProviderTimedOut(timed_out) => format!(
            "the AWS credential chain did not answer within {:?} (sources, in order: {})",
            timed_out.timeout_duration(),
            all_sources()
        ),
        _ => format!(
            "AWS credentials could not be loaded: the first source that applied failed \
             (sources, in order: {})",
            all_sources()
        ),
    };
    Error::new(ErrorKind::Unauthenticated, message)
}

/// Whether the chain found nothing (as opposed to a source that failed).
pub(crate) fn is_not_loaded(err: &CredentialsError) -> bool {
    matches!(err, CredentialsError::CredentialsNotLoaded(_))
}

/// Every source of the default chain, in order, on one line.
pub(crate) fn all_sources() -> String {
    SOURCES
        .iter()
        .map(|(n, _)| describe_source(n))
        .collect::<Vec<_>>()
        .join(", ")
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
    // A request that never left because the credential chain failed arrives as a
    // dispatch failure, like a refused connection: tell them apart by the cause.
    let credentials = match &err {
        SdkError::ServiceError(_) => None,
        other => find_cause::<CredentialsError>(other)
            .map(credentials_error)
            .or_else(|| {
                credentials_timed_out(other).then(|| {
                    Error::new(
                        ErrorKind::Unauthenticated,
                        format!(
                            "the AWS credential chain did not answer in time (sources, in order: {})",
                            all_sources()
                        ),
                    )
                })
            }),
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
        (_, Some(credentials)) => (credentials.kind(), credentials.message().to_owned()),
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
        // The message already says what each source of the chain found.
        other if find_cause::<CredentialsError>(&other).is_some_and(is_not_loaded) => error,
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
        for temporary in [
            "ThrottlingException",
            "KMSInternalException",
            "KeyUnavailableException",
            "DependencyTimeoutException",
        ] {
            assert!(kind_for_code(temporary).is_transient(), "{temporary}");
        }
        for permanent in [
            "NotFoundException",
            "DisabledException",
            "KMSInvalidStateException",
            "InvalidKeyUsageException",
            "AccessDeniedException",
            "UnrecognizedClientException",
            "ExpiredTokenException",
            "InvalidSignatureException",
            "ValidationException",
        ] {
            assert!(!kind_for_code(permanent).is_transient(), "{permanent}");
        }
    }

    #[test]
    fn refused_credentials_are_unauthenticated_and_missing_permissions_denied() {
        for refused in [
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "ExpiredTokenException",
            "IncompleteSignature",
            "MissingAuthenticationToken",
        ] {
            assert_eq!(
                kind_for_code(refused),
                ErrorKind::Unauthenticated,
                "{refused}"
            );
        }
        assert_eq!(
            kind_for_code("AccessDeniedException"),
            ErrorKind::PermissionDenied
        );
    }

    #[test]
    fn a_credential_failure_is_unauthenticated_not_unavailable() {
        let failure = |credentials: CredentialsError| {
            let err: SdkError<DescribeKeyError, Response> =
                SdkError::dispatch_failure(ConnectorError::other(Box::new(credentials), None));
            map_sdk_error("DescribeKey", err)
        };
        let missing = failure(CredentialsError::not_loaded("no providers in chain"));
        assert_eq!(missing.kind(), ErrorKind::Unauthenticated, "{missing}");
        assert!(!missing.is_temporary());
        for source in ["environment", "profile", "web identity", "ECS", "IMDS"] {
            assert!(missing.message().contains(source), "{source}: {missing}");
        }
        assert!(
            missing.to_string().contains("no providers in chain"),
            "{missing}"
        );
        let refused = failure(CredentialsError::provider_error("SSO token expired"));
        assert_eq!(refused.kind(), ErrorKind::Unauthenticated, "{refused}");
        assert!(!refused.is_temporary());
        assert!(
            refused.to_string().contains("SSO token expired"),
            "{refused}"
        );
        let slow = failure(CredentialsError::provider_timed_out(
            std::time::Duration::from_secs(5),
        ));
        assert_eq!(slow.kind(), ErrorKind::Unauthenticated, "{slow}");
        let elsewhere: SdkError<DescribeKeyError, Response> = SdkError::dispatch_failure(
            ConnectorError::io(Box::new(std::io::Error::other("connection refused"))),
        );
        let elsewhere = map_sdk_error("DescribeKey", elsewhere);
        assert_eq!(elsewhere.kind(), ErrorKind::Unavailable);
        assert!(elsewhere.is_temporary());
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
