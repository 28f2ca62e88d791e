//! `GET /api/stats/media`: the media thread's counters and how long live packets spend in the
//! server, for operators and for the bench harness.
//!
//! Quantiles are since the server started. The histogram's buckets come along
//! (`[value_us, count]`, non-empty ones only), so a reader that fetches twice can subtract
//! and get the figures for the window in between.

use serde::{Deserialize, Serialize};

use crate::media::directory::MediaStats;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct MediaReport {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub datagrams_dropped: u64,
    pub send_syscalls: u64,
    pub peers: usize,
    pub forward_latency_us: LatencySummary,
    pub forward_latency_buckets: Vec<(u64, u64)>,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

pub fn report(stats: &MediaStats) -> MediaReport {
    let (summary, buckets) = match &stats.forward_latency_us {
        Some(h) if !h.is_empty() => (
            LatencySummary {
                count: h.len(),
                p50: h.value_at_quantile(0.5),
                p90: h.value_at_quantile(0.9),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                max: h.max(),
            },
            h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect(),
        ),
        _ => (LatencySummary::default(), Vec::new()),
    };
    MediaReport {
        datagrams_in: stats.datagrams_in,
        datagrams_out: stats.datagrams_out,
        datagrams_dropped: stats.datagrams_dropped,
        send_syscalls: stats.send_syscalls,
        peers: stats.peers,
        forward_latency_us: summary,
        forward_latency_buckets: buckets,
    }
}
