//! Serials handed out from blocks reserved in the database, one block per CA at a time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::db::Pool;
use super::{LedgerError, SERIAL_BLOCK};

/// Consecutive fully claimed blocks after which reservation gives up.
const MAX_REFILLS: usize = 4096;

/// The unused part of one CA's current block.
#[derive(Default)]
struct Block {
    next: u64,
    end: u64,
    /// Claimed serials inside the block, skipped.
    claimed: HashSet<u64>,
}

/// Per-CA blocks. The outer lock is held only to find a CA's block; the per-CA async lock is held
/// across a refill so concurrent callers wait for one database round trip instead of each
/// reserving a block.
#[derive(Default)]
pub(super) struct Serials {
    blocks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Block>>>>,
}

impl Serials {
    pub(super) async fn next(&self, pool: &Pool, ca_fingerprint: &str) -> Result<u64, LedgerError> {
        let block = {
            // A poisoned map only means another caller panicked while inserting; it is intact.
            let mut blocks = self
                .blocks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(blocks.entry(ca_fingerprint.to_owned()).or_default())
        };
        let mut block = block.lock().await;
        // Bounded in case requesters claimed a long run of serials ahead of the counter.
        for _ in 0..MAX_REFILLS {
            while block.next < block.end {
                let serial = block.next;
                block.next += 1;
                if !block.claimed.remove(&serial) {
                    return Ok(serial);
                }
            }
            let (next, end, claimed) = pool.reserve_block(ca_fingerprint, SERIAL_BLOCK).await?;
            *block = Block { next, end, claimed };
        }
        Err(LedgerError::SerialsExhausted(ca_fingerprint.to_owned()))
    }
}
