//! The families read at scrape time from what the server's parts already keep: the media
//! shards' snapshots in the [`StatusBoard`] (copied out twice a second, never per packet), the
//! room tasks' [`ServerTally`](crate::interaction::tally::ServerTally), and the store writer's
//! atomic counters.

use std::sync::Arc;

use hdrhistogram::Histogram;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use sellcast_sfu::DropReason;
use sellcast_store::HistogramSnapshot;

use super::family::{cumulative, Spec};
use crate::interaction::registry::ShowRegistry;
use crate::media::status_board::{MediaStats, StatusBoard};

const PEERS: Spec = Spec::gauge("sellcast_peers", "WebRTC peers in a room, by role and media shard.", &["role", "shard"]);
const ROOMS: Spec = Spec::gauge("sellcast_rooms", "Rooms with a host or a viewer on some media shard.", &[]);
const ROOMS_LIVE: Spec = Spec::gauge("sellcast_rooms_live", "Rooms whose host is live.", &[]);
const SHOW_TASKS: Spec = Spec::gauge("sellcast_show_tasks", "Show tasks running: rooms loaded (an unused room is unloaded).", &[]);
const RUNTIME_TASKS: Spec = Spec::gauge("sellcast_runtime_alive_tasks", "Tasks alive on the HTTP and rooms runtime.", &[]);
const FORWARDED_PACKETS: Spec =
    Spec::counter("sellcast_forwarded_packets_total", "Media packets written to viewers (replays included).", &["shard"]);
const FORWARDED_BYTES: Spec =
    Spec::counter("sellcast_forwarded_bytes_total", "RTP payload bytes of the packets written to viewers.", &["shard"]);
const DATAGRAMS: Spec = Spec::counter("sellcast_datagrams_total", "UDP datagrams received and sent.", &["direction", "shard"]);
const RELAYED: Spec =
    Spec::counter("sellcast_relayed_packets_total", "Host packets handed from a room's home shard to another shard.", &["shard"]);
const DROPS: Spec = Spec::counter("sellcast_media_drops_total", "Media packets or datagrams not delivered, by reason.", &["reason", "shard"]);
const CHANNEL_DROPS: Spec = Spec::counter(
    "sellcast_channel_frames_dropped_total",
    "Data-channel frames dropped: a room's frame budget was used up, a congested viewer skipped chat or counters, or a frame was over the size limit.",
    &["reason", "shard"],
);
const MEDIA_PEERS: Spec =
    Spec::gauge("sellcast_media_peers", "WebRTC peers a media shard holds, connected or not (each answered offer until it is freed).", &["shard"]);
const UNKNOWN_SOURCE: Spec = Spec::counter(
    "sellcast_media_unknown_source_datagrams_total",
    "Datagrams from an address no peer owns that did not name a peer's ICE ufrag: dropped without a scan.",
    &["shard"],
);
const PEERS_REMOVED: Spec = Spec::counter(
    "sellcast_peers_removed_total",
    "Peers the server freed on its own: not connected within 10 s of the answer, or silent for 30 s.",
    &["reason", "shard"],
);
const NACKS: Spec = Spec::counter("sellcast_nacks_received_total", "NACK messages from viewers (answered from the resend cache).", &["shard"]);
const KEYFRAME_REQUESTS: Spec =
    Spec::counter("sellcast_keyframe_requests_received_total", "Keyframe requests (PLI or FIR) from viewers.", &["shard"]);
