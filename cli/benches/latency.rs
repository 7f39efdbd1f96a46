//! Certificates per second through a slow KMS: the in-process Cloud KMS emulator
//! (`kmssh-conformance`) with the shared fault layer delaying every `asymmetricSign` by
//! 20 ms (`Fault::Delay`), a P-256 key version, and `kmssh_pki::batch::issue_batch_paced`
//! (no rate limit) at concurrency 1, 16 and 64, with each rate's ratio to the sequential
//! one (concurrency 1). Every certificate costs one HTTP `asymmetricSign` round trip and
//! one local verification of the returned signature; after the clock stops, every
//! certificate is checked against the CA key. A run without the delay at the highest
//! concurrency shows the CPU ceiling of the two shared cores (client and emulator in this
//! one process).
//!
//! Each concurrency C issues `rounds × C` certificates (at least `rounds`), so every run
//! lasts about `rounds × latency` at best.
//!
//! Run with `cargo bench -p kmssh --bench latency`. Options: `--latency-ms MS` (default
//! 20), `--rounds R` (default 40), `--concurrency 1,16,64`, `--write` / `--no-write`
//! (BENCHMARKS.md is written by default for runs of at least 40 rounds).

#[path = "support/report.rs"]
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kmssh_conformance::faults::{Fault, Operation};
use kmssh_conformance::gcp_emulator::GcpKmsEmulator;
use kmssh_core::KmsKey;
use kmssh_pki::batch::{BatchLimits, issue_batch_paced};
use kmssh_pki::{CertificateParameters, VerifyOptions, parse_subject_key, ssh_public_key};

const SUBJECT: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR";
const SECTION: &str = "## Concurrency against a slow KMS (`cargo bench -p kmssh --bench latency`)";
/// Concurrency 64 over sequential, at least (reported, not asserted).
const TARGET_64: f64 = 40.0;

struct Settings {
    latency_ms: u64,
    rounds: usize,
    concurrency: Vec<usize>,
    write: bool,
}

fn settings() -> Settings {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |flag: &str, default: usize| {
        value(flag).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{flag} takes a number, not {v:?}"))
        })
    };
    let flag = |name: &str| args.iter().any(|a| a == name);
    let rounds = number("--rounds", 40).max(1);
    Settings {
        latency_ms: number("--latency-ms", 20) as u64,
        rounds,
        concurrency: value("--concurrency")
            .unwrap_or_else(|| "1,16,64".to_owned())
            .split(',')
            .map(|c| c.parse::<usize>().expect("a concurrency").max(1))
            .collect(),
        write: !flag("--no-write") && (flag("--write") || rounds >= 40),
    }
}

/// This process's user + system CPU time (client, emulator and all their threads).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on every Linux ABI.
    Duration::from_millis(ticks * 10)
}

