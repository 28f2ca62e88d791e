//! The attack run: honest viewers watch, chat and buy while attackers hit every door of the
//! server at once; then the same honest load without attackers is compared against it, and the
//! server's own counters must show every attacker's session and room freed afterwards.
//!
//! Honest side: a WHIP host (synthetic media with send timestamps), `viewers` WHEP viewers with
//! data channels, of which `chatters` chat (1 line/s each, inside the per-user limit) and buy
//! (one unit every 2 s, each buy sent twice with the same idempotency key, as a phone on a bad
//! link retries). Measured per phase: media loss and one-way delay at the viewers, and chat
//! delivery time from the send call to every other honest viewer.
//!
//! Attackers (from their own loopback addresses, 127.0.1.x, so per-address caps bite them and
//! not the honest viewers on 127.0.0.1):
//! - `whep_offers` WHEP offers that will never do ICE;
//! - `udp_per_s` datagrams per second to the media port (STUN with unknown usernames, junk RTP,
//!   junk DTLS) from many source ports;
//! - `random_rooms` reads and WHEP offers for random room names;
//! - a frames flood over the HTTP API with one viewer token;
//! - one SDP of `big_sdp_bytes`;
//! - `slowloris` connections sending a request head a byte every few seconds.
//!
//! In the bench the attackers run on this machine at the lowest CPU priority, standing in for
//! machines of their own (`priority` says why; `attackers_in_background`); the rates they
//! reached are in the report.
//!
//! The run alternates: `rounds` times, a segment without attackers, then the attackers start,
//! get going for 2 s, a segment is measured under them, they stop, and the next round waits
//! until the server has freed what they held. Each condition's figures pool its segments. On a
//! shared 2-core VM the same phase measured a minute apart differs by up to 2x at p99, so two
//! long phases in a row compare the minutes more than the conditions; alternating spreads that
//! drift over both.
//!
//! It reports; it asserts nothing (tests/hostile_load.rs does).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use prometheus_parse::{Scrape, Value as Sample};
use sellcast_peer::{PublishOptions, Publisher, Viewer};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::server::{spawn, Target, METRICS_TOKEN};

const ROOM: &str = "attack";

#[derive(Debug, Clone)]
pub struct AttackOptions {
    pub viewers: usize,
    pub chatters: usize,
    /// Measured time of each condition (without, and with attackers), split over `rounds`.
    pub phase: Duration,
    /// How many times the run alternates between the two conditions.
    pub rounds: u32,
    pub bitrate: u64,
    pub whep_offers: usize,
    pub udp_per_s: u64,
    pub random_rooms: usize,
    pub big_sdp_bytes: usize,
    pub slowloris: usize,
    /// Whether one token floods the HTTP frames API.
    pub frames_flood: bool,
    /// Attacker source addresses: 127.0.1.1 ..= 127.0.1.n.
    pub attacker_addrs: u8,
    /// How long after the attack the server may take to free what the attackers held.
    pub settle: Duration,
    /// Run the attackers at the lowest CPU priority (`priority`): right when the honest side's
    /// figures are the point (the bench); off where the full attack volume matters more than
    /// those figures (the CI test, whose unoptimised honest peers would starve niced attackers).
    pub attackers_in_background: bool,
}

impl AttackOptions {
    /// What issue 11 asks of the attack: 50 viewers, 10 of them chatting and buying.
    /// Only the attacks named in `kinds` (of `offers`, `udp`, `rooms`, `frames`, `sdp`,
    /// `slowloris`), each at its full volume, the rest off: which door costs the honest side
    /// what.
    pub fn only(mut self, kinds: &[String]) -> Result<Self> {
        const KINDS: [&str; 6] = ["offers", "udp", "rooms", "frames", "sdp", "slowloris"];
        if let Some(unknown) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
            bail!("unknown attack kind {unknown:?}: one of {}", KINDS.join(", "));
        }
        let on = |k: &str| kinds.iter().any(|x| x == k);
        if !on("offers") {
            self.whep_offers = 0;
        }
        if !on("udp") {
            self.udp_per_s = 0;
        }
        if !on("rooms") {
            self.random_rooms = 0;
        }
        if !on("frames") {
            self.frames_flood = false;
        }
        if !on("sdp") {
            self.big_sdp_bytes = 0;
        }
        if !on("slowloris") {
            self.slowloris = 0;
        }
        Ok(self)
    }

    pub fn full() -> Self {
        Self {
            viewers: 50,
            chatters: 10,
            phase: Duration::from_secs(30),
            rounds: 3,
            bitrate: 1_000_000,
            whep_offers: 2_000,
            udp_per_s: 20_000,
            random_rooms: 1_000,
            big_sdp_bytes: 1_000_000,
            slowloris: 1_000,
            frames_flood: true,
            attacker_addrs: 20,
            settle: Duration::from_secs(30),
            attackers_in_background: true,
        }
    }
}

