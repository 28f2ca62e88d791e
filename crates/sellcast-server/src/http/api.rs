//! The JSON API beside WHIP/WHEP: dev tokens, product management for hosts, and frames over
//! HTTP (the same frames as the data channel, for tools and clients without WebRTC).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use sellcast_room::{Answer, ClientFrame, ErrorCode, Identity, Role};
use serde_json::json;
use tokio::sync::oneshot;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use super::error::SignalError;
use super::signalling::valid_room;
use super::{with_state, AppState};
use crate::auth::{now_secs, Claims};
use crate::interaction::messages::ShowMsg;
use crate::interaction::registry::{RoomLookup, ShowHandle};
use crate::interaction::room_api::{self, RoomApiReply, RoomApiRequest};

/// API bodies are small; frames have the same 16 KiB cap as on the data channel.
const MAX_API_BODY: u64 = 16 * 1024;

type Auth = Option<String>;

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let auth = warp::header::optional::<String>("authorization");
    let body = warp::body::content_length_limit(MAX_API_BODY).and(warp::body::bytes());

    let config = warp::path!("api" / "config")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|st: AppState| warp::reply::json(&json!({ "dev_mode": st.auth.dev_mode() })).into_response());
    let dev_token = warp::path!("api" / "dev" / "token")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state(state.clone()))
        .map(dev_token);
    let list = warp::path!("api" / "rooms" / String / "products")
        .and(warp::get())
        .and(with_state(state.clone()))
        .then(list_products);
    let origin = warp::path!("api" / "rooms" / String / "origin")
        .and(warp::get())
        .and(with_state(state.clone()))
        .then(room_origin);
    let show = warp::path!("api" / "rooms" / String / "show")
        .and(warp::get())
        .and(with_state(state.clone()))
        .then(show_info);
    let create = warp::path!("api" / "rooms" / String / "products")
        .and(warp::post())
        .and(auth)
        .and(body)
        .and(with_state(state.clone()))
        .then(|room, auth, body, st| catalog(room, auth, Some(body), None, st));
    let update = warp::path!("api" / "rooms" / String / "products" / i64)
        .and(warp::put())
        .and(auth)
        .and(body)
        .and(with_state(state.clone()))
        .then(|room, id, auth, body, st| catalog(room, auth, Some(body), Some(id), st));
    let delete = warp::path!("api" / "rooms" / String / "products" / i64)
        .and(warp::delete())
        .and(auth)
        .and(with_state(state.clone()))
        .then(|room, id, auth, st| catalog(room, auth, None, Some(id), st));
    let frames = warp::path!("api" / "rooms" / String / "frames")
        .and(warp::post())
        .and(auth)
        .and(body)
        .and(with_state(state.clone()))
        .then(post_frame);
    let bans = warp::path!("api" / "rooms" / String / "bans")
        .and(warp::get())
        .and(auth)
        .and(with_state(state.clone()))
        .then(list_bans);
    let orders = warp::path!("api" / "rooms" / String / "orders")
        .and(warp::get())
        .and(auth)
        .and(with_state(state.clone()))
        .then(list_orders);
    let my_orders = warp::path!("api" / "rooms" / String / "orders" / "mine")
        .and(warp::get())
        .and(auth)
        .and(with_state(state.clone()))
        .then(list_my_orders);
    let unban = warp::path!("api" / "rooms" / String / "bans" / String)
        .and(warp::delete())
        .and(auth)
        .and(with_state(state.clone()))
        .then(|room, identity, auth, st| lift(room, identity, auth, st, Lift::Ban));
    let unmute = warp::path!("api" / "rooms" / String / "mutes" / String)
        .and(warp::delete())
        .and(auth)
        .and(with_state(state))
        .then(|room, identity, auth, st| lift(room, identity, auth, st, Lift::Mute));

    config
        .or(dev_token)
        .unify()
        .or(list)
        .unify()
        .or(show)
        .unify()
        .or(origin)
        .unify()
        .or(create)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(frames)
        .unify()
        .or(bans)
        .unify()
        .or(orders)
        .unify()
        .or(my_orders)
        .unify()
        .or(unban)
        .unify()
        .or(unmute)
        .unify()
}

