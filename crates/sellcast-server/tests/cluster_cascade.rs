//! The media cascade against a real `nats-server` and three real `sellcast` nodes (A, B, C),
//! inside a private network namespace (the test runs itself again under `unshare -n`):
//! - the host publishes to A (the origin); 30 viewers watch on B and C (edges), 15 each, and
//!   one watches on A directly. Every viewer gets at least 99 % of the audio and video
//!   packets the host sent in a 3 s window, and its first video packet begins a keyframe;
//! - A counts each edge as one viewer (3 = 2 edges + the direct viewer, not 31), and refuses a
//!   pull (`?relay`) that carries a viewer's token instead of a relay token;
//! - once B's viewers leave, B stops pulling within the grace: A's count drops to 2;
//! - (second test) the origin is killed with SIGKILL; the host publishes again to C once A's
//!   lease lapsed; B keeps its viewers (they never reconnect) and they get video again from C,
//!   which counts B as one viewer;
//! - it prints the one-way latency (p50/p99) of the direct viewer and of the edge viewers,
//!   with all 31 viewers and then with one viewer on the origin and one on an edge: the
//!   figure for the latency a cascade hop adds (`cargo test -p sellcast-server --test
//!   cluster_cascade -- --nocapture`).
//!
//! Control runs (see the report): a pull rule that never stopped failed the "B stops pulling"
//! assertion.

mod cluster_support;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use cluster_support::{eventually, host_token, in_namespace, NatsServer, Node, JWT_SECRET};
use hdrhistogram::Histogram;
use sellcast_peer::{PublishOptions, Publisher, Viewer, ViewerOptions};

/// Set inside the namespace.
const INSIDE: &str = "SELLCAST_CASCADE_IN_NETNS";
const ROOM: &str = "cascade-show";
const VIEWERS_PER_EDGE: usize = 15;
/// The measured window: every viewer must get 99 % of what the host sent in it.
const WINDOW: Duration = Duration::from_secs(3);

#[test]
fn thirty_viewers_on_two_edges_get_the_origins_media_and_edges_stop_pulling() -> Result<()> {
    in_namespace(INSIDE, "thirty_viewers_on_two_edges_get_the_origins_media_and_edges_stop_pulling", || inside(run))
}

#[test]
fn when_the_origin_dies_edge_viewers_stay_and_get_video_from_the_new_origin() -> Result<()> {
    in_namespace(INSIDE, "when_the_origin_dies_edge_viewers_stay_and_get_video_from_the_new_origin", || inside(origin_dies))
}

fn viewer_token(room: &str, who: &str) -> Result<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["token", "--room", room, "--role", "viewer", "--identity", who, "--jwt-secret", JWT_SECRET])
        .output()?;
    ensure!(out.status.success(), "sellcast token failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// The room's viewers as `node` counts them (`GET /api/rooms/{room}`).
async fn viewers_on(node: &Node) -> Result<u64> {
    let body: serde_json::Value = node.http.get(format!("{}/api/rooms/{ROOM}", node.base)).send().await?.json().await?;
    body["viewers"].as_u64().context("viewers")
}

/// The rooms `node` pulls from their origins (`GET /api/stats/cluster`).
async fn pulling(node: &Node) -> Result<Vec<String>> {
    let body: serde_json::Value = node.http.get(format!("{}/api/stats/cluster", node.base)).send().await?.json().await?;
    let rooms = body["cascade"]["pulling"].as_array().context("cascade.pulling")?;
    Ok(rooms.iter().filter_map(|r| r.as_str().map(String::from)).collect())
}

/// A pull (`?relay`) must carry a relay token: a viewer's token is refused.
async fn pull_with(node: &Node, token: &str) -> Result<u16> {
    let offer = cluster_support::publish_offer().replace("a=sendonly", "a=recvonly");
    let resp = node
        .http
        .post(format!("{}/whep/{ROOM}?relay", node.base))
        .header("content-type", "application/sdp")
        .bearer_auth(token)
        .body(offer)
        .send()
        .await?;
    Ok(resp.status().as_u16())
}

async fn watch(node: &Node, n: usize) -> Result<Vec<Viewer>> {
    let mut viewers = Vec::with_capacity(n);
    for i in 0..n {
        let token = viewer_token(ROOM, &format!("{}-{i}", node.id))?;
        let opts = ViewerOptions { token: Some(token), ..ViewerOptions::default() };
        viewers.push(Viewer::connect(&node.base, ROOM, opts).await.with_context(|| format!("viewer {i} on {}", node.id))?);
    }
    Ok(viewers)
}

fn latency(viewers: &[&Viewer]) -> Result<(f64, f64, u64)> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for v in viewers {
        let s = v.stats();
        for us in s.video.latency_us.iter().chain(&s.audio.latency_us) {
            h.record((*us).max(1))?;
        }
    }
    Ok((h.value_at_quantile(0.5) as f64 / 1e3, h.value_at_quantile(0.99) as f64 / 1e3, h.len()))
}

