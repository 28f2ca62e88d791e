//! The watch page on a phone (390x844, touch) in Chromium, next to a host page, against the real
//! server. The scenario (`tests/browser/phone_viewer.mjs`) fails on the first broken expectation;
//! this test runs it and checks the figures it reports.

mod browser_support;

use std::time::Duration;

use anyhow::Result;

#[tokio::test]
async fn phone_viewer_can_unmute_buy_once_chat_and_sees_every_show_state() -> Result<()> {
    let r = browser_support::run_scenario("phone_viewer.mjs", 18140, Duration::from_secs(240)).await?;
    assert_eq!(r["waiting"]["on_top"], true, "{r}");
    assert_eq!(r["live_badge"]["before_a_frame"], 0, "LIVE only over a presented frame: {r}");
    assert_eq!(r["unmute"]["control_on_top"], true, "{r}");
    assert_eq!(r["double_tap_buy"]["orders"], 1, "a double tap on Buy is one order: {r}");
    assert!(r["double_tap_buy"]["taps"].as_u64().unwrap_or(0) >= 2, "both taps reached the page: {r}");
    let share = r["ergonomics"]["cards_share_of_video"].as_f64().unwrap_or(1.0);
    assert!(share <= 0.25, "cards cover at most 25 % of the video: {r}");
    assert!(r["ergonomics"]["input_font_px"].as_f64().unwrap_or(0.0) >= 16.0, "{r}");
    assert_eq!(r["own_hearts"]["floated"], 4, "own hearts float once: {r}");
    assert_eq!(r["server_down"]["kept_message_sent"], true, "{r}");
    assert_eq!(r["show_ended"]["enabled"], 0, "no Buy after the show ended: {r}");
    assert_eq!(r["my_orders"]["listed"].as_array().map(Vec::len), Some(1), "the own order is listed after a reload: {r}");
    assert_eq!(r["csp_violations"], 0, "{r}");
    Ok(())
}
