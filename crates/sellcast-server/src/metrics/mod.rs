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

use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::http::connections::{ConnectionTable, Refusal, RefusalCounter};

use crate::http::error::SignalError;
use crate::interaction::registry::ShowRegistry;
use crate::media::status_board::StatusBoard;
use crate::supervision::Supervision;

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
    http_connections: IntGauge,
    http_connections_refused: IntCounterVec,
    /// The HTTP listener's connection table, read into `http_connections` at scrape time.
    connections: std::sync::Mutex<Option<Arc<ConnectionTable>>>,
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
        let http_connections = IntGauge::new("sellcast_http_connections", "HTTP(S) connections held now.")?;
        let http_connections_refused = IntCounterVec::new(
            Opts::new("sellcast_http_connections_refused_total", "HTTP(S) connections closed on accept, by the cap they were over."),
            &["cap"],
        )?;
        registry.register(Box::new(sessions_refused.clone()))?;
        registry.register(Box::new(restarts.clone()))?;
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
        Ok(Self {
            registry,
            sessions_refused,
            restarts,
            http_connections,
            http_connections_refused,
            connections: std::sync::Mutex::new(None),
            supervision: std::sync::Mutex::new(supervision),
        })
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
