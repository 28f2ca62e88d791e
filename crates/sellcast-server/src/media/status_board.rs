//! What the HTTP side may read about rooms without asking the driver: a snapshot per room and
//! shard, written only by the shards whenever a host or viewer comes or goes, and summed when
//! read. Reads are rare (an API call); writes never happen per packet.

use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use hdrhistogram::Histogram;
use sellcast_sfu::DropCounters;
use serde::Serialize;

use super::relay::ShardId;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RoomStatus {
    pub room: String,
    pub live: bool,
    pub viewers: usize,
    /// The host's video codec while live ("VP8" or "H264").
    pub video_codec: Option<&'static str>,
    /// The host's video layers, lowest first, with how many viewers are sent each (one entry
    /// with `rid: null` for a host that publishes one layer).
    pub layers: Vec<LayerCount>,
    /// Viewers whose video is paused because not even the lowest layer fits their link.
    pub paused_viewers: usize,
}

/// One layer of a room's video, for the host's dashboard.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LayerCount {
    pub rid: Option<String>,
    pub viewers: usize,
    pub bitrate_bps: u64,
    pub height: Option<u32>,
}

/// One viewer's video, for `/api/stats/media` (copied out twice a second, never per packet).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ViewerVideo {
    pub peer: u64,
    pub room: String,
    /// The layer's rid being sent (null for a one-layer host or while nothing is sent).
    pub layer: Option<String>,
    /// Its rank, 0 = lowest.
    pub layer_index: Option<u8>,
    pub paused: bool,
    pub estimate_bps: Option<u64>,
    pub estimate_source: Option<String>,
    /// The viewer's latest receiver report: video lost, and its link's usual loss (permille).
    pub loss_permille: Option<u16>,
    pub usual_loss_permille: u16,
    pub switches: u64,
    pub pauses: u64,
    pub cap_height: Option<u32>,
    pub data_saver: bool,
}

/// One layer of a room's video, for `/api/stats/media`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RoomLayer {
    pub room: String,
    pub rid: Option<String>,
    pub index: u8,
    pub bitrate_bps: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl RoomStatus {
    fn is_empty(&self) -> bool {
        !self.live && self.viewers == 0
    }
}

/// One media shard's counters, copied out twice a second (never per packet).
#[derive(Debug, Clone, Default)]
pub struct MediaStats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    /// Datagrams the socket could not take (its send buffer was full).
    pub datagrams_dropped: u64,
    /// `sendmmsg`/`sendto` calls: datagrams_out / send_syscalls is the batching achieved.
    pub send_syscalls: u64,
    /// Messages that carried several datagrams as one UDP GSO send, and those datagrams.
    pub gso_messages: u64,
    pub gso_datagrams: u64,
    /// Host packets handed to other shards, and those dropped because a shard fell behind.
    pub relayed: u64,
    pub relay_dropped: u64,
    pub peers: usize,
    /// Microseconds from a live packet's arrival to its copies leaving, since start.
    pub forward_latency_us: Option<Histogram<u64>>,
    /// Microseconds from a chat line's frame being read to its copies written (`chat_path`).
    pub chat_path_us: Option<Histogram<u64>>,
    /// Of that, writing the line on the shard's channels.
    pub chat_write_us: Option<Histogram<u64>>,
    /// Of that, the frame's wait for the show task.
    pub chat_to_show_us: Option<Histogram<u64>>,
    /// Of that, the show task's work until it queued the line.
    pub chat_in_show_us: Option<Histogram<u64>>,
    /// Peers in a room on this shard, by role.
    pub hosts: usize,
    pub viewers: usize,
    /// Media packets written to viewers, and their payload bytes.
    pub forwarded_packets: u64,
    pub forwarded_bytes: u64,
    /// The forwarders' drops by reason, rooms already gone included.
    pub drops: DropCounters,
    /// Datagrams from an address no peer owns, that str0m refused, or with an unknown payload type.
    pub unknown_source: u64,
    pub input_errors: u64,
    pub no_payload_type: u64,
    /// Video on an SSRC outside an SSRC-only simulcast host's declared layers.
    pub undeclared_ssrc: u64,
    /// Data-channel frames a room task's full inbox refused, and chat or counter frames
    /// skipped for a congested viewer.
    pub frames_dropped: u64,
    /// Data-channel frames over the protocol's size limit, refused before reaching the room.
    pub frames_oversize: u64,
    /// Peers freed for missing a deadline: not connected in time, or silent too long.
    pub expired_unconnected: u64,
    pub expired_idle: u64,
    pub frames_skipped_congested: u64,
    /// Keyframe requests (PLI or FIR) from viewers, and PLIs sent to hosts.
    pub viewer_keyframe_requests: u64,
    pub host_keyframe_requests: u64,
    /// NACK messages from viewers.
    pub nacks: u64,
    /// Every viewer's video on this shard: layer, estimate, switches.
    pub viewer_video: Vec<ViewerVideo>,
    /// The layers of rooms whose host is on this shard.
    pub layers: Vec<RoomLayer>,
}

