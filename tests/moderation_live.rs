//! Moderation reaching live viewers over real data channels (webrtc-rs viewers): a deleted
//! chat line reaches the others as `chat_deleted`, and a banned viewer who is watching is
//! kicked off (its session ends, it hears nothing more) and refused at its next WHEP with 403.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sellcast_peer::Viewer;
use serde_json::{json, Value};

const ROOM: &str = "kick";

fn parsed(v: &Viewer) -> Vec<Value> {
    v.frames().into_iter().filter_map(|(_, f)| serde_json::from_str(&f).ok()).collect()
}

async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    async fn token(&self, role: &str, identity: &str) -> Result<String> {
        let v: Value = self
            .client
            .get(format!("{}/api/dev/token", self.base))
            .query(&[("room", ROOM), ("role", role), ("identity", identity)])
            .send()
            .await?
            .json()
            .await?;
        Ok(v["token"].as_str().context("token")?.to_string())
    }

    async fn frame(&self, token: &str, frame: &Value) -> Result<Vec<Value>> {
        let url = format!("{}/api/rooms/{ROOM}/frames", self.base);
        let frames: Vec<Value> = self.client.post(url).bearer_auth(token).json(frame).send().await?.json().await?;
        if let Some(e) = frames.iter().find(|f| f["type"] == "error") {
            bail!("{frame} refused: {e}");
        }
        Ok(frames)
    }

    async fn viewers(&self) -> Result<u64> {
        let status: Value = self.client.get(format!("{}/api/rooms/{ROOM}", self.base)).send().await?.json().await?;
        status["viewers"].as_u64().context("viewers")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_line_reaches_others_and_a_banned_live_viewer_is_kicked() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = sellcast_server::start(sellcast_server::Config::local(dir.path().join("db.sqlite"))).await?;
    let http = Http { client: reqwest::Client::new(), base: format!("http://{}", server.http_addr) };
    server.open_room(ROOM)?;
    let host = http.token("host", "hana").await?;
    let ann_token = http.token("viewer", "ann").await?;
    let ann = Viewer::connect_with(&http.base, ROOM, Some(ann_token.clone()), true).await?;
    let bob = Viewer::connect_with(&http.base, ROOM, Some(http.token("viewer", "bob").await?), true).await?;
    for v in [&ann, &bob] {
        v.channel_ready(Duration::from_secs(10)).await?;
    }
    until(Duration::from_secs(10), "welcomes", || [&ann, &bob].iter().all(|v| parsed(v).iter().any(|f| f["type"] == "welcome"))).await?;

    // ann chats; the host deletes the line; bob is told which line went.
    ann.send(r#"{"type":"chat","text":"buy elsewhere"}"#).await?;
    let line = |v: &Viewer| parsed(v).into_iter().find(|f| f["type"] == "chat" && f["text"] == "buy elsewhere");
    until(Duration::from_secs(10), "bob sees ann's line", || line(&bob).is_some()).await?;
    let seq = line(&bob).and_then(|f| f["seq"].as_u64()).context("chat seq")?;
    http.frame(&host, &json!({"type": "delete_message", "seq": seq})).await?;
    let deleted = |v: &Viewer| parsed(v).iter().any(|f| f["type"] == "chat_deleted" && f["target_seq"] == seq);
    until(Duration::from_secs(10), "chat_deleted reaches bob and ann", || deleted(&bob) && deleted(&ann)).await?;

    // The host bans ann while she watches: her session ends, and only bob is left.
    assert_eq!(http.viewers().await?, 2);
    http.frame(&host, &json!({"type": "ban", "identity": "ann"})).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.viewers().await? != 1 {
        anyhow::ensure!(Instant::now() < deadline, "ann was never kicked: {} viewers", http.viewers().await?);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bob.send(r#"{"type":"chat","text":"after the ban"}"#).await?;
    let said = |v: &Viewer| parsed(v).iter().any(|f| f["type"] == "chat" && f["text"] == "after the ban");
    until(Duration::from_secs(10), "bob's chat reaches bob", || said(&bob)).await?;
    assert!(!said(&ann), "the kicked viewer still receives the room");

    // Her next WHEP is refused as banned.
    let retry = http
        .client
        .post(format!("{}/whep/{ROOM}", http.base))
        .bearer_auth(&ann_token)
        .header("content-type", "application/sdp")
        .body("v=0")
        .send()
        .await?;
    assert_eq!(retry.status().as_u16(), 403);
    assert!(retry.text().await?.contains("banned"));
    ann.close().await;
    bob.close().await;
    server.shutdown().await;
    Ok(())
}
