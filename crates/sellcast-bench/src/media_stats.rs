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
    /// Chat lines' time in the server (empty from a server without the chat-path histogram).
    chat_path: Histogram<u64>,
    /// Of that, the writing on the channels.
    chat_write: Histogram<u64>,
    /// Of that, the frame's wait for the show task.
    chat_to_show: Histogram<u64>,
    /// Of that, the show task's own work.
    chat_in_show: Histogram<u64>,
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
    let latency = buckets(v["forward_latency_buckets"].as_array().context("forward_latency_buckets")?)?;
    let chat_path = buckets(v["chat_path_buckets"].as_array().map_or(&[][..], Vec::as_slice))?;
    let chat_write = buckets(v["chat_write_buckets"].as_array().map_or(&[][..], Vec::as_slice))?;
    Ok(Reading {
        latency,
        chat_path,
        chat_write,
        chat_to_show: buckets(v["chat_to_show_buckets"].as_array().map_or(&[][..], Vec::as_slice))?,
        chat_in_show: buckets(v["chat_in_show_buckets"].as_array().map_or(&[][..], Vec::as_slice))?,
        datagrams_out: v["datagrams_out"].as_u64().unwrap_or(0),
        send_syscalls: v["send_syscalls"].as_u64().unwrap_or(0),
    })
}

/// A histogram from the server's `[value_us, count]` buckets.
fn buckets(buckets: &[Value]) -> Result<Histogram<u64>> {
    let mut h = Histogram::new_with_bounds(1, 60_000_000, 2)?;
    for b in buckets {
        let (Some(value), Some(count)) = (b[0].as_u64(), b[1].as_u64()) else { continue };
        h.record_n(value.max(1), count)?;
    }
    Ok(h)
}

/// What a cumulative histogram gained between two readings of it.
fn gained(start: &Histogram<u64>, end: &Histogram<u64>) -> Result<Histogram<u64>> {
    let mut h = end.clone();
    h.subtract(start)?;
    Ok(h)
}

/// Time chat lines spent in the server between two readings, as a histogram (microseconds).
pub fn chat_path_between(start: &Reading, end: &Reading) -> Result<Histogram<u64>> {
    gained(&start.chat_path, &end.chat_path)
}

/// Of the chat path between two readings, the frame's wait for the show task (microseconds).
pub fn chat_to_show_between(start: &Reading, end: &Reading) -> Result<Histogram<u64>> {
    gained(&start.chat_to_show, &end.chat_to_show)
}

/// Of the chat path between two readings, the show task's own work (microseconds).
pub fn chat_in_show_between(start: &Reading, end: &Reading) -> Result<Histogram<u64>> {
    gained(&start.chat_in_show, &end.chat_in_show)
}

/// Of the chat path between two readings, the writing on the channels (microseconds).
pub fn chat_write_between(start: &Reading, end: &Reading) -> Result<Histogram<u64>> {
    gained(&start.chat_write, &end.chat_write)
}

/// Time live packets spent in the server between two readings, as a histogram (microseconds).
pub fn latency_between(start: &Reading, end: &Reading) -> Result<Histogram<u64>> {
    gained(&start.latency, &end.latency)
}

pub fn window(start: &Reading, end: &Reading) -> Result<Window> {
    let h = gained(&start.latency, &end.latency)?;
    let calls = end.send_syscalls.saturating_sub(start.send_syscalls);
    Ok(Window {
        latency_us_p50: h.value_at_quantile(0.5) as f64,
        latency_us_p99: h.value_at_quantile(0.99) as f64,
        latency_us_p999: h.value_at_quantile(0.999) as f64,
        datagrams_per_syscall: end.datagrams_out.saturating_sub(start.datagrams_out) as f64 / calls.max(1) as f64,
    })
}
