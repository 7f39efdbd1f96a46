//! Approval of each signature by an outside command, as `ssh-add -c` does with
//! `ssh-askpass`.

use std::process::Stdio;
use std::time::Duration;

use kmssh_core::Algorithm;

use crate::AgentError;
use crate::agent::AgentKey;

/// A command run (through `/bin/sh -c`) before each signature; exit status 0 approves.
/// It learns what is asked from its environment: `KMSSH_AGENT_KEY` (the key's URI),
/// `KMSSH_AGENT_COMMENT`, `KMSSH_AGENT_FINGERPRINT` (SHA-256) and
/// `KMSSH_AGENT_ALGORITHM`. Its standard input is closed; its output goes to the agent's
/// standard error.
#[derive(Clone, Debug)]
pub struct Confirm {
    command: String,
}

impl Confirm {
    /// A confirm step running `command`.
    #[must_use]
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
        }
    }

    /// The command line.
    #[must_use]
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Runs the command for one signature with `key`, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`AgentError::Refused`] when it exits non-zero, cannot run, or takes too long (it
    /// is killed then).
    pub async fn approve(
        &self,
        key: &AgentKey,
        algorithm: Algorithm,
        timeout: Duration,
    ) -> Result<(), AgentError> {
        let fingerprint = key
            .public_key()
            .fingerprint(kmssh_pki::ssh_key::HashAlg::Sha256)
            .to_string();
        let mut child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&self.command)
            .env("KMSSH_AGENT_KEY", key.key().uri().to_string())
            .env("KMSSH_AGENT_COMMENT", key.comment())
            .env("KMSSH_AGENT_FINGERPRINT", fingerprint)
            .env("KMSSH_AGENT_ALGORITHM", algorithm.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| AgentError::Refused(format!("confirm command cannot run: {e}")))?;
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(AgentError::Refused(format!(
                "confirm command refused the signature ({status})"
            ))),
            Ok(Err(e)) => Err(AgentError::Refused(format!("confirm command failed: {e}"))),
            Err(_) => {
                let _ = child.kill().await;
                Err(AgentError::Refused(format!(
                    "confirm command gave no answer within {timeout:?}"
                )))
            }
        }
    }
}
