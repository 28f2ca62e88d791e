//! Graceful drain: what the server does between SIGTERM (or Ctrl-C) and its exit.
//!
//! In order, all within one deadline:
//! 1. Calls that would start a session (WHIP, WHEP, frames over HTTP) are refused with `503`,
//!    `Retry-After` and a JSON reason, so a load balancer or a page tries again elsewhere or later.
//! 2. Every room tells its participants to reconnect after [`RECONNECT_AFTER`] (a `draining`
//!    frame) and takes no new buys (`buy_not_placed`).
//! 3. The buys already with the store are committed and answered: a room reports done when it
//!    has none left.
//! 4. The pages get [`LINGER`] for those last frames to arrive, then HTTP stops (requests in
//!    progress finish) and the media shards close every peer.
//!
//! Orders stay durable before they are acknowledged throughout, so a drain cut short by its
//! deadline loses no acknowledged order; it only leaves some buyers without an answer, and
//! [`DrainReport::finished`] says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::oneshot;
use tracing::{info, warn};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use crate::interaction::messages::ShowMsg;
use crate::RunningServer;

/// What pages are told: come back after this long (plus up to as long again, at random).
pub const RECONNECT_AFTER: Duration = Duration::from_secs(2);
/// Between the last answer and closing the sessions: SCTP's shortest retransmission timeout,
/// so a lost last frame can be sent once more.
pub const LINGER: Duration = Duration::from_secs(1);

/// The server-wide switch the HTTP handlers read.
#[derive(Debug, Default)]
pub struct Draining(AtomicBool);

impl Draining {
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn start(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The answer to a session-creating call while draining.
pub fn refusal() -> Response {
    let body = json!({
        "type": "error",
        "code": "draining",
        "message": "the server is restarting; try again shortly",
        "retry_after_ms": RECONNECT_AFTER.as_millis() as u64,
    });
    let mut response = warp::reply::with_status(warp::reply::json(&body), StatusCode::SERVICE_UNAVAILABLE).into_response();
    if let Ok(value) = HeaderValue::from_str(&RECONNECT_AFTER.as_secs().max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// What a drain did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainReport {
    pub rooms: usize,
    /// Rooms that still had buys with the store at the deadline.
    pub rooms_unfinished: usize,
    /// Data-channel participants that were told to move.
    pub participants: usize,
    /// The HTTP server did not finish its requests in progress by the deadline.
    pub http_cut: bool,
}

impl DrainReport {
    /// Every buy taken was answered and every request finished.
    pub fn finished(&self) -> bool {
        self.rooms_unfinished == 0 && !self.http_cut
    }
}

impl RunningServer {
    /// Drain (see the module doc) and stop, within `limit`.
    pub async fn drain(self, limit: Duration) -> DrainReport {
        let deadline = Instant::now() + limit;
        self.draining.start();
        // Cluster mode: the rooms are released first, so their hosts, told to move, can take
        // them on another node at once.
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
        let rooms = self.shows.all();
        let hint = RECONNECT_AFTER.as_millis() as u64;
        let mut waiting = Vec::with_capacity(rooms.len());
        for room in &rooms {
            let (done, answer) = oneshot::channel();
            if room.tx.send(ShowMsg::Drain { reconnect_after_ms: hint, done }).await.is_ok() {
                waiting.push(answer);
            }
        }
        info!(rooms = rooms.len(), "draining: new sessions refused, rooms told to move");
        let (mut participants, mut unfinished) = (0, 0);
        for answer in waiting {
            match tokio::time::timeout_at(deadline.into(), answer).await {
                Ok(Ok(count)) => participants += count,
                // A show task that ended has nothing left to answer.
                Ok(Err(_)) => {}
                Err(_) => unfinished += 1,
            }
        }
        if participants > 0 {
            tokio::time::sleep_until(deadline.min(Instant::now() + LINGER).into()).await;
        }
        let http_cut = self.stop(deadline).await;
        let report = DrainReport { rooms: rooms.len(), rooms_unfinished: unfinished, participants, http_cut };
        if report.finished() {
            info!(?report, "drained");
        } else {
            warn!(?report, "drain cut short by its deadline");
        }
        report
    }
}
