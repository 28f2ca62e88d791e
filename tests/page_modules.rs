//! The pages' own modules under Node (`node --test`), where a behaviour lives in the page and
//! not in the server: `web/room.js` re-sends `hello` when a live channel skips a seq, and hands a
//! `draining` frame to the page (which moves when the server closes the session); the host
//! page's capture choice (`web/capture.js`) asks the camera for the chosen shape, cropped where
//! the browser can, and the Sales panel's conversion reads as orders over peak viewers; the host
//! page's simulcast plan (`web/simulcast.js`), the viewer's video cap (`web/video_cap.js`) and the
//! console's viewers-by-quality line (`web/layer_counts.js`).

use std::process::Command;

use anyhow::{ensure, Context, Result};

/// Runs `node --test` on `tests/browser/{script}`: every one of its `tests` must run and pass.
fn node_test(script: &str, tests: usize) -> Result<()> {
    let path = format!("{}/browser/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node").arg("--test").arg(&path).output().context("running node (installed by .ci/run)")?;
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    ensure!(out.status.success(), "node --test {script} failed:\n{report}");
    ensure!(report.contains(&format!("# pass {tests}")), "every page test of {script} ran and passed:\n{report}");
    Ok(())
}

#[test]
fn capture_asks_for_the_chosen_shape_cropped_falls_back_where_it_cannot_and_conversion_reads_orders_per_peak_viewer() -> Result<()> {
    node_test("capture.test.mjs", 5)
}

#[test]
fn room_link_resends_hello_on_a_seq_gap_applies_events_once_and_hands_draining_to_the_page() -> Result<()> {
    node_test("room_link.test.mjs", 3)
}

#[test]
fn simulcast_plans_three_layers_the_video_cap_is_debounced_and_kept_and_layer_counts_read_highest_first() -> Result<()> {
    node_test("simulcast.test.mjs", 9)
}
