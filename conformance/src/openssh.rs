//! Real OpenSSH as the judge: `ssh-keygen` to make keys and list certificates, and an
//! `sshd` on 127.0.0.1 with an `ssh` client to prove logins. Every process started here is
//! bounded in time and stopped (by its own handle) when its guard drops.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long any one OpenSSH command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long sshd may take to start listening.
pub const SSHD_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Where Debian's `openssh-server` puts sshd (it must be started by absolute path).
pub const SSHD: &str = "/usr/sbin/sshd";

/// Runs a command to completion within [`COMMAND_TIMEOUT`], killing it if it overruns.
///
/// # Panics
/// If the command cannot start or overruns.
pub async fn run(command: &mut tokio::process::Command) -> Output {
    command.kill_on_drop(true).stdin(Stdio::null());
    let described = format!("{command:?}");
    let output = command.output();
    match tokio::time::timeout(COMMAND_TIMEOUT, output).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("cannot run {described}: {e}"),
        Err(_) => panic!("{described} ran over {COMMAND_TIMEOUT:?} and was killed"),
    }
}

/// Runs a command to completion within [`COMMAND_TIMEOUT`] with `input` on its stdin,
/// killing it if it overruns.
///
/// # Panics
/// If the command cannot start or overruns.
pub async fn run_with_stdin(command: &mut tokio::process::Command, input: &[u8]) -> Output {
    use tokio::io::AsyncWriteExt as _;
    command
        .kill_on_drop(true)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let described = format!("{command:?}");
    let finished = async {
        let mut child = command.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).await?;
        }
        child.wait_with_output().await
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, finished).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("cannot run {described}: {e}"),
        Err(_) => panic!("{described} ran over {COMMAND_TIMEOUT:?} and was killed"),
    }
}

