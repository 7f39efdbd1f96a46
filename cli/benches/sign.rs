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
//! The one-shot runs also break a cold `kmssh sign` down, from medians of runs alternated
//! with it: `/bin/true` (what any fork + exec costs here), `kmssh --version` (binary load,
//! dynamic linking, argument parsing: everything before a command runs), `kmssh pubkey
//! --ca local:CA` (plus the Tokio runtime, the backend registry and opening the key file),
//! and the sign itself (plus hashing, signing and writing the certificate); the same
//! for ssh-keygen with `ssh-keygen -y -f CA` (load and key open) against `ssh-keygen -s`.
//! The one-shot target: kmssh at most 0.6× ssh-keygen's wall time.
//!
//! Run with `cargo xtask bench cli`. Options: `--one-shot-runs N` (default 30),
//! `--batch-keys N` (default 1000), `--batch-runs N` (default 3), `--curves p256,p384,p521`,
//! `--aws`, `--message-mib N` (default 1024), `--memory-only`, `--write` / `--no-write`
//! (BENCHMARKS.md is written by default for runs with the default counts or more).

// The tests' helpers: ssh-keygen key pairs.
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/report.rs"]
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const KMSSH: &str = env!("CARGO_BIN_EXE_kmssh");
const SECTION: &str =
    "## `kmssh sign` against `ssh-keygen -s`, and process start cost (`cargo xtask bench cli`)";
/// One-shot `kmssh sign` over `ssh-keygen -s` wall time, at most (reported, not asserted).
const TARGET_ONE_SHOT: f64 = 0.6;

struct Settings {
    one_shot_runs: usize,
    batch_keys: usize,
    batch_runs: usize,
    curves: Vec<String>,
    aws: bool,
    message_mib: u64,
    memory_only: bool,
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
    let one_shot_runs = number("--one-shot-runs", 30).max(1);
    let batch_keys = number("--batch-keys", 1000).max(1);
    let batch_runs = number("--batch-runs", 3).max(1);
    let flag = |name: &str| args.iter().any(|a| a == name);
    Settings {
        write: !flag("--no-write")
            && (flag("--write") || (one_shot_runs >= 30 && batch_keys >= 1000 && batch_runs >= 3)),
        one_shot_runs,
        batch_keys,
        batch_runs,
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
/// each output format, as a table; panics above [`MESSAGE_RSS_LIMIT_KIB`].
fn message_memory(settings: &Settings, dir: &Path) -> String {
    let message = dir.join("message.bin");
    // Sparse: reading it costs page-cache work, not disk.
    std::fs::File::create(&message)
        .and_then(|f| f.set_len(settings.message_mib * 1024 * 1024))
        .expect("message file");
    let mut table =
        "| kmssh sign-message | message | peak RSS | limit |\n|---|---|---|---|\n".to_owned();
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
        table.push_str(&format!(
            "| --format {format} | {} MiB | {:.1} MiB ({how}) | {} MiB |\n",
            settings.message_mib,
            peak_kib as f64 / 1024.0,
            MESSAGE_RSS_LIMIT_KIB / 1024
        ));
        assert!(
            peak_kib < MESSAGE_RSS_LIMIT_KIB,
            "sign-message held {peak_kib} KiB: the message is not streamed"
        );
    }
    println!("{table}");
    let _ = std::fs::remove_file(&message);
    table
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
    let load_before = report::load_average();
    let dir = tempfile::tempdir().expect("tempdir");
    let memory = message_memory(&settings, dir.path());
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

    let mut table = format!(
        "| CA | one-shot kmssh | one-shot ssh-keygen -s | ratio | {n} keys, kmssh | {n} × ssh-keygen -s | ratio | ssh-keygen -s with {n} files | ratio |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        n = settings.batch_keys
    );
    print!("{table}");
    let mut start_cost = "| CA | `/bin/true` | `kmssh --version` (binary load) | `kmssh pubkey` | runtime + key open (pubkey − version) | `kmssh sign` | signing + write (sign − pubkey) | `ssh-keygen -y` (load + key open) | `ssh-keygen -s` | signing + write (−s − -y) | kmssh / ssh-keygen | target |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n"
        .to_owned();
    let mut verdicts = Vec::new();
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

        // One certificate from a cold process, and the steps before it, alternating so
        // drift hits every command alike.
        let one = std::slice::from_ref(&users[0]);
        let uri = format!("local:{}", ca.display());
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let (mut floor, mut version, mut pubkey, mut keygen_open) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..settings.one_shot_runs {
            floor.push(timed(&mut Command::new("true")));
            version.push(timed(Command::new(KMSSH).arg("--version")));
            pubkey.push(timed(Command::new(KMSSH).args([
                "pubkey",
                "--ca",
                uri.as_str(),
            ])));
            ours.push(timed(&mut kmssh_sign(&ca, one)));
            check_certificate(&users[0]);
            keygen_open.push(timed(
                Command::new("ssh-keygen").arg("-y").arg("-f").arg(&ca),
            ));
            theirs.push(timed(&mut keygen_sign(&ca, one)));
            check_certificate(&users[0]);
        }
        let (one_ours, one_theirs) = (median(ours), median(theirs));
        let (floor, version, pubkey, keygen_open) = (
            median(floor),
            median(version),
            median(pubkey),
            median(keygen_open),
        );
        let share = one_ours.as_secs_f64() / one_theirs.as_secs_f64();
        start_cost.push_str(&format!(
            "| ECDSA {curve} | {} | {} | {} | {} | {} | {} | {} | {} | {} | **{share:.2}×** | ≤ {TARGET_ONE_SHOT}× {} |\n",
            ms(floor),
            ms(version),
            ms(pubkey),
            ms_signed(pubkey, version),
            ms(one_ours),
            ms_signed(one_ours, pubkey),
            ms(keygen_open),
            ms(one_theirs),
            ms_signed(one_theirs, keygen_open),
            if share <= TARGET_ONE_SHOT { "met" } else { "**missed**" },
        ));
        verdicts.push(format!(
            "{curve}: kmssh sign {} = {:.0}% binary load ({}), {:.0}% runtime + key open, {:.0}% signing + write",
            ms(one_ours),
            100.0 * version.as_secs_f64() / one_ours.as_secs_f64(),
            ms(version),
            100.0 * (pubkey.as_secs_f64() - version.as_secs_f64()) / one_ours.as_secs_f64(),
            100.0 * (one_ours.as_secs_f64() - pubkey.as_secs_f64()) / one_ours.as_secs_f64(),
        ));

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
        let row = format!(
            "| ECDSA {curve} | {} | {} | {:.2} | {} | {} | {:.1} | {} | {:.2} |\n",
            ms(one_ours),
            ms(one_theirs),
            ratio(one_theirs, one_ours),
            ms(batch_ours),
            ms(batch_looped),
            ratio(batch_looped, batch_ours),
            ms(batch_listed),
            ratio(batch_listed, batch_ours),
        );
        print!("{row}");
        table.push_str(&row);
    }
    let note = format!(
        "\nmedians of {} one-shot and {} batch runs; ratio = ssh-keygen time / kmssh time\n",
        settings.one_shot_runs, settings.batch_runs
    );
    println!("{note}");
    println!("{start_cost}");
    let load_after = report::load_average();

