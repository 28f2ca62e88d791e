//! The interaction plane across nodes (cluster mode), against a real `nats-server` and three
//! real `sellcast` nodes (child processes). The room `shop` is owned by node-a: its host
//! publishes there (the synthetic publisher). Viewers are real WebRTC data-channel viewers
//! (`sellcast-peer`) on node-a, node-b and node-c; node-b and node-c serve the room from a
//! mirror of it (`interaction::across_nodes`), never from a show of their own.
//! - chat from viewers on node-c and node-a reaches the viewers on all three nodes with the
//!   same seqs in the same order, and likes from node-b reach the others;
//! - a viewer on node-b that leaves and resumes by seq on node-c, while chat goes on through
//!   the HTTP frames API on node-a and node-c, gets every event it missed once: no event
//!   missed, none twice;
//! - a buy on node-b's data channel and one over the HTTP frames API on node-c are answered,
//!   a retry of each gets its original answer, and each order is in node-a's store once.
//!
//! Control runs: with node-c's local copy resuming from the viewer's own seq instead of the
//! one after it (`>=` for `>` in `StreamLog::replay_after`), the resume test failed on the
//! duplicated event (`before [.., 8], after resuming [8, 9, ..]`); with it skipping one
//! (`> from.seq + 1`), it failed on the missed one (`after [10, ..]`, 9 missing). Both only
//! touch the copy on node-c, so they also show the resume is served from the stream there.
//!
//! HTTP and NATS ports are fixed per test in 19700-19749; media ports are chosen by the OS.

mod cluster_support;

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use cluster_support::{eventually, host_token, NatsServer, Node, JWT_SECRET};
use sellcast_peer::{PublishOptions, Publisher, Viewer, ViewerOptions};
use serde_json::{json, Value};

const ROOM: &str = "shop";
const SETTLE: Duration = Duration::from_secs(20);

/// A token for `identity` with `role` in the room, minted with the nodes' shared secret.
fn token(role: &str, identity: &str) -> Result<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["token", "--room", ROOM, "--role", role, "--identity", identity, "--jwt-secret", JWT_SECRET])
        .output()?;
    ensure!(out.status.success(), "sellcast token failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// NATS, three nodes, and the room's host live on node-a.
struct Three {
    _dir: tempfile::TempDir,
    _nats: NatsServer,
    a: Node,
    b: Node,
    c: Node,
    host: Publisher,
}

impl Three {
    async fn start(port: u16) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let nats = NatsServer::start(dir.path(), port)?;
        let a = Node::start(dir.path(), "node-a", port + 1, &nats.url()).await?;
        let b = Node::start(dir.path(), "node-b", port + 2, &nats.url()).await?;
        let c = Node::start(dir.path(), "node-c", port + 3, &nats.url()).await?;
        let options = PublishOptions { token: Some(host_token(ROOM)?), bitrate_bps: 150_000, fps: 10, ..PublishOptions::default() };
        let host = Publisher::connect(&a.base, ROOM, options).await.context("the host publishing to node-a")?;
        ensure!(a.lease_on(ROOM).await?.is_some(), "node-a owns the room");
        Ok(Self { _dir: dir, _nats: nats, a, b, c, host })
    }
}

/// A data-channel viewer `identity` on `node`, its stream open (a welcome arrived).
async fn viewer(node: &Node, identity: &str, hello: Option<String>) -> Result<Viewer> {
    let options = ViewerOptions { token: Some(token("viewer", identity)?), data_channel: true, hello, ..ViewerOptions::default() };
    let viewer = Viewer::connect(&node.base, ROOM, options).await.with_context(|| format!("{identity} watching on {}", node.id))?;
    viewer.channel_ready(Duration::from_secs(15)).await?;
    eventually(SETTLE, &format!("{identity}'s welcome on {}", node.id), || async { Ok(welcome(&viewer)) }).await?;
    Ok(viewer)
}

fn frames(viewer: &Viewer) -> Vec<Value> {
    viewer.frames().into_iter().filter_map(|(_, text)| serde_json::from_str(&text).ok()).collect()
}

fn welcome(viewer: &Viewer) -> Option<Value> {
    frames(viewer).into_iter().find(|f| f["type"] == "welcome")
}

/// Every chat event the viewer got, as `(seq, text)`, in the order it got them.
fn chats(viewer: &Viewer) -> Vec<(u64, String)> {
    frames(viewer)
        .into_iter()
        .filter(|f| f["type"] == "chat")
        .filter_map(|f| Some((f["seq"].as_u64()?, f["text"].as_str()?.to_string())))
        .collect()
}

/// Every room event the viewer got, by seq, in the order it got them (the welcome and the
/// snapshot carry the stream's position, and are not events).
fn event_seqs(viewer: &Viewer) -> Vec<u64> {
    frames(viewer)
        .into_iter()
        .filter(|f| f["type"] != "welcome" && f["type"] != "snapshot")
        .filter_map(|f| f["seq"].as_u64())
        .collect()
}

