//! The cascade hub: one task per node owning every pull ([`upstream`]), in the place of a
//! home shard for the rooms this node pulls.
//!
//! Its loop: a viewer's arrival (from HTTP) starts or keeps a room's pull; a mirror's
//! keyframe request goes to that room's pull through the gate; a restarted shard is told again
//! about every pulled room; every [`CHECK_EVERY`] each pull's room is looked up on the status
//! board, and a room with no viewer here for the grace stops its pull (`pull_rule`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tracing::info;

use super::keyframe_gate::KeyframeGate;
use super::pull_rule::{PullRule, PullStep};
use super::upstream::{self, PullHandle, PullSetup, PulledLayers};
use crate::auth::Auth;
use crate::media::relay::{HubLinks, Relay, RelayStats, ShardId, ShardSenders};
use crate::media::status_board::StatusBoard;

/// How often pulled rooms are checked for viewers.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// What HTTP tells the hub.
#[derive(Debug)]
enum HubMsg {
    /// A viewer of `room` was accepted here; its origin is at `origin_url`.
    Want { room: String, origin_url: String },
    /// The rooms pulled now, for the stats API.
    List(tokio::sync::oneshot::Sender<Vec<PulledRoom>>),
}

/// The handle HTTP holds (cheap to clone).
#[derive(Clone)]
pub struct CascadeHub {
    tx: mpsc::UnboundedSender<HubMsg>,
}

/// What `/api/stats/cluster` shows of the cascade on this node.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CascadeStats {
    /// Rooms this node pulls from their origins now.
    pub pulling: Vec<String>,
    /// Each pulled room's layers: how many the origin sends, and the video packets per layer.
    pub pulled: Vec<PulledRoom>,
}

/// One pulled room's layers, for `/api/stats/cluster`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PulledRoom {
    pub room: String,
    /// Video m-lines the origin answered active (the room's layer count when it answered).
    pub layers: u8,
    /// Video packets received per layer (slot), over every session of the pull.
    pub packets_per_layer: Vec<u64>,
}

/// Who this node is, for the relay tokens it shows origins, and how it finds a room's origin.
pub struct PullIdentity {
    pub node_id: String,
    pub auth: Arc<Auth>,
    pub lookup: super::upstream::OriginLookup,
}

impl CascadeHub {
    /// Start the hub on the current runtime.
    pub(crate) fn spawn(links: HubLinks, board: Arc<StatusBoard>, identity: PullIdentity) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let hub = Hub { links: links.to_shards, board, identity: Arc::new(identity), http, pulls: HashMap::new(), stats: RelayStats::default() };
        tokio::spawn(hub.run(rx, links.inbox));
        Self { tx }
    }

    /// A viewer of `room` was accepted on this node, whose origin is `origin_url`: pull it.
    pub fn want(&self, room: &str, origin_url: &str) {
        let _ = self.tx.send(HubMsg::Want { room: room.to_string(), origin_url: origin_url.to_string() });
    }

    /// The rooms pulled now.
    pub async fn stats(&self) -> CascadeStats {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.tx.send(HubMsg::List(reply)).is_err() {
            return CascadeStats::default();
        }
        let pulled = answer.await.unwrap_or_default();
        CascadeStats { pulling: pulled.iter().map(|p| p.room.clone()).collect(), pulled }
    }
}

/// One pulled room as the hub keeps it.
struct Pulled {
    handle: PullHandle,
    origin: watch::Sender<String>,
    rule: PullRule,
    gate: KeyframeGate,
}

struct Hub {
    links: ShardSenders,
    board: Arc<StatusBoard>,
    identity: Arc<PullIdentity>,
    http: reqwest::Client,
    pulls: HashMap<Arc<str>, Pulled>,
    stats: RelayStats,
}

fn pulled_room(room: &str, layers: &PulledLayers) -> PulledRoom {
    PulledRoom {
        room: room.to_string(),
        layers: layers.active.load(Ordering::Relaxed),
        packets_per_layer: layers.packets.iter().map(|p| p.load(Ordering::Relaxed)).collect(),
    }
}

impl Hub {
    async fn run(mut self, mut messages: mpsc::UnboundedReceiver<HubMsg>, mut relays: crate::media::relay::RelayInbox) {
        let mut check = tokio::time::interval(CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = messages.recv() => match message {
                    Some(HubMsg::Want { room, origin_url }) => self.handle_want(&room, origin_url),
                    Some(HubMsg::List(reply)) => {
                        let _ = reply.send(self.pulls.iter().map(|(room, p)| pulled_room(room, &p.handle.layers)).collect());
                    }
                    None => break,
                },
                relay = relays.recv() => match relay {
                    Some(message) => self.handle_relay(message),
                    None => break,
                },
                _ = check.tick() => self.handle_check(Instant::now()),
            }
        }
        for (_, mut pulled) in self.pulls.drain() {
            if let Some(stop) = pulled.handle.stop.take() {
                let _ = stop.send(());
            }
        }
    }

    fn handle_want(&mut self, room: &str, origin_url: String) {
        if let Some(pulled) = self.pulls.get_mut(room) {
            pulled.rule.handle_viewers(Instant::now(), 1);
            pulled.origin.send_if_modified(|current| {
                let moved = *current != origin_url;
                if moved {
                    *current = origin_url.clone();
                }
                moved
            });
            return;
        }
        info!(%room, origin = %origin_url, "a viewer of another node's room: pulling it");
        let (origin, origin_rx) = watch::channel(origin_url);
        let room: Arc<str> = Arc::from(room);
        let identity = self.identity.clone();
        let token_room = room.clone();
        let setup = PullSetup {
            room: room.clone(),
            origin: origin_rx,
            token: Box::new(move || crate::relay_token::mint(&identity.auth, &token_room, &identity.node_id).ok()),
            shards: self.links.clone(),
            http: self.http.clone(),
            lookup: self.identity.lookup.clone(),
        };
        let handle = upstream::spawn(setup);
        self.pulls.insert(room, Pulled { handle, origin, rule: PullRule::default(), gate: KeyframeGate::default() });
    }

    fn handle_relay(&mut self, message: Relay) {
        match message {
            Relay::KeyframeRequest { room, layer } => {
                if let Some(pulled) = self.pulls.get_mut(&room) {
                    if pulled.gate.allow(Instant::now(), layer) {
                        let _ = pulled.handle.keyframes.send(layer);
                    }
                }
            }
            Relay::ShardRestarted { shard } => self.announce_to(shard),
            // Nothing else is addressed to the hub.
            _ => {}
        }
    }

    /// Shard `to` restarted with no rooms: start each pulled room that has media on it again.
    fn announce_to(&mut self, to: ShardId) {
        for (room, pulled) in &self.pulls {
            if let Some(format) = *pulled.handle.format.borrow() {
                let layers = pulled.handle.layers.active.load(Ordering::Relaxed);
                self.links.send(to, Relay::HostStart { room: room.clone(), home: ShardId::CASCADE, format, layers }, &mut self.stats);
            }
        }
    }

    fn handle_check(&mut self, now: Instant) {
        let board = &self.board;
        self.pulls.retain(|room, pulled| {
            let viewers = board.status(room).viewers;
            match pulled.rule.handle_viewers(now, viewers) {
                PullStep::Keep if !pulled.handle.task.is_finished() => true,
                PullStep::Keep => false,
                PullStep::Stop => {
                    if let Some(stop) = pulled.handle.stop.take() {
                        let _ = stop.send(());
                    }
                    false
                }
            }
        });
    }
}
