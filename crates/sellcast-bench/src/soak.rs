//! The soak: a host and N data-channel viewers in one room for many minutes, with chat and
//! buys going on, against a server this harness starts. Every 10 s it reads the server's RSS
//! (`/proc/PID/status`) and `/metrics`. It reports the RSS drift from the end of the warm-up
//! to the end, and, after everyone left, whether peers, rooms and tasks returned to where they
//! were before anyone joined (read from `/metrics`). It reports; it asserts nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use prometheus_parse::{Scrape, Value};
use sellcast_peer::{PublishOptions, Publisher, Viewer};
use serde::Serialize;
use serde_json::json;

use crate::proc_stats;
use crate::server::{spawn, Target, METRICS_TOKEN};

const ROOM: &str = "soak";

#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub viewers: usize,
    pub duration: Duration,
    /// RSS is compared from the end of this warm-up (every viewer joined, caches full).
    pub warmup: Duration,
    pub sample_every: Duration,
    pub join_rate: f64,
    pub bitrate: u64,
    /// Chat lines per second across the room, and buys per second.
    pub chats_per_s: f64,
    pub buys_per_s: f64,
}

/// One reading, every `sample_every`.
#[derive(Debug, Clone, Serialize)]
pub struct SoakSample {
    pub at_s: f64,
    pub rss_mb: f64,
    pub peers: f64,
    pub rooms: f64,
    pub show_tasks: f64,
    pub runtime_tasks: f64,
    pub forwarded_packets: f64,
    pub chat_frames: f64,
    pub buys_confirmed: f64,
    pub media_drops: f64,
}

#[derive(Debug, Serialize)]
pub struct SoakResult {
    pub viewers: usize,
    pub minutes: f64,
    pub warmup_s: f64,
    pub rss_after_warmup_mb: f64,
    pub rss_end_mb: f64,
    pub rss_max_mb: f64,
    pub rss_drift_pct: f64,
    /// Before anyone joined, and after everyone left.
    pub baseline: SoakSample,
    pub after: SoakSample,
    pub chats_sent: u64,
    pub buys_sent: u64,
    pub samples: Vec<SoakSample>,
}

