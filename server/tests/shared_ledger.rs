//! Several instances, one ledger: two in-process services sharing a PostgreSQL ledger and a
//! CA key file issue certificates to many concurrent clients without ever reusing a serial,
//! and the ledger and each instance's audit log account for every certificate exactly once.
//! Also the SQLite default of a single instance.

#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/server.rs"]
mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use kmssh_backend_local as _;
use kmssh_core::{Curve, KeySpec, KeyUri};
use kmssh_pki::csr::CertificateSigningRequest;
use kmssh_pki::{CertificateType, unix_now};
use kmssh_server::ledger::{Ledger, LedgerFilter};
use postgres::Postgres;
use serde_json::Value;
use server::{Running, subject, token_hash};

const TOKEN: &str = "fleet-token-0123456789";
/// Bound on the whole issuing phase of one test.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(600);

/// A configuration; `ledger` is the whole `[ledger]` section, or empty for the default.
fn config(dir: &Path, key_uri: &str, ledger: &str) -> String {
    let dir = dir.display();
    format!(
        r#"
listen = "127.0.0.1:0"

[keys]
user-ca = "{key_uri}"

{ledger}

[audit]
path = "{dir}/audit.jsonl"

[[caller]]
name = "fleet"
policy = "fleet"
token_sha256 = "{token}"

[policy.fleet]
keys = ["user-ca"]
certificate_types = ["user"]
principals = ["node-*"]
max_validity = "1h"

[limits]
caller_requests_per_second = 1000000
caller_burst = 1000000
"#,
        token = token_hash(TOKEN),
    )
}

fn request(n: usize) -> CertificateSigningRequest {
    let now = unix_now();
    CertificateSigningRequest {
        cert_type: CertificateType::User,
        critical_options: Vec::new(),
        extensions: Vec::new(),
        key_id: format!("node-{n}"),
        serial: 0,
        principals: vec![format!("node-{n}")],
        valid_after: now,
        valid_before: now + 600,
        public_key: subject(),
    }
}

/// A certificate as a client received it.
#[derive(Debug)]
struct Issued {
    instance: usize,
    serial: u64,
    key_id: String,
}

