//! The cluster run's kill phase (`--cluster N --kills`, N >= 3, issue 14): how long the show
//! takes to recover from a node killed with SIGKILL, measured the way pages live through it.
//! It runs instead of the viewer phases and the storm, `repeats` times each:
//!
//! - an edge carrying `viewers` data-channel viewers (with media) is killed; its viewers
//!   connect again at once to another edge with their last stream position (the hello's
//!   `resume`, as the watch page does). Per viewer: kill to its first room event on the new
//!   node (the replay of what it missed counts) and kill to its first media packet there. The
//!   edge is then started again (same port, a new node id) for the next repeat.
//! - the node holding the room (the origin) is killed while the host publishes; the host
//!   publishes again to another node, retrying as the host page does, and that node takes
//!   the room over once the dead origin's lease lapsed. From the kill: the room claimed by
//!   the new origin, the first buy sent after the kill that gets an answer (buyers keep
//!   buying on the surviving nodes), and the viewers of a third node (an edge) getting media
//!   from the new publisher session. The dead node is started again as an edge.
//!
//! Room events flow all along (chat lines on the origin every 150 ms, from ten identities
//! within their rate), so a resumed viewer always has an event to get. Every wait has a
//! deadline: a recovery not seen within it is reported as missing, never waited for longer.
//! It reports; it asserts nothing (the smoke test and the failover tests do).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sellcast_peer::{PublishOptions, Publisher, Viewer, ViewerOptions};
use serde::Serialize;
use serde_json::{json, Value};

use crate::cluster::{eventually, holds_claim, Node, NodeSpawner, ROOM};
use crate::storm::{self, Api};

/// How long any one recovery may take before it counts as missing: well past the lease (6 s)
/// and a busy machine's slow takeover.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);
/// How often a polled recovery (a claim, a new publisher session) is looked at: the
/// resolution of those figures.
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct KillOptions {
    /// Kills of each kind.
    pub repeats: usize,
    /// Viewers on the edge that is killed, and on the edge that watches an origin kill.
    pub viewers: usize,
}

/// An edge killed under its viewers: each moved viewer's times from the kill, in ms (`None`:
/// not within the limit).
#[derive(Debug, Serialize)]
pub struct EdgeKill {
    pub killed: String,
    pub moved_to: String,
    pub first_event_ms: Vec<Option<f64>>,
    pub first_media_ms: Vec<Option<f64>>,
}

/// The origin killed under the host: times from the kill, in ms.
#[derive(Debug, Serialize)]
pub struct OriginKill {
    pub killed: String,
    pub new_origin: String,
    pub edge: String,
    /// The host's publish accepted again (retried every 200 ms).
    pub host_live_ms: Option<f64>,
    pub claimed_ms: Option<f64>,
    pub buy_answered_ms: Option<f64>,
    /// Per viewer of the edge: media from the new publisher session.
    pub edge_media_ms: Vec<Option<f64>>,
}

/// One figure over the repeats of a kill.
#[derive(Debug, Serialize)]
pub struct KillFigure {
    pub kill: &'static str,
    pub what: &'static str,
    pub median_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Repeats that recovered within the limit, and those that did not.
    pub repeats: usize,
    pub missing: usize,
}

#[derive(Debug, Serialize)]
pub struct KillResult {
    pub edge_kills: Vec<EdgeKill>,
    pub origin_kills: Vec<OriginKill>,
    /// Per kill and figure: median and max over the repeats (for the viewers' figures, each
    /// repeat's slowest viewer: the kill is over when its last viewer recovered).
    pub figures: Vec<KillFigure>,
}

