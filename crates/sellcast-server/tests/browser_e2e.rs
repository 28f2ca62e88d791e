//! Browser end to end: Debian's headless Chromium (driven by playwright-core) runs the real host
//! and watch pages against the real server binary, inside a private network namespace.
//! The scenario lives in `tests/browser/e2e.mjs`; this test runs it and checks its result.

mod browser_support;

use std::time::Duration;

use anyhow::{Context, Result};

#[tokio::test]
async fn host_and_three_viewers_in_chromium() -> Result<()> {
    let r = browser_support::run_scenario("e2e.mjs", 18080, Duration::from_secs(240)).await?;
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
