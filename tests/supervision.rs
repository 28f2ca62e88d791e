//! Supervision: a panic injected (through the server's `test-hooks`) into a room task, a
//! media shard or the store writer while a room is live. The show goes on and nothing is
//! lost: the part is restarted, `/healthz` reports it down (503) until it is back (200), and
//! the room's viewers, media and orders carry on.

mod support;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use sellcast_peer::{PeerError, PublishOptions, Publisher, Viewer, ViewerOptions};
use sellcast_server::test_hooks::StorePanic;
use sellcast_server::RunningServer;
use serde_json::{json, Value};
use support::{bounded, now_ms, of_type, room_events, until, welcomed, Api};

fn with_channel(token: Option<String>) -> ViewerOptions {
    ViewerOptions { data_channel: true, token, ..ViewerOptions::default() }
}

/// `/healthz` as (status code, body).
async fn health(base: &str) -> Result<(u16, Value)> {
    let r = reqwest::get(format!("{base}/healthz")).await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await?))
}

/// Poll `/healthz` until `want` holds for its (status, body), or fail after `limit`.
async fn health_until(base: &str, limit: Duration, what: &str, want: impl Fn(u16, &Value) -> bool) -> Result<Value> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let (status, body) = health(base).await?;
        if want(status, &body) {
            return Ok(body);
        }
        if std::time::Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for /healthz: {what}; last {status} {body}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Start a sale of `product` (stock 100, 10 per buyer) now; its id.
