//! What every test binary shares: the built module, key sets in temporary folders with
//! their configuration, and child processes bounded in time.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kmssh_core::{Curve, KeySpec, PublicKey};

/// `target/<profile>/libkmssh_pkcs11.so`, built with this test binary: tests run from
/// `target/<profile>/deps/`, and cargo builds the library's cdylib with its rlib in one
/// rustc call before any test links. The newer of `deps/` and its uplifted copy is used.
pub fn module_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps folder");
    let candidates = [
        deps.join("libkmssh_pkcs11.so"),
        deps.parent()
            .expect("profile folder")
            .join("libkmssh_pkcs11.so"),
    ];
    candidates
        .iter()
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| panic!("libkmssh_pkcs11.so not found beside {}", exe.display()))
}

/// A key in a set: its label, URI and public key.
#[derive(Clone, Debug)]
pub struct TestKey {
    /// `CKA_LABEL`.
    pub label: String,
    /// `local:/abs/path`.
    pub uri: String,
    /// The public key, from the key file's secret.
    pub public_key: PublicKey,
}

/// Key files in a temporary folder and the configuration naming them.
pub struct KeySet {
    /// The folder (removed on drop).
    pub dir: tempfile::TempDir,
    /// The keys, in configuration order.
    pub keys: Vec<TestKey>,
    /// The configuration file.
    pub config: PathBuf,
}

/// The kinds of key every full set has, with their labels.
pub const ALL_SPECS: [(&str, KeySpec); 5] = [
    ("p256", KeySpec::Ecdsa(Curve::P256)),
    ("p384", KeySpec::Ecdsa(Curve::P384)),
    ("p521", KeySpec::Ecdsa(Curve::P521)),
    ("rsa2048", KeySpec::Rsa(2048)),
    ("ed25519", KeySpec::Ed25519),
];

impl KeySet {
    /// New key files of each spec, and a configuration starting with `extra` TOML.
    pub fn new(specs: &[(&str, KeySpec)], extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut keys = Vec::new();
        // Top-level keys first: after a `[[key]]` header they would belong to that table.
        let mut toml = format!("{extra}\n");
        for (label, spec) in specs {
            let path = dir.path().join(label);
            let secret =
                kmssh_backend_local::create_key_file(&path, *spec).expect("create key file");
            let uri = format!("local:{}", path.display());
            toml.push_str(&format!(
                "[[key]]\nlabel = \"{label}\"\nuri = \"{uri}\"\n\n"
            ));
            keys.push(TestKey {
                label: (*label).to_owned(),
                uri,
                public_key: secret.public_key(),
            });
        }
        let config = dir.path().join("pkcs11.toml");
        std::fs::write(&config, toml).expect("write config");
        Self { dir, keys, config }
    }

    /// The key labelled `label`.
    pub fn key(&self, label: &str) -> &TestKey {
        self.keys
            .iter()
            .find(|k| k.label == label)
            .unwrap_or_else(|| panic!("no key {label}"))
    }
}

/// A finished child process.
#[derive(Debug)]
pub struct Output {
    /// Its exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `command` with the module's configuration `config`, killing it after `limit`.
pub fn run(mut command: Command, config: &Path, limit: Duration) -> Output {
    command
        .env("KMSSH_PKCS11_CONFIG", config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let description = format!("{command:?}");
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{description}: {e}"));
    let pipe_reader = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = pipe_reader(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = pipe_reader(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            // Killed by its own pid: only the child this test started.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{description}: still running after {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        code: status.code(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// The module's own stderr lines.
pub fn module_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("kmssh-pkcs11: "))
        .collect()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
pub mod raw;
