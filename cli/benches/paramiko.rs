//! The same 1,000-certificate job through kmssh and through paramiko-cloud's local key
//! path (PyPI `paramiko-cloud` 2.0.0, `paramiko_cloud.dummy.keys.ECDSAKey`: a PEM EC key
//! signing through `cryptography`, with the certificate code its cloud keys use), per
//! curve, in one run, every process pinned to one core (`taskset -c 0`).
//!
//! The job: N Ed25519 subject keys (`ssh-keygen`), each certified for principal `alice`,
//! key ID `alice@example.com`, 8 hours, by one ECDSA CA key file that both read (written
//! by `ssh-keygen -m PEM`, SEC1). Two ways:
//!
//! - In process (the per-core rate, the issue's target): the subject lines are read
//!   first; the clock runs over parse, issue and render of each `*-cert.pub` line, after
//!   the interpreter's imports and the key's open. kmssh is the library (`kmssh_pki::issue`
//!   in a loop on a current-thread Tokio runtime, local backend with a fixed engine), run
//!   in a child process of this bench under `taskset`; paramiko-cloud is
//!   `benches/paramiko_cloud_driver.py memory`.
//! - Whole process: `kmssh sign --ca local:CA FILE…` against the driver's `files` mode
//!   (read each `.pub`, write each `-cert.pub`), wall time from spawn to exit: the
//!   interpreter's start and imports, or kmssh's binary load, runtime and key open,
//!   included; `ssh-keygen -s CA FILE…` beside them.
//!
//! The venv is the one the server's Python tests make (`server/tests/support/python.rs`,
//! under `target/emulators/`, made on first use with `python3 -m venv` and pip).
//! Ratios are paramiko-cloud's time over kmssh's (above 1: kmssh is faster).
//!
//! Run with `cargo bench -p kmssh --bench paramiko`. Options: `--keys N` (default 1000),
//! `--runs R` (default 5, medians), `--curves p256,p384,p521`, `--cpu C` (default 0),
//! `--write` / `--no-write` (BENCHMARKS.md is written by default for runs of at least
//! 1,000 keys).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../../server/tests/support/python.rs"]
mod python;
#[path = "support/report.rs"]
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use report::{median, ms};

const KMSSH: &str = env!("CARGO_BIN_EXE_kmssh");
const DRIVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/paramiko_cloud_driver.py"
);
const SECTION: &str =
    "## kmssh against paramiko-cloud, one core (`cargo bench -p kmssh --bench paramiko`)";

/// Issue targets, kmssh over paramiko-cloud per core (reported, not asserted).
fn target(curve: &str) -> f64 {
    match curve {
        "p256" => 4.5,
        "p384" => 3.5,
        _ => 2.0,
    }
}

struct Settings {
    keys: usize,
    runs: usize,
    curves: Vec<String>,
    cpu: String,
    write: bool,
}

fn settings(args: &[String]) -> Settings {
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
    let keys = number("--keys", 1000).max(1);
    let flag = |name: &str| args.iter().any(|a| a == name);
    Settings {
        keys,
        runs: number("--runs", 5).max(1),
        curves: value("--curves")
            .unwrap_or_else(|| "p256,p384,p521".to_owned())
            .split(',')
            .map(str::to_owned)
            .collect(),
        cpu: value("--cpu").unwrap_or_else(|| "0".to_owned()),
        write: !flag("--no-write") && (flag("--write") || keys >= 1000),
    }
}

