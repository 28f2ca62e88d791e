//! The cluster's HTTP views: `GET /api/cluster/nodes` (the live nodes and their load, for
//! operators: the `--metrics-token` bearer token here, none on the `--admin` listener) and
//! `GET /api/stats/cluster` (this node's own cluster state, and the rooms it pulls from their
//! origins: `cascade.pulling`).

use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use super::metrics::operator_refusal;
use super::{with_state, AppState};
use crate::cluster::least_loaded::least_loaded;
use crate::cluster::unix_millis::UnixMillis;
use crate::cluster::Cluster;

const NO_TOKEN: &str = "operator APIs are off on this port: start with --metrics-token (or use the --admin listener)\n";

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let nodes = warp::path!("api" / "cluster" / "nodes")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(with_state(state.clone()))
        .then(|authorization: Option<String>, st: AppState| async move {
            match operator_refusal(st.metrics_token.as_deref(), authorization.as_deref(), NO_TOKEN) {
                Some(refusal) => refusal,
                None => list_nodes(st.cluster.clone()).await,
            }
        });
    let stats = warp::path!("api" / "stats" / "cluster")
        .and(warp::get())
        .and(with_state(state))
        .then(|st: AppState| async move {
            let cascade = match &st.cascade {
                Some(hub) => Some(hub.stats().await),
                None => None,
            };
            match &st.cluster {
                Some(cluster) => {
                    // Rooms this node stopped owning because another node wrote their stream.
                    let owners_fenced = st.shows.owners_fenced();
                    warp::reply::json(&json!({ "enabled": true, "node": cluster.stats(), "cascade": cascade, "owners_fenced": owners_fenced }))
                        .into_response()
                }
                None => warp::reply::json(&json!({ "enabled": false })).into_response(),
            }
        });
    nodes.or(stats).unify()
}

/// The live nodes by id, and which of them is least loaded.
pub async fn list_nodes(cluster: Option<Arc<Cluster>>) -> Response {
    let Some(cluster) = cluster else {
        return warp::reply::with_status("cluster mode is off (start with --cluster)\n", StatusCode::NOT_FOUND).into_response();
    };
    match cluster.live_nodes().await {
        Ok(nodes) => {
            let least = least_loaded(&nodes, UnixMillis::now()).map(|n| n.node_id.clone());
            warp::reply::json(&json!({ "nodes": nodes, "least_loaded": least })).into_response()
        }
        Err(e) => {
            tracing::info!(error = %e, "listing the cluster's nodes failed");
            let body = json!({ "type": "error", "code": "cluster_unavailable", "message": e.to_string() });
            warp::reply::with_status(warp::reply::json(&body), StatusCode::SERVICE_UNAVAILABLE).into_response()
        }
    }
}