/// Runs a command and requires it to succeed; returns its stdout.
///
/// # Panics
/// If it fails, with its stderr.
pub async fn run_ok(command: &mut tokio::process::Command) -> String {
    let described = format!("{command:?}");
    let output = run(command).await;
    assert!(
        output.status.success(),
        "{described} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Makes a key pair with `ssh-keygen -t TYPE [-b BITS]`; returns the private key path
/// (the public key is beside it with `.pub`).
pub async fn keygen(dir: &Path, name: &str, key_type: &str, bits: Option<u32>) -> PathBuf {
    let path = dir.join(name);
    let mut command = tokio::process::Command::new("ssh-keygen");
    command.args(["-q", "-N", "", "-C", name, "-t", key_type]);
    if let Some(bits) = bits {
        command.arg("-b").arg(bits.to_string());
    }
    run_ok(command.arg("-f").arg(&path)).await;
    path
}

/// The path of a key's public half.
#[must_use]
pub fn pub_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// What `ssh-keygen -L` says about a certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The certificate algorithm, e.g. `ssh-ed25519-cert-v01@openssh.com`.
    pub algorithm: String,
    /// `user` or `host`.
    pub cert_type: String,
    /// The `Signing CA:` line's value.
    pub signing_ca: String,
    /// The key id, unquoted.
    pub key_id: String,
    /// The serial.
    pub serial: u64,
    /// The `Valid:` value, in UTC (`forever`, or `from … to …`).
    pub valid: String,
    /// Principals.
    pub principals: Vec<String>,
    /// Critical options as (name, value).
    pub critical_options: Vec<(String, String)>,
    /// Extensions as (name, value); custom values decoded from ssh-keygen's hex dump.
    pub extensions: Vec<(String, String)>,
}

/// Lists a certificate file with `ssh-keygen -L -f` (in UTC) and parses the output.
///
/// # Panics
/// If ssh-keygen refuses the file or prints something unexpected.
pub async fn list_certificate(path: &Path) -> Listing {
    let out = run_ok(
        tokio::process::Command::new("ssh-keygen")
            .env("TZ", "UTC")
            .arg("-L")
            .arg("-f")
            .arg(path),
    )
    .await;
    parse_listing(&out)
}

fn decode_unknown_option(rest: &str) -> String {
    // `UNKNOWN OPTION: 0000000376616c (len 7)`: hex of a string-in-string.
    let hex = rest
        .trim_start_matches("UNKNOWN OPTION: ")
        .split(' ')
        .next()
        .unwrap_or("");
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    String::from_utf8_lossy(bytes.get(4..).unwrap_or_default()).into_owned()
}

/// Parses `ssh-keygen -L` output.
///
/// # Panics
/// On a line that does not fit the format.
#[must_use]
pub fn parse_listing(text: &str) -> Listing {
    let mut listing = Listing::default();
    let mut section = "";
    for line in text.lines().skip(1) {
        let indent = line.len() - line.trim_start().len();
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if indent > 8 {
            let (name, value) = line.split_once(' ').unwrap_or((line, ""));
            let entry = (name.to_owned(), value.to_owned());
            match section {
                "Principals" => listing.principals.push(line.to_owned()),
                "Critical Options" => listing.critical_options.push(entry),
                "Extensions" => {
                    let value = if value == "UNKNOWN FLAG OPTION" {
                        String::new()
                    } else if value.starts_with("UNKNOWN OPTION") {
                        decode_unknown_option(value)
                    } else {
                        value.to_owned()
                    };
                    listing.extensions.push((name.to_owned(), value));
                }
                other => panic!("unexpected entry under {other:?}: {line}"),
            }
            continue;
        }
        let (key, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.trim();
        section = match key {
            "Principals" | "Critical Options" | "Extensions" => key,
            _ => "",
        };
        match key {
            "Type" => {
                let mut words = value.split_whitespace();
                listing.algorithm = words.next().unwrap_or_default().to_owned();
                listing.cert_type = words.next().unwrap_or_default().to_owned();
            }
            "Signing CA" => listing.signing_ca = value.to_owned(),
            "Key ID" => listing.key_id = value.trim_matches('"').to_owned(),
            "Serial" => listing.serial = value.parse().expect("serial is a number"),
            "Valid" => listing.valid = value.to_owned(),
            _ => {}
        }
    }
    listing
}

/// How ssh-keygen prints a validity window (in UTC).
#[must_use]
pub fn expected_validity(valid_after: u64, valid_before: u64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let show = |t: u64| {
        i64::try_from(t)
            .ok()
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .and_then(|t| t.format(&format).ok())
            .unwrap_or_default()
    };
    match (valid_after, valid_before) {
        (0, u64::MAX) => "forever".to_owned(),
        (after, u64::MAX) => format!("from {} to forever", show(after)),
        (0, before) => format!("before {}", show(before)),
        (after, before) => format!("from {} to {}", show(after), show(before)),
    }
}

/// The user sshd tests log in as: whoever runs the tests.
#[must_use]
pub fn current_user() -> String {
    if let Ok(user) = std::env::var("USER")
        && !user.is_empty()
    {
        return user;
    }
    let out = Command::new("id").arg("-un").output().expect("id -un runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An `sshd` on 127.0.0.1, killed and reaped when dropped.
pub struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// What an sshd should trust and present.
pub struct SshdConfig<'a> {
    /// Its working directory (config, log, keys).
    pub dir: &'a Path,
    /// The `TrustedUserCAKeys` line.
    pub trusted_user_ca: &'a str,
    /// Its host private key.
    pub host_key: &'a Path,
    /// A host certificate to present, if any.
    pub host_certificate: Option<&'a Path>,
    /// A KRL for `RevokedKeys`, if any.
    pub revoked_keys: Option<&'a Path>,
    /// An `AuthorizedKeysFile`, if any (else only certificates from the trusted CA log in).
    pub authorized_keys: Option<&'a Path>,
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Sshd {
    /// Writes a config and starts sshd in the foreground; waits (bounded) until it listens.
    /// A port taken between choosing and binding is retried with another, three times.
    ///
    /// # Panics
    /// If sshd is missing or does not start.
    #[must_use]
    pub fn start(config: &SshdConfig<'_>) -> Self {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server"
        );
        // sshd's privilege separation needs this directory even with its own config.
        if !Path::new("/run/sshd").exists() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            match Self::try_start(config, port) {
                Ok(sshd) => return sshd,
                Err(log) => last_log = log,
            }
        }
        panic!("sshd did not start on 127.0.0.1:\n{last_log}");
    }

    fn try_start(config: &SshdConfig<'_>, port: u16) -> Result<Self, String> {
        let ca_file = config.dir.join("trusted_user_ca.pub");
        std::fs::write(&ca_file, format!("{}\n", config.trusted_user_ca)).expect("write CA file");
        let log = config.dir.join(format!("sshd-{port}.log"));
        let mut text = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nPidFile none\nUsePAM no\nStrictModes no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             AuthorizedKeysFile {}\nTrustedUserCAKeys {}\nPermitRootLogin prohibit-password\n\
             LogLevel VERBOSE\nMaxStartups 100\nLoginGraceTime 20\n",
            config.host_key.display(),
            config
                .authorized_keys
                .map_or_else(|| "none".to_owned(), |p| p.display().to_string()),
            ca_file.display()
        );
        if let Some(cert) = config.host_certificate {
            text.push_str(&format!("HostCertificate {}\n", cert.display()));
        }
        if let Some(krl) = config.revoked_keys {
            text.push_str(&format!("RevokedKeys {}\n", krl.display()));
        }
        let config_path = config.dir.join(format!("sshd_config-{port}"));
        std::fs::write(&config_path, text).expect("write sshd config");
        let log_file = std::fs::File::create(&log).expect("create sshd log");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn sshd");
        let mut sshd = Self { child, port, log };
        let deadline = Instant::now() + SSHD_START_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while Instant::now() < deadline {
            if let Ok(Some(_)) = sshd.child.try_wait() {
                return Err(sshd.log_text());
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(sshd);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "not listening after {SSHD_START_TIMEOUT:?}\n{}",
            sshd.log_text()
        ))
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What sshd has logged so far (for failure messages).
    #[must_use]
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `ssh` client run against a local sshd.
pub struct SshLogin<'a> {
    /// Scratch directory for the known_hosts file.
    pub dir: &'a Path,
    /// The server.
    pub port: u16,
    /// The user to log in as.
    pub user: &'a str,
    /// The client's private key.
    pub identity: &'a Path,
    /// The client's certificate, if any.
    pub certificate: Option<&'a Path>,
    /// The known_hosts line(s) (`@cert-authority …` or a plain host key).
    pub known_hosts: &'a str,
    /// The remote command.
    pub command: &'a str,
}

impl SshLogin<'_> {
    /// Runs `ssh` with strict host key checking and no other configuration.
    pub async fn run(&self) -> Output {
        let mut auth = vec![
            "IdentitiesOnly=yes".to_owned(),
            format!("IdentityFile={}", self.identity.display()),
        ];
        if let Some(cert) = self.certificate {
            auth.push(format!("CertificateFile={}", cert.display()));
        }
        ssh_login(
            self.dir,
            self.port,
            self.user,
            self.known_hosts,
            &auth,
            &[],
            self.command,
        )
        .await
    }
}

/// Runs `ssh` to `user@127.0.0.1:port` with strict host key checking against
/// `known_hosts`, no configuration file, batch mode, and `auth` as its `-o` options (how it
/// authenticates: identity files, `IdentityAgent`, `PKCS11Provider`…), with `env` added
/// to its environment.
pub async fn ssh_login(
    dir: &Path,
    port: u16,
    user: &str,
    known_hosts: &str,
    auth: &[String],
    env: &[(String, String)],
    remote_command: &str,
) -> Output {
    let known = dir.join(format!("known_hosts-{port}"));
    std::fs::write(&known, format!("{known_hosts}\n")).expect("write known_hosts");
    let mut command = tokio::process::Command::new("ssh");
    command.args(["-F", "/dev/null", "-o", "BatchMode=yes"]);
    for option in auth {
        command.arg("-o").arg(option);
    }
    command
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ])
        .args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("-p")
        .arg(port.to_string())
        .arg(format!("{user}@127.0.0.1"))
        .arg("--")
        .arg(remote_command);
    run(&mut command).await
}
