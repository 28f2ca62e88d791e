//! A small client for Janus's HTTP API, enough to watch a Streaming plugin mountpoint: the
//! bench's adapter for running the same viewers against Janus.
//!
//! Janus signals the other way round from WHEP: the viewer asks to `watch`, Janus makes the
//! offer (delivered as an asynchronous event, read by long-polling the session), and the
//! viewer answers with `start`. A session dies after 60 s without a request, so a keepalive
//! task runs until the session is destroyed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::signalling::{bounded_body, PeerError};

/// Janus drops a session after 60 s without traffic; keep well inside that.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(20);
/// Bound on waiting for the offer: Janus answers `watch` at once when the mountpoint exists.
const OFFER_WAIT: Duration = Duration::from_secs(15);
/// Largest Janus reply read (an offer for two m-lines is a few KiB).
const MAX_REPLY: usize = 256 * 1024;

pub struct JanusSession {
    http: reqwest::Client,
    /// `{base}/{session}`.
    session_url: String,
    /// `{session_url}/{handle}`.
    handle_url: String,
    keepalive: tokio::task::JoinHandle<()>,
}

fn transaction() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// POST one request and return its reply, refusing a `"janus":"error"` one.
async fn request(http: &reqwest::Client, url: &str, mut body: Value) -> Result<Value, PeerError> {
    body["transaction"] = Value::String(transaction());
    let reply = read(http.post(url).json(&body).send().await?).await?;
    if reply["janus"] == "error" {
        return Err(PeerError::Refused {
            status: reply["error"]["code"].as_u64().unwrap_or(0) as u16,
            reason: reply["error"]["reason"].as_str().unwrap_or("").to_owned(),
        });
    }
    Ok(reply)
}

async fn read(resp: reqwest::Response) -> Result<Value, PeerError> {
    let body = bounded_body(resp, MAX_REPLY).await?;
    serde_json::from_slice(&body).map_err(|e| PeerError::Protocol(format!("Janus reply is not JSON: {e}")))
}

/// The numeric `data.id` of a create/attach reply.
fn id_of(reply: &Value) -> Result<u64, PeerError> {
    reply["data"]["id"].as_u64().ok_or_else(|| PeerError::Protocol(format!("no data.id in {reply}")))
}

impl JanusSession {
    /// Create a session on `base` (e.g. `http://127.0.0.1:8088/janus`) and attach the
    /// Streaming plugin.
    pub async fn attach_streaming(http: reqwest::Client, base: &str) -> Result<JanusSession, PeerError> {
        let session = id_of(&request(&http, base, json!({"janus": "create"})).await?)?;
        let session_url = format!("{base}/{session}");
        let handle = id_of(&request(&http, &session_url, json!({"janus": "attach", "plugin": "janus.plugin.streaming"})).await?)?;
        let keepalive = tokio::spawn({
            let (http, url) = (http.clone(), session_url.clone());
            async move {
                loop {
                    tokio::time::sleep(KEEPALIVE_EVERY).await;
                    if let Err(e) = request(&http, &url, json!({"janus": "keepalive"})).await {
                        tracing::warn!(error = %e, "Janus keepalive failed");
                    }
                }
            }
        });
        Ok(JanusSession { http, handle_url: format!("{session_url}/{handle}"), session_url, keepalive })
    }

    /// Ask to watch `mountpoint`; returns Janus's SDP offer.
    pub async fn watch(&self, mountpoint: u64) -> Result<String, PeerError> {
        request(&self.http, &self.handle_url, json!({"janus": "message", "body": {"request": "watch", "id": mountpoint}})).await?;
        let wait = async {
            loop {
                let event = read(self.http.get(format!("{}?maxev=1", self.session_url)).send().await?).await?;
                // A long poll may return a list of events or one.
                let events = match event {
                    Value::Array(list) => list,
                    one => vec![one],
                };
                for e in events {
                    if let Some(error) = e["plugindata"]["data"]["error"].as_str() {
                        return Err(PeerError::Refused { status: 0, reason: error.to_owned() });
                    }
                    if e["jsep"]["type"] == "offer" {
                        if let Some(sdp) = e["jsep"]["sdp"].as_str() {
                            return Ok(sdp.to_owned());
                        }
                    }
                }
            }
        };
        tokio::time::timeout(OFFER_WAIT, wait).await.map_err(|_| PeerError::Timeout("Janus offer"))?
    }

    /// Send the answer (all candidates inside, no trickle) and start the stream.
    pub async fn start(&self, answer: String) -> Result<(), PeerError> {
        let body = json!({
            "janus": "message",
            "body": {"request": "start"},
            "jsep": {"type": "answer", "sdp": answer, "trickle": false},
        });
        request(&self.http, &self.handle_url, body).await?;
        Ok(())
    }

    /// Destroy the session (which detaches the handle and hangs up its peer connection).
    pub async fn destroy(self) {
        self.keepalive.abort();
        if let Err(e) = request(&self.http, &self.session_url, json!({"janus": "destroy"})).await {
            tracing::warn!(error = %e, "destroying the Janus session failed");
        }
    }
}

impl Drop for JanusSession {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}
