//! Chat fan-out: N viewers on the room's data channel; several of them chat, and we time each
//! message from the send call to its arrival at every other viewer (same process clock).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use sellcast_peer::Viewer;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ChatResult {
    pub viewers: usize,
    pub messages: usize,
    pub deliveries: u64,
    pub missing: u64,
    /// One message reaching one viewer.
    pub delivery_ms_p50: f64,
    pub delivery_ms_p99: f64,
    /// One message reaching all connected viewers.
    pub all_viewers_ms_p50: f64,
    pub all_viewers_ms_p99: f64,
}

pub async fn run(base: &str, viewers: usize) -> Result<ChatResult> {
    // Only a host opens a room, and a viewer's offer for a room nobody opened is a 404 (issue
    // 11): a dev-mode host's product write opens this one.
    crate::soak::open_sale_in(&reqwest::Client::new(), base, "chat").await?;
    let mut peers = Vec::with_capacity(viewers);
    for _ in 0..viewers {
        let v = Viewer::connect_with(base, "chat", None, true).await?;
        v.channel_ready(Duration::from_secs(15)).await?;
        peers.push(v);
    }
    // Wait (bounded) for every welcome, so nobody misses a message for not having joined yet.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !peers.iter().all(|v| v.frames().iter().any(|(_, f)| f.contains("\"type\":\"welcome\""))) {
        if Instant::now() > deadline {
            bail!("not every viewer was welcomed");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 10 chatters, 5 messages each, paced inside the per-user rate limit (burst 5, 1/s).
    let chatters = viewers.min(10);
    let mut sent: HashMap<String, (usize, Instant)> = HashMap::new();
    for round in 0..5 {
        for (c, peer) in peers.iter().enumerate().take(chatters) {
            let text = format!("fanout-{c}-{round}");
            sent.insert(text.clone(), (c, Instant::now()));
            peer.send(&format!(r#"{{"type":"chat","text":"{text}"}}"#)).await?;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // in-flight deliveries land
    let mut delivery = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut worst: HashMap<String, u64> = HashMap::new();
    let (mut deliveries, mut missing) = (0u64, 0u64);
    for (i, peer) in peers.iter().enumerate() {
        let frames = peer.frames();
        for (text, (from, at)) in &sent {
            if *from == i {
                continue;
            }
            let needle = format!("\"text\":\"{text}\"");
            match frames.iter().find(|(_, f)| f.contains(&needle)) {
                Some((t, _)) => {
                    let us = (t.saturating_duration_since(*at).as_micros() as u64).max(1);
                    delivery.record(us)?;
                    deliveries += 1;
                    let w = worst.entry(text.clone()).or_insert(0);
                    *w = (*w).max(us);
                }
                None => missing += 1,
            }
        }
    }
    for us in worst.values() {
        all.record(*us)?;
    }
    for v in peers {
        v.close().await;
    }
    Ok(ChatResult {
        viewers,
        messages: sent.len(),
        deliveries,
        missing,
        delivery_ms_p50: delivery.value_at_quantile(0.5) as f64 / 1e3,
        delivery_ms_p99: delivery.value_at_quantile(0.99) as f64 / 1e3,
        all_viewers_ms_p50: all.value_at_quantile(0.5) as f64 / 1e3,
        all_viewers_ms_p99: all.value_at_quantile(0.99) as f64 / 1e3,
    })
}
