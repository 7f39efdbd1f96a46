//! The agent over local keys, judged by OpenSSH's own agent clients (`ssh-add`,
//! `ssh-keygen -Y sign` through `SSH_AUTH_SOCK`) and by raw protocol messages: what it lists,
//! what it signs, what it refuses, and how its socket is made.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kmssh_agent::protocol::{
    Request, Response, SSH_AGENT_RSA_SHA2_256, SSH_AGENT_RSA_SHA2_512,
    SSH_AGENTC_ADD_ID_CONSTRAINED, SSH_AGENTC_ADD_IDENTITY, SSH_AGENTC_ADD_SMARTCARD_KEY,
    SSH_AGENTC_LOCK, SSH_AGENTC_REMOVE_ALL_IDENTITIES, SSH_AGENTC_REMOVE_IDENTITY,
    SSH_AGENTC_UNLOCK, frame,
};
use kmssh_agent::{Agent, AgentClient, AgentOptions, AgentSocket, Confirm, Renewal};
use kmssh_core::KmsKey;
use kmssh_pki::ssh_key::encoding::Encode as _;
use kmssh_pki::{CertificateParameters, pubkey_string, ssh_public_key};
use tokio::process::Command;

use kmssh_backend_local as _;

/// A running agent on a socket in a scratch directory, stopped when dropped.
struct Running {
    dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    agent: Arc<Agent>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    async fn start(agent: Agent) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("agent.sock");
        let bound = AgentSocket::bind(Some(&socket)).expect("bind");
        let agent = Arc::new(agent);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = {
            let agent = agent.clone();
            tokio::spawn(async move {
                bound
                    .serve(agent, async move {
                        let _ = stopped.await;
                    })
                    .await
            })
        };
        Self {
            dir,
            socket,
            agent,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn client(&self) -> AgentClient {
        AgentClient::connect(&self.socket).await.expect("connect")
    }

    fn tool(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("SSH_AUTH_SOCK", &self.socket)
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("agent task").expect("serve");
        }
    }
}

async fn run(command: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("within 30 s")
        .expect("runs")
}

async fn key(spec: &str) -> Arc<dyn KmsKey> {
    kmssh_core::open(&format!("local:ephemeral?type={spec}"))
        .await
        .expect("local key")
}

fn blob(key: &dyn KmsKey) -> Vec<u8> {
    ssh_public_key(key.public_key()).encode_vec().expect("blob")
}

/// `ssh-add -L` lists each key (and a certificate before its key) as `kmssh pubkey`
/// prints them, with the comment given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_add_lists_keys_and_certificates() {
    let (ecdsa, rsa, ed25519) = (key("ecdsa").await, key("rsa").await, key("ed25519").await);
    let mut agent = Agent::new(AgentOptions::default());
    let first = agent.add_key(ecdsa.clone(), "first").expect("add");
    agent.add_key(rsa.clone(), "").expect("add");
    agent.add_key(ed25519.clone(), "third").expect("add");
    let err = agent
        .add_key(ecdsa.clone(), "again")
        .expect_err("a key twice");
    assert!(err.to_string().contains("same key"), "{err}");

    let ca = key("ecdsa").await;
    let mut params = CertificateParameters::user();
    params.principal("alice").expect("principal");
    let renewal = Renewal::new(ca, params, Duration::from_secs(3600)).expect("renewal");
    let certificate = renewal.renew(&first).await.expect("certificate");
    let running = Running::start(agent).await;

    let listed = run(running.tool("ssh-add").arg("-L")).await;
    assert!(listed.status.success(), "{listed:?}");
    let lines: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines,
        vec![
            certificate.cert_string("first"),
            pubkey_string(ecdsa.public_key(), "first"),
            // The comment goes out as given (ssh-add prints it raw); `pubkey_string` would
            // replace the URI's `?`.
            format!("{} {}", pubkey_string(rsa.public_key(), ""), rsa.uri()),
            pubkey_string(ed25519.public_key(), "third"),
        ]
    );
    running.stop().await;
}

