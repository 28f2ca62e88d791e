//! The harness's Janus adapter against a real Janus 1.1: the same synthetic host stream and
//! the same recording viewers, first through sellcast, then through Janus's Streaming plugin
//! and HTTP API. Both must deliver the stream; the comparison figures are the bench's job.
//!
//! Janus (libnice) only uses a non-loopback interface, so the test re-runs itself inside a
//! private network namespace with the veth from `benches/netns.sh` (needs root, `unshare`,
//! `ip`, and `apt-get install janus`, which `.ci/run` does).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sellcast_bench::{run_step, JanusTarget, StepOptions, System, Target};

const INSIDE: &str = "SELLCAST_JANUS_NETNS";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_same_viewers_watch_through_sellcast_and_janus() -> Result<()> {
    if std::env::var_os(INSIDE).is_some() {
        return tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(inside());
    }
    if !std::path::Path::new("/usr/bin/janus").exists() {
        bail!("Janus is missing: apt-get install janus (bash .ci/run does)");
    }
    let me = std::env::current_exe()?;
    let script = format!(
        ". '{}' && exec '{}' --exact the_same_viewers_watch_through_sellcast_and_janus --nocapture",
        repo().join("benches/netns.sh").display(),
        me.display()
    );
    let status = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .env(INSIDE, "1")
        .status()
        .context("running unshare (util-linux) as root")?;
    assert!(status.success(), "the run inside the namespace failed: {status}");
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn inside() -> Result<()> {
    let opts = StepOptions { viewers: 3, seconds: 3, join_rate: 20.0, bitrate: 1_000_000 };
    let sellcast = System::Sellcast(Target::new(env!("CARGO_BIN_EXE_sellcast"), free_port()?));
    let janus = System::Janus(JanusTarget {
        janus_bin: "/usr/bin/janus".into(),
        http_port: free_port()?,
        // Inside a fresh namespace nothing else listens; Janus takes its ICE ports from 20000.
        rtp_port: 15_004,
        event_loops: 0,
    });
    for system in [sellcast, janus] {
        let r = tokio::time::timeout(Duration::from_secs(120), run_step(&system, &opts, &|_, _| {}))
            .await
            .context("step timed out")??;
        println!("{}: {r:?}", system.name());
        assert_eq!(r.viewers, 3, "{}: every viewer joined", system.name());
        assert!(r.forwarded_pps > 100.0, "{}: media reached the viewers: {} pkt/s", system.name(), r.forwarded_pps);
        assert!(r.loss_pct_worst < 1.0, "{}: worst viewer lost {:.3} %", system.name(), r.loss_pct_worst);
        assert!(r.first_frame_ms_p50 > 0.0, "{}: viewers saw a keyframe", system.name());
    }
    Ok(())
}
