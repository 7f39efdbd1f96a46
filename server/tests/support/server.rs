//! Starts the service in-process on 127.0.0.1 with a configuration written for the test,
//! and stops it when the handle drops.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kmssh_pki::ssh_key::PublicKey;
use kmssh_pki::ssh_key::public::KeyData;
use kmssh_server::{Client, ClientOptions, Config, ServeOptions, Server, ServerError};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The SHA-256 of a token, as `token_sha256` stores it.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A running service.
pub struct Running {
    pub address: SocketAddr,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl Running {
    /// Starts a service whose configuration is `config` (its `listen` should use port 0),
    /// written to `dir/kmssh.toml`.
    pub async fn start(dir: &Path, config: &str) -> Self {
        Self::try_start(dir, config)
            .await
            .expect("the service starts")
    }

    /// As [`Running::start`], returning the error instead.
    pub async fn try_start(dir: &Path, config: &str) -> Result<Self, ServerError> {
        let path = dir.join("kmssh.toml");
        std::fs::write(&path, config).expect("write the configuration");
        let config = Config::load(&path)?;
        let options = ServeOptions {
            insecure_loopback: true,
        };
        let bound = Server::from_config(config, &options).await?.bind().await?;
        let address = bound.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(bound.run_until(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            address,
            dir: dir.to_owned(),
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://ADDRESS`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A plaintext client with `token`.
    pub async fn client(&self, token: Option<&str>) -> Client {
        Client::connect(ClientOptions {
            server: self.url(),
            token: token.map(str::to_owned),
            timeout: Some(Duration::from_secs(20)),
            ..ClientOptions::default()
        })
        .await
        .expect("connect")
    }

    /// Stops the service and waits (at most 30 s) for it to end.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the service stops within 30 s")
            .expect("the service task")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The subject key the tests certify (public only; nothing here logs in with it).
pub const SUBJECT: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR";
/// The token of caller `alice` in [`two_callers_config`].
pub const ALICE: &str = "alice-token-0123456789";
/// The token of caller `ci` in [`two_callers_config`].
pub const CI: &str = "ci-token-9876543210";
/// The AWS-style id that also names `host-ca` in [`two_callers_config`].
pub const HOST_ALIAS: &str = "arn:aws:kms:eu-west-1:111122223333:alias/host-ca";

/// [`SUBJECT`] as key data.
pub fn subject() -> KeyData {
    PublicKey::from_openssh(SUBJECT)
        .expect("key")
        .key_data()
        .clone()
}

/// A service with two ephemeral CA keys and two token callers: `alice` (user certificates
/// from `user-ca` for `dev-*` and herself, at most 8 h) and `ci` (host certificates from
/// `host-ca`, also named by [`HOST_ALIAS`] under provider AWS, for `*.example.com`, at most
/// 7 d); ledger and audit log in `dir`; `extra` appended (e.g. a `[limits]` table).
pub fn two_callers_config(dir: &Path, extra: &str) -> String {
    let dir = dir.display();
    format!(
        r#"
listen = "127.0.0.1:0"

[keys]
user-ca = "local:ephemeral?type=ecdsa"
host-ca = {{ uri = "local:ephemeral?type=ed25519", provider = "aws", aliases = ["{HOST_ALIAS}"] }}

[ledger]
url = "sqlite:{dir}/ledger.db"

[audit]
path = "{dir}/audit.jsonl"

[[caller]]
name = "alice"
policy = "developers"
token_sha256 = "{alice}"

[[caller]]
name = "ci"
policy = "hosts"
token_sha256 = "{ci}"

[policy.developers]
keys = ["user-ca"]
certificate_types = ["user"]
principals = ["dev-*", "{{caller}}"]
max_validity = "8h"

[policy.hosts]
keys = ["host-ca"]
certificate_types = ["host"]
principals = ["*.example.com"]
max_validity = "7d"
{extra}
"#,
        alice = token_hash(ALICE),
        ci = token_hash(CI),
    )
}
