//! The server under test, as a child process: its CPU and memory are then its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The bearer token the harness starts the server with, to read its `/metrics`.
pub const METRICS_TOKEN: &str = "sellcast-bench";

/// Which server binary to run and where it listens.
#[derive(Debug, Clone)]
pub struct Target {
    pub server_bin: PathBuf,
    pub http_port: u16,
    /// Passed as `--media-threads` when set (a server from before sharding lacks the flag).
    pub media_threads: Option<usize>,
    /// The first media port (`--udp-port`); 0 lets the server pick.
    pub udp_port: u16,
    /// More `serve` arguments (limits for a run, say).
    pub extra_args: Vec<String>,
    /// The SQLite file's name inside the run's directory. Nodes of one cluster share the
    /// directory, and with it the dev-mode secret their tokens and relay tokens are signed with.
    pub db_name: String,
}

impl Target {
    /// `server_bin` on `http_port`, everything else as the server defaults it.
    pub fn new(server_bin: impl Into<PathBuf>, http_port: u16) -> Self {
        Self { server_bin: server_bin.into(), http_port, media_threads: None, udp_port: 0, extra_args: Vec::new(), db_name: "bench.db".into() }
    }
}

pub async fn spawn(args: &Target, dir: &Path) -> Result<(tokio::process::Child, u32, String)> {
    let mut command = tokio::process::Command::new(&args.server_bin);
    command
        .args(["serve", "--http", &format!("127.0.0.1:{}", args.http_port), "--udp-port", &args.udp_port.to_string(), "--db"])
        .arg(dir.join(&args.db_name))
        .args(&args.extra_args);
    if let Some(threads) = args.media_threads {
        command.args(["--media-threads", &threads.to_string()]);
    }
    let server = command
        .env("RUST_LOG", "warn")
        // Every client here is 127.0.0.1: no per-address cap below the server's, no rate limits.
        .env("SELLCAST_MAX_SESSIONS_PER_IP", "10000")
        .env("SELLCAST_SIGNAL_RATE", "0")
        .env("SELLCAST_API_RATE", "0")
        // A server from before `/metrics` ignores it.
        .env("SELLCAST_METRICS_TOKEN", METRICS_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the server")?;
    let pid = server.id().context("server pid")?;
    let base = format!("http://127.0.0.1:{}", args.http_port);
    let http = reqwest::Client::new();
    let up = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        if up.elapsed() > Duration::from_secs(10) {
            bail!("server did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((server, pid, base))
}

