//! `kmssh sign` against `ssh-keygen -s`, side by side in one run, on the same CA key file
//! (an OpenSSH ECDSA key both read): the wall time of one certificate from a cold process,
//! and of certificates for 1,000 public keys (`kmssh sign` once with every file, against
//! `ssh-keygen -s` once per file in a loop and once with every file). Ratios are
//! ssh-keygen's time over kmssh's: above 1 means kmssh is faster.
//!
//! With `--aws`, the same one-shot and batch runs also go to AWS KMS keys in ministack on
//! 127.0.0.1 (no peer there: ssh-keygen cannot use a KMS key), to show what one KMS round
//! trip per certificate and 32 in flight cost through the CLI.
//!
//! It first measures the memory `kmssh sign-message` needs for a 1 GiB message (peak
//! resident set size, by GNU `/usr/bin/time` or else by sampling `/proc/PID/status`):
//! the message is streamed through the hash, so it must stay under 64 MiB.
//!
//! Run with `cargo xtask bench cli`. Options: `--one-shot-runs N` (default 30),
//! `--batch-keys N` (default 1000), `--batch-runs N` (default 3), `--curves p256,p384,p521`,
//! `--aws`, `--message-mib N` (default 1024), `--memory-only`.

// The tests' helpers: ssh-keygen key pairs.
#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const KMSSH: &str = env!("CARGO_BIN_EXE_kmssh");

struct Settings {
    one_shot_runs: usize,
    batch_keys: usize,
    batch_runs: usize,
    curves: Vec<String>,
    aws: bool,
    message_mib: u64,
    memory_only: bool,
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
    Settings {
        one_shot_runs: number("--one-shot-runs", 30).max(1),
        batch_keys: number("--batch-keys", 1000).max(1),
        batch_runs: number("--batch-runs", 3).max(1),
        curves: value("--curves")
            .unwrap_or_else(|| "p256,p384,p521".to_owned())
            .split(',')
            .map(str::to_owned)
            .collect(),
        aws: args.iter().any(|a| a == "--aws"),
        message_mib: number("--message-mib", 1024).max(1) as u64,
        memory_only: args.iter().any(|a| a == "--memory-only"),
    }
}

/// The most `sign-message` may hold, whatever the message's size.
const MESSAGE_RSS_LIMIT_KIB: u64 = 64 * 1024;

/// Peak resident set size of `kmssh sign-message` over a `message_mib` MiB message, in
/// each output format; panics above [`MESSAGE_RSS_LIMIT_KIB`].
fn message_memory(settings: &Settings, dir: &Path) {
    let message = dir.join("message.bin");
    // Sparse: reading it costs page-cache work, not disk.
    std::fs::File::create(&message)
        .and_then(|f| f.set_len(settings.message_mib * 1024 * 1024))
        .expect("message file");
    println!("| kmssh sign-message | message | peak RSS | limit |");
    println!("|---|---|---|---|");
    for format in ["base64", "ssh-sig"] {
        let mut command = Command::new(KMSSH);
        command
            .args([
                "sign-message",
                "--key",
                "local:ephemeral",
                "--format",
                format,
            ])
            .arg(&message);
        let (peak_kib, how) = peak_rss_kib(command, dir);
        println!(
            "| --format {format} | {} MiB | {:.1} MiB ({how}) | {} MiB |",
            settings.message_mib,
            peak_kib as f64 / 1024.0,
            MESSAGE_RSS_LIMIT_KIB / 1024
        );
        assert!(
            peak_kib < MESSAGE_RSS_LIMIT_KIB,
            "sign-message held {peak_kib} KiB: the message is not streamed"
        );
    }
    println!();
    let _ = std::fs::remove_file(&message);
}

