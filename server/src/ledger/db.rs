//! SQL for both engines. Every statement is written once and run against whichever pool the
//! ledger opened (`with_pool!` expands the body for each), using placeholders both accept.

use std::borrow::Cow;
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use kmssh_pki::CertificateType;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ColumnIndex, Decode, QueryBuilder, Row, SqlSafeStr, Type};

use super::{
    IssuedRecord, LedgerError, LedgerFilter, RefusalFilter, RefusalRecord, Revocation,
    RevokeOutcome,
};

/// SQLite waits this long for another connection's write lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows per multi-row INSERT: 13 parameters a row stays far below both engines' limits
/// (SQLite 32,766; PostgreSQL 65,535).
const INSERT_CHUNK: usize = 256;

const ISSUED_COLUMNS: &str = "ca_fingerprint, serial, ca_key, key_id, principals, cert_type, \
     valid_after, valid_before, subject_fingerprint, caller, request_id, issued_at, certificate";
const REFUSAL_COLUMNS: &str = "caller, rule, message, request_id, ca_key, at, peer";

/// The embedded schema. Built with sqlx's public constructor rather than `sqlx::migrate!`, which
/// needs sqlx's `macros` feature (a second, host-side build of both database drivers); the
/// version, description and checksum are those `sqlx migrate` derives from the same file, so the
/// two stay interchangeable.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            Cow::Borrowed("ledger"),
            MigrationType::Simple,
            include_str!("../../migrations/0001_ledger.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            Cow::Borrowed("revocations"),
            MigrationType::Simple,
            include_str!("../../migrations/0002_revocations.sql").into_sql_str(),
            false,
        ),
    ])
}

/// The database behind a ledger.
#[derive(Clone, Debug)]
pub(super) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the concrete pool, whichever engine it is.
macro_rules! with_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

/// Serials keep their bit pattern in a BIGINT.
#[allow(clippy::cast_possible_wrap)]
pub(super) fn serial_to_db(serial: u64) -> i64 {
    serial as i64
}

#[allow(clippy::cast_sign_loss)]
fn serial_from_db(serial: i64) -> u64 {
    serial as u64
}

/// Timestamps beyond 2^63 − 1 all mean "forever"; clamping keeps comparisons right.
fn time_to_db(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn time_from_db(t: i64) -> Result<u64, LedgerError> {
    if t == i64::MAX {
        return Ok(u64::MAX);
    }
    u64::try_from(t).map_err(|_| LedgerError::Corrupt(format!("negative timestamp {t}")))
}

fn cert_type_to_db(t: CertificateType) -> &'static str {
    t.as_str()
}

fn cert_type_from_db(t: &str) -> Result<CertificateType, LedgerError> {
    match t {
        "user" => Ok(CertificateType::User),
        "host" => Ok(CertificateType::Host),
        other => Err(LedgerError::Corrupt(format!(
            "unknown certificate type `{other}`"
        ))),
    }
}

/// `url` without its password, for error messages.
pub(super) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    // A password may also hide in the query string; drop the query rather than parse it.
    let tail = match tail.split_once('?') {
        Some((path, query)) if query.contains("password") => format!("{path}?…"),
        _ => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Decodes one `ISSUED_COLUMNS` row.
fn issued_from_row<R>(row: &R) -> Result<IssuedRecord, LedgerError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let text = |i: usize| row.try_get::<String, _>(i);
    let int = |i: usize| row.try_get::<i64, _>(i);
    let principals: Vec<String> = serde_json::from_str(&text(4)?)
        .map_err(|e| LedgerError::Corrupt(format!("principals: {e}")))?;
    Ok(IssuedRecord {
        ca_fingerprint: text(0)?,
        serial: serial_from_db(int(1)?),
        ca_key: text(2)?,
        key_id: text(3)?,
        principals,
        cert_type: cert_type_from_db(&text(5)?)?,
        valid_after: time_from_db(int(6)?)?,
        valid_before: time_from_db(int(7)?)?,
        subject_fingerprint: text(8)?,
        caller: text(9)?,
        request_id: text(10)?,
        issued_at: time_from_db(int(11)?)?,
        certificate: text(12)?,
    })
}

fn refusal_from_row<R>(row: &R) -> Result<RefusalRecord, LedgerError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(RefusalRecord {
        caller: row.try_get(0)?,
        rule: row.try_get(1)?,
        message: row.try_get(2)?,
        request_id: row.try_get(3)?,
        ca_key: row.try_get(4)?,
        at: time_from_db(row.try_get(5)?)?,
        peer: row.try_get(6)?,
    })
}

