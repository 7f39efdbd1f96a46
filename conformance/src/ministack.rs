//! ministack (PyPI), the AWS KMS emulator: installed into a venv under `target/`, started
//! on 127.0.0.1 and a free port, and stopped by its PID when its handle drops or, for the
//! shared instance, when the test process exits (a small shell guard kills it once the
//! test process's end of a pipe closes, however the process ends).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The ministack release the suite is pinned to.
pub const MINISTACK_VERSION: &str = "1.5.33";
/// How long ministack may take to answer its health check.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running ministack, KMS only.
pub struct Ministack {
    address: SocketAddr,
    guard: Mutex<Child>,
    log: PathBuf,
}

/// `target/emulators` of this workspace.
#[must_use]
pub fn emulator_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/emulators")
}

/// Makes the venv and installs ministack into it if that has not been done; returns the
/// `ministack` executable.
///
/// # Panics
/// If python3 or pip fail.
#[must_use]
pub fn install() -> PathBuf {
    let venv = emulator_dir().join(format!("ministack-{MINISTACK_VERSION}"));
    let bin = venv.join("bin/ministack");
    if bin.exists() {
        return bin;
    }
    std::fs::create_dir_all(emulator_dir()).expect("create target/emulators");
    let run = |command: &mut Command| {
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        assert!(
            out.status.success(),
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(format!("ministack=={MINISTACK_VERSION}"))
        .arg("cryptography"));
    bin
}

fn healthy(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(300)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /_ministack/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}

impl Ministack {
    /// Installs (if needed) and starts ministack; waits until it is healthy.
    ///
    /// # Panics
    /// If it does not become healthy within a minute.
    #[must_use]
    pub fn start() -> Self {
        let bin = install();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log = emulator_dir().join(format!("ministack-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        // The guard shell starts ministack, waits for its stdin to close (our handle
        // dropping, or this process ending), then stops ministack by its PID.
        let guard = Command::new("sh")
            .arg("-c")
            .arg(r#""$1" & pid=$!; read -r _ignored; kill -TERM "$pid" 2>/dev/null; sleep 2; kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null"#)
            .arg("ministack-guard")
            .arg(&bin)
            .env("SERVICES", "kms")
            .env("IOT_MTLS_ENABLED", "0")
            .env("BIND_HOST", "127.0.0.1")
            .env("GATEWAY_PORT", port.to_string())
            .stdin(Stdio::piped())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("start ministack");
        let ministack = Self {
            address,
            guard: Mutex::new(guard),
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !healthy(address) {
            assert!(
                Instant::now() < deadline,
                "ministack not healthy after {START_TIMEOUT:?}:\n{}",
                std::fs::read_to_string(&ministack.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        ministack
    }

    /// One ministack for the whole test process.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<Ministack> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// Where it listens.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Ministack {
    fn drop(&mut self) {
        let mut guard = self
            .guard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        drop(guard.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = guard.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = guard.kill();
        let _ = guard.wait();
    }
}
