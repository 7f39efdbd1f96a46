//! Local signing and issuing rates, side by side in one run (`cargo xtask bench`):
//! for each kind of CA key (P-256, P-384, P-521, RSA-2048, RSA-4096, Ed25519) and engine,
//! raw signatures per second (the crypto library's own rate, the peer to beat),
//! certificates per second on one core and on every core, and `ssh-keygen -s` issuing
//! the same kind of certificate with a CA key of the same type, with the ratios between
//! them.
//!
//! Options: `--seconds S` per measurement (default 1.0), `--keygen-runs N` (default 40).
//! The table is printed and written to its section of `BENCHMARKS.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kmssh_backend_local::{LocalKey, LocalOptions, SigningEngine};
use kmssh_core::{KeySpec, KmsKey, SigningInput};
use kmssh_pki::{CertificateParameters, issue, parse_subject_key};

#[path = "../../cli/benches/support/report.rs"]
mod report;

const SUBJECT: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR";
/// Certificates in flight at once in the batch measurement.
const BATCH_CONCURRENCY: usize = 64;

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Runs `step` until `budget` has passed; returns operations per second.
fn measure(budget: Duration, mut step: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut count = 0usize;
    while start.elapsed() < budget {
        for _ in 0..16 {
            step();
        }
        count += 16;
    }
    rate(count, start.elapsed())
}

fn params() -> CertificateParameters {
    let mut params = CertificateParameters::user();
    params
        .principal("alice")
        .and_then(|p| p.key_id("alice@example.com"))
        .expect("parameters");
    params
}

async fn batch_rate(key: Arc<LocalKey>, budget: Duration) -> f64 {
    let subject = parse_subject_key(SUBJECT).expect("subject");
    let start = Instant::now();
    let mut lanes = tokio::task::JoinSet::new();
    for _ in 0..BATCH_CONCURRENCY {
        let (key, subject) = (key.clone(), subject.clone());
        lanes.spawn(async move {
            let params = params();
            let mut issued = 0usize;
            while start.elapsed() < budget {
                issue(key.as_ref(), &subject, &params).await.expect("issue");
                issued += 1;
                tokio::task::yield_now().await;
            }
            issued
        });
    }
    let mut total = 0;
    while let Some(n) = lanes.join_next().await {
        total += n.expect("lane");
    }
    rate(total, start.elapsed())
}

/// The CA key types measured.
const SPECS: [KeySpec; 6] = [
    KeySpec::Ecdsa(kmssh_core::Curve::P256),
    KeySpec::Ecdsa(kmssh_core::Curve::P384),
    KeySpec::Ecdsa(kmssh_core::Curve::P521),
    KeySpec::Rsa(2048),
    KeySpec::Rsa(4096),
    KeySpec::Ed25519,
];

/// `ssh-keygen -t` and `-b` for a CA key of this kind.
fn ssh_keygen_type(spec: KeySpec) -> (&'static str, String) {
    match spec {
        KeySpec::Ecdsa(curve) => ("ecdsa", curve.name()[2..].to_owned()),
        KeySpec::Rsa(bits) => ("rsa", bits.to_string()),
        KeySpec::Ed25519 => ("ed25519", "256".to_owned()),
    }
}

/// `ssh-keygen -s` issuing certificates one process at a time, with a CA of the same type
/// (an RSA CA signs rsa-sha2-512, as kmssh's does by default).
fn ssh_keygen_rate(spec: KeySpec, runs: usize) -> Option<f64> {
    let dir = tempfile::tempdir().ok()?;
    let (key_type, bits) = ssh_keygen_type(spec);
    let ca = dir.path().join("ca");
    let user = dir.path().join("user.pub");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", key_type, "-b", &bits, "-f"])
        .arg(&ca)
        .status()
        .ok()?;
    std::fs::write(&user, SUBJECT).ok()?;
    if !made.success() {
        return None;
    }
    let start = Instant::now();
    for i in 0..runs {
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&ca)
            .args([
                "-I",
                "alice@example.com",
                "-n",
                "alice",
                "-V",
                "-1m:+1h",
                "-z",
                &i.to_string(),
            ])
            .arg(&user)
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
    }
    Some(rate(runs, start.elapsed()))
}

/// The issue's target for certificates per second over raw signatures per second.
const CERT_OVER_RAW_TARGET: f64 = 0.95;

const SECTION: &str = "## Local signing and issuing (`cargo xtask bench local`)";

