//! The one writer thread. It owns the write connection; every change is a job on its queue.
//!
//! Group commit: when a buy is taken off the queue, every buy already waiting behind it joins
//! the same transaction (one SAVEPOINT each, so one failing buy never aborts the others), and
//! one fsync makes them all durable. Replies go out only after the commit returned: nothing is
//! acknowledged that a crash could lose.
//!
//! With the webhook outbox on, each confirmed new order also owes its webhook delivery, written
//! in the buy's own savepoint (`outbox.rs`): the order and its delivery commit together.
//!
//! A panic here unwinds out of [`run`] to the supervisor in `store.rs`: the open transaction
//! rolls back as it is dropped, and the replies of the jobs being worked on are dropped, so
//! their callers hear `Closed` (never a confirmation of something not committed). Jobs still
//! in the queue stay there for the restarted writer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::oneshot;
use tracing::error;

use crate::buy;
use crate::outbox;
use crate::error::StoreError;
use crate::fault::{Faults, PanicPoint};
use sellcast_room::BuyAnswer;

use crate::histogram::AtomicHistogram;
use crate::model::{BuyOutcome, BuyRequest};

/// Most buys in one transaction: bounds the latency of the last one in a batch.
const MAX_BATCH: usize = 512;

pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub enum Job {
    Buy(BuyRequest, Reply<BuyOutcome>),
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// Upper bounds of the commit-latency buckets, in microseconds (250 us to 1 s).
const COMMIT_US_BOUNDS: &[u64] = &[250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000];
/// Upper bounds of the batch-size buckets, in buys (up to `MAX_BATCH`).
const BATCH_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// Counters that show group commit at work, read by anyone without asking the writer.
#[derive(Debug)]
pub struct WriterStats {
    /// Buys taken off the queue.
    pub buys: AtomicU64,
    /// Buy batches committed.
    pub buy_commits: AtomicU64,
    /// Buy batches whose writes are done and whose commit has begun; above `batches_ended`
    /// while a commit is in flight.
    pub batches_written: AtomicU64,
    /// Buy batches committed or rolled back.
    pub batches_ended: AtomicU64,
    /// `order_confirmed` answers handed back to callers (replays of a known key included).
    pub confirmations_sent: AtomicU64,
    /// Microseconds from a buy batch's first write to its commit returning (committed or not).
    pub commit_us: AtomicHistogram,
    /// Buys per batch.
    pub batch_size: AtomicHistogram,
    /// True while a writer is running on an open connection.
    pub up: AtomicBool,
    /// Times the writer was restarted after a panic.
    pub restarts: AtomicU64,
}

impl Default for WriterStats {
    fn default() -> Self {
        Self {
            buys: AtomicU64::new(0),
            buy_commits: AtomicU64::new(0),
            batches_written: AtomicU64::new(0),
            batches_ended: AtomicU64::new(0),
            confirmations_sent: AtomicU64::new(0),
            commit_us: AtomicHistogram::new(COMMIT_US_BOUNDS),
            batch_size: AtomicHistogram::new(BATCH_BOUNDS),
            up: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
        }
    }
}

impl WriterStats {
    /// The counters at one moment.
    pub fn snapshot(&self) -> crate::store::WriterSnapshot {
        // Ended first: a batch that ends between the two loads then still reads as in flight.
        let ended = self.batches_ended.load(Ordering::SeqCst);
        let written = self.batches_written.load(Ordering::SeqCst);
        crate::store::WriterSnapshot {
            buys: self.buys.load(Ordering::Relaxed),
            buy_commits: self.buy_commits.load(Ordering::Relaxed),
            commit_in_flight: written > ended,
            confirmations_sent: self.confirmations_sent.load(Ordering::SeqCst),
        }
    }
}

/// What the writer does besides what each job asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterOptions {
    /// Owe a webhook delivery for every confirmed new order (a webhook is configured).
    pub webhook_outbox: bool,
}

/// Take jobs until every `Store` handle is gone. Panics unwind to the caller (the supervisor).
pub fn run(mut conn: Connection, jobs: &Receiver<Job>, stats: &Arc<WriterStats>, faults: &Faults, options: WriterOptions) {
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
                commit_batch(&mut conn, batch, stats, faults, options);
            }
        }
    }
}

