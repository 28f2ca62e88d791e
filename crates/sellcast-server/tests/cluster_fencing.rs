//! A stale room owner is fenced (cluster mode), against a real `nats-server`, a throwaway
//! PostgreSQL server the three real `sellcast` nodes share (child processes), and a real
//! WebRTC data-channel viewer (`sellcast-peer`).
//!
//! node-a owns the room and is stopped (SIGSTOP) past its lease; the host publishes again to
//! node-b, which takes the room over and continues the stream. Chat lines sent to node-a
//! while it is stopped are queued in its socket backlog; node-a is continued (SIGCONT) and its
//! stale show turns them into room events. Its relay publishes them expecting its own last
//! message on the room subject, the stream refuses them (node-b has written since), and
//! node-a stops owning the room. The test shows: none of node-a's stale lines reach the
//! viewer on node-c as room events, no two messages of the room in the stream share one
//! `(epoch, seq)`, node-a counts the fence (`/api/stats/cluster`), and a buy sent to node-a
//! is answered `unavailable` with no order written.
//!
//! Control run: with the expected last subject sequence left off the publish
//! (`owner_relay::Publisher::publish_event`), this test failed on `none of node-a's stale
//! lines reached cy as room events: [(E, 8, .."stale 4"..), (E, 9, .."stale 1"..), (E, 10, ..),
//! (E, 11, ..)]` (node-a's seqs 6..11 were taken into the stream; cy dropped 6 and 7 as
//! duplicates of node-b's and took the rest, and node-b's next line was then lost to cy).
//!
//! Since owners also fence themselves on their own lease (`cluster::lease_standing`), node-a
//! holds its stale events on SIGCONT instead of publishing them, and gives the room up when
//! its renewal finds node-b's claim; the stream's refusal is the second line.
//!
//! A second test stops node-a past its lease with buys queued in its socket backlog and no
//! chat: the buys are node-a's first action after SIGCONT, before it could publish anything
//! or learn from NATS that node-b took the room. They are answered `unavailable`, with no
//! order written and no message of node-a's in the stream after the pause.
//!
//! Control run: with the time check off (`lease_standing::standing` taking any held claim as
//! owner), this test failed on `a buy queued at node-a while it was stopped past its lease is
//! answered unavailable: [{.."idempotency_key": "stale-buy-1", "order_id": 3, .."type":
//! "order_confirmed"}]`: the buy reached the store before node-a's renewal learned that
//! node-b held the room.
//!
//! HTTP and NATS ports are fixed in 19930-19933 and 19940-19942; media ports are chosen by
//! the OS.

mod cluster_support;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use cluster_support::{eventually, host_token, NatsServer, Node, JWT_SECRET};
use futures_util::StreamExt;
use sellcast_peer::{PublishOptions, Publisher, Viewer, ViewerOptions};
use sellcast_store::testing::TestPostgres;
use serde_json::{json, Value};

const ROOM: &str = "fencing";
const SETTLE: Duration = Duration::from_secs(30);

