//! Cluster mode against a real `nats-server` and real `sellcast` nodes (child processes):
//! - both nodes register and list each other; a node killed with SIGKILL drops out after its
//!   expiry;
//! - a host publishing to a node that is not its room's origin is redirected (307) to the
//!   origin, and once the origin is killed and its lease lapsed another node takes the room;
//! - NATS killed and restarted on the same port and store: meanwhile a publish is refused with
//!   a typed 503; after it both nodes reconnect, heartbeat again, and the origin keeps its room;
//! - two nodes claiming one room at the same moment never both own it;
//! - a WHIP client (the synthetic publisher) sent to another node follows the 307 and goes
//!   live on the origin; a node draining on SIGTERM releases its rooms at once.
//!
//! Control run (the last test): claiming with an unconditional put instead of create-if-absent
//! let both nodes own rooms, and the test failed.
//!
//! HTTP and NATS ports are fixed per test in 19500-19599; media ports are chosen by the OS.

mod cluster_support;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use cluster_support::{eventually, host_token, publish_offer, NatsServer, Node};
use sellcast_peer::{PublishOptions, Publisher};
use sellcast_server::cluster::{flags::ClusterArgs, Cluster, Placement};
use sellcast_server::media::status_board::StatusBoard;

/// Up to the node expiry (5 s) after the last heartbeat, plus the server's own expiry timer.
const NODE_GONE_WITHIN: Duration = Duration::from_secs(20);
/// Lease (6 s) plus the skew grace (1 s), with room to spare on a busy machine.
const LEASE_LAPSED_WITHIN: Duration = Duration::from_secs(25);

