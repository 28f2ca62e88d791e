//! WHIP/WHEP over HTTP: POST the offer, read the answer and the session URL.

use std::sync::OnceLock;
use std::time::Duration;

use thiserror::Error;

/// Bound on one WHIP/WHEP request (the server answers an offer at once).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Redirects of one offer followed before giving up (a cluster sends a host to its room's
/// origin: one hop).
const MAX_REDIRECTS: usize = 3;

/// One HTTP client for every peer in the process: building one loads the TLS roots, too much
/// per viewer when the bench runs hundreds. Idle connections are not pooled, so a request
/// never lands on a connection whose task died with another runtime (each test has its own).
/// Redirects are not followed by the client: [`exchange`] follows a WHIP/WHEP 307 itself,
/// because an HTTP client drops the `Authorization` header when a redirect changes the host.
pub fn http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap_or_else(|_| reqwest::Client::new())
        })
        .clone()
}

#[derive(Debug, Error)]
pub enum PeerError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the server refused the offer: {status} {reason}")]
    Refused { status: u16, reason: String },
    #[error("webrtc: {0}")]
    WebRtc(String),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    #[error("this viewer opened no data channel")]
    NoChannel,
}

impl From<webrtc::error::Error> for PeerError {
    fn from(e: webrtc::error::Error) -> Self {
        PeerError::WebRtc(e.to_string())
    }
}

/// Largest answer or error body read: an SDP answer for two m-lines is a few KiB.
const MAX_BODY: usize = 64 * 1024;

/// Read a response body, refusing one larger than `max` bytes.
pub(crate) async fn bounded_body(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, PeerError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > max {
            return Err(PeerError::Protocol(format!("response body over {max} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Read a response body as text, refusing one larger than `MAX_BODY`.
async fn bounded_text(resp: reqwest::Response) -> Result<String, PeerError> {
    Ok(String::from_utf8_lossy(&bounded_body(resp, MAX_BODY).await?).into_owned())
}

/// POST `offer` to `{base}/{endpoint}/{room}`; returns `(answer, absolute session URL)`.
pub async fn exchange(
    http: &reqwest::Client,
    base: &str,
    endpoint: &str,
    room: &str,
    token: Option<&str>,
    offer: String,
) -> Result<(String, String), PeerError> {
    let mut url = format!("{base}/{endpoint}/{room}");
    let mut hops = 0;
    let resp = loop {
        let mut req = http.post(&url).header("content-type", "application/sdp").body(offer.clone());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        // RFC 9725 §4.5: a 307 sends the same offer (with the same token) to another server.
        let redirected = matches!(resp.status().as_u16(), 307 | 308);
        let target = resp.headers().get("location").and_then(|l| l.to_str().ok()).map(|l| resp.url().join(l));
        match (redirected, target) {
            (true, Some(Ok(next))) if hops < MAX_REDIRECTS => {
                hops += 1;
                url = next.into();
            }
            (true, _) => return Err(PeerError::Protocol(format!("a redirect without a usable Location, or more than {MAX_REDIRECTS}"))),
            (false, _) => break resp,
        }
    };
    let status = resp.status().as_u16();
    // The Location is relative to the URL that answered.
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(|l| resp.url().join(l).map(String::from));
    let body = bounded_text(resp).await?;
    if status != 201 {
        return Err(PeerError::Refused { status, reason: body.trim().chars().take(200).collect() });
    }
    match location {
        Some(Ok(url)) => Ok((body, url)),
        Some(Err(e)) => Err(PeerError::Protocol(format!("unusable Location: {e}"))),
        None => Err(PeerError::Protocol("201 without a Location header".into())),
    }
}

/// DELETE the session; a failure is logged, as there is nothing left for the caller to do.
pub async fn end(http: &reqwest::Client, location: &str, token: Option<&str>) {
    let mut req = http.delete(location);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => {}
        Ok(resp) => tracing::warn!(%location, status = resp.status().as_u16(), "DELETE of the session refused"),
        Err(e) => tracing::warn!(%location, error = %e, "DELETE of the session failed"),
    }
}
