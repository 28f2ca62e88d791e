//! 2,000 concurrent one-tap buys, 30% retried with the same key, on 100 units with a per-user
//! limit of 2, through the real server (HTTP -> show task -> SQLite group commit).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use common::{percentile, Api};
use serde_json::{json, Value};

const BUYS: usize = 2_000;
const BUYERS: usize = 400;
const STOCK: u32 = 100;
const LIMIT: u32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchase_storm_sells_exactly_the_stock() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sellcast.db");
    let mut config = sellcast_server::Config::local(&db);
    config.http_limits.per_ip = 100_000;
    let server = sellcast_server::start(config).await?;
    let api = Arc::new(Api::new(format!("http://{}", server.http_addr)));
    let room = "storm";
    let host = api.dev_token(room, "host", "host-1").await?;
    let product = api.create_product(room, &host, "Serum 30ml", 500).await?;
    let sale = api.start_sale(room, &host, product, STOCK, LIMIT).await?;

    let mut tokens = Vec::new();
    for i in 0..BUYERS {
        tokens.push(api.dev_token(room, "viewer", &format!("buyer-{i}")).await?);
    }
    // Each buy: (buyer, key, qty). 30% are sent twice with the same key, the retry racing
    // the original (concurrent) for half of them and following it for the other half.
    let plan: Vec<(usize, String, u32)> = (0..BUYS).map(|i| (i % BUYERS, format!("key-{i}"), 1 + (i % 3 == 0) as u32)).collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (n, (buyer, key, qty)) in plan.iter().cloned().enumerate() {
        let api = api.clone();
        let token = tokens[buyer].clone();
        let retry = n % 10 < 3;
        tasks.push(tokio::spawn(async move {
            let frame = json!({"type": "buy", "sale_id": sale, "qty": qty, "idempotency_key": key});
            let t0 = Instant::now();
            let first = if retry && n % 2 == 0 {
                let (a, b) = tokio::join!(api.frame("storm", &token, &frame), api.frame("storm", &token, &frame));
                (a?, Some(b?))
            } else {
                let a = api.frame("storm", &token, &frame).await?;
                let b = if retry { Some(api.frame("storm", &token, &frame).await?) } else { None };
                (a, b)
            };
            let latency = t0.elapsed().as_secs_f64() * 1000.0;
            anyhow::Ok((buyer, key, qty, first.0, first.1, latency))
        }));
    }
    let mut answers: HashMap<String, Value> = HashMap::new();
    let mut per_buyer: HashMap<usize, u32> = HashMap::new();
    let mut order_ids = std::collections::HashSet::new();
    let mut latencies = Vec::new();
    let mut sold = 0u32;
    for t in tasks {
        let (buyer, key, qty, first, retry, latency) = t.await??;
        latencies.push(latency);
        let answer = first.into_iter().find(|f| f["type"] == "order_confirmed" || f["type"] == "buy_rejected").expect("every buy is answered");
        if let Some(retry) = retry {
            let again = retry.into_iter().find(|f| f["type"] == "order_confirmed" || f["type"] == "buy_rejected").expect("retry answered");
            assert_eq!(strip(&again), strip(&answer), "a retry gets the original answer ({key})");
        }
        if answer["type"] == "order_confirmed" {
            assert_eq!(answer["qty"], qty);
            assert!(order_ids.insert(answer["order_id"].as_i64().expect("order id")), "order ids are unique");
            *per_buyer.entry(buyer).or_insert(0) += qty;
            sold += qty;
        } else {
            let reason = answer["reason"].as_str().unwrap_or("");
            assert!(["sold_out", "limit_reached"].contains(&reason), "unexpected rejection {answer}");
        }
        answers.insert(key, answer);
    }
    let elapsed = started.elapsed().as_secs_f64();

    assert_eq!(sold, STOCK, "exactly the stock is sold");
    assert!(per_buyer.values().all(|q| *q <= LIMIT), "nobody over the per-user limit");

    // Memory (what the room serves) and the database agree.
    let products = api.products(room).await?;
    let mem = products["sales"].as_array().and_then(|s| s.iter().find(|s| s["id"] == sale)).cloned().expect("sale listed");
    assert_eq!(mem["stock_left"], 0);
    let conn = rusqlite::Connection::open(&db)?;
    let (db_left, db_sold, db_orders): (i64, i64, i64) = conn.query_row(
        "SELECT s.stock_left, (SELECT COALESCE(SUM(qty),0) FROM orders WHERE sale_id = s.id), (SELECT COUNT(*) FROM orders WHERE sale_id = s.id) FROM sales s WHERE s.id = ?1",
        [sale],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    assert_eq!((db_left, db_sold, db_orders as usize), (0, i64::from(STOCK), order_ids.len()));
    let over: i64 = conn.query_row(
        "SELECT COUNT(*) FROM (SELECT identity, SUM(qty) q FROM orders WHERE sale_id = ?1 GROUP BY identity HAVING q > ?2)",
        rusqlite::params![sale, LIMIT],
        |r| r.get(0),
    )?;
    assert_eq!(over, 0);

    latencies.sort_by(|a, b| a.total_cmp(b));
    println!(
        "purchase_storm buys={BUYS} retries={} elapsed_s={elapsed:.2} taps_per_s={:.0} ack_ms p50={:.1} p99={:.1}",
        BUYS * 3 / 10,
        (BUYS as f64 * 1.3) / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    server.shutdown().await;
    Ok(())
}

/// An answer without fields that may legitimately differ between deliveries (none today, but
/// the comparison should be about the decision).
fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("server_now_ms");
    }
    v
}
