//! Reading local secret keys: OpenSSH (`crate::openssh`), SEC1, PKCS#8 and PKCS#1 PEM
//! files, read as ssh reads private keys.

use std::path::Path;

use kmssh_core::{Curve, Error, ErrorKind, Result};
use zeroize::Zeroizing;

use crate::SecretKey;
use crate::error::{file_error, invalid};
use crate::secret::check_rsa_modulus;

/// Key files are small; anything bigger is not a key and is not read into memory.
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// The PKCS#8 algorithms read (`id-ecPublicKey`, `rsaEncryption`, `id-Ed25519`) and
/// those refused by name.
const ID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const ID_ED25519: &str = "1.3.101.112";
const REFUSED_PKCS8: [(&str, &str); 5] = [
    ("1.2.840.113549.1.1.10", "RSA-PSS (id-RSASSA-PSS)"),
    ("1.2.840.10040.4.1", "DSA"),
    ("1.3.101.113", "Ed448"),
    ("1.3.101.110", "X25519"),
    ("1.3.101.111", "X448"),
];

impl SecretKey {
    /// Reads a key file (see [`SecretKey::from_pem`]), refusing one whose mode lets group
    /// or others read or write it (as ssh refuses an "UNPROTECTED PRIVATE KEY FILE").
    ///
    /// # Errors
    /// As [`SecretKey::read_file_with`] with `allow_unprotected` off.
    pub fn read_file(path: &Path) -> Result<Self> {
        Self::read_file_with(path, false)
    }

    /// Reads a key file (see [`SecretKey::from_pem`]). Only a regular file is read, and
    /// at most 64 KiB of it whatever size it reports; a FIFO, a device or a directory is
    /// refused without waiting on it. A file whose mode grants group or others any
    /// permission (`mode & 0o077`) is refused unless `allow_unprotected`
    /// ([`LocalOptions::allow_unprotected`](crate::LocalOptions::allow_unprotected),
    /// `?permissions=any` in a URI).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] or [`ErrorKind::PermissionDenied`] for the file;
    /// [`ErrorKind::InvalidKey`] for a file that is not a regular file, is open to group
    /// or others, or is over 64 KiB; otherwise as [`SecretKey::from_pem`].
    pub fn read_file_with(path: &Path, allow_unprotected: bool) -> Result<Self> {
        let text = read_key_file(path, allow_unprotected)?;
        let text = std::str::from_utf8(&text).map_err(|_| {
            invalid(format!(
                "{} is not a PEM or OpenSSH text key file",
                path.display()
            ))
        })?;
        Self::from_pem(text).map_err(|e| e.with_context("path", path.display()))
    }

