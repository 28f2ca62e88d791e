//! The merchant webhook against a local receiver that fails its first attempts: every
//! committed order is acknowledged exactly once, every attempt is signed with the secret and
//! carries the order id as its idempotency key, retries come with growing gaps, and a server
//! restarted with deliveries still owed sends them.
//!
//! Control run: with the worker changed to mark a row delivered before its POST, the first
//! test fails (the order whose first attempt got a 500 is never acknowledged).

mod common;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::Api;
use sellcast_room::Role;
use sellcast_server::auth::{now_secs, Claims};
use sellcast_server::webhook::signing::{self, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use sellcast_server::webhook::{Backoff, WebhookConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "merchant-shared-secret-0123456789";
const METRICS_TOKEN: &str = "metrics-token";
const BACKOFF: Backoff = Backoff { base: Duration::from_millis(200), cap: Duration::from_secs(2) };

/// What the receiver does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Status(u16),
    /// Read the request, then close the connection without a word.
    Drop,
}

#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    answer: Answer,
}

impl Received {
    fn acknowledged(&self) -> bool {
        matches!(self.answer, Answer::Status(s) if (200..300).contains(&s))
    }

    fn order_id(&self) -> Option<i64> {
        serde_json::from_slice::<Value>(&self.body).ok()?["order"]["id"].as_i64()
    }
}

/// A merchant's webhook endpoint on 127.0.0.1: answers from `script` first, then `otherwise`.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    otherwise: Arc<Mutex<Answer>>,
}

impl Receiver {
    async fn start(script: &[Answer], otherwise: Answer) -> Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let receiver = Receiver {
            addr: listener.local_addr()?,
            log: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            otherwise: Arc::new(Mutex::new(otherwise)),
        };
        let r = receiver.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let r = r.clone();
                tokio::spawn(async move {
                    let _ = r.serve(stream).await;
                });
            }
        });
        Ok(receiver)
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/orders", self.addr)
    }

    fn set_otherwise(&self, answer: Answer) {
        *self.otherwise.lock().expect("lock") = answer;
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().expect("lock").clone()
    }

    async fn serve(&self, mut stream: TcpStream) -> Result<()> {
        let at = Instant::now();
        let (headers, body) = read_request(&mut stream).await?;
        let answer = self.script.lock().expect("lock").pop_front().unwrap_or(*self.otherwise.lock().expect("lock"));
        self.log.lock().expect("lock").push(Received { at, headers, body, answer });
        if let Answer::Status(code) = answer {
            let head = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            stream.shutdown().await?;
        }
        Ok(())
    }
}

/// One HTTP/1.1 request: lowercase header names and the body (by content-length).
async fn read_request(stream: &mut TcpStream) -> Result<(HashMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        ensure!(n > 0 && buf.len() < 64 * 1024, "the request head never ended");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length").map(|v| v.parse()).transpose()?.unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        ensure!(n > 0, "the body ended early");
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Ok((headers, body))
}

struct Shop {
    server: sellcast_server::RunningServer,
    api: Api,
}

async fn start_server(db: &std::path::Path, receiver: &Receiver) -> Result<Shop> {
    let mut config = sellcast_server::Config::local(db);
    config.jwt_secret = Some("test-secret-that-is-at-least-32-bytes".into());
    config.metrics_token = Some(METRICS_TOKEN.into());
    config.webhook = Some(WebhookConfig { backoff: BACKOFF, timeout: Duration::from_secs(2), ..WebhookConfig::new(receiver.url(), SECRET) });
    let server = sellcast_server::start(config).await?;
    let api = Api::new(format!("http://{}", server.http_addr));
    Ok(Shop { server, api })
}

impl Shop {
    fn token(&self, role: Role, who: &str) -> Result<String> {
        let claims = Claims { room: "shop".into(), sub: who.into(), name: format!("{who} display"), role, exp: now_secs() + 600 };
        Ok(self.server.auth.mint(&claims)?)
    }

