//! warp's built-in rejections (body too large, wrong method, no route) as plain-text answers.

use std::convert::Infallible;

use warp::http::StatusCode;
use warp::reject::{LengthRequired, MethodNotAllowed, PayloadTooLarge};
use warp::{Rejection, Reply};

pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    if let Some(super::Limited(wait)) = rejection.find::<super::Limited>() {
        return Ok(super::error::SignalError::RateLimited(*wait).into_response());
    }
    let (status, text) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not found")
    } else if rejection.find::<PayloadTooLarge>().is_some() {
        (StatusCode::PAYLOAD_TOO_LARGE, "body over 64 KiB")
    } else if rejection.find::<LengthRequired>().is_some() {
        (StatusCode::LENGTH_REQUIRED, "Content-Length required")
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else {
        tracing::debug!(?rejection, "request rejected");
        (StatusCode::BAD_REQUEST, "bad request")
    };
    Ok(warp::reply::with_status(format!("{text}\n"), status).into_response())
}
