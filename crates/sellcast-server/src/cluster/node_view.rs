//! This node's copy of the registry, read once per heartbeat: what viewer placement (the
//! pages' node list, the WHEP redirect) and CORS for the other nodes' pages look at, so a
//! viewer's offer or a page's request costs no NATS round trip. It is at most a heartbeat
//! ([`super::node_record::HEARTBEAT_EVERY`]) older than the registry.

use std::sync::{Arc, RwLock};

use super::node_record::NodeRecord;

#[derive(Debug, Default)]
pub struct NodeView {
    latest: RwLock<Arc<Snapshot>>,
}

/// The live nodes at one reading, and the web origins of their public URLs.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub nodes: Vec<NodeRecord>,
    /// `scheme://host[:port]` of each node's public URL.
    pub origins: Vec<String>,
}

impl NodeView {
    pub fn replace(&self, nodes: Vec<NodeRecord>) {
        let origins = nodes.iter().filter_map(|n| origin_of(&n.public_url)).collect();
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
