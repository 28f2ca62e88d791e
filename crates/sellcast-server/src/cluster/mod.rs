//! Cluster mode (`--cluster nats://...`): nodes coordinate through NATS JetStream key-value
//! buckets. Without the flag nothing here runs.
//!
//! What a node does in a cluster:
//! - heartbeats its entry in the node registry ([`node_record`], [`node_registry`]) every
//!   [`node_record::HEARTBEAT_EVERY`], with its load; a node that stops is gone after
//!   [`node_record::NODE_EXPIRY`];
//! - claims a room before accepting its host's publish ([`room_placement`]): the node a host
//!   publishes to first becomes the room's origin and renews a lease on it; a host that
//!   publishes to another node is redirected to the origin (`307`), and a room whose origin
//!   stopped renewing can be taken over once its lease lapsed ([`room_claim`]);
//! - stops acting as a room's owner when its lease may have run out for the other nodes,
//!   and gives the room up when a renewal finds another node's claim ([`lease_standing`]);
//! - releases its rooms when their host is gone for a while ([`owned_rooms`]) and all of
//!   them, with its registry entry, on a graceful shutdown.
//!
//! The rules (leases, freshness, the least-loaded node) are plain functions of their input
//! and the time, tested without NATS; the files that talk to NATS only read, write and loop.
//! The NATS client reconnects on its own after NATS restarts; heartbeats and renewals that
//! fail meanwhile are tried again on the next round.

pub mod buckets;
pub mod flags;
pub mod lease_book;
pub mod lease_standing;
pub mod least_loaded;
pub mod load_sampler;
pub mod node_id;
pub mod node_record;
pub mod node_registry;
pub mod node_view;
pub mod owned_rooms;
pub mod room_claim;
pub mod room_placement;
pub mod unix_millis;
pub mod viewer_placement;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{info, warn};

pub use flags::{ClusterArgs, ClusterConfig, ClusterFlagError};
pub use room_placement::{Placement, PlacementError};

use crate::media::status_board::StatusBoard;
use load_sampler::LoadSampler;
use node_id::NodeId;
use node_record::{NodeRecord, HEARTBEAT_EVERY};
use node_registry::{NodeRegistry, RegistryError};
use node_view::NodeView;
use room_claim::RENEW_EVERY;
use room_placement::RoomPlacement;
use unix_millis::UnixMillis;

/// Why a node could not join its cluster at startup.
#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("could not reach NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("could not open the JetStream bucket {bucket} (is nats-server running with -js?): {reason}")]
    Bucket { bucket: String, reason: String },
    #[error("node id {0} is in use by a live node at {1}; give each node its own --node-id")]
    NodeIdTaken(NodeId, String),
    #[error("{0}")]
    Registry(#[from] RegistryError),
}

/// How fast the client tries NATS again after losing it: soon, then at most every 2 s.
fn reconnect_delay(attempts: usize) -> Duration {
    Duration::from_millis(250).saturating_mul(attempts.min(8) as u32)
}

/// Longest a heartbeat waits on NATS before the round is counted as failed.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// This node's membership of the cluster.
pub struct Cluster {
    config: ClusterConfig,
    client: async_nats::Client,
    registry: NodeRegistry,
    placement: RoomPlacement,
    started_at: UnixMillis,
    /// The last heartbeat NATS acknowledged (0: none yet).
    last_heartbeat: AtomicU64,
    heartbeat_ok: AtomicBool,
    /// The registry as of the last heartbeat round (viewer placement, CORS for other nodes).
    view: Arc<NodeView>,
    stop: watch::Sender<bool>,
}

/// What `/api/stats/cluster` shows about this node.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStats {
    pub node_id: NodeId,
    pub public_url: String,
    /// Whether the NATS connection is up now.
    pub connected: bool,
    /// When NATS last acknowledged this node's heartbeat.
    pub last_heartbeat_at: Option<UnixMillis>,
    /// Rooms whose claim this node holds, with the lease of its last write.
    pub rooms: Vec<RoomLease>,
}

/// A claim this node holds.
#[derive(Debug, Clone, Serialize)]
pub struct RoomLease {
    pub room: String,
    pub lease_until: UnixMillis,
}

