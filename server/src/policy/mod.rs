//! Per-caller policy: what a caller may have signed, decided before anything is signed.
//!
//! A [`PolicyConfig`] from the configuration is compiled once ([`Policy::compile`]) into a
//! [`Policy`]; each request is then [evaluated](Policy::evaluate) against the caller's
//! [`Identity`] into either the [`Decision`] to sign or the [`Refusal`] naming the rule.
//! Nothing the requester asked for is changed silently: a request outside the policy is
//! refused, except validity, whose unrequested ends are filled in (see
//! [`Decision::clamped`]).

mod options;
mod principals;
#[cfg(test)]
mod tests;
mod validity;

use std::collections::BTreeSet;
use std::fmt;

use kmssh_pki::csr::CertificateSigningRequest;
use kmssh_pki::{CertificateParameters, CertificateType, CriticalOption, Extension, Field};
use serde::Deserialize;

pub use options::OptionRules;

use crate::Identity;
use options::Rules;
use principals::Pattern;
use validity::Limits;

/// One `[policies.NAME]` table of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Names of configured keys this policy may sign with (required, non-empty).
    pub keys: Vec<String>,
    /// `"user"` and/or `"host"` (required, non-empty).
    pub certificate_types: Vec<String>,
    /// Patterns every requested principal must match one of: exact (`alice`), glob
    /// (`dev-*`, `web-??`; no regex, case-sensitive) or template (`{caller}`,
    /// `{claim.email.local}`, `{cn}`), a template possibly inside a glob (`{caller}-*`).
    /// Templates name an [`Identity`] attribute (`caller`, `subject`, `cn`, `san.email`,
    /// `san.dns`, `sub`, `iss`, `email.local`, `claim.NAME`), optionally suffixed `.local`
    /// for the part before its `@`; the value is matched literally, and a missing or empty
    /// attribute makes the pattern match nothing. Required (may be `[]` with
    /// `allow_empty_principals`).
    pub principals: Vec<String>,
    /// Longest validity a certificate may have, and the latest it may end relative to
    /// now: `"8h"`, `"30m"`, `"2d"`, `"1w"`, `"1w2d"`, `"3600"` (seconds). Required.
    pub max_validity: String,
    /// How far before now a certificate may start, and where a start that was not
    /// requested goes. Default `"1m"`.
    #[serde(default)]
    pub backdate: Option<String>,
    /// Critical options a request may carry and those forced. Default: none allowed,
    /// none forced.
    #[serde(default = "OptionRules::none")]
    pub critical_options: OptionRules,
    /// Extensions a request may carry and those forced. Default: the five OpenSSH
    /// default extensions allowed (`permit-X11-forwarding`, `permit-agent-forwarding`,
    /// `permit-port-forwarding`, `permit-pty`, `permit-user-rc`), none forced.
    #[serde(default = "OptionRules::openssh_default_extensions")]
    pub extensions: OptionRules,
    /// `"assign"` (default): the service assigns serials from the ledger and a request
    /// must carry serial 0; `"requested"`: the requester's serial is used (0 included).
    #[serde(default)]
    pub serial: Option<String>,
    /// Whether a request may list no principals (OpenSSH: valid for any user or host).
    /// Default false.
    #[serde(default)]
    pub allow_empty_principals: bool,
    /// Whether callers under this policy may revoke certificates of its keys (the
    /// `kmssh.revocation.v1.Revocation/Revoke` call). Default false: issuing does not imply
    /// revoking.
    #[serde(default)]
    pub revoke: bool,
}

/// Where a certificate's serial comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SerialMode {
    /// The service reserves one from the ledger; requests must ask for serial 0.
    #[default]
    Assign,
    /// The requester's serial, claimed in the ledger so it is never issued twice.
    Requested,
}

/// A policy in the configuration that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("policy `{policy}`: {field}: {message}")]
pub struct PolicyConfigError {
    /// The policy's name.
    pub policy: String,
    /// The offending field (`keys`, `max_validity`, `extensions.forced.NAME`, …).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// A request the policy does not allow.
///
/// `rule` is one of `policy` (the identity is bound to another policy), `keys`,
/// `certificate_types`, `serial`, `principals`, `backdate`, `valid_after`,
/// `max_validity`, `critical_options`, `extensions`, `key_id`, `request` (a field the
/// certificate cannot carry).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("policy rule `{rule}`: {message}")]
pub struct Refusal {
    /// The rule that refused.
    pub rule: &'static str,
    /// What was asked, and what the policy allows.
    pub message: String,
}

impl Refusal {
    fn new(rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            rule,
            message: message.into(),
        }
    }

