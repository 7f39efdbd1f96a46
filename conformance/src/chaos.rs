//! The fault campaign (`cargo xtask chaos --backend X`): a bounded batch of certificates
//! issued through a backend's emulator while a steady mix of faults is injected (throttling,
//! 5xx, latency spikes, dropped connections, corrupted and truncated signatures). Every
//! certificate that comes out must verify, by our verifier and by `ssh-keygen -L`; every
//! failure is counted by kind; a corrupted answer never becomes a certificate.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kmssh_core::{ErrorKind, KeySpec};
use kmssh_pki::batch::{BatchLimits, issue_batch_paced};
use kmssh_pki::{CertificateParameters, VerifyOptions, parse_subject_key, ssh_public_key};

use crate::faults::{Fault, Operation};
use crate::fixture::Fixture;

/// What a campaign is asked to do.
#[derive(Clone, Copy, Debug)]
pub struct ChaosPlan {
    /// The kind of CA key.
    pub spec: KeySpec,
    /// Certificates to ask for.
    pub certificates: usize,
    /// Signatures in flight.
    pub concurrency: usize,
    /// One fault is injected per this many `Sign` calls, on average.
    pub fault_every: u32,
    /// Seed of the fault mix (printed, so a run can be repeated).
    pub seed: u64,
}

/// What a campaign found.
#[derive(Clone, Debug, Default)]
pub struct ChaosReport {
    /// Certificates issued (each verified).
    pub issued: usize,
    /// Requests that ended in an error, by error kind.
    pub failures: BTreeMap<String, usize>,
    /// Faults the emulator applied, by kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// `Sign` calls the emulator saw.
    pub sign_calls: usize,
    /// `Sign` calls beyond one per certificate asked for: the retries.
    pub retries: usize,
    /// How long the batch took.
    pub elapsed: Duration,
}

impl std::fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "issued {} certificates (all verified) in {:.1?}; {} Sign calls, {} retries",
            self.issued, self.elapsed, self.sign_calls, self.retries
        )?;
        writeln!(f, "faults applied: {:?}", self.faults)?;
        write!(f, "failures by kind: {:?}", self.failures)
    }
}

/// xorshift64*: a seeded, dependency-free source for the fault mix.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn fault(&mut self) -> Fault {
        match self.below(100) {
            0..=29 => Fault::Throttle {
                retry_after: (self.below(2) == 0).then_some(Duration::from_secs(0)),
            },
            30..=49 => Fault::ServerError,
            50..=64 => Fault::Delay(Duration::from_millis(50 + self.below(200))),
            65..=74 => Fault::Drop,
            75..=89 => Fault::CorruptSignature,
            _ => Fault::ShortSignature,
        }
    }
}

/// Runs one campaign against `fixture`'s emulator, writing each certificate under `dir`
/// for `ssh-keygen -L`.
///
/// # Panics
/// When the fixture cannot inject faults, or when anything issued does not verify: that
/// is the finding the campaign exists for.
pub async fn campaign(fixture: &dyn Fixture, plan: ChaosPlan, dir: &Path) -> ChaosReport {
    let key = fixture
        .faulty_key(plan.spec)
        .await
        .unwrap_or_else(|| panic!("{} has no fault layer for chaos", fixture.name()));
    let subject = parse_subject_key(crate::cases::TEST_SUBJECT).expect("subject");
    let subjects = vec![subject; plan.certificates];
    let mut params = CertificateParameters::user();
    params.principal("chaos").expect("principal");

    // A feeder keeps about one fault queued per `fault_every` calls: faults interleave
    // with clean answers instead of arriving in a block.
    let faults = key.faults.clone();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let mut mix = Mix(plan.seed.max(1));
    let feeder = tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let calls = faults.count(Operation::Sign);
            for _ in seen..calls {
                if mix.below(u64::from(plan.fault_every.max(1))) == 0 {
                    faults.inject(Operation::Sign, mix.fault(), 1);
                }
            }
            seen = calls;
            tokio::select! {
                _ = &mut stopped => return,
                () = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
        }
    });

    let started = Instant::now();
    let results = issue_batch_paced(
        key.key.as_ref(),
        &params,
        &subjects,
        BatchLimits {
            concurrency: plan.concurrency,
            per_second: None,
        },
        tokio::time::sleep,
        |_| {},
    )
    .await
    .expect("the batch's parameters are valid");
    let elapsed = started.elapsed();
    let _ = stop.send(());
    let _ = feeder.await;
    key.faults.clear();

    let ca = ssh_public_key(key.key.public_key());
    let mut report = ChaosReport {
        elapsed,
        faults: key.faults.applied(),
        sign_calls: key.faults.count(Operation::Sign),
        ..ChaosReport::default()
    };
    report.retries = report.sign_calls.saturating_sub(plan.certificates);
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(certificate) => {
                certificate
                    .verify(&ca, &VerifyOptions::default())
                    .unwrap_or_else(|e| panic!("certificate {i} does not verify: {e}"));
                let path = dir.join(format!("chaos-{i}-cert.pub"));
                std::fs::write(&path, certificate.cert_string("chaos") + "\n")
                    .expect("write certificate");
                report.issued += 1;
            }
            Err(e) => {
                let kind = match &e {
                    kmssh_pki::Error::Signing(source) => format!("{:?}", source.kind()),
                    other => format!("{other}"),
                };
                if let kmssh_pki::Error::Signing(source) = &e {
                    assert_ne!(
                        source.kind(),
                        ErrorKind::Unexpected,
                        "certificate {i}: an unexpected error: {source}"
                    );
                }
                *report.failures.entry(kind).or_default() += 1;
            }
        }
    }
    list_all_with_ssh_keygen(dir, report.issued).await;
    report
}

/// `ssh-keygen -L` reads every certificate written (a few at once).
async fn list_all_with_ssh_keygen(dir: &Path, count: usize) {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with("-cert.pub"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), count, "certificates written");
    for chunk in paths.chunks(8) {
        let mut running = tokio::task::JoinSet::new();
        for path in chunk {
            let path = path.clone();
            running.spawn(async move {
                let listing = crate::openssh::list_certificate(&path).await;
                (path, listing)
            });
        }
        while let Some(done) = running.join_next().await {
            let (path, listing) = done.expect("ssh-keygen task");
            assert_eq!(
                listing.principals,
                vec!["chaos".to_owned()],
                "{}",
                path.display()
            );
        }
    }
}