/// The position of the viewer's snapshot (its stream's events start after it).
fn snapshot_seq(viewer: &Viewer) -> Option<u64> {
    frames(viewer).into_iter().find(|f| f["type"] == "snapshot").and_then(|f| f["seq"].as_u64())
}

/// The `order_confirmed` frames the viewer got for `key`.
fn confirmations(viewer: &Viewer, key: &str) -> Vec<Value> {
    frames(viewer).into_iter().filter(|f| f["type"] == "order_confirmed" && f["idempotency_key"] == key).collect()
}

async fn chat(viewer: &Viewer, text: &str) -> Result<()> {
    Ok(viewer.send(&json!({ "type": "chat", "text": text }).to_string()).await?)
}

/// One frame over `POST /api/rooms/shop/frames` on `node`; the room's answer frames.
async fn post_frame(node: &Node, bearer: &str, frame: Value) -> Result<Vec<Value>> {
    let resp = node.http.post(format!("{}/api/rooms/{ROOM}/frames", node.base)).bearer_auth(bearer).json(&frame).send().await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    ensure!(status.is_success(), "frame on {}: {status} {body}", node.id);
    Ok(body.as_array().cloned().unwrap_or_default())
}

/// Wait until `viewer` has `n` chat lines.
async fn chats_reach(viewer: &Viewer, n: usize, who: &str) -> Result<Vec<(u64, String)>> {
    eventually(SETTLE, &format!("{n} chat lines at {who}"), || async {
        let got = chats(viewer);
        Ok((got.len() >= n).then_some(got))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_from_node_c_reaches_every_node_with_the_same_seqs_in_the_same_order() -> Result<()> {
    let three = Three::start(19700).await?;
    let on_a = viewer(&three.a, "ann", None).await?;
    let on_b = viewer(&three.b, "bob", None).await?;
    let on_c = viewer(&three.c, "cy", None).await?;

    for i in 0..4 {
        chat(&on_c, &format!("from c {i}")).await?;
        chat(&on_a, &format!("from a {i}")).await?;
    }
    let seen_a = chats_reach(&on_a, 8, "node-a").await?;
    let seen_b = chats_reach(&on_b, 8, "node-b").await?;
    let seen_c = chats_reach(&on_c, 8, "node-c").await?;
    assert_eq!(seen_a.len(), 8, "{seen_a:?}");
    assert_eq!(seen_b, seen_a, "node-b got the room's chat in node-a's order with its seqs");
    assert_eq!(seen_c, seen_a, "node-c got the room's chat in node-a's order with its seqs");
    let seqs: Vec<u64> = seen_a.iter().map(|(seq, _)| *seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs rise: {seqs:?}");
    for i in 0..4 {
        let from_c = format!("from c {i}");
        assert!(seen_a.iter().any(|(_, text)| *text == from_c), "{from_c} reached node-a");
    }
    let order_of = |text: &str| seen_a.iter().position(|(_, t)| t == text);
    assert!(order_of("from c 0") < order_of("from c 3"), "one viewer's lines keep their order");

    // Likes on node-b are summed there and counted by the owner; everyone sees the total.
    on_b.send(r#"{"type":"like","count":3}"#).await?;
    on_b.send(r#"{"type":"like","count":4}"#).await?;
    for (who, v) in [("node-a", &on_a), ("node-c", &on_c)] {
        eventually(SETTLE, &format!("node-b's likes counted at {who}"), || async {
            Ok(frames(v).iter().any(|f| f["type"] == "likes" && f["total"].as_u64() == Some(7)).then_some(()))
        })
        .await?;
    }
    three.host.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_resuming_by_seq_on_another_node_misses_no_event_and_gets_none_twice() -> Result<()> {
    let three = Three::start(19710).await?;
    let on_a = viewer(&three.a, "ann", None).await?;
    let on_b = viewer(&three.b, "bob", None).await?;
    let on_c = viewer(&three.c, "cy", None).await?;
    for i in 0..4 {
        chat(&on_a, &format!("before {i}")).await?;
        chat(&on_c, &format!("before c {i}")).await?;
    }
    chats_reach(&on_b, 8, "node-b").await?;
    let epoch = welcome(&on_b).context("bob's welcome")?["epoch"].as_u64().context("epoch")?;
    let before = event_seqs(&on_b);
    let first = snapshot_seq(&on_b).context("bob's snapshot")? + 1;
    let last = *before.iter().max().context("bob saw events")?;
    on_b.close().await;

    // While bob is away, chat goes on over HTTP: on the owner, and on node-c (forwarded).
    let (dave, erin) = (token("viewer", "dave")?, token("viewer", "erin")?);
    for i in 0..3 {
        post_frame(&three.a, &dave, json!({ "type": "chat", "text": format!("away a {i}") })).await?;
        post_frame(&three.c, &erin, json!({ "type": "chat", "text": format!("away c {i}") })).await?;
    }
    let all = chats_reach(&on_a, 14, "node-a").await?;

    let hello = json!({ "type": "hello", "resume": { "epoch": epoch, "seq": last } }).to_string();
    let resumed = viewer(&three.c, "bob", Some(hello)).await?;
    let opened = welcome(&resumed).context("welcome")?;
    assert_eq!(opened["resumed"], true, "served as a resume, not a snapshot: {opened}");
    assert!(!frames(&resumed).iter().any(|f| f["type"] == "snapshot"), "no snapshot on a resume");
    let newest = all.iter().map(|(seq, _)| *seq).max().context("events")?;
    eventually(SETTLE, "bob caught up on node-c", || async {
        Ok(event_seqs(&resumed).iter().any(|s| *s >= newest).then_some(()))
    })
    .await?;

    let after = event_seqs(&resumed);
    let mut got: Vec<u64> = before.iter().chain(after.iter()).copied().collect();
    let distinct: HashSet<u64> = got.iter().copied().collect();
    if distinct.len() != got.len() {
        bail!("an event twice: before {before:?}, after resuming {after:?}");
    }
    got.sort_unstable();
    let expected: Vec<u64> = (first..=newest).collect();
    assert_eq!(got, expected, "every event once, none missed: before {before:?}, after {after:?}");
    let resumed_chats: Vec<String> = chats(&resumed).into_iter().map(|(_, t)| t).collect();
    assert_eq!(resumed_chats.len(), 6, "the six lines said while away: {resumed_chats:?}");
    three.host.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buys_on_other_nodes_are_answered_retries_get_the_same_answer_and_each_order_is_stored_once() -> Result<()> {
    let three = Three::start(19720).await?;
    let host = host_token(ROOM)?;
    let mug = json!({ "title": "Mug", "price_minor": 990, "currency": "EUR", "stock": 10 });
    let product_id = cluster_support::create_product(&three.a.http, &three.a.base, ROOM, &host, &mug).await?;
    let on_b = viewer(&three.b, "bob", None).await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let sale = json!({ "type": "start_sale", "product_id": product_id, "price_minor": 500, "stock": 3,
        "per_user_limit": 2, "starts_at_ms": now - 1000, "ends_at_ms": now + 600_000 });
    post_frame(&three.a, &host, sale).await?;
    let sale_id = eventually(SETTLE, "the sale reached node-b", || async {
        Ok(frames(&on_b).iter().find(|f| f["type"] == "sale_started").and_then(|f| f["sale"]["id"].as_i64()))
    })
    .await?;

    let buy = |key: &str| json!({ "type": "buy", "sale_id": sale_id, "qty": 1, "idempotency_key": key }).to_string();
    on_b.send(&buy("bob-1")).await?;
    let first = eventually(SETTLE, "bob's buy answered on node-b", || async {
        let got = confirmations(&on_b, "bob-1");
        Ok((!got.is_empty()).then_some(got))
    })
    .await?;
    on_b.send(&buy("bob-1")).await?;
    let both = eventually(SETTLE, "bob's retry answered", || async {
        let got = confirmations(&on_b, "bob-1");
        Ok((got.len() >= 2).then_some(got))
    })
    .await?;
    assert_eq!(both[1]["order_id"], first[0]["order_id"], "the retry gets the original answer");

    let erin = token("viewer", "erin")?;
    let over_http = json!({ "type": "buy", "sale_id": sale_id, "qty": 1, "idempotency_key": "erin-1" });
    let answer = post_frame(&three.c, &erin, over_http.clone()).await?;
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(answer[0]["type"], "order_confirmed", "{answer:?}");
    let again = post_frame(&three.c, &erin, over_http).await?;
    assert_eq!(again, answer, "a retry over HTTP on node-c gets the original answer");

    let db = three._dir.path().join("node-a.db");
    let conn = rusqlite::Connection::open(&db)?;
    let count = |key: &str| -> Result<i64> {
        Ok(conn.query_row("SELECT COUNT(*) FROM orders WHERE room = ?1 AND idempotency_key = ?2", (ROOM, key), |r| r.get(0))?)
    };
    assert_eq!(count("bob-1")?, 1, "bob's order is stored once");
    assert_eq!(count("erin-1")?, 1, "erin's order is stored once");
    let in_room: i64 = conn.query_row("SELECT COUNT(*) FROM orders WHERE room = ?1", [ROOM], |r| r.get(0))?;
    assert_eq!(in_room, 2, "no other order was made");
    for other in ["node-b.db", "node-c.db"] {
        let path = three._dir.path().join(other);
        if path.exists() {
            let conn = rusqlite::Connection::open(&path)?;
            let n: i64 = conn.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0)).unwrap_or(0);
            assert_eq!(n, 0, "{other} made no order of its own");
        }
    }
    three.host.close().await;
    Ok(())
}