/// Appends `filter`'s conditions (after a `WHERE TRUE`) and its order and limit.
fn push_issued_filter<DB: sqlx::Database>(q: &mut QueryBuilder<DB>, filter: &LedgerFilter)
where
    for<'a> &'a str: sqlx::Encode<'a, DB> + Type<DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + Type<DB>,
{
    let text_filters = [
        ("ca_fingerprint", &filter.ca_fingerprint),
        ("ca_key", &filter.ca_key),
        ("key_id", &filter.key_id),
        ("subject_fingerprint", &filter.subject_fingerprint),
        ("caller", &filter.caller),
    ];
    for (column, value) in text_filters {
        if let Some(value) = value {
            q.push(format_args!(" AND i.{column} = "))
                .push_bind(value.as_str());
        }
    }
    if let Some(principal) = &filter.principal {
        q.push(
            " AND EXISTS (SELECT 1 FROM issued_principals p WHERE p.ca_fingerprint = \
             i.ca_fingerprint AND p.serial = i.serial AND p.principal = ",
        )
        .push_bind(principal.as_str())
        .push(")");
    }
    if let Some(t) = filter.issued_after {
        q.push(" AND i.issued_at >= ").push_bind(time_to_db(t));
    }
    if let Some(t) = filter.issued_before {
        q.push(" AND i.issued_at < ").push_bind(time_to_db(t));
    }
    if let Some(t) = filter.valid_at {
        q.push(" AND i.valid_after <= ").push_bind(time_to_db(t));
        q.push(" AND i.valid_before > ").push_bind(time_to_db(t));
    }
    q.push(" ORDER BY i.issued_at DESC, i.ca_fingerprint, i.serial DESC");
    if let Some(limit) = filter.limit {
        q.push(" LIMIT ").push_bind(time_to_db(limit));
    }
}

fn push_refusal_filter<DB: sqlx::Database>(q: &mut QueryBuilder<DB>, filter: &RefusalFilter)
where
    for<'a> &'a str: sqlx::Encode<'a, DB> + Type<DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + Type<DB>,
{
    if let Some(caller) = &filter.caller {
        q.push(" AND caller = ").push_bind(caller.as_str());
    }
    if let Some(rule) = &filter.rule {
        q.push(" AND rule = ").push_bind(rule.as_str());
    }
    if let Some(t) = filter.since {
        q.push(" AND at >= ").push_bind(time_to_db(t));
    }
    q.push(" ORDER BY at DESC");
    if let Some(limit) = filter.limit {
        q.push(" LIMIT ").push_bind(time_to_db(limit));
    }
}

/// What committing a batch did to each issued record, in order.
pub(super) type BatchOutcome = Vec<Result<(), LedgerError>>;

