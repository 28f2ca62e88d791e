//! Nodes killed with SIGKILL mid-show (cluster mode), against a real `nats-server`, a
//! throwaway PostgreSQL server that the three real `sellcast` nodes share (child processes),
//! and real WebRTC data-channel viewers (`sellcast-peer`). The room's host publishes to
//! node-a (the origin, the room's owner) with the synthetic publisher.
//! - the origin dies, the host publishes again to node-b, which takes the room over: its show
//!   continues the room's event stream (same epoch, the seq after the stream's last), so a
//!   viewer that stayed on node-c gets the next events without a snapshot, a viewer that was
//!   on the dead origin resumes by seq on node-c, and one resumes on node-b itself from
//!   before the takeover (from the events node-b took over from the stream): each gets every
//!   event after its position once, none missed, none twice; a new viewer's snapshot on
//!   node-b shows the chat said before the takeover;
//! - an edge (node-b) dies mid-show and mid-storm: its viewers connect again to node-c with
//!   their last position and resume there, with every event a viewer on node-c saw, none
//!   twice; buys retried on another node with their idempotency key lose and double no order
//!   (against PostgreSQL), and a retry gets its original answer;
//! - the origin dies mid-storm: the same accounting of orders (a buy answered `unavailable`
//!   during the takeover is retried until it gets an answer, and keeps that one), and node-b's
//!   viewers, which stay, continue the stream once node-c took the room over.
//!
//! Resume and recovery times are printed (`--nocapture`), never asserted.
//!
//! Control runs: with every show starting a new epoch (the rule before the stream's last
//! event was read), the takeover test failed on `cy's events are all of the epoch she started
//! in: [(E1, 1) .. (E1, 6), (E2, 2) ..]`; with the stream's tail not adopted by the new
//! owner, on `the new owner's snapshot shows the old owner's chat: []`; with node-c's copy resuming from the viewer's own
//! seq (`>=` for `>` in `StreamLog::replay_after`), the edge test failed on `edge-viewer-0
//! (node-b, then node-c) got an event twice: [.., 22, 22, ..]`; with idempotency off (the
//! room's answer cache and the store's stored answer skipped, its row written `ON CONFLICT DO
//! NOTHING`), the edge test failed on `orders lost 6, doubled 6, answers changed 40` and the
//! origin test on `answers changed 104`.
//!
//! HTTP and NATS ports are fixed per test in 19860-19889; media ports are chosen by the OS.

mod cluster_support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cluster_support::{eventually, host_token, NatsServer, Node, JWT_SECRET};
use sellcast_peer::{PublishOptions, Publisher, Viewer, ViewerOptions};
use sellcast_store::testing::TestPostgres;
use serde_json::{json, Value};

const ROOM: &str = "failover";
const SETTLE: Duration = Duration::from_secs(30);

