//! Links between media shards: a host's packets reach the other shards once per packet.
//!
//! A host lives on its room's home shard; viewers are spread over every shard. The home shard
//! forwards to its own viewers and hands each host packet (a shared payload, never copied) to
//! each other shard once, where a mirror of the room forwards it to that shard's viewers. The
//! mirror keeps its own keyframe cache, so a joining viewer is replayed from its own shard.
//! Keyframe requests travel the other way, already throttled by the mirror.
//!
//! A link is an unbounded channel with a counter of what is in flight, so host lifecycle
//! messages (start, end, source reset) are never lost or reordered against the media around
//! them, while media to a shard that falls `RELAY_BACKLOG` packets behind is dropped and
//! counted (its viewers NACK or PLI, as for loss on the wire).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sellcast_sfu::MediaPacket;

use super::video_format::RoomFormat;
use tokio::sync::mpsc;

/// Host packets one shard may have waiting for another before media is dropped (about two
/// seconds of a 2.5 Mbit/s stream with audio).
pub(crate) const RELAY_BACKLOG: usize = 1024;

/// Index of a media shard (a thread with its own UDP socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub usize);

impl ShardId {
    /// The cascade hub (`media::cascade`): the "home" of every room this node pulls from its
    /// origin. It is no shard (shard indexes stay below `MAX_SHARDS`), but mirrors send it
    /// their keyframe requests as they would send them to a home shard.
    pub const CASCADE: ShardId = ShardId(super::router::MAX_SHARDS);
}

/// What one shard tells another about a room.
#[derive(Debug)]
pub(crate) enum Relay {
    /// A host went live on `home` in this format, its video in `layers` layers (0: not known).
    HostStart { room: Arc<str>, home: ShardId, format: RoomFormat, layers: u8 },
    /// The host left.
    HostEnd { room: Arc<str> },
    /// The host's track restarted (new SSRC).
    SourceReset { room: Arc<str> },
    /// One host packet.
    Media { room: Arc<str>, packet: MediaPacket },
    /// A mirror's viewers need a keyframe of this layer (sent to the home shard).
    KeyframeRequest { room: Arc<str>, layer: u8 },
    /// The host's video has a new layer (slot), named by its rid.
    LayerName { room: Arc<str>, layer: u8, name: Option<Arc<str>> },
    /// That shard restarted with no rooms: announce each live host to it again.
    ShardRestarted { shard: ShardId },
}

impl Relay {
    fn is_media(&self) -> bool {
        matches!(self, Relay::Media { .. })
    }
}

/// What the relay did, for the stats API.
#[derive(Debug, Default, Clone, Copy)]
pub struct RelayStats {
    /// Messages handed to other shards (media and lifecycle).
    pub sent: u64,
    /// Host packets not relayed because the other shard was `RELAY_BACKLOG` behind.
    pub dropped: u64,
}

#[derive(Clone)]
struct Link {
    tx: mpsc::UnboundedSender<Relay>,
    in_flight: Arc<AtomicUsize>,
}

