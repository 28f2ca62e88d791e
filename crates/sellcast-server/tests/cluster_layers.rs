//! An edge pulls every simulcast layer of a room from its origin, against a real `nats-server`
//! and two real `sellcast` nodes (A the origin, B an edge), inside a private network namespace
//! (the test runs itself again under `unshare -n`, as `cluster_cascade.rs` does):
//! - a synthetic host sends three layers (q 320x180, h 640x360, f 1280x720) to A; three
//!   viewers watch on B, capped to the quarter layer (data saver), to 360 lines and not at
//!   all. Each settles on its layer (the layer the host marked in the frames it gets), every
//!   layer it was shown began with a keyframe of that layer, it gets decodable frames of its
//!   layer over a window, and its first video packet began a keyframe;
//! - B says it pulls three layers and received packets on each; A counts B as one viewer;
//! - the half viewer's keyframe request reaches the host as one for its `h` layer;
//! - (second test) the host publishes again with one layer: B's pull follows (one layer), and
//!   B's viewer, which never reconnects, gets video again.
//!
//! Control run (see the report): a pull offering one video m-line (the top layer only, as
//! before) fails the quarter-capped viewer's assertion.

mod cluster_support;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use cluster_support::{eventually, host_token, in_namespace, NatsServer, Node, JWT_SECRET};
use sellcast_peer::{PublishOptions, Publisher, SimulcastLayer, Viewer, ViewerOptions};

/// Set inside the namespace.
const INSIDE: &str = "SELLCAST_LAYERS_IN_NETNS";
const ROOM: &str = "layers-show";
/// The measured window, once every viewer is on its layer.
const WINDOW: Duration = Duration::from_secs(3);

#[test]
fn an_edge_pulls_three_layers_and_its_capped_viewers_each_get_their_layer() -> Result<()> {
    in_namespace(INSIDE, "an_edge_pulls_three_layers_and_its_capped_viewers_each_get_their_layer", || inside(three_layers))
}