/// A token for `identity` with `role` in the room, minted with the nodes' shared secret.
fn token(role: &str, identity: &str) -> Result<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["token", "--room", ROOM, "--role", role, "--identity", identity, "--jwt-secret", JWT_SECRET])
        .output()?;
    ensure!(out.status.success(), "sellcast token failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// PostgreSQL, NATS and three nodes on them; the logs of the nodes are printed on failure.
struct Cluster {
    dir: tempfile::TempDir,
    pg: TestPostgres,
    db: String,
    _nats: NatsServer,
}

impl Cluster {
    async fn start(port: u16) -> Result<(Self, Node, Node, Node)> {
        let pg = tokio::task::spawn_blocking(TestPostgres::start).await??;
        let url = pg.fresh_database()?;
        let db = url.rsplit('/').next().and_then(|d| d.split('?').next()).unwrap_or_default().to_string();
        let dir = tempfile::tempdir()?;
        let nats = NatsServer::start(dir.path(), port)?;
        let a = Node::start_on_postgres(dir.path(), "node-a", port + 1, &nats.url(), &url).await?;
        let b = Node::start_on_postgres(dir.path(), "node-b", port + 2, &nats.url(), &url).await?;
        let c = Node::start_on_postgres(dir.path(), "node-c", port + 3, &nats.url(), &url).await?;
        Ok((Self { dir, pg, db, _nats: nats }, a, b, c))
    }

    /// The last lines of each node's log (what to read first when a test fails).
    fn logs(&self) -> String {
        let mut out = String::new();
        for id in ["node-a", "node-b", "node-c"] {
            let log = std::fs::read_to_string(self.dir.path().join(format!("{id}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains("heartbeat") && !l.contains("peer address learned")).collect();
            out += &format!("--- {id} (last 30 lines) ---\n{}\n", lines[lines.len().saturating_sub(30)..].join("\n"));
        }
        out
    }

    /// Each idempotency key's orders in PostgreSQL: `(key, order ids)`.
    fn orders(&self) -> Result<HashMap<String, Vec<i64>>> {
        let rows = self.pg.sql(&self.db, |c| {
            let rows = c.query("SELECT idempotency_key, id FROM orders WHERE room = $1", &[&ROOM])?;
            Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1))).collect::<Vec<_>>())
        })?;
        let mut by_key: HashMap<String, Vec<i64>> = HashMap::new();
        for (key, id) in rows {
            by_key.entry(key).or_default().push(id);
        }
        Ok(by_key)
    }

    /// The sale's stock left and the units its orders hold.
    fn stock(&self, sale: i64) -> Result<(i64, i64)> {
        Ok(self.pg.sql(&self.db, move |c| {
            let r = c.query_one(
                "SELECT s.stock_left, (SELECT COALESCE(SUM(qty), 0)::BIGINT FROM orders WHERE sale_id = s.id) FROM sales s WHERE s.id = $1",
                &[&sale],
            )?;
            Ok((r.get::<_, i64>(0), r.get::<_, i64>(1)))
        })?)
    }
}

/// Run a test body; on failure print the nodes' logs with the error.
async fn logged(cluster: &Cluster, result: Result<()>) -> Result<()> {
    if result.is_err() {
        eprintln!("{}", cluster.logs());
    }
    result
}

fn publish_options() -> Result<PublishOptions> {
    Ok(PublishOptions { token: Some(host_token(ROOM)?), bitrate_bps: 150_000, fps: 10, ..PublishOptions::default() })
}

/// The host publishes again to `node` after its origin died: refused (a redirect to the dead
/// origin) until the dead origin's lease lapsed.
async fn publish_again(node: &Node) -> Result<Publisher> {
    let options = publish_options()?;
    eventually(SETTLE, &format!("the host goes live again on {}", node.id), || async {
        Ok(Publisher::connect(&node.base, ROOM, options.clone()).await.ok())
    })
    .await
}

// ---- viewers -------------------------------------------------------------------------------

/// A data-channel viewer `identity` on `node`, its stream open (a welcome arrived).
async fn watch(node: &Node, identity: &str, hello: Option<String>) -> Result<Viewer> {
    let options = ViewerOptions { token: Some(token("viewer", identity)?), data_channel: true, hello, ..ViewerOptions::default() };
    let viewer = Viewer::connect(&node.base, ROOM, options).await.with_context(|| format!("{identity} watching on {}", node.id))?;
    viewer.channel_ready(Duration::from_secs(20)).await?;
    eventually(SETTLE, &format!("{identity}'s welcome on {}", node.id), || async { Ok(welcome(&viewer)) }).await?;
    Ok(viewer)
}

/// A viewer's frames as received: when, the text, and the text parsed.
fn frames(viewer: &Viewer) -> Vec<(Instant, String, Value)> {
    viewer
        .frames()
        .into_iter()
        .filter_map(|(at, text)| serde_json::from_str(&text).ok().map(|v| (at, text, v)))
        .collect()
}

fn welcomes(viewer: &Viewer) -> Vec<Value> {
    frames(viewer).into_iter().filter(|(_, _, f)| f["type"] == "welcome").map(|(_, _, f)| f).collect()
}

fn welcome(viewer: &Viewer) -> Option<Value> {
    welcomes(viewer).into_iter().next()
}

