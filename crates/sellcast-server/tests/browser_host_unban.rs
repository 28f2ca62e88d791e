//! The host page's Unban control in Chromium (`tests/browser/host_unban.mjs`): a viewer banned
//! from the host page's chat line is listed under Banned and refused a new session; Unban on
//! the page lifts the ban on the server, and a new session of the same identity is welcomed.

mod browser_support;

use std::time::Duration;

use anyhow::Result;

#[tokio::test]
async fn unban_on_the_host_page_lifts_the_ban_and_the_viewer_is_welcomed_again() -> Result<()> {
    let r = browser_support::run_scenario("host_unban.mjs", 19300, Duration::from_secs(200)).await?;
    assert_eq!(r["banned_on_page"], serde_json::json!(["xena"]), "{r}");
    assert_eq!(r["server_bans_before_unban"], serde_json::json!(["xena"]), "{r}");
    assert!(r["refused_while_banned"].as_str().is_some_and(|s| s.contains("banned")), "{r}");
    assert_eq!(r["server_bans_after_unban"], serde_json::json!([]), "{r}");
    assert_eq!(r["banned_on_page_after_unban"], serde_json::json!([]), "{r}");
    assert_eq!(r["rejoined_welcomed_as"], "xena", "{r}");
    Ok(())
}
