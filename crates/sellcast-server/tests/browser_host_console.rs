//! The host console in Chromium at 1280x800 (`tests/browser/host_console.mjs`): it works before
//! going live, after a reload, a server restart and End; its revenue is the sum of the orders
//! each time; fields are labelled, a running sale counts down, End and Ban ask first, the camera
//! is released after End, chat is on screen without scrolling, and a dead server shows at once.

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
async fn host_console_before_live_after_reload_restart_and_end() -> Result<()> {
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
        .arg("host_console.mjs")
        .env("SELLCAST_BIN", env!("CARGO_BIN_EXE_sellcast"))
        .env("SELLCAST_HTTP_PORT", "18310")
        .env("SELLCAST_MAX_SESSIONS_PER_IP", "10000")
        .env("SELLCAST_SIGNAL_RATE", "0")
        .env("SELLCAST_API_RATE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("running tests/browser/run.sh host_console.mjs (needs unshare and ip)")?;
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
    tokio::time::timeout(Duration::from_secs(200), read).await.context("browser test timed out")??;
    let status = child.wait().await?;
    if !status.success() {
        bail!("host console scenario failed ({status}); see its output above");
    }
    let r = result.context("the scenario printed no RESULT line")?;
    assert_eq!(r["orders_placed"], 8, "{r}");
    let revenue = &r["revenue_live"];
    for when in ["revenue_after_reload", "revenue_after_restart", "revenue_after_end_and_reload"] {
        assert!(r[when].is_string(), "{when}: {r}");
    }
    assert_ne!(&r["revenue_after_restart"], revenue, "one more order after the restart: {r}");
    assert_eq!(r["layout"]["chat_input_on_screen"], true, "{r}");
    assert_eq!(r["layout"]["page_scrolls"], false, "{r}");
    assert_eq!(r["unlabeled_fields"], serde_json::json!([]), "{r}");
    assert!(r["offline_shown_after_ms"].as_u64().is_some_and(|ms| ms <= 2500), "{r}");
    assert_eq!(r["status_while_down"], "offline", "{r}");
    assert!(r["oversized_sale_refused_with"].as_str().is_some_and(|m| m.contains("40 in stock")), "{r}");
    assert_eq!(r["before_live"]["highlight"], true, "{r}");
    assert_eq!(r["after_end"]["chat"], true, "{r}");
    assert_eq!(r["end"]["summary"]["shown"], true, "{r}");
    assert_eq!(r["csp_violations"], 0, "{r}");
    Ok(())
}
