//! OpenSSH key revocation lists (PROTOCOL.krl): built, written, read and checked.
//!
//! A [`Krl`] revokes certificates by serial (lists, ranges and bitmaps, chosen by size the
//! way `ssh-keygen -k` chooses them) or by key id, scoped to one CA key or to any CA, and
//! plain keys explicitly or by SHA-1 / SHA-256 fingerprint. It never writes extension or
//! signature sections: OpenSSH 9.2 refuses the first and OpenSSH 9.4 and later the
//! second; sign a KRL with SSHSIG instead ([`crate::sign_sshsig`]).
//!
//! Reading is as strict as OpenSSH's: the magic and format version, every section and
//! subsection consumed exactly, serial 0 refused (it cannot be revoked by serial: revoke
//! the key id), a bitmap no longer than OpenSSH reads, a critical extension refused and a
//! non-critical one skipped. A signature section is refused (OpenSSH 9.4 and later do).
//!
//! [`Krl::check_key`] and [`Krl::check_certificate`] answer as `ssh-keygen -Q` and sshd's
//! `RevokedKeys` do: a certificate is revoked by its key id or serial under its CA's
//! section or the any-CA section, by its own key being revoked, or by its CA key being
//! revoked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sha2::Digest as _;
use ssh_key::encoding::Encode as _;
use ssh_key::public::KeyData;

use crate::certificate::Certificate;
use crate::error::{Error, Field, Result, shown};

/// `SSHKRL\n\0`.
const MAGIC: &[u8; 8] = b"SSHKRL\n\0";
/// The only format version.
const FORMAT_VERSION: u32 = 1;

const SECTION_CERTIFICATES: u8 = 1;
const SECTION_EXPLICIT_KEY: u8 = 2;
const SECTION_FINGERPRINT_SHA1: u8 = 3;
const SECTION_SIGNATURE: u8 = 4;
const SECTION_FINGERPRINT_SHA256: u8 = 5;
const SECTION_EXTENSION: u8 = 255;

const CERT_SERIAL_LIST: u8 = 0x20;
const CERT_SERIAL_RANGE: u8 = 0x21;
const CERT_SERIAL_BITMAP: u8 = 0x22;
const CERT_KEY_ID: u8 = 0x23;
const CERT_EXTENSION: u8 = 0x39;

/// The most bits one serial bitmap may hold: OpenSSH reads bignums of at most 2048
/// bytes (`SSHBUF_MAX_BIGNUM`), so a longer bitmap would make the KRL unreadable to it.
pub const MAX_BITMAP_BITS: u64 = 16384;

/// The largest KRL [`Krl::from_bytes`] reads.
pub const MAX_KRL_LEN: usize = 64 * 1024 * 1024;

/// Why a key or certificate is revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revoked {
    /// The certificate's key id is revoked (under its CA or any CA).
    KeyId(String),
    /// The certificate's serial is revoked (under its CA or any CA).
    Serial(u64),
    /// The key itself is listed.
    ExplicitKey,
    /// The key's SHA-1 fingerprint is listed.
    Sha1Fingerprint,
    /// The key's SHA-256 fingerprint is listed.
    Sha256Fingerprint,
    /// The certificate's CA key is revoked.
    CaKey(Box<Revoked>),
}

impl fmt::Display for Revoked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyId(id) => write!(f, "key id {} is revoked", shown(id)),
            Self::Serial(serial) => write!(f, "serial {serial} is revoked"),
            Self::ExplicitKey => f.write_str("the key is revoked"),
            Self::Sha1Fingerprint => f.write_str("the key's SHA-1 fingerprint is revoked"),
            Self::Sha256Fingerprint => f.write_str("the key's SHA-256 fingerprint is revoked"),
            Self::CaKey(why) => write!(f, "its CA key is revoked ({why})"),
        }
    }
}

/// Disjoint, non-adjacent inclusive serial ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SerialRanges(BTreeMap<u64, u64>);

impl SerialRanges {
    /// Adds `lo..=hi`, merging with what it overlaps or touches.
    fn insert(&mut self, mut lo: u64, mut hi: u64) {
        // A range starting at or before `hi + 1` may overlap or touch.
        let reach = hi.saturating_add(1);
        let touching: Vec<(u64, u64)> = self
            .0
            .range(..=reach)
            .rev()
            .take_while(|&(_, &h)| h.saturating_add(1) >= lo)
            .map(|(&l, &h)| (l, h))
            .collect();
        for (l, h) in touching {
            self.0.remove(&l);
            lo = lo.min(l);
            hi = hi.max(h);
        }
        self.0.insert(lo, hi);
    }

