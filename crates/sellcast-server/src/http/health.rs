//! `GET /healthz`: each supervised part's state and restart count, as JSON. 200 when every
//! part is `ok`; 503 while any part is down, so a load balancer stops sending new sessions.

use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use super::{with_state, AppState};

pub fn route(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("healthz").and(warp::get()).and(with_state(state)).map(|st: AppState| {
        let report = st.supervision.report();
        let status = if report.ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        warp::reply::with_status(warp::reply::json(&report), status).into_response()
    })
}
