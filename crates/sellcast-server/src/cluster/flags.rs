//! The `serve` flags that turn cluster mode on, and their checks.
//!
//! Kept apart from the other flags (and from the store's) so cluster mode stays one switch:
//! without `--cluster` these parse to `None` and no NATS code runs.

use std::str::FromStr;

use thiserror::Error;

use super::node_id::NodeId;

/// `--cluster`, `--node-id` and `--public-url` as given (flags or environment).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Join a cluster through this NATS server (nats://HOST:PORT, JetStream on): the node
    /// registers itself and the rooms its hosts publish to. Off unless set (single node).
    #[arg(long = "cluster", env = "SELLCAST_CLUSTER")]
    pub cluster: Option<String>,
    /// This node's name in the cluster: 1-64 of A-Z a-z 0-9 _ -, unique per node
    /// (with --cluster). Defaults to the host name, with other characters turned into `-`.
    #[arg(long, env = "SELLCAST_NODE_ID")]
    pub node_id: Option<String>,
    /// The address hosts and viewers reach this node at, http(s)://HOST[:PORT] (with
    /// --cluster): other nodes redirect a room's host here.
    #[arg(long, env = "SELLCAST_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Serve every WHEP viewer on the node it asked instead of redirecting (`307`) one to a
    /// clearly less loaded node (with --cluster). For deployments that place viewers
    /// themselves (a load balancer, edges chosen by region) and for tests and benches that put
    /// viewers on given nodes. Pages pick their node from the node list either way.
    #[arg(long = "no-viewer-redirect", env = "SELLCAST_NO_VIEWER_REDIRECT")]
    pub no_viewer_redirect: bool,
}

/// Cluster mode as the server runs it: checked flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The NATS server (`nats://HOST:PORT`).
    pub nats_url: String,
    pub node_id: NodeId,
    /// `http(s)://HOST[:PORT]`, no trailing slash.
    pub public_url: String,
    /// Whether a WHEP viewer may be redirected to a clearly less loaded node.
    pub viewer_redirect: bool,
}

/// A cluster flag the operator must change; the message says which and how.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ClusterFlagError {
    #[error("--{0} only means something with --cluster nats://HOST:PORT")]
    WithoutCluster(&'static str),
    #[error("--cluster {0:?} is not a NATS address (nats://HOST:PORT): {1}")]
    BadNatsUrl(String, String),
    #[error("--cluster needs --public-url http(s)://HOST[:PORT] (SELLCAST_PUBLIC_URL): the address other nodes send this node's hosts to")]
    NoPublicUrl,
    #[error("--public-url {0:?} must be http(s)://HOST[:PORT] with no path, query or spaces")]
    BadPublicUrl(String),
    #[error("--node-id {0:?} must be 1-64 of A-Z a-z 0-9 _ -")]
    BadNodeId(String),
    #[error("--cluster needs --node-id (SELLCAST_NODE_ID): the host name could not be read or is empty")]
    NoNodeId,
}

impl ClusterArgs {
    /// `None` without `--cluster`; else the checked configuration. `host_name` is the default
    /// node id's source (the caller reads it, so this stays testable).
    pub fn config(self, host_name: Option<&str>) -> Result<Option<ClusterConfig>, ClusterFlagError> {
        let Some(nats_url) = self.cluster else {
            if self.node_id.is_some() {
                return Err(ClusterFlagError::WithoutCluster("node-id"));
            }
            if self.public_url.is_some() {
                return Err(ClusterFlagError::WithoutCluster("public-url"));
            }
            if self.no_viewer_redirect {
                return Err(ClusterFlagError::WithoutCluster("no-viewer-redirect"));
            }
            return Ok(None);
        };
        async_nats::ServerAddr::from_str(&nats_url)
            .map_err(|e| ClusterFlagError::BadNatsUrl(nats_url.clone(), e.to_string()))?;
        let node_id = match self.node_id {
            Some(id) => NodeId::parse(&id).ok_or(ClusterFlagError::BadNodeId(id))?,
            None => host_name.and_then(NodeId::from_host_name).ok_or(ClusterFlagError::NoNodeId)?,
        };
        let public_url = checked_public_url(self.public_url.ok_or(ClusterFlagError::NoPublicUrl)?)?;
        Ok(Some(ClusterConfig { nats_url, node_id, public_url, viewer_redirect: !self.no_viewer_redirect }))
    }
}

