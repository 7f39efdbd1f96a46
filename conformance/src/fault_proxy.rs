//! A loopback HTTP/1.1 proxy in front of an emulator that applies the shared fault layer
//! ([`crate::faults`]) to the requests passing through: it counts each request under the
//! [`Operation`] its classifier names, takes the fault due from its [`FaultHandle`], and
//! renders it through the provider's [`Dialect`] (error answers, latency, dropped
//! connections, edited JSON answers). Requests the classifier does not name are forwarded
//! untouched. The proxy lives as long as its handle.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::faults::{Dialect, FaultHandle, Intercept, Operation, edit_answer};
use crate::http::{IO_TIMEOUT, read_message, reason, reframe};

/// Names the operation of a request from its head (start line and headers).
pub type Classifier = fn(&str) -> Option<Operation>;

/// The proxy: one task per connection, faults and counts in its [`FaultHandle`].
pub struct FaultProxy {
    address: SocketAddr,
    faults: FaultHandle,
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
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) forwarding to `upstream`, with a fresh
    /// [`FaultHandle`].
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(
        upstream: SocketAddr,
        dialect: Arc<dyn Dialect>,
        classify: Classifier,
    ) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("address");
        let faults = FaultHandle::new();
        let route = Route {
            upstream,
            faults: faults.clone(),
            dialect,
            classify,
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
            accept,
        }
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
        let mut buffer = Vec::new();
        while let Some(request) = read_message(&mut client, &mut buffer, false).await? {
            let intercept = match (route.classify)(&request.head) {
                Some(operation) => {
                    route
                        .faults
                        .intercept(operation, route.dialect.as_ref())
                        .await
                }
                None => Intercept::Answer(None),
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
                    client.write_all(head.as_bytes()).await?;
                    client.write_all(body.as_bytes()).await?;
                    continue;
                }
                Intercept::Answer(edit) => edit,
            };
            let mut server =
                tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(route.upstream)).await??;
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
            let succeeded = response.head.split_whitespace().nth(1) == Some("200");
            if edit.is_some()
                && succeeded
                && let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&response.body)
            {
                edit_answer(route.dialect.as_ref(), edit.as_ref(), &mut json);
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
