//! Test-only faults in the writer, so tests can prove the order "commit, then acknowledge"
//! matters. Compiled in only with the `fault-injection` feature (enabled by the server's
//! dev-dependency on this crate, never by a release build); read once from the
//! `SELLCAST_FAULT` environment variable when the store opens.
//!
//! `SELLCAST_FAULT` is a comma-separated list of:
//! - `ack_before_commit`: the broken variant; a batch's answers go out before its commit.
//! - `commit_delay_ms=N`: wait N ms between a batch's writes and its commit (widens the window
//!   in which an early answer could be seen before its order is readable).
//! - `hold_commit_after_buys=N`: the first batch to begin once N buys have been taken stops
//!   before its commit and waits there (up to 60 s) for the process to be killed.

#[cfg(feature = "fault-injection")]
mod active {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// Longest a held commit waits for the kill that a test promised.
    const HOLD_LIMIT: Duration = Duration::from_secs(60);

    #[derive(Debug, Default)]
    pub struct Faults {
        ack_before_commit: bool,
        commit_delay: Option<Duration>,
        hold_after_buys: Option<u64>,
        held: AtomicBool,
    }

    impl Faults {
        pub fn from_env() -> Self {
            let mut f = Faults::default();
            let spec = std::env::var("SELLCAST_FAULT").unwrap_or_default();
            for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (name, value) = item.split_once('=').unwrap_or((item, ""));
                let number = value.parse::<u64>().ok();
                match (name, number) {
                    ("ack_before_commit", _) => f.ack_before_commit = true,
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
        pub fn before_commit(&self, _buys_taken: u64) {}
    }
}

pub use active::Faults;