impl MediaStats {
    /// Add another shard's counters to these.
    fn absorb(&mut self, other: &MediaStats) {
        self.datagrams_in += other.datagrams_in;
        self.datagrams_out += other.datagrams_out;
        self.datagrams_dropped += other.datagrams_dropped;
        self.send_syscalls += other.send_syscalls;
        self.gso_messages += other.gso_messages;
        self.gso_datagrams += other.gso_datagrams;
        self.relayed += other.relayed;
        self.relay_dropped += other.relay_dropped;
        self.peers += other.peers;
        self.hosts += other.hosts;
        self.viewers += other.viewers;
        self.forwarded_packets += other.forwarded_packets;
        self.forwarded_bytes += other.forwarded_bytes;
        self.drops.add(&other.drops);
        self.unknown_source += other.unknown_source;
        self.input_errors += other.input_errors;
        self.no_payload_type += other.no_payload_type;
        self.undeclared_ssrc += other.undeclared_ssrc;
        self.frames_dropped += other.frames_dropped;
        self.frames_oversize += other.frames_oversize;
        self.expired_unconnected += other.expired_unconnected;
        self.expired_idle += other.expired_idle;
        self.frames_skipped_congested += other.frames_skipped_congested;
        self.viewer_keyframe_requests += other.viewer_keyframe_requests;
        self.host_keyframe_requests += other.host_keyframe_requests;
        self.nacks += other.nacks;
        self.viewer_video.extend(other.viewer_video.iter().cloned());
        self.layers.extend(other.layers.iter().cloned());
        add_histogram(&mut self.forward_latency_us, &other.forward_latency_us);
        add_histogram(&mut self.chat_path_us, &other.chat_path_us);
        add_histogram(&mut self.chat_write_us, &other.chat_write_us);
        add_histogram(&mut self.chat_to_show_us, &other.chat_to_show_us);
        add_histogram(&mut self.chat_in_show_us, &other.chat_in_show_us);
    }
}

/// Add one shard's histogram to a sum. Both come from the driver with the same bounds, so
/// adding cannot fail; if it ever did, the sum would only undercount.
fn add_histogram(sum: &mut Option<Histogram<u64>>, shard: &Option<Histogram<u64>>) {
    match (sum, shard) {
        (Some(mine), Some(theirs)) => {
            let _ = mine.add(theirs);
        }
        (mine @ None, Some(theirs)) => *mine = Some(theirs.clone()),
        _ => {}
    }
}

/// Room statuses and media counters the shards post for the HTTP side to read.
#[derive(Debug, Default)]
pub struct StatusBoard {
    /// Per room, each shard's part of it.
    rooms: DashMap<String, Vec<(ShardId, RoomStatus)>>,
    media: Mutex<Vec<MediaStats>>,
    /// ICE over TCP: the listener's and the shards' counters.
    pub tcp: Arc<crate::media::tcp::stats::TcpStats>,
}

impl StatusBoard {
    /// A board for `shards` media shards, each with zeroed counters until it reports.
    pub fn with_shards(shards: usize) -> Self {
        let board = Self::default();
        for i in 0..shards {
            board.publish_media(ShardId(i), MediaStats::default());
        }
        board
    }

