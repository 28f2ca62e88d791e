//! The cluster run (`--cluster N`, issue 14): one show across N nodes on loopback, a real
//! `nats-server` (JetStream) and N `sellcast serve --cluster` children, node 0 the origin (the
//! host publishes there) and the others edges that pull the room from it. Run it inside
//! `unshare -n sh -c 'ip link set lo up && ...'` so no other traffic shares the loopback.
//!
//! It measures in phases, each over the same window length:
//! - direct viewers on the origin only (the edges carry nobody and pull nothing);
//! - then each step of `viewers_per_edge`: every edge carrying that many viewers, the direct
//!   viewers still there.
//!
//! Per phase: the origin's and every edge's CPU (from /proc, as for one server), the room's
//! viewers as each node counts them (the origin counts an edge as one), and the one-way
//! latency of the direct viewers against the viewers behind an edge in the same window: the
//! difference is what the cascade hop adds. The origin's CPU should follow its subscribers
//! (direct viewers plus edges), not the viewers behind the edges. With `storm`, the nodes keep
//! orders in one PostgreSQL database and the purchase storm runs against the origin: durable
//! buys per second with group commit. With `kills`, it kills nodes instead
//! of all that and times the recovery (src/cluster_kills.rs). It reports; it asserts nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sellcast_peer::{PublishOptions, Publisher, Viewer};
use serde::Serialize;
use serde_json::Value;

use crate::nats_server::NatsServer;
use crate::server::{spawn, Target};
use crate::storm::{self, StormResult};
use crate::viewer_window::ViewerWindow;
use crate::cluster_kills::{self, KillOptions, KillResult};
use crate::{media_stats, proc_stats};

pub(crate) const ROOM: &str = "cluster-bench";

/// What a cluster run does.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Nodes in all: one origin and `nodes - 1` edges (at least 2).
    pub nodes: usize,
    /// Viewers watching on the origin itself, in every phase.
    pub direct_viewers: usize,
    /// Viewers on each edge, one phase per value, rising (e.g. 10, 50).
    pub viewers_per_edge: Vec<usize>,
    /// Measured seconds of each phase.
    pub seconds: u64,
    pub join_rate: f64,
    pub bitrate: u64,
    /// Run the purchase storm against the origin, the nodes keeping orders in PostgreSQL.
    pub storm: bool,
    /// The PostgreSQL database for the storm and the kills; `None` starts a throwaway server.
    pub postgres: Option<String>,
    /// Kill nodes instead of the viewer phases and the storm (`--kills`, src/cluster_kills.rs).
    pub kills: Option<KillOptions>,
}

/// One-way latency and loss of one group of viewers over a phase's window.
#[derive(Debug, Serialize)]
pub struct GroupFigures {
    pub viewers: usize,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_p999: f64,
    pub latency_samples: u64,
    pub loss_pct_worst: f64,
}

impl GroupFigures {
    fn of(w: &ViewerWindow) -> Self {
        Self {
            viewers: w.viewers,
            latency_ms_p50: w.latency_ms(0.5),
            latency_ms_p99: w.latency_ms(0.99),
            latency_ms_p999: w.latency_ms(0.999),
            latency_samples: w.latency_us.len(),
            loss_pct_worst: w.loss_pct_worst(),
        }
    }
}

/// One node's figures in a phase.
#[derive(Debug, Serialize)]
pub struct NodeFigures {
    pub node_id: String,
    pub role: &'static str,
    pub cpu_core_pct: f64,
    /// The room's viewers as this node counts them (`GET /api/rooms/{room}`): on the origin,
    /// its direct viewers plus one per pulling edge.
    pub room_viewers: u64,
    /// Time live packets spent inside this node (arrival to send), from its stats API.
    pub in_node_us_p50: Option<f64>,
    pub in_node_us_p99: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct PhaseResult {
    pub viewers_per_edge: usize,
    pub seconds: f64,
    pub nodes: Vec<NodeFigures>,
    pub direct: GroupFigures,
    pub through_edge: Option<GroupFigures>,
    /// Edge viewers' one-way latency minus the direct viewers', same window.
    pub hop_added_ms_p50: Option<f64>,
    pub hop_added_ms_p99: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ClusterResult {
    pub nodes: usize,
    pub bitrate: u64,
    pub phases: Vec<PhaseResult>,
    pub purchase_storm: Option<StormResult>,
    /// Time to recover from each kill (`--kills`).
    pub kills: Option<KillResult>,
    pub seconds_total: f64,
}

/// A `sellcast serve --cluster` child.
pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) base: String,
    pub(crate) pid: u32,
    pub(crate) child: tokio::process::Child,
}

