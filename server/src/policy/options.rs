//! Critical option and extension rules: which a requester may ask for, which are forced.

use std::collections::{BTreeMap, BTreeSet};

use kmssh_pki::{CriticalOption, Extension, escape_for_display};
use serde::Deserialize;

/// Which critical options (or extensions) a policy lets a requester ask for, and which it
/// adds to every certificate.
///
/// Names as OpenSSH spells them: `force-command`, `source-address`, `verify-required`;
/// `no-touch-required`, `permit-X11-forwarding`, `permit-agent-forwarding`,
/// `permit-port-forwarding`, `permit-pty`, `permit-user-rc`; or a custom `name@domain`.
/// A section that is present but omits `allowed` allows nothing: the defaults
/// ([`OptionRules::none`] for critical options, [`OptionRules::openssh_default_extensions`]
/// for extensions) apply only when the whole section is absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionRules {
    /// Names a request may carry, with any value.
    #[serde(default)]
    pub allowed: Vec<String>,
    /// Name → value added to every certificate; a request may repeat one only with the
    /// same value (flags: the empty string).
    #[serde(default)]
    pub forced: BTreeMap<String, String>,
}

impl OptionRules {
    /// Nothing allowed, nothing forced: the default for critical options.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// The five extensions `ssh-keygen -s` grants by default allowed (X11, agent and port
    /// forwarding, a pty, `~/.ssh/rc`), none forced: the default for extensions.
    #[must_use]
    pub fn openssh_default_extensions() -> Self {
        Self {
            allowed: Extension::USER_DEFAULTS
                .iter()
                .map(|e| e.name().to_owned())
                .collect(),
            forced: BTreeMap::new(),
        }
    }
}

/// What the rules need of [`CriticalOption`] and [`Extension`].
pub(super) trait Named: Clone + Sized {
    /// "critical option" or "extension", for messages.
    const WHAT: &'static str;
    fn name(&self) -> &str;
    fn value(&self) -> &str;
    /// Builds one from configuration text, checking the value.
    fn parse(name: &str, value: &str) -> Result<Self, String>;
    /// Whether `name` is one OpenSSH defines or a well-formed custom `name@domain`.
    fn check_name(name: &str) -> Result<(), String>;
}

/// Requester text, quoted and with control characters escaped, for a message.
pub(super) fn shown(text: &str) -> String {
    format!("`{}`", escape_for_display(text))
}

fn reason(e: kmssh_pki::Error) -> String {
    match e {
        kmssh_pki::Error::InvalidField { reason, .. } => reason,
        other => other.to_string(),
    }
}

impl Named for CriticalOption {
    const WHAT: &'static str = "critical option";
    fn name(&self) -> &str {
        CriticalOption::name(self)
    }
    fn value(&self) -> &str {
        CriticalOption::value(self)
    }
    fn parse(name: &str, value: &str) -> Result<Self, String> {
        CriticalOption::parse(name, value).map_err(reason)
    }
    fn check_name(name: &str) -> Result<(), String> {
        // OpenSSH's own options need a value to parse; any other name is checked by
        // parsing it as a custom option, which has no value requirement.
        const OPENSSH: [&str; 3] = ["force-command", "source-address", "verify-required"];
        if OPENSSH.contains(&name) {
            return Ok(());
        }
        CriticalOption::parse(name, "").map(drop).map_err(reason)
    }
}

impl Named for Extension {
    const WHAT: &'static str = "extension";
    fn name(&self) -> &str {
        Extension::name(self)
    }
    fn value(&self) -> &str {
        Extension::value(self)
    }
    fn parse(name: &str, value: &str) -> Result<Self, String> {
        Extension::parse(name, value).map_err(reason)
    }
    fn check_name(name: &str) -> Result<(), String> {
        Extension::parse(name, "").map(drop).map_err(reason)
    }
}

/// [`OptionRules`], checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Rules<T> {
    allowed: BTreeSet<String>,
    forced: Vec<T>,
}

impl<T: Named> Rules<T> {
    /// Checks every name and forced value; the error names the offending entry (as a
    /// field path below the section) and why.
    pub(super) fn compile(rules: &OptionRules) -> Result<Self, (String, String)> {
        for name in &rules.allowed {
            T::check_name(name).map_err(|why| ("allowed".to_owned(), why))?;
        }
        let forced = rules
            .forced
            .iter()
            .map(|(name, value)| {
                T::parse(name, value).map_err(|why| (format!("forced.{name}"), why))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            allowed: rules.allowed.iter().cloned().collect(),
            forced,
        })
    }

    /// The forced entries.
    pub(super) fn forced(&self) -> &[T] {
        &self.forced
    }

    /// What the certificate carries for `requested`: each requested entry if allowed (or
    /// forced with the same value), then the forced ones.
    pub(super) fn apply(&self, requested: &[T]) -> Result<Vec<T>, String> {
        let mut out = Vec::with_capacity(requested.len() + self.forced.len());
        for entry in requested {
            if let Some(forced) = self.forced.iter().find(|f| f.name() == entry.name()) {
                if forced.value() != entry.value() {
                    return Err(format!(
                        "requested {} {}={} conflicts with the value the policy forces, {}",
                        T::WHAT,
                        shown(entry.name()),
                        shown(entry.value()),
                        shown(forced.value())
                    ));
                }
                // Added with the forced ones below.
                continue;
            }
            if !self.allowed.contains(entry.name()) {
                let allowed = if self.allowed.is_empty() {
                    "none".to_owned()
                } else {
                    self.allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                };
                return Err(format!(
                    "{} {} is not allowed (allowed: {allowed})",
                    T::WHAT,
                    shown(entry.name())
                ));
            }
            out.push(entry.clone());
        }
        out.extend(self.forced.iter().cloned());
        Ok(out)
    }
}