    fn contains(&self, serial: u64) -> bool {
        self.0
            .range(..=serial)
            .next_back()
            .is_some_and(|(_, &hi)| hi >= serial)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn count(&self) -> u128 {
        self.0
            .iter()
            .map(|(&lo, &hi)| u128::from(hi - lo) + 1)
            .sum()
    }
}

/// Certificates revoked under one CA key (or any CA).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct CertificateScope {
    serials: SerialRanges,
    key_ids: BTreeSet<String>,
}

/// An OpenSSH key revocation list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Krl {
    /// Increases each time the list is changed.
    pub version: u64,
    /// When the list was written, Unix seconds.
    pub generated_date: u64,
    /// A free-form comment.
    pub comment: String,
    /// Certificate revocations by CA key blob (`None`: any CA).
    scopes: BTreeMap<Option<Vec<u8>>, CertificateScope>,
    explicit_keys: BTreeSet<Vec<u8>>,
    sha1: BTreeSet<Vec<u8>>,
    sha256: BTreeSet<Vec<u8>>,
}

fn krl_error(reason: impl Into<String>) -> Error {
    Error::field(Field::RevocationList, reason)
}

/// The blob of a plain (non-certificate) public key.
fn plain_blob(key: &KeyData) -> Result<Vec<u8>> {
    if matches!(key, KeyData::Certificate(_)) {
        return Err(krl_error(
            "a certificate is not a plain key: revoke its serial or key id, or its key",
        ));
    }
    key.encode_vec()
        .map_err(|e| krl_error(format!("cannot encode the key: {e}")))
}

/// A CA scope's map key: the CA key's blob, or `None` for any CA.
fn scope_of(ca: Option<&KeyData>) -> Result<Option<Vec<u8>>> {
    ca.map(plain_blob).transpose()
}

impl Krl {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The CA keys (as key blobs; `None`: any CA) whose certificates this list revokes.
    pub fn certificate_scopes(&self) -> impl Iterator<Item = Option<&[u8]>> {
        self.scopes.keys().map(Option::as_deref)
    }

