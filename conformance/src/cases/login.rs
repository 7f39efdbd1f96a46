//! SSH logins with the backend's key as the user's own key, by both routes OpenSSH offers
//! for keys it cannot read: kmssh's agent (`IdentityAgent`) and kmssh's PKCS#11 module
//! (`PKCS11Provider`). Each route logs in to a real `sshd` on 127.0.0.1 by
//! `AuthorizedKeysFile` and by certificate (`TrustedUserCAKeys`), and is refused where the
//! key is not authorized.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kmssh_agent::{Agent, AgentOptions, AgentSocket, Renewal};
use kmssh_core::{KeyFamily, KmsKey};
use kmssh_pki::{CertificateParameters, pubkey_string};

use super::{LoginSetup, assert_logged_in, assert_refused, scratch};
use crate::openssh::{Sshd, SshdConfig, ssh_login};

/// The `PubkeyAcceptedAlgorithms` for `key`: each SSH algorithm it signs, plain and as a
/// certificate. A provider that binds an RSA key to one hash (Cloud KMS) signs only that,
/// and ssh must be told, or it asks for `rsa-sha2-512` first.
pub fn accepted_algorithms(key: &dyn KmsKey) -> String {
    let mut names = Vec::new();
    for algorithm in key.algorithms() {
        if let Some(name) = algorithm.ssh_name() {
            names.push(format!("{name}-cert-v01@openssh.com"));
            names.push(name.to_owned());
        }
    }
    names.join(",")
}

/// Two sshds: one letting the key in through `AuthorizedKeysFile` (trusting an unrelated
/// CA), one trusting only certificates from `ca`.
struct Servers {
    by_key: Sshd,
    by_certificate: Sshd,
}

impl Servers {
    async fn start(setup: &LoginSetup, key: &dyn KmsKey, ca: &dyn KmsKey) -> Self {
        let dir = setup.dir.path();
        let authorized = dir.join("authorized_keys");
        std::fs::write(
            &authorized,
            format!("{}\n", pubkey_string(key.public_key(), "kms-held key")),
        )
        .expect("write authorized_keys");
        let unrelated = kmssh_core::open("local:ephemeral?type=ecdsa")
            .await
            .expect("an unrelated CA");
        let by_key = Sshd::start(&SshdConfig {
            dir,
            trusted_user_ca: &pubkey_string(unrelated.public_key(), "unrelated CA"),
            host_key: &setup.host_key,
            host_certificate: None,
            revoked_keys: None,
            authorized_keys: Some(&authorized),
        });
        let by_certificate = Sshd::start(&SshdConfig {
            dir,
            trusted_user_ca: &pubkey_string(ca.public_key(), "login CA"),
            host_key: &setup.host_key,
            host_certificate: None,
            revoked_keys: None,
            authorized_keys: None,
        });
        Self {
            by_key,
            by_certificate,
        }
    }
}

async fn login(
    setup: &LoginSetup,
    sshd: &Sshd,
    auth: &[String],
    env: &[(String, String)],
    command: &str,
) -> std::process::Output {
    ssh_login(
        setup.dir.path(),
        sshd.port(),
        &setup.user,
        &setup.plain_known_hosts(sshd.port()),
        auth,
        env,
        command,
    )
    .await
}

/// A CA for the certificate route: a local key, independent of the backend under test.
async fn login_ca() -> Arc<dyn KmsKey> {
    kmssh_core::open("local:ephemeral?type=ecdsa")
        .await
        .expect("a local CA")
}

fn user_certificate_params(setup: &LoginSetup) -> CertificateParameters {
    let mut params = CertificateParameters::user();
    params
        .principal(setup.user.clone())
        .expect("principal")
        .key_id("kmssh conformance agent")
        .expect("key id");
    params
}

/// An agent serving on `agent.sock` in the setup's directory until [`ServedAgent::stop`].
struct ServedAgent {
    socket: PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ServedAgent {
    fn start(setup: &LoginSetup, agent: Agent) -> Self {
        let socket = setup.dir.path().join("agent.sock");
        let bound = AgentSocket::bind(Some(&socket)).expect("agent socket");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let agent = Arc::new(agent);
        let task = tokio::spawn(async move {
            bound
                .serve(agent, async move {
                    let _ = stopped.await;
                })
                .await
        });
        Self { socket, stop, task }
    }

    /// ssh's options to authenticate with `key` through this agent only.
    fn ssh_options(&self, key: &dyn KmsKey) -> Vec<String> {
        vec![
            format!("IdentityAgent={}", self.socket.display()),
            "IdentitiesOnly=no".to_owned(),
            "IdentityFile=/dev/null".to_owned(),
            format!("PubkeyAcceptedAlgorithms={}", accepted_algorithms(key)),
        ]
    }

    /// Stops it; it must stop cleanly and take its socket with it.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("agent task")
            .expect("the agent stops cleanly");
        assert!(!self.socket.exists(), "the socket outlived the agent");
    }
}

