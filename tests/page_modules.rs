//! The pages' own modules under Node (`node --test`), where a behaviour lives in the page and
//! not in the server: `web/room.js` re-sends `hello` when a live channel skips a seq, and hands a
//! `draining` frame to the page (which moves when the server closes the session).

use std::process::Command;

use anyhow::{ensure, Context, Result};

#[test]
fn room_link_resends_hello_on_a_seq_gap_applies_events_once_and_hands_draining_to_the_page() -> Result<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/room_link.test.mjs");
    let out = Command::new("node").arg("--test").arg(script).output().context("running node (installed by .ci/run)")?;
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    ensure!(out.status.success(), "node --test failed:\n{report}");
    ensure!(report.contains("# pass 3"), "every page test ran and passed:\n{report}");
    Ok(())
}
