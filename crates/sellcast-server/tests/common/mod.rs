//! Helpers for driving a real server over HTTP in tests.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self { http, base }
    }

    pub async fn dev_token(&self, room: &str, role: &str, identity: &str) -> Result<String> {
        let v: Value = self
            .http
            .get(format!("{}/api/dev/token", self.base))
            .query(&[("room", room), ("role", role), ("identity", identity), ("name", identity)])
            .send()
            .await?
            .json()
            .await?;
        Ok(v["token"].as_str().context("token")?.to_string())
    }

    /// POST a frame; returns the frames addressed to the caller.
    pub async fn frame(&self, room: &str, token: &str, frame: &Value) -> Result<Vec<Value>> {
        let resp = self
            .http
            .post(format!("{}/api/rooms/{room}/frames", self.base))
            .bearer_auth(token)
            .json(frame)
            .send()
            .await?;
        let status = resp.status();
        let body = resp.text().await?;
        if !status.is_success() {
            bail!("frame refused: {status} {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    pub async fn create_product(&self, room: &str, host: &str, title: &str, stock: u32) -> Result<i64> {
        let resp = self
            .http
            .post(format!("{}/api/rooms/{room}/products", self.base))
            .bearer_auth(host)
            .json(&json!({"title": title, "price_minor": 1990, "currency": "EUR", "stock": stock}))
            .send()
            .await?;
        let status = resp.status();
        let v: Value = resp.json().await?;
        if status.as_u16() != 201 {
            bail!("create product: {status} {v}");
        }
        v["id"].as_i64().context("product id")
    }

    pub async fn products(&self, room: &str) -> Result<Value> {
        Ok(self.http.get(format!("{}/api/rooms/{room}/products", self.base)).send().await?.json().await?)
    }

    /// Start a sale and wait (bounded) until the room shows it; returns its id.
    pub async fn start_sale(&self, room: &str, host: &str, product_id: i64, stock: u32, limit: u32) -> Result<i64> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        let frame = json!({"type": "start_sale", "product_id": product_id, "price_minor": 990, "stock": stock,
            "per_user_limit": limit, "starts_at_ms": now - 1000, "ends_at_ms": now + 3_600_000});
        let answer = self.frame(room, host, &frame).await?;
        if let Some(err) = answer.iter().find(|f| f["type"] == "error") {
            bail!("start_sale refused: {err}");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let p = self.products(room).await?;
            if let Some(id) = p["sales"].as_array().and_then(|s| s.iter().find(|s| s["product_id"] == product_id)).and_then(|s| s["id"].as_i64()) {
                return Ok(id);
            }
            if Instant::now() > deadline {
                bail!("sale never appeared: {p}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A real WHIP (`SendOnly`) or WHEP (`RecvOnly`) offer with audio and video, made by str0m
/// acting as a client.
pub fn sdp_offer(direction: str0m::media::Direction) -> String {
    use str0m::media::MediaKind;
    let mut rtc = str0m::Rtc::builder().set_rtp_mode(true).build(Instant::now());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, direction, None, None, None);
    change.add_media(MediaKind::Video, direction, None, None, None);
    let (offer, _pending) = change.apply().expect("a change was made");
    offer.to_sdp_string()
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}
