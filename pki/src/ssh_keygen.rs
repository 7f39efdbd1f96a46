//! ssh-keygen's argument forms, so a program issuing certificates takes what operators
//! already type: `-V` validity intervals (`+8h`, `-5m:+1d`, `YYYYMMDD[HHMM[SS]][Z]`,
//! `always:forever`), durations (`1w2d`, `90m`, plain seconds) and `-O` options. Dates
//! are read as UTC.

use std::collections::BTreeSet;

use crate::error::shown;
use crate::{
    CertificateParameters, CertificateType, CriticalOption, Error, Extension, Field, Result,
};

/// Parses a duration like `1w2d3h4m5s` (ssh-keygen's units; a bare number is seconds).
///
/// # Errors
/// [`Error::InvalidField`] ([`Field::Validity`]) for anything else, or an overflow.
pub fn parse_duration(text: &str) -> Result<u64> {
    duration(text).map_err(|why| Error::field(Field::Validity, why))
}

/// Parses a moment: `+dur`/`-dur` from `now`, `YYYYMMDD[HHMM[SS]]` (UTC), or `@SECONDS`
/// since the Unix epoch (what `kmssh verify --at` takes).
///
/// # Errors
/// [`Error::InvalidField`] ([`Field::Validity`]) for anything else.
pub fn parse_moment(text: &str, now: u64) -> Result<u64> {
    moment(text, now).map_err(|why| Error::field(Field::Validity, why))
}

/// Parses a `-V` value at `now`.
///
/// # Errors
/// [`Error::InvalidField`] ([`Field::Validity`]) naming what is wrong.
pub fn parse_validity(text: &str, now: u64) -> Result<ValidityWindow> {
    validity(text, now).map_err(|why| Error::field(Field::Validity, why))
}

impl ValidityWindow {
    /// Sets the ends this window gives on `params`; the others keep their defaults.
    ///
    /// # Errors
    /// As [`CertificateParameters::valid_after`] and [`CertificateParameters::valid_before`].
    pub fn apply(&self, params: &mut CertificateParameters) -> Result<()> {
        if let Some(after) = self.after {
            params.valid_after(after)?;
        }
        if let Some(before) = self.before {
            params.valid_before(before)?;
        }
        Ok(())
    }
}

/// The five extensions ssh-keygen grants by default, by name.
const DEFAULT_EXTENSIONS: [&str; 5] = [
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

/// Applies `-O` options in order, as `ssh-keygen -O` does: `clear` empties the permissions,
/// `no-*`/`permit-*` remove and add, `extension:`/`critical:` add custom entries,
/// `force-command=`, `source-address=` and `verify-required` set critical options. A
/// user certificate starts from ssh-keygen's five default permissions, a host
/// certificate from none.
///
/// # Errors
/// [`Error::InvalidField`] naming an unknown option or a bad value.
pub fn apply_options(params: &mut CertificateParameters, options: &[String]) -> Result<()> {
    let host = params.cert_type() == CertificateType::Host;
    let mut extensions: BTreeSet<(String, String)> = if host {
        BTreeSet::new()
    } else {
        DEFAULT_EXTENSIONS
            .iter()
            .map(|e| ((*e).to_owned(), String::new()))
            .collect()
    };
    let mut touched = false;
    let permission = |name: &str| match name.to_ascii_lowercase().as_str() {
        "x11-forwarding" => Some("permit-X11-forwarding"),
        "agent-forwarding" => Some("permit-agent-forwarding"),
        "port-forwarding" => Some("permit-port-forwarding"),
        "pty" => Some("permit-pty"),
        "user-rc" => Some("permit-user-rc"),
        _ => None,
    };
    for option in options {
        let (name, value) = option.split_once('=').unwrap_or((option.as_str(), ""));
        let is_flag = name == "clear"
            || name == "no-touch-required"
            || name.strip_prefix("no-").and_then(permission).is_some()
            || name.strip_prefix("permit-").and_then(permission).is_some();
        if is_flag && option.contains('=') {
            // ssh-keygen ignores a value here; dropping what the operator wrote
            // silently would hide a typo such as `-O permit-pty=no`.
            return Err(Error::field(
                Field::Extensions,
                format!("-O {name} takes no value, got {}", shown(option)),
            ));
        }
        if option == "clear" {
            extensions.clear();
            touched = true;
        } else if let Some(p) = name.strip_prefix("no-").and_then(permission) {
            extensions.retain(|(n, _)| n != p);
            touched = true;
        } else if let Some(p) = name.strip_prefix("permit-").and_then(permission) {
            extensions.insert((p.to_owned(), String::new()));
            touched = true;
        } else if name == "no-touch-required" {
            extensions.insert((name.to_owned(), String::new()));
            touched = true;
        } else if let Some(custom) = name.strip_prefix("extension:") {
            extensions.insert((custom.to_owned(), value.to_owned()));
            touched = true;
        } else if let Some(custom) = name.strip_prefix("critical:") {
            params.critical_option(CriticalOption::parse(custom, value)?)?;
        } else if matches!(name, "force-command" | "source-address" | "verify-required") {
            params.critical_option(CriticalOption::parse(name, value)?)?;
        } else {
            return Err(Error::field(
                Field::Extensions,
                format!("unknown -O option {}", shown(option)),
            ));
        }
    }
    if touched {
        params.no_extensions();
        for (name, value) in extensions {
            params.extension(Extension::parse(&name, &value)?)?;
        }
    }
    Ok(())
}

/// A validity interval; `None` ends mean "use the default" (now − backdate, start + 1 h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidityWindow {
    /// Start, Unix seconds.
    pub after: Option<u64>,
    /// End, Unix seconds.
    pub before: Option<u64>,
}

