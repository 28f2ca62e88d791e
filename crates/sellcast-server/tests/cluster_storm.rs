//! The purchase storm split over three nodes (cluster mode) against PostgreSQL: a real
//! `nats-server`, a throwaway PostgreSQL server and three real `sellcast` nodes sharing it
//! (child processes). The room is owned by node-a (its host publishes there); buys arrive
//! over the HTTP frames API on all three nodes at once, node-b and node-c forwarding theirs
//! to the owner. Exactly the stock is sold, nobody over the per-user limit, every retry (sent
//! to another node than its original) gets the original answer, and PostgreSQL agrees with
//! the room.
//!
//! HTTP and NATS ports are fixed in 19750-19759; media ports are chosen by the OS.

mod cluster_support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cluster_support::{host_token, NatsServer, JWT_SECRET};
use sellcast_peer::{PublishOptions, Publisher};
use sellcast_store::testing::TestPostgres;
use serde_json::{json, Value};

const ROOM: &str = "storm";

/// `sellcast serve` in cluster mode with `--postgres`, killed on drop.
struct PgNode {
    _child: tokio::process::Child,
    base: String,
    http: reqwest::Client,
}

impl PgNode {
    async fn start(dir: &Path, id: &str, port: u16, nats_url: &str, postgres: &str) -> Result<Self> {
        let base = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join(format!("{id}.log")))?;
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sellcast"))
            .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--udp-port", "0", "--media-threads", "1"])
            .args(["--http-connections-per-ip", "100000", "--postgres", postgres, "--db"])
            .arg(dir.join(format!("{id}.db")))
            .env("SELLCAST_CLUSTER", nats_url)
            .env("SELLCAST_NODE_ID", id)
            .env("SELLCAST_PUBLIC_URL", &base)
            .env("SELLCAST_JWT_SECRET", JWT_SECRET)
            .env("SELLCAST_SIGNAL_RATE", "0")
            .env("SELLCAST_API_RATE", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("spawning sellcast")?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let node = Self { _child: child, base, http };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if matches!(node.http.get(format!("{}/healthz", node.base)).send().await, Ok(r) if r.status().is_success()) {
                return Ok(node);
            }
            ensure!(Instant::now() < deadline, "node {id} did not answer /healthz within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn frame(&self, bearer: &str, frame: &Value) -> Result<Vec<Value>> {
        let resp = self.http.post(format!("{}/api/rooms/{ROOM}/frames", self.base)).bearer_auth(bearer).json(frame).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        ensure!(status.is_success(), "frame: {status} {body}");
        Ok(body.as_array().cloned().unwrap_or_default())
    }
}

fn token(role: &str, identity: &str) -> Result<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["token", "--room", ROOM, "--role", role, "--identity", identity, "--jwt-secret", JWT_SECRET])
        .output()?;
    ensure!(out.status.success(), "sellcast token failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// A buy's answer, without the server's clock.
#[derive(Debug, Clone, PartialEq)]
enum BuyAnswer {
    Confirmed(i64, Value),
    Rejected(Value),
    Other(Value),
}

fn answer_of(frames: &[Value]) -> BuyAnswer {
    for f in frames {
        let mut stripped = f.clone();
        if let Some(o) = stripped.as_object_mut() {
            o.remove("server_now_ms");
        }
        match f["type"].as_str() {
            Some("order_confirmed") => return BuyAnswer::Confirmed(f["order_id"].as_i64().unwrap_or(-1), stripped),
            Some("buy_rejected") => return BuyAnswer::Rejected(stripped),
            _ => {}
        }
    }
    BuyAnswer::Other(Value::Array(frames.to_vec()))
}

fn db_name(url: &str) -> String {
    url.rsplit('/').next().and_then(|d| d.split('?').next()).unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchase_storm_over_three_nodes_sells_exactly_the_stock_and_postgres_agrees() -> Result<()> {
    const BUYS: usize = 300;
    const BUYERS: usize = 60;
    const STOCK: u32 = 50;
    const LIMIT: u32 = 2;
    let pg = tokio::task::spawn_blocking(TestPostgres::start).await??;
    let url = pg.fresh_database()?;
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start(dir.path(), 19750)?;
    let a = PgNode::start(dir.path(), "node-a", 19751, &nats.url(), &url).await?;
    let b = PgNode::start(dir.path(), "node-b", 19752, &nats.url(), &url).await?;
    let c = PgNode::start(dir.path(), "node-c", 19753, &nats.url(), &url).await?;
    let options = PublishOptions { token: Some(host_token(ROOM)?), bitrate_bps: 150_000, fps: 10, ..PublishOptions::default() };
    let host_peer = Publisher::connect(&a.base, ROOM, options).await.context("the host publishing to node-a")?;

    let host = host_token(ROOM)?;
    let serum = json!({ "title": "Serum", "price_minor": 990, "currency": "EUR", "stock": 500 });
    let product = cluster_support::create_product(&a.http, &a.base, ROOM, &host, &serum).await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let start = json!({ "type": "start_sale", "product_id": product, "price_minor": 500, "stock": STOCK,
        "per_user_limit": LIMIT, "starts_at_ms": now - 1000, "ends_at_ms": now + 600_000 });
    a.frame(&host, &start).await?;
    let listed: Value = a.http.get(format!("{}/api/rooms/{ROOM}/products", a.base)).send().await?.json().await?;
    let sale = listed["sales"].as_array().and_then(|s| s.first()).and_then(|s| s["id"].as_i64()).context("the sale")?;

    let mut tokens = Vec::new();
    for i in 0..BUYERS {
        tokens.push(token("viewer", &format!("buyer-{i}"))?);
    }
    let nodes = Arc::new([a, b, c]);
    let mut tasks = Vec::new();
    for n in 0..BUYS {
        let (nodes, bearer) = (nodes.clone(), tokens[n % BUYERS].clone());
        tasks.push(tokio::spawn(async move {
            let frame = json!({ "type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": format!("key-{n}") });
            let first = nodes[n % 3].frame(&bearer, &frame).await?;
            // A third of the buys are sent again, to another node, as a page that lost the
            // answer and reconnected elsewhere would.
            let retry = match n % 3 == 0 {
                true => Some(nodes[(n + 1) % 3].frame(&bearer, &frame).await?),
                false => None,
            };
            anyhow::Ok((n % BUYERS, answer_of(&first), retry.map(|r| answer_of(&r))))
        }));
    }
    let (mut sold, mut per_buyer, mut order_ids) = (0_u32, HashMap::<usize, u32>::new(), HashSet::new());
    for task in tasks {
        let (buyer, first, retry) = task.await??;
        if let Some(retry) = retry {
            assert_eq!(retry, first, "a retry on another node gets the original answer");
        }
        match first {
            BuyAnswer::Confirmed(id, _) => {
                assert!(order_ids.insert(id), "order ids are unique");
                sold += 1;
                *per_buyer.entry(buyer).or_default() += 1;
            }
            BuyAnswer::Rejected(v) => {
                assert!(["sold_out", "limit_reached"].contains(&v["reason"].as_str().unwrap_or("")), "{v}");
            }
            BuyAnswer::Other(v) => bail!("unexpected answer {v}"),
        }
    }
    assert_eq!(sold, STOCK, "exactly the stock is sold");
    assert!(per_buyer.values().all(|q| *q <= LIMIT), "nobody over the per-user limit");

    let listed: Value = nodes[0].http.get(format!("{}/api/rooms/{ROOM}/products", nodes[0].base)).send().await?.json().await?;
    let in_room = listed["sales"].as_array().and_then(|s| s.iter().find(|s| s["id"] == sale)).cloned().context("sale listed")?;
    assert_eq!(in_room["stock_left"], 0, "the room sold out: {in_room}");
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
    host_peer.close().await;
    Ok(())
}
