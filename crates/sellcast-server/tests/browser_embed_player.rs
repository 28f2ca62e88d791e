//! The embeddable player in Chromium: a merchant's page on another origin embeds it with one
//! script tag, it plays the show and a buy is confirmed (a double tap is one order); the iframe
//! form is framed by the allowed origin; an origin not allowed cannot load it, read the room or
//! frame it. The scenario is `tests/browser/embed_player.mjs`; this test runs it and checks its
//! result.

mod browser_support;

use std::time::Duration;

use anyhow::Result;

/// The server's port; the shop page is on the next one, and an origin not allowed on the one after.
const PORT: u16 = 18530;

#[tokio::test]
async fn a_player_embedded_on_another_origin_plays_the_show_and_a_buy_is_confirmed() -> Result<()> {
    let r = browser_support::run_scenario("embed_player.mjs", PORT, Duration::from_secs(180)).await?;
    let shop = format!("http://127.0.0.1:{}", PORT + 1);

    assert!(r["playing"]["frames"].as_u64().unwrap_or(0) > 10, "the embedded player decodes video: {r}");
    assert_eq!(r["buy"]["orders_seen"].as_array().map(Vec::len), Some(1), "one order confirmed to the page: {r}");
    let (before, after) = (r["buy"]["stock_before"].as_u64(), r["buy"]["stock_after"].as_u64());
    assert_eq!(before.zip(after).map(|(b, a)| b - a), Some(1), "a double tap is one order: {r}");
    assert_eq!(r["cors"]["whep_status"], 201, "the WHEP offer from the other origin is answered: {r}");
    for what in ["whep_allow_origin", "room_read_allow_origin", "module_allow_origin"] {
        assert_eq!(r["cors"][what].as_str(), Some(shop.as_str()), "{what} names the shop's origin: {r}");
    }
    assert!(r["iframe_allowed"]["frames"].as_u64().unwrap_or(0) > 10, "the iframe player plays on the allowed origin: {r}");
    assert_eq!(r["iframe_allowed"]["token_in_url"], false, "the iframe's #token= leaves its address bar: {r}");
    assert_eq!(r["elsewhere"]["module"], "refused", "another origin cannot load the player: {r}");
    assert_eq!(r["elsewhere"]["room_read"], "refused", "nor read the room: {r}");
    assert_eq!(r["elsewhere"]["framing_refused"], true, "nor frame it: {r}");
    Ok(())
}
