//! The ledger: every certificate issued and every request refused, in SQLite or PostgreSQL.
//!
//! One schema (`server/migrations/`) serves both engines. The service's hot path is
//! [`Ledger::reserve_serial`] plus [`Ledger::record_issued`] per certificate, so both are built for
//! throughput:
//!
//! - serials are reserved from the database in blocks of [`SERIAL_BLOCK`] per CA and handed out
//!   from memory, about one database round trip per block; blocks from different instances (or
//!   handles) sharing a database never overlap;
//! - records go to one writer task that commits whatever has queued up meanwhile in a single
//!   transaction (group commit), and each caller returns once its record's transaction committed.
//!
//! The query side ([`Ledger::list`], [`Ledger::show`], [`Ledger::list_refusals`]) is what the CLI
//! (`kmssh ledger list|show`, `kmssh krl --from-ledger`) uses.
//!
//! Storage of `u64` values in `BIGINT` columns: serials keep their exact bit pattern (serials
//! above 2^63 read back negative in raw SQL, but round-trip exactly); timestamps are clamped to
//! 2^63 − 1, which reads back as `u64::MAX` ("forever"), so time filters compare correctly.

mod db;
mod serials;
mod writer;

use std::sync::Arc;

use kmssh_pki::CertificateType;
use tokio::sync::{mpsc, oneshot};

use db::Pool;
use serials::Serials;
use writer::Job;

/// How many serials an instance reserves from the database at once, per CA. Serials of a block an
/// instance had not used when it stopped are skipped, never reused.
pub const SERIAL_BLOCK: u64 = 256;

/// One certificate issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedRecord {
    /// The certificate's serial, unique per CA.
    pub serial: u64,
    /// The configured name of the CA key that signed it.
    pub ca_key: String,
    /// The CA public key's fingerprint (`SHA256:…`).
    pub ca_fingerprint: String,
    /// The certificate's key ID.
    pub key_id: String,
    /// The certificate's principals, in order.
    pub principals: Vec<String>,
    /// User or host certificate.
    pub cert_type: CertificateType,
    /// Start of validity (unix seconds).
    pub valid_after: u64,
    /// End of validity (unix seconds; `u64::MAX` = forever).
    pub valid_before: u64,
    /// The certified public key's fingerprint (`SHA256:…`).
    pub subject_fingerprint: String,
    /// The configured name of the caller that asked for it.
    pub caller: String,
    /// The request's ID, shared with the audit log and the service's logs.
    pub request_id: String,
    /// When it was issued (unix seconds).
    pub issued_at: u64,
    /// The certificate, as an OpenSSH one-line `…-cert-v01@openssh.com AAAA…` string.
    pub certificate: String,
}

/// One request refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusalRecord {
    /// The configured name of the caller; empty if the request was not authenticated.
    pub caller: String,
    /// What refused it: a policy rule name, `authentication`, …
    pub rule: String,
    /// Why, in one line.
    pub message: String,
    /// The request's ID.
    pub request_id: String,
    /// The CA key the request named, if it got that far.
    pub ca_key: Option<String>,
    /// When (unix seconds).
    pub at: u64,
    /// The peer's address, if known.
    pub peer: Option<String>,
}

/// Which issued certificates [`Ledger::list`] returns: every field set must match (AND).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerFilter {
    /// Only certificates signed by the CA with this fingerprint.
    pub ca_fingerprint: Option<String>,
    /// Only certificates signed by the CA key with this configured name.
    pub ca_key: Option<String>,
    /// Only certificates with exactly this key ID.
    pub key_id: Option<String>,
    /// Only certificates listing exactly this principal.
    pub principal: Option<String>,
    /// Only certificates for this public key (`SHA256:…`): what to revoke when a key leaks.
    pub subject_fingerprint: Option<String>,
    /// Only certificates this caller asked for.
    pub caller: Option<String>,
    /// Only certificates issued at or after this time (unix seconds).
    pub issued_after: Option<u64>,
    /// Only certificates issued before this time (unix seconds).
    pub issued_before: Option<u64>,
    /// Only certificates valid at this time (`valid_after <= t < valid_before`), e.g. "now" to
    /// leave expired certificates out of a KRL.
    pub valid_at: Option<u64>,
    /// At most this many (the most recently issued); `None` = all.
    pub limit: Option<u64>,
}

