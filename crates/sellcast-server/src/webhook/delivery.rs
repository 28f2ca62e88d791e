//! The delivery worker: its own task, sending owed webhook deliveries from the store's outbox.
//!
//! Each pass takes the due rows oldest order first and POSTs each one's stored body, signed
//! (`signing`), with the order id as `Idempotency-Key` and `X-Sellcast-Delivery`. A 2xx marks
//! the row delivered; anything else (another status, a refused or dropped connection, a
//! timeout) counts a failed attempt on the row and sets its next attempt by `Backoff`, both in
//! the store, so a restarted server goes on where this one stopped. The row is marked only
//! after the 2xx: a crash between the two sends the order once more (receivers drop repeats by
//! its id), never zero times.
//!
//! After a failure the worker also pauses for the backoff of its failures in a row before any
//! other row, so a receiver that is down sees a trickle of attempts, not the whole backlog.
//! A new order wakes it at once (`wake`); otherwise it sleeps until the next row is due.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sellcast_store::{OutboxRow, Store};
use tokio::sync::{oneshot, Notify};
use tracing::{debug, info, warn};

use super::signing::{self, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::{Failure, WebhookConfig, WebhookStats};

/// Rows taken from the store per pass.
const PASS: u32 = 64;
/// Longest sleep with nothing due: a safety net under `wake` (and the store's view of time).
const IDLE_POLL: Duration = Duration::from_secs(30);
/// Pause after the store itself failed to answer.
const STORE_RETRY: Duration = Duration::from_secs(1);

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// Runs until `stop` fires (or its sender is dropped).
pub async fn run(store: Store, config: WebhookConfig, wake: Arc<Notify>, stats: Arc<WebhookStats>, mut stop: oneshot::Receiver<()>) {
    let client = match reqwest::Client::builder().timeout(config.timeout).redirect(reqwest::redirect::Policy::none()).build() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "the webhook's HTTP client could not be built; no deliveries");
            return;
        }
    };
    info!(url = %config.url, "merchant webhook deliveries on");
    let mut failures_in_a_row = 0u32;
    loop {
        refresh_counts(&store, &stats).await;
        let pause = match store.outbox_due(wall_ms(), PASS).await {
            Err(e) => {
                warn!(error = %e, "the webhook outbox could not be read");
                Some(STORE_RETRY)
            }
            Ok(rows) if rows.is_empty() => None,
            Ok(rows) => pass(&client, &store, &config, &stats, rows, &mut failures_in_a_row).await,
        };
        let wait = match pause {
            // A failure: wait out the pause whatever new orders arrive meanwhile.
            Some(pause) => tokio::select! {
                _ = tokio::time::sleep(pause) => continue,
                _ = &mut stop => return,
            },
            None => until_next_due(&store).await,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
            _ = &mut stop => return,
        }
    }
}

/// Send `rows` in order; stop at the first failure and return the pause it calls for.
async fn pass(
    client: &reqwest::Client,
    store: &Store,
    config: &WebhookConfig,
    stats: &WebhookStats,
    rows: Vec<OutboxRow>,
    failures_in_a_row: &mut u32,
) -> Option<Duration> {
    for row in rows {
        match send(client, config, &row).await {
            Ok(()) => {
                *failures_in_a_row = 0;
                stats.delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Err(e) = store.outbox_delivered(row.order_id, wall_ms()).await {
                    // Not marked: it will be sent again, which receivers drop by its id.
                    warn!(order = row.order_id, error = %e, "a delivered order could not be marked so");
                }
                debug!(order = row.order_id, attempts = row.attempts + 1, "webhook delivered");
            }
            Err(failure) => {
                *failures_in_a_row = failures_in_a_row.saturating_add(1);
                stats.failed(failure);
                let attempts = row.attempts.saturating_add(1);
                let next = wall_ms().saturating_add(duration_ms(config.backoff.delay(attempts, jitter())));
                info!(order = row.order_id, attempts, error = %failure, "webhook delivery failed; will retry");
                if let Err(e) = store.outbox_failed(row.order_id, next, failure.to_string()).await {
                    warn!(order = row.order_id, error = %e, "a failed webhook attempt could not be recorded");
                }
                return Some(config.backoff.delay(*failures_in_a_row, jitter()));
            }
        }
    }
    Some(Duration::ZERO)
}

/// POST one row's body, signed; `Ok` only on a 2xx.
async fn send(client: &reqwest::Client, config: &WebhookConfig, row: &OutboxRow) -> Result<(), Failure> {
    let timestamp = u64::try_from(wall_ms() / 1000).unwrap_or(0);
    let signature = signing::sign(config.secret.as_bytes(), timestamp, row.body.as_bytes());
    let id = row.order_id.to_string();
    let response = client
        .post(&config.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, concat!("sellcast-webhook/", env!("CARGO_PKG_VERSION")))
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .header(DELIVERY_HEADER, &id)
        .header("idempotency-key", &id)
        .body(row.body.clone())
        .send()
        .await
        .map_err(|e| if e.is_timeout() { Failure::Timeout } else { Failure::Transport })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(Failure::Status(status.as_u16()))
    }
}

async fn refresh_counts(store: &Store, stats: &WebhookStats) {
    if let Ok(counts) = store.outbox_counts().await {
        stats.pending.store(counts.pending, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How long to sleep when nothing is due now.
async fn until_next_due(store: &Store) -> Duration {
    match store.outbox_next_due_ms().await {
        Ok(Some(due)) => Duration::from_millis(u64::try_from(due.saturating_sub(wall_ms())).unwrap_or(0)).min(IDLE_POLL),
        Ok(None) => IDLE_POLL,
        Err(_) => STORE_RETRY,
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