fn main() {
    let load_before = report::load_average();
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let budget = Duration::from_secs_f64(
        option("--seconds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1.0),
    );
    let keygen_runs = option("--keygen-runs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    println!(
        "kmssh local backend, {budget:?} per measurement, {cores} cores, batch concurrency {BATCH_CONCURRENCY}"
    );
    println!(
        "{:<9} {:<11} {:>12} {:>14} {:>10} {:>14} {:>10} {:>15} {:>12}",
        "CA key",
        "engine",
        "raw sig/s",
        "certs/s 1core",
        "cert/raw",
        "certs/s batch",
        "batch/1",
        "ssh-keygen -s/s",
        "1core/keygen"
    );
    let mut rows = String::new();
    let mut verdicts = Vec::new();
    let subject = parse_subject_key(SUBJECT).expect("subject");
    // Certificate-sized messages: what an Ed25519 CA signs whole, the others hash.
    let messages: Vec<Vec<u8>> = (0..256u32)
        .map(|i| [i.to_le_bytes().as_slice(), &[0x5a; 300]].concat())
        .collect();
    for spec in SPECS {
        let keygen = ssh_keygen_rate(spec, keygen_runs);
        for &engine in SigningEngine::available() {
            let key = Arc::new(
                LocalKey::generate(
                    spec,
                    LocalOptions {
                        engine: Some(engine),
                        ..LocalOptions::default()
                    },
                )
                .expect("key"),
            );
            // The raw rate: what the engine signs, the hashing of pre-hashed
            // algorithms done beforehand (as a KMS receives only the digest).
            let algorithm = key.algorithm();
            let prepared: Vec<Vec<u8>> = messages
                .iter()
                .map(|m| {
                    algorithm
                        .digest(m)
                        .map_or_else(|| m.clone(), |d| d.to_vec())
                })
                .collect();
            let mut i = 0usize;
            let raw = measure(budget, || {
                i = (i + 1) % prepared.len();
                let bytes = prepared[i].as_slice();
                let input = if algorithm.is_prehashed() {
                    SigningInput::Digest(bytes)
                } else {
                    SigningInput::Message(bytes)
                };
                std::hint::black_box(key.sign_sync(algorithm, input).expect("sign"));
            });

            let one_core = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let params = params();
            let certs = measure(budget, || {
                std::hint::black_box(
                    one_core
                        .block_on(issue(key.as_ref(), &subject, &params))
                        .expect("issue"),
                );
            });

            let all_cores = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(cores)
                .build()
                .expect("runtime");
            let batch = all_cores.block_on(batch_rate(key.clone(), budget));

            let (keygen_text, keygen_ratio) = match keygen {
                Some(k) => (format!("{k:.0}"), format!("{:.0}x", certs / k)),
                None => ("n/a".to_owned(), "n/a".to_owned()),
            };
            let name = spec.to_string();
            let name = name.trim_start_matches("ECDSA ");
            println!(
                "{:<9} {:<11} {:>12.0} {:>14.0} {:>10.2} {:>14.0} {:>10.2} {:>15} {:>12}",
                name,
                engine.as_str(),
                raw,
                certs,
                certs / raw,
                batch,
                batch / certs,
                keygen_text,
                keygen_ratio
            );
            let met = if certs / raw >= CERT_OVER_RAW_TARGET {
                "met"
            } else {
                "**missed**"
            };
            rows.push_str(&format!(
                "| {name} | {} | {raw:.0} | {certs:.0} | {:.2} ({met}) | {batch:.0} | {:.2}× | {keygen_text} | {keygen_ratio} |\n",
                engine.as_str(),
                certs / raw,
                batch / certs,
            ));
            verdicts.push(format!(
                "{name} {}: {:.1} µs per signature, {:.1} µs per certificate ({:+.1} µs)",
                engine.as_str(),
                1e6 / raw,
                1e6 / certs,
                1e6 / certs - 1e6 / raw
            ));
        }
    }
    let command = format!(
        "cargo xtask bench local{}",
        std::env::args()
            .skip(1)
            .filter(|a| a != "--bench")
            .map(|a| format!(" {a}"))
            .collect::<String>()
    );
    let mut body = report::heading(&load_before, &report::load_average(), &command);
    body.push_str(&format!(
        "One process; each CA key generated in memory; subject an Ed25519 key (checked on every certificate, as `issue` does); \
         principal alice. Raw: the engine signing a digest (the message for Ed25519) of a certificate-sized message. \
         One core: `issue` one at a time on a current-thread runtime (encode, sign, parse back). \
         Batch: {BATCH_CONCURRENCY} certificates in flight on a {cores}-thread runtime. \
         ssh-keygen: `ssh-keygen -s` one process per certificate, a CA key of the same type. {budget:?} per measurement.\n\n\
         | CA key | engine | raw sig/s | certs/s one core | certs / raw (target ≥ {CERT_OVER_RAW_TARGET}) | certs/s batch | batch / one core | ssh-keygen -s /s | one core / ssh-keygen |\n\
         |---|---|---|---|---|---|---|---|---|\n{rows}\n"
    ));
    body.push_str("Per certificate beyond the signature: ");
    body.push_str(&verdicts.join("; "));
    body.push_str(".\n");
    report::write_section(SECTION, &body);
}