/// The child process's side of the in-process run: `--worker ENGINE CA LIST OUT`.
/// Prints `open=S first=S issue=S count=N` as the Python driver does.
fn worker(args: &[String]) {
    use kmssh_backend_local::{LocalKey, LocalOptions};
    use kmssh_pki::{CertificateParameters, issue, parse_subject_key};

    let [engine, ca, list, out] = args else {
        panic!("--worker ENGINE CA LIST OUT, not {args:?}");
    };
    let lines: Vec<String> = std::fs::read_to_string(list)
        .expect("subject list")
        .lines()
        .map(|path| std::fs::read_to_string(path).expect("subject key"))
        .collect();
    let mut params = CertificateParameters::user();
    params
        .principal("alice")
        .and_then(|p| p.key_id("alice@example.com"))
        .and_then(|p| p.valid_for(Duration::from_secs(8 * 3600)))
        .expect("parameters");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let opened_at = Instant::now();
    let options = LocalOptions {
        engine: Some(engine.parse().expect("engine")),
        ..LocalOptions::default()
    };
    let key = LocalKey::from_file(Path::new(ca), options).expect("CA key");
    let opened = opened_at.elapsed();

    // One certificate before the clock, as the driver does: AWS-LC seeds its entropy
    // pool on its first signature (tens of ms, once per process).
    let first_at = Instant::now();
    runtime
        .block_on(issue(
            &key,
            &parse_subject_key(&lines[0]).expect("subject"),
            &params,
        ))
        .expect("issue");
    let first = first_at.elapsed();

    let start = Instant::now();
    let certs: Vec<String> = runtime.block_on(async {
        let mut certs = Vec::with_capacity(lines.len());
        for line in &lines {
            let subject = parse_subject_key(line).expect("subject");
            let cert = issue(&key, &subject, &params).await.expect("issue");
            certs.push(cert.cert_string("alice"));
        }
        certs
    });
    let issued = start.elapsed();
    std::fs::write(out, certs.join("\n") + "\n").expect("certificates");
    println!(
        "open={:.6} first={:.6} issue={:.6} count={}",
        opened.as_secs_f64(),
        first.as_secs_f64(),
        issued.as_secs_f64(),
        certs.len()
    );
}

