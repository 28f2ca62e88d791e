//! The PostgreSQL backend: commerce state in a PostgreSQL database several nodes can share.
//!
//! It keeps the SQLite backend's shape and promises: one writer thread owns the write
//! connection and every change is a job on its queue; buys waiting together commit in one
//! transaction (group commit), each answered only after that commit returned; a retried key
//! gets its original answer; no stock goes below zero; the webhook delivery an order owes is
//! written in the order's own transaction. One connection serves a node: its writes are
//! serialised through the writer like SQLite's, and PostgreSQL's row locks order the writers
//! of different nodes.
//!
//! When PostgreSQL goes away, every job fails fast with [`StoreError::Unavailable`] (a buy is
//! answered `unavailable`, never confirmed), and the writer reconnects once it is back
//! (`connection.rs`).

mod buy;
mod catalog;
mod connection;
mod outbox;
mod schema;
mod show;
mod statements;
mod writer;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use postgres::Client;
use tokio::sync::oneshot;
use tracing::error;

use sellcast_room::{Product, ProductDraft, Sale, SaleDraft};

use crate::error::StoreError;
use crate::fault::Faults;
use crate::histogram::HistogramSnapshot;
use crate::model::{BuyOutcome, BuyRequest, DurableRoom, Order};
use crate::outbox::{OutboxCounts, OutboxRow};
use crate::store::{Durability, StoreOptions, WriterSnapshot};
use crate::writer::{WriterOptions, WriterStats};

use connection::Connection;
use writer::PgJob;

pub use schema::latest_version as latest_schema_version;

