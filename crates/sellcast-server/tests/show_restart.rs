//! What a show keeps across a dev-mode restart of the real server (a child process on a real
//! SQLite file and data directory): the buyer's chosen name in the host's orders feed, a
//! "1 per buyer" deal that stays at one across the restart, the likes total, the show's title;
//! then End closes the running sale, and a buy after it is refused with a typed reason.
//!
//! Control run: the same restart with the dev secret forgotten (deleted from the data
//! directory, as before identities were kept) lets the buyer, who gets a new guest identity
//! the way the watch page renews a refused token, buy the "1 per buyer" deal a second time.
//! The check that fails there is the one the main test passes.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::Api;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

const ROOM: &str = "show";

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The server in dev mode (no JWT secret: it keeps its own in the data directory).
async fn spawn_server(db: &Path, port: u16) -> Result<(Child, Api)> {
    let child = Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--udp-port", "0", "--db"])
        .arg(db)
        .env("RUST_LOG", "warn")
        .env_remove("SELLCAST_JWT_SECRET")
        .env("SELLCAST_API_RATE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawning sellcast")?;
    let api = Api::new(format!("http://127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = api.http.get(format!("{}/healthz", api.base)).send().await {
            if r.status().is_success() {
                return Ok((child, api));
            }
        }
        if Instant::now() > deadline {
            bail!("server did not come up");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A guest token as the watch page gets one: the server picks the identity.
async fn guest_token(api: &Api, role: &str) -> Result<String> {
    let v: Value = api.http.get(format!("{}/api/dev/token", api.base)).query(&[("room", ROOM), ("role", role)]).send().await?.json().await?;
    Ok(v["token"].as_str().context("token")?.to_string())
}

/// POST a frame; `Err` with the status for a refused token, else the answer frames.
async fn post(api: &Api, token: &str, frame: &Value) -> Result<std::result::Result<Vec<Value>, u16>> {
    let r = api.http.post(format!("{}/api/rooms/{ROOM}/frames", api.base)).bearer_auth(token).json(frame).send().await?;
    let status = r.status().as_u16();
    if status != 200 {
        return Ok(Err(status));
    }
    Ok(Ok(r.json().await?))
}

/// The buy's answer frame type and reason (`order_confirmed`, or `buy_rejected` + reason).
fn buy_outcome(frames: &[Value]) -> String {
    frames
        .iter()
        .find_map(|f| match f["type"].as_str() {
            Some("order_confirmed") => Some("confirmed".to_string()),
            Some("buy_rejected") => Some(format!("rejected:{}", f["reason"].as_str().unwrap_or(""))),
            Some("error") => Some(format!("error:{}", f["code"].as_str().unwrap_or(""))),
            _ => None,
        })
        .unwrap_or_else(|| format!("no answer: {frames:?}"))
}

/// Poll the database (read-only) until the room's saved likes total is at least `n`.
async fn likes_saved(db: &Path, n: i64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let saved: i64 = conn.query_row("SELECT COALESCE(MAX(likes_total), 0) FROM shows WHERE room = ?1", [ROOM], |r| r.get(0)).unwrap_or(0);
        if saved >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the likes total was never saved (last {saved})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the scenario saw after the restart.
struct AfterRestart {
    second_buy: String,
    feed_buyer: String,
    likes_total: Value,
    title: Value,
    host: String,
    api: Api,
    child: Child,
}

/// Before: a 1-per-buyer deal, the buyer named "Pia" buys once and likes 5 times, the host
/// sets the show up. Restart (forgetting the dev secret if `forget_secret`). After: the buyer's
/// page buys again with a new key (renewing a refused token as the page does).
async fn buy_restart_buy(dir: &Path, forget_secret: bool) -> Result<AfterRestart> {
    let db = dir.join("sellcast.db");
    let port = free_port()?;
    let (mut child, api) = spawn_server(&db, port).await?;
    let host = guest_token(&api, "host").await?;
    let product = api.create_product(ROOM, &host, "Glow serum", 20).await?;
    let sale = api.start_sale(ROOM, &host, product, 10, 1).await?;
    let in_an_hour = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64 + 3_600_000;
    let show = json!({"type": "set_show", "title": "Spring drop", "starts_at_ms": in_an_hour});
    let set = post(&api, &host, &show).await?;
    anyhow::ensure!(set == Ok(vec![]), "set_show: {set:?}");
    let pia = guest_token(&api, "viewer").await?;
    let named = post(&api, &pia, &json!({"type": "set_name", "name": "Pia"})).await?;
    anyhow::ensure!(named == Ok(vec![]), "set_name: {named:?}");
    let first = post(&api, &pia, &json!({"type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": "pia-1"})).await?;
    anyhow::ensure!(first.as_deref().map(buy_outcome).ok() == Some("confirmed".into()), "first buy: {first:?}");
    for _ in 0..5 {
        post(&api, &pia, &json!({"type": "like", "count": 1})).await?.ok().context("like")?;
    }
    likes_saved(&db, 5).await?;

    child.kill().await?;
    if forget_secret {
        std::fs::remove_file(dir.join("dev-secret"))?;
    }
    let (child, api) = spawn_server(&db, port).await?;
    let host = match post(&api, &host, &json!({"type": "hello"})).await? {
        Ok(_) => host,
        Err(_) => guest_token(&api, "host").await?,
    };
    let frame = json!({"type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": "pia-2"});
    let second = match post(&api, &pia, &frame).await? {
        Ok(frames) => frames,
        // The page asks for a fresh token when its own is refused (session.js renewToken).
        Err(401) => post(&api, &guest_token(&api, "viewer").await?, &frame).await?.ok().context("buy with a fresh token")?,
        Err(status) => bail!("second buy: HTTP {status}"),
    };
    let orders: Value =
        api.http.get(format!("{}/api/rooms/{ROOM}/orders", api.base)).bearer_auth(&host).send().await?.json().await?;
    let feed_buyer = orders["orders"][0]["buyer"]["name"].as_str().unwrap_or_default().to_string();
    let hello = post(&api, &host, &json!({"type": "hello"})).await?.ok().context("hello")?;
    let snapshot = hello.iter().find(|f| f["type"] == "snapshot").cloned().unwrap_or_default();
    let show: Value = api.http.get(format!("{}/api/rooms/{ROOM}/show", api.base)).send().await?.json().await?;
    Ok(AfterRestart {
        second_buy: buy_outcome(&second),
        feed_buyer,
        likes_total: snapshot["likes_total"].clone(),
        title: show["title"].clone(),
        host,
        api,
        child,
    })
}

#[tokio::test]
async fn names_likes_the_show_and_a_1_per_buyer_deal_survive_a_dev_mode_restart_and_end_closes_the_sale() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut after = buy_restart_buy(dir.path(), false).await?;
    assert_eq!(after.second_buy, "rejected:limit_reached", "one per buyer holds across the restart");
    assert_eq!(after.feed_buyer, "Pia", "the orders feed names the buyer, not a guest id");
    assert_eq!(after.likes_total, 5, "likes are not reset by a restart");
    assert_eq!(after.title, "Spring drop");

    // End closes the running sale: another buyer's buy after it is refused with a typed reason.
    let api = &after.api;
    let ended = post(api, &after.host, &json!({"type": "end_show"})).await?;
    assert_eq!(ended, Ok(vec![]), "End is accepted once stored");
    let products = api.products(ROOM).await?;
    let sale = products["sales"][0].clone();
    assert!(sale["ended_at_ms"].is_i64(), "the sale has ended with the show: {sale}");
    let bo = guest_token(api, "viewer").await?;
    let late = post(api, &bo, &json!({"type": "buy", "sale_id": sale["id"], "qty": 1, "idempotency_key": "bo-1"})).await?;
    assert_eq!(late.as_deref().map(buy_outcome), Ok("rejected:sale_not_active".to_string()), "{late:?}");
    let show: Value = api.http.get(format!("{}/api/rooms/{ROOM}/show", api.base)).send().await?.json().await?;
    assert!(show["ended_at_ms"].is_i64(), "{show}");
    after.child.kill().await?;
    Ok(())
}

#[tokio::test]
async fn control_a_restart_that_forgets_the_dev_secret_lets_the_buyer_buy_the_deal_twice() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut after = buy_restart_buy(dir.path(), true).await?;
    assert_eq!(after.second_buy, "confirmed", "the broken variant must let the second buy through, or the main test proves nothing");
    after.child.kill().await?;
    Ok(())
}

#[tokio::test]
async fn reading_the_show_of_an_unknown_room_is_a_404_that_creates_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut child, api) = spawn_server(&dir.path().join("sellcast.db"), free_port()?).await?;
    for _ in 0..2 {
        let r = api.http.get(format!("{}/api/rooms/nobody-made-this/show", api.base)).send().await?;
        assert_eq!(r.status().as_u16(), 404);
    }
    let products = api.http.get(format!("{}/api/rooms/nobody-made-this/products", api.base)).send().await?;
    assert_eq!(products.status().as_u16(), 404, "the read loaded nothing");
    child.kill().await?;
    Ok(())
}
