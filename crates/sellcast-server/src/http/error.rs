//! Typed signalling errors and how they look on the wire: a status and a one-line reason,
//! never an internal detail.

use thiserror::Error;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::admission::CapHit;
use crate::media::error::MediaError;
use crate::media::offer::OfferError;
use super::offer_check::OfferRejection;

/// A client refused by a session cap is told to come back after this long.
pub const FULL_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SignalError {
    #[error("{0}")]
    Offer(#[from] OfferError),
    #[error("the SDP offer was rejected: {0}")]
    BadOffer(String),
    /// A viewer that cannot decode the live room's video (and asked for video).
    #[error("{0}")]
    UnsupportedCodec(String),
    #[error("a host is already live in this room")]
    HostAlreadyLive,
    #[error("body over 64 KiB")]
    TooLarge,
    #[error("Content-Type must be application/sdp")]
    NotSdp,
    #[error("room names are 1-64 characters of A-Z a-z 0-9 _ -")]
    BadRoomName,
    #[error("no such session")]
    SessionNotFound,
    #[error("the media plane is not running")]
    Unavailable,
    /// The room's task could not answer (it is restarting); nothing was done, try again.
    #[error("the room is restarting; try again")]
    RoomUnavailable,
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The offer failed the HTTP side's checks (`offer_check`); the media plane never saw it.
    #[error("{0}")]
    Rejected(#[from] OfferRejection),
    /// A session cap is reached (`admission`): `503` with `Retry-After`.
    #[error("{0}; try again later")]
    Full(#[from] CapHit),
    /// Over the client's rate limit: `429` with `Retry-After` (this long, rounded up to seconds).
    #[error("too many requests; slow down")]
    RateLimited(std::time::Duration),
    /// No host ever created this room (no show, no products).
    #[error("no such room")]
    RoomNotFound,
    /// Cluster mode: the room could not be claimed for this node (NATS unreachable, or the
    /// claim refused), so its host is not accepted: `503` with `Retry-After`.
    #[error("the cluster cannot place this room now ({0}); try again")]
    ClusterUnavailable(crate::cluster::PlacementError),
}

/// A refusal because the cluster could not place the room: the client tries again after this.
pub const CLUSTER_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

impl From<crate::auth::AuthError> for SignalError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match e {
            AuthError::Missing | AuthError::Invalid(_) => SignalError::Unauthorized(e.to_string()),
            AuthError::WrongRoom | AuthError::Insufficient(_) | AuthError::Banned => SignalError::Forbidden(e.to_string()),
        }
    }
}

/// The media plane's refusals, as the client sees them.
impl From<MediaError> for SignalError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::OfferRejected(why) => SignalError::BadOffer(why),
            MediaError::UnsupportedCodec(why) => SignalError::UnsupportedCodec(why),
            MediaError::HostAlreadyLive => SignalError::HostAlreadyLive,
            MediaError::SessionNotFound => SignalError::SessionNotFound,
        }
    }
}

