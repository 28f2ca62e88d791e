//! A room's claim: which node is its origin, and until when its lease runs.
//!
//! The claim is the value under the room's key in the rooms bucket; the bucket's revision of
//! that key is what every write compares against, so two nodes can never both win one room:
//! - no claim (or a released one): create-if-absent; of two nodes creating at once one fails;
//! - our own claim: renew it with the revision we read;
//! - another node's live claim: that node is the origin, and the host is sent there;
//! - another node's lapsed claim: take it over with the revision we read, so of two nodes
//!   taking over at once one fails.
//!
//! A claim counts as lapsed only [`SKEW_GRACE`] after its lease ran out, by the reader's clock:
//! clocks on different nodes differ (NTP keeps them within milliseconds), and the grace keeps
//! that difference from handing a live room to a second node.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::node_id::NodeId;
use super::unix_millis::UnixMillis;

/// How long a claim holds without renewal.
pub const LEASE: Duration = Duration::from_secs(6);
/// How often the origin renews its claims: three tries per lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// After a lease ran out, how long other nodes still leave the room to its origin.
pub const SKEW_GRACE: Duration = Duration::from_secs(1);

/// The value stored under a room's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomClaim {
    pub origin: NodeId,
    /// Where hosts sent to the origin go: `http(s)://HOST[:PORT]`.
    pub public_url: String,
    pub claimed_at: UnixMillis,
    pub lease_until: UnixMillis,
}

impl RoomClaim {
    /// A claim by `origin` at `now`, leased for [`LEASE`].
    pub fn new(origin: NodeId, public_url: String, now: UnixMillis) -> Self {
        Self { origin, public_url, claimed_at: now, lease_until: now.plus(LEASE) }
    }

    /// The same claim with its lease running from `now`.
    pub fn renewed(&self, now: UnixMillis) -> Self {
        Self { lease_until: now.plus(LEASE), ..self.clone() }
    }

    /// Whether other nodes must still leave the room to this claim's origin at `now`.
    pub fn is_live(&self, now: UnixMillis) -> bool {
        now <= self.lease_until.plus(SKEW_GRACE)
    }
}

/// What the rooms bucket holds for a room when a node reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRead {
    /// No entry at all.
    Absent,
    /// An entry that is a delete or purge marker: a released claim.
    Released { revision: u64 },
    /// A claim, or `None` if its value could not be read (it is treated as lapsed, so no
    /// unreadable value can keep a room from every node).
    Held { claim: Option<RoomClaim>, revision: u64 },
}

/// The write a node makes (or not) to become or stay a room's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimStep {
    /// No live claim: write ours only if there is still none (create-if-absent).
    Create,
    /// Ours: renew it, expecting the revision read.
    Renew { revision: u64 },
    /// Another node's lapsed claim: replace it, expecting the revision read.
    TakeOver { revision: u64, from: Option<NodeId> },
    /// Another node's live claim: it is the origin.
    Elsewhere { origin: NodeId, public_url: String },
}

/// What `me` does about a room whose bucket entry reads `read` at `now`.
pub fn decide(read: &ClaimRead, me: &NodeId, now: UnixMillis) -> ClaimStep {
    match read {
        ClaimRead::Absent | ClaimRead::Released { .. } => ClaimStep::Create,
        ClaimRead::Held { claim: Some(claim), revision } if &claim.origin == me => ClaimStep::Renew { revision: *revision },
        ClaimRead::Held { claim: Some(claim), .. } if claim.is_live(now) => {
            ClaimStep::Elsewhere { origin: claim.origin.clone(), public_url: claim.public_url.clone() }
        }
        ClaimRead::Held { claim, revision } => {
            ClaimStep::TakeOver { revision: *revision, from: claim.as_ref().map(|c| c.origin.clone()) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> NodeId {
        NodeId::parse(id).expect("valid id")
    }

    fn held_by(id: &str, at: u64) -> ClaimRead {
        ClaimRead::Held { claim: Some(RoomClaim::new(node(id), format!("http://{id}"), UnixMillis(at))), revision: 7 }
    }

    #[test]
    fn an_absent_or_released_room_is_created() {
        assert_eq!(decide(&ClaimRead::Absent, &node("a"), UnixMillis(0)), ClaimStep::Create);
        assert_eq!(decide(&ClaimRead::Released { revision: 3 }, &node("a"), UnixMillis(0)), ClaimStep::Create);
    }

    #[test]
    fn our_own_claim_is_renewed_with_its_revision_even_lapsed() {
        let late = UnixMillis(10_000_000);
        assert_eq!(decide(&held_by("a", 0), &node("a"), late), ClaimStep::Renew { revision: 7 });
    }

    #[test]
    fn another_nodes_claim_sends_the_host_there_until_lease_and_grace_are_over() {
        let start = 1_000_000;
        let last_live = UnixMillis(start).plus(LEASE).plus(SKEW_GRACE);
        let elsewhere = ClaimStep::Elsewhere { origin: node("a"), public_url: "http://a".into() };
        assert_eq!(decide(&held_by("a", start), &node("b"), UnixMillis(start)), elsewhere);
        assert_eq!(decide(&held_by("a", start), &node("b"), last_live), elsewhere);
        let lapsed = UnixMillis(last_live.0 + 1);
        assert_eq!(
            decide(&held_by("a", start), &node("b"), lapsed),
            ClaimStep::TakeOver { revision: 7, from: Some(node("a")) }
        );
    }

    #[test]
    fn an_unreadable_claim_can_be_taken_over() {
        let read = ClaimRead::Held { claim: None, revision: 4 };
        assert_eq!(decide(&read, &node("b"), UnixMillis(0)), ClaimStep::TakeOver { revision: 4, from: None });
    }

    #[test]
    fn renewal_moves_only_the_lease() {
        let claim = RoomClaim::new(node("a"), "http://a".into(), UnixMillis(100));
        let renewed = claim.renewed(UnixMillis(5_000));
        assert_eq!(renewed.claimed_at, UnixMillis(100));
        assert_eq!(renewed.lease_until, UnixMillis(5_000).plus(LEASE));
    }
}
