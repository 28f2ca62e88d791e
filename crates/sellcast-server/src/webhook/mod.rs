//! The merchant webhook: every committed order is POSTed to the merchant's shop, which takes
//! payment and fulfils it (sellcast only records the order).
//!
//! The store owes a delivery for each order in the order's own transaction (its outbox);
//! [`delivery`] is the task that pays those debts, signed ([`signing`]) and retried with
//! [`backoff`] until the receiver answers 2xx. Deliveries are at least once and idempotent by
//! order id. `docs/merchant.md` is the receiver's side: body, headers, verification.

pub mod backoff;
pub mod delivery;
pub mod signing;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sellcast_store::Store;
use tokio::sync::{oneshot, Notify};

pub use backoff::Backoff;

/// Where and how to deliver.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The receiver's URL (`http://` or `https://`).
    pub url: String,
    /// The HMAC secret shared with the receiver.
    pub secret: String,
    pub backoff: Backoff,
    /// Longest wait for one attempt's answer (connect included).
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig").field("url", &self.url).field("backoff", &self.backoff).finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// `url` and `secret` with the default backoff and a 10 s timeout.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self { url: url.into(), secret: secret.into(), backoff: Backoff::default(), timeout: Duration::from_secs(10) }
    }

    /// Refuse a configuration that cannot work, before anything starts.
    pub fn check(&self) -> Result<(), String> {
        let scheme_ok = self.url.starts_with("https://") || self.url.starts_with("http://");
        if !scheme_ok || reqwest::Url::parse(&self.url).is_err() {
            return Err(format!("--webhook-url {:?} is not an http(s) URL", self.url));
        }
        if self.secret.len() < 16 {
            return Err("--webhook-secret must be at least 16 bytes (`openssl rand -hex 32`)".into());
        }
        Ok(())
    }
}

/// Why one attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("connection refused, dropped or unreadable")]
    Transport,
    #[error("no answer in time")]
    Timeout,
}

impl Failure {
    pub const NAMES: [&'static str; 3] = ["status", "transport", "timeout"];

    pub fn name(self) -> &'static str {
        match self {
            Failure::Status(_) => "status",
            Failure::Transport => "transport",
            Failure::Timeout => "timeout",
        }
    }
}

/// The worker's counters, read by `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Orders whose delivery is owed (as of the worker's last look at the store).
    pub pending: AtomicU64,
    /// Deliveries acknowledged with a 2xx since start.
    pub delivered: AtomicU64,
    /// Failed attempts since start, by [`Failure::NAMES`].
    pub failed: [AtomicU64; 3],
}

impl WebhookStats {
    fn failed(&self, failure: Failure) {
        let i = Failure::NAMES.iter().position(|n| *n == failure.name()).unwrap_or(0);
        self.failed[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// The running worker: stops when this is dropped or [`Webhook::stop`] is called.
pub struct Webhook {
    pub stats: Arc<WebhookStats>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Webhook {
    /// Start delivering from `store`'s outbox on the current runtime; `wake` is notified when
    /// an order commits.
    pub fn spawn(store: Store, config: WebhookConfig, wake: Arc<Notify>) -> Webhook {
        let stats = Arc::new(WebhookStats::default());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(delivery::run(store, config, wake, stats.clone(), stopped));
        Webhook { stats, stop: Some(stop), task: Some(task) }
    }

    /// Stop after the attempt in flight, if any.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