/// Certificates to revoke, and who asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The CA whose certificates these are.
    pub ca_fingerprint: String,
    /// Their serials.
    pub serials: Vec<u64>,
    /// The configured name of the caller revoking them.
    pub caller: String,
    /// Why (free text, may be empty).
    pub reason: String,
    /// The request's ID.
    pub request_id: String,
    /// When (unix seconds).
    pub at: u64,
}

/// What [`Ledger::revoke`] did with each serial.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevokeOutcome {
    /// Revoked now.
    pub revoked: Vec<u64>,
    /// Revoked before.
    pub already: Vec<u64>,
    /// Not issued by that CA: nothing was revoked then (the transaction is rolled back).
    pub unknown: Vec<u64>,
}

/// Which refusals [`Ledger::list_refusals`] returns: every field set must match (AND).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefusalFilter {
    /// Only refusals of this caller (`""` = unauthenticated requests).
    pub caller: Option<String>,
    /// Only refusals by this rule.
    pub rule: Option<String>,
    /// Only refusals at or after this time (unix seconds).
    pub since: Option<u64>,
    /// At most this many (the most recent); `None` = all.
    pub limit: Option<u64>,
}

/// Why a ledger operation failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LedgerError {
    /// The URL names no supported engine.
    #[error("unsupported ledger URL `{0}`: expected sqlite:PATH or postgres://…")]
    UnsupportedUrl(String),
    /// An in-memory SQLite database: it forgets every certificate when the process ends
    /// (and its shared cache locks whole tables under load).
    #[error("ledger URL `{0}` is in memory: a ledger must outlive the service (use sqlite:PATH)")]
    InMemory(String),
    /// The database could not be opened or reached.
    #[error("cannot open the ledger at {url}: {source}")]
    Open {
        /// The URL, its password removed.
        url: String,
        /// Why.
        source: Arc<sqlx::Error>,
    },
    /// The schema could not be brought up to date.
    #[error("cannot migrate the ledger schema: {0}")]
    Migrate(#[source] Arc<sqlx::migrate::MigrateError>),
    /// A query failed.
    #[error("ledger database error: {0}")]
    Database(#[source] Arc<sqlx::Error>),
    /// The serial is already issued, claimed or reserved for this CA.
    #[error("serial {serial} of CA {ca_fingerprint} is already issued or reserved")]
    Duplicate {
        /// The CA's fingerprint.
        ca_fingerprint: String,
        /// The serial.
        serial: u64,
    },
    /// The CA's serial counter reached 2^63 − 1.
    #[error("the serial counter of CA {0} is exhausted")]
    SerialsExhausted(String),
    /// [`Ledger::close`] was called, or the writer task is gone.
    #[error("the ledger is closed")]
    Closed,
    /// A stored row does not decode.
    #[error("corrupt ledger row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for LedgerError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(Arc::new(e))
    }
}