pub async fn run(target: &Target, opts: &ClusterOptions) -> Result<ClusterResult> {
    if opts.nodes < 2 {
        bail!("--cluster needs at least 2 nodes (an origin and an edge)");
    }
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let nats = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || NatsServer::start(&dir, free_port()?)
    })
    .await??;
    // Held for the run: a throwaway PostgreSQL server stops when dropped.
    let mut _throwaway = None;
    // The kills need the room's products and orders on every node: one PostgreSQL database.
    let postgres = match (opts.storm || opts.kills.is_some(), &opts.postgres) {
        (false, _) => None,
        (true, Some(url)) => Some(url.clone()),
        (true, None) => {
            let pg = tokio::task::spawn_blocking(sellcast_store::testing::TestPostgres::start).await??;
            let url = pg.fresh_database()?;
            _throwaway = Some(pg);
            Some(url)
        }
    };
    let mut nodes = Vec::with_capacity(opts.nodes);
    for i in 0..opts.nodes {
        nodes.push(start_node(target, dir.path(), i, &nats, postgres.as_deref()).await?);
    }
    let result = match &opts.kills {
        None => measure(&nodes, opts).await.map(|(phases, storm)| (phases, storm, None)),
        Some(kills) => {
            let mut spawner = NodeSpawner { target, dir: dir.path(), nats: &nats, postgres: postgres.as_deref() };
            cluster_kills::run(&mut spawner, &mut nodes, opts.bitrate, kills).await.map(|k| (Vec::new(), None, Some(k)))
        }
    };
    for mut node in nodes {
        let _ = node.child.start_kill();
        let _ = node.child.wait().await;
    }
    let (phases, purchase_storm, kills) = result?;
    Ok(ClusterResult { nodes: opts.nodes, bitrate: opts.bitrate, phases, purchase_storm, kills, seconds_total: started.elapsed().as_secs_f64() })
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// What starts a node again after a kill: the run's target, directory, NATS and database.
pub(crate) struct NodeSpawner<'a> {
    target: &'a Target,
    dir: &'a Path,
    nats: &'a NatsServer,
    postgres: Option<&'a str>,
}

impl NodeSpawner<'_> {
    /// Node `i` again, on its port, under a new id (`id`): the killed process's registry
    /// entry and claims stay under the old id until they lapse.
    pub(crate) async fn restart(&mut self, i: usize, id: String) -> Result<Node> {
        start_named(self.target, self.dir, i, id, self.nats, self.postgres).await
    }
}

/// Node `i` on HTTP port `target.http_port + i`, in dev mode: every node's database sits in
/// `dir`, so they share the dev secret that tokens and the edges' relay tokens are signed with.
async fn start_node(target: &Target, dir: &Path, i: usize, nats: &NatsServer, postgres: Option<&str>) -> Result<Node> {
    let id = if i == 0 { "origin".to_string() } else { format!("edge-{i}") };
    start_named(target, dir, i, id, nats, postgres).await
}

async fn start_named(target: &Target, dir: &Path, i: usize, id: String, nats: &NatsServer, postgres: Option<&str>) -> Result<Node> {
    let port = target.http_port + i as u16;
    let mut t = target.clone();
    t.http_port = port;
    t.db_name = format!("{id}.db");
    let public_url = format!("http://127.0.0.1:{port}");
    t.extra_args.extend(["--cluster".into(), nats.url(), "--node-id".into(), id.clone(), "--public-url".into(), public_url]);
    // The run puts its viewers on given nodes (direct on the origin, the rest on edges): no
    // node may send one elsewhere.
    t.extra_args.push("--no-viewer-redirect".into());
    // Every buyer is 127.0.0.1 and the storm opens hundreds of connections at once.
    t.extra_args.extend(["--http-connections-per-ip".into(), "100000".into()]);
    if let Some(url) = postgres {
        t.extra_args.extend(["--postgres".into(), url.to_string()]);
    }
    let (child, pid, base) = spawn(&t, dir).await.with_context(|| format!("starting node {id}"))?;
    Ok(Node { id, base, pid, child })
}