#[test]
fn when_the_host_restarts_with_one_layer_the_pull_follows_and_edge_viewers_stay() -> Result<()> {
    in_namespace(INSIDE, "when_the_host_restarts_with_one_layer_the_pull_follows_and_edge_viewers_stay", || inside(one_layer_restart))
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
        for id in ["node-a", "node-b"] {
            let log = std::fs::read_to_string(dir.path().join(format!("{id}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains("heartbeat") && !l.contains("peer address learned")).collect();
            eprintln!("--- {id} (last 40 lines) ---\n{}", lines[lines.len().saturating_sub(40)..].join("\n"));
        }
    }
    result
}

fn viewer_token(who: &str) -> Result<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["token", "--room", ROOM, "--role", "viewer", "--identity", who, "--jwt-secret", JWT_SECRET])
        .output()?;
    ensure!(out.status.success(), "sellcast token failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// The room's viewers as `node` counts them (`GET /api/rooms/{room}`).
async fn viewers_on(node: &Node) -> Result<u64> {
    let body: serde_json::Value = node.http.get(format!("{}/api/rooms/{ROOM}", node.base)).send().await?.json().await?;
    body["viewers"].as_u64().context("viewers")
}

/// The layers `node` pulls for the room and the video packets it received per layer
/// (`GET /api/stats/cluster`, `cascade.pulled`); `None` while it does not pull the room.
async fn pulled(node: &Node) -> Result<Option<(u64, Vec<u64>)>> {
    let body: serde_json::Value = node.http.get(format!("{}/api/stats/cluster", node.base)).send().await?.json().await?;
    let rooms = body["cascade"]["pulled"].as_array().context("cascade.pulled")?;
    let Some(room) = rooms.iter().find(|r| r["room"] == ROOM) else {
        return Ok(None);
    };
    let layers = room["layers"].as_u64().context("layers")?;
    let packets = room["packets_per_layer"].as_array().context("packets_per_layer")?.iter().filter_map(|p| p.as_u64()).collect();
    Ok(Some((layers, packets)))
}

async fn watch(node: &Node, who: &str) -> Result<Viewer> {
    let opts = ViewerOptions { token: Some(viewer_token(who)?), data_channel: true, ..ViewerOptions::default() };
    Viewer::connect(&node.base, ROOM, opts).await.with_context(|| format!("{who} on {}", node.id))
}

/// The layer the host marked in the frames `viewer` gets now.
fn layer(viewer: &Viewer) -> Option<u8> {
    viewer.video_frames().0.layer
}

async fn three_layers(dir: std::path::PathBuf) -> Result<()> {
    let dir = dir.as_path();
    let nats = NatsServer::start(dir, 19640)?;
    let a = Node::start(dir, "node-a", 19641, &nats.url()).await?;
    let b = Node::start(dir, "node-b", 19642, &nats.url()).await?;
    let opts = PublishOptions { token: Some(host_token(ROOM)?), layers: SimulcastLayer::three(1_200_000), ..PublishOptions::default() };
    let host = Publisher::connect(&a.base, ROOM, opts).await.context("the host publishes three layers to A")?;
    eventually(Duration::from_secs(10), "A holds the room", || async { Ok(a.lease_on(ROOM).await?.map(|_| ())) }).await?;

    // (viewer, its cap as the watch page sends it, the layer it must settle on)
    let caps = [
        (watch(&b, "quarter").await?, Some(r#"{"type":"video_cap","data_saver":true,"max_height":null}"#), 0u8),
        (watch(&b, "half").await?, Some(r#"{"type":"video_cap","data_saver":false,"max_height":360}"#), 1),
        (watch(&b, "full").await?, None, 2),
    ];
    for (viewer, _, _) in &caps {
        viewer.channel_ready(Duration::from_secs(15)).await.context("the viewer's data channel opens")?;
    }
    // The cap reaches B's room once the viewer's hello is in; it is sent again each second
    // until the viewer is on its layer (the same cap twice changes nothing).
    let mut polls = 0u32;
    eventually(Duration::from_secs(30), "each edge viewer is on its layer", || {
        polls += 1;
        let resend = polls % 10 == 1;
        let caps = &caps;
        async move {
            if resend {
                for (viewer, cap, _) in caps {
                    if let Some(cap) = cap {
                        viewer.send(cap).await?;
                    }
                }
            }
            Ok(caps.iter().all(|(viewer, _, want)| layer(viewer) == Some(*want)).then_some(()))
        }
    })
    .await
    .map_err(|e| {
        let got: Vec<Option<u8>> = caps.iter().map(|(v, _, _)| layer(v)).collect();
        e.context(format!("layers got by the quarter, half and full viewers: {got:?}"))
    })?;

    // Every change of layer so far (the join, then the cap) began on a keyframe of the new
    // layer: the mirror switches only at a keyframe, which B asked the host for through A.
    for (viewer, _, want) in &caps {
        let s = viewer.stats();
        let changes: Vec<Option<u8>> = s.frames.layer_changes.iter().map(|(_, l)| *l).collect();
        println!("viewer capped to layer {want}: layers shown {changes:?}, {} began off a keyframe", s.frames.layer_changes_off_keyframe);
        ensure!(s.frames.layer_changes_off_keyframe == 0, "the viewer on layer {want} changed layer on a delta frame: {changes:?}");
    }

    let before = pulled(&b).await?.context("B pulls the room")?;
    for (viewer, _, _) in &caps {
        viewer.reset();
    }
    tokio::time::sleep(WINDOW).await;
    for (viewer, _, want) in &caps {
        let s = viewer.stats();
        println!(
            "viewer on layer {want}: {} decodable frames in {WINDOW:?}, {} freezes, layer changes {:?}",
            s.frames.decodable_frames,
            s.frames.freezes,
            s.frames.layer_changes.iter().map(|(_, l)| *l).collect::<Vec<_>>()
        );
        ensure!(s.frames.layer == Some(*want), "the viewer capped to layer {want} gets layer {:?}", s.frames.layer);
        // 30 frames per second are sent; a third of them is a generous floor on a busy machine.
        ensure!(s.frames.decodable_frames >= 30, "the viewer on layer {want} could show only {} frames in {WINDOW:?}", s.frames.decodable_frames);
        ensure!(s.first_video_is_keyframe == Some(true), "the viewer on layer {want}: its first video packet does not begin a keyframe: {:?}", s.first_video);
    }
    let after = pulled(&b).await?.context("B pulls the room")?;
    println!("B's pull: {} layers, packets per layer {:?} -> {:?}", after.0, before.1, after.1);
    ensure!(after.0 == 3, "B pulls three layers: {}", after.0);
    ensure!(
        after.1.len() == 3 && after.1.iter().zip(&before.1).all(|(now, then)| now > then),
        "B received packets on every layer during the window: {:?} -> {:?}",
        before.1,
        after.1
    );
    let on_a = viewers_on(&a).await?;
    ensure!(on_a == 1, "A counts B's pull of three layers as one viewer, not {on_a}");

    // The half viewer's decoder asks for a keyframe: B's mirror asks for one of layer 1, which
    // goes up on B's layer-1 m-line and reaches the host for its `h` layer. (Asked again
    // every 1.5 s: the mirror, the edge's gate and A each let one per layer per second through.)
    let half = &caps[1].0;
    let asked = host.layer_keyframe_requests();
    let mut polls = 0u32;
    eventually(Duration::from_secs(20), "the half viewer's keyframe request reaches the host for the half layer", || {
        polls += 1;
        let ask = polls % 15 == 1;
        let (host, asked) = (&host, &asked);
        async move {
            if ask {
                half.request_keyframe().await?;
            }
            let now = host.layer_keyframe_requests();
            Ok((now.get(1) > asked.get(1)).then_some(()))
        }
    })
    .await
    .map_err(|e| e.context(format!("the host's keyframe requests per layer: {asked:?} -> {:?}", host.layer_keyframe_requests())))?;
    println!("the host's keyframe requests per layer (q, h, f): {asked:?} -> {:?}", host.layer_keyframe_requests());
    for (viewer, _, _) in caps {
        viewer.close().await;
    }
    host.close().await;
    Ok(())
}

/// The host publishes three layers, leaves, and publishes again with one: B's pull follows.
async fn one_layer_restart(dir: std::path::PathBuf) -> Result<()> {
    let dir = dir.as_path();
    let nats = NatsServer::start(dir, 19650)?;
    let a = Node::start(dir, "node-a", 19651, &nats.url()).await?;
    let b = Node::start(dir, "node-b", 19652, &nats.url()).await?;
    let three = PublishOptions { token: Some(host_token(ROOM)?), layers: SimulcastLayer::three(1_000_000), ..PublishOptions::default() };
    let host = Publisher::connect(&a.base, ROOM, three).await.context("the host publishes three layers to A")?;
    eventually(Duration::from_secs(10), "A holds the room", || async { Ok(a.lease_on(ROOM).await?.map(|_| ())) }).await?;
    let viewer = watch(&b, "stays").await?;
    eventually(Duration::from_secs(20), "B pulls three layers and its viewer gets video", || async {
        let layers = pulled(&b).await?.map(|p| p.0);
        Ok((layers == Some(3) && viewer.stats().video.packets > 0).then_some(()))
    })
    .await?;

    host.close().await;
    let one = PublishOptions { token: Some(host_token(ROOM)?), bitrate_bps: 800_000, ..PublishOptions::default() };
    let host = eventually(Duration::from_secs(20), "the host publishes again with one layer", || async {
        Ok(Publisher::connect(&a.base, ROOM, one.clone()).await.ok())
    })
    .await?;
    eventually(Duration::from_secs(30), "B's pull follows: one layer", || async { Ok((pulled(&b).await?.map(|p| p.0) == Some(1)).then_some(())) }).await?;
    viewer.reset();
    eventually(Duration::from_secs(20), "B's viewer gets video from the one-layer host", || async {
        Ok((viewer.stats().video.packets > 50).then_some(()))
    })
    .await?;
    ensure!(viewers_on(&b).await? == 1, "B kept its viewer");
    ensure!(viewers_on(&a).await? == 1, "A counts B as one viewer");
    viewer.close().await;
    host.close().await;
    Ok(())
}
