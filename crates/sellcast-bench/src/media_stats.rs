//! The server's own view of a step: `GET /api/stats/media` read at the start and the end of
//! the measured window and subtracted, so joins and warm-up don't count. Gives how long live
//! packets spend inside the server (the SFU-added latency, free of the clients' scheduling)
//! and how many datagrams each send syscall carried. sellcast only; Janus has no such API.

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde_json::Value;

/// One reading of the server's cumulative counters.
pub struct Reading {
    latency: Histogram<u64>,
    datagrams_out: u64,
    send_syscalls: u64,
}

/// What the server did between two readings.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub latency_us_p50: f64,
    pub latency_us_p99: f64,
    pub latency_us_p999: f64,
    pub datagrams_per_syscall: f64,
}

pub async fn read(http: &reqwest::Client, base: &str) -> Result<Reading> {
    let v: Value = http.get(format!("{base}/api/stats/media")).send().await?.json().await?;
    let mut latency = Histogram::new_with_bounds(1, 60_000_000, 2)?;
    let buckets = v["forward_latency_buckets"].as_array().context("forward_latency_buckets")?;
    for b in buckets {
        let (Some(value), Some(count)) = (b[0].as_u64(), b[1].as_u64()) else { continue };
        latency.record_n(value.max(1), count)?;
    }
    Ok(Reading {
        latency,
        datagrams_out: v["datagrams_out"].as_u64().unwrap_or(0),
        send_syscalls: v["send_syscalls"].as_u64().unwrap_or(0),
    })
}

/// Time live packets spent in the server between two readings, as a histogram (microseconds).
pub fn latency_between(start: &Reading, end: &Reading) -> Result<Histogram<u64>> {
    let mut h = end.latency.clone();
    h.subtract(&start.latency)?;
    Ok(h)
}

pub fn window(start: &Reading, end: &Reading) -> Result<Window> {
    let mut h = end.latency.clone();
    h.subtract(&start.latency)?;
    let calls = end.send_syscalls.saturating_sub(start.send_syscalls);
    Ok(Window {
        latency_us_p50: h.value_at_quantile(0.5) as f64,
        latency_us_p99: h.value_at_quantile(0.99) as f64,
        latency_us_p999: h.value_at_quantile(0.999) as f64,
        datagrams_per_syscall: end.datagrams_out.saturating_sub(start.datagrams_out) as f64 / calls.max(1) as f64,
    })
}
