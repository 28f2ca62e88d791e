//! A room as one shard sees it: the host slot (if the host is on this shard), this shard's
//! viewers, and the forwarding core deciding between them. On a shard other than the room's
//! home, the room is a mirror: its forwarder is fed the host's packets by the home shard.

use std::sync::Arc;
use std::time::Instant;

use sellcast_sfu::{Forwarder, ForwarderConfig, TrackKind};

use super::status_board::RoomStatus;
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
    pub forwarder: Forwarder,
    /// What the live host sends; viewers are sent it on their own payload types.
    pub format: Option<RoomFormat>,
    /// Some viewer still has packets queued (a paced replay): flush again at this time.
    pub flush_at: Option<Instant>,
}

impl ShardRoom {
    pub fn new(name: &str, config: ForwarderConfig) -> Self {
        Self {
            name: Arc::from(name),
            host: None,
            relayed_from: None,
            viewers: Vec::new(),
            forwarder: Forwarder::new(config),
            format: None,
            flush_at: None,
        }
    }

    /// This shard's part of the room: only the home shard reports the host as live.
    pub fn status(&self) -> RoomStatus {
        RoomStatus {
            room: self.name.to_string(),
            live: self.host.is_some(),
            viewers: self.viewers.len(),
            video_codec: self.host.and(self.forwarder.codec(TrackKind::Video)).map(|c| c.name()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.host.is_none() && self.relayed_from.is_none() && self.viewers.is_empty()
    }
}
