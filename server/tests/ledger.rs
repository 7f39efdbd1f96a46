//! The ledger against real SQLite files and a real (throwaway) PostgreSQL server: every scenario
//! runs on both engines.

#[path = "support/postgres.rs"]
mod postgres;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kmssh_pki::CertificateType;
use kmssh_server::ledger::{
    IssuedRecord, Ledger, LedgerError, LedgerFilter, RefusalFilter, RefusalRecord, Revocation,
    SERIAL_BLOCK,
};

/// Every scenario gets this long, whichever engine.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

const CA_A: &str = "SHA256:ca-a";
const CA_B: &str = "SHA256:ca-b";

fn record(ca: &str, serial: u64) -> IssuedRecord {
    IssuedRecord {
        serial,
        ca_key: if ca == CA_A {
            "users".into()
        } else {
            "hosts".into()
        },
        ca_fingerprint: ca.into(),
        key_id: format!("key-{serial}"),
        principals: vec!["alice".into(), format!("p{serial}")],
        cert_type: if ca == CA_A {
            CertificateType::User
        } else {
            CertificateType::Host
        },
        valid_after: 1_700_000_000,
        valid_before: 1_700_003_600,
        subject_fingerprint: format!("SHA256:subject-{}", serial % 3),
        caller: "ci".into(),
        request_id: format!("req-{ca}-{serial}"),
        issued_at: 1_700_000_000 + serial % 1_000_000,
        certificate: format!("ssh-ed25519-cert-v01@openssh.com AAAA{serial} key-{serial}"),
    }
}

fn refusal(n: u64) -> RefusalRecord {
    RefusalRecord {
        caller: if n.is_multiple_of(2) {
            String::new()
        } else {
            "ci".into()
        },
        rule: if n.is_multiple_of(2) {
            "authentication".into()
        } else {
            "principals".into()
        },
        message: format!("refusal {n}"),
        request_id: format!("refused-{n}"),
        ca_key: (n % 2 == 1).then(|| "users".into()),
        at: 1_700_000_000 + n,
        peer: Some(format!("127.0.0.1:{}", 40_000 + n)),
    }
}

async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("scenario finished in time");
}

// --- scenarios, each given a fresh database URL ---------------------------------------------

async fn round_trip(url: String) {
    let ledger = Ledger::open(&url).await.expect("open");
    let mut forever = record(CA_A, 1);
    forever.valid_before = u64::MAX;
    forever.principals = vec!["alice".into(), "alice".into(), "ünïcode \"quoted\"".into()];
    ledger
        .record_issued(forever.clone())
        .await
        .expect("record issued");
    let mut high = record(CA_A, u64::MAX - 1);
    high.issued_at = 1_700_000_005;
    ledger
        .record_issued(high.clone())
        .await
        .expect("record issued, high serial");
    for n in 0..4 {
        ledger
            .record_refusal(refusal(n))
            .await
            .expect("record refusal");
    }

    assert_eq!(ledger.count_issued().await.expect("count"), 2);
    assert_eq!(
        ledger.show(Some(CA_A), 1).await.expect("show"),
        vec![forever.clone()]
    );
    assert_eq!(
        ledger.show(None, u64::MAX - 1).await.expect("show"),
        vec![high.clone()]
    );
    assert!(ledger.show(Some(CA_B), 1).await.expect("show").is_empty());
    // Most recently issued first.
    assert_eq!(
        ledger.list(&LedgerFilter::default()).await.expect("list"),
        vec![high, forever]
    );

    let refusals = ledger
        .list_refusals(&RefusalFilter::default())
        .await
        .expect("refusals");
    assert_eq!(refusals, (0..4).rev().map(refusal).collect::<Vec<_>>());
    let unauthenticated = ledger
        .list_refusals(&RefusalFilter {
            caller: Some(String::new()),
            ..Default::default()
        })
        .await
        .expect("refusals");
    assert_eq!(unauthenticated, vec![refusal(2), refusal(0)]);
    let filtered = ledger
        .list_refusals(&RefusalFilter {
            rule: Some("principals".into()),
            since: Some(1_700_000_002),
            limit: Some(5),
            ..Default::default()
        })
        .await
        .expect("refusals");
    assert_eq!(filtered, vec![refusal(3)]);

    // Reopening finds everything (and migrations are idempotent).
    ledger.close().await;
    let reopened = Ledger::open(&url).await.expect("reopen");
    assert_eq!(reopened.count_issued().await.expect("count"), 2);
    reopened.close().await;
}

