//! The one store interface the server and the tests hold: [`Store`], with the embedded SQLite
//! database (the single-node default) or a PostgreSQL server (cluster mode) behind it.
//!
//! It is an enum over the two backends rather than a trait object: every call is async, and
//! an async trait is not object-safe, while making the server generic over a store type would
//! thread a type parameter through every show task, HTTP filter and worker that holds one.
//! The enum keeps `Store` one concrete, cheaply cloned type; each call forwards to the
//! backend, and the match is exhaustive, so a backend cannot miss a call. Both backends keep
//! the same promises (the crate doc lists them), and one test suite runs against both.

use std::path::Path;

use serde::Serialize;

use sellcast_room::{Product, ProductDraft, Sale, SaleDraft};

use crate::error::StoreError;
use crate::histogram::HistogramSnapshot;
use crate::model::{BuyOutcome, BuyRequest, DurableRoom, Order};
use crate::outbox::{OutboxCounts, OutboxRow};
use crate::postgres::PgStore;
use crate::sqlite_store::SqliteStore;

/// How a store runs besides where its data is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Owe a merchant-webhook delivery for every committed order, in its transaction. Off:
    /// no outbox rows are written (a webhook configured later does not get older orders).
    pub webhook_outbox: bool,
}

/// The durability settings of the writer's connection, as the database reports them back
/// after they were set (not as requested).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Durability {
    /// `wal` when write-ahead logging is on (always, on PostgreSQL).
    pub journal_mode: String,
    /// SQLite: `full` when every commit is fsynced before it returns. PostgreSQL: its
    /// `synchronous_commit` (`on`: a commit returns once its WAL is flushed).
    pub synchronous: String,
}

/// The writer's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WriterSnapshot {
    pub buys: u64,
    pub buy_commits: u64,
    /// A buy batch's writes are done and its commit has not returned yet.
    pub commit_in_flight: bool,
    pub confirmations_sent: u64,
}

/// Which database holds the commerce state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The handle everyone holds: cheap to clone, each call a job for the backend's writer.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Forward a call to whichever backend this store is.
macro_rules! forward {
    ($self:ident . $call:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(s) => s.$call($($arg),*),
            Store::Postgres(s) => s.$call($($arg),*),
        }
    };
    ($self:ident . $call:ident ( $($arg:expr),* ) . await) => {
        match $self {
            Store::Sqlite(s) => s.$call($($arg),*).await,
            Store::Postgres(s) => s.$call($($arg),*).await,
        }
    };
}

