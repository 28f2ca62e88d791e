//! What other shards send this one: a mirrored room's host lifecycle and packets, and (at a
//! room's home shard) mirrors' keyframe requests.

use std::time::Instant;

use super::{Driver, RECV_BURST};
use crate::media::relay::{Relay, RelayInbox};

impl Driver {
    /// Apply what other shards sent (up to `RECV_BURST` messages), then forward: relayed
    /// packets of one frame go to this shard's viewers together, as read datagrams do.
    pub(super) fn receive_relays(&mut self, first: Relay, relays: &mut RelayInbox) {
        let now = Instant::now();
        self.handle_relay(first, now);
        for _ in 1..RECV_BURST {
            let Some(message) = relays.try_recv() else {
                break;
            };
            self.handle_relay(message, now);
        }
        self.process(now);
    }

    /// One message from another shard about a room mirrored here, or (at the home shard) a
    /// mirror's keyframe request.
    pub(super) fn handle_relay(&mut self, message: Relay, now: Instant) {
        let room_id = match &message {
            Relay::ShardRestarted { shard } => {
                self.announce_hosts_to(*shard);
                return;
            }
            // A host going live creates the mirror, so its keyframe cache is warm before
            // this shard's first viewer of the room arrives.
            Relay::HostStart { room, .. } => self.room_id(room),
            Relay::HostEnd { room }
            | Relay::SourceReset { room }
            | Relay::Media { room, .. }
            | Relay::LayerName { room, .. }
            | Relay::KeyframeRequest { room, .. } => match self.room_ids.get(&**room) {
                Some(id) => *id,
                None => return,
            },
        };
        if let Relay::HostStart { home, format, layers, .. } = message {
            if let Some(room) = self.rooms.get_mut(&room_id) {
                room.relayed_from = Some(home);
                room.host_layers = layers;
            }
            self.start_format(room_id, format);
            self.restart_relays(room_id);
            self.mark_dirty(room_id);
            return;
        }
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        match message {
            Relay::Media { packet, .. } => {
                room.forwarder.handle_rtp(now, &packet);
                super::transmit::write_to_relays(&mut self.peers, &room.relays, &packet);
            }
            Relay::HostStart { .. } | Relay::ShardRestarted { .. } => {}
            Relay::HostEnd { .. } => {
                room.relayed_from = None;
                room.host_layers = 0;
                room.format = None;
                room.forwarder.handle_publisher_end();
                self.drop_room_if_empty(room_id);
                return;
            }
            Relay::SourceReset { .. } => {
                room.forwarder.handle_source_reset();
                self.restart_relays(room_id);
            }
            Relay::KeyframeRequest { layer, .. } => room.forwarder.handle_layer_keyframe_request(now, layer),
            Relay::LayerName { layer, name, .. } => room.forwarder.set_layer_name(layer, name),
        }
        self.mark_dirty(room_id);
    }
}
