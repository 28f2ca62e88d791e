//! A room as one shard sees it: the host slot (if the host is on this shard), this shard's
//! viewers, and the forwarding core deciding between them. On a shard other than the room's
//! home, the room is a mirror: its forwarder is fed the host's packets by the home shard.

use std::sync::Arc;
use std::time::Instant;

use sellcast_sfu::{Forwarder, ForwarderConfig, TrackKind, ViewerId};

use super::status_board::{LayerCount, RoomLayer, RoomStatus, ViewerVideo};
use super::peer::PeerId;
use super::relay::ShardId;
use super::video_format::RoomFormat;

/// One room's media on one shard: its home part (with the host) or a mirror fed by relay.
#[derive(Debug)]
pub struct ShardRoom {
    /// Shared with the relay messages that name this room.
    pub name: Arc<str>,
    pub host: Option<PeerId>,
    /// The host is live on that other shard and its packets are relayed here.
    pub relayed_from: Option<ShardId>,
    pub viewers: Vec<PeerId>,
    /// Viewers that are edges pulling every layer (also in `viewers`): each host video
    /// packet is written to them as it came, on its layer's m-line (`cascade::relay_layers`).
    pub relays: Vec<PeerId>,
    /// The layers the live host's video has (its offer's simulcast; for a pulled room, the
    /// origin's answer); 0: not known. An edge pulling the room is sent this many.
    pub host_layers: u8,
    pub forwarder: Forwarder,
    /// What the live host sends; viewers are sent it on their own payload types.
    pub format: Option<RoomFormat>,
    /// Some viewer still has packets queued (a paced replay): flush again at this time.
    pub flush_at: Option<Instant>,
    /// The status last posted by the periodic copy (layer counts change without joins).
    pub last_status: Option<RoomStatus>,
}

impl ShardRoom {
    pub fn new(name: &str, config: ForwarderConfig) -> Self {
        Self {
            name: Arc::from(name),
            host: None,
            relayed_from: None,
            viewers: Vec::new(),
            relays: Vec::new(),
            host_layers: 0,
            forwarder: Forwarder::new(config),
            format: None,
            flush_at: None,
            last_status: None,
        }
    }

    /// This shard's part of the room: only the home shard reports the host as live.
    pub fn status(&self) -> RoomStatus {
        RoomStatus {
            room: self.name.to_string(),
            live: self.host.is_some(),
            viewers: self.viewers.len(),
            video_codec: self.host.and(self.forwarder.codec(TrackKind::Video)).map(|c| c.name()),
            layers: self
                .forwarder
                .layer_reports()
                .into_iter()
                .map(|l| LayerCount {
                    rid: l.name.map(|n| n.to_string()),
                    viewers: l.viewers,
                    bitrate_bps: l.bitrate_bps,
                    height: l.size.map(|s| s.1),
                })
                .collect(),
            paused_viewers: self.forwarder.paused_viewers(),
        }
    }

    /// Every viewer's video on this shard, and (on the home shard) the host's layers.
    pub fn video_report(&self, viewers: &mut Vec<ViewerVideo>, layers: &mut Vec<RoomLayer>) {
        for peer in &self.viewers {
            let Some(r) = self.forwarder.viewer_report(ViewerId(peer.0)) else {
                continue;
            };
            viewers.push(ViewerVideo {
                peer: peer.0,
                room: self.name.to_string(),
                layer: r.layer_name.map(|n| n.to_string()),
                layer_index: r.layer_rank,
                paused: r.paused,
                estimate_bps: r.estimate.map(|e| e.1),
                estimate_source: r.estimate.map(|e| e.0.name().to_string()),
                loss_permille: r.loss_permille,
                usual_loss_permille: r.usual_loss_permille,
                switches: r.switches,
                pauses: r.pauses,
                cap_height: r.cap.max_height,
                data_saver: r.cap.data_saver,
            });
        }
        if self.host.is_some() {
            for l in self.forwarder.layer_reports() {
                layers.push(RoomLayer {
                    room: self.name.to_string(),
                    rid: l.name.map(|n| n.to_string()),
                    index: l.rank,
                    bitrate_bps: l.bitrate_bps,
                    width: l.size.map(|s| s.0),
                    height: l.size.map(|s| s.1),
                });
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.host.is_none() && self.relayed_from.is_none() && self.viewers.is_empty()
    }
}