fn has_all(nodes: &[String], ids: &[&str]) -> bool {
    ids.iter().all(|id| nodes.iter().any(|n| n == id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_register_and_a_killed_node_drops_out_after_its_expiry() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start(dir.path(), 19500)?;
    let a = Node::start(dir.path(), "node-a", 19501, &nats.url()).await?;
    let mut b = Node::start(dir.path(), "node-b", 19502, &nats.url()).await?;

    for node in [&a, &b] {
        let both = eventually(Duration::from_secs(10), "both nodes listed", || async {
            let nodes = node.live_nodes().await?;
            Ok(has_all(&nodes, &["node-a", "node-b"]).then_some(nodes))
        })
        .await?;
        assert_eq!(both.len(), 2, "{both:?}");
    }
    let stats = a.cluster_stats().await?;
    assert_eq!(stats["node_id"], "node-a");
    assert_eq!(stats["connected"], true);
    assert!(stats["last_heartbeat_at"].as_u64().is_some(), "{stats}");
    let anonymous = a.http.get(format!("{}/api/cluster/nodes", a.base)).send().await?;
    assert_eq!(anonymous.status().as_u16(), 401, "the node list is for operators");

    b.kill_9().await?;
    let left = eventually(NODE_GONE_WITHIN, "node-b dropped out", || async {
        let nodes = a.live_nodes().await?;
        Ok((!nodes.iter().any(|n| n == "node-b")).then_some(nodes))
    })
    .await?;
    assert_eq!(left, vec!["node-a".to_string()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_on_another_node_is_sent_to_the_origin_until_its_lease_lapses() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start(dir.path(), 19510)?;
    let mut a = Node::start(dir.path(), "node-a", 19511, &nats.url()).await?;
    let b = Node::start(dir.path(), "node-b", 19512, &nats.url()).await?;
    let token = host_token("shop")?;
    let offer = publish_offer();

    let on_a = a.whip("shop", "", Some(&token), &offer).await?;
    assert_eq!(on_a.status, 201, "the first node a host publishes to is the origin: {}", on_a.body);
    assert!(a.lease_on("shop").await?.is_some(), "node-a holds the room's claim");

    let unauthenticated = b.whip("shop", "", None, &offer).await?;
    assert_eq!(unauthenticated.status, 401, "no origin is told to a request without a host token");
    let on_b = b.whip("shop", "?codec=vp8", Some(&token), &offer).await?;
    assert_eq!(on_b.status, 307, "{}", on_b.body);
    assert_eq!(on_b.location.as_deref(), Some(format!("{}/whip/shop?codec=vp8", a.base).as_str()));
    assert_eq!(b.lease_on("shop").await?, None, "node-b holds no claim on it");

    a.kill_9().await?;
    let right_after = b.whip("shop", "", Some(&token), &offer).await?;
    assert_eq!(right_after.status, 307, "the lease still runs right after the origin died: {}", right_after.body);
    let taken = eventually(LEASE_LAPSED_WITHIN, "node-b took the room over", || async {
        let answer = b.whip("shop", "", Some(&token), &offer).await?;
        ensure!(matches!(answer.status, 201 | 307), "unexpected answer {answer:?}");
        Ok((answer.status == 201).then_some(answer))
    })
    .await?;
    assert!(taken.location.is_some_and(|l| l.starts_with("/whip/shop/")), "a WHIP session on node-b");
    assert!(b.lease_on("shop").await?.is_some(), "node-b holds the claim now");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_client_following_the_redirect_goes_live_on_the_origin() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start(dir.path(), 19570)?;
    let a = Node::start(dir.path(), "node-a", 19571, &nats.url()).await?;
    let b = Node::start(dir.path(), "node-b", 19572, &nats.url()).await?;
    let options = || PublishOptions { token: host_token("shop").ok(), ..PublishOptions::default() };
    // A first host makes node-a the origin, then leaves; the claim outlives it a while.
    let first = Publisher::connect(&a.base, "shop", options()).await.context("publishing to node-a")?;
    first.close().await;
    assert!(a.lease_on("shop").await?.is_some());

    // The synthetic publisher is a WHIP client like any other: it follows the 307.
    let host = Publisher::connect(&b.base, "shop", options()).await.context("publishing through node-b")?;
    let live_on_a = eventually(Duration::from_secs(10), "the host is live on node-a", || async {
        let status: serde_json::Value = a.http.get(format!("{}/api/rooms/shop", a.base)).send().await?.json().await?;
        Ok((status["live"] == true).then_some(status))
    })
    .await?;
    assert_eq!(live_on_a["room"], "shop");
    let on_b: serde_json::Value = b.http.get(format!("{}/api/rooms/shop", b.base)).send().await?.json().await?;
    assert_eq!(on_b["live"], false, "nothing is published on node-b");
    assert_eq!(b.lease_on("shop").await?, None);
    host.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutting_down_gracefully_releases_its_rooms_at_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start(dir.path(), 19550)?;
    let mut a = Node::start(dir.path(), "node-a", 19551, &nats.url()).await?;
    let b = Node::start(dir.path(), "node-b", 19552, &nats.url()).await?;
    let token = host_token("shop")?;
    let offer = publish_offer();
    assert_eq!(a.whip("shop", "", Some(&token), &offer).await?.status, 201);
    assert_eq!(b.whip("shop", "", Some(&token), &offer).await?.status, 307);

    let exit = a.terminate().await?;
    assert!(exit.success(), "node-a drained and exited: {exit}");
    // No lease to wait out: the claim was released, and node-a left the registry.
    let on_b = b.whip("shop", "", Some(&token), &offer).await?;
    assert_eq!(on_b.status, 201, "node-b takes the released room at once: {}", on_b.body);
    assert_eq!(b.live_nodes().await?, vec!["node-b".to_string()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cluster_flags_no_cluster_api_is_on() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = sellcast_server::start(sellcast_server::Config::local(dir.path().join("db.sqlite"))).await?;
    let base = format!("http://{}", server.http_addr);
    let stats: serde_json::Value = reqwest::get(format!("{base}/api/stats/cluster")).await?.json().await?;
    assert_eq!(stats, serde_json::json!({ "enabled": false }));
    assert!(server.cluster.is_none());
    server.shutdown().await;
    Ok(())
}

#[test]
fn cluster_without_a_public_url_refuses_to_start_and_says_why() -> Result<()> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["serve", "--http", "127.0.0.1:19560", "--cluster", "nats://127.0.0.1:19561", "--node-id", "a"])
        .env_remove("SELLCAST_PUBLIC_URL")
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--cluster needs --public-url"), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_nats_restarts_nodes_reconnect_and_the_origin_keeps_its_room() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut nats = NatsServer::start(dir.path(), 19520)?;
    let a = Node::start(dir.path(), "node-a", 19521, &nats.url()).await?;
    let b = Node::start(dir.path(), "node-b", 19522, &nats.url()).await?;
    let token = host_token("live")?;
    // A real host, so the room stays live (and claimed) however long NATS is away.
    let options = PublishOptions { token: Some(token.clone()), ..PublishOptions::default() };
    let host = Publisher::connect(&a.base, "live", options).await.context("publishing to node-a")?;
    eventually(Duration::from_secs(10), "both nodes listed", || async {
        Ok(has_all(&b.live_nodes().await?, &["node-a", "node-b"]).then_some(()))
    })
    .await?;

    nats.kill();
    eventually(Duration::from_secs(10), "node-b sees NATS gone", || async {
        Ok((b.cluster_stats().await?["connected"] == false).then_some(()))
    })
    .await?;
    let offer = publish_offer();
    let refused = b.whip("other", "", Some(&host_token("other")?), &offer).await?;
    assert_eq!(refused.status, 503, "no room is placed without NATS: {}", refused.body);
    assert!(refused.body.contains("\"code\":\"cluster_unavailable\""), "{}", refused.body);
    // NATS stays away until the origin's lease (and its grace) ran out by the clock: after the
    // restart, the origin must renew a claim that had lapsed.
    let lease = a.lease_on("live").await?.context("node-a holds the room")?;
    let lapsed = lease + sellcast_server::cluster::room_claim::SKEW_GRACE.as_millis() as u64;
    eventually(LEASE_LAPSED_WITHIN, "node-a's lease ran out while NATS was away", || async {
        Ok((sellcast_server::cluster::unix_millis::UnixMillis::now().0 > lapsed).then_some(()))
    })
    .await?;

    let restarted_at = sellcast_server::cluster::unix_millis::UnixMillis::now().0;
    nats.restart()?;
    for node in [&a, &b] {
        eventually(Duration::from_secs(20), "heartbeats resumed after the restart", || async {
            let stats = node.cluster_stats().await?;
            let beat = stats["last_heartbeat_at"].as_u64().unwrap_or(0);
            Ok((stats["connected"] == true && beat > restarted_at).then_some(()))
        })
        .await?;
    }
    let renewed = eventually(Duration::from_secs(20), "node-a renewed its claim", || async {
        Ok(a.lease_on("live").await?.filter(|lease| *lease > restarted_at))
    })
    .await?;
    assert!(renewed > restarted_at);
    let nodes = b.live_nodes().await?;
    assert!(has_all(&nodes, &["node-a", "node-b"]), "{nodes:?}");
    let on_b = b.whip("live", "", Some(&token), &offer).await?;
    assert_eq!(on_b.status, 307, "node-a is still the room's origin: {}", on_b.body);
    assert_eq!(on_b.location.as_deref(), Some(format!("{}/whip/live", a.base).as_str()));
    host.close().await;
    Ok(())
}

/// Join the cluster in this process as `id` (no HTTP server: only placement is exercised).
async fn join(nats_url: &str, id: &str) -> Result<Arc<Cluster>> {
    let args = ClusterArgs {
        cluster: Some(nats_url.to_string()),
        node_id: Some(id.to_string()),
        public_url: Some(format!("http://{id}.invalid")),
        no_viewer_redirect: false,
    };
    let config = args.config(None)?.context("cluster mode on")?;
    Ok(Cluster::join(config, Arc::new(StatusBoard::with_shards(1))).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claiming_one_room_at_once_never_both_own_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start(dir.path(), 19530)?;
    let (a, b) = (join(&nats.url(), "race-a").await?, join(&nats.url(), "race-b").await?);
    let mut wins = [0usize; 2];
    for i in 0..60 {
        let room = format!("race-{i}");
        let (on_a, on_b) = tokio::join!(a.place_host(&room), b.place_host(&room));
        match (on_a?, on_b?) {
            (Placement::Here, Placement::Elsewhere { origin, .. }) if origin.as_str() == "race-a" => wins[0] += 1,
            (Placement::Elsewhere { origin, .. }, Placement::Here) if origin.as_str() == "race-b" => wins[1] += 1,
            other => panic!("room {room}: both or neither own it: {other:?}"),
        }
    }
    assert_eq!(wins[0] + wins[1], 60);
    a.leave().await;
    b.leave().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_taking_over_one_lapsed_room_at_once_never_both_own_it() -> Result<()> {
    use sellcast_server::cluster::buckets::ROOMS_BUCKET;
    use sellcast_server::cluster::node_id::NodeId;
    use sellcast_server::cluster::room_claim::RoomClaim;
    use sellcast_server::cluster::unix_millis::UnixMillis;

    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start(dir.path(), 19540)?;
    let (a, b) = (join(&nats.url(), "race-a").await?, join(&nats.url(), "race-b").await?);
    // Claims by a node that died long ago: their leases ran out at the epoch.
    let client = async_nats::connect(nats.url()).await?;
    let rooms = async_nats::jetstream::new(client).get_key_value(ROOMS_BUCKET).await?;
    let gone = RoomClaim::new(NodeId::parse("gone").context("id")?, "http://gone.invalid".into(), UnixMillis(0));
    let mut wins = [0usize; 2];
    for i in 0..60 {
        let room = format!("lapsed-{i}");
        rooms.put(&room, serde_json::to_vec(&gone)?.into()).await?;
        let (on_a, on_b) = tokio::join!(a.place_host(&room), b.place_host(&room));
        match (on_a?, on_b?) {
            (Placement::Here, Placement::Elsewhere { origin, .. }) if origin.as_str() == "race-a" => wins[0] += 1,
            (Placement::Elsewhere { origin, .. }, Placement::Here) if origin.as_str() == "race-b" => wins[1] += 1,
            other => panic!("room {room}: both or neither took it over: {other:?}"),
        }
    }
    assert_eq!(wins[0] + wins[1], 60);
    a.leave().await;
    b.leave().await;
    Ok(())
}
