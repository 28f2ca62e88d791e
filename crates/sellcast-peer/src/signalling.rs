//! WHIP/WHEP over HTTP: POST the offer, read the answer and the session URL.

use thiserror::Error;

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
}

impl From<webrtc::error::Error> for PeerError {
    fn from(e: webrtc::error::Error) -> Self {
        PeerError::WebRtc(e.to_string())
    }
}

/// POST `offer` to `{base}/{endpoint}/{room}`; returns `(answer, absolute session URL)`.
pub async fn exchange(
    http: &reqwest::Client,
    base: &str,
    endpoint: &str,
    room: &str,
    token: Option<&str>,
    offer: String,
) -> Result<(String, Option<String>), PeerError> {
    let mut req = http
        .post(format!("{base}/{endpoint}/{room}"))
        .header("content-type", "application/sdp")
        .body(offer);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(|l| if l.starts_with('/') { format!("{base}{l}") } else { l.to_string() });
    let body = resp.text().await?;
    if status != 201 {
        return Err(PeerError::Refused { status, reason: body.trim().to_string() });
    }
    Ok((body, location))
}

pub async fn end(http: &reqwest::Client, location: Option<&str>, token: Option<&str>) {
    if let Some(url) = location {
        let mut req = http.delete(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let _ = req.send().await;
    }
}
