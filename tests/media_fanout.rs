//! Two independent WebRTC stacks: a webrtc-rs publisher sends synthetic VP8 + Opus over WHIP to
//! the str0m-based server, and 20 webrtc-rs viewers receive it over WHEP.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use sellcast_peer::{PublishOptions, Publisher, Viewer};

const VIEWERS: usize = 20;

async fn server() -> Result<(sellcast_server::RunningServer, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let s = sellcast_server::start(sellcast_server::Config::local(dir.path().join("sellcast.db"))).await?;
    Ok((s, dir))
}

/// Poll `cond` every 20 ms until true or `limit` passes.
async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_viewers_receive_the_publisher() -> Result<()> {
    let (server, _dir) = server().await?;
    let base = format!("http://{}", server.http_addr);
    let publisher = Publisher::connect(&base, "fanout", PublishOptions::default()).await?;
    let mut viewers = Vec::new();
    for _ in 0..VIEWERS {
        viewers.push(Viewer::connect(&base, "fanout", None).await?);
    }
    until(Duration::from_secs(20), "every viewer receives video", || viewers.iter().all(|v| v.stats().video.packets > 0)).await?;

    // Measure a window of 6 s of media: every packet the publisher sent in it must arrive.
    let sent_before = (publisher.video_sent(), publisher.audio_sent());
    tokio::time::sleep(Duration::from_secs(6)).await;
    let sent_after = (publisher.video_sent(), publisher.audio_sent());
    // Let in-flight packets land (bounded), then compare the counter ranges.
    let video_range = sent_before.0..sent_after.0;
    let audio_range = sent_before.1..sent_after.1;
    let need_video = (video_range.end - video_range.start) as f64;
    let need_audio = (audio_range.end - audio_range.start) as f64;
    assert!(need_video > 1000.0, "the publisher really sent ({need_video} video packets)");
    let complete = |v: &Viewer| {
        let s = v.stats();
        let got_v = s.video.counters.range(video_range.clone()).count() as f64;
        let got_a = s.audio.counters.range(audio_range.clone()).count() as f64;
        got_v / need_video >= 0.99 && got_a / need_audio >= 0.99
    };
    let _ = until(Duration::from_secs(3), "stragglers", || viewers.iter().all(complete)).await;
    let mut first_frame_ms = Vec::new();
    for (i, v) in viewers.iter().enumerate() {
        let s = v.stats();
        let got_v = s.video.counters.range(video_range.clone()).count() as f64 / need_video;
        let got_a = s.audio.counters.range(audio_range.clone()).count() as f64 / need_audio;
        assert!(got_v >= 0.99, "viewer {i} got {:.2}% of video", got_v * 100.0);
        assert!(got_a >= 0.99, "viewer {i} got {:.2}% of audio", got_a * 100.0);
        assert_eq!(s.first_video_is_keyframe, Some(true), "viewer {i}'s first video packet begins a keyframe: {:?}", s.first_video);
        assert_eq!(s.video.duplicates, 0, "viewer {i} got duplicates");
        first_frame_ms.push(s.first_video_after.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN));
    }
    println!(
        "first_frame_ms viewers={VIEWERS} p50={:.1} p99={:.1}",
        percentile(first_frame_ms.clone(), 0.5),
        percentile(first_frame_ms, 0.99)
    );
    for v in viewers {
        v.close().await;
    }
    publisher.close().await;
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_viewers_get_the_host_and_seq_continues_across_a_host_restart() -> Result<()> {
    let (server, _dir) = server().await?;
    let base = format!("http://{}", server.http_addr);
    // Viewers join an empty room first.
    let viewer = Viewer::connect(&base, "restart", None).await?;
    let first = Publisher::connect(&base, "restart", PublishOptions::default()).await?;
    until(Duration::from_secs(15), "media after the host went live", || viewer.stats().video.packets > 100).await?;
    let before = viewer.stats();
    assert_eq!(before.first_video_is_keyframe, Some(true));
    first.close().await;
    until(Duration::from_secs(10), "room offline", || !server.directory.status("restart").live).await?;
    let at_drop = viewer.stats().video.packets;

    // A new host session (new SSRC, new seq and timestamp bases) in the same room.
    let second = Publisher::connect(&base, "restart", PublishOptions::default()).await?;
    until(Duration::from_secs(15), "media after the host came back", || viewer.stats().video.packets > at_drop + 100).await?;
    let after = viewer.stats();
    assert_eq!(after.video.seq_jumps, 0, "the viewer's video seq never jumped across the restart");
    assert_eq!(after.audio.seq_jumps, 0, "nor the audio seq");
    viewer.close().await;
    second.close().await;
    server.shutdown().await;
    Ok(())
}

