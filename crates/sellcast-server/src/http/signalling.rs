//! WHIP (RFC 9725) and WHEP handlers: check the request, hand the offer to the media driver,
//! answer `201 Created` with the SDP answer and the session's `Location`.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::{info, Instrument};
use warp::http::{header, StatusCode};
use warp::reject::PayloadTooLarge;
use warp::reply::{Reply, Response};
use warp::Rejection;

use super::error::SignalError;
use super::AppState;
use crate::media::command::{Command, SessionAnswer};
use crate::media::offer::{check_watch, plan_publish, CodecPolicy, OfferError, SessionKind};
use crate::metrics::Metrics;

pub fn valid_room(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn endpoint(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Publish => "whip",
        SessionKind::Watch => "whep",
    }
}

pub async fn offer(
    kind: SessionKind,
    room: String,
    query: String,
    (content_type, authorization): (Option<String>, Option<String>),
    body: Bytes,
    state: AppState,
) -> Response {
    if state.draining.is_on() {
        return crate::drain::refusal();
    }
    let policy = match codec_choice(&query) {
        Ok(choice) => choice.unwrap_or(state.video_codec),
        Err(e) => {
            state.metrics.session_refused(endpoint(kind), &e);
            return e.into_response();
        }
    };
    let span = tracing::info_span!("offer", endpoint = endpoint(kind), %room);
    let negotiated = negotiate(kind, &room, policy, (content_type, authorization), body, &state).instrument(span.clone()).await;
    let _in_span = span.enter();
    match negotiated {
        Ok(answer) => {
            let location = format!("/{}/{}/{}", endpoint(kind), room, answer.session);
            let reply = warp::reply::with_status(answer.sdp, StatusCode::CREATED);
            let reply = warp::reply::with_header(reply, header::CONTENT_TYPE, "application/sdp");
            warp::reply::with_header(reply, header::LOCATION, location).into_response()
        }
        Err(e) => {
            info!(error = %e, status = e.status().as_u16(), "offer refused");
            state.metrics.session_refused(endpoint(kind), &e);
            e.into_response()
        }
    }
}

/// For `or_else` after an offer route: an offer whose body was over the limit (warp refused it
/// before the handler ran) is counted, and the rejection goes on to be answered 413.
pub fn count_too_large(
    kind: SessionKind,
    metrics: Arc<Metrics>,
) -> impl Fn(Rejection) -> std::future::Ready<Result<(Response,), Rejection>> + Clone {
    move |rejection: Rejection| {
        if rejection.find::<PayloadTooLarge>().is_some() {
            metrics.session_refused(endpoint(kind), &SignalError::TooLarge);
        }
        std::future::ready(Err(rejection))
    }
}

/// The host's `codec=` query parameter, if any.
fn codec_choice(query: &str) -> Result<Option<CodecPolicy>, SignalError> {
    let Some(value) = query.split('&').find_map(|kv| kv.strip_prefix("codec=")) else {
        return Ok(None);
    };
    value.parse().map(Some).map_err(|e: String| SignalError::Offer(OfferError::Malformed(e)))
}

async fn negotiate(
    kind: SessionKind,
    room: &str,
    policy: CodecPolicy,
    (content_type, authorization): (Option<String>, Option<String>),
    body: Bytes,
    state: &AppState,
) -> Result<SessionAnswer, SignalError> {
    if !valid_room(room) {
        return Err(SignalError::BadRoomName);
    }
    let needed = match kind {
        SessionKind::Publish => sellcast_room::Role::Host,
        SessionKind::Watch => sellcast_room::Role::Viewer,
    };
    let identity = state.auth.verify(authorization.as_deref(), room, needed)?;
    super::api::check_not_banned(state, room, &identity).await?;
    let is_sdp = content_type
        .as_deref()
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/sdp"));
    if !is_sdp {
        return Err(SignalError::NotSdp);
    }
    let offer = String::from_utf8(body.to_vec())
        .map_err(|_| SignalError::BadOffer("the body is not UTF-8".into()))?;
    let (reply, answer) = oneshot::channel();
    let command = match kind {
        SessionKind::Publish => Command::Publish {
            room: room.to_string(),
            identity,
            plan: plan_publish(&offer, policy)?,
            offer,
            reply,
        },
        SessionKind::Watch => {
            check_watch(&offer)?;
            Command::Watch {
                room: room.to_string(),
                identity,
                offer,
                reply,
            }
        }
    };
    state.media.send(command).await.map_err(|_| SignalError::Unavailable)?;
    Ok(answer.await.map_err(|_| SignalError::Unavailable)??)
}

pub async fn end(kind: SessionKind, room: String, session: String, state: AppState) -> Response {
    let (reply, done) = oneshot::channel();
    let sent = state
        .media
        .send(Command::End {
            room,
            kind,
            session,
            reply,
        })
        .await;
    let result = match sent {
        Ok(()) => done.await.map_err(|_| SignalError::Unavailable).and_then(|r| r.map_err(SignalError::from)),
        Err(_) => Err(SignalError::Unavailable),
    };
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::valid_room;

    #[test]
    fn room_names() {
        assert!(valid_room("shop-42_live"));
        assert!(!valid_room(""));
        assert!(!valid_room("a b"));
        assert!(!valid_room("../etc"));
        assert!(!valid_room(&"x".repeat(65)));
    }
}