impl Pool {
    /// Connects to `url` (see [`super::Ledger::open`]).
    pub(super) async fn connect(url: &str) -> Result<Pool, LedgerError> {
        let open_error = |e: sqlx::Error| LedgerError::Open {
            url: redact(url),
            source: Arc::new(e),
        };
        if url.starts_with("sqlite:") {
            if url.contains(":memory:") || url.contains("mode=memory") {
                return Err(LedgerError::InMemory(redact(url)));
            }
            let options = SqliteConnectOptions::from_str(url)
                .map_err(open_error)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            // SQLite runs one writer at a time; a few connections serve readers beside it.
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await
                .map_err(open_error)?;
            Ok(Pool::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(open_error)?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(open_error)?;
            Ok(Pool::Postgres(pool))
        } else {
            Err(LedgerError::UnsupportedUrl(redact(url)))
        }
    }

    pub(super) fn engine(&self) -> &'static str {
        match self {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Applies pending migrations (PostgreSQL: under an advisory lock, so instances starting
    /// together do not race).
    pub(super) async fn migrate(&self) -> Result<(), LedgerError> {
        let migrator = migrator();
        with_pool!(self, p => migrator.run(p).await).map_err(|e| LedgerError::Migrate(Arc::new(e)))
    }

    pub(super) async fn close(&self) {
        with_pool!(self, p => p.close().await);
    }

    /// Takes the next block of `size` serials for a CA: returns `(first, end)` (end exclusive) and
    /// the serials inside it that were claimed, which must be skipped.
    ///
    /// The counter row is written first, so the transaction holds the row lock (PostgreSQL) or
    /// the write lock (SQLite) before it reads the claims; claims take the same lock.
    pub(super) async fn reserve_block(
        &self,
        ca_fingerprint: &str,
        size: u64,
    ) -> Result<(u64, u64, HashSet<u64>), LedgerError> {
        let size_db = time_to_db(size);
        let ceiling = i64::MAX - size_db;
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO serial_counters (ca_fingerprint, next_serial) VALUES ($1, 1) \
                 ON CONFLICT (ca_fingerprint) DO NOTHING",
            )
            .bind(ca_fingerprint)
            .execute(&mut *tx)
            .await?;
            let end: Option<i64> = sqlx::query_scalar(
                "UPDATE serial_counters SET next_serial = next_serial + $2 \
                 WHERE ca_fingerprint = $1 AND next_serial <= $3 RETURNING next_serial",
            )
            .bind(ca_fingerprint)
            .bind(size_db)
            .bind(ceiling)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(end) = end else {
                return Err(LedgerError::SerialsExhausted(ca_fingerprint.to_owned()));
            };
            let first = end - size_db;
            let claimed: Vec<i64> = sqlx::query_scalar(
                "SELECT serial FROM serial_claims \
                 WHERE ca_fingerprint = $1 AND serial >= $2 AND serial < $3",
            )
            .bind(ca_fingerprint)
            .bind(first)
            .bind(end)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok((
                serial_from_db(first),
                serial_from_db(end),
                claimed.into_iter().map(serial_from_db).collect(),
            ))
        })
    }