fn json_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "type": "error", "code": code, "message": message.into() });
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// The room's show task did not answer (it panicked with this call in hand, and is
/// restarting): a typed `unavailable` error. Nothing the call asked for was acknowledged; a
/// buy retried with the same idempotency key gets the store's one answer.
fn room_unavailable() -> Response {
    json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", SignalError::RoomUnavailable.to_string())
}

/// A reader's room: loaded, or known to the store; any other name is a 404 that loads nothing.
async fn existing_room(st: &AppState, room: &str) -> Result<ShowHandle, Response> {
    st.shows.find(room).await.map_err(lookup_error)
}

fn lookup_error(e: RoomLookup) -> Response {
    match e {
        RoomLookup::NotFound => json_error(StatusCode::NOT_FOUND, "not_found", SignalError::RoomNotFound.to_string()),
        RoomLookup::Full => SignalError::Full(crate::admission::CapHit::Rooms).into_response(),
        RoomLookup::Unavailable => room_unavailable(),
        RoomLookup::ClusterUnavailable => SignalError::ClusterUnavailable(crate::cluster::PlacementError::Unreachable).into_response(),
    }
}

/// A staff member's room (host or moderator): in cluster mode the mirror when another node
/// owns it, so the request reaches the owner; else the room here, opened (`create`: a host's
/// write creates the room) or got as before.
async fn staff_room(st: &AppState, room: &str, create: bool) -> Result<ShowHandle, Response> {
    match st.shows.mirror_if_owned_elsewhere(room).await {
        Ok(Some(mirror)) => Ok(mirror),
        Ok(None) if create => st.shows.open(room).map_err(|full| SignalError::Full(full).into_response()),
        Ok(None) => Ok(st.shows.get(room)),
        Err(e) => Err(lookup_error(e)),
    }
}

/// Seconds a caller waits before asking a mirror again when the room's owner did not answer.
const OWNER_RETRY_AFTER_SECS: u64 = 2;

/// A mirror's request got no answer from the room's owner (none is running the room, or it
/// did not answer within the mirror's deadline): `503` with `Retry-After`.
fn owner_unreachable() -> Response {
    let response = json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the room's node did not answer; try again");
    warp::reply::with_header(response, "retry-after", OWNER_RETRY_AFTER_SECS.to_string()).into_response()
}

/// `request` answered by the room: here by its show task, or, for a mirror, by the room's
/// owner (the same `room_api::answer` there), so both answer with the same status and body.
async fn ask_room(st: &AppState, room: &str, show: &ShowHandle, request: RoomApiRequest) -> Response {
    let reply = if show.mirrored {
        let (reply, answer) = oneshot::channel();
        if show.tx.send(ShowMsg::RoomApi { request, reply }).await.is_err() {
            return owner_unreachable();
        }
        match answer.await {
            Ok(reply) => reply,
            Err(_) => return owner_unreachable(),
        }
    } else {
        room_api::answer(&show.tx, st.shows.store(), room, request).await
    };
    api_reply(reply)
}

fn api_reply(reply: RoomApiReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    match reply.body {
        Some(body) => warp::reply::with_status(warp::reply::json(&body), status).into_response(),
        None => status.into_response(),
    }
}

