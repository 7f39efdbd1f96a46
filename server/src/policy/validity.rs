//! Validity: durations from the configuration, and the window a request may get.

use kmssh_pki::ssh_keygen::parse_duration;

use super::Refusal;

/// The default `backdate`: pki's, so the service and `kmssh sign` start certificates
/// equally early.
pub(super) const DEFAULT_BACKDATE: u64 = kmssh_pki::DEFAULT_BACKDATE.as_secs();

/// Parses a configured duration (ssh-keygen's forms: `8h`, `30m`, `1w2d`, `3600`).
pub(super) fn duration(text: &str) -> Result<u64, String> {
    parse_duration(text).map_err(|e| match e {
        kmssh_pki::Error::InvalidField { reason, .. } => reason,
        other => other.to_string(),
    })
}

/// `secs` the way the configuration writes it: `1d2h`, `30m`, `0s`.
pub(super) fn human(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3600),
        ("m", 60),
        ("s", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// How long a certificate may last and how early it may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Limits {
    /// Longest validity, seconds, and the latest end relative to now.
    pub(super) max: u64,
    /// How far before now a certificate may start (and where an unrequested start goes).
    pub(super) backdate: u64,
}

/// The window a certificate gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Window {
    pub(super) after: u64,
    pub(super) before: u64,
    /// The end was chosen by the policy, not the requester.
    pub(super) clamped: bool,
}

impl Limits {
    /// Decides the window for a request (0 = not requested) at `now`.
    pub(super) fn window(
        &self,
        valid_after: u64,
        valid_before: u64,
        now: u64,
    ) -> Result<Window, Refusal> {
        let earliest = now.saturating_sub(self.backdate);
        let latest = now.saturating_add(self.max);
        let after = if valid_after == 0 {
            earliest
        } else if valid_after < earliest {
            return Err(Refusal::new(
                "backdate",
                format!(
                    "valid_after {valid_after} is {} before now ({now}); the policy allows starting at most {} early",
                    human(now - valid_after),
                    human(self.backdate)
                ),
            ));
        } else {
            valid_after
        };
        if valid_before == 0 {
            // Never past now + max, even for a start in the future.
            let before = after.saturating_add(self.max).min(latest);
            if before <= after {
                return Err(Refusal::new(
                    "valid_after",
                    format!(
                        "valid_after {after} is {} after now ({now}): no certificate within the policy's max_validity of {} could start then",
                        human(after - now),
                        human(self.max)
                    ),
                ));
            }
            return Ok(Window {
                after,
                before,
                clamped: true,
            });
        }
        if valid_before <= after {
            return Err(Refusal::new(
                "valid_after",
                format!("valid_before {valid_before} is not after valid_after {after}"),
            ));
        }
        let length = valid_before - after;
        if valid_before > latest || length > self.max.saturating_add(self.backdate) {
            return Err(Refusal::new(
                "max_validity",
                format!(
                    "requested validity {after}..{valid_before} lasts {} and ends {} after now ({now}); the policy's max_validity is {}",
                    human(length),
                    human(valid_before.saturating_sub(now)),
                    human(self.max)
                ),
            ));
        }
        Ok(Window {
            after,
            before: valid_before,
            clamped: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_reuse_ssh_keygen_forms() {
        assert_eq!(duration("8h"), Ok(8 * 3600));
        assert_eq!(duration("30m"), Ok(1800));
        assert_eq!(duration("2d"), Ok(2 * 86_400));
        assert_eq!(duration("1w"), Ok(604_800));
        assert_eq!(duration("3600"), Ok(3600));
        assert!(duration("8 hours").is_err());
        assert!(duration("").is_err());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(0), "0s");
        assert_eq!(human(60), "1m");
        assert_eq!(human(8 * 3600), "8h");
        assert_eq!(human(93_784), "1d2h3m4s");
    }
}
