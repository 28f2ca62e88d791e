//! The show lifecycle in Chromium (`tests/browser/show_lifecycle.mjs`): a host console at
//! 1280x800 sets the show's title, start, avatar and its name before going live; a phone viewer
//! (390x844, touch) sees the pre-show countdown and the host header, then the live video under
//! it, sets its name, chats and buys; across a server restart the name stays in chat and in the
//! host's orders feed and the likes are kept; End closes the sale on the server.

mod browser_support;

use std::time::Duration;

use anyhow::Result;

#[tokio::test]
async fn show_setup_preshow_countdown_header_names_across_a_restart_and_end_closes_sales() -> Result<()> {
    let r = browser_support::run_scenario("show_lifecycle.mjs", 18700, Duration::from_secs(200)).await?;
    assert!(r["preshow"]["countdown"].as_str().is_some_and(|t| t.starts_with("Starts in ")), "{r}");
    assert_eq!(r["preshow"]["header"]["name"], "Hana Store", "{r}");
    assert_eq!(r["live"]["unmute_on_top"], true, "{r}");
    assert!(r["joined_banner"].as_str().is_some_and(|b| b.contains("joined")), "{r}");
    assert_eq!(r["restart"]["name_in_chat"], "Pia", "{r}");
    assert_eq!(r["restart"]["name_in_feed"], "Pia", "{r}");
    assert!(r["restart"]["likes_after"].as_u64() >= r["restart"]["likes_before"].as_u64(), "likes kept: {r}");
    assert_eq!(r["end"]["buy_after_end"], "sale_not_active", "{r}");
    assert_eq!(r["page_errors"], 0, "{r}");
    assert_eq!(r["csp_violations"], 0, "{r}");
    Ok(())
}