    /// Parses an unencrypted private key of any supported family in one of the forms
    /// `ssh-keygen` and `openssl` write:
    ///
    /// - OpenSSH (`BEGIN OPENSSH PRIVATE KEY`): ECDSA, RSA or Ed25519;
    /// - PKCS#8 (`BEGIN PRIVATE KEY`): EC, `rsaEncryption` or `id-Ed25519`;
    /// - PKCS#1 (`BEGIN RSA PRIVATE KEY`, two-prime);
    /// - SEC1 (`BEGIN EC PRIVATE KEY`, optionally after the `EC PARAMETERS` block
    ///   `openssl ecparam -genkey` writes).
    ///
    /// RSA keys must have 2048 to 8192 bits.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidKey`] for malformed, encrypted (passphrase-protected) or
    /// inconsistent keys; [`ErrorKind::UnsupportedAlgorithm`] naming any other key type
    /// (DSA, `sk-*` security keys, Ed448, RSA-PSS…), curve or RSA size.
    pub fn from_pem(text: &str) -> Result<Self> {
        let block = first_private_key_block(text).ok_or_else(|| {
            invalid(
                "no private key found: expected an OpenSSH, PKCS#8, PKCS#1 or SEC1 PEM private key",
            )
        })?;
        if block.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
            return crate::openssh::parse(block);
        }
        let label = block["-----BEGIN ".len()..]
            .split("-----")
            .next()
            .unwrap_or_default();
        // Checked before decoding: these fail to decode, and the user needs the reason.
        match label {
            "ENCRYPTED PRIVATE KEY" => {
                return Err(invalid(
                    "the PKCS#8 key is encrypted: kmssh reads unencrypted keys (`openssl pkey -in KEY -out PLAIN`)",
                ));
            }
            "DSA PRIVATE KEY" => return Err(unsupported("DSA")),
            _ => {}
        }
        let body_end = block.find("-----END ").unwrap_or(block.len());
        if block[..body_end].contains("Proc-Type: 4,ENCRYPTED") {
            return Err(invalid(format!(
                "the {label} is encrypted (Proc-Type: 4,ENCRYPTED): kmssh reads unencrypted keys (`openssl pkey -in KEY -out PLAIN`)"
            )));
        }
        let (label, doc) = pkcs8::SecretDocument::from_pem(block)
            .map_err(|e| invalid("malformed PEM private key").with_source(e.to_string()))?;
        match label {
            "EC PRIVATE KEY" => {
                let parsed = sec1::EcPrivateKey::try_from(doc.as_bytes()).map_err(|e| {
                    invalid("malformed SEC1 EC private key").with_source(e.to_string())
                })?;
                let curve = parsed
                    .parameters
                    .and_then(|p| p.named_curve())
                    .ok_or_else(|| invalid("SEC1 EC private key does not name its curve"))?;
                ec_from_der(Curve::from_oid(&curve)?, doc.as_bytes(), Format::Sec1)
            }
            "PRIVATE KEY" => from_pkcs8(doc.as_bytes()),
            "RSA PRIVATE KEY" => rsa_from_pkcs1(doc.as_bytes()),
            other => Err(invalid(format!(
                "PEM block `{other}` is not a private key kmssh reads"
            ))),
        }
    }
}

/// A PKCS#8 `PrivateKeyInfo` (v1, or v2 with the public key, as AWS-LC writes Ed25519).
fn from_pkcs8(der: &[u8]) -> Result<SecretKey> {
    let info = pkcs8::PrivateKeyInfoRef::try_from(der)
        .map_err(|e| invalid("malformed PKCS#8 private key").with_source(e.to_string()))?;
    let oid = info.algorithm.oid.to_string();
    match oid.as_str() {
        ID_EC_PUBLIC_KEY => {
            let curve = info.algorithm.parameters_oid().map_err(|e| {
                invalid("PKCS#8 EC key does not name its curve").with_source(e.to_string())
            })?;
            ec_from_der(Curve::from_oid(&curve)?, der, Format::Pkcs8)
        }
        RSA_ENCRYPTION => rsa_from_pkcs1(info.private_key.as_bytes()),
        ID_ED25519 => {
            use ed25519_dalek::pkcs8::DecodePrivateKey as _;
            // Checks a v2 key's public key against its seed.
            ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map(SecretKey::Ed25519)
                .map_err(|e| {
                    invalid("malformed PKCS#8 Ed25519 private key").with_source(e.to_string())
                })
        }
        other => Err(unsupported(
            REFUSED_PKCS8
                .iter()
                .find(|(known, _)| *known == other)
                .map_or(&format!("PKCS#8 algorithm {other}")[..], |(_, name)| name),
        )),
    }
}

/// A PKCS#1 `RSAPrivateKey`: two primes, 2048 to 8192 bits, consistent.
pub(crate) fn rsa_from_pkcs1(der: &[u8]) -> Result<SecretKey> {
    use kmssh_core::rsa::pkcs1;
    use pkcs1::der::Decode as _;
    let malformed = |e: String| invalid("malformed PKCS#1 RSA private key").with_source(e);
    let parsed = pkcs1::RsaPrivateKeyRef::from_der(der).map_err(|e| malformed(e.to_string()))?;
    check_rsa_modulus(parsed.modulus.as_bytes())?;
    if parsed.version() != pkcs1::Version::TwoPrime {
        return Err(unsupported("multi-prime RSA"));
    }
    kmssh_core::rsa::PrivateKey::try_from(parsed)
        .map(|k| SecretKey::Rsa(Box::new(k)))
        .map_err(|e| malformed(e.to_string()))
}

