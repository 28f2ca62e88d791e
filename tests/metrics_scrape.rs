//! `GET /metrics` read as Prometheus reads it: the text is parsed with a Prometheus text-format
//! parser, while a real room is live (a webrtc-rs host over WHIP, viewers over WHEP with the
//! data channel), after a chat line, a buy and a refused offer. And the token that guards it.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use prometheus_parse::{Sample, Scrape, Value};
use sellcast_peer::{PublishOptions, Publisher, Viewer};
use serde_json::json;
use support::{bounded, of_type, until, welcomed, Api};

const ROOM: &str = "scraped";
const VIEWERS: usize = 3;
const TOKEN: &str = "metrics-test-token";

/// A server (two media shards, so viewers sit on both) whose `/metrics` wants `TOKEN`.
async fn server() -> Result<(sellcast_server::RunningServer, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let config = sellcast_server::Config {
        media_threads: 2,
        metrics_token: Some(TOKEN.into()),
        ..sellcast_server::Config::local(dir.path().join("sellcast.db"))
    };
    Ok((sellcast_server::start(config).await?, dir))
}

/// One parsed scrape.
struct Metrics(Scrape);

impl Metrics {
    async fn read(base: &str) -> Result<Metrics> {
        let answer = reqwest::Client::new().get(format!("{base}/metrics")).bearer_auth(TOKEN).send().await?;
        if !answer.status().is_success() {
            bail!("/metrics answered {}", answer.status());
        }
        let text = answer.text().await?;
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).context("parsing the exposition")?;
        Ok(Metrics(scrape))
    }

    fn samples<'a>(&'a self, name: &'a str, labels: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0
            .samples
            .iter()
            .filter(move |s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
    }

    /// The sum of a counter's or gauge's samples with these labels (others summed over);
    /// `None` when the family has no such sample.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let values: Vec<f64> = self
            .samples(name, labels)
            .filter_map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            })
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    fn total(&self, name: &str) -> f64 {
        self.value(name, &[]).unwrap_or(0.0)
    }

    fn has_family(&self, name: &str) -> bool {
        self.0.docs.contains_key(name)
    }

    /// Per label value of `label`, the family's summed values: for failure messages.
    fn by(&self, name: &str, label: &str) -> HashMap<String, f64> {
        let mut out = HashMap::new();
        for s in self.samples(name, &[]) {
            if let (Some(key), Value::Counter(v) | Value::Gauge(v)) = (s.labels.get(label), &s.value) {
                *out.entry(key.to_string()).or_insert(0.0) += v;
            }
        }
        out
    }
}

/// Scrape until `ready` holds (the shards copy their counters out every 500 ms and room tasks
/// report on their 300 ms tick), or fail with the last scrape's `why`.
async fn scrape_until(base: &str, what: &str, ready: impl Fn(&Metrics) -> bool, why: impl Fn(&Metrics) -> String) -> Result<Metrics> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = Metrics::read(base).await?;
        if ready(&metrics) {
            return Ok(metrics);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}: {}", why(&metrics));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every family `docs/metrics.md` lists.
const FAMILIES: [&str; 22] = [
    "sellcast_peers",
    "sellcast_rooms",
    "sellcast_rooms_live",
    "sellcast_show_tasks",
    "sellcast_runtime_alive_tasks",
    "sellcast_forwarded_packets_total",
    "sellcast_forwarded_bytes_total",
    "sellcast_datagrams_total",
    "sellcast_relayed_packets_total",
    "sellcast_media_drops_total",
    "sellcast_channel_frames_dropped_total",
    "sellcast_nacks_received_total",
    "sellcast_keyframe_requests_received_total",
    "sellcast_plis_sent_total",
    "sellcast_forward_latency_seconds",
    "sellcast_channel_frames_total",
    "sellcast_frames_refused_total",
    "sellcast_buys_total",
    "sellcast_store_commit_seconds",
    "sellcast_store_batch_size",
    "sellcast_sessions_refused_total",
    "sellcast_restarts_total",
];