/// A count column (`BIGINT`, kept at or above zero by its `CHECK` and below 2^32 by the
/// validation every write passes) as the `u32` the room's types use.
fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The PostgreSQL backend's handle: cheap to clone, every call a job for its writer thread.
#[derive(Clone)]
pub struct PgStore {
    jobs: Sender<PgJob>,
    stats: Arc<WriterStats>,
    durability: Arc<Durability>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connect to `url`, migrate the schema and start the writer thread. The blocking client
    /// runs a runtime of its own, which cannot start inside the caller's: the connection is
    /// made, and the schema migrated, on the writer thread, and this waits for its word.
    pub fn connect(url: &str, options: StoreOptions) -> Result<PgStore, StoreError> {
        let stats = Arc::new(WriterStats::default());
        let faults = Faults::from_env();
        let (jobs, rx) = channel();
        let (ready_tx, ready_rx) = channel();
        let writer_stats = stats.clone();
        let writer_options = WriterOptions { webhook_outbox: options.webhook_outbox };
        let url = url.to_string();
        thread::Builder::new().name("sellcast-store-pg".into()).spawn(move || {
            let opened = Connection::open(&url).and_then(|(mut conn, durability)| {
                schema::migrate(conn.client(&writer_stats)?)?;
                Ok((conn, durability))
            });
            match opened {
                Ok((conn, durability)) => {
                    writer_stats.up.store(true, Ordering::SeqCst);
                    let _ = ready_tx.send(Ok(durability));
                    supervise(conn, &rx, &writer_stats, &faults, writer_options);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })?;
        let durability = ready_rx.recv().map_err(|_| StoreError::Closed)??;
        Ok(PgStore { jobs, stats, durability: Arc::new(durability) })
    }

    pub fn writer_up(&self) -> bool {
        self.stats.up.load(Ordering::SeqCst)
    }

    pub fn writer_restarts(&self) -> u64 {
        self.stats.restarts.load(Ordering::SeqCst)
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job = PgJob::Run(Box::new(move |client| {
            let _ = tx.send(client.and_then(f));
        }));
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn buy(&self, req: BuyRequest) -> Result<BuyOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send(PgJob::Buy(req, tx)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn create_product(&self, room: &str, draft: ProductDraft) -> Result<Product, StoreError> {
        let room = room.to_string();
        self.run(move |c| catalog::create_product(c, &room, &draft, now_ms())).await
    }

    pub async fn update_product(&self, room: &str, id: i64, draft: ProductDraft) -> Result<Product, StoreError> {
        let room = room.to_string();
        self.run(move |c| catalog::update_product(c, &room, id, &draft)).await
    }

    pub async fn delete_product(&self, room: &str, id: i64) -> Result<(), StoreError> {
        let room = room.to_string();
        self.run(move |c| catalog::delete_product(c, &room, id)).await
    }

    pub async fn create_sale(&self, room: &str, draft: SaleDraft) -> Result<Sale, StoreError> {
        let room = room.to_string();
        self.run(move |c| catalog::create_sale(c, &room, &draft)).await
    }

    pub async fn end_sale(&self, room: &str, sale_id: i64, now_ms: i64) -> Result<Sale, StoreError> {
        let room = room.to_string();
        self.run(move |c| catalog::end_sale(c, &room, sale_id, now_ms)).await
    }

    pub async fn set_pins(&self, room: &str, product_ids: Vec<i64>) -> Result<(), StoreError> {
        let room = room.to_string();
        self.run(move |c| catalog::set_pins(c, &room, &product_ids)).await
    }

    pub async fn ban(&self, room: &str, identity: &str, until_ms: Option<i64>, by: sellcast_room::Role) -> Result<(), StoreError> {
        let (room, identity) = (room.to_string(), identity.to_string());
        self.run(move |c| catalog::ban(c, &room, &identity, until_ms, by)).await
    }

    pub async fn unban(&self, room: &str, identity: &str) -> Result<(), StoreError> {
        let (room, identity) = (room.to_string(), identity.to_string());
        self.run(move |c| catalog::unban(c, &room, &identity)).await
    }

    pub async fn set_blocked_words(&self, room: &str, words: Vec<String>) -> Result<(), StoreError> {
        let room = room.to_string();
        self.run(move |c| catalog::set_blocked_words(c, &room, &words)).await
    }

    pub async fn set_show(&self, room: &str, info: sellcast_room::ShowInfo) -> Result<sellcast_room::ShowInfo, StoreError> {
        let room = room.to_string();
        self.run(move |c| show::set_show(c, &room, &info)).await
    }

    pub async fn set_display_name(&self, room: &str, identity: &str, name: &str, host: bool) -> Result<(), StoreError> {
        let (room, identity, name) = (room.to_string(), identity.to_string(), name.to_string());
        self.run(move |c| show::set_display_name(c, &room, &identity, &name, host)).await
    }

    pub async fn save_likes(&self, room: &str, total: u64) -> Result<(), StoreError> {
        let room = room.to_string();
        self.run(move |c| show::save_likes(c, &room, total)).await
    }

    pub async fn end_show(&self, room: &str, now_ms: i64) -> Result<Vec<Sale>, StoreError> {
        let room = room.to_string();
        self.run(move |c| show::end_show(c, &room, now_ms)).await
    }

    pub async fn load_room(&self, room: &str) -> Result<DurableRoom, StoreError> {
        let room = room.to_string();
        self.run(move |c| catalog::load_room(c, &room)).await
    }

    pub async fn recent_orders(&self, room: &str, limit: u32) -> Result<Vec<Order>, StoreError> {
        let room = room.to_string();
        self.run(move |c| catalog::recent_orders(c, &room, limit)).await
    }

    pub async fn orders_of(&self, room: &str, identity: &str, limit: u32) -> Result<Vec<Order>, StoreError> {
        let (room, identity) = (room.to_string(), identity.to_string());
        self.run(move |c| catalog::orders_of(c, &room, &identity, limit)).await
    }

    pub async fn sale_totals(&self, room: &str, sale_id: i64) -> Result<(i64, i64), StoreError> {
        let room = room.to_string();
        self.run(move |c| catalog::sale_totals(c, &room, sale_id)).await
    }

    pub async fn outbox_due(&self, now_ms: i64, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.run(move |c| Ok(outbox::due(c, now_ms, limit)?)).await
    }

    pub async fn outbox_next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        self.run(|c| Ok(outbox::next_due_ms(c)?)).await
    }

    pub async fn outbox_delivered(&self, order_id: i64, now_ms: i64) -> Result<(), StoreError> {
        self.run(move |c| Ok(outbox::mark_delivered(c, order_id, now_ms)?)).await
    }

    pub async fn outbox_failed(&self, order_id: i64, next_attempt_ms: i64, error: String) -> Result<(), StoreError> {
        self.run(move |c| Ok(outbox::record_failure(c, order_id, next_attempt_ms, &error)?)).await
    }

    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        self.run(|c| Ok(outbox::counts(c)?)).await
    }

    pub async fn outbox_order_ids(&self) -> Result<Vec<i64>, StoreError> {
        self.run(|c| Ok(outbox::order_ids(c)?)).await
    }

    pub fn durability(&self) -> &Durability {
        &self.durability
    }

    pub fn writer_stats(&self) -> WriterSnapshot {
        self.stats.snapshot()
    }

    pub fn commit_histograms(&self) -> (HistogramSnapshot, HistogramSnapshot) {
        (self.stats.commit_us.snapshot(), self.stats.batch_size.snapshot())
    }

    pub fn commit_stats(&self) -> (u64, u64) {
        (self.stats.buys.load(Ordering::Relaxed), self.stats.buy_commits.load(Ordering::Relaxed))
    }
}

/// Run the writer; if it panics, the open transaction is dropped with it (its buys hear
/// `Closed`, nothing of it committed), and a new writer serves the queue on the same
/// connection settings. Returns when every handle is gone.
fn supervise(conn: Connection, jobs: &Receiver<PgJob>, stats: &Arc<WriterStats>, faults: &Faults, options: WriterOptions) {
    let mut conn = Some(conn);
    while let Some(c) = conn.take() {
        let mut c = c;
        let outcome = catch_unwind(AssertUnwindSafe(|| writer::run(&mut c, jobs, stats, faults, options)));
        match outcome {
            Ok(()) => return,
            Err(_) => {
                stats.restarts.fetch_add(1, Ordering::SeqCst);
                stats.batches_ended.store(stats.batches_written.load(Ordering::SeqCst), Ordering::SeqCst);
                error!("the PostgreSQL store writer panicked; restarting it");
                c.drop_client();
                conn = Some(c);
            }
        }
    }
}