    /// Revokes the certificates with serials `lo..=hi` signed by `ca` (`None`: any CA).
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the revocation list for `lo > hi` or serial 0 (a
    /// certificate without a serial cannot be revoked by serial: revoke its key id).
    pub fn revoke_serials(&mut self, ca: Option<&KeyData>, lo: u64, hi: u64) -> Result<()> {
        if lo == 0 {
            return Err(krl_error(
                "serial 0 cannot be revoked by serial (OpenSSH ignores it): revoke the certificate's key id",
            ));
        }
        if lo > hi {
            return Err(krl_error(format!("serial range {lo}-{hi} is inverted")));
        }
        self.scopes
            .entry(scope_of(ca)?)
            .or_default()
            .serials
            .insert(lo, hi);
        Ok(())
    }

    /// Revokes the certificates with key id `key_id` signed by `ca` (`None`: any CA).
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the revocation list for an empty key id.
    pub fn revoke_key_id(&mut self, ca: Option<&KeyData>, key_id: &str) -> Result<()> {
        if key_id.is_empty() {
            return Err(krl_error("an empty key id cannot be revoked"));
        }
        self.scopes
            .entry(scope_of(ca)?)
            .or_default()
            .key_ids
            .insert(key_id.to_owned());
        Ok(())
    }

    /// Revokes a plain key (and every certificate for it), listing the key itself.
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the revocation list for a certificate.
    pub fn revoke_key(&mut self, key: &KeyData) -> Result<()> {
        self.explicit_keys.insert(plain_blob(key)?);
        Ok(())
    }

    /// Revokes a plain key by its SHA-256 fingerprint (smaller than the key; what
    /// `ssh-keygen -k` writes for `hash:` lines).
    ///
    /// # Errors
    /// As [`Krl::revoke_key`].
    pub fn revoke_key_sha256(&mut self, key: &KeyData) -> Result<()> {
        self.sha256
            .insert(sha2::Sha256::digest(plain_blob(key)?).to_vec());
        Ok(())
    }

    /// How many serials, key ids and keys are revoked, for a summary.
    #[must_use]
    pub fn counts(&self) -> KrlCounts {
        KrlCounts {
            serials: self.scopes.values().map(|s| s.serials.count()).sum(),
            key_ids: self.scopes.values().map(|s| s.key_ids.len()).sum(),
            keys: self.explicit_keys.len() + self.sha1.len() + self.sha256.len(),
        }
    }

    /// Whether `key` (a plain key; a certificate is checked with
    /// [`Krl::check_certificate`]) is revoked.
    #[must_use]
    pub fn check_key(&self, key: &KeyData) -> Option<Revoked> {
        let blob = plain_blob(key).ok()?;
        let sha1 = sha1::Sha1::digest(&blob).to_vec();
        if self.sha1.contains(&sha1) {
            return Some(Revoked::Sha1Fingerprint);
        }
        if self.sha256.contains(&sha2::Sha256::digest(&blob).to_vec()) {
            return Some(Revoked::Sha256Fingerprint);
        }
        self.explicit_keys
            .contains(&blob)
            .then_some(Revoked::ExplicitKey)
    }

    /// Whether a certificate is revoked: its key id or serial under its CA or any CA,
    /// its key, or its CA key.
    #[must_use]
    pub fn check_certificate(&self, certificate: &Certificate) -> Option<Revoked> {
        let cert = certificate.as_ssh_key();
        if let Some(why) = self.check_key(cert.public_key()) {
            return Some(why);
        }
        let ca_blob = plain_blob(cert.signature_key()).ok();
        for scope in [ca_blob, None] {
            let Some(revoked) = self.scopes.get(&scope) else {
                continue;
            };
            if revoked.key_ids.contains(cert.key_id()) {
                return Some(Revoked::KeyId(cert.key_id().to_owned()));
            }
            // Serial 0 is what a CA writes when it sets none: never matched by serial.
            if cert.serial() != 0 && revoked.serials.contains(cert.serial()) {
                return Some(Revoked::Serial(cert.serial()));
            }
        }
        self.check_key(cert.signature_key())
            .map(|why| Revoked::CaKey(Box::new(why)))
    }

    /// The list in OpenSSH's binary format.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.generated_date.to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes()); // flags
        put_string(&[], &mut out); // reserved
        put_string(self.comment.as_bytes(), &mut out);
        for (ca, scope) in &self.scopes {
            if scope.serials.is_empty() && scope.key_ids.is_empty() {
                continue;
            }
            let mut section = Vec::new();
            put_string(ca.as_deref().unwrap_or_default(), &mut section);
            put_string(&[], &mut section); // reserved
            encode_serials(&scope.serials, &mut section);
            if !scope.key_ids.is_empty() {
                let mut ids = Vec::new();
                for id in &scope.key_ids {
                    put_string(id.as_bytes(), &mut ids);
                }
                section.push(CERT_KEY_ID);
                put_string(&ids, &mut section);
            }
            out.push(SECTION_CERTIFICATES);
            put_string(&section, &mut out);
        }
        for (kind, blobs) in [
            (SECTION_EXPLICIT_KEY, &self.explicit_keys),
            (SECTION_FINGERPRINT_SHA1, &self.sha1),
            (SECTION_FINGERPRINT_SHA256, &self.sha256),
        ] {
            if blobs.is_empty() {
                continue;
            }
            // BTreeSet order is byte order: for equal-length hashes, the big-endian
            // numeric order PROTOCOL.krl asks for.
            let mut section = Vec::new();
            for blob in blobs {
                put_string(blob, &mut section);
            }
            out.push(kind);
            put_string(&section, &mut out);
        }
        out
    }