fn duration(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => {
                return Err(format!(
                    "`{text}`: unknown time unit `{c}` (use s, m, h, d, w)"
                ));
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}`: a unit needs a number before it"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{text}` overflows"))?;
        number.clear();
    }
    if !number.is_empty() {
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration"))?;
        total = total
            .checked_add(n)
            .ok_or_else(|| format!("`{text}` overflows"))?;
    }
    Ok(total)
}

fn parse_date(text: &str) -> Result<u64, String> {
    let digits = text.strip_suffix(['Z', 'z']).unwrap_or(text);
    if !digits.chars().all(|c| c.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(format!("`{text}`: expected YYYYMMDD[HHMM[SS]]"));
    }
    let field = |range: std::ops::Range<usize>| digits.get(range).map_or(Ok(0), str::parse::<u32>);
    let bad = |_| format!("`{text}` is not a date");
    let year =
        i32::try_from(field(0..4).map_err(bad)?).map_err(|_| format!("`{text}` is not a date"))?;
    let month = u8::try_from(field(4..6).map_err(bad)?)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok());
    let day = u8::try_from(field(6..8).map_err(bad)?).unwrap_or(0);
    let (hour, minute, second) = (
        field(8..10).map_err(bad)?,
        field(10..12).map_err(bad)?,
        field(12..14).map_err(bad)?,
    );
    let date = month
        .and_then(|m| time::Date::from_calendar_date(year, m, day).ok())
        .ok_or_else(|| format!("`{text}` is not a calendar date"))?;
    let moment = date
        .with_hms(
            u8::try_from(hour).unwrap_or(99),
            u8::try_from(minute).unwrap_or(99),
            u8::try_from(second).unwrap_or(99),
        )
        .map_err(|_| format!("`{text}` is not a time of day"))?;
    u64::try_from(moment.assume_utc().unix_timestamp())
        .map_err(|_| format!("`{text}` is before 1970"))
}

