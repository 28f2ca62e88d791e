//! Smoke runs of the load harness against the real binary, so its figures keep meaning what
//! they say. The full runs are documented commands, not tests:
//! - the plain step: 10 synthetic viewers for 5 s, the worst of them losing under 1 % of the
//!   packets and each starting on a keyframe;
//! - the cluster run (`--cluster 2`, inside `unshare -n` as the cluster tests run): a real
//!   nats-server, an origin and one edge, one viewer on the origin and three on the edge for
//!   3 s. Each edge viewer gets over 99 % of the packets the host sent in the window, and the
//!   origin counts the edge as one viewer (2: the edge and the direct viewer, not 4), so the
//!   "through an edge" figures are of viewers served through the cascade.
//! - the kill phase (`--cluster 3 --kills`, once each): an edge killed under two viewers, then
//!   the origin under the host. Each moved viewer gets a room event and media on the other
//!   edge, the new origin claims the room, a buy sent after the kill is answered and the
//!   watching edge's viewers get the new publisher's media, each within the phase's 30 s limit
//!   (a recovery not seen counts as missing). The times are printed, not asserted.

mod cluster_support;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use sellcast_bench::cluster::{self, ClusterOptions};
use sellcast_bench::cluster_kills::KillOptions;
use sellcast_bench::{run_step, StepOptions, System, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_viewers_for_five_seconds_each_lose_under_one_percent() -> Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let target = Target::new(env!("CARGO_BIN_EXE_sellcast"), port);
    let opts = StepOptions { viewers: 10, seconds: 5, join_rate: 20.0, bitrate: 2_500_000 };
    let r = run_step(&System::Sellcast(target), &opts, &|_, _| {}).await?;
    println!("bench smoke: {r:?}");
    assert!(r.forwarded_pps > 1000.0, "media was forwarded: {} pkt/s", r.forwarded_pps);
    // Per viewer: a viewer that joined but got nothing would count 100 % here.
    assert!(r.loss_pct_worst < 1.0, "worst viewer lost {:.3} %", r.loss_pct_worst);
    assert!(r.first_packet_keyframe_pct > 99.0, "viewers start on a keyframe");
    Ok(())
}

/// Set inside the network namespace the cluster run executes this binary again in.
const INSIDE: &str = "SELLCAST_BENCH_SMOKE_IN_NETNS";

#[test]
fn a_two_node_cluster_run_serves_the_edge_viewers_through_the_cascade() -> Result<()> {
    cluster_support::in_namespace(INSIDE, "a_two_node_cluster_run_serves_the_edge_viewers_through_the_cascade", || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        runtime.block_on(async { tokio::time::timeout(Duration::from_secs(120), two_node_cluster_run()).await }).context("the cluster run took over 120 s")?
    })
}

async fn two_node_cluster_run() -> Result<()> {
    // A fresh network namespace: these ports are free.
    let target = Target::new(env!("CARGO_BIN_EXE_sellcast"), 19790);
    let opts = ClusterOptions {
        nodes: 2,
        direct_viewers: 1,
        viewers_per_edge: vec![3],
        seconds: 3,
        join_rate: 20.0,
        bitrate: 500_000,
        storm: false,
        postgres: None,
        kills: None,
    };
    let r = cluster::run(&target, &opts).await?;
    cluster::print_summary(&r);
    ensure!(r.phases.len() == 2, "a phase with direct viewers only, then one with 3 per edge: {}", r.phases.len());
    let loaded = &r.phases[1];
    let edge = loaded.through_edge.as_ref().context("figures for the edge's viewers")?;
    ensure!(edge.viewers == 3, "three viewers on the edge: {}", edge.viewers);
    ensure!(edge.loss_pct_worst < 1.0, "the worst edge viewer lost {:.3} % of the window's packets", edge.loss_pct_worst);
    ensure!(loaded.direct.loss_pct_worst < 1.0, "the direct viewer lost {:.3} %", loaded.direct.loss_pct_worst);
    let counts: Vec<u64> = loaded.nodes.iter().map(|n| n.room_viewers).collect();
    ensure!(counts == [2, 3], "the origin counts the edge once and its direct viewer (2), the edge its 3 viewers: {counts:?}");
    Ok(())
}

#[test]
fn a_three_node_kill_run_sees_every_kind_of_recovery_once_per_kill() -> Result<()> {
    cluster_support::in_namespace(INSIDE, "a_three_node_kill_run_sees_every_kind_of_recovery_once_per_kill", || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        runtime.block_on(async { tokio::time::timeout(Duration::from_secs(180), three_node_kill_run()).await }).context("the kill run took over 180 s")?
    })
}

async fn three_node_kill_run() -> Result<()> {
    let target = Target::new(env!("CARGO_BIN_EXE_sellcast"), 19795);
    let opts = ClusterOptions {
        nodes: 3,
        direct_viewers: 0,
        viewers_per_edge: Vec::new(),
        seconds: 1,
        join_rate: 20.0,
        bitrate: 500_000,
        storm: false,
        postgres: None,
        kills: Some(KillOptions { repeats: 1, viewers: 2 }),
    };
    let r = cluster::run(&target, &opts).await?;
    cluster::print_summary(&r);
    let kills = r.kills.context("the kill phase's figures")?;
    ensure!(kills.edge_kills.len() == 1 && kills.origin_kills.len() == 1, "one kill of each kind");
    let edge = &kills.edge_kills[0];
    ensure!(edge.first_event_ms.len() == 2 && edge.first_media_ms.len() == 2, "two viewers moved: {edge:?}");
    ensure!(edge.killed != edge.moved_to, "the viewers moved to another node: {edge:?}");
    let origin = &kills.origin_kills[0];
    ensure!(origin.new_origin != origin.killed && origin.edge != origin.killed, "the room moved off the dead node: {origin:?}");
    for f in &kills.figures {
        ensure!(f.missing == 0 && f.repeats == 1, "{} kill: {} within the limit: {f:?}", f.kill, f.what);
    }
    Ok(())
}
