//! Just enough HTTP/1.1 for loopback test servers and the fault proxy: read one message
//! (head and body, `Content-Length` or chunked), and re-frame a head.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest a request or response head may be.
pub const MAX_HEAD: usize = 64 * 1024;
/// Longest a body may be.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// How long either side of a connection may stay silent before it is given up.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One HTTP message.
pub struct Message {
    /// Start line and headers, up to and including the blank line.
    pub head: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// A header's value (names compared case-insensitively).
#[must_use]
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads one HTTP/1.1 message (head and body). `None` at a clean end of stream; with
/// `to_eof`, a body without length runs to the end of the stream.
///
/// # Errors
/// I/O errors, a timeout, or a malformed or oversized message.
pub async fn read_message<S: AsyncRead + Unpin>(
    stream: &mut S,
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
#[must_use]
pub fn reframe(head: &str, extra: &[(&str, String)]) -> Vec<u8> {
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

/// The reason phrase for a status code.
#[must_use]
pub fn reason(status: u16) -> &'static str {
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

/// Serves 127.0.0.1 (a free port) from a thread of its own with a single-threaded
/// runtime, handing each connection and the listening address to `serve`. The server
/// lives as long as the process (in-process emulators: nothing to stop).
///
/// # Panics
/// If no loopback port can be bound.
pub fn spawn_loopback_server<F, Fut>(thread_name: &str, serve: F) -> SocketAddr
where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(thread_name.to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .expect("bind loopback");
                let address = listener.local_addr().expect("address");
                sender.send(address).expect("report address");
                while let Ok((stream, _)) = listener.accept().await {
                    // Answers are small: without this, a response written in two parts
                    // waits up to 40 ms for the client's delayed ACK (Nagle).
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(stream, address));
                }
            });
        })
        .expect("server thread");
    receiver.recv().expect("server address")
}