impl Link {
    /// Hand over `message`; media beyond the backlog is dropped and counted, nothing else is.
    fn send(&self, message: Relay, stats: &mut RelayStats) {
        if message.is_media() && self.in_flight.load(Ordering::Relaxed) >= RELAY_BACKLOG {
            stats.dropped += 1;
            return;
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(message).is_ok() {
            stats.sent += 1;
        } else {
            // That side has stopped (shutdown): nothing to do.
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One shard's sending side: a link to every other shard, and to the cascade hub.
pub(crate) struct ShardLinks {
    me: ShardId,
    links: Vec<Option<Link>>,
    /// The cascade hub ([`ShardId::CASCADE`]): reached by `send`, never by `broadcast`
    /// (a host's packets are for shards), except for a restart's announcement.
    hub: Option<Link>,
    pub(crate) stats: RelayStats,
}

/// The cascade hub's side of the mesh: its inbox (mirrors' keyframe requests, shard
/// restarts) and a link to every shard, which each pull clones to feed the shards.
pub(crate) struct HubLinks {
    pub(crate) inbox: RelayInbox,
    pub(crate) to_shards: ShardSenders,
}

/// Links to every shard, for a sender that is not a shard (a pull from an origin).
#[derive(Clone)]
pub(crate) struct ShardSenders {
    links: Vec<Link>,
}

impl ShardSenders {
    /// Give a message to every shard (`make` builds each copy; payloads are shared).
    pub(crate) fn broadcast(&self, stats: &mut RelayStats, mut make: impl FnMut() -> Relay) {
        for link in &self.links {
            link.send(make(), stats);
        }
    }

    /// Give a message to one shard.
    pub(crate) fn send(&self, to: ShardId, message: Relay, stats: &mut RelayStats) {
        if let Some(link) = self.links.get(to.0) {
            link.send(message, stats);
        }
    }
}

/// One shard's receiving side.
pub(crate) struct RelayInbox {
    rx: mpsc::UnboundedReceiver<Relay>,
    in_flight: Arc<AtomicUsize>,
}

/// Wire `count` shards to each other: entry `i` is shard `i`'s links and inbox.
#[cfg(test)]
pub(crate) fn mesh(count: usize) -> Vec<(ShardLinks, RelayInbox)> {
    mesh_with_hub(count).0
}

/// Wire `count` shards to each other and to the cascade hub.
pub(crate) fn mesh_with_hub(count: usize) -> (Vec<(ShardLinks, RelayInbox)>, HubLinks) {
    let (hub_tx, hub_rx) = mpsc::unbounded_channel();
    let hub_inbox = RelayInbox { rx: hub_rx, in_flight: Arc::new(AtomicUsize::new(0)) };
    let hub = Link { tx: hub_tx, in_flight: hub_inbox.in_flight.clone() };
    let inboxes: Vec<(mpsc::UnboundedSender<Relay>, RelayInbox)> = (0..count)
        .map(|_| {
            let (tx, rx) = mpsc::unbounded_channel();
            let in_flight = Arc::new(AtomicUsize::new(0));
            (tx, RelayInbox { rx, in_flight })
        })
        .collect();
    let senders: Vec<(mpsc::UnboundedSender<Relay>, Arc<AtomicUsize>)> =
        inboxes.iter().map(|(tx, inbox)| (tx.clone(), inbox.in_flight.clone())).collect();
    let to_shards = ShardSenders {
        links: senders.iter().map(|(tx, in_flight)| Link { tx: tx.clone(), in_flight: in_flight.clone() }).collect(),
    };
    let shards = inboxes
        .into_iter()
        .enumerate()
        .map(|(i, (_, inbox))| {
            let links = senders
                .iter()
                .enumerate()
                .map(|(j, (tx, in_flight))| {
                    (j != i).then(|| Link { tx: tx.clone(), in_flight: in_flight.clone() })
                })
                .collect();
            (ShardLinks { me: ShardId(i), links, hub: Some(hub.clone()), stats: RelayStats::default() }, inbox)
        })
        .collect();
    (shards, HubLinks { inbox: hub_inbox, to_shards })
}

impl ShardLinks {
    pub(crate) fn me(&self) -> ShardId {
        self.me
    }

    /// True when another shard or the cascade hub may send to this one.
    pub(crate) fn has_peers(&self) -> bool {
        self.hub.is_some() || self.links.iter().any(Option::is_some)
    }

    /// Tell the cascade hub too (a restarted shard asks it to announce its pulled rooms).
    pub(crate) fn tell_hub(&mut self, message: Relay) {
        if let Some(hub) = &self.hub {
            hub.send(message, &mut self.stats);
        }
    }

    /// Give a message to every other shard (`make` builds each copy; payloads are shared).
    pub(crate) fn broadcast(&mut self, mut make: impl FnMut() -> Relay) {
        for shard in 0..self.links.len() {
            if self.links[shard].is_some() {
                let message = make();
                self.send(ShardId(shard), message);
            }
        }
    }

    /// Give a message to one shard. Media beyond the backlog is dropped; nothing else is.
    /// [`ShardId::CASCADE`] names the cascade hub.
    pub(crate) fn send(&mut self, to: ShardId, message: Relay) {
        let link = match to {
            ShardId::CASCADE => self.hub.as_ref(),
            _ => self.links.get(to.0).and_then(Option::as_ref),
        };
        if let Some(link) = link {
            link.send(message, &mut self.stats);
        }
    }
}

impl RelayInbox {
    /// Wait for the next message; `None` once every other shard is gone.
    pub(crate) async fn recv(&mut self) -> Option<Relay> {
        let message = self.rx.recv().await;
        if message.is_some() {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        message
    }

    /// The next message if one is waiting.
    pub(crate) fn try_recv(&mut self) -> Option<Relay> {
        let message = self.rx.try_recv().ok();
        if message.is_some() {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sellcast_sfu::TrackKind;
    use std::time::Instant;

    fn media(room: &Arc<str>, seq: u64) -> Relay {
        Relay::Media {
            room: room.clone(),
            packet: MediaPacket {
                kind: TrackKind::Video,
                seq,
                timestamp: 0,
                marker: false,
                payload: Arc::from(&[1u8, 2, 3][..]),
                arrival: Instant::now(),
                layer: 0,
            },
        }
    }

    #[test]
    fn broadcast_reaches_every_other_shard_once() {
        let mut shards = mesh(3);
        let room: Arc<str> = Arc::from("shop");
        shards[1].0.broadcast(|| media(&room, 7));
        assert_eq!(shards[1].0.stats.sent, 2);
        assert!(shards[1].1.try_recv().is_none(), "a shard never relays to itself");
        for i in [0, 2] {
            match shards[i].1.try_recv() {
                Some(Relay::Media { packet, .. }) => assert_eq!(packet.seq, 7),
                other => panic!("shard {i} got {other:?}"),
            }
            assert!(shards[i].1.try_recv().is_none());
        }
    }

    /// A shard that stops reading loses media beyond the backlog, but never a lifecycle
    /// message, and what it does get stays in order.
    #[test]
    fn backlog_drops_media_only_and_keeps_order() {
        let mut shards = mesh(2);
        let room: Arc<str> = Arc::from("shop");
        for seq in 0..(RELAY_BACKLOG as u64 + 10) {
            shards[0].0.send(ShardId(1), media(&room, seq));
        }
        shards[0].0.send(ShardId(1), Relay::HostEnd { room: room.clone() });
        assert_eq!(shards[0].0.stats.dropped, 10);
        let mut expected = 0;
        while let Some(message) = shards[1].1.try_recv() {
            match message {
                Relay::Media { packet, .. } => {
                    assert_eq!(packet.seq, expected);
                    expected += 1;
                }
                Relay::HostEnd { .. } => {
                    assert_eq!(expected, RELAY_BACKLOG as u64, "the end comes after every relayed packet");
                    return;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("the host's end was lost");
    }
}