async fn measure(nodes: &[Node], opts: &ClusterOptions) -> Result<(Vec<PhaseResult>, Option<StormResult>)> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let origin = &nodes[0];
    let publish = PublishOptions { bitrate_bps: opts.bitrate, ..PublishOptions::default() };
    let host = Publisher::connect(&origin.base, ROOM, publish).await.context("the host publishes to the origin")?;
    eventually(Duration::from_secs(15), "the origin holds the room's claim", || holds_claim(&http, origin)).await?;

    let mut direct = Vec::new();
    join(&mut direct, &origin.base, opts.direct_viewers, opts.join_rate).await?;
    let mut on_edges: Vec<Vec<Viewer>> = nodes[1..].iter().map(|_| Vec::new()).collect();
    let mut phases = Vec::new();
    let mut plan = vec![0];
    plan.extend(opts.viewers_per_edge.iter().copied().filter(|k| *k > 0));
    for per_edge in plan {
        for (edge, viewers) in nodes[1..].iter().zip(on_edges.iter_mut()) {
            let more = per_edge.saturating_sub(viewers.len());
            join(viewers, &edge.base, more, opts.join_rate).await?;
        }
        let phase = measure_phase(&http, nodes, &host, &direct, &on_edges, per_edge, opts.seconds).await?;
        print_phase(&phase);
        phases.push(phase);
    }
    for v in direct.into_iter().chain(on_edges.into_iter().flatten()) {
        v.close().await;
    }
    host.close().await;
    let storm = match opts.storm {
        true => {
            let r = storm::run(&origin.base).await?;
            println!(
                "purchase storm on the origin (PostgreSQL): sold={} of {} oversold={} retry_mismatches={} ack_ms p50={:.1} p99={:.1} sustained_durable_buys/s={:.0}",
                r.sold, r.stock, r.oversold, r.retry_mismatches, r.ack_ms_p50, r.ack_ms_p99, r.sustained_durable_buys_per_s
            );
            Some(r)
        }
        false => None,
    };
    Ok((phases, storm))
}

/// Join `n` more viewers to the room on `base`, at `rate` per second.
async fn join(viewers: &mut Vec<Viewer>, base: &str, n: usize, rate: f64) -> Result<()> {
    let gap = Duration::from_secs_f64(1.0 / rate.max(0.1));
    for _ in 0..n {
        let started = Instant::now();
        viewers.push(Viewer::connect(base, ROOM, None).await.with_context(|| format!("a viewer joins on {base}"))?);
        if let Some(rest) = gap.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    Ok(())
}

async fn measure_phase(
    http: &reqwest::Client,
    nodes: &[Node],
    host: &Publisher,
    direct: &[Viewer],
    on_edges: &[Vec<Viewer>],
    per_edge: usize,
    seconds: u64,
) -> Result<PhaseResult> {
    let everyone = || direct.iter().chain(on_edges.iter().flatten());
    eventually(Duration::from_secs(30), "every viewer gets video", || async { Ok(everyone().all(|v| v.stats().video.packets > 0).then_some(())) })
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await; // warm-up: every viewer is streaming
    for v in everyone() {
        v.reset();
    }
    let mut stats0 = Vec::new();
    for node in nodes {
        stats0.push(media_stats::read(http, &node.base).await.ok());
    }
    let sent0 = (host.video_sent(), host.audio_sent());
    let cpu0 = nodes.iter().map(|n| proc_stats::cpu(n.pid)).collect::<Result<Vec<_>>>()?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu1 = nodes.iter().map(|n| proc_stats::cpu(n.pid)).collect::<Result<Vec<_>>>()?;
    let sent1 = (host.video_sent(), host.audio_sent());
    // In-flight packets land, and the nodes copy their stats out (every 500 ms).
    tokio::time::sleep(Duration::from_millis(600)).await;

    let mut figures = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let in_node = match &stats0[i] {
            Some(start) => Some(media_stats::window(start, &media_stats::read(http, &node.base).await?)?),
            None => None,
        };
        figures.push(NodeFigures {
            node_id: node.id.clone(),
            role: if i == 0 { "origin" } else { "edge" },
            cpu_core_pct: 100.0 * proc_stats::core_share(cpu0[i], cpu1[i]),
            room_viewers: room_viewers(http, node).await?,
            in_node_us_p50: in_node.map(|w| w.latency_us_p50),
            in_node_us_p99: in_node.map(|w| w.latency_us_p99),
        });
    }
    let direct = GroupFigures::of(&ViewerWindow::collect(direct, sent0, sent1)?);
    let through_edge = match per_edge {
        0 => None,
        _ => Some(GroupFigures::of(&ViewerWindow::collect(on_edges.iter().flatten(), sent0, sent1)?)),
    };
    Ok(PhaseResult {
        viewers_per_edge: per_edge,
        seconds: cpu1[0].at.duration_since(cpu0[0].at).as_secs_f64(),
        nodes: figures,
        hop_added_ms_p50: through_edge.as_ref().map(|e| e.latency_ms_p50 - direct.latency_ms_p50),
        hop_added_ms_p99: through_edge.as_ref().map(|e| e.latency_ms_p99 - direct.latency_ms_p99),
        direct,
        through_edge,
    })
}

