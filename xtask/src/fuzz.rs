//! `cargo xtask fuzz [--seconds N] [--target NAME]`: builds the cargo-fuzz targets in
//! `fuzz/` (with nightly where it is installed, else the default toolchain) and runs each
//! for N seconds, one job at a time, printing runs, executions per second and corpus size
//! per target; a crash fails with its reproducer.
//!
//! Each run reads the committed seeds (`fuzz/corpus/<target>/`) and grows a working corpus
//! under `fuzz/target/corpus/<target>/` (ignored by git, kept between runs); libFuzzer's
//! output goes to `fuzz/target/logs/<target>.log`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{cargo, run};

/// The targets (`fuzz/fuzz_targets/<name>.rs`), in the order they run.
pub const TARGETS: &[&str] = &[
    "agent_codec",
    "krl",
    "certificate",
    "public_key",
    "csr",
    "key_uri",
    "validity_and_options",
    "sshsig",
    "x509_csr",
];

/// Seconds per target for `cargo xtask fuzz` without `--seconds`.
pub const DEFAULT_SECONDS: u64 = 20;

/// Seconds per target in `cargo xtask ci`: a smoke run (the seeds and some mutations).
pub const CI_SECONDS: u64 = 5;

/// What one target's run did, read from libFuzzer's final statistics.
#[derive(Default)]
struct Figures {
    runs: u64,
    exec_per_sec: u64,
    corpus_units: u64,
    corpus_bytes: String,
}

/// rustup's `cargo` proxy, without what the stable `cargo run` that started xtask put in
/// the environment (which would pin its toolchain).
fn proxy() -> Command {
    let proxy = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .map(|home| home.join("bin").join("cargo"))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let mut command = Command::new(proxy);
    for variable in [
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTUP_TOOLCHAIN",
        "RUSTC_WRAPPER",
    ] {
        command.env_remove(variable);
    }
    command.current_dir(crate::root());
    command
}

/// Whether a nightly toolchain is installed (checked once).
fn has_nightly() -> bool {
    static NIGHTLY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NIGHTLY.get_or_init(|| succeeds(proxy().args(["+nightly", "--version"])))
}

/// The `cargo` that builds and runs the fuzz targets: nightly where it is installed;
/// otherwise the machine's one toolchain, which builds them too without a sanitizer
/// (`RUSTC_BOOTSTRAP` lets it take the few unstable flags cargo-fuzz may pass). A machine
/// that can fetch no other toolchain (CI's) fuzzes with what it has.
fn fuzz_cargo() -> Command {
    let mut command = proxy();
    if has_nightly() {
        command.arg("+nightly");
    } else {
        command.env("RUSTC_BOOTSTRAP", "1");
    }
    command
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// cargo-fuzz, installed if missing.
fn tools() -> Result<(), String> {
    if !has_nightly() {
        println!("fuzz: no nightly toolchain; building the targets with the default one");
    }
    if !succeeds(fuzz_cargo().args(["fuzz", "--version"])) {
        run(
            "install cargo-fuzz",
            cargo().args(["install", "cargo-fuzz", "--locked"]),
        )?;
    }
    Ok(())
}

/// Builds every target, then runs `only` (or each target) for `seconds`.
pub fn fuzz(seconds: u64, only: Option<&str>) -> Result<(), String> {
    let targets: Vec<&str> = match only {
        Some(name) => vec![*TARGETS.iter().find(|t| **t == name).ok_or_else(|| {
            format!(
                "no fuzz target {name:?}: expected one of {}",
                TARGETS.join(", ")
            )
        })?],
        None => TARGETS.to_vec(),
    };
    let started = Instant::now();
    tools()?;
    // No sanitizer: every crate fuzzed forbids `unsafe`, so AddressSanitizer would find
    // nothing but cost build and run time; panics, overflows (debug assertions are on),
    // hangs and memory blow-ups are what is looked for.
    run(
        "fuzz build (release with debug assertions)",
        fuzz_cargo().args(["fuzz", "build", "--fuzz-dir", "fuzz", "--sanitizer", "none"]),
    )?;
    let mut summary = Vec::new();
    for target in &targets {
        let figures = run_target(target, seconds)?;
        summary.push(format!(
            "{target:<22} {:>12} runs {:>9} exec/s   corpus {:>5} inputs, {}",
            figures.runs, figures.exec_per_sec, figures.corpus_units, figures.corpus_bytes
        ));
    }
    eprintln!(
        "fuzz: {} target(s), {seconds} s each, no crash:",
        targets.len()
    );
    for line in summary {
        eprintln!("  {line}");
    }
    eprintln!(
        "<== fuzz (install, build, runs): {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_target(target: &str, seconds: u64) -> Result<Figures, String> {
    let root = crate::root();
    let working = root.join("fuzz/target/corpus").join(target);
    let logs = root.join("fuzz/target/logs");
    for dir in [&working, &logs] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let log_path = logs.join(format!("{target}.log"));
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut command = fuzz_cargo();
    command
        .args([
            "fuzz",
            "run",
            "--fuzz-dir",
            "fuzz",
            "--sanitizer",
            "none",
            "--jobs",
            "1",
        ])
        .arg(target)
        // New inputs go to the first directory (the working corpus), never to the seeds.
        .arg(&working)
        .arg(root.join("fuzz/corpus").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(["-rss_limit_mb=2048", "-timeout=60", "-print_final_stats=1"])
        .stdout(log)
        .stderr(err);
    let outcome = run(&format!("fuzz {target} ({seconds} s)"), &mut command);
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if let Err(failure) = outcome {
        // The panic or libFuzzer's report, and the input that caused it.
        let report: Vec<&str> = text
            .lines()
            .skip_while(|l| !(l.contains("panicked at") || l.starts_with("==")))
            .take(12)
            .collect();
        for line in &report {
            eprintln!("    {line}");
        }
        let reproducer = text
            .lines()
            .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim()));
        return Err(match reproducer {
            Some(path) => format!(
                "{failure}: reproducer {path} (replay: `cargo +nightly fuzz run --fuzz-dir fuzz -s none {target} {path}`); log {}",
                log_path.display()
            ),
            None => format!("{failure}: log {}", log_path.display()),
        });
    }
    Ok(figures(&text))
}

/// Runs, executions per second and corpus size from libFuzzer's output: its final
/// statistics (`-print_final_stats=1`) and its last status line (`… corp: 85/4411b …`).
fn figures(log: &str) -> Figures {
    let stat = |name: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut figures = Figures {
        runs: stat("stat::number_of_executed_units:"),
        exec_per_sec: stat("stat::average_exec_per_sec:"),
        ..Figures::default()
    };
    let corpus = log
        .lines()
        .rev()
        .filter(|l| l.starts_with('#'))
        .find_map(|l| l.split_once(" corp: "))
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if let Some((units, bytes)) = corpus.and_then(|c| c.split_once('/')) {
        figures.corpus_units = units.parse().unwrap_or(0);
        figures.corpus_bytes = format!("{}B", bytes.trim_end_matches('b'));
    }
    figures
}
