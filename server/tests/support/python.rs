//! Python gRPC clients for tests: a venv under `target/emulators/` with pinned grpcio,
//! grpcio-tools and paramiko-cloud (made once, reused by later runs), and a runner that
//! bounds every Python process in time and kills it when the bound passes.

#![allow(dead_code)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the venv holds, exactly: grpcio-tools 1.85.1 needs protobuf >= 7.35.1, which is also
/// the runtime paramiko-cloud 2.0.0's shipped stubs were generated for (gencode 7.35.1,
/// grpc 1.83.0). All have wheels for CPython 3.11.
pub const PINS: &[&str] = &[
    "grpcio==1.85.1",
    "grpcio-tools==1.85.1",
    "protobuf==7.35.1",
    "paramiko-cloud==2.0.0",
    "paramiko==5.1.0",
    "cryptography==50.0.2",
];

/// The venv's folder name: the pins, so another set of pins gets another venv.
const VENV_NAME: &str = "grpc-python-grpcio1.85.1-tools1.85.1-protobuf7.35.1-paramiko-cloud2.0.0";

/// Written last by an install that finished, so a half-made venv is made again.
const MARKER: &str = ".kmssh-installed";

/// Longest `python -m venv` + `pip install` may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

static INSTALL: Mutex<()> = Mutex::new(());

/// `target/emulators` of this workspace.
pub fn emulator_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/emulators")
}

/// Makes the venv (once) and returns its `python`. Blocking: call it from
/// `spawn_blocking` in async tests.
pub fn python() -> PathBuf {
    let _once = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let venv = emulator_dir().join(VENV_NAME);
    let python = venv.join("bin/python");
    if venv.join(MARKER).is_file() {
        return python;
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).expect("remove a half-made venv");
    }
    std::fs::create_dir_all(emulator_dir()).expect("create target/emulators");
    let out = run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        INSTALL_TIMEOUT,
    );
    assert!(out.status.success(), "python3 -m venv: {}", describe(&out));
    let out = run(
        Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(PINS),
        INSTALL_TIMEOUT,
    );
    assert!(out.status.success(), "pip install: {}", describe(&out));
    std::fs::write(venv.join(MARKER), PINS.join("\n")).expect("write the marker");
    python
}

/// Runs `command` with its output captured; kills it if it runs longer than `timeout`
/// (the output then says so in `stderr`). Blocking.
pub fn run(command: &mut Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    // Readers on threads, so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break (status, false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break (child.wait().expect("wait for the killed child"), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().expect("stdout reader");
    let mut stderr = err_reader.join().expect("stderr reader");
    if timed_out {
        stderr.extend_from_slice(format!("\n[killed after {timeout:?}]").as_bytes());
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Status, stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
