//! Caller authentication: opaque bearer tokens, client certificates (mTLS) and OIDC ID tokens,
//! each mapped to one configured caller and the policy that caller is bound to.
//!
//! Which credential counts: a bearer token when the request carries one, else the client
//! certificate. A bearer token shaped like a JWT (three dot-separated base64url parts) is verified
//! as an OIDC ID token when OIDC issuers are configured, else looked up as an opaque token.

mod mtls;
mod oidc;
mod token;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use tonic::metadata::MetadataMap;

pub use mtls::MtlsMatch;
pub use oidc::{JwksTiming, OidcIssuerConfig, OidcMatch};

use crate::{AuthMethod, Identity};

/// One configured caller: who it is, its policy, and the single credential that proves it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerConfig {
    /// The caller's name: what the ledger and the audit log record, `{caller}` in templates.
    pub name: String,
    /// The name of the policy this caller is bound to.
    pub policy: String,
    /// Lowercase hex SHA-256 of the caller's opaque bearer token.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// The client certificate this caller presents.
    #[serde(default)]
    pub mtls: Option<MtlsMatch>,
    /// The OIDC ID tokens this caller presents.
    #[serde(default)]
    pub oidc: Option<OidcMatch>,
}

/// A configuration the authenticator refuses; names the caller or issuer at fault.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// A caller entry is invalid.
    #[error("caller `{caller}`: {message}")]
    Caller {
        /// The caller's name.
        caller: String,
        /// What is wrong.
        message: String,
    },
    /// An OIDC issuer entry is invalid.
    #[error("OIDC issuer `{issuer}`: {message}")]
    Issuer {
        /// The issuer as configured.
        issuer: String,
        /// What is wrong.
        message: String,
    },
    /// An issuer's `ca_certificate` cannot be read.
    #[error("OIDC issuer `{issuer}`: cannot read ca_certificate {}: {source}", path.display())]
    CaCertificate {
        /// The issuer as configured.
        issuer: String,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl AuthConfigError {
    fn caller(caller: &str, message: impl Into<String>) -> Self {
        Self::Caller {
            caller: caller.to_owned(),
            message: message.into(),
        }
    }

    fn issuer(issuer: &str, message: impl Into<String>) -> Self {
        Self::Issuer {
            issuer: issuer.to_owned(),
            message: message.into(),
        }
    }
}

/// Why a request is not authenticated. Every variant maps to gRPC `UNAUTHENTICATED`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Neither a bearer token nor a client certificate.
    #[error("no credentials: send `authorization: Bearer <token>` or a client certificate")]
    Missing,
    /// The `authorization` metadata is not a usable bearer token.
    #[error("malformed authorization metadata: {0}")]
    MalformedAuthorization(&'static str),
    /// An opaque bearer token no caller holds.
    #[error("no caller matches the bearer token")]
    UnknownToken,
    /// The client certificate cannot be parsed.
    #[error("client certificate unreadable: {0}")]
    BadCertificate(String),
    /// A client certificate no caller matches.
    #[error("no caller matches client certificate `{subject}`")]
    NoCertificateCaller {
        /// The certificate's subject (RFC 4514).
        subject: String,
    },
    /// An ID token that does not verify; the message says why.
    #[error("ID token rejected: {0}")]
    IdToken(String),
    /// The issuer's signing keys cannot be fetched, so no token of it can be verified.
    #[error("ID token not verifiable: signing keys of issuer `{issuer}` unavailable: {message}")]
    KeysUnavailable {
        /// The issuer.
        issuer: String,
        /// Why the fetch failed.
        message: String,
    },
    /// A verified ID token no caller matches.
    #[error("no caller matches OIDC subject `{subject}` of issuer `{issuer}`")]
    NoOidcCaller {
        /// The token's issuer.
        issuer: String,
        /// The token's subject.
        subject: String,
    },
}

/// Maps credentials to configured callers.
pub struct Authenticator {
    tokens: token::TokenCallers,
    mtls: mtls::MtlsCallers,
    oidc: Option<oidc::Oidc>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("token_callers", &self.tokens.len())
            .field("mtls_callers", &self.mtls.len())
            .field("oidc", &self.oidc)
            .finish()
    }
}

