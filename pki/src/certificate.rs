//! Issuing, encoding and verifying OpenSSH certificates.
//!
//! Issuing is two-phase so that any async [`KmsKey`] can sign: the to-be-signed bytes
//! are encoded here (PROTOCOL.certkeys), hashed locally for pre-hashed algorithms (sent
//! whole for Ed25519), signed through the key, the
//! signature appended, and the finished certificate parsed back with `ssh-key` before it
//! is returned. `ssh-key`'s own builder signs synchronously and does not expose the
//! to-be-signed bytes, hence the encoder; a test checks it is byte-identical to
//! `ssh-key`'s builder for the same fields.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64ct::{Base64, Encoding as _};
use kmssh_core::rsa::traits::PublicKeyParts as _;
use kmssh_core::{
    Algorithm, EcPublicKey, EcdsaSignature, KmsKey, PublicKey, Signature, SigningInput,
};
use signature::Verifier as _;
use ssh_key::HashAlg;
use ssh_key::certificate::OptionsMap;
use ssh_key::encoding::Encode;
use ssh_key::public::{EcdsaPublicKey, Ed25519PublicKey, KeyData, RsaPublicKey};

use crate::error::{Error, Field, Result, VerifyFailure};
use crate::options::CriticalOption;
use crate::params::{CertificateParameters, CertificateType, MAX_PRINCIPALS, ResolvedParameters};

pub use crate::subject_key::{MIN_RSA_BITS, check_subject_key, parse_subject_key};

/// Largest certificate issued, signature included: sshd cannot receive a bigger one (its
/// packet limit is 256 KiB), and the size is checked before the CA key is asked to sign.
pub const MAX_CERTIFICATE_LEN: usize = 256 * 1024;

/// Room left for the CA signature when the to-be-signed bytes are measured (an RSA-8192
/// signature in SSH form is 1,048 bytes; a P-521 one under 160).
const SIGNATURE_ROOM: usize = 1100;

/// Length of the random nonce at the start of every certificate.
pub const NONCE_LEN: usize = 32;

/// The current Unix time in seconds.
#[must_use]
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The OpenSSH public key for a KMS key (what goes into `TrustedUserCAKeys`).
#[must_use]
pub fn ssh_public_key(key: &PublicKey) -> KeyData {
    match key {
        PublicKey::Ecdsa(EcPublicKey::P256(k)) => KeyData::Ecdsa(EcdsaPublicKey::from(k)),
        PublicKey::Ecdsa(EcPublicKey::P384(k)) => KeyData::Ecdsa(EcdsaPublicKey::from(k)),
        PublicKey::Ecdsa(EcPublicKey::P521(k)) => KeyData::Ecdsa(EcdsaPublicKey::from(k)),
        PublicKey::Rsa(k) => {
            let e = ssh_key::Mpint::from_positive_bytes(&k.e_bytes());
            let n = ssh_key::Mpint::from_positive_bytes(&k.n_bytes());
            match RsaPublicKey::new(e, n) {
                Ok(rsa) => KeyData::Rsa(rsa),
                // Unreachable: a `PublicKey::Rsa` has a positive exponent and modulus.
                Err(_) => KeyData::Other(ssh_key::public::OpaquePublicKey::new(
                    ssh_key_blob(key),
                    ssh_key::Algorithm::Rsa { hash: None },
                )),
            }
        }
        PublicKey::Ed25519(k) => KeyData::Ed25519(Ed25519PublicKey(k.to_bytes())),
    }
}

/// The OpenSSH key type name of a KMS key: `ecdsa-sha2-nistp256`, `ssh-rsa`,
/// `ssh-ed25519` (for an RSA key, the key type, not a signature algorithm).
#[must_use]
pub fn ssh_key_type(key: &PublicKey) -> &'static str {
    match key {
        PublicKey::Ecdsa(k) => match k.curve() {
            kmssh_core::Curve::P256 => "ecdsa-sha2-nistp256",
            kmssh_core::Curve::P384 => "ecdsa-sha2-nistp384",
            kmssh_core::Curve::P521 => "ecdsa-sha2-nistp521",
        },
        PublicKey::Rsa(_) => "ssh-rsa",
        PublicKey::Ed25519(_) => "ssh-ed25519",
    }
}