impl SignalError {
    pub fn status(&self) -> StatusCode {
        match self {
            SignalError::Offer(OfferError::NoUsableCodec | OfferError::CodecNotAllowed(_))
            | SignalError::UnsupportedCodec(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            SignalError::Offer(_) | SignalError::BadOffer(_) | SignalError::BadRoomName => {
                StatusCode::BAD_REQUEST
            }
            SignalError::HostAlreadyLive => StatusCode::CONFLICT,
            SignalError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            SignalError::NotSdp => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            SignalError::SessionNotFound => StatusCode::NOT_FOUND,
            SignalError::Unavailable | SignalError::RoomUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            SignalError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            SignalError::Forbidden(_) => StatusCode::FORBIDDEN,
            SignalError::Rejected(_) => StatusCode::BAD_REQUEST,
            SignalError::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
            SignalError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            SignalError::RoomNotFound => StatusCode::NOT_FOUND,
            SignalError::ClusterUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// How long the client should wait before trying again, for the refusals that pass.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            SignalError::Full(_) => Some(FULL_RETRY_AFTER),
            SignalError::RateLimited(wait) => Some(*wait),
            SignalError::ClusterUnavailable(_) => Some(CLUSTER_RETRY_AFTER),
            _ => None,
        }
    }
}

impl SignalError {
    /// Every cause [`SignalError::cause`] names, with its status: the label values of
    /// `sellcast_sessions_refused_total`.
    pub const CAUSES: [(&'static str, u16); 28] = [
        ("malformed_offer", 400),
        ("no_media", 400),
        ("wrong_direction", 400),
        ("bad_offer", 400),
        ("bad_room_name", 400),
        ("offer_too_large", 400),
        ("offer_not_utf8", 400),
        ("offer_too_many_lines", 400),
        ("offer_too_many_sections", 400),
        ("offer_missing_credentials", 400),
        ("unauthorized", 401),
        ("forbidden", 403),
        ("session_not_found", 404),
        ("room_not_found", 404),
        ("host_already_live", 409),
        ("too_large", 413),
        ("no_usable_codec", 415),
        ("codec_not_allowed", 415),
        ("unsupported_codec", 415),
        ("not_sdp", 415),
        ("rate_limited", 429),
        ("unavailable", 503),
        ("room_unavailable", 503),
        ("server_full", 503),
        ("room_full", 503),
        ("address_full", 503),
        ("too_many_rooms", 503),
        ("cluster_unavailable", 503),
    ];

    /// A short, stable name for why a session was refused, for metrics.
    pub fn cause(&self) -> &'static str {
        match self {
            SignalError::Offer(OfferError::Malformed(_)) => "malformed_offer",
            SignalError::Offer(OfferError::NoMedia) => "no_media",
            SignalError::Offer(OfferError::NoUsableCodec) => "no_usable_codec",
            SignalError::Offer(OfferError::CodecNotAllowed(_)) => "codec_not_allowed",
            SignalError::Offer(OfferError::WrongDirection(..)) => "wrong_direction",
            SignalError::BadOffer(_) => "bad_offer",
            SignalError::UnsupportedCodec(_) => "unsupported_codec",
            SignalError::HostAlreadyLive => "host_already_live",
            SignalError::TooLarge => "too_large",
            SignalError::NotSdp => "not_sdp",
            SignalError::BadRoomName => "bad_room_name",
            SignalError::SessionNotFound => "session_not_found",
            SignalError::Unavailable => "unavailable",
            SignalError::RoomUnavailable => "room_unavailable",
            SignalError::Unauthorized(_) => "unauthorized",
            SignalError::Forbidden(_) => "forbidden",
            SignalError::Rejected(why) => why.cause(),
            SignalError::Full(cap) => cap.cause(),
            SignalError::RateLimited(_) => "rate_limited",
            SignalError::RoomNotFound => "room_not_found",
            SignalError::ClusterUnavailable(_) => "cluster_unavailable",
        }
    }
}

impl Reply for SignalError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Some(wait) = self.retry_after() {
            return self.retry_later(status, wait);
        }
        let mut response = warp::reply::with_status(format!("{self}\n"), status).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(warp::http::header::WWW_AUTHENTICATE, warp::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl SignalError {
    /// A refusal that passes: a JSON error (as the drain's) and `Retry-After` in whole seconds,
    /// rounded up so a client that obeys it is let in.
    fn retry_later(self, status: StatusCode, wait: std::time::Duration) -> Response {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let seconds = seconds.max(1);
        let body = serde_json::json!({
            "type": "error",
            "code": self.cause(),
            "message": self.to_string(),
            "retry_after_ms": seconds * 1000,
        });
        let mut response = warp::reply::with_status(warp::reply::json(&body), status).into_response();
        response.headers_mut().insert(warp::http::header::RETRY_AFTER, warp::http::HeaderValue::from(seconds));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_is_listed_with_its_status() {
        let all = [
            SignalError::Offer(OfferError::Malformed(String::new())),
            SignalError::Offer(OfferError::NoMedia),
            SignalError::Offer(OfferError::NoUsableCodec),
            SignalError::Offer(OfferError::CodecNotAllowed(String::new())),
            SignalError::Offer(OfferError::WrongDirection("", "")),
            SignalError::BadOffer(String::new()),
            SignalError::UnsupportedCodec(String::new()),
            SignalError::HostAlreadyLive,
            SignalError::TooLarge,
            SignalError::NotSdp,
            SignalError::BadRoomName,
            SignalError::SessionNotFound,
            SignalError::Unavailable,
            SignalError::RoomUnavailable,
            SignalError::Unauthorized(String::new()),
            SignalError::Forbidden(String::new()),
            SignalError::Rejected(OfferRejection::TooLarge),
            SignalError::Rejected(OfferRejection::NotUtf8),
            SignalError::Rejected(OfferRejection::TooManyLines),
            SignalError::Rejected(OfferRejection::TooManyMLines),
            SignalError::Rejected(OfferRejection::NoFingerprint),
            SignalError::RoomNotFound,
            SignalError::RateLimited(std::time::Duration::from_millis(1)),
            SignalError::Full(CapHit::Sessions),
            SignalError::Full(CapHit::Room),
            SignalError::Full(CapHit::Address),
            SignalError::Full(CapHit::Rooms),
            SignalError::ClusterUnavailable(crate::cluster::PlacementError::Unreachable),
        ];
        for e in &all {
            assert!(SignalError::CAUSES.contains(&(e.cause(), e.status().as_u16())), "{e:?} is {} {}", e.cause(), e.status());
        }
        assert_eq!(SignalError::CAUSES.len(), all.len());
    }

    #[test]
    fn media_refusals_map_to_their_status_and_body() {
        let cases = [
            (MediaError::OfferRejected("no ICE".into()), StatusCode::BAD_REQUEST, "the SDP offer was rejected: no ICE"),
            (MediaError::UnsupportedCodec("the show is H264".into()), StatusCode::UNSUPPORTED_MEDIA_TYPE, "the show is H264"),
            (MediaError::HostAlreadyLive, StatusCode::CONFLICT, "a host is already live in this room"),
            (MediaError::SessionNotFound, StatusCode::NOT_FOUND, "no such session"),
        ];
        for (media, status, body) in cases {
            let signal = SignalError::from(media.clone());
            assert_eq!((signal.status(), signal.to_string().as_str()), (status, body), "{media:?}");
        }
    }
}
