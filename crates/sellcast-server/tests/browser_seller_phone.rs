//! A seller going live from a phone, in Chromium (`tests/browser/seller_phone.mjs`): the video's
//! shape and size chosen on the console reach the viewer as chosen (portrait 9:16 by default,
//! landscape letterboxed), the console at 390x844 is usable by touch (preview filling the screen,
//! 44 px controls, panels as sheets), the viewer preview shows the show without counting itself,
//! the Sales panel shows conversion, and axe-core finds no serious or critical violation.

mod browser_support;

use std::time::Duration;

use anyhow::Result;

#[tokio::test]
async fn seller_goes_live_from_a_phone_in_portrait_and_previews_what_viewers_see() -> Result<()> {
    let r = browser_support::run_scenario("seller_phone.mjs", 18800, Duration::from_secs(240)).await?;
    let portrait = &r["viewer_portrait"];
    let (w, h) = (portrait["width"].as_u64().unwrap_or(0), portrait["height"].as_u64().unwrap_or(0));
    assert!(h > w && w > 0, "the viewer decodes portrait video: {r}");
    println!("portrait 720p from a 1280x720 camera: the camera sends {}, the viewer decodes {w}x{h}", r["host_camera"]["portrait_720p"]);
    assert_eq!(portrait["fills_screen"], true, "{r}");
    let landscape = &r["viewer_landscape"];
    assert!(landscape["width"].as_u64() > landscape["height"].as_u64(), "{r}");
    assert_eq!(landscape["object_fit"], "contain", "landscape is letterboxed: {r}");
    assert_eq!(landscape["above_product_bar"], true, "{r}");
    assert_eq!(r["phone_layout"]["go_live_on_top"], true, "{r}");
    for sheet in ["setup", "products", "sales", "orders", "chat"] {
        assert_eq!(r["phone_layout"]["sheets"][sheet]["small"], serde_json::json!([]), "{sheet}: {r}");
    }
    assert_eq!(r["prepared_on_phone"]["sale"], true, "{r}");
    assert_eq!(r["conversion"]["cells"][3], "100 %", "{r}");
    assert_eq!(r["phone_preview"]["state"], "live", "the phone's preview plays: {r}");
    assert_eq!(r["preview"]["counts"]["server"], 2, "the server counts the preview: {r}");
    assert_eq!(r["preview"]["counts"]["shown"], 1, "the console does not: {r}");
    for (state, serious) in r["axe"].as_object().into_iter().flatten() {
        assert_eq!(serious, 0, "axe-core on {state}: {r}");
    }
    assert_eq!(r["axe"].as_object().map(|o| o.len()), Some(4), "axe ran in every state: {r}");
    assert_eq!(r["csp_violations"], 0, "{r}");
    Ok(())
}