/// Dev mode only: a token for any room and role, so the pages work without an identity provider.
fn dev_token(query: HashMap<String, String>, st: AppState) -> Response {
    if !st.auth.dev_mode() {
        return json_error(StatusCode::NOT_FOUND, "not_found", "dev tokens exist only in dev mode");
    }
    let room = query.get("room").cloned().unwrap_or_default();
    if !valid_room(&room) {
        return SignalError::BadRoomName.into_response();
    }
    let role = match query.get("role").map(String::as_str) {
        Some("host") => Role::Host,
        Some("moderator") => Role::Moderator,
        _ => Role::Viewer,
    };
    let mut tag = [0u8; 4];
    let _ = getrandom::fill(&mut tag);
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let name: String = query
        .get("name")
        .map(|n| n.chars().filter(|c| !c.is_control()).take(40).collect())
        .filter(|n: &String| !n.trim().is_empty())
        .unwrap_or_else(|| match role {
            // A host without a chosen name shows as the host, never as a guest.
            Role::Host => String::from("Host"),
            _ => format!("Guest {}", &tag[..4]),
        });
    let sub = query.get("identity").cloned().filter(|s| !s.is_empty()).unwrap_or_else(|| format!("guest-{tag}"));
    let claims = Claims { room: room.clone(), sub: sub.clone(), name: name.clone(), role, exp: now_secs() + 12 * 3600 };
    match st.auth.mint(&claims) {
        Ok(token) => warp::reply::json(&json!({ "token": token, "room": room, "identity": sub, "name": name, "role": role })).into_response(),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "unavailable", e.to_string()),
    }
}

async fn list_products(room: String, st: AppState) -> Response {
    if !valid_room(&room) {
        return SignalError::BadRoomName.into_response();
    }
    match existing_room(&st, &room).await {
        Ok(show) => ask_room(&st, &room, &show, RoomApiRequest::Products).await,
        Err(response) => response,
    }
}

/// The show's title, scheduled start, avatar and host name, for anyone (the watch page's
/// pre-show page, a merchant's page): `{"title","starts_at_ms","avatar_url","host_name","ended_at_ms"}`.
/// Like every read, an unknown room is a 404 that loads nothing.
async fn show_info(room: String, st: AppState) -> Response {
    if !valid_room(&room) {
        return SignalError::BadRoomName.into_response();
    }
    match existing_room(&st, &room).await {
        Ok(show) => ask_room(&st, &room, &show, RoomApiRequest::ShowInfo).await,
        Err(response) => response,
    }
}

/// Where a host of the room publishes: `{"origin": "<public URL>"}` when another node is the
/// room's origin, `{"origin": null}` when this node is, nobody is yet (the host's publish
/// here claims it), or there is no cluster. The host page asks before each publish, since a
/// browser following WHIP's 307 to another node drops the token on the way.
async fn room_origin(room: String, st: AppState) -> Response {
    if !valid_room(&room) {
        return SignalError::BadRoomName.into_response();
    }
    let Some(cluster) = &st.cluster else {
        return warp::reply::json(&json!({ "origin": null })).into_response();
    };
    match cluster.origin_elsewhere(&room).await {
        Ok(Some((node, public_url))) => warp::reply::json(&json!({ "origin": public_url, "node": node.as_str() })).into_response(),
        Ok(None) => warp::reply::json(&json!({ "origin": null })).into_response(),
        Err(e) => SignalError::ClusterUnavailable(e).into_response(),
    }
}

async fn catalog(room: String, auth: Auth, body: Option<Bytes>, id: Option<i64>, st: AppState) -> Response {
    if !valid_room(&room) {
        return SignalError::BadRoomName.into_response();
    }
    let who = match st.auth.verify(auth.as_deref(), &room, Role::Host) {
        Ok(who) => who,
        Err(e) => {
            tracing::info!(%room, error = %e, "product change refused");
            return SignalError::from(e).into_response();
        }
    };
    let body = match body.as_ref().map(room_api::body_text).transpose() {
        Ok(body) => body,
        Err(reply) => return api_reply(reply),
    };
    // A host's product write creates the room (on the owner, when another node owns it).
    let show = match staff_room(&st, &room, true).await {
        Ok(show) => show,
        Err(response) => return response,
    };
    ask_room(&st, &room, &show, RoomApiRequest::Catalog { identity: who, product_id: id, body }).await
}

