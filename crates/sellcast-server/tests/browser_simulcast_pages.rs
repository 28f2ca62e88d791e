//! The pages' side of simulcast in Chromium against the real server: the host page publishes
//! three VP8 layers from a 1280x720 camera and the server takes them; a phone viewer's displayed
//! size and its data-saver toggle reach the server as `video_cap` (the lowest layer, video still
//! playing), the toggle survives a reload, and the console counts viewers by quality. The
//! scenario (`tests/browser/simulcast_pages.mjs`) fails on the first broken expectation; this
//! test runs it and checks the figures it reports.

mod browser_support;

use std::time::Duration;

use anyhow::Result;

#[tokio::test]
async fn host_page_publishes_three_layers_and_a_viewers_data_saver_and_size_reach_the_server() -> Result<()> {
    let r = browser_support::run_scenario("simulcast_pages.mjs", 18900, Duration::from_secs(200)).await?;
    assert_eq!(r["sdp"]["offer_rids"], serde_json::json!(["q", "h", "f"]), "{r}");
    assert_eq!(r["sdp"]["answer_simulcast_recv"], "q;h;f", "{r}");
    let heights: Vec<u64> = ["q", "h", "f"].iter().map(|rid| r["host_layers"][rid]["height"].as_u64().unwrap_or(0)).collect();
    assert!(heights[0] > 0 && heights[0] < heights[1] && heights[1] < heights[2], "q < h < f: {r}");
    assert_eq!(r["server_layers"].as_array().map(Vec::len), Some(3), "the server lists three layers: {r}");
    let expected = r["displayed"]["expected_cap_height"].as_f64().unwrap_or(0.0);
    let cap = r["displayed"]["cap_height"].as_f64().unwrap_or(-1.0);
    assert!(expected > 0.0 && (cap - expected).abs() <= 0.1 * expected, "the server's cap is the page's displayed height: {r}");
    assert_eq!(r["data_saver"]["server"]["data_saver"], true, "{r}");
    assert_eq!(r["data_saver"]["server"]["layer_index"], 0, "data saver is the lowest layer: {r}");
    assert_eq!(r["data_saver"]["phone"]["playing"], true, "{r}");
    assert!(r["data_saver"]["phone"]["height_after"].as_u64().unwrap_or(0) <= 180, "the phone decodes the quarter layer: {r}");
    assert_eq!(r["reload"]["checked"], true, "{r}");
    assert_eq!(r["reload"]["server_data_saver"], true, "{r}");
    assert_eq!(r["console"]["axe_serious"], 0, "{r}");
    assert_eq!(r["csp_violations"], 0, "{r}");
    Ok(())
}