impl Authenticator {
    /// Validates the callers and issuers: unique caller names, exactly one credential each,
    /// well-formed token digests and certificate subjects, OIDC callers naming a configured
    /// issuer, issuer URLs that are `https://` (or `http://` on a loopback host, for tests).
    /// Fetches nothing: issuer keys are fetched on the first token.
    ///
    /// # Errors
    ///
    /// [`AuthConfigError`] naming the caller or issuer at fault.
    pub fn new(
        callers: &[CallerConfig],
        issuers: &[OidcIssuerConfig],
    ) -> Result<Self, AuthConfigError> {
        let mut names = BTreeSet::new();
        let mut tokens = token::TokenCallers::default();
        let mut mtls = mtls::MtlsCallers::default();
        let mut oidc_callers = Vec::new();
        for caller in callers {
            if caller.name.is_empty() {
                return Err(AuthConfigError::caller("", "empty caller name"));
            }
            if !names.insert(caller.name.as_str()) {
                return Err(AuthConfigError::caller(
                    &caller.name,
                    "configured more than once",
                ));
            }
            if caller.policy.is_empty() {
                return Err(AuthConfigError::caller(&caller.name, "empty policy name"));
            }
            let count = usize::from(caller.token_sha256.is_some())
                + usize::from(caller.mtls.is_some())
                + usize::from(caller.oidc.is_some());
            if count != 1 {
                return Err(AuthConfigError::caller(
                    &caller.name,
                    format!("exactly one of token_sha256, mtls, oidc must be set, found {count}"),
                ));
            }
            if let Some(digest) = &caller.token_sha256 {
                tokens.add(caller, digest)?;
            } else if let Some(matcher) = &caller.mtls {
                mtls.add(caller, matcher)?;
            } else if let Some(matcher) = &caller.oidc {
                oidc_callers.push((caller, matcher));
            }
        }
        let oidc = if issuers.is_empty() && oidc_callers.is_empty() {
            None
        } else {
            Some(oidc::Oidc::new(issuers, &oidc_callers)?)
        };
        Ok(Self { tokens, mtls, oidc })
    }

    /// Replaces the JWKS cache timings (tests shorten them).
    #[must_use]
    pub fn with_jwks_timing(mut self, timing: JwksTiming) -> Self {
        if let Some(oidc) = &mut self.oidc {
            oidc.set_timing(timing);
        }
        self
    }

    /// Whether some caller authenticates with a client certificate (so the TLS layer should
    /// request one).
    pub fn has_mtls_callers(&self) -> bool {
        self.mtls.len() > 0
    }

    /// Authenticates a request: the `authorization: Bearer <token>` metadata if present, else
    /// the client certificate chain (DER, leaf first) the TLS layer already verified against the
    /// client CA bundle.
    ///
    /// # Errors
    ///
    /// [`AuthError`] saying why: no or malformed credentials, a token or certificate no caller
    /// matches, an ID token that is expired, for another issuer or audience, badly signed…
    pub async fn authenticate(
        &self,
        metadata: &MetadataMap,
        peer_certificates: Option<&[Vec<u8>]>,
    ) -> Result<Identity, AuthError> {
        let leaf = peer_certificates
            .and_then(|chain| chain.first())
            .map(Vec::as_slice);
        self.authenticate_leaf(metadata, leaf).await
    }

    /// As [`Authenticator::authenticate`], given only the leaf certificate (what the
    /// service has without copying the chain).
    ///
    /// # Errors
    /// As [`Authenticator::authenticate`].
    pub async fn authenticate_leaf(
        &self,
        metadata: &MetadataMap,
        leaf_certificate: Option<&[u8]>,
    ) -> Result<Identity, AuthError> {
        if let Some(token) = bearer_token(metadata)? {
            if let Some(oidc) = &self.oidc
                && looks_like_jwt(token)
            {
                return oidc.authenticate(token).await;
            }
            return self.tokens.authenticate(token);
        }
        match leaf_certificate {
            Some(leaf) => self.mtls.authenticate(leaf),
            None => Err(AuthError::Missing),
        }
    }
}