/// Does `node` hold the room's claim (`GET /api/stats/cluster`)?
pub(crate) async fn holds_claim(http: &reqwest::Client, node: &Node) -> Result<Option<()>> {
    let body: Value = http.get(format!("{}/api/stats/cluster", node.base)).send().await?.json().await?;
    let rooms = body["node"]["rooms"].as_array().cloned().unwrap_or_default();
    Ok(rooms.iter().any(|r| r["room"] == ROOM).then_some(()))
}

/// The room's viewers as `node` counts them.
async fn room_viewers(http: &reqwest::Client, node: &Node) -> Result<u64> {
    let body: Value = http.get(format!("{}/api/rooms/{ROOM}", node.base)).send().await?.json().await?;
    body["viewers"].as_u64().with_context(|| format!("viewers on {}: {body}", node.id))
}

/// Poll `check` every 100 ms until it returns `Some`, or fail after `limit` saying `what`.
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + limit;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {limit:?} (last error: {last_error:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_phase(p: &PhaseResult) {
    let cpu: Vec<String> = p.nodes.iter().map(|n| format!("{}={:.1}%", n.node_id, n.cpu_core_pct)).collect();
    let counts: Vec<String> = p.nodes.iter().map(|n| format!("{}={}", n.node_id, n.room_viewers)).collect();
    let edge = p.through_edge.as_ref().map_or_else(|| "-".to_string(), |e| format!("p50={:.2} p99={:.2} ({} viewers)", e.latency_ms_p50, e.latency_ms_p99, e.viewers));
    println!(
        "phase viewers_per_edge={} cpu {} | room viewers {} | direct p50={:.2} p99={:.2} | through edge {}",
        p.viewers_per_edge,
        cpu.join(" "),
        counts.join(" "),
        p.direct.latency_ms_p50,
        p.direct.latency_ms_p99,
        edge
    );
}

/// The text report: one row per phase, then the storm.
pub fn print_summary(r: &ClusterResult) {
    let edges = r.nodes - 1;
    println!("\ncluster: 1 origin + {edges} edge(s) on loopback, host at {} kbit/s, {:.0} s in all", r.bitrate / 1000, r.seconds_total);
    if !r.phases.is_empty() {
        println!("| phase | origin CPU % | edge CPU % (each) | room viewers per node | direct p50/p99 ms | through edge p50/p99 ms | added by the hop p50/p99 ms | in-node p99 us (origin; edges) | worst loss % |");
        println!("|---|---|---|---|---|---|---|---|---|");
    }
    for p in &r.phases {
        let name = match p.viewers_per_edge {
            0 => format!("{} direct, edges idle", p.direct.viewers),
            k => format!("{} direct + {edges} edges x {k}", p.direct.viewers),
        };
        let edge_cpu: Vec<String> = p.nodes.iter().filter(|n| n.role == "edge").map(|n| format!("{:.1}", n.cpu_core_pct)).collect();
        let counts: Vec<String> = p.nodes.iter().map(|n| n.room_viewers.to_string()).collect();
        let in_node: Vec<String> = p.nodes.iter().map(|n| crate::step::opt(n.in_node_us_p99)).collect();
        let (edge, added, loss) = match &p.through_edge {
            Some(e) => (
                format!("{:.2}/{:.2}", e.latency_ms_p50, e.latency_ms_p99),
                format!("{:+.2}/{:+.2}", p.hop_added_ms_p50.unwrap_or(f64::NAN), p.hop_added_ms_p99.unwrap_or(f64::NAN)),
                p.direct.loss_pct_worst.max(e.loss_pct_worst),
            ),
            None => ("-".into(), "-".into(), p.direct.loss_pct_worst),
        };
        println!(
            "| {name} | {:.1} | {} | {} | {:.2}/{:.2} | {edge} | {added} | {}; {} | {loss:.3} |",
            p.nodes[0].cpu_core_pct,
            edge_cpu.join(", "),
            counts.join(" / "),
            p.direct.latency_ms_p50,
            p.direct.latency_ms_p99,
            in_node[0],
            in_node[1..].join(", "),
        );
    }
    if let Some(k) = &r.kills {
        cluster_kills::print_summary(k);
    }
    if let Some(s) = &r.purchase_storm {
        println!(
            "durable buys per second on PostgreSQL (group commit, the origin): {:.0}; burst: {} sold of {}, oversold {}, retry mismatches {}",
            s.sustained_durable_buys_per_s, s.sold, s.stock, s.oversold, s.retry_mismatches
        );
    }
}
