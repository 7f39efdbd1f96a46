//! `cargo xtask`: the project's automation, in plain Rust so it runs wherever cargo does.
//!
//! ```text
//! cargo xtask demo                                issue a certificate with a local key, show ssh-keygen -L
//! cargo xtask conformance --backend local|aws|gcp|azure|all   the shared suite against a backend
//! cargo xtask ci                                  fmt, clippy, tests, every conformance target
//! cargo xtask bench [local|aws|cli|all]           signing and issuing rates, with ratios
//! ```

use std::process::{Command, ExitCode};

/// Backends whose conformance target exists.
const BACKENDS: &[&str] = &["local", "aws", "gcp", "azure"];
/// Bench targets: name, package. `local` and `aws` measure backends, `cli` the `kmssh`
/// binary against `ssh-keygen -s`.
const BENCHES: &[(&str, &str)] = &[
    ("local", "kmssh-conformance"),
    ("aws", "kmssh-conformance"),
    ("sign", "kmssh"),
];

/// A cloud backend's conformance target: the emulator by default, the real service
/// when its environment variable names keys.
struct Cloud {
    backend: &'static str,
    real_env: &'static str,
    real: &'static str,
    emulated: &'static str,
}

const CLOUDS: &[Cloud] = &[
    Cloud {
        backend: "aws",
        real_env: "KMSSH_AWS_KEY_IDS",
        real: "real AWS KMS: KMSSH_AWS_KEY_IDS and the standard AWS environment",
        emulated: "ministack on 127.0.0.1",
    },
    Cloud {
        backend: "gcp",
        real_env: "KMSSH_GCP_KEY_VERSIONS",
        real: "real Cloud KMS: KMSSH_GCP_KEY_VERSIONS and Application Default Credentials",
        emulated: "in-process Cloud KMS emulator on 127.0.0.1",
    },
    Cloud {
        backend: "azure",
        real_env: "KMSSH_AZURE_KEYS",
        real: "a real vault: KMSSH_AZURE_KEYS and Azure credentials",
        emulated: "in-process Key Vault emulator over HTTPS on 127.0.0.1",
    },
];

/// Crates no build of `kmssh-pki` may pull in: it must stay offline and runtime-free.
const PKI_FORBIDDEN: &[&str] = &["tokio", "hyper", "reqwest", "aws-", "google-", "azure_"];

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn run(step: &str, command: &mut Command) -> Result<(), String> {
    eprintln!("==> {step}: {command:?}");
    let status = command
        .status()
        .map_err(|e| format!("{step}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

fn conformance(backend: &str) -> Result<(), String> {
    if let Some(cloud) = CLOUDS.iter().find(|c| c.backend == backend) {
        prerequisites()?;
        let mode = if std::env::var_os(cloud.real_env).is_some() {
            cloud.real
        } else {
            cloud.emulated
        };
        return run(
            &format!("conformance {backend} ({mode})"),
            cargo().args(["test", "-p", "kmssh-conformance", "--test", backend]),
        );
    }
    match backend {
        "local" => {
            prerequisites()?;
            run(
                "conformance local (AWS-LC and RustCrypto engines)",
                cargo().args([
                    "test",
                    "-p",
                    "kmssh-conformance",
                    "--test",
                    "local",
                    "--test",
                    "registry",
                ]),
            )?;
            run(
                "conformance local (pure-Rust build, no aws-lc feature)",
                cargo().args([
                    "test",
                    "-p",
                    "kmssh-conformance",
                    "--no-default-features",
                    "--features",
                    "local",
                    "--test",
                    "local",
                ]),
            )
        }
        "all" => BACKENDS.iter().try_for_each(|b| conformance(b)),
        other => Err(format!(
            "unknown backend {other:?}: expected one of local, aws, gcp, azure, all"
        )),
    }
}

fn check_pki_tree() -> Result<(), String> {
    eprintln!("==> kmssh-pki dependency tree (normal edges) has no runtime, HTTP or cloud crate");
    let out = cargo()
        .args([
            "tree",
            "-p",
            "kmssh-pki",
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

/// Installs what the OpenSSH-judged tests need when it is missing (Debian packages), and
/// the directory sshd's privilege separation requires.
fn prerequisites() -> Result<(), String> {
    let have = |path: &str| std::path::Path::new(path).exists();
    let on_path = |tool: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let sudo = |args: &[&str]| {
        let mut c = if root {
            Command::new(args[0])
        } else {
            Command::new("sudo")
        };
        c.args(if root { &args[1..] } else { args })
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    if !have("/usr/sbin/sshd") || !on_path("ssh-keygen") || !on_path("openssl") {
        run("apt-get update", &mut sudo(&["apt-get", "update", "-qq"]))?;
        run(
            "install OpenSSH and OpenSSL",
            &mut sudo(&[
                "apt-get",
                "install",
                "-y",
                "-qq",
                "openssh-server",
                "openssh-client",
                "openssl",
            ]),
        )?;
    }
    if !have("/run/sshd") {
        run("create /run/sshd", &mut sudo(&["mkdir", "-p", "/run/sshd"]))?;
    }
    run(
        "install emulators (ministack in a venv under target/)",
        cargo().args([
            "run",
            "--quiet",
            "-p",
            "kmssh-conformance",
            "--example",
            "install_emulators",
        ]),
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
        cargo().args([
            "test",
            "--workspace",
            "--all-features",
            "--exclude",
            "kmssh-conformance",
        ]),
    )?;
    run(
        "backend-local tests without aws-lc",
        cargo().args(["test", "-p", "kmssh-backend-local", "--no-default-features"]),
    )?;
    run(
        "the README's main job",
        Command::new("bash").args(["-euo", "pipefail", "-c", &readme_main_job()?]),
    )?;
    run(
        "documentation builds without warnings",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--all-features"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    conformance("all")
}

fn bench(name: &str, rest: &[&str]) -> Result<(), String> {
    let name = if name == "cli" { "sign" } else { name };
    if name == "all" {
        return BENCHES.iter().try_for_each(|(b, _)| bench(b, rest));
    }
    let (bench, package) = BENCHES
        .iter()
        .find(|(b, _)| *b == name)
        .ok_or_else(|| format!("no bench {name:?}: expected local, aws, cli or all"))?;
    run(
        &format!("bench {name}"),
        cargo()
            .args(["bench", "-p", package, "--bench", bench, "--"])
            .args(rest),
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["demo", rest @ ..] => run(
            "demo",
            cargo().args(["run", "--quiet", "-p", "kmssh-conformance", "--example", "issue_certificate", "--"]).args(rest),
        ),
        ["conformance", "--backend", backend] => conformance(backend),
        ["conformance"] => conformance("all"),
        ["ci"] => ci(),
        ["bench", "--backend", name, rest @ ..] => bench(name, rest),
        ["bench", name, rest @ ..] if !name.starts_with('-') => bench(name, rest),
        ["bench", rest @ ..] => bench("local", rest),
        _ => Err(
            "usage: cargo xtask demo | conformance [--backend local|aws|gcp|azure|all] | ci | bench [local|aws|cli|all]"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
