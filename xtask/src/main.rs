//! `cargo xtask`: the project's automation, in plain Rust so it runs wherever cargo does.
//!
//! ```text
//! cargo xtask demo                                issue a certificate with a local key, show ssh-keygen -L
//! cargo xtask conformance --backend local|aws|gcp|azure|all   the shared suite against a backend
//! cargo xtask ci                                  fmt, clippy, tests, every conformance target
//! cargo xtask bench [local|aws|cli|server|paramiko|latency|all]    signing and issuing rates, with ratios
//!                                                 (server: `kmssh serve` under load, mTLS)
//! cargo xtask fuzz [--seconds N] [--target NAME]  each cargo-fuzz target in fuzz/ for N s
//! ```

use std::process::{Command, ExitCode};

mod fuzz;

/// The backends, from core's one list (a dependency-free file, included so xtask does
/// not build the crate).
#[path = "../../core/src/known_backends.rs"]
#[allow(dead_code, reason = "xtask reads only some fields")]
mod known_backends;
use known_backends::{KNOWN_BACKENDS, KnownBackend};

/// Bench targets: name, package. `local` and `aws` measure backends, `cli` the `kmssh`
/// binary against `ssh-keygen -s`, `server` the release `kmssh serve` under concurrent
/// mTLS load (it lives beside the binary it starts; CI does not run it).
const BENCHES: &[(&str, &str)] = &[
    ("local", "kmssh-conformance"),
    ("aws", "kmssh-conformance"),
    ("sign", "kmssh"),
    ("server", "kmssh"),
    ("paramiko", "kmssh"),
    ("latency", "kmssh"),
];

/// Crates no build of `kmssh-pki` may pull in: it must stay offline and runtime-free.
const PKI_FORBIDDEN: &[&str] = &[
    "tokio",
    "hyper",
    "reqwest",
    "aws-",
    "google-",
    "azure_",
    "kmssh-backend-",
];

/// `cargo test` over the whole workspace with every feature, as the unit tests run: the
/// same packages selected means the same features resolved for every dependency, so the
/// conformance suites (named with `--test`; they are `test = false`) and the examples
/// reuse what the unit tests built instead of rebuilding half the tree.
const WORKSPACE_TEST: &[&str] = &["test", "--workspace", "--all-features"];

/// `cargo run` of a conformance example with the workspace's feature set (see
/// [`WORKSPACE_TEST`]): without `-p`, cargo selects the default members, which resolve
/// every dependency as `--workspace` does.
fn conformance_example(name: &str) -> Command {
    let mut command = cargo();
    command.args(["run", "--quiet", "--all-features", "--example", name, "--"]);
    command
}

