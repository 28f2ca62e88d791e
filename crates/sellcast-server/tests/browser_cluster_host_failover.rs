//! The host page when the room's origin dies (`tests/browser/cluster_host_failover.mjs`,
//! Chromium, NATS and three real nodes): live on A with a viewer on C, A killed with SIGKILL;
//! the page A served publishes again on another node by itself (cross-origin WHIP from A's
//! origin), that node shows the host live, the viewer on C decodes video again, and the
//! console's calls go to the new node. The time from the kill to live again is printed
//! (`--nocapture`), not checked.

mod browser_support;

use std::time::Duration;

use anyhow::Result;

#[tokio::test]
async fn the_host_page_publishes_again_on_another_node_when_its_origin_is_killed() -> Result<()> {
    let r = browser_support::run_scenario("cluster_host_failover.mjs", 19200, Duration::from_secs(240)).await?;
    assert_eq!(r["host_page_url_origin"], "http://127.0.0.1:19201", "the page stayed the one A served: {r}");
    let on = r["host_now_on"].as_str().unwrap_or_default();
    assert!(on == "http://127.0.0.1:19202" || on == "http://127.0.0.1:19203", "the host publishes on B or C: {r}");
    assert_eq!(r["live_on_new_node"], true, "{r}");
    assert!(r["frames_on_c_after_move"].as_u64().is_some_and(|n| n >= 30), "{r}");
    assert_eq!(r["product_post_status_after_move"], 201, "the console's product write reached the new node: {r}");
    println!("kill -9 of the origin to the host page live again: {} ms", r["kill_to_host_live_again_ms"]);
    println!("kill -9 of the origin to video decoded on C again: {} ms", r["kill_to_video_on_c_ms"]);
    Ok(())
}
