//! The claims this node holds, with what the lease loop needs to know about each: the
//! bucket revision its next write expects, and when the room last had a live host.
//!
//! A room is released when it has had no live host for [`IDLE_RELEASE`]: the host left and
//! the room ended. The claim is taken before the host's session connects, so the wait is
//! longer than a session may stay unconnected (`SessionTimeouts::connect`, 10 s): a host
//! still connecting never loses its room.

use std::collections::BTreeMap;
use std::time::Duration;

use super::room_claim::RoomClaim;
use super::unix_millis::UnixMillis;

/// A claimed room with no live host for this long is released.
pub const IDLE_RELEASE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
struct Owned {
    claim: RoomClaim,
    revision: u64,
    last_live: UnixMillis,
}

/// Rooms whose origin this node is, by room name.
#[derive(Debug, Default)]
pub struct OwnedRooms {
    rooms: BTreeMap<String, Owned>,
}

impl OwnedRooms {
    /// This node wrote `claim` for `room` at `revision` (a create, a renewal or a takeover).
    pub fn handle_written(&mut self, room: &str, claim: RoomClaim, revision: u64, now: UnixMillis) {
        match self.rooms.get_mut(room) {
            Some(owned) => {
                owned.claim = claim;
                owned.revision = revision;
            }
            None => {
                self.rooms.insert(room.to_string(), Owned { claim, revision, last_live: now });
            }
        }
    }

    /// The room has a live host at `now`.
    pub fn handle_live(&mut self, room: &str, now: UnixMillis) {
        if let Some(owned) = self.rooms.get_mut(room) {
            owned.last_live = owned.last_live.max(now);
        }
    }

    /// The claim is no longer ours (released, or another node took it over).
    pub fn handle_gone(&mut self, room: &str) {
        self.rooms.remove(room);
    }

    /// Rooms to release at `now`, with the revision the delete expects.
    pub fn poll_release(&self, now: UnixMillis) -> Vec<(String, u64)> {
        self.rooms
            .iter()
            .filter(|(_, owned)| now.since(owned.last_live) >= IDLE_RELEASE)
            .map(|(room, owned)| (room.clone(), owned.revision))
            .collect()
    }

    /// Every claim renewed from `now`, with the revision its write expects.
    pub fn poll_renewals(&self, now: UnixMillis) -> Vec<(String, RoomClaim, u64)> {
        self.rooms
            .iter()
            .map(|(room, owned)| (room.clone(), owned.claim.renewed(now), owned.revision))
            .collect()
    }

    /// Every room with the revision its release expects, leaving none held.
    pub fn take_all(&mut self) -> Vec<(String, u64)> {
        std::mem::take(&mut self.rooms).into_iter().map(|(room, owned)| (room, owned.revision)).collect()
    }

    /// Every room with the lease its last written claim runs to.
    pub fn leases(&self) -> Vec<(String, UnixMillis)> {
        self.rooms.iter().map(|(room, owned)| (room.clone(), owned.claim.lease_until)).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.rooms.keys().cloned().collect()
    }

    pub fn holds(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::node_id::NodeId;

    fn claim(at: u64) -> RoomClaim {
        RoomClaim::new(NodeId::parse("a").expect("valid"), "http://a".into(), UnixMillis(at))
    }

    #[test]
    fn a_room_without_a_live_host_is_released_after_the_idle_wait() {
        let mut owned = OwnedRooms::default();
        let t0 = UnixMillis(1_000_000);
        owned.handle_written("shop", claim(t0.0), 3, t0);
        let almost = UnixMillis(t0.plus(IDLE_RELEASE).0 - 1);
        assert!(owned.poll_release(almost).is_empty(), "a host still connecting keeps its room");
        assert_eq!(owned.poll_release(t0.plus(IDLE_RELEASE)), vec![("shop".to_string(), 3)]);
    }

    #[test]
    fn a_live_host_keeps_the_room() {
        let mut owned = OwnedRooms::default();
        let t0 = UnixMillis(1_000_000);
        owned.handle_written("shop", claim(t0.0), 3, t0);
        let later = t0.plus(Duration::from_secs(60));
        owned.handle_live("shop", later);
        assert!(owned.poll_release(later.plus(Duration::from_secs(1))).is_empty());
    }

    #[test]
    fn renewals_expect_the_last_written_revision() {
        let mut owned = OwnedRooms::default();
        let t0 = UnixMillis(1_000_000);
        owned.handle_written("shop", claim(t0.0), 3, t0);
        owned.handle_written("shop", claim(t0.0), 9, t0);
        let renewals = owned.poll_renewals(t0.plus(Duration::from_secs(2)));
        assert_eq!(renewals.len(), 1);
        assert_eq!(renewals[0].2, 9);
        assert_eq!(renewals[0].1.lease_until, t0.plus(Duration::from_secs(2)).plus(crate::cluster::room_claim::LEASE));
        owned.handle_gone("shop");
        assert!(owned.names().is_empty());
    }
}
