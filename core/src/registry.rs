//! The backend registry: each backend crate submits a [`Backend`] with `inventory`, and
//! [`open`] picks one by the key URI's scheme.
//!
//! `inventory` only sees crates that are linked into the final binary. A binary that
//! wants a backend must reference its crate (`use kmssh_backend_local as _;`), which
//! is what choosing it with a Cargo feature does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{Error, ErrorKind, KeyUri, KmsKey, Result};

/// The future a backend's open function returns.
pub type OpenFuture = Pin<Box<dyn Future<Output = Result<Arc<dyn KmsKey>>> + Send>>;

/// A backend, as registered with `inventory::submit!`.
#[derive(Debug)]
pub struct Backend {
    /// The URI scheme it serves, without the colon (`local`, `aws-kms`…).
    pub scheme: &'static str,
    /// One line for `kmssh backends`.
    pub description: &'static str,
    /// Opens a key: fetches and caches its public key, checks it can sign.
    pub open: fn(KeyUri) -> OpenFuture,
}

inventory::collect!(Backend);

/// Every scheme kmssh knows, with the Cargo feature that compiles its backend in.
pub const KNOWN_SCHEMES: &[(&str, &str)] = &[
    ("local", "local"),
    ("aws-kms", "aws"),
    ("gcp-kms", "gcp"),
    ("azure-kv", "azure"),
];

/// The backends linked into this binary, sorted by scheme.
#[must_use]
pub fn backends() -> Vec<&'static Backend> {
    let mut all: Vec<_> = inventory::iter::<Backend>.into_iter().collect();
    all.sort_by_key(|b| b.scheme);
    all
}

/// Finds the backend for a URI's scheme.
///
/// # Errors
/// [`ErrorKind::BackendNotCompiled`] for a known scheme whose backend is not linked (the
/// message names the Cargo feature), [`ErrorKind::InvalidUri`] for an unknown scheme,
/// [`ErrorKind::Config`] when two linked crates claim the same scheme.
pub fn backend_for(uri: &KeyUri) -> Result<&'static Backend> {
    let scheme = uri.scheme();
    let mut matching = inventory::iter::<Backend>
        .into_iter()
        .filter(|b| b.scheme == scheme);
    match (matching.next(), matching.next()) {
        (Some(backend), None) => Ok(backend),
        (Some(_), Some(_)) => Err(Error::new(
            ErrorKind::Config,
            format!("two linked backends register the scheme `{scheme}`"),
        )),
        (None, _) => Err(match KNOWN_SCHEMES.iter().find(|(s, _)| *s == scheme) {
            Some((_, feature)) => Error::new(
                ErrorKind::BackendNotCompiled,
                format!("backend {scheme} is not compiled in: enable Cargo feature `{feature}`"),
            ),
            None => Error::new(
                ErrorKind::InvalidUri,
                format!(
                    "unknown key URI scheme `{scheme}`: expected one of {}",
                    KNOWN_SCHEMES
                        .iter()
                        .map(|(s, _)| format!("`{s}:`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
        .with_context("uri", uri)),
    }
}

/// Opens the key a URI names, with the backend registered for its scheme.
///
/// # Errors
/// As [`KeyUri::parse`] and [`backend_for`], then whatever the backend reports.
pub async fn open(uri: &str) -> Result<Arc<dyn KmsKey>> {
    let uri = KeyUri::parse(uri)?;
    let backend = backend_for(&uri)?;
    (backend.open)(uri).await
}
