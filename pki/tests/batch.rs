//! Batches: results in request order, one failure does not stop the rest, and a rate limit
//! keeps signatures apart (measured with a recorded sleep, so the test does not depend on
//! the machine's speed).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kmssh_backend_local as _;
use kmssh_pki::batch::{BatchLimits, Pacer, issue_batch_paced};
use kmssh_pki::{CertificateParameters, Field, parse_subject_key};

const SUBJECT: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR";

#[test]
fn a_pacer_spaces_slots_and_does_not_bank_idle_time() {
    let pacer = Pacer::new(100).expect("pacer");
    assert_eq!(pacer.interval(), Duration::from_millis(10));
    let t0 = Instant::now();
    assert_eq!(pacer.take(t0), Duration::ZERO);
    assert_eq!(pacer.take(t0), Duration::from_millis(10));
    assert_eq!(pacer.take(t0), Duration::from_millis(20));
    // A second later, nothing is owed: the next slot is now.
    let later = t0 + Duration::from_secs(1);
    assert_eq!(pacer.take(later), Duration::ZERO);
    assert_eq!(pacer.take(later), Duration::from_millis(10));
    let err = Pacer::new(0).expect_err("0 per second");
    assert_eq!(err.offending_field(), Some(Field::RateLimit));
}

#[tokio::test]
async fn a_paced_batch_waits_between_signatures_and_keeps_order() {
    let ca = kmssh_core::open("local:ephemeral?type=ecdsa")
        .await
        .expect("CA");
    let subject = parse_subject_key(SUBJECT).expect("subject");
    let subjects = vec![subject; 20];
    let mut params = CertificateParameters::user();
    params.principal("alice").expect("principal");
    let waits = Arc::new(Mutex::new(Vec::new()));
    let recorded = waits.clone();
    let sleep = move |d: Duration| {
        recorded.lock().expect("lock").push(d);
        async {}
    };
    let mut seen = 0;
    let issued = issue_batch_paced(
        ca.as_ref(),
        &params,
        &subjects,
        BatchLimits {
            concurrency: 4,
            per_second: Some(50),
        },
        sleep,
        |done| seen = done,
    )
    .await
    .expect("batch");
    assert_eq!(seen, 20);
    assert_eq!(issued.len(), 20);
    let serials: std::collections::BTreeSet<u64> = issued
        .iter()
        .map(|c| c.as_ref().expect("issued").as_ssh_key().serial())
        .collect();
    assert_eq!(serials.len(), 20, "serials repeat");
    // The sleep returns at once here, so slots pile up: the waits grow by the interval
    // (20 ms at 50/s), at most one slot each, and the first starts at once.
    let waits = waits.lock().expect("lock").clone();
    assert!(waits.len() >= 15, "{waits:?}");
    assert!(
        waits.iter().all(|w| *w <= Duration::from_millis(20 * 20)),
        "{waits:?}"
    );
    let err = issue_batch_paced(
        ca.as_ref(),
        &params,
        &subjects,
        BatchLimits {
            concurrency: 4,
            per_second: Some(0),
        },
        |_| async {},
        |_| {},
    )
    .await
    .expect_err("a rate of 0");
    assert_eq!(err.offending_field(), Some(Field::RateLimit));
}
