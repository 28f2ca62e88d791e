//! The two JetStream key-value buckets cluster mode keeps, opened or created at startup.
//!
//! Every node opens them with the same settings; the first one creates them. A bucket is a
//! stream named `KV_<bucket>` on the subjects `$KV.<bucket>.>` (the key-value convention every
//! NATS client reads). The stream is created here rather than through the client's
//! `create_key_value`, which first asks the server for account details in a form Debian's
//! nats-server 2.9 does not send.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::node_record::NODE_EXPIRY;
use super::ClusterError;

/// Node id -> `NodeRecord`, each entry dropped [`NODE_EXPIRY`] after its last write.
pub const NODES_BUCKET: &str = "sellcast_nodes";
/// Room name -> `RoomClaim`, kept until released or taken over.
pub const ROOMS_BUCKET: &str = "sellcast_rooms";

/// A bucket keeping the last value per key on disk (claims and entries survive a NATS
/// restart), each dropped `max_age` after its last write (zero: kept).
fn bucket_stream(bucket: &str, description: &str, max_age: Duration) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_string()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: stream::StorageType::File,
        num_replicas: 1,
        // What the key-value convention asks of its streams: purges roll a key up, deletes
        // are markers, reads may go to any replica, and a full bucket refuses new writes.
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// Open (or create) the node registry and the room claims.
pub async fn open(js: &jetstream::Context) -> Result<(kv::Store, kv::Store), ClusterError> {
    let nodes = bucket_stream(NODES_BUCKET, "sellcast: live nodes and their load (heartbeats)", NODE_EXPIRY);
    let rooms = bucket_stream(ROOMS_BUCKET, "sellcast: each room's origin node and its lease", Duration::ZERO);
    Ok((open_one(js, NODES_BUCKET, nodes).await?, open_one(js, ROOMS_BUCKET, rooms).await?))
}

async fn open_one(js: &jetstream::Context, bucket: &str, config: stream::Config) -> Result<kv::Store, ClusterError> {
    let failed = |e: &dyn std::fmt::Display| ClusterError::Bucket { bucket: bucket.to_string(), reason: e.to_string() };
    js.get_or_create_stream(config).await.map_err(|e| failed(&e))?;
    js.get_key_value(bucket).await.map_err(|e| failed(&e))
}