/// One frame over HTTP, answered with the room's answer to it (for a buy or a host action,
/// after the store committed).
async fn post_frame(room: String, auth: Auth, body: Bytes, st: AppState) -> Response {
    if st.draining.is_on() {
        return crate::drain::refusal();
    }
    if !valid_room(&room) {
        return SignalError::BadRoomName.into_response();
    }
    let identity = match st.auth.verify(auth.as_deref(), &room, Role::Viewer) {
        Ok(who) => who,
        Err(e) => return SignalError::from(e).into_response(),
    };
    // A host's frame may create the room (its actions are writes; on the owner, when another
    // node owns it); anyone else's needs one.
    let show = if identity.role == Role::Host {
        staff_room(&st, &room, true).await
    } else {
        existing_room(&st, &room).await
    };
    let show = match show {
        Ok(show) => show,
        Err(response) => return response,
    };
    if let Err(e) = check_not_banned(&show, &identity).await {
        return e.into_response();
    }
    let frame = match ClientFrame::parse(&body) {
        Ok(f) => f,
        Err(e) => {
            let code = serde_json::to_value(e.code).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            return json_error(StatusCode::BAD_REQUEST, &code, e.message);
        }
    };
    let (reply, answer) = oneshot::channel();
    let msg = ShowMsg::Call { identity, frame, reply };
    if show.tx.send(msg).await.is_err() {
        return room_unavailable();
    }
    match answer.await {
        Ok(answer) => answer_response(&answer),
        Err(_) => room_unavailable(),
    }
}

/// The room's answer over HTTP: `200` with a JSON array of the frames a data channel would
/// have carried (`[]` for a frame that was taken; a refusal is an `error` frame in it).
fn answer_response(answer: &Answer) -> Response {
    let frames = answer.to_frames();
    let body = format!("[{}]", frames.iter().map(|f| f.as_ref()).collect::<Vec<_>>().join(","));
    warp::reply::with_header(body, "content-type", "application/json").into_response()
}

/// The bans in force, for the host and moderators: `{"bans":[{"identity","until_ms","by"}]}`.
async fn list_bans(room: String, auth: Auth, st: AppState) -> Response {
    if !valid_room(&room) {
        return SignalError::BadRoomName.into_response();
    }
    let who = match st.auth.verify(auth.as_deref(), &room, Role::Moderator) {
        Ok(who) => who,
        Err(e) => return SignalError::from(e).into_response(),
    };
    match staff_room(&st, &room, false).await {
        Ok(show) => ask_room(&st, &room, &show, RoomApiRequest::Bans { identity: who }).await,
        Err(response) => response,
    }
}

/// The room's recent orders (oldest first) and its totals over every order, for the host and
/// moderators: `{"orders":[...],"totals":{...}}`. The host console shows these figures as
/// they are, so its revenue is the sum of the orders whatever it saw or missed.
async fn list_orders(room: String, auth: Auth, st: AppState) -> Response {
    if !valid_room(&room) {
        return SignalError::BadRoomName.into_response();
    }
    let who = match st.auth.verify(auth.as_deref(), &room, Role::Moderator) {
        Ok(who) => who,
        Err(e) => return SignalError::from(e).into_response(),
    };
    match existing_room(&st, &room).await {
        Ok(show) => ask_room(&st, &room, &show, RoomApiRequest::Orders { identity: who }).await,
        Err(response) => response,
    }
}

/// The caller's own orders in `room`, newest first: `{"orders":[{order_id, sale_id,
/// product_id, title, variant_id, variant, qty, price_minor, currency, at_ms}]}`. Whose they
/// are comes from the caller's token, never from the request, so nobody reads another
/// buyer's orders.
async fn list_my_orders(room: String, auth: Auth, st: AppState) -> Response {
    if !valid_room(&room) {
        return SignalError::BadRoomName.into_response();
    }
    let who = match st.auth.verify(auth.as_deref(), &room, Role::Viewer) {
        Ok(who) => who,
        Err(e) => return SignalError::from(e).into_response(),
    };
    // The orders are in the owner's store: a mirror asks the owner.
    match st.shows.mirror_if_owned_elsewhere(&room).await {
        Ok(Some(mirror)) => ask_room(&st, &room, &mirror, RoomApiRequest::MyOrders { identity: who }).await,
        Ok(None) => api_reply(room_api::my_orders(st.shows.store(), &room, &who).await),
        Err(e) => lookup_error(e),
    }
}