/// `ssh-keygen -Y sign` through the agent makes SSH signatures that `ssh-keygen -Y verify`
/// accepts, for every key type; RSA signs rsa-sha2-512 (what ssh-keygen asks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_through_the_agent_verify_with_ssh_keygen() {
    let mut agent = Agent::new(AgentOptions::default());
    let mut keys = Vec::new();
    for spec in [
        "ecdsa",
        "ecdsa&curve=p384",
        "ecdsa&curve=p521",
        "rsa",
        "ed25519",
    ] {
        let key = key(spec).await;
        agent.add_key(key.clone(), spec).expect("add");
        keys.push((spec, key));
    }
    let running = Running::start(agent).await;
    let dir = running.dir.path();
    std::fs::write(dir.join("message"), b"signed through kmssh's agent\n").expect("write");
    for (spec, key) in keys {
        let public = dir.join("key.pub");
        std::fs::write(&public, pubkey_string(key.public_key(), spec)).expect("write .pub");
        let _ = std::fs::remove_file(dir.join("message.sig"));
        let signed = run(running
            .tool("ssh-keygen")
            .args(["-Y", "sign", "-n", "file", "-f"])
            .arg(&public)
            .arg("message"))
        .await;
        assert!(signed.status.success(), "{spec}: {signed:?}");
        std::fs::write(
            dir.join("allowed"),
            format!("signer {}\n", pubkey_string(key.public_key(), "")),
        )
        .expect("write allowed signers");
        let verified = run(running
            .tool("ssh-keygen")
            .args([
                "-Y",
                "verify",
                "-n",
                "file",
                "-I",
                "signer",
                "-f",
                "allowed",
                "-s",
                "message.sig",
            ])
            .stdin(std::fs::File::open(dir.join("message")).expect("message")))
        .await;
        assert!(verified.status.success(), "{spec}: {verified:?}");
    }
    running.stop().await;
}

/// Add, remove, lock and smartcard requests are answered FAILURE, by `ssh-add` and as raw
/// messages, and change nothing: the keys are still listed and still sign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_refused() {
    let ecdsa = key("ecdsa").await;
    let mut agent = Agent::new(AgentOptions::default());
    agent.add_key(ecdsa.clone(), "kms").expect("add");
    let running = Running::start(agent).await;
    let dir = running.dir.path();
    let own = dir.join("own_key");
    let made = run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&own))
    .await;
    assert!(made.status.success(), "{made:?}");

    let added = run(running.tool("ssh-add").arg(&own)).await;
    assert!(!added.status.success(), "ssh-add added a key: {added:?}");
    let removed = run(running.tool("ssh-add").arg("-D")).await;
    assert!(!removed.status.success(), "ssh-add -D: {removed:?}");
    let pubfile = dir.join("kms.pub");
    std::fs::write(&pubfile, pubkey_string(ecdsa.public_key(), "kms")).expect("write");
    let removed = run(running.tool("ssh-add").arg("-d").arg(&pubfile)).await;
    assert!(!removed.status.success(), "ssh-add -d: {removed:?}");

    let mut client = running.client().await;
    for kind in [
        SSH_AGENTC_ADD_IDENTITY,
        SSH_AGENTC_REMOVE_IDENTITY,
        SSH_AGENTC_REMOVE_ALL_IDENTITIES,
        SSH_AGENTC_ADD_SMARTCARD_KEY,
        SSH_AGENTC_LOCK,
        SSH_AGENTC_UNLOCK,
        SSH_AGENTC_ADD_ID_CONSTRAINED,
        99,
    ] {
        assert_eq!(
            client
                .request(&Request::Other(kind))
                .await
                .expect("answered"),
            Response::Failure,
            "type {kind}"
        );
    }
    assert_eq!(
        client
            .request(&Request::Extension("session-bind@openssh.com".into()))
            .await
            .expect("answered"),
        Response::Failure
    );
    let listed = client.identities().await.expect("identities");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].blob, blob(ecdsa.as_ref()));
    assert!(
        client
            .sign(&listed[0].blob, b"still signs", 0)
            .await
            .expect("answered")
            .is_some()
    );
    running.stop().await;
}