struct Outcome {
    concurrency: usize,
    count: usize,
    elapsed: Duration,
    cpu: Duration,
    /// `asymmetricSign` requests the emulator saw: more than certificates means retries.
    sign_calls: usize,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

/// Issues `count` certificates at `concurrency`, checks every one, returns the timing.
async fn run(key: &Arc<dyn KmsKey>, concurrency: usize, count: usize) -> Outcome {
    let subject = parse_subject_key(SUBJECT).expect("subject");
    let subjects = vec![subject; count];
    let mut params = CertificateParameters::user();
    params
        .principal("alice")
        .and_then(|p| p.key_id("alice@example.com"))
        .expect("parameters");
    let limits = BatchLimits {
        concurrency,
        per_second: None,
    };
    let cpu_before = cpu_time();
    let start = Instant::now();
    let results = issue_batch_paced(
        key.as_ref(),
        &params,
        &subjects,
        limits,
        tokio::time::sleep,
        |_| {},
    )
    .await
    .expect("parameters accepted");
    let elapsed = start.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let ca = ssh_public_key(key.public_key());
    for result in results {
        let cert = result.expect("a certificate");
        cert.verify(&ca, &VerifyOptions::default())
            .expect("the certificate verifies against the CA key");
    }
    Outcome {
        concurrency,
        count,
        elapsed,
        cpu,
        sign_calls: 0,
    }
}

fn main() {
    let settings = settings();
    let load_before = report::load_average();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let emulator = GcpKmsEmulator::start();
    let name = emulator.create_key_version(kmssh_core::Algorithm::EcdsaP256Sha256);
    let key = runtime
        .block_on(kmssh_conformance::gcp::open(
            &name,
            &kmssh_conformance::gcp::emulator_options(&emulator.url()),
        ))
        .expect("open the emulator's key");
    let top = settings.concurrency.iter().copied().max().unwrap_or(1);
    let count = |c: usize| settings.rounds * c;

    // Warm-up (connections, AWS-LC's first random bytes), then the ceiling without delay.
    runtime.block_on(run(&key, top, top));
    eprintln!("no delay, concurrency {top} …");
    let calls = || emulator.count(&name, Operation::Sign);
    let counted = |outcome: Outcome, before: usize| Outcome {
        sign_calls: calls() - before,
        ..outcome
    };
    let before = calls();
    let ceiling = counted(runtime.block_on(run(&key, top, count(top))), before);

    emulator
        .faults(&name)
        .expect("the key version's fault handle")
        .inject(
            Operation::Sign,
            Fault::Delay(Duration::from_millis(settings.latency_ms)),
            usize::MAX,
        );
    let mut outcomes = Vec::new();
    for &c in &settings.concurrency {
        eprintln!("{} ms per Sign, concurrency {c} …", settings.latency_ms);
        let before = calls();
        outcomes.push(counted(runtime.block_on(run(&key, c, count(c))), before));
    }
    let load_after = report::load_average();

    let sequential = outcomes
        .iter()
        .find(|o| o.concurrency == 1)
        .map(Outcome::rate);
    let ideal_one = 1000.0 / settings.latency_ms.max(1) as f64;
    let mut body = report::heading(
        &load_before,
        &load_after,
        &format!(
            "cargo bench -p kmssh --bench latency -- --latency-ms {} --rounds {}",
            settings.latency_ms, settings.rounds
        ),
    );
    body.push_str(&format!(
        "Library only (no service): `kmssh_pki::batch::issue_batch_paced` (no rate limit) over the GCP backend, against the in-process \
         Cloud KMS emulator on 127.0.0.1 (P-256 key version), the fault layer delaying every `asymmetricSign` by {} ms; \
         each signature verified by the backend, each certificate verified against the CA key after the clock stops. \
         Concurrency C issues {}×C certificates. Client and emulator share this process and the 2 cores; CPU is the process's.\n\n",
        settings.latency_ms, settings.rounds
    ));
    body.push_str(
        "| Sign latency | concurrency | certificates | Sign calls | seconds | certificates/s | × sequential | ideal (C × 1/latency) | CPU µs/cert |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let line = |label: &str, o: &Outcome, ratio: String, ideal: String| {
        format!(
            "| {label} | {} | {} | {} | {:.2} | {:.0} | {ratio} | {ideal} | {:.0} |\n",
            o.concurrency,
            o.count,
            o.sign_calls,
            o.elapsed.as_secs_f64(),
            o.rate(),
            o.cpu.as_secs_f64() * 1e6 / o.count as f64,
        )
    };
    for o in &outcomes {
        let ratio = sequential.map_or("–".to_owned(), |s| format!("{:.1}×", o.rate() / s));
        let ideal = format!("{:.0}/s", ideal_one * o.concurrency as f64);
        body.push_str(&line(
            &format!("{} ms", settings.latency_ms),
            o,
            ratio,
            ideal,
        ));
    }
    body.push_str(&line(
        "none (CPU ceiling)",
        &ceiling,
        "–".to_owned(),
        "–".to_owned(),
    ));
    if let (Some(s), Some(o)) = (sequential, outcomes.iter().find(|o| o.concurrency == 64)) {
        let ratio = o.rate() / s;
        body.push_str(&format!(
            "\nConcurrency 64 is {ratio:.1}× sequential (target ≥ {TARGET_64:.0}×: {}); sequential is {:.1}/s against the {:.0}/s a \
             {} ms wait alone allows.\n",
            if ratio >= TARGET_64 { "met" } else { "**missed**" },
            s,
            ideal_one,
            settings.latency_ms
        ));
    }
    println!("\n{body}");
    if settings.write {
        report::write_section(SECTION, &body);
    } else {
        eprintln!("short run: BENCHMARKS.md not written (--write to write it)");
    }
}