fn token(role: &str, identity: &str) -> Result<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["token", "--room", ROOM, "--role", role, "--identity", identity, "--jwt-secret", JWT_SECRET])
        .output()?;
    ensure!(out.status.success(), "sellcast token failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

fn publish_options() -> Result<PublishOptions> {
    Ok(PublishOptions { token: Some(host_token(ROOM)?), bitrate_bps: 150_000, fps: 10, ..PublishOptions::default() })
}

/// The viewer's frames, parsed.
fn frames(viewer: &Viewer) -> Vec<(String, Value)> {
    viewer.frames().into_iter().filter_map(|(_, text)| serde_json::from_str(&text).ok().map(|v| (text, v))).collect()
}

/// The room events the viewer got: `(epoch, seq, text)`.
fn events(viewer: &Viewer) -> Vec<(u64, u64, String)> {
    frames(viewer)
        .into_iter()
        .filter(|(_, f)| f["type"] != "welcome" && f["type"] != "snapshot")
        .filter_map(|(text, f)| Some((f["epoch"].as_u64()?, f["seq"].as_u64()?, text)))
        .collect()
}

async fn post_frame(http: &reqwest::Client, base: &str, bearer: &str, frame: &Value) -> Result<Vec<Value>> {
    let resp = http.post(format!("{base}/api/rooms/{ROOM}/frames")).bearer_auth(bearer).json(frame).send().await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    ensure!(status.is_success(), "frame at {base}: {status} {body}");
    Ok(body.as_array().cloned().unwrap_or_default())
}

/// Every message of the room's subject in the events stream: `(epoch, seq)` from its headers.
async fn stream_positions(nats_url: &str) -> Result<Vec<(u64, u64)>> {
    let client = async_nats::connect(nats_url).await?;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("SELLCAST_ROOM_EVENTS").await?;
    let subject = format!("sellcast.room.{ROOM}.events");
    let last = stream.get_last_raw_message_by_subject(&subject).await?.sequence;
    let config = pull::OrderedConfig { filter_subject: subject, deliver_policy: DeliverPolicy::All, ..Default::default() };
    let mut messages = stream.create_consumer(config).await?.messages().await?;
    let mut positions = Vec::new();
    while let Some(message) = tokio::time::timeout(Duration::from_secs(10), messages.next()).await.context("reading the stream")? {
        let message = message?;
        let header = |name: &str| message.headers.as_ref().and_then(|h| h.get(name)).and_then(|v| v.as_str().parse::<u64>().ok());
        positions.push((header("Sellcast-Epoch").context("epoch header")?, header("Sellcast-Seq").context("seq header")?));
        if message.info().map_err(|e| anyhow::anyhow!("{e}"))?.stream_sequence >= last {
            break;
        }
    }
    Ok(positions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_stopped_past_its_lease_is_fenced_its_stale_events_reach_no_viewer_and_it_answers_no_buy() -> Result<()> {
    let pg = tokio::task::spawn_blocking(TestPostgres::start).await??;
    let url = pg.fresh_database()?;
    let db = url.rsplit('/').next().and_then(|d| d.split('?').next()).unwrap_or_default().to_string();
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start(dir.path(), 19930)?;
    let a = Node::start_on_postgres(dir.path(), "node-a", 19931, &nats.url(), &url).await?;
    let b = Node::start_on_postgres(dir.path(), "node-b", 19932, &nats.url(), &url).await?;
    let c = Node::start_on_postgres(dir.path(), "node-c", 19933, &nats.url(), &url).await?;
    let result = stale_owner(&nats, &a, &b, &c, &pg, &db).await;
    // A stopped node must not outlive the test stopped: continue it before it is killed.
    let _ = a.signal("CONT");
    if result.is_err() {
        for id in ["node-a", "node-b", "node-c"] {
            let log = std::fs::read_to_string(dir.path().join(format!("{id}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains("heartbeat")).collect();
            eprintln!("--- {id} (last 30 lines) ---\n{}", lines[lines.len().saturating_sub(30)..].join("\n"));
        }
    }
    result
}

async fn stale_owner(nats: &NatsServer, a: &Node, b: &Node, c: &Node, pg: &TestPostgres, db: &str) -> Result<()> {
    let host = Publisher::connect(&a.base, ROOM, publish_options()?).await.context("the host publishing to node-a")?;
    ensure!(a.lease_on(ROOM).await?.is_some(), "node-a owns the room");
    let sale = open_sale(a).await?;
    let options = ViewerOptions { token: Some(token("viewer", "cy")?), data_channel: true, ..ViewerOptions::default() };
    let cy = Viewer::connect(&c.base, ROOM, options).await.context("cy watching on node-c")?;
    cy.channel_ready(Duration::from_secs(20)).await?;
    let dave = token("viewer", "dave")?;
    for i in 0..3 {
        post_frame(&a.http, &a.base, &dave, &json!({ "type": "chat", "text": format!("before {i}") })).await?;
    }
    eventually(SETTLE, "cy saw the three lines said on node-a", || async {
        Ok((events(&cy).iter().filter(|e| e.2.contains("before")).count() == 3).then_some(()))
    })
    .await?;

    a.signal("STOP")?;
    // Lines to node-a while it is stopped: its kernel takes the connections, its stale show
    // reads them when it runs again. More of them than node-b's lines, so that without the
    // fence their seqs would run past node-b's and viewers would take them as the next events.
    let stale_http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let mut stale = Vec::new();
    for i in 0..6 {
        let (http, base, bearer) = (stale_http.clone(), a.base.clone(), token("viewer", &format!("stale-{}", i % 3))?);
        stale.push(tokio::spawn(async move {
            post_frame(&http, &base, &bearer, &json!({ "type": "chat", "text": format!("stale {i}") })).await
        }));
    }
    host.close().await;
    let options = publish_options()?;
    let host = eventually(SETTLE, "the host goes live on node-b once node-a's lease lapsed", || async {
        Ok(Publisher::connect(&b.base, ROOM, options.clone()).await.ok())
    })
    .await?;
    ensure!(b.lease_on(ROOM).await?.is_some(), "node-b owns the room");
    let fay = token("viewer", "fay")?;
    for i in 0..2 {
        post_frame(&b.http, &b.base, &fay, &json!({ "type": "chat", "text": format!("after {i}") })).await?;
    }
    eventually(SETTLE, "cy saw node-b's two lines", || async {
        Ok((events(&cy).iter().filter(|e| e.2.contains("after")).count() == 2).then_some(()))
    })
    .await?;

    a.signal("CONT")?;
    for line in stale {
        // Taken by node-a's stale show (its own viewers would see them): not a failure.
        let _ = line.await?;
    }
    // Either node-a counts the fence, or (without it) its lines reach cy.
    eventually(SETTLE, "node-a was fenced or its stale lines reached cy", || async {
        let fenced = a.http.get(format!("{}/api/stats/cluster", a.base)).send().await?.json::<Value>().await?["owners_fenced"].as_u64();
        Ok((fenced.unwrap_or(0) >= 1 || events(&cy).iter().any(|e| e.2.contains("stale"))).then_some(()))
    })
    .await?;
    // A fenced node-a publishes nothing after the refused event, so nothing stale can come later.
    let stale_seen: Vec<(u64, u64, String)> = events(&cy).into_iter().filter(|e| e.2.contains("stale")).collect();
    ensure!(stale_seen.is_empty(), "none of node-a's stale lines reached cy as room events: {stale_seen:?}");
    // One more line on node-b after node-a ran again: the room goes on for cy.
    post_frame(&b.http, &b.base, &fay, &json!({ "type": "chat", "text": "last" })).await?;
    eventually(SETTLE, "cy saw node-b's last line", || async { Ok(events(&cy).iter().any(|e| e.2.contains("\"last\"")).then_some(())) }).await?;
    let got = events(&cy);
    let positions = stream_positions(&nats.url()).await?;
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
    for p in &positions {
        *seen.entry(*p).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).map(|(p, _)| *p).collect();
    ensure!(twice.is_empty(), "no two messages of the room in the stream share one (epoch, seq): {twice:?} in {positions:?}");
    let stats: Value = a.http.get(format!("{}/api/stats/cluster", a.base)).send().await?.json().await?;
    ensure!(stats["owners_fenced"].as_u64() == Some(1), "node-a counts one fence: {stats}");
    let metrics = a.http.get(format!("{}/metrics", a.base)).bearer_auth(cluster_support::OPERATOR_TOKEN).send().await?.text().await?;
    ensure!(metrics.contains("sellcast_cluster_owners_fenced_total 1"), "node-a's /metrics counts the fence");

    let buyer = token("viewer", "buyer")?;
    let buy = json!({ "type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": "fenced-buy-1" });
    let answer = post_frame(&a.http, &a.base, &buyer, &buy).await?;
    ensure!(
        answer.iter().any(|f| f["type"] == "error" && f["code"] == "unavailable") && !answer.iter().any(|f| f["type"] == "order_confirmed"),
        "a buy at the fenced node-a is answered unavailable: {answer:?}"
    );
    let orders = pg.sql(db, |c| Ok(c.query_one("SELECT COUNT(*) FROM orders WHERE idempotency_key = 'fenced-buy-1'", &[])?.get::<_, i64>(0)))?;
    ensure!(orders == 0, "the fenced node wrote no order: {orders}");
    println!("node-a fenced; the stream holds {} messages of the room, each (epoch, seq) once; cy got {} events", positions.len(), got.len());
    host.close().await;
    Ok(())
}

/// A product and an open sale in the room, made on `node`: the sale's id.
async fn open_sale(node: &Node) -> Result<i64> {
    let host = host_token(ROOM)?;
    let serum = json!({ "title": "Serum", "price_minor": 990, "currency": "EUR", "stock": 10_000 });
    let product = cluster_support::create_product(&node.http, &node.base, ROOM, &host, &serum).await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let start = json!({ "type": "start_sale", "product_id": product, "price_minor": 500, "stock": 100,
        "per_user_limit": 5, "starts_at_ms": now - 1000, "ends_at_ms": now + 600_000 });
    post_frame(&node.http, &node.base, &host, &start).await?;
    let listed: Value = node.http.get(format!("{}/api/rooms/{ROOM}/products", node.base)).send().await?.json().await?;
    match listed["sales"].as_array().and_then(|s| s.first()).and_then(|s| s["id"].as_i64()) {
        Some(id) => Ok(id),
        None => bail!("the sale: {listed}"),
    }
}

/// Every message of the room's subject in the events stream after stream sequence `after`:
/// `(stream sequence, Nats-Msg-Id)`.
async fn stream_messages_after(nats_url: &str, after: u64) -> Result<Vec<(u64, String)>> {
    let client = async_nats::connect(nats_url).await?;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("SELLCAST_ROOM_EVENTS").await?;
    let subject = format!("sellcast.room.{ROOM}.events");
    let last = stream.get_last_raw_message_by_subject(&subject).await?.sequence;
    if last <= after {
        return Ok(Vec::new());
    }
    let config = pull::OrderedConfig { filter_subject: subject, deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: after + 1 }, ..Default::default() };
    let mut messages = stream.create_consumer(config).await?.messages().await?;
    let mut got = Vec::new();
    while let Some(message) = tokio::time::timeout(Duration::from_secs(10), messages.next()).await.context("reading the stream")? {
        let message = message?;
        let seq = message.info().map_err(|e| anyhow::anyhow!("{e}"))?.stream_sequence;
        let id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_string()).unwrap_or_default();
        got.push((seq, id));
        if seq >= last {
            break;
        }
    }
    Ok(got)
}

/// The stream sequence of the room subject's last message.
async fn last_stream_seq(nats_url: &str) -> Result<u64> {
    let client = async_nats::connect(nats_url).await?;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("SELLCAST_ROOM_EVENTS").await?;
    Ok(stream.get_last_raw_message_by_subject(&format!("sellcast.room.{ROOM}.events")).await?.sequence)
}

/// Connections to local `port` whose request bytes wait unread (the process is stopped).
fn unread_connections(port: u16) -> Result<usize> {
    let out = std::process::Command::new("ss").args(["-tnH", "state", "established", &format!("( sport = :{port} )")]).output()?;
    ensure!(out.status.success(), "ss failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().filter(|l| l.split_whitespace().next().and_then(|q| q.parse::<u64>().ok()).is_some_and(|q| q > 0)).count())
}

const QUEUED_BUYS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_stopped_past_its_lease_answers_its_first_buys_unavailable_without_an_order_or_an_event() -> Result<()> {
    let pg = tokio::task::spawn_blocking(TestPostgres::start).await??;
    let url = pg.fresh_database()?;
    let db = url.rsplit('/').next().and_then(|d| d.split('?').next()).unwrap_or_default().to_string();
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start(dir.path(), 19940)?;
    let a = Node::start_on_postgres(dir.path(), "node-a", 19941, &nats.url(), &url).await?;
    let b = Node::start_on_postgres(dir.path(), "node-b", 19942, &nats.url(), &url).await?;
    let result = first_buys_after_pause(&nats, &a, &b, &pg, &db).await;
    let _ = a.signal("CONT");
    if result.is_err() {
        for id in ["node-a", "node-b"] {
            let log = std::fs::read_to_string(dir.path().join(format!("{id}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains("heartbeat")).collect();
            eprintln!("--- {id} (last 30 lines) ---\n{}", lines[lines.len().saturating_sub(30)..].join("\n"));
        }
    }
    result
}

async fn first_buys_after_pause(nats: &NatsServer, a: &Node, b: &Node, pg: &TestPostgres, db: &str) -> Result<()> {
    let host = Publisher::connect(&a.base, ROOM, publish_options()?).await.context("the host publishing to node-a")?;
    ensure!(a.lease_on(ROOM).await?.is_some(), "node-a owns the room");
    let sale = open_sale(a).await?;
    // node-a takes buys while it holds its lease: the buys below could be confirmed.
    let early = json!({ "type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": "owner-buy-0" });
    let answer = post_frame(&a.http, &a.base, &token("viewer", "early")?, &early).await?;
    ensure!(answer.iter().any(|f| f["type"] == "order_confirmed"), "node-a confirms a buy while it owns the room: {answer:?}");

    a.signal("STOP")?;
    host.close().await;
    let options = publish_options()?;
    let host = eventually(SETTLE, "the host goes live on node-b once node-a's lease lapsed", || async {
        Ok(Publisher::connect(&b.base, ROOM, options.clone()).await.ok())
    })
    .await?;
    ensure!(b.lease_on(ROOM).await?.is_some(), "node-b owns the room");
    let before = last_stream_seq(&nats.url()).await?;
    // Buys to node-a while it is stopped: the kernel takes the connections and their bytes,
    // node-a reads them as soon as it runs, with nothing said to it in between.
    let mut buys = Vec::new();
    for i in 1..=QUEUED_BUYS {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
        let (base, bearer) = (a.base.clone(), token("viewer", &format!("stale-buyer-{i}"))?);
        let buy = json!({ "type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": format!("stale-buy-{i}") });
        buys.push(tokio::spawn(async move { post_frame(&http, &base, &bearer, &buy).await }));
    }
    eventually(SETTLE, "the buys wait unread in node-a's socket backlog", || async {
        Ok((unread_connections(19941)? >= QUEUED_BUYS).then_some(()))
    })
    .await?;

    a.signal("CONT")?;
    for buy in buys {
        let answer = buy.await??;
        ensure!(
            answer.iter().any(|f| f["type"] == "error" && f["code"] == "unavailable") && !answer.iter().any(|f| f["type"] == "order_confirmed"),
            "a buy queued at node-a while it was stopped past its lease is answered unavailable: {answer:?}"
        );
    }
    let orders = pg.sql(db, |c| Ok(c.query_one("SELECT COUNT(*) FROM orders WHERE idempotency_key LIKE 'stale-buy-%'", &[])?.get::<_, i64>(0)))?;
    ensure!(orders == 0, "node-a wrote no order after its lease ran out: {orders}");
    // node-a's renewal finds node-b's claim: it gives the room up, and counts it once.
    eventually(SETTLE, "node-a gives the room up", || async {
        let stats: Value = a.http.get(format!("{}/api/stats/cluster", a.base)).send().await?.json().await?;
        Ok((stats["owners_fenced"].as_u64() == Some(1)).then_some(()))
    })
    .await?;
    let after = stream_messages_after(&nats.url(), before).await?;
    let from_a: Vec<_> = after.iter().filter(|(_, id)| id.contains("@node-a.")).collect();
    ensure!(from_a.is_empty(), "node-a published nothing after the pause: {from_a:?}");
    // The room goes on at node-b: a buy there is confirmed.
    let late = json!({ "type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": "owner-buy-b" });
    let answer = post_frame(&b.http, &b.base, &token("viewer", "late")?, &late).await?;
    ensure!(answer.iter().any(|f| f["type"] == "order_confirmed"), "node-b confirms a buy as the room's owner: {answer:?}");
    println!("node-a answered {QUEUED_BUYS} queued buys unavailable and gave the room up; {} stream messages after the pause, none of node-a's", after.len());
    host.close().await;
    Ok(())
}
