//! Key URIs: `scheme:body[?name=value&…]`, one string naming a key at any provider.
//!
//! | scheme | body | example |
//! |---|---|---|
//! | `local` | a key file path, or `ephemeral` | `local:ephemeral?curve=p384`, `local:/etc/ca/key` |
//! | `aws-kms` | key id, key ARN, `alias/NAME` or alias ARN | `aws-kms:alias/ssh-ca` |
//! | `gcp-kms` | a key version resource name | `gcp-kms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1` |
//! | `azure-kv` | a Key Vault key URL | `azure-kv:https://v.vault.azure.net/keys/ca/0123…` |
//!
//! Only the `local` scheme reads query parameters; for the others a `?` stays part of the
//! body. Values are taken literally (no percent-decoding): they are curve names and flags.

use std::fmt;
use std::str::FromStr;

use crate::{Error, ErrorKind, Result};

/// Longest key URI accepted; far above any real one, it bounds what a typo can cost.
const MAX_URI_LEN: usize = 4096;

/// A parsed key URI. Its [`Display`](fmt::Display) is the original string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyUri {
    raw: String,
    scheme_end: usize,
    body_end: usize,
}

impl KeyUri {
    /// Parses `scheme:body[?query]`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidUri`] when the scheme is missing or malformed, the body is
    /// empty, or the URI is over 4 KiB or contains control characters.
    pub fn parse(uri: &str) -> Result<Self> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidUri,
                format!("key URI `{}`: {why}", uri.escape_debug()),
            )
        };
        if uri.len() > MAX_URI_LEN {
            return Err(invalid("longer than 4096 bytes"));
        }
        if uri.chars().any(char::is_control) {
            return Err(invalid("contains control characters"));
        }
        let scheme_end = uri.find(':').ok_or_else(|| {
            invalid("no scheme: expected e.g. `local:`, `aws-kms:`, `gcp-kms:`, `azure-kv:`")
        })?;
        let scheme = &uri[..scheme_end];
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
            && scheme
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !scheme_ok {
            return Err(invalid(
                "the scheme must be lowercase letters, digits and `-`",
            ));
        }
        let body_end = if scheme == "local" {
            uri[scheme_end..]
                .find('?')
                .map_or(uri.len(), |i| scheme_end + i)
        } else {
            uri.len()
        };
        if body_end == scheme_end + 1 {
            return Err(invalid("nothing after the scheme"));
        }
        Ok(Self {
            raw: uri.to_owned(),
            scheme_end,
            body_end,
        })
    }

    /// The scheme, without the colon: `local`, `aws-kms`, …
    #[must_use]
    pub fn scheme(&self) -> &str {
        &self.raw[..self.scheme_end]
    }

    /// What follows the scheme, without any query.
    #[must_use]
    pub fn body(&self) -> &str {
        &self.raw[self.scheme_end + 1..self.body_end]
    }

    /// The `name=value` pairs of the query, in order (a bare `name` has an empty value).
    pub fn query_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.raw
            .get(self.body_end + 1..)
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
    }

    /// The first value of a query parameter.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query_pairs().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The whole URI as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl FromStr for KeyUri {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyUri({})", self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_scheme_body_and_local_query() {
        let uri = KeyUri::parse("local:ephemeral?curve=p384&verify").expect("valid");
        assert_eq!(uri.scheme(), "local");
        assert_eq!(uri.body(), "ephemeral");
        assert_eq!(uri.param("curve"), Some("p384"));
        assert_eq!(uri.param("verify"), Some(""));
        assert_eq!(uri.param("missing"), None);
        assert_eq!(uri.to_string(), "local:ephemeral?curve=p384&verify");

        let arn =
            "aws-kms:arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let uri = KeyUri::parse(arn).expect("valid");
        assert_eq!(uri.scheme(), "aws-kms");
        assert!(uri.body().starts_with("arn:aws:kms:"));

        let uri = KeyUri::parse("azure-kv:https://v.vault.azure.net/keys/ca?x=1").expect("valid");
        assert_eq!(uri.body(), "https://v.vault.azure.net/keys/ca?x=1");
        assert_eq!(uri.query_pairs().count(), 0);
    }

    #[test]
    fn refuses_malformed_uris() {
        for bad in [
            "",
            "ephemeral",
            "local:",
            "Local:x",
            "1x:y",
            "local:a\nb",
            "loc al:x",
            "local:?curve=p256",
        ] {
            let err = KeyUri::parse(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidUri, "{bad}");
        }
        let long = format!("local:{}", "a".repeat(5000));
        assert!(KeyUri::parse(&long).is_err());
    }
}
