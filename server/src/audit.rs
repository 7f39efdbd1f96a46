//! The audit log: an append-only JSON-lines file, one object per issued certificate or refused
//! request.
//!
//! Each line is `{"event":"issued"|"refused","time":"<RFC 3339, UTC>", …every record field…}`,
//! written with a single `write` on a file opened with `O_APPEND`, so lines from concurrent
//! writers (threads, or several processes sharing the file) never interleave. The file is created
//! with mode 0600. Writes are synchronous and unbuffered: a line is in the kernel when the call
//! returns (not necessarily on disk; the ledger is the durable record).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use crate::ledger::{IssuedRecord, RefusalRecord};

/// An open audit log.
#[derive(Debug)]
pub struct AuditLog {
    file: File,
}

#[derive(Serialize)]
struct IssuedLine<'a> {
    event: &'static str,
    time: String,
    serial: u64,
    ca_key: &'a str,
    ca_fingerprint: &'a str,
    key_id: &'a str,
    principals: &'a [String],
    cert_type: &'static str,
    valid_after: u64,
    valid_before: u64,
    subject_fingerprint: &'a str,
    caller: &'a str,
    request_id: &'a str,
    issued_at: u64,
    certificate: &'a str,
}

#[derive(Serialize)]
struct RefusedLine<'a> {
    event: &'static str,
    time: String,
    caller: &'a str,
    rule: &'a str,
    message: &'a str,
    request_id: &'a str,
    ca_key: Option<&'a str>,
    at: u64,
    peer: Option<&'a str>,
}

#[derive(Serialize)]
struct RevokedLine<'a> {
    event: &'static str,
    time: String,
    ca_key: &'a str,
    ca_fingerprint: &'a str,
    serials: &'a [u64],
    caller: &'a str,
    reason: &'a str,
    request_id: &'a str,
    at: u64,
}

impl AuditLog {
    /// Opens `path` for appending, creating it with mode 0600 if it does not exist (an existing
    /// file keeps its mode).
    ///
    /// # Errors
    /// The file cannot be opened or created.
    pub fn open(path: &Path) -> io::Result<AuditLog> {
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open the audit log {}: {e}", path.display()),
            )
        })?;
        Ok(AuditLog { file })
    }

    /// Appends an `issued` line; `time` is the record's `issued_at`.
    ///
    /// # Errors
    /// The write failed.
    pub fn issued(&self, r: &IssuedRecord) -> io::Result<()> {
        self.append(&IssuedLine {
            event: "issued",
            time: rfc3339(r.issued_at),
            serial: r.serial,
            ca_key: &r.ca_key,
            ca_fingerprint: &r.ca_fingerprint,
            key_id: &r.key_id,
            principals: &r.principals,
            cert_type: r.cert_type.as_str(),
            valid_after: r.valid_after,
            valid_before: r.valid_before,
            subject_fingerprint: &r.subject_fingerprint,
            caller: &r.caller,
            request_id: &r.request_id,
            issued_at: r.issued_at,
            certificate: &r.certificate,
        })
    }

    /// Appends a `revoked` line: the serials `revoked` now out of the request's selection.
    ///
    /// # Errors
    /// The write failed.
    pub fn revoked(
        &self,
        r: &crate::ledger::Revocation,
        revoked: &[u64],
        ca_key: &str,
    ) -> io::Result<()> {
        self.append(&RevokedLine {
            event: "revoked",
            time: rfc3339(r.at),
            ca_key,
            ca_fingerprint: &r.ca_fingerprint,
            serials: revoked,
            caller: &r.caller,
            reason: &r.reason,
            request_id: &r.request_id,
            at: r.at,
        })
    }

    /// Appends a `refused` line; `time` is the record's `at`.
    ///
    /// # Errors
    /// The write failed.
    pub fn refused(&self, r: &RefusalRecord) -> io::Result<()> {
        self.append(&RefusedLine {
            event: "refused",
            time: rfc3339(r.at),
            caller: &r.caller,
            rule: &r.rule,
            message: &r.message,
            request_id: &r.request_id,
            ca_key: r.ca_key.as_deref(),
            at: r.at,
            peer: r.peer.as_deref(),
        })
    }

    fn append(&self, line: &impl Serialize) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        let mut file = &self.file;
        // One write() of the whole line: with O_APPEND the kernel places it atomically at the end.
        let written = file.write(&bytes)?;
        if written != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "audit log: short write ({written} of {} bytes)",
                    bytes.len()
                ),
            ));
        }
        file.flush()
    }
}

/// `t` (unix seconds) as RFC 3339 UTC, e.g. `2024-05-01T12:00:00Z`. Times past year 9999 are
/// written as `9999-12-31T23:59:59Z` (they only appear as "forever" validity ends).
fn rfc3339(t: u64) -> String {
    const MAX: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let t = t.min(MAX);
    let (days, secs) = (t / 86_400, t % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`, for
/// non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::io::BufRead;

    use kmssh_pki::CertificateType;

    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }

    fn issued() -> IssuedRecord {
        IssuedRecord {
            serial: 7,
            ca_key: "users".into(),
            ca_fingerprint: "SHA256:ca".into(),
            key_id: "alice@laptop".into(),
            principals: vec!["alice".into(), "dev-\"quoted\"\n".into()],
            cert_type: CertificateType::User,
            valid_after: 1_700_000_000,
            valid_before: u64::MAX,
            subject_fingerprint: "SHA256:subject".into(),
            caller: "alice".into(),
            request_id: "req-1".into(),
            issued_at: 1_700_000_060,
            certificate: "ssh-ed25519-cert-v01@openssh.com AAAA".into(),
        }
    }

    #[test]
    fn writes_one_json_object_per_line_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).expect("open");
        log.issued(&issued()).expect("issued");
        log.refused(&RefusalRecord {
            caller: String::new(),
            rule: "authentication".into(),
            message: "token expired".into(),
            request_id: "req-2".into(),
            ca_key: None,
            at: 1_700_000_100,
            peer: Some("127.0.0.1:5555".into()),
        })
        .expect("refused");
        drop(log);
        // Reopening appends.
        AuditLog::open(&path)
            .expect("reopen")
            .issued(&issued())
            .expect("issued again");

        let file = File::open(&path).expect("read");
        let lines: Vec<serde_json::Value> = io::BufReader::new(file)
            .lines()
            .map(|l| serde_json::from_str(&l.expect("line")).expect("json"))
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["event"], "issued");
        assert_eq!(lines[0]["time"], "2023-11-14T22:14:20Z");
        assert_eq!(lines[0]["serial"], 7);
        assert_eq!(lines[0]["cert_type"], "user");
        assert_eq!(lines[0]["valid_before"], u64::MAX);
        assert_eq!(lines[0]["principals"][1], "dev-\"quoted\"\n");
        assert_eq!(lines[1]["event"], "refused");
        assert_eq!(lines[1]["caller"], "");
        assert_eq!(lines[1]["ca_key"], serde_json::Value::Null);
        assert_eq!(lines[1]["peer"], "127.0.0.1:5555");
        assert_eq!(lines[2]["request_id"], "req-1");

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn concurrent_writers_never_interleave() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = std::sync::Arc::new(AuditLog::open(&path).expect("open"));
        let mut record = issued();
        record.certificate = "x".repeat(8_000);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (log, record) = (log.clone(), record.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        log.issued(&record).expect("issued");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer thread");
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let mut n = 0;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("whole JSON line");
            assert_eq!(v["certificate"].as_str().map(str::len), Some(8_000));
            n += 1;
        }
        assert_eq!(n, 800);
    }
}