    let binary_mib = std::fs::metadata(KMSSH).map_or(0.0, |m| m.len() as f64 / 1048576.0);
    let mut body = report::heading(
        &load_before,
        &load_after,
        &format!(
            "cargo xtask bench cli --one-shot-runs {} --batch-keys {} --batch-runs {}",
            settings.one_shot_runs, settings.batch_keys, settings.batch_runs
        ),
    );
    body.push_str(&format!(
        "The release `kmssh` binary ({binary_mib:.1} MiB, every backend) and `ssh-keygen -s` sign with the same OpenSSH ECDSA CA key file; \
         one certificate for an Ed25519 key (principal alice, 8 h) per run; processes not pinned.\n\n"
    ));
    body.push_str(&table);
    body.push_str(&note);
    body.push_str(
        "\nProcess start cost, one-shot (medians over the same alternating runs; a difference is the next step's cost):\n\n",
    );
    body.push_str(&start_cost);
    body.push('\n');
    for v in &verdicts {
        body.push_str(&format!("- {v}.\n"));
    }
    body.push_str("\nMemory of `kmssh sign-message` (streamed hash):\n\n");
    body.push_str(&memory);
    println!("{body}");
    if settings.write {
        report::write_section(SECTION, &body);
    } else {
        eprintln!("short run: BENCHMARKS.md not written (--write to write it)");
    }
    if settings.aws {
        aws(&settings, &users);
    }
}

/// `a − b` in milliseconds, signed (a later step can be faster than an earlier one by noise).
fn ms_signed(a: Duration, b: Duration) -> String {
    format!("{:.1} ms", (a.as_secs_f64() - b.as_secs_f64()) * 1000.0)
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
