//! Where a viewer should watch from, in cluster mode: the node list handed to pages
//! (`GET /api/rooms/{room}/nodes`) and the WHEP redirect for standard WHEP clients.
//!
//! Both rank the fresh nodes with [`least_loaded::load_order`], so a page and a WHEP client
//! are sent to the same node. A draining node has left the registry at the start of its drain
//! (`drain.rs`), so it is never listed.
//!
//! The redirect moves a viewer only when another node is *clearly* less loaded (by
//! [`margin`] peers), and the redirected request carries [`PLACED_QUERY`], which is never
//! redirected again: with loads read from heartbeats up to a second old, two nodes that each
//! think the other is lighter must not bounce a viewer between them. A relay pull (`?relay`)
//! is another node's fan-out of the room, never moved: the edge chose where to pull from.

use super::least_loaded::load_order;
use super::node_id::NodeId;
use super::node_record::NodeRecord;
use super::unix_millis::UnixMillis;

/// The query parameter a redirected WHEP offer carries: it was placed, serve it here.
pub const PLACED_QUERY: &str = "placed=1";

/// Fewest peers by which another node must be lighter than this one to take a viewer.
pub const MIN_MARGIN_PEERS: usize = 4;

/// How much lighter another node must be, in peers, for a node carrying `here_peers` to send
/// a viewer there: a fifth of this node's load, at least [`MIN_MARGIN_PEERS`]. Two nodes within
/// the margin of each other keep their viewers.
pub fn margin(here_peers: usize) -> usize {
    (here_peers / 5).max(MIN_MARGIN_PEERS)
}

/// The fresh nodes, least loaded first.
pub fn viewer_order(nodes: &[NodeRecord], now: UnixMillis) -> Vec<&NodeRecord> {
    let mut fresh: Vec<&NodeRecord> = nodes.iter().filter(|n| n.is_fresh(now)).collect();
    fresh.sort_by(|a, b| load_order(a).cmp(&load_order(b)));
    fresh
}

/// What a WHEP offer asked for, as far as placement goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhepAsk {
    /// `?relay`: another node pulling the room.
    pub relay: bool,
    /// `?placed=1`: already redirected once.
    pub placed: bool,
}

impl WhepAsk {
    pub fn from_query(query: &str) -> Self {
        WhepAsk { relay: crate::relay_token::asks_to_pull(query), placed: query.split('&').any(|kv| kv == PLACED_QUERY) }
    }
}

/// Where a viewer's WHEP offer is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerPlacement {
    Here,
    /// Redirect (`307`) to this node, clearly less loaded.
    Elsewhere { node: NodeId, public_url: String },
}

