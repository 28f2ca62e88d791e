//! A room's API on the nodes that mirror it (cluster mode), against a real `nats-server` and
//! three real `sellcast` nodes (child processes, each with its own SQLite store). The room
//! `shop` is owned by node-a (its host publishes there); node-b and node-c mirror it
//! (`interaction::across_nodes::room_mirror`) and send its API requests to node-a
//! (`interaction::room_api`):
//! - each read (products, show, orders, a buyer's own orders, bans) answers on a mirror with
//!   the owner's status and body;
//! - a host's product write and flash-sale start sent to a mirror land on the owner (its API
//!   shows them, viewers on every node get the sale), and a viewer's writes through a mirror
//!   are refused with the owner's status and body;
//! - a ban sent through one mirror disconnects the banned viewer on another mirror, and its
//!   new session and its frames there are refused.
//!
//! HTTP and NATS ports are fixed per test in 23430-23473; media ports are chosen by the OS.

mod cluster_support;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use cluster_support::{eventually, host_token, publish_offer, NatsServer, Node, JWT_SECRET};
use sellcast_peer::{PublishOptions, Publisher, Viewer, ViewerOptions};
use serde_json::{json, Value};

const ROOM: &str = "shop";
const SETTLE: Duration = Duration::from_secs(20);

fn token(role: &str, identity: &str) -> Result<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["token", "--room", ROOM, "--role", role, "--identity", identity, "--jwt-secret", JWT_SECRET])
        .output()?;
    ensure!(out.status.success(), "sellcast token failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// NATS, three nodes, and the room's host live on node-a.
struct Three {
    _dir: tempfile::TempDir,
    _nats: NatsServer,
    a: Node,
    b: Node,
    c: Node,
    host: Publisher,
}

impl Three {
    async fn start(port: u16) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let nats = NatsServer::start(dir.path(), port)?;
        let a = Node::start(dir.path(), "node-a", port + 1, &nats.url()).await?;
        let b = Node::start(dir.path(), "node-b", port + 2, &nats.url()).await?;
        let c = Node::start(dir.path(), "node-c", port + 3, &nats.url()).await?;
        let options = PublishOptions { token: Some(host_token(ROOM)?), bitrate_bps: 150_000, fps: 10, ..PublishOptions::default() };
        let host = Publisher::connect(&a.base, ROOM, options).await.context("the host publishing to node-a")?;
        ensure!(a.lease_on(ROOM).await?.is_some(), "node-a owns the room");
        Ok(Self { _dir: dir, _nats: nats, a, b, c, host })
    }
}

/// A data-channel viewer `identity` on `node`, its stream open (a welcome arrived).
async fn viewer(node: &Node, identity: &str) -> Result<Viewer> {
    let options = ViewerOptions { token: Some(token("viewer", identity)?), data_channel: true, ..ViewerOptions::default() };
    let viewer = Viewer::connect(&node.base, ROOM, options).await.with_context(|| format!("{identity} watching on {}", node.id))?;
    viewer.channel_ready(Duration::from_secs(15)).await?;
    eventually(SETTLE, &format!("{identity}'s welcome on {}", node.id), || async {
        Ok(frames(&viewer).iter().any(|f| f["type"] == "welcome").then_some(()))
    })
    .await?;
    Ok(viewer)
}

fn frames(viewer: &Viewer) -> Vec<Value> {
    viewer.frames().into_iter().filter_map(|(_, text)| serde_json::from_str(&text).ok()).collect()
}

/// An HTTP answer as `(status, body)`: its JSON, or its text when it is not JSON (a refusal
/// at the edge is text), `null` when empty.
async fn answer(resp: reqwest::Response) -> Result<(u16, Value)> {
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let body = match text.as_str() {
        "" => Value::Null,
        _ => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    };
    Ok((status, body))
}

async fn get(node: &Node, path: &str, bearer: Option<&str>) -> Result<(u16, Value)> {
    let mut request = node.http.get(format!("{}/api/rooms/{ROOM}/{path}", node.base));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    answer(request.send().await?).await
}

async fn post(node: &Node, path: &str, bearer: &str, body: &Value) -> Result<(u16, Value)> {
    answer(node.http.post(format!("{}/api/rooms/{ROOM}/{path}", node.base)).bearer_auth(bearer).json(body).send().await?).await
}