fn inside<F, Fut>(test: F) -> Result<()>
where
    F: FnOnce(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let dir = tempfile::tempdir()?;
    let result = runtime.block_on(test(dir.path().to_path_buf()));
    if result.is_err() {
        // What the nodes said is the first thing to read when this fails.
        for id in ["node-a", "node-b", "node-c"] {
            let log = std::fs::read_to_string(dir.path().join(format!("{id}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains("heartbeat") && !l.contains("peer address learned")).collect();
            eprintln!("--- {id} (last 40 lines) ---\n{}", lines[lines.len().saturating_sub(40)..].join("\n"));
        }
    }
    result
}

async fn run(dir: std::path::PathBuf) -> Result<()> {
    let dir = dir.as_path();
    let nats = NatsServer::start(dir, 19610)?;
    let a = Node::start(dir, "node-a", 19611, &nats.url()).await?;
    let b = Node::start(dir, "node-b", 19612, &nats.url()).await?;
    let c = Node::start(dir, "node-c", 19613, &nats.url()).await?;

    let opts = PublishOptions { token: Some(host_token(ROOM)?), bitrate_bps: 1_000_000, ..PublishOptions::default() };
    let host = Publisher::connect(&a.base, ROOM, opts).await.context("the host publishes to A")?;
    eventually(Duration::from_secs(10), "A holds the room", || async { Ok(a.lease_on(ROOM).await?.map(|_| ())) }).await?;

    let refused = pull_with(&a, &viewer_token(ROOM, "not-a-node")?).await?;
    ensure!(refused == 401, "a pull with a viewer's token is refused: {refused}");
    let direct = watch(&a, 1).await?;
    let on_b = watch(&b, VIEWERS_PER_EDGE).await?;
    let on_c = watch(&c, VIEWERS_PER_EDGE).await?;
    let edge_viewers: Vec<&Viewer> = on_b.iter().chain(&on_c).collect();
    eventually(Duration::from_secs(15), "every viewer gets video", || async {
        Ok(edge_viewers.iter().chain(&direct.iter().collect::<Vec<_>>()).all(|v| v.stats().video.packets > 0).then_some(()))
    })
    .await?;
    // Latency is read from the measured window only.
    for v in edge_viewers.iter().chain(direct.iter().collect::<Vec<_>>().iter()) {
        v.reset();
    }
    let sent0 = (host.video_sent(), host.audio_sent());
    tokio::time::sleep(WINDOW).await;
    let sent1 = (host.video_sent(), host.audio_sent());
    tokio::time::sleep(Duration::from_millis(500)).await; // packets in flight land
    let expected = (sent1.0 - sent0.0, sent1.1 - sent0.1);
    ensure!(expected.0 > 100 && expected.1 > 100, "the host sent media in the window: {expected:?}");
    let mut worst = 1.0f64;
    for (i, v) in edge_viewers.iter().chain(direct.iter().collect::<Vec<_>>().iter()).enumerate() {
        let s = v.stats();
        let video = s.video.counters.range(sent0.0..sent1.0).count() as f64 / expected.0 as f64;
        let audio = s.audio.counters.range(sent0.1..sent1.1).count() as f64 / expected.1 as f64;
        worst = worst.min(video).min(audio);
        ensure!(video >= 0.99 && audio >= 0.99, "viewer {i} got {:.1} % of the video and {:.1} % of the audio", video * 100.0, audio * 100.0);
        // `reset` keeps the first-packet facts.
        ensure!(s.first_video_is_keyframe == Some(true), "viewer {i}'s first video packet does not begin a keyframe: {:?}", s.first_video);
    }
    let origin_count = viewers_on(&a).await?;
    ensure!(origin_count == 3, "A counts each edge once, and its direct viewer: 3, not {origin_count}");
    let (d50, d99, dn) = latency(&direct.iter().collect::<Vec<_>>())?;
    let (e50, e99, en) = latency(&edge_viewers)?;
    println!("one-way latency, host on A -> viewer, loopback, {WINDOW:?} window:");
    println!("  direct on the origin: p50 {d50:.2} ms, p99 {d99:.2} ms ({dn} packets, 1 viewer)");
    println!("  through an edge:      p50 {e50:.2} ms, p99 {e99:.2} ms ({en} packets, {} viewers)", edge_viewers.len());
    println!("  added by the hop:     p50 {:.2} ms, p99 {:.2} ms; worst viewer got {:.2} % of the packets", e50 - d50, e99 - d99, worst * 100.0);

    ensure!(pulling(&b).await? == [ROOM], "B says it pulls the room");
    for v in on_b {
        v.close().await;
    }
    eventually(Duration::from_secs(15), "B stops pulling: A counts C's edge and its direct viewer", || async {
        Ok((viewers_on(&a).await? == 2).then_some(()))
    })
    .await?;
    ensure!(pulling(&b).await?.is_empty(), "B says it pulls nothing");
    ensure!(pulling(&c).await? == [ROOM], "C still pulls the room");
    // The hop's own cost, with the load of 30 viewers gone: one viewer on C against the
    // direct one, over another window.
    let mut on_c = on_c.into_iter();
    let last = on_c.next().context("a viewer on C")?;
    for v in on_c {
        v.close().await;
    }
    for v in [&last, &direct[0]] {
        v.reset();
    }
    tokio::time::sleep(WINDOW).await;
    ensure!(last.stats().video.packets > 0, "C's viewer still gets video after B stopped pulling");
    let (d50, d99, dn) = latency(&[&direct[0]])?;
    let (e50, e99, en) = latency(&[&last])?;
    println!("one viewer on the origin and one on an edge, {WINDOW:?} window:");
    println!("  direct on the origin: p50 {d50:.2} ms, p99 {d99:.2} ms ({dn} packets)");
    println!("  through an edge:      p50 {e50:.2} ms, p99 {e99:.2} ms ({en} packets)");
    println!("  added by the hop:     p50 {:.2} ms, p99 {:.2} ms", e50 - d50, e99 - d99);
    host.close().await;
    Ok(())
}

/// The origin is killed mid-show; the host publishes again to C once A's lease lapsed. B's
/// viewers, which never reconnect, get video again: B kept them and pulled from C.
async fn origin_dies(dir: std::path::PathBuf) -> Result<()> {
    let dir = dir.as_path();
    let nats = NatsServer::start(dir, 19620)?;
    let mut a = Node::start(dir, "node-a", 19621, &nats.url()).await?;
    let b = Node::start(dir, "node-b", 19622, &nats.url()).await?;
    let c = Node::start(dir, "node-c", 19623, &nats.url()).await?;
    let opts = PublishOptions { token: Some(host_token(ROOM)?), bitrate_bps: 500_000, ..PublishOptions::default() };
    let host = Publisher::connect(&a.base, ROOM, opts.clone()).await.context("the host publishes to A")?;
    eventually(Duration::from_secs(10), "A holds the room", || async { Ok(a.lease_on(ROOM).await?.map(|_| ())) }).await?;
    let on_b = watch(&b, 3).await?;
    eventually(Duration::from_secs(15), "B's viewers get video", || async {
        Ok(on_b.iter().all(|v| v.stats().video.packets > 0).then_some(()))
    })
    .await?;

    a.kill_9().await?;
    host.close().await;
    // A's lease lapses within 25 s; until then WHIP to C is sent to the dead A.
    let host = eventually(Duration::from_secs(30), "the host goes live on C", || async {
        Ok(Publisher::connect(&c.base, ROOM, opts.clone()).await.ok())
    })
    .await?;
    for v in &on_b {
        v.reset();
    }
    eventually(Duration::from_secs(20), "B's viewers get video from C", || async {
        Ok(on_b.iter().all(|v| v.stats().video.packets > 50).then_some(()))
    })
    .await?;
    ensure!(viewers_on(&b).await? == 3, "B kept its three viewers");
    ensure!(viewers_on(&c).await? == 1, "C counts B as one viewer");
    host.close().await;
    Ok(())
}
