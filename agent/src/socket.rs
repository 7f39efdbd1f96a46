//! The agent's Unix socket: created private (mode 0600, in a directory only its owner can
//! enter, or linked into place without replacing anything), served with a bound on
//! connections, removed when dropped.

use std::future::Future;
use std::io;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use crate::agent::Agent;
use crate::protocol::{ProtocolError, Request, Response, frame, frame_len};

/// At most this many clients at once; more wait to be accepted. Each ssh session keeps one
/// connection open for its life, and every connection holds a descriptor.
pub const MAX_CONNECTIONS: usize = 256;

/// A listening agent socket. Dropping it removes the socket (and the private directory it
/// made).
#[derive(Debug)]
pub struct AgentSocket {
    listener: UnixListener,
    path: PathBuf,
    private_dir: Option<tempfile::TempDir>,
    /// The socket's device and inode, to recognise it at drop.
    inode: Option<(u64, u64)>,
}

impl AgentSocket {
    /// Listens at `path`, or when `None` at `agent.PID` in a new private directory under
    /// the temporary directory (as `ssh-agent` does).
    ///
    /// The socket is made in a private (0700) directory, given mode 0600 and, for an
    /// explicit path, hard-linked into place: the link fails if anything (a socket, a
    /// file, a planted symlink) is already there, and never follows a link.
    ///
    /// # Errors
    /// The I/O error, with the path; `AlreadyExists` when `path` is taken.
    pub fn bind(path: Option<&Path>) -> io::Result<Self> {
        let parent = match path {
            Some(path) => {
                let parent = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                Some(parent.to_path_buf())
            }
            None => None,
        };
        // tempfile makes directories with mode 0700.
        let dir = match &parent {
            Some(parent) => tempfile::Builder::new()
                .prefix(".kmssh-agent-")
                .tempdir_in(parent),
            None => tempfile::Builder::new().prefix("kmssh-agent-").tempdir(),
        }
        .map_err(|e| with_path(e, parent.as_deref().unwrap_or(&std::env::temp_dir())))?;
        // Private before the socket exists in it: only the owner may enter.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| with_path(e, dir.path()))?;
        let staged = dir.path().join(format!("agent.{}", std::process::id()));
        let listener = UnixListener::bind(&staged).map_err(|e| with_path(e, &staged))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| with_path(e, &staged))?;
        match path {
            None => Ok(Self {
                listener,
                path: staged,
                private_dir: Some(dir),
                inode: None,
            }),
            Some(path) => {
                std::fs::hard_link(&staged, path).map_err(|e| with_path(e, path))?;
                let inode = std::fs::symlink_metadata(&staged)
                    .map(|m| (m.dev(), m.ino()))
                    .ok();
                // The staging directory goes; the listener keeps the socket's inode.
                drop(dir);
                Ok(Self {
                    listener,
                    path: path.to_path_buf(),
                    private_dir: None,
                    inode,
                })
            }
        }
    }

    /// Where clients connect (`SSH_AUTH_SOCK`).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves `agent` until `shutdown` completes. Connections from other users are
    /// refused (root's are allowed, as OpenSSH's agent does); each connection is served
    /// in its own task, at most [`MAX_CONNECTIONS`] at once.
    ///
    /// # Errors
    /// An error accepting connections that is not about one client.
    pub async fn serve(
        &self,
        agent: Arc<Agent>,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let mut connections = tokio::task::JoinSet::new();
        let own_uid = std::fs::metadata(&self.path)
            .map(|m| m.uid())
            .map_err(|e| with_path(e, &self.path))?;
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = limit.clone().acquire_owned() => permit.map_err(io::Error::other)?,
            };
            let stream = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) if is_per_connection(&e) => {
                        tracing::warn!("accept: {e}");
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            match stream.peer_cred() {
                Ok(cred) if cred.uid() == own_uid || cred.uid() == 0 => {}
                Ok(cred) => {
                    tracing::warn!(
                        "connection from uid {} refused: not the agent's owner",
                        cred.uid()
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!("connection refused: cannot read its credentials: {e}");
                    continue;
                }
            }
            let agent = agent.clone();
            connections.spawn(async move {
                if let Err(e) = serve_connection(&agent, stream).await {
                    tracing::warn!("client connection closed: {e}");
                }
                drop(permit);
            });
            // Reap finished connections so the set does not grow with the session count.
            while connections.try_join_next().is_some() {}
        }
        connections.shutdown().await;
        Ok(())
    }
}

impl Drop for AgentSocket {
    fn drop(&mut self) {
        // The private directory removes itself. A linked socket is removed by name only
        // while the name still leads to our socket: if someone replaced it since, what is
        // there now is not ours to remove.
        if self.private_dir.is_none()
            && let Ok(there) = std::fs::symlink_metadata(&self.path)
            && Some((there.dev(), there.ino())) == self.inode
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || e.raw_os_error() == Some(24) // EMFILE: wait for a descriptor rather than stop.
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Answers one client's requests in order until it hangs up. A frame too long or empty
/// ends the connection (its boundaries can no longer be trusted); a body that does not
/// decode is answered `FAILURE`.
async fn serve_connection(agent: &Agent, mut stream: UnixStream) -> io::Result<()> {
    loop {
        let mut prefix = [0u8; 4];
        match stream.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = frame_len(prefix).map_err(io::Error::other)?;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;
        let response = match Request::decode(&body) {
            Ok(request) => agent.handle(&request).await,
            Err(e) => {
                tracing::warn!("malformed request answered FAILURE: {e}");
                Response::Failure
            }
        };
        let body = response.encode().unwrap_or_else(|e: ProtocolError| {
            tracing::warn!("answer not sent ({e}): FAILURE instead");
            vec![crate::protocol::SSH_AGENT_FAILURE]
        });
        stream.write_all(&frame(&body)).await?;
    }
}
