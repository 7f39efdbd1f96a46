//! Who is calling: the outcome of authentication, what policy, ledger and audit see.

use std::collections::BTreeMap;
use std::fmt;

/// How a caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A client certificate verified against the configured client CA bundle.
    Mtls,
    /// An opaque bearer token whose SHA-256 is in the configuration.
    Token,
    /// An OIDC ID token verified against its issuer's published keys.
    Oidc,
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mtls => "mtls",
            Self::Token => "token",
            Self::Oidc => "oidc",
        })
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The configured caller name: what the ledger and the audit log record.
    pub caller: String,
    /// The name of the policy this caller is bound to.
    pub policy: String,
    /// How the caller authenticated.
    pub method: AuthMethod,
    /// Values principal templates may use (`{caller}`, `{cn}`, `{claim.email}`, …).
    pub attributes: BTreeMap<String, String>,
}

impl Identity {
    /// The attribute `name`, if the identity carries it.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}