/// The CA's public key as one OpenSSH line: `ecdsa-sha2-nistp256 AAAA… comment`, for
/// `TrustedUserCAKeys` or a known_hosts `@cert-authority` line.
#[must_use]
pub fn pubkey_string(key: &PublicKey, comment: &str) -> String {
    openssh_line(ssh_key_type(key), &ssh_key_blob(key), comment)
}

/// Appends an SSH `string`.
fn put_string(blob: &mut Vec<u8>, bytes: &[u8]) {
    // Key fields are at most a few KiB (RSA-8192), far below u32::MAX.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    blob.extend_from_slice(&len.to_be_bytes());
    blob.extend_from_slice(bytes);
}

/// Appends an SSH `mpint` of a positive big-endian integer: leading zeros dropped, one
/// zero byte put back when the top bit is set (RFC 4251 §5).
fn put_positive_mpint(blob: &mut Vec<u8>, bytes: &[u8]) {
    let trimmed = &bytes[bytes.iter().take_while(|b| **b == 0).count()..];
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        let mut padded = Vec::with_capacity(trimmed.len() + 1);
        padded.push(0);
        padded.extend_from_slice(trimmed);
        put_string(blob, &padded);
    } else {
        put_string(blob, trimmed);
    }
}

/// The OpenSSH key blob of a KMS key: ECDSA (RFC 5656 §3.1) `string "ecdsa-sha2-<curve>",
/// string "<curve>", string Q` with Q uncompressed; RSA (RFC 4253 §6.6) `string "ssh-rsa",
/// mpint e, mpint n`; Ed25519 (RFC 8709) `string "ssh-ed25519", string key`. Built here
/// rather than through `ssh-key`'s fallible encoder: nothing here can fail (a test checks
/// the bytes equal `ssh-key`'s encoding for every kind of key).
fn ssh_key_blob(key: &PublicKey) -> Vec<u8> {
    let mut blob = Vec::with_capacity(64);
    put_string(&mut blob, ssh_key_type(key).as_bytes());
    match key {
        PublicKey::Ecdsa(k) => {
            put_string(&mut blob, k.curve().ssh_name().as_bytes());
            let point = match k {
                EcPublicKey::P256(k) => k.to_sec1_point(false).as_bytes().to_vec(),
                EcPublicKey::P384(k) => k.to_sec1_point(false).as_bytes().to_vec(),
                EcPublicKey::P521(k) => k.to_sec1_point(false).as_bytes().to_vec(),
            };
            put_string(&mut blob, &point);
        }
        PublicKey::Rsa(k) => {
            put_positive_mpint(&mut blob, &k.e_bytes());
            put_positive_mpint(&mut blob, &k.n_bytes());
        }
        PublicKey::Ed25519(k) => put_string(&mut blob, k.as_bytes()),
    }
    blob
}

