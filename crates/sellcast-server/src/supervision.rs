//! Supervision: what restarts the server's long-lived parts after a panic, and what
//! `/healthz` and the metrics read about them.
//!
//! Three kinds of part run for the life of the process, each with its own supervisor:
//! - **show tasks** (one per room, `interaction::registry`): the supervisor owns the room's inbox, so a
//!   panic loses only the message being handled. It reloads the room from the store (retrying
//!   while the store is down: without its bans a room must not run), starts a new `Show` with a
//!   new epoch, and asks the shards to join every open data channel of the room again: each
//!   viewer gets a `welcome` and a `snapshot`, as after a reconnect.
//! - **media shards** (`media::shard`): the shard thread catches the panic, closes every peer
//!   of the dead driver as on shutdown (DTLS close, so pages reconnect at once; show `leave`s;
//!   the host's end to the other shards; its status-board entries), and runs a new driver on the
//!   same socket, queues and links. Its peers' sessions are gone; a page that reconnects lands
//!   on any live shard (a host on its room's home shard, which is this one, running again).
//! - **the store writer** (`sellcast-store`): restarted on a new connection by its own
//!   supervisor; buys it held are answered `unavailable`, the queue behind them is served.
//!
//! [`Supervision`] keeps the restart counts (one `AtomicU64` per part, for the metrics
//! exporter) and how many units of each part are down right now (for `/healthz`).

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use serde::Serialize;

/// One kind of supervised part: how often its units were restarted and how many are down.
#[derive(Debug, Default)]
pub struct PartHealth {
    restarts: AtomicU64,
    down: AtomicU64,
}

impl PartHealth {
    /// A unit panicked and its supervisor is bringing it back.
    pub fn went_down(&self) {
        self.restarts.fetch_add(1, Ordering::SeqCst);
        self.down.fetch_add(1, Ordering::SeqCst);
    }

    /// A unit that went down runs again.
    pub fn came_back(&self) {
        let _ = self.down.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| d.checked_sub(1));
    }

    /// Supervised restarts so far (a counter: it only grows).
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// Units down right now.
    pub fn down(&self) -> u64 {
        self.down.load(Ordering::SeqCst)
    }
}

/// Restart counts per part at one moment, as the metrics exporter reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RestartCounts {
    pub show_tasks: u64,
    pub media_shards: u64,
    pub store_writer: u64,
}

/// The supervisors' shared record, held in the app state (`AppState::supervision`) and by
/// [`crate::RunningServer`]. Room and shard supervisors write to it; the store writer keeps
/// its own counters, read through the store handle.
#[derive(Debug)]
pub struct Supervision {
    pub show_tasks: PartHealth,
    pub media_shards: PartHealth,
    store: sellcast_store::Store,
}

/// A part's state in `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartStatus {
    Ok,
    /// Some of its units are being restarted; the rest serve.
    Degraded,
    /// The only unit (the store writer) is being restarted.
    Restarting,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartReport {
    pub status: PartStatus,
    pub restarts: u64,
    /// Units down right now.
    pub down: u64,
}

/// What `/healthz` answers: 200 when every part is `ok`, else 503.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub ok: bool,
    pub show_tasks: PartReport,
    pub media_shards: PartReport,
    pub store: PartReport,
}

impl Supervision {
    pub fn new(store: sellcast_store::Store) -> Self {
        Self { show_tasks: PartHealth::default(), media_shards: PartHealth::default(), store }
    }

    pub fn restarts(&self) -> RestartCounts {
        RestartCounts {
            show_tasks: self.show_tasks.restarts(),
            media_shards: self.media_shards.restarts(),
            store_writer: self.store.writer_restarts(),
        }
    }

    pub fn report(&self) -> HealthReport {
        let many = |part: &PartHealth| {
            let down = part.down();
            PartReport {
                status: if down == 0 { PartStatus::Ok } else { PartStatus::Degraded },
                restarts: part.restarts(),
                down,
            }
        };
        let store_up = self.store.writer_up();
        let store = PartReport {
            status: if store_up { PartStatus::Ok } else { PartStatus::Restarting },
            restarts: self.store.writer_restarts(),
            down: u64::from(!store_up),
        };
        let (show_tasks, media_shards) = (many(&self.show_tasks), many(&self.media_shards));
        let ok = [&show_tasks, &media_shards, &store].iter().all(|p| p.status == PartStatus::Ok);
        HealthReport { ok, show_tasks, media_shards, store }
    }
}

/// A panic's message, for the log line that reports it.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if payload.is::<InjectedPanic>() {
        "injected by a test".to_string()
    } else {
        "(no message)".to_string()
    }
}

/// A future that turns a panic while polling `F` into `Err(payload)`, so a supervisor
/// outlives the task it runs. `F` is polled in place: what it borrows (the room's inbox)
/// survives the panic.
pub struct CatchUnwind<F>(pub F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// The payload of a panic injected by a test hook: the supervisor restarts the part only once
/// the hold (if any) is released, so a test can see the part down.
#[derive(Debug)]
pub struct InjectedPanic {
    pub hold: Option<RestartHold>,
}

/// Keeps a supervisor from restarting until the matching [`Release`] is dropped (at most a
/// minute, so a failed test never leaves a part down for good).
#[derive(Debug)]
pub struct RestartHold(std::sync::mpsc::Receiver<()>);

/// Dropping it lets the held restart go.
#[derive(Debug)]
pub struct Release(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

impl Release {
    /// A release for a hold made elsewhere (the store's own hold type).
    pub fn from_sender(tx: std::sync::mpsc::Sender<()>) -> Release {
        Release(tx)
    }
}

impl RestartHold {
    pub fn new() -> (RestartHold, Release) {
        let (tx, rx) = std::sync::mpsc::channel();
        (RestartHold(rx), Release(tx))
    }

    /// Block this thread until released.
    pub fn wait(self) {
        let _ = self.0.recv_timeout(std::time::Duration::from_secs(60));
    }

    /// Wait without blocking the runtime.
    pub async fn wait_async(self) {
        let _ = tokio::task::spawn_blocking(move || self.wait()).await;
    }
}

/// After a panic: wait if it was an injected one with a hold.
pub fn hold_if_injected(payload: &mut Box<dyn Any + Send>) -> Option<RestartHold> {
    payload.downcast_mut::<InjectedPanic>().and_then(|p| p.hold.take())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_down_between_its_panic_and_its_restart() {
        let part = PartHealth::default();
        part.went_down();
        part.went_down();
        assert_eq!((part.restarts(), part.down()), (2, 2));
        part.came_back();
        assert_eq!((part.restarts(), part.down()), (2, 1));
        part.came_back();
        part.came_back();
        assert_eq!((part.restarts(), part.down()), (2, 0), "down never goes below zero");
    }

    #[tokio::test]
    async fn catch_unwind_returns_the_panic_and_keeps_what_the_future_borrowed() {
        let mut inbox = vec![1, 2, 3];
        let outcome = CatchUnwind(Box::pin(async {
            inbox.pop();
            if inbox.len() == 2 {
                std::panic::panic_any(InjectedPanic { hold: None });
            }
        }))
        .await;
        let Err(payload) = outcome else {
            panic!("the panic did not come back as an error");
        };
        assert_eq!(panic_message(payload.as_ref()), "injected by a test");
        assert_eq!(inbox, vec![1, 2], "the borrowed state outlives the panic");
    }
}
