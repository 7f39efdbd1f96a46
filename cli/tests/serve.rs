//! `kmssh serve` run from `deploy/example.toml` on loopback, driven by `kmssh request`,
//! `kmssh ledger` and `kmssh krl --from-ledger`; certificates checked by `ssh-keygen`.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{keygen, kmssh, run, ssh_keygen_list};

/// The bearer token written in deploy/example.toml's comment.
const TOKEN: &str = "kmssh-example-30d9764a233e37fe49edb9f1b410fe899cb78d80aa853aac";

/// The `security` caller's token in deploy/example.toml (it may revoke).
const SECURITY_TOKEN: &str = "kmssh-example-security-6f1c0e9a2b7d4c35a8e1f0d2c4b6a8e0";

/// How long the service may take to start (a cold key creation and ledger migration).
const START_LIMIT: Duration = Duration::from_secs(30);

/// How long the service may take to stop after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(15);

/// A running `kmssh serve`, killed when dropped (a test that fails leaves nothing behind).
struct Service {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    url: String,
    /// Everything it wrote on stderr so far.
    log: Arc<Mutex<String>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Sends `signal` (`TERM`, `INT`) and waits for the exit status, at most [`STOP_LIMIT`].
    fn stop_with(&mut self, signal: &str) -> Option<i32> {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{signal} failed");
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "kmssh serve still running {STOP_LIMIT:?} after SIGTERM; log:\n{}",
            self.log()
        );
    }
}

/// `deploy/example.toml` copied into `dir`, listening on a free port (its CA key, ledger and
/// audit log land in `dir`, relative to the copy),
/// with `edit` applied to the text.
fn example_config(dir: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/example.toml");
    let text = std::fs::read_to_string(&example).expect("deploy/example.toml");
    let replace = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "example.toml no longer has {from}");
        text.replace(from, to)
    };
    let text = replace(
        text,
        "listen = \"127.0.0.1:50051\"",
        "listen = \"127.0.0.1:0\"",
    );
    // The key path is relative to the configuration's folder: the copy's key is dir/ca_key.
    assert!(
        text.contains("\"local:ca_key\""),
        "example.toml no longer has local:ca_key"
    );
    let path = dir.join("kmssh.toml");
    std::fs::write(&path, edit(text)).expect("write config");
    path
}

/// Starts `kmssh serve --config CONFIG --insecure-loopback` and waits for its listening
/// line; or, if it exits first, returns its exit code and stderr.
fn try_start(config: &Path) -> Result<Service, (i32, String)> {
    let mut child = kmssh()
        .args(["serve", "--insecure-loopback", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kmssh serve");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(String::new()));
    let (lines_tx, lines) = mpsc::channel();
    {
        let log = Arc::clone(&log);
        // Drains stderr for the service's whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut log) = log.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
                let _ = lines_tx.send(line);
            }
        });
    }
    let mut service = Service {
        child,
        url: String::new(),
        log,
    };
    let deadline = Instant::now() + START_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no listening line within {START_LIMIT:?}; log:\n{}",
            service.log()
        );
        match lines.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                if let Some(address) = line.strip_prefix("kmssh serve: listening on ") {
                    service.url = format!("http://{}", address.trim());
                    return Ok(service);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stderr closed: the process ended (or is ending) without listening.
                let status = service.child.wait().expect("wait");
                return Err((status.code().unwrap_or(-1), service.log()));
            }
        }
    }
}

fn start(config: &Path) -> Service {
    try_start(config).unwrap_or_else(|(code, log)| panic!("kmssh serve exited {code}:\n{log}"))
}

/// `kmssh request` against `service` with `token` and extra arguments.
fn request(service: &Service, token: &str, args: &[&str]) -> (i32, String, String) {
    run(kmssh()
        .args([
            "request",
            "--server",
            &service.url,
            "--token",
            token,
            "--key",
            "user-ca",
        ])
        .args(args))
}