fn snapshots(viewer: &Viewer) -> usize {
    frames(viewer).iter().filter(|(_, _, f)| f["type"] == "snapshot").count()
}

/// The room events the viewer got, in the order it got them: `(when, epoch, seq, text)`.
/// The welcome and the snapshot carry the stream's position and are not events; latest-state
/// frames carry none.
fn events(viewer: &Viewer) -> Vec<(Instant, u64, u64, String)> {
    frames(viewer)
        .into_iter()
        .filter(|(_, _, f)| f["type"] != "welcome" && f["type"] != "snapshot")
        .filter_map(|(at, text, f)| Some((at, f["epoch"].as_u64()?, f["seq"].as_u64()?, text)))
        .collect()
}

/// Where the viewer stands in the stream: its welcome's epoch, and the newest seq it got
/// (its welcome's or snapshot's position, or its newest event).
fn position(viewer: &Viewer) -> Option<(u64, u64)> {
    let epoch = welcomes(viewer).last()?["epoch"].as_u64()?;
    let seq = frames(viewer).iter().filter(|(_, _, f)| f["epoch"].as_u64() == Some(epoch)).filter_map(|(_, _, f)| f["seq"].as_u64()).max()?;
    Some((epoch, seq))
}

fn resume_hello(at: (u64, u64)) -> String {
    json!({ "type": "hello", "resume": { "epoch": at.0, "seq": at.1 } }).to_string()
}

/// Wait until the viewer has the event `seq`.
async fn reaches(viewer: &Viewer, seq: u64, who: &str) -> Result<()> {
    eventually(SETTLE, &format!("{who} has the event {seq}"), || async {
        Ok(events(viewer).iter().any(|(_, _, s, _)| *s >= seq).then_some(()))
    })
    .await
}

/// `got` holds each seq of `from..=to` once, each as the reference viewer got it (same
/// epoch, same frame), and nothing else: no event missed, none twice.
fn same_events(who: &str, got: &[(Instant, u64, u64, String)], reference: &HashMap<u64, String>, from: u64, to: u64) -> Result<()> {
    let seqs: Vec<u64> = got.iter().map(|e| e.2).collect();
    let distinct: HashSet<u64> = seqs.iter().copied().collect();
    if distinct.len() != seqs.len() {
        bail!("{who} got an event twice: {seqs:?}");
    }
    let expected: Vec<u64> = (from..=to).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    ensure!(sorted == expected, "{who} got each of {from}..={to} once: got {seqs:?}");
    for (_, _, seq, text) in got {
        ensure!(reference.get(seq) == Some(text), "{who}'s event {seq} is the one the reference viewer got: {text}");
    }
    Ok(())
}

// ---- HTTP frames, chat and buys ------------------------------------------------------------

/// One frame over `POST /api/rooms/failover/frames` at `base`: the answer frames, or why not.
async fn post_frame(http: &reqwest::Client, base: &str, bearer: &str, frame: &Value) -> Result<Vec<Value>> {
    let resp = http.post(format!("{base}/api/rooms/{ROOM}/frames")).bearer_auth(bearer).json(frame).send().await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    ensure!(status.is_success(), "frame at {base}: {status} {body}");
    Ok(body.as_array().cloned().unwrap_or_default())
}

/// Chat lines from `identities`, one each per 1.2 s in turn (inside their per-identity rate),
/// to `bases` in turn, until `stop`. A line a node could not take is not retried: the test
/// compares what viewers got, not what was sent.
fn chatter(bases: Vec<String>, identities: usize, stop: Arc<AtomicBool>) -> Result<tokio::task::JoinHandle<u64>> {
    let tokens: Vec<String> = (0..identities).map(|i| token("viewer", &format!("chatter-{i}"))).collect::<Result<_>>()?;
    Ok(tokio::spawn(async move {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
        let pause = Duration::from_millis(1200) / identities as u32;
        let mut n = 0_u64;
        while !stop.load(Ordering::Relaxed) {
            let (bearer, base) = (&tokens[n as usize % identities], &bases[n as usize % bases.len()]);
            let _ = post_frame(&http, base, bearer, &json!({ "type": "chat", "text": format!("line {n}") })).await;
            n += 1;
            tokio::time::sleep(pause).await;
        }
        n
    }))
}

