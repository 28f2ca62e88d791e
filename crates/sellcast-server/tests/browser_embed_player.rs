//! The embeddable player in Chromium: a merchant's page on another origin embeds it with one
//! script tag, it plays the show and a buy is confirmed (a double tap is one order); the iframe
//! form is framed by the allowed origin; an origin not allowed cannot load it, read the room or
//! frame it. The scenario is `tests/browser/embed_player.mjs`; this test runs it and checks its
//! result.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const PORT: &str = "18530";

#[tokio::test]
async fn a_player_embedded_on_another_origin_plays_the_show_and_a_buy_is_confirmed() -> Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir).status().await?;
        if !status.success() {
            bail!("npm ci failed in {}", dir.display());
        }
    }
    let mut child = Command::new("sh")
        .arg(dir.join("run.sh"))
        .arg("embed_player.mjs")
        .env("SELLCAST_BIN", env!("CARGO_BIN_EXE_sellcast"))
        .env("SELLCAST_HTTP_PORT", PORT)
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
    tokio::time::timeout(Duration::from_secs(180), read).await.context("browser test timed out")??;
    let status = child.wait().await?;
    if !status.success() {
        bail!("embed scenario failed ({status}); see its output above");
    }
    let r = result.context("the scenario printed no RESULT line")?;
    let shop = format!("http://127.0.0.1:{}", PORT.parse::<u16>()? + 1);

    assert!(r["playing"]["frames"].as_u64().unwrap_or(0) > 10, "the embedded player decodes video: {r}");
    assert_eq!(r["buy"]["orders_seen"].as_array().map(Vec::len), Some(1), "one order confirmed to the page: {r}");
    let (before, after) = (r["buy"]["stock_before"].as_u64(), r["buy"]["stock_after"].as_u64());
    assert_eq!(before.zip(after).map(|(b, a)| b - a), Some(1), "a double tap is one order: {r}");
    assert_eq!(r["cors"]["whep_status"], 201, "the WHEP offer from the other origin is answered: {r}");
    for what in ["whep_allow_origin", "room_read_allow_origin", "module_allow_origin"] {
        assert_eq!(r["cors"][what].as_str(), Some(shop.as_str()), "{what} names the shop's origin: {r}");
    }
    assert!(r["iframe_allowed"]["frames"].as_u64().unwrap_or(0) > 10, "the iframe player plays on the allowed origin: {r}");
    assert_eq!(r["iframe_allowed"]["token_in_url"], false, "the iframe's #token= leaves its address bar: {r}");
    assert_eq!(r["elsewhere"]["module"], "refused", "another origin cannot load the player: {r}");
    assert_eq!(r["elsewhere"]["room_read"], "refused", "nor read the room: {r}");
    assert_eq!(r["elsewhere"]["framing_refused"], true, "nor frame it: {r}");
    Ok(())
}
