//! `kmssh agent`: detached like `ssh-agent -s`, in the foreground with certificates it
//! renews, and its start-up refusals (one line, the right exit status, nothing left behind).

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{kmssh, run, run_within, ssh_keygen_list};

/// A process id to kill if the test ends early (a detached agent is no child of ours).
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn ecdsa_key(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ecdsa", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen");
    assert!(ok.success());
    format!("local:{}", path.display())
}

fn ssh_add(socket: &str, args: &[&str]) -> (i32, String, String) {
    run(Command::new("ssh-add")
        .args(args)
        .env("SSH_AUTH_SOCK", socket)
        .stdin(Stdio::null()))
}

fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Detached: prints what `ssh-agent -s` prints and returns; the agent serves `ssh-add -l`
/// and stops on SIGTERM, removing its socket and private directory.
#[test]
fn detached_agent_serves_until_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = ecdsa_key(dir.path(), "user_key");
    let mut command = kmssh();
    command.args(["agent", "--key", &uri]);
    let (code, out, err) = run_within(command, Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let socket = lines[0]
        .strip_prefix("SSH_AUTH_SOCK=")
        .and_then(|l| l.strip_suffix("; export SSH_AUTH_SOCK;"))
        .expect("SSH_AUTH_SOCK line")
        .to_owned();
    let pid: u32 = lines[1]
        .strip_prefix("SSH_AGENT_PID=")
        .and_then(|l| l.strip_suffix("; export SSH_AGENT_PID;"))
        .and_then(|p| p.parse().ok())
        .expect("SSH_AGENT_PID line");
    let _guard = KillOnDrop(Some(pid));
    assert_eq!(lines[2], format!("echo Agent pid {pid};"));

    let (code, listed, err) = ssh_add(&socket, &["-l"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        listed.contains(&uri) && listed.contains("(ECDSA)"),
        "{listed}"
    );
    // Refused, and the agent lives on.
    let (code, _, _) = ssh_add(&socket, &["-D"]);
    assert_ne!(code, 0, "ssh-add -D succeeded");
    let (code, _, err) = ssh_add(&socket, &["-l"]);
    assert_eq!(code, 0, "{err}");

    let ok = Command::new("kill")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(ok.success());
    wait_until("the agent stops", Duration::from_secs(10), || !alive(pid));
    let socket = Path::new(&socket);
    assert!(!socket.exists(), "socket left behind");
    assert!(
        !socket.parent().expect("directory").exists(),
        "private directory left behind"
    );
}

/// In the foreground with `--ca`: the key is listed with a certificate for the principal,
/// valid for `--validity`; SIGTERM stops it with status 0 and the socket goes.
#[test]
fn foreground_agent_with_a_renewed_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = ecdsa_key(dir.path(), "user_key");
    let ca = ecdsa_key(dir.path(), "ca_key");
    let socket = dir.path().join("agent.sock");
    let mut child = kmssh()
        .args(["agent", "--foreground", "--key", &uri, "--ca", &ca])
        .args(["--principal", "alice", "--validity", "10m", "--socket"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let _guard = KillOnDrop(Some(child.id()));
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("announcement");
    assert_eq!(
        first.trim(),
        format!("SSH_AUTH_SOCK={}; export SSH_AUTH_SOCK;", socket.display())
    );
    let (code, listed, err) = ssh_add(&socket.display().to_string(), &["-L"]);
    assert_eq!(code, 0, "{err}");
    let certificate = listed.lines().next().expect("a first identity");
    assert!(
        certificate.starts_with("ecdsa-sha2-nistp256-cert-v01@openssh.com "),
        "{listed}"
    );
    let cert_path = dir.path().join("listed-cert.pub");
    std::fs::write(&cert_path, format!("{certificate}\n")).expect("write");
    let listing = ssh_keygen_list(&cert_path);
    assert!(
        listing.contains("Principals: \n                alice"),
        "{listing}"
    );
    assert!(
        listing.contains("Type: ecdsa-sha2-nistp256-cert-v01@openssh.com user certificate"),
        "{listing}"
    );
    assert!(listing.contains(&format!("Key ID: \"{uri}\"")), "{listing}");

    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let mut status = None;
    wait_until("the agent stops", Duration::from_secs(10), || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(!socket.exists(), "socket left behind");
}

/// Start-up refusals: one line on stderr, the exit status of its class, and nothing left:
/// a key that cannot be opened (3/4), a socket path taken (7, the file intact), a
/// certificate of another key (3), `--timeout` (usage, 2).
#[test]
fn start_up_refusals_are_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = ecdsa_key(dir.path(), "user_key");
    let other = ecdsa_key(dir.path(), "other_key");

    let missing = format!("local:{}", dir.path().join("missing").display());
    let mut command = kmssh();
    command.args(["agent", "--key", &missing]);
    let (code, out, err) = run_within(command, Duration::from_secs(60));
    assert!(code == 3 || code == 4, "{code}: {err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("missing"), "{err}");

    let taken = dir.path().join("taken");
    std::fs::write(&taken, "precious").expect("write");
    let mut command = kmssh();
    command
        .args(["agent", "--foreground", "--key", &uri, "--socket"])
        .arg(&taken);
    let (code, _, err) = run_within(command, Duration::from_secs(60));
    assert_eq!(code, 7, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(std::fs::read_to_string(&taken).expect("kept"), "precious");

    // A certificate issued for the other key.
    let ca = dir.path().join("ca_key");
    let (code, _, err) = run(kmssh()
        .args(["sign", "--create", "--ca"])
        .arg(format!("local:{}", ca.display()))
        .args(["-n", "alice", "-I", "other"])
        .arg(dir.path().join("other_key.pub")));
    assert_eq!(code, 0, "{err}");
    let _ = other;
    let mut command = kmssh();
    command
        .args(["agent", "--key", &uri, "--certificate"])
        .arg(dir.path().join("other_key-cert.pub"));
    let (code, out, err) = run_within(command, Duration::from_secs(60));
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("certifies none of the agent's keys"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let (code, _, err) = run(kmssh().args(["--timeout", "5s", "agent", "--key", &uri]));
    assert_eq!(code, 2, "{err}");
}
