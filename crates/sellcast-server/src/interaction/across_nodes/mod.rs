//! The interaction plane across nodes (cluster mode only): one room, one owner, viewers on
//! any node.
//!
//! A room's owner is the node holding its claim in the rooms bucket (`cluster::room_claim`).
//! Only the owner runs the room's [`sellcast_room::Show`]: its sales, stock and per-identity
//! limits live in one place. The owner's show task publishes every room event to the room's
//! subject of a JetStream stream, in its own seq order ([`owner_relay`]), and answers the
//! frames other nodes forward to it by request/reply.
//!
//! Any other node serves the room's viewers with a [`room_mirror`] in place of a show task,
//! behind the same handle (the media plane and the HTTP API cannot tell them apart): it reads
//! the stream into a local copy ([`stream_log`]) and delivers each event once to each of its
//! viewers in order ([`viewer_cursor`]), resumes a viewer from that copy, forwards every
//! other frame to the owner with the viewer's identity, and sums its viewers' likes per tick
//! ([`node_likes`]).
//!
//! Which node owns a room is read from the rooms bucket when a room is first looked up on a
//! node; see [`owner`] for the rule. A show that starts on a node (after another node ran the
//! room, or for the first time) continues the stream's numbering: [`show_start`].

pub mod node_likes;
pub mod owner_fence;
pub mod owner_relay;
pub mod room_mirror;
pub mod show_start;
pub mod stream_log;
pub mod subjects;
pub mod viewer_cursor;
pub mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, kv::Operation};
use thiserror::Error;

use crate::cluster::buckets::ROOMS_BUCKET;
use crate::cluster::lease_book::{LeaseBook, LeaseWatch};
use crate::cluster::node_id::NodeId;
use crate::cluster::room_claim::RoomClaim;
use crate::cluster::unix_millis::UnixMillis;

/// Longest a lookup of a room's owner waits on NATS.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the interaction plane could not reach NATS.
#[derive(Debug, Error)]
pub enum LinkError {
    #[error("could not open the room events stream (is nats-server running with -js?): {0}")]
    Stream(String),
    #[error("could not open the rooms bucket: {0}")]
    Bucket(String),
    #[error("could not read the room's claim: {0}")]
    Lookup(String),
}

/// Who runs a room's show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This node holds the room's claim.
    Here,
    /// Another node holds a live claim: this node mirrors the room.
    Elsewhere(NodeId),
    /// Nobody holds a live claim (no host has published yet): the room is run where it is
    /// looked up, as on a single node, until a host's publish claims it.
    Unclaimed,
}

/// The owner of a room whose claim reads `claim` at `now`, seen from `me`.
pub fn owner(claim: Option<&RoomClaim>, me: &NodeId, now: UnixMillis) -> Owner {
    match claim {
        Some(claim) if &claim.origin == me => Owner::Here,
        Some(claim) if claim.is_live(now) => Owner::Elsewhere(claim.origin.clone()),
        _ => Owner::Unclaimed,
    }
}

/// This node's NATS side of the interaction plane.
pub struct RoomLinks {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    rooms: kv::Store,
    me: NodeId,
    /// Each room's tenure as the lease loop last learned it (`cluster::lease_standing`).
    leases: Arc<LeaseBook>,
    /// Rooms this node stopped owning: another node wrote their stream (`owner_fence`), or a
    /// renewal found another node's claim (`cluster::lease_standing`). Once per owner.
    owners_fenced: AtomicU64,
}

impl RoomLinks {
    /// Open (or create) the events stream and the rooms bucket (the cluster has created it).
    pub async fn open(client: async_nats::Client, me: NodeId, leases: Arc<LeaseBook>) -> Result<Arc<Self>, LinkError> {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(2));
        let stream = js.get_or_create_stream(subjects::stream_config()).await.map_err(|e| LinkError::Stream(e.to_string()))?;
        let rooms = js.get_key_value(ROOMS_BUCKET).await.map_err(|e| LinkError::Bucket(e.to_string()))?;
        Ok(Arc::new(Self { client, js, stream, rooms, me, leases, owners_fenced: AtomicU64::new(0) }))
    }

    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// The tenure of `room` as its owner here reads it.
    pub fn lease_watch(&self, room: &str) -> LeaseWatch {
        self.leases.watch(room)
    }

    /// How many times this node stopped owning a room (see `owner_fence`, `lease_standing`).
    pub fn owners_fenced(&self) -> u64 {
        self.owners_fenced.load(Ordering::Relaxed)
    }

    pub(crate) fn handle_fenced(&self) {
        self.owners_fenced.fetch_add(1, Ordering::Relaxed);
    }

    /// Who runs `room` now.
    pub async fn owner_of(&self, room: &str) -> Result<Owner, LinkError> {
        let entry = tokio::time::timeout(LOOKUP_TIMEOUT, self.rooms.entry(room))
            .await
            .map_err(|_| LinkError::Lookup("timed out".into()))?
            .map_err(|e| LinkError::Lookup(e.to_string()))?;
        let claim = entry
            .filter(|e| e.operation == Operation::Put)
            .and_then(|e| serde_json::from_slice::<RoomClaim>(&e.value).ok());
        Ok(owner(claim.as_ref(), &self.me, UnixMillis::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> NodeId {
        NodeId::parse(id).expect("valid")
    }

    #[test]
    fn a_live_claim_elsewhere_is_mirrored_and_a_lapsed_one_is_nobodys() {
        let now = UnixMillis(1_000_000);
        let claim = RoomClaim::new(node("a"), "http://a".into(), now);
        assert_eq!(owner(Some(&claim), &node("a"), now), Owner::Here);
        assert_eq!(owner(Some(&claim), &node("b"), now), Owner::Elsewhere(node("a")));
        let much_later = now.plus(Duration::from_secs(60));
        assert_eq!(owner(Some(&claim), &node("b"), much_later), Owner::Unclaimed);
        assert_eq!(owner(None, &node("b"), now), Owner::Unclaimed);
    }
}