    /// Reads a KRL in OpenSSH's binary format.
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the revocation list, with what is wrong and where.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_KRL_LEN {
            return Err(krl_error(format!(
                "{} bytes is over the {MAX_KRL_LEN}-byte limit",
                bytes.len()
            )));
        }
        let mut r = Reader(bytes);
        if r.take(MAGIC.len(), "magic")? != MAGIC {
            return Err(krl_error("not an OpenSSH KRL (no SSHKRL magic)"));
        }
        let format = r.u32("format version")?;
        if format != FORMAT_VERSION {
            return Err(krl_error(format!(
                "format version {format}, only {FORMAT_VERSION} exists"
            )));
        }
        let mut krl = Self {
            version: r.u64("krl_version")?,
            generated_date: r.u64("generated_date")?,
            ..Self::default()
        };
        r.u64("flags")?;
        r.string("reserved")?;
        krl.comment = String::from_utf8(r.string("comment")?.to_vec())
            .map_err(|_| krl_error("the comment is not UTF-8"))?;
        while !r.is_empty() {
            let kind = r.u8("section type")?;
            let mut section = Reader(r.string("section")?);
            match kind {
                SECTION_CERTIFICATES => krl.read_certificates(&mut section)?,
                SECTION_EXPLICIT_KEY => {
                    while !section.is_empty() {
                        let blob = section.string("revoked key")?;
                        krl.explicit_keys.insert(decode_key(blob, "a revoked key")?);
                    }
                }
                SECTION_FINGERPRINT_SHA1 | SECTION_FINGERPRINT_SHA256 => {
                    let (set, len) = if kind == SECTION_FINGERPRINT_SHA1 {
                        (&mut krl.sha1, 20)
                    } else {
                        (&mut krl.sha256, 32)
                    };
                    while !section.is_empty() {
                        let hash = section.string("fingerprint")?;
                        if hash.len() != len {
                            return Err(krl_error(format!(
                                "a fingerprint of {} bytes in a section of {len}-byte hashes",
                                hash.len()
                            )));
                        }
                        set.insert(hash.to_vec());
                    }
                }
                SECTION_EXTENSION => read_extension(&mut section, "section")?,
                SECTION_SIGNATURE => {
                    return Err(krl_error(
                        "a KRL signature section: OpenSSH 9.4 and later refuse them; sign the file with SSHSIG instead",
                    ));
                }
                other => return Err(krl_error(format!("unknown section type {other}"))),
            }
            if !section.is_empty() {
                return Err(krl_error(format!(
                    "section type {kind} has {} bytes left over",
                    section.0.len()
                )));
            }
        }
        Ok(krl)
    }

    fn read_certificates(&mut self, section: &mut Reader<'_>) -> Result<()> {
        let ca = section.string("CA key")?;
        section.string("reserved")?;
        let scope = if ca.is_empty() {
            None
        } else {
            Some(decode_key(ca, "the CA key")?)
        };
        let scope = self.scopes.entry(scope).or_default();
        while !section.is_empty() {
            let kind = section.u8("certificate subsection type")?;
            let mut sub = Reader(section.string("certificate subsection")?);
            match kind {
                CERT_SERIAL_LIST => {
                    while !sub.is_empty() {
                        let serial = sub.u64("serial")?;
                        revoke_read(scope, serial, serial)?;
                    }
                }
                CERT_SERIAL_RANGE => {
                    let lo = sub.u64("serial_min")?;
                    let hi = sub.u64("serial_max")?;
                    revoke_read(scope, lo, hi)?;
                }
                CERT_SERIAL_BITMAP => {
                    let offset = sub.u64("serial_offset")?;
                    let bitmap = sub.mpint_bytes("bitmap")?;
                    read_bitmap(scope, offset, bitmap)?;
                }
                CERT_KEY_ID => {
                    while !sub.is_empty() {
                        let id = String::from_utf8(sub.string("key id")?.to_vec())
                            .map_err(|_| krl_error("a revoked key id is not UTF-8"))?;
                        scope.key_ids.insert(id);
                    }
                }
                CERT_EXTENSION => read_extension(&mut sub, "certificate subsection")?,
                other => {
                    return Err(krl_error(format!(
                        "unknown certificate subsection type {other:#04x}"
                    )));
                }
            }
            if !sub.is_empty() {
                return Err(krl_error(format!(
                    "certificate subsection {kind:#04x} has {} bytes left over",
                    sub.0.len()
                )));
            }
        }
        Ok(())
    }
}

impl Krl {
    /// Marks a new release of the list: the version one higher, generated `now`.
    pub fn release(&mut self, now: u64) {
        self.version = self.version.saturating_add(1);
        self.generated_date = now;
    }