/// Kill edges, then origins, `opts.repeats` times each, on `nodes` (node 0 the origin).
pub(crate) async fn run(spawner: &mut NodeSpawner<'_>, nodes: &mut [Node], bitrate: u64, opts: &KillOptions) -> Result<KillResult> {
    if nodes.len() < 3 {
        bail!("--kills needs --cluster 3 or more: an edge to move viewers to, and one to watch an origin kill from");
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let origin_api = Api { http: http.clone(), base: nodes[0].base.clone() };
    let publish = PublishOptions { bitrate_bps: bitrate, ..PublishOptions::default() };
    let mut host = Publisher::connect(&nodes[0].base, ROOM, publish.clone()).await.context("the host publishes to the origin")?;
    eventually(Duration::from_secs(15), "the origin holds the room's claim", || holds_claim(&http, &nodes[0])).await?;
    let host_token = origin_api.token(ROOM, "host", "host").await?;
    let sale = origin_api.sale(ROOM, &host_token, 1_000_000, 1_000_000).await?;
    let mut owner = 0;
    let mut generation = 1;

    let stop = Arc::new(AtomicBool::new(false));
    let chat = chatter(&nodes.iter().map(|n| n.base.clone()).collect::<Vec<_>>(), stop.clone()).await?;
    let outcome = async {
        let mut edge_kills = Vec::new();
        for repeat in 0..opts.repeats {
            generation += 1;
            let kill = kill_edge(spawner, nodes, owner, repeat, generation, opts.viewers).await?;
            print_edge_kill(repeat, &kill);
            edge_kills.push(kill);
        }
        let mut origin_kills = Vec::new();
        for repeat in 0..opts.repeats {
            generation += 1;
            let (kill, new_host, new_owner) = kill_origin(spawner, nodes, host, &publish, owner, generation, sale, opts.viewers).await?;
            host = new_host;
            owner = new_owner;
            print_origin_kill(repeat, &kill);
            origin_kills.push(kill);
        }
        anyhow::Ok((edge_kills, origin_kills, host))
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = chat.await;
    let (edge_kills, origin_kills, host) = outcome?;
    host.close().await;
    let figures = figures(&edge_kills, &origin_kills);
    Ok(KillResult { edge_kills, origin_kills, figures })
}

/// Chat lines from ten identities, one line every 150 ms (each identity inside its rate), to
/// whichever node takes it first (the origin may be dead): room events all along.
async fn chatter(bases: &[String], stop: Arc<AtomicBool>) -> Result<tokio::task::JoinHandle<()>> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let api = Api { http, base: bases[0].clone() };
    let mut tokens = Vec::new();
    for i in 0..10 {
        tokens.push(api.token(ROOM, "viewer", &format!("chatter-{i}")).await?);
    }
    let bases = bases.to_vec();
    Ok(tokio::spawn(async move {
        let mut n = 0_usize;
        while !stop.load(Ordering::Relaxed) {
            let frame = json!({ "type": "chat", "text": format!("line {n}") });
            for k in 0..bases.len() {
                let api = Api { http: api.http.clone(), base: bases[(n + k) % bases.len()].clone() };
                if api.frame(ROOM, &tokens[n % tokens.len()], &frame).await.is_ok() {
                    break;
                }
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }))
}

/// A data-channel viewer with media on `node`, its stream open (a welcome arrived) and its
/// video flowing.
async fn watch(node: &Node, identity: &str, hello: Option<String>) -> Result<Viewer> {
    watch_on(node.base.clone(), identity.to_string(), hello).await
}

async fn watch_on(base: String, identity: String, hello: Option<String>) -> Result<Viewer> {
    let api = Api { http: reqwest::Client::new(), base: base.clone() };
    let token = api.token(ROOM, "viewer", &identity).await?;
    let options = ViewerOptions { token: Some(token), data_channel: true, hello, ..ViewerOptions::default() };
    let viewer = Viewer::connect(&base, ROOM, options).await.with_context(|| format!("{identity} watching on {base}"))?;
    viewer.channel_ready(Duration::from_secs(20)).await?;
    Ok(viewer)
}

/// A viewer's frames as received, parsed.
fn frames(viewer: &Viewer) -> Vec<(Instant, Value)> {
    viewer.frames().into_iter().filter_map(|(at, text)| serde_json::from_str(&text).ok().map(|v| (at, v))).collect()
}

/// Where the viewer stands in the stream: its last welcome's epoch, and the newest seq it got.
fn position(viewer: &Viewer) -> Option<(u64, u64)> {
    let got = frames(viewer);
    let epoch = got.iter().rev().find(|(_, f)| f["type"] == "welcome")?.1["epoch"].as_u64()?;
    let seq = got.iter().filter(|(_, f)| f["epoch"].as_u64() == Some(epoch)).filter_map(|(_, f)| f["seq"].as_u64()).max()?;
    Some((epoch, seq))
}

/// When the viewer got its first room event (not the welcome, not a snapshot).
fn first_event_at(viewer: &Viewer) -> Option<Instant> {
    frames(viewer)
        .into_iter()
        .find(|(_, f)| f["type"] != "welcome" && f["type"] != "snapshot" && f["seq"].as_u64().is_some())
        .map(|(at, _)| at)
}

fn ms_since(from: Instant, at: Option<Instant>) -> Option<f64> {
    at.map(|t| t.saturating_duration_since(from).as_secs_f64() * 1e3)
}

/// Join `n` viewers on `node` and wait (bounded) until each has a position and video.
async fn join_watching(node: &Node, prefix: &str, n: usize) -> Result<Vec<Viewer>> {
    let mut viewers = Vec::with_capacity(n);
    for i in 0..n {
        viewers.push(watch(node, &format!("{prefix}-{i}"), None).await?);
    }
    eventually(RECOVERY_LIMIT, &format!("{prefix} viewers on {} have a position and video", node.id), || async {
        Ok(viewers.iter().all(|v| position(v).is_some() && v.inspect(|s| s.video.packets > 0)).then_some(()))
    })
    .await?;
    Ok(viewers)
}

async fn kill_9(node: &mut Node) -> Result<Instant> {
    node.child.start_kill().with_context(|| format!("kill -9 {}", node.id))?;
    let killed = Instant::now();
    node.child.wait().await?;
    Ok(killed)
}

async fn kill_edge(spawner: &mut NodeSpawner<'_>, nodes: &mut [Node], owner: usize, repeat: usize, generation: usize, n: usize) -> Result<EdgeKill> {
    let edges: Vec<usize> = (0..nodes.len()).filter(|i| *i != owner).collect();
    let (victim, to) = (edges[repeat % edges.len()], edges[(repeat + 1) % edges.len()]);
    let prefix = format!("edge-kill-{repeat}");
    let before = join_watching(&nodes[victim], &prefix, n).await?;
    let positions: Vec<(u64, u64)> = before.iter().map(position).collect::<Option<_>>().context("positions before the kill")?;
    let killed = kill_9(&mut nodes[victim]).await?;
    // Their pages connect again at once, all together, each from where it stood.
    let target = &nodes[to];
    let again: Vec<_> = positions
        .iter()
        .enumerate()
        .map(|(i, at)| {
            let hello = json!({ "type": "hello", "resume": { "epoch": at.0, "seq": at.1 } }).to_string();
            tokio::spawn(watch_on(target.base.clone(), format!("{prefix}-{i}"), Some(hello)))
        })
        .collect();
    let mut moved = Vec::with_capacity(again.len());
    for task in again {
        moved.push(task.await??);
    }
    let deadline = killed + RECOVERY_LIMIT;
    while Instant::now() < deadline && !moved.iter().all(|v| first_event_at(v).is_some() && v.first_video_at().is_some()) {
        tokio::time::sleep(POLL).await;
    }
    let kill = EdgeKill {
        killed: nodes[victim].id.clone(),
        moved_to: target.id.clone(),
        first_event_ms: moved.iter().map(|v| ms_since(killed, first_event_at(v))).collect(),
        first_media_ms: moved.iter().map(|v| ms_since(killed, v.first_video_at())).collect(),
    };
    // The old peers' node is gone: closing them (a DELETE to it) only fails, after the figures.
    for v in moved.into_iter().chain(before) {
        v.close().await;
    }
    let id = format!("edge-{victim}-r{generation}");
    nodes[victim] = spawner.restart(victim, id).await?;
    Ok(kill)
}

/// One buy answered: when it was sent and when its answer came.
type Answered = (Instant, Instant);

/// Buyers on `bases`, one new buy every 100 ms in turn (each its own request, so a buy
/// waiting on a dead owner holds up no other), until `stop`: the answered ones.
async fn buyers(bases: Vec<String>, sale: i64, generation: usize, stop: Arc<AtomicBool>) -> Result<tokio::task::JoinHandle<Vec<Answered>>> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let api = Api { http: http.clone(), base: bases[0].clone() };
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens.push(api.token(ROOM, "viewer", &format!("buyer-{generation}-{i}")).await?);
    }
    Ok(tokio::spawn(async move {
        let answered = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let mut n = 0_usize;
        while !stop.load(Ordering::Relaxed) {
            let api = Api { http: http.clone(), base: bases[n % bases.len()].clone() };
            let (token, answered) = (tokens[n % tokens.len()].clone(), answered.clone());
            let frame = json!({ "type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": format!("kill-{generation}-{n}") });
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                if let Ok(frames) = api.frame(ROOM, &token, &frame).await {
                    if storm::answer(&frames).is_some() {
                        answered.lock().unwrap_or_else(|p| p.into_inner()).push((sent, Instant::now()));
                    }
                }
            }));
            n += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for t in tasks {
            let _ = t.await;
        }
        let got = answered.lock().unwrap_or_else(|p| p.into_inner()).clone();
        got
    }))
}