/// An RSA key signs rsa-sha2-256 or rsa-sha2-512 as the flags ask, and refuses SHA-1
/// (`ssh-rsa`, no flag); an unknown key is refused; every signature verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_flags_choose_the_hash_and_sha1_is_refused() {
    let rsa = key("rsa").await;
    let mut agent = Agent::new(AgentOptions::default());
    agent.add_key(rsa.clone(), "rsa").expect("add");
    let running = Running::start(agent).await;
    let mut client = running.client().await;
    let key_blob = blob(rsa.as_ref());
    for (flags, name) in [
        (SSH_AGENT_RSA_SHA2_256, "rsa-sha2-256"),
        (SSH_AGENT_RSA_SHA2_512, "rsa-sha2-512"),
        (
            SSH_AGENT_RSA_SHA2_256 | SSH_AGENT_RSA_SHA2_512,
            "rsa-sha2-256",
        ),
    ] {
        let signature = client
            .sign(&key_blob, b"data", flags)
            .await
            .expect("answered")
            .expect("signed");
        let parsed =
            kmssh_pki::ssh_key::Signature::try_from(signature.as_slice()).expect("SSH signature");
        assert_eq!(parsed.algorithm().as_str(), name, "flags {flags:#x}");
        let public = ssh_public_key(rsa.public_key());
        signature::Verifier::verify(&public, b"data", &parsed).expect("verifies");
    }
    assert_eq!(
        client.sign(&key_blob, b"data", 0).await.expect("answered"),
        None,
        "SHA-1 signed"
    );
    let other = key("ecdsa").await;
    assert_eq!(
        client
            .sign(&blob(other.as_ref()), b"data", 0)
            .await
            .expect("answered"),
        None,
        "an unknown key signed"
    );
    running.stop().await;
}

/// A body that does not decode is answered FAILURE on the same connection; a frame over
/// the limit (or empty) ends that connection only; the agent serves the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_do_not_stop_the_agent() {
    let ecdsa = key("ecdsa").await;
    let mut agent = Agent::new(AgentOptions::default());
    agent.add_key(ecdsa, "kms").expect("add");
    let running = Running::start(agent).await;

    let mut client = running.client().await;
    // A sign request whose key blob says it is longer than the message.
    client
        .send_raw(&frame(&[13, 0, 0, 1, 0, 1, 2]))
        .await
        .expect("send");
    assert_eq!(
        client.read_response().await.expect("answer"),
        Response::Failure
    );
    // Trailing bytes after a request for identities.
    client.send_raw(&frame(&[11, 0])).await.expect("send");
    assert_eq!(
        client.read_response().await.expect("answer"),
        Response::Failure
    );
    assert_eq!(client.identities().await.expect("identities").len(), 1);

    for prefix in [[0x7f, 0xff, 0xff, 0xff], [0, 0, 0, 0]] {
        let mut client = running.client().await;
        client.send_raw(&prefix).await.expect("send");
        assert!(
            client.read_response().await.is_err(),
            "the connection stays open after {prefix:?}"
        );
    }
    let mut client = running.client().await;
    assert_eq!(client.identities().await.expect("identities").len(), 1);
    running.stop().await;
}

