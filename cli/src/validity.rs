//! `ssh-keygen -V` validity intervals: `+8h`, `-5m:+1d`, `YYYYMMDD[HHMM[SS]][Z]`,
//! `always:forever`, and durations (`1w2d`, `90m`, plain seconds). Dates are read as UTC.

/// A validity interval; `None` ends mean "use the default" (now − backdate, start + 1 h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Start, Unix seconds.
    pub after: Option<u64>,
    /// End, Unix seconds.
    pub before: Option<u64>,
}

/// A duration like `1w2d3h4m5s` (ssh-keygen's units; a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<u64, String> {
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
                now.checked_add(parse_duration(d)?)
                    .ok_or_else(|| format!("`{text}` overflows"))
            } else if let Some(d) = text.strip_prefix('-') {
                Ok(now.saturating_sub(parse_duration(d)?))
            } else {
                parse_date(text)
            }
        }
    }
}

/// A moment for `verify --at`: `+dur`/`-dur` from now, `YYYYMMDD[HHMM[SS]]` (UTC), or
/// `@SECONDS` since the Unix epoch.
pub fn parse_moment(text: &str, now: u64) -> Result<u64, String> {
    match text.strip_prefix('@') {
        Some(seconds) => seconds
            .parse()
            .map_err(|_| format!("`{text}`: expected @SECONDS since 1970")),
        None if text.starts_with(['+', '-']) => parse_end(text, now, true),
        None => parse_date(text),
    }
}

/// Parses a `-V` value at `now`.
pub fn parse_validity(text: &str, now: u64) -> Result<Validity, String> {
    match text.split_once(':') {
        Some((start, end)) => Ok(Validity {
            after: Some(parse_end(start, now, true)?),
            before: Some(parse_end(end, now, false)?),
        }),
        None if text.starts_with('-') => Err(format!(
            "`{text}`: a single value is the end of validity; use -V {text}:+1h"
        )),
        None => Ok(Validity {
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
            parse_duration("1w2d3h4m5s"),
            Ok(604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5)
        );
        assert_eq!(parse_duration("90"), Ok(90));
        assert!(parse_duration("5y").is_err());
        assert_eq!(
            parse_validity("+8h", NOW),
            Ok(Validity {
                after: None,
                before: Some(NOW + 8 * 3600)
            })
        );
        assert_eq!(
            parse_validity("-5m:+1d", NOW),
            Ok(Validity {
                after: Some(NOW - 300),
                before: Some(NOW + 86_400)
            })
        );
        assert_eq!(
            parse_validity("always:forever", NOW),
            Ok(Validity {
                after: Some(0),
                before: Some(u64::MAX)
            })
        );
        assert_eq!(
            parse_validity("20240101:20240102123000", NOW),
            Ok(Validity {
                after: Some(1_704_067_200),
                before: Some(1_704_198_600)
            })
        );
        assert_eq!(parse_moment("@1700000000", NOW), Ok(1_700_000_000));
        assert_eq!(parse_moment("+1h", NOW), Ok(NOW + 3600));
        assert_eq!(parse_moment("-1d", NOW), Ok(NOW - 86_400));
        assert_eq!(parse_moment("20240101", NOW), Ok(1_704_067_200));
        for bad in ["always", "1700000000", "@x", "+1x"] {
            assert!(parse_moment(bad, NOW).is_err(), "{bad}");
        }
        for bad in [
            "forever:always",
            "2024:+1h",
            "20241301:+1h",
            "+1x",
            "-5m",
            "20240101250000Z:+1h",
        ] {
            assert!(parse_validity(bad, NOW).is_err(), "{bad}");
        }
    }
}
