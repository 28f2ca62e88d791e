//! Test support for cluster mode: a real `nats-server` (JetStream on, its store in a temp
//! directory) and real `sellcast` nodes joined to it, each a child process killed on drop.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The secret every node shares, so a host's token is good on any node.
pub const JWT_SECRET: &str = "cluster-test-secret-cluster-test-secret-0123456789";
/// The `--metrics-token` operators use for `/api/cluster/nodes`.
pub const OPERATOR_TOKEN: &str = "operator-token";

/// `nats-server -js -sd <dir> -p <port> -a 127.0.0.1`, killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    store: PathBuf,
    log: PathBuf,
}

impl NatsServer {
    /// Start it with its store under `dir` and wait until it accepts connections.
    pub fn start(dir: &Path, port: u16) -> Result<Self> {
        let mut nats = Self { child: None, port, store: dir.join("jetstream"), log: dir.join("nats.log") };
        nats.launch()?;
        Ok(nats)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kill it with SIGKILL (nothing flushed, as in a crash) and wait for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port with the same store.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.launch()
    }

    fn launch(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new("nats-server")
            .args(["-js", "-sd"])
            .arg(&self.store)
            .args(["-p", &self.port.to_string(), "-a", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("nats-server is not installed: `apt-get install nats-server` (scripts/test installs it)")
            }
            Err(e) => return Err(e).context("spawning nats-server"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                bail!("nats-server exited ({status}) before accepting connections:\n{log}");
            }
            if Instant::now() > deadline {
                bail!("nats-server did not accept connections on port {} within 15 s", self.port);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `sellcast serve` process in cluster mode, killed on drop.
pub struct Node {
    child: tokio::process::Child,
    pub id: String,
    /// `http://127.0.0.1:PORT`, which is also its `--public-url`.
    pub base: String,
    pub http: reqwest::Client,
}

impl Node {
    /// Start node `id` on HTTP `port` joined to `nats_url`, its data and log under `dir`,
    /// and wait until it answers `/healthz`.
    pub async fn start(dir: &Path, id: &str, port: u16, nats_url: &str) -> Result<Self> {
        Self::start_with(dir, id, port, nats_url, &[]).await
    }

    /// [`Node::start`] with its commerce state in the PostgreSQL database at `postgres`
    /// (shared by the nodes), and no per-IP connection cap (a storm comes from one address).
    pub async fn start_on_postgres(dir: &Path, id: &str, port: u16, nats_url: &str, postgres: &str) -> Result<Self> {
        Self::start_with(dir, id, port, nats_url, &["--postgres", postgres, "--http-connections-per-ip", "100000"]).await
    }

    /// [`Node::start`] with more `serve` flags. The node serves every WHEP viewer itself
    /// (`--no-viewer-redirect`): these tests put viewers on given nodes.
    pub async fn start_with(dir: &Path, id: &str, port: u16, nats_url: &str, extra: &[&str]) -> Result<Self> {
        let mut flags = vec!["--no-viewer-redirect"];
        flags.extend_from_slice(extra);
        Self::spawn(dir, id, port, nats_url, &flags).await
    }

    /// [`Node::start`] with the WHEP redirect to a clearly less loaded node on, as in a
    /// deployment.
    pub async fn start_redirecting(dir: &Path, id: &str, port: u16, nats_url: &str) -> Result<Self> {
        Self::spawn(dir, id, port, nats_url, &[]).await
    }

    async fn spawn(dir: &Path, id: &str, port: u16, nats_url: &str, extra: &[&str]) -> Result<Self> {
        let base = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join(format!("{id}.log")))?;
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sellcast"))
            .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--udp-port", "0", "--media-threads", "1"])
            .args(extra)
            .arg("--db")
            .arg(dir.join(format!("{id}.db")))
            .env("SELLCAST_CLUSTER", nats_url)
            .env("SELLCAST_NODE_ID", id)
            .env("SELLCAST_PUBLIC_URL", &base)
            .env("SELLCAST_JWT_SECRET", JWT_SECRET)
            .env("SELLCAST_METRICS_TOKEN", OPERATOR_TOKEN)
            .env("SELLCAST_SIGNAL_RATE", "0")
            .env("SELLCAST_API_RATE", "0")
            .env("RUST_LOG", "info,sellcast_server::cluster=debug")
            // The log lines go to stdout: keep them next to anything on stderr.
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("spawning sellcast")?;
        // Redirects are what these tests look at: never followed.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()?;
        let mut node = Self { child, id: id.to_string(), base, http };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if matches!(node.http.get(format!("{}/healthz", node.base)).send().await, Ok(r) if r.status().is_success()) {
                return Ok(node);
            }
            if let Some(status) = node.child.try_wait()? {
                let log = std::fs::read_to_string(dir.join(format!("{id}.log"))).unwrap_or_default();
                bail!("node {id} exited ({status}) before serving:\n{log}");
            }
            if Instant::now() > deadline {
                bail!("node {id} did not answer /healthz within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no drain, no release; its claims and registry entry stay until they lapse.
    pub async fn kill_9(&mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// Send `signal` (`STOP`, `CONT`, ...) to the node's process with kill(1).
    pub fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.child.id().context("the node is running")?;
        let sent = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status()?;
        anyhow::ensure!(sent.success(), "SIG{signal} delivered");
        Ok(())
    }

    /// SIGTERM (a graceful drain) and wait for the process to exit.
    pub async fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().context("the node is running")?;
        let signalled = Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
        anyhow::ensure!(signalled.success(), "SIGTERM delivered");
        Ok(tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??)
    }

    /// `GET /api/cluster/nodes` as an operator: the live node ids.
    pub async fn live_nodes(&self) -> Result<Vec<String>> {
        let resp = self
            .http
            .get(format!("{}/api/cluster/nodes", self.base))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("nodes: {status} {body}");
        }
        let nodes = body["nodes"].as_array().context("nodes")?;
        Ok(nodes.iter().filter_map(|n| n["node_id"].as_str().map(String::from)).collect())
    }

    /// `GET /api/stats/cluster`: this node's cluster state.
    pub async fn cluster_stats(&self) -> Result<Value> {
        let body: Value = self.http.get(format!("{}/api/stats/cluster", self.base)).send().await?.json().await?;
        Ok(body["node"].clone())
    }

    /// The lease this node holds on `room` (ms since the epoch), if it holds the room.
    pub async fn lease_on(&self, room: &str) -> Result<Option<u64>> {
        let stats = self.cluster_stats().await?;
        let rooms = stats["rooms"].as_array().cloned().unwrap_or_default();
        Ok(rooms.iter().find(|r| r["room"] == room).and_then(|r| r["lease_until"].as_u64()))
    }

    /// A raw WHIP POST of `offer`; `path_suffix` is appended to `/whip/{room}` (a query).
    pub async fn whip(&self, room: &str, path_suffix: &str, token: Option<&str>, offer: &str) -> Result<WhipAnswer> {
        let mut request = self
            .http
            .post(format!("{}/whip/{room}{path_suffix}", self.base))
            .header("content-type", "application/sdp")
            .body(offer.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let resp = request.send().await?;
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(String::from);
        Ok(WhipAnswer { status: resp.status().as_u16(), location, body: resp.text().await? })
    }
}

/// Create a product in `room` on the node at `base`, with a host token; its id.
pub async fn create_product(http: &reqwest::Client, base: &str, room: &str, host: &str, product: &Value) -> Result<i64> {
    let created: Value = http
        .post(format!("{base}/api/rooms/{room}/products"))
        .bearer_auth(host)
        .json(product)
        .send()
        .await?
        .json()
        .await?;
    created["id"].as_i64().with_context(|| format!("product created: {created}"))
}

#[derive(Debug)]
pub struct WhipAnswer {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

/// A host token for `room`, minted by `sellcast token` with the nodes' shared secret.
pub fn host_token(room: &str) -> Result<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["token", "--room", room, "--role", "host", "--identity", "host", "--jwt-secret", JWT_SECRET])
        .output()?;
    if !out.status.success() {
        bail!("sellcast token failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// A WHIP offer (send-only audio and video) from str0m: valid, though nobody answers ICE.
pub fn publish_offer() -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = str0m::Rtc::builder().set_rtp_mode(true).build(Instant::now());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, _pending) = change.apply().expect("a change was made");
    offer.to_sdp_string()
}

/// Poll `check` every 100 ms until it returns `Some`, or fail after `limit` saying `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> Result<T>
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

/// Run `body` inside a private network namespace: the calling test binary again, only test
/// `name`, under `unshare -n` with `lo` up, with `inside_var` set so the second run takes
/// `body` instead of re-running itself. No WebRTC stack there can pick a non-loopback address.
pub fn in_namespace(inside_var: &str, name: &str, body: impl FnOnce() -> Result<()>) -> Result<()> {
    if std::env::var_os(inside_var).is_some() {
        return body();
    }
    let me = std::env::current_exe()?;
    let script = format!("ip link set lo up && exec '{}' --exact {name} --nocapture", me.display());
    let status = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .env(inside_var, "1")
        .status()
        .context("running unshare (util-linux) and ip (iproute2) as root")?;
    anyhow::ensure!(status.success(), "the run inside the network namespace failed: {status}");
    Ok(())
}
