//! Whether this node may still act as a room's owner, judged by its own lease alone.
//!
//! The events stream fences a stale owner at its first publish (`owner_fence`), but a node
//! that was stopped or cut off from NATS past its lease does not publish before it acts: it
//! would serve its viewers and take buys as owner meanwhile. Other nodes take a room over
//! once its lease is over and [`SKEW_GRACE`] more has passed by their clock; so the owner
//! stops acting as owner [`SKEW_GRACE`] *before* its lease is over by its own clock: between
//! the two there is twice the grace of clock difference, and an owner that renewed in time
//! never stops.
//!
//! Pure: the tenure and the time are inputs, so the rule is tested on virtual time.

use std::time::Duration;

use super::room_claim::{LEASE, SKEW_GRACE};
use super::unix_millis::UnixMillis;

/// How long after its last renewal a claim still lets this node act as owner.
pub const ACT_FOR: Duration = LEASE.saturating_sub(SKEW_GRACE);

/// What this node knows of its claim on a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenure {
    /// This node holds no claim on the room (none yet, or released): a show runs where the
    /// room is looked up, as before any claim (`across_nodes::Owner::Unclaimed`).
    Unclaimed,
    /// This node's claim, whose lease last ran from `renewed_at` (the time taken before the
    /// write NATS acknowledged).
    Held { renewed_at: UnixMillis },
    /// A renewal found the room claimed by another node: this node gave it up.
    Lost,
}

/// What the owner may do at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStanding {
    /// Act as owner: take buys, publish events, answer other nodes' calls.
    Owner,
    /// The lease may have run out for the other nodes: answer buys `unavailable`, publish
    /// nothing, answer no call; a renewal that succeeds makes it [`LeaseStanding::Owner`] again.
    Fenced,
    /// Another node holds the room: stop owning it for good.
    GaveUp,
}

/// The standing of a room whose tenure is `tenure` at `now`.
pub fn standing(tenure: Tenure, now: UnixMillis) -> LeaseStanding {
    match tenure {
        Tenure::Unclaimed => LeaseStanding::Owner,
        Tenure::Held { renewed_at } if now.since(renewed_at) <= ACT_FOR => LeaseStanding::Owner,
        Tenure::Held { .. } => LeaseStanding::Fenced,
        Tenure::Lost => LeaseStanding::GaveUp,
    }
}

/// When a claim leased until `lease_until` was renewed.
pub fn renewed_at(lease_until: UnixMillis) -> UnixMillis {
    UnixMillis(lease_until.0.saturating_sub(LEASE.as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::node_id::NodeId;
    use crate::cluster::room_claim::{decide, ClaimRead, ClaimStep, RoomClaim};

    const T0: UnixMillis = UnixMillis(1_000_000);

    #[test]
    fn a_claim_renewed_within_the_lease_minus_the_grace_acts_as_owner() {
        let held = Tenure::Held { renewed_at: T0 };
        assert_eq!(standing(held, T0), LeaseStanding::Owner);
        assert_eq!(standing(held, T0.plus(ACT_FOR)), LeaseStanding::Owner);
        assert_eq!(standing(held, UnixMillis(T0.plus(ACT_FOR).0 + 1)), LeaseStanding::Fenced);
        assert_eq!(standing(held, T0.plus(Duration::from_secs(600))), LeaseStanding::Fenced);
    }

    #[test]
    fn a_renewal_after_a_pause_makes_the_node_owner_again() {
        let late = T0.plus(Duration::from_secs(10));
        assert_eq!(standing(Tenure::Held { renewed_at: T0 }, late), LeaseStanding::Fenced);
        assert_eq!(standing(Tenure::Held { renewed_at: late }, late), LeaseStanding::Owner);
    }

    #[test]
    fn a_lost_room_is_given_up_and_an_unclaimed_one_runs_as_before() {
        assert_eq!(standing(Tenure::Lost, T0), LeaseStanding::GaveUp);
        assert_eq!(standing(Tenure::Unclaimed, T0.plus(Duration::from_secs(600))), LeaseStanding::Owner);
    }

    #[test]
    fn the_owner_stops_before_any_other_node_may_take_the_room_over() {
        let claim = RoomClaim::new(NodeId::parse("a").expect("valid"), "http://a".into(), T0);
        let read = ClaimRead::Held { claim: Some(claim.clone()), revision: 1 };
        let b = NodeId::parse("b").expect("valid");
        let held = Tenure::Held { renewed_at: renewed_at(claim.lease_until) };
        assert_eq!(renewed_at(claim.lease_until), T0);
        // At every millisecond either node-a acts as owner or node-b may take over, never both.
        for ms in (0..=(LEASE + SKEW_GRACE * 2).as_millis() as u64).step_by(10) {
            let now = T0.plus(Duration::from_millis(ms));
            let taken = matches!(decide(&read, &b, now), ClaimStep::TakeOver { .. });
            assert!(!(taken && standing(held, now) == LeaseStanding::Owner), "both own the room at +{ms} ms");
        }
        // And between the two lie twice the grace, for the clocks' difference.
        let first_take = (0..).map(|ms| T0.plus(Duration::from_millis(ms))).find(|now| matches!(decide(&read, &b, *now), ClaimStep::TakeOver { .. }));
        let last_owner = T0.plus(ACT_FOR);
        assert_eq!(first_take.map(|t| t.since(last_owner)), Some(SKEW_GRACE * 2 + Duration::from_millis(1)));
    }
}
