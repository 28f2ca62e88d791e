//! Room placement over the rooms bucket: claiming a room for this node before its host's
//! publish is accepted, renewing the claims it holds, and releasing them.
//!
//! Every write compares against the revision read (`room_claim` says why that keeps one
//! origin per room). When NATS cannot be reached the claim fails with
//! [`PlacementError::Unreachable`] and the publish is refused: a node never accepts a host for
//! a room it could not claim, so two nodes never both take one room.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use thiserror::Error;
use tracing::{debug, info, warn};

use super::lease_book::LeaseBook;
use super::node_id::NodeId;
use super::owned_rooms::OwnedRooms;
use super::room_claim::{decide, ClaimRead, ClaimStep, RoomClaim};
use super::unix_millis::UnixMillis;

/// Longest a WHIP POST waits on NATS for its claim.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest one renewal or release waits on NATS.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reads and writes of one claim before giving up: each retry follows another node's write.
const CLAIM_TRIES: usize = 4;

/// Where a room's host publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// This node holds the room's claim: accept the host.
    Here,
    /// Another node is the origin: send the host there.
    Elsewhere { origin: NodeId, public_url: String },
}

/// Why a room could not be placed; the publish is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PlacementError {
    #[error("the cluster's NATS server is unreachable")]
    Unreachable,
    #[error("the cluster's NATS server refused the room claim: {0}")]
    Refused(String),
    #[error("other nodes kept changing the room's claim")]
    Contended,
}

/// This node's side of the rooms bucket.
pub struct RoomPlacement {
    rooms: kv::Store,
    client: async_nats::Client,
    me: NodeId,
    public_url: String,
    owned: Mutex<OwnedRooms>,
    /// What the rooms' owners read of each claim (`lease_standing` says why).
    leases: Arc<LeaseBook>,
}

impl RoomPlacement {
    pub fn new(rooms: kv::Store, client: async_nats::Client, me: NodeId, public_url: String) -> Self {
        Self { rooms, client, me, public_url, owned: Mutex::new(OwnedRooms::default()), leases: Arc::default() }
    }

    /// Each room's tenure, as this node's owners read it.
    pub fn leases(&self) -> &Arc<LeaseBook> {
        &self.leases
    }

