//! A client of any ssh-agent (ours or OpenSSH's): lists identities and asks for
//! signatures. For tests, load tests and tools; ssh itself is the client that matters.

use std::io;
use std::path::Path;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;

use crate::protocol::{IdentityEntry, Request, Response, frame, frame_len};

/// One connection to an agent.
#[derive(Debug)]
pub struct AgentClient {
    stream: UnixStream,
}

impl AgentClient {
    /// Connects to the agent listening at `path`.
    ///
    /// # Errors
    /// The connection's I/O error.
    pub async fn connect(path: &Path) -> io::Result<Self> {
        Ok(Self {
            stream: UnixStream::connect(path).await?,
        })
    }

    /// Sends one request and reads its answer.
    ///
    /// # Errors
    /// I/O errors, and `InvalidData` for an answer that does not decode.
    pub async fn request(&mut self, request: &Request) -> io::Result<Response> {
        let body = request.encode().map_err(io::Error::other)?;
        self.send_raw(&frame(&body)).await?;
        self.read_response().await
    }

    /// Writes raw bytes (a test sends malformed frames this way).
    ///
    /// # Errors
    /// The write's I/O error.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads one answer.
    ///
    /// # Errors
    /// I/O errors, and `InvalidData` for an answer that does not decode.
    pub async fn read_response(&mut self) -> io::Result<Response> {
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix).await?;
        let len = frame_len(prefix).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).await?;
        Response::decode(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The agent's identities.
    ///
    /// # Errors
    /// As [`AgentClient::request`]; `Other` when the agent answers anything else.
    pub async fn identities(&mut self) -> io::Result<Vec<IdentityEntry>> {
        match self.request(&Request::RequestIdentities).await? {
            Response::Identities(entries) => Ok(entries),
            other => Err(io::Error::other(format!("identities answered {other:?}"))),
        }
    }

    /// Asks for a signature of `data` by the key (or certificate) `key_blob`: the SSH
    /// signature blob, or `None` when the agent answers `FAILURE`.
    ///
    /// # Errors
    /// As [`AgentClient::request`]; `Other` for an answer of another kind.
    pub async fn sign(
        &mut self,
        key_blob: &[u8],
        data: &[u8],
        flags: u32,
    ) -> io::Result<Option<Vec<u8>>> {
        let request = Request::Sign {
            key_blob: key_blob.to_vec(),
            data: data.to_vec(),
            flags,
        };
        match self.request(&request).await? {
            Response::Signature(signature) => Ok(Some(signature)),
            Response::Failure => Ok(None),
            other => Err(io::Error::other(format!("sign answered {other:?}"))),
        }
    }
}