/// The socket is 0600 and removed at stop; a path already taken (a file, a planted
/// symlink) is refused and left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_private_and_never_replaces_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.sock");
    let socket = AgentSocket::bind(Some(&path)).expect("bind");
    let mode = std::fs::symlink_metadata(&path)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("list").count(),
        1,
        "the staging directory is left behind"
    );
    drop(socket);
    assert!(!path.exists(), "the socket outlived its agent");

    let taken = dir.path().join("taken");
    std::fs::write(&taken, "precious").expect("write");
    let err = AgentSocket::bind(Some(&taken)).expect_err("a file is there");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert_eq!(std::fs::read_to_string(&taken).expect("kept"), "precious");

    let target = dir.path().join("target");
    let planted = dir.path().join("planted");
    std::os::unix::fs::symlink(&target, &planted).expect("symlink");
    let err = AgentSocket::bind(Some(&planted)).expect_err("a symlink is there");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert!(!target.exists(), "followed the symlink");

    let default = AgentSocket::bind(None).expect("bind in a private directory");
    let parent = default.path().parent().expect("its directory").to_owned();
    let mode = std::fs::metadata(&parent)
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    drop(default);
    assert!(!parent.exists(), "the private directory outlived its agent");
}

/// With a confirm command, a signature happens only when it exits 0, and it sees which
/// key is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirm_command_approves_or_refuses() {
    let ecdsa = key("ecdsa").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let seen = dir.path().join("seen");
    let decision = dir.path().join("decision");
    let command = format!(
        "printf '%s %s' \"$KMSSH_AGENT_COMMENT\" \"$KMSSH_AGENT_ALGORITHM\" > '{}'; test -e '{}'",
        seen.display(),
        decision.display()
    );
    let mut agent = Agent::new(AgentOptions {
        confirm: Some(Confirm::new(command)),
        ..AgentOptions::default()
    });
    agent.add_key(ecdsa.clone(), "guarded").expect("add");
    let running = Running::start(agent).await;
    let mut client = running.client().await;
    let key_blob = blob(ecdsa.as_ref());
    assert_eq!(
        client.sign(&key_blob, b"x", 0).await.expect("answered"),
        None
    );
    assert_eq!(
        std::fs::read_to_string(&seen).expect("the command ran"),
        "guarded ECDSA P-256"
    );
    std::fs::write(&decision, "yes").expect("approve");
    assert!(
        client
            .sign(&key_blob, b"x", 0)
            .await
            .expect("answered")
            .is_some()
    );
    running.stop().await;
}

/// Load: 1,000 sign requests from 16 concurrent clients, each answered with a signature
/// that verifies. Prints the rate (no timing assertion).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_signatures_for_sixteen_clients() {
    const CLIENTS: usize = 16;
    const PER_CLIENT: usize = 1000 / CLIENTS + 1;
    let ecdsa = key("ecdsa").await;
    let mut agent = Agent::new(AgentOptions::default());
    agent.add_key(ecdsa.clone(), "load").expect("add");
    let running = Running::start(agent).await;
    let key_blob = Arc::new(blob(ecdsa.as_ref()));
    let public = Arc::new(ssh_public_key(ecdsa.public_key()));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client_index in 0..CLIENTS {
        let socket = running.socket.clone();
        let (key_blob, public) = (key_blob.clone(), public.clone());
        tasks.spawn(async move {
            let mut client = AgentClient::connect(&socket).await.expect("connect");
            let mut latencies = Vec::with_capacity(PER_CLIENT);
            for i in 0..PER_CLIENT {
                let data = format!("client {client_index} request {i}");
                let one = Instant::now();
                let signature = client
                    .sign(&key_blob, data.as_bytes(), 0)
                    .await
                    .expect("answered")
                    .expect("signed");
                latencies.push(one.elapsed());
                let parsed = kmssh_pki::ssh_key::Signature::try_from(signature.as_slice())
                    .expect("SSH signature");
                signature::Verifier::verify(public.as_ref(), data.as_bytes(), &parsed)
                    .expect("verifies");
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.expect("client task"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let p = |per_mille: usize| latencies[(latencies.len() - 1) * per_mille / 1000];
    eprintln!(
        "agent load: {} signatures from {CLIENTS} clients in {elapsed:?} ({:.0}/s), p50 {:?}, p99 {:?}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        p(500),
        p(990)
    );
    assert!(latencies.len() >= 1000);
    assert_eq!(running.agent.keys().len(), 1);
    running.stop().await;
}
