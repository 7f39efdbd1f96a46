//! Critical options and extensions (PROTOCOL.certkeys), typed.
//!
//! OpenSSH must refuse a certificate carrying a critical option it does not know, so
//! kmssh only writes the three OpenSSH defines plus custom `name@domain` ones the caller
//! asks for by name. Extensions may be ignored by a verifier; kmssh writes OpenSSH's six
//! flags and custom `name@domain` ones.

use std::fmt;
use std::net::IpAddr;

use crate::error::{Error, Field, Result, shown};

/// Longest option name or value kmssh writes; OpenSSH's own limits are far higher, but
/// nothing legitimate comes near this.
pub(crate) const MAX_OPTION_LEN: usize = 4096;

/// A critical option: the certificate is refused by any verifier that does not know it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CriticalOption {
    /// `force-command`: the command sshd runs instead of the one the client asks for.
    ForceCommand(String),
    /// `source-address`: comma-separated CIDR list the client must connect from.
    SourceAddress(String),
    /// `verify-required`: FIDO keys must prove user verification (PIN or biometric).
    VerifyRequired,
    /// A custom option named `name@domain`, for verifiers that know it.
    Custom {
        /// `name@domain`.
        name: String,
        /// Its value (may be empty).
        value: String,
    },
}

impl CriticalOption {
    /// The option's wire name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::ForceCommand(_) => "force-command",
            Self::SourceAddress(_) => "source-address",
            Self::VerifyRequired => "verify-required",
            Self::Custom { name, .. } => name,
        }
    }

    /// The option's value as written inside the certificate (empty for flags).
    #[must_use]
    pub fn value(&self) -> &str {
        match self {
            Self::ForceCommand(v) | Self::SourceAddress(v) | Self::Custom { value: v, .. } => v,
            Self::VerifyRequired => "",
        }
    }

    /// Builds an option from its wire name and value: the known names map to their
    /// variants, `name@domain` to [`CriticalOption::Custom`]; anything else is refused.
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the critical options for an unknown name or a value
    /// the option does not accept.
    pub fn parse(name: &str, value: &str) -> Result<Self> {
        let option = match name {
            "force-command" => Self::ForceCommand(value.to_owned()),
            "source-address" => Self::SourceAddress(value.to_owned()),
            "verify-required" => Self::VerifyRequired,
            _ if is_custom_name(name) => Self::Custom {
                name: name.to_owned(),
                value: value.to_owned(),
            },
            _ => {
                return Err(Error::field(
                    Field::CriticalOptions,
                    format!(
                        "unknown critical option {}: OpenSSH refuses certificates with critical options it does not know; \
                         known: force-command, source-address, verify-required, or a custom name@domain",
                        shown(name)
                    ),
                ));
            }
        };
        if matches!(option, Self::VerifyRequired) && !value.is_empty() {
            return Err(Error::field(
                Field::CriticalOptions,
                "verify-required takes no value",
            ));
        }
        option.validate()?;
        Ok(option)
    }

    /// Checks the value: a non-empty command, a valid CIDR list, a well-formed custom name.
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the critical options.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::field(Field::CriticalOptions, reason));
        if self.value().len() > MAX_OPTION_LEN {
            return bad(format!(
                "{} value is over {MAX_OPTION_LEN} bytes",
                self.name()
            ));
        }
        match self {
            Self::ForceCommand(command) if command.is_empty() => {
                bad("force-command needs a command".into())
            }
            Self::ForceCommand(command) if command.contains('\0') => {
                bad("force-command contains a NUL byte".into())
            }
            Self::SourceAddress(list) => validate_cidr_list(list),
            Self::Custom { name, .. } if !is_custom_name(name) => bad(format!(
                "custom critical option {} must be named name@domain",
                shown(name)
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for CriticalOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value() {
            "" => f.write_str(self.name()),
            value => write!(f, "{}={value}", self.name()),
        }
    }
}

/// A certificate extension: a permission or a custom `name@domain` entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Extension {
    /// `no-touch-required`: FIDO signatures need not prove user presence.
    NoTouchRequired,
    /// `permit-X11-forwarding`.
    PermitX11Forwarding,
    /// `permit-agent-forwarding`.
    PermitAgentForwarding,
    /// `permit-port-forwarding`.
    PermitPortForwarding,
    /// `permit-pty`.
    PermitPty,
    /// `permit-user-rc`: sshd runs `~/.ssh/rc`.
    PermitUserRc,
    /// A custom extension named `name@domain`.
    Custom {
        /// `name@domain`.
        name: String,
        /// Its value (may be empty).
        value: String,
    },
}

