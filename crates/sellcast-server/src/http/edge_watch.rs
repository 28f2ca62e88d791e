//! The media half of a WHEP viewer on a node that is not its room's origin (cluster mode).
//!
//! Such a node (an edge) serves the viewer itself and pulls the room from the origin
//! (`media::cascade`). Which node is the origin is read from the room's claim; a viewer never
//! claims a room. If the claim cannot be read (NATS away), the viewer is served as on a single
//! node: by the room this node has, if any.
//!
//! A pull from another edge (`?relay`) is answered only by the origin, so pulls never chain.

use tracing::{debug, warn};

use super::error::SignalError;
use super::AppState;

/// Where a viewer's media comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ViewerSource {
    /// This node has the room's host (or nobody claims the room): as on a single node.
    Here,
    /// Another node is the room's origin, at this public URL: pull from it.
    Origin(String),
}

/// Look up where a viewer of `room` is served from. A pull (`relay`) that reached a node that
/// is not the origin is refused.
pub(super) async fn viewer_source(state: &AppState, room: &str, relay: bool) -> Result<ViewerSource, SignalError> {
    let Some(cluster) = &state.cluster else {
        return Ok(ViewerSource::Here);
    };
    match cluster.origin_elsewhere(room).await {
        Ok(Some(_)) if relay => Err(SignalError::RoomNotFound),
        Ok(Some((origin, public_url))) => {
            debug!(%room, %origin, "a viewer of another node's room: served here as an edge");
            Ok(ViewerSource::Origin(public_url))
        }
        Ok(None) => Ok(ViewerSource::Here),
        Err(e) => {
            warn!(%room, error = %e, "could not read the room's claim; serving the viewer from this node's room");
            Ok(ViewerSource::Here)
        }
    }
}

/// The viewer was accepted: make sure this node pulls the room.
pub(super) fn pull(state: &AppState, room: &str, source: &ViewerSource) {
    if let (ViewerSource::Origin(url), Some(hub)) = (source, &state.cascade) {
        hub.want(room, url);
    }
}
