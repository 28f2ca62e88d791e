//! Viewer placement against a real `nats-server` and three real `sellcast` nodes (A, B, C),
//! inside a private network namespace (the test runs itself again under `unshare -n`):
//! - the room's node list (`GET /api/rooms/{room}/nodes`) is public, cacheable for a second,
//!   and lists the idle nodes before the loaded one, with no load figures;
//! - a WHEP client (the `webrtc` crate test peer) posting to A once A is clearly more loaded
//!   gets a `307` to the least-loaded node's `/whep/{room}?placed=1`, follows it with its token,
//!   and gets the room's video there (through the cascade);
//! - an offer marked `placed=1` is served where it lands, however loaded.

mod cluster_support;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use cluster_support::{eventually, host_token, in_namespace, NatsServer, Node, JWT_SECRET};
use sellcast_peer::{PublishOptions, Publisher, Viewer, ViewerOptions};

/// Set inside the namespace.
const INSIDE: &str = "SELLCAST_PLACEMENT_IN_NETNS";
const ROOM: &str = "placement-show";

#[test]
fn a_whep_client_on_a_loaded_node_is_sent_to_the_least_loaded_one_and_gets_media_there() -> Result<()> {
    in_namespace(INSIDE, "a_whep_client_on_a_loaded_node_is_sent_to_the_least_loaded_one_and_gets_media_there", || inside(run))
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
        for id in ["node-a", "node-b", "node-c"] {
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

/// The node list as a page reads it: the URLs, and the `Cache-Control` it came with.
async fn node_list(node: &Node) -> Result<(Vec<String>, String, serde_json::Value)> {
    let resp = node.http.get(format!("{}/api/rooms/{ROOM}/nodes", node.base)).send().await?;
    ensure!(resp.status() == 200, "the node list is public: {}", resp.status());
    let cache = resp.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body: serde_json::Value = resp.json().await?;
    let urls = body["nodes"].as_array().context("nodes")?.iter().filter_map(|n| n["url"].as_str().map(String::from)).collect();
    Ok((urls, cache, body))
}

/// A raw WHEP POST (a recvonly offer nobody completes), never following a redirect.
async fn raw_whep(node: &Node, query: &str, token: &str) -> Result<(u16, Option<String>)> {
    let offer = cluster_support::publish_offer().replace("a=sendonly", "a=recvonly");
    let resp = node
        .http
        .post(format!("{}/whep/{ROOM}{query}", node.base))
        .header("content-type", "application/sdp")
        .bearer_auth(token)
        .body(offer)
        .send()
        .await?;
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(String::from);
    Ok((resp.status().as_u16(), location))
}

/// The peers `node` reports in the registry (`GET /api/cluster/nodes`, as an operator).
async fn peers_of(on: &Node, id: &str) -> Result<u64> {
    let body: serde_json::Value = on
        .http
        .get(format!("{}/api/cluster/nodes", on.base))
        .bearer_auth(cluster_support::OPERATOR_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let nodes = body["nodes"].as_array().context("nodes")?;
    nodes.iter().find(|n| n["node_id"] == id).and_then(|n| n["peers"].as_u64()).context("the node's peers")
}

async fn run(dir: std::path::PathBuf) -> Result<()> {
    let dir = dir.as_path();
    let nats = NatsServer::start(dir, 19710)?;
    let a = Node::start_redirecting(dir, "node-a", 19711, &nats.url()).await?;
    let b = Node::start_redirecting(dir, "node-b", 19712, &nats.url()).await?;
    let c = Node::start_redirecting(dir, "node-c", 19713, &nats.url()).await?;
    eventually(Duration::from_secs(15), "A sees the three nodes", || async { Ok((a.live_nodes().await?.len() == 3).then_some(())) }).await?;

    let opts = PublishOptions { token: Some(host_token(ROOM)?), bitrate_bps: 500_000, ..PublishOptions::default() };
    let _host = Publisher::connect(&a.base, ROOM, opts).await.context("the host publishes to A")?;
    // Load A: viewers marked as placed stay on A whatever its load.
    let mut on_a = Vec::new();
    for i in 0..6 {
        let token = viewer_token(&format!("on-a-{i}"))?;
        let (status, location) = raw_whep(&a, "?placed=1", &token).await?;
        ensure!(status == 201, "a placed offer is served where it lands: {status} {location:?}");
        let opts = ViewerOptions { token: Some(token), ..ViewerOptions::default() };
        on_a.push(Viewer::connect(&a.base, ROOM, opts).await.with_context(|| format!("viewer {i} on A"))?);
        if i == 0 {
            // With the host and one viewer, A is within the margin of B and C: served here.
            eventually(Duration::from_secs(10), "A's heartbeat shows 2 peers", || async { Ok((peers_of(&a, "node-a").await? >= 2).then_some(())) }).await?;
            let (status, location) = raw_whep(&a, "", &viewer_token("early")?).await?;
            ensure!(status == 201, "a node within the margin serves the viewer: {status} {location:?}");
        }
    }
    eventually(Duration::from_secs(10), "A's heartbeat shows its load", || async { Ok((peers_of(&a, "node-a").await? >= 7).then_some(())) }).await?;

    let (urls, cache, body) = node_list(&a).await?;
    println!("node list from A: {body}");
    ensure!(urls == [b.base.clone(), c.base.clone(), a.base.clone()], "least loaded first, ties by id: {urls:?}");
    ensure!(cache.contains("max-age=1"), "cacheable for a second: {cache:?}");
    ensure!(!body.to_string().contains("peers") && !body.to_string().contains("node-"), "no load figures or ids: {body}");

    let token = viewer_token("placed-viewer")?;
    let (status, location) = raw_whep(&a, "", &token).await?;
    let expected = format!("{}/whep/{ROOM}?placed=1", b.base);
    ensure!(status == 307 && location.as_deref() == Some(expected.as_str()), "a loaded A sends the viewer to B: {status} {location:?}");

    // The test peer follows the 307 itself, with its token (RFC 9725 §4.5).
    let opts = ViewerOptions { token: Some(token), ..ViewerOptions::default() };
    let viewer = Viewer::connect(&a.base, ROOM, opts).await.context("the viewer posting to A")?;
    eventually(Duration::from_secs(20), "the redirected viewer gets video on B", || async {
        Ok((viewer.stats().video.packets > 50).then_some(()))
    })
    .await?;
    let on_b: serde_json::Value = b.http.get(format!("{}/api/rooms/{ROOM}", b.base)).send().await?.json().await?;
    ensure!(on_b["viewers"].as_u64().unwrap_or(0) >= 1, "B counts the viewer: {on_b}");
    println!("the viewer posted to A watches on B: {} video packets", viewer.stats().video.packets);
    drop(on_a);
    Ok(())
}