async fn list_filters(url: String) {
    let ledger = Ledger::open(&url).await.expect("open");
    for serial in 1..=9 {
        ledger
            .record_issued(record(CA_A, serial))
            .await
            .expect("record");
    }
    for serial in 1..=3 {
        let mut r = record(CA_B, serial);
        r.caller = "deploy".into();
        r.principals = vec!["web-1".into()];
        r.issued_at = 1_700_000_100 + serial;
        r.valid_before = u64::MAX;
        ledger.record_issued(r).await.expect("record");
    }
    let serials = |records: Vec<IssuedRecord>| {
        records
            .into_iter()
            .map(|r| (r.ca_fingerprint, r.serial))
            .collect::<Vec<_>>()
    };
    let list = |filter: LedgerFilter| {
        let ledger = ledger.clone();
        async move { serials(ledger.list(&filter).await.expect("list")) }
    };
    let a = |s: &[u64]| s.iter().map(|&s| (CA_A.to_owned(), s)).collect::<Vec<_>>();
    let b = |s: &[u64]| s.iter().map(|&s| (CA_B.to_owned(), s)).collect::<Vec<_>>();

    assert_eq!(list(LedgerFilter::default()).await.len(), 12);
    assert_eq!(
        list(LedgerFilter {
            ca_fingerprint: Some(CA_B.into()),
            ..Default::default()
        })
        .await,
        b(&[3, 2, 1])
    );
    assert_eq!(
        list(LedgerFilter {
            ca_key: Some("hosts".into()),
            ..Default::default()
        })
        .await,
        b(&[3, 2, 1])
    );
    assert_eq!(
        list(LedgerFilter {
            key_id: Some("key-4".into()),
            ..Default::default()
        })
        .await
        .len(),
        1
    );
    assert_eq!(
        list(LedgerFilter {
            principal: Some("p7".into()),
            ..Default::default()
        })
        .await,
        a(&[7])
    );
    assert_eq!(
        list(LedgerFilter {
            principal: Some("alice".into()),
            ..Default::default()
        })
        .await
        .len(),
        9
    );
    assert_eq!(
        list(LedgerFilter {
            principal: Some("web-1".into()),
            ..Default::default()
        })
        .await,
        b(&[3, 2, 1])
    );
    assert!(
        list(LedgerFilter {
            principal: Some("ali".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        list(LedgerFilter {
            subject_fingerprint: Some("SHA256:subject-0".into()),
            ..Default::default()
        })
        .await,
        vec![
            (CA_B.to_owned(), 3),
            (CA_A.to_owned(), 9),
            (CA_A.to_owned(), 6),
            (CA_A.to_owned(), 3)
        ]
    );
    assert_eq!(
        list(LedgerFilter {
            caller: Some("deploy".into()),
            ..Default::default()
        })
        .await,
        b(&[3, 2, 1])
    );
    assert_eq!(
        list(LedgerFilter {
            issued_after: Some(1_700_000_007),
            ..Default::default()
        })
        .await,
        [b(&[3, 2, 1]), a(&[9, 8, 7])].concat()
    );
    assert_eq!(
        list(LedgerFilter {
            issued_after: Some(1_700_000_002),
            issued_before: Some(1_700_000_005),
            ..Default::default()
        })
        .await,
        a(&[4, 3, 2])
    );
    // Only CA_B's "forever" certificates are still valid in 2030.
    assert_eq!(
        list(LedgerFilter {
            valid_at: Some(1_900_000_000),
            ..Default::default()
        })
        .await,
        b(&[3, 2, 1])
    );
    assert_eq!(
        list(LedgerFilter {
            valid_at: Some(1_700_000_000),
            ..Default::default()
        })
        .await
        .len(),
        12
    );
    assert!(
        list(LedgerFilter {
            valid_at: Some(1_699_999_999),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        list(LedgerFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await,
        b(&[3, 2])
    );
    assert_eq!(
        list(LedgerFilter {
            ca_fingerprint: Some(CA_A.into()),
            principal: Some("alice".into()),
            issued_after: Some(1_700_000_003),
            limit: Some(3),
            ..Default::default()
        })
        .await,
        a(&[9, 8, 7])
    );
    ledger.close().await;
}

async fn serials_and_claims(url: String) {
    let ledger = Ledger::open(&url).await.expect("open");
    // Claims ahead of the counter are honoured and then skipped by reservation.
    ledger.claim_serial(CA_A, 3).await.expect("claim 3");
    ledger
        .claim_serial(CA_A, 0)
        .await
        .expect("claim 0 (never handed out by the counter)");
    ledger
        .claim_serial(CA_A, u64::MAX)
        .await
        .expect("claim u64::MAX");
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(ledger.reserve_serial(CA_A).await.expect("reserve"));
    }
    assert_eq!(got, [1, 2, 4, 5, 6]);
    // CAs count independently.
    assert_eq!(ledger.reserve_serial(CA_B).await.expect("reserve"), 1);

    let duplicate = |r: Result<(), LedgerError>, serial: u64| match r {
        Err(LedgerError::Duplicate { serial: s, .. }) if s == serial => {}
        other => panic!("claiming {serial} again: expected Duplicate, got {other:?}"),
    };
    // Claimed before, inside the reserved block, or issued.
    duplicate(ledger.claim_serial(CA_A, 3).await, 3);
    duplicate(ledger.claim_serial(CA_A, 0).await, 0);
    duplicate(ledger.claim_serial(CA_A, u64::MAX).await, u64::MAX);
    duplicate(ledger.claim_serial(CA_A, 200).await, 200);
    ledger
        .record_issued(record(CA_B, 1_000_000))
        .await
        .expect("record");
    duplicate(ledger.claim_serial(CA_B, 1_000_000).await, 1_000_000);
    // Another CA's serial space is separate.
    ledger
        .claim_serial(CA_B, 3_000)
        .await
        .expect("claim for CA B");

    // A second handle ("instance") gets the next block, not this one's.
    let other = Ledger::open(&url).await.expect("open a second handle");
    let next = other.reserve_serial(CA_A).await.expect("reserve");
    assert_eq!(next, SERIAL_BLOCK + 1);
    // Recording the same (CA, serial) twice is refused; nothing else is disturbed.
    ledger.record_issued(record(CA_A, 1)).await.expect("record");
    match other.record_issued(record(CA_A, 1)).await {
        Err(LedgerError::Duplicate { serial: 1, .. }) => {}
        other => panic!("expected Duplicate, got {other:?}"),
    }
    assert_eq!(ledger.count_issued().await.expect("count"), 2);
    other.close().await;

    // After close, records are refused rather than lost silently.
    ledger.close().await;
    assert!(matches!(
        ledger.record_issued(record(CA_A, 2)).await,
        Err(LedgerError::Closed)
    ));
}

async fn two_instances_reserve_concurrently(url: String) {
    const PER_INSTANCE: usize = 5_000;
    let first = Ledger::open(&url).await.expect("open");
    let second = Ledger::open(&url).await.expect("open again");
    // A few claims in the way, which must never be handed out.
    for serial in [700, 701, 4_000] {
        first.claim_serial(CA_A, serial).await.expect("claim");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for ledger in [first.clone(), second.clone()] {
        // 50 concurrent callers per instance, 100 serials each.
        for _ in 0..50 {
            let ledger = ledger.clone();
            tasks.spawn(async move {
                let mut serials = Vec::with_capacity(PER_INSTANCE / 50);
                for _ in 0..PER_INSTANCE / 50 {
                    serials.push(ledger.reserve_serial(CA_A).await.expect("reserve"));
                }
                serials
            });
        }
    }
    let mut all = HashSet::new();
    while let Some(serials) = tasks.join_next().await {
        for serial in serials.expect("task") {
            assert!(all.insert(serial), "serial {serial} handed out twice");
        }
    }
    assert_eq!(all.len(), 2 * PER_INSTANCE);
    for claimed in [700, 701, 4_000] {
        assert!(
            !all.contains(&claimed),
            "claimed serial {claimed} was handed out"
        );
    }
    first.close().await;
    second.close().await;
}

async fn group_commit(url: String) {
    const N: u64 = 2_000;
    let ledger = Ledger::open(&url).await.expect("open");
    let started = Instant::now();
    // The first certificate is committed before the rush, so that its duplicate below is
    // the one refused (a record of a serial nobody reserved could otherwise win the race).
    let first = ledger.reserve_serial(CA_A).await.expect("reserve");
    ledger
        .record_issued(record(CA_A, first))
        .await
        .expect("record the first");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 1..N {
        let ledger = ledger.clone();
        tasks.spawn(async move {
            let serial = ledger.reserve_serial(CA_A).await.expect("reserve");
            ledger
                .record_issued(record(CA_A, serial))
                .await
                .expect("record");
        });
    }
    // One duplicate in the same rush fails alone.
    let dup = {
        let ledger = ledger.clone();
        tokio::spawn(async move { ledger.record_issued(record(CA_A, first)).await })
    };
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    let dup = dup.await.expect("task");
    let elapsed = started.elapsed();
    assert!(
        matches!(dup, Err(LedgerError::Duplicate { serial, .. }) if serial == first),
        "{dup:?}"
    );
    assert_eq!(ledger.count_issued().await.expect("count"), N);
    let listed = ledger.list(&LedgerFilter::default()).await.expect("list");
    let distinct: HashSet<u64> = listed.iter().map(|r| r.serial).collect();
    assert_eq!(distinct.len(), usize::try_from(N).expect("small"));
    eprintln!(
        "group commit: {N} concurrent record_issued in {elapsed:?} ({:.0}/s)",
        N as f64 / elapsed.as_secs_f64()
    );

    // Records submitted right before close are committed before it returns.
    let mut tasks = tokio::task::JoinSet::new();
    for serial in 1..=100 {
        let ledger = ledger.clone();
        tasks.spawn(async move { ledger.record_issued(record(CA_B, serial)).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task").expect("record before close");
    }
    ledger.close().await;
    let reopened = Ledger::open(&url).await.expect("reopen");
    assert_eq!(reopened.count_issued().await.expect("count"), N + 100);
    reopened.close().await;
}

// --- SQLite ----------------------------------------------------------------------------------

/// Revocations: only issued serials of that CA, all or nothing; again is harmless; serials
/// above 2^63 keep their value; per CA, ascending.
async fn revocations(url: String) {
    let ledger = Ledger::open(&url).await.expect("open");
    let big = u64::MAX - 1;
    for serial in [1, 2, 3, big] {
        ledger
            .record_issued(record(CA_A, serial))
            .await
            .expect("record");
    }
    ledger.record_issued(record(CA_B, 1)).await.expect("record");
    let revoke = |serials: Vec<u64>| Revocation {
        ca_fingerprint: CA_A.into(),
        serials,
        caller: "security".into(),
        reason: "test".into(),
        request_id: "req".into(),
        at: 1_700_000_000,
    };
    let outcome = ledger.revoke(&revoke(vec![3, big])).await.expect("revoke");
    assert_eq!(outcome.revoked, vec![3, big]);
    let outcome = ledger.revoke(&revoke(vec![1, 3])).await.expect("revoke");
    assert_eq!((outcome.revoked, outcome.already), (vec![1], vec![3]));
    // Serial 2 with one the CA never issued: nothing happens.
    let outcome = ledger.revoke(&revoke(vec![2, 77])).await.expect("revoke");
    assert_eq!(outcome.unknown, vec![77]);
    assert_eq!(
        ledger.revoked_serials(CA_A).await.expect("revoked"),
        vec![1, 3, big]
    );
    assert!(
        ledger
            .revoked_serials(CA_B)
            .await
            .expect("revoked")
            .is_empty()
    );
    ledger.close().await;
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}", dir.path().join("ledger.db").display())
}

macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    super::bounded(super::$scenario(super::sqlite_url(&dir))).await;
                }
            )*
        }
        mod postgresql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(server) = super::postgres::Postgres::shared() else { return };
                    let url = server.create_database(stringify!($scenario));
                    super::bounded(super::$scenario(url)).await;
                    drop(server);
                }
            )*
        }
    };
}

