//! Orders are committed before they are acknowledged. The server runs as a child process on a
//! real SQLite file, with the store's test-only faults (`SELLCAST_FAULT`, compiled in through
//! this crate's dev-dependency on `sellcast-store/fault-injection`):
//! - every `order_confirmed` a buyer receives is already readable from a second, read-only
//!   connection, and the writer's connection runs `synchronous=FULL`;
//! - `kill -9` while a commit is held open (written, not committed) loses no acknowledged order,
//!   oversells nothing, and the restarted server gives a retried key its original answer;
//! - control runs: with the answer moved before the commit (`ack_before_commit`) both checks
//!   fail, so they can catch the bug they are named for.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::Api;
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// Between a batch's writes and its commit: long enough that an answer sent before the commit
/// reaches the buyer while its order is still unreadable.
const COMMIT_DELAY: &str = "commit_delay_ms=25";
/// The crash test holds the first batch that begins once this many buys were taken.
const HOLD_AFTER_BUYS: u64 = 1500;
const BUYERS: usize = 100;
const LIMIT: u32 = 75;
const STOCK: u32 = BUYERS as u32 * LIMIT;

/// An order the server acknowledged: (identity, idempotency key, order id).
type Ack = (String, String, i64);

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn spawn_server(db: &Path, port: u16, faults: &str) -> Result<(Child, Api)> {
    let child = Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["serve", "--http-connections-per-ip", "100000", "--http", &format!("127.0.0.1:{port}"), "--udp-port", "0", "--db"])
        .arg(db)
        .env("RUST_LOG", "warn")
        // Every client here is 127.0.0.1: no per-address cap below the server's, no rate limits.
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

async fn store_stats(api: &Api) -> Result<Value> {
    Ok(api.http.get(format!("{}/api/stats/store", api.base)).send().await?.json().await?)
}

/// A connection of our own on the server's file that can only read.
fn reader(db: &Path) -> Result<Connection> {
    Ok(Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?)
}

fn order_on_disk(conn: &Connection, (identity, key, order_id): &Ack) -> Result<bool> {
    let found: i64 = conn.query_row(
        "SELECT COUNT(*) FROM orders WHERE id = ?1 AND identity = ?2 AND idempotency_key = ?3 AND qty = 1",
        rusqlite::params![order_id, identity, key],
        |r| r.get(0),
    )?;
    Ok(found == 1)
}

/// A room with one sale of `STOCK` units, `LIMIT` per buyer; returns the sale id.
async fn open_sale(api: &Api, room: &str) -> Result<i64> {
    let host = api.dev_token(room, "host", "host").await?;
    let product = api.create_product(room, &host, "Sneakers", STOCK).await?;
    api.start_sale(room, &host, product, STOCK, LIMIT).await
}

/// `BUYERS` buyers each buy `per_buyer` times with fresh keys; `on_ack` sees every confirmation
/// as it arrives. A buyer stops at its first transport error (the server is gone).
async fn storm<F>(api: &Arc<Api>, room: &str, sale: i64, per_buyer: u32, on_ack: F) -> Result<Vec<tokio::task::JoinHandle<()>>>
where
    F: Fn(Ack) + Send + Sync + 'static,
{
    let on_ack = Arc::new(on_ack);
    let mut tokens = Vec::with_capacity(BUYERS);
    for b in 0..BUYERS {
        tokens.push(api.dev_token(room, "viewer", &format!("b{b}")).await?);
    }
    let mut tasks = Vec::new();
    for (b, token) in tokens.into_iter().enumerate() {
        let (api, on_ack, room) = (api.clone(), on_ack.clone(), room.to_string());
        tasks.push(tokio::spawn(async move {
            for n in 0..per_buyer {
                let key = format!("b{b}-{n}");
                let frame = json!({"type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": key});
                let Ok(frames) = api.frame(&room, &token, &frame).await else { return };
                if let Some(id) = frames.iter().find(|f| f["type"] == "order_confirmed").and_then(|f| f["order_id"].as_i64()) {
                    on_ack((format!("b{b}"), key, id));
                }
            }
        }));
    }
    Ok(tasks)
}

/// Confirmations received, and how many of them a second connection could not find at once.
struct ReadCheck {
    confirmed: usize,
    unreadable: usize,
    synchronous: Value,
    journal_mode: Value,
}