type Batch = Vec<(BuyRequest, Reply<BuyOutcome>)>;

fn commit_batch(conn: &mut Connection, batch: Batch, stats: &WriterStats, faults: &Faults, options: WriterOptions) {
    let n = batch.len() as u64;
    let buys_taken = stats.buys.fetch_add(n, Ordering::Relaxed) + n;
    let (requests, replies): (Vec<BuyRequest>, Vec<Reply<BuyOutcome>>) = batch.into_iter().unzip();
    let mut replies = Some(replies);
    let mut results: Vec<Result<BuyOutcome, StoreError>> = Vec::with_capacity(requests.len());
    let mut written = false;
    // Deliveries the broken variant owes only after the commit (`outbox_after_commit`).
    let mut owed_late: Vec<(i64, String, i64)> = Vec::new();
    let started = Instant::now();
    // The broken variant the never-oversold tests must catch (`stale_stock_check`).
    let stale = if faults.stale_stock_check() { buy::stock_before_batch(conn, &requests) } else { None };
    let committed = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction()?;
        for req in &requests {
            let sp = tx.savepoint()?;
            let executed = buy::execute(&sp, req, stale.as_ref()).and_then(|outcome| {
                match new_order(&outcome).filter(|_| options.webhook_outbox) {
                    Some(order_id) if faults.outbox_after_commit() => {
                        owed_late.push((order_id, req.buyer_name.clone(), req.now_ms));
                    }
                    Some(order_id) => outbox::owe(&sp, order_id, &req.buyer_name, req.now_ms)?,
                    None => {}
                }
                Ok(outcome)
            });
            match executed {
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
        if faults.ack_before_commit() {
            // The broken variant the durability tests must catch.
            answer(replies.take(), std::mem::take(&mut results), stats);
        }
        stats.batches_written.fetch_add(1, Ordering::SeqCst);
        written = true;
        faults.before_commit(buys_taken);
        faults.panic_at(PanicPoint::BeforeCommit);
        tx.commit()
    })();
    stats.commit_us.record(started.elapsed().as_micros() as u64);
    stats.batch_size.record(n);
    match committed {
        Ok(()) => {
            stats.buy_commits.fetch_add(1, Ordering::Relaxed);
            faults.panic_at(PanicPoint::AfterCommit);
            owe_after_commit(conn, &owed_late);
            answer(replies, results, stats);
        }
        Err(e) => {
            error!(error = %e, buys = n, "buy batch failed to commit; nothing acknowledged");
            for reply in replies.into_iter().flatten() {
                let _ = reply.send(Err(StoreError::CommitFailed(e.to_string())));
            }
        }
    }
    if written {
        stats.batches_ended.fetch_add(1, Ordering::SeqCst);
    }
}

/// The order a buy just created (not a replay of an older answer).
fn new_order(outcome: &BuyOutcome) -> Option<i64> {
    match outcome {
        BuyOutcome { answer: BuyAnswer::Confirmed { order_id, .. }, replayed: false, .. } => Some(*order_id),
        _ => None,
    }
}

/// The broken variant the outbox tests must catch: deliveries owed in a transaction of their
/// own after the orders committed, so a crash in between loses them.
fn owe_after_commit(conn: &mut Connection, owed: &[(i64, String, i64)]) {
    if owed.is_empty() {
        return;
    }
    let done = conn.transaction().and_then(|tx| {
        for (order_id, buyer_name, now_ms) in owed {
            outbox::owe(&tx, *order_id, buyer_name, *now_ms)?;
        }
        tx.commit()
    });
    if let Err(e) = done {
        error!(error = %e, "owing webhook deliveries after the commit failed");
    }
}

/// Hand each buy its result. Called only once the batch is committed.
fn answer(replies: Option<Vec<Reply<BuyOutcome>>>, results: Vec<Result<BuyOutcome, StoreError>>, stats: &WriterStats) {
    for (reply, result) in replies.into_iter().flatten().zip(results) {
        if matches!(&result, Ok(BuyOutcome { answer: BuyAnswer::Confirmed { .. }, .. })) {
            stats.confirmations_sent.fetch_add(1, Ordering::SeqCst);
        }
        let _ = reply.send(result);
    }
}
