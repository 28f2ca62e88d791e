//! ICE over TCP in Chromium: a viewer whose network namespace drops every UDP datagram plays
//! through the server's passive TCP candidate (`tests/browser/tcp_only.mjs`), and the same
//! viewer against a server without `--tcp-port` does not (`tcp_only_control.mjs`), which shows
//! the first test's namespace really blocks what UDP would have carried.

mod browser_support;

use std::time::Duration;

use anyhow::Result;

#[tokio::test]
async fn a_viewer_whose_network_drops_udp_plays_and_chats_over_tcp() -> Result<()> {
    let r = browser_support::run_scenario("tcp_only.mjs", 19100, Duration::from_secs(180)).await?;
    assert_eq!(r["played"], true, "{r}");
    let (first, later) = (r["viewer"]["frames_first"].as_u64().unwrap_or(0), r["viewer"]["frames_later"].as_u64().unwrap_or(0));
    assert!(first > 0 && later >= first + 30, "decoded frames increase: {r}");
    assert_eq!(r["viewer"]["pair"]["local"]["protocol"], "tcp", "the selected pair is TCP: {r}");
    assert_eq!(r["viewer"]["pair"]["remote"]["protocol"], "tcp", "{r}");
    assert_eq!(r["viewer"]["pair"]["remote"]["port"], 19101, "to the server's --tcp-port: {r}");
    assert_eq!(r["chat"]["round_trip"], true, "the data channel works over TCP: {r}");
    assert!(r["udp_dropped"].as_u64().unwrap_or(0) > 0, "the viewer's UDP was tried and dropped: {r}");
    assert!(r["tcp_stats"]["open"].as_u64().unwrap_or(0) >= 1, "{r}");
    assert!(r["tcp_stats"]["frames_out"].as_u64().unwrap_or(0) > 0, "{r}");
    if let Some(ms) = r["first_frame_ms"].as_u64() {
        println!("first frame over TCP after {ms} ms");
    }
    Ok(())
}

#[tokio::test]
async fn without_the_tcp_port_the_same_viewer_does_not_play() -> Result<()> {
    let r = browser_support::run_scenario("tcp_only_control.mjs", 19110, Duration::from_secs(180)).await?;
    assert_eq!(r["control"], true, "{r}");
    assert_eq!(r["played"], false, "no video without UDP or TCP: {r}");
    assert_eq!(r["viewer"]["frames"], 0, "{r}");
    assert!(r["viewer"]["pair"].is_null(), "no candidate pair was selected: {r}");
    assert!(r["udp_dropped"].as_u64().unwrap_or(0) > 0, "{r}");
    Ok(())
}