    /// Checks one OpenSSH line, as `ssh-keygen -Q` checks a file: a certificate
    /// (`*-cert-v01@openssh.com …`) by [`Krl::check_certificate`], a plain public key by
    /// [`Krl::check_key`].
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the certificate or the public key when the line is
    /// neither.
    pub fn check_openssh_line(&self, line: &str) -> Result<Option<Revoked>> {
        let line = line.trim();
        let is_certificate = line
            .split_ascii_whitespace()
            .next()
            .is_some_and(|word| word.ends_with("-cert-v01@openssh.com"));
        if is_certificate {
            Ok(self.check_certificate(&Certificate::from_openssh(line)?))
        } else {
            let key = ssh_key::PublicKey::from_openssh(line).map_err(|e| {
                Error::field(
                    Field::SubjectKey,
                    format!("not an OpenSSH public key or certificate: {e}"),
                )
            })?;
            Ok(self.check_key(key.key_data()))
        }
    }
}

/// Parses a serial or an inclusive range as `ssh-keygen -k` spells them: `N` or `A-B`
/// (decimal, or hexadecimal with `0x`).
///
/// # Errors
/// [`Error::InvalidField`] naming the revocation list for anything else, serial 0 or an
/// inverted range.
pub fn parse_serials(text: &str) -> Result<(u64, u64)> {
    let number = |t: &str| {
        let t = t.trim();
        let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => t.parse(),
        };
        parsed.map_err(|_| {
            krl_error(format!(
                "serial {} is not a number (N, A-B, or 0x hexadecimal)",
                shown(t)
            ))
        })
    };
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (number(lo)?, number(hi)?),
        None => {
            let n = number(text)?;
            (n, n)
        }
    };
    if lo == 0 {
        return Err(krl_error(
            "serial 0 cannot be revoked by serial (OpenSSH ignores it): revoke the certificate's key id",
        ));
    }
    if lo > hi {
        return Err(krl_error(format!("serial range {lo}-{hi} is inverted")));
    }
    Ok((lo, hi))
}

/// Counts of what a [`Krl`] revokes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KrlCounts {
    /// Revoked serials, over every CA scope.
    pub serials: u128,
    /// Revoked key ids, over every CA scope.
    pub key_ids: usize,
    /// Revoked plain keys (explicit and by fingerprint).
    pub keys: usize,
}

/// A plain key blob that decodes and encodes back to itself.
fn decode_key(blob: &[u8], what: &str) -> Result<Vec<u8>> {
    let key = ssh_key::PublicKey::from_bytes(blob)
        .map_err(|e| krl_error(format!("{what} does not decode: {e}")))?;
    let again = plain_blob(key.key_data())?;
    if again != blob {
        return Err(krl_error(format!(
            "{what} has bytes OpenSSH would not read"
        )));
    }
    Ok(again)
}

fn revoke_read(scope: &mut CertificateScope, lo: u64, hi: u64) -> Result<()> {
    if lo == 0 || lo > hi {
        return Err(krl_error(format!(
            "revoked serials {lo}-{hi}: serial 0 and inverted ranges are invalid (OpenSSH refuses the KRL)"
        )));
    }
    scope.serials.insert(lo, hi);
    Ok(())
}

/// Adds the runs of set bits of a big-endian bitmap (bit N = serial `offset + N`).
fn read_bitmap(scope: &mut CertificateScope, offset: u64, bitmap: &[u8]) -> Result<()> {
    let bits = bitmap.len() as u64 * 8;
    let mut run: Option<u64> = None;
    for index in 0..=bits {
        let set = index < bits && {
            let byte = bitmap[bitmap.len() - 1 - usize::try_from(index / 8).unwrap_or(0)];
            byte >> (index % 8) & 1 == 1
        };
        match (set, run) {
            (true, None) => run = Some(index),
            (false, Some(start)) => {
                let lo = offset
                    .checked_add(start)
                    .ok_or_else(|| krl_error("a serial bitmap wraps past 2^64"))?;
                let hi = offset
                    .checked_add(index - 1)
                    .ok_or_else(|| krl_error("a serial bitmap wraps past 2^64"))?;
                revoke_read(scope, lo, hi)?;
                run = None;
            }
            _ => {}
        }
    }
    Ok(())
}

fn read_extension(section: &mut Reader<'_>, what: &str) -> Result<()> {
    let name = String::from_utf8_lossy(section.string("extension name")?).into_owned();
    let critical = section.u8("extension criticality")? != 0;
    section.string("extension contents")?;
    if critical {
        return Err(krl_error(format!(
            "a critical extension {what} {} that nobody supports",
            shown(&name)
        )));
    }
    Ok(())
}

