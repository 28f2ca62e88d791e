//! Commerce state on PostgreSQL through the real server: `sellcast serve --postgres URL` as a
//! child process, on a throwaway PostgreSQL server (`sellcast_store::testing`), buys over the
//! frames API.
//! - A purchase storm sells exactly the stock, every retry gets its original answer, and the
//!   database agrees with the room.
//! - PostgreSQL goes down mid-storm: buys are answered `unavailable`, none is confirmed while it
//!   is down, and once it is back no acknowledged order is lost (a fresh server process, which
//!   knows only what PostgreSQL holds, gives every acknowledged key its original order) and
//!   none is doubled (one order per key at most).
//! - `kill -9` of the server while its writer holds a batch between its writes and its commit
//!   loses no acknowledged order, oversells nothing, and the restarted server gives a retried
//!   key its original order (the crash-safety test of `crash_safety.rs`, on PostgreSQL).
//! - Control runs: with the answer moved before the commit (`ack_before_commit`, the store's
//!   test-only fault), the same outage and the same kill lose acknowledged orders, so the
//!   checks catch the bug they are named for.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::Api;
use sellcast_store::testing::TestPostgres;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// This file's HTTP ports (the servers are child processes that need a port before they start).
const PORTS: std::ops::Range<u16> = 19400..19500;