/// The algorithm an SSH signature (certificate, `SSHSIG`) is made with: `requested` if
/// the key signs it and SSH defines it, else the key's first algorithm SSH defines
/// (`rsa-sha2-512` for an RSA key that allows it, as `ssh-keygen -s` does).
///
/// # Errors
/// [`Error::UnsupportedKey`] for an algorithm the key does not sign, for RSA with
/// SHA-384 (SSH defines no such signature), and for a key signing nothing SSH defines.
pub fn ssh_signature_algorithm(
    key: &dyn KmsKey,
    requested: Option<Algorithm>,
) -> Result<Algorithm> {
    let offered = key.algorithms();
    // An algorithm asked for and refused is the request's fault (the signature
    // algorithm field); a key that signs nothing SSH defines is the key's.
    let refuse_with = |field: Field, detail: String| Error::UnsupportedKey {
        field,
        algorithm: key.public_key().description(),
        detail,
    };
    let refuse = |detail: String| refuse_with(Field::SignatureAlgorithm, detail);
    match requested {
        Some(algorithm) if algorithm.ssh_name().is_none() => Err(refuse(format!(
            ": SSH defines no {algorithm} signature: use rsa-sha2-512 or rsa-sha2-256"
        ))),
        Some(algorithm) if offered.contains(&algorithm) => Ok(algorithm),
        Some(algorithm) => Err(refuse(format!(
            ": the key cannot sign {}; it signs {}",
            algorithm.ssh_name().unwrap_or_default(),
            ssh_names(offered)
        ))),
        None => offered
            .iter()
            .copied()
            .find(|a| a.ssh_name().is_some())
            .ok_or_else(|| {
                refuse_with(
                    Field::CaKey,
                    ": the key signs no algorithm SSH defines".to_owned(),
                )
            }),
    }
}

fn ssh_names(algorithms: &[Algorithm]) -> String {
    let names: Vec<&str> = algorithms.iter().filter_map(|a| a.ssh_name()).collect();
    if names.is_empty() {
        "nothing SSH defines".to_owned()
    } else {
        names.join(", ")
    }
}

/// The fields of an OpenSSH key blob after its leading algorithm string, or `None` if
/// the blob is shorter than that string says.
pub(crate) fn key_fields(blob: &[u8]) -> Option<&[u8]> {
    let (len, rest) = blob.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    rest.get(len..)
}

/// `algorithm BASE64 comment`, the comment kept to inert characters
/// ([`crate::sanitize_comment`]): it often comes from the requester's `.pub` file.
fn openssh_line(algorithm: &str, blob: &[u8], comment: &str) -> String {
    let comment = crate::sanitize_comment(comment);
    let mut line = format!("{algorithm} {}", Base64::encode_string(blob));
    if !comment.is_empty() {
        line.push(' ');
        line.push_str(&comment);
    }
    line
}

/// Where OpenSSH looks for the certificate of a key: `id_ed25519` → `id_ed25519-cert.pub`,
/// `host.pub` → `host-cert.pub`.
#[must_use]
pub fn cert_path_for(key_path: &Path) -> PathBuf {
    let name = key_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".pub").unwrap_or(&name);
    key_path.with_file_name(format!("{stem}-cert.pub"))
}

/// An issued (or parsed) OpenSSH certificate, with its encoded bytes exactly as issued
/// or received. Two certificates are equal when their encodings are (a `*-cert.pub`
/// comment is not part of it).
#[derive(Clone, Debug)]
pub struct Certificate {
    inner: ssh_key::Certificate,
    blob: Vec<u8>,
    /// Whether `ssh-key`'s reading encodes back to `blob`. It reads some malformed
    /// encodings leniently (bytes left over inside a length-prefixed field are skipped),
    /// where OpenSSH refuses them; such a certificate never passes [`Certificate::verify`].
    canonical: bool,
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.blob == other.blob
    }
}

impl Eq for Certificate {}