impl Extension {
    /// What `ssh-keygen -s` grants a user certificate unless told otherwise:
    /// X11, agent and port forwarding, a pty and `~/.ssh/rc`.
    pub const USER_DEFAULTS: [Extension; 5] = [
        Self::PermitX11Forwarding,
        Self::PermitAgentForwarding,
        Self::PermitPortForwarding,
        Self::PermitPty,
        Self::PermitUserRc,
    ];

    /// The extension's wire name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::NoTouchRequired => "no-touch-required",
            Self::PermitX11Forwarding => "permit-X11-forwarding",
            Self::PermitAgentForwarding => "permit-agent-forwarding",
            Self::PermitPortForwarding => "permit-port-forwarding",
            Self::PermitPty => "permit-pty",
            Self::PermitUserRc => "permit-user-rc",
            Self::Custom { name, .. } => name,
        }
    }

    /// The value written inside the certificate (empty for OpenSSH's flags).
    #[must_use]
    pub fn value(&self) -> &str {
        match self {
            Self::Custom { value, .. } => value,
            _ => "",
        }
    }

    /// Whether OpenSSH defines it (as opposed to a custom extension).
    #[must_use]
    pub fn is_standard(&self) -> bool {
        !matches!(self, Self::Custom { .. })
    }

    /// Builds an extension from its wire name and value.
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the extensions for a name that is neither known nor
    /// `name@domain`, or a value on a flag extension.
    pub fn parse(name: &str, value: &str) -> Result<Self> {
        let extension = match name {
            "no-touch-required" => Self::NoTouchRequired,
            "permit-X11-forwarding" => Self::PermitX11Forwarding,
            "permit-agent-forwarding" => Self::PermitAgentForwarding,
            "permit-port-forwarding" => Self::PermitPortForwarding,
            "permit-pty" => Self::PermitPty,
            "permit-user-rc" => Self::PermitUserRc,
            _ => Self::Custom {
                name: name.to_owned(),
                value: value.to_owned(),
            },
        };
        if extension.is_standard() && !value.is_empty() {
            return Err(Error::field(
                Field::Extensions,
                format!("{name} is a flag and takes no value, got {}", shown(value)),
            ));
        }
        extension.validate()?;
        Ok(extension)
    }

    /// Checks a custom extension's name and value sizes.
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the extensions.
    pub fn validate(&self) -> Result<()> {
        if let Self::Custom { name, value } = self {
            if !is_custom_name(name) {
                return Err(Error::field(
                    Field::Extensions,
                    format!(
                        "unknown extension {}: custom extensions must be named name@domain",
                        shown(name)
                    ),
                ));
            }
            if value.len() > MAX_OPTION_LEN {
                return Err(Error::field(
                    Field::Extensions,
                    format!("{name} value is over {MAX_OPTION_LEN} bytes"),
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value() {
            "" => f.write_str(self.name()),
            value => write!(f, "{}={value}", self.name()),
        }
    }
}

/// `name@domain`: one `@`, both sides non-empty, printable ASCII without spaces, commas
/// or `=`, the domain at least one dot-free label long, 256 bytes at most.
pub(crate) fn is_custom_name(name: &str) -> bool {
    let Some((local, domain)) = name.split_once('@') else {
        return false;
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'@' | b',' | b'=' | b'"'))
    };
    name.len() <= 256
        && token(local)
        && token(domain)
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

/// A `source-address` list: comma-separated addresses or CIDR blocks, as sshd parses them.
fn validate_cidr_list(list: &str) -> Result<()> {
    let bad = |reason: String| Err(Error::field(Field::CriticalOptions, reason));
    if list.is_empty() {
        return bad("source-address needs at least one address or CIDR block".into());
    }
    for entry in list.split(',') {
        let (address, prefix) = match entry.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (entry, None),
        };
        let Ok(ip) = address.parse::<IpAddr>() else {
            return bad(format!(
                "source-address entry {} is not an IP address or CIDR block",
                shown(entry)
            ));
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if let Some(prefix) = prefix {
            let bits = match prefix.parse::<u8>() {
                Ok(bits) if bits <= max && !prefix.starts_with('+') => bits,
                _ => {
                    return bad(format!(
                        "source-address entry {}: prefix must be 0..={max}",
                        shown(entry)
                    ));
                }
            };
            // sshd refuses a block whose address has bits set past the prefix
            // ("Inconsistent mask length"), so the certificate would never work.
            if host_bits_set(ip, bits) {
                return bad(format!(
                    "source-address entry {}: the address has bits set past /{bits} (sshd refuses it); write the network address",
                    shown(entry)
                ));
            }
        }
    }
    Ok(())
}

/// Whether `ip` has any bit set after its first `prefix` bits.
fn host_bits_set(ip: IpAddr, prefix: u8) -> bool {
    let (bits, width) = match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    let host_bits = width - u32::from(prefix);
    host_bits > 0 && bits & (u128::MAX >> (128 - host_bits)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_names_must_be_name_at_domain() {
        for good in ["login@example.com", "x@y", "permit-foo@corp.internal"] {
            assert!(is_custom_name(good), "{good}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "name@",
            "a@b@c",
            "a b@c",
            "a@b,c",
            "a@.com",
            "a@com.",
            "a@x..y",
        ] {
            assert!(!is_custom_name(bad), "{bad}");
        }
    }

    #[test]
    fn critical_options_parse_and_refuse_unknown_names() {
        assert_eq!(
            CriticalOption::parse("force-command", "/bin/true").ok(),
            Some(CriticalOption::ForceCommand("/bin/true".into()))
        );
        assert!(
            CriticalOption::parse(
                "source-address",
                "10.0.0.0/8,::1,192.168.1.7/32,0.0.0.0/0,2001:db8::/32,::/0"
            )
            .is_ok()
        );
        for (name, value) in [
            ("permit-pty", ""),
            ("force_command", "x"),
            ("force-command", ""),
            ("source-address", ""),
            ("source-address", "10.0.0.0/33"),
            ("source-address", "example.com"),
            ("source-address", "10.0.0.1,"),
            ("source-address", "10.0.0.1/8"),
            ("source-address", "2001:db8::1/64"),
            ("verify-required", "yes"),
        ] {
            let err = CriticalOption::parse(name, value).expect_err(name);
            assert_eq!(
                err.offending_field(),
                Some(Field::CriticalOptions),
                "{name}={value}"
            );
        }
        let custom = CriticalOption::parse("tag@example.com", "v").expect("custom");
        assert_eq!(custom.to_string(), "tag@example.com=v");
    }

    #[test]
    fn extensions_parse_flags_and_custom() {
        assert_eq!(
            Extension::parse("permit-pty", "").ok(),
            Some(Extension::PermitPty)
        );
        assert!(Extension::parse("permit-pty", "yes").is_err());
        assert!(Extension::parse("permit-everything", "").is_err());
        assert!(Extension::parse("login@example.com", "alice").is_ok());
    }
}
