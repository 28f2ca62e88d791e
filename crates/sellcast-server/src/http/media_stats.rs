//! `GET /api/stats/media`: the media shards' counters (summed, and each shard's own) and how
//! long live packets spend in the server, for operators and for the bench harness.
//!
//! Quantiles are since the server started. The histogram's buckets come along
//! (`[value_us, count]`, non-empty ones only), so a reader that fetches twice can subtract
//! and get the figures for the window in between.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::media::status_board::{MediaStats, RoomLayer, ViewerVideo};
use crate::media::tcp::stats::TcpReport;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct MediaReport {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub datagrams_dropped: u64,
    pub send_syscalls: u64,
    #[serde(default)]
    pub gso_messages: u64,
    #[serde(default)]
    pub gso_datagrams: u64,
    /// Host packets handed from the home shard to other shards (once per packet per shard).
    #[serde(default)]
    pub relayed: u64,
    #[serde(default)]
    pub relay_dropped: u64,
    pub peers: usize,
    pub forward_latency_us: LatencySummary,
    pub forward_latency_buckets: Vec<(u64, u64)>,
    /// Chat lines: from the sender's frame read off its data channel to the line written on
    /// every viewer's channel (`media::chat_path`), since start, and its buckets.
    #[serde(default)]
    pub chat_path_us: LatencySummary,
    #[serde(default)]
    pub chat_path_buckets: Vec<(u64, u64)>,
    /// Of the chat path, writing the line on the channels (the rest is the show task and the
    /// queue to the media thread).
    #[serde(default)]
    pub chat_write_us: LatencySummary,
    #[serde(default)]
    pub chat_write_buckets: Vec<(u64, u64)>,
    /// Of the chat path, the frame's wait for the room's show task.
    #[serde(default)]
    pub chat_to_show_us: LatencySummary,
    #[serde(default)]
    pub chat_to_show_buckets: Vec<(u64, u64)>,
    /// Of the chat path, the show task's work until it queued the line for the media threads.
    #[serde(default)]
    pub chat_in_show_us: LatencySummary,
    #[serde(default)]
    pub chat_in_show_buckets: Vec<(u64, u64)>,
    /// Each shard's share, in shard order: how the viewers and the work were spread.
    #[serde(default)]
    pub shards: Vec<ShardReport>,
    /// ICE over TCP: connections open, refused and closed by reason, frames carried; `null`
    /// when the server runs without `--tcp-port`.
    #[serde(default)]
    pub tcp: Option<TcpReport>,
    /// Every viewer's video: the layer it is sent, its bandwidth estimate, switches, pauses.
    #[serde(default)]
    pub viewers: Vec<ViewerVideo>,
    /// Every live host's video layers, lowest first per room.
    #[serde(default)]
    pub layers: Vec<RoomLayer>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ShardReport {
    pub peers: usize,
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub relayed: u64,
    pub forward_latency_p99_us: u64,
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

/// Quantiles of a histogram in microseconds, and its non-empty buckets.
fn summarise(histogram: Option<&Histogram<u64>>) -> (LatencySummary, Vec<(u64, u64)>) {
    match histogram {
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
    }
}

pub fn report(stats: &MediaStats, shards: &[MediaStats]) -> MediaReport {
    let (summary, buckets) = summarise(stats.forward_latency_us.as_ref());
    let (chat_summary, chat_buckets) = summarise(stats.chat_path_us.as_ref());
    let (write_summary, write_buckets) = summarise(stats.chat_write_us.as_ref());
    let (to_show_summary, to_show_buckets) = summarise(stats.chat_to_show_us.as_ref());
    let (in_show_summary, in_show_buckets) = summarise(stats.chat_in_show_us.as_ref());
    MediaReport {
        datagrams_in: stats.datagrams_in,
        datagrams_out: stats.datagrams_out,
        datagrams_dropped: stats.datagrams_dropped,
        send_syscalls: stats.send_syscalls,
        gso_messages: stats.gso_messages,
        gso_datagrams: stats.gso_datagrams,
        relayed: stats.relayed,
        relay_dropped: stats.relay_dropped,
        peers: stats.peers,
        forward_latency_us: summary,
        forward_latency_buckets: buckets,
        chat_path_us: chat_summary,
        chat_path_buckets: chat_buckets,
        chat_write_us: write_summary,
        chat_write_buckets: write_buckets,
        chat_to_show_us: to_show_summary,
        chat_to_show_buckets: to_show_buckets,
        chat_in_show_us: in_show_summary,
        chat_in_show_buckets: in_show_buckets,
        shards: shards
            .iter()
            .map(|s| ShardReport {
                peers: s.peers,
                datagrams_in: s.datagrams_in,
                datagrams_out: s.datagrams_out,
                relayed: s.relayed,
                forward_latency_p99_us: s.forward_latency_us.as_ref().map_or(0, |h| h.value_at_quantile(0.99)),
            })
            .collect(),
        tcp: None,
        viewers: stats.viewer_video.clone(),
        layers: stats.layers.clone(),
    }
}
