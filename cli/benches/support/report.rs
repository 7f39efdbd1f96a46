//! What every bench heading says (machine, date, load average) and how a bench replaces
//! its own section of `BENCHMARKS.md`, keeping the others.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

/// Logical cores and the CPU model.
pub fn machine() -> (usize, String) {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    (cores, model)
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Now, in RFC 3339 (UTC).
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The heading line every section starts with: when, where, how loaded.
pub fn heading(load_before: &str, load_after: &str, command: &str) -> String {
    let (cores, model) = machine();
    // A one-minute load of half a core or more before the run means something else was
    // running beside the bench.
    let busy = load_before
        .split_whitespace()
        .next()
        .and_then(|l| l.parse::<f64>().ok())
        .is_none_or(|l| l >= 0.5);
    let state = if busy {
        "shared with other work"
    } else {
        "otherwise idle"
    };
    format!(
        "Run {} on {cores} cores ({model}); load average (1, 5, 15 min) {load_before} before, \
         {load_after} after; {state}. Command: `{command}`.\n",
        now()
    )
}

pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Replaces (or appends) the section whose heading line is `section`, up to the next
/// `## ` heading, with `section` and `body`; the other sections stay as they are.
pub fn write_section(section: &str, body: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace folder");
    let path = root.join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = format!("{section}\n\n{}\n", body.trim_end());
    let updated = match existing.find(section) {
        Some(start) => {
            let after = start + section.len();
            let end = existing[after..]
                .find("\n## ")
                .map_or(existing.len(), |i| after + i + 1);
            format!("{}{new}\n{}", &existing[..start], &existing[end..])
        }
        None => format!("{}\n\n{new}", existing.trim_end()),
    };
    std::fs::write(&path, updated.trim_end().to_owned() + "\n").expect("write BENCHMARKS.md");
    eprintln!("wrote {} ({section})", path.display());
}