const PLIS_SENT: Spec = Spec::counter("sellcast_plis_sent_total", "PLIs sent to hosts, after throttling.", &["shard"]);
const FORWARD_LATENCY: Spec = Spec::histogram(
    "sellcast_forward_latency_seconds",
    "Time a live packet spends in the server: arrival to its copies leaving.",
    &["shard"],
);
const CHAT_PATH: Spec = Spec::histogram(
    "sellcast_chat_path_seconds",
    "Time a chat line spends in the server: its frame read off the sender's data channel to the line written on every viewer's channel.",
    &["shard"],
);
const FRAMES: Spec = Spec::counter("sellcast_channel_frames_total", "Data-channel frames received that parsed, by type.", &["type"]);
const REFUSED: Spec = Spec::counter(
    "sellcast_frames_refused_total",
    "Frames refused with an error (data channel and HTTP frames API), by error code.",
    &["code"],
);
const OWNERS_FENCED: Spec = Spec::counter(
    "sellcast_cluster_owners_fenced_total",
    "Rooms this node stopped owning: another node had written their events stream, or held their claim (a stale owner fenced).",
    &[],
);
const BUYS: Spec = Spec::counter("sellcast_buys_total", "Answers to buy requests, by outcome (retries included).", &["outcome"]);
const COMMIT: Spec = Spec::histogram("sellcast_store_commit_seconds", "Time from a buy batch's first write to its commit returning.", &[]);
const BATCH: Spec = Spec::histogram("sellcast_store_batch_size", "Buys committed together in one transaction.", &[]);

const SPECS: [Spec; 24] = [
    MEDIA_PEERS,
    UNKNOWN_SOURCE,
    PEERS_REMOVED,
    PEERS,
    ROOMS,
    ROOMS_LIVE,
    SHOW_TASKS,
    RUNTIME_TASKS,
    FORWARDED_PACKETS,
    FORWARDED_BYTES,
    DATAGRAMS,
    RELAYED,
    DROPS,
    CHANNEL_DROPS,
    NACKS,
    KEYFRAME_REQUESTS,
    PLIS_SENT,
    FORWARD_LATENCY,
    FRAMES,
    REFUSED,
    BUYS,
    COMMIT,
    BATCH,
    OWNERS_FENCED,
];

/// ICE over TCP (`--tcp-port`); served only when it is on.
const TCP_OPEN: Spec = Spec::gauge("sellcast_tcp_connections", "ICE-TCP media connections open.", &[]);
const TCP_REFUSED: Spec = Spec::counter(
    "sellcast_tcp_connections_refused_total",
    "ICE-TCP connections refused: over the total or per-address cap (closed before a byte is read), or a first request no peer took.",
    &["reason"],
);
const TCP_CLOSED: Spec = Spec::counter("sellcast_tcp_connections_closed_total", "ICE-TCP connections ended, by reason.", &["reason"]);
const TCP_FRAMES: Spec = Spec::counter("sellcast_tcp_frames_total", "RFC 4571 frames received from and queued to ICE-TCP clients.", &["direction"]);
const TCP_DROPS: Spec = Spec::counter(
    "sellcast_tcp_packets_dropped_total",
    "Datagrams for ICE-TCP clients dropped: the connection's queue was full (its viewer reads too slowly), or it had closed.",
    &["reason"],
);
const TCP_SPECS: [Spec; 5] = [TCP_OPEN, TCP_REFUSED, TCP_CLOSED, TCP_FRAMES, TCP_DROPS];

/// Upper bounds of the forward-latency buckets, in microseconds (25 us to 250 ms).
const LATENCY_BOUNDS_US: [u64; 13] = [25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000];

/// Reads every source above when Prometheus scrapes.
pub struct ScrapeCollector {
    status_board: Arc<StatusBoard>,
    shows: Arc<ShowRegistry>,
    runtime: tokio::runtime::Handle,
    descs: Vec<Desc>,
}

impl ScrapeCollector {
    pub fn new(status_board: Arc<StatusBoard>, shows: Arc<ShowRegistry>, runtime: tokio::runtime::Handle) -> prometheus::Result<Self> {
        let descs = SPECS.iter().chain(&TCP_SPECS).map(Spec::desc).collect::<prometheus::Result<Vec<_>>>()?;
        Ok(Self { status_board, shows, runtime, descs })
    }

