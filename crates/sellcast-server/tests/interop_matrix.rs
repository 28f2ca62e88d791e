//! Interop matrix: third-party WebRTC stacks publish to and watch from the real server binary over
//! WHIP/WHEP, inside private network and PID namespaces.
//! Publishers: Chromium (VP8, and H264 through `/host/ROOM?codec=h264`), libdatachannel set up like
//! OBS (H264 on payload type 96, 42e01f, Opus on 111, no trickle), Pion (VP8), GStreamer
//! `whipclientsink` (VP8, H264). Viewers: Chromium, Pion, werift, libdatachannel, GStreamer
//! `whepclientsrc`. The GStreamer peers run when `tests/interop/gst/build.sh` has built the plugin
//! (`.ci/run` does); otherwise they are reported as skipped.
//! The scenario lives in `tests/interop/matrix.mjs`; this test runs it and checks every pair.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// What a pair must show: the publisher's codec negotiated by the viewer, 2 s of complete video
/// frames, audio, no packet on a payload type the viewer never listed, and, when the viewer opened
/// the `sellcast` channel and said hello, a `welcome` and a `snapshot`.
fn pair_problems(pair: &str, r: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = r["error"].as_str() {
        out.push(format!("{pair}: {e}"));
    }
    let expected = r["expected_codec"].as_str().unwrap_or("?");
    if r["codec"].as_str() != Some(expected) {
        out.push(format!("{pair}: video codec {} where the room sends {expected}", r["codec"]));
    }
    let frames = r["frames"].as_u64().unwrap_or(0);
    let span = r["span_ms"].as_u64().unwrap_or(0);
    if frames < 20 || span < 2000 {
        out.push(format!("{pair}: {frames} complete video frames over {span} ms (want >= 20 over >= 2000 ms)"));
    }
    if r["audio_packets"].as_u64().unwrap_or(0) == 0 {
        out.push(format!("{pair}: no audio"));
    }
    if r["unlisted_pt"].as_u64().unwrap_or(0) > 0 {
        out.push(format!("{pair}: {} packets on payload types its offer never listed", r["unlisted_pt"]));
    }
    if let Some(types) = r["channel"]["types"].as_array() {
        for want in ["welcome", "snapshot"] {
            if !types.iter().any(|t| t == want) {
                out.push(format!("{pair}: data channel got no `{want}` after hello (got {types:?})"));
            }
        }
    }
    out
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// The publisher x viewer table of first-frame times (ms), with the medians.
fn print_table(result: &Value) {
    let pairs = result["pairs"].as_object().cloned().unwrap_or_default();
    let mut rows: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut viewers: Vec<String> = Vec::new();
    let mut all = Vec::new();
    for (pair, r) in &pairs {
        let Some((p, v)) = pair.split_once(" -> ") else { continue };
        if !viewers.iter().any(|x| x == v) {
            viewers.push(v.to_string());
        }
        let cell = match r["first_frame_ms"].as_u64() {
            Some(ms) if pair_problems(pair, r).is_empty() => {
                all.push(ms);
                format!("{ms}")
            }
            Some(ms) => format!("{ms} FAIL"),
            None => "FAIL".to_string(),
        };
        rows.entry(p.to_string()).or_default().insert(v.to_string(), cell);
    }
    println!("first-frame ms (WHEP POST -> first complete key frame; Chromium: first decoded frame)");
    println!("| publisher | {} |", viewers.join(" | "));
    for (p, cells) in &rows {
        let line: Vec<&str> = viewers.iter().map(|v| cells.get(v).map(String::as_str).unwrap_or("-")).collect();
        println!("| {p} | {} |", line.join(" | "));
    }
    for (p, info) in result["publishers"].as_object().into_iter().flatten() {
        if info["ok"] != true {
            println!("| {p} | publisher failed: {} |", info["error"]);
        }
    }
    println!("median over passing pairs: {:?} ms ({} pairs)", median(all.clone()), all.len());
    println!("skipped: {}", result["skipped"]);
}

#[tokio::test]
async fn third_party_publishers_and_viewers_exchange_media_pairwise() -> Result<()> {
    let dir = interop_dir();
    if !dir.join("node_modules/node-datachannel").exists() {
        let status = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir).status().await?;
        if !status.success() {
            bail!("npm ci failed in {}", dir.display());
        }
    }
    for (tool, package) in [("/usr/bin/chromium", "chromium"), ("/usr/bin/ffmpeg", "ffmpeg"), ("/usr/bin/go", "golang-go")] {
        if !std::path::Path::new(tool).exists() {
            bail!("{tool} is missing: apt-get install {package} (bash .ci/run does)");
        }
    }
    let mut cmd = Command::new("sh");
    cmd.arg(dir.join("run.sh"))
        .env("SELLCAST_BIN", env!("CARGO_BIN_EXE_sellcast"))
        .env("SELLCAST_HTTP_PORT", "18090")
        // Every client here is 127.0.0.1: no per-address cap below the server's, no rate limits.
        .env("SELLCAST_MAX_SESSIONS_PER_IP", "10000")
        .env("SELLCAST_SIGNAL_RATE", "0")
        .env("SELLCAST_API_RATE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let gst = std::env::var_os("GST_PLUGIN_DIR").map(PathBuf::from).unwrap_or_else(|| dir.join("gst/plugins"));
    if gst.join("libgstrswebrtc.so").exists() {
        cmd.env("GST_PLUGIN_DIR", &gst);
    } else {
        println!("GStreamer peers skipped: no {} (run tests/interop/gst/build.sh)", gst.join("libgstrswebrtc.so").display());
    }
    let mut child = cmd.spawn().context("running tests/interop/run.sh (needs unshare and ip: util-linux, iproute2)")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut result: Option<Value> = None;
    let read = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(json) = line.strip_prefix("RESULT ") {
                println!("RESULT {json}");
                result = Some(serde_json::from_str(json)?);
            } else {
                println!("{line}");
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(300), read).await.context("interop matrix timed out")??;
    let status = child.wait().await?;
    if !status.success() {
        bail!("interop matrix failed ({status}); see its output above");
    }
    let r = result.context("the matrix printed no RESULT line")?;
    print_table(&r);

    let mut problems = Vec::new();
    for (name, p) in r["publishers"].as_object().context("publishers")? {
        if p["ok"] != true {
            problems.push(format!("publisher {name}: {}", p["error"]));
        }
        if let Some(sent) = p["sent"]["codec"].as_str() {
            let expected = format!("video/{}", p["expected_codec"].as_str().unwrap_or("?"));
            if !sent.eq_ignore_ascii_case(&expected) {
                problems.push(format!("publisher {name}: encodes {sent}, expected {expected}"));
            }
        }
    }
    let pairs = r["pairs"].as_object().context("pairs")?;
    for (pair, report) in pairs {
        problems.extend(pair_problems(pair, report));
    }
    let silent = pairs
        .iter()
        .filter(|(_, p)| p["channel"].is_null() && pair_problems("", p).is_empty())
        .count();
    let talking = pairs.iter().filter(|(_, p)| p["channel"]["types"].is_array()).count();
    assert!(talking > 0, "no viewer opened the sellcast data channel: {r}");
    assert!(silent > 0, "no viewer without a data channel received media: {r}");
    assert!(problems.is_empty(), "{} interop problems:\n{}", problems.len(), problems.join("\n"));
    Ok(())
}
