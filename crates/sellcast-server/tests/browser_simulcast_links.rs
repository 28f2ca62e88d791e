//! Simulcast behind emulated links: a Chromium host publishing three layers from a 1280x720 fake
//! camera, and three Chromium viewers, each in its own network namespace (unlimited; 1.2 Mbit/s;
//! 350 kbit/s with 2 % loss), against the real server. The scenario
//! (`tests/browser/simulcast_links.mjs`, links in `tests/browser/links.mjs`) measures and reports;
//! this test asserts on its report.

mod browser_support;

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

/// How long a viewer may take, from its first decoded frame, to settle on its layer.
const SETTLE_MS: u64 = 10_000;
/// How long the 350 kbit/s viewer may take to reach the top layer once its link is opened.
const CLIMB_MS: u64 = 15_000;
/// Freezes over the 20 s settle window, per viewer (Chromium's definition: a frame interval over
/// max(3 x the average, the average + 150 ms)). A layer switch at a keyframe is no freeze; the
/// bounds leave room for the first seconds' start-up and a busy 2-core machine.
const MAX_FREEZES: u64 = 3;
const MAX_FREEZE_S: f64 = 1.5;

fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_u64)
}

#[tokio::test]
#[ignore = "fails on this VM: the 350 kbit/s viewer does not climb to the top layer within 15 s once its link opens, and freezes exceed the bound (issue 10, docs/bandwidth.md); run with --ignored"]
async fn simulcast_viewers_settle_on_the_layer_their_link_carries_climb_and_pause() -> Result<()> {
    let r = browser_support::run_scenario("simulcast_links.mjs", 19000, Duration::from_secs(360)).await?;
    assert_eq!(r["simulcast_host"], true, "{r}");
    assert_eq!(r["host_layers"].as_object().map(|l| l.len()), Some(3), "the host sends three layers: {r}");

    for (name, index) in [("v1", 2), ("v2", 1), ("v3", 0)] {
        let s = &r["settle"][name];
        assert!(u64_at(s, &["first_frame_ms"]).is_some(), "{name} decodes video: {s}");
        let settled = u64_at(s, &["settled_ms"]);
        assert!(settled.is_some_and(|ms| ms <= SETTLE_MS), "{name} settles on layer {index} within {SETTLE_MS} ms: {s}");
        assert_eq!(u64_at(s, &["last", "layer_index"]), Some(index), "the server sends {name} layer {index}: {s}");
        assert_eq!(u64_at(s, &["last", "page_layer_index"]), Some(index), "{name}'s page decodes layer {index}'s height: {s}");
        assert_eq!(s["last"]["paused"], false, "{s}");
        let freezes = u64_at(s, &["freeze_count"]).unwrap_or(u64::MAX);
        let frozen = s["total_freezes_s"].as_f64().unwrap_or(f64::MAX);
        assert!(freezes <= MAX_FREEZES && frozen <= MAX_FREEZE_S, "{name} decodes without stalls: {s}");
        let g2g = &r["glass_to_glass_ms"][name];
        assert!(u64_at(g2g, &["samples"]).unwrap_or(0) >= 30, "{name}'s frame numbers are read: {g2g}");
    }

    let climb = &r["climb"];
    assert!(u64_at(climb, &["climbed_ms"]).is_some_and(|ms| ms <= CLIMB_MS), "the opened link reaches the top layer within {CLIMB_MS} ms: {climb}");

    let p = &r["pause"];
    assert!(u64_at(p, &["paused_ms"]).is_some(), "at 100 kbit/s the server pauses the video: {p}");
    assert_eq!(p["still_paused_after_chat"], true, "{p}");
    assert!(u64_at(p, &["frames_in_3s"]).is_some_and(|n| n <= 3), "no video while paused: {p}");
    assert!(u64_at(p, &["audio_packets_in_3s"]).is_some_and(|n| n >= 75), "audio goes on while paused: {p}");
    assert_eq!(p["chat_arrived"], true, "chat goes on while paused: {p}");
    assert_eq!(p["connection_states"], serde_json::json!(["connected"]), "the peer connection stays connected: {p}");
    assert!(u64_at(p, &["resumed_ms"]).is_some(), "video resumes when the link is restored: {p}");
    Ok(())
}
