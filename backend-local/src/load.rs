//! Local secret keys: generated, or read from OpenSSH, SEC1 and PKCS#8 PEM files.

use std::path::Path;

use kmssh_core::{Algorithm, EcPublicKey, Error, ErrorKind, Result};
use p256::elliptic_curve::Generate;
use zeroize::Zeroizing;

use crate::error::{file_error, invalid};

/// Key files are small; anything bigger is not a key and is not read into memory.
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// `id-ecPublicKey`, `rsaEncryption`, `id-Ed25519`: the PKCS#8 algorithms we can name.
const ID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const ID_ED25519: &str = "1.3.101.112";

/// A P-256, P-384 or P-521 secret key (zeroized on drop by the curve crates).
#[derive(Clone)]
pub enum SecretKey {
    /// A P-256 key.
    P256(p256::SecretKey),
    /// A P-384 key.
    P384(p384::SecretKey),
    /// A P-521 key.
    P521(p521::SecretKey),
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.algorithm())
    }
}

impl SecretKey {
    /// A new random key from the operating system's RNG.
    ///
    /// # Errors
    /// [`ErrorKind::Unexpected`] if the RNG fails.
    pub fn generate(algorithm: Algorithm) -> Result<Self> {
        let rng_failed = |e: getrandom::Error| {
            Error::new(ErrorKind::Unexpected, "the OS RNG failed").with_source(e)
        };
        let mut rng = getrandom::SysRng;
        Ok(match algorithm {
            Algorithm::EcdsaP256Sha256 => {
                Self::P256(p256::SecretKey::try_generate_from_rng(&mut rng).map_err(rng_failed)?)
            }
            Algorithm::EcdsaP384Sha384 => {
                Self::P384(p384::SecretKey::try_generate_from_rng(&mut rng).map_err(rng_failed)?)
            }
            Algorithm::EcdsaP521Sha512 => {
                Self::P521(p521::SecretKey::try_generate_from_rng(&mut rng).map_err(rng_failed)?)
            }
        })
    }

