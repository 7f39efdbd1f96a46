//! `kmssh ledger list|show`: the signing service's record of issued certificates.

use std::path::Path;

use kmssh_pki::escape_for_display;
use kmssh_server::Config;
use kmssh_server::ledger::{IssuedRecord, Ledger, LedgerFilter};

use crate::args::{LedgerCommand, LedgerSource};
use crate::exit::Failure;
use crate::io::write_output;

/// Lists or shows ledger records.
pub async fn run(command: LedgerCommand) -> Result<(), Failure> {
    match command {
        LedgerCommand::List {
            source,
            key_id,
            principal,
            issued_after,
            caller,
            ca_key,
            limit,
            json,
        } => {
            let filter = LedgerFilter {
                key_id,
                principal,
                issued_after,
                caller,
                ca_key,
                limit,
                ..LedgerFilter::default()
            };
            let ledger = open(&source_url(&source)?).await?;
            let records = ledger.list(&filter).await;
            ledger.close().await;
            let records = records?;
            let text = if json {
                json_lines(&records)
            } else {
                table(&records)
            };
            write_output(None, text.as_bytes(), false)
        }
        LedgerCommand::Show {
            serial,
            source,
            ca,
            json,
        } => {
            let ledger = open(&source_url(&source)?).await?;
            let records = ledger.show(ca.as_deref(), serial).await;
            ledger.close().await;
            let records = records?;
            if records.is_empty() {
                return Err(Failure::input(format!(
                    "no certificate with serial {serial} in the ledger{}",
                    ca.map(|ca| format!(" for CA {ca}")).unwrap_or_default()
                )));
            }
            let text = if json {
                json_lines(&records)
            } else {
                records.iter().map(details).collect::<Vec<_>>().join("\n")
            };
            write_output(None, text.as_bytes(), false)
        }
    }
}

/// The ledger URL: `--ledger`, or the `[ledger]` of `--config`.
fn source_url(source: &LedgerSource) -> Result<String, Failure> {
    match (&source.ledger, &source.config) {
        (Some(url), _) => Ok(url.clone()),
        (None, Some(config)) => Ok(Config::load(config)?.ledger_url()),
        (None, None) => Err(Failure::input("give --ledger URL or --config FILE")),
    }
}

/// Opens a ledger to read it. A SQLite file that does not exist is refused rather than
/// created: a mistyped path must not look like an empty ledger.
pub async fn open(url: &str) -> Result<Ledger, Failure> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        let path = path.split('?').next().unwrap_or(path);
        if !path.is_empty() && path != ":memory:" && !Path::new(path).exists() {
            return Err(Failure::input(format!(
                "{url}: no such ledger (no file {path})"
            )));
        }
    }
    Ok(Ledger::open(url).await?)
}

/// A time as RFC 3339 UTC (`forever` for the largest).
pub fn show_time(unix: u64) -> String {
    if unix == u64::MAX {
        return "forever".to_owned();
    }
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// One line per record under a header, tab-separated; text a caller chose (key id,
/// principals) has its control characters escaped.
fn table(records: &[IssuedRecord]) -> String {
    let mut text = String::from("SERIAL\tISSUED\tCA_KEY\tTYPE\tKEY_ID\tPRINCIPALS\tCALLER\n");
    for r in records {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.serial,
            show_time(r.issued_at),
            escape_for_display(&r.ca_key),
            r.cert_type.as_str(),
            escape_for_display(&r.key_id),
            escape_for_display(&r.principals.join(",")),
            escape_for_display(&r.caller),
        ));
    }
    text
}

/// Every field of a record, one per line, then the certificate.
fn details(r: &IssuedRecord) -> String {
    format!(
        "Serial: {}\nCA key: {}\nCA fingerprint: {}\nType: {}\nKey ID: {}\nPrincipals: {}\n\
         Valid: from {} to {}\nSubject key: {}\nCaller: {}\nRequest ID: {}\nIssued: {}\n\
         Certificate: {}\n",
        r.serial,
        escape_for_display(&r.ca_key),
        r.ca_fingerprint,
        r.cert_type.as_str(),
        escape_for_display(&r.key_id),
        escape_for_display(&r.principals.join(",")),
        show_time(r.valid_after),
        show_time(r.valid_before),
        r.subject_fingerprint,
        escape_for_display(&r.caller),
        escape_for_display(&r.request_id),
        show_time(r.issued_at),
        escape_for_display(&r.certificate),
    )
}

/// One JSON object per record per line.
fn json_lines(records: &[IssuedRecord]) -> String {
    let mut text = String::new();
    for r in records {
        let object = serde_json::json!({
            "serial": r.serial,
            "ca_key": r.ca_key,
            "ca_fingerprint": r.ca_fingerprint,
            "key_id": r.key_id,
            "principals": r.principals,
            "cert_type": r.cert_type.as_str(),
            "valid_after": r.valid_after,
            "valid_before": r.valid_before,
            "subject_fingerprint": r.subject_fingerprint,
            "caller": r.caller,
            "request_id": r.request_id,
            "issued_at": r.issued_at,
            "certificate": r.certificate,
        });
        text.push_str(&object.to_string());
        text.push('\n');
    }
    text
}
