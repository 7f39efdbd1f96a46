//! Writing key files: new keys are made here, written as OpenSSH private keys, mode 0600,
//! synced, whole or not at all, and never over anything at the path, a dangling symlink
//! included (core's [`FileWrite`]).

use std::path::Path;

use kmssh_core::{Algorithm, Error, ErrorKind, FileWrite, KeyUri, Result};
use zeroize::Zeroizing;

use crate::error::file_error;
use crate::options::{LocalLocation, parse_uri};
use crate::{LocalOptions, SecretKey};

impl SecretKey {
    /// The key as an unencrypted OpenSSH private key file (`ssh-keygen`'s format).
    ///
    /// # Errors
    /// [`ErrorKind::Unexpected`] if encoding fails.
    pub fn to_openssh(&self) -> Result<Zeroizing<String>> {
        use ssh_key::private::{EcdsaKeypair, PrivateKey};
        let pair = match self {
            Self::P256(k) => EcdsaKeypair::NistP256 {
                public: k.public_key().into(),
                private: k.clone().into(),
            },
            Self::P384(k) => EcdsaKeypair::NistP384 {
                public: k.public_key().into(),
                private: k.clone().into(),
            },
            Self::P521(k) => EcdsaKeypair::NistP521 {
                public: k.public_key().into(),
                private: k.clone().into(),
            },
        };
        PrivateKey::from(pair)
            .to_openssh(ssh_key::LineEnding::LF)
            .map_err(|e| {
                Error::new(ErrorKind::Unexpected, "cannot encode the key as OpenSSH")
                    .with_source(e.to_string())
            })
    }

    /// Writes the key to a new file at `path`: mode 0600, complete or not at all, and
    /// never over an existing file or through a symlink planted at `path`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when `path` exists (a dangling symlink included),
    /// [`ErrorKind::NotFound`] / [`ErrorKind::PermissionDenied`] for its directory.
    pub fn write_new_file(&self, path: &Path) -> Result<()> {
        let text = self.to_openssh()?;
        let private = FileWrite {
            mode: 0o600,
            replace: false,
            sync: true,
        };
        private.write(path, text.as_bytes()).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "{} exists: refusing to replace it with a new key",
                        path.display()
                    ),
                )
            } else {
                file_error("cannot write key file", path, e)
            }
        })
    }
}

/// A new random key written to `path` (see [`SecretKey::write_new_file`]).
///
/// # Errors
/// As [`SecretKey::generate`] and [`SecretKey::write_new_file`].
pub fn create_key_file(path: &Path, algorithm: Algorithm) -> Result<SecretKey> {
    let secret = SecretKey::generate(algorithm)?;
    secret.write_new_file(path)?;
    Ok(secret)
}

/// For a `local:PATH` URI whose file does not exist, makes a new `algorithm` key there
/// (`kmssh --create`); an existing file is left alone, whatever its curve. The URI's
/// parameters are checked first, so a bad URI creates nothing. Returns whether a key was
/// made.
///
/// # Errors
/// [`ErrorKind::InvalidUri`] for a URI that is not `local:PATH` (`local:ephemeral`
/// included) or has a bad parameter; otherwise as [`create_key_file`].
pub fn create_if_missing(uri: &KeyUri, algorithm: Algorithm) -> Result<bool> {
    let (location, _) = parse_uri(uri, LocalOptions::default())?;
    let LocalLocation::File(path) = location else {
        return Err(Error::new(
            ErrorKind::InvalidUri,
            "creating a key file needs a local:PATH key URI, not local:ephemeral",
        )
        .with_context("uri", uri));
    };
    match create_key_file(&path, algorithm) {
        Ok(_) => Ok(true),
        // Made by someone else since, or there all along: use what is there.
        Err(_) if path.symlink_metadata().is_ok() => Ok(false),
        Err(e) => Err(e.with_context("uri", uri)),
    }
}
