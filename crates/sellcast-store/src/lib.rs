//! Durable commerce state for sellcast, in SQLite (the single-node default) or PostgreSQL
//! (cluster mode), behind one handle, [`Store`]: products, flash sales and their stock,
//! orders, idempotency answers, bans and blocked words.
//!
//! One writer thread owns the write connection (WAL, `synchronous=FULL`); callers send jobs
//! and await replies. Buys waiting together commit together (group commit), each answered only
//! after its transaction is on disk. It must never acknowledge an uncommitted order, let stock
//! go below zero, or give a retried idempotency key a different answer.
//!
//! With the webhook outbox on ([`StoreOptions`]), every committed order owes a delivery to the
//! merchant's webhook, recorded in the order's own transaction (`outbox.rs`).
//!
//! A supervisor restarts the writer on a new connection if it panics: the buys it held are
//! answered `Closed` (nothing of an uncommitted batch is durable; a committed one is found by
//! its idempotency keys on retry), and the jobs queued behind them are served by the new writer.

mod buy;
mod catalog;
mod error;
mod fault;
mod histogram;
mod model;
mod outbox;
mod postgres;
mod schema;
mod show;
mod sqlite_store;
mod store;
#[cfg(feature = "test-support")]
pub mod testing;
mod writer;

pub use catalog::{validate_product, MAX_PINS};
pub use error::StoreError;
pub use histogram::{AtomicHistogram, HistogramSnapshot};
#[cfg(feature = "fault-injection")]
pub use fault::{PanicPoint, RestartHold};
pub use model::{Ban, BuyOutcome, BuyRequest, DurableRoom, Order};
pub use outbox::{OutboxCounts, OutboxRow};
pub use postgres::{latest_schema_version as latest_postgres_schema_version, PgStore};
pub use sqlite_store::SqliteStore;
pub use store::{Backend, Durability, Store, StoreOptions, WriterSnapshot};