async fn confirmations_checked_against_a_reader(faults: &str) -> Result<ReadCheck> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sellcast.db");
    let (_child, api) = spawn_server(&db, free_port()?, faults).await?;
    let api = Arc::new(api);
    let sale = open_sale(&api, "durable").await?;
    let conn = Arc::new(Mutex::new(reader(&db)?));
    let confirmed = Arc::new(AtomicUsize::new(0));
    let unreadable = Arc::new(AtomicUsize::new(0));
    let (c, u) = (confirmed.clone(), unreadable.clone());
    let tasks = storm(&api, "durable", sale, 6, move |ack| {
        c.fetch_add(1, Ordering::SeqCst);
        let found = conn.lock().map_err(|_| anyhow::anyhow!("reader poisoned")).and_then(|c| order_on_disk(&c, &ack));
        if !found.unwrap_or(false) {
            u.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await?;
    for t in tasks {
        t.await?;
    }
    let stats = store_stats(&api).await?;
    Ok(ReadCheck {
        confirmed: confirmed.load(Ordering::SeqCst),
        unreadable: unreadable.load(Ordering::SeqCst),
        synchronous: stats["durability"]["synchronous"].clone(),
        journal_mode: stats["durability"]["journal_mode"].clone(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_confirmed_order_is_already_readable_by_a_second_connection() -> Result<()> {
    let check = confirmations_checked_against_a_reader(COMMIT_DELAY).await?;
    assert_eq!(check.confirmed, BUYERS * 6, "every buy was confirmed");
    assert_eq!(check.unreadable, 0, "confirmations whose order a second connection could not yet read");
    assert_eq!(check.synchronous, "full", "the writer's connection fsyncs every commit");
    assert_eq!(check.journal_mode, "wal");
    println!("durable_read confirmed={} unreadable=0 synchronous=full", check.confirmed);
    Ok(())
}

/// Control run: the answer moved before the commit is caught by the same check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_ack_before_commit_is_caught_by_the_second_connection() -> Result<()> {
    let check = confirmations_checked_against_a_reader(&format!("ack_before_commit,{COMMIT_DELAY}")).await?;
    println!("control_read confirmed={} unreadable={}", check.confirmed, check.unreadable);
    assert!(check.unreadable > 0, "the broken variant went unnoticed ({} confirmations)", check.confirmed);
    Ok(())
}

/// What a crash held inside a commit left behind.
struct CrashCheck {
    acked: Vec<Ack>,
    /// Acknowledged orders missing from the file after the kill.
    lost: usize,
    orders_on_disk: i64,
    db: tempfile::TempDir,
    sale: i64,
}

async fn kill_9_inside_a_held_commit(faults: &str) -> Result<CrashCheck> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sellcast.db");
    let (mut child, api) = spawn_server(&db, free_port()?, &format!("hold_commit_after_buys={HOLD_AFTER_BUYS},{faults}")).await?;
    let api = Arc::new(api);
    let sale = open_sale(&api, "crash").await?;
    let acked: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let sink = acked.clone();
    let tasks = storm(&api, "crash", sale, LIMIT, move |ack| {
        if let Ok(mut a) = sink.lock() {
            a.push(ack);
        }
    })
    .await?;

    // Kill once the writer holds a batch between its writes and its commit, and every answer
    // the store has handed out has reached its buyer: nothing more can arrive before the kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let w = store_stats(&api).await?["writer"].clone();
        let received = acked.lock().map(|a| a.len()).unwrap_or(0) as u64;
        let held = w["commit_in_flight"] == true && w["buys"].as_u64().unwrap_or(0) >= HOLD_AFTER_BUYS;
        if held && w["confirmations_sent"].as_u64() == Some(received) {
            break;
        }
        ensure!(Instant::now() < deadline, "the writer never held a commit: {w}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let pid = child.id().context("child pid")?;
    let killed = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status()?;
    assert!(killed.success(), "kill -9 delivered");
    child.wait().await?;
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let conn = reader(&db)?;
    let mut lost = 0;
    for ack in &acked {
        if !order_on_disk(&conn, ack)? {
            lost += 1;
        }
    }
    let orders_on_disk: i64 = conn.query_row("SELECT COUNT(*) FROM orders WHERE sale_id = ?1", [sale], |r| r.get(0))?;
    Ok(CrashCheck { acked, lost, orders_on_disk, db: dir, sale })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_inside_a_commit_loses_no_acknowledged_order() -> Result<()> {
    let crash = kill_9_inside_a_held_commit("").await?;
    let acked = crash.acked.len();
    assert!(acked > 0 && (acked as u64) < HOLD_AFTER_BUYS, "killed mid-storm ({acked} acknowledged)");
    assert_eq!(crash.lost, 0, "acknowledged orders missing after kill -9 (of {acked})");
    let db = crash.db.path().join("sellcast.db");
    let sale = crash.sale;
    {
        let conn = reader(&db)?;
        let (left, total, sold): (i64, i64, i64) = conn.query_row(
            "SELECT stock_left, stock_total, (SELECT COALESCE(SUM(qty),0) FROM orders WHERE sale_id = ?1) FROM sales WHERE id = ?1",
            [sale],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        assert!(left >= 0 && sold <= total, "never oversold");
        assert_eq!(left + sold, total, "stock and orders agree");
    }

    // Restarted on the same file: the room reloads the same stock, and an acknowledged key
    // retried after the crash gets its original order back.
    let (_child, api2) = spawn_server(&db, free_port()?, "").await?;
    let products = api2.products("crash").await?;
    let left: i64 = reader(&db)?.query_row("SELECT stock_left FROM sales WHERE id = ?1", [sale], |r| r.get(0))?;
    let mem = products["sales"].as_array().and_then(|s| s.iter().find(|s| s["id"] == sale)).cloned().context("sale reloaded")?;
    assert_eq!(mem["stock_left"].as_i64(), Some(left));
    let (identity, key, order_id) = crash.acked[0].clone();
    let token = api2.dev_token("crash", "viewer", &identity).await?;
    let again = api2.frame("crash", &token, &json!({"type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": key})).await?;
    let answer = again.iter().find(|f| f["type"] == "order_confirmed").context("replayed confirmation")?;
    assert_eq!(answer["order_id"].as_i64(), Some(order_id));
    println!(
        "crash_safety acknowledged_before_kill={acked} acknowledged_on_disk={} orders_on_disk={} stock_left_after={left}",
        acked - crash.lost,
        crash.orders_on_disk
    );
    Ok(())
}

/// Control run: with the answer moved before the commit, the same kill loses acknowledged orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_ack_before_commit_loses_orders_to_the_same_kill() -> Result<()> {
    let crash = kill_9_inside_a_held_commit("ack_before_commit").await?;
    println!("control_crash acknowledged={} lost={}", crash.acked.len(), crash.lost);
    assert!(crash.lost > 0, "the broken variant went unnoticed ({} acknowledged)", crash.acked.len());
    Ok(())
}