/// What `DELETE` on a ban or a mute lifts.
#[derive(Clone, Copy)]
enum Lift {
    Ban,
    Mute,
}

/// Lift a ban or a mute: the `unban` / `unmute` frame as a call, so the room applies the same
/// role rules as on the data channel. `204` once done (an unban once the store committed it),
/// `403` `forbidden` / `not_permitted`, `404` `not_found` when there is none.
async fn lift(room: String, identity: String, auth: Auth, st: AppState, what: Lift) -> Response {
    if !valid_room(&room) {
        return SignalError::BadRoomName.into_response();
    }
    let who = match st.auth.verify(auth.as_deref(), &room, Role::Moderator) {
        Ok(who) => who,
        Err(e) => return SignalError::from(e).into_response(),
    };
    let Some(identity) = percent_decode(&identity) else {
        return json_error(StatusCode::BAD_REQUEST, "malformed", "the identity in the path is not valid percent-encoded UTF-8");
    };
    let frame = match what {
        Lift::Ban => ClientFrame::Unban { identity },
        Lift::Mute => ClientFrame::Unmute { identity },
    };
    match call(&st, &room, who, frame).await {
        Ok(Answer::Accepted) => StatusCode::NO_CONTENT.into_response(),
        Ok(Answer::Refused(e)) => {
            let status = match e.code {
                ErrorCode::Forbidden | ErrorCode::NotPermitted => StatusCode::FORBIDDEN,
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            let code = serde_json::to_value(e.code).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            json_error(status, &code, e.message)
        }
        Ok(other) => answer_response(&other),
        Err(response) => response,
    }
}

/// One frame to the room's show task as a call (through its mirror to the owner, when another
/// node owns the room), and its answer.
async fn call(st: &AppState, room: &str, identity: Identity, frame: ClientFrame) -> Result<Answer, Response> {
    let show = staff_room(st, room, false).await?;
    let (reply, answer) = oneshot::channel();
    let msg = ShowMsg::Call { identity, frame, reply };
    if show.tx.send(msg).await.is_err() {
        return Err(room_unavailable());
    }
    answer.await.map_err(|_| room_unavailable())
}

/// `%XX` escapes of a path segment decoded; `None` for a bad escape or invalid UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Longest a ban check waits for the room (a room restarting reloads its bans first).
const BAN_CHECK_LIMIT: Duration = Duration::from_secs(5);

/// Ask the room whether `who` is banned (bans are enforced when a session starts; a ban binds
/// only roles below the one that placed it). Fails closed: when the room cannot answer
/// (restarting, gone, or slower than `BAN_CHECK_LIMIT`), the caller is refused with
/// `RoomUnavailable` (503), never let in.
pub async fn check_not_banned(show: &ShowHandle, who: &Identity) -> Result<(), SignalError> {
    let (reply, answer) = oneshot::channel();
    let msg = ShowMsg::IsBanned { identity: who.id.clone(), role: who.role, reply };
    let asked = async {
        show.tx.send(msg).await.map_err(|_| SignalError::RoomUnavailable)?;
        answer.await.map_err(|_| SignalError::RoomUnavailable)
    };
    match tokio::time::timeout(BAN_CHECK_LIMIT, asked).await {
        Ok(Ok(false)) => Ok(()),
        Ok(Ok(true)) => Err(crate::auth::AuthError::Banned.into()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(SignalError::RoomUnavailable),
    }
}

