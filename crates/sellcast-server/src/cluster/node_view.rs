//! This node's copy of the registry, read once per heartbeat: what viewer placement (the
//! pages' node list, the WHEP redirect) and CORS for the other nodes' pages look at, so a
//! viewer's offer or a page's request costs no NATS round trip. It is at most a heartbeat
//! ([`super::node_record::HEARTBEAT_EVERY`]) older than the registry.

use std::sync::{Arc, Mutex, RwLock};

use super::node_record::NodeRecord;

#[derive(Debug, Default)]
pub struct NodeView {
    latest: RwLock<Arc<Snapshot>>,
    /// Every node origin this node has seen live since it started (at most [`MAX_SEEN_ORIGINS`]):
    /// a page served by a node that has since died still calls from that node's origin (the
    /// host page publishing again on another node, `web/host.js`), so CORS keeps it.
    seen: Mutex<Vec<String>>,
}

/// A bound on [`NodeView`]'s remembered origins: a cluster has a handful of nodes, this is
/// only a guard against a registry that churns through many URLs.
pub const MAX_SEEN_ORIGINS: usize = 1024;

/// The live nodes at one reading, and the web origins of their public URLs.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub nodes: Vec<NodeRecord>,
    /// `scheme://host[:port]` of each node's public URL.
    pub origins: Vec<String>,
}

impl NodeView {
    pub fn replace(&self, nodes: Vec<NodeRecord>) {
        let origins: Vec<String> = nodes.iter().filter_map(|n| origin_of(&n.public_url)).collect();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            for o in &origins {
                if !seen.contains(o) && seen.len() < MAX_SEEN_ORIGINS {
                    seen.push(o.clone());
                }
            }
        }
        let snapshot = Arc::new(Snapshot { nodes, origins });
        // A poisoned lock only means a reader panicked: the value is still a whole snapshot.
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.latest.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `origin` is a live node's: its pages may call this node.
    pub fn has_origin(&self, origin: &str) -> bool {
        self.snapshot().origins.iter().any(|o| o == origin)
    }

    /// `origin` is, or was since this node started, a cluster node's: the pages it served may
    /// still be open after it died.
    pub fn has_seen_origin(&self, origin: &str) -> bool {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|o| o == origin)
    }
}

/// The web origin of a node's public URL, as a browser sends it in `Origin`.
pub fn origin_of(public_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(public_url).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_url_becomes_the_origin_a_browser_sends() {
        assert_eq!(origin_of("http://127.0.0.1:8081").as_deref(), Some("http://127.0.0.1:8081"));
        assert_eq!(origin_of("https://b.live.example/").as_deref(), Some("https://b.live.example"));
        assert_eq!(origin_of("https://b.live.example:443/x").as_deref(), Some("https://b.live.example"));
        assert_eq!(origin_of("not a url"), None);
    }
}