    /// The room as a whole: live if its host is live on its home shard, viewers summed.
    pub fn status(&self, room: &str) -> RoomStatus {
        let mut total = RoomStatus { room: room.to_string(), ..RoomStatus::default() };
        if let Some(parts) = self.rooms.get(room) {
            for (_, part) in parts.value() {
                total.live |= part.live;
                total.viewers += part.viewers;
                total.video_codec = total.video_codec.or(part.video_codec);
                total.paused_viewers += part.paused_viewers;
                for (rank, layer) in part.layers.iter().enumerate() {
                    match total.layers.get_mut(rank) {
                        Some(sum) => {
                            sum.viewers += layer.viewers;
                            sum.rid = sum.rid.take().or_else(|| layer.rid.clone());
                            sum.height = sum.height.or(layer.height);
                            sum.bitrate_bps = sum.bitrate_bps.max(layer.bitrate_bps);
                        }
                        None => total.layers.push(layer.clone()),
                    }
                }
            }
        }
        total
    }

    /// Rooms with a host or a viewer on some shard, and those of them with a live host.
    pub fn room_counts(&self) -> (usize, usize) {
        let live = self.rooms.iter().filter(|r| r.value().iter().any(|(_, part)| part.live)).count();
        (self.rooms.len(), live)
    }

    /// Every shard's counters summed, latency histograms merged.
    pub fn media_stats(&self) -> MediaStats {
        self.media_by_shard().iter().fold(MediaStats::default(), |mut sum, shard| {
            sum.absorb(shard);
            sum
        })
    }

    /// Each shard's own counters, in shard order.
    pub fn media_by_shard(&self) -> Vec<MediaStats> {
        match self.media.lock() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn publish_media(&self, shard: ShardId, stats: MediaStats) {
        let mut all = match self.media.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if all.len() <= shard.0 {
            all.resize_with(shard.0 + 1, MediaStats::default);
        }
        all[shard.0] = stats;
    }

    pub(crate) fn publish(&self, shard: ShardId, status: RoomStatus) {
        let name = status.room.clone();
        let mut parts = self.rooms.entry(name.clone()).or_default();
        parts.retain(|(s, _)| *s != shard);
        if !status.is_empty() {
            parts.push((shard, status));
        }
        let now_empty = parts.is_empty();
        drop(parts);
        if now_empty {
            self.rooms.remove_if(&name, |_, parts| parts.is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(viewers: usize, live: bool) -> RoomStatus {
        RoomStatus { room: "shop".into(), live, viewers, video_codec: live.then_some("VP8"), ..RoomStatus::default() }
    }

    #[test]
    fn a_room_sums_its_shards() {
        let status_board = StatusBoard::default();
        status_board.publish(ShardId(0), part(3, true));
        status_board.publish(ShardId(1), part(4, false));
        assert_eq!(status_board.status("shop"), RoomStatus { room: "shop".into(), live: true, viewers: 7, video_codec: Some("VP8"), ..RoomStatus::default() });
        status_board.publish(ShardId(0), part(2, false));
        assert_eq!((status_board.status("shop").live, status_board.status("shop").viewers), (false, 6));
        status_board.publish(ShardId(0), part(0, false));
        status_board.publish(ShardId(1), part(0, false));
        assert!(status_board.rooms.is_empty(), "an empty room is forgotten");
    }

    #[test]
    fn media_counters_add_up() -> Result<(), hdrhistogram::CreationError> {
        let status_board = StatusBoard::default();
        let mut histogram = Histogram::<u64>::new(3)?;
        let _ = histogram.record(100);
        let one = MediaStats { datagrams_out: 10, peers: 2, forward_latency_us: Some(histogram.clone()), ..MediaStats::default() };
        let two = MediaStats { datagrams_out: 5, peers: 1, forward_latency_us: Some(histogram), ..MediaStats::default() };
        status_board.publish_media(ShardId(1), two);
        status_board.publish_media(ShardId(0), one);
        let sum = status_board.media_stats();
        assert_eq!((sum.datagrams_out, sum.peers), (15, 3));
        assert_eq!(sum.forward_latency_us.map(|h| h.len()), Some(2));
        assert_eq!(status_board.media_by_shard().len(), 2);
        Ok(())
    }
}