/// A buy's final answer, without the server's clock.
#[derive(Debug, Clone, PartialEq)]
enum BuyAnswer {
    Confirmed(i64, Value),
    Rejected(Value),
}

/// Whether the room refused a frame as over its identity's rate (sent again to the same
/// node after a pause: not a failure of the node).
fn rate_limited(frames: &[Value]) -> bool {
    frames.iter().any(|f| f["type"] == "error" && f["code"] == "rate_limited")
}

/// The buy answer among `frames`, if the room gave one (an `error` frame, `unavailable` or
/// `rate_limited`, is no answer: the buy is sent again).
fn answer_of(frames: &[Value]) -> Option<BuyAnswer> {
    for f in frames {
        let mut stripped = f.clone();
        if let Some(o) = stripped.as_object_mut() {
            o.remove("server_now_ms");
        }
        match f["type"].as_str() {
            Some("order_confirmed") => return Some(BuyAnswer::Confirmed(f["order_id"].as_i64().unwrap_or(-1), stripped)),
            Some("buy_rejected") => return Some(BuyAnswer::Rejected(stripped)),
            _ => {}
        }
    }
    None
}

/// One buy as the storm saw it.
#[derive(Debug)]
struct BuyRecord {
    key: String,
    bearer: String,
    frame: Value,
    answer: BuyAnswer,
    /// Attempts that got no answer (node gone, `unavailable`, timed out) before the answer.
    failed_attempts: u32,
    /// When the answer came, and whether the attempt that got it was sent after `since`.
    answered_at: Instant,
    sent_at: Instant,
}

/// Send `frame` to `bases[first]`, then to the next node after each attempt without an
/// answer, the same idempotency key each time (as a page that lost its node does), until
/// the room answers.
async fn buy_until_answered(http: &reqwest::Client, bases: &[String], first: usize, bearer: &str, frame: &Value) -> Result<(BuyAnswer, u32, Instant)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut failed = 0_u32;
    loop {
        let sent = Instant::now();
        let base = &bases[(first + failed as usize) % bases.len()];
        let got = post_frame(http, base, bearer, frame).await;
        ensure!(Instant::now() < deadline, "no answer to {frame} within 60 s (last: {got:?})");
        if let Ok(frames) = &got {
            if let Some(answer) = answer_of(frames) {
                return Ok((answer, failed, sent));
            }
            if rate_limited(frames) {
                tokio::time::sleep(Duration::from_millis(600)).await;
                continue;
            }
        }
        failed += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The purchase storm: `buyers` buyers, each sending `per_buyer` buys one after the other
/// with `pause` between, starting on the node `buyer % 3`.
fn storm(bases: Vec<String>, sale: i64, buyers: usize, per_buyer: usize, pause: Duration) -> Result<Vec<tokio::task::JoinHandle<Result<Vec<BuyRecord>>>>> {
    let bases = Arc::new(bases);
    let mut tasks = Vec::new();
    for buyer in 0..buyers {
        let bearer = token("viewer", &format!("buyer-{buyer}"))?;
        let bases = bases.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?;
            let mut records = Vec::new();
            for n in 0..per_buyer {
                let key = format!("buyer-{buyer}-{n}");
                let frame = json!({ "type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": key });
                let (answer, failed_attempts, sent_at) = buy_until_answered(&http, &bases, buyer % bases.len(), &bearer, &frame).await?;
                records.push(BuyRecord { key, bearer: bearer.clone(), frame, answer, failed_attempts, answered_at: Instant::now(), sent_at });
                tokio::time::sleep(pause).await;
            }
            Ok(records)
        }));
    }
    Ok(tasks)
}

