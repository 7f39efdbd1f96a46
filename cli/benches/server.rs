//! A load run of the signing service as users run it: the release `kmssh serve` binary on
//! 127.0.0.1 with mTLS (server and client CAs made with rcgen at start), a local P-256 CA
//! key, an SQLite ledger and a JSON-lines audit log in a temporary folder, and rate limits
//! far above the load. C clients (default 64), each a task with its own connection (its own
//! TLS session and HTTP/2 channel), issue N certificates (default 20,000) between them
//! over loopback. Each client checks the CA's signature on its first certificate only:
//! verifying every one would put a P-256 verification per request on the same two cores
//! the service runs on.
//!
//! Reported: certificates/s, p50/p99/max latency, errors by gRPC code, the service's peak
//! resident set (`VmHWM`) and CPU time per certificate; afterwards the ledger must hold N
//! certificates and the audit log N `issued` lines.
//!
//! A second scenario puts the CA key in the in-process Cloud KMS emulator
//! (`kmssh-conformance`) with the shared fault layer delaying every `asymmetricSign` by
//! 20 ms: the ratio to one client waiting 20 ms per certificate (50/s) shows how well
//! the service overlaps KMS round trips.
//!
//! When the first scenario misses a target (or with `--profile`), it runs again with one
//! Tokio worker thread, with the ledger and audit log on tmpfs (`/dev/shm`), and with the
//! ledger there and no audit log, to show where the time goes. (An in-memory SQLite is no
//! stand-in: its shared cache locks tables, and the ledger's reserve/write connections get
//! `SQLITE_LOCKED` under this load.)
//!
//! Run with `cargo xtask bench server`. Options: `--requests N` (default 20000),
//! `--clients C` (default 64), `--latency-ms MS` (default 20), `--no-latency`,
//! `--profile` / `--no-profile`, `--write` / `--no-write` (BENCHMARKS.md is written by
//! default only for runs of at least 20,000 requests), `--perf` (sample the service of
//! the two scenarios with `perf record` and print their hottest components and symbols;
//! perf's own cost is then in those rows' figures).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kmssh_pki::CertificateType;
use kmssh_pki::csr::CertificateSigningRequest;
use kmssh_pki::ssh_key::PublicKey;
use kmssh_server::{Client, ClientError, ClientOptions};

const KMSSH: &str = env!("CARGO_BIN_EXE_kmssh");
const SUBJECT: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR";
const SECTION: &str = "## Signing service (`cargo xtask bench server`)";

// Targets the figures are compared with (reported, not asserted).
const TARGET_RATE: f64 = 10_000.0;
const TARGET_P99_MS: f64 = 10.0;
const TARGET_RSS_MIB: f64 = 200.0;

struct Settings {
    requests: usize,
    clients: usize,
    latency_ms: u64,
    latency: bool,
    profile: Option<bool>,
    write: bool,
    perf: bool,
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
    let flag = |name: &str| args.iter().any(|a| a == name);
    let requests = number("--requests", 20_000).max(1);
    Settings {
        requests,
        clients: number("--clients", 64).max(1),
        latency_ms: number("--latency-ms", 20) as u64,
        latency: !flag("--no-latency"),
        profile: if flag("--profile") {
            Some(true)
        } else if flag("--no-profile") {
            Some(false)
        } else {
            None
        },
        write: !flag("--no-write") && (flag("--write") || requests >= 20_000),
        perf: flag("--perf"),
    }
}

// ------------------------------------------------------------------ certificates (rcgen)

/// PEM files and identities for mTLS: a server CA and the server's certificate for
/// 127.0.0.1, a client CA and one client certificate (`CN=bench,O=kmssh bench`).
struct Tls {
    server_ca: String,
    client_cert: String,
    client_key: String,
}

