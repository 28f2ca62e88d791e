//! HTTP: WHIP and WHEP signalling, the room status API and the pages in `web/`.

mod api;
pub mod cluster;
pub mod connections;
pub mod cors;
mod edge_watch;
mod health;
pub mod media_stats;
pub mod offer_check;
pub mod pages;
pub mod error;
pub mod forwarded;
pub mod metrics;
pub mod rate_limit;
mod rejection;
mod room_nodes;
pub mod security_headers;
mod signalling;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::Uri;
use warp::{Filter, Rejection, Reply};

use crate::admission::Admission;
use crate::auth::Auth;
use crate::interaction::registry::ShowRegistry;
use crate::media::router::MediaRouter;
use crate::media::status_board::StatusBoard;
use crate::media::offer::{CodecPolicy, SessionKind};
use crate::metrics::Metrics;

/// Largest SDP body accepted (RFC 9725 leaves it to the server; real offers are 3-10 KiB).
pub const MAX_SDP_BYTES: u64 = 64 * 1024;

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    /// Reaches the media shards (offers, session ends).
    pub media: MediaRouter,
    pub status_board: Arc<StatusBoard>,
    /// The pages: built in, or `--web-dir`.
    pub pages: pages::Pages,
    pub auth: Arc<Auth>,
    pub shows: Arc<ShowRegistry>,
    /// The server's `--video-codec`, for rooms whose host names none.
    pub video_codec: CodecPolicy,
    /// On once the server drains: calls that would start a session are refused.
    pub draining: Arc<crate::drain::Draining>,
    /// What `/metrics` serves, and the bearer token it asks for on this port (`None`: off here).
    pub metrics: Arc<Metrics>,
    pub metrics_token: Option<Arc<str>>,
    /// Supervised restarts per part and what is down now (`/healthz`; metrics).
    pub supervision: Arc<crate::supervision::Supervision>,
    /// Session caps; each admitted session's ticket travels with its offer to the peer.
    pub admission: Arc<Admission>,
    /// Per-client rate limits on signalling and the API.
    pub rate_limits: Arc<rate_limit::RateLimiters>,
    /// Origins allowed to call the player's endpoints and to frame the embed page.
    pub cors: Arc<cors::AllowedOrigins>,
    /// This node's cluster membership (`--cluster`); `None` on a single node.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Pulls rooms whose origin is another node for the viewers here (`media::cascade`).
    pub cascade: Option<crate::media::cascade::CascadeHub>,
}

use connections::client_addr;

/// Over its rate limit, a request is refused before anything else is looked at.
#[derive(Debug)]
pub(crate) struct Limited(pub std::time::Duration);

impl warp::reject::Reject for Limited {}

/// Counts each request against its client's rate limit (a refusal is answered after
/// [`rate_limit::REFUSAL_HOLD`]): WHIP and WHEP offers against
/// signalling, `/api/...` and session `DELETE`s against the API; pages, `/metrics` and
/// `/healthz` are not limited. A `DELETE` only frees what an offer took, so it is not held to
/// the offers' small budget: a page that reconnects ends its old session and offers anew, and
/// many viewers behind one address (a venue's Wi-Fi) may leave at once.
fn rate_gate(state: &AppState) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    let (limiters, metrics) = (state.rate_limits.clone(), state.metrics.clone());
    warp::path::peek()
        .and(warp::method())
        .and(client_addr())
        .and_then(move |path: warp::path::Peek, method: warp::http::Method, client: Option<SocketAddr>| {
            let bucket = match path.segments().next() {
                Some("whip" | "whep") if method != warp::http::Method::DELETE => Some(rate_limit::Bucket::Signalling),
                Some("whip" | "whep" | "api") => Some(rate_limit::Bucket::Api),
                _ => None,
            };
            let hold = limiters.refusal_hold();
            let verdict = match bucket.map(|b| (b, limiters.check(b, client))) {
                Some((bucket, Err(wait))) => {
                    metrics.rate_limited(bucket);
                    tracing::debug!(?client, ?bucket, ?wait, "rate limited");
                    Err(wait)
                }
                _ => Ok(()),
            };
            async move {
                match verdict {
                    Ok(()) => Ok(()),
                    Err(wait) => {
                        tokio::time::sleep(hold).await;
                        Err(warp::reject::custom(Limited(wait)))
                    }
                }
            }
        })
        .untuple_one()
}

/// The request's `Origin`, when it has a readable one.
fn origin_of(headers: &warp::http::HeaderMap) -> Option<&str> {
    headers.get(warp::http::header::ORIGIN).and_then(|v| v.to_str().ok())
}

fn with_state(
    state: AppState,
) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

