//! Runs one browser scenario of `tests/browser/` (a `.mjs` file, through `run.sh`: private network
//! and PID namespaces) against the real server binary, and returns its `RESULT {json}` line.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

/// `scenario` is a file in `tests/browser/`; `port` its own HTTP port (tests run in parallel).
pub async fn run_scenario(scenario: &str, port: u16, timeout: Duration) -> Result<Value> {
    let dir = browser_dir();
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir).status().await?;
        if !status.success() {
            bail!("npm ci failed in {}", dir.display());
        }
    }
    if !std::path::Path::new("/usr/bin/chromium").exists() && std::env::var_os("CHROMIUM").is_none() {
        bail!("Chromium is missing: apt-get install chromium (bash .ci/run does)");
    }
    let mut child = Command::new("sh")
        .arg(dir.join("run.sh"))
        .arg(scenario)
        .env("SELLCAST_BIN", env!("CARGO_BIN_EXE_sellcast"))
        .env("SELLCAST_HTTP_PORT", port.to_string())
        // Every client here is 127.0.0.1: no per-address cap below the server's, no rate limits.
        .env("SELLCAST_MAX_SESSIONS_PER_IP", "10000")
        .env("SELLCAST_SIGNAL_RATE", "0")
        .env("SELLCAST_API_RATE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("running tests/browser/run.sh (needs unshare and ip: util-linux, iproute2)")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut result: Option<Value> = None;
    let read = async {
        while let Some(line) = lines.next_line().await? {
            println!("{line}");
            if let Some(json) = line.strip_prefix("RESULT ") {
                result = Some(serde_json::from_str(json)?);
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(timeout, read).await.context("browser test timed out")??;
    let status = child.wait().await?;
    if !status.success() {
        bail!("browser scenario {scenario} failed ({status}); see its output above");
    }
    result.context("the scenario printed no RESULT line")
}