/// What the storm's buyers were told against what PostgreSQL holds, and what a second
/// sending of a buy (every one that had a failed attempt, and every 10th) gets.
struct OrderAccount {
    buys: usize,
    confirmed: usize,
    /// Confirmed to the buyer, but not in PostgreSQL under that key and order id.
    lost: usize,
    /// More than one order under one key, or an order under a key its buyer was refused.
    doubled: usize,
    /// A second sending that got another answer than the first.
    changed: usize,
    retried: usize,
    resent: usize,
}

async fn account(cluster: &Cluster, records: &[BuyRecord], survivors: &[String], sale: i64, stock: u32) -> Result<OrderAccount> {
    let in_pg = cluster.orders()?;
    let mut acc = OrderAccount { buys: records.len(), confirmed: 0, lost: 0, doubled: 0, changed: 0, retried: 0, resent: 0 };
    for r in records {
        let held = in_pg.get(&r.key).cloned().unwrap_or_default();
        if held.len() > 1 {
            acc.doubled += 1;
        }
        match &r.answer {
            BuyAnswer::Confirmed(id, _) => {
                acc.confirmed += 1;
                if held != vec![*id] {
                    acc.lost += 1;
                }
            }
            BuyAnswer::Rejected(_) => {
                if !held.is_empty() {
                    acc.doubled += 1;
                }
            }
        }
        if r.failed_attempts > 0 {
            acc.retried += 1;
        }
    }
    let keys: HashSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
    acc.doubled += in_pg.keys().filter(|k| !keys.contains(k.as_str())).count();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?;
    for (i, r) in records.iter().enumerate() {
        if r.failed_attempts == 0 && i % 10 != 0 {
            continue;
        }
        let (again, _, _) = buy_until_answered(&http, survivors, i, &r.bearer, &r.frame).await?;
        acc.resent += 1;
        if again != r.answer {
            eprintln!("{}: first {:?}, then {again:?}", r.key, r.answer);
            acc.changed += 1;
        }
    }
    let (left, units) = cluster.stock(sale)?;
    ensure!(left + units == i64::from(stock), "stock left {left} + units ordered {units} = the sale's stock {stock}");
    Ok(acc)
}

fn print_account(what: &str, acc: &OrderAccount) {
    println!(
        "{what}: {} buys, {} confirmed, {} answered only after a retry; orders lost {}, doubled {}; {} sent again, {} got another answer",
        acc.buys, acc.confirmed, acc.retried, acc.lost, acc.doubled, acc.resent, acc.changed
    );
}

/// A product and an open sale of `stock` in the room, made on `node`: the sale's id.
async fn open_sale(node: &Node, stock: u32, limit: u32) -> Result<i64> {
    let host = host_token(ROOM)?;
    let serum = json!({ "title": "Serum", "price_minor": 990, "currency": "EUR", "stock": 10_000 });
    let product = cluster_support::create_product(&node.http, &node.base, ROOM, &host, &serum).await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let start = json!({ "type": "start_sale", "product_id": product, "price_minor": 500, "stock": stock,
        "per_user_limit": limit, "starts_at_ms": now - 1000, "ends_at_ms": now + 600_000 });
    post_frame(&node.http, &node.base, &host, &start).await?;
    let listed: Value = node.http.get(format!("{}/api/rooms/{ROOM}/products", node.base)).send().await?.json().await?;
    listed["sales"].as_array().and_then(|s| s.first()).and_then(|s| s["id"].as_i64()).context("the sale")
}

fn median_and_max(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort_unstable();
    (times.get(times.len() / 2).copied().unwrap_or_default(), times.last().copied().unwrap_or_default())
}

// ---- the tests -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_origin_dies_the_new_owner_continues_the_seq_and_viewers_resume_without_a_snapshot() -> Result<()> {
    let (cluster, mut a, b, c) = Cluster::start(19860).await?;
    let result = origin_dies_mid_show(&mut a, &b, &c).await;
    logged(&cluster, result).await
}

