//! Why the media plane refused a session command. The driver knows nothing of HTTP: the
//! signalling handlers map each of these to a status and a body at the edge.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MediaError {
    /// str0m refused the offer after our own checks passed.
    #[error("the SDP offer was rejected: {0}")]
    OfferRejected(String),
    /// A viewer that asked for video cannot decode the live room's format; says why.
    #[error("{0}")]
    UnsupportedCodec(String),
    /// The room's host is live and still holds the room.
    #[error("a host is already live in this room")]
    HostAlreadyLive,
    /// No session with that id, room and kind on this shard.
    #[error("no such session")]
    SessionNotFound,
}
