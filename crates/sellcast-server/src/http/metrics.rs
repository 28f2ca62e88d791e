//! `GET /metrics` over HTTP: on the public port for a scraper holding the bearer token
//! (`--metrics-token`), and on the `--admin` listener, which is meant for a private address,
//! without one.

use std::convert::Infallible;
use std::sync::Arc;

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::metrics::Metrics;

/// The public port's route. Without a configured token it answers 404 and says how to turn
/// metrics on; with one, a request without that exact bearer token gets 401.
pub fn guarded(
    metrics: Arc<Metrics>,
    token: Option<Arc<str>>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .map(move |authorization: Option<String>| {
            let off = "metrics are off on this port: start with --metrics-token (or scrape the --admin listener)\n";
            match operator_refusal(token.as_deref(), authorization.as_deref(), off) {
                Some(refusal) => refusal,
                None => exposition(&metrics),
            }
        })
}

/// The operator endpoints on the public port (`/metrics`, `/api/cluster/nodes`) take the
/// `--metrics-token` bearer token. `None` lets the request through; otherwise the answer: 404
/// with `off` when no token is configured, 401 when the request lacks that exact token.
pub(crate) fn operator_refusal(token: Option<&str>, authorization: Option<&str>, off: &'static str) -> Option<Response> {
    let Some(token) = token else {
        return Some(warp::reply::with_status(off, StatusCode::NOT_FOUND).into_response());
    };
    let presented = authorization.and_then(|a| a.strip_prefix("Bearer "));
    if presented.is_some_and(|p| same_secret(p.trim().as_bytes(), token.as_bytes())) {
        return None;
    }
    let mut response = warp::reply::with_status("a valid metrics bearer token is required\n", StatusCode::UNAUTHORIZED).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}

/// The `--admin` listener's routes: `/metrics` and `/api/cluster/nodes` without a token, and
/// `/healthz`.
pub fn admin(
    metrics: Arc<Metrics>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let scrape = warp::path!("metrics").and(warp::get()).map(move || exposition(&metrics));
    let health = warp::path!("healthz").map(|| "ok\n".into_response());
    let nodes = warp::path!("api" / "cluster" / "nodes")
        .and(warp::get())
        .then(move || super::cluster::list_nodes(cluster.clone()));
    scrape
        .or(health)
        .unify()
        .or(nodes)
        .unify()
        .or(warp::any().map(|| warp::reply::with_status("not found\n", StatusCode::NOT_FOUND).into_response()))
        .unify()
}

fn exposition(metrics: &Metrics) -> Response {
    let reply = warp::reply::with_header(metrics.render(), header::CONTENT_TYPE, prometheus::TEXT_FORMAT);
    reply.into_response()
}

/// Compares every byte whatever the first difference, so the answer time says nothing about
/// how much of the token a guess got right.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len() && presented.iter().zip(expected).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn only_the_exact_token_matches() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3creT", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }
}