/// The families the sample Grafana dashboard queries (`_bucket`, `_sum`, `_count` stripped).
fn dashboard_families() -> Result<Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana-dashboard.json");
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
        .filter(|w| w.starts_with("sellcast_") && w.len() > "sellcast_".len())
        .map(|w| ["_bucket", "_sum", "_count"].iter().fold(w, |w, suffix| w.strip_suffix(suffix).unwrap_or(w)).to_string())
        .collect();
    names.sort();
    names.dedup();
    if names.len() < 10 {
        bail!("the dashboard queries only {names:?}");
    }
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_room_with_chat_and_a_buy_shows_in_every_family() -> Result<()> {
    bounded(Duration::from_secs(120), async {
        let (server, _dir) = server().await?;
        let base = format!("http://{}", server.http_addr);
        let api = Api::new(&base, ROOM);

        let publisher = Publisher::connect(&base, ROOM, PublishOptions::default()).await?;
        let mut viewers = Vec::new();
        for _ in 0..VIEWERS {
            viewers.push(Viewer::connect_with(&base, ROOM, None, true).await?);
        }
        for v in &viewers {
            welcomed(v).await?;
        }
        until(Duration::from_secs(20), "every viewer receives video", || viewers.iter().all(|v| v.inspect(|s| s.video.packets > 0))).await?;

        // A chat line and a buy over the data channel, and an offer that is not SDP.
        viewers[0].send(r#"{"type":"chat","text":"is it in blue?"}"#).await?;
        let host = api.token("host", "the-host").await?;
        let product = api.product(&host, "Blue mug", "").await?;
        let now = support::now_ms();
        let sale = json!({ "type": "start_sale", "product_id": product, "price_minor": 900, "stock": 5,
                           "per_user_limit": 1, "starts_at_ms": now - 1000, "ends_at_ms": now + 600_000 });
        api.frame_ok(&host, &sale).await?;
        until(Duration::from_secs(10), "the sale starts", || !of_type(&viewers[1], "sale_started").is_empty()).await?;
        let sale_id = of_type(&viewers[1], "sale_started")[0]["sale"]["id"].as_i64().context("sale id")?;
        let buy = json!({ "type": "buy", "sale_id": sale_id, "qty": 1, "idempotency_key": "scrape-1" });
        viewers[1].send(&buy.to_string()).await?;
        until(Duration::from_secs(10), "the buyer's order is confirmed", || !of_type(&viewers[1], "order_confirmed").is_empty()).await?;
        let refused = reqwest::Client::new()
            .post(format!("{base}/whep/{ROOM}"))
            .header("content-type", "text/plain")
            .body("v=0")
            .send()
            .await?;
        assert_eq!(refused.status().as_u16(), 415, "an offer that is not application/sdp is refused");

        let first = scrape_until(
            &base,
            "the live room, the chat, the buy and the refusal in /metrics",
            |m| {
                m.value("sellcast_peers", &[("role", "host")]) == Some(1.0)
                    && m.value("sellcast_peers", &[("role", "viewer")]) == Some(VIEWERS as f64)
                    && m.value("sellcast_channel_frames_total", &[("type", "chat")]) >= Some(1.0)
                    && m.value("sellcast_channel_frames_total", &[("type", "buy")]) >= Some(1.0)
                    && m.value("sellcast_buys_total", &[("outcome", "confirmed")]) >= Some(1.0)
                    && m.value("sellcast_sessions_refused_total", &[("endpoint", "whep"), ("cause", "not_sdp"), ("status", "415")]) == Some(1.0)
                    && m.total("sellcast_forwarded_packets_total") > 0.0
            },
            |m| {
                format!(
                    "peers {:?}, frames {:?}, buys {:?}, refused {:?}, forwarded {}",
                    m.by("sellcast_peers", "role"),
                    m.by("sellcast_channel_frames_total", "type"),
                    m.by("sellcast_buys_total", "outcome"),
                    m.by("sellcast_sessions_refused_total", "cause"),
                    m.total("sellcast_forwarded_packets_total")
                )
            },
        )
        .await?;

        let missing: Vec<&str> = FAMILIES.iter().copied().filter(|f| !first.has_family(f)).collect();
        assert!(missing.is_empty(), "families missing from /metrics: {missing:?}");
        let unknown: Vec<String> = dashboard_families()?.into_iter().filter(|f| !first.has_family(f)).collect();
        assert!(unknown.is_empty(), "docs/grafana-dashboard.json queries families the server does not serve: {unknown:?}");
        assert_eq!(first.value("sellcast_rooms", &[]), Some(1.0), "one room is in use");
        assert_eq!(first.value("sellcast_rooms_live", &[]), Some(1.0), "and its host is live");
        assert!(first.total("sellcast_show_tasks") >= 1.0, "the room has a task");
        assert!(first.total("sellcast_forwarded_bytes_total") > first.total("sellcast_forwarded_packets_total"), "packets carry bytes");
        assert!(first.value("sellcast_channel_frames_total", &[("type", "hello")]) >= Some(VIEWERS as f64), "each viewer said hello");
        assert!(first.value("sellcast_datagrams_total", &[("direction", "out")]) > Some(0.0));
        assert_eq!(first.by("sellcast_peers", "shard").len(), 2, "peers are reported per shard: {:?}", first.by("sellcast_peers", "shard"));
        let latency = first.value("sellcast_forward_latency_seconds_count", &[]).unwrap_or(0.0);
        assert!(latency > 0.0, "live packets were timed through the server");
        assert!(first.value("sellcast_store_commit_seconds_count", &[]) >= Some(1.0), "the buy's commit was timed");
        assert!(first.value("sellcast_store_batch_size_count", &[]) >= Some(1.0), "and its batch counted");
        assert_eq!(first.total("sellcast_restarts_total"), 0.0, "nothing was restarted");

        // Forwarding goes on between two scrapes.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let forwarded = first.total("sellcast_forwarded_packets_total");
        let second = scrape_until(&base, "forwarded packets to grow", |m| m.total("sellcast_forwarded_packets_total") > forwarded, |m| {
            format!("{} then {}", forwarded, m.total("sellcast_forwarded_packets_total"))
        })
        .await?;
        assert!(second.value("sellcast_forward_latency_seconds_count", &[]).unwrap_or(0.0) > latency, "and so does the latency histogram");

        // Everyone leaves: no peer or room is left behind.
        for v in viewers {
            v.close().await;
        }
        publisher.close().await;
        scrape_until(
            &base,
            "peers and rooms back to 0",
            |m| m.total("sellcast_peers") == 0.0 && m.value("sellcast_rooms", &[]) == Some(0.0),
            |m| format!("peers {:?}, rooms {:?}", m.by("sellcast_peers", "role"), m.value("sellcast_rooms", &[])),
        )
        .await?;
        server.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_without_the_token_are_refused_with_401() -> Result<()> {
    bounded(Duration::from_secs(30), async {
        let (server, _dir) = server().await?;
        let url = format!("http://{}/metrics", server.http_addr);
        let http = reqwest::Client::new();
        let none = http.get(&url).send().await?;
        assert_eq!(none.status().as_u16(), 401, "no token");
        assert_eq!(none.headers().get("www-authenticate").and_then(|h| h.to_str().ok()), Some("Bearer"));
        let wrong = http.get(&url).bearer_auth("metrics-test-tokeN").send().await?;
        assert_eq!(wrong.status().as_u16(), 401, "a wrong token");
        let right = http.get(&url).bearer_auth(TOKEN).send().await?;
        assert_eq!(right.status().as_u16(), 200, "the right token");
        let kind = right.headers().get("content-type").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "the Prometheus text format: {kind}");
        server.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_serves_metrics_without_a_token_and_the_public_port_none() -> Result<()> {
    bounded(Duration::from_secs(30), async {
        let dir = tempfile::tempdir()?;
        let local = sellcast_server::Config::local(dir.path().join("sellcast.db"));
        let admin = Some(std::net::SocketAddr::new(local.http_addr.ip(), 0));
        let server = sellcast_server::start(sellcast_server::Config { admin_addr: admin, ..local }).await?;
        let admin = server.admin_addr.context("the admin listener's address")?;
        let http = reqwest::Client::new();
        let scraped = http.get(format!("http://{admin}/metrics")).send().await?;
        assert_eq!(scraped.status().as_u16(), 200);
        let text = scraped.text().await?;
        let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))?;
        assert!(parsed.docs.contains_key("sellcast_peers"), "the admin listener serves the exposition");
        let public = http.get(format!("http://{}/metrics", server.http_addr)).bearer_auth("anything").send().await?;
        assert_eq!(public.status().as_u16(), 404, "without --metrics-token the public port serves no metrics");
        server.shutdown().await;
        Ok(())
    })
    .await
}
