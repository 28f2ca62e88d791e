//! `GET /api/rooms/{room}/nodes`: the nodes a page may watch the room from, least loaded
//! first, as `{"nodes":[{"url":"http://..."}, ...]}`. Public and cacheable for a second (the
//! registry it is read from is refreshed once a heartbeat).
//!
//! A page connects to the first node and, when that connection fails, fetches the list again
//! and moves to the next node (`web/session.js`). Only the URLs go out, in order: no load
//! figures, no node ids. Without `--cluster` the list is this node alone, as `""` (the page's
//! own origin), and a page behaves as it would without the list.

use serde::Serialize;
use warp::http::header::{HeaderValue, CACHE_CONTROL};
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use super::signalling::valid_room;
use super::{with_state, AppState};
use crate::cluster::unix_millis::UnixMillis;
use crate::cluster::viewer_placement::viewer_order;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct NodeList {
    pub nodes: Vec<NodeUrl>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct NodeUrl {
    /// The node's public URL; `""`: the origin the page was served from.
    pub url: String,
}

pub fn route(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "rooms" / String / "nodes")
        .and(warp::get())
        .and(with_state(state))
        .map(|room: String, st: AppState| {
            if !valid_room(&room) {
                return super::error::SignalError::BadRoomName.into_response();
            }
            let mut response = warp::reply::json(&node_list(&st)).into_response();
            response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=1"));
            response
        })
}

/// The list for this node's registry view. A node whose view is empty (NATS away since it
/// started) lists itself, so its own pages still connect to it.
fn node_list(state: &AppState) -> NodeList {
    let Some(cluster) = &state.cluster else {
        return NodeList { nodes: vec![NodeUrl { url: String::new() }] };
    };
    let snapshot = cluster.view().snapshot();
    let mut nodes: Vec<NodeUrl> = viewer_order(&snapshot.nodes, UnixMillis::now()).into_iter().map(|n| NodeUrl { url: n.public_url.clone() }).collect();
    if nodes.is_empty() {
        nodes.push(NodeUrl { url: cluster.public_url().to_string() });
    }
    NodeList { nodes }
}