fn put_string(bytes: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A cursor over KRL bytes; every read names what it expected.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(krl_error(format!("truncated at the {what}")));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(word))
    }

    fn string(&mut self, what: &str) -> Result<&'a [u8]> {
        let len = usize::try_from(self.u32(what)?).unwrap_or(usize::MAX);
        self.take(len, what)
    }

    /// An mpint as OpenSSH reads a bitmap: not negative, at most 2048 bytes (one more
    /// for a leading zero), leading zeros trimmed.
    fn mpint_bytes(&mut self, what: &str) -> Result<&'a [u8]> {
        let mut bytes = self.string(what)?;
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(krl_error(format!("the {what} is negative")));
        }
        let max = usize::try_from(MAX_BITMAP_BITS / 8).unwrap_or(usize::MAX);
        if bytes.len() > max + 1 || (bytes.len() == max + 1 && bytes[0] != 0) {
            return Err(krl_error(format!(
                "the {what} is over {MAX_BITMAP_BITS} bits (OpenSSH cannot read it)"
            )));
        }
        while let Some((0, rest)) = bytes.split_first() {
            bytes = rest;
        }
        Ok(bytes)
    }
}

/// How a run of serials is written: ssh-keygen's section kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    None,
    List,
    Range,
    Bitmap,
}

impl State {
    fn code(self) -> u8 {
        match self {
            Self::List => CERT_SERIAL_LIST,
            Self::Range => CERT_SERIAL_RANGE,
            Self::Bitmap | Self::None => CERT_SERIAL_BITMAP,
        }
    }
}

/// The next section kind for a run of `contig` serials, by the bit-cost model
/// ssh-keygen uses (`krl.c`), so that our KRLs are as small as its own: the cost of
/// continuing or switching, in bytes, for a list, a range, the current bitmap, or a new
/// bitmap. Returns the kind and whether a new section must start even if it is the same.
fn choose_next_state(
    current: State,
    contig: u64,
    last: bool,
    last_gap: u64,
    next_gap: u64,
) -> (State, bool) {
    let contig = contig.min(1 << 31);
    let last_gap = last_gap.min(1 << 31);
    let next_gap = next_gap.min(1 << 31);
    // A range section holds one range: switching to it costs the same from anywhere.
    let (mut list, mut range, mut bitmap, mut restart) = (0u64, 8u64, 0u64, 8u64 + 64);
    match current {
        State::List => bitmap = 8 + 64,
        State::Bitmap => list = 8,
        State::Range | State::None => {
            bitmap = 8 + 64;
            list = 8;
        }
    }
    let tail = |extra: u64| if last { 0 } else { extra };
    list += 64 * contig + tail(8 + 64);
    range += 2 * 64 + tail(8 + 64);
    bitmap += last_gap + contig + tail(next_gap.min(8 + 64));
    restart += contig + tail(next_gap.min(8 + 64));
    let bytes = |bits: u64| bits.div_ceil(8);
    let (list, range, bitmap, restart) = (bytes(list), bytes(range), bytes(bitmap), bytes(restart));
    let mut choice = (State::Bitmap, false, bitmap);
    if range < choice.2 {
        choice = (State::Range, false, range);
    }
    if list < choice.2 {
        choice = (State::List, false, list);
    }
    if restart < choice.2 {
        choice = (State::Bitmap, true, restart);
    }
    (choice.0, choice.1)
}

