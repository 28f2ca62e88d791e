//! The SQLite backend's handle: cheap to clone, every call a job for the writer thread, awaited
//! without blocking the caller's runtime.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use tokio::sync::oneshot;
use tracing::{error, info};

use crate::catalog;
use crate::error::StoreError;
use crate::fault::{Faults, InjectedPanic};
use sellcast_room::{Product, ProductDraft, Sale, SaleDraft};

use crate::histogram::HistogramSnapshot;
use crate::model::{BuyOutcome, BuyRequest, DurableRoom, Order};
use crate::outbox::{self, OutboxCounts, OutboxRow};
use crate::schema;
use crate::writer::{self, Job, WriterOptions, WriterStats};
use crate::store::{Durability, StoreOptions, WriterSnapshot};

#[derive(Clone)]
pub struct SqliteStore {
    jobs: Sender<Job>,
    stats: Arc<WriterStats>,
    durability: Arc<Durability>,
    /// Where a test arms a writer panic (`fault-injection` only).
    #[cfg(feature = "fault-injection")]
    armed: Arc<std::sync::Mutex<crate::fault::ArmedPanic>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("stats", &self.stats).finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path` and start its writer thread, which a
    /// supervisor restarts on a fresh connection if it panics (see [`supervise`]).
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<SqliteStore, StoreError> {
        let writer_options = WriterOptions { webhook_outbox: options.webhook_outbox };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let (mut conn, durability) = open_connection(path)?;
        schema::migrate(&mut conn)?;
        let faults = Faults::from_env();
        #[cfg(feature = "fault-injection")]
        let armed = faults.armed();
        let (jobs, rx) = channel();
        let stats = Arc::new(WriterStats::default());
        stats.up.store(true, Ordering::SeqCst);
        let writer_stats = stats.clone();
        let path = path.to_path_buf();
        thread::Builder::new()
            .name("sellcast-store".into())
            .spawn(move || supervise(&path, conn, &rx, &writer_stats, (&faults, writer_options)))?;
        Ok(SqliteStore {
            jobs,
            stats,
            durability: Arc::new(durability),
            #[cfg(feature = "fault-injection")]
            armed,
        })
    }

    /// Test-only: make the writer panic at `at` (`Now`: with the next job it takes; otherwise
    /// in its next buy batch). With `hold`, the supervisor restarts it only once the hold's
    /// sender is dropped.
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic(&self, at: crate::fault::PanicPoint, hold: Option<crate::fault::RestartHold>) {
        if at == crate::fault::PanicPoint::Now {
            let job = Job::Run(Box::new(move |_| std::panic::panic_any(crate::fault::InjectedPanic { hold })));
            let _ = self.jobs.send(job);
            return;
        }
        let mut slot = match self.armed.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Some((at, hold));
    }

    /// True while the writer runs; false between its panic and its restart.
    pub fn writer_up(&self) -> bool {
        self.stats.up.load(Ordering::SeqCst)
    }

    /// Times the writer was restarted after a panic.
    pub fn writer_restarts(&self) -> u64 {
        self.stats.restarts.load(Ordering::SeqCst)
    }

    /// Run `f` on the writer's connection and await its result.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job = Job::Run(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        }));
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Commit one buy (batched with every other buy waiting). Answers after the fsync.
    pub async fn buy(&self, req: BuyRequest) -> Result<BuyOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send(Job::Buy(req, tx)).map_err(|_| StoreError::Closed)?;
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

    /// Ban `identity` in `room` until `until_ms` (`None`: for good); `by` is the banning role.
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

    /// Set the show's title, start and avatar (and host name); returns the show as stored.
    pub async fn set_show(&self, room: &str, info: sellcast_room::ShowInfo) -> Result<sellcast_room::ShowInfo, StoreError> {
        let room = room.to_string();
        self.run(move |c| crate::show::set_show(c, &room, &info)).await
    }

    /// `identity` goes by `name` in `room` (`host`: also the show's host name).
    pub async fn set_display_name(&self, room: &str, identity: &str, name: &str, host: bool) -> Result<(), StoreError> {
        let (room, identity, name) = (room.to_string(), identity.to_string(), name.to_string());
        self.run(move |c| crate::show::set_display_name(c, &room, &identity, &name, host)).await
    }

    /// Save the room's likes total (never lowered).
    pub async fn save_likes(&self, room: &str, total: u64) -> Result<(), StoreError> {
        let room = room.to_string();
        self.run(move |c| crate::show::save_likes(c, &room, total)).await
    }

    /// End the show: every open sale of the room ends at `now_ms` with it. Returns those sales.
    pub async fn end_show(&self, room: &str, now_ms: i64) -> Result<Vec<Sale>, StoreError> {
        let room = room.to_string();
        self.run(move |c| crate::show::end_show(c, &room, now_ms)).await
    }

    pub async fn load_room(&self, room: &str) -> Result<DurableRoom, StoreError> {
        let room = room.to_string();
        self.run(move |c| catalog::load_room(c, &room)).await
    }

    /// Newest first.
    pub async fn recent_orders(&self, room: &str, limit: u32) -> Result<Vec<Order>, StoreError> {
        let room = room.to_string();
        self.run(move |c| catalog::recent_orders(c, &room, limit)).await
    }

    /// The orders `identity` placed in `room`, newest first.
    pub async fn orders_of(&self, room: &str, identity: &str, limit: u32) -> Result<Vec<Order>, StoreError> {
        let (room, identity) = (room.to_string(), identity.to_string());
        self.run(move |c| catalog::orders_of(c, &room, &identity, limit)).await
    }

    pub async fn sale_totals(&self, room: &str, sale_id: i64) -> Result<(i64, i64), StoreError> {
        let room = room.to_string();
        self.run(move |c| catalog::sale_totals(c, &room, sale_id)).await
    }

    /// Up to `limit` owed webhook deliveries due at `now_ms`, oldest order first.
    pub async fn outbox_due(&self, now_ms: i64, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.run(move |c| Ok(outbox::due(c, now_ms, limit)?)).await
    }

    /// When the next owed webhook delivery is due (`None`: nothing is owed).
    pub async fn outbox_next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        self.run(|c| Ok(outbox::next_due_ms(c)?)).await
    }

    /// The webhook acknowledged order `order_id` with a 2xx.
    pub async fn outbox_delivered(&self, order_id: i64, now_ms: i64) -> Result<(), StoreError> {
        self.run(move |c| Ok(outbox::mark_delivered(c, order_id, now_ms)?)).await
    }

    /// A delivery attempt of order `order_id` failed with `error`; the next is due at `next_attempt_ms`.
    pub async fn outbox_failed(&self, order_id: i64, next_attempt_ms: i64, error: String) -> Result<(), StoreError> {
        self.run(move |c| Ok(outbox::record_failure(c, order_id, next_attempt_ms, &error)?)).await
    }

    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        self.run(|c| Ok(outbox::counts(c)?)).await
    }

    /// Every order id with a delivery owed or done, oldest first.
    pub async fn outbox_order_ids(&self) -> Result<Vec<i64>, StoreError> {
        self.run(|c| Ok(outbox::order_ids(c)?)).await
    }

    pub fn durability(&self) -> &Durability {
        &self.durability
    }

    pub fn writer_stats(&self) -> WriterSnapshot {
        self.stats.snapshot()
    }

    /// How long buy batches took to commit (microseconds) and how many buys each carried.
    pub fn commit_histograms(&self) -> (HistogramSnapshot, HistogramSnapshot) {
        (self.stats.commit_us.snapshot(), self.stats.batch_size.snapshot())
    }

    /// `(buys, commits)` so far: commits far below buys means group commit is batching.
    pub fn commit_stats(&self) -> (u64, u64) {
        (self.stats.buys.load(Ordering::Relaxed), self.stats.buy_commits.load(Ordering::Relaxed))
    }
}

/// The write connection with WAL and `synchronous=FULL` set, and what SQLite reports back.
fn open_connection(path: &Path) -> Result<(Connection, Durability), StoreError> {
    let conn = Connection::open(path)?;
    // WAL: readers never block the writer. FULL: a committed order survives power loss.
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Invalid(format!("could not enable WAL (got {mode})")));
    }
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;")?;
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
    let synchronous = match synchronous {
        0 => "off",
        1 => "normal",
        2 => "full",
        3 => "extra",
        _ => "unknown",
    };
    Ok((conn, Durability { journal_mode: mode.to_ascii_lowercase(), synchronous: synchronous.into() }))
}

/// Longest pause between two attempts to reopen the database after a writer panic.
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The writer thread's supervisor. It runs the writer; when the writer panics, the panic has
/// already rolled back the open transaction and dropped the replies of the jobs in hand (their
/// callers hear `Closed`, so a buy is answered `unavailable`, never confirmed uncommitted). It
/// then reopens the database and runs a new writer on the same queue, so jobs that were still
/// waiting are served, not lost. While the database cannot be reopened, jobs are refused
/// (dropped: `Closed`) rather than left waiting, with a growing pause between attempts.
/// It returns when every `Store` handle is gone.
fn supervise(path: &Path, first: Connection, jobs: &Receiver<Job>, stats: &Arc<WriterStats>, (faults, options): (&Faults, WriterOptions)) {
    let mut conn = Some(first);
    let mut backoff = Duration::from_millis(50);
    loop {
        let c = match conn.take() {
            Some(c) => c,
            None => match open_connection(path) {
                Ok((c, _)) => c,
                Err(e) => {
                    error!(error = %e, "the store cannot reopen its database; refusing jobs until it can");
                    while jobs.try_recv().is_ok() {}
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(REOPEN_BACKOFF_MAX);
                    continue;
                }
            },
        };
        stats.up.store(true, Ordering::SeqCst);
        match catch_unwind(AssertUnwindSafe(|| writer::run(c, jobs, stats, faults, options))) {
            Ok(()) => return,
            Err(payload) => {
                stats.up.store(false, Ordering::SeqCst);
                stats.restarts.fetch_add(1, Ordering::SeqCst);
                // A batch that died between its writes and its commit has ended (rolled back).
                stats.batches_ended.store(stats.batches_written.load(Ordering::SeqCst), Ordering::SeqCst);
                let injected = payload.downcast::<InjectedPanic>();
                error!(injected = injected.is_ok(), "the store writer panicked; restarting it on a new connection");
                if let Ok(injected) = injected {
                    if let Some(hold) = injected.hold {
                        hold.wait();
                    }
                }
                backoff = Duration::from_millis(50);
                info!("store writer restarting");
            }
        }
    }
}