impl Store {
    /// Open (creating if needed) the SQLite database at `path` and start its writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// [`Store::open`] with `options`.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        SqliteStore::open_with(path, options).map(Store::Sqlite)
    }

    /// Connect to the PostgreSQL database at `url` (`postgres://user@host:port/db`), migrate
    /// its schema and start the writer thread. Fails if the server cannot be reached now;
    /// once started, the store reconnects by itself after the server comes back.
    pub fn connect_postgres(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        PgStore::connect(url, options).map(Store::Postgres)
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// Test-only: make the SQLite writer panic at `at` (see [`SqliteStore::inject_panic`]).
    /// The PostgreSQL backend's failure is the server going away, which its tests cause.
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic(&self, at: crate::fault::PanicPoint, hold: Option<crate::fault::RestartHold>) {
        match self {
            Store::Sqlite(s) => s.inject_panic(at, hold),
            Store::Postgres(_) => tracing::warn!("writer panics are injected into the SQLite backend only"),
        }
    }

    /// True while the writer runs (PostgreSQL: and holds a live connection).
    pub fn writer_up(&self) -> bool {
        forward!(self.writer_up())
    }

    /// Times the writer was restarted after a panic (PostgreSQL: reconnected after a loss).
    pub fn writer_restarts(&self) -> u64 {
        forward!(self.writer_restarts())
    }

    /// Commit one buy (batched with every other buy waiting). Answers after the commit is durable.
    pub async fn buy(&self, req: BuyRequest) -> Result<BuyOutcome, StoreError> {
        forward!(self.buy(req).await)
    }

    pub async fn create_product(&self, room: &str, draft: ProductDraft) -> Result<Product, StoreError> {
        forward!(self.create_product(room, draft).await)
    }

    pub async fn update_product(&self, room: &str, id: i64, draft: ProductDraft) -> Result<Product, StoreError> {
        forward!(self.update_product(room, id, draft).await)
    }

    pub async fn delete_product(&self, room: &str, id: i64) -> Result<(), StoreError> {
        forward!(self.delete_product(room, id).await)
    }

    pub async fn create_sale(&self, room: &str, draft: SaleDraft) -> Result<Sale, StoreError> {
        forward!(self.create_sale(room, draft).await)
    }

    pub async fn end_sale(&self, room: &str, sale_id: i64, now_ms: i64) -> Result<Sale, StoreError> {
        forward!(self.end_sale(room, sale_id, now_ms).await)
    }

    pub async fn set_pins(&self, room: &str, product_ids: Vec<i64>) -> Result<(), StoreError> {
        forward!(self.set_pins(room, product_ids).await)
    }

    /// Ban `identity` in `room` until `until_ms` (`None`: for good); `by` is the banning role.
    pub async fn ban(&self, room: &str, identity: &str, until_ms: Option<i64>, by: sellcast_room::Role) -> Result<(), StoreError> {
        forward!(self.ban(room, identity, until_ms, by).await)
    }

    pub async fn unban(&self, room: &str, identity: &str) -> Result<(), StoreError> {
        forward!(self.unban(room, identity).await)
    }

    pub async fn set_blocked_words(&self, room: &str, words: Vec<String>) -> Result<(), StoreError> {
        forward!(self.set_blocked_words(room, words).await)
    }

    /// Set the show's title, start and avatar (and host name); returns the show as stored.
    pub async fn set_show(&self, room: &str, info: sellcast_room::ShowInfo) -> Result<sellcast_room::ShowInfo, StoreError> {
        forward!(self.set_show(room, info).await)
    }

    /// `identity` goes by `name` in `room` (`host`: also the show's host name).
    pub async fn set_display_name(&self, room: &str, identity: &str, name: &str, host: bool) -> Result<(), StoreError> {
        forward!(self.set_display_name(room, identity, name, host).await)
    }

    /// Save the room's likes total (never lowered).
    pub async fn save_likes(&self, room: &str, total: u64) -> Result<(), StoreError> {
        forward!(self.save_likes(room, total).await)
    }

    /// End the show: every open sale of the room ends at `now_ms` with it. Returns those sales.
    pub async fn end_show(&self, room: &str, now_ms: i64) -> Result<Vec<Sale>, StoreError> {
        forward!(self.end_show(room, now_ms).await)
    }

    pub async fn load_room(&self, room: &str) -> Result<DurableRoom, StoreError> {
        forward!(self.load_room(room).await)
    }

    /// Newest first.
    pub async fn recent_orders(&self, room: &str, limit: u32) -> Result<Vec<Order>, StoreError> {
        forward!(self.recent_orders(room, limit).await)
    }

    /// The orders `identity` placed in `room`, newest first.
    pub async fn orders_of(&self, room: &str, identity: &str, limit: u32) -> Result<Vec<Order>, StoreError> {
        forward!(self.orders_of(room, identity, limit).await)
    }

    pub async fn sale_totals(&self, room: &str, sale_id: i64) -> Result<(i64, i64), StoreError> {
        forward!(self.sale_totals(room, sale_id).await)
    }

    /// Up to `limit` owed webhook deliveries due at `now_ms`, oldest order first.
    pub async fn outbox_due(&self, now_ms: i64, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        forward!(self.outbox_due(now_ms, limit).await)
    }

    /// When the next owed webhook delivery is due (`None`: nothing is owed).
    pub async fn outbox_next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        forward!(self.outbox_next_due_ms().await)
    }

    /// The webhook acknowledged order `order_id` with a 2xx.
    pub async fn outbox_delivered(&self, order_id: i64, now_ms: i64) -> Result<(), StoreError> {
        forward!(self.outbox_delivered(order_id, now_ms).await)
    }

    /// A delivery attempt of order `order_id` failed with `error`; the next is due at `next_attempt_ms`.
    pub async fn outbox_failed(&self, order_id: i64, next_attempt_ms: i64, error: String) -> Result<(), StoreError> {
        forward!(self.outbox_failed(order_id, next_attempt_ms, error).await)
    }

    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        forward!(self.outbox_counts().await)
    }

    /// Every order id with a delivery owed or done, oldest first.
    pub async fn outbox_order_ids(&self) -> Result<Vec<i64>, StoreError> {
        forward!(self.outbox_order_ids().await)
    }

    pub fn durability(&self) -> &Durability {
        forward!(self.durability())
    }

    pub fn writer_stats(&self) -> WriterSnapshot {
        forward!(self.writer_stats())
    }

    /// How long buy batches took to commit (microseconds) and how many buys each carried.
    pub fn commit_histograms(&self) -> (HistogramSnapshot, HistogramSnapshot) {
        forward!(self.commit_histograms())
    }

    /// `(buys, commits)` so far: commits far below buys means group commit is batching.
    pub fn commit_stats(&self) -> (u64, u64) {
        forward!(self.commit_stats())
    }
}