    /// The key's algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::P256(_) => Algorithm::EcdsaP256Sha256,
            Self::P384(_) => Algorithm::EcdsaP384Sha384,
            Self::P521(_) => Algorithm::EcdsaP521Sha512,
        }
    }

    /// The matching public key.
    #[must_use]
    pub fn public_key(&self) -> EcPublicKey {
        match self {
            Self::P256(k) => EcPublicKey::P256(k.public_key().into()),
            Self::P384(k) => EcPublicKey::P384(k.public_key().into()),
            Self::P521(k) => EcPublicKey::P521(k.public_key().into()),
        }
    }

    /// The SEC1 DER `ECPrivateKey`, for engines that import keys that way.
    #[cfg(feature = "aws-lc")]
    pub(crate) fn to_sec1_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        let der = match self {
            Self::P256(k) => k.to_sec1_der(),
            Self::P384(k) => k.to_sec1_der(),
            Self::P521(k) => k.to_sec1_der(),
        };
        der.map_err(|e| {
            Error::new(ErrorKind::Unexpected, "cannot SEC1-encode the key")
                .with_source(e.to_string())
        })
    }

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

    /// Parses an OpenSSH private key (`BEGIN OPENSSH PRIVATE KEY`), a SEC1 key
    /// (`BEGIN EC PRIVATE KEY`, optionally after the `EC PARAMETERS` block `openssl
    /// ecparam -genkey` writes) or an unencrypted PKCS#8 key (`BEGIN PRIVATE KEY`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidKey`] for malformed, encrypted or inconsistent keys;
    /// [`ErrorKind::UnsupportedAlgorithm`] naming any other key type or curve.
    pub fn from_pem(text: &str) -> Result<Self> {
        let block = first_private_key_block(text).ok_or_else(|| {
            invalid("no private key found: expected an OpenSSH, SEC1 or PKCS#8 PEM private key")
        })?;
        if block.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
            return Self::from_openssh(block);
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
                Self::from_der_on(
                    Algorithm::from_curve_oid(&curve)?,
                    doc.as_bytes(),
                    Format::Sec1,
                )
            }
            "PRIVATE KEY" => {
                let info = pkcs8::PrivateKeyInfoRef::try_from(doc.as_bytes()).map_err(|e| {
                    invalid("malformed PKCS#8 private key").with_source(e.to_string())
                })?;
                match info.algorithm.oid.to_string().as_str() {
                    ID_EC_PUBLIC_KEY => {}
                    RSA_ENCRYPTION => return Err(unsupported("RSA")),
                    ID_ED25519 => return Err(unsupported("Ed25519")),
                    other => return Err(unsupported(&format!("PKCS#8 algorithm {other}"))),
                }
                let curve = info.algorithm.parameters_oid().map_err(|e| {
                    invalid("PKCS#8 EC key does not name its curve").with_source(e.to_string())
                })?;
                Self::from_der_on(
                    Algorithm::from_curve_oid(&curve)?,
                    doc.as_bytes(),
                    Format::Pkcs8,
                )
            }
            "ENCRYPTED PRIVATE KEY" => Err(invalid(
                "encrypted PKCS#8 keys are not supported: decrypt with `openssl pkcs8 -in KEY -out PLAIN`",
            )),
            "RSA PRIVATE KEY" => Err(unsupported("RSA")),
            other => Err(invalid(format!(
                "PEM block `{other}` is not a private key kmssh reads"
            ))),
        }
    }

    fn from_der_on(algorithm: Algorithm, der: &[u8], format: Format) -> Result<Self> {
        use p256::pkcs8::DecodePrivateKey;
        let parsed = match (algorithm, format) {
            (Algorithm::EcdsaP256Sha256, Format::Sec1) => p256::SecretKey::from_sec1_der(der)
                .map(Self::P256)
                .map_err(|e| e.to_string()),
            (Algorithm::EcdsaP384Sha384, Format::Sec1) => p384::SecretKey::from_sec1_der(der)
                .map(Self::P384)
                .map_err(|e| e.to_string()),
            (Algorithm::EcdsaP521Sha512, Format::Sec1) => p521::SecretKey::from_sec1_der(der)
                .map(Self::P521)
                .map_err(|e| e.to_string()),
            (Algorithm::EcdsaP256Sha256, Format::Pkcs8) => p256::SecretKey::from_pkcs8_der(der)
                .map(Self::P256)
                .map_err(|e| e.to_string()),
            (Algorithm::EcdsaP384Sha384, Format::Pkcs8) => p384::SecretKey::from_pkcs8_der(der)
                .map(Self::P384)
                .map_err(|e| e.to_string()),
            (Algorithm::EcdsaP521Sha512, Format::Pkcs8) => p521::SecretKey::from_pkcs8_der(der)
                .map(Self::P521)
                .map_err(|e| e.to_string()),
        };
        parsed.map_err(|e| invalid(format!("malformed {algorithm} private key")).with_source(e))
    }

    fn from_openssh(text: &str) -> Result<Self> {
        use ssh_key::private::KeypairData;
        let key = match ssh_key::PrivateKey::from_openssh(text) {
            Ok(key) => key,
            // ssh-key 0.7.0-rc.12 refuses an ECDSA scalar whose mpint is under 32 bytes
            // (a 31-byte mpint: 1 in 512 P-256 keys that ssh-keygen makes).
            Err(e) => {
                return openssh_ecdsa_unencrypted(text).map_err(|_| {
                    invalid("malformed OpenSSH private key").with_source(e.to_string())
                });
            }
        };
        if key.is_encrypted() {
            return Err(invalid(
                "the OpenSSH key is passphrase-protected: kmssh reads unencrypted keys (`ssh-keygen -p -N '' -f KEY`)",
            ));
        }
        let KeypairData::Ecdsa(pair) = key.key_data() else {
            return Err(unsupported(key.algorithm().as_str()));
        };
        let bytes = pair.private_key_bytes();
        let secret = match pair.curve() {
            ssh_key::EcdsaCurve::NistP256 => p256::SecretKey::from_slice(bytes).map(Self::P256),
            ssh_key::EcdsaCurve::NistP384 => p384::SecretKey::from_slice(bytes).map(Self::P384),
            ssh_key::EcdsaCurve::NistP521 => p521::SecretKey::from_slice(bytes).map(Self::P521),
        }
        .map_err(|_| invalid("OpenSSH ECDSA private scalar is out of range"))?;
        if secret.public_key().to_sec1_bytes() != pair.public_key_bytes() {
            return Err(invalid(
                "OpenSSH key file's public key does not match its private key",
            ));
        }
        Ok(secret)
    }
}

