//! pki's typed errors: every refusal names the field and carries the offending value.

use std::fmt;

use kmssh_core::ErrorKind;

/// The certificate or request field an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The certificate type (user or host).
    CertificateType,
    /// The subject's public key.
    SubjectKey,
    /// The CA's public key.
    CaKey,
    /// The list of principals (user or host names).
    Principals,
    /// The key id.
    KeyId,
    /// The serial number.
    Serial,
    /// The start of validity.
    ValidAfter,
    /// The end of validity.
    ValidBefore,
    /// The validity duration or backdate.
    Validity,
    /// The critical options.
    CriticalOptions,
    /// The extensions.
    Extensions,
    /// The whole encoded certificate.
    Certificate,
    /// The encoded signing request.
    SigningRequest,
}

impl Field {
    /// The field's name as OpenSSH's PROTOCOL.certkeys spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CertificateType => "type",
            Self::SubjectKey => "public key",
            Self::CaKey => "signature key",
            Self::Principals => "valid principals",
            Self::KeyId => "key id",
            Self::Serial => "serial",
            Self::ValidAfter => "valid after",
            Self::ValidBefore => "valid before",
            Self::Validity => "validity",
            Self::CriticalOptions => "critical options",
            Self::Extensions => "extensions",
            Self::Certificate => "certificate",
            Self::SigningRequest => "signing request",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a certificate failed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyFailure {
    /// Signed by a CA other than the trusted one (fingerprints of both).
    WrongCa {
        /// The certificate's signature key.
        signed_by: String,
        /// The CA the caller trusts.
        trusted: String,
    },
    /// The signature does not verify with the certificate's signature key.
    BadSignature,
    /// `at` is before `valid after`.
    NotYetValid {
        /// The instant checked.
        at: u64,
        /// The certificate's start.
        valid_after: u64,
    },
    /// `at` is at or after `valid before`.
    Expired {
        /// The instant checked.
        at: u64,
        /// The certificate's end.
        valid_before: u64,
    },
    /// The principal is not listed (or the list is empty and principals are required).
    PrincipalNotListed {
        /// The principal asked about.
        principal: String,
    },
    /// A user certificate where a host one was expected, or the reverse.
    WrongType {
        /// What the caller expected.
        expected: &'static str,
        /// What the certificate is.
        found: &'static str,
    },
    /// A critical option OpenSSH does not know: OpenSSH refuses such certificates.
    UnknownCriticalOption {
        /// Its name.
        name: String,
    },
}

/// A certificate time as a UTC date (and the raw seconds, which is what the wire holds).
fn moment(seconds: u64) -> String {
    let date = i64::try_from(seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    match (seconds, date) {
        (u64::MAX, _) => "forever".to_owned(),
        (_, Some(date)) => format!("{date} ({seconds})"),
        (_, None) => seconds.to_string(),
    }
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongCa { signed_by, trusted } => {
                write!(
                    f,
                    "signed by CA {signed_by}, not by the trusted CA {trusted}"
                )
            }
            Self::BadSignature => f.write_str("the CA signature does not verify"),
            Self::NotYetValid { at, valid_after } => {
                write!(
                    f,
                    "not valid yet: valid from {}, checked at {}",
                    moment(*valid_after),
                    moment(*at)
                )
            }
            Self::Expired { at, valid_before } => {
                write!(
                    f,
                    "expired: valid until {}, checked at {}",
                    moment(*valid_before),
                    moment(*at)
                )
            }
            Self::PrincipalNotListed { principal } => {
                write!(f, "principal `{principal}` is not in the certificate")
            }
            Self::WrongType { expected, found } => {
                write!(
                    f,
                    "a {found} certificate where a {expected} certificate is required"
                )
            }
            Self::UnknownCriticalOption { name } => {
                write!(
                    f,
                    "unknown critical option `{name}`: OpenSSH refuses the certificate"
                )
            }
        }
    }
}

/// Everything pki can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field's value is not acceptable.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field.
        field: Field,
        /// What is wrong, including the offending value (truncated if long).
        reason: String,
    },
    /// The subject or CA key uses an algorithm kmssh cannot certify or sign with.
    #[error("{field}: unsupported key type `{algorithm}`{detail}")]
    UnsupportedKey {
        /// Subject or CA key.
        field: Field,
        /// The key's algorithm name.
        algorithm: String,
        /// Why, when there is more to say.
        detail: String,
    },
    /// The certificate did not verify.
    #[error("certificate rejected: {0}")]
    Verify(VerifyFailure),
    /// The key failed to sign (its kind tells whether to retry).
    #[error("signing failed: {0}")]
    Signing(#[from] kmssh_core::Error),
}

impl Error {
    pub(crate) fn field(field: Field, reason: impl Into<String>) -> Self {
        Self::InvalidField {
            field,
            reason: reason.into(),
        }
    }

    /// The field this error is about, if any.
    #[must_use]
    pub fn offending_field(&self) -> Option<Field> {
        match self {
            Self::InvalidField { field, .. } | Self::UnsupportedKey { field, .. } => Some(*field),
            _ => None,
        }
    }

    /// The error class in core's terms, for exit codes and retry decisions.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidField { .. } => ErrorKind::InvalidInput,
            Self::UnsupportedKey { .. } => ErrorKind::UnsupportedAlgorithm,
            Self::Verify(_) => ErrorKind::BadSignature,
            Self::Signing(e) => e.kind(),
        }
    }
}

/// Shorthand for pki results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shows a value in an error message, cut to a readable length.
pub(crate) fn shown(value: &str) -> String {
    const MAX: usize = 64;
    if value.chars().count() <= MAX {
        format!("{:?}", value)
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head:?}… ({} bytes)", value.len())
    }
}
