//! Test-only faults in the writer, so tests can prove the order "commit, then acknowledge"
//! matters. Compiled in only with the `fault-injection` feature (enabled by the server's
//! dev-dependency on this crate, never by a release build); read once from the
//! `SELLCAST_FAULT` environment variable when the store opens.
//!
//! `SELLCAST_FAULT` is a comma-separated list of:
//! - `ack_before_commit`: the broken variant; a batch's answers go out before its commit.
//! - `commit_delay_ms=N`: wait N ms between a batch's writes and its commit (widens the window
//!   in which an early answer could be seen before its order is readable).
//! - `outbox_after_commit`: the broken variant; webhook deliveries are owed in a transaction of
//!   their own after the orders' commit instead of in it.
//! - `stale_stock_check`: the broken variant; a list-price buy's stock is checked against what
//!   it was before its batch began (outside the order's transaction) and then set, not
//!   decremented where it still has the units.
//! - `hold_commit_after_buys=N`: the first batch to begin once N buys have been taken stops
//!   before its commit and waits there (up to 60 s) for the process to be killed.
//!
//! Tests in the same process arm a writer panic with [`crate::Store::inject_panic`]: the
//! writer panics at the chosen point of its next buy batch (or at once), and its supervisor
//! restarts it. The panic may carry a [`RestartHold`]: the supervisor then waits until the
//! test drops the matching sender before it restarts, so the test sees the writer down.

/// Where an injected writer panic strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub enum PanicPoint {
    /// As soon as the writer takes the job (nothing in flight but the queue behind it).
    Now,
    /// In the next buy batch, after its writes, before its commit: nothing of it is durable.
    BeforeCommit,
    /// In the next buy batch, after its commit, before any answer: all of it is durable and
    /// none of its buyers heard so.
    AfterCommit,
}

/// Carried by an injected panic: the supervisor waits for the test's sender to be dropped
/// (at most `HOLD_LIMIT`) before it restarts the writer.
#[derive(Debug)]
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub struct RestartHold(pub std::sync::mpsc::Receiver<()>);

/// A panic a test armed, waiting for its point.
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub type ArmedPanic = Option<(PanicPoint, Option<RestartHold>)>;

/// The payload of an injected panic, so the supervisor can tell it from a real one.
#[derive(Debug)]
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub struct InjectedPanic {
    pub hold: Option<RestartHold>,
}

impl RestartHold {
    /// Block until the test lets the restart go (drops its sender), or the limit passes.
    pub fn wait(self) {
        let _ = self.0.recv_timeout(std::time::Duration::from_secs(60));
    }
}

#[cfg(feature = "fault-injection")]
mod active {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::{ArmedPanic, InjectedPanic, PanicPoint};

    /// Longest a held commit waits for the kill that a test promised.
    const HOLD_LIMIT: Duration = Duration::from_secs(60);

    #[derive(Debug, Default)]
    pub struct Faults {
        ack_before_commit: bool,
        outbox_after_commit: bool,
        stale_stock_check: bool,
        commit_delay: Option<Duration>,
        hold_after_buys: Option<u64>,
        held: AtomicBool,
        /// A panic armed by a test for the next buy batch.
        armed: Arc<Mutex<ArmedPanic>>,
    }

    impl Faults {
        /// The slot a test arms a panic in; shared with the `Store` handle.
        pub fn armed(&self) -> Arc<Mutex<ArmedPanic>> {
            self.armed.clone()
        }

        /// Panic here if a test armed a panic for this point.
        pub fn panic_at(&self, point: PanicPoint) {
            let mut slot = match self.armed.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            if slot.as_ref().is_some_and(|(at, _)| *at == point) {
                if let Some((_, hold)) = slot.take() {
                    drop(slot);
                    std::panic::panic_any(InjectedPanic { hold });
                }
            }
        }

        pub fn from_env() -> Self {
            let mut f = Faults::default();
            let spec = std::env::var("SELLCAST_FAULT").unwrap_or_default();
            for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (name, value) = item.split_once('=').unwrap_or((item, ""));
                let number = value.parse::<u64>().ok();
                match (name, number) {
                    ("ack_before_commit", _) => f.ack_before_commit = true,
                    ("outbox_after_commit", _) => f.outbox_after_commit = true,
                    ("stale_stock_check", _) => f.stale_stock_check = true,
                    ("commit_delay_ms", Some(ms)) => f.commit_delay = Some(Duration::from_millis(ms)),
                    ("hold_commit_after_buys", Some(n)) => f.hold_after_buys = Some(n),
                    _ => tracing::error!(fault = item, "unknown SELLCAST_FAULT entry ignored"),
                }
            }
            if !spec.is_empty() {
                tracing::warn!(faults = %spec, "FAULT INJECTION active in the store writer");
            }
            f
        }

        pub fn ack_before_commit(&self) -> bool {
            self.ack_before_commit
        }

        pub fn outbox_after_commit(&self) -> bool {
            self.outbox_after_commit
        }

        pub fn stale_stock_check(&self) -> bool {
            self.stale_stock_check
        }

        /// Called between a batch's writes and its commit; `buys_taken` counts buys so far.
        pub fn before_commit(&self, buys_taken: u64) {
            if let Some(d) = self.commit_delay {
                std::thread::sleep(d);
            }
            let due = self.hold_after_buys.is_some_and(|n| buys_taken >= n);
            if due && !self.held.swap(true, Ordering::SeqCst) {
                tracing::warn!(buys_taken, "FAULT: holding this commit until the process is killed");
                std::thread::sleep(HOLD_LIMIT);
            }
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
mod active {
    use super::PanicPoint;

    /// Without the feature there is nothing to inject: every check is a constant.
    #[derive(Debug, Default)]
    pub struct Faults;

    impl Faults {
        pub fn from_env() -> Self {
            Faults
        }

        #[inline(always)]
        pub fn ack_before_commit(&self) -> bool {
            false
        }

        #[inline(always)]
        pub fn outbox_after_commit(&self) -> bool {
            false
        }

        #[inline(always)]
        pub fn stale_stock_check(&self) -> bool {
            false
        }

        #[inline(always)]
        pub fn before_commit(&self, _buys_taken: u64) {}

        #[inline(always)]
        pub fn panic_at(&self, _point: PanicPoint) {}
    }
}

pub use active::Faults;