    /// A field pki would not put in a certificate, under the rule for that field.
    fn from_pki(e: &kmssh_pki::Error) -> Self {
        let rule = match e.offending_field() {
            Some(Field::Principals) => "principals",
            Some(Field::KeyId) => "key_id",
            Some(Field::CriticalOptions) => "critical_options",
            Some(Field::Extensions) => "extensions",
            Some(Field::ValidAfter | Field::ValidBefore | Field::Validity) => "valid_after",
            _ => "request",
        };
        Self::new(rule, e.to_string())
    }
}

/// What to sign: the policy's answer to an allowed request.
#[derive(Clone, Debug)]
pub struct Decision {
    /// Every certificate field but the serial, which the service sets: the ledger's next
    /// one, or [`serial_requested`](Self::serial_requested) once claimed.
    pub parameters: CertificateParameters,
    /// True when the policy chose the end of validity (the request left `valid_before` 0).
    pub clamped: bool,
    /// The requester's serial, when the policy's `serial` is `"requested"`.
    pub serial_requested: Option<u64>,
}

/// A compiled policy.
#[derive(Clone, Debug)]
pub struct Policy {
    name: String,
    keys: BTreeSet<String>,
    certificate_types: Vec<CertificateType>,
    principals: Vec<Pattern>,
    allow_empty_principals: bool,
    revoke: bool,
    validity: Limits,
    critical_options: Rules<CriticalOption>,
    extensions: Rules<Extension>,
    serial: SerialMode,
}