/// Runs `command` to success and returns its peak resident set size in KiB, and how it
/// was measured: GNU time's `%M` when `/usr/bin/time` is GNU time, else the largest
/// `VmHWM` sampled from `/proc/PID/status` while it ran.
fn peak_rss_kib(command: Command, dir: &Path) -> (u64, &'static str) {
    let report = dir.join("time.out");
    let gnu_time = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    if gnu_time {
        let mut timed = Command::new("/usr/bin/time");
        timed
            .args(["-f", "%M", "-o"])
            .arg(&report)
            .arg(command.get_program())
            .args(command.get_args())
            .stdout(std::process::Stdio::null());
        let status = timed.status().expect("runs");
        assert!(status.success(), "{timed:?}");
        let text = std::fs::read_to_string(&report).expect("time's report");
        let kib = text
            .lines()
            .rev()
            .find_map(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no %M in {text:?}"));
        return (kib, "GNU time");
    }
    let mut command = command;
    let mut child = command
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawns");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak = peak.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "{command:?}");
            return (peak, "VmHWM samples");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs a command to success and returns its wall time.
fn timed(command: &mut Command) -> Duration {
    let start = Instant::now();
    let out = command.output().expect("starts");
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn kmssh_sign(ca: &Path, files: &[PathBuf]) -> Command {
    kmssh_sign_with(&format!("local:{}", ca.display()), files)
}

fn kmssh_sign_with(uri: &str, files: &[PathBuf]) -> Command {
    let mut command = Command::new(KMSSH);
    command
        .arg("sign")
        .arg("--ca")
        .arg(uri)
        .args([
            "-n",
            "alice",
            "-I",
            "alice@example.com",
            "-V",
            "+8h",
            "--force",
        ])
        .args(files);
    command
}

fn keygen_sign(ca: &Path, files: &[PathBuf]) -> Command {
    let mut command = Command::new("ssh-keygen");
    command
        .arg("-q")
        .arg("-s")
        .arg(ca)
        .args(["-n", "alice", "-I", "alice@example.com", "-V", "+8h"])
        .args(files);
    command
}

/// The certificate beside `public_key` is readable and signed by an ECDSA CA: the
/// timings are of real work.
fn check_certificate(public_key: &Path) {
    let name = public_key
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.replace(".pub", "-cert.pub"))
        .expect("name");
    let out = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(public_key.with_file_name(name))
        .output()
        .expect("ssh-keygen -L");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("Signing CA: ECDSA"), "{listing}");
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(theirs: Duration, ours: Duration) -> f64 {
    theirs.as_secs_f64() / ours.as_secs_f64()
}

fn main() {
    let settings = settings();
    let dir = tempfile::tempdir().expect("tempdir");
    message_memory(&settings, dir.path());
    if settings.memory_only {
        return;
    }
    let keys_dir = dir.path().join("users");
    std::fs::create_dir(&keys_dir).expect("mkdir");
    eprintln!("generating {} user keys …", settings.batch_keys);
    let users: Vec<PathBuf> = (0..settings.batch_keys)
        .map(|i| common::keygen(&keys_dir, &format!("user{i}")).with_extension("pub"))
        .collect();
    let last = &users[users.len() - 1];

    println!(
        "| CA | one-shot kmssh | one-shot ssh-keygen -s | ratio | {n} keys, kmssh | {n} × ssh-keygen -s | ratio | ssh-keygen -s with {n} files | ratio |",
        n = settings.batch_keys
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for curve in &settings.curves {
        let bits = match curve.as_str() {
            "p256" => "256",
            "p384" => "384",
            "p521" => "521",
            other => panic!("unknown curve {other:?}"),
        };
        let ca = dir.path().join(format!("ca_{curve}"));
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-t", "ecdsa", "-b", bits, "-f"])
            .arg(&ca)
            .status()
            .expect("ssh-keygen");
        assert!(ok.success());

        // One certificate from a cold process, alternating so drift hits both alike.
        let one = std::slice::from_ref(&users[0]);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..settings.one_shot_runs {
            ours.push(timed(&mut kmssh_sign(&ca, one)));
            check_certificate(&users[0]);
            theirs.push(timed(&mut keygen_sign(&ca, one)));
            check_certificate(&users[0]);
        }
        let (one_ours, one_theirs) = (median(ours), median(theirs));

        // Every key: one kmssh process; ssh-keygen once per file; ssh-keygen once.
        let (mut ours, mut looped, mut listed) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..settings.batch_runs {
            ours.push(timed(&mut kmssh_sign(&ca, &users)));
            check_certificate(last);
            let start = Instant::now();
            for user in &users {
                timed(&mut keygen_sign(&ca, std::slice::from_ref(user)));
            }
            looped.push(start.elapsed());
            check_certificate(last);
            listed.push(timed(&mut keygen_sign(&ca, &users)));
            check_certificate(last);
        }
        let (batch_ours, batch_looped, batch_listed) =
            (median(ours), median(looped), median(listed));
        println!(
            "| ECDSA {curve} | {} | {} | {:.2} | {} | {} | {:.1} | {} | {:.2} |",
            ms(one_ours),
            ms(one_theirs),
            ratio(one_theirs, one_ours),
            ms(batch_ours),
            ms(batch_looped),
            ratio(batch_looped, batch_ours),
            ms(batch_listed),
            ratio(batch_listed, batch_ours),
        );
    }
    println!(
        "\nmedians of {} one-shot and {} batch runs; ratio = ssh-keygen time / kmssh time",
        settings.one_shot_runs, settings.batch_runs
    );
    if settings.aws {
        aws(&settings, &users);
    }
}

/// One-shot and batch `kmssh sign` with AWS KMS keys in ministack.
fn aws(settings: &Settings, users: &[PathBuf]) {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    use kmssh_conformance::aws::{EMULATOR_REGION, admin_client, create_key};
    use kmssh_conformance::ministack::Ministack;

    let endpoint = Ministack::shared().url();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!(
        "\n| AWS KMS key (ministack) | one-shot kmssh | {n} keys, kmssh | certificates/s |",
        n = users.len()
    );
    println!("|---|---|---|---|");
    for (curve, spec) in [
        ("p256", KeySpec::EccNistP256),
        ("p384", KeySpec::EccNistP384),
        ("p521", KeySpec::EccNistP521),
    ] {
        if !settings.curves.iter().any(|c| c == curve) {
            continue;
        }
        let id = runtime.block_on(async {
            create_key(
                &admin_client(&endpoint).await,
                spec,
                KeyUsageType::SignVerify,
            )
            .await
        });
        let uri = format!("aws-kms:{id}");
        let with_env = |mut command: Command| {
            command
                .env("AWS_ENDPOINT_URL", &endpoint)
                .env("AWS_REGION", EMULATOR_REGION)
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_EC2_METADATA_DISABLED", "true");
            command
        };
        let one = std::slice::from_ref(&users[0]);
        let one_shot = median(
            (0..settings.one_shot_runs)
                .map(|_| timed(&mut with_env(kmssh_sign_with(&uri, one))))
                .collect(),
        );
        check_certificate(&users[0]);
        let batch = median(
            (0..settings.batch_runs)
                .map(|_| timed(&mut with_env(kmssh_sign_with(&uri, users))))
                .collect(),
        );
        check_certificate(&users[users.len() - 1]);
        println!(
            "| ECDSA {curve} | {} | {} | {:.0} |",
            ms(one_shot),
            ms(batch),
            users.len() as f64 / batch.as_secs_f64()
        );
    }
}