#[allow(clippy::too_many_arguments)]
async fn kill_origin(
    spawner: &mut NodeSpawner<'_>,
    nodes: &mut [Node],
    host: Publisher,
    publish: &PublishOptions,
    owner: usize,
    generation: usize,
    sale: i64,
    n: usize,
) -> Result<(OriginKill, Publisher, usize)> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let count = nodes.len();
    let (new_owner, edge) = ((owner + 1) % count, (owner + 2) % count);
    let watching = join_watching(&nodes[edge], &format!("origin-kill-{generation}"), n).await?;
    let sessions: Vec<u64> = watching.iter().map(|v| v.inspect(|s| s.video.publishers)).collect();
    let survivors: Vec<String> = (0..count).filter(|i| *i != owner).map(|i| nodes[i].base.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let buying = buyers(survivors, sale, generation, stop.clone()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await; // buys answered before the kill

    let killed = kill_9(&mut nodes[owner]).await?;
    let target = &nodes[new_owner];
    let deadline = killed + RECOVERY_LIMIT;
    // The host page publishes again to another node every 200 ms until it is taken.
    let live = async {
        while Instant::now() < deadline {
            if let Ok(p) = Publisher::connect(&target.base, ROOM, publish.clone()).await {
                return Some((p, Instant::now()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    };
    let claimed = async {
        while Instant::now() < deadline {
            if let Ok(Some(())) = holds_claim(&http, target).await {
                return Some(Instant::now());
            }
            tokio::time::sleep(POLL).await;
        }
        None
    };
    let media = async {
        let mut at: Vec<Option<Instant>> = vec![None; watching.len()];
        while Instant::now() < deadline && at.iter().any(Option::is_none) {
            for (i, v) in watching.iter().enumerate() {
                if at[i].is_none() && v.inspect(|s| s.video.publishers) > sessions[i] {
                    at[i] = Some(Instant::now());
                }
            }
            tokio::time::sleep(POLL).await;
        }
        at
    };
    let (live, claimed, media) = tokio::join!(live, claimed, media);
    // Buys sent after the kill keep going until one is answered, or the limit.
    let buy_deadline = Instant::now().max(killed + Duration::from_secs(2));
    tokio::time::sleep_until(buy_deadline.into()).await;
    stop.store(true, Ordering::Relaxed);
    let answered = buying.await?;
    let buy_again = answered.iter().filter(|(sent, _)| *sent > killed).map(|(_, at)| *at).min();
    let (new_host, live_at) = match live {
        Some((p, at)) => (p, Some(at)),
        None => bail!("the host could not publish again to {} within {RECOVERY_LIMIT:?} of the origin's kill", target.id),
    };
    let kill = OriginKill {
        killed: nodes[owner].id.clone(),
        new_origin: target.id.clone(),
        edge: nodes[edge].id.clone(),
        host_live_ms: ms_since(killed, live_at),
        claimed_ms: ms_since(killed, claimed),
        buy_answered_ms: ms_since(killed, buy_again),
        edge_media_ms: media.into_iter().map(|at| ms_since(killed, at)).collect(),
    };
    host.close().await; // the old session, on the dead node: after the figures
    for v in watching {
        v.close().await;
    }
    let id = format!("node-{owner}-r{generation}");
    nodes[owner] = spawner.restart(owner, id).await?;
    Ok((kill, new_host, new_owner))
}

/// The slowest of a repeat's samples; `None` if any is missing.
fn slowest(samples: &[Option<f64>]) -> Option<f64> {
    samples.iter().try_fold(0.0_f64, |worst, s| s.map(|v| worst.max(v)))
}

fn figure(kill: &'static str, what: &'static str, per_repeat: Vec<Option<f64>>) -> KillFigure {
    let missing = per_repeat.iter().filter(|v| v.is_none()).count();
    let mut got: Vec<f64> = per_repeat.into_iter().flatten().collect();
    got.sort_by(f64::total_cmp);
    KillFigure { kill, what, median_ms: got.get(got.len() / 2).copied(), max_ms: got.last().copied(), repeats: got.len(), missing }
}

fn figures(edges: &[EdgeKill], origins: &[OriginKill]) -> Vec<KillFigure> {
    vec![
        figure("edge", "its viewers' first room event on another edge", edges.iter().map(|k| slowest(&k.first_event_ms)).collect()),
        figure("edge", "its viewers' first media packet on another edge", edges.iter().map(|k| slowest(&k.first_media_ms)).collect()),
        figure("origin", "the host publishing again (another node)", origins.iter().map(|k| k.host_live_ms).collect()),
        figure("origin", "the room claimed by the new origin", origins.iter().map(|k| k.claimed_ms).collect()),
        figure("origin", "a buy sent after the kill answered", origins.iter().map(|k| k.buy_answered_ms).collect()),
        figure("origin", "an edge's viewers getting media again", origins.iter().map(|k| slowest(&k.edge_media_ms)).collect()),
    ]
}

fn show(v: &[Option<f64>]) -> String {
    v.iter().map(|s| s.map_or_else(|| "missing".to_string(), |ms| format!("{ms:.0}"))).collect::<Vec<_>>().join(" ")
}

fn print_edge_kill(repeat: usize, k: &EdgeKill) {
    println!(
        "edge kill {repeat}: {} killed, viewers moved to {}; kill -> first event ms [{}], first media ms [{}]",
        k.killed,
        k.moved_to,
        show(&k.first_event_ms),
        show(&k.first_media_ms)
    );
}

fn print_origin_kill(repeat: usize, k: &OriginKill) {
    println!(
        "origin kill {repeat}: {} killed, {} new origin; kill -> host live {} ms, claimed {} ms, buy answered {} ms, {}'s viewers' media ms [{}]",
        k.killed,
        k.new_origin,
        show(&[k.host_live_ms]),
        show(&[k.claimed_ms]),
        show(&[k.buy_answered_ms]),
        k.edge,
        show(&k.edge_media_ms)
    );
}

/// The text report: one row per kill and figure.
pub fn print_summary(r: &KillResult) {
    println!("\ntime to recover from kill -9 (ms from the kill; viewers' figures: each repeat's slowest viewer)");
    println!("| kill | recovered | median ms | max ms | repeats (missing) |");
    println!("|---|---|---|---|---|");
    for f in &r.figures {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
        println!("| {} | {} | {} | {} | {} ({}) |", f.kill, f.what, ms(f.median_ms), ms(f.max_ms), f.repeats, f.missing);
    }
}
