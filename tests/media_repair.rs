//! The media promises that need a viewer with a bad link, over real WebRTC (a webrtc-rs host
//! over WHIP, webrtc-rs viewers over WHEP): a viewer's lost packets are repaired by the
//! server from its resend cache and never NACKed to the host; a viewer too slow for the
//! stream loses only its own packets; and every viewer's RTP timestamps follow the host's
//! clock across that viewer's recovery and across a host restart.
//!
//! The bad link is `sellcast_peer::Impairment` in the viewer's own socket path (this kernel
//! has no netem, and one viewer of several in one process cannot have its own tbf).

mod support;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use sellcast_peer::{Impairment, KindStats, PublishOptions, Publisher, Viewer, ViewerOptions};
use support::{bounded, server, until};

/// The payload type the viewers offer for VP8 (and the server answers with).
const VP8_PT: u8 = 96;
/// How far a packet's RTP timestamp may sit from its publisher send time (relative to the
/// first packet): the host stamps media time at its frame tick and sends a little later, on
/// a busy machine up to tens of ms. A rewrite that jumps timestamps is off by far more.
const TS_SKEW_LIMIT: Duration = Duration::from_millis(250);

fn impaired(impairment: &Arc<Impairment>) -> ViewerOptions {
    ViewerOptions { impairment: Some(impairment.clone()), ..ViewerOptions::default() }
}

/// Share of the publisher counters in `sent` that the viewer received.
fn share(k: &KindStats, sent: &Range<u64>) -> f64 {
    k.counters.range(sent.clone()).count() as f64 / (sent.end - sent.start).max(1) as f64
}

fn p99_ms(k: &KindStats) -> f64 {
    let mut v = k.latency_us.clone();
    v.sort_unstable();
    v.get((v.len().saturating_sub(1)) * 99 / 100).map_or(f64::NAN, |us| *us as f64 / 1000.0)
}

