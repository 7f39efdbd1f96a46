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
    /// An SSH signature's namespace (PROTOCOL.sshsig).
    Namespace,
    /// A message digest given instead of the message.
    Digest,
    /// An SSH signature (`SSHSIG`, the armored `-----BEGIN SSH SIGNATURE-----` text).
    SshSignature,
    /// A plain message signature in the form `openssl` reads (DER `ECDSA-Sig-Value`, the
    /// RSA PKCS#1 v1.5 integer, or Ed25519's 64 bytes).
    MessageSignature,
    /// An X.509 distinguished name (RFC 4514 text such as `CN=Example CA,O=Example`).
    SubjectName,
    /// A DNS name for an X.509 subjectAltName.
    DnsName,
    /// The X.509 CA certificate a leaf is issued under.
    CaCertificate,
    /// A PKCS#10 certification request.
    CertificationRequest,
    /// An OpenSSH key revocation list.
    RevocationList,
    /// The signature algorithm asked of the CA key.
    SignatureAlgorithm,
    /// A batch's signatures per second.
    RateLimit,
}

impl Field {
    /// The field's name: as OpenSSH's PROTOCOL.certkeys spells it for certificate fields,
    /// the document's usual name otherwise.
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
            Self::Namespace => "namespace",
            Self::Digest => "digest",
            Self::SshSignature => "SSH signature",
            Self::MessageSignature => "message signature",
            Self::SubjectName => "subject name",
            Self::DnsName => "DNS name",
            Self::CaCertificate => "CA certificate",
            Self::CertificationRequest => "PKCS#10 CSR",
            Self::RevocationList => "KRL",
            Self::SignatureAlgorithm => "signature algorithm",
            Self::RateLimit => "rate limit",
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
    /// A critical option OpenSSH knows, with a value it refuses (a `source-address` that
    /// is not a CIDR list, for one).
    BadCriticalOption {
        /// Its name.
        name: String,
        /// Why the value is refused.
        reason: String,
    },
    /// An encoding or a field sshd refuses although the signature verifies.
    Malformed {
        /// What is wrong.
        detail: String,
    },
}

/// Why a signature (SSHSIG, message signature, PKCS#10 self-signature) was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// The signature was made for another namespace (PROTOCOL.sshsig).
    WrongNamespace {
        /// The namespace the verifier asked for.
        expected: String,
        /// The namespace inside the signature.
        found: String,
    },
    /// The signature was made by another key than the allowed one (fingerprints of both).
    WrongKey {
        /// The key named inside the signature.
        signed_by: String,
        /// The key the verifier allows.
        allowed: String,
    },
    /// The signature is malformed or does not verify over this message.
    DoesNotVerify {
        /// What the verifier said.
        detail: String,
    },
}

impl fmt::Display for SignatureFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongNamespace { expected, found } => write!(
                f,
                "made for namespace {}, not {}",
                shown(found),
                shown(expected)
            ),
            Self::WrongKey { signed_by, allowed } => {
                write!(
                    f,
                    "made by key {signed_by}, not by the allowed key {allowed}"
                )
            }
            Self::DoesNotVerify { detail } => write!(f, "does not verify: {detail}"),
        }
    }
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
                write!(
                    f,
                    "principal {} is not in the certificate",
                    shown(principal)
                )
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
                    "unknown critical option {}: OpenSSH refuses the certificate",
                    shown(name)
                )
            }
            Self::BadCriticalOption { name, reason } => {
                write!(
                    f,
                    "critical option {} is invalid ({reason}): OpenSSH refuses the certificate",
                    shown(name)
                )
            }
            Self::Malformed { detail } => {
                write!(f, "malformed: {detail}; OpenSSH refuses the certificate")
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
    /// The key does not fit the document: a CA certificate made for another key, or one
    /// that is not a CA.
    #[error("{field}: {reason}")]
    KeyMismatch {
        /// The document (for example [`Field::CaCertificate`]).
        field: Field,
        /// What does not fit.
        reason: String,
    },
    /// A signature was refused: an SSH signature, a message signature, or the
    /// self-signature of a PKCS#10 request.
    #[error("{field}: {failure}")]
    SignatureRejected {
        /// The signature's document.
        field: Field,
        /// Why.
        failure: SignatureFailure,
    },
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

    pub(crate) fn rejected(field: Field, failure: SignatureFailure) -> Self {
        Self::SignatureRejected { field, failure }
    }

    pub(crate) fn does_not_verify(field: Field, detail: impl Into<String>) -> Self {
        Self::rejected(
            field,
            SignatureFailure::DoesNotVerify {
                detail: detail.into(),
            },
        )
    }

    /// The field this error is about, if any.
    #[must_use]
    pub fn offending_field(&self) -> Option<Field> {
        match self {
            Self::InvalidField { field, .. }
            | Self::UnsupportedKey { field, .. }
            | Self::KeyMismatch { field, .. }
            | Self::SignatureRejected { field, .. } => Some(*field),
            Self::Verify(_) | Self::Signing(_) => None,
        }
    }

    /// The error class in core's terms, for exit codes and retry decisions.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidField { .. } => ErrorKind::InvalidInput,
            Self::UnsupportedKey { .. } => ErrorKind::UnsupportedAlgorithm,
            Self::KeyMismatch { .. } => ErrorKind::InvalidKey,
            Self::Verify(_) | Self::SignatureRejected { .. } => ErrorKind::BadSignature,
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
