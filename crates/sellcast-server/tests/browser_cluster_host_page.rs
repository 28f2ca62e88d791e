//! The host page opened on a node that is not the room's origin (`tests/browser/
//! cluster_host_page.mjs`, Chromium, NATS and three real nodes): it moves to the origin and
//! goes live there, and a viewer on a third node gets video.

mod browser_support;

use std::time::Duration;

use anyhow::Result;

#[tokio::test]
async fn the_host_page_on_a_mirror_node_goes_live_on_the_rooms_origin() -> Result<()> {
    let r = browser_support::run_scenario("cluster_host_page.mjs", 18950, Duration::from_secs(150)).await?;
    assert_eq!(r["host_page_url_origin"], "http://127.0.0.1:18951", "the page moved to node-a: {r}");
    assert_eq!(r["live_on_a"], true, "{r}");
    assert_eq!(r["live_on_b"], false, "nothing published on node-b: {r}");
    assert!(r["video_frames_on_c"].as_u64().is_some_and(|n| n > 10), "{r}");
    Ok(())
}