/// One frame over `POST /api/rooms/shop/frames` on `node`: `(status, answer frames)`.
async fn frame(node: &Node, bearer: &str, frame: Value) -> Result<(u16, Value)> {
    post(node, "frames", bearer, &frame).await
}

/// A flash sale of `product_id` open now for ten minutes, as a `start_sale` frame.
fn sale_of(product_id: i64) -> Result<Value> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    Ok(json!({ "type": "start_sale", "product_id": product_id, "price_minor": 500, "stock": 5,
        "per_user_limit": 2, "starts_at_ms": now - 1000, "ends_at_ms": now + 600_000 }))
}

/// The room's viewers on `node`, as its status says (its media plane's own count).
async fn room_viewers(node: &Node) -> Result<u64> {
    let status: Value = node.http.get(format!("{}/api/rooms/{ROOM}", node.base)).send().await?.json().await?;
    status["viewers"].as_u64().with_context(|| format!("viewers in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_read_on_a_mirror_answers_what_the_owner_answers() -> Result<()> {
    let three = Three::start(23430).await?;
    let host = host_token(ROOM)?;
    let mug = json!({ "title": "Mug", "price_minor": 990, "currency": "EUR", "stock": 10 });
    let (status, created) = post(&three.a, "products", &host, &mug).await?;
    ensure!(status == 201, "product on node-a: {status} {created}");
    let product_id = created["id"].as_i64().context("product id")?;
    let (status, started) = frame(&three.a, &host, sale_of(product_id)?).await?;
    ensure!(status == 200 && started == json!([]), "sale on node-a: {status} {started}");
    let (_, sales) = get(&three.a, "products", None).await?;
    let sale_id = sales["sales"][0]["id"].as_i64().with_context(|| format!("the sale in {sales}"))?;
    // A buy on node-b (a mirror), and a ban on node-a.
    let erin = token("viewer", "erin")?;
    let buy = json!({ "type": "buy", "sale_id": sale_id, "qty": 1, "idempotency_key": "erin-1" });
    let (status, bought) = frame(&three.b, &erin, buy).await?;
    ensure!(status == 200 && bought[0]["type"] == "order_confirmed", "erin's buy on node-b: {status} {bought}");
    let (status, banned) = frame(&three.a, &host, json!({ "type": "ban", "identity": "mal" })).await?;
    ensure!(status == 200 && banned == json!([]), "ban on node-a: {status} {banned}");

    let reads: [(&str, Option<&str>); 5] =
        [("products", None), ("show", None), ("orders", Some(&host)), ("orders/mine", Some(&erin)), ("bans", Some(&host))];
    for (path, bearer) in reads {
        let on_owner = get(&three.a, path, bearer).await?;
        assert_eq!(on_owner.0, 200, "{path} on node-a: {on_owner:?}");
        for mirror in [&three.b, &three.c] {
            let on_mirror = get(mirror, path, bearer).await?;
            assert_eq!(on_mirror, on_owner, "{path} on {} answers what node-a answers", mirror.id);
        }
    }
    // What they answered is the room's, not an empty room's.
    let (_, products) = get(&three.c, "products", None).await?;
    assert_eq!(products["products"][0]["title"], "Mug", "{products}");
    let (_, mine) = get(&three.c, "orders/mine", Some(&erin)).await?;
    assert_eq!(mine["orders"].as_array().map(Vec::len), Some(1), "erin's order, read on node-c: {mine}");
    let (_, orders) = get(&three.b, "orders", Some(&host)).await?;
    assert_eq!(orders["orders"].as_array().map(Vec::len), Some(1), "{orders}");
    let (_, bans) = get(&three.b, "bans", Some(&host)).await?;
    assert_eq!(bans["bans"][0]["identity"], "mal", "{bans}");
    // Staff reads keep their role rule on a mirror.
    let viewer_reads = get(&three.b, "orders", Some(&erin)).await?;
    assert_eq!(viewer_reads, get(&three.a, "orders", Some(&erin)).await?, "a viewer reading orders: as on node-a");
    assert_eq!(viewer_reads.0, 403, "{viewer_reads:?}");
    three.host.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_writes_sent_to_a_mirror_land_on_the_owner_and_a_viewers_are_refused_as_on_the_owner() -> Result<()> {
    let three = Three::start(23440).await?;
    let host = host_token(ROOM)?;
    let on_a = viewer(&three.a, "ann").await?;
    let on_b = viewer(&three.b, "bob").await?;
    let on_c = viewer(&three.c, "cy").await?;

    let mug = json!({ "title": "Mug", "price_minor": 990, "currency": "EUR", "stock": 10 });
    let (status, created) = post(&three.b, "products", &host, &mug).await?;
    assert_eq!(status, 201, "a host's product sent to node-b: {created}");
    let product_id = created["id"].as_i64().context("product id")?;
    let renamed = json!({ "title": "Big mug", "price_minor": 1290, "currency": "EUR", "stock": 10 });
    let put = answer(three.c.http.put(format!("{}/api/rooms/{ROOM}/products/{product_id}", three.c.base)).bearer_auth(&host).json(&renamed).send().await?).await?;
    assert_eq!(put.0, 200, "a host's update sent to node-c: {put:?}");
    let (_, on_owner) = get(&three.a, "products", None).await?;
    let titles: Vec<&str> = on_owner["products"].as_array().into_iter().flatten().filter_map(|p| p["title"].as_str()).collect();
    assert_eq!(titles, ["Big mug"], "node-a's own API shows the product written through the mirrors: {on_owner}");

    let (status, started) = frame(&three.c, &host, sale_of(product_id)?).await?;
    assert_eq!((status, &started), (200, &json!([])), "a flash sale started through node-c");
    for (who, v) in [("node-a", &on_a), ("node-b", &on_b), ("node-c", &on_c)] {
        eventually(SETTLE, &format!("the sale reached the viewer on {who}"), || async {
            Ok(frames(v).iter().any(|f| f["type"] == "sale_started" && f["sale"]["product_id"] == product_id).then_some(()))
        })
        .await?;
    }
    let (_, on_owner) = get(&three.a, "products", None).await?;
    assert_eq!(on_owner["sales"][0]["product_id"], product_id, "node-a's API shows the sale: {on_owner}");

    // A viewer's writes through a mirror: refused exactly as on the owner.
    let vic = token("viewer", "vic")?;
    let on_owner = post(&three.a, "products", &vic, &mug).await?;
    let via_mirror = post(&three.b, "products", &vic, &mug).await?;
    assert_eq!(via_mirror, on_owner, "a viewer's product write on node-b");
    assert_eq!(via_mirror.0, 403, "{via_mirror:?}");
    let on_owner = frame(&three.a, &vic, sale_of(product_id)?).await?;
    let via_mirror = frame(&three.b, &vic, sale_of(product_id)?).await?;
    assert_eq!(via_mirror, on_owner, "a viewer's start_sale on node-b");
    assert_eq!(via_mirror.1[0]["type"], "error", "{via_mirror:?}");
    let (_, products) = get(&three.a, "products", None).await?;
    assert_eq!(products["products"].as_array().map(Vec::len), Some(1), "no product from the viewer: {products}");
    assert_eq!(products["sales"].as_array().map(Vec::len), Some(1), "no sale from the viewer: {products}");
    three.host.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_sent_to_a_mirror_disconnects_the_viewer_on_another_mirror_and_refuses_it_there() -> Result<()> {
    let three = Three::start(23450).await?;
    let host = host_token(ROOM)?;
    let cy = viewer(&three.c, "cy").await?;
    let mal = viewer(&three.c, "mal").await?;
    eventually(SETTLE, "cy and mal counted on node-c", || async { Ok((room_viewers(&three.c).await? == 2).then_some(())) }).await?;

    let (status, banned) = frame(&three.b, &host, json!({ "type": "ban", "identity": "mal" })).await?;
    assert_eq!((status, &banned), (200, &json!([])), "the ban sent to node-b");
    let kicked = eventually(SETTLE, "mal disconnected on node-c", || async { Ok((room_viewers(&three.c).await? == 1).then_some(())) }).await;
    if let Err(e) = kicked {
        let log = std::fs::read_to_string(three._dir.path().join("node-c.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("node-c's log, newest first:\n{}", tail.join("\n"));
        return Err(e);
    }

    // Its frames and its new session on node-c are refused; cy stays and is heard.
    let mal_token = token("viewer", "mal")?;
    let chat = frame(&three.c, &mal_token, json!({ "type": "chat", "text": "still here" })).await?;
    assert_eq!(chat.0, 403, "mal's chat on node-c: {chat:?}");
    let whep = three
        .c
        .http
        .post(format!("{}/whep/{ROOM}", three.c.base))
        .bearer_auth(&mal_token)
        .header("content-type", "application/sdp")
        .body(publish_offer())
        .send()
        .await?;
    let refused = answer(whep).await?;
    assert_eq!(refused.0, 403, "mal's new session on node-c: {refused:?}");
    cy.send(&json!({ "type": "chat", "text": "cy still here" }).to_string()).await?;
    eventually(SETTLE, "cy's chat after the ban", || async {
        Ok(frames(&cy).iter().any(|f| f["type"] == "chat" && f["text"] == "cy still here").then_some(()))
    })
    .await?;
    assert!(
        !frames(&cy).iter().any(|f| f["type"] == "chat" && f["text"] == "still here"),
        "mal's refused chat reached nobody"
    );
    drop(mal);
    three.host.close().await;
    Ok(())
}

/// What the host page does when opened on node-b (`web/host.js`): it asks its node for the
/// room's origin and publishes there. Done here with the Rust WHIP client in place of a
/// browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_api_on_a_mirror_names_the_origin_and_a_host_publishing_there_goes_live_on_it() -> Result<()> {
    let three = Three::start(23460).await?;
    let origin = |node: &Node| {
        let url = format!("{}/api/rooms/{ROOM}/origin", node.base);
        let http = node.http.clone();
        async move { answer(http.get(url).send().await?).await }
    };
    assert_eq!(origin(&three.a).await?, (200, json!({ "origin": null })), "node-a is the origin itself");
    let (status, on_b) = origin(&three.b).await?;
    assert_eq!((status, &on_b["origin"], &on_b["node"]), (200, &json!(three.a.base), &json!("node-a")), "{on_b}");

    // The host's first session ends (a page reloaded on node-b); the room stays node-a's.
    three.host.close().await;
    let live_on_a = || async {
        let status: Value = three.a.http.get(format!("{}/api/rooms/{ROOM}", three.a.base)).send().await?.json().await?;
        Ok::<_, anyhow::Error>(status["live"] == true)
    };
    eventually(SETTLE, "node-a's status shows the first session gone", || async { Ok((!live_on_a().await?).then_some(())) }).await?;
    assert_eq!(origin(&three.b).await?.1["origin"], json!(three.a.base), "the room is still node-a's");
    let to = on_b["origin"].as_str().context("origin url")?;
    let options = PublishOptions { token: Some(host_token(ROOM)?), bitrate_bps: 150_000, fps: 10, ..PublishOptions::default() };
    let again = Publisher::connect(to, ROOM, options).await.context("the host publishing to the origin node-b named")?;
    eventually(SETTLE, "node-a's status shows the host live again", || async { Ok(live_on_a().await?.then_some(())) }).await?;
    let on_c = Viewer::connect(&three.c.base, ROOM, ViewerOptions { token: Some(token("viewer", "cy")?), ..ViewerOptions::default() }).await?;
    eventually(SETTLE, "video at a viewer on node-c", || async { Ok((on_c.stats().video.packets > 0).then_some(())) }).await?;
    again.close().await;
    Ok(())
}

/// No owner answering is the one case a mirror answers on its own: `503` with `Retry-After`
/// (node-a killed; its claim has not lapsed, so node-b still knows the room is node-a's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_on_a_mirror_whose_owner_is_gone_is_503_with_retry_after() -> Result<()> {
    let mut three = Three::start(23470).await?;
    let (status, _) = get(&three.b, "products", None).await?;
    assert_eq!(status, 200, "node-b answers while node-a runs the room");
    three.a.kill_9().await?;
    let resp = three.b.http.get(format!("{}/api/rooms/{ROOM}/products", three.b.base)).send().await?;
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(String::from);
    let (status, body) = answer(resp).await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "unavailable", "{body}");
    assert!(retry_after.as_deref().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s > 0), "Retry-After: {retry_after:?}");
    Ok(())
}
