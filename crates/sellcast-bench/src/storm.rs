//! Purchase storms against a running server over its HTTP frames API (the same room logic and
//! store path as the data channel): a burst of one-tap buys with retries on a small sale, and a
//! sustained run that measures durable purchases per second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Serialize)]
pub struct StormResult {
    pub buys: usize,
    pub retries: usize,
    pub stock: u32,
    pub sold: u32,
    pub oversold: i64,
    pub retry_mismatches: usize,
    pub taps_per_s: f64,
    pub ack_ms_p50: f64,
    pub ack_ms_p99: f64,
    pub sustained_durable_buys_per_s: f64,
}

/// A node's HTTP API as a buyer or host uses it (also the cluster run's kill phase).
pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
}

impl Api {
    pub(crate) async fn token(&self, room: &str, role: &str, identity: &str) -> Result<String> {
        let v: Value = self
            .http
            .get(format!("{}/api/dev/token", self.base))
            .query(&[("room", room), ("role", role), ("identity", identity)])
            .send()
            .await?
            .json()
            .await?;
        Ok(v["token"].as_str().context("dev token (is the server in dev mode?)")?.to_string())
    }

    pub(crate) async fn frame(&self, room: &str, token: &str, frame: &Value) -> Result<Vec<Value>> {
        let r = self.http.post(format!("{}/api/rooms/{room}/frames", self.base)).bearer_auth(token).json(frame).send().await?;
        if !r.status().is_success() {
            bail!("frame refused: {}", r.status());
        }
        Ok(r.json().await?)
    }

    pub(crate) async fn sale(&self, room: &str, host: &str, stock: u32, limit: u32) -> Result<i64> {
        let p: Value = self
            .http
            .post(format!("{}/api/rooms/{room}/products", self.base))
            .bearer_auth(host)
            .json(&json!({"title": "Bench item", "price_minor": 1000, "currency": "EUR", "stock": stock}))
            .send()
            .await?
            .json()
            .await?;
        let product = p["id"].as_i64().context("product id")?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        let start = json!({"type": "start_sale", "product_id": product, "price_minor": 500, "stock": stock, "per_user_limit": limit, "starts_at_ms": now - 1000, "ends_at_ms": now + 3_600_000});
        self.frame(room, host, &start).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v: Value = self.http.get(format!("{}/api/rooms/{room}/products", self.base)).send().await?.json().await?;
            if let Some(id) = v["sales"].as_array().and_then(|s| s.iter().find(|s| s["product_id"] == product)).and_then(|s| s["id"].as_i64()) {
                return Ok(id);
            }
            if Instant::now() > deadline {
                bail!("sale did not start");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub(crate) fn answer(frames: &[Value]) -> Option<Value> {
    frames.iter().find(|f| f["type"] == "order_confirmed" || f["type"] == "buy_rejected").cloned()
}

pub async fn run(base: &str) -> Result<StormResult> {
    let api = Arc::new(Api { http: reqwest::Client::builder().pool_max_idle_per_host(512).build()?, base: base.to_string() });
    let host = api.token("storm", "host", "host").await?;
    let (buys, buyers, stock, limit) = (2_000usize, 400usize, 100u32, 2u32);
    let sale = api.sale("storm", &host, stock, limit).await?;
    let mut tokens = Vec::new();
    for b in 0..buyers {
        tokens.push(api.token("storm", "viewer", &format!("buyer{b}")).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..buys {
        let (api, token) = (api.clone(), tokens[i % buyers].clone());
        tasks.push(tokio::spawn(async move {
            let frame = json!({"type": "buy", "sale_id": sale, "qty": 1 + (i % 3 == 0) as u32, "idempotency_key": format!("k{i}")});
            let t0 = Instant::now();
            let first = answer(&api.frame("storm", &token, &frame).await?);
            let ack = t0.elapsed();
            let retry = if i % 10 < 3 { Some(answer(&api.frame("storm", &token, &frame).await?)) } else { None };
            anyhow::Ok((first, retry, ack))
        }));
    }
    let mut acks = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut sold, mut retries, mut mismatches) = (0u32, 0usize, 0usize);
    for t in tasks {
        let (first, retry, ack) = t.await??;
        acks.record((ack.as_micros() as u64).max(1))?;
        if let Some(r) = retry {
            retries += 1;
            mismatches += usize::from(r != first);
        }
        if let Some(f) = first.filter(|f| f["type"] == "order_confirmed") {
            sold += f["qty"].as_u64().unwrap_or(0) as u32;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sustained = sustained(&api, &tokens).await?;
    Ok(StormResult {
        buys,
        retries,
        stock,
        sold,
        oversold: i64::from(sold) - i64::from(stock),
        retry_mismatches: mismatches,
        taps_per_s: (buys + retries) as f64 / elapsed,
        ack_ms_p50: acks.value_at_quantile(0.5) as f64 / 1e3,
        ack_ms_p99: acks.value_at_quantile(0.99) as f64 / 1e3,
        sustained_durable_buys_per_s: sustained,
    })
}

/// 200 buyers buying one unit after another for 5 s from a sale that never sells out.
async fn sustained(api: &Arc<Api>, tokens: &[String]) -> Result<f64> {
    let host = api.token("sustained", "host", "host").await?;
    let sale = api.sale("sustained", &host, 1_000_000, 1_000_000).await?;
    let confirmed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut tasks = Vec::new();
    let mut own_tokens: HashMap<usize, String> = HashMap::new();
    for b in 0..200usize.min(tokens.len()) {
        own_tokens.insert(b, api.token("sustained", "viewer", &format!("s{b}")).await?);
    }
    let started = Instant::now();
    for (b, token) in own_tokens {
        let (api, confirmed) = (api.clone(), confirmed.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let frame = json!({"type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": format!("s{b}-{n}")});
                if let Ok(frames) = api.frame("sustained", &token, &frame).await {
                    if frames.iter().any(|f| f["type"] == "order_confirmed") {
                        confirmed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(confirmed.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