fn make_tls(dir: &Path) -> Tls {
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect(name);
    // Server side.
    let server_ca_key = rcgen::KeyPair::generate().expect("server CA key");
    let mut server_ca_params = rcgen::CertificateParams::new(Vec::new()).expect("parameters");
    server_ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    server_ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kmssh bench server CA");
    let server_ca_pem = server_ca_params
        .self_signed(&server_ca_key)
        .expect("server CA certificate")
        .pem();
    let server_issuer = rcgen::Issuer::new(server_ca_params, server_ca_key);
    let mut server_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("server parameters");
    server_params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(
            std::net::Ipv4Addr::LOCALHOST.into(),
        ));
    server_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let server_key = rcgen::KeyPair::generate().expect("server key");
    let server_cert = server_params
        .signed_by(&server_key, &server_issuer)
        .expect("server certificate");
    write("server.pem", &server_cert.pem());
    write("server-key.pem", &server_key.serialize_pem());

    // Client side.
    let client_ca_key = rcgen::KeyPair::generate().expect("client CA key");
    let mut client_ca_params = rcgen::CertificateParams::new(Vec::new()).expect("parameters");
    client_ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    client_ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kmssh bench client CA");
    let client_ca_pem = client_ca_params
        .self_signed(&client_ca_key)
        .expect("client CA certificate")
        .pem();
    write("clients-ca.pem", &client_ca_pem);
    let client_issuer = rcgen::Issuer::new(client_ca_params, client_ca_key);
    let mut client_params = rcgen::CertificateParams::new(Vec::new()).expect("parameters");
    client_params.distinguished_name = rcgen::DistinguishedName::new();
    // Least specific first, as X.509 stores it: RFC 4514 reads "CN=bench,O=kmssh bench".
    client_params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "kmssh bench");
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench");
    let client_key = rcgen::KeyPair::generate().expect("client key");
    let client_cert = client_params
        .signed_by(&client_key, &client_issuer)
        .expect("client certificate");
    Tls {
        server_ca: server_ca_pem,
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

// ------------------------------------------------------------------ the service process

/// How one run's service is configured.
#[derive(Clone)]
struct Variant {
    label: String,
    /// The `[keys]` value of `user-ca`.
    key: String,
    /// Ledger and audit log on tmpfs (`/dev/shm`) rather than in the run's folder on disk.
    tmpfs: bool,
    audit: bool,
    /// `TOKIO_WORKER_THREADS` for the service (`None`: Tokio's default, one per core).
    workers: Option<usize>,
    env: Vec<(String, String)>,
    /// Sample the service with `perf` during the run (`--perf`).
    perf: bool,
}

impl Variant {
    fn local(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            key: String::new(),
            tmpfs: false,
            audit: true,
            workers: None,
            env: Vec::new(),
            perf: false,
        }
    }
}

