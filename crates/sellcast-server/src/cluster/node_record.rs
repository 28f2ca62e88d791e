//! A node's entry in the registry: who it is, where it is reached, and its load, rewritten on
//! every heartbeat.
//!
//! An entry goes away two ways: the bucket's `max_age` ([`NODE_EXPIRY`]) drops a key whose last
//! write is older than that, and readers also skip an entry whose `heartbeat_at` is older than
//! [`NODE_EXPIRY`] by their own clock, because the server removes aged messages on its own
//! timer, not at the instant they age.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::node_id::NodeId;
use super::unix_millis::UnixMillis;

/// How often a node writes its entry.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A node whose last heartbeat is older than this is gone.
pub const NODE_EXPIRY: Duration = Duration::from_secs(5);

/// What a node carries right now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// WebRTC peers (hosts and viewers) on this node.
    pub peers: usize,
    pub viewers: usize,
    /// Media bytes forwarded per second, as bits, over the last heartbeat interval.
    pub egress_bps: u64,
    /// The process's CPU use over the last interval, in cores (1.0 = one core busy).
    pub cpu: f64,
}

/// The registry's value for one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: NodeId,
    pub public_url: String,
    #[serde(flatten)]
    pub load: NodeLoad,
    /// Rooms whose claim this node holds.
    pub rooms: Vec<String>,
    pub started_at: UnixMillis,
    pub heartbeat_at: UnixMillis,
}

impl NodeRecord {
    /// Whether the node counts as alive at `now`.
    pub fn is_fresh(&self, now: UnixMillis) -> bool {
        now.since(self.heartbeat_at) <= NODE_EXPIRY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(heartbeat_at: u64) -> NodeRecord {
        NodeRecord {
            node_id: NodeId::parse("a").expect("valid"),
            public_url: "http://a".into(),
            load: NodeLoad::default(),
            rooms: vec![],
            started_at: UnixMillis(0),
            heartbeat_at: UnixMillis(heartbeat_at),
        }
    }

    #[test]
    fn a_node_is_fresh_until_its_expiry() {
        let beat = 1_000_000;
        assert!(record(beat).is_fresh(UnixMillis(beat)));
        assert!(record(beat).is_fresh(UnixMillis(beat).plus(NODE_EXPIRY)));
        assert!(!record(beat).is_fresh(UnixMillis(beat + 1).plus(NODE_EXPIRY)));
    }

    #[test]
    fn a_heartbeat_from_a_clock_ahead_is_fresh() {
        assert!(record(2_000).is_fresh(UnixMillis(1_000)));
    }

    #[test]
    fn the_record_round_trips_as_flat_json() {
        let r = record(5);
        let text = serde_json::to_string(&r).expect("serialises");
        assert!(text.contains("\"peers\":0"), "{text}");
        assert_eq!(serde_json::from_str::<NodeRecord>(&text).expect("parses"), r);
    }
}
