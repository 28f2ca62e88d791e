//! The HTTP API and room frames over HTTP against the real server, with real tokens: products
//! `PUT`/`DELETE` for hosts only, WHEP `DELETE` ending a session once, WHIP refused to a viewer
//! token, the host's snapshot carrying recent orders and blocked words (a viewer's neither),
//! and moderation (mute, blocked words, `delete_message`) as the room enforces it.

mod common;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use common::Api;
use reqwest::StatusCode;
use sellcast_room::Role;
use sellcast_server::auth::{now_secs, Claims};
use sellcast_server::RunningServer;
use serde_json::{json, Value};
use common::sdp_offer as offer;
use str0m::media::Direction;

struct Fixture {
    server: RunningServer,
    api: Api,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Result<Fixture> {
        let dir = tempfile::tempdir()?;
        let mut config = sellcast_server::Config::local(dir.path().join("sellcast.db"));
        config.jwt_secret = Some("test-secret-that-is-at-least-32-bytes".into());
        let server = sellcast_server::start(config).await?;
        let api = Api::new(format!("http://{}", server.http_addr));
        Ok(Fixture { server, api, _dir: dir })
    }

    fn token(&self, room: &str, role: Role, who: &str) -> Result<String> {
        let claims = Claims { room: room.into(), sub: who.into(), name: who.into(), role, exp: now_secs() + 600 };
        Ok(self.server.auth.mint(&claims)?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api.base)
    }