#[test]
fn serve_issues_certificates_the_ledger_lists_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = example_config(dir.path(), |t| t);
    let mut service = start(&config);
    let user = keygen(dir.path(), "id_ed25519");
    let public = user.with_extension("pub");
    let public = public.to_str().expect("utf-8 path");

    // A certificate within the policy, beside the key.
    let (code, _, err) = request(&service, TOKEN, &["-n", "dev-alice", public]);
    assert_eq!(code, 0, "{err}\nservice log:\n{}", service.log());
    let cert = dir.path().join("id_ed25519-cert.pub");
    assert!(cert.is_file(), "{err}");
    let listing = ssh_keygen_list(&cert);
    assert!(listing.contains("dev-alice"), "{listing}");
    assert!(
        listing.contains("Type: ssh-ed25519-cert-v01@openssh.com user certificate"),
        "{listing}"
    );
    // No -I: the service uses the caller's name.
    assert!(listing.contains("Key ID: \"alice\""), "{listing}");
    let serial = listing
        .lines()
        .find_map(|l| l.trim().strip_prefix("Serial: "))
        .expect("serial")
        .to_owned();

    // Not overwritten without --force.
    let (code, _, err) = request(&service, TOKEN, &["-n", "alice", public]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--force"), "{err}");
    // The template principal `{caller}`, and -o.
    let other = dir.path().join("alice-cert.pub");
    let (code, _, err) = request(
        &service,
        TOKEN,
        &["-n", "alice", "-o", other.to_str().expect("utf-8"), public],
    );
    assert_eq!(code, 0, "{err}");
    assert!(ssh_keygen_list(&other).contains("alice"));

    // A wrong token: exit 4, the service's reason.
    let (code, _, err) = request(
        &service,
        "not-the-token",
        &["-n", "dev-alice", "--force", public],
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("Unauthenticated"), "{err}");
    assert!(err.contains("no caller matches"), "{err}");

    // A principal outside the policy: exit 4, naming the rule.
    let (code, _, err) = request(&service, TOKEN, &["-n", "root", "--force", public]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("policy rule `principals`"), "{err}");
    // Longer than max_validity (8h): refused, not shortened.
    let (code, _, err) = request(
        &service,
        TOKEN,
        &["-n", "dev-alice", "-V", "+1d", "--force", public],
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("max_validity"), "{err}");

    // The CA line is the key's own.
    let (code, served_ca, err) = request(&service, TOKEN, &["--ca"]);
    assert_eq!(code, 0, "{err}");
    let ca_uri = format!("local:{}", dir.path().join("ca_key").display());
    let (code, local_ca, err) = run(kmssh().args(["pubkey", "--ca", &ca_uri]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(served_ca.trim(), local_ca.trim());
    // ssh-keygen accepts the certificate against it.
    let ca_pub = dir.path().join("ca.pub");
    std::fs::write(&ca_pub, &served_ca).expect("write");
    let (code, _, err) = run(kmssh()
        .args(["verify", "--ca"])
        .arg(&ca_pub)
        .args(["--principal", "dev-alice"])
        .arg(&cert));
    assert_eq!(code, 0, "{err}");

    // The ledger has both certificates.
    let config_arg = config.to_str().expect("utf-8");
    let (code, out, err) = run(kmssh().args(["ledger", "list", "--config", config_arg]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{serial}\t")) && l.contains("dev-alice")),
        "{out}"
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    let (code, out, err) = run(kmssh().args([
        "ledger",
        "list",
        "--config",
        config_arg,
        "--principal",
        "dev-alice",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let record: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(record["serial"].to_string(), serial);
    assert_eq!(record["caller"], "alice");
    for (after, rows) in [("2000-01-01T00:00:00Z", 2), ("4000000000", 0)] {
        let (code, out, err) = run(kmssh().args([
            "ledger",
            "list",
            "--config",
            config_arg,
            "--issued-after",
            after,
        ]));
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out.lines().count(),
            1 + rows,
            "--issued-after {after}: {out}"
        );
    }
    let (code, out, err) = run(kmssh().args(["ledger", "show", &serial, "--config", config_arg]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Principals: dev-alice"), "{out}");
    assert!(
        out.contains(
            std::fs::read_to_string(&cert)
                .expect("cert")
                .split_whitespace()
                .nth(1)
                .expect("blob")
        ),
        "{out}"
    );
    let (code, _, err) = run(kmssh().args(["ledger", "show", "999999", "--config", config_arg]));
    assert_eq!(code, 3, "{err}");

    // A KRL revoking dev-alice's certificates from the ledger revokes that one only.
    let ledger_url = format!("sqlite:{}", dir.path().join("example-ledger.db").display());
    let krl = dir.path().join("revoked.krl");
    let (code, _, err) = run(kmssh()
        .args([
            "krl",
            "--ca",
            &ca_uri,
            "--from-ledger",
            &ledger_url,
            "--principal",
            "dev-alice",
            "-o",
        ])
        .arg(&krl));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(kmssh()
        .arg("krl")
        .arg("--check")
        .arg(&krl)
        .arg(&cert)
        .arg(&other));
    assert_eq!(code, 8, "{out}{err}");
    assert!(out.contains("id_ed25519-cert.pub: REVOKED"), "{out}");
    assert!(out.contains("alice-cert.pub: ok"), "{out}");

    // Revoking through the service: alice may not; security may, and the KRL the service
    // serves then revokes dev-alice's certificate and not alice's.
    let (code, _, err) = request(&service, TOKEN, &["--revoke-principal", "dev-alice"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("policy rule `revoke`"), "{err}");
    let (code, out, err) = request(
        &service,
        SECURITY_TOKEN,
        &["--revoke-principal", "dev-alice", "--reason", "laptop lost"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        format!("revoked serials [{serial}]; already revoked []; KRL version 1")
    );
    let (code, _, err) = request(&service, SECURITY_TOKEN, &["--revoke-serial", "999999"]);
    assert_eq!(code, 3, "{err}");
    let served_krl = dir.path().join("served.krl");
    let (code, _, err) = request(
        &service,
        TOKEN,
        &["--krl", "-o", served_krl.to_str().expect("utf-8")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("KRL version 1: 1 revoked serials"), "{err}");
    let checked = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(&served_krl)
        .arg(&cert)
        .arg(&other)
        .output()
        .expect("ssh-keygen -Q");
    let text = String::from_utf8_lossy(&checked.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("id_ed25519-cert.pub") && l.ends_with(": REVOKED")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("alice-cert.pub") && l.ends_with(": ok")),
        "{text}"
    );

    // The audit log beside the configuration has the issued and refused requests.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
    assert!(
        audit.contains("\"issued\"") && audit.contains("\"refused\""),
        "{audit}"
    );

    assert_eq!(
        service.stop_with("TERM"),
        Some(0),
        "log:\n{}",
        service.log()
    );
}

#[test]
fn serve_stops_on_sigint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = example_config(dir.path(), |t| t);
    let mut service = start(&config);
    assert_eq!(service.stop_with("INT"), Some(0), "log:\n{}", service.log());
}

#[test]
fn serve_refuses_an_unknown_config_key_naming_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = example_config(dir.path(), |t| {
        t.replace(
            "max_validity = \"8h\"",
            "max_validity = \"8h\"\nmax_valdity = \"9h\"",
        )
    });
    let (code, log) = match try_start(&config) {
        Ok(service) => panic!("started:\n{}", service.log()),
        Err(failed) => failed,
    };
    assert_eq!(code, 3, "{log}");
    assert!(log.contains("max_valdity"), "{log}");
    assert!(log.contains("line"), "{log}");
    assert!(
        !dir.path().join("ca_key").exists(),
        "nothing is created from a bad config"
    );
}

#[test]
fn serve_refuses_a_non_loopback_address_without_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = example_config(dir.path(), |t| t.replace("127.0.0.1:0", "0.0.0.0:0"));
    let (code, log) = match try_start(&config) {
        Ok(service) => panic!("started:\n{}", service.log()),
        Err(failed) => failed,
    };
    assert_eq!(code, 3, "{log}");
    assert!(log.contains("not a loopback address"), "{log}");
    assert!(log.contains("[tls]"), "{log}");

    // Without --insecure-loopback, even loopback needs TLS.
    let config = example_config(dir.path(), |t| t);
    let (code, _, err) = common::run_within(
        {
            let mut command = kmssh();
            command.args(["serve", "--config"]).arg(&config);
            command
        },
        START_LIMIT,
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no [tls] section"), "{err}");
}

#[test]
fn request_reports_an_unreachable_service_as_unavailable() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let user = keygen(dir.path(), "id_ed25519");
    let (code, _, err) = common::run_within(
        {
            let mut command = kmssh();
            command
                .args(["request", "--server", &format!("http://127.0.0.1:{port}")])
                .args(["--token", TOKEN, "--key", "user-ca", "-n", "dev-alice"])
                .arg(user.with_extension("pub"));
            command
        },
        START_LIMIT,
    );
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!dir.path().join("id_ed25519-cert.pub").exists());
}

#[test]
fn serve_refuses_timeout() {
    let (code, _, err) = run(kmssh().args(["--timeout", "5s", "serve", "--config", "x.toml"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--timeout does not apply to serve"), "{err}");
}