/// Reads an unencrypted `openssh-key-v1` ECDSA key directly (PROTOCOL.key): the fallback
/// for keys `ssh-key` cannot read (see [`SecretKey::from_openssh`]).
fn openssh_ecdsa_unencrypted(text: &str) -> Result<SecretKey> {
    use base64ct::Encoding as _;
    use ssh_key::encoding::Decode;
    const MAGIC: &[u8] = b"openssh-key-v1\0";
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.trim().chars())
        .collect();
    let blob = Zeroizing::new(
        base64ct::Base64::decode_vec(&body)
            .map_err(|_| invalid("OpenSSH private key is not base64"))?,
    );
    let malformed = |_| invalid("malformed OpenSSH private key");
    let mut reader = blob
        .strip_prefix(MAGIC)
        .ok_or_else(|| invalid("not an openssh-key-v1 key"))?;
    let cipher = String::decode(&mut reader).map_err(malformed)?;
    let _kdf = String::decode(&mut reader).map_err(malformed)?;
    let _kdf_options = Vec::<u8>::decode(&mut reader).map_err(malformed)?;
    let count = u32::decode(&mut reader).map_err(malformed)?;
    if cipher != "none" || count != 1 {
        return Err(invalid(
            "only unencrypted single-key OpenSSH files are read",
        ));
    }
    let _public = Vec::<u8>::decode(&mut reader).map_err(malformed)?;
    let private = Zeroizing::new(Vec::<u8>::decode(&mut reader).map_err(malformed)?);
    let mut reader = private.as_slice();
    let (check1, check2) = (
        u32::decode(&mut reader).map_err(malformed)?,
        u32::decode(&mut reader).map_err(malformed)?,
    );
    if check1 != check2 {
        return Err(invalid(
            "OpenSSH private key check bytes differ: corrupt file",
        ));
    }
    let key_type = String::decode(&mut reader).map_err(malformed)?;
    if !key_type.starts_with("ecdsa-sha2-") {
        return Err(unsupported(&key_type));
    }
    let curve = String::decode(&mut reader).map_err(malformed)?;
    let algorithm: Algorithm = curve.parse()?;
    let point = Vec::<u8>::decode(&mut reader).map_err(malformed)?;
    let scalar = Zeroizing::new(Vec::<u8>::decode(&mut reader).map_err(malformed)?);
    let digits = scalar
        .iter()
        .position(|&b| b != 0)
        .map_or(&[][..], |i| &scalar[i..]);
    let field = algorithm.field_len();
    if digits.is_empty() || digits.len() > field {
        return Err(invalid("OpenSSH ECDSA private scalar is out of range"));
    }
    let mut padded = Zeroizing::new(vec![0u8; field]);
    padded[field - digits.len()..].copy_from_slice(digits);
    let secret = match algorithm {
        Algorithm::EcdsaP256Sha256 => p256::SecretKey::from_slice(&padded).map(SecretKey::P256),
        Algorithm::EcdsaP384Sha384 => p384::SecretKey::from_slice(&padded).map(SecretKey::P384),
        Algorithm::EcdsaP521Sha512 => p521::SecretKey::from_slice(&padded).map(SecretKey::P521),
    }
    .map_err(|_| invalid("OpenSSH ECDSA private scalar is out of range"))?;
    if secret.public_key().to_sec1_bytes() != point {
        return Err(invalid(
            "OpenSSH key file's public key does not match its private key",
        ));
    }
    Ok(secret)
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

#[derive(Clone, Copy)]
enum Format {
    Sec1,
    Pkcs8,
}

fn unsupported(what: &str) -> Error {
    Error::new(
        ErrorKind::UnsupportedAlgorithm,
        format!(
            "{what} keys are not supported: the local backend signs with ECDSA P-256, P-384 or P-521"
        ),
    )
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
