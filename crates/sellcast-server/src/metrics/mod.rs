//! `/metrics`: the server's state and counters in the Prometheus text format, one registry per
//! server (tests run several servers in one process).
//!
//! Nothing on the media path touches the registry. The shards' counters are read at scrape
//! time from the snapshots they copy out twice a second (`scrape`), as are the room tasks'
//! and the store writer's. Only rare HTTP-side events (a refused session, a restart) are
//! counted in the registry as they happen.

mod family;
mod scrape;

use std::sync::Arc;

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::http::connections::{ConnectionTable, Refusal, RefusalCounter};

use crate::admission::Admission;
use crate::http::error::SignalError;
use crate::http::rate_limit::{Bucket, RateLimiters};
use crate::interaction::registry::ShowRegistry;
use crate::media::status_board::StatusBoard;
use crate::supervision::Supervision;
use crate::webhook::{Failure, WebhookStats};

/// A part of the server that is restarted when it dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    ShowTask,
    MediaShard,
    StoreWriter,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::ShowTask, Part::MediaShard, Part::StoreWriter];

    pub fn name(self) -> &'static str {
        match self {
            Part::ShowTask => "show_task",
            Part::MediaShard => "media_shard",
            Part::StoreWriter => "store_writer",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    sessions_refused: IntCounterVec,
    restarts: IntCounterVec,
    /// Requests refused by a rate limit, by bucket (signalling, api).
    rate_limited: IntCounterVec,
    /// Sessions held under the caps, by kind; rooms and addresses holding them; addresses
    /// the rate limiters keep a state for. Set from `limits` at each scrape.
    sessions: IntGaugeVec,
    session_rooms: IntGauge,
    session_addresses: IntGauge,
    rate_limited_addresses: IntGauge,
    limits: std::sync::OnceLock<(Arc<Admission>, Arc<RateLimiters>)>,
    http_connections: IntGauge,
    http_connections_refused: IntCounterVec,
    /// The HTTP listener's connection table, read into `http_connections` at scrape time.
    connections: std::sync::Mutex<Option<Arc<ConnectionTable>>>,
    /// The merchant webhook's outbox and attempts, copied from its worker at each scrape.
    webhook_pending: IntGauge,
    webhook_delivered: IntCounter,
    webhook_failed: IntCounterVec,
    /// Read under this lock, so two scrapes at once cannot add the same delivery twice.
    webhook: std::sync::OnceLock<std::sync::Mutex<Arc<WebhookStats>>>,
    /// Where the supervisors count restarts; copied into `restarts` at each scrape, under
    /// the lock so two scrapes at once cannot add the same restart twice.
    supervision: std::sync::Mutex<Arc<Supervision>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry reading `status_board`, `shows` (and through them the store) at scrape time;
    /// `runtime` is the one running HTTP and the room tasks.
    pub fn new(
        status_board: Arc<StatusBoard>,
        shows: Arc<ShowRegistry>,
        supervision: Arc<Supervision>,
        runtime: tokio::runtime::Handle,
    ) -> prometheus::Result<Self> {
        let registry = Registry::new();
        registry.register(Box::new(scrape::ScrapeCollector::new(status_board, shows, runtime)?))?;
        let sessions_refused = IntCounterVec::new(
            Opts::new("sellcast_sessions_refused_total", "WHIP and WHEP offers refused, by endpoint, cause and HTTP status."),
            &["endpoint", "cause", "status"],
        )?;
        let restarts = IntCounterVec::new(
            Opts::new("sellcast_restarts_total", "Supervised parts restarted after they died."),
            &["part"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new("sellcast_rate_limited_total", "Requests refused with 429 by a per-client rate limit, by bucket."),
            &["bucket"],
        )?;
        let sessions = IntGaugeVec::new(
            Opts::new("sellcast_sessions", "WHIP and WHEP sessions holding a place under the caps, by kind."),
            &["kind"],
        )?;
        let session_rooms = IntGauge::new("sellcast_session_rooms", "Rooms holding at least one session.")?;
        let session_addresses = IntGauge::new("sellcast_session_addresses", "Client addresses holding at least one session.")?;
        let rate_limited_addresses =
            IntGauge::new("sellcast_rate_limiter_addresses", "Client addresses the rate limiters keep a state for.")?;
        registry.register(Box::new(sessions_refused.clone()))?;
        registry.register(Box::new(restarts.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(sessions.clone()))?;
        registry.register(Box::new(session_rooms.clone()))?;
        registry.register(Box::new(session_addresses.clone()))?;
        registry.register(Box::new(rate_limited_addresses.clone()))?;
        for bucket in [Bucket::Signalling, Bucket::Api] {
            rate_limited.with_label_values(&[bucket_name(bucket)]);
        }
        let http_connections = IntGauge::new("sellcast_http_connections", "HTTP(S) connections held now.")?;
        let http_connections_refused = IntCounterVec::new(
            Opts::new("sellcast_http_connections_refused_total", "HTTP(S) connections closed on accept, by the cap they were over."),
            &["cap"],
        )?;
        registry.register(Box::new(http_connections.clone()))?;
        registry.register(Box::new(http_connections_refused.clone()))?;
        for why in Refusal::ALL {
            http_connections_refused.with_label_values(&[why.name()]);
        }
        // Every series exists from the start at 0, so dashboards and rate() see the first event.
        for endpoint in ["whip", "whep"] {
            for (cause, status) in SignalError::CAUSES {
                sessions_refused.with_label_values(&[endpoint, cause, &status.to_string()]);
            }
        }
        for part in Part::ALL {
            restarts.with_label_values(&[part.name()]);
        }
        let webhook_pending = IntGauge::new("sellcast_webhook_pending", "Committed orders whose merchant-webhook delivery is still owed.")?;
        let webhook_delivered =
            IntCounter::new("sellcast_webhook_delivered_total", "Merchant-webhook deliveries the receiver acknowledged with a 2xx.")?;
        let webhook_failed = IntCounterVec::new(
            Opts::new("sellcast_webhook_failed_attempts_total", "Merchant-webhook attempts that failed (each is retried), by reason."),
            &["reason"],
        )?;
        registry.register(Box::new(webhook_pending.clone()))?;
        registry.register(Box::new(webhook_delivered.clone()))?;
        registry.register(Box::new(webhook_failed.clone()))?;
        for reason in Failure::NAMES {
            webhook_failed.with_label_values(&[reason]);
        }
        Ok(Self {
            registry,
            sessions_refused,
            restarts,
            rate_limited,
            sessions,
            session_rooms,
            session_addresses,
            rate_limited_addresses,
            limits: std::sync::OnceLock::new(),
            http_connections,
            http_connections_refused,
            connections: std::sync::Mutex::new(None),
            webhook_pending,
            webhook_delivered,
            webhook_failed,
            webhook: std::sync::OnceLock::new(),
            supervision: std::sync::Mutex::new(supervision),
        })
    }

    /// Read the session counts and rate limiters at each scrape.
    pub fn watch_limits(&self, admission: Arc<Admission>, limiters: Arc<RateLimiters>) {
        let _ = self.limits.set((admission, limiters));
    }

    /// Report the merchant webhook's worker at each scrape.
    pub fn watch_webhook(&self, stats: Arc<WebhookStats>) {
        let _ = self.webhook.set(std::sync::Mutex::new(stats));
    }

    fn sync_webhook(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(Ok(stats)) = self.webhook.get().map(std::sync::Mutex::lock) else {
            return;
        };
        self.webhook_pending.set(i64::try_from(stats.pending.load(Relaxed)).unwrap_or(i64::MAX));
        let delivered = stats.delivered.load(Relaxed);
        self.webhook_delivered.inc_by(delivered.saturating_sub(self.webhook_delivered.get()));
        for (reason, count) in Failure::NAMES.iter().zip(&stats.failed) {
            let counter = self.webhook_failed.with_label_values(&[reason]);
            counter.inc_by(count.load(Relaxed).saturating_sub(counter.get()));
        }
    }

    /// A request was refused by the `bucket` rate limit.
    pub fn rate_limited(&self, bucket: Bucket) {
        self.rate_limited.with_label_values(&[bucket_name(bucket)]).inc();
    }

    fn sync_limits(&self) {
        let Some((admission, limiters)) = self.limits.get() else {
            return;
        };
        let counts = admission.counts();
        self.sessions.with_label_values(&["host"]).set(counts.hosts as i64);
        self.sessions.with_label_values(&["viewer"]).set(counts.viewers as i64);
        self.session_rooms.set(counts.rooms as i64);
        self.session_addresses.set(counts.addresses as i64);
        self.rate_limited_addresses.set(limiters.tracked() as i64);
    }

    /// Report the connections `table` holds as `sellcast_http_connections`.
    pub fn watch_connections(&self, table: Arc<ConnectionTable>) {
        if let Ok(mut slot) = self.connections.lock() {
            *slot = Some(table);
        }
    }

    /// An offer on `endpoint` ("whip" or "whep") was answered with `error`.
    pub fn session_refused(&self, endpoint: &str, error: &SignalError) {
        let status = error.status().as_u16().to_string();
        self.sessions_refused.with_label_values(&[endpoint, error.cause(), &status]).inc();
    }

    /// Bring `sellcast_restarts_total` up to the supervisors' own counts.
    fn sync_restarts(&self) {
        let Ok(supervision) = self.supervision.lock() else {
            return;
        };
        let counts = supervision.restarts();
        for (part, count) in [
            (Part::ShowTask, counts.show_tasks),
            (Part::MediaShard, counts.media_shards),
            (Part::StoreWriter, counts.store_writer),
        ] {
            let counter = self.restarts.with_label_values(&[part.name()]);
            counter.inc_by(count.saturating_sub(counter.get()));
        }
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        self.sync_restarts();
        self.sync_limits();
        self.sync_webhook();
        if let Ok(table) = self.connections.lock() {
            if let Some(table) = table.as_ref() {
                self.http_connections.set(i64::try_from(table.held()).unwrap_or(i64::MAX));
            }
        }
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding /metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl RefusalCounter for Metrics {
    fn refused(&self, why: Refusal) {
        self.http_connections_refused.with_label_values(&[why.name()]).inc();
    }
}

fn bucket_name(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Signalling => "signalling",
        Bucket::Api => "api",
    }
}