/// A handle on the ledger database. Cheap to clone; clones share the pool, the serial blocks and
/// the writer task.
///
/// SQLite databases run in WAL mode with `synchronous = NORMAL`: a committed record survives the
/// process crashing, but the last transactions before an operating-system crash or power loss may
/// be lost (WAL's documented trade-off, taken for throughput). PostgreSQL keeps its server's
/// durability settings (by default, a commit is on disk when it returns).
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    jobs: mpsc::Sender<Job>,
    serials: Serials,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("engine", &self.inner.pool.engine())
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `url` and brings its schema up to date.
    ///
    /// `url` is `sqlite:PATH` (the file is created; WAL mode, `synchronous = NORMAL`, 10 s busy
    /// timeout) or `postgres://…` / `postgresql://…`. Must be called inside a Tokio runtime: it
    /// starts the writer task.
    ///
    /// # Errors
    /// An unsupported URL, an unreachable or unopenable database, or a failed migration.
    pub async fn open(url: &str) -> Result<Ledger, LedgerError> {
        let pool = Pool::connect(url).await?;
        pool.migrate().await?;
        let jobs = writer::spawn(pool.clone());
        Ok(Ledger {
            inner: Arc::new(Inner {
                pool,
                jobs,
                serials: Serials::default(),
            }),
        })
    }

    /// The next serial for the CA `ca_fingerprint`: unique across every instance sharing the
    /// database, increasing from 1 within an instance, skipping serials claimed with
    /// [`Ledger::claim_serial`].
    ///
    /// # Errors
    /// A database failure while reserving a new block, or the counter is exhausted.
    pub async fn reserve_serial(&self, ca_fingerprint: &str) -> Result<u64, LedgerError> {
        self.inner
            .serials
            .next(&self.inner.pool, ca_fingerprint)
            .await
    }

    /// Claims a requester-chosen serial for the CA `ca_fingerprint`.
    ///
    /// # Errors
    /// [`LedgerError::Duplicate`] if the serial is already claimed, issued, or inside a block some
    /// instance reserved; a database failure.
    pub async fn claim_serial(&self, ca_fingerprint: &str, serial: u64) -> Result<(), LedgerError> {
        self.inner.pool.claim_serial(ca_fingerprint, serial).await
    }

    /// Records an issued certificate; once this returns `Ok` the record is committed.
    /// Concurrent callers share one transaction (group commit).
    ///
    /// # Errors
    /// [`LedgerError::Duplicate`] if this CA already has a record with this serial;
    /// [`LedgerError::Closed`] after [`Ledger::close`]; a database failure.
    pub async fn record_issued(&self, record: IssuedRecord) -> Result<(), LedgerError> {
        self.submit(|ack| Job::Issued(record, ack)).await
    }

    /// Records a refused request; once this returns `Ok` the record is committed.
    ///
    /// # Errors
    /// [`LedgerError::Closed`] after [`Ledger::close`]; a database failure.
    pub async fn record_refusal(&self, record: RefusalRecord) -> Result<(), LedgerError> {
        self.submit(|ack| Job::Refusal(record, ack)).await
    }

    async fn submit(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<(), LedgerError>>) -> Job,
    ) -> Result<(), LedgerError> {
        let (ack, done) = oneshot::channel();
        self.inner
            .jobs
            .send(job(ack))
            .await
            .map_err(|_| LedgerError::Closed)?;
        done.await.map_err(|_| LedgerError::Closed)?
    }

    /// Issued certificates matching `filter`, most recently issued first.
    ///
    /// # Errors
    /// A database failure or a row that does not decode.
    pub async fn list(&self, filter: &LedgerFilter) -> Result<Vec<IssuedRecord>, LedgerError> {
        self.inner.pool.list(filter).await
    }

    /// The certificates with serial `serial`, of the CA `ca_fingerprint` or of every CA (several
    /// CAs may use the same serial).
    ///
    /// # Errors
    /// A database failure or a row that does not decode.
    pub async fn show(
        &self,
        ca_fingerprint: Option<&str>,
        serial: u64,
    ) -> Result<Vec<IssuedRecord>, LedgerError> {
        self.inner.pool.show(ca_fingerprint, serial).await
    }

    /// Refusals matching `filter`, most recent first.
    ///
    /// # Errors
    /// A database failure.
    pub async fn list_refusals(
        &self,
        filter: &RefusalFilter,
    ) -> Result<Vec<RefusalRecord>, LedgerError> {
        self.inner.pool.list_refusals(filter).await
    }

    /// Revokes certificates the ledger holds: all of them, or none when one serial was not
    /// issued by that CA ([`RevokeOutcome::unknown`]). Revoking again is harmless.
    ///
    /// # Errors
    /// A database failure.
    pub async fn revoke(&self, revocation: &Revocation) -> Result<RevokeOutcome, LedgerError> {
        self.inner.pool.revoke(revocation).await
    }

    /// The revoked serials of the CA `ca_fingerprint`, ascending. Their count is the CA's
    /// KRL version: revocations are never deleted.
    ///
    /// # Errors
    /// A database failure.
    pub async fn revoked_serials(&self, ca_fingerprint: &str) -> Result<Vec<u64>, LedgerError> {
        self.inner.pool.revoked_serials(ca_fingerprint).await
    }

    /// How many certificates the ledger holds.
    ///
    /// # Errors
    /// A database failure.
    pub async fn count_issued(&self) -> Result<u64, LedgerError> {
        self.inner.pool.count_issued().await
    }

    /// Commits every record already submitted, stops the writer and closes the pool. Later
    /// records are refused with [`LedgerError::Closed`]; calling it again does nothing.
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.inner.jobs.send(Job::Close(ack)).await.is_ok() {
            // An error only means the writer already stopped.
            let _ = done.await;
        }
        self.inner.pool.close().await;
    }
}