/// `total` certificates from `clients` concurrent clients, client `i` talking to
/// `instances[i % len]`, each verifying its certificates against the CA.
async fn issue(instances: &[&Running], clients: usize, total: usize) -> Vec<Issued> {
    let ca = instances[0]
        .client(Some(TOKEN))
        .await
        .certificate_authority("user-ca")
        .await
        .expect("CA");
    for running in &instances[1..] {
        let other = running
            .client(Some(TOKEN))
            .await
            .certificate_authority("user-ca")
            .await
            .expect("CA");
        assert_eq!(other, ca, "every instance signs with the same CA key");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for client_index in 0..clients {
        let instance = client_index % instances.len();
        let mut client = instances[instance].client(Some(TOKEN)).await;
        let ca = ca.clone();
        // Client i takes requests i, i + clients, i + 2·clients, …
        let mine: Vec<usize> = (client_index..total).step_by(clients).collect();
        tasks.spawn(async move {
            let mut issued = Vec::with_capacity(mine.len());
            for n in mine {
                let certificate = client
                    .sign("user-ca", &request(n), Some(&ca))
                    .await
                    .unwrap_or_else(|e| panic!("request {n} on instance {instance}: {e}"));
                let fields = certificate.as_ssh_key();
                issued.push(Issued {
                    instance,
                    serial: fields.serial(),
                    key_id: fields.key_id().to_owned(),
                });
            }
            issued
        });
    }
    let all = async {
        let mut all = Vec::with_capacity(total);
        while let Some(done) = tasks.join_next().await {
            all.extend(done.expect("client task"));
        }
        all
    };
    tokio::time::timeout(ISSUE_TIMEOUT, all)
        .await
        .expect("every certificate is issued within the bound")
}

/// The audit log's issued lines as (serial, key_id); refusals none.
fn audit_issued(path: &Path) -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(path).expect("audit log");
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("one JSON object per line"))
        .map(|v| {
            assert_eq!(v["event"], "issued", "only issued events expected: {v}");
            (
                v["serial"].as_u64().expect("serial"),
                v["key_id"].as_str().expect("key_id").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgresql_ledger_never_reuse_a_serial() {
    const CLIENTS: usize = 32;
    const TOTAL: usize = 2_000;
    let Some(pg) = Postgres::shared() else {
        return;
    };
    let url = pg.create_database("shared_ledger");
    let keys = tempfile::tempdir().expect("tempdir");
    let key_path = keys.path().join("user_ca");
    let key_uri = format!("local:{}", key_path.display());
    let created = kmssh_backend_local::create_if_missing(
        &KeyUri::parse(&key_uri).expect("key URI"),
        KeySpec::Ecdsa(Curve::P256),
    )
    .expect("create the CA key file");
    assert!(created);
    let ledger_section = format!("[ledger]\nurl = \"{url}\"");
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let a = Running::start(
        dirs[0].path(),
        &config(dirs[0].path(), &key_uri, &ledger_section),
    )
    .await;
    let b = Running::start(
        dirs[1].path(),
        &config(dirs[1].path(), &key_uri, &ledger_section),
    )
    .await;

    let started = Instant::now();
    let issued = issue(&[&a, &b], CLIENTS, TOTAL).await;
    eprintln!(
        "{TOTAL} certificates through 2 instances in {:?}",
        started.elapsed()
    );
    a.stop().await.expect("instance a stops cleanly");
    b.stop().await.expect("instance b stops cleanly");
    assert_eq!(issued.len(), TOTAL);

    let serials: BTreeSet<u64> = issued.iter().map(|i| i.serial).collect();
    assert_eq!(serials.len(), TOTAL, "a serial was issued twice");
    assert!(!serials.contains(&0));
    let per_instance: Vec<usize> = (0..2)
        .map(|n| issued.iter().filter(|i| i.instance == n).count())
        .collect();
    assert_eq!(per_instance, [TOTAL / 2, TOTAL / 2]);

    let ledger = Ledger::open(&url).await.expect("open the shared ledger");
    assert_eq!(
        ledger.count_issued().await.expect("count"),
        TOTAL as u64,
        "one ledger record per certificate"
    );
    let records = ledger.list(&LedgerFilter::default()).await.expect("list");
    assert_eq!(records.len(), TOTAL);
    let recorded: BTreeMap<u64, &str> = records
        .iter()
        .map(|r| (r.serial, r.key_id.as_str()))
        .collect();
    assert_eq!(recorded.len(), TOTAL, "a serial is recorded twice");
    for certificate in &issued {
        assert_eq!(
            recorded.get(&certificate.serial),
            Some(&certificate.key_id.as_str()),
            "serial {} is recorded for its certificate",
            certificate.serial
        );
    }
    let fingerprints: BTreeSet<&str> = records.iter().map(|r| r.ca_fingerprint.as_str()).collect();
    assert_eq!(fingerprints.len(), 1, "one CA: {fingerprints:?}");
    assert!(records.iter().all(|r| r.caller == "fleet"));
    ledger.close().await;

    // Each audit log holds exactly the certificates its instance issued.
    for (n, dir) in dirs.iter().enumerate() {
        let mut audited = audit_issued(&dir.path().join("audit.jsonl"));
        audited.sort_unstable();
        let mut expected: Vec<(u64, String)> = issued
            .iter()
            .filter(|i| i.instance == n)
            .map(|i| (i.serial, i.key_id.clone()))
            .collect();
        expected.sort_unstable();
        assert_eq!(audited.len(), TOTAL / 2, "instance {n}'s audit lines");
        assert_eq!(audited, expected, "instance {n}'s audit log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_on_the_default_sqlite_ledger_records_every_certificate() {
    const CLIENTS: usize = 8;
    const TOTAL: usize = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(
        dir.path(),
        &config(dir.path(), "local:ephemeral?type=ed25519", ""),
    )
    .await;
    let issued = issue(&[&running], CLIENTS, TOTAL).await;
    running.stop().await.expect("stop");
    let serials: BTreeSet<u64> = issued.iter().map(|i| i.serial).collect();
    assert_eq!(serials.len(), TOTAL, "a serial was issued twice");

    // No [ledger]: kmssh-ledger.db beside the configuration file.
    let path = dir.path().join("kmssh-ledger.db");
    assert!(path.is_file(), "the default ledger is beside kmssh.toml");
    let ledger = Ledger::open(&format!("sqlite:{}", path.display()))
        .await
        .expect("ledger");
    assert_eq!(ledger.count_issued().await.expect("count"), TOTAL as u64);
    let recorded: BTreeSet<u64> = ledger
        .list(&LedgerFilter::default())
        .await
        .expect("list")
        .iter()
        .map(|r| r.serial)
        .collect();
    assert_eq!(recorded, serials);
    ledger.close().await;

    let audited = audit_issued(&dir.path().join("audit.jsonl"));
    assert_eq!(audited.len(), TOTAL);
    let audited: BTreeSet<u64> = audited.iter().map(|(s, _)| *s).collect();
    assert_eq!(audited, serials);
}