    /// Claim `room` for this node, or find its origin.
    pub async fn claim(&self, room: &str) -> Result<Placement, PlacementError> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(PlacementError::Unreachable);
        }
        tokio::time::timeout(CLAIM_TIMEOUT, self.claim_now(room)).await.map_err(|_| PlacementError::Unreachable)?
    }

    /// The room's origin when another node holds a live claim on it (a viewer here is then
    /// served as an edge of that origin); `None` when this node holds it or nobody does.
    /// Only reads: a viewer never claims a room.
    pub async fn origin_elsewhere(&self, room: &str) -> Result<Option<(NodeId, String)>, PlacementError> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(PlacementError::Unreachable);
        }
        let read = tokio::time::timeout(CLAIM_TIMEOUT, self.read(room)).await.map_err(|_| PlacementError::Unreachable)??;
        Ok(match decide(&read, &self.me, UnixMillis::now()) {
            ClaimStep::Elsewhere { origin, public_url } => Some((origin, public_url)),
            _ => None,
        })
    }

    async fn claim_now(&self, room: &str) -> Result<Placement, PlacementError> {
        for _ in 0..CLAIM_TRIES {
            let read = self.read(room).await?;
            let now = UnixMillis::now();
            let fresh = RoomClaim::new(self.me.clone(), self.public_url.clone(), now);
            let (claim, written) = match decide(&read, &self.me, now) {
                ClaimStep::Elsewhere { origin, public_url } => {
                    self.owned().handle_gone(room);
                    self.leases.handle_lost(room);
                    return Ok(Placement::Elsewhere { origin, public_url });
                }
                ClaimStep::Create => (fresh.clone(), self.create(room, &fresh).await?),
                ClaimStep::Renew { revision } => {
                    let ours = match &read {
                        ClaimRead::Held { claim: Some(claim), .. } => claim.renewed(now),
                        _ => fresh,
                    };
                    (ours.clone(), self.update(room, &ours, revision).await?)
                }
                ClaimStep::TakeOver { revision, from } => {
                    let written = self.update(room, &fresh, revision).await?;
                    if written.is_some() {
                        info!(%room, from = ?from.as_ref().map(NodeId::as_str), "took over the room: its origin's lease had lapsed");
                    }
                    (fresh, written)
                }
            };
            if let Some(revision) = written {
                self.leases.handle_renewed(room, claim.lease_until);
                self.owned().handle_written(room, claim, revision, now);
                return Ok(Placement::Here);
            }
            debug!(%room, "the room's claim changed under us; reading it again");
        }
        Err(PlacementError::Contended)
    }

    async fn read(&self, room: &str) -> Result<ClaimRead, PlacementError> {
        let entry = self.rooms.entry(room).await.map_err(|e| nats_error(&e))?;
        Ok(match entry {
            None => ClaimRead::Absent,
            Some(e) if e.operation != Operation::Put => ClaimRead::Released { revision: e.revision },
            Some(e) => ClaimRead::Held { claim: serde_json::from_slice(&e.value).ok(), revision: e.revision },
        })
    }

    /// Create-if-absent: `None` when another node's claim got there first.
    async fn create(&self, room: &str, claim: &RoomClaim) -> Result<Option<u64>, PlacementError> {
        match self.rooms.create(room, encode(claim)).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(nats_error(&e)),
        }
    }

    /// Compare-and-set: `None` when the key's revision is no longer `revision`.
    async fn update(&self, room: &str, claim: &RoomClaim, revision: u64) -> Result<Option<u64>, PlacementError> {
        match self.rooms.update(room, encode(claim), revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) if e.kind() == UpdateErrorKind::TimedOut => Err(PlacementError::Unreachable),
            Err(e) => Err(nats_error(&e)),
        }
    }

    /// One lease round at `now`: release the rooms idle too long, renew the others. `is_live`
    /// says whether a room has a live host on this node. Failures leave the claim as it is,
    /// to be tried again next round (NATS may be restarting).
    pub async fn handle_lease_tick(&self, now: UnixMillis, is_live: impl Fn(&str) -> bool) {
        let releases = {
            let mut owned = self.owned();
            for room in owned.names() {
                if is_live(&room) {
                    owned.handle_live(&room, now);
                }
            }
            owned.poll_release(now)
        };
        for (room, revision) in releases {
            info!(%room, "releasing the room: no live host");
            self.release(&room, revision).await;
        }
        let renewals = self.owned().poll_renewals(now);
        for (room, claim, revision) in renewals {
            match tokio::time::timeout(WRITE_TIMEOUT, self.update(&room, &claim, revision)).await {
                Ok(Ok(Some(revision))) => {
                    self.leases.handle_renewed(&room, claim.lease_until);
                    self.owned().handle_written(&room, claim, revision, now);
                }
                Ok(Ok(None)) => self.adopt_or_drop(&room, now).await,
                Ok(Err(e)) => debug!(%room, error = %e, "renewing the room's claim failed; trying again next round"),
                Err(_) => debug!(%room, "renewing the room's claim timed out; trying again next round"),
            }
        }
        self.leases.prune();
    }

    /// A renewal found another revision: a claim this node wrote meanwhile (keep it), or
    /// another node's takeover (the room is no longer ours: its owner here gives it up).
    async fn adopt_or_drop(&self, room: &str, now: UnixMillis) {
        match self.read(room).await {
            Ok(ClaimRead::Held { claim: Some(claim), revision }) if claim.origin == self.me => {
                self.leases.handle_renewed(room, claim.lease_until);
                self.owned().handle_written(room, claim, revision, now);
            }
            Ok(read) => {
                let by = match read {
                    ClaimRead::Held { claim: Some(claim), .. } => Some(claim.origin),
                    _ => None,
                };
                warn!(%room, by = ?by.as_ref().map(NodeId::as_str), "lost the room's claim: its lease lapsed and it was taken or released; giving the room up");
                self.owned().handle_gone(room);
                self.leases.handle_lost(room);
            }
            Err(e) => debug!(%room, error = %e, "reading the room's claim failed; trying again next round"),
        }
    }

    /// Delete the room's claim if it is still the one this node wrote.
    async fn release(&self, room: &str, revision: u64) {
        let deleted = tokio::time::timeout(WRITE_TIMEOUT, self.rooms.delete_expect_revision(room, Some(revision))).await;
        match deleted {
            Ok(Ok(())) => {
                self.owned().handle_gone(room);
                self.leases.handle_released(room);
            }
            // Another node wrote the claim since: the room is no longer ours.
            Ok(Err(e)) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                self.owned().handle_gone(room);
                self.leases.handle_lost(room);
            }
            Ok(Err(e)) => warn!(%room, error = %e, "releasing the room's claim failed; trying again next round"),
            Err(_) => warn!(%room, "releasing the room's claim timed out; trying again next round"),
        }
    }

    /// Release every claim (a graceful shutdown): other nodes may take the rooms at once.
    pub async fn release_all(&self) {
        let all = self.owned().take_all();
        for (room, revision) in all {
            self.leases.handle_released(&room);
            match tokio::time::timeout(WRITE_TIMEOUT, self.rooms.delete_expect_revision(&room, Some(revision))).await {
                Ok(Ok(())) => info!(%room, "released the room's claim"),
                Ok(Err(e)) => warn!(%room, error = %e, "could not release the room's claim; it lapses with its lease"),
                Err(_) => warn!(%room, "releasing the room's claim timed out; it lapses with its lease"),
            }
        }
    }

    /// The rooms whose claim this node holds.
    pub fn owned_rooms(&self) -> Vec<String> {
        self.owned().names()
    }

    /// The rooms whose claim this node holds, with the lease of its last write.
    pub fn owned_leases(&self) -> Vec<(String, UnixMillis)> {
        self.owned().leases()
    }

    /// Whether this node holds `room`'s claim (as of its last write).
    pub fn holds(&self, room: &str) -> bool {
        self.owned().holds(room)
    }

    fn owned(&self) -> std::sync::MutexGuard<'_, OwnedRooms> {
        // Never held across an await; a panic while holding it left plain data.
        self.owned.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn encode(claim: &RoomClaim) -> Bytes {
    // A struct of strings and integers always serialises.
    Bytes::from(serde_json::to_vec(claim).unwrap_or_default())
}

fn nats_error(e: &dyn std::fmt::Display) -> PlacementError {
    PlacementError::Refused(e.to_string())
}
