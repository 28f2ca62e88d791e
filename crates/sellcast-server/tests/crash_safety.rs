//! `kill -9` in the middle of a purchase storm loses no acknowledged order and oversells
//! nothing: the server runs as a child process on a real SQLite file and is restarted on it.

mod common;

use std::net::TcpListener;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::Api;
use serde_json::json;
use tokio::process::{Child, Command};

const STOCK: u32 = 15_000;
const LIMIT: u32 = 75;

/// Orders the server acknowledged: (identity, idempotency key, order id, quantity).
type Acked = Arc<Mutex<Vec<(String, String, i64, u32)>>>;

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn spawn_server(db: &std::path::Path, port: u16) -> Result<(Child, Api)> {
    let child = Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--udp-port", "0", "--db"])
        .arg(db)
        .env("RUST_LOG", "warn")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_storm_loses_no_acknowledged_order() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sellcast.db");
    let port = free_port()?;
    let (mut child, api) = spawn_server(&db, port).await?;
    let api = Arc::new(api);
    let room = "crash";
    let host = api.dev_token(room, "host", "host").await?;
    let product = api.create_product(room, &host, "Sneakers", 1000).await?;
    let sale = api.start_sale(room, &host, product, STOCK, LIMIT).await?;

    // 200 buyers hammering the sale, each with fresh keys, recording every acknowledgement.
    let acked: Acked = Arc::default();
    let confirmed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for b in 0..200 {
        let token = api.dev_token(room, "viewer", &format!("b{b}")).await?;
        let (api, acked, confirmed) = (api.clone(), acked.clone(), confirmed.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..LIMIT {
                let key = format!("b{b}-{n}");
                let frame = json!({"type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": key});
                match api.frame("crash", &token, &frame).await {
                    Ok(frames) => {
                        if let Some(f) = frames.iter().find(|f| f["type"] == "order_confirmed") {
                            let id = f["order_id"].as_i64().unwrap_or(-1);
                            acked.lock().map(|mut a| a.push((format!("b{b}"), key, id, 1))).ok();
                            confirmed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    // Kill as soon as a good part of the storm was acknowledged. The watcher is an OS thread,
    // so the busy test runtime cannot delay the kill.
    let pid = child.id().context("child pid")?;
    let watch = confirmed.clone();
    let killer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while watch.load(Ordering::SeqCst) < 200 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        std::process::Command::new("kill").args(["-9", &pid.to_string()]).status()
    });
    let killed = killer.join().map_err(|_| anyhow::anyhow!("killer thread panicked"))??;
    assert!(killed.success(), "kill -9 delivered");
    child.wait().await?;
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    assert!(acked.len() >= 200, "the storm was under way when killed ({} acked)", acked.len());
    assert!(acked.len() < 200 * LIMIT as usize, "killed mid-storm, not after it");

    // Every acknowledged order is on disk, and nothing beyond stock was sold.
    {
        let conn = rusqlite::Connection::open(&db)?;
        for (identity, key, order_id, qty) in &acked {
            let found: i64 = conn.query_row(
                "SELECT COUNT(*) FROM orders WHERE id = ?1 AND identity = ?2 AND idempotency_key = ?3 AND qty = ?4",
                rusqlite::params![order_id, identity, key, qty],
                |r| r.get(0),
            )?;
            assert_eq!(found, 1, "acknowledged order {order_id} ({key}) is durable");
        }
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
    let (_child, api2) = spawn_server(&db, free_port()?).await?;
    let products = api2.products(room).await?;
    let conn = rusqlite::Connection::open(&db)?;
    let left: i64 = conn.query_row("SELECT stock_left FROM sales WHERE id = ?1", [sale], |r| r.get(0))?;
    let mem = products["sales"].as_array().and_then(|s| s.iter().find(|s| s["id"] == sale)).cloned().context("sale reloaded")?;
    assert_eq!(mem["stock_left"].as_i64(), Some(left));
    let (identity, key, order_id, _) = acked[0].clone();
    let token = api2.dev_token(room, "viewer", &identity).await?;
    let again = api2.frame(room, &token, &json!({"type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": key})).await?;
    let answer = again.iter().find(|f| f["type"] == "order_confirmed").context("replayed confirmation")?;
    assert_eq!(answer["order_id"].as_i64(), Some(order_id));
    println!("crash_safety acknowledged_before_kill={} durable={} stock_left_after={left}", acked.len(), acked.len());
    Ok(())
}
