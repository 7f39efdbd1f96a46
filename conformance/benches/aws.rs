//! Certificates per second through the AWS backend against ministack on 127.0.0.1, at
//! concurrency 1 and 32 in one run, with the ratio (`cargo xtask bench --backend aws`),
//! for each kind of CA key: ECDSA P-256/P-384/P-521, RSA-2048, RSA-4096 (signing
//! `rsa-sha2-512` digests) and Ed25519 (signing the to-be-signed bytes whole, RAW).
//! Every certificate costs one `Sign` round trip to the emulator and one local verify.
//!
//! Options: `--seconds S` per measurement (default 3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use kmssh_conformance::aws::{admin_client, create_key, emulator_options, open};
use kmssh_conformance::ministack::Ministack;
use kmssh_core::KmsKey;
use kmssh_pki::{CertificateParameters, issue, parse_subject_key};

const SUBJECT: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR";

async fn certificates_per_second(
    key: Arc<dyn KmsKey>,
    concurrency: usize,
    budget: Duration,
) -> f64 {
    let subject = parse_subject_key(SUBJECT).expect("subject");
    let start = Instant::now();
    let mut lanes = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (key, subject) = (key.clone(), subject.clone());
        lanes.spawn(async move {
            let mut params = CertificateParameters::user();
            params.principal("alice").expect("principal");
            let mut issued = 0usize;
            while start.elapsed() < budget {
                issue(key.as_ref(), &subject, &params).await.expect("issue");
                issued += 1;
            }
            issued
        });
    }
    let mut total = 0usize;
    while let Some(n) = lanes.join_next().await {
        total += n.expect("lane");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let budget = Duration::from_secs_f64(seconds);
    let ministack = Ministack::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "kmssh AWS backend against ministack {} on 127.0.0.1, {budget:?} per measurement",
        kmssh_conformance::ministack::MINISTACK_VERSION
    );
    println!(
        "{:<11} {:>16} {:>17} {:>8}",
        "key", "certs/s (conc 1)", "certs/s (conc 32)", "32 / 1"
    );
    runtime.block_on(async {
        let admin = admin_client(&ministack.url()).await;
        for spec in [
            KeySpec::EccNistP256,
            KeySpec::EccNistP384,
            KeySpec::EccNistP521,
            KeySpec::Rsa2048,
            KeySpec::Rsa4096,
            KeySpec::EccNistEdwards25519,
        ] {
            let id = create_key(&admin, spec.clone(), KeyUsageType::SignVerify).await;
            let key = open(&id, &emulator_options(&ministack.url()))
                .await
                .expect("open");
            let one = certificates_per_second(key.clone(), 1, budget).await;
            let many = certificates_per_second(key.clone(), 32, budget).await;
            println!(
                "{:<11} {:>16.0} {:>17.0} {:>8.2}",
                key.public_key().description(),
                one,
                many,
                many / one
            );
        }
    });
    drop(ministack);
}