/// Writes the serial subsections of one certificate section.
fn encode_serials(serials: &SerialRanges, out: &mut Vec<u8>) {
    let runs: Vec<(u64, u64)> = serials.0.iter().map(|(&lo, &hi)| (lo, hi)).collect();
    let mut state = State::None;
    let mut section = Vec::new();
    let mut bitmap: Vec<u64> = Vec::new(); // bit indexes set, relative to bitmap_start
    let mut bitmap_start = 0u64;
    let mut last = 0u64;
    let flush = |state: State, section: &mut Vec<u8>, bitmap: &mut Vec<u64>, out: &mut Vec<u8>| {
        if state == State::Bitmap {
            put_bitmap(bitmap, section);
            bitmap.clear();
        }
        out.push(state.code());
        put_string(section, out);
        section.clear();
    };
    for (i, &(lo, hi)) in runs.iter().enumerate() {
        let next = runs.get(i + 1);
        let contig = hi - lo + 1;
        let gap = next.map_or(0, |&(next_lo, _)| next_lo - hi);
        let last_gap = if state == State::None { 0 } else { lo - last };
        let (mut next_state, mut restart) =
            choose_next_state(state, contig, next.is_none(), last_gap, gap);
        // OpenSSH reads bitmaps of at most MAX_BITMAP_BITS: start a new one before that,
        // and write a run too long for any bitmap as a range.
        if next_state == State::Bitmap {
            if contig > MAX_BITMAP_BITS {
                next_state = State::Range;
                restart = false;
            } else if state == State::Bitmap && !restart && hi - bitmap_start >= MAX_BITMAP_BITS {
                restart = true;
            }
        }
        if state != State::None && (restart || next_state != state || state == State::Range) {
            flush(state, &mut section, &mut bitmap, out);
        }
        if next_state != state || restart || state == State::Range {
            state = next_state;
            section.clear();
            if state == State::Bitmap {
                bitmap_start = lo;
                section.extend_from_slice(&bitmap_start.to_be_bytes());
            }
        }
        match state {
            State::List => {
                for serial in lo..=hi {
                    section.extend_from_slice(&serial.to_be_bytes());
                }
            }
            State::Range => {
                section.extend_from_slice(&lo.to_be_bytes());
                section.extend_from_slice(&hi.to_be_bytes());
            }
            State::Bitmap => bitmap.extend((lo - bitmap_start)..=(hi - bitmap_start)),
            State::None => {}
        }
        last = hi;
    }
    if state != State::None {
        flush(state, &mut section, &mut bitmap, out);
    }
}

/// Appends a bitmap (bit N set for each index N) as an mpint, as OpenSSH writes it.
fn put_bitmap(indexes: &[u64], out: &mut Vec<u8>) {
    let Some(&top) = indexes.iter().max() else {
        put_string(&[], out);
        return;
    };
    let len = usize::try_from(top / 8 + 1).unwrap_or(usize::MAX);
    let mut bytes = vec![0u8; len];
    for &index in indexes {
        let at = len - 1 - usize::try_from(index / 8).unwrap_or(0);
        bytes[at] |= 1 << (index % 8);
    }
    if bytes[0] & 0x80 != 0 {
        bytes.insert(0, 0);
    }
    put_string(&bytes, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_ranges_merge_overlapping_and_touching_runs() {
        let mut s = SerialRanges::default();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(21, 29);
        assert_eq!(s.0.len(), 1);
        assert_eq!(s.0.get(&10), Some(&40));
        s.insert(5, 12);
        s.insert(u64::MAX - 1, u64::MAX);
        assert!(s.contains(5) && s.contains(40) && !s.contains(41) && !s.contains(4));
        assert!(s.contains(u64::MAX));
        assert_eq!(s.count(), 36 + 2);
    }

    #[test]
    fn bitmaps_round_trip_and_stay_readable_by_openssh() {
        let mut krl = Krl::new();
        // Every third serial over 40,000: bitmaps, each under OpenSSH's limit.
        for serial in (1..40_000).step_by(3) {
            krl.revoke_serials(None, serial, serial).expect("revoke");
        }
        let bytes = krl.to_bytes();
        let back = Krl::from_bytes(&bytes).expect("reads back");
        assert_eq!(back, krl);
        assert!(back.check_serial_for_test(1) && !back.check_serial_for_test(2));
    }

    impl Krl {
        fn check_serial_for_test(&self, serial: u64) -> bool {
            self.scopes
                .get(&None)
                .is_some_and(|s| s.serials.contains(serial))
        }
    }

    #[test]
    fn serial_specs_parse_as_ssh_keygen_spells_them() {
        assert_eq!(parse_serials("5").ok(), Some((5, 5)));
        assert_eq!(parse_serials("10-0x20").ok(), Some((10, 32)));
        for bad in ["0", "0-5", "9-5", "x", "", "-5", "1-"] {
            assert!(parse_serials(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serial_zero_and_inverted_ranges_are_refused() {
        let mut krl = Krl::new();
        assert!(krl.revoke_serials(None, 0, 5).is_err());
        assert!(krl.revoke_serials(None, 9, 5).is_err());
        assert!(krl.revoke_key_id(None, "").is_err());
    }
}
