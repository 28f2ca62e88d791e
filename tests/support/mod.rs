//! What the network tests share: a server on loopback, bounded waits, tokens and frames over
//! the HTTP API, and reading what a viewer's data channel received.

#![allow(dead_code)] // each test file uses its own part of this

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sellcast_peer::Viewer;
use serde_json::{json, Value};

/// The server with `media_threads` shards and its database in a fresh directory.
pub async fn server(media_threads: usize) -> Result<(sellcast_server::RunningServer, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let config = sellcast_server::Config { media_threads, ..sellcast_server::Config::local(dir.path().join("sellcast.db")) };
    Ok((sellcast_server::start(config).await?, dir))
}

/// One test of a file at a time: each runs a server and WebRTC peers, and two at once on a
/// 2-core machine starve the peers enough to blur what is being tested.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The whole test, bounded: a hang fails instead of stalling the suite.
pub async fn bounded(limit: Duration, test: impl Future<Output = Result<()>>) -> Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    tokio::time::timeout(limit, test).await.with_context(|| format!("the test did not finish within {limit:?}"))?
}

/// Poll `cond` every 20 ms until true or `limit` passes.
pub async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A room reached over the HTTP API with dev-mode tokens.
pub struct Api {
    pub base: String,
    pub room: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, room: &str) -> Api {
        Api { base: base.to_string(), room: room.to_string(), http: reqwest::Client::new() }
    }

    /// A dev-mode token for `identity` with `role` (viewer, moderator or host).
    pub async fn token(&self, role: &str, identity: &str) -> Result<String> {
        let url = format!("{}/api/dev/token?room={}&role={role}&identity={identity}", self.base, self.room);
        let v: Value = self.http.get(url).send().await?.error_for_status()?.json().await?;
        v["token"].as_str().map(String::from).context("no token in the answer")
    }

    /// POST one client frame as `token`; the frames the room answered the caller with.
    pub async fn frame(&self, token: &str, frame: &Value) -> Result<Vec<Value>> {
        let url = format!("{}/api/rooms/{}/frames", self.base, self.room);
        let answer = self.http.post(url).bearer_auth(token).body(frame.to_string()).send().await?;
        let status = answer.status();
        let body: Value = answer.json().await?;
        if !status.is_success() {
            bail!("frame {frame} refused with {status}: {body}");
        }
        Ok(body.as_array().cloned().unwrap_or_default())
    }

    /// POST one frame and fail if the room answered it with an error frame.
    pub async fn frame_ok(&self, token: &str, frame: &Value) -> Result<Vec<Value>> {
        let answer = self.frame(token, frame).await?;
        if let Some(e) = answer.iter().find(|f| f["type"] == "error") {
            bail!("frame {frame} answered with {e}");
        }
        Ok(answer)
    }

    /// Create a product as the host; its id.
    pub async fn product(&self, host: &str, title: &str, image_url: &str) -> Result<i64> {
        let url = format!("{}/api/rooms/{}/products", self.base, self.room);
        let body = json!({ "title": title, "price_minor": 1999, "currency": "EUR", "image_url": image_url, "stock": 100 });
        let v: Value = self.http.post(url).bearer_auth(host).json(&body).send().await?.error_for_status()?.json().await?;
        v["id"].as_i64().or_else(|| v["product"]["id"].as_i64()).with_context(|| format!("no product id in {v}"))
    }
}

/// Every frame the viewer's data channel received, parsed (unparsable ones are skipped).
pub fn parsed(v: &Viewer) -> Vec<Value> {
    v.frames().into_iter().filter_map(|(_, f)| serde_json::from_str(&f).ok()).collect()
}

/// Frames of one `type`.
pub fn of_type(v: &Viewer, kind: &str) -> Vec<Value> {
    parsed(v).into_iter().filter(|f| f["type"] == kind).collect()
}

/// Room events (the frames with a place in the log: `seq`, not a welcome or snapshot).
pub fn room_events(v: &Viewer) -> Vec<Value> {
    parsed(v).into_iter().filter(|f| f["seq"].is_u64() && f["type"] != "welcome" && f["type"] != "snapshot").collect()
}

pub fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().filter_map(|e| e["seq"].as_u64()).collect()
}

/// Wait until the viewer's channel is open and it was welcomed; the welcome.
pub async fn welcomed(v: &Viewer) -> Result<Value> {
    v.channel_ready(Duration::from_secs(10)).await?;
    until(Duration::from_secs(10), "a welcome", || !of_type(v, "welcome").is_empty()).await?;
    of_type(v, "welcome").into_iter().next().context("welcome")
}

/// Wall-clock milliseconds since the Unix epoch (what sale windows are written in).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// How many frames of each `type` from the `skip`-th on, in order of first arrival, for a
/// failure message.
pub fn kinds(v: &Viewer, skip: usize) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for f in parsed(v).iter().skip(skip) {
        let kind = f["type"].as_str().unwrap_or("?");
        match counts.iter_mut().find(|(k, _)| k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind.to_string(), 1)),
        }
    }
    counts
}
