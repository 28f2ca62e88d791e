//! The synthetic stream both hosts send (the WHIP publisher and the plain-RTP source for
//! Janus): VP8-shaped frames at the planned bitrate and frame rate, keyframes every GOP and on
//! request, Opus-sized audio, and a trailer with counter and send time on every packet. The
//! loops are written once over `RtpSink`, so both servers are fed exactly the same stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::publisher::{PublishOptions, PublisherStats};
use crate::trailer::{now_us, Trailer, TRAILER_LEN};
use crate::vp8::{write_headers, FramePlan, KeyframeSchedule};

/// Where one track's packets go: a webrtc-rs track or a plain UDP socket.
#[async_trait::async_trait]
pub(crate) trait RtpSink: Send + Sync + 'static {
    fn ssrc(&self) -> u32;
    /// Send one packet; false once the sink is gone (the loop then ends).
    async fn send(&self, seq: u16, ts: u32, marker: bool, payload: Vec<u8>) -> bool;
}

/// RTP timestamp for `elapsed` at `clock_rate`, from a random base (media time follows the
/// wall clock even when a late tick is skipped).
pub(crate) fn media_time(base: u32, elapsed: Duration, clock_rate: u32) -> u32 {
    base.wrapping_add((elapsed.as_micros() * u128::from(clock_rate) / 1_000_000) as u32)
}

pub(crate) async fn send_video(out: impl RtpSink, opts: PublishOptions, stats: Arc<PublisherStats>) {
    let frame_every = Duration::from_secs_f64(1.0 / f64::from(opts.fps.max(1)));
    let plan = FramePlan {
        bitrate_bps: opts.bitrate_bps,
        fps: opts.fps,
        keyframe_every_frames: (opts.keyframe_interval.as_secs_f64() * f64::from(opts.fps)).round().max(1.0) as u32,
        max_payload: opts.max_payload,
    };
    let mut tick = tokio::time::interval(frame_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = tokio::time::Instant::now();
    let mut seq: u16 = (out.ssrc() >> 8) as u16 & 0x3fff;
    let ts_base: u32 = out.ssrc().rotate_left(7);
    let mut counter = 0u64;
    let mut keyframes = KeyframeSchedule::new(plan.keyframe_every_frames);
    loop {
        tick.tick().await;
        let key = keyframes.next_frame(stats.feedback.keyframe_requests.load(Ordering::Relaxed));
        let ts = media_time(ts_base, started.elapsed(), 90_000);
        let sizes = plan.packet_sizes(key);
        let last = sizes.len() - 1;
        for (i, size) in sizes.into_iter().enumerate() {
            let mut payload = vec![0u8; size.max(11 + TRAILER_LEN)];
            write_headers(&mut payload, i == 0, key, 640, 480);
            Trailer { counter, sent_us: now_us() }.write(&mut payload);
            if !out.send(seq, ts, i == last, payload).await {
                return;
            }
            counter += 1;
            seq = seq.wrapping_add(1);
            stats.video_packets.fetch_add(1, Ordering::Relaxed);
        }
        stats.video_frames.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) async fn send_audio(out: impl RtpSink, opts: PublishOptions, stats: Arc<PublisherStats>) {
    let every = Duration::from_secs_f64(1.0 / f64::from(opts.audio_pps.max(1)));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = tokio::time::Instant::now();
    let mut seq: u16 = (out.ssrc() >> 4) as u16 & 0x3fff;
    let ts_base: u32 = out.ssrc().rotate_left(3);
    for counter in 0u64.. {
        tick.tick().await;
        let ts = media_time(ts_base, started.elapsed(), 48_000);
        let mut payload = vec![0xfcu8; opts.audio_payload.max(TRAILER_LEN + 1)];
        Trailer { counter, sent_us: now_us() }.write(&mut payload);
        if !out.send(seq, ts, false, payload).await {
            return;
        }
        seq = seq.wrapping_add(1);
        stats.audio_packets.fetch_add(1, Ordering::Relaxed);
    }
}
