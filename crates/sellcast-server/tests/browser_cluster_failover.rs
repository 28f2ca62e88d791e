//! A real watch page moves to another node by itself when the node it watches from is killed
//! with SIGKILL. Inside a private network namespace (the test runs itself again under
//! `unshare -n`): a real `nats-server` and three real nodes (A, B, C); the host (a host page in
//! the same Chromium, publishing a generated clip as its camera: the synthetic publisher's VP8
//! is not decodable) on A; chat lines posted to A all along; a reference viewer (the `webrtc` crate
//! test peer, with the data channel) on A; a watch page in Chromium, opened from A, which
//! watches from the first node of the room's node list (B: A carries the host).
//!
//! Checked: the page lands on the list's first node; after B is killed the page is on another
//! node by itself (whose `/api/stats/media` lists it), decodes video again, and the room events it applied, compared with the
//! reference viewer's, miss nothing and repeat nothing. Printed, not asserted: the time from
//! the kill to the page's first event and first decoded frame on the new node.
//!
//! The page side is `tests/browser/cluster_failover.mjs`; the nodes serve `web/` from the
//! source tree (`--web-dir`), so a control run can break a page without a rebuild.

mod cluster_support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use cluster_support::{eventually, host_token, in_namespace, NatsServer, Node, JWT_SECRET};
use serde_json::{json, Value};
use sellcast_peer::{Viewer, ViewerOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Set inside the namespace.
const INSIDE: &str = "SELLCAST_BROWSER_CLUSTER_IN_NETNS";
const ROOM: &str = "page-failover";
const PORT: u16 = 19810;

#[test]
fn kill_9_the_node_a_watch_page_is_on_and_the_page_moves_and_misses_and_repeats_no_event() -> Result<()> {
    in_namespace(INSIDE, "kill_9_the_node_a_watch_page_is_on_and_the_page_moves_and_misses_and_repeats_no_event", || inside(run))
}

fn inside<F, Fut>(test: F) -> Result<()>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let dir = tempfile::tempdir()?;
    let result = runtime.block_on(test(dir.path().to_path_buf()));
    if result.is_err() {
        for id in ["node-a", "node-b", "node-c"] {
            let log = std::fs::read_to_string(dir.path().join(format!("{id}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains("heartbeat") && !l.contains("peer address learned")).collect();
            eprintln!("--- {id} (last 30 lines) ---\n{}", lines[lines.len().saturating_sub(30)..].join("\n"));
        }
    }
    result
}

fn token(role: &str, identity: &str) -> Result<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["token", "--room", ROOM, "--role", role, "--identity", identity, "--jwt-secret", JWT_SECRET])
        .output()?;
    ensure!(out.status.success(), "sellcast token failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The room events the viewer got: `(epoch, seq)`, in the order it got them.
fn events(viewer: &Viewer) -> Vec<(u64, u64)> {
    viewer
        .frames()
        .into_iter()
        .filter_map(|(_, text)| serde_json::from_str::<Value>(&text).ok())
        .filter(|f| f["type"] != "welcome" && f["type"] != "snapshot")
        .filter_map(|f| Some((f["epoch"].as_u64()?, f["seq"].as_u64()?)))
        .collect()
}

/// Chat lines from four identities to A, one every 300 ms in turn, until `stop`.
fn chatter(base: String, stop: Arc<AtomicBool>) -> Result<tokio::task::JoinHandle<u64>> {
    let tokens: Vec<String> = (0..4).map(|i| token("viewer", &format!("chatter-{i}"))).collect::<Result<_>>()?;
    Ok(tokio::spawn(async move {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
        let mut n = 0_u64;
        while !stop.load(Ordering::Relaxed) {
            let frame = json!({ "type": "chat", "text": format!("line {n}") });
            let _ = http.post(format!("{base}/api/rooms/{ROOM}/frames")).bearer_auth(&tokens[n as usize % 4]).json(&frame).send().await;
            n += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        n
    }))
}

/// The page's scenario: Chromium in its own PID namespace (nothing outlives the test).
struct PageScript {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl PageScript {
    async fn start(host_url: &str, page_url: &str) -> Result<Self> {
        let dir = repo().join("tests/browser");
        ensure!(dir.join("node_modules/playwright-core").exists(), "run `npm ci` in tests/browser first (the other browser tests do it)");
        let mut child = tokio::process::Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "--mount-proc", "node"])
            .arg(dir.join("cluster_failover.mjs"))
            .env("HOST_URL", host_url)
            .env("PAGE_URL", page_url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("running node (tests/browser)")?;
        let stdin = child.stdin.take().context("stdin")?;
        let lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        Ok(Self { child, stdin, lines })
    }

    /// The rest of the next line starting with `word`, within `limit`.
    async fn expect(&mut self, word: &str, limit: Duration) -> Result<String> {
        let read = async {
            while let Some(line) = self.lines.next_line().await? {
                println!("page: {line}");
                if let Some(rest) = line.strip_prefix(word) {
                    return Ok(rest.trim().to_string());
                }
            }
            bail!("the page script ended before saying {word}")
        };
        tokio::time::timeout(limit, read).await.with_context(|| format!("the page script did not say {word} within {limit:?}"))?
    }

    async fn say(&mut self, line: &str) -> Result<()> {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
        Ok(self.stdin.flush().await?)
    }
}

async fn start_node(dir: &std::path::Path, id: &str, port: u16, nats: &str) -> Result<Node> {
    let web = repo().join("web");
    let web = web.to_str().context("the web dir's path")?;
    Node::start_with(dir, id, port, nats, &["--web-dir", web, "--max-sessions-per-ip", "1000"]).await
}

async fn run(dir: PathBuf) -> Result<()> {
    let dir = dir.as_path();
    let nats = NatsServer::start(dir, PORT)?;
    let a = start_node(dir, "node-a", PORT + 1, &nats.url()).await?;
    let mut b = start_node(dir, "node-b", PORT + 2, &nats.url()).await?;
    let c = start_node(dir, "node-c", PORT + 3, &nats.url()).await?;
    eventually(Duration::from_secs(15), "A sees the three nodes", || async { Ok((a.live_nodes().await?.len() == 3).then_some(())) }).await?;
    // The pages' CSP (connect-src) and the node list come from A's copy of the registry, taken
    // once per heartbeat: a page loaded before that copy names B and C could never reach them.
    eventually(Duration::from_secs(15), "A's node list names the three nodes", || async {
        let list: Value = a.http.get(format!("{}/api/rooms/{ROOM}/nodes", a.base)).send().await?.json().await?;
        Ok((list["nodes"].as_array().map_or(0, |n| n.len()) == 3).then_some(()))
    })
    .await?;

    let host_url = format!("{}/host/{ROOM}?name=Hana&shape=camera#token={}", a.base, host_token(ROOM)?);
    let page_url = format!("{}/watch/{ROOM}#token={}", a.base, token("viewer", "page")?);
    let mut page = PageScript::start(&host_url, &page_url).await?;
    page.expect("HOSTING", Duration::from_secs(120)).await?;
    eventually(Duration::from_secs(10), "A holds the room", || async { Ok(a.lease_on(ROOM).await?.map(|_| ())) }).await?;
    let options = ViewerOptions { token: Some(token("viewer", "reference")?), data_channel: true, ..ViewerOptions::default() };
    let reference = Viewer::connect(&a.base, ROOM, options).await.context("the reference viewer on A")?;
    reference.channel_ready(Duration::from_secs(20)).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let chat = chatter(a.base.clone(), stop.clone())?;
    // A carries the host and the reference viewer: its heartbeat shows it before the page asks.
    eventually(Duration::from_secs(10), "the node list puts B first", || async {
        let list: Value = a.http.get(format!("{}/api/rooms/{ROOM}/nodes", a.base)).send().await?.json().await?;
        Ok((list["nodes"][0]["url"] == b.base.as_str()).then_some(()))
    })
    .await?;

    page.say("WATCH").await?;
    let first = page.expect("ON", Duration::from_secs(120)).await?;
    ensure!(first == b.base, "the page watches from the list's first node, B: {first}");

    b.kill_9().await?;
    page.say("KILLED").await?;
    let moved = page.expect("MOVED", Duration::from_secs(120)).await?;
    ensure!(moved == a.base || moved == c.base, "the page moved to a live node: {moved}");
    // The node the page is on shows it: a viewer of the room in its media stats.
    let now_on = if moved == a.base { &a } else { &c };
    let page_viewers = if moved == a.base { 2 } else { 1 }; // on A, the reference viewer too
    eventually(Duration::from_secs(10), "the page's new node lists it in /api/stats/media", || async {
        let stats: Value = now_on.http.get(format!("{}/api/stats/media", now_on.base)).send().await?.json().await?;
        let viewers = stats["viewers"].as_array().map_or(0, |v| v.iter().filter(|v| v["room"] == ROOM).count());
        Ok((viewers >= page_viewers).then_some(()))
    })
    .await?;
    // More chat on the new node, then the reference viewer's last word.
    let moved_at = events(&reference).len();
    eventually(Duration::from_secs(20), "more chat after the move", || async { Ok((events(&reference).len() >= moved_at + 5).then_some(())) }).await?;
    stop.store(true, Ordering::Relaxed);
    let sent = chat.await?;
    tokio::time::sleep(Duration::from_millis(500)).await; // the last line lands at the reference viewer
    let reference_events = events(&reference);
    let last = reference_events.last().map(|e| e.1).context("the reference viewer's events")?;
    page.say(&format!("FINAL {last}")).await?;
    let result: Value = serde_json::from_str(&page.expect("RESULT", Duration::from_secs(60)).await?)?;
    let status = tokio::time::timeout(Duration::from_secs(30), page.child.wait()).await??;
    ensure!(status.success(), "the page script failed: {status}");

    let got: Vec<(u64, u64)> = result["events"]
        .as_array()
        .context("the page's events")?
        .iter()
        .filter_map(|e| Some((e[0].as_u64()?, e[1].as_u64()?)))
        .collect();
    let distinct: HashSet<&(u64, u64)> = got.iter().collect();
    ensure!(distinct.len() == got.len(), "the page applied an event twice: {got:?}");
    let from = *got.first().context("the page applied events")?;
    let expected: Vec<(u64, u64)> = reference_events.iter().copied().filter(|e| *e >= from).collect();
    let missed: Vec<&(u64, u64)> = expected.iter().filter(|e| !distinct.contains(e)).collect();
    ensure!(missed.is_empty(), "the page missed events the reference viewer got: {missed:?} (page: {got:?})");
    ensure!(got == expected, "the page's events are the reference viewer's from {from:?}, in order: page {got:?}, reference {expected:?}");
    ensure!(result["frames_after"].as_u64().unwrap_or(0) > 0, "the page decodes video on the new node: {result}");
    println!(
        "page moved from {first} to {moved} after kill -9: its connection left `connected` {} ms, first event {} ms, first decoded frame {} ms after the kill; {} events compared ({sent} chat lines sent)",
        result["kill_to_noticed_ms"], result["kill_to_first_event_ms"], result["kill_to_first_frame_ms"], got.len()
    );
    drop(c);
    Ok(())
}