impl Certificate {
    /// Parses raw certificate bytes, keeping them as received.
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the certificate.
    pub fn from_bytes(blob: &[u8]) -> Result<Self> {
        let inner = ssh_key::Certificate::from_bytes(blob).map_err(|e| {
            Error::field(
                Field::Certificate,
                format!("not an OpenSSH certificate: {e}"),
            )
        })?;
        // ssh-key takes any ASCII as an unknown type's name; a space or a control
        // character in it would break the `*-cert.pub` line (found by fuzzing).
        let kind = inner.algorithm().to_certificate_type();
        if !kind.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::field(
                Field::Certificate,
                format!(
                    "certificate type {} is not an algorithm name",
                    crate::error::shown(&kind)
                ),
            ));
        }
        let canonical = inner.to_bytes().is_ok_and(|again| again == blob);
        Ok(Self {
            inner,
            blob: blob.to_vec(),
            canonical,
        })
    }

    /// Parses a `*-cert.pub` line: `<type>-cert-v01@openssh.com BASE64 [comment]`, the
    /// type word matching the certificate inside; surrounding whitespace is ignored, a
    /// second line is refused.
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the certificate.
    pub fn from_openssh(line: &str) -> Result<Self> {
        let bad = |reason: String| Error::field(Field::Certificate, reason);
        let line = line.trim();
        if line.contains(['\n', '\r']) {
            return Err(bad(
                "more than one line: a certificate file holds one certificate".into(),
            ));
        }
        let mut words = line.split_ascii_whitespace();
        let (Some(algorithm), Some(base64)) = (words.next(), words.next()) else {
            return Err(bad(
                "not an OpenSSH certificate: expected `<type>-cert-v01@openssh.com BASE64`".into(),
            ));
        };
        let blob = Base64::decode_vec(base64)
            .map_err(|e| bad(format!("not an OpenSSH certificate: base64: {e}")))?;
        let certificate = Self::from_bytes(&blob)?;
        let inside = certificate.inner.algorithm().to_certificate_type();
        if algorithm != inside {
            return Err(bad(format!(
                "the line says {} but the certificate inside is {inside}",
                crate::error::shown(algorithm)
            )));
        }
        Ok(certificate)
    }

    /// The certificate as `ssh-key` sees it, for every field.
    #[must_use]
    pub fn as_ssh_key(&self) -> &ssh_key::Certificate {
        &self.inner
    }

    /// The encoded certificate.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.blob
    }

    /// User or host.
    #[must_use]
    pub fn cert_type(&self) -> CertificateType {
        self.inner.cert_type().into()
    }

    /// The `*-cert.pub` line: `<type>-cert-v01@openssh.com BASE64 comment`. The comment
    /// (often the submitter's `.pub` comment) is kept to inert characters: anything but
    /// letters, digits, space and `@ . _ - + : / = ,` becomes `_`
    /// ([`crate::sanitize_comment`]), so the line stays one line and carries no shell.
    #[must_use]
    pub fn cert_string(&self, comment: &str) -> String {
        openssh_line(
            &self.inner.algorithm().to_certificate_type(),
            &self.blob,
            comment,
        )
    }

    /// The bytes the CA signed, as received: everything before the final signature
    /// string, or `None` when the signature field is not where and what it should be.
    fn signed_bytes(&self) -> Option<&[u8]> {
        let mut signature = Vec::new();
        self.inner
            .signature()
            .encode_prefixed(&mut signature)
            .ok()?;
        self.blob.strip_suffix(signature.as_slice())
    }

    /// Checks the certificate as sshd would: signed by `ca` with a signature valid over
    /// the bytes received (not over a re-encoding), well-formed, no more than
    /// [`MAX_PRINCIPALS`] principals, only critical options OpenSSH knows (or the
    /// caller lists) with valid values, the right type, valid at `options.at`, and
    /// listing `options.principal` (an empty list never matches a required principal,
    /// as in sshd).
    ///
    /// # Errors
    /// [`Error::Verify`] with the first failure found.
    pub fn verify(&self, ca: &KeyData, options: &VerifyOptions) -> Result<()> {
        let fail = |f: VerifyFailure| Err(Error::Verify(f));
        let cert = &self.inner;
        if cert.signature_key() != ca {
            return fail(VerifyFailure::WrongCa {
                signed_by: cert
                    .signature_key()
                    .fingerprint(HashAlg::Sha256)
                    .to_string(),
                trusted: ca.fingerprint(HashAlg::Sha256).to_string(),
            });
        }
        // sshd refuses SHA-1 CA signatures (CASignatureAlgorithms, OpenSSH 8.2): refused by
        // name here rather than left to which hashes ssh-key happens to be built with.
        if cert.signature().algorithm() == (ssh_key::Algorithm::Rsa { hash: None }) {
            return fail(VerifyFailure::Malformed {
                detail: "signed with ssh-rsa (RSA with SHA-1), which sshd refuses as a CA signature algorithm".into(),
            });
        }
        let verified = self
            .signed_bytes()
            .is_some_and(|signed| ca.verify(signed, cert.signature()).is_ok());
        if !verified {
            return fail(VerifyFailure::BadSignature);
        }
        if !self.canonical {
            return fail(VerifyFailure::Malformed {
                detail: "a field has bytes OpenSSH does not accept (extra data inside a length-prefixed field)"
                    .into(),
            });
        }
        if cert.valid_principals().len() > MAX_PRINCIPALS {
            return fail(VerifyFailure::Malformed {
                detail: format!(
                    "{} principals, over OpenSSH's {MAX_PRINCIPALS}",
                    cert.valid_principals().len()
                ),
            });
        }
        for (name, value) in cert.critical_options().iter() {
            let custom_known = options.known_critical_options.iter().any(|k| k == name);
            let known = matches!(
                name.as_str(),
                "force-command" | "source-address" | "verify-required"
            );
            if !known && !custom_known {
                return fail(VerifyFailure::UnknownCriticalOption { name: name.clone() });
            }
            if known && let Err(e) = CriticalOption::parse(name, value) {
                return fail(VerifyFailure::BadCriticalOption {
                    name: name.clone(),
                    reason: e.to_string(),
                });
            }
        }
        if let Some(expected) = options.cert_type
            && expected != self.cert_type()
        {
            return fail(VerifyFailure::WrongType {
                expected: expected.as_str(),
                found: self.cert_type().as_str(),
            });
        }
        let at = options.at.unwrap_or_else(unix_now);
        if at < cert.valid_after() {
            return fail(VerifyFailure::NotYetValid {
                at,
                valid_after: cert.valid_after(),
            });
        }
        if at >= cert.valid_before() {
            return fail(VerifyFailure::Expired {
                at,
                valid_before: cert.valid_before(),
            });
        }
        if let Some(principal) = &options.principal
            && !cert.valid_principals().iter().any(|p| p == principal)
        {
            return fail(VerifyFailure::PrincipalNotListed {
                principal: principal.clone(),
            });
        }
        Ok(())
    }
}