    fn media(&self, shards: &[MediaStats], out: &mut Vec<MetricFamily>) {
        let ids: Vec<String> = (0..shards.len()).map(|i| i.to_string()).collect();
        let each = |spec: Spec, value: &dyn Fn(&MediaStats) -> u64| {
            let mut family = spec.family();
            for (shard, stats) in ids.iter().zip(shards) {
                family.value(&[shard], value(stats) as f64);
            }
            family.done()
        };
        out.push(each(FORWARDED_PACKETS, &|s| s.forwarded_packets));
        out.push(each(FORWARDED_BYTES, &|s| s.forwarded_bytes));
        out.push(each(RELAYED, &|s| s.relayed));
        out.push(each(NACKS, &|s| s.nacks));
        out.push(each(MEDIA_PEERS, &|s| s.peers as u64));
        out.push(each(UNKNOWN_SOURCE, &|s| s.unknown_source));
        let mut removed = PEERS_REMOVED.family();
        for (shard, s) in ids.iter().map(String::as_str).zip(shards) {
            removed.value(&["timeout_unconnected", shard], s.expired_unconnected as f64).value(&["idle", shard], s.expired_idle as f64);
        }
        out.push(removed.done());
        out.push(each(KEYFRAME_REQUESTS, &|s| s.viewer_keyframe_requests));
        out.push(each(PLIS_SENT, &|s| s.host_keyframe_requests));

        let (mut peers, mut datagrams, mut drops, mut channel, mut latency) =
            (PEERS.family(), DATAGRAMS.family(), DROPS.family(), CHANNEL_DROPS.family(), FORWARD_LATENCY.family());
        let mut chat_path = CHAT_PATH.family();
        for (shard, s) in ids.iter().map(String::as_str).zip(shards) {
            peers.value(&["host", shard], s.hosts as f64).value(&["viewer", shard], s.viewers as f64);
            datagrams.value(&["in", shard], s.datagrams_in as f64).value(&["out", shard], s.datagrams_out as f64);
            for reason in DropReason::ALL {
                drops.value(&[reason.name(), shard], s.drops.get(reason) as f64);
            }
            let shard_drops = [
                ("socket_send_buffer_full", s.datagrams_dropped),
                ("relay_queue_full", s.relay_dropped),
                ("unknown_source", s.unknown_source),
                ("input_error", s.input_errors),
                ("no_payload_type", s.no_payload_type),
                ("undeclared_ssrc", s.undeclared_ssrc),
            ];
            for (reason, n) in shard_drops {
                drops.value(&[reason, shard], n as f64);
            }
            channel
                .value(&["room_inbox_full", shard], s.frames_dropped as f64)
                .value(&["viewer_congested", shard], s.frames_skipped_congested as f64)
                .value(&["oversize", shard], s.frames_oversize as f64);
            let (buckets, count, sum) = latency_buckets(s.forward_latency_us.as_ref());
            latency.histogram(&[shard], &buckets, count, sum);
            let (buckets, count, sum) = latency_buckets(s.chat_path_us.as_ref());
            chat_path.histogram(&[shard], &buckets, count, sum);
        }
        out.extend([peers.done(), datagrams.done(), drops.done(), channel.done(), latency.done(), chat_path.done()]);
    }

    fn tcp(&self, out: &mut Vec<MetricFamily>) {
        let Some(r) = self.status_board.tcp.report() else {
            return;
        };
        let mut open = TCP_OPEN.family();
        open.value(&[], r.open as f64);
        let mut refused = TCP_REFUSED.family();
        refused
            .value(&["total"], r.refused_total as f64)
            .value(&["per_ip"], r.refused_per_ip as f64)
            .value(&["not_a_peer"], r.counters.refused_not_a_peer as f64);
        let mut closed = TCP_CLOSED.family();
        let reasons = [
            ("no_stun", r.closed_no_stun),
            ("bad_frame", r.closed_bad_frame),
            ("idle", r.closed_idle),
            ("write_stalled", r.closed_write_stalled),
            ("client_gone", r.closed_client_gone),
            ("peer_gone", r.closed_peer_gone),
        ];
        for (reason, n) in reasons {
            closed.value(&[reason], n as f64);
        }
        let mut frames = TCP_FRAMES.family();
        frames.value(&["in"], r.counters.frames_in as f64).value(&["out"], r.counters.frames_out as f64);
        let mut drops = TCP_DROPS.family();
        drops
            .value(&["queue_full"], r.counters.dropped_queue_full as f64)
            .value(&["no_connection"], r.counters.dropped_no_connection as f64);
        out.extend([open.done(), refused.done(), closed.done(), frames.done(), drops.done()]);
    }