/// The machine's host name, for the default node id (`None` if it cannot be read).
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
}

/// `http(s)://authority` with an optional trailing `/` (dropped): the redirect appends the
/// request's own path, so a path here would be silently lost.
fn checked_public_url(url: String) -> Result<String, ClusterFlagError> {
    let trimmed = url.strip_suffix('/').unwrap_or(&url);
    let authority = trimmed.strip_prefix("https://").or_else(|| trimmed.strip_prefix("http://"));
    let usable = authority.is_some_and(|a| {
        !a.is_empty() && !a.contains(['/', '?', '#', '@']) && !a.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if !usable {
        return Err(ClusterFlagError::BadPublicUrl(url));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cluster: Option<&str>, node_id: Option<&str>, public_url: Option<&str>) -> ClusterArgs {
        ClusterArgs {
            cluster: cluster.map(String::from),
            node_id: node_id.map(String::from),
            public_url: public_url.map(String::from),
            no_viewer_redirect: false,
        }
    }

    #[test]
    fn without_cluster_there_is_no_cluster_config() {
        assert_eq!(args(None, None, None).config(Some("box")), Ok(None));
    }

    #[test]
    fn node_flags_without_cluster_are_refused() {
        assert_eq!(args(None, Some("a"), None).config(None), Err(ClusterFlagError::WithoutCluster("node-id")));
        assert_eq!(
            args(None, None, Some("http://a:1")).config(None),
            Err(ClusterFlagError::WithoutCluster("public-url"))
        );
    }

    #[test]
    fn a_full_set_of_flags_is_checked_and_kept() {
        let config = args(Some("nats://127.0.0.1:4222"), Some("node-a"), Some("http://10.0.0.1:8080/"))
            .config(None)
            .expect("valid flags");
        let config = config.expect("cluster on");
        assert_eq!(config.node_id.as_str(), "node-a");
        assert_eq!(config.public_url, "http://10.0.0.1:8080", "the trailing slash is dropped");
    }

    #[test]
    fn cluster_without_a_public_url_is_refused() {
        assert_eq!(
            args(Some("nats://127.0.0.1:4222"), Some("a"), None).config(None),
            Err(ClusterFlagError::NoPublicUrl)
        );
    }

    #[test]
    fn public_urls_with_a_path_or_another_scheme_are_refused() {
        for bad in ["ftp://a", "http://", "http://a/whip", "https://a?x=1", "http://a b", "a:8080"] {
            let got = args(Some("nats://127.0.0.1:4222"), Some("a"), Some(bad)).config(None);
            assert_eq!(got, Err(ClusterFlagError::BadPublicUrl(bad.into())), "{bad}");
        }
    }

    #[test]
    fn the_node_id_defaults_to_the_host_name_and_is_checked_when_given() {
        let config = args(Some("nats://127.0.0.1:4222"), None, Some("http://a:1")).config(Some("shop.example.com"));
        assert_eq!(config.expect("ok").expect("on").node_id.as_str(), "shop-example-com");
        let none = args(Some("nats://127.0.0.1:4222"), None, Some("http://a:1")).config(None);
        assert_eq!(none, Err(ClusterFlagError::NoNodeId));
        let bad = args(Some("nats://127.0.0.1:4222"), Some("a.b"), Some("http://a:1")).config(None);
        assert_eq!(bad, Err(ClusterFlagError::BadNodeId("a.b".into())));
    }

    #[test]
    fn a_cluster_address_that_is_not_nats_is_refused() {
        let got = args(Some("http://127.0.0.1:4222"), Some("a"), Some("http://a:1")).config(None);
        assert!(matches!(got, Err(ClusterFlagError::BadNatsUrl(..))), "{got:?}");
    }
}