/// What [`Certificate::verify`] checks besides the CA and signature.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The instant to check validity at (Unix seconds); `None` is now.
    pub at: Option<u64>,
    /// A principal the certificate must list.
    pub principal: Option<String>,
    /// The type the certificate must have.
    pub cert_type: Option<CertificateType>,
    /// Custom critical options (`name@domain`) the caller enforces; any other critical
    /// option OpenSSH does not define fails verification, as it does in sshd.
    pub known_critical_options: Vec<String>,
}

/// A signature in SSH form, as certificates and `SSHSIG` carry it: ECDSA as
/// `string(mpint r, mpint s)` (RFC 5656), RSA as `rsa-sha2-256`/`rsa-sha2-512` (RFC 8332),
/// Ed25519 as its 64 bytes (RFC 8709).
///
/// # Errors
/// [`Error::InvalidField`] if the signature cannot be encoded, or is RSA with SHA-384,
/// which SSH does not define.
pub fn ssh_signature(signature: &Signature) -> Result<ssh_key::Signature> {
    ssh_signature_for(signature, Field::Certificate)
}

/// As [`ssh_signature`], an error naming `field`.
pub(crate) fn ssh_signature_for(signature: &Signature, field: Field) -> Result<ssh_key::Signature> {
    let converted = match signature {
        Signature::Ecdsa(EcdsaSignature::P256(s)) => ssh_key::Signature::try_from(s),
        Signature::Ecdsa(EcdsaSignature::P384(s)) => ssh_key::Signature::try_from(s),
        Signature::Ecdsa(EcdsaSignature::P521(s)) => ssh_key::Signature::try_from(s),
        Signature::Rsa(s) => {
            let hash = match s.hash() {
                kmssh_core::HashAlgorithm::Sha256 => HashAlg::Sha256,
                kmssh_core::HashAlgorithm::Sha512 => HashAlg::Sha512,
                kmssh_core::HashAlgorithm::Sha384 => {
                    return Err(Error::field(
                        field,
                        "SSH defines no RSA SHA-384 signature (rsa-sha2-256 or rsa-sha2-512)",
                    ));
                }
            };
            ssh_key::Signature::new(ssh_key::Algorithm::Rsa { hash: Some(hash) }, s.as_bytes())
        }
        Signature::Ed25519(s) => {
            ssh_key::Signature::new(ssh_key::Algorithm::Ed25519, s.to_bytes().to_vec())
        }
    };
    converted.map_err(|e| Error::field(field, format!("cannot encode the signature: {e}")))
}

