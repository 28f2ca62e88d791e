//! The PostgreSQL backend's one writer thread: the SQLite writer's loop and promises on a
//! PostgreSQL connection.
//!
//! Group commit: a buy taken off the queue takes every buy already waiting behind it into one
//! transaction, each buy in its own savepoint (so one failing buy never aborts the others),
//! and one `COMMIT` makes them all durable: with `synchronous_commit = on` it returns only
//! once the batch's WAL is flushed. Replies go out only after the commit returned.
//!
//! The connection can be lost at any point (the server stops, the network breaks). Every job
//! in hand then fails, and its caller hears an error, which the server answers `unavailable`;
//! a buy is never confirmed without its commit having returned. A batch whose `COMMIT` was
//! sent but not answered may have committed: its buyers still heard `unavailable`, and a
//! retry with the same key finds the stored answer, so the order is neither lost nor doubled.
//! The next job reconnects ([`Connection`]).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

use postgres::Client;
use tracing::error;

use sellcast_room::BuyAnswer;

use crate::error::StoreError;
use crate::fault::Faults;
use crate::model::{BuyOutcome, BuyRequest};
use crate::writer::{Reply, WriterOptions, WriterStats};

use super::connection::Connection;
use super::statements::Statements;
use super::{buy, outbox};

/// Most buys in one transaction: bounds the latency of the last one in a batch.
const MAX_BATCH: usize = 512;

/// Work run on the live connection, or handed the reason there is none.
pub type OnClient = Box<dyn FnOnce(Result<&mut Client, StoreError>) + Send>;

pub enum PgJob {
    Buy(BuyRequest, Reply<BuyOutcome>),
    Run(OnClient),
}

/// Take jobs until every handle is gone.
pub fn run(conn: &mut Connection, jobs: &Receiver<PgJob>, stats: &Arc<WriterStats>, faults: &Faults, options: WriterOptions) {
    let mut deferred: VecDeque<PgJob> = VecDeque::new();
    loop {
        let job = match deferred.pop_front() {
            Some(j) => j,
            None => match jobs.recv() {
                Ok(j) => j,
                Err(_) => return, // every PgStore handle is gone
            },
        };
        match job {
            PgJob::Run(f) => f(conn.client(stats)),
            PgJob::Buy(req, reply) => {
                let mut batch = vec![(req, reply)];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(PgJob::Buy(r, rep)) => batch.push((r, rep)),
                        Ok(other) => {
                            // Keep queue order: it runs right after this batch.
                            deferred.push_back(other);
                            break;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                match conn.session(stats) {
                    Ok((client, statements)) => commit_batch(client, statements, batch, stats, faults, options),
                    Err(e) => refuse(batch, &e),
                }
            }
        }
    }
}

type Batch = Vec<(BuyRequest, Reply<BuyOutcome>)>;

/// No connection: every buy of the batch hears why (the server answers `unavailable`).
fn refuse(batch: Batch, e: &StoreError) {
    for (_, reply) in batch {
        let _ = reply.send(Err(StoreError::Unavailable(e.to_string())));
    }
}

fn commit_batch(client: &mut Client, statements: &mut Statements, batch: Batch, stats: &WriterStats, faults: &Faults, options: WriterOptions) {
    let n = batch.len() as u64;
    let buys_taken = stats.buys.fetch_add(n, Ordering::Relaxed) + n;
    let (requests, replies): (Vec<BuyRequest>, Vec<Reply<BuyOutcome>>) = batch.into_iter().unzip();
    let mut replies = Some(replies);
    let mut results: Vec<Result<BuyOutcome, StoreError>> = Vec::with_capacity(requests.len());
    let mut written = false;
    let started = Instant::now();
    let committed = (|| -> Result<(), postgres::Error> {
        let mut tx = client.transaction()?;
        for req in &requests {
            let mut sp = tx.transaction()?;
            let executed = buy::execute(&mut sp, statements, req).and_then(|outcome| {
                if let Some(order_id) = new_order(&outcome).filter(|_| options.webhook_outbox) {
                    outbox::owe(&mut sp, order_id, &req.buyer_name, req.now_ms)?;
                }
                Ok(outcome)
            });
            match executed {
                Ok(outcome) => {
                    sp.commit()?;
                    results.push(Ok(outcome));
                }
                Err(e) if e.is_closed() => return Err(e),
                Err(e) => {
                    // Rolling the savepoint back undoes this buy; the batch goes on.
                    sp.rollback()?;
                    results.push(Err(StoreError::Postgres(e)));
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
        tx.commit()
    })();
    stats.commit_us.record(started.elapsed().as_micros() as u64);
    stats.batch_size.record(n);
    match committed {
        Ok(()) => {
            stats.buy_commits.fetch_add(1, Ordering::Relaxed);
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

/// Hand each buy its result. Called only once the batch is committed.
fn answer(replies: Option<Vec<Reply<BuyOutcome>>>, results: Vec<Result<BuyOutcome, StoreError>>, stats: &WriterStats) {
    for (reply, result) in replies.into_iter().flatten().zip(results) {
        if matches!(&result, Ok(BuyOutcome { answer: BuyAnswer::Confirmed { .. }, .. })) {
            stats.confirmations_sent.fetch_add(1, Ordering::SeqCst);
        }
        let _ = reply.send(result);
    }
}
