//! kmssh's certificate signing service: paramiko-cloud's `ssh_cert.Signer` gRPC contract,
//! with caller authentication, per-caller policy, an audit log and a ledger.
//!
//! ```no_run
//! # async fn run() -> Result<(), kmssh_server::ServerError> {
//! use kmssh_server::{Config, ServeOptions, Server};
//! let config = Config::load("kmssh.toml".as_ref())?;
//! let server = Server::from_config(config, &ServeOptions::default()).await?;
//! let bound = server.bind().await?;
//! bound.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await?;
//! # Ok(()) }
//! ```

pub mod audit;
pub mod auth;
pub mod client;
pub mod config;
pub mod identity;
pub mod ledger;
pub mod limits;
pub mod policy;
pub mod revocation;
pub mod service;
pub mod wire;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kmssh_core::KmsKey;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tonic::transport::{Certificate as TlsCertificate, Identity as TlsIdentity, ServerTlsConfig};

pub use client::{Client, ClientError, ClientOptions};
pub use config::{Config, ConfigError};
pub use identity::{AuthMethod, Identity};
use service::{CaKey, SignerService};
use wire::proto::signer_server::SignerServer;
use wire::revocation::revocation_server::RevocationServer;

/// What stops the service from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration does not hold.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS is missing where it is required, or its files are unusable.
    #[error("tls: {0}")]
    Tls(String),
    /// A CA key cannot be opened.
    #[error("key `{name}`: {source}")]
    Key {
        /// The configured key name.
        name: String,
        /// Why.
        #[source]
        source: kmssh_core::Error,
    },
    /// The ledger cannot be opened.
    #[error("ledger: {0}")]
    Ledger(#[from] ledger::LedgerError),
    /// The audit log cannot be opened.
    #[error("audit log {path}: {source}")]
    Audit {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The listening socket cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("serving: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// Connections were still open when the shutdown grace period ended (the
    /// configuration keeps requests shorter than the grace period, so these were idle or
    /// stalled); the service stopped waiting for them.
    #[error("connections still open {0:?} after the shutdown signal; stopped waiting for them")]
    ShutdownTimeout(Duration),
}

/// How the service is started.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Allow plaintext gRPC when the listen address is loopback (`--insecure-loopback`).
    pub insecure_loopback: bool,
}

/// A configured service, its keys opened and its ledger ready.
pub struct Server {
    service: Arc<SignerService>,
    listen: SocketAddr,
    tls: Option<ServerTlsConfig>,
    limits: config::Limits,
    request_timeout: Duration,
    shutdown_grace: Duration,
}

impl Server {
    /// Opens every configured key through the backend registry, then builds the service.
    ///
    /// # Errors
    /// [`ServerError`] naming the key, file or setting at fault.
    pub async fn from_config(config: Config, options: &ServeOptions) -> Result<Self, ServerError> {
        let mut keys = BTreeMap::new();
        for name in config.keys.keys() {
            let uri = config.key_uri(name).unwrap_or_default();
            let opened = kmssh_core::open(&uri)
                .await
                .map_err(|source| ServerError::Key {
                    name: name.clone(),
                    source,
                })?;
            keys.insert(name.clone(), opened);
        }
        Self::with_keys(config, keys, options).await
    }

    /// As [`Server::from_config`], with the keys already opened (by name; every configured
    /// key must be given): for library users holding their own [`KmsKey`]s, and tests.
    ///
    /// # Errors
    /// As [`Server::from_config`].
    pub async fn with_keys(
        config: Config,
        mut keys: BTreeMap<String, Arc<dyn KmsKey>>,
        options: &ServeOptions,
    ) -> Result<Self, ServerError> {
        let listen = *config.listen.get_ref();
        let tls = match &config.tls {
            Some(tls) => Some(tls_config(&config, tls)?),
            None if options.insecure_loopback && listen.ip().is_loopback() => None,
            None if options.insecure_loopback => {
                return Err(ServerError::Tls(format!(
                    "{listen} is not a loopback address: --insecure-loopback does not apply; configure [tls]"
                )));
            }
            None => {
                return Err(ServerError::Tls(
                    "no [tls] section: TLS is required (plaintext only on a loopback address with --insecure-loopback)".into(),
                ));
            }
        };
        let mut ca_keys = Vec::new();
        for route in config.key_routes() {
            let key = keys.remove(&route.name).ok_or_else(|| ServerError::Key {
                name: route.name.clone(),
                source: kmssh_core::Error::new(
                    kmssh_core::ErrorKind::NotFound,
                    "configured but not opened",
                ),
            })?;
            ca_keys.push(CaKey::new(route, key));
        }
        let key_names: Vec<&str> = config.keys.keys().map(String::as_str).collect();
        let mut policies = BTreeMap::new();
        for (name, policy) in &config.policy {
            // Already compiled once by Config::parse; this cannot fail differently.
            let compiled =
                policy::Policy::compile(name, policy.get_ref(), &key_names).map_err(|e| {
                    ConfigError::Invalid {
                        path: config.path.clone(),
                        line: 0,
                        key: format!("policy.{name}"),
                        message: e.to_string(),
                    }
                })?;
            policies.insert(name.clone(), compiled);
        }
        let callers: Vec<auth::CallerConfig> =
            config.caller.iter().map(|c| c.get_ref().clone()).collect();
        let authenticator =
            auth::Authenticator::new(&callers, &config.oidc).map_err(|e| ConfigError::Invalid {
                path: config.path.clone(),
                line: 0,
                key: "caller".into(),
                message: e.to_string(),
            })?;
        let ledger = ledger::Ledger::open(&config.ledger_url()).await?;
        let audit = match &config.audit {
            Some(audit) => {
                let path = config.resolve_path(&audit.path);
                Some(
                    audit::AuditLog::open(&path)
                        .map_err(|source| ServerError::Audit { path, source })?,
                )
            }
            None => None,
        };
        let limits = config.limits.clone();
        let service = SignerService {
            keys: ca_keys,
            authenticator,
            policies,
            ledger,
            audit,
            rate: limits::CallerRateLimiter::new(
                limits.caller_requests_per_second,
                limits.caller_burst,
            ),
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            max_request_bytes: limits.max_request_bytes,
        };
        Ok(Self {
            service: Arc::new(service),
            listen,
            tls,
            request_timeout: config.request_timeout(),
            shutdown_grace: config.shutdown_grace(),
            limits,
        })
    }

    /// The ledger the service records to.
    #[must_use]
    pub fn ledger(&self) -> &ledger::Ledger {
        &self.service.ledger
    }

    /// Binds the listening socket (port 0 picks a free one).
    ///
    /// # Errors
    /// [`ServerError::Bind`].
    pub async fn bind(self) -> Result<BoundServer, ServerError> {
        let listener =
            TcpListener::bind(self.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    address: self.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            address: self.listen,
            source,
        })?;
        Ok(BoundServer {
            server: self,
            listener,
            local_addr,
        })
    }
}

