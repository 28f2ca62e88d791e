//! WHIP (RFC 9725) and WHEP handlers: check the request, hand the offer to the media driver,
//! answer `201 Created` with the SDP answer and the session's `Location`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::{info, Instrument};
use warp::http::{header, StatusCode};
use warp::reject::PayloadTooLarge;
use warp::reply::{Reply, Response};
use warp::Rejection;

use super::error::SignalError;
use super::offer_check::check_offer;
use super::AppState;
use crate::cluster::node_id::NodeId;
use crate::cluster::viewer_placement::{ViewerPlacement, WhepAsk, PLACED_QUERY};
use crate::cluster::Placement;
use crate::interaction::registry::{RoomLookup, ShowHandle};
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
    (state, client): (AppState, Option<SocketAddr>),
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
    // Every transport we serve has a peer address; without one the client shares one count.
    let client = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let ask = WhepAsk::from_query(&query);
    let relay = kind == SessionKind::Watch && ask.relay;
    let request = Request { kind, room: &room, policy, client, relay, placed: ask.placed };
    let negotiated = negotiate(request, (content_type, authorization), body, &state).instrument(span.clone()).await;
    let _in_span = span.enter();
    match negotiated {
        Ok(Negotiated::ToOrigin { origin, public_url }) => {
            // RFC 9725 §4.5: a WHIP client follows a 307 with the same POST. The path and
            // query are this request's, on the origin.
            let query = if query.is_empty() { String::new() } else { format!("?{query}") };
            let location = format!("{public_url}/{}/{room}{query}", endpoint(kind));
            info!(origin = %origin, %location, "the room's origin is another node: redirected");
            let reply = warp::reply::with_status(format!("this room is on {location}\n"), StatusCode::TEMPORARY_REDIRECT);
            warp::reply::with_header(reply, header::LOCATION, location).into_response()
        }
        Ok(Negotiated::ToLighterNode { node, public_url }) => {
            // Marked as placed, so the node it lands on serves it whatever its load by then.
            let query = if query.is_empty() { PLACED_QUERY.to_string() } else { format!("{query}&{PLACED_QUERY}") };
            let location = format!("{public_url}/whep/{room}?{query}");
            info!(node = %node, %location, "a clearly less loaded node takes this viewer: redirected");
            let reply = warp::reply::with_status(format!("watch on {location}\n"), StatusCode::TEMPORARY_REDIRECT);
            warp::reply::with_header(reply, header::LOCATION, location).into_response()
        }
        Ok(Negotiated::Answer(answer)) => {
            let location = format!("/{}/{}/{}", endpoint(kind), room, answer.session);
            let reply = warp::reply::with_status(answer.sdp, StatusCode::CREATED);
            let reply = warp::reply::with_header(reply, header::CONTENT_TYPE, "application/sdp");
            warp::reply::with_header(reply, header::LOCATION, location).into_response()
        }
        Err(e) => {
            info!(error = %e, cause = e.cause(), status = e.status().as_u16(), "offer refused");
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

/// What an offer asks for, besides its body.
struct Request<'a> {
    kind: SessionKind,
    room: &'a str,
    policy: CodecPolicy,
    client: IpAddr,
    /// A WHEP that asks to pull the room for another node (`?relay`, with a relay token).
    relay: bool,
    /// A WHEP already redirected by viewer placement (`?placed=1`): served here.
    placed: bool,
}

/// What an accepted offer comes to.
enum Negotiated {
    /// The session's SDP answer: `201 Created`.
    Answer(SessionAnswer),
    /// Cluster mode: another node is the room's origin, and the host publishes there.
    ToOrigin { origin: NodeId, public_url: String },
    /// Cluster mode: a viewer, and another node is clearly less loaded (`cluster::viewer_placement`).
    ToLighterNode { node: NodeId, public_url: String },
}

/// In order: the request's own checks (room name, token), the ban (a banned identity is
/// told so whatever it sent; a room that does not exist has no bans), the offer itself, in
/// cluster mode the room's claim (a host is accepted only on the room's origin), then what
/// the session takes from the server (the room, a place under the caps) and the media
/// plane. Only a host creates a room, and only with an offer that passed.
async fn negotiate(
    request: Request<'_>,
    (content_type, authorization): (Option<String>, Option<String>),
    body: Bytes,
    state: &AppState,
) -> Result<Negotiated, SignalError> {
    let Request { kind, room, policy, client, relay, placed } = request;
    if !valid_room(room) {
        return Err(SignalError::BadRoomName);
    }
    let needed = match kind {
        SessionKind::Publish => sellcast_room::Role::Host,
        SessionKind::Watch => sellcast_room::Role::Viewer,
    };
    let identity = match relay {
        true => crate::relay_token::verify(&state.auth, authorization.as_deref(), room)?,
        false => state.auth.verify(authorization.as_deref(), room, needed)?,
    };
    let mut existing = existing_room(room, state).await?;
    if let Some(show) = &existing {
        super::api::check_not_banned(show, &identity).await?;
    }
    let is_sdp = content_type
        .as_deref()
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/sdp"));
    if !is_sdp {
        return Err(SignalError::NotSdp);
    }
    let offer = check_offer(&body)?;
    let plan = match kind {
        SessionKind::Publish => Some(plan_publish(offer.as_str(), policy)?),
        SessionKind::Watch => {
            check_watch(offer.as_str())?;
            None
        }
    };
    // A standard WHEP client follows a 307 with the same POST; its `Authorization` goes along
    // to another node only if the client keeps it across origins (browsers do not: the pages
    // pick a node from `/api/rooms/{room}/nodes` instead and are served where they ask).
    if let (Some(cluster), SessionKind::Watch) = (&state.cluster, kind) {
        if let ViewerPlacement::Elsewhere { node, public_url } = cluster.place_viewer(WhepAsk { relay, placed }) {
            return Ok(Negotiated::ToLighterNode { node, public_url });
        }
    }
    if let (Some(cluster), SessionKind::Publish) = (&state.cluster, kind) {
        match cluster.place_host(room).await {
            Ok(Placement::Here) => existing = Some(state.shows.claimed_here(room)?),
            Ok(Placement::Elsewhere { origin, public_url }) => return Ok(Negotiated::ToOrigin { origin, public_url }),
            Err(e) => return Err(SignalError::ClusterUnavailable(e)),
        }
    }
    let source = match kind {
        SessionKind::Watch => super::edge_watch::viewer_source(state, room, relay).await?,
        SessionKind::Publish => super::edge_watch::ViewerSource::Here,
    };
    // Held until the media plane answered: the room cannot be unloaded under this offer. On an
    // edge the room is the mirror of the origin's (`interaction::across_nodes`): only the
    // origin runs the room's show, so its stock and orders are never split between nodes.
    let show = match (existing, kind) {
        (Some(show), _) => show,
        (None, SessionKind::Publish) => state.shows.open(room)?,
        (None, SessionKind::Watch) => return Err(SignalError::RoomNotFound),
    };
    let ticket = state.admission.admit(room, client, kind)?;
    let (reply, answer) = oneshot::channel();
    let command = match plan {
        Some(plan) => Command::Publish { room: room.to_string(), identity, offer, plan, ticket, reply },
        None => Command::Watch { room: room.to_string(), identity, offer, relay, ticket, reply },
    };
    state.media.send(command).await.map_err(|_| SignalError::Unavailable)?;
    let answered = answer.await.map_err(|_| SignalError::Unavailable)??;
    super::edge_watch::pull(state, room, &source);
    drop(show);
    Ok(Negotiated::Answer(answered))
}

/// The room if it is loaded or the store knows it (a viewer may open the page before the
/// host goes live); `None` for a name no host created, with nothing loaded for it.
async fn existing_room(room: &str, state: &AppState) -> Result<Option<ShowHandle>, SignalError> {
    match state.shows.find(room).await {
        Ok(show) => Ok(Some(show)),
        Err(RoomLookup::NotFound) => Ok(None),
        Err(RoomLookup::Full) => Err(SignalError::Full(crate::admission::CapHit::Rooms)),
        Err(RoomLookup::Unavailable) => Err(SignalError::RoomUnavailable),
        Err(RoomLookup::ClusterUnavailable) => Err(SignalError::ClusterUnavailable(crate::cluster::PlacementError::Unreachable)),
    }
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
