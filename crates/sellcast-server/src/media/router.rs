//! Which media shard a command from HTTP or a show task goes to.
//!
//! A room's host always lands on the room's home shard (a stable hash of its name), so a
//! second host is refused by the one shard that knows the first. Viewers are dealt round
//! robin over all shards: each shard's thread carries its share of the fan-out. A peer id and
//! a session id carry their shard, so kicks, video caps, deliveries to one participant and `DELETE`s go
//! straight to it; a room-wide delivery goes to every shard, which writes it to its own peers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::command::Command;
use super::peer::PeerId;
use super::relay::ShardId;

/// Most shards a server runs; peer ids reserve this many values per counter step.
pub const MAX_SHARDS: usize = 64;

/// Where one command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    One(ShardId),
    All,
}

/// The room's home shard: where its host publishes.
pub fn home_shard(room: &str, shards: usize) -> ShardId {
    // FNV-1a: stable for the life of the process, cheap, and spreads short names well.
    let hash = room
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    ShardId((hash % shards.max(1) as u64) as usize)
}

/// A session id's shard: its first two hex digits (see [`session_id`]).
pub fn session_shard(session: &str) -> Option<ShardId> {
    let prefix = session.get(..2)?;
    usize::from_str_radix(prefix, 16).ok().map(ShardId)
}