    /// A product on sale in room `shop`; returns the sale id.
    async fn sale(&self) -> Result<i64> {
        let host = self.token(Role::Host, "hana")?;
        let product = self.api.create_product("shop", &host, "Desk lamp", 100).await?;
        self.api.start_sale("shop", &host, product, 50, 3).await
    }

    async fn buy(&self, sale: i64, who: &str) -> Result<i64> {
        let token = self.token(Role::Viewer, who)?;
        let frame = json!({"type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": format!("{who}-1")});
        let answer = self.api.frame("shop", &token, &frame).await?;
        answer.iter().find(|f| f["type"] == "order_confirmed").and_then(|f| f["order_id"].as_i64()).with_context(|| format!("no order: {answer:?}"))
    }

    async fn metric(&self, name: &str) -> Result<f64> {
        let text = self.api.http.get(format!("{}/metrics", self.api.base)).bearer_auth(METRICS_TOKEN).send().await?.text().await?;
        let line = text.lines().find(|l| l.starts_with(name) && !l.starts_with('#')).with_context(|| format!("{name} not in /metrics"))?;
        Ok(line.rsplit(' ').next().context("a value")?.parse()?)
    }
}

/// Poll `ok` on the receiver's log until it holds or 20 s pass.
async fn until(receiver: &Receiver, what: &str, ok: impl Fn(&[Received]) -> bool) -> Result<Vec<Received>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = receiver.received();
        if ok(&log) {
            return Ok(log);
        }
        if Instant::now() > deadline {
            bail!("{what}: not within 20 s; received {} requests: {:?}", log.len(), log.iter().map(|r| (r.order_id(), r.answer)).collect::<Vec<_>>());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn acknowledged_per_order(log: &[Received]) -> HashMap<i64, usize> {
    let mut acks = HashMap::new();
    for r in log.iter().filter(|r| r.acknowledged()) {
        *acks.entry(r.order_id().unwrap_or(-1)).or_insert(0) += 1;
    }
    acks
}

/// Every request: signed over its timestamp and body with the secret, and carrying its order
/// id as `Idempotency-Key` and `X-Sellcast-Delivery`.
fn check_signed_and_keyed(log: &[Received]) -> Result<()> {
    for r in log {
        let id = r.order_id().context("a body with order.id")?;
        let ts: u64 = r.headers.get(TIMESTAMP_HEADER).context("a timestamp header")?.parse()?;
        let sig = r.headers.get(SIGNATURE_HEADER).context("a signature header")?;
        signing::verify(SECRET.as_bytes(), ts, &r.body, sig, now_secs(), 300).with_context(|| format!("order {id}'s signature"))?;
        ensure!(signing::verify(b"another-secret-entirely", ts, &r.body, sig, now_secs(), 300).is_err(), "only the secret verifies");
        ensure!(r.headers.get("idempotency-key") == Some(&id.to_string()), "Idempotency-Key of order {id}: {:?}", r.headers);
        ensure!(r.headers.get(DELIVERY_HEADER) == Some(&id.to_string()), "X-Sellcast-Delivery of order {id}");
        ensure!(r.headers.get("content-type").map(String::as_str) == Some("application/json"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_order_is_acknowledged_exactly_once_signed_after_retries_with_growing_gaps() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let script = [Answer::Status(500), Answer::Drop, Answer::Status(503)];
    let receiver = Receiver::start(&script, Answer::Status(200)).await?;
    let shop = start_server(&dir.path().join("s.db"), &receiver).await?;
    let sale = shop.sale().await?;

    // One order first: it takes the three failures, then is acknowledged.
    let first = shop.buy(sale, "ann").await?;
    let log = until(&receiver, "the first order acknowledged", |log| log.iter().any(Received::acknowledged)).await?;
    let attempts: Vec<&Received> = log.iter().filter(|r| r.order_id() == Some(first)).collect();
    assert_eq!(attempts.iter().map(|r| r.answer).collect::<Vec<_>>(), [script[0], script[1], script[2], Answer::Status(200)]);
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1].at - w[0].at).collect();
    println!("gaps between the first order's attempts: {gaps:?} (backoff {BACKOFF:?})");
    for (i, gap) in gaps.iter().enumerate() {
        let floor = BACKOFF.nominal(i as u32 + 1) / 2;
        assert!(*gap + Duration::from_millis(5) >= floor, "retry {} came after {gap:?}, before its backoff {floor:?}: {gaps:?}", i + 1);
    }
    assert!(gaps[2] > gaps[0] * 3 / 2, "gaps grow: {gaps:?}");

    // Then more orders at once, all acknowledged.
    let mut orders = vec![first];
    for who in ["bob", "cy", "dee", "eve"] {
        orders.push(shop.buy(sale, who).await?);
    }
    let log = until(&receiver, "every order acknowledged", |log| acknowledged_per_order(log).len() == orders.len()).await?;
    // The outbox is empty once all are marked: nothing more can be sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while shop.metric("sellcast_webhook_pending").await? > 0.0 {
        ensure!(Instant::now() < deadline, "deliveries still pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = if receiver.received().len() > log.len() { receiver.received() } else { log };
    let acks = acknowledged_per_order(&log);
    for order in &orders {
        assert_eq!(acks.get(order), Some(&1), "order {order} acknowledged exactly once: {acks:?}");
    }
    assert_eq!(acks.len(), orders.len(), "no delivery of anything but these orders: {acks:?}");
    check_signed_and_keyed(&log)?;
    let body: Value = serde_json::from_slice(&attempts[0].body)?;
    let o = &body["order"];
    assert_eq!((o["room"].as_str(), o["sale_id"].as_i64(), o["title"].as_str()), (Some("shop"), Some(sale), Some("Desk lamp")));
    assert_eq!((o["qty"].as_i64(), o["unit_price_minor"].as_i64(), o["currency"].as_str()), (Some(1), Some(990), Some("EUR")));
    assert_eq!((o["buyer"]["id"].as_str(), o["buyer"]["name"].as_str()), (Some("ann"), Some("ann display")));

    assert_eq!(shop.metric("sellcast_webhook_delivered_total").await?, orders.len() as f64);
    assert_eq!(shop.metric("sellcast_webhook_failed_attempts_total{reason=\"status\"}").await?, 2.0);
    assert_eq!(shop.metric("sellcast_webhook_failed_attempts_total{reason=\"transport\"}").await?, 1.0);
    shop.server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_still_owed_when_the_server_stops_are_sent_after_it_restarts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("s.db");
    let receiver = Receiver::start(&[], Answer::Status(500)).await?;
    let shop = start_server(&db, &receiver).await?;
    let sale = shop.sale().await?;
    let orders = vec![shop.buy(sale, "ann").await?, shop.buy(sale, "bob").await?];
    until(&receiver, "a first failed attempt", |log| !log.is_empty()).await?;
    shop.server.shutdown().await;
    let before_restart = receiver.received().len();
    assert!(receiver.received().iter().all(|r| !r.acknowledged()), "nothing acknowledged before the restart");

    receiver.set_otherwise(Answer::Status(204));
    let shop = start_server(&db, &receiver).await?;
    let log = until(&receiver, "both orders acknowledged after the restart", |log| acknowledged_per_order(log).len() == orders.len()).await?;
    let acks = acknowledged_per_order(&log);
    for order in &orders {
        assert_eq!(acks.get(order), Some(&1), "order {order} acknowledged exactly once: {acks:?}");
    }
    assert!(log[before_restart..].iter().all(|r| orders.contains(&r.order_id().unwrap_or(-1))));
    check_signed_and_keyed(&log)?;
    shop.server.shutdown().await;
    Ok(())
}