/// What the honest side saw in one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseFigures {
    pub seconds: f64,
    pub loss_pct_mean: f64,
    pub loss_pct_worst: f64,
    pub one_way_ms_p50: f64,
    pub one_way_ms_p99: f64,
    pub chat_ms_p50: f64,
    pub chat_ms_p99: f64,
    /// Time packets spent inside the server (receive to send), from its own histogram:
    /// tells a slow server from starved receivers.
    pub in_server_us_p50: f64,
    pub in_server_us_p99: f64,
    /// Chat lines' time inside the server (frame read to line written on every channel),
    /// from its own histogram: the server's share of `chat_ms_*`.
    pub chat_in_server_ms_p50: f64,
    pub chat_in_server_ms_p99: f64,
    /// Of that, writing the line on every viewer's channel.
    pub chat_writing_ms_p50: f64,
    pub chat_writing_ms_p99: f64,
    /// Of that, the frame's wait for the room's show task.
    pub chat_to_show_ms_p50: f64,
    pub chat_to_show_ms_p99: f64,
    /// Of that, the show task's own work until it queued the line.
    pub chat_in_show_ms_p50: f64,
    pub chat_in_show_ms_p99: f64,
    pub chats_sent: usize,
    /// (line, viewer) deliveries that never arrived.
    pub chat_deliveries_missing: u64,
    pub buys_sent: usize,
}

/// What the attackers got back: HTTP status -> count, per kind of attack.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttackTally {
    pub whep_offers: BTreeMap<String, u64>,
    pub random_rooms: BTreeMap<String, u64>,
    pub frames_flood: BTreeMap<String, u64>,
    pub big_sdp: BTreeMap<String, u64>,
    /// Over every round.
    pub udp_datagrams_sent: u64,
    /// Seconds the UDP attacker ran, over every round: with `udp_datagrams_sent`, the rate it
    /// reached.
    pub udp_seconds: f64,
    pub slowloris_opened: u64,
    /// Slowloris connections the server closed before the attack ended.
    pub slowloris_cut: u64,
}

