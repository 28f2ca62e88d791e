//! A room: one host slot, its viewers, and the forwarding core deciding between them.

use std::time::Instant;

use sellcast_sfu::{Forwarder, ForwarderConfig, TrackKind};

use super::directory::RoomStatus;
use super::peer::PeerId;

#[derive(Debug)]
pub struct Room {
    pub name: String,
    pub host: Option<PeerId>,
    pub viewers: Vec<PeerId>,
    pub forwarder: Forwarder,
    /// Some viewer still has packets queued (a paced replay): flush again at this time.
    pub flush_at: Option<Instant>,
}

impl Room {
    pub fn new(name: String, config: ForwarderConfig) -> Self {
        Self {
            name,
            host: None,
            viewers: Vec::new(),
            forwarder: Forwarder::new(config),
            flush_at: None,
        }
    }

    pub fn status(&self) -> RoomStatus {
        RoomStatus {
            room: self.name.clone(),
            live: self.host.is_some(),
            viewers: self.viewers.len(),
            video_codec: self.forwarder.codec(TrackKind::Video).map(|c| c.name()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.host.is_none() && self.viewers.is_empty()
    }
}