/// One end: `+dur`/`-dur` relative to now, `always` (start only), `forever` (end only),
/// or a date.
fn parse_end(text: &str, now: u64, is_start: bool) -> Result<u64, String> {
    match text {
        "always" if is_start => Ok(0),
        "forever" if !is_start => Ok(u64::MAX),
        "always" | "forever" => Err(format!(
            "`{text}` cannot be used for the {} of validity",
            if is_start { "start" } else { "end" }
        )),
        _ => {
            if let Some(d) = text.strip_prefix('+') {
                now.checked_add(duration(d)?)
                    .ok_or_else(|| format!("`{text}` overflows"))
            } else if let Some(d) = text.strip_prefix('-') {
                Ok(now.saturating_sub(duration(d)?))
            } else {
                parse_date(text)
            }
        }
    }
}

fn moment(text: &str, now: u64) -> Result<u64, String> {
    match text.strip_prefix('@') {
        Some(seconds) => seconds
            .parse()
            .map_err(|_| format!("`{text}`: expected @SECONDS since 1970")),
        None if text.starts_with(['+', '-']) => parse_end(text, now, true),
        None => parse_date(text),
    }
}

fn validity(text: &str, now: u64) -> Result<ValidityWindow, String> {
    match text.split_once(':') {
        Some((start, end)) => Ok(ValidityWindow {
            after: Some(parse_end(start, now, true)?),
            before: Some(parse_end(end, now, false)?),
        }),
        None if text.starts_with('-') => Err(format!(
            "`{text}`: a single value is the end of validity; use -V {text}:+1h"
        )),
        None => Ok(ValidityWindow {
            after: None,
            before: Some(parse_end(text, now, false)?),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn ssh_keygen_forms() {
        assert_eq!(
            duration("1w2d3h4m5s"),
            Ok(604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5)
        );
        assert_eq!(duration("90"), Ok(90));
        assert!(duration("5y").is_err());
        assert_eq!(
            validity("+8h", NOW),
            Ok(ValidityWindow {
                after: None,
                before: Some(NOW + 8 * 3600)
            })
        );
        assert_eq!(
            validity("-5m:+1d", NOW),
            Ok(ValidityWindow {
                after: Some(NOW - 300),
                before: Some(NOW + 86_400)
            })
        );
        assert_eq!(
            validity("always:forever", NOW),
            Ok(ValidityWindow {
                after: Some(0),
                before: Some(u64::MAX)
            })
        );
        assert_eq!(
            validity("20240101:20240102123000", NOW),
            Ok(ValidityWindow {
                after: Some(1_704_067_200),
                before: Some(1_704_198_600)
            })
        );
        assert_eq!(moment("@1700000000", NOW), Ok(1_700_000_000));
        assert_eq!(moment("+1h", NOW), Ok(NOW + 3600));
        assert_eq!(moment("-1d", NOW), Ok(NOW - 86_400));
        assert_eq!(moment("20240101", NOW), Ok(1_704_067_200));
        for bad in ["always", "1700000000", "@x", "+1x"] {
            assert!(moment(bad, NOW).is_err(), "{bad}");
        }
        for bad in [
            "forever:always",
            "2024:+1h",
            "20241301:+1h",
            "+1x",
            "-5m",
            "20240101250000Z:+1h",
        ] {
            assert!(validity(bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn flag_options_refuse_values_and_host_certificates_take_permissions() {
        let apply = |params: &mut CertificateParameters, options: &[&str]| {
            let options: Vec<String> = options.iter().map(|o| (*o).to_owned()).collect();
            apply_options(params, &options)
        };
        for bad in [
            "no-pty=x",
            "permit-pty=yes",
            "clear=1",
            "no-touch-required=0",
            "permit-X11-forwarding=",
        ] {
            let err = apply(&mut CertificateParameters::user(), &[bad]).expect_err(bad);
            assert_eq!(err.offending_field(), Some(Field::Extensions), "{bad}");
        }
        // As `ssh-keygen -h -O clear -O permit-pty`: issued, OpenSSH ignores it on hosts.
        let mut host = CertificateParameters::host();
        apply(&mut host, &["clear", "permit-pty"]).expect("host permissions");
        host.principal("web-01").expect("principal");
        let resolved = host.resolve(NOW).expect("resolves");
        assert_eq!(
            resolved.extensions.keys().collect::<Vec<_>>(),
            ["permit-pty"]
        );
    }
}