/// ssh's options to authenticate with `key` through the PKCS#11 module only, with
/// `certificate` if given.
fn pkcs11_ssh_options(key: &dyn KmsKey, certificate: Option<&Path>) -> Vec<String> {
    let mut options = vec![
        format!("PKCS11Provider={}", pkcs11_module().display()),
        "IdentityAgent=none".to_owned(),
        "IdentitiesOnly=no".to_owned(),
        "IdentityFile=/dev/null".to_owned(),
        format!("PubkeyAcceptedAlgorithms={}", accepted_algorithms(key)),
    ];
    if let Some(certificate) = certificate {
        options.push(format!("CertificateFile={}", certificate.display()));
    }
    options
}

/// `env` plus the module's configuration (the one key, `timeout` per signature), written
/// in `dir`.
fn pkcs11_environment(
    mut env: Vec<(String, String)>,
    dir: &Path,
    key: &dyn KmsKey,
    timeout: &str,
) -> Vec<(String, String)> {
    env.push((
        "KMSSH_PKCS11_CONFIG".to_owned(),
        pkcs11_config(dir, key, timeout).display().to_string(),
    ));
    env
}

/// kmssh's agent serves the key: ssh logs in through `IdentityAgent` by
/// `AuthorizedKeysFile`; the certificate-only sshd refuses the bare key; once the agent
/// holds a certificate from the trusted CA (issued by [`Renewal`]), that sshd lets the
/// user in too.
pub async fn agent_logs_in(key: Arc<dyn KmsKey>) {
    let setup = LoginSetup::new().await;
    let ca = login_ca().await;
    let servers = Servers::start(&setup, key.as_ref(), ca.as_ref()).await;

    let mut agent = Agent::new(AgentOptions::default());
    let served = agent
        .add_key(key.clone(), "conformance key")
        .expect("add key");
    let agent = ServedAgent::start(&setup, agent);
    let auth = agent.ssh_options(key.as_ref());

    let output = login(&setup, &servers.by_key, &auth, &[], "echo agent-key").await;
    assert_logged_in(&output, &servers.by_key, "agent-key");
    let output = login(&setup, &servers.by_certificate, &auth, &[], "echo nope").await;
    assert_refused(&output, &servers.by_certificate, "Failed publickey");

    let renewal = Renewal::new(
        ca,
        user_certificate_params(&setup),
        std::time::Duration::from_secs(600),
    )
    .expect("renewal");
    renewal.renew(&served).await.expect("certificate");
    let output = login(
        &setup,
        &servers.by_certificate,
        &auth,
        &[],
        "echo agent-cert",
    )
    .await;
    assert_logged_in(&output, &servers.by_certificate, "agent-cert");
    assert!(
        servers
            .by_certificate
            .log_text()
            .contains("Accepted publickey")
            && servers.by_certificate.log_text().contains("CA ECDSA"),
        "not by certificate:\n{}",
        servers.by_certificate.log_text()
    );

    agent.stop().await;
}

/// Where `cargo` put `libkmssh_pkcs11.so` for this test binary: the newer of the copy
/// beside it in `deps/` (what `cargo test` rebuilds) and the one a level up (what
/// `cargo build` refreshes).
///
/// # Panics
/// If it is in neither place (the module was not built).
#[must_use]
pub fn pkcs11_module() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps directory");
    let candidates = [
        deps.parent().map(|p| p.join("libkmssh_pkcs11.so")),
        Some(deps.join("libkmssh_pkcs11.so")),
    ];
    candidates
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((modified, p))
        })
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "libkmssh_pkcs11.so is not beside {}: build it with `cargo build -p kmssh-pkcs11`",
                exe.display()
            )
        })
}

/// The module's configuration: the one key, and the deadline of each signature.
fn pkcs11_config(dir: &Path, key: &dyn KmsKey, timeout: &str) -> PathBuf {
    let config = dir.join("pkcs11.toml");
    std::fs::write(
        &config,
        format!(
            "timeout = \"{timeout}\"\n[[key]]\nlabel = \"conformance\"\nuri = \"{}\"\n",
            key.uri()
                .to_string()
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        ),
    )
    .expect("write PKCS#11 config");
    config
}

