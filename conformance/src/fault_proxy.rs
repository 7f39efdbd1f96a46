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

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Longest a request or response head may be.
const MAX_HEAD: usize = 64 * 1024;
/// Longest a body may be.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// How long the proxy waits on either side before giving up on a connection.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

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

struct Message {
    head: String,
    body: Vec<u8>,
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads one HTTP/1.1 message (head and body). `None` at a clean end of stream.
async fn read_message(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    to_eof: bool,
) -> std::io::Result<Option<Message>> {
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buffer.len() > MAX_HEAD {
            return Err(std::io::Error::other("HTTP head too long"));
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(IO_TIMEOUT, stream.read(&mut chunk)).await??;
        if n == 0 {
            return if buffer.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    buffer.drain(..head_end);
    let chunked =
        header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
    let mut read_more = async |buffer: &mut Vec<u8>| -> std::io::Result<bool> {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(IO_TIMEOUT, stream.read(&mut chunk)).await??;
        buffer.extend_from_slice(&chunk[..n]);
        if buffer.len() > MAX_BODY {
            return Err(std::io::Error::other("HTTP body too long"));
        }
        Ok(n > 0)
    };
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = buffer.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if !read_more(buffer).await? {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            };
            let size_text = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            while buffer.len() < line_end + 2 + size + 2 {
                if !read_more(buffer).await? {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            body.extend_from_slice(&buffer[line_end + 2..line_end + 2 + size]);
            buffer.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break body;
            }
        }
    } else if let Some(length) = length {
        while buffer.len() < length {
            if !read_more(buffer).await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        buffer.drain(..length).collect()
    } else if to_eof {
        while read_more(buffer).await? {}
        std::mem::take(buffer)
    } else {
        Vec::new()
    };
    Ok(Some(Message { head, body }))
}

/// The head without hop-by-hop framing headers, with ours added.
fn reframe(head: &str, extra: &[(&str, String)]) -> Vec<u8> {
    let mut out = String::new();
    for (i, line) in head.trim_end().lines().enumerate() {
        let name = line.split(':').next().unwrap_or("").trim();
        let framing = [
            "connection",
            "content-length",
            "transfer-encoding",
            "keep-alive",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h));
        if i == 0 || !framing {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
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

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
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