/// Decide where the viewer asking `here` watches from, given the registry at `now`. A node
/// missing from the registry (its first heartbeat not landed, NATS away) serves the viewer.
pub fn place_viewer(here: &NodeId, nodes: &[NodeRecord], now: UnixMillis, ask: WhepAsk) -> ViewerPlacement {
    if ask.relay || ask.placed {
        return ViewerPlacement::Here;
    }
    let order = viewer_order(nodes, now);
    let (Some(this), Some(best)) = (order.iter().find(|n| &n.node_id == here), order.first()) else {
        return ViewerPlacement::Here;
    };
    if best.node_id == *here || best.load.peers + margin(this.load.peers) > this.load.peers {
        return ViewerPlacement::Here;
    }
    ViewerPlacement::Elsewhere { node: best.node_id.clone(), public_url: best.public_url.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::node_record::{NodeLoad, NODE_EXPIRY};

    const NOW: u64 = 1_000_000;

    fn node(id: &str, peers: usize, egress_bps: u64) -> NodeRecord {
        NodeRecord {
            node_id: NodeId::parse(id).expect("valid"),
            public_url: format!("http://{id}.example"),
            load: NodeLoad { peers, viewers: peers, egress_bps, cpu: 0.0 },
            rooms: vec![],
            started_at: UnixMillis(0),
            heartbeat_at: UnixMillis(NOW),
        }
    }

    fn stale(mut n: NodeRecord) -> NodeRecord {
        n.heartbeat_at = UnixMillis(NOW - NODE_EXPIRY.as_millis() as u64 - 1);
        n
    }

    fn ids(nodes: &[NodeRecord]) -> Vec<&str> {
        viewer_order(nodes, UnixMillis(NOW)).iter().map(|n| n.node_id.as_str()).collect()
    }

    fn place(here: &str, nodes: &[NodeRecord], query: &str) -> Option<String> {
        match place_viewer(&NodeId::parse(here).expect("valid"), nodes, UnixMillis(NOW), WhepAsk::from_query(query)) {
            ViewerPlacement::Here => None,
            ViewerPlacement::Elsewhere { node, .. } => Some(node.as_str().to_string()),
        }
    }

    #[test]
    fn the_list_is_least_loaded_first_in_the_same_order_as_least_loaded() {
        let nodes = [node("c", 7, 0), node("a", 3, 9), node("b", 3, 1), node("d", 0, 0)];
        assert_eq!(ids(&nodes), ["d", "b", "a", "c"]);
        let least = crate::cluster::least_loaded::least_loaded(&nodes, UnixMillis(NOW)).map(|n| n.node_id.as_str());
        assert_eq!(least, Some(ids(&nodes)[0]));
    }

    #[test]
    fn the_list_leaves_out_nodes_that_stopped_heartbeating() {
        assert_eq!(ids(&[stale(node("idle", 0, 0)), node("busy", 9, 0)]), ["busy"]);
    }

    #[test]
    fn a_viewer_is_redirected_only_to_a_node_lighter_by_the_margin() {
        let just_inside = [node("a", 10, 0), node("b", 10 - MIN_MARGIN_PEERS + 1, 0)];
        assert_eq!(place("a", &just_inside, ""), None, "within the margin: stays");
        let at_margin = [node("a", 10, 0), node("b", 10 - MIN_MARGIN_PEERS, 0)];
        assert_eq!(place("a", &at_margin, "").as_deref(), Some("b"));
        // The margin grows with the load: 100 peers against 85 is within a fifth.
        assert_eq!(place("a", &[node("a", 100, 0), node("b", 85, 0)], ""), None);
        assert_eq!(place("a", &[node("a", 100, 0), node("b", 80, 0)], "").as_deref(), Some("b"));
    }

    #[test]
    fn two_nodes_never_send_a_viewer_back_and_forth() {
        for (a, b) in [(0, 0), (5, 2), (2, 5), (40, 33), (9, 5)] {
            let nodes = [node("a", a, 0), node("b", b, 0)];
            let from_a = place("a", &nodes, "");
            let from_b = place("b", &nodes, "");
            assert!(from_a.is_none() || from_b.is_none(), "a={a} b={b}: {from_a:?} {from_b:?}");
        }
    }

    #[test]
    fn a_placed_offer_and_a_relay_pull_are_never_moved() {
        let nodes = [node("a", 50, 0), node("b", 0, 0)];
        assert_eq!(place("a", &nodes, "").as_deref(), Some("b"));
        assert_eq!(place("a", &nodes, "placed=1"), None);
        assert_eq!(place("a", &nodes, "codec=vp8&placed=1"), None);
        assert_eq!(place("a", &nodes, "relay"), None);
        assert_eq!(place("a", &nodes, "relay=1"), None);
        assert_eq!(place("a", &nodes, "placedx=1").as_deref(), Some("b"));
    }

    #[test]
    fn a_node_missing_from_the_registry_serves_the_viewer() {
        assert_eq!(place("a", &[node("b", 0, 0)], ""), None);
        assert_eq!(place("a", &[stale(node("a", 50, 0)), node("b", 0, 0)], ""), None);
        assert_eq!(place("a", &[node("a", 50, 0), stale(node("b", 0, 0))], ""), None);
    }
}