on_both!(
    round_trip,
    list_filters,
    serials_and_claims,
    two_instances_reserve_concurrently,
    group_commit,
    revocations
);

#[tokio::test]
async fn sqlite_file_is_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(&sqlite_url(&dir)).await.expect("open");
    ledger.record_issued(record(CA_A, 1)).await.expect("record");
    assert!(
        dir.path().join("ledger.db-wal").exists(),
        "WAL file present while open"
    );
    ledger.close().await;
}

#[tokio::test]
async fn open_errors_name_the_problem() {
    let e = Ledger::open("mysql://db/ledger")
        .await
        .expect_err("unsupported");
    assert!(
        e.to_string()
            .contains("unsupported ledger URL `mysql://db/ledger`"),
        "{e}"
    );
    for url in ["sqlite::memory:", "sqlite:file:x?mode=memory&cache=shared"] {
        let e = Ledger::open(url).await.expect_err("in memory");
        assert!(
            e.to_string().contains("a ledger must outlive the service"),
            "{e}"
        );
    }
    // Nothing listens on port 1; the password must not appear in the message.
    let e = Ledger::open("postgres://kmssh:s3cret@127.0.0.1:1/ledger")
        .await
        .expect_err("unreachable");
    let message = e.to_string();
    assert!(
        message.starts_with("cannot open the ledger at postgres://kmssh:***@127.0.0.1:1/ledger: "),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    let e = Ledger::open("sqlite:/nonexistent-dir/ledger.db")
        .await
        .expect_err("no directory");
    assert!(
        e.to_string()
            .starts_with("cannot open the ledger at sqlite:/nonexistent-dir/ledger.db: "),
        "{e}"
    );
}

/// Throughput of the hot path (reserve + record) with many concurrent callers, on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_throughput() {
    const N: u64 = 10_000;
    const CALLERS: u64 = 200;
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(&sqlite_url(&dir)).await.expect("open");
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let ledger_arc = Arc::new(ledger.clone());
    for _ in 0..CALLERS {
        let ledger = ledger_arc.clone();
        tasks.spawn(async move {
            for _ in 0..N / CALLERS {
                let serial = ledger.reserve_serial(CA_A).await.expect("reserve");
                ledger
                    .record_issued(record(CA_A, serial))
                    .await
                    .expect("record");
            }
        });
    }
    bounded(async {
        while let Some(done) = tasks.join_next().await {
            done.expect("task");
        }
    })
    .await;
    let elapsed = started.elapsed();
    assert_eq!(ledger.count_issued().await.expect("count"), N);
    eprintln!(
        "sqlite throughput: {N} certificates in {elapsed:?} ({:.0}/s)",
        N as f64 / elapsed.as_secs_f64()
    );
    ledger.close().await;
}
