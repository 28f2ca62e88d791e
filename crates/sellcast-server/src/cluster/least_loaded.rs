//! Which live node should take more work: the one with the fewest peers, then the least
//! egress, then the lowest node id (so every node that reads the same registry picks the same).

use super::node_record::NodeRecord;
use super::unix_millis::UnixMillis;

/// The least-loaded node among those fresh at `now`, if any.
pub fn least_loaded(nodes: &[NodeRecord], now: UnixMillis) -> Option<&NodeRecord> {
    nodes
        .iter()
        .filter(|n| n.is_fresh(now))
        .min_by(|a, b| load_order(a).cmp(&load_order(b)))
}

/// The order nodes are ranked in, least loaded first: every ranking of nodes uses this one,
/// so the node list pages get and the WHEP redirect never disagree.
pub fn load_order(node: &NodeRecord) -> (usize, u64, &str) {
    (node.load.peers, node.load.egress_bps, node.node_id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::node_id::NodeId;
    use crate::cluster::node_record::{NodeLoad, NODE_EXPIRY};

    fn node(id: &str, peers: usize, egress_bps: u64, heartbeat_at: u64) -> NodeRecord {
        NodeRecord {
            node_id: NodeId::parse(id).expect("valid"),
            public_url: format!("http://{id}"),
            load: NodeLoad { peers, viewers: peers, egress_bps, cpu: 0.0 },
            rooms: vec![],
            started_at: UnixMillis(0),
            heartbeat_at: UnixMillis(heartbeat_at),
        }
    }

    fn pick(nodes: &[NodeRecord], now: u64) -> Option<&str> {
        least_loaded(nodes, UnixMillis(now)).map(|n| n.node_id.as_str())
    }

    #[test]
    fn fewest_peers_wins_then_least_egress_then_lowest_id() {
        let now = 100_000;
        assert_eq!(pick(&[node("a", 5, 0, now), node("b", 3, 9, now)], now), Some("b"));
        assert_eq!(pick(&[node("a", 3, 9, now), node("b", 3, 1, now)], now), Some("b"));
        assert_eq!(pick(&[node("b", 3, 1, now), node("a", 3, 1, now)], now), Some("a"));
    }

    #[test]
    fn a_stale_node_is_never_chosen() {
        let now = 100_000;
        let stale = now - NODE_EXPIRY.as_millis() as u64 - 1;
        assert_eq!(pick(&[node("idle", 0, 0, stale), node("busy", 50, 9, now)], now), Some("busy"));
        assert_eq!(pick(&[node("idle", 0, 0, stale)], now), None);
    }
}
