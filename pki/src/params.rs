//! What a certificate should say: [`CertificateParameters`], set once per field and
//! checked as it is set, then resolved against the clock when the certificate is issued.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Field, Result, shown};
use crate::options::{CriticalOption, Extension};

/// The largest principal or key id accepted (OpenSSH has no such limit; nothing
/// legitimate is near it, and it bounds what one request can cost).
pub const MAX_FIELD_LEN: usize = 4096;
/// The most principals one certificate may list (OpenSSH's own `SSHKEY_CERT_MAX_PRINCIPALS`:
/// sshd refuses a certificate with more).
pub const MAX_PRINCIPALS: usize = 256;
/// The most critical options, and separately the most extensions, one certificate may
/// carry. OpenSSH sets no limit; OpenSSH itself defines three options and six extensions,
/// and the cap bounds what one request can make the CA encode and sign.
pub const MAX_OPTIONS: usize = 64;
/// Validity when no end is given: one hour. Short-lived certificates are the point of
/// an SSH CA; paramiko-cloud and `ssh-keygen -s` default to "forever", which is unsafe.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(3600);
/// How far before "now" validity starts when no start is given: 60 s, so a server whose
/// clock is a little behind the CA's still accepts a certificate issued this second.
pub const DEFAULT_BACKDATE: Duration = Duration::from_secs(60);

/// User or host certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CertificateType {
    /// Authenticates a user to a server (the default).
    #[default]
    User,
    /// Authenticates a server to its clients.
    Host,
}

impl CertificateType {
    /// `user` or `host`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Host => "host",
        }
    }
}

impl From<CertificateType> for ssh_key::certificate::CertType {
    fn from(t: CertificateType) -> Self {
        match t {
            CertificateType::User => Self::User,
            CertificateType::Host => Self::Host,
        }
    }
}

impl From<ssh_key::certificate::CertType> for CertificateType {
    fn from(t: ssh_key::certificate::CertType) -> Self {
        if t.is_host() { Self::Host } else { Self::User }
    }
}

/// The fields of a certificate to issue.
///
/// Defaults, and why:
/// - type **user**;
/// - **no principals is an error** unless [`allow_any_principal`](Self::allow_any_principal)
///   is called: an empty list means "any user / any host" to OpenSSH;
/// - key id **empty** (as ssh-keygen); set one so logs can say which certificate was used;
/// - serial **random 64-bit** (ssh-keygen uses 0; a random one makes revocation by serial work);
/// - valid after **now − 60 s** ([`DEFAULT_BACKDATE`], settable, 0 allowed);
/// - valid before **start + 1 h** ([`DEFAULT_VALIDITY`]), where start is the explicit
///   valid-after or now (ssh-keygen's default is forever);
/// - extensions: for user certificates **ssh-keygen's five** ([`Extension::USER_DEFAULTS`])
///   until any extension is set or [`no_extensions`](Self::no_extensions) is called;
///   for host certificates **none**;
/// - critical options **none**.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificateParameters {
    cert_type: CertificateType,
    principals: Vec<String>,
    any_principal: bool,
    key_id: Option<String>,
    serial: Option<u64>,
    valid_after: Option<u64>,
    valid_before: Option<u64>,
    valid_for: Option<Duration>,
    backdate: Option<Duration>,
    // Keyed by name: a duplicate is found in O(log n), and the order is the one
    // PROTOCOL.certkeys requires (sorted by name).
    critical_options: BTreeMap<String, CriticalOption>,
    extensions: Option<BTreeMap<String, Extension>>,
    ca_signature_algorithm: Option<kmssh_core::Algorithm>,
}

/// Every field of a certificate, decided (see [`CertificateParameters::resolve`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedParameters {
    /// User or host.
    pub cert_type: CertificateType,
    /// Principals, in the order given (empty only when any principal was allowed).
    pub principals: Vec<String>,
    /// The key id.
    pub key_id: String,
    /// The serial, if one was given (otherwise issuing picks a random one).
    pub serial: Option<u64>,
    /// Start of validity, Unix seconds.
    pub valid_after: u64,
    /// End of validity (exclusive), Unix seconds.
    pub valid_before: u64,
    /// Critical options by name (sorted, unique).
    pub critical_options: BTreeMap<String, String>,
    /// Extensions by name (sorted, unique).
    pub extensions: BTreeMap<String, String>,
}