async fn start_sale(api: &Api, host: &str, product: i64) -> Result<i64> {
    let now = now_ms();
    let frame = json!({ "type": "start_sale", "product_id": product, "price_minor": 990, "stock": 100,
        "per_user_limit": 10, "starts_at_ms": now - 1000, "ends_at_ms": now + 3_600_000 });
    api.frame_ok(host, &frame).await?;
    let url = format!("{}/api/rooms/{}/products", api.base, api.room);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v: Value = reqwest::get(&url).await?.json().await?;
        let sale = v["sales"].as_array().and_then(|s| s.iter().find(|s| s["product_id"] == product)).and_then(|s| s["id"].as_i64());
        if let Some(id) = sale {
            return Ok(id);
        }
        if std::time::Instant::now() > deadline {
            bail!("the sale never appeared: {v}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A buy over the HTTP API: the status and the frames answered.
async fn buy(api: &Api, token: &str, sale: i64, key: &str) -> Result<(u16, Vec<Value>)> {
    let url = format!("{}/api/rooms/{}/frames", api.base, api.room);
    let frame = json!({ "type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": key });
    let r = reqwest::Client::new().post(url).bearer_auth(token).body(frame.to_string()).send().await?;
    let status = r.status().as_u16();
    let body: Value = r.json().await?;
    let frames = match body {
        Value::Array(frames) => frames,
        other => vec![other],
    };
    Ok((status, frames))
}

fn confirmed_order(frames: &[Value]) -> Option<i64> {
    frames.iter().find(|f| f["type"] == "order_confirmed").and_then(|f| f["order_id"].as_i64())
}

fn is_unavailable(frames: &[Value]) -> bool {
    frames.iter().any(|f| f["type"] == "error" && f["code"] == "unavailable")
}

/// A WHEP offer's status (201 when a session was made; the session is ended at once).
async fn whep_status(base: &str, room: &str, token: &str) -> Result<u16> {
    match Viewer::connect(base, room, with_channel(Some(token.to_string()))).await {
        Ok(v) => {
            v.close().await;
            Ok(201)
        }
        Err(PeerError::Refused { status, .. }) => Ok(status),
        Err(e) => bail!("WHEP failed for another reason: {e}"),
    }
}

fn server_base(server: &RunningServer) -> String {
    format!("http://{}", server.http_addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_show_task_panic_restarts_the_room_from_the_store_and_its_viewers_resync() -> Result<()> {
    bounded(Duration::from_secs(90), async {
        let (server, _dir) = support::server(1).await?;
        let base = server_base(&server);
        let api = Api::new(&base, "phoenix");
        let host = api.token("host", "the-host").await?;
        let product = api.product(&host, "Lamp", "").await?;
        let mallory = api.token("viewer", "mallory").await?;
        api.frame_ok(&host, &json!({ "type": "ban", "identity": "mallory" })).await?;
        let viewer = Viewer::connect(&base, "phoenix", with_channel(None)).await?;
        let first_welcome = welcomed(&viewer).await?;
        api.frame_ok(&host, &json!({ "type": "pin", "product_ids": [product] })).await?;
        until(Duration::from_secs(10), "the pin reaches the viewer", || !of_type(&viewer, "pinned").is_empty()).await?;
        assert_eq!(health(&base).await?.0, 200, "healthy before the panic");

        let release = server.test_hooks().panic_room("phoenix", true).await;
        let down = health_until(&base, Duration::from_secs(10), "the show task reported down", |s, b| {
            s == 503 && b["show_tasks"]["status"] == "degraded"
        })
        .await?;
        assert_eq!(down["show_tasks"]["restarts"], 1, "{down}");
        // Fail closed: while the room cannot answer a ban check, nobody is let in.
        let guest = api.token("viewer", "guest-while-down").await?;
        assert_eq!(whep_status(&base, "phoenix", &guest).await?, 503, "a ban check the room cannot answer refuses");
        drop(release);

        health_until(&base, Duration::from_secs(10), "healthy again", |s, b| s == 200 && b["show_tasks"]["down"] == 0).await?;
        // The viewer's channel was joined to the new room task: a new welcome and a snapshot.
        until(Duration::from_secs(10), "a second welcome and a snapshot", || {
            of_type(&viewer, "welcome").len() >= 2 && of_type(&viewer, "snapshot").len() >= 2
        })
        .await?;
        let welcome = of_type(&viewer, "welcome").pop().context("welcome")?;
        let snapshot = of_type(&viewer, "snapshot").pop().context("snapshot")?;
        assert_ne!(welcome["epoch"], first_welcome["epoch"], "the restarted room has a new epoch");
        assert_eq!(welcome["resumed"], false, "{welcome}");
        assert_eq!(snapshot["epoch"], welcome["epoch"]);
        assert_eq!(snapshot["pinned"], json!([product]), "the room came back from the store: {snapshot}");

        // The show goes on: new events reach the viewer in the new epoch.
        api.frame_ok(&host, &json!({ "type": "chat", "text": "still here" })).await?;
        until(Duration::from_secs(10), "a chat line in the new epoch", || {
            room_events(&viewer).iter().any(|e| e["type"] == "chat" && e["epoch"] == welcome["epoch"])
        })
        .await?;
        // Bans came back with the room; everyone else gets in again.
        assert_eq!(whep_status(&base, "phoenix", &mallory).await?, 403, "a ban survives the restart");
        assert_eq!(whep_status(&base, "phoenix", &guest).await?, 201);
        viewer.close().await;
        server.shutdown().await;
        Ok(())
    })
    .await
}

/// Every viewer in `viewers` receives new video (more packets than `before[i]`).
async fn all_receive_more(viewers: &[&Viewer], what: &str) -> Result<()> {
    let before: Vec<u64> = viewers.iter().map(|v| v.inspect(|s| s.video.packets)).collect();
    until(Duration::from_secs(20), what, || viewers.iter().zip(&before).all(|(v, b)| v.inspect(|s| s.video.packets) > *b + 10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_panic_closes_its_peers_and_the_show_goes_on_on_live_shards() -> Result<()> {
    bounded(Duration::from_secs(150), async {
        let (server, _dir) = support::server(2).await?;
        let base = server_base(&server);
        let room = "shardfall";
        let home = sellcast_server::media::router::home_shard(room, 2).0;
        let other = 1 - home;
        let publisher = Publisher::connect(&base, room, PublishOptions::default()).await?;
        // Viewers are dealt round robin: one on each shard.
        let a = Viewer::connect(&base, room, with_channel(None)).await?;
        let b = Viewer::connect(&base, room, with_channel(None)).await?;
        all_receive_more(&[&a, &b], "both viewers receive video").await?;
        until(Duration::from_secs(10), "two viewers counted", || server.status_board.status(room).viewers == 2).await?;

        // The shard without the host dies: its viewer's session ends, the other keeps watching.
        let release = server.test_hooks().panic_shard(other, true).await;
        let down = health_until(&base, Duration::from_secs(10), "the shard reported down", |s, b| {
            s == 503 && b["media_shards"]["down"] == 1
        })
        .await?;
        assert_eq!(down["media_shards"]["status"], "degraded", "{down}");
        until(Duration::from_secs(10), "the dead shard's viewer is gone", || server.status_board.status(room).viewers == 1).await?;
        drop(release);
        health_until(&base, Duration::from_secs(10), "healthy again", |s, b| s == 200 && b["media_shards"]["restarts"] == 1).await?;
        let (lost, survivor) = if shard_of(&a)? == other { (a, b) } else { (b, a) };
        assert_eq!(shard_of(&lost)?, other, "one viewer sat on each shard");
        assert_eq!(end_session(&lost).await?, 404, "the dead shard's session is gone");
        all_receive_more(&[&survivor], "the viewer on the live shard keeps receiving").await?;
        // New viewers land on both shards, the restarted one included, and get media: the
        // restarted shard mirrors the host's room again.
        let c = Viewer::connect(&base, room, with_channel(None)).await?;
        let d = Viewer::connect(&base, room, with_channel(None)).await?;
        all_receive_more(&[&c, &d], "new viewers on both shards receive video").await?;

        // The host's shard dies: the host is closed; it reconnects on the restarted shard and
        // every viewer on the other shard gets its video again.
        let _ = server.test_hooks().panic_shard(home, false).await;
        health_until(&base, Duration::from_secs(10), "the home shard restarted", |s, b| s == 200 && b["media_shards"]["restarts"] == 2).await?;
        until(Duration::from_secs(10), "the room is not live", || !server.status_board.status(room).live).await?;
        let host_again = Publisher::connect(&base, room, PublishOptions::default()).await?;
        let mut on_other = Vec::new();
        for v in [&survivor, &c, &d] {
            if shard_of(v)? == other {
                on_other.push(v);
            }
        }
        assert!(!on_other.is_empty(), "some viewer sat on the shard that did not die");
        all_receive_more(&on_other, "viewers on the live shard receive the returned host").await?;
        host_again.close().await;
        publisher.close().await;
        for v in [survivor, lost, c, d] {
            v.close().await;
        }
        server.shutdown().await;
        Ok(())
    })
    .await
}

/// The shard a viewer's session lives on (its session id starts with it).
fn shard_of(v: &Viewer) -> Result<usize> {
    let url = v.session_url().context("a WHEP session")?;
    let session = url.rsplit('/').next().context("a session id")?;
    Ok(sellcast_server::media::router::session_shard(session).context("a shard in the session id")?.0)
}

/// `DELETE` on the viewer's session URL; the status.
async fn end_session(v: &Viewer) -> Result<u16> {
    let url = v.session_url().context("a WHEP session")?;
    Ok(reqwest::Client::new().delete(url).send().await?.status().as_u16())
}

/// Orders in SQLite with this idempotency key, read by a second connection.
fn orders_with_key(db: &std::path::Path, key: &str) -> Result<Vec<i64>> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare("SELECT id FROM orders WHERE idempotency_key = ?1")?;
    let ids = stmt.query_map([key], |r| r.get(0))?.collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_writer_panic_loses_no_order_and_a_retried_key_makes_exactly_one() -> Result<()> {
    bounded(Duration::from_secs(90), async {
        let (server, dir) = support::server(1).await?;
        let db = dir.path().join("sellcast.db");
        let base = server_base(&server);
        let api = Api::new(&base, "till");
        let host = api.token("host", "the-host").await?;
        let product = api.product(&host, "Mug", "").await?;
        let sale = start_sale(&api, &host, product).await?;
        let buyer = api.token("viewer", "buyer").await?;
        let mut acknowledged = Vec::new();
        for key in ["before-1", "before-2"] {
            let (_, frames) = buy(&api, &buyer, sale, key).await?;
            acknowledged.push((key, confirmed_order(&frames).with_context(|| format!("{key}: {frames:?}"))?));
        }

        // The writer dies after committing a batch and before answering it: its buyer hears
        // `unavailable` although the order is durable.
        let release = server.test_hooks().panic_store(StorePanic::AfterCommit, true);
        let (status, frames) = buy(&api, &buyer, sale, "in-flight").await?;
        assert_eq!(status, 200, "{frames:?}");
        assert!(is_unavailable(&frames), "the buy in hand is answered unavailable: {frames:?}");
        let down = health_until(&base, Duration::from_secs(10), "the store reported restarting", |s, b| {
            s == 503 && b["store"]["status"] == "restarting"
        })
        .await?;
        assert_eq!(down["store"]["restarts"], 1, "{down}");
        // A buy sent while the writer is down waits in its queue and is served after the restart.
        let queued = {
            let (api, buyer) = (Api::new(&base, "till"), buyer.clone());
            tokio::spawn(async move { buy(&api, &buyer, sale, "queued").await })
        };
        drop(release);
        health_until(&base, Duration::from_secs(10), "healthy again", |s, b| s == 200 && b["store"]["status"] == "ok").await?;
        let (_, frames) = queued.await??;
        let queued_order = confirmed_order(&frames).with_context(|| format!("the queued buy: {frames:?}"))?;
        acknowledged.push(("queued", queued_order));

        // The retry of the unanswered buy gets the order that was committed, not a second one.
        assert_eq!(orders_with_key(&db, "in-flight")?.len(), 1, "the batch was committed before the panic");
        let (_, frames) = buy(&api, &buyer, sale, "in-flight").await?;
        let retried = confirmed_order(&frames).with_context(|| format!("the retry: {frames:?}"))?;
        assert_eq!(orders_with_key(&db, "in-flight")?, vec![retried], "exactly one order for the key");

        // The writer dies before committing: nothing of that batch is durable; the retry
        // commits it once.
        let _ = server.test_hooks().panic_store(StorePanic::BeforeCommit, false);
        let (_, frames) = buy(&api, &buyer, sale, "rolled-back").await?;
        assert!(is_unavailable(&frames), "{frames:?}");
        assert!(orders_with_key(&db, "rolled-back")?.is_empty(), "an uncommitted batch left nothing");
        health_until(&base, Duration::from_secs(10), "restarted twice", |s, b| s == 200 && b["store"]["restarts"] == 2).await?;
        let (_, frames) = buy(&api, &buyer, sale, "rolled-back").await?;
        let again = confirmed_order(&frames).with_context(|| format!("the retry: {frames:?}"))?;
        assert_eq!(orders_with_key(&db, "rolled-back")?, vec![again]);

        // Every acknowledged order is in SQLite, and buys work as before.
        for (key, order) in &acknowledged {
            assert_eq!(orders_with_key(&db, key)?, vec![*order], "acknowledged order {key}");
        }
        let (_, frames) = buy(&api, &buyer, sale, "after").await?;
        assert!(confirmed_order(&frames).is_some(), "{frames:?}");
        server.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_buy_in_flight_when_its_show_task_panics_is_answered_unavailable_and_its_retry_makes_one_order() -> Result<()> {
    bounded(Duration::from_secs(90), async {
        let (server, dir) = support::server(1).await?;
        let db = dir.path().join("sellcast.db");
        let base = server_base(&server);
        let api = Api::new(&base, "tap");
        let host = api.token("host", "the-host").await?;
        let product = api.product(&host, "Scarf", "").await?;
        let sale = start_sale(&api, &host, product).await?;
        let token = api.token("viewer", "tapper").await?;
        let viewer = Viewer::connect(&base, "tap", with_channel(Some(token))).await?;
        welcomed(&viewer).await?;

        // The store writer is down, so the buy waits for it: in flight in the show.
        let store_release = server.test_hooks().panic_store(StorePanic::Now, true);
        health_until(&base, Duration::from_secs(10), "the store down", |_, b| b["store"]["status"] == "restarting").await?;
        let buy = json!({ "type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": "tap-1" });
        viewer.send(&buy.to_string()).await?;
        // Frames of one channel reach the show in order: once this chat line is back, the
        // show has taken the buy and handed it to the store.
        viewer.send(&json!({ "type": "chat", "text": "after the tap" }).to_string()).await?;
        until(Duration::from_secs(10), "the chat line after the tap", || {
            room_events(&viewer).iter().any(|e| e["type"] == "chat" && e["text"] == "after the tap")
        })
        .await?;

        let _ = server.test_hooks().panic_room("tap", false).await;
        until(Duration::from_secs(10), "the buyer hears unavailable", || {
            of_type(&viewer, "error").iter().any(|e| e["code"] == "unavailable")
        })
        .await?;
        drop(store_release);
        health_until(&base, Duration::from_secs(10), "healthy again", |s, _| s == 200).await?;
        until(Duration::from_secs(10), "the channel rejoined", || of_type(&viewer, "welcome").len() >= 2).await?;
        // The store committed the buy after the show that took it had died.
        let committed = orders_with_key(&db, "tap-1")?;
        assert_eq!(committed.len(), 1, "the tap's buy was committed once");
        assert!(of_type(&viewer, "order_confirmed").is_empty(), "nobody confirmed it yet");

        viewer.send(&buy.to_string()).await?;
        until(Duration::from_secs(10), "the retry's answer", || !of_type(&viewer, "order_confirmed").is_empty()).await?;
        let answer = of_type(&viewer, "order_confirmed").pop().context("answer")?;
        assert_eq!(answer["order_id"].as_i64(), Some(committed[0]), "the retry gets the committed order: {answer}");
        assert_eq!(orders_with_key(&db, "tap-1")?, committed, "still exactly one order");
        viewer.close().await;
        server.shutdown().await;
        Ok(())
    })
    .await
}