fn http_port() -> Result<u16> {
    static NEXT: AtomicU16 = AtomicU16::new(PORTS.start);
    loop {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        ensure!(PORTS.contains(&port), "no free port left in {PORTS:?}");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

/// `sellcast serve --postgres URL`; `dir` holds the dev secret, so tokens outlive a restart.
async fn spawn_server(dir: &Path, url: &str, faults: &str) -> Result<(Child, Api)> {
    let port = http_port()?;
    let child = Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["serve", "--http-connections-per-ip", "100000", "--http", &format!("127.0.0.1:{port}"), "--udp-port", "0", "--db"])
        .arg(dir.join("sellcast.db"))
        .args(["--postgres", url])
        .env("RUST_LOG", "warn")
        .env("SELLCAST_MAX_SESSIONS_PER_IP", "10000")
        .env("SELLCAST_SIGNAL_RATE", "0")
        .env("SELLCAST_API_RATE", "0")
        .env("SELLCAST_FAULT", faults)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawning sellcast")?;
    let api = Api::new(format!("http://127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(30);
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

/// A buy's answer as a buyer's page tells it apart.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Confirmed(i64, Value),
    Rejected(Value),
    /// `error` with code `unavailable`: not an answer for the key; send it again later.
    Unavailable,
    Other(Value),
}

fn answer_of(frames: &[Value]) -> Answer {
    for f in frames {
        match f["type"].as_str() {
            Some("order_confirmed") => return Answer::Confirmed(f["order_id"].as_i64().unwrap_or(-1), strip(f)),
            Some("buy_rejected") => return Answer::Rejected(strip(f)),
            Some("error") if f["code"] == "unavailable" => return Answer::Unavailable,
            _ => {}
        }
    }
    Answer::Other(Value::Array(frames.to_vec()))
}

/// The answer without the server's clock.
fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("server_now_ms");
    }
    v
}

fn buy_frame(sale: i64, key: &str) -> Value {
    json!({"type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": key})
}

/// Run sync PostgreSQL work (start, stop) off the test's runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    Ok(tokio::task::spawn_blocking(f).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchase_storm_on_postgres_sells_exactly_the_stock_and_every_retry_gets_its_original_answer() -> Result<()> {
    const BUYS: usize = 1_000;
    const BUYERS: usize = 200;
    const STOCK: u32 = 100;
    const LIMIT: u32 = 2;
    let pg = blocking(TestPostgres::start).await??;
    let url = pg.fresh_database()?;
    let dir = tempfile::tempdir()?;
    let (_server, api) = spawn_server(dir.path(), &url, "").await?;
    let api = Arc::new(api);
    let room = "storm";
    let host = api.dev_token(room, "host", "host-1").await?;
    let product = api.create_product(room, &host, "Serum 30ml", 500).await?;
    let sale = api.start_sale(room, &host, product, STOCK, LIMIT).await?;
    let mut tokens = Vec::new();
    for i in 0..BUYERS {
        tokens.push(api.dev_token(room, "viewer", &format!("buyer-{i}")).await?);
    }
    // 30% of the buys are sent twice with the same key: half racing the original, half after it.
    let mut tasks = Vec::new();
    for n in 0..BUYS {
        let (api, token) = (api.clone(), tokens[n % BUYERS].clone());
        tasks.push(tokio::spawn(async move {
            let frame = buy_frame(sale, &format!("key-{n}"));
            let (first, retry) = match n % 10 {
                0..=2 if n % 2 == 0 => {
                    let (a, b) = tokio::join!(api.frame(room, &token, &frame), api.frame(room, &token, &frame));
                    (a?, Some(b?))
                }
                0..=2 => {
                    let a = api.frame(room, &token, &frame).await?;
                    (a, Some(api.frame(room, &token, &frame).await?))
                }
                _ => (api.frame(room, &token, &frame).await?, None),
            };
            anyhow::Ok((n % BUYERS, answer_of(&first), retry.map(|r| answer_of(&r))))
        }));
    }
    let (mut sold, mut per_buyer, mut order_ids) = (0u32, HashMap::<usize, u32>::new(), HashSet::new());
    for t in tasks {
        let (buyer, first, retry) = t.await??;
        if let Some(retry) = retry {
            assert_eq!(retry, first, "a retry gets the original answer");
        }
        match first {
            Answer::Confirmed(id, _) => {
                assert!(order_ids.insert(id), "order ids are unique");
                sold += 1;
                *per_buyer.entry(buyer).or_default() += 1;
            }
            Answer::Rejected(v) => assert!(["sold_out", "limit_reached"].contains(&v["reason"].as_str().unwrap_or("")), "{v}"),
            other => bail!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(sold, STOCK, "exactly the stock is sold");
    assert!(per_buyer.values().all(|q| *q <= LIMIT), "nobody over the per-user limit");
    // The room (memory) and PostgreSQL agree.
    let products = api.products(room).await?;
    let mem = products["sales"].as_array().and_then(|s| s.iter().find(|s| s["id"] == sale)).cloned().context("sale listed")?;
    assert_eq!(mem["stock_left"], 0);
    let (left, units, orders, over) = pg.sql(&db_name(&url), move |c| {
        let r = c.query_one(
            "SELECT s.stock_left, (SELECT COALESCE(SUM(qty), 0)::BIGINT FROM orders WHERE sale_id = s.id),
                    (SELECT COUNT(*) FROM orders WHERE sale_id = s.id),
                    (SELECT COUNT(*) FROM (SELECT identity FROM orders WHERE sale_id = s.id GROUP BY identity HAVING SUM(qty) > 2) o)
             FROM sales s WHERE s.id = $1",
            &[&sale],
        )?;
        Ok((r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2), r.get::<_, i64>(3)))
    })?;
    assert_eq!((left, units, orders as usize, over), (0, i64::from(STOCK), order_ids.len(), 0), "PostgreSQL agrees with the room");
    Ok(())
}

fn db_name(url: &str) -> String {
    url.rsplit('/').next().and_then(|d| d.split('?').next()).unwrap_or_default().to_string()
}

/// What an outage did to the orders.
#[derive(Debug)]
struct OutageCheck {
    /// Confirmations buyers received before, during and after the outage began.
    acked: usize,
    /// `unavailable` answers to buys sent once PostgreSQL was down.
    unavailable_while_down: usize,
    /// Confirmations of buys sent once PostgreSQL was down (must be none).
    confirmed_while_down: usize,
    /// Acknowledged orders a fresh server did not give back to their key, or PostgreSQL lacks.
    lost: usize,
    /// Keys with more than one order.
    doubled: usize,
}

const BUYERS: usize = 40;

/// A storm of buys across a PostgreSQL outage, then every key retried on a fresh server.
async fn buys_across_a_postgres_outage(faults: &str) -> Result<OutageCheck> {
    let mut pg = blocking(TestPostgres::start).await??;
    let url = pg.fresh_database()?;
    let dir = tempfile::tempdir()?;
    let (server, api) = spawn_server(dir.path(), &url, faults).await?;
    let api = Arc::new(api);
    let room = "outage";
    let host = api.dev_token(room, "host", "host").await?;
    let product = api.create_product(room, &host, "Sneakers", 100_000).await?;
    let sale = api.start_sale(room, &host, product, 100_000, 10_000).await?;
    let mut tokens = Vec::new();
    for b in 0..BUYERS {
        tokens.push(api.dev_token(room, "viewer", &format!("b{b}")).await?);
    }
    let acks: Arc<Mutex<HashMap<(usize, String), i64>>> = Arc::default();
    let sent: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let (down, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (unavailable_while_down, confirmed_while_down) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for (b, token) in tokens.iter().cloned().enumerate() {
        let (api, acks, sent, down, stop) = (api.clone(), acks.clone(), sent.clone(), down.clone(), stop.clone());
        let (unavailable, confirmed) = (unavailable_while_down.clone(), confirmed_while_down.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("b{b}-{n}");
                n += 1;
                let sent_while_down = down.load(Ordering::SeqCst);
                sent.lock().map(|mut s| s.push((b, key.clone()))).ok();
                let Ok(frames) = api.frame(room, &token, &buy_frame(sale, &key)).await else { continue };
                match answer_of(&frames) {
                    Answer::Confirmed(id, _) => {
                        acks.lock().map(|mut a| a.insert((b, key), id)).ok();
                        if sent_while_down {
                            confirmed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Answer::Unavailable if sent_while_down => {
                        unavailable.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
            }
        }));
    }
    // PostgreSQL goes down mid-storm, with buys in flight...
    wait_for("200 confirmations before the outage", Duration::from_secs(60), || acks.lock().map(|a| a.len() >= 200).unwrap_or(false)).await?;
    // Best inside a commit: the moment an answer sent before its commit would be lost. The
    // control's 1 s commit delay makes that window wide; without it a commit is brief, and the
    // outage comes after a bounded wait either way.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !commit_in_flight(&api).await? {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut pg = blocking(move || pg.stop().map(|()| pg)).await??;
    down.store(true, Ordering::SeqCst);
    // ...and buys keep coming while it is down.
    wait_for("100 buys answered unavailable while down", Duration::from_secs(60), || unavailable_while_down.load(Ordering::SeqCst) >= 100).await?;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await?;
    }
    pg = blocking(move || pg.restart().map(|()| pg)).await??;
    // The same server takes buys again once it has reconnected.
    let probe_token = tokens[0].clone();
    let mut probe_answer = Answer::Unavailable;
    let deadline = Instant::now() + Duration::from_secs(30);
    // `unavailable` until the writer has reconnected; `buy_not_placed` (this buyer's buy rate
    // limit, spent by the storm) says to tap again in a moment, as the page does.
    let not_placed = |a: &Answer| matches!(a, Answer::Other(Value::Array(frames)) if frames.iter().any(|f| f["type"] == "buy_not_placed"));
    while Instant::now() < deadline {
        probe_answer = answer_of(&api.frame(room, &probe_token, &buy_frame(sale, "probe")).await?);
        if probe_answer != Answer::Unavailable && !not_placed(&probe_answer) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(matches!(probe_answer, Answer::Confirmed(..)), "the server took no buy after PostgreSQL came back: {probe_answer:?}");
    drop(server);

    // A fresh server knows only what PostgreSQL holds: every key sent gets its answer there.
    let (_fresh, api) = spawn_server(dir.path(), &url, "").await?;
    let acks = acks.lock().map(|a| a.clone()).unwrap_or_default();
    let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();
    let mut lost = 0;
    for (b, key) in &sent {
        let answer = retry_until_answered(&api, room, &tokens[*b], &buy_frame(sale, key)).await?;
        if let Some(id) = acks.get(&(*b, key.clone())) {
            if !matches!(answer, Answer::Confirmed(again, _) if again == *id) {
                lost += 1;
            }
        }
    }
    let acked_ids: Vec<i64> = acks.values().copied().collect();
    let (missing, doubled) = pg.sql(&db_name(&url), move |c| {
        let missing: i64 = c.query_one("SELECT COUNT(*) FROM unnest($1::BIGINT[]) a(id) WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = a.id)", &[&acked_ids])?.get(0);
        let doubled: i64 = c
            .query_one("SELECT COUNT(*) FROM (SELECT 1 FROM orders GROUP BY identity, idempotency_key HAVING COUNT(*) > 1) d", &[])?
            .get(0);
        Ok((missing, doubled))
    })?;
    Ok(OutageCheck {
        acked: acks.len(),
        unavailable_while_down: unavailable_while_down.load(Ordering::SeqCst),
        confirmed_while_down: confirmed_while_down.load(Ordering::SeqCst),
        lost: lost.max(usize::try_from(missing).unwrap_or(0)),
        doubled: usize::try_from(doubled).unwrap_or(usize::MAX),
    })
}

async fn commit_in_flight(api: &Api) -> Result<bool> {
    let stats: Value = api.http.get(format!("{}/api/stats/store", api.base)).send().await?.json().await?;
    Ok(stats["writer"]["commit_in_flight"] == true)
}

async fn retry_until_answered(api: &Api, room: &str, token: &str, frame: &Value) -> Result<Answer> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = answer_of(&api.frame(room, token, frame).await?);
        // `unavailable`, or `buy_not_placed` (the buyer's rate limit): not answered yet.
        let not_placed = matches!(&answer, Answer::Other(Value::Array(frames)) if frames.iter().any(|f| f["type"] == "buy_not_placed"));
        if !(matches!(answer, Answer::Unavailable) || not_placed) || Instant::now() > deadline {
            return Ok(answer);
        }
        tokio::time::sleep(Duration::from_millis(if not_placed { 200 } else { 20 })).await;
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_buys_are_answered_unavailable_and_none_is_lost_or_doubled() -> Result<()> {
    let check = buys_across_a_postgres_outage("").await?;
    println!("postgres_outage {check:?}");
    assert!(check.acked >= 200, "{check:?}");
    assert!(check.unavailable_while_down >= 100, "buys while PostgreSQL is down are answered unavailable: {check:?}");
    assert_eq!(check.confirmed_while_down, 0, "nothing is confirmed while PostgreSQL is down: {check:?}");
    assert_eq!(check.lost, 0, "every acknowledged order survives the outage with its key: {check:?}");
    assert_eq!(check.doubled, 0, "no key has two orders: {check:?}");
    Ok(())
}

/// Control run: the broken variant acknowledges each batch before its commit (and holds the
/// commit 1 s, so the outage lands inside that window); the same outage must lose orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_ack_before_commit_loses_orders_to_the_same_outage() -> Result<()> {
    let check = buys_across_a_postgres_outage("ack_before_commit,commit_delay_ms=1000").await?;
    println!("postgres_outage_control {check:?}");
    assert!(check.lost > 0, "the check must catch answers sent before the commit: {check:?}");
    Ok(())
}

/// What a `kill -9` inside a held commit left in PostgreSQL.
#[derive(Debug)]
struct KillCheck {
    acked: usize,
    /// Acknowledged orders PostgreSQL does not have.
    lost: usize,
    /// `stock_left + units sold == stock_total`, and nothing below zero.
    stock_consistent: bool,
    /// The first acknowledged key, retried on a restarted server, got its original order.
    replayed_original: Option<bool>,
}

/// The held batch begins once this many buys were taken.
const HOLD_AFTER_BUYS: u64 = 400;
const KILL_LIMIT: u32 = 20;

async fn kill_9_inside_a_held_commit(faults: &str) -> Result<KillCheck> {
    let pg = blocking(TestPostgres::start).await??;
    let url = pg.fresh_database()?;
    let dir = tempfile::tempdir()?;
    let (mut child, api) = spawn_server(dir.path(), &url, &format!("hold_commit_after_buys={HOLD_AFTER_BUYS},{faults}")).await?;
    let api = Arc::new(api);
    let room = "crash";
    let host = api.dev_token(room, "host", "host").await?;
    let stock = BUYERS as u32 * KILL_LIMIT;
    let product = api.create_product(room, &host, "Sneakers", stock).await?;
    let sale = api.start_sale(room, &host, product, stock, KILL_LIMIT).await?;
    let acked: Arc<Mutex<Vec<(usize, String, i64)>>> = Arc::default();
    let mut tasks = Vec::new();
    for b in 0..BUYERS {
        let token = api.dev_token(room, "viewer", &format!("b{b}")).await?;
        let (api, acked) = (api.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..KILL_LIMIT {
                let key = format!("b{b}-{n}");
                let Ok(frames) = api.frame(room, &token, &buy_frame(sale, &key)).await else { return };
                if let Answer::Confirmed(id, _) = answer_of(&frames) {
                    acked.lock().map(|mut a| a.push((b, key, id))).ok();
                }
            }
        }));
    }
    // Kill once the writer holds a batch between its writes and its commit, and every answer
    // the store handed out has reached its buyer: nothing more can arrive before the kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats: Value = api.http.get(format!("{}/api/stats/store", api.base)).send().await?.json().await?;
        let w = &stats["writer"];
        let received = acked.lock().map(|a| a.len()).unwrap_or(0) as u64;
        let held = w["commit_in_flight"] == true && w["buys"].as_u64().unwrap_or(0) >= HOLD_AFTER_BUYS;
        if held && w["confirmations_sent"].as_u64() == Some(received) {
            break;
        }
        ensure!(Instant::now() < deadline, "the writer never held a commit: {w}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let pid = child.id().context("child pid")?;
    ensure!(std::process::Command::new("kill").args(["-9", &pid.to_string()]).status()?.success(), "kill -9 delivered");
    child.wait().await?;
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let ids: Vec<i64> = acked.iter().map(|a| a.2).collect();
    // PostgreSQL rolls the dead session's open transaction back; wait until it has let go of it.
    let db = db_name(&url);
    let (missing, left, total, sold) = pg.sql(&db, move |c| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let open: i64 = c.query_one("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'sellcast'", &[])?.get(0);
            if open == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let missing: i64 = c.query_one("SELECT COUNT(*) FROM unnest($1::BIGINT[]) a(id) WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = a.id)", &[&ids])?.get(0);
        let r = c.query_one(
            "SELECT stock_left, stock_total, (SELECT COALESCE(SUM(qty), 0)::BIGINT FROM orders WHERE sale_id = $1) FROM sales WHERE id = $1",
            &[&sale],
        )?;
        Ok((missing, r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)))
    })?;
    let mut check = KillCheck {
        acked: acked.len(),
        lost: usize::try_from(missing).unwrap_or(usize::MAX),
        stock_consistent: left >= 0 && sold <= total && left + sold == total,
        replayed_original: None,
    };
    if let Some((b, key, id)) = acked.first().cloned() {
        let (_restarted, api) = spawn_server(dir.path(), &url, "").await?;
        let token = api.dev_token(room, "viewer", &format!("b{b}")).await?;
        let again = retry_until_answered(&api, room, &token, &buy_frame(sale, &key)).await?;
        check.replayed_original = Some(matches!(again, Answer::Confirmed(again, _) if again == id));
    }
    Ok(check)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_inside_a_commit_on_postgres_loses_no_acknowledged_order() -> Result<()> {
    let check = kill_9_inside_a_held_commit("").await?;
    println!("postgres_kill_9 {check:?}");
    assert!(check.acked > 0 && (check.acked as u64) < HOLD_AFTER_BUYS, "killed mid-storm: {check:?}");
    assert_eq!(check.lost, 0, "acknowledged orders missing after kill -9: {check:?}");
    assert!(check.stock_consistent, "never oversold, stock and orders agree: {check:?}");
    assert_eq!(check.replayed_original, Some(true), "a key retried after the crash gets its original order: {check:?}");
    Ok(())
}

/// Control run: with the answer moved before the commit, the same kill loses acknowledged orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_ack_before_commit_loses_orders_to_the_same_kill_on_postgres() -> Result<()> {
    let check = kill_9_inside_a_held_commit("ack_before_commit").await?;
    println!("postgres_kill_9_control {check:?}");
    assert!(check.lost > 0, "the broken variant went unnoticed: {check:?}");
    Ok(())
}