/// A new session id for a peer on `shard`: the shard, then 128 random bits, in hex.
pub fn session_id(shard: ShardId, random: [u8; 16]) -> String {
    let mut id = format!("{:02x}", shard.0 % MAX_SHARDS);
    for b in random {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// A command could not be queued: a shard's queue was full, or the media plane is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undelivered;

/// The handle HTTP handlers and show tasks hold to reach the media shards.
#[derive(Clone)]
pub struct MediaRouter {
    shards: Arc<[mpsc::Sender<Command>]>,
    next_viewer: Arc<AtomicUsize>,
}

impl MediaRouter {
    pub fn new(shards: Vec<mpsc::Sender<Command>>) -> Self {
        Self {
            shards: shards.into(),
            next_viewer: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Decide where `command` goes (advances the viewer round robin for a `Watch`).
    pub fn route(&self, command: &Command) -> Route {
        let count = self.shards.len().max(1);
        match command {
            Command::Publish { room, .. } => Route::One(home_shard(room, count)),
            Command::Watch { .. } => Route::One(ShardId(self.next_viewer.fetch_add(1, Ordering::Relaxed) % count)),
            Command::Deliver { to: Some(p), .. } => Route::One(PeerId(p.0).shard()),
            Command::Deliver { to: None, .. } => Route::All,
            Command::Kick { peer } | Command::VideoCap { peer, .. } => Route::One(PeerId(*peer).shard()),
            Command::Rejoin { .. } => Route::All,
            #[cfg(feature = "test-hooks")]
            Command::InjectPanic { shard, .. } => Route::One(ShardId(*shard)),
            // An id that names no shard goes to shard 0, which answers "no such session".
            Command::End { session, .. } => Route::One(session_shard(session).unwrap_or(ShardId(0))),
        }
    }

    /// Send, waiting for room in the shard's queue (HTTP signalling). Err: the media plane is down.
    pub async fn send(&self, command: Command) -> Result<(), Undelivered> {
        match self.route(&command) {
            Route::One(shard) => self.sender(shard)?.send(command).await.map_err(|_| Undelivered),
            Route::All => {
                for shard in 0..self.shards.len() {
                    let copy = copy_broadcast(&command).ok_or(Undelivered)?;
                    self.shards[shard].send(copy).await.map_err(|_| Undelivered)?;
                }
                Ok(())
            }
        }
    }

    /// Send without waiting (show tasks). Err: some shard's queue was full or gone; the
    /// client sees the seq gap and resumes.
    pub fn try_send(&self, command: Command) -> Result<(), Undelivered> {
        match self.route(&command) {
            Route::One(shard) => self.sender(shard)?.try_send(command).map_err(|_| Undelivered),
            Route::All => {
                let mut result = Ok(());
                for shard in 0..self.shards.len() {
                    let copy = copy_broadcast(&command).ok_or(Undelivered)?;
                    if self.shards[shard].try_send(copy).is_err() {
                        result = Err(Undelivered);
                    }
                }
                result
            }
        }
    }

    fn sender(&self, shard: ShardId) -> Result<&mpsc::Sender<Command>, Undelivered> {
        self.shards.get(shard.0).ok_or(Undelivered)
    }
}

/// A room-wide command, copied for one shard (a frame is shared, not copied).
fn copy_broadcast(command: &Command) -> Option<Command> {
    match command {
        Command::Rejoin { room } => Some(Command::Rejoin { room: room.clone() }),
        Command::Deliver { room, to: None, frame, class, since } => Some(Command::Deliver {
            since: *since,
            room: room.clone(),
            to: None,
            frame: frame.clone(),
            class: *class,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sellcast_room::{Class, Identity, ParticipantId, Role};
    use tokio::sync::oneshot;

    fn router(n: usize) -> (MediaRouter, Vec<mpsc::Receiver<Command>>) {
        let (txs, rxs) = (0..n).map(|_| mpsc::channel(16)).unzip();
        (MediaRouter::new(txs), rxs)
    }

    fn watch() -> Command {
        let (reply, _) = oneshot::channel();
        Command::Watch {
            room: "shop".into(),
            identity: Identity { id: "v".into(), name: "v".into(), role: Role::Viewer },
            offer: crate::http::offer_check::sample(),
            relay: false,
            ticket: crate::admission::Admission::new(crate::admission::AdmissionLimits::default())
                .admit("shop", std::net::Ipv4Addr::LOCALHOST.into(), crate::media::offer::SessionKind::Watch)
                .expect("an empty server admits"),
            reply,
        }
    }

    #[test]
    fn viewers_are_dealt_round_robin() {
        let (router, _rxs) = router(3);
        let shards: Vec<Route> = (0..6).map(|_| router.route(&watch())).collect();
        let expected: Vec<Route> = [0, 1, 2, 0, 1, 2].into_iter().map(|i| Route::One(ShardId(i))).collect();
        assert_eq!(shards, expected);
    }

    #[test]
    fn a_room_has_one_home_and_names_spread() {
        assert_eq!(home_shard("shop-1", 4), home_shard("shop-1", 4));
        let homes: std::collections::HashSet<ShardId> = (0..32).map(|i| home_shard(&format!("shop-{i}"), 4)).collect();
        assert_eq!(homes.len(), 4, "32 rooms use every one of 4 shards");
        assert_eq!(home_shard("anything", 1), ShardId(0));
    }

    #[test]
    fn peers_and_sessions_name_their_shard() {
        let (router, _rxs) = router(4);
        let peer = PeerId::new(ShardId(3), 17);
        assert_eq!(router.route(&Command::Kick { peer: peer.0 }), Route::One(ShardId(3)));
        let cap = sellcast_sfu::LayerCap { max_height: Some(360), data_saver: false };
        assert_eq!(router.route(&Command::VideoCap { peer: peer.0, cap }), Route::One(ShardId(3)));
        let one = Command::Deliver { room: "shop".into(), to: Some(ParticipantId(peer.0)), frame: Arc::from("{}"), class: Class::Control, since: None };
        assert_eq!(router.route(&one), Route::One(ShardId(3)));
        let all = Command::Deliver { room: "shop".into(), to: None, frame: Arc::from("{}"), class: Class::Chat, since: None };
        assert_eq!(router.route(&all), Route::All);
        let session = session_id(ShardId(2), [0xab; 16]);
        assert_eq!(session.len(), 34);
        assert_eq!(session_shard(&session), Some(ShardId(2)));
        assert_eq!(session_shard("zz"), None);
        assert_eq!(session_shard("é"), None, "a non-ASCII id is refused, not sliced");
    }

    #[tokio::test]
    async fn a_room_wide_delivery_reaches_every_shard() {
        let (router, mut rxs) = router(3);
        let all = Command::Deliver { room: "shop".into(), to: None, frame: Arc::from("{\"x\":1}"), class: Class::Chat, since: None };
        assert_eq!(router.try_send(all), Ok(()));
        for rx in &mut rxs {
            match rx.try_recv() {
                Ok(Command::Deliver { frame, to: None, .. }) => assert_eq!(&*frame, "{\"x\":1}"),
                other => panic!("got {other:?}"),
            }
        }
    }
}
