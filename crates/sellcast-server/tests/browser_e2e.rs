//! Browser end to end: Debian's headless Chromium (driven by playwright-core) runs the real host
//! and watch pages against the real server binary, inside a private network namespace.
//! The scenario lives in `tests/browser/e2e.mjs`; this test runs it and checks its result.

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

#[tokio::test]
async fn host_and_three_viewers_in_chromium() -> Result<()> {
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
        .env("SELLCAST_BIN", env!("CARGO_BIN_EXE_sellcast"))
        .env("SELLCAST_HTTP_PORT", "18080")
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
    tokio::time::timeout(Duration::from_secs(240), read).await.context("browser test timed out")??;
    let status = child.wait().await?;
    if !status.success() {
        bail!("browser scenario failed ({status}); see its output above");
    }
    let r = result.context("the scenario printed no RESULT line")?;
    assert_eq!(r["viewers_on_host_page"], 3, "the host page's viewer count: {r}");
    for v in ["viewer1", "viewer2", "viewer3"] {
        assert!(r[v]["frames"].as_u64().unwrap_or(0) > 10, "{v} decoded frames: {r}");
        assert!(r[v]["audio_packets"].as_u64().unwrap_or(0) > 0, "{v} received audio: {r}");
    }
    assert!(r["glass_to_glass_ms"]["samples"].as_u64().unwrap_or(0) > 50);
    assert_eq!(r["commerce"]["viewer_pin_refused"], "forbidden");
    let csp = r["csp"]["header"].as_str().unwrap_or_default();
    assert!(csp.starts_with("default-src 'self'"), "the pages are served under a strict CSP: {r}");
    assert_eq!(r["csp"]["violations"], 0, "nothing the pages do is blocked by it: {r}");
    assert_eq!(r["linked_viewer"]["token_in_urls"], 0, "a token given in #token= never travels in a URL: {r}");
    let banned = r["moderation"]["banned"].as_str().unwrap_or_default();
    assert!(!banned.is_empty(), "the host banned a viewer from its chat line: {r}");
    assert_eq!(r["moderation"]["back_after_unban"], banned, "after Unban the same identity came back and chatted: {r}");
    let since_return = r["host_drop"]["frames_since_return"].as_array().context("frames_since_return")?;
    assert_eq!(since_return.len(), 3, "{r}");
    for (i, frames) in since_return.iter().enumerate() {
        assert!(frames.as_u64().unwrap_or(0) > 15, "viewer {} decoded video again after the host came back: {r}", i + 1);
    }
    println!(
        "glass-to-glass p50={}ms p95={}ms over {} samples",
        r["glass_to_glass_ms"]["p50"], r["glass_to_glass_ms"]["p95"], r["glass_to_glass_ms"]["samples"]
    );
    Ok(())
}