impl Policy {
    /// Checks `config` and compiles it; `key_names` are the configured keys.
    ///
    /// # Errors
    /// [`PolicyConfigError`] naming the field: an empty or unknown key name, an empty or
    /// unknown certificate type, a malformed principal pattern or unknown template
    /// attribute, a bad duration (or a zero `max_validity`), an unknown option or
    /// extension name or an invalid forced value, a forced OpenSSH critical option in a
    /// policy that allows host certificates (they apply to user certificates only), an
    /// unknown `serial` mode.
    pub fn compile(
        name: &str,
        config: &PolicyConfig,
        key_names: &[&str],
    ) -> Result<Policy, PolicyConfigError> {
        let error = |field: &str, message: String| PolicyConfigError {
            policy: name.to_owned(),
            field: field.to_owned(),
            message,
        };

        if config.keys.is_empty() {
            return Err(error("keys", "empty: the policy could sign nothing".into()));
        }
        for key in &config.keys {
            if !key_names.contains(&key.as_str()) {
                return Err(error(
                    "keys",
                    format!(
                        "no key named {key:?} is configured (configured: {})",
                        key_names.join(", ")
                    ),
                ));
            }
        }

        if config.certificate_types.is_empty() {
            return Err(error(
                "certificate_types",
                "empty: list \"user\" and/or \"host\"".into(),
            ));
        }
        let mut certificate_types = Vec::new();
        for t in &config.certificate_types {
            let t = match t.as_str() {
                "user" => CertificateType::User,
                "host" => CertificateType::Host,
                other => {
                    return Err(error(
                        "certificate_types",
                        format!("{other:?} is neither \"user\" nor \"host\""),
                    ));
                }
            };
            if !certificate_types.contains(&t) {
                certificate_types.push(t);
            }
        }

        let principals = config
            .principals
            .iter()
            .map(|p| Pattern::parse(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| error("principals", why))?;

        let max =
            validity::duration(&config.max_validity).map_err(|why| error("max_validity", why))?;
        if max == 0 {
            return Err(error("max_validity", "must be at least one second".into()));
        }
        let backdate = match &config.backdate {
            Some(text) => validity::duration(text).map_err(|why| error("backdate", why))?,
            None => validity::DEFAULT_BACKDATE,
        };

        let critical_options = Rules::<CriticalOption>::compile(&config.critical_options)
            .map_err(|(field, why)| error(&format!("critical_options.{field}"), why))?;
        if certificate_types.contains(&CertificateType::Host) {
            // A host certificate cannot carry them, and signing it without the option
            // the administrator forced would be a silent change.
            if let Some(o) = critical_options
                .forced()
                .iter()
                .find(|o| !matches!(o, CriticalOption::Custom { .. }))
            {
                return Err(error(
                    &format!("critical_options.forced.{}", o.name()),
                    "applies to user certificates only, and this policy allows host certificates; use a separate policy for hosts".into(),
                ));
            }
        }
        let extensions = Rules::<Extension>::compile(&config.extensions)
            .map_err(|(field, why)| error(&format!("extensions.{field}"), why))?;

        let serial = match config.serial.as_deref() {
            None | Some("assign") => SerialMode::Assign,
            Some("requested") => SerialMode::Requested,
            Some(other) => {
                return Err(error(
                    "serial",
                    format!("{other:?} is neither \"assign\" nor \"requested\""),
                ));
            }
        };

        Ok(Policy {
            name: name.to_owned(),
            keys: config.keys.iter().cloned().collect(),
            certificate_types,
            principals,
            allow_empty_principals: config.allow_empty_principals,
            revoke: config.revoke,
            validity: Limits { max, backdate },
            critical_options,
            extensions,
            serial,
        })
    }

    /// The policy's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether callers under this policy may revoke certificates of its keys.
    #[must_use]
    pub fn allows_revoking(&self) -> bool {
        self.revoke
    }

    /// Whether the policy may sign with the key named `key_name`.
    #[must_use]
    pub fn allows_key(&self, key_name: &str) -> bool {
        self.keys.contains(key_name)
    }

    /// Where serials come from.
    #[must_use]
    pub fn serial_mode(&self) -> SerialMode {
        self.serial
    }

    /// The longest validity, in seconds.
    #[must_use]
    pub fn max_validity(&self) -> u64 {
        self.validity.max
    }

    /// Decides a request from `identity` to sign with `key_name` at `now` (Unix seconds).
    ///
    /// The key id is the requested one, or the caller's name when the request leaves it
    /// empty. Validity: `valid_after` 0 starts at now − backdate; `valid_before` 0 ends
    /// max_validity after the start (never past now + max_validity); a requested start
    /// earlier than now − backdate, or an end past now + max_validity, is refused.
    ///
    /// # Errors
    /// [`Refusal`] naming the first rule the request breaks.
    pub fn evaluate(
        &self,
        identity: &Identity,
        key_name: &str,
        request: &CertificateSigningRequest,
        now: u64,
    ) -> Result<Decision, Refusal> {
        // Guards the service's lookup: a policy only ever judges its own callers.
        if identity.policy != self.name {
            return Err(Refusal::new(
                "policy",
                format!(
                    "caller {:?} is bound to policy {:?}, not {:?}",
                    identity.caller, identity.policy, self.name
                ),
            ));
        }
        if !self.allows_key(key_name) {
            return Err(Refusal::new(
                "keys",
                format!("key {key_name:?} is not one this policy signs with"),
            ));
        }
        if !self.certificate_types.contains(&request.cert_type) {
            return Err(Refusal::new(
                "certificate_types",
                format!(
                    "{} certificates are not allowed (allowed: {})",
                    request.cert_type.as_str(),
                    self.certificate_types
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let serial_requested = match self.serial {
            SerialMode::Assign if request.serial != 0 => {
                return Err(Refusal::new(
                    "serial",
                    format!(
                        "the request asks for serial {}, but this policy assigns serials; set serial = \"requested\" in the policy to honour requester serials",
                        request.serial
                    ),
                ));
            }
            SerialMode::Assign => None,
            SerialMode::Requested => Some(request.serial),
        };
        self.check_principals(identity, &request.principals)?;
        let window = self
            .validity
            .window(request.valid_after, request.valid_before, now)?;
        let critical_options = self
            .critical_options
            .apply(&request.critical_options)
            .map_err(|why| Refusal::new("critical_options", why))?;
        let extensions = self
            .extensions
            .apply(&request.extensions)
            .map_err(|why| Refusal::new("extensions", why))?;

        let key_id = if request.key_id.is_empty() {
            identity.caller.clone()
        } else {
            request.key_id.clone()
        };
        let mut parameters = CertificateParameters::new(request.cert_type);
        let pki = |e: kmssh_pki::Error| Refusal::from_pki(&e);
        parameters
            .principals(request.principals.iter().cloned())
            .map_err(pki)?
            .key_id(key_id)
            .map_err(pki)?
            .valid_after(window.after)
            .map_err(pki)?
            .valid_before(window.before)
            .map_err(pki)?;
        if request.principals.is_empty() {
            parameters.allow_any_principal();
        }
        // An empty list means no extensions, not pki's defaults.
        parameters.no_extensions();
        for option in critical_options {
            parameters.critical_option(option).map_err(pki)?;
        }
        for extension in extensions {
            parameters.extension(extension).map_err(pki)?;
        }
        Ok(Decision {
            parameters,
            clamped: window.clamped,
            serial_requested,
        })
    }

    fn check_principals(&self, identity: &Identity, requested: &[String]) -> Result<(), Refusal> {
        if requested.is_empty() {
            if self.allow_empty_principals {
                return Ok(());
            }
            return Err(Refusal::new(
                "principals",
                "the request lists no principals, which OpenSSH reads as \"any principal\"; this policy requires at least one",
            ));
        }
        let patterns = principals::expand(&self.principals, identity);
        match requested.iter().find(|p| !patterns.matches(p)) {
            Some(principal) => Err(Refusal::new(
                "principals",
                format!(
                    "principal {} is not allowed for caller {:?}",
                    options::shown(principal),
                    identity.caller
                ),
            )),
            None => Ok(()),
        }
    }
}

impl fmt::Display for SerialMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Assign => "assign",
            Self::Requested => "requested",
        })
    }
}