/// The bearer token of the request, if it sent an `authorization` entry.
fn bearer_token(metadata: &MetadataMap) -> Result<Option<&str>, AuthError> {
    let mut values = metadata.get_all("authorization").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::MalformedAuthorization(
            "more than one authorization entry",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::MalformedAuthorization("not visible ASCII"))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(AuthError::MalformedAuthorization(
            "expected `Bearer <token>`",
        ))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MalformedAuthorization("scheme is not `Bearer`"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::MalformedAuthorization("empty bearer token"));
    }
    Ok(Some(token))
}

/// Three dot-separated base64url parts; the signature may be empty so that unsigned
/// (`alg: none`) tokens are refused as such rather than looked up as opaque tokens.
fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    let base64url = |part: &str| {
        part.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && parts.iter().all(|part| base64url(part))
}

/// The attributes every identity carries.
fn base_attributes(caller: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("caller".to_owned(), caller.to_owned())])
}

fn identity(
    caller: &str,
    policy: &str,
    method: AuthMethod,
    attributes: BTreeMap<String, String>,
) -> Identity {
    Identity {
        caller: caller.to_owned(),
        policy: policy.to_owned(),
        method,
        attributes,
    }
}

/// Shell-style glob: `*` any run of characters (`/` included), `?` one character, everything
/// else literal; case-sensitive, whole string.
fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was and the text position it currently absorbs up to: on a mismatch
    // the star absorbs one more character (linear backtracking, no recursion).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some('?') => {
                p += 1;
                t += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        for (pattern, text) in [
            ("alice", "alice"),
            ("*", ""),
            ("*", "repo:org/x:ref:refs/heads/main"),
            ("repo:org/*", "repo:org/x:ref:refs/heads/main"),
            (
                "repo:org/*:ref:refs/heads/main",
                "repo:org/x:ref:refs/heads/main",
            ),
            ("a?c", "abc"),
            ("*b*b", "abbab"),
            ("dév-*", "dév-1"),
        ] {
            assert!(glob_match(pattern, text), "{pattern} vs {text}");
        }
        for (pattern, text) in [
            ("alice", "Alice"),
            ("alice", "alice2"),
            ("a?c", "ac"),
            (
                "repo:org/*:ref:refs/heads/main",
                "repo:org/x:ref:refs/heads/dev",
            ),
            ("*b*b", "abba "),
            ("", "x"),
        ] {
            assert!(!glob_match(pattern, text), "{pattern} vs {text}");
        }
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(looks_like_jwt("eyJh.eyJz."));
        assert!(!looks_like_jwt("eyJh.eyJz"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("s3cr3t-token"));
        assert!(!looks_like_jwt("a+b.c.d"));
        assert!(!looks_like_jwt(".b.c"));
    }

    #[test]
    fn bearer_parsing() {
        let mut metadata = MetadataMap::new();
        assert!(matches!(bearer_token(&metadata), Ok(None)));
        metadata.insert("authorization", "Bearer abc".parse().expect("ascii"));
        assert!(matches!(bearer_token(&metadata), Ok(Some("abc"))));
        metadata.insert("authorization", "bearer  abc ".parse().expect("ascii"));
        assert!(matches!(bearer_token(&metadata), Ok(Some("abc"))));
        metadata.insert("authorization", "Basic abc".parse().expect("ascii"));
        assert!(bearer_token(&metadata).is_err());
        metadata.insert("authorization", "Bearer ".parse().expect("ascii"));
        assert!(bearer_token(&metadata).is_err());
        metadata.insert("authorization", "Bearer a".parse().expect("ascii"));
        metadata.append("authorization", "Bearer b".parse().expect("ascii"));
        assert!(bearer_token(&metadata).is_err());
    }
}