    pub(super) async fn claim_serial(
        &self,
        ca_fingerprint: &str,
        serial: u64,
    ) -> Result<(), LedgerError> {
        let duplicate = || LedgerError::Duplicate {
            ca_fingerprint: ca_fingerprint.to_owned(),
            serial,
        };
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO serial_counters (ca_fingerprint, next_serial) VALUES ($1, 1) \
                 ON CONFLICT (ca_fingerprint) DO NOTHING",
            )
            .bind(ca_fingerprint)
            .execute(&mut *tx)
            .await?;
            // A no-op update: it locks the counter against concurrent block reservations.
            let next: i64 = sqlx::query_scalar(
                "UPDATE serial_counters SET next_serial = next_serial \
                 WHERE ca_fingerprint = $1 RETURNING next_serial",
            )
            .bind(ca_fingerprint)
            .fetch_one(&mut *tx)
            .await?;
            // Serials 1..next were handed out in blocks (compared as u64: claims may exceed 2^63).
            if serial != 0 && serial < serial_from_db(next) {
                return Err(duplicate());
            }
            let issued: Option<i64> = sqlx::query_scalar(
                "SELECT serial FROM issued_certificates WHERE ca_fingerprint = $1 AND serial = $2",
            )
            .bind(ca_fingerprint)
            .bind(serial_to_db(serial))
            .fetch_optional(&mut *tx)
            .await?;
            if issued.is_some() {
                return Err(duplicate());
            }
            let inserted = sqlx::query(
                "INSERT INTO serial_claims (ca_fingerprint, serial) VALUES ($1, $2) \
                 ON CONFLICT (ca_fingerprint, serial) DO NOTHING",
            )
            .bind(ca_fingerprint)
            .bind(serial_to_db(serial))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(duplicate());
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Writes `issued` and `refusals` in one transaction. A record whose (CA, serial) is already
    /// stored, or repeated earlier in the batch, gets `Duplicate`; the others are committed.
    /// `Err` means nothing was committed.
    pub(super) async fn commit_batch(
        &self,
        issued: &[&IssuedRecord],
        refusals: &[&RefusalRecord],
    ) -> Result<BatchOutcome, LedgerError> {
        let mut outcome: BatchOutcome = Vec::with_capacity(issued.len());
        let mut seen = HashSet::with_capacity(issued.len());
        let mut fresh = Vec::with_capacity(issued.len());
        for record in issued {
            if seen.insert((record.ca_fingerprint.as_str(), record.serial)) {
                fresh.push(*record);
            }
        }
        // Key order: two instances inserting overlapping keys (a bug elsewhere) then wait on
        // each other instead of deadlocking.
        fresh.sort_unstable_by_key(|r| (r.ca_fingerprint.as_str(), r.serial));
        let mut principal_lists = Vec::with_capacity(fresh.len());
        for record in &fresh {
            principal_lists.push(
                serde_json::to_string(&record.principals)
                    .map_err(|e| LedgerError::Corrupt(format!("principals: {e}")))?,
            );
        }
        let mut inserted: HashSet<(String, u64)> = HashSet::with_capacity(fresh.len());
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            for (chunk, principals) in
                fresh.chunks(INSERT_CHUNK).zip(principal_lists.chunks(INSERT_CHUNK))
            {
                let mut q = QueryBuilder::new(format!(
                    "INSERT INTO issued_certificates ({ISSUED_COLUMNS}) "
                ));
                q.push_values(chunk.iter().zip(principals), |mut b, (r, principals)| {
                    b.push_bind(r.ca_fingerprint.as_str())
                        .push_bind(serial_to_db(r.serial))
                        .push_bind(r.ca_key.as_str())
                        .push_bind(r.key_id.as_str())
                        .push_bind(principals.as_str())
                        .push_bind(cert_type_to_db(r.cert_type))
                        .push_bind(time_to_db(r.valid_after))
                        .push_bind(time_to_db(r.valid_before))
                        .push_bind(r.subject_fingerprint.as_str())
                        .push_bind(r.caller.as_str())
                        .push_bind(r.request_id.as_str())
                        .push_bind(time_to_db(r.issued_at))
                        .push_bind(r.certificate.as_str());
                });
                q.push(
                    " ON CONFLICT (ca_fingerprint, serial) DO NOTHING \
                     RETURNING ca_fingerprint, serial",
                );
                for row in q.build().fetch_all(&mut *tx).await? {
                    let ca: String = row.try_get(0)?;
                    let serial: i64 = row.try_get(1)?;
                    inserted.insert((ca, serial_from_db(serial)));
                }
            }
            let principal_rows: Vec<(&str, u64, &str)> = fresh
                .iter()
                .filter(|r| inserted.contains(&(r.ca_fingerprint.clone(), r.serial)))
                .flat_map(|r| {
                    r.principals.iter().map(|p| (r.ca_fingerprint.as_str(), r.serial, p.as_str()))
                })
                .collect();
            for chunk in principal_rows.chunks(INSERT_CHUNK * 4) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO issued_principals (ca_fingerprint, serial, principal) ",
                );
                q.push_values(chunk, |mut b, (ca, serial, principal)| {
                    b.push_bind(*ca).push_bind(serial_to_db(*serial)).push_bind(*principal);
                });
                // A principal listed twice in one certificate is stored once.
                q.push(" ON CONFLICT (ca_fingerprint, serial, principal) DO NOTHING");
                q.build().execute(&mut *tx).await?;
            }
            for chunk in refusals.chunks(INSERT_CHUNK) {
                let mut q = QueryBuilder::new(format!("INSERT INTO refusals ({REFUSAL_COLUMNS}) "));
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.caller.as_str())
                        .push_bind(r.rule.as_str())
                        .push_bind(r.message.as_str())
                        .push_bind(r.request_id.as_str())
                        .push_bind(r.ca_key.as_deref())
                        .push_bind(time_to_db(r.at))
                        .push_bind(r.peer.as_deref());
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        for record in issued {
            let key = (record.ca_fingerprint.clone(), record.serial);
            // `remove`: a repeat of the same (CA, serial) later in the batch is a duplicate.
            outcome.push(if inserted.remove(&key) {
                Ok(())
            } else {
                Err(LedgerError::Duplicate {
                    ca_fingerprint: record.ca_fingerprint.clone(),
                    serial: record.serial,
                })
            });
        }
        Ok(outcome)
    }

    pub(super) async fn list(
        &self,
        filter: &LedgerFilter,
    ) -> Result<Vec<IssuedRecord>, LedgerError> {
        with_pool!(self, p => {
            let mut q = QueryBuilder::new(format!(
                "SELECT {} FROM issued_certificates i WHERE TRUE",
                prefixed_issued_columns()
            ));
            push_issued_filter(&mut q, filter);
            q.build().fetch_all(p).await?.iter().map(issued_from_row).collect()
        })
    }

    pub(super) async fn show(
        &self,
        ca_fingerprint: Option<&str>,
        serial: u64,
    ) -> Result<Vec<IssuedRecord>, LedgerError> {
        with_pool!(self, p => {
            let mut q = QueryBuilder::new(format!(
                "SELECT {ISSUED_COLUMNS} FROM issued_certificates WHERE serial = "
            ));
            q.push_bind(serial_to_db(serial));
            if let Some(ca) = ca_fingerprint {
                q.push(" AND ca_fingerprint = ").push_bind(ca);
            }
            q.push(" ORDER BY ca_fingerprint");
            q.build().fetch_all(p).await?.iter().map(issued_from_row).collect()
        })
    }

    /// Revokes `revocation.serials` of its CA in one transaction: each must be an issued
    /// certificate of that CA; those already revoked are left as they were.
    pub(super) async fn revoke(
        &self,
        revocation: &Revocation,
    ) -> Result<RevokeOutcome, LedgerError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let mut outcome = RevokeOutcome::default();
            for &serial in &revocation.serials {
                let issued: Option<i64> = sqlx::query_scalar(
                    "SELECT serial FROM issued_certificates WHERE ca_fingerprint = $1 AND serial = $2",
                )
                .bind(revocation.ca_fingerprint.as_str())
                .bind(serial_to_db(serial))
                .fetch_optional(&mut *tx)
                .await?;
                if issued.is_none() {
                    outcome.unknown.push(serial);
                    continue;
                }
                let inserted = sqlx::query(
                    "INSERT INTO revocations (ca_fingerprint, serial, revoked_at, caller, reason, request_id) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ca_fingerprint, serial) DO NOTHING",
                )
                .bind(revocation.ca_fingerprint.as_str())
                .bind(serial_to_db(serial))
                .bind(time_to_db(revocation.at))
                .bind(revocation.caller.as_str())
                .bind(revocation.reason.as_str())
                .bind(revocation.request_id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 1 {
                    outcome.revoked.push(serial);
                } else {
                    outcome.already.push(serial);
                }
            }
            if outcome.unknown.is_empty() {
                tx.commit().await?;
            }
            Ok(outcome)
        })
    }

    /// Every revoked serial of the CA `ca_fingerprint`, ascending (as u64).
    pub(super) async fn revoked_serials(
        &self,
        ca_fingerprint: &str,
    ) -> Result<Vec<u64>, LedgerError> {
        let rows: Vec<i64> = with_pool!(self, p => {
            sqlx::query_scalar("SELECT serial FROM revocations WHERE ca_fingerprint = $1")
                .bind(ca_fingerprint)
                .fetch_all(p)
                .await
        })?;
        let mut serials: Vec<u64> = rows.into_iter().map(serial_from_db).collect();
        serials.sort_unstable();
        Ok(serials)
    }

    pub(super) async fn list_refusals(
        &self,
        filter: &RefusalFilter,
    ) -> Result<Vec<RefusalRecord>, LedgerError> {
        with_pool!(self, p => {
            let mut q = QueryBuilder::new(format!(
                "SELECT {REFUSAL_COLUMNS} FROM refusals WHERE TRUE"
            ));
            push_refusal_filter(&mut q, filter);
            q.build().fetch_all(p).await?.iter().map(refusal_from_row).collect()
        })
    }

    pub(super) async fn count_issued(&self) -> Result<u64, LedgerError> {
        let n: i64 = with_pool!(self, p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM issued_certificates").fetch_one(p).await?
        });
        u64::try_from(n).map_err(|_| LedgerError::Corrupt(format!("negative count {n}")))
    }
}

fn prefixed_issued_columns() -> String {
    ISSUED_COLUMNS
        .split(", ")
        .map(|c| format!("i.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://kmssh:s3cret@db.example:5432/ledger"),
            "postgres://kmssh:***@db.example:5432/ledger"
        );
        assert_eq!(
            redact("postgres://db/ledger?password=x"),
            "postgres://db/ledger?…"
        );
        assert_eq!(redact("postgres://u@db/ledger"), "postgres://u@db/ledger");
        assert_eq!(
            redact("sqlite:/var/lib/kmssh/ledger.db"),
            "sqlite:/var/lib/kmssh/ledger.db"
        );
    }

    #[test]
    fn u64_storage_round_trips() {
        for s in [0, 1, u64::from(u32::MAX), 1 << 63, u64::MAX] {
            assert_eq!(serial_from_db(serial_to_db(s)), s);
        }
        assert_eq!(
            time_from_db(time_to_db(u64::MAX)).expect("forever"),
            u64::MAX
        );
        assert_eq!(
            time_from_db(time_to_db(1_700_000_000)).expect("time"),
            1_700_000_000
        );
        assert!(time_from_db(-1).is_err());
    }
}
