//! The one writer thread. It owns the write connection; every change is a job on its queue.
//!
//! Group commit: when a buy is taken off the queue, every buy already waiting behind it joins
//! the same transaction (one SAVEPOINT each, so one failing buy never aborts the others), and
//! one fsync makes them all durable. Replies go out only after the commit returned: nothing is
//! acknowledged that a crash could lose.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::oneshot;
use tracing::error;

use crate::buy;
use crate::error::StoreError;
use crate::model::{BuyOutcome, BuyRequest};

/// Most buys in one transaction: bounds the latency of the last one in a batch.
const MAX_BATCH: usize = 512;

pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub enum Job {
    Buy(BuyRequest, Reply<BuyOutcome>),
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// Counters that show group commit at work.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub buys: AtomicU64,
    pub buy_commits: AtomicU64,
}

pub fn run(mut conn: Connection, jobs: Receiver<Job>, stats: Arc<WriterStats>) {
    let mut deferred: VecDeque<Job> = VecDeque::new();
    loop {
        let job = match deferred.pop_front() {
            Some(j) => j,
            None => match jobs.recv() {
                Ok(j) => j,
                Err(_) => return, // every Store handle is gone
            },
        };
        match job {
            Job::Run(f) => f(&mut conn),
            Job::Buy(req, reply) => {
                let mut batch = vec![(req, reply)];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(Job::Buy(r, rep)) => batch.push((r, rep)),
                        Ok(other) => {
                            // Keep queue order: it runs right after this batch.
                            deferred.push_back(other);
                            break;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                commit_batch(&mut conn, batch, &stats);
            }
        }
    }
}

fn commit_batch(conn: &mut Connection, batch: Vec<(BuyRequest, Reply<BuyOutcome>)>, stats: &WriterStats) {
    let n = batch.len() as u64;
    let mut results: Vec<Result<BuyOutcome, StoreError>> = Vec::with_capacity(batch.len());
    let committed = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction()?;
        for (req, _) in &batch {
            let sp = tx.savepoint()?;
            match buy::execute(&sp, req) {
                Ok(outcome) => {
                    sp.commit()?;
                    results.push(Ok(outcome));
                }
                Err(e) => {
                    // Dropping the savepoint rolls this buy back; the batch goes on.
                    drop(sp);
                    results.push(Err(StoreError::Db(e)));
                }
            }
        }
        tx.commit()
    })();
    stats.buys.fetch_add(n, Ordering::Relaxed);
    match committed {
        Ok(()) => {
            stats.buy_commits.fetch_add(1, Ordering::Relaxed);
            for ((_, reply), result) in batch.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            error!(error = %e, buys = n, "buy batch failed to commit; nothing acknowledged");
            for (_, reply) in batch {
                let _ = reply.send(Err(StoreError::CommitFailed(e.to_string())));
            }
        }
    }
}