/// `name=seconds` fields of a driver's or worker's report line.
fn field(report: &str, name: &str) -> Duration {
    let prefix = format!("{name}=");
    report
        .split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .and_then(|v| v.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or_else(|| panic!("no {name} in {report:?}"))
}

/// Runs `program args…` pinned to the CPU with `taskset`, to success; its wall time and
/// standard output.
fn pinned(cpu: &str, program: &Path, args: &[&std::ffi::OsStr]) -> (Duration, String) {
    let mut command = Command::new("taskset");
    command.args(["-c", cpu]).arg(program).args(args);
    let start = Instant::now();
    let out = command.output().expect("taskset starts");
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (elapsed, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last certificate line of `out` lists, by `ssh-keygen -L`, an ECDSA CA of this
/// curve: the timings are of real certificates.
fn check_last_line(out: &Path, curve_bits: &str) {
    let text = std::fs::read_to_string(out).expect("certificates");
    let last = text.lines().last().expect("a certificate");
    let one = out.with_extension("last-cert.pub");
    std::fs::write(&one, format!("{last}\n")).expect("write");
    check_certificate(&one, curve_bits);
}

fn check_certificate(cert: &Path, curve_bits: &str) {
    let out = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(cert)
        .output()
        .expect("ssh-keygen -L");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains(&format!("ecdsa-sha2-nistp{curve_bits}")) && listing.contains("alice"),
        "{}: {listing}",
        cert.display()
    );
}

/// One curve's medians.
#[derive(Default)]
struct Figures {
    /// In-process issue loops.
    python_issue: Vec<Duration>,
    python_open: Vec<Duration>,
    python_imports: Vec<Duration>,
    python_wall: Vec<Duration>,
    python_first: Vec<Duration>,
    aws_lc_issue: Vec<Duration>,
    aws_lc_first: Vec<Duration>,
    rustcrypto_issue: Vec<Duration>,
    rustcrypto_first: Vec<Duration>,
    kmssh_open: Vec<Duration>,
    kmssh_wall: Vec<Duration>,
    /// Whole processes over files.
    python_files: Vec<Duration>,
    kmssh_sign: Vec<Duration>,
    keygen: Vec<Duration>,
}

fn per_cert_us(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--worker") {
        worker(&args[i + 1..]);
        return;
    }
    let settings = settings(&args);
    let load_before = report::load_average();
    eprintln!("the paramiko-cloud venv (made on first use) …");
    let python = python::python();
    let self_exe = std::env::current_exe().expect("this bench's path");
    let dir = tempfile::tempdir().expect("tempdir");
    let keys_dir = dir.path().join("users");
    std::fs::create_dir(&keys_dir).expect("mkdir");
    eprintln!("generating {} subject keys …", settings.keys);
    let users: Vec<PathBuf> = (0..settings.keys)
        .map(|i| common::keygen(&keys_dir, &format!("user{i}")).with_extension("pub"))
        .collect();
    let list = dir.path().join("subjects.txt");
    let listed: Vec<String> = users.iter().map(|p| p.display().to_string()).collect();
    std::fs::write(&list, listed.join("\n") + "\n").expect("subject list");
    let n = settings.keys;

    let mut in_process = String::new();
    let mut whole = String::new();
    let mut verdicts = Vec::new();
    for curve in &settings.curves {
        let bits = match curve.as_str() {
            "p256" => "256",
            "p384" => "384",
            "p521" => "521",
            other => panic!("unknown curve {other:?}"),
        };
        let ca = dir.path().join(format!("ca_{curve}"));
        let _ = std::fs::remove_file(&ca);
        let made = Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-t", "ecdsa", "-m", "PEM", "-b", bits, "-f"])
            .arg(&ca)
            .status()
            .expect("ssh-keygen");
        assert!(made.success());
        let out = dir.path().join(format!("certs_{curve}.txt"));
        let os = |s: &Path| s.as_os_str().to_owned();
        let mut f = Figures::default();
        for run in 0..settings.runs {
            eprintln!("{curve}: run {} of {} …", run + 1, settings.runs);
            // In process, alternating so drift hits every side alike.
            for engine in ["aws-lc", "rustcrypto"] {
                let (wall, line) = pinned(
                    &settings.cpu,
                    &self_exe,
                    &[
                        "--worker".as_ref(),
                        engine.as_ref(),
                        &os(&ca),
                        &os(&list),
                        &os(&out),
                    ],
                );
                check_last_line(&out, bits);
                if engine == "aws-lc" {
                    f.aws_lc_issue.push(field(&line, "issue"));
                    f.aws_lc_first.push(field(&line, "first"));
                    f.kmssh_open.push(field(&line, "open"));
                    f.kmssh_wall.push(wall);
                } else {
                    f.rustcrypto_issue.push(field(&line, "issue"));
                    f.rustcrypto_first.push(field(&line, "first"));
                }
            }
            let (wall, line) = pinned(
                &settings.cpu,
                &python,
                &[
                    DRIVER.as_ref(),
                    "memory".as_ref(),
                    &os(&ca),
                    &os(&list),
                    &os(&out),
                ],
            );
            check_last_line(&out, bits);
            f.python_issue.push(field(&line, "issue"));
            f.python_first.push(field(&line, "first"));
            f.python_open.push(field(&line, "open"));
            f.python_imports.push(field(&line, "imports"));
            f.python_wall.push(wall);

            // Whole processes over files.
            let last_cert = users[n - 1].with_file_name(format!("user{}-cert.pub", n - 1));
            let mut sign: Vec<std::ffi::OsString> = vec![
                "sign".into(),
                "--ca".into(),
                format!("local:{}", ca.display()).into(),
            ];
            sign.extend(
                [
                    "-n",
                    "alice",
                    "-I",
                    "alice@example.com",
                    "-V",
                    "+8h",
                    "--force",
                ]
                .map(Into::into),
            );
            sign.extend(users.iter().map(|u| u.as_os_str().to_owned()));
            let sign: Vec<&std::ffi::OsStr> = sign.iter().map(AsRef::as_ref).collect();
            let (wall, _) = pinned(&settings.cpu, Path::new(KMSSH), &sign);
            check_certificate(&last_cert, bits);
            f.kmssh_sign.push(wall);
            let _ = std::fs::remove_file(&last_cert);

            let (wall, _) = pinned(
                &settings.cpu,
                &python,
                &[DRIVER.as_ref(), "files".as_ref(), &os(&ca), &os(&list)],
            );
            check_certificate(&last_cert, bits);
            f.python_files.push(wall);
            let _ = std::fs::remove_file(&last_cert);

            let mut keygen: Vec<std::ffi::OsString> = vec!["-q".into(), "-s".into(), os(&ca)];
            keygen.extend(["-n", "alice", "-I", "alice@example.com", "-V", "+8h"].map(Into::into));
            keygen.extend(users.iter().map(|u| u.as_os_str().to_owned()));
            let keygen: Vec<&std::ffi::OsStr> = keygen.iter().map(AsRef::as_ref).collect();
            let (wall, _) = pinned(&settings.cpu, Path::new("ssh-keygen"), &keygen);
            check_certificate(&last_cert, bits);
            f.keygen.push(wall);
        }

        let python_issue = median(f.python_issue);
        let aws_lc = median(f.aws_lc_issue);
        let rustcrypto = median(f.rustcrypto_issue);
        let ratio = python_issue.as_secs_f64() / aws_lc.as_secs_f64();
        let python_wall = median(f.python_wall);
        let kmssh_wall = median(f.kmssh_wall);
        in_process.push_str(&format!(
            "| ECDSA {curve} | {:.1} | {:.1} | **{ratio:.2}×** | {:.1} | {:.2}× | {:.1}× | {} | {} / {} / {} | {} ({} imports, {} key open) | {} ({} key open) | {:.2}× |\n",
            per_cert_us(python_issue, n),
            per_cert_us(aws_lc, n),
            per_cert_us(rustcrypto, n),
            python_issue.as_secs_f64() / rustcrypto.as_secs_f64(),
            target(curve),
            if ratio >= target(curve) { "met" } else { "**missed**" },
            ms(median(f.python_first)),
            ms(median(f.aws_lc_first)),
            ms(median(f.rustcrypto_first)),
            ms(python_wall),
            ms(median(f.python_imports)),
            ms(median(f.python_open)),
            ms(kmssh_wall),
            ms(median(f.kmssh_open)),
            python_wall.as_secs_f64() / kmssh_wall.as_secs_f64(),
        ));
        verdicts.push(format!(
            "{curve} {ratio:.2}× (target {:.1}×)",
            target(curve)
        ));
        let python_files = median(f.python_files);
        let kmssh_sign = median(f.kmssh_sign);
        let keygen = median(f.keygen);
        whole.push_str(&format!(
            "| ECDSA {curve} | {} | {} | {:.2}× | {} | {:.2}× |\n",
            ms(python_files),
            ms(kmssh_sign),
            python_files.as_secs_f64() / kmssh_sign.as_secs_f64(),
            ms(keygen),
            keygen.as_secs_f64() / kmssh_sign.as_secs_f64(),
        ));
    }
    let load_after = report::load_average();

    let python_version = Command::new(&python)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut body = report::heading(
        &load_before,
        &load_after,
        &format!(
            "cargo bench -p kmssh --bench paramiko -- --keys {n} --runs {}",
            settings.runs
        ),
    );
    body.push_str(&format!(
        "{n} certificates for {n} Ed25519 subject keys (principal alice, 8 h) from one ECDSA CA key file (`ssh-keygen -m PEM`), \
         every process pinned with `taskset -c {}`; medians of {} runs, alternating. paramiko-cloud 2.0.0 (paramiko 5.1.0, \
         cryptography 50.0.2, {python_version}) through `paramiko_cloud.dummy.keys.ECDSAKey`, driven by `cli/benches/paramiko_cloud_driver.py`. \
         kmssh in process is the library (`parse_subject_key` + `kmssh_pki::issue` + `cert_string`, local backend, engine fixed) \
         in a child of the bench; kmssh whole-process is `kmssh sign --ca local:CA FILE…` (engine chosen automatically). \
         Ratios: paramiko-cloud's time over kmssh's.\n\n",
        settings.cpu, settings.runs
    ));
    body.push_str(
        "In process (clock after imports, key open and one warm-up certificate; parse, issue and render each certificate line):\n\n\
         | CA | paramiko-cloud µs/cert | kmssh aws-lc µs/cert | ratio | kmssh rustcrypto µs/cert | ratio | target | verdict | first certificate, before the clock (paramiko-cloud / aws-lc / rustcrypto) | paramiko-cloud process | kmssh (library) process | process ratio |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    body.push_str(&in_process);
    body.push_str(&format!(
        "\nWhole process over files ({n} `.pub` read, {n} `-cert.pub` written; interpreter start or binary load included):\n\n\
         | CA | paramiko-cloud driver | `kmssh sign` | ratio | `ssh-keygen -s` ({n} files) | ssh-keygen / kmssh |\n\
         |---|---|---|---|---|---|\n"
    ));
    body.push_str(&whole);
    body.push_str(&format!(
        "\nPer-core ratio (aws-lc engine) against the targets: {}.\n",
        verdicts.join("; ")
    ));
    println!("\n{body}");
    if settings.write {
        report::write_section(SECTION, &body);
    } else {
        eprintln!("short run: BENCHMARKS.md not written (--write to write it)");
    }
}