/// The server's own counters (`/metrics`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Residue {
    pub peers: f64,
    pub media_rooms: f64,
    pub show_tasks: f64,
    pub http_connections: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderCheck {
    /// Distinct orders the honest buyers were told were confirmed.
    pub acked: usize,
    /// Orders the store holds for the honest buyers.
    pub stored: usize,
    /// Acked orders missing from the store.
    pub lost: usize,
    /// Idempotency keys with more than one stored order.
    pub doubled: usize,
    /// Retries answered with a different order than the first send.
    pub retry_mismatches: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttackResult {
    pub baseline: PhaseFigures,
    pub attacked: PhaseFigures,
    pub attack: AttackTally,
    /// With only the honest load on, before the last round's attack.
    pub before: Residue,
    /// The moment the last round's attack stopped.
    pub at_attack_end: Residue,
    /// When the counters were back to `before` (or the last reading, if they never were).
    pub after: Residue,
    /// Seconds after an attack stopped until the counters were back to `before`: the slowest
    /// round; `None` if a round was not freed within `settle`.
    pub freed_after_s: Option<f64>,
    pub orders: OrderCheck,
}

/// `target` set up for an attack run: a fixed media port the UDP attacker can aim at (a free
/// one when none was set), and per-address limits that fit the honest viewers, who all come
/// from 127.0.0.1 here where in the field each has an address of their own.
pub fn target_for(target: &Target, opts: &AttackOptions) -> Result<Target> {
    let mut t = target.clone();
    if t.udp_port == 0 {
        t.udp_port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    }
    t.media_threads = Some(1);
    // The server's own limits, except sessions per address: 100 lets the honest viewers in
    // from their one address and still bounds each attacker address.
    let per_ip = (opts.viewers + 50).to_string();
    t.extra_args.extend(
        ["--max-sessions-per-ip", &per_ip, "--signal-rate", "5", "--signal-burst", "20", "--api-rate", "20", "--api-burst", "100", "--room-idle-seconds", "10"]
            .map(String::from),
    );
    Ok(t)
}

pub async fn run(target: &Target, opts: &AttackOptions) -> Result<AttackResult> {
    let dir = tempfile::tempdir()?;
    let (mut server, _pid, base) = spawn(target, dir.path()).await?;
    let result = run_against(&base, target.udp_port, dir.path().join("bench.db"), opts).await;
    let _ = server.start_kill();
    let _ = server.wait().await;
    result
}

async fn run_against(base: &str, udp_port: u16, db: std::path::PathBuf, opts: &AttackOptions) -> Result<AttackResult> {
    if udp_port == 0 {
        bail!("the attack needs the server's media port: set Target::udp_port");
    }
    let http = reqwest::Client::new();
    let publisher = Publisher::connect(base, ROOM, PublishOptions { bitrate_bps: opts.bitrate, ..PublishOptions::default() }).await?;
    let sale = crate::soak::open_sale_in(&http, base, ROOM).await?;
    let t0 = Instant::now();
    let progress = |what: &str| println!("attack t={:>6.1}s {what}", t0.elapsed().as_secs_f64());
    progress("host live, sale open; honest viewers joining");
    let mut viewers = Vec::with_capacity(opts.viewers);
    for _ in 0..opts.viewers {
        let v = Viewer::connect_with(base, ROOM, None, true).await?;
        v.channel_ready(Duration::from_secs(20)).await?;
        viewers.push(Arc::new(v));
        if viewers.len() % 10 == 0 {
            progress(&format!("{} honest viewers in", viewers.len()));
        }
        // Inside the default WHEP rate for one address.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !viewers.iter().all(|v| v.frames().iter().any(|(_, f)| f.contains("\"type\":\"welcome\""))) {
        if Instant::now() > deadline {
            bail!("not every honest viewer was welcomed");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // every viewer streaming
    progress("honest viewers joined; measuring without attackers");
    let orders = Arc::new(Mutex::new(Orders::default()));
    let tally = Arc::new(Mutex::new(AttackTally::default()));
    let rounds = opts.rounds.max(1);
    let segment = opts.phase / rounds;
    let (mut quiet, mut loud) = (Pooled::new()?, Pooled::new()?);
    let mut before = Residue::default();
    let (mut at_attack_end, mut after, mut freed_after_s) = (Residue::default(), Residue::default(), None);
    for round in 0..rounds {
        phase(base, &publisher, &viewers, opts, segment, sale, &orders, &format!("base{round}"), &mut quiet).await?;
        before = residue(&http, base).await?;
        let stop = Arc::new(AtomicBool::new(false));
        progress(&format!("round {}/{rounds}: attack starts", round + 1));
        let attackers = spawn_attackers(base.to_string(), udp_port, opts.clone(), stop.clone(), tally.clone())?;
        // Let the attackers get going before the honest side is measured under them.
        tokio::time::sleep(Duration::from_secs(2)).await;
        phase(base, &publisher, &viewers, opts, segment, sale, &orders, &format!("attack{round}"), &mut loud).await?;
        stop.store(true, Ordering::SeqCst);
        tokio::task::spawn_blocking(move || attackers.join()).await?.map_err(|_| anyhow::anyhow!("the attackers panicked"))??;
        progress("attack stopped; waiting for the server to free what the attackers held");
        let stopped = Instant::now();
        at_attack_end = residue(&http, base).await?;
        let freed_in;
        (after, freed_in) = loop {
            let r = residue(&http, base).await?;
            let freed = r.peers <= before.peers && r.media_rooms <= before.media_rooms && r.show_tasks <= before.show_tasks;
            if freed {
                break (r, Some(stopped.elapsed().as_secs_f64()));
            }
            if stopped.elapsed() > opts.settle {
                break (r, None);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        // The slowest round counts; a round that never freed ends the run.
        let Some(s) = freed_in else {
            freed_after_s = None;
            break;
        };
        freed_after_s = Some(freed_after_s.map_or(s, |worst: f64| worst.max(s)));
    }
    let (baseline, attacked) = (quiet.figures(), loud.figures());
    for v in viewers {
        if let Ok(v) = Arc::try_unwrap(v) {
            v.close().await;
        }
    }
    publisher.close().await;
    let orders = check_orders(&orders, &db)?;
    let attack = tally.lock().map(|t| t.clone()).unwrap_or_default();
    Ok(AttackResult { baseline, attacked, attack, before, at_attack_end, after, freed_after_s, orders })
}

/// Orders the honest buyers were told about: idempotency key -> order ids from each answer.
#[derive(Debug, Default)]
struct Orders {
    by_key: HashMap<String, Vec<i64>>,
}

/// One condition's segments, pooled.
struct Pooled {
    seconds: f64,
    /// Per viewer and segment: percent of the host's packets that never arrived.
    losses: Vec<f64>,
    one_way: Histogram<u64>,
    chat: Histogram<u64>,
    in_server: Histogram<u64>,
    chat_in_server: Histogram<u64>,
    chat_writing: Histogram<u64>,
    chat_to_show: Histogram<u64>,
    chat_in_show: Histogram<u64>,
    chats_sent: usize,
    missing: u64,
    buys_sent: usize,
}

impl Pooled {
    fn new() -> Result<Self> {
        let h = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3);
        Ok(Self { seconds: 0.0, losses: Vec::new(), one_way: h()?, chat: h()?, in_server: h()?, chat_in_server: h()?, chat_writing: h()?, chat_to_show: h()?, chat_in_show: h()?, chats_sent: 0, missing: 0, buys_sent: 0 })
    }

    fn figures(&self) -> PhaseFigures {
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
        PhaseFigures {
            seconds: self.seconds,
            loss_pct_mean: self.losses.iter().sum::<f64>() / self.losses.len().max(1) as f64,
            loss_pct_worst: self.losses.iter().copied().fold(0.0, f64::max),
            one_way_ms_p50: ms(&self.one_way, 0.5),
            one_way_ms_p99: ms(&self.one_way, 0.99),
            chat_ms_p50: ms(&self.chat, 0.5),
            chat_ms_p99: ms(&self.chat, 0.99),
            in_server_us_p50: self.in_server.value_at_quantile(0.5) as f64,
            in_server_us_p99: self.in_server.value_at_quantile(0.99) as f64,
            chat_in_server_ms_p50: ms(&self.chat_in_server, 0.5),
            chat_in_server_ms_p99: ms(&self.chat_in_server, 0.99),
            chat_writing_ms_p50: ms(&self.chat_writing, 0.5),
            chat_writing_ms_p99: ms(&self.chat_writing, 0.99),
            chat_to_show_ms_p50: ms(&self.chat_to_show, 0.5),
            chat_to_show_ms_p99: ms(&self.chat_to_show, 0.99),
            chat_in_show_ms_p50: ms(&self.chat_in_show, 0.5),
            chat_in_show_ms_p99: ms(&self.chat_in_show, 0.99),
            chats_sent: self.chats_sent,
            chat_deliveries_missing: self.missing,
            buys_sent: self.buys_sent,
        }
    }
}

/// One measured segment of honest load, added to `pooled`.
#[allow(clippy::too_many_arguments)]
async fn phase(
    base: &str,
    publisher: &Publisher,
    viewers: &[Arc<Viewer>],
    opts: &AttackOptions,
    length: Duration,
    sale: i64,
    orders: &Arc<Mutex<Orders>>,
    tag: &str,
    pooled: &mut Pooled,
) -> Result<()> {
    for v in viewers {
        v.reset();
    }
    let frames_before: Vec<usize> = viewers.iter().map(|v| v.frames().len()).collect();
    let http = reqwest::Client::new();
    let stats0 = crate::media_stats::read(&http, base).await?;
    let sent0 = (publisher.video_sent(), publisher.audio_sent());
    let started = Instant::now();
    let mut sent_lines: HashMap<String, (usize, Instant)> = HashMap::new();
    let chatters = opts.chatters.min(viewers.len());
    let mut second = 0u64;
    while started.elapsed() < length {
        for (c, v) in viewers.iter().enumerate().take(chatters) {
            let text = format!("{tag}-{c}-{second}");
            sent_lines.insert(text.clone(), (c, Instant::now()));
            let _ = v.send(&json!({ "type": "chat", "text": text }).to_string()).await;
            if second % 2 == u64::try_from(c % 2).unwrap_or(0) {
                let key = format!("{tag}-{c}-{second}");
                let buy = json!({ "type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": key }).to_string();
                // Sent twice: the retry must get the same answer, never a second order.
                let _ = v.send(&buy).await;
                let _ = v.send(&buy).await;
                pooled.buys_sent += 1;
            }
        }
        second += 1;
        let next = started + Duration::from_secs(second);
        tokio::time::sleep(next.saturating_duration_since(Instant::now())).await;
    }
    let sent1 = (publisher.video_sent(), publisher.audio_sent());
    pooled.seconds += started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await; // in-flight media, chat and answers land
    let stats1 = crate::media_stats::read(&http, base).await?;
    pooled.in_server.add(&crate::media_stats::latency_between(&stats0, &stats1)?)?;
    pooled.chat_in_server.add(&crate::media_stats::chat_path_between(&stats0, &stats1)?)?;
    pooled.chat_writing.add(&crate::media_stats::chat_write_between(&stats0, &stats1)?)?;
    pooled.chat_to_show.add(&crate::media_stats::chat_to_show_between(&stats0, &stats1)?)?;
    pooled.chat_in_show.add(&crate::media_stats::chat_in_show_between(&stats0, &stats1)?)?;

    let expected = ((sent1.0 - sent0.0) + (sent1.1 - sent0.1)) as f64;
    for v in viewers {
        let s = v.stats();
        let got = s.video.counters.range(sent0.0..sent1.0).count() + s.audio.counters.range(sent0.1..sent1.1).count();
        pooled.losses.push(100.0 * (1.0 - got as f64 / expected.max(1.0)));
        for us in s.video.latency_us.iter().chain(&s.audio.latency_us) {
            pooled.one_way.record((*us).max(1))?;
        }
    }
    let mut guard = orders.lock().map_err(|_| anyhow::anyhow!("orders lock"))?;
    for (i, v) in viewers.iter().enumerate() {
        let frames = v.frames();
        let fresh = &frames[frames_before[i].min(frames.len())..];
        let mut arrived: HashMap<&str, Instant> = HashMap::new();
        for (at, text) in fresh {
            let Ok(frame) = serde_json::from_str::<Value>(text) else { continue };
            match frame["type"].as_str() {
                Some("chat") => {
                    if let Some(line) = frame["text"].as_str() {
                        if let Some((key, _)) = sent_lines.get_key_value(line) {
                            arrived.entry(key.as_str()).or_insert(*at);
                        }
                    }
                }
                Some("order_confirmed") => {
                    if let (Some(key), Some(id)) = (frame["idempotency_key"].as_str(), frame["order_id"].as_i64()) {
                        guard.by_key.entry(key.to_string()).or_default().push(id);
                    }
                }
                _ => {}
            }
        }
        for (line, (from, sent_at)) in &sent_lines {
            if *from == i {
                continue;
            }
            match arrived.get(line.as_str()) {
                Some(at) => pooled.chat.record((at.saturating_duration_since(*sent_at).as_micros() as u64).max(1))?,
                None => pooled.missing += 1,
            }
        }
    }
    pooled.chats_sent += sent_lines.len();
    Ok(())
}

/// Every acked order is in the store once; no key has two orders; retries got the first answer.
fn check_orders(orders: &Arc<Mutex<Orders>>, db: &std::path::Path) -> Result<OrderCheck> {
    let orders = orders.lock().map_err(|_| anyhow::anyhow!("orders lock"))?;
    let acked: HashSet<i64> = orders.by_key.values().flatten().copied().collect();
    let retry_mismatches = orders.by_key.values().filter(|ids| ids.iter().collect::<HashSet<_>>().len() > 1).count();
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare("SELECT id, idempotency_key FROM orders WHERE room = ?1")?;
    let rows = stmt.query_map([ROOM], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    let mut stored_ids = HashSet::new();
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for row in rows {
        let (id, key) = row?;
        stored_ids.insert(id);
        *per_key.entry(key).or_default() += 1;
    }
    Ok(OrderCheck {
        acked: acked.len(),
        stored: stored_ids.len(),
        lost: acked.iter().filter(|id| !stored_ids.contains(id)).count(),
        doubled: per_key.values().filter(|n| **n > 1).count(),
        retry_mismatches,
    })
}

async fn residue(http: &reqwest::Client, base: &str) -> Result<Residue> {
    let text = http.get(format!("{base}/metrics")).bearer_auth(METRICS_TOKEN).send().await?.error_for_status()?.text().await?;
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))?;
    let total = |name: &str| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| match s.value {
                Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    Ok(Residue {
        peers: total("sellcast_peers"),
        media_rooms: total("sellcast_rooms"),
        show_tasks: total("sellcast_show_tasks"),
        http_connections: total("sellcast_http_connections"),
    })
}

/// The attackers on their own runtime and threads, so the honest peers' runtime in this
/// process is not theirs to starve, and at the lowest priority, standing in for machines of
/// their own (`priority`).
fn spawn_attackers(
    base: String,
    udp_port: u16,
    opts: AttackOptions,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<AttackTally>>,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    let niced = opts.attackers_in_background;
    Ok(std::thread::Builder::new().name("attackers".into()).spawn(move || {
        if niced {
            background()?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("attacker")
            .on_thread_start(move || {
                if niced {
                    let _ = background();
                }
            })
            .enable_all()
            .build()?;
        runtime.block_on(attack(base, udp_port, opts, stop, tally))
    })?)
}

fn background() -> std::io::Result<()> {
    crate::priority::set_this_thread_nice(crate::priority::BACKGROUND_NICE)
}

fn attacker_ip(opts: &AttackOptions, i: usize) -> Ipv4Addr {
    let n = usize::from(opts.attacker_addrs.max(1));
    Ipv4Addr::new(127, 0, 1, u8::try_from(1 + i % n).unwrap_or(1))
}

/// An HTTP client whose connections come from `ip`.
fn client_from(ip: Ipv4Addr) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().local_address(IpAddr::V4(ip)).timeout(Duration::from_secs(10)).build()?)
}

fn count(map: &mut BTreeMap<String, u64>, outcome: Result<reqwest::StatusCode, reqwest::Error>) {
    let key = match outcome {
        Ok(status) => status.as_u16().to_string(),
        Err(e) if e.is_timeout() => "timeout".to_string(),
        Err(_) => "connection error".to_string(),
    };
    *map.entry(key).or_default() += 1;
}

/// Every attacker at once, until `stop`.
async fn attack(base: String, udp_port: u16, opts: AttackOptions, stop: Arc<AtomicBool>, tally: Arc<Mutex<AttackTally>>) -> Result<()> {
    let clients = (0..usize::from(opts.attacker_addrs.max(1))).map(|i| client_from(attacker_ip(&opts, i))).collect::<Result<Vec<_>>>()?;
    let udp = tokio::spawn(udp_spray(udp_port, opts.clone(), stop.clone()));
    let slowloris = tokio::spawn(slowloris(base.clone(), opts.clone(), stop.clone()));

    // WHEP offers that never do ICE, spread over the attacker addresses, 50 in flight.
    let whep = {
        let (base, clients, tally, stop) = (base.clone(), clients.clone(), tally.clone(), stop.clone());
        let n = opts.whep_offers;
        async move {
            let sem = Arc::new(tokio::sync::Semaphore::new(50));
            let mut tasks = Vec::with_capacity(n);
            for i in 0..n {
                // Bounded by the attack: what was not sent when it stops is not sent.
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let permit = sem.clone().acquire_owned().await?;
                let (client, url, tally) = (clients[i % clients.len()].clone(), format!("{base}/whep/{ROOM}"), tally.clone());
                tasks.push(tokio::spawn(async move {
                    let r = client.post(url).header("content-type", "application/sdp").body(dead_offer(i)).send().await;
                    if let Ok(mut t) = tally.lock() {
                        count(&mut t.whep_offers, r.map(|r| r.status()));
                    }
                    drop(permit);
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            anyhow::Ok(())
        }
    };
    // Random room names: a product list read and a WHEP offer each.
    let rooms = {
        let (base, clients, tally, stop) = (base.clone(), clients.clone(), tally.clone(), stop.clone());
        let n = opts.random_rooms;
        async move {
            for i in 0..n {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let client = &clients[i % clients.len()];
                let room = format!("nobody-{i}-{:x}", nonce(i));
                let r = client.get(format!("{base}/api/rooms/{room}/products")).send().await.map(|r| r.status());
                let w = client.post(format!("{base}/whep/{room}")).header("content-type", "application/sdp").body(dead_offer(i)).send().await.map(|r| r.status());
                if let Ok(mut t) = tally.lock() {
                    count(&mut t.random_rooms, r);
                    count(&mut t.random_rooms, w);
                }
            }
            anyhow::Ok(())
        }
    };
    // The frames flood: one viewer token, chat as fast as the answers come, until stopped.
    let flood = {
        let (base, client, tally, stop) = (base.clone(), clients[0].clone(), tally.clone(), stop.clone());
        let on = opts.frames_flood;
        async move {
            if !on {
                return anyhow::Ok(());
            }
            let token: Value = client
                .get(format!("{base}/api/dev/token"))
                .query(&[("room", ROOM), ("role", "viewer"), ("identity", "flooder")])
                .send()
                .await?
                .json()
                .await?;
            let token = token["token"].as_str().context("a dev token for the flooder")?.to_string();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let frame = json!({ "type": "chat", "text": format!("flood {n}") });
                let r = client.post(format!("{base}/api/rooms/{ROOM}/frames")).bearer_auth(&token).json(&frame).send().await.map(|r| r.status());
                if let Ok(mut t) = tally.lock() {
                    count(&mut t.frames_flood, r);
                }
            }
            anyhow::Ok(())
        }
    };
    // One oversize SDP.
    let big = {
        let (base, client, tally, size) = (base.clone(), clients[clients.len() - 1].clone(), tally.clone(), opts.big_sdp_bytes);
        async move {
            if size == 0 {
                return anyhow::Ok(());
            }
            let mut sdp = dead_offer(0);
            while sdp.len() < size {
                sdp.push_str("a=x-padding:0123456789abcdef0123456789abcdef0123456789abcdef\r\n");
            }
            let r = client.post(format!("{base}/whep/{ROOM}")).header("content-type", "application/sdp").body(sdp).send().await.map(|r| r.status());
            if let Ok(mut t) = tally.lock() {
                count(&mut t.big_sdp, r);
            }
            anyhow::Ok(())
        }
    };
    let t0 = Instant::now();
    let done = |what: &str| println!("attack: {what} done after {:.1} s", t0.elapsed().as_secs_f64());
    let whep = async { let r = whep.await; done("WHEP offers"); r };
    let rooms = async { let r = rooms.await; done("random rooms"); r };
    let flood = async { let r = flood.await; done("frames flood"); r };
    let big = async { let r = big.await; done("big SDP"); r };
    let (w, r, f, b) = tokio::join!(whep, rooms, flood, big);
    w?;
    r?;
    f?;
    b?;
    let (sent, sending) = udp.await.context("udp task")??;
    let (opened, cut) = slowloris.await.context("slowloris task")??;
    if let Ok(mut t) = tally.lock() {
        t.udp_datagrams_sent += sent;
        t.udp_seconds += sending.as_secs_f64();
        t.slowloris_opened += opened;
        t.slowloris_cut += cut;
    }
    Ok(())
}

/// Datagrams at `udp_per_s` from 64 sockets on the attacker addresses, until `stop`: (how many,
/// for how long). On its own thread with blocking sockets and datagrams made beforehand: the
/// sender must cost the machine as little as it can, or it starves the honest peers it shares
/// the machine with.
async fn udp_spray(port: u16, opts: AttackOptions, stop: Arc<AtomicBool>) -> Result<(u64, Duration)> {
    if opts.udp_per_s == 0 {
        return Ok((0, Duration::ZERO));
    }
    let target = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let sockets = (0..64)
        .map(|i| std::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(attacker_ip(&opts, i)), 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let datagrams: Vec<Vec<u8>> = (0..1024).map(junk_datagram).collect();
    let thread = std::thread::Builder::new().name("attack-udp".into()).spawn(move || {
        if opts.attackers_in_background {
            let _ = background();
        }
        let tick = Duration::from_millis(5);
        let per_tick = (opts.udp_per_s as f64 * tick.as_secs_f64()).round().max(1.0) as usize;
        let started = Instant::now();
        let (mut n, mut ticks) = (0usize, 0u32);
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..per_tick {
                let _ = sockets[n % sockets.len()].send_to(&datagrams[n % datagrams.len()], target);
                n += 1;
            }
            ticks += 1;
            std::thread::sleep((started + tick * ticks).saturating_duration_since(Instant::now()));
        }
        (n as u64, started.elapsed())
    })?;
    tokio::task::spawn_blocking(move || thread.join()).await?.map_err(|_| anyhow::anyhow!("the UDP attacker panicked"))
}

/// Connections that send a request head a byte every 2 s, until `stop`: (opened, cut by the server).
async fn slowloris(base: String, opts: AttackOptions, stop: Arc<AtomicBool>) -> Result<(u64, u64)> {
    let addr: SocketAddr = base.trim_start_matches("http://").parse().context("the server's HTTP address")?;
    let mut streams = Vec::new();
    for i in 0..opts.slowloris {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(IpAddr::V4(attacker_ip(&opts, i)), 0))?;
        if let Ok(mut s) = socket.connect(addr).await {
            if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.is_ok() {
                streams.push(Some(s));
            }
        }
    }
    let opened = streams.len() as u64;
    let mut cut = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for s in streams.iter_mut() {
            if let Some(stream) = s {
                if stream.write_all(b"X").await.is_err() {
                    *s = None;
                    cut += 1;
                }
            }
        }
        for _ in 0..20 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok((opened, cut))
}

fn nonce(i: usize) -> u64 {
    // A cheap, deterministic scramble: distinct per i, no RNG dependency.
    (i as u64 ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9).rotate_left(31)
}

/// A well-formed WHEP offer (audio, video, data channel, receive only) with fresh ICE
/// credentials, from a peer that will never send a STUN packet.
fn dead_offer(i: usize) -> String {
    let n = nonce(i);
    let fp: Vec<String> = (0..32).map(|b| format!("{:02X}", (n.rotate_left(b * 2) & 0xff) as u8)).collect();
    let fp = fp.join(":");
    let ufrag = format!("{:08x}", n as u32);
    let pwd = format!("{:016x}{:08x}", n, (n >> 7) as u32);
    format!(
        "v=0\r\no=- {n} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\na=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n\
a=ice-options:trickle\r\na=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n\
a=ice-options:trickle\r\na=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n\
a=ice-options:trickle\r\na=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\na=mid:2\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n"
    )
}

/// One attacker datagram: a STUN binding request for an unknown username, junk RTP, or junk
/// DTLS, in turn.
fn junk_datagram(n: usize) -> Vec<u8> {
    let r = nonce(n);
    match n % 3 {
        0 => {
            // STUN binding request (RFC 8489) with USERNAME "xxxxxxxx:yyyyyyyy".
            let user = format!("{:08x}:{:08x}", r as u32, (r >> 32) as u32);
            let mut m = Vec::with_capacity(20 + 4 + user.len());
            m.extend_from_slice(&[0x00, 0x01]);
            m.extend_from_slice(&u16::try_from(4 + user.len()).unwrap_or(0).to_be_bytes());
            m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
            m.extend_from_slice(&r.to_be_bytes());
            m.extend_from_slice(&(r as u32).to_be_bytes());
            m.extend_from_slice(&[0x00, 0x06]);
            m.extend_from_slice(&u16::try_from(user.len()).unwrap_or(0).to_be_bytes());
            m.extend_from_slice(user.as_bytes());
            m
        }
        1 => {
            let mut m = vec![0x80, 96];
            m.extend_from_slice(&r.to_be_bytes());
            m.resize(200, 0xAB);
            m
        }
        _ => {
            let mut m = vec![0x16, 0xFE, 0xFD];
            m.extend_from_slice(&r.to_be_bytes());
            m.resize(120, 0x01);
            m
        }
    }
}

/// The bench's printout of a run.
pub fn print_summary(r: &AttackResult) {
    let row = |name: &str, p: &PhaseFigures| {
        println!(
            "{name:>14}: loss mean {:.3} % worst {:.3} %, one-way p50 {:.2} ms p99 {:.2} ms, in server p50 {:.0} us p99 {:.0} us, chat p50 {:.1} ms p99 {:.1} ms (in server p50 {:.2} ms p99 {:.2} ms, to show task p50 {:.2} p99 {:.2}, in it p50 {:.2} p99 {:.2}, writing p50 {:.2} p99 {:.2}; {} lines, {} deliveries missing), {} buys",
            p.loss_pct_mean, p.loss_pct_worst, p.one_way_ms_p50, p.one_way_ms_p99, p.in_server_us_p50, p.in_server_us_p99, p.chat_ms_p50, p.chat_ms_p99, p.chat_in_server_ms_p50, p.chat_in_server_ms_p99, p.chat_to_show_ms_p50, p.chat_to_show_ms_p99, p.chat_in_show_ms_p50, p.chat_in_show_ms_p99, p.chat_writing_ms_p50, p.chat_writing_ms_p99, p.chats_sent, p.chat_deliveries_missing, p.buys_sent
        )
    };
    row("no attackers", &r.baseline);
    row("under attack", &r.attacked);
    let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.2}x", a / b) } else { "n/a".into() };
    println!(
        "under attack / without: one-way p99 {}, chat p99 {} (in server {}), loss mean {:+.3} points",
        ratio(r.attacked.one_way_ms_p99, r.baseline.one_way_ms_p99),
        ratio(r.attacked.chat_ms_p99, r.baseline.chat_ms_p99),
        ratio(r.attacked.chat_in_server_ms_p99, r.baseline.chat_in_server_ms_p99),
        r.attacked.loss_pct_mean - r.baseline.loss_pct_mean
    );
    println!("attackers got: {}", serde_json::to_string(&r.attack).unwrap_or_default());
    if r.attack.udp_seconds > 0.0 {
        println!("UDP attacker: {:.0} datagrams/s over {:.1} s", r.attack.udp_datagrams_sent as f64 / r.attack.udp_seconds, r.attack.udp_seconds);
    }
    println!(
        "server counters: before {:?}, at the attack's end {:?}, after {:?}; freed {}",
        r.before,
        r.at_attack_end,
        r.after,
        r.freed_after_s.map_or("NOT within the settle time".to_string(), |s| format!("{s:.1} s after the attack"))
    );
    println!("orders: {}", serde_json::to_string(&r.orders).unwrap_or_default());
}
