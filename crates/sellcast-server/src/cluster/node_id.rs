//! A node's name in the cluster: the key of its registry entry and the owner named in a room's
//! claim, so it is limited to characters every NATS key accepts.

use std::fmt;

use serde::{Deserialize, Serialize};

/// 1-64 of `A-Z a-z 0-9 _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

const MAX_LEN: usize = 64;

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl NodeId {
    /// The id if `id` is one as given; `None` otherwise.
    pub fn parse(id: &str) -> Option<Self> {
        ((1..=MAX_LEN).contains(&id.len()) && id.bytes().all(allowed)).then(|| Self(id.to_string()))
    }

    /// A default id from a host name: other characters become `-`, cut to 64; `None` if
    /// nothing is left.
    pub fn from_host_name(name: &str) -> Option<Self> {
        let cleaned: String = name
            .trim()
            .bytes()
            .take(MAX_LEN)
            .map(|b| if allowed(b) { char::from(b) } else { '-' })
            .collect();
        let cleaned = cleaned.trim_matches('-');
        Self::parse(cleaned)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::NodeId;

    #[test]
    fn ids_are_nats_key_safe() {
        assert!(NodeId::parse("node-a_1").is_some());
        for bad in ["", "a.b", "a b", "a/b", "a*", "a>", &"x".repeat(65)] {
            assert!(NodeId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_host_name_becomes_an_id() {
        assert_eq!(NodeId::from_host_name("web01.shop.example\n").map(|n| n.0), Some("web01-shop-example".into()));
        assert_eq!(NodeId::from_host_name("..."), None);
    }
}