/// The repository root (xtask's parent), whatever the current directory.
fn root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or_else(
        || std::path::PathBuf::from("."),
        std::path::Path::to_path_buf,
    )
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn run(step: &str, command: &mut Command) -> Result<(), String> {
    eprintln!("==> {step}: {command:?}");
    let started = std::time::Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("{step}: cannot start: {e}"))?;
    // Each step's wall time, so the CI budget can be watched step by step.
    eprintln!("<== {step}: {:.0} s", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

fn backend_names() -> String {
    let names: Vec<&str> = KNOWN_BACKENDS.iter().map(|b| b.name).collect();
    format!("{}|all", names.join("|"))
}

fn conformance(backend: &str) -> Result<(), String> {
    if backend == "all" {
        return KNOWN_BACKENDS.iter().try_for_each(|b| conformance(b.name));
    }
    let known: &KnownBackend = KNOWN_BACKENDS
        .iter()
        .find(|b| b.name == backend)
        .ok_or_else(|| format!("unknown backend {backend:?}: expected {}", backend_names()))?;
    prerequisites()?;
    let mode = match known.real_keys_env {
        Some(env) if std::env::var_os(env).is_some() => {
            format!(
                "real {}: keys from {env} and the provider's environment",
                known.provider
            )
        }
        _ => known.emulated_by.to_owned(),
    };
    let mut targets = vec!["--test", backend];
    if backend == "local" {
        // The registry and hostile-input suites need only the local backend; they run
        // with every feature here.
        targets.extend(["--test", "registry", "--test", "hostile_inputs"]);
    }
    run(
        &format!("conformance {backend} ({mode})"),
        cargo().args(WORKSPACE_TEST).args(targets),
    )?;
    if backend == "local" {
        // The pure-Rust build: the local backend's own tests and the local suites in one
        // invocation, so the crates built without AWS-LC are built once.
        run(
            "local backend and conformance local, pure-Rust build (no aws-lc feature)",
            cargo().args([
                "test",
                "-p",
                "kmssh-backend-local",
                "-p",
                "kmssh-conformance",
                "--no-default-features",
                "--features",
                "kmssh-conformance/local",
                "--lib",
                "--test",
                "keys",
                "--test",
                "formats",
                "--test",
                "local",
                "--test",
                "registry",
            ]),
        )?;
    }
    Ok(())
}

fn check_pki_tree() -> Result<(), String> {
    eprintln!(
        "==> kmssh-pki dependency tree (normal edges, every feature) has no runtime, HTTP, cloud or backend crate"
    );
    let out = cargo()
        .args([
            "tree",
            "-p",
            "kmssh-pki",
            "--all-features",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .map_err(|e| format!("cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    let bad: Vec<&str> = tree
        .lines()
        .filter(|line| PKI_FORBIDDEN.iter().any(|f| line.starts_with(f)))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("kmssh-pki depends on forbidden crates: {bad:?}"))
    }
}

/// A tool the suite runs, and the Debian package that brings it.
struct Tool {
    /// What is checked: a command on `PATH`, or an absolute path.
    check: &'static str,
    /// The Debian package.
    package: &'static str,
}

/// What the suite needs beyond cargo: OpenSSH judges every certificate, OpenSSL message
/// signatures and X.509, a C compiler builds AWS-LC, Python's venv holds the AWS KMS
/// emulator and the gRPC Python clients, PostgreSQL holds a shared ledger.
const TOOLS: &[Tool] = &[
    Tool {
        check: "/usr/sbin/sshd",
        package: "openssh-server",
    },
    Tool {
        check: "ssh-keygen",
        package: "openssh-client",
    },
    Tool {
        check: "ssh",
        package: "openssh-client",
    },
    Tool {
        check: "openssl",
        package: "openssl",
    },
    Tool {
        check: "cc",
        package: "gcc",
    },
    Tool {
        check: "python3",
        package: "python3",
    },
    // opensc's pkcs11-tool: a PKCS#11 client of our module besides ssh.
    Tool {
        check: "pkcs11-tool",
        package: "opensc",
    },
    Tool {
        check: "python3 -m venv --help",
        package: "python3-venv",
    },
    // The signing service's ledger tests start a PostgreSQL of their own (as `postgres`).
    Tool {
        check: "ls /usr/lib/postgresql/*/bin/initdb",
        package: "postgresql",
    },
    Tool {
        check: "runuser --help",
        package: "util-linux",
    },
];

fn present(check: &str) -> bool {
    if check.starts_with('/') {
        return std::path::Path::new(check).exists();
    }
    let script = if check.contains(' ') {
        format!("{check} >/dev/null 2>&1")
    } else {
        format!("command -v {check} >/dev/null 2>&1")
    };
    Command::new("sh")
        .args(["-c", &script])
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a command as root: directly when we are root, through `sudo -n` otherwise;
/// `None` when neither can work.
fn as_root(args: &[&str]) -> Option<Command> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let mut command = if root {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    } else if present("sudo") {
        let mut c = Command::new("sudo");
        c.arg("-n").args(args);
        c
    } else {
        return None;
    };
    command.env("DEBIAN_FRONTEND", "noninteractive");
    Some(command)
}

/// Installs what is missing (Debian packages with apt, as root or with sudo; rustfmt
/// and clippy with rustup; the emulator venv), or stops at once naming what is missing
/// and the command that installs it.
fn prerequisites() -> Result<(), String> {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    install_prerequisites()?;
    let _ = DONE.set(());
    Ok(())
}

fn install_prerequisites() -> Result<(), String> {
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .filter(|t| !present(t.check))
        .map(|t| t.package)
        .collect();
    missing.dedup();
    if !missing.is_empty() {
        let install = format!("apt-get install -y {}", missing.join(" "));
        let apt = present("apt-get");
        match (apt, as_root(&["apt-get", "update", "-qq"])) {
            (true, Some(mut update)) => {
                run("apt-get update", &mut update)?;
                let mut args = vec!["apt-get", "install", "-y", "-qq"];
                args.extend(&missing);
                let mut command = as_root(&args).ok_or("cannot run apt-get as root")?;
                run(&format!("install {}", missing.join(", ")), &mut command)
                    .map_err(|e| format!("{e}: install them with `sudo {install}`"))?;
            }
            _ => {
                return Err(format!(
                    "missing {}: install them (on Debian/Ubuntu: `sudo {install}`) and run again",
                    missing.join(", ")
                ));
            }
        }
    }
    for component in ["rustfmt", "clippy"] {
        let tool = if component == "rustfmt" {
            "cargo fmt --version"
        } else {
            "cargo clippy --version"
        };
        if !present(tool) {
            run(
                &format!("add {component}"),
                Command::new("rustup").args(["component", "add", component]),
            )?;
        }
    }
    if !std::path::Path::new("/run/sshd").exists() {
        let mut command = as_root(&["mkdir", "-p", "/run/sshd"])
            .ok_or("sshd needs /run/sshd: `sudo mkdir -p /run/sshd`")?;
        run("create /run/sshd", &mut command)?;
    }
    run(
        "install emulators (ministack in a venv under target/)",
        &mut conformance_example("install_emulators"),
    )
}

/// The README's first `sh` block: the main job on a fresh machine.
fn readme_main_job() -> Result<String, String> {
    let readme = std::fs::read_to_string("README.md").map_err(|e| format!("README.md: {e}"))?;
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .ok_or("README.md has no ```sh block")?;
    Ok(block.to_owned())
}

fn ci() -> Result<(), String> {
    prerequisites()?;
    run("format", cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(
        "clippy (all features)",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run(
        "clippy (backend-local without aws-lc)",
        cargo().args([
            "clippy",
            "-p",
            "kmssh-backend-local",
            "--all-targets",
            "--no-default-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    check_pki_tree()?;
    run(
        "unit and integration tests",
        cargo()
            .args(WORKSPACE_TEST)
            // CI has PostgreSQL (a prerequisite): its ledger tests must run, not skip.
            .env("KMSSH_REQUIRE_POSTGRES", "1"),
    )?;
    run(
        "the README's main job",
        Command::new("sh").args(["-eu", "-c", &readme_main_job()?]),
    )?;
    run(
        "documentation builds without warnings",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--all-features"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    // A smoke run of every fuzz target: the seeds and a few seconds of mutations.
    fuzz::fuzz(fuzz::CI_SECONDS, None)?;
    conformance("all")?;
    // A short fault campaign per emulator: every certificate verified, none from a bad
    // answer.
    chaos("all", &["--certificates", CHAOS_CI_CERTIFICATES])
}

/// Certificates per backend in CI's fault campaign (the full campaign is 2,000).
const CHAOS_CI_CERTIFICATES: &str = "400";

/// `chaos --backend aws|gcp|azure|all [campaign flags]`: the fault campaign example.
fn chaos(backend: &str, rest: &[&str]) -> Result<(), String> {
    let backends: &[&str] = match backend {
        "all" => &["aws", "gcp", "azure"],
        "aws" => &["aws"],
        "gcp" => &["gcp"],
        "azure" => &["azure"],
        other => {
            return Err(format!(
                "chaos needs an emulated backend: aws, gcp, azure or all, not {other:?}"
            ));
        }
    };
    for name in backends {
        run(
            &format!("chaos {name}"),
            conformance_example("chaos")
                .args(["--backend", name])
                .args(rest),
        )?;
    }
    Ok(())
}

/// `fuzz [--seconds N] [--target NAME]`, in any order.
fn fuzz_command(args: &[&str]) -> Result<(), String> {
    let usage = || {
        format!(
            "usage: cargo xtask fuzz [--seconds N] [--target {}]",
            fuzz::TARGETS.join("|")
        )
    };
    let (mut seconds, mut target) = (fuzz::DEFAULT_SECONDS, None);
    let mut rest = args.iter();
    while let Some(&flag) = rest.next() {
        match (flag, rest.next()) {
            ("--seconds", Some(n)) => {
                seconds =
                    n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        format!("--seconds {n:?}: a whole number of seconds above 0")
                    })?;
            }
            ("--target", Some(name)) => target = Some(*name),
            _ => return Err(usage()),
        }
    }
    fuzz::fuzz(seconds, target)
}

fn bench(name: &str, rest: &[&str]) -> Result<(), String> {
    let name = if name == "cli" { "sign" } else { name };
    if name == "all" {
        return BENCHES.iter().try_for_each(|(b, _)| bench(b, rest));
    }
    let (bench, package) = BENCHES.iter().find(|(b, _)| *b == name).ok_or_else(|| {
        format!("no bench {name:?}: expected local, aws, cli, server, paramiko, latency or all")
    })?;
    run(
        &format!("bench {name}"),
        cargo()
            .args(["bench", "-p", package, "--bench", bench, "--"])
            .args(rest),
    )
}

fn main() -> ExitCode {
    // Every step names paths and targets from the workspace root (`cargo run --example`
    // without `-p` would otherwise look in the package of whatever folder this ran from).
    if let Err(e) = std::env::set_current_dir(root()) {
        eprintln!("xtask: cannot enter the workspace folder: {e}");
        return ExitCode::FAILURE;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["demo", rest @ ..] => run("demo", conformance_example("issue_certificate").args(rest)),
        ["conformance", "--backend", backend] => conformance(backend),
        ["conformance"] => conformance("all"),
        ["ci"] => ci(),
        ["bench", "--backend", name, rest @ ..] => bench(name, rest),
        ["bench", name, rest @ ..] if !name.starts_with('-') => bench(name, rest),
        ["bench", rest @ ..] => bench("local", rest),
        ["fuzz", rest @ ..] => fuzz_command(rest),
        ["chaos", "--backend", backend, rest @ ..] => chaos(backend, rest),
        ["chaos", rest @ ..] => chaos("all", rest),
        _ => Err(format!(
            "usage: cargo xtask demo | conformance [--backend {}] | ci | bench [local|aws|cli|server|paramiko|latency|all] | fuzz [--seconds N] [--target NAME] | chaos [--backend aws|gcp|azure|all] [--certificates N] [--fault-every N] [--seed N]",
            backend_names()
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