    fn interaction(&self, out: &mut Vec<MetricFamily>) {
        let tally = self.shows.tally();
        let (mut frames, mut refused, mut buys) = (FRAMES.family(), REFUSED.family(), BUYS.family());
        for (kind, n) in tally.frames() {
            frames.value(&[kind], n as f64);
        }
        for (code, n) in tally.refused() {
            refused.value(&[code], n as f64);
        }
        for (outcome, n) in tally.buys() {
            buys.value(&[outcome], n as f64);
        }
        let mut fenced = OWNERS_FENCED.family();
        fenced.value(&[], self.shows.owners_fenced() as f64);
        out.extend([frames.done(), refused.done(), buys.done(), fenced.done()]);
    }

    fn store(&self, out: &mut Vec<MetricFamily>) {
        let (commit_us, batch) = self.shows.store().inner().commit_histograms();
        let mut commit = COMMIT.family();
        let bounds = commit_us.bounds.iter().map(|us| *us as f64 / 1e6);
        commit.histogram(&[], &cumulative(bounds, &commit_us.counts), commit_us.count(), commit_us.sum as f64 / 1e6);
        out.push(commit.done());
        out.push(plain_histogram(BATCH, &batch));
    }
}

impl Collector for ScrapeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut out = Vec::with_capacity(SPECS.len());
        self.media(&self.status_board.media_by_shard(), &mut out);
        let (rooms, live) = self.status_board.room_counts();
        let gauge = |spec: Spec, value: usize| {
            let mut family = spec.family();
            family.value(&[], value as f64);
            family.done()
        };
        out.push(gauge(ROOMS, rooms));
        out.push(gauge(ROOMS_LIVE, live));
        out.push(gauge(SHOW_TASKS, self.shows.task_count()));
        out.push(gauge(RUNTIME_TASKS, self.runtime.metrics().num_alive_tasks()));
        self.interaction(&mut out);
        self.store(&mut out);
        self.tcp(&mut out);
        out
    }
}

fn plain_histogram(spec: Spec, h: &HistogramSnapshot) -> MetricFamily {
    let mut family = spec.family();
    let bounds = h.bounds.iter().map(|b| *b as f64);
    family.histogram(&[], &cumulative(bounds, &h.counts), h.count(), h.sum as f64);
    family.done()
}

/// The shard's latency histogram (microseconds, since start) as Prometheus buckets in
/// seconds. The sum is the histogram's mean times its count: hdrhistogram keeps no exact sum.
fn latency_buckets(h: Option<&Histogram<u64>>) -> (Vec<(f64, u64)>, u64, f64) {
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        return (LATENCY_BOUNDS_US.iter().map(|us| (*us as f64 / 1e6, 0)).collect(), 0, 0.0);
    };
    let buckets = LATENCY_BOUNDS_US.iter().map(|us| (*us as f64 / 1e6, h.count_between(0, *us))).collect();
    (buckets, h.len(), h.mean() * h.len() as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_cumulative_and_in_seconds() -> Result<(), hdrhistogram::CreationError> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 2)?;
        for us in [10, 60, 60, 300_000] {
            h.saturating_record(us);
        }
        let (buckets, count, sum) = latency_buckets(Some(&h));
        assert_eq!(buckets[0], (25e-6, 1));
        assert_eq!(buckets[2], (100e-6, 3));
        assert_eq!(buckets.last().map(|b| b.1), Some(3), "300 ms is above the last bound: only in the count");
        assert_eq!(count, 4);
        assert!((sum - 0.30013).abs() < 0.01, "sum {sum}");
        Ok(())
    }
}
