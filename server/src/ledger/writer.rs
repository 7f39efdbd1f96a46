//! Group commit: one task writes every record, committing whatever queued up while the previous
//! transaction ran in one transaction, then acknowledges each submitter.

use tokio::sync::{mpsc, oneshot};

use super::db::Pool;
use super::{IssuedRecord, LedgerError, RefusalRecord};

/// Records waiting beyond this make submitters wait (back-pressure instead of unbounded memory).
const QUEUE: usize = 16_384;
/// Most records one transaction takes.
const MAX_BATCH: usize = 2_048;

type Ack = oneshot::Sender<Result<(), LedgerError>>;

/// Work for the writer.
pub(super) enum Job {
    Issued(IssuedRecord, Ack),
    Refusal(RefusalRecord, Ack),
    /// Commit everything queued before this, then stop.
    Close(oneshot::Sender<()>),
}

/// Starts the writer; it stops on [`Job::Close`] or once every sender is dropped.
pub(super) fn spawn(pool: Pool) -> mpsc::Sender<Job> {
    let (sender, receiver) = mpsc::channel(QUEUE);
    tokio::spawn(run(pool, receiver));
    sender
}

async fn run(pool: Pool, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut closing = Vec::new();
    while closing.is_empty() && jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut issued = Vec::new();
        let mut refusals = Vec::new();
        for job in batch.drain(..) {
            match job {
                Job::Issued(record, ack) => issued.push((record, ack)),
                Job::Refusal(record, ack) => refusals.push((record, ack)),
                Job::Close(done) => closing.push(done),
            }
        }
        commit(&pool, issued, refusals).await;
    }
    // Whatever was queued behind a Close is refused, not silently dropped.
    jobs.close();
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Issued(_, ack) | Job::Refusal(_, ack) => {
                let _ = ack.send(Err(LedgerError::Closed));
            }
            Job::Close(done) => closing.push(done),
        }
    }
    for done in closing {
        // The closer may have given up waiting; nothing to do then.
        let _ = done.send(());
    }
}

/// Commits one batch and acknowledges it. When the batch fails on something the database
/// refused (one bad record, say), its records are retried one by one so only the bad one fails;
/// a connection failure fails the batch at once.
async fn commit(
    pool: &Pool,
    issued: Vec<(IssuedRecord, Ack)>,
    refusals: Vec<(RefusalRecord, Ack)>,
) {
    if issued.is_empty() && refusals.is_empty() {
        return;
    }
    let issued_refs: Vec<&IssuedRecord> = issued.iter().map(|(r, _)| r).collect();
    let refusal_refs: Vec<&RefusalRecord> = refusals.iter().map(|(r, _)| r).collect();
    match pool.commit_batch(&issued_refs, &refusal_refs).await {
        Ok(outcome) => {
            for ((_, ack), result) in issued.into_iter().zip(outcome) {
                let _ = ack.send(result);
            }
            for (_, ack) in refusals {
                let _ = ack.send(Ok(()));
            }
        }
        Err(e) if is_record_error(&e) && issued.len() + refusals.len() > 1 => {
            for (record, ack) in issued {
                let result = pool.commit_batch(&[&record], &[]).await;
                let _ = ack.send(result.and_then(|mut o| o.pop().unwrap_or(Ok(()))));
            }
            for (record, ack) in refusals {
                let _ = ack.send(pool.commit_batch(&[], &[&record]).await.map(drop));
            }
        }
        Err(e) => {
            for (_, ack) in issued {
                let _ = ack.send(Err(e.clone()));
            }
            for (_, ack) in refusals {
                let _ = ack.send(Err(e.clone()));
            }
        }
    }
}

/// Whether the database (not the connection) refused something in the batch.
fn is_record_error(e: &LedgerError) -> bool {
    match e {
        LedgerError::Database(e) => {
            matches!(**e, sqlx::Error::Database(_) | sqlx::Error::Encode(_))
        }
        LedgerError::Corrupt(_) => true,
        _ => false,
    }
}