impl Cluster {
    /// Connect to NATS, open the buckets, check the node id is not a live node's, and start
    /// heartbeating and renewing. Fails if NATS cannot be reached now; after that the client
    /// reconnects for as long as the node runs.
    pub async fn join(config: ClusterConfig, status_board: Arc<StatusBoard>) -> Result<Arc<Self>, ClusterError> {
        let connect_error = |e: &dyn std::fmt::Display| ClusterError::Connect { url: config.nats_url.clone(), reason: e.to_string() };
        let client = async_nats::ConnectOptions::new()
            .name(format!("sellcast-{}", config.node_id))
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(|event| async move {
                // The client retries every 2 s at most while NATS is away: only changes are worth a line.
                match event {
                    async_nats::Event::Connected | async_nats::Event::Disconnected => info!(%event, "NATS"),
                    other => tracing::debug!(event = %other, "NATS"),
                }
            })
            .connect(config.nats_url.as_str())
            .await
            .map_err(|e| connect_error(&e))?;
        let mut js = async_nats::jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(2));
        let (nodes, rooms) = buckets::open(&js).await?;
        let registry = NodeRegistry::new(nodes);
        let now = UnixMillis::now();
        if let Some(other) = registry.read(&config.node_id).await? {
            if other.is_fresh(now) && other.public_url != config.public_url {
                return Err(ClusterError::NodeIdTaken(config.node_id.clone(), other.public_url));
            }
        }
        let placement = RoomPlacement::new(rooms, client.clone(), config.node_id.clone(), config.public_url.clone());
        let (stop, stopped) = watch::channel(false);
        let cluster = Arc::new(Self {
            config,
            client,
            registry,
            placement,
            started_at: now,
            last_heartbeat: AtomicU64::new(0),
            heartbeat_ok: AtomicBool::new(true),
            view: Arc::new(NodeView::default()),
            stop,
        });
        cluster.heartbeat(&mut LoadSampler::default(), &status_board).await;
        tokio::spawn(cluster.clone().run(status_board, stopped));
        info!(node = %cluster.config.node_id, public_url = %cluster.config.public_url, nats = %cluster.config.nats_url, "joined the cluster");
        Ok(cluster)
    }

    /// Heartbeats and lease rounds until told to stop.
    async fn run(self: Arc<Self>, status_board: Arc<StatusBoard>, mut stopped: watch::Receiver<bool>) {
        let mut beats = tokio::time::interval(HEARTBEAT_EVERY);
        let mut leases = tokio::time::interval(RENEW_EVERY);
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        leases.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sampler = LoadSampler::default();
        loop {
            tokio::select! {
                _ = beats.tick() => self.heartbeat(&mut sampler, &status_board).await,
                _ = leases.tick() => {
                    let board = status_board.clone();
                    self.placement.handle_lease_tick(UnixMillis::now(), move |room| board.status(room).live).await;
                }
                _ = stopped.changed() => return,
            }
        }
    }

    async fn heartbeat(&self, sampler: &mut LoadSampler, status_board: &StatusBoard) {
        let now = UnixMillis::now();
        let record = NodeRecord {
            node_id: self.config.node_id.clone(),
            public_url: self.config.public_url.clone(),
            load: sampler.sample(&status_board.media_stats(), Instant::now()),
            rooms: self.placement.owned_rooms(),
            started_at: self.started_at,
            heartbeat_at: now,
        };
        let written = tokio::time::timeout(HEARTBEAT_TIMEOUT, self.registry.write(&record)).await;
        let ok = matches!(written, Ok(Ok(())));
        if ok {
            self.last_heartbeat.store(now.0, Ordering::Relaxed);
        }
        // Keep the last good reading while NATS is away: the nodes it lists expire by age.
        if let Ok(Ok(nodes)) = tokio::time::timeout(HEARTBEAT_TIMEOUT, self.registry.live(now)).await {
            self.view.replace(nodes);
        }
        // One line per change, not one per second while NATS is away.
        if self.heartbeat_ok.swap(ok, Ordering::Relaxed) != ok {
            match ok {
                true => info!("heartbeats resumed"),
                false => warn!(error = ?written.ok().and_then(Result::err), "heartbeat failed; retrying every second"),
            }
        }
    }

    /// Claim `room` for this node before accepting its host (see [`room_placement`]).
    pub async fn place_host(&self, room: &str) -> Result<Placement, PlacementError> {
        self.placement.claim(room).await
    }

    /// The room's origin if it is another node (see [`RoomPlacement::origin_elsewhere`]).
    pub async fn origin_elsewhere(&self, room: &str) -> Result<Option<(NodeId, String)>, PlacementError> {
        self.placement.origin_elsewhere(room).await
    }

    /// The registry as of the last heartbeat round.
    pub fn view(&self) -> &Arc<NodeView> {
        &self.view
    }

    /// Where a viewer's WHEP offer to this node is served (see [`viewer_placement`]).
    pub fn place_viewer(&self, ask: viewer_placement::WhepAsk) -> viewer_placement::ViewerPlacement {
        if !self.config.viewer_redirect {
            return viewer_placement::ViewerPlacement::Here;
        }
        viewer_placement::place_viewer(&self.config.node_id, &self.view.snapshot().nodes, UnixMillis::now(), ask)
    }

    pub fn public_url(&self) -> &str {
        &self.config.public_url
    }

    pub fn node_id(&self) -> &NodeId {
        &self.config.node_id
    }

    /// The live nodes, this one included once its heartbeat landed.
    pub async fn live_nodes(&self) -> Result<Vec<NodeRecord>, RegistryError> {
        self.registry.live(UnixMillis::now()).await
    }

    /// Each room's tenure as the lease loop last learned it, for the rooms' owners
    /// (`lease_standing` says how an owner reads it).
    pub fn leases(&self) -> Arc<lease_book::LeaseBook> {
        self.placement.leases().clone()
    }

    /// The NATS connection this node shares with the interaction plane (`interaction::across_nodes`).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn stats(&self) -> ClusterStats {
        let last = self.last_heartbeat.load(Ordering::Relaxed);
        ClusterStats {
            node_id: self.config.node_id.clone(),
            public_url: self.config.public_url.clone(),
            connected: self.client.connection_state() == async_nats::connection::State::Connected,
            last_heartbeat_at: (last > 0).then_some(UnixMillis(last)),
            rooms: self.placement.owned_leases().into_iter().map(|(room, lease_until)| RoomLease { room, lease_until }).collect(),
        }
    }

    /// Leave gracefully: stop heartbeating, release every room claim and remove this node's
    /// entry, so other nodes can take its rooms at once instead of after the lease.
    pub async fn leave(&self) {
        let _ = self.stop.send(true);
        self.placement.release_all().await;
        match tokio::time::timeout(HEARTBEAT_TIMEOUT, self.registry.remove(&self.config.node_id)).await {
            Ok(Ok(())) => info!(node = %self.config.node_id, "left the cluster"),
            _ => warn!("could not remove this node's registry entry; it expires on its own"),
        }
        let _ = tokio::time::timeout(HEARTBEAT_TIMEOUT, self.client.flush()).await;
    }
}