fn ec_from_der(curve: Curve, der: &[u8], format: Format) -> Result<SecretKey> {
    use p256::pkcs8::DecodePrivateKey;
    let parsed = match (curve, format) {
        (Curve::P256, Format::Sec1) => p256::SecretKey::from_sec1_der(der)
            .map(SecretKey::P256)
            .map_err(|e| e.to_string()),
        (Curve::P384, Format::Sec1) => p384::SecretKey::from_sec1_der(der)
            .map(SecretKey::P384)
            .map_err(|e| e.to_string()),
        (Curve::P521, Format::Sec1) => p521::SecretKey::from_sec1_der(der)
            .map(SecretKey::P521)
            .map_err(|e| e.to_string()),
        (Curve::P256, Format::Pkcs8) => p256::SecretKey::from_pkcs8_der(der)
            .map(SecretKey::P256)
            .map_err(|e| e.to_string()),
        (Curve::P384, Format::Pkcs8) => p384::SecretKey::from_pkcs8_der(der)
            .map(SecretKey::P384)
            .map_err(|e| e.to_string()),
        (Curve::P521, Format::Pkcs8) => p521::SecretKey::from_pkcs8_der(der)
            .map(SecretKey::P521)
            .map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| invalid(format!("malformed ECDSA {curve} private key")).with_source(e))
}

#[derive(Clone, Copy)]
enum Format {
    Sec1,
    Pkcs8,
}

/// A key type the local backend does not sign with, named.
pub(crate) fn unsupported(what: &str) -> Error {
    Error::new(
        ErrorKind::UnsupportedAlgorithm,
        format!(
            "{what} keys are not supported: the local backend signs with ECDSA (P-256, P-384, P-521), RSA (2048 to 8192 bits) or Ed25519"
        ),
    )
}

/// The bytes of a key file: a regular file, protected unless `allow_unprotected`, at most
/// [`MAX_KEY_FILE_LEN`] bytes (see [`SecretKey::read_file_with`]).
fn read_key_file(path: &Path, allow_unprotected: bool) -> Result<Zeroizing<Vec<u8>>> {
    use std::io::Read as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let io_error = |e| file_error("cannot read key file", path, e);
    // The type is checked before opening (opening a device can act on it) and again on
    // the open file (the path may have changed in between). O_NONBLOCK: opening a FIFO
    // for reading would otherwise wait for a writer, forever.
    check_regular(path, &std::fs::metadata(path).map_err(io_error)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    check_regular(path, &metadata)?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 && !allow_unprotected {
        return Err(invalid(format!(
            "UNPROTECTED KEY FILE: {path} is mode {mode:04o}, open to group or others: \
             run `chmod 600 {path}` (or name it local:{path}?permissions=any to use it anyway)",
            path = path.display()
        )));
    }
    // Room for the whole limit up front: no reallocation leaves key bytes behind.
    let limit = usize::try_from(MAX_KEY_FILE_LEN).unwrap_or(usize::MAX);
    let mut text = Zeroizing::new(Vec::with_capacity(limit.saturating_add(1)));
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut text)
        .map_err(io_error)?;
    if text.len() > limit {
        return Err(invalid(format!(
            "{} is over {} KiB: too large to be a key file",
            path.display(),
            MAX_KEY_FILE_LEN / 1024
        )));
    }
    Ok(text)
}

/// Refuses anything but a regular file, naming what it is.
fn check_regular(path: &Path, metadata: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    let kind = metadata.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(invalid(format!(
        "{} is {what}: a key file must be a regular file",
        path.display()
    )))
}

/// The text from the first PEM `BEGIN` line that is not `EC PARAMETERS`.
fn first_private_key_block(text: &str) -> Option<&str> {
    let mut rest = text;
    loop {
        let start = rest.find("-----BEGIN ")?;
        let block = &rest[start..];
        if !block.starts_with("-----BEGIN EC PARAMETERS-----") {
            return Some(block);
        }
        rest = &block["-----BEGIN EC PARAMETERS-----".len()..];
        let end = rest.find("-----END EC PARAMETERS-----")?;
        rest = &rest[end + "-----END EC PARAMETERS-----".len()..];
    }
}