/// kmssh's PKCS#11 module, loaded by ssh itself (`PKCS11Provider`), opens the key by URI
/// in the ssh process (reaching the emulator through `env`) and logs in by
/// `AuthorizedKeysFile`, and with a `CertificateFile` by certificate; without the
/// certificate the certificate-only sshd refuses. OpenSSH before 10.1 has no Ed25519 over
/// PKCS#11: such keys are skipped.
pub async fn pkcs11_logs_in(key: Arc<dyn KmsKey>, env: Vec<(String, String)>) {
    if key.public_key().family() == KeyFamily::Ed25519 {
        eprintln!("skipped: OpenSSH 9.2 signs no Ed25519 through PKCS#11 (10.1 does)");
        return;
    }
    let setup = LoginSetup::new().await;
    let ca = login_ca().await;
    let servers = Servers::start(&setup, key.as_ref(), ca.as_ref()).await;
    let dir = scratch();
    let env = pkcs11_environment(env, dir.path(), key.as_ref(), "30s");
    let auth = |certificate: Option<&Path>| pkcs11_ssh_options(key.as_ref(), certificate);

    let output = login(
        &setup,
        &servers.by_key,
        &auth(None),
        &env,
        "echo pkcs11-key",
    )
    .await;
    assert_logged_in(&output, &servers.by_key, "pkcs11-key");
    let output = login(
        &setup,
        &servers.by_certificate,
        &auth(None),
        &env,
        "echo nope",
    )
    .await;
    assert_refused(&output, &servers.by_certificate, "Failed publickey");

    let certificate = kmssh_pki::issue(
        ca.as_ref(),
        &kmssh_pki::ssh_public_key(key.public_key()),
        &user_certificate_params(&setup),
    )
    .await
    .expect("certificate");
    let cert_path = dir.path().join("pkcs11-cert.pub");
    std::fs::write(&cert_path, certificate.cert_string("pkcs11")).expect("write certificate");
    let output = login(
        &setup,
        &servers.by_certificate,
        &auth(Some(&cert_path)),
        &env,
        "echo pkcs11-cert",
    )
    .await;
    assert_logged_in(&output, &servers.by_certificate, "pkcs11-cert");
}

/// The backend goes away mid-session (every `Sign` dropped): ssh, logging in through the
/// agent, gets a clean refusal within its own timeout, and the agent, still serving, signs
/// again for the next login once the backend is back.
pub async fn agent_survives_a_backend_outage(key: crate::fixture::FaultyKey) {
    use crate::faults::{Fault, Operation};

    let setup = LoginSetup::new().await;
    let ca = login_ca().await;
    let servers = Servers::start(&setup, key.key.as_ref(), ca.as_ref()).await;
    let mut agent = Agent::new(AgentOptions {
        // Shorter than ssh's ConnectTimeout-bound wait and sshd's LoginGraceTime (20 s here).
        sign_timeout: std::time::Duration::from_secs(8),
        confirm: None,
    });
    agent
        .add_key(key.key.clone(), "faulty key")
        .expect("add key");
    let agent = ServedAgent::start(&setup, agent);
    let auth = agent.ssh_options(key.key.as_ref());
    let output = login(&setup, &servers.by_key, &auth, &[], "echo before").await;
    assert_logged_in(&output, &servers.by_key, "before");

    key.faults.inject(Operation::Sign, Fault::Drop, 1000);
    let started = std::time::Instant::now();
    let output = login(&setup, &servers.by_key, &auth, &[], "echo during").await;
    assert!(!output.status.success(), "logged in without the backend");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Permission denied") || stderr.contains("agent refused operation"),
        "not a clean refusal: {stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "ssh waited {:?}",
        started.elapsed()
    );

    key.faults.clear();
    let output = login(&setup, &servers.by_key, &auth, &[], "echo after").await;
    assert_logged_in(&output, &servers.by_key, "after");
    agent.stop().await;
}

/// The backend goes away while ssh signs through the PKCS#11 module (every `Sign`
/// dropped): the module answers `CKR_DEVICE_ERROR` within its `timeout`, ssh fails cleanly
/// ("Permission denied"), and a login once the backend is back succeeds.
pub async fn pkcs11_survives_a_backend_outage(key: crate::fixture::FaultyKey) {
    use crate::faults::{Fault, Operation};

    if key.key.public_key().family() == KeyFamily::Ed25519 {
        eprintln!("skipped: OpenSSH 9.2 signs no Ed25519 through PKCS#11 (10.1 does)");
        return;
    }
    let setup = LoginSetup::new().await;
    let ca = login_ca().await;
    let servers = Servers::start(&setup, key.key.as_ref(), ca.as_ref()).await;
    let dir = scratch();
    let env = pkcs11_environment(
        key.child_environment.clone(),
        dir.path(),
        key.key.as_ref(),
        "4s",
    );
    let auth = pkcs11_ssh_options(key.key.as_ref(), None);
    let output = login(&setup, &servers.by_key, &auth, &env, "echo before").await;
    assert_logged_in(&output, &servers.by_key, "before");

    key.faults.inject(Operation::Sign, Fault::Drop, 100_000);
    let started = std::time::Instant::now();
    let output = login(&setup, &servers.by_key, &auth, &env, "echo during").await;
    assert!(!output.status.success(), "logged in without the backend");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Permission denied"),
        "not a clean refusal: {stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "ssh waited {:?}",
        started.elapsed()
    );

    key.faults.clear();
    let output = login(&setup, &servers.by_key, &auth, &env, "echo after").await;
    assert_logged_in(&output, &servers.by_key, "after");
}