fn set_once<T>(slot: &mut Option<T>, value: T, field: Field) -> Result<()> {
    if slot.is_some() {
        return Err(Error::field(field, "set twice"));
    }
    *slot = Some(value);
    Ok(())
}

fn check_text(field: Field, what: &str, value: &str) -> Result<()> {
    if value.len() > MAX_FIELD_LEN {
        return Err(Error::field(
            field,
            format!("{what} {} is over {MAX_FIELD_LEN} bytes", shown(value)),
        ));
    }
    if value.contains('\0') {
        return Err(Error::field(
            field,
            format!("{what} {} contains a NUL byte", shown(value)),
        ));
    }
    Ok(())
}

/// Adds `value` under `name` unless the name is taken or the map is full.
fn insert_named<T>(
    map: &mut BTreeMap<String, T>,
    name: String,
    value: T,
    field: Field,
) -> Result<()> {
    if map.contains_key(&name) {
        return Err(Error::field(field, format!("{} given twice", shown(&name))));
    }
    if map.len() == MAX_OPTIONS {
        return Err(Error::field(
            field,
            format!("more than {MAX_OPTIONS} entries"),
        ));
    }
    map.insert(name, value);
    Ok(())
}

impl CertificateParameters {
    /// Parameters for a certificate of the given type, with the defaults above.
    #[must_use]
    pub fn new(cert_type: CertificateType) -> Self {
        Self {
            cert_type,
            ..Self::default()
        }
    }

    /// Parameters for a user certificate.
    #[must_use]
    pub fn user() -> Self {
        Self::new(CertificateType::User)
    }

    /// Parameters for a host certificate.
    #[must_use]
    pub fn host() -> Self {
        Self::new(CertificateType::Host)
    }

    /// The certificate type.
    #[must_use]
    pub fn cert_type(&self) -> CertificateType {
        self.cert_type
    }

    /// Adds a principal (a user name for user certificates, a host name for host ones).
    ///
    /// # Errors
    /// An empty, over-long, control-character-bearing or duplicate principal, or more than
    /// [`MAX_PRINCIPALS`].
    pub fn principal(&mut self, principal: impl Into<String>) -> Result<&mut Self> {
        let principal = principal.into();
        let field = Field::Principals;
        if principal.is_empty() {
            return Err(Error::field(
                field,
                "a principal is empty: OpenSSH would read the list as \"any principal\"; use allow_any_principal() to mean that",
            ));
        }
        check_text(field, "principal", &principal)?;
        if principal.chars().any(char::is_control) {
            return Err(Error::field(
                field,
                format!(
                    "principal {} contains control characters",
                    shown(&principal)
                ),
            ));
        }
        if self.principals.contains(&principal) {
            return Err(Error::field(
                field,
                format!("principal {} is listed twice", shown(&principal)),
            ));
        }
        if self.principals.len() == MAX_PRINCIPALS {
            return Err(Error::field(
                field,
                format!("more than {MAX_PRINCIPALS} principals"),
            ));
        }
        self.principals.push(principal);
        Ok(self)
    }

