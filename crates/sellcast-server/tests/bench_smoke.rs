//! A smoke run of the load harness against the real binary: 10 synthetic viewers for 5 s, the
//! worst of them losing under 1 % of the packets and each starting on a keyframe. The full sweep is a documented command, not a test.

use anyhow::Result;
use sellcast_bench::{run_step, StepOptions, System, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_viewers_for_five_seconds_each_lose_under_one_percent() -> Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let target = Target::new(env!("CARGO_BIN_EXE_sellcast"), port);
    let opts = StepOptions { viewers: 10, seconds: 5, join_rate: 20.0, bitrate: 2_500_000 };
    let r = run_step(&System::Sellcast(target), &opts, &|_, _| {}).await?;
    println!("bench smoke: {r:?}");
    assert!(r.forwarded_pps > 1000.0, "media was forwarded: {} pkt/s", r.forwarded_pps);
    // Per viewer: a viewer that joined but got nothing would count 100 % here.
    assert!(r.loss_pct_worst < 1.0, "worst viewer lost {:.3} %", r.loss_pct_worst);
    assert!(r.first_packet_keyframe_pct > 99.0, "viewers start on a keyframe");
    Ok(())
}