    /// The frames a `hello` over HTTP answers with: the welcome and a full snapshot. Snapshots
    /// are throttled per identity: a `rate_limited` answer is waited out.
    async fn snapshot(&self, room: &str, token: &str) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let frames = self.api.frame(room, token, &json!({"type": "hello"})).await?;
            if error_code(&frames).as_deref() == Some("rate_limited") && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            return frames.into_iter().find(|f| f["type"] == "snapshot").context("hello answered without a snapshot");
        }
    }

    /// Poll the snapshot `token` gets until `ok` holds (host actions persist before they apply).
    async fn snapshot_until(&self, room: &str, token: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.snapshot(room, token).await?;
            if ok(&s) {
                return Ok(s);
            }
            ensure!(Instant::now() < deadline, "{what}: never true in {s}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn product_body(title: &str, price_minor: i64, stock: u32) -> Value {
    json!({"title": title, "price_minor": price_minor, "currency": "EUR", "stock": stock})
}

fn listed(products: &Value, id: i64) -> Option<Value> {
    products["products"].as_array()?.iter().find(|p| p["id"] == id).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_put_and_delete_show_in_reads_and_a_viewer_token_gets_403() -> Result<()> {
    let f = Fixture::start().await?;
    let (host, viewer) = (f.token("shop", Role::Host, "hana")?, f.token("shop", Role::Viewer, "vic")?);
    let id = f.api.create_product("shop", &host, "Lipstick", 10).await?;

    let put = f.api.http.put(f.url(&format!("/api/rooms/shop/products/{id}"))).bearer_auth(&host).json(&product_body("Lipstick Red", 2490, 7)).send().await?;
    assert_eq!(put.status(), StatusCode::OK);
    let answered: Value = put.json().await?;
    assert_eq!((answered["title"].as_str(), answered["price_minor"].as_i64()), (Some("Lipstick Red"), Some(2490)));
    let read = listed(&f.api.products("shop").await?, id).context("the product is listed")?;
    assert_eq!((read["title"].as_str(), read["price_minor"].as_i64(), read["stock"].as_i64()), (Some("Lipstick Red"), Some(2490), Some(7)));

    // A viewer can change nothing; nor can a caller without a token.
    let refused = f.api.http.put(f.url(&format!("/api/rooms/shop/products/{id}"))).bearer_auth(&viewer).json(&product_body("Free", 0, 999)).send().await?;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused = f.api.http.delete(f.url(&format!("/api/rooms/shop/products/{id}"))).bearer_auth(&viewer).send().await?;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let anonymous = f.api.http.delete(f.url(&format!("/api/rooms/shop/products/{id}"))).send().await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let read = listed(&f.api.products("shop").await?, id).context("still listed after the refusals")?;
    assert_eq!(read["title"], "Lipstick Red", "the refused changes changed nothing");

    let deleted = f.api.http.delete(f.url(&format!("/api/rooms/shop/products/{id}"))).bearer_auth(&host).send().await?;
    assert!(deleted.status().is_success(), "host delete: {}", deleted.status());
    assert!(listed(&f.api.products("shop").await?, id).is_none(), "a deleted product is no longer listed");
    let again = f.api.http.delete(f.url(&format!("/api/rooms/shop/products/{id}"))).bearer_auth(&host).send().await?;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let put_deleted = f.api.http.put(f.url(&format!("/api/rooms/shop/products/{id}"))).bearer_auth(&host).json(&product_body("Back", 100, 1)).send().await?;
    assert_eq!(put_deleted.status(), StatusCode::NOT_FOUND);
    f.server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_delete_ends_the_session_once_and_whip_refuses_a_viewer_token() -> Result<()> {
    let f = Fixture::start().await?;
    // The host created the room earlier; a WHEP to a room nobody created is a 404.
    f.server.open_room("live")?;
    let viewer = f.token("live", Role::Viewer, "vic")?;
    let post = |path: &'static str, token: String, direction: Direction| {
        let req = f.api.http.post(f.url(path)).bearer_auth(token).header("content-type", "application/sdp").body(offer(direction));
        async move { anyhow::Ok(req.send().await?) }
    };

    let whip = post("/whip/live", viewer.clone(), Direction::SendOnly).await?;
    assert_eq!(whip.status(), StatusCode::FORBIDDEN, "a viewer token cannot publish");
    let status: Value = f.api.http.get(f.url("/api/rooms/live")).send().await?.json().await?;
    assert_eq!(status["live"], false, "the refused publisher never went live");

    let whep = post("/whep/live", viewer.clone(), Direction::RecvOnly).await?;
    assert_eq!(whep.status(), StatusCode::CREATED);
    let location = whep.headers().get("location").and_then(|l| l.to_str().ok()).map(String::from).context("Location")?;
    let peers = || async { anyhow::Ok(f.api.http.get(f.url("/api/stats/media")).send().await?.json::<Value>().await?["peers"].as_u64()) };
    let viewers = || async { anyhow::Ok(f.api.http.get(f.url("/api/rooms/live")).send().await?.json::<Value>().await?["viewers"].as_u64()) };
    assert_eq!(viewers().await?, Some(1));
    let deadline = Instant::now() + Duration::from_secs(5);
    while peers().await? != Some(1) {
        ensure!(Instant::now() < deadline, "the media stats never counted the session: {:?}", peers().await?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let first = f.api.http.delete(f.url(&location)).send().await?;
    assert!(first.status().is_success(), "first DELETE: {}", first.status());
    assert_eq!(viewers().await?, Some(0), "the room lost its viewer at once");
    let second = f.api.http.delete(f.url(&location)).send().await?;
    assert_eq!(second.status(), StatusCode::NOT_FOUND, "the session is gone");
    // The stats are copied out periodically: the peer count drops within a bounded wait.
    let deadline = Instant::now() + Duration::from_secs(5);
    while peers().await? != Some(0) {
        ensure!(Instant::now() < deadline, "the server still counts the peer: {:?}", peers().await?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f.server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_snapshot_has_recent_orders_and_blocked_words_and_a_viewer_snapshot_has_neither() -> Result<()> {
    let f = Fixture::start().await?;
    let (host, viewer) = (f.token("snap", Role::Host, "hana")?, f.token("snap", Role::Viewer, "vic")?);
    let product = f.api.create_product("snap", &host, "Sneakers", 10).await?;
    let sale = f.api.start_sale("snap", &host, product, 5, 2).await?;
    let bought = f.api.frame("snap", &viewer, &json!({"type": "buy", "sale_id": sale, "qty": 2, "idempotency_key": "k1"})).await?;
    let order_id = bought.iter().find(|x| x["type"] == "order_confirmed").and_then(|x| x["order_id"].as_i64()).context("order confirmed")?;
    f.api.frame("snap", &host, &json!({"type": "set_blocked_words", "words": ["scam", "fake"]})).await?;

    let s = f
        .snapshot_until("snap", &host, "blocked words in the host snapshot", |s| s["blocked_words"].as_array().is_some_and(|w| !w.is_empty()))
        .await?;
    let mut words: Vec<&str> = s["blocked_words"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    words.sort_unstable();
    assert_eq!(words, ["fake", "scam"]);
    let orders = s["orders"].as_array().context("the host snapshot lists orders")?;
    let order = orders.iter().find(|o| o["order_id"] == order_id).with_context(|| format!("order {order_id} in {s}"))?;
    assert_eq!((order["qty"].as_u64(), order["buyer"]["id"].as_str()), (Some(2), Some("vic")), "{order}");

    let v = f.snapshot("snap", &viewer).await?;
    assert!(v.get("orders").is_none(), "a viewer sees no one's orders: {v}");
    assert!(v.get("blocked_words").is_none(), "a viewer does not see the blocked words: {v}");
    assert!(v["sales"].as_array().is_some_and(|s| s.iter().any(|x| x["id"] == sale)), "but does see the sale");
    f.server.shutdown().await;
    Ok(())
}

async fn chat(f: &Fixture, token: &str, text: &str) -> Result<Vec<Value>> {
    f.api.frame("mod", token, &json!({"type": "chat", "text": text})).await
}

fn error_code(frames: &[Value]) -> Option<String> {
    frames.iter().find(|f| f["type"] == "error").and_then(|f| f["code"].as_str().map(String::from))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_blocked_words_and_delete_message_are_enforced_by_the_server() -> Result<()> {
    let f = Fixture::start().await?;
    let host = f.token("mod", Role::Host, "hana")?;
    let (ann, bob) = (f.token("mod", Role::Viewer, "ann")?, f.token("mod", Role::Viewer, "bob")?);

    // Blocked words: refused with `blocked`, and never shown.
    f.api.frame("mod", &host, &json!({"type": "set_blocked_words", "words": ["scam"]})).await?;
    f.snapshot_until("mod", &host, "blocked words applied", |s| s["blocked_words"].as_array().is_some_and(|w| !w.is_empty())).await?;
    assert_eq!(error_code(&chat(&f, &ann, "what a SCAM").await?).as_deref(), Some("blocked"));

    // Mute: bob's chat is refused with `muted`; ann still chats.
    assert_eq!(error_code(&chat(&f, &bob, "before the mute").await?), None);
    let muted = f.api.frame("mod", &host, &json!({"type": "mute", "identity": "bob", "seconds": 60})).await?;
    assert_eq!(error_code(&muted), None, "the host may mute: {muted:?}");
    assert_eq!(error_code(&chat(&f, &bob, "after the mute").await?).as_deref(), Some("muted"));
    assert_eq!(error_code(&chat(&f, &ann, "hello everyone").await?), None);
    // A viewer may not mute.
    assert_eq!(error_code(&f.api.frame("mod", &ann, &json!({"type": "mute", "identity": "hana", "seconds": 60})).await?).as_deref(), Some("forbidden"));

    let s = f.snapshot("mod", &ann).await?;
    let texts: Vec<&str> = s["chat"].as_array().into_iter().flatten().filter_map(|l| l["text"].as_str()).collect();
    assert_eq!(texts, ["before the mute", "hello everyone"], "neither refused line was shown");

    // delete_message: the line is gone from the next snapshot; the others stay.
    let seq = s["chat"].as_array().and_then(|c| c.iter().find(|l| l["text"] == "hello everyone")).and_then(|l| l["seq"].as_u64()).context("seq")?;
    let refused = f.api.frame("mod", &ann, &json!({"type": "delete_message", "seq": seq})).await?;
    assert_eq!(error_code(&refused).as_deref(), Some("forbidden"), "a viewer may not delete");
    let deleted = f.api.frame("mod", &host, &json!({"type": "delete_message", "seq": seq})).await?;
    assert_eq!(error_code(&deleted), None, "{deleted:?}");
    let s = f.snapshot("mod", &bob).await?;
    let texts: Vec<&str> = s["chat"].as_array().into_iter().flatten().filter_map(|l| l["text"].as_str()).collect();
    assert_eq!(texts, ["before the mute"]);
    f.server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_frames_flood_with_one_token_gets_no_more_through_than_its_identitys_buckets() -> Result<()> {
    let f = Fixture::start().await?;
    f.server.open_room("flood")?; // a host's room: viewers cannot create one
    let token = f.token("flood", Role::Viewer, "flooder")?;
    let started = Instant::now();
    // Five waves of 50 concurrent calls (under the server's connections per address).
    let mut answers: Vec<Result<Vec<Value>>> = Vec::new();
    for wave in 0..5 {
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..50 {
            let (http, url, token) = (f.api.http.clone(), f.url("/api/rooms/flood/frames"), token.clone());
            sends.spawn(async move {
                let text = format!("spam {wave}-{i}");
                let r = http.post(url).bearer_auth(token).json(&json!({"type": "chat", "text": text})).send().await?;
                anyhow::Ok(r.json::<Vec<Value>>().await?)
            });
        }
        answers.extend(sends.join_all().await);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = answers.iter().filter(|a| a.as_ref().is_ok_and(|frames| frames.is_empty())).count();
    // The chat bucket: a burst of 5 and one a second, exactly as on a data channel.
    assert!(accepted <= 5 + elapsed.ceil() as usize, "{accepted} chats through in {elapsed:.1} s");
    assert!(accepted >= 1, "the burst itself passes");
    let limited = answers.iter().filter(|a| a.as_ref().is_ok_and(|frames| error_code(frames).as_deref() == Some("rate_limited"))).count();
    assert!(limited >= 250 - accepted - 5, "the rest are refused rate_limited ({limited})");

    // Snapshots over HTTP: the identity's snapshot burst, then rate_limited.
    let mut welcomes = 0;
    for _ in 0..20 {
        let frames = f.api.frame("flood", &token, &json!({"type": "hello"})).await?;
        welcomes += usize::from(frames.iter().any(|fr| fr["type"] == "snapshot"));
    }
    assert!(welcomes <= 5 + started.elapsed().as_secs() as usize + 1, "{welcomes} snapshots served to one token");
    f.server.shutdown().await;
    Ok(())
}

/// `GET /api/rooms/{room}/orders`: the staff's recent orders with product names, and the
/// room's totals (revenue = the sum of the orders, sales per product); a viewer gets 403, and
/// an oversized sale is refused with the product's stock in the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orders_api_gives_staff_the_orders_and_their_sums_and_refuses_viewers() -> Result<()> {
    let f = Fixture::start().await?;
    let (host, viewer) = (f.token("till", Role::Host, "hana")?, f.token("till", Role::Viewer, "vic")?);
    let product = f.api.create_product("till", &host, "Sneakers", 10).await?;
    let oversized = f.api.frame("till", &host, &json!({"type": "start_sale", "product_id": product, "price_minor": 990, "stock": 11,
        "per_user_limit": 2, "starts_at_ms": 0, "ends_at_ms": 4_102_444_800_000_i64})).await?;
    let refusal = oversized.iter().find(|x| x["type"] == "error").with_context(|| format!("refused: {oversized:?}"))?;
    assert!(refusal["message"].as_str().is_some_and(|m| m.contains("10 in stock")), "{refusal}");
    let sale = f.api.start_sale("till", &host, product, 5, 2).await?;
    f.api.frame("till", &viewer, &json!({"type": "buy", "sale_id": sale, "qty": 2, "idempotency_key": "k1"})).await?;
    let url = format!("{}/api/rooms/till/orders", f.api.base);
    let read = f.api.http.get(&url).bearer_auth(&host).send().await?;
    assert_eq!(read.status(), 200);
    let body: Value = read.json().await?;
    assert_eq!(body["orders"][0]["title"], "Sneakers", "{body}");
    assert_eq!(body["totals"]["revenue"], json!([{ "currency": "EUR", "minor": 2 * 990 }]), "{body}");
    assert_eq!(body["totals"]["products"], json!([{ "product_id": product, "orders": 1, "units": 2 }]), "{body}");
    let stock = f.api.products("till").await?["products"][0]["stock"].clone();
    assert_eq!(stock, 8, "the order took its units off the product");
    let refused = f.api.http.get(&url).bearer_auth(&viewer).send().await?;
    assert_eq!(refused.status(), 403);
    f.server.shutdown().await;
    Ok(())
}

/// A buy without a sale is at the product's list price and counts in the staff's totals; "my
/// orders" lists the caller's own orders only, needs a token (no dev guest here), and a list
/// for another room's token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_price_buy_counts_in_the_totals_and_my_orders_lists_only_the_callers_own() -> Result<()> {
    let f = Fixture::start().await?;
    let host = f.token("stall", Role::Host, "hana")?;
    let (ann, bob) = (f.token("stall", Role::Viewer, "ann")?, f.token("stall", Role::Viewer, "bob")?);
    let product = f.api.create_product("stall", &host, "Tote bag", 5).await?;
    let buy = |key: &str| json!({"type": "buy", "product_id": product, "qty": 2, "idempotency_key": key});
    let answer = f.api.frame("stall", &ann, &buy("a1")).await?;
    let confirmed = answer.iter().find(|x| x["type"] == "order_confirmed").with_context(|| format!("{answer:?}"))?;
    assert_eq!((confirmed["sale_id"].clone(), confirmed["product_id"].as_i64(), confirmed["qty"].as_u64()), (Value::Null, Some(product), Some(2)));
    let again = f.api.frame("stall", &ann, &buy("a1")).await?;
    assert_eq!(again.iter().find(|x| x["type"] == "order_confirmed").map(|x| x["order_id"].clone()), Some(confirmed["order_id"].clone()), "a retry is the same order");
    let unknown = f.api.frame("stall", &bob, &json!({"type": "buy", "product_id": 999, "qty": 1, "idempotency_key": "b1"})).await?;
    assert_eq!(unknown.iter().find(|x| x["type"] == "buy_rejected").map(|x| x["reason"].clone()), Some(json!("unknown_product")), "{unknown:?}");
    let orders: Value = f.api.http.get(f.url("/api/rooms/stall/orders")).bearer_auth(&host).send().await?.json().await?;
    let price = orders["orders"][0]["price_minor"].as_i64().context("a price")?;
    assert_eq!(orders["totals"]["revenue"][0]["minor"].as_i64(), Some(2 * price), "{orders}");
    assert_eq!(orders["orders"][0]["sale_id"], Value::Null);
    let mine = |token: String| {
        let request = f.api.http.get(f.url("/api/rooms/stall/orders/mine")).bearer_auth(token);
        async move { anyhow::Ok(request.send().await?.json::<Value>().await?) }
    };
    let ann_orders = mine(ann.clone()).await?;
    assert_eq!(ann_orders["orders"].as_array().map(Vec::len), Some(1), "{ann_orders}");
    assert_eq!((ann_orders["orders"][0]["title"].as_str(), ann_orders["orders"][0]["qty"].as_u64()), (Some("Tote bag"), Some(2)));
    assert_eq!(mine(bob).await?["orders"], json!([]), "bob sees none of ann's");
    let anonymous = f.api.http.get(f.url("/api/rooms/stall/orders/mine")).send().await?;
    assert_eq!(anonymous.status(), 401);
    let elsewhere = f.api.http.get(f.url("/api/rooms/other/orders/mine")).bearer_auth(&ann).send().await?;
    assert_eq!(elsewhere.status(), 403, "a token is for its own room");
    f.server.shutdown().await;
    Ok(())
}
