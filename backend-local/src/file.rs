//! Writing key files: new keys (ECDSA, RSA or Ed25519) are made here, written as
//! unencrypted OpenSSH private keys (what `ssh-keygen -t ecdsa|rsa|ed25519` writes), mode 0600,
//! synced, whole or not at all, and never over anything at the path, a dangling symlink
//! included (core's [`FileWrite`]).

use std::path::Path;

use kmssh_core::{Error, ErrorKind, FileWrite, KeySpec, KeyUri, Result};
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
        use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, PrivateKey, RsaKeypair};
        let failed = |e: ssh_key::Error| {
            Error::new(ErrorKind::Unexpected, "cannot encode the key as OpenSSH")
                .with_source(e.to_string())
        };
        let pair: KeypairData = match self {
            Self::P256(k) => EcdsaKeypair::NistP256 {
                public: k.public_key().into(),
                private: k.clone().into(),
            }
            .into(),
            Self::P384(k) => EcdsaKeypair::NistP384 {
                public: k.public_key().into(),
                private: k.clone().into(),
            }
            .into(),
            Self::P521(k) => EcdsaKeypair::NistP521 {
                public: k.public_key().into(),
                private: k.clone().into(),
            }
            .into(),
            Self::Rsa(k) => RsaKeypair::try_from(k.as_ref()).map_err(failed)?.into(),
            Self::Ed25519(k) => {
                Ed25519Keypair::from(ssh_key::private::Ed25519PrivateKey::from(k)).into()
            }
        };
        PrivateKey::try_from(pair)
            .and_then(|key| key.to_openssh(ssh_key::LineEnding::LF))
            .map_err(failed)
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

/// A new random key of kind `spec` written to `path` (see [`SecretKey::write_new_file`]).
///
/// # Errors
/// As [`SecretKey::generate`] and [`SecretKey::write_new_file`].
pub fn create_key_file(path: &Path, spec: KeySpec) -> Result<SecretKey> {
    let secret = SecretKey::generate(spec)?;
    secret.write_new_file(path)?;
    Ok(secret)
}

/// For a `local:PATH` URI whose file does not exist, makes a new key of kind `spec` there
/// (`kmssh --create --type ecdsa|rsa|ed25519 [--bits|--curve]`); an existing file is left
/// alone, whatever its kind. The kind comes from the caller, not the URI: `type`, `bits`
/// and `curve` are `local:ephemeral` parameters and are refused on a path. The URI's
/// parameters are checked first, so a bad URI creates nothing. Returns whether a key was
/// made.
///
/// # Errors
/// [`ErrorKind::InvalidUri`] for a URI that is not `local:PATH` (`local:ephemeral`
/// included) or has a bad parameter; otherwise as [`create_key_file`].
pub fn create_if_missing(uri: &KeyUri, spec: KeySpec) -> Result<bool> {
    let (location, _) = parse_uri(uri, LocalOptions::default())?;
    let LocalLocation::File(path) = location else {
        return Err(Error::new(
            ErrorKind::InvalidUri,
            "creating a key file needs a local:PATH key URI, not local:ephemeral",
        )
        .with_context("uri", uri));
    };
    match create_key_file(&path, spec) {
        Ok(_) => Ok(true),
        // Made by someone else since, or there all along: use what is there.
        Err(_) if path.symlink_metadata().is_ok() => Ok(false),
        Err(e) => Err(e.with_context("uri", uri)),
    }
}
