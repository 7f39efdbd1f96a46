//! A loopback HTTP/1.1 proxy in front of an emulator that applies the shared fault layer
//! ([`crate::faults`]) to the requests passing through: it counts each request under the
//! [`Operation`] its classifier names, takes the fault due from its [`FaultHandle`], and
//! renders it through the provider's [`Dialect`] (error answers, latency, dropped
//! connections, edited JSON answers). Requests the classifier does not name are forwarded
//! untouched. Before any of that, an optional [`Gate`] may answer a request itself (the
//! AWS fixture's checks of the SigV4 signature: the region it is scoped to, access keys
//! to refuse), and every request is recorded ([`FaultProxy::requests`]) so a test can see
//! what the backend sent. After the fault layer, an optional [`ServiceRule`] refuses what
//! the real service refuses but the emulator accepts (AWS KMS's 4096-byte `Message`
//! limit, which ministack does not enforce), so a client that skips its own check fails
//! here as it would in the cloud. The proxy lives as long as its handle.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::faults::{Dialect, ErrorAnswer, FaultHandle, Intercept, Operation, edit_answer};
use crate::http::{IO_TIMEOUT, Message, read_message, reason, reframe};

/// Names the operation of a request from its head (start line and headers).
pub type Classifier = fn(&str) -> Option<Operation>;

/// Looks at a request (its operation, if the classifier named one) before the fault
/// layer and the emulator do, and answers it itself when it returns an answer.
pub type Gate = Arc<dyn Fn(Option<Operation>, &Message) -> Option<ErrorAnswer> + Send + Sync>;

/// The real service's own validation of a request the emulator lacks: an answer refuses
/// the request as the service would, without forwarding it. It runs after the fault layer
/// has counted the request, as the service sees (and bills) a request it refuses.
pub type ServiceRule = fn(Option<Operation>, &Message) -> Option<ErrorAnswer>;

/// A request the proxy saw, as it arrived.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The operation the classifier named, if any.
    pub operation: Option<Operation>,
    /// Start line and headers.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

/// The proxy: one task per connection, faults and counts in its [`FaultHandle`].
pub struct FaultProxy {
    address: SocketAddr,
    faults: FaultHandle,
    gate: Arc<Mutex<Option<Gate>>>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    accept: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

#[derive(Clone)]
struct Route {
    upstream: SocketAddr,
    faults: FaultHandle,
    dialect: Arc<dyn Dialect>,
    classify: Classifier,
    gate: Arc<Mutex<Option<Gate>>>,
    rule: Option<ServiceRule>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
}

/// The most requests a proxy records (a bound on its memory; later ones are not kept).
const MAX_RECORDED: usize = 10_000;

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) forwarding to `upstream`, with a fresh
    /// [`FaultHandle`] and no [`ServiceRule`].
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(
        upstream: SocketAddr,
        dialect: Arc<dyn Dialect>,
        classify: Classifier,
    ) -> Self {
        Self::start_with_rule(upstream, dialect, classify, None).await
    }

    /// As [`FaultProxy::start`], refusing what `rule` refuses instead of forwarding it.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start_with_rule(
        upstream: SocketAddr,
        dialect: Arc<dyn Dialect>,
        classify: Classifier,
        rule: Option<ServiceRule>,
    ) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("address");
        let faults = FaultHandle::new();
        let gate = Arc::new(Mutex::new(None));
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let route = Route {
            upstream,
            faults: faults.clone(),
            dialect,
            classify,
            gate: Arc::clone(&gate),
            rule,
            recorded: Arc::clone(&recorded),
        };
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let route = route.clone();
                tokio::spawn(async move {
                    let _ = Self::serve(client, route).await;
                });
            }
        });
        Self {
            address,
            faults,
            gate,
            recorded,
            accept,
        }
    }

    /// Puts `gate` in front of every later request (`None`: no gate).
    pub fn set_gate(&self, gate: Option<Gate>) {
        *self.gate.lock().unwrap_or_else(PoisonError::into_inner) = gate;
    }

    /// Every request seen so far (up to the first 10,000), in order of arrival.
    #[must_use]
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests for `operation` arrived, gated and faulted ones included.
    #[must_use]
    pub fn count(&self, operation: Operation) -> usize {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|r| r.operation == Some(operation))
            .count()
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The proxy's fault queue and counters.
    #[must_use]
    pub fn faults(&self) -> &FaultHandle {
        &self.faults
    }

    async fn serve(mut client: TcpStream, route: Route) -> std::io::Result<()> {
        client.set_nodelay(true)?;
        let mut buffer = Vec::new();
        while let Some(request) = read_message(&mut client, &mut buffer, false).await? {
            let operation = (route.classify)(&request.head);
            {
                let mut recorded = route
                    .recorded
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if recorded.len() < MAX_RECORDED {
                    recorded.push(Recorded {
                        operation,
                        head: request.head.clone(),
                        body: request.body.clone(),
                    });
                }
            }
            let gate = route
                .gate
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let gated = gate.and_then(|gate| gate(operation, &request));
            let intercept = match (gated, operation) {
                (Some(answer), _) => Intercept::Respond(answer),
                (None, Some(operation)) => {
                    route
                        .faults
                        .intercept(operation, route.dialect.as_ref())
                        .await
                }
                (None, None) => Intercept::Answer(None),
            };
            // What would reach the service is validated as the service does.
            let intercept = match (intercept, route.rule) {
                (Intercept::Answer(edit), Some(rule)) => match rule(operation, &request) {
                    Some(answer) => Intercept::Respond(answer),
                    None => Intercept::Answer(edit),
                },
                (intercept, _) => intercept,
            };
            let edit = match intercept {
                Intercept::Drop => return Ok(()),
                Intercept::Respond(answer) => {
                    let body = answer.body.to_string();
                    let mut head =
                        format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
                    for (name, value) in answer.headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                    head.push_str(&body);
                    client.write_all(head.as_bytes()).await?;
                    continue;
                }
                Intercept::Answer(edit) => edit,
            };
            let mut server =
                tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(route.upstream)).await??;
            // Nagle's algorithm would hold a second small write until the peer's delayed
            // ACK (40 ms a request): no delay, and head and body in one write.
            server.set_nodelay(true)?;
            let length = request.body.len().to_string();
            let mut bytes = reframe(
                &request.head,
                &[("Content-Length", length), ("Connection", "close".into())],
            );
            bytes.extend_from_slice(&request.body);
            server.write_all(&bytes).await?;
            let mut upstream_buffer = Vec::new();
            let Some(mut response) = read_message(&mut server, &mut upstream_buffer, true).await?
            else {
                return Ok(());
            };
            let succeeded = response.head.split_whitespace().nth(1) == Some("200");
            if edit.is_some()
                && succeeded
                && let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&response.body)
            {
                edit_answer(route.dialect.as_ref(), edit.as_ref(), &mut json);
                response.body = serde_json::to_vec(&json).unwrap_or_default();
            }
            let length = response.body.len().to_string();
            let mut bytes = reframe(&response.head, &[("Content-Length", length)]);
            bytes.extend_from_slice(&response.body);
            client.write_all(&bytes).await?;
        }
        Ok(())
    }
}
