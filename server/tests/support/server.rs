//! Starts the service in-process on 127.0.0.1 with a configuration written for the test,
//! and stops it when the handle drops.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
