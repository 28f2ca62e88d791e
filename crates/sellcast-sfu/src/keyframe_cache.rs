//! The latest keyframe group of the host's video: the keyframe and every packet since.
//!
//! Replaying it to a joining viewer gives that viewer a decodable picture at once, without
//! asking the host for a new keyframe (which would cost every other viewer a bitrate spike).

use std::time::{Duration, Instant};

use crate::packet::MediaPacket;

/// A bounded copy (shared payloads) of the current keyframe group.
#[derive(Debug)]
pub struct KeyframeCache {
    packets: Vec<MediaPacket>,
    max_packets: usize,
    max_age: Duration,
    /// False between an overflow (group longer than `max_packets`) and the next keyframe.
    valid: bool,
}

impl KeyframeCache {
    pub fn new(max_packets: usize, max_age: Duration) -> Self {
        Self {
            packets: Vec::new(),
            max_packets,
            max_age,
            valid: false,
        }
    }

    /// Record one video packet. `keyframe_start` opens a new group (the old one is dropped,
    /// its buffer kept so steady state does not allocate).
    pub fn handle_packet(&mut self, packet: &MediaPacket, keyframe_start: bool) {
        if keyframe_start {
            let same_frame = self
                .packets
                .first()
                .is_some_and(|first| first.timestamp == packet.timestamp);
            if !same_frame {
                self.packets.clear();
                self.valid = true;
            }
        }
        if !self.valid {
            return;
        }
        if self.packets.len() >= self.max_packets {
            // A group this long is not worth replaying: fall back to asking for a keyframe.
            self.clear();
            return;
        }
        self.packets.push(packet.clone());
    }

    /// The group to replay, or `None` if there is none or it began more than `max_age` ago
    /// (a viewer would spend too long decoding its way to the present).
    pub fn replayable(&self, now: Instant) -> Option<&[MediaPacket]> {
        let first = self.packets.first()?;
        if !self.valid || now.saturating_duration_since(first.arrival) > self.max_age {
            return None;
        }
        Some(&self.packets)
    }

    pub fn clear(&mut self) {
        self.packets.clear();
        self.valid = false;
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }
}
