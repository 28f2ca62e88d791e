//! The node registry over its bucket: this node's heartbeat, and the list of live nodes.

use async_nats::jetstream::kv::{self, Operation};
use bytes::Bytes;
use futures_util::StreamExt;
use thiserror::Error;

use super::node_id::NodeId;
use super::node_record::NodeRecord;
use super::unix_millis::UnixMillis;

/// The registry could not be read or written.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("the node registry is unavailable: {0}")]
pub struct RegistryError(String);

fn failed(e: impl std::fmt::Display) -> RegistryError {
    RegistryError(e.to_string())
}

pub struct NodeRegistry {
    nodes: kv::Store,
}

impl NodeRegistry {
    pub fn new(nodes: kv::Store) -> Self {
        Self { nodes }
    }

    /// Write this node's entry (a heartbeat).
    pub async fn write(&self, record: &NodeRecord) -> Result<(), RegistryError> {
        let value = serde_json::to_vec(record).map_err(failed)?;
        self.nodes.put(record.node_id.as_str(), Bytes::from(value)).await.map_err(failed)?;
        Ok(())
    }

    /// The entry under `node`, if one is there and readable.
    pub async fn read(&self, node: &NodeId) -> Result<Option<NodeRecord>, RegistryError> {
        let entry = self.nodes.entry(node.as_str()).await.map_err(failed)?;
        Ok(entry.filter(|e| e.operation == Operation::Put).and_then(|e| serde_json::from_slice(&e.value).ok()))
    }

    /// Every node fresh at `now`, by node id.
    pub async fn live(&self, now: UnixMillis) -> Result<Vec<NodeRecord>, RegistryError> {
        let mut keys = self.nodes.keys().await.map_err(failed)?;
        let mut live = Vec::new();
        while let Some(key) = keys.next().await {
            let Some(id) = NodeId::parse(&key.map_err(failed)?) else { continue };
            if let Some(record) = self.read(&id).await? {
                if record.is_fresh(now) {
                    live.push(record);
                }
            }
        }
        live.sort_by(|a, b| a.node_id.as_str().cmp(b.node_id.as_str()));
        Ok(live)
    }

    /// Remove this node's entry (a graceful shutdown): it leaves the list at once.
    pub async fn remove(&self, node: &NodeId) -> Result<(), RegistryError> {
        self.nodes.delete(node.as_str()).await.map_err(failed)
    }
}