fn encoding_error(e: impl std::fmt::Display) -> Error {
    Error::field(Field::Certificate, format!("cannot encode: {e}"))
}

/// Appends everything a certificate signs (PROTOCOL.certkeys), in order.
fn encode_to_be_signed(
    out: &mut Vec<u8>,
    subject: &KeyData,
    nonce: &[u8],
    serial: u64,
    fields: ResolvedParameters,
    ca: &KeyData,
) -> Result<()> {
    let cert_type: ssh_key::certificate::CertType = fields.cert_type.into();
    let critical: OptionsMap = fields.critical_options.into();
    let extensions: OptionsMap = fields.extensions.into();
    // The subject's key fields without their leading algorithm string.
    let subject_blob = subject.encode_vec().map_err(encoding_error)?;
    let key_fields =
        key_fields(&subject_blob).ok_or_else(|| encoding_error("short subject key"))?;

    (|| -> ssh_key::encoding::Result<()> {
        subject.algorithm().to_certificate_type().encode(out)?;
        nonce.encode(out)?;
        out.extend_from_slice(key_fields);
        serial.encode(out)?;
        cert_type.encode(out)?;
        fields.key_id.encode(out)?;
        fields.principals.encode(out)?;
        fields.valid_after.encode(out)?;
        fields.valid_before.encode(out)?;
        critical.encode(out)?;
        extensions.encode(out)?;
        [0u8; 0].as_slice().encode(out)?; // reserved
        ca.encode_prefixed(out)
    })()
    .map_err(encoding_error)
}

/// Draws the nonce and, unless one was given, the serial, in one RNG call.
fn random_nonce_and_serial() -> Result<([u8; NONCE_LEN], u64)> {
    let mut bytes = [0u8; NONCE_LEN + 8];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::Signing(kmssh_core::Error::new(
            kmssh_core::ErrorKind::Unexpected,
            format!("the OS RNG failed: {e}"),
        ))
    })?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[..NONCE_LEN]);
    let mut serial = [0u8; 8];
    serial.copy_from_slice(&bytes[NONCE_LEN..]);
    Ok((nonce, u64::from_be_bytes(serial)))
}

/// Issues a certificate for `subject` signed by `ca`, valid from now as the parameters say.
///
/// # Errors
/// [`Error::InvalidField`] / [`Error::UnsupportedKey`] for bad parameters or subject key
/// (nothing is sent to the key then), [`Error::Signing`] when the key fails.
pub async fn issue(
    ca: &dyn KmsKey,
    subject: &KeyData,
    params: &CertificateParameters,
) -> Result<Certificate> {
    issue_at(ca, subject, params, unix_now()).await
}

/// As [`issue`], with `now` given (tests, replays).
///
/// # Errors
/// As [`issue`].
pub async fn issue_at(
    ca: &dyn KmsKey,
    subject: &KeyData,
    params: &CertificateParameters,
    now: u64,
) -> Result<Certificate> {
    let (nonce, random_serial) = random_nonce_and_serial()?;
    issue_with_nonce(ca, subject, params, now, &nonce, random_serial).await
}

