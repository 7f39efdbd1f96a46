//! The backend registry: each backend crate registers itself with [`register_backend!`](crate::register_backend!)
//! (one line, through `inventory`), and [`open`] / [`open_with`] pick one by the key
//! URI's scheme.
//!
//! `inventory` only sees crates that are linked into the final binary. A binary that
//! wants a backend must reference its crate (`use kmssh_backend_local as _;`), which
//! is what choosing it with a Cargo feature does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{Error, ErrorKind, KNOWN_BACKENDS, KeyUri, KmsKey, Options, Result};

/// The future a backend's open function returns.
pub type OpenFuture = Pin<Box<dyn Future<Output = Result<Arc<dyn KmsKey>>> + Send>>;

/// A backend, as [`register_backend!`](crate::register_backend!) submits it.
#[derive(Debug)]
pub struct Backend {
    /// The URI scheme it serves, without the colon (`local`, `aws-kms`…).
    pub scheme: &'static str,
    /// One line for `kmssh backends`.
    pub description: &'static str,
    /// Opens a key: fetches and caches its public key, checks it can sign.
    pub open: fn(KeyUri, Options) -> OpenFuture,
}

inventory::collect!(Backend);

/// Registers a backend for a URI scheme. `options` names the backend's options type (a
/// [`BackendOptions`](crate::BackendOptions)), which the registry takes from the
/// caller's [`Options`] or, without one there, from the environment; `open` is the
/// backend's `async fn(&KeyUri, &OptionsType) -> Result<impl KmsKey>`.
///
/// ```ignore
/// kmssh_core::register_backend! {
///     scheme: SCHEME,
///     description: "AWS KMS: aws-kms:<key id | key ARN | alias/NAME | alias ARN>",
///     options: AwsKmsOptions,
///     open: AwsKmsKey::open,
/// }
/// ```
#[macro_export]
macro_rules! register_backend {
    (
        scheme: $scheme:expr,
        description: $description:expr,
        options: $options:ty,
        open: $open:path $(,)?
    ) => {
        $crate::inventory::submit! {
            $crate::Backend {
                scheme: $scheme,
                description: $description,
                open: |uri, options| {
                    ::std::boxed::Box::pin(async move {
                        let options =
                            <$options as $crate::BackendOptions>::from_registry(&options)
                                .map_err(|e| e.with_context("uri", &uri))?;
                        let key = $open(&uri, &options).await?;
                        let key: ::std::sync::Arc<dyn $crate::KmsKey> =
                            ::std::sync::Arc::new(key);
                        ::std::result::Result::Ok(key)
                    })
                },
            }
        }
    };
}

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
        (None, _) => Err(match KNOWN_BACKENDS.iter().find(|b| b.scheme == scheme) {
            Some(known) => Error::new(
                ErrorKind::BackendNotCompiled,
                format!(
                    "backend {scheme} ({}) is not compiled in: enable Cargo feature `{}`",
                    known.provider, known.name
                ),
            ),
            None => Error::new(
                ErrorKind::InvalidUri,
                format!(
                    "unknown key URI scheme `{scheme}`: expected one of {}",
                    KNOWN_BACKENDS
                        .iter()
                        .map(|b| format!("`{}:`", b.scheme))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
        .with_context("uri", uri)),
    }
}

/// Opens the key a URI names, with the backend registered for its scheme, configured
/// from the provider's environment.
///
/// # Errors
/// As [`open_with`].
pub async fn open(uri: &str) -> Result<Arc<dyn KmsKey>> {
    open_with(uri, &Options::default()).await
}

/// Opens the key a URI names with the backend registered for its scheme, which takes its
/// options struct from `options` (else from the environment).
///
/// # Errors
/// As [`KeyUri::parse`] and [`backend_for`], then whatever the backend reports.
pub async fn open_with(uri: &str, options: &Options) -> Result<Arc<dyn KmsKey>> {
    let uri = KeyUri::parse(uri)?;
    let backend = backend_for(&uri)?;
    (backend.open)(uri, options.clone()).await
}