async fn receiving(viewers: &[&Viewer]) -> Result<()> {
    until(Duration::from_secs(20), "every viewer receives video", || viewers.iter().all(|v| v.inspect(|s| s.video.packets > 30))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_packets_are_repaired_from_the_server_cache_and_no_nack_reaches_the_host() -> Result<()> {
    bounded(Duration::from_secs(60), async {
        let (server, _dir) = server(1).await?;
        let base = format!("http://{}", server.http_addr);
        let publisher = Publisher::connect(&base, "repair", PublishOptions::default()).await?;
        let lossy_link = Impairment::new();
        let lossy = Viewer::connect(&base, "repair", impaired(&lossy_link)).await?;
        let clean = Viewer::connect(&base, "repair", None).await?;
        receiving(&[&lossy, &clean]).await?;

        // From now on the lossy viewer loses one video packet in 25 (4 %), each once.
        lossy_link.lose_video_every(VP8_PT, 25);
        lossy.reset();
        let (nacks_before, start) = (publisher.nacks(), publisher.video_sent());
        tokio::time::sleep(Duration::from_secs(6)).await;
        let sent = start..publisher.video_sent();
        lossy_link.lose_video_every(VP8_PT, 0);
        // Repairs of the last losses are a round trip behind.
        let repaired = |v: &Viewer| v.inspect(|s| share(&s.video, &sent)) >= 0.995;
        let _ = until(Duration::from_secs(3), "the last repairs", || repaired(&lossy)).await;

        let lost = lossy_link.video_packets_lost();
        let (got, clean_got) = (lossy.inspect(|s| share(&s.video, &sent)), clean.inspect(|s| share(&s.video, &sent)));
        let nacks = publisher.nacks() - nacks_before;
        println!(
            "window {} video packets: lost on the viewer's link {lost}, viewer holds {:.2}% (clean viewer {:.2}%), NACKs at the host {nacks}",
            sent.end - sent.start,
            got * 100.0,
            clean_got * 100.0
        );
        let window = sent.end - sent.start;
        assert!(lost * 100 >= window * 3, "the link really lost about 4% of the video: {lost} of {window}");
        assert!(got >= 0.995, "the lossy viewer got its lost packets back: it holds {:.2}% of the window", got * 100.0);
        assert!(clean_got >= 0.99, "the clean viewer got the window: {:.2}%", clean_got * 100.0);
        assert_eq!(nacks, 0, "no NACK reached the host while the viewer's losses were repaired");
        assert_eq!(publisher.nacks(), 0, "no NACK reached the host at all");
        lossy.close().await;
        clean.close().await;
        publisher.close().await;
        server.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_viewer_loses_only_its_own_packets_and_timestamps_follow_the_host_across_recovery_and_restart() -> Result<()> {
    bounded(Duration::from_secs(60), async {
        let (server, _dir) = server(2).await?;
        let base = format!("http://{}", server.http_addr);
        let first_host = Publisher::connect(&base, "slow", PublishOptions::default()).await?;
        let slow_link = Impairment::new();
        let slow = Viewer::connect(&base, "slow", impaired(&slow_link)).await?;
        let mut others = Vec::new();
        for _ in 0..3 {
            others.push(Viewer::connect(&base, "slow", None).await?);
        }
        let all: Vec<&Viewer> = std::iter::once(&slow).chain(&others).collect();
        receiving(&all).await?;

        // 1. The slow viewer's link takes 1 Mbit/s of a 2.5 Mbit/s stream.
        slow_link.set_rate(1_000_000);
        all.iter().for_each(|v| v.reset());
        let start = (first_host.video_sent(), first_host.audio_sent());
        tokio::time::sleep(Duration::from_secs(6)).await;
        let video = start.0..first_host.video_sent();
        let audio = start.1..first_host.audio_sent();
        let _ = until(Duration::from_secs(3), "the others' stragglers", || {
            others.iter().all(|v| v.inspect(|s| share(&s.video, &video) >= 0.99 && share(&s.audio, &audio) >= 0.99))
        })
        .await;
        let slow_got = slow.inspect(|s| share(&s.video, &video));
        println!(
            "slow link: slow viewer {:.1}% of video ({} datagrams dropped on its link); others {:?}% video, p99 one-way ms {:?}",
            slow_got * 100.0,
            slow_link.dropped(),
            others.iter().map(|v| (v.inspect(|s| share(&s.video, &video)) * 1000.0).round() / 10.0).collect::<Vec<_>>(),
            others.iter().map(|v| v.inspect(|s| (p99_ms(&s.video) * 10.0).round() / 10.0)).collect::<Vec<_>>()
        );
        assert!(slow_got < 0.9, "the slow viewer really could not keep up: it got {:.1}%", slow_got * 100.0);
        for (i, v) in others.iter().enumerate() {
            let s = v.stats();
            assert!(share(&s.video, &video) >= 0.99, "viewer {i} got >= 99% of video beside the slow one: {:.2}%", share(&s.video, &video) * 100.0);
            assert!(share(&s.audio, &audio) >= 0.99, "viewer {i} got >= 99% of audio beside the slow one: {:.2}%", share(&s.audio, &audio) * 100.0);
            assert!(p99_ms(&s.video) < 1000.0, "viewer {i}'s video p99 one-way latency {} ms stays within a second", p99_ms(&s.video));
        }

        // 2. Its link recovers: it catches up and its timestamps still follow the host's clock.
        slow_link.set_rate(0);
        let mark = slow.inspect(|s| s.video.packets);
        until(Duration::from_secs(10), "the slow viewer recovers", || slow.inspect(|s| s.video.packets > mark + 300)).await?;
        // What was lost before the recovery may still be asked for (and given up on) for a
        // while: measure from the next keyframe interval on.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let start = first_host.video_sent();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = start..first_host.video_sent();
        let _ = until(Duration::from_secs(3), "the recovered viewer's stragglers", || slow.inspect(|s| share(&s.video, &after) >= 0.99)).await;
        let recovered = slow.inspect(|s| share(&s.video, &after));
        println!("after recovery the slow viewer got {:.2}% of video", recovered * 100.0);
        assert!(recovered >= 0.99, "the recovered viewer gets the stream again: {:.2}%", recovered * 100.0);

        // 3. The host restarts (new SSRCs, sequence and timestamp bases).
        first_host.close().await;
        until(Duration::from_secs(10), "room offline", || !server.status_board.status("slow").live).await?;
        let at_drop: Vec<u64> = all.iter().map(|v| v.inspect(|s| s.video.packets)).collect();
        // Off air for a second: a rewrite that bridged the gap with a fixed step instead of
        // the time that passed would put the second host's timestamps a second off.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let second_host = Publisher::connect(&base, "slow", PublishOptions::default()).await?;
        until(Duration::from_secs(15), "media from the second host", || {
            all.iter().zip(&at_drop).all(|(v, n)| v.inspect(|s| s.video.packets > n + 100 && s.video.publishers == 2))
        })
        .await?;

        // Over all three phases each viewer's timestamps stayed where the host's clock puts them.
        for (i, v) in all.iter().enumerate() {
            let s = v.stats();
            let (video_skew, audio_skew) = (Duration::from_micros(s.video.worst_ts_skew_us), Duration::from_micros(s.audio.worst_ts_skew_us));
            println!("viewer {i}: worst RTP timestamp skew from the host's clock: video {video_skew:?}, audio {audio_skew:?}");
            assert!(video_skew < TS_SKEW_LIMIT, "viewer {i}'s video timestamps jumped: {video_skew:?} off the host's clock");
            assert!(audio_skew < TS_SKEW_LIMIT, "viewer {i}'s audio timestamps jumped: {audio_skew:?} off the host's clock");
        }
        for v in others.into_iter().chain([slow]) {
            v.close().await;
        }
        second_host.close().await;
        server.shutdown().await;
        Ok(())
    })
    .await
}