fn config(dir: &Path, data: &Path, variant: &Variant) -> String {
    let d = dir.display();
    let data = data.display();
    let key = if variant.key.is_empty() {
        format!(r#"{{ uri = "local:{d}/user_ca", create = "ecdsa" }}"#)
    } else {
        format!("{:?}", variant.key)
    };
    let ledger = format!("sqlite:{data}/ledger.db");
    let audit = if variant.audit {
        format!("[audit]\npath = \"{data}/audit.jsonl\"\n")
    } else {
        String::new()
    };
    format!(
        r#"listen = "127.0.0.1:0"

[tls]
certificate = "server.pem"
key = "server-key.pem"
client_ca = "clients-ca.pem"

[keys]
user-ca = {key}

[ledger]
url = "{ledger}"

{audit}
[[caller]]
name = "bench"
policy = "bench"
mtls = {{ subject = "CN=bench,O=kmssh bench" }}

[policy.bench]
keys = ["user-ca"]
certificate_types = ["user"]
principals = ["bench-*"]
max_validity = "1h"

[limits]
caller_requests_per_second = 10000000
caller_burst = 10000000
max_concurrent_requests = 4096
request_timeout = "30s"
shutdown_grace = "30s"
"#
    )
}

/// A `kmssh serve` child; killed on drop if still running.
struct Service {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Service {
    fn start(dir: &Path, data: &Path, variant: &Variant) -> Self {
        let config_path = dir.join("kmssh.toml");
        std::fs::write(&config_path, config(dir, data, variant)).expect("write kmssh.toml");
        let log = dir.join("serve.log");
        let stderr = std::fs::File::create(&log).expect("serve.log");
        let mut command = Command::new(KMSSH);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some(workers) = variant.workers {
            command.env("TOKIO_WORKER_THREADS", workers.to_string());
        }
        for (name, value) in &variant.env {
            command.env(name, value);
        }
        let child = command.spawn().expect("start kmssh serve");
        let mut service = Self {
            child,
            address: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&service.log).unwrap_or_default();
            if let Some(line) = text
                .lines()
                .find_map(|l| l.strip_prefix("kmssh serve: listening on "))
            {
                service.address = line.trim().to_owned();
                return service;
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!("kmssh serve exited ({status}) before listening:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "kmssh serve did not listen within 60 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `VmHWM` and `VmRSS`, KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// User + system CPU time so far.
    fn cpu(&self) -> Duration {
        cpu_of(&format!("/proc/{}/stat", self.pid()))
    }

    /// SIGTERM, then waits (at most 60 s) for the ledger flush and exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("kmssh serve did not stop within 60 s of SIGTERM: killed");
        let _ = self.child.kill();
    }
}

/// `perf record` (software clock, flat) attached to the service for one run.
struct Perf {
    child: Child,
    data: PathBuf,
}

impl Perf {
    fn start(dir: &Path, pid: u32) -> Option<Self> {
        let data = dir.join("perf.data");
        let child = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "999", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| eprintln!("--perf: cannot start perf: {e}"))
            .ok()?;
        // perf needs a moment to attach before the load starts.
        std::thread::sleep(Duration::from_millis(500));
        Some(Self { child, data })
    }

    /// Stops the recording (SIGINT, as perf expects) and prints the hottest symbols.
    fn report(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let out = Command::new("perf")
            .args(["report", "--no-children", "--stdio", "--percent-limit", "0"])
            .args(["--sort", "dso,symbol", "-F", "overhead,dso,symbol", "-i"])
            .arg(&self.data)
            .stderr(Stdio::null())
            .output();
        let text = match out {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
            Ok(out) => return eprintln!("perf report failed ({})", out.status),
            Err(e) => return eprintln!("perf report: {e}"),
        };
        // Lines: "  12.34%  dso  [.] symbol".
        let mut rows: Vec<(f64, String, String)> = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut parts = line.split_whitespace();
            let (Some(share), Some(dso)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(share) = share.trim_end_matches('%').parse::<f64>() else {
                continue;
            };
            let symbol = parts.skip(1).collect::<Vec<_>>().join(" ");
            let symbol = symbol.trim_end_matches(" - -").to_owned();
            rows.push((share, dso.to_owned(), symbol));
        }
        rows.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut components: BTreeMap<String, f64> = BTreeMap::new();
        for (share, dso, symbol) in &rows {
            *components.entry(component(dso, symbol)).or_default() += share;
        }
        let mut components: Vec<(String, f64)> = components.into_iter().collect();
        components.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!("perf: the service's CPU samples by component (crate, C library, kernel):");
        for (name, share) in components.iter().filter(|(_, s)| *s >= 0.5) {
            println!("  {share:6.2}%  {name}");
        }
        println!("perf: hottest symbols:");
        for (share, dso, symbol) in rows.iter().take(30) {
            println!("  {share:6.2}%  {dso:<18} {symbol}");
        }
    }
}

/// A symbol's component: its crate for Rust symbols, SQLite, AWS-LC and the other C code
/// linked in, libc, the kernel.
fn component(dso: &str, symbol: &str) -> String {
    if dso.contains("kernel") {
        return "kernel (syscalls, scheduling, TCP)".into();
    }
    if dso.starts_with("libc") || dso.starts_with("ld-linux") {
        return "libc (malloc, memcpy…)".into();
    }
    if symbol.starts_with("sqlite3") || symbol.starts_with("sqlite") {
        return "SQLite (C)".into();
    }
    let trimmed = symbol.trim_start_matches(['<', '&', '*', ' ']);
    let trimmed = trimmed.strip_prefix("mut ").unwrap_or(trimmed);
    let trimmed = trimmed.strip_prefix("dyn ").unwrap_or(trimmed);
    match trimmed.split_once("::") {
        Some((krate, _)) if !krate.contains(' ') => krate.to_owned(),
        _ => format!("{dso}: C and unmangled (AWS-LC's crypto…)"),
    }
}

/// Clock ticks per second, for `/proc/*/stat` times.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

fn cpu_of(stat_path: &str) -> Duration {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    let ticks: u64 = fields.iter().sum();
    Duration::from_millis(ticks * 1000 / clock_ticks())
}

// ------------------------------------------------------------------ the load

struct Outcome {
    elapsed: Duration,
    /// Latencies of successful requests, microseconds, sorted.
    latencies: Vec<u64>,
    errors: BTreeMap<String, (usize, String)>,
    service_cpu: Duration,
    client_cpu: Duration,
    peak_rss_kib: u64,
    rss_kib: u64,
    ledger_count: Option<u64>,
    audit_issued: Option<usize>,
}

impl Outcome {
    fn ok(&self) -> usize {
        self.latencies.len()
    }
    fn rate(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile_ms(&self, p: usize) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = (self.latencies.len() * p / 100).min(self.latencies.len() - 1);
        self.latencies[i] as f64 / 1000.0
    }
    fn max_ms(&self) -> f64 {
        self.latencies
            .last()
            .map_or(f64::NAN, |v| *v as f64 / 1000.0)
    }
    fn error_count(&self) -> usize {
        self.errors.values().map(|(n, _)| n).sum()
    }
    fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            "0".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(code, (n, _))| format!("{code}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
    fn service_cpu_per_cert_us(&self) -> f64 {
        self.service_cpu.as_secs_f64() * 1e6 / self.ok().max(1) as f64
    }
    fn client_cpu_per_cert_us(&self) -> f64 {
        self.client_cpu.as_secs_f64() * 1e6 / self.ok().max(1) as f64
    }
}

fn request() -> CertificateSigningRequest {
    CertificateSigningRequest {
        cert_type: CertificateType::User,
        critical_options: Vec::new(),
        extensions: Vec::new(),
        key_id: "bench".into(),
        serial: 0,
        principals: vec!["bench-load".into()],
        // Unrequested: the policy starts it a minute back and clamps it to 1 h.
        valid_after: 0,
        valid_before: 0,
        public_key: PublicKey::from_openssh(SUBJECT)
            .expect("subject key")
            .key_data()
            .clone(),
    }
}

fn error_code(error: &ClientError) -> String {
    match error {
        ClientError::Refused { code, .. } => format!("{code:?}"),
        ClientError::Connect { .. } => "connect".into(),
        ClientError::BadAnswer(_) => "bad answer".into(),
        ClientError::Options(_) => "options".into(),
    }
}

async fn load(
    runtime_address: &str,
    tls: &Tls,
    clients: usize,
    requests: usize,
) -> (Duration, Vec<u64>, BTreeMap<String, (usize, String)>) {
    let options = ClientOptions {
        server: format!("https://{runtime_address}"),
        ca_certificate: Some(tls.server_ca.as_bytes().to_vec()),
        client_identity: Some((
            tls.client_cert.as_bytes().to_vec(),
            tls.client_key.as_bytes().to_vec(),
        )),
        timeout: Some(Duration::from_secs(60)),
        ..ClientOptions::default()
    };
    // Connect every client (TLS handshake included) and fetch the CA key before the clock
    // starts: the figure is steady-state issuing, not connection set-up.
    let mut connected = Vec::with_capacity(clients);
    for _ in 0..clients {
        let options = options.clone();
        connected.push(tokio::spawn(async move {
            let mut client = Client::connect(options).await.expect("connect over mTLS");
            let ca = client
                .certificate_authority("user-ca")
                .await
                .expect("the CA key");
            (client, ca)
        }));
    }
    let mut ready = Vec::with_capacity(clients);
    for task in connected {
        ready.push(task.await.expect("connect task"));
    }
    let next = Arc::new(AtomicUsize::new(0));
    let csr = Arc::new(request());
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for (mut client, ca) in ready {
        let next = next.clone();
        let csr = csr.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(requests / clients + 1);
            let mut errors: BTreeMap<String, (usize, String)> = BTreeMap::new();
            let mut first = true;
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let verify = if first { Some(&ca) } else { None };
                first = false;
                let sent = Instant::now();
                match client.sign("user-ca", &csr, verify).await {
                    Ok(_) => latencies
                        .push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX)),
                    Err(e) => {
                        let entry = errors.entry(error_code(&e)).or_insert((0, e.to_string()));
                        entry.0 += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    let mut errors: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for task in tasks {
        let (l, e) = task.await.expect("client task");
        latencies.extend(l);
        for (code, (n, message)) in e {
            errors.entry(code).or_insert((0, message)).0 += n;
        }
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    (elapsed, latencies, errors)
}

fn run(
    runtime: &tokio::runtime::Runtime,
    settings: &Settings,
    tls_dir: &Path,
    tls: &Tls,
    variant: &Variant,
) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in ["server.pem", "server-key.pem", "clients-ca.pem"] {
        std::fs::copy(tls_dir.join(file), dir.path().join(file)).expect("copy TLS files");
    }
    eprintln!("==> {}: starting kmssh serve", variant.label);
    // tmpfs variants: the ledger and audit log in /dev/shm (the run's folder otherwise).
    let shm = if variant.tmpfs {
        Some(tempfile::tempdir_in("/dev/shm").expect("a folder in /dev/shm"))
    } else {
        None
    };
    let data = shm.as_ref().map_or(dir.path(), tempfile::TempDir::path);
    let service = Service::start(dir.path(), data, variant);
    let perf = (settings.perf && variant.perf)
        .then(|| Perf::start(dir.path(), service.pid()))
        .flatten();
    let cpu_before = service.cpu();
    let client_before = cpu_of("/proc/self/stat");
    let (elapsed, latencies, errors) = runtime.block_on(load(
        &service.address,
        tls,
        settings.clients,
        settings.requests,
    ));
    let service_cpu = service.cpu().saturating_sub(cpu_before);
    let client_cpu = cpu_of("/proc/self/stat").saturating_sub(client_before);
    let (peak_rss_kib, rss_kib) = service.memory_kib();
    if let Some(perf) = perf {
        perf.report();
    }
    service.stop();
    for (code, (n, message)) in &errors {
        eprintln!("    {n} × {code}: {message}");
    }
    let ledger_count = {
        let url = format!("sqlite:{}/ledger.db", data.display());
        runtime.block_on(async {
            let ledger = kmssh_server::ledger::Ledger::open(&url)
                .await
                .expect("reopen the ledger");
            let count = ledger.count_issued().await.expect("count the ledger");
            ledger.close().await;
            Some(count)
        })
    };
    let audit_issued = variant.audit.then(|| {
        std::fs::read_to_string(data.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(r#""event":"issued""#))
            .count()
    });
    let outcome = Outcome {
        elapsed,
        latencies,
        errors,
        service_cpu,
        client_cpu,
        peak_rss_kib,
        rss_kib,
        ledger_count,
        audit_issued,
    };
    eprintln!(
        "    {:.0} certificates/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}, peak RSS {:.1} MiB (at the end {:.1} MiB)",
        outcome.rate(),
        outcome.percentile_ms(50),
        outcome.percentile_ms(99),
        outcome.max_ms(),
        outcome.errors_text(),
        outcome.peak_rss_kib as f64 / 1024.0,
        outcome.rss_kib as f64 / 1024.0
    );
    outcome
}

// ------------------------------------------------------------------ the report

fn machine() -> (usize, String, String) {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    (cores, model, load_average())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn check(outcome: &Outcome, requests: usize) -> String {
    let ledger = outcome.ledger_count.map_or("–".to_owned(), |n| {
        format!("{n}{}", if n == requests as u64 { " ✓" } else { " ✗" })
    });
    let audit = outcome.audit_issued.map_or("–".to_owned(), |n| {
        format!("{n}{}", if n == requests { " ✓" } else { " ✗" })
    });
    format!("{ledger} | {audit}")
}

fn row(label: &str, outcome: &Outcome, requests: usize, clients: usize) -> String {
    format!(
        "| {label} | {clients} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.1} | {:.0} | {:.0} | {} |",
        requests,
        outcome.rate(),
        outcome.percentile_ms(50),
        outcome.percentile_ms(99),
        outcome.max_ms(),
        outcome.errors_text(),
        outcome.peak_rss_kib as f64 / 1024.0,
        outcome.service_cpu_per_cert_us(),
        outcome.client_cpu_per_cert_us(),
        check(outcome, requests),
    )
}

const HEADER: &str = "| scenario | clients | requests | certificates/s | p50 ms | p99 ms | max ms | errors | service peak RSS MiB | service CPU µs/cert | load generator CPU µs/cert | ledger rows | audit `issued` |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|";

fn ratio(value: f64, target: f64) -> String {
    format!("{:.2}×", value / target)
}

fn main() {
    let settings = settings();
    let (cores, model, load_before) = machine();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tls_dir = tempfile::tempdir().expect("tempdir");
    let tls = make_tls(tls_dir.path());
    println!(
        "kmssh serve load run: {} requests, {} clients (one connection each), {cores} cores ({model}), load average before: {load_before}",
        settings.requests, settings.clients
    );

    let mut rows: Vec<(String, Outcome)> = Vec::new();
    let mut main_variant = Variant::local("mTLS, local P-256, SQLite ledger + audit");
    main_variant.perf = true;
    let main_outcome = run(&runtime, &settings, tls_dir.path(), &tls, &main_variant);
    let below_target = main_outcome.rate() < TARGET_RATE
        || main_outcome.percentile_ms(99) > TARGET_P99_MS
        || main_outcome.peak_rss_kib as f64 / 1024.0 > TARGET_RSS_MIB;
    rows.push((main_variant.label.clone(), main_outcome));

    let mut latency_rate = None;
    if settings.latency {
        use kmssh_conformance::faults::{Fault, Operation};
        use kmssh_conformance::gcp_emulator::GcpKmsEmulator;
        let emulator = GcpKmsEmulator::start();
        let name = emulator.create_key_version(kmssh_core::Algorithm::EcdsaP256Sha256);
        emulator
            .faults(&name)
            .expect("the key version's fault handle")
            .inject(
                Operation::Sign,
                Fault::Delay(Duration::from_millis(settings.latency_ms)),
                usize::MAX,
            );
        let mut variant = Variant::local(&format!(
            "mTLS, Cloud KMS emulator P-256, {} ms per Sign (fault layer)",
            settings.latency_ms
        ));
        variant.key = format!("gcp-kms:{name}");
        variant.perf = true;
        variant.env = vec![
            ("KMSSH_GCP_ENDPOINT".into(), emulator.url()),
            ("KMSSH_GCP_ANONYMOUS".into(), "true".into()),
        ];
        let outcome = run(&runtime, &settings, tls_dir.path(), &tls, &variant);
        latency_rate = Some(outcome.rate());
        rows.push((variant.label.clone(), outcome));
    }

    let profile = settings.profile.unwrap_or(below_target);
    let mut profile_rows: Vec<(String, Outcome)> = Vec::new();
    if profile {
        let mut one = Variant::local("as first row, 1 Tokio worker thread");
        one.workers = Some(1);
        let mut memory = Variant::local("as first row, ledger + audit log on tmpfs");
        memory.tmpfs = true;
        let mut bare = Variant::local("as first row, ledger on tmpfs, no audit log");
        bare.tmpfs = true;
        bare.audit = false;
        for variant in [one, memory, bare] {
            let outcome = run(&runtime, &settings, tls_dir.path(), &tls, &variant);
            profile_rows.push((variant.label.clone(), outcome));
        }
    }
    let load_after = load_average();

    // The report: the table, the ratios, then BENCHMARKS.md.
    let mut report = String::new();
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    report.push_str(&format!(
        "Run {date} on {cores} cores ({model}); load average (1, 5, 15 min) {load_before} before, {load_after} after; shared with other builds.\n\
         `kmssh serve` release binary on 127.0.0.1 with mTLS (rcgen CAs; the caller matched by client certificate subject), \
         {} requests from {} clients, each a task with its own connection (TLS session, HTTP/2 channel), connected before the clock starts; \
         each client verifies its first certificate against the CA, later ones are only parsed. \
         The load generator runs on the same cores.\n\n",
        settings.requests, settings.clients
    ));
    report.push_str(HEADER);
    report.push('\n');
    for (label, outcome) in rows.iter().chain(&profile_rows) {
        report.push_str(&row(label, outcome, settings.requests, settings.clients));
        report.push('\n');
    }
    let main = &rows[0].1;
    report.push_str(&format!(
        "\nAgainst the targets (first row): {:.0} certificates/s is {} of 10,000/s; p99 {:.2} ms is {} of the 10 ms budget; \
         peak RSS {:.1} MiB is {} of 200 MiB.\n",
        main.rate(),
        ratio(main.rate(), TARGET_RATE),
        main.percentile_ms(99),
        ratio(main.percentile_ms(99), TARGET_P99_MS),
        main.peak_rss_kib as f64 / 1024.0,
        ratio(main.peak_rss_kib as f64 / 1024.0, TARGET_RSS_MIB),
    ));
    if let Some(rate) = latency_rate {
        let sequential = 1000.0 / settings.latency_ms.max(1) as f64;
        report.push_str(&format!(
            "With {} ms per KMS Sign (the emulator's injected delay, not a real KMS): {:.0} certificates/s = {} one sequential client's {:.0}/s \
             (ideal with {} clients: {}×).\n",
            settings.latency_ms,
            rate,
            ratio(rate, sequential),
            sequential,
            settings.clients,
            settings.clients
        ));
    }
    if !profile_rows.is_empty() {
        report.push_str("Profile runs, certificates/s relative to the first row:");
        for (label, outcome) in &profile_rows {
            report.push_str(&format!(
                " {label}: {};",
                ratio(outcome.rate(), main.rate())
            ));
        }
        report.pop();
        report.push_str(".\n");
    }
    println!("\n{report}");
    let _ = std::io::stdout().flush();

    let failed = rows
        .iter()
        .chain(&profile_rows)
        .any(|(_, o)| o.error_count() > 0)
        || main.ledger_count != Some(settings.requests as u64)
        || main.audit_issued != Some(settings.requests);
    if settings.write && !failed {
        write_benchmarks(&report);
    } else if settings.write {
        eprintln!("errors or a ledger/audit mismatch: BENCHMARKS.md not written");
    } else {
        eprintln!("short run: BENCHMARKS.md not written (--write to write it)");
    }
    assert!(
        !failed,
        "the run had errors or a ledger/audit mismatch (see above)"
    );
}

/// Replaces (or adds) this bench's section of BENCHMARKS.md, keeping the others.
fn write_benchmarks(report: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace folder");
    let path = root.join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section = format!("{SECTION}\n\n{report}");
    let updated = match existing.find(SECTION) {
        Some(start) => {
            let after = start + SECTION.len();
            let end = existing[after..]
                .find("\n## ")
                .map_or(existing.len(), |i| after + i + 1);
            format!("{}{section}\n{}", &existing[..start], &existing[end..])
        }
        None => format!("{}\n{section}", existing.trim_end().to_owned() + "\n"),
    };
    std::fs::write(&path, updated.trim_end().to_owned() + "\n").expect("write BENCHMARKS.md");
    eprintln!("wrote {}", path.display());
}
