//! kmssh-agent: an ssh-agent whose keys are held by a KMS (or any kmssh backend), so every
//! OpenSSH client (`ssh`, `scp`, `sftp`, `git`) logs in with them through
//! `SSH_AUTH_SOCK`.
//!
//! - [`protocol`]: the agent protocol (RFC 9987), the subset OpenSSH uses, owned and fuzzed.
//! - [`Agent`]: the keys, each with its certificates; answers identity and sign requests,
//!   signs through the key's backend within a deadline, and refuses with `FAILURE`
//!   (logged) everything that would change what it serves (add, remove, lock, smartcard)
//!   and SHA-1 RSA signatures.
//! - [`AgentSocket`]: a private Unix socket (0600, in a 0700 directory or linked into
//!   place without replacing anything), served with a bound on connections and refusing
//!   other users.
//! - [`Renewal`]: short-lived certificates for the agent's keys from a kmssh CA key,
//!   renewed at two thirds of their life.
//! - [`AgentClient`]: a client of any agent, for tests and tools.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kmssh_agent::{Agent, AgentOptions, AgentSocket};
//! let mut agent = Agent::new(AgentOptions::default());
//! agent.add_key(kmssh_core::open("aws-kms:alias/alice").await?, "alice")?;
//! let socket = AgentSocket::bind(None)?;
//! println!("SSH_AUTH_SOCK={}", socket.path().display());
//! socket.serve(Arc::new(agent), std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! Keys whose provider binds them to one RSA hash (a Cloud KMS `RSA_SIGN_PKCS1_*_SHA256`
//! version) sign only that one: tell ssh with `PubkeyAcceptedAlgorithms rsa-sha2-256`.

#![forbid(unsafe_code)]

mod agent;
mod client;
mod confirm;
pub mod protocol;
mod renewal;
mod socket;

use std::time::Duration;

pub use agent::{Agent, AgentKey, AgentOptions, DEFAULT_SIGN_TIMEOUT};
pub use client::AgentClient;
pub use confirm::Confirm;
pub use renewal::Renewal;
pub use socket::{AgentSocket, MAX_CONNECTIONS};

/// Why the agent refused or could not do something. Refusals of a client's request are
/// logged and answered `FAILURE`; configuration errors stop the agent at start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A sign request for a key the agent does not serve.
    #[error("no such key in this agent")]
    UnknownKey,
    /// A request refused by rule (SHA-1, the confirm command).
    #[error("{0}")]
    Refused(String),
    /// The backend did not answer within the deadline.
    #[error("{uri}: no signature within {after:?}")]
    Timeout {
        /// The key.
        uri: String,
        /// The deadline.
        after: Duration,
    },
    /// The backend failed (or its answer did not verify).
    #[error("{uri}: {source}")]
    Signing {
        /// The key.
        uri: String,
        /// The backend's error.
        #[source]
        source: kmssh_core::Error,
    },
    /// A key the agent cannot serve (a duplicate, an encoding failure).
    #[error("{0}")]
    Key(String),
    /// A certificate that fits none of the keys, or one that could not be issued.
    #[error("{0}")]
    Certificate(String),
}

impl AgentError {
    /// The backend's error kind, when a backend failed.
    #[must_use]
    pub fn kind(&self) -> Option<kmssh_core::ErrorKind> {
        match self {
            Self::Signing { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// Opens each URI (concurrently) and serves it, listed with its URI as comment.
///
/// # Errors
/// The first key that cannot be opened, with its URI, or [`AgentError::Key`] for the
/// same key given twice.
pub async fn open_agent(uris: &[String], options: AgentOptions) -> Result<Agent, AgentError> {
    let opened = futures_join_all(uris).await;
    let mut agent = Agent::new(options);
    for (uri, key) in uris.iter().zip(opened) {
        let key = key.map_err(|source| AgentError::Signing {
            uri: uri.clone(),
            source,
        })?;
        agent.add_key(key, uri.clone())?;
    }
    Ok(agent)
}

async fn futures_join_all(
    uris: &[String],
) -> Vec<kmssh_core::Result<std::sync::Arc<dyn kmssh_core::KmsKey>>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, uri) in uris.iter().enumerate() {
        let uri = uri.clone();
        tasks.spawn(async move { (index, kmssh_core::open(&uri).await) });
    }
    let mut results: Vec<Option<kmssh_core::Result<_>>> = uris.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(kmssh_core::Error::new(
                    kmssh_core::ErrorKind::Unavailable,
                    "the key's open task ended without an answer",
                ))
            })
        })
        .collect()
}