fn tls_config(config: &Config, tls: &config::TlsConfig) -> Result<ServerTlsConfig, ServerError> {
    let read = |path: &std::path::Path| {
        let path = config.resolve_path(path);
        read_limited(&path).map_err(|e| ServerError::Tls(format!("{}: {e}", path.display())))
    };
    let identity = TlsIdentity::from_pem(read(&tls.certificate)?, read(&tls.key)?);
    let mut server_tls = ServerTlsConfig::new().identity(identity);
    if let Some(client_ca) = &tls.client_ca {
        // Optional: callers with bearer or OIDC tokens connect without a certificate; a
        // presented certificate must chain to this bundle.
        server_tls = server_tls
            .client_ca_root(TlsCertificate::from_pem(read(client_ca)?))
            .client_auth_optional(true);
    }
    Ok(server_tls)
}

/// Reads a PEM file of at most 1 MiB.
fn read_limited(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    const MAX: u64 = 1024 * 1024;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than 1 MiB",
        ));
    }
    Ok(bytes)
}

/// A service with its socket bound, ready to run.
pub struct BoundServer {
    server: Server,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl BoundServer {
    /// The address it listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for at most
    /// the configured grace period and flushes the ledger.
    ///
    /// # Errors
    /// [`ServerError::Serve`] if serving fails; [`ServerError::ShutdownTimeout`] when
    /// requests outlive the grace period.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            service,
            tls,
            limits,
            request_timeout,
            shutdown_grace,
            ..
        } = self.server;
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<SignerServer<Arc<SignerService>>>()
            .await;
        health_reporter
            .set_serving::<RevocationServer<Arc<SignerService>>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(wire::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ServerError::Tls(format!("reflection: {e}")))?;
        // tonic refuses bigger frames itself (OUT_OF_RANGE); between the configured limit
        // and this cap the service answers INVALID_ARGUMENT naming the limit.
        let frame_cap = limits.max_request_bytes.saturating_mul(4).max(64 * 1024);
        let signer = SignerServer::new(service.clone()).max_decoding_message_size(frame_cap);
        let revocation =
            RevocationServer::new(service.clone()).max_decoding_message_size(frame_cap);
        let mut builder = tonic::transport::Server::builder()
            .timeout(request_timeout)
            .concurrency_limit_per_connection(limits.max_concurrent_per_connection as usize)
            .max_concurrent_streams(limits.max_concurrent_per_connection)
            .tcp_nodelay(true);
        if let Some(tls) = tls {
            builder = builder.tls_config(tls)?;
        }
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections; in-flight requests finish");
            let _ = stopping_tx.send(());
        };
        let incoming = tokio_stream_incoming(self.listener);
        let serve = builder
            .add_service(health)
            .add_service(reflection)
            .add_service(signer)
            .add_service(revocation)
            .serve_with_incoming_shutdown(incoming, signal);
        let grace = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(shutdown_grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let outcome = tokio::select! {
            served = serve => served.map_err(ServerError::from),
            () = grace => Err(ServerError::ShutdownTimeout(shutdown_grace)),
        };
        service.ledger.close().await;
        outcome
    }
}

fn tokio_stream_incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}