async fn origin_dies_mid_show(a: &mut Node, b: &Node, c: &Node) -> Result<()> {
    let host = Publisher::connect(&a.base, ROOM, publish_options()?).await.context("the host publishing to node-a")?;
    ensure!(a.lease_on(ROOM).await?.is_some(), "node-a owns the room");
    let on_c = watch(c, "cy", None).await?;
    let on_a = watch(a, "ann", None).await?;
    // Two lines of three each: within each identity's chat burst (5), so all six are events.
    let (dave, gus) = (token("viewer", "dave")?, token("viewer", "gus")?);
    for i in 0..6 {
        let bearer = if i % 2 == 0 { &dave } else { &gus };
        post_frame(&a.http, &a.base, bearer, &json!({ "type": "chat", "text": format!("before {i}") })).await?;
    }
    let (epoch, seen) = eventually(SETTLE, "cy and ann saw the six lines", || async {
        let (Some(c), Some(a)) = (position(&on_c), position(&on_a)) else { return Ok(None) };
        Ok((c == a && events(&on_c).len() >= 6).then_some(c))
    })
    .await?;
    let cy_first = events(&on_c).first().map(|e| e.2).context("cy's events")?;

    a.kill_9().await?;
    host.close().await;
    let host = publish_again(b).await?;
    ensure!(b.lease_on(ROOM).await?.is_some(), "node-b owns the room");

    // ann was on the dead origin: she resumes on node-c; dan, who had left three events
    // before the takeover, resumes on node-b, the owner, from the events it took over from
    // the stream; hal opens on node-b with a snapshot, whose chat is the old owner's.
    let ann = watch(c, "ann", Some(resume_hello((epoch, seen)))).await?;
    let dan = watch(b, "dan", Some(resume_hello((epoch, seen - 3)))).await?;
    let hal = watch(b, "hal", None).await?;
    let hal_snapshot = frames(&hal).into_iter().find(|(_, _, f)| f["type"] == "snapshot").map(|(_, _, f)| f).context("hal's snapshot")?;
    let history: Vec<&str> = hal_snapshot["chat"].as_array().context("chat")?.iter().filter_map(|l| l["text"].as_str()).collect();
    let said: Vec<String> = (0..6).map(|i| format!("before {i}")).collect();
    ensure!(history == said, "the new owner's snapshot shows the old owner's chat: {history:?}");
    let (fay, erin) = (token("viewer", "fay")?, token("viewer", "erin")?);
    for i in 0..4 {
        post_frame(&b.http, &b.base, &fay, &json!({ "type": "chat", "text": format!("after b {i}") })).await?;
        post_frame(&c.http, &c.base, &erin, &json!({ "type": "chat", "text": format!("after c {i}") })).await?;
    }
    for (who, v) in [("cy on node-c", &on_c), ("ann on node-c", &ann), ("dan on node-b", &dan)] {
        // The last line said, as an event or in a snapshot.
        eventually(SETTLE, &format!("{who} got the last line said after the takeover"), || async {
            Ok(frames(v).iter().any(|(_, text, _)| text.contains("after c 3")).then_some(()))
        })
        .await?;
    }
    let newest = seen + 8;
    // Let anything extra (a duplicate) arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cy = events(&on_c);
    ensure!(cy.iter().all(|e| e.1 == epoch), "cy's events are all of the epoch she started in: {:?}", cy.iter().map(|e| (e.1, e.2)).collect::<Vec<_>>());
    ensure!(welcomes(&on_c).len() == 1 && snapshots(&on_c) == 1, "cy was never sent a second welcome or a snapshot: {:?}", welcomes(&on_c));
    let reference: HashMap<u64, String> = cy.iter().map(|e| (e.2, e.3.clone())).collect();
    same_events("cy (stayed on node-c)", &cy, &reference, cy_first, newest)?;
    for (who, v, from) in [("ann (resumed on node-c)", &ann, seen), ("dan (resumed on node-b)", &dan, seen - 3)] {
        let opened = welcome(v).context("welcome")?;
        ensure!(opened["resumed"] == true && opened["epoch"] == epoch, "{who} resumed in the same epoch: {opened}");
        ensure!(snapshots(v) == 0, "{who} got no snapshot");
        same_events(who, &events(v), &reference, from + 1, newest)?;
    }
    println!("the new owner continued epoch {epoch} after seq {seen}; cy and ann got {}..={newest} once, dan {}..={newest}", seen + 1, seen - 2);
    host.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_an_edge_mid_storm_its_viewers_resume_on_another_node_and_no_order_is_lost_or_doubled() -> Result<()> {
    let (cluster, a, mut b, c) = Cluster::start(19870).await?;
    let result = edge_dies_mid_storm(&cluster, &a, &mut b, &c).await;
    logged(&cluster, result).await
}

async fn edge_dies_mid_storm(cluster: &Cluster, a: &Node, b: &mut Node, c: &Node) -> Result<()> {
    const STOCK: u32 = 250;
    const EDGE_VIEWERS: usize = 5;
    let host = Publisher::connect(&a.base, ROOM, publish_options()?).await.context("the host publishing to node-a")?;
    let sale = open_sale(a, STOCK, 10).await?;
    let reference = watch(c, "ref", None).await?;
    let mut on_b = Vec::new();
    for i in 0..EDGE_VIEWERS {
        on_b.push(watch(b, &format!("edge-viewer-{i}"), None).await?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let chat = chatter(vec![a.base.clone(), c.base.clone()], 10, stop.clone())?;
    let bases = vec![a.base.clone(), b.base.clone(), c.base.clone()];
    let buys = storm(bases, sale, 30, 10, Duration::from_millis(300))?;

    tokio::time::sleep(Duration::from_secs(2)).await;
    let positions: Vec<(u64, u64)> = on_b.iter().map(position).collect::<Option<_>>().context("edge viewers' positions")?;
    let seen_before: Vec<Vec<(Instant, u64, u64, String)>> = on_b.iter().map(events).collect();
    b.kill_9().await?;
    let killed = Instant::now();

    // Each of node-b's viewers connects again, to node-c, from where it stood, all at once
    // (as their pages would).
    let names: Vec<String> = (0..EDGE_VIEWERS).map(|i| format!("edge-viewer-{i}")).collect();
    let again = names.iter().zip(&positions).map(|(name, at)| watch(c, name, Some(resume_hello(*at))));
    let resumed: Vec<Viewer> = futures_util::future::join_all(again).await.into_iter().collect::<Result<_>>()?;
    let mut records = Vec::new();
    for task in buys {
        records.extend(task.await??);
    }
    stop.store(true, Ordering::Relaxed);
    let lines = chat.await?;
    let newest = position(&reference).context("reference position")?.1;
    for (i, v) in resumed.iter().enumerate() {
        reaches(v, newest, &format!("edge-viewer-{i} on node-c")).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let ref_events = events(&reference);
    let by_seq: HashMap<u64, String> = ref_events.iter().map(|e| (e.2, e.3.clone())).collect();
    let ref_first = ref_events.first().map(|e| e.2).context("reference events")?;
    let mut resume_times = Vec::new();
    for (i, v) in resumed.iter().enumerate() {
        let opened = welcome(v).context("welcome")?;
        ensure!(opened["resumed"] == true, "edge-viewer-{i} resumed, not a snapshot: {opened}");
        ensure!(snapshots(v) == 0, "edge-viewer-{i} got no snapshot");
        let mut got = seen_before[i].clone();
        let after = events(v);
        if let Some(first) = after.first() {
            resume_times.push(first.0.duration_since(killed));
        }
        got.extend(after);
        let from = got.first().map(|e| e.2).context("events")?.max(ref_first);
        got.retain(|e| e.2 >= from && e.2 <= newest);
        same_events(&format!("edge-viewer-{i} (node-b, then node-c)"), &got, &by_seq, from, newest)?;
    }
    let survivors = vec![a.base.clone(), c.base.clone()];
    let acc = account(cluster, &records, &survivors, sale, STOCK).await?;
    let (median, max) = median_and_max(resume_times.clone());
    println!("edge node-b killed mid-storm: {EDGE_VIEWERS} viewers resumed on node-c; kill -> first event on node-c: median {median:?}, max {max:?} (each: {resume_times:?}); {lines} chat lines sent, events up to seq {newest}");
    print_account("edge kill", &acc);
    ensure!(acc.retried > 0, "some buys were in flight on node-b when it died (else the kill tested nothing)");
    ensure!((acc.lost, acc.doubled, acc.changed) == (0, 0, 0), "orders lost {}, doubled {}, answers changed {}", acc.lost, acc.doubled, acc.changed);
    host.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_the_origin_mid_storm_loses_no_order_and_edge_viewers_continue_the_seq() -> Result<()> {
    let (cluster, mut a, b, c) = Cluster::start(19880).await?;
    let result = origin_dies_mid_storm(&cluster, &mut a, &b, &c).await;
    logged(&cluster, result).await
}

async fn origin_dies_mid_storm(cluster: &Cluster, a: &mut Node, b: &Node, c: &Node) -> Result<()> {
    const STOCK: u32 = 250;
    let host = Publisher::connect(&a.base, ROOM, publish_options()?).await.context("the host publishing to node-a")?;
    let sale = open_sale(a, STOCK, 10).await?;
    let mut on_b = Vec::new();
    for i in 0..3 {
        on_b.push(watch(b, &format!("edge-viewer-{i}"), None).await?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let chat = chatter(vec![b.base.clone(), c.base.clone()], 10, stop.clone())?;
    let bases = vec![a.base.clone(), b.base.clone(), c.base.clone()];
    let buys = storm(bases, sale, 30, 10, Duration::from_millis(300))?;

    tokio::time::sleep(Duration::from_secs(2)).await;
    let at_kill = position(&on_b[0]).context("position")?;
    a.kill_9().await?;
    let killed = Instant::now();
    host.close().await;
    let host = publish_again(c).await?;
    let live_again = killed.elapsed();

    let mut records = Vec::new();
    for task in buys {
        records.extend(task.await??);
    }
    stop.store(true, Ordering::Relaxed);
    let lines = chat.await?;
    let newest = on_b.iter().filter_map(position).map(|p| p.1).max().context("positions")?;
    for (i, v) in on_b.iter().enumerate() {
        reaches(v, newest, &format!("edge-viewer-{i} on node-b")).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reference_events = events(&on_b[0]);
    let by_seq: HashMap<u64, String> = reference_events.iter().map(|e| (e.2, e.3.clone())).collect();
    for (i, v) in on_b.iter().enumerate() {
        ensure!(welcomes(v).len() == 1 && snapshots(v) == 1, "edge-viewer-{i} was never sent a second welcome or snapshot");
        let got = events(v);
        ensure!(got.iter().all(|e| e.1 == at_kill.0), "edge-viewer-{i}'s events stay in epoch {}", at_kill.0);
        let from = got.first().map(|e| e.2).context("events")?;
        same_events(&format!("edge-viewer-{i}"), &got, &by_seq, from, newest)?;
    }
    let events_again = reference_events.iter().find(|e| e.2 > at_kill.1 && e.0 > killed).map(|e| e.0.duration_since(killed));
    let buys_again = records.iter().filter(|r| r.sent_at > killed).map(|r| r.answered_at.duration_since(killed)).min();
    let survivors = vec![b.base.clone(), c.base.clone()];
    let acc = account(cluster, &records, &survivors, sale, STOCK).await?;
    println!("origin node-a killed mid-storm: the host live again on node-c after {live_again:?}; first new event at node-b's viewers after {events_again:?}; first buy answered after the kill {buys_again:?}; {lines} chat lines sent, events up to seq {newest}");
    print_account("origin kill", &acc);
    ensure!(acc.retried > 0, "some buys were in flight on node-a when it died (else the kill tested nothing)");
    ensure!(newest > at_kill.1, "events went on after the takeover");
    ensure!((acc.lost, acc.doubled, acc.changed) == (0, 0, 0), "orders lost {}, doubled {}, answers changed {}", acc.lost, acc.doubled, acc.changed);
    host.close().await;
    Ok(())
}
