//! A loopback HTTP/1.1 proxy in front of an emulator that counts requests per operation
//! and injects faults: canned error answers (throttling, 5xx), latency, dropped
//! connections, and rewritten JSON answers (a corrupted signature, a changed field).
//!
//! The operation of a request is the part after the dot of its `X-Amz-Target` header
//! (AWS JSON protocols: `TrentService.Sign` → `Sign`), or else `METHOD PATH` without the
//! query. The proxy lives as long as its handle.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::http::{IO_TIMEOUT, header, read_message, reason, reframe};

/// Rewrites a JSON answer in place.
pub type Rewrite = Arc<dyn Fn(&mut serde_json::Value) + Send + Sync>;

/// What to do to a request instead of (or on top of) forwarding it.
#[derive(Clone)]
pub enum Fault {
    /// Answer this, without forwarding.
    Respond {
        /// HTTP status.
        status: u16,
        /// Extra headers (`Content-Length` is added).
        headers: Vec<(String, String)>,
        /// The body.
        body: String,
    },
    /// Wait this long, then forward.
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
    /// Forward, then rewrite the JSON answer.
    Rewrite(Rewrite),
}

impl std::fmt::Debug for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Respond { status, .. } => write!(f, "Respond({status})"),
            Self::Delay(d) => write!(f, "Delay({d:?})"),
            Self::Drop => f.write_str("Drop"),
            Self::Rewrite(_) => f.write_str("Rewrite"),
        }
    }
}

#[derive(Default)]
struct State {
    counts: HashMap<String, usize>,
    /// (operation, fault, how many more requests it applies to)
    faults: Vec<(String, Fault, usize)>,
}

/// The proxy: counts and faults behind a lock, one task per connection.
pub struct FaultProxy {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn operation(head: &str) -> String {
    if let Some(target) = header(head, "x-amz-target") {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
    format!("{method} {path}")
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) forwarding to `upstream`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = Self::serve(client, upstream, state).await;
                });
            }
        });
        Self {
            address,
            state,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Requests seen for an operation so far.
    #[must_use]
    pub fn count(&self, operation: &str) -> usize {
        self.lock().counts.get(operation).copied().unwrap_or(0)
    }

    /// Applies `fault` to the next `times` requests for `operation`.
    pub fn inject(&self, operation: &str, fault: Fault, times: usize) {
        self.lock()
            .faults
            .push((operation.to_owned(), fault, times));
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn serve(
        mut client: TcpStream,
        upstream: SocketAddr,
        state: Arc<Mutex<State>>,
    ) -> std::io::Result<()> {
        let mut buffer = Vec::new();
        while let Some(request) = read_message(&mut client, &mut buffer, false).await? {
            let op = operation(&request.head);
            let fault = {
                let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                *state.counts.entry(op.clone()).or_default() += 1;
                let found = state
                    .faults
                    .iter_mut()
                    .find(|(o, _, left)| *o == op && *left > 0);
                found.map(|(_, fault, left)| {
                    *left -= 1;
                    fault.clone()
                })
            };
            let mut rewrite = None;
            match fault {
                Some(Fault::Drop) => return Ok(()),
                Some(Fault::Respond {
                    status,
                    headers,
                    body,
                }) => {
                    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
                    for (name, value) in headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                    client.write_all(head.as_bytes()).await?;
                    client.write_all(body.as_bytes()).await?;
                    continue;
                }
                Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
                Some(Fault::Rewrite(f)) => rewrite = Some(f),
                None => {}
            }
            let mut server =
                tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(upstream)).await??;
            let length = request.body.len().to_string();
            server
                .write_all(&reframe(
                    &request.head,
                    &[("Content-Length", length), ("Connection", "close".into())],
                ))
                .await?;
            server.write_all(&request.body).await?;
            let mut upstream_buffer = Vec::new();
            let Some(mut response) = read_message(&mut server, &mut upstream_buffer, true).await?
            else {
                return Ok(());
            };
            if let Some(rewrite) = rewrite
                && let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&response.body)
            {
                rewrite(&mut json);
                response.body = serde_json::to_vec(&json).unwrap_or_default();
            }
            let length = response.body.len().to_string();
            client
                .write_all(&reframe(&response.head, &[("Content-Length", length)]))
                .await?;
            client.write_all(&response.body).await?;
        }
        Ok(())
    }
}