pub async fn run(target: &Target, opts: &SoakOptions) -> Result<SoakResult> {
    let dir = tempfile::tempdir()?;
    let (mut server, pid, base) = spawn(target, dir.path()).await?;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let baseline = sample(&http, &base, pid, started).await.context("reading /metrics (a server from before /metrics cannot be soaked)")?;

    let publisher = Publisher::connect(&base, ROOM, PublishOptions { bitrate_bps: opts.bitrate, ..PublishOptions::default() }).await?;
    let gap = Duration::from_secs_f64(1.0 / opts.join_rate.max(0.1));
    let mut viewers = Vec::with_capacity(opts.viewers);
    for _ in 0..opts.viewers {
        let t = Instant::now();
        viewers.push(Arc::new(Viewer::connect_with(&base, ROOM, None, true).await?));
        if let Some(rest) = gap.checked_sub(t.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    println!("soak: {} viewers joined in {:.0} s; running {:.1} min", viewers.len(), started.elapsed().as_secs_f64(), opts.duration.as_secs_f64() / 60.0);
    let sale = open_sale(&http, &base).await?;

    let (chats, buys) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let activity = tokio::spawn(activity(viewers.clone(), sale, opts.clone(), chats.clone(), buys.clone()));
    let mut samples = Vec::new();
    let end = started + opts.duration;
    let mut rss_after_warmup = None;
    while Instant::now() < end {
        tokio::time::sleep(opts.sample_every.min(end.saturating_duration_since(Instant::now()))).await;
        let s = sample(&http, &base, pid, started).await?;
        println!(
            "soak t={:>5.0}s rss={:>6.1}MB peers={:>4} rooms={} show_tasks={} runtime_tasks={} forwarded={:.0} chat={:.0} buys_confirmed={:.0} drops={:.0}",
            s.at_s, s.rss_mb, s.peers, s.rooms, s.show_tasks, s.runtime_tasks, s.forwarded_packets, s.chat_frames, s.buys_confirmed, s.media_drops
        );
        if rss_after_warmup.is_none() && started.elapsed() >= opts.warmup {
            rss_after_warmup = Some(s.rss_mb);
        }
        samples.push(s);
    }
    activity.abort();
    let _ = activity.await;
    let last = samples.last().cloned().context("the soak took no sample")?;

    for v in viewers {
        if let Ok(v) = Arc::try_unwrap(v) {
            v.close().await;
        }
    }
    publisher.close().await;
    // Peers leave as their DELETEs land; give them a bounded moment, then read.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let s = sample(&http, &base, pid, started).await?;
        if (s.peers == baseline.peers && s.rooms == baseline.rooms) || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let _ = server.start_kill();
    let _ = server.wait().await;

    let rss_after_warmup_mb = rss_after_warmup.unwrap_or(last.rss_mb);
    Ok(SoakResult {
        viewers: opts.viewers,
        minutes: opts.duration.as_secs_f64() / 60.0,
        warmup_s: opts.warmup.as_secs_f64(),
        rss_after_warmup_mb,
        rss_end_mb: last.rss_mb,
        rss_max_mb: samples.iter().map(|s| s.rss_mb).fold(0.0, f64::max),
        rss_drift_pct: 100.0 * (last.rss_mb - rss_after_warmup_mb) / rss_after_warmup_mb.max(f64::MIN_POSITIVE),
        baseline,
        after,
        chats_sent: chats.load(Ordering::Relaxed),
        buys_sent: buys.load(Ordering::Relaxed),
        samples,
    })
}

pub fn print_summary(r: &SoakResult) {
    println!("\nsoak: {} viewers, {:.1} min (warm-up {:.0} s), chat and buys throughout", r.viewers, r.minutes, r.warmup_s);
    println!(
        "RSS: {:.1} MB after warm-up, {:.1} MB at the end (max {:.1} MB): drift {:+.2} % ({} the 5 % bound)",
        r.rss_after_warmup_mb,
        r.rss_end_mb,
        r.rss_max_mb,
        r.rss_drift_pct,
        if r.rss_drift_pct.abs() <= 5.0 { "within" } else { "OUTSIDE" }
    );
    let (b, a) = (&r.baseline, &r.after);
    println!("after everyone left (before anyone joined): peers {} ({}), rooms {} ({}), show tasks {} ({}), runtime tasks {} ({})",
        a.peers, b.peers, a.rooms, b.rooms, a.show_tasks, b.show_tasks, a.runtime_tasks, b.runtime_tasks);
    let leaked = a.peers != b.peers || a.rooms != b.rooms;
    // The soak room's task lives until the server stops, by design: one more than the baseline.
    let tasks_ok = a.show_tasks <= b.show_tasks + 1.0 && a.runtime_tasks <= b.runtime_tasks + 1.0;
    println!("leaks: {}", if leaked || !tasks_ok { "YES (see above)" } else { "none (peers and rooms back to baseline; tasks baseline + the room's own)" });
    let end = r.samples.last();
    println!(
        "totals: chat lines sent {}, buys sent {}, buys confirmed {:.0}, chat frames counted {:.0}, forwarded packets {:.0}, media drops {:.0}",
        r.chats_sent,
        r.buys_sent,
        end.map_or(0.0, |s| s.buys_confirmed),
        end.map_or(0.0, |s| s.chat_frames),
        end.map_or(0.0, |s| s.forwarded_packets),
        end.map_or(0.0, |s| s.media_drops)
    );
}

/// Chat lines from the viewers in turn and buys of one unit, at the asked rates, until aborted.
async fn activity(viewers: Vec<Arc<Viewer>>, sale: i64, opts: SoakOptions, chats: Arc<AtomicU64>, buys: Arc<AtomicU64>) {
    if viewers.is_empty() {
        return;
    }
    let tick = Duration::from_millis(100);
    let (mut chat_due, mut buy_due) = (0.0, 0.0);
    let mut n = 0usize;
    loop {
        tokio::time::sleep(tick).await;
        chat_due += opts.chats_per_s * tick.as_secs_f64();
        buy_due += opts.buys_per_s * tick.as_secs_f64();
        while chat_due >= 1.0 {
            chat_due -= 1.0;
            let v = &viewers[n % viewers.len()];
            n += 1;
            if v.send(&format!(r#"{{"type":"chat","text":"soak line {n}"}}"#)).await.is_ok() {
                chats.fetch_add(1, Ordering::Relaxed);
            }
        }
        while buy_due >= 1.0 {
            buy_due -= 1.0;
            let v = &viewers[n % viewers.len()];
            n += 1;
            let frame = json!({ "type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": format!("soak-{n}") });
            if v.send(&frame.to_string()).await.is_ok() {
                buys.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A product and a sale that will not sell out during the soak; the sale's id.
async fn open_sale(http: &reqwest::Client, base: &str) -> Result<i64> {
    open_sale_in(http, base, ROOM).await
}

/// A product in `room` with a flash sale that will not sell out during a run, opened by a
/// dev-mode host; the sale's id.
pub(crate) async fn open_sale_in(http: &reqwest::Client, base: &str, room: &str) -> Result<i64> {
    let token: serde_json::Value = http
        .get(format!("{base}/api/dev/token"))
        .query(&[("room", room), ("role", "host"), ("identity", "soak-host")])
        .send()
        .await?
        .json()
        .await?;
    let host = token["token"].as_str().context("a dev token (is the server in dev mode?)")?;
    let product: serde_json::Value = http
        .post(format!("{base}/api/rooms/{room}/products"))
        .bearer_auth(host)
        .json(&json!({ "title": "Soak item", "price_minor": 100, "currency": "EUR", "stock": 1_000_000 }))
        .send()
        .await?
        .json()
        .await?;
    let product = product["id"].as_i64().context("product id")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let start = json!({ "type": "start_sale", "product_id": product, "price_minor": 100, "stock": 1_000_000,
                        "per_user_limit": 1_000_000, "starts_at_ms": now - 1000, "ends_at_ms": now + 24 * 3_600_000 });
    http.post(format!("{base}/api/rooms/{room}/frames")).bearer_auth(host).json(&start).send().await?.error_for_status()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v: serde_json::Value = http.get(format!("{base}/api/rooms/{room}/products")).send().await?.json().await?;
        if let Some(id) = v["sales"].as_array().and_then(|s| s.iter().find(|s| s["product_id"] == product)).and_then(|s| s["id"].as_i64()) {
            return Ok(id);
        }
        if Instant::now() > deadline {
            bail!("the sale did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sample(http: &reqwest::Client, base: &str, pid: u32, started: Instant) -> Result<SoakSample> {
    let text = http.get(format!("{base}/metrics")).bearer_auth(METRICS_TOKEN).send().await?.error_for_status()?.text().await?;
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))?;
    let total = |name: &str, label: Option<(&str, &str)>| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    Ok(SoakSample {
        at_s: started.elapsed().as_secs_f64(),
        rss_mb: proc_stats::rss(pid)? as f64 / 1e6,
        peers: total("sellcast_peers", None),
        rooms: total("sellcast_rooms", None),
        show_tasks: total("sellcast_show_tasks", None),
        runtime_tasks: total("sellcast_runtime_alive_tasks", None),
        forwarded_packets: total("sellcast_forwarded_packets_total", None),
        chat_frames: total("sellcast_channel_frames_total", Some(("type", "chat"))),
        buys_confirmed: total("sellcast_buys_total", Some(("outcome", "confirmed"))),
        media_drops: total("sellcast_media_drops_total", None),
    })
}