    /// Adds several principals.
    ///
    /// # Errors
    /// As [`principal`](Self::principal).
    pub fn principals<I, S>(&mut self, principals: I) -> Result<&mut Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for p in principals {
            self.principal(p)?;
        }
        Ok(self)
    }

    /// Allows an empty principal list: the certificate is then valid for **any** user
    /// (or any host). A "golden ticket": only for CAs whose servers restrict principals
    /// themselves (`AuthorizedPrincipalsFile`).
    pub fn allow_any_principal(&mut self) -> &mut Self {
        self.any_principal = true;
        self
    }

    /// Sets the key id, the label sshd logs when the certificate is used.
    ///
    /// # Errors
    /// Set twice, over [`MAX_FIELD_LEN`], or containing control characters: sshd writes
    /// the key id into its log, and a newline there forges a log line (ssh-keygen accepts
    /// them; kmssh refuses them, as it refuses them in principals).
    pub fn key_id(&mut self, key_id: impl Into<String>) -> Result<&mut Self> {
        let key_id = key_id.into();
        check_text(Field::KeyId, "key id", &key_id)?;
        if key_id.chars().any(char::is_control) {
            return Err(Error::field(
                Field::KeyId,
                format!("key id {} contains control characters", shown(&key_id)),
            ));
        }
        set_once(&mut self.key_id, key_id, Field::KeyId)?;
        Ok(self)
    }

    /// Sets the serial (the full `u64` range, 0 included).
    ///
    /// # Errors
    /// Set twice.
    pub fn serial(&mut self, serial: u64) -> Result<&mut Self> {
        set_once(&mut self.serial, serial, Field::Serial)?;
        Ok(self)
    }

    /// Chooses the CA's signature algorithm where its key offers several (an RSA CA signs
    /// `rsa-sha2-512` unless `rsa-sha2-256` is asked for, as `ssh-keygen -s -t` allows).
    /// Checked against the CA key when issuing; `ssh-rsa` (SHA-1) is not an
    /// [`Algorithm`](kmssh_core::Algorithm) and cannot be asked for.
    ///
    /// # Errors
    /// Set twice.
    pub fn ca_signature_algorithm_is(
        &mut self,
        algorithm: kmssh_core::Algorithm,
    ) -> Result<&mut Self> {
        set_once(
            &mut self.ca_signature_algorithm,
            algorithm,
            Field::SignatureAlgorithm,
        )?;
        Ok(self)
    }

    /// The CA signature algorithm asked for, if any.
    #[must_use]
    pub fn ca_signature_algorithm(&self) -> Option<kmssh_core::Algorithm> {
        self.ca_signature_algorithm
    }

    /// Sets the start of validity (Unix seconds); the backdate no longer applies.
    ///
    /// # Errors
    /// Set twice.
    pub fn valid_after(&mut self, unix_seconds: u64) -> Result<&mut Self> {
        set_once(&mut self.valid_after, unix_seconds, Field::ValidAfter)?;
        Ok(self)
    }

    /// Sets the end of validity (Unix seconds, exclusive; `u64::MAX` is "forever").
    ///
    /// # Errors
    /// Set twice, or together with [`valid_for`](Self::valid_for).
    pub fn valid_before(&mut self, unix_seconds: u64) -> Result<&mut Self> {
        if self.valid_for.is_some() {
            return Err(Error::field(
                Field::ValidBefore,
                "give valid_before or valid_for, not both",
            ));
        }
        set_once(&mut self.valid_before, unix_seconds, Field::ValidBefore)?;
        Ok(self)
    }

    /// Sets how long the certificate lasts from its start (default one hour).
    ///
    /// # Errors
    /// Set twice, zero, or together with [`valid_before`](Self::valid_before).
    pub fn valid_for(&mut self, duration: Duration) -> Result<&mut Self> {
        if self.valid_before.is_some() {
            return Err(Error::field(
                Field::Validity,
                "give valid_before or valid_for, not both",
            ));
        }
        if duration.as_secs() == 0 {
            return Err(Error::field(
                Field::Validity,
                "valid_for must be at least one second",
            ));
        }
        set_once(&mut self.valid_for, duration, Field::Validity)?;
        Ok(self)
    }

    /// Sets how far before now validity starts when no start is given (default 60 s).
    ///
    /// # Errors
    /// Set twice.
    pub fn backdate(&mut self, backdate: Duration) -> Result<&mut Self> {
        set_once(&mut self.backdate, backdate, Field::Validity)?;
        Ok(self)
    }

    /// Adds a critical option.
    ///
    /// # Errors
    /// An invalid value, the same option twice, more than [`MAX_OPTIONS`], or one of
    /// OpenSSH's options on a host certificate (OpenSSH clients refuse host certificates
    /// with critical options they do not know, and no OpenSSH option applies to hosts).
    pub fn critical_option(&mut self, option: CriticalOption) -> Result<&mut Self> {
        option.validate()?;
        if self.cert_type == CertificateType::Host
            && !matches!(option, CriticalOption::Custom { .. })
        {
            return Err(Error::field(
                Field::CriticalOptions,
                format!("{} applies to user certificates only", option.name()),
            ));
        }
        insert_named(
            &mut self.critical_options,
            option.name().to_owned(),
            option,
            Field::CriticalOptions,
        )?;
        Ok(self)
    }

    /// Adds an extension; the first call replaces the default set with an explicit one.
    /// OpenSSH's user permissions are accepted on host certificates too, as `ssh-keygen -h
    /// -O permit-pty` and paramiko-cloud issue them: OpenSSH ignores them there.
    ///
    /// # Errors
    /// A malformed custom name or value, the same extension twice, or more than
    /// [`MAX_OPTIONS`].
    pub fn extension(&mut self, extension: Extension) -> Result<&mut Self> {
        extension.validate()?;
        let list = self.extensions.get_or_insert_with(BTreeMap::new);
        insert_named(
            list,
            extension.name().to_owned(),
            extension,
            Field::Extensions,
        )?;
        Ok(self)
    }

    /// Issues the certificate with no extensions at all (ssh-keygen's `-O clear`).
    pub fn no_extensions(&mut self) -> &mut Self {
        self.extensions.get_or_insert_with(BTreeMap::new);
        self
    }

    /// Decides every field, with `now` as the current Unix time.
    ///
    /// # Errors
    /// No principals without [`allow_any_principal`](Self::allow_any_principal); a validity
    /// end that overflows `u64` or is not after its start.
    pub fn resolve(&self, now: u64) -> Result<ResolvedParameters> {
        if self.principals.is_empty() && !self.any_principal {
            return Err(Error::field(
                Field::Principals,
                "no principals: name at least one, or call allow_any_principal() for a certificate valid for anyone",
            ));
        }
        let valid_after = match self.valid_after {
            Some(t) => t,
            None => now.saturating_sub(self.backdate.unwrap_or(DEFAULT_BACKDATE).as_secs()),
        };
        let valid_before = match self.valid_before {
            Some(t) => t,
            None => {
                let start = self.valid_after.unwrap_or(now);
                let length = self.valid_for.unwrap_or(DEFAULT_VALIDITY).as_secs();
                start.checked_add(length).ok_or_else(|| {
                    Error::field(
                        Field::ValidBefore,
                        format!("start {start} + {length} s overflows u64; use valid_before(u64::MAX) for \"forever\""),
                    )
                })?
            }
        };
        if valid_before <= valid_after {
            return Err(Error::field(
                Field::ValidBefore,
                format!(
                    "valid before ({valid_before}) must be later than valid after ({valid_after})"
                ),
            ));
        }
        let extensions = match (&self.extensions, self.cert_type) {
            (Some(list), _) => list
                .iter()
                .map(|(name, e)| (name.clone(), e.value().to_owned()))
                .collect(),
            (None, CertificateType::User) => Extension::USER_DEFAULTS
                .iter()
                .map(|e| (e.name().to_owned(), String::new()))
                .collect(),
            (None, CertificateType::Host) => BTreeMap::new(),
        };
        Ok(ResolvedParameters {
            cert_type: self.cert_type,
            principals: self.principals.clone(),
            key_id: self.key_id.clone().unwrap_or_default(),
            serial: self.serial,
            valid_after,
            valid_before,
            critical_options: self
                .critical_options
                .iter()
                .map(|(name, o)| (name.clone(), o.value().to_owned()))
                .collect(),
            extensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn defaults_are_documented_ones() {
        let mut p = CertificateParameters::user();
        p.principal("alice").expect("ok");
        let r = p.resolve(NOW).expect("resolves");
        assert_eq!(r.valid_after, NOW - 60);
        assert_eq!(r.valid_before, NOW + 3600);
        assert_eq!(r.key_id, "");
        assert_eq!(r.serial, None);
        assert_eq!(r.extensions.len(), 5);
        assert!(r.critical_options.is_empty());

        let mut h = CertificateParameters::host();
        h.principal("web-01").expect("ok");
        assert!(h.resolve(NOW).expect("resolves").extensions.is_empty());
    }

    #[test]
    fn field_errors_name_the_field() {
        let field_of =
            |r: Result<&mut CertificateParameters>| r.err().and_then(|e| e.offending_field());
        let mut p = CertificateParameters::user();
        assert_eq!(field_of(p.principal("")), Some(Field::Principals));
        assert_eq!(
            field_of(p.principal("a".repeat(4097))),
            Some(Field::Principals)
        );
        assert_eq!(field_of(p.principal("bad\nname")), Some(Field::Principals));
        p.principal("a").expect("ok");
        assert_eq!(field_of(p.principal("a")), Some(Field::Principals));
        assert_eq!(field_of(p.key_id("k".repeat(4097))), Some(Field::KeyId));
        p.serial(1).expect("ok");
        assert_eq!(field_of(p.serial(2)), Some(Field::Serial));
        p.extension(Extension::PermitPty).expect("ok");
        assert_eq!(
            field_of(p.extension(Extension::PermitPty)),
            Some(Field::Extensions)
        );
        p.critical_option(CriticalOption::ForceCommand("id".into()))
            .expect("ok");
        assert_eq!(
            field_of(p.critical_option(CriticalOption::ForceCommand("ls".into()))),
            Some(Field::CriticalOptions)
        );

        let mut many = CertificateParameters::user();
        many.principals((0..256).map(|i| format!("u{i}")))
            .expect("256 is fine");
        assert_eq!(
            field_of(many.principal("one-more")),
            Some(Field::Principals)
        );

        assert_eq!(
            field_of(p.key_id("ops\nPrincipals: root")),
            Some(Field::KeyId)
        );
        assert_eq!(field_of(p.key_id("\u{1b}[2J")), Some(Field::KeyId));

        let mut wide = CertificateParameters::user();
        for i in 0..MAX_OPTIONS {
            wide.extension(Extension::Custom {
                name: format!("x{i}@example.com"),
                value: String::new(),
            })
            .expect("within the cap");
        }
        assert_eq!(
            field_of(wide.extension(Extension::PermitPty)),
            Some(Field::Extensions)
        );

        // ssh-keygen -h -O permit-pty issues it; OpenSSH ignores it on hosts.
        let mut h = CertificateParameters::host();
        h.extension(Extension::PermitPty)
            .expect("user permissions are accepted on host certificates");
        assert_eq!(
            field_of(h.critical_option(CriticalOption::VerifyRequired)),
            Some(Field::CriticalOptions)
        );
    }

    #[test]
    fn validity_is_checked_when_resolved() {
        let resolve_field =
            |p: &CertificateParameters| p.resolve(NOW).err().and_then(|e| e.offending_field());
        let mut none = CertificateParameters::user();
        assert_eq!(resolve_field(&none), Some(Field::Principals));
        none.allow_any_principal();
        assert!(none.resolve(NOW).is_ok());

        let mut inverted = CertificateParameters::user();
        inverted
            .principal("a")
            .expect("ok")
            .valid_after(NOW)
            .expect("ok")
            .valid_before(NOW)
            .expect("ok");
        assert_eq!(resolve_field(&inverted), Some(Field::ValidBefore));

        let mut overflow = CertificateParameters::user();
        overflow
            .principal("a")
            .expect("ok")
            .valid_after(u64::MAX - 10)
            .expect("ok");
        assert_eq!(resolve_field(&overflow), Some(Field::ValidBefore));

        let mut forever = CertificateParameters::user();
        forever
            .principal("a")
            .expect("ok")
            .valid_after(0)
            .expect("ok")
            .valid_before(u64::MAX)
            .expect("ok");
        assert_eq!(
            forever
                .resolve(NOW)
                .map(|r| (r.valid_after, r.valid_before))
                .ok(),
            Some((0, u64::MAX))
        );

        let mut no_backdate = CertificateParameters::user();
        no_backdate
            .principal("a")
            .expect("ok")
            .backdate(Duration::ZERO)
            .expect("ok");
        assert_eq!(
            no_backdate.resolve(NOW).map(|r| r.valid_after).ok(),
            Some(NOW)
        );

        let mut both = CertificateParameters::user();
        both.valid_before(NOW + 5).expect("ok");
        assert!(both.valid_for(Duration::from_secs(5)).is_err());
    }
}
