//! File-system errors, mapped to core kinds in one place.

use std::path::Path;

use kmssh_core::{Error, ErrorKind};

/// A failed read or write of a key file: missing is [`ErrorKind::NotFound`], refused is
/// [`ErrorKind::PermissionDenied`], anything else [`ErrorKind::InvalidInput`]; the path
/// and the OS error are kept.
pub(crate) fn file_error(what: &str, path: &Path, err: std::io::Error) -> Error {
    let kind = match err.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        _ => ErrorKind::InvalidInput,
    };
    Error::new(kind, format!("{what} {}", path.display())).with_source(err)
}

/// A key that cannot be used.
pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidKey, message)
}
