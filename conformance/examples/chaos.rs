//! The fault campaign against one backend's emulator (`cargo xtask chaos --backend X`):
//! issues a bounded batch while faults are injected, then prints what was issued, retried
//! and refused. Exits non-zero (a panic naming the certificate) if anything issued does
//! not verify, or if the mix never reached a corrupted signature.
//!
//! `--backend aws|gcp|azure [--certificates N] [--concurrency N] [--fault-every N]
//! [--seed N] [--key p256|p384|p521|rsa2048|ed25519]`

use kmssh_conformance::chaos::{ChaosPlan, campaign};
use kmssh_conformance::fixture::Fixture;
use kmssh_core::{Curve, KeySpec};

fn usage(message: &str) -> ! {
    eprintln!("chaos: {message}");
    eprintln!(
        "usage: chaos --backend aws|gcp|azure [--certificates N] [--concurrency N] \
         [--fault-every N] [--seed N] [--key p256|p384|p521|rsa2048|ed25519]"
    );
    std::process::exit(2);
}

fn fixture(name: &str) -> &'static dyn Fixture {
    match name {
        "aws" => kmssh_conformance::fixture::as_dyn(kmssh_conformance::aws::AwsFixture::shared()),
        "gcp" => kmssh_conformance::fixture::as_dyn(kmssh_conformance::gcp::GcpFixture::shared()),
        "azure" => {
            kmssh_conformance::fixture::as_dyn(kmssh_conformance::azure::AzureFixture::shared())
        }
        other => usage(&format!("unknown backend `{other}`")),
    }
}

fn main() {
    let mut backend = None;
    let mut plan = ChaosPlan {
        spec: KeySpec::Ecdsa(Curve::P256),
        certificates: 2_000,
        concurrency: 16,
        fault_every: 8,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() ^ u64::from(d.subsec_nanos())),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        fn number<T: std::str::FromStr>(text: String) -> T {
            text.parse()
                .unwrap_or_else(|_| usage(&format!("`{text}` is not a number")))
        }
        match flag.as_str() {
            "--backend" => backend = Some(value()),
            "--certificates" => plan.certificates = number(value()),
            "--concurrency" => plan.concurrency = number::<usize>(value()).max(1),
            "--fault-every" => plan.fault_every = number::<u32>(value()).clamp(1, 1000),
            "--seed" => plan.seed = number(value()),
            "--key" => {
                plan.spec = match value().as_str() {
                    "p256" => KeySpec::Ecdsa(Curve::P256),
                    "p384" => KeySpec::Ecdsa(Curve::P384),
                    "p521" => KeySpec::Ecdsa(Curve::P521),
                    "rsa2048" => KeySpec::Rsa(2048),
                    "ed25519" => KeySpec::Ed25519,
                    other => usage(&format!("unknown key kind `{other}`")),
                }
            }
            other => usage(&format!("unknown flag `{other}`")),
        }
    }
    let Some(backend) = backend else {
        usage("--backend is required")
    };
    let fixture = fixture(&backend);
    println!(
        "chaos: {backend}, {} {} certificates, {} in flight, a fault per {} Sign calls, seed {}",
        plan.certificates, plan.spec, plan.concurrency, plan.fault_every, plan.seed
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("scratch directory");
    let report = runtime.block_on(campaign(fixture, plan, dir.path()));
    println!("{report}");
    let corrupted = report.faults.get("CorruptSignature").copied().unwrap_or(0)
        + report.faults.get("ShortSignature").copied().unwrap_or(0);
    println!("{corrupted} corrupted or truncated signatures answered; none became a certificate");
    if plan.certificates >= 200 {
        assert!(
            corrupted > 0,
            "the mix reached no corrupted signature: raise --certificates or lower --fault-every"
        );
    }
}
