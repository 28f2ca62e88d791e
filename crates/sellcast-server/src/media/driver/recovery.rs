//! What the shard supervisor (`media::shard`) asks of a driver that panicked: close or forget
//! its peers, and hand its socket, links and peer numbering to a new driver. Also the other
//! side: a shard that restarted asks the others to announce their live hosts again.

use sellcast_room::ParticipantId;

use crate::media::tcp::links::TcpLinks;
use super::Driver;
use crate::interaction::messages::ShowMsg;
use crate::media::status_board::RoomStatus;
use crate::media::relay::{Relay, ShardId};

impl Driver {
    pub(crate) fn shard(&self) -> ShardId {
        self.links.me()
    }

    /// Close every peer as a shutdown does (DTLS close, show leaves, host ends, status board),
    /// and send what that produced.
    pub(crate) fn close_after_panic(&mut self) {
        self.pending.clear();
        self.dirty.clear();
        self.close_all();
        self.end_turn();
    }

    /// The fallback when closing panicked too: what the rest of the server must learn,
    /// without touching any peer's str0m state.
    pub(crate) fn forget_after_panic(&mut self) {
        let me = self.links.me();
        for peer in self.peers.values().filter(|p| p.channel.is_some()) {
            peer.show_tx.lifecycle(ShowMsg::Leave { participant: ParticipantId(peer.id.0) });
        }
        let names: Vec<_> = self.rooms.values().map(|r| (r.name.clone(), r.host.is_some())).collect();
        for (name, hosted_here) in names {
            self.status_board.publish(me, RoomStatus { room: name.to_string(), ..RoomStatus::default() });
            if hosted_here {
                self.links.broadcast(|| Relay::HostEnd { room: name.clone() });
            }
        }
        self.peers.clear();
    }

    /// A new driver on this one's socket and links, with no peers or rooms; it asks the other
    /// shards to announce their live hosts to it again.
    pub(crate) fn restarted(self) -> Driver {
        let Driver { socket, local_addr, factory, status_board, shows, mut links, next_peer, tcp, .. } = self;
        let me = links.me();
        links.broadcast(|| Relay::ShardRestarted { shard: me });
        links.tell_hub(Relay::ShardRestarted { shard: me });
        let mut fresh = Driver::assemble(socket, local_addr, factory, status_board, shows, links);
        fresh.next_peer = next_peer;
        fresh.tcp = tcp.map(TcpLinks::restarted);
        fresh
    }

    /// Shard `to` restarted: tell it about every host live here, as when each went live.
    pub(super) fn announce_hosts_to(&mut self, to: ShardId) {
        let me = self.links.me();
        let live: Vec<_> = self
            .rooms
            .values()
            .filter(|r| r.host.is_some() && r.relayed_from.is_none())
            .filter_map(|r| r.format.map(|format| (r.name.clone(), format, r.host_layers)))
            .collect();
        for (room, format, layers) in live {
            self.links.send(to, Relay::HostStart { room, home: me, format, layers });
        }
    }
}