/// As [`issue_at`], with the nonce and the fallback serial (used when the parameters
/// give none) chosen by the caller: for reproducible output in tests and golden files.
/// Real certificates should use [`issue`], whose nonce is random.
///
/// # Errors
/// As [`issue`].
pub async fn issue_with_nonce(
    ca: &dyn KmsKey,
    subject: &KeyData,
    params: &CertificateParameters,
    now: u64,
    nonce: &[u8; NONCE_LEN],
    fallback_serial: u64,
) -> Result<Certificate> {
    let fields = params.resolve(now)?;
    check_subject_key(subject)?;
    let algorithm = ssh_signature_algorithm(ca, params.ca_signature_algorithm())?;
    let ca_key = ssh_public_key(ca.public_key());
    let mut blob = Vec::with_capacity(512);
    let serial = fields.serial.unwrap_or(fallback_serial);
    encode_to_be_signed(&mut blob, subject, nonce, serial, fields, &ca_key)?;
    if blob.len() + SIGNATURE_ROOM > MAX_CERTIFICATE_LEN {
        return Err(Error::field(
            Field::Certificate,
            format!(
                "{} bytes before the signature, over the {MAX_CERTIFICATE_LEN}-byte limit (sshd cannot receive it): fewer or shorter principals, options or extensions",
                blob.len()
            ),
        ));
    }

    let signature = ca.sign(algorithm, SigningInput::Message(&blob)).await?;
    ssh_signature(&signature)?
        .encode_prefixed(&mut blob)
        .map_err(encoding_error)?;

    // Parse what we built: a certificate ssh-key cannot read back is never returned.
    let certificate = Certificate::from_bytes(&blob)?;
    if certificate.inner.signature_key() != &ca_key || certificate.inner.public_key() != subject {
        return Err(Error::field(
            Field::Certificate,
            "the encoded certificate does not read back as built",
        ));
    }
    Ok(certificate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpints_are_minimal_and_positive_as_ssh_key_encodes_them() {
        for (magnitude, encoded) in [
            (&[][..], &[0, 0, 0, 0][..]),
            (&[0, 0], &[0, 0, 0, 0]),
            (&[0, 0x7f], &[0, 0, 0, 1, 0x7f]),
            (&[0x80], &[0, 0, 0, 2, 0, 0x80]),
            (&[0, 0, 0x80, 1], &[0, 0, 0, 3, 0, 0x80, 1]),
            (&[1, 0, 1], &[0, 0, 0, 3, 1, 0, 1]),
        ] {
            let mut ours = Vec::new();
            put_positive_mpint(&mut ours, magnitude);
            assert_eq!(ours, encoded, "{magnitude:?}");
            let theirs = ssh_key::Mpint::from_positive_bytes(magnitude)
                .encode_vec()
                .expect("encodes");
            assert_eq!(ours, theirs, "{magnitude:?}");
        }
    }

    #[test]
    fn rsa_and_ed25519_blobs_are_ssh_keys_encoding() {
        // RFC 8410 / RFC 8032 test vector 1's public key.
        let ed25519 = PublicKey::ed25519(&[
            0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64,
            0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
            0xf7, 0x07, 0x51, 0x1a,
        ])
        .expect("Ed25519 key");
        // A 2048-bit modulus (top bit set, so its mpint takes a zero byte) and e = 65537.
        let mut n = vec![0xc5u8; 256];
        n[255] = 0x01;
        let rsa = PublicKey::rsa(
            kmssh_core::rsa::PublicKey::new(
                kmssh_core::rsa::BoxedUint::from_be_slice_vartime(&n),
                kmssh_core::rsa::BoxedUint::from(65_537u32),
            )
            .expect("RSA key"),
        )
        .expect("2048 bits");
        for key in [ed25519, rsa] {
            let blob = ssh_key_blob(&key);
            assert_eq!(
                blob,
                ssh_public_key(&key).encode_vec().expect("encodes"),
                "{}",
                key.description()
            );
            assert_eq!(
                key_fields(&blob).map(<[u8]>::len),
                Some(blob.len() - 4 - ssh_key_type(&key).len())
            );
        }
    }
}