pub fn routes(state: AppState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let pages = pages::routes(state.pages.clone());
    let state_for_gate = state.clone();
    let allowed = state.cors.clone();
    // Not `warp::options()`: its refusal of other methods is a 405, which warp ranks above the
    // 404 of every route after it, so a GET of a missing file would answer 405.
    let preflight = warp::method()
        .and_then(|method: warp::http::Method| {
            std::future::ready(if method == warp::http::Method::OPTIONS { Ok(()) } else { Err(warp::reject::not_found()) })
        })
        .untuple_one()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and_then(move |path: warp::path::FullPath, headers: warp::http::HeaderMap| {
            let answer = allowed.open_methods(path.as_str())
                .map(|_| cors::preflight(&allowed, path.as_str(), origin_of(&headers)))
                .ok_or_else(warp::reject::not_found);
            std::future::ready(answer)
        });
    let sdp_body = warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<String>("authorization"))
        .map(|ct, auth| (ct, auth))
        .and(warp::body::content_length_limit(MAX_SDP_BYTES))
        .and(warp::body::bytes());

    // `?codec=vp8|h264|auto` lets a host choose the room's video codec.
    let whip_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let whip = warp::path!("whip" / String)
        .and(warp::post())
        .and(whip_query)
        .and(sdp_body)
        .and(with_state(state.clone()))
        .and(client_addr())
        .then(|room, query: String, ct, body, st, client| signalling::offer(SessionKind::Publish, room, query, ct, body, (st, client)))
        .or_else(signalling::count_too_large(SessionKind::Publish, state.metrics.clone()));
    // `?relay`: another node pulls the room (`media::cascade`), with a relay token.
    let whep_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let whep = warp::path!("whep" / String)
        .and(warp::post())
        .and(whep_query)
        .and(sdp_body)
        .and(with_state(state.clone()))
        .and(client_addr())
        .then(|room, query: String, ct, body, st, client| signalling::offer(SessionKind::Watch, room, query, ct, body, (st, client)))
        .or_else(signalling::count_too_large(SessionKind::Watch, state.metrics.clone()));
    let whip_end = warp::path!("whip" / String / String)
        .and(warp::delete())
        .and(with_state(state.clone()))
        .then(|room, session, st| signalling::end(SessionKind::Publish, room, session, st));
    let whep_end = warp::path!("whep" / String / String)
        .and(warp::delete())
        .and(with_state(state.clone()))
        .then(|room, session, st| signalling::end(SessionKind::Watch, room, session, st));
    // Trickle ICE is not needed against an ICE-lite server: say so as RFC 9725 asks.
    let no_trickle = warp::path!(String / String / String)
        .and(warp::patch())
        .map(|_, _, _| {
            warp::reply::with_status("trickle ICE is not supported\n", warp::http::StatusCode::METHOD_NOT_ALLOWED)
        });

    let api = api::routes(state.clone());
    let metrics = metrics::guarded(state.metrics.clone(), state.metrics_token.clone());
    let status = warp::path!("api" / "rooms" / String)
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|room: String, st: AppState| warp::reply::json(&st.status_board.status(&room)));
    // The store's durability settings as SQLite reports them, and its writer's counters.
    let store_stats = warp::path!("api" / "stats" / "store")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|st: AppState| {
            let store = st.shows.store().inner();
            warp::reply::json(&serde_json::json!({ "durability": store.durability(), "writer": store.writer_stats() }))
        });
    let health = health::route(state.clone());
    let cluster = cluster::routes(state.clone()).or(room_nodes::route(state.clone()));
    let media_stats = warp::path!("api" / "stats" / "media")
        .and(warp::get())
        .and(with_state(state))
        .map(|st: AppState| {
            let mut report = media_stats::report(&st.status_board.media_stats(), &st.status_board.media_by_shard());
            report.tcp = st.status_board.tcp.report();
            warp::reply::json(&report)
        });

    let gate = rate_gate(&state_for_gate);
    let root = warp::path::end()
        .and(warp::get())
        .map(|| warp::redirect::see_other(Uri::from_static("/host/demo")));

    let allowed = state_for_gate.cors.clone();
    let inner = preflight.or(gate.and(
        whip.or(whep)
        .or(whip_end)
        .or(whep_end)
        .or(no_trickle)
        .or(media_stats)
        .or(store_stats)
        .or(cluster)
        .or(metrics)
        .or(api)
        .or(status)
        .or(pages)
        .or(root)
        .or(health)))
        .recover(rejection::recover)
        .with(warp::reply::with::headers(security_headers::all()));
    // CORS and the embed page's framing policy depend on the request's path and origin.
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(inner)
        .map(move |method: warp::http::Method, path: warp::path::FullPath, headers: warp::http::HeaderMap, reply| {
            let response = cors::decorate(&allowed, &method, path.as_str(), origin_of(&headers), Reply::into_response(reply));
            let response = security_headers::frame_policy(path.as_str(), &allowed, response);
            security_headers::connect_to_nodes(&allowed.node_origins(), response)
        })
        .with(warp::log::custom(|info| {
            tracing::debug!(method = %info.method(), path = info.path(), status = info.status().as_u16(), "http");
        }))
}
