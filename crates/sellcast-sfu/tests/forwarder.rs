//! Forwarder behaviours on virtual time: no sockets, no clock, no sleeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sellcast_sfu::{
    Codec, DropReason, Forwarder, ForwarderConfig, ForwarderEvent, MediaPacket, OutPacket,
    TrackKind, ViewerId,
};

/// A synthetic host: VP8 at 30 fps (3 packets a frame, a keyframe every `gop` frames) and
/// Opus every 20 ms, with arbitrary starting seq/ts like a real encoder.
struct Host {
    now: Instant,
    video_seq: u64,
    video_ts: u32,
    audio_seq: u64,
    audio_ts: u32,
    frame: u64,
    gop: u64,
}

impl Host {
    fn new(start: Instant, seq_base: u64, ts_base: u32, gop: u64) -> Self {
        Host {
            now: start,
            video_seq: seq_base,
            video_ts: ts_base,
            audio_seq: seq_base + 7_000,
            audio_ts: ts_base ^ 0x5555,
            frame: 0,
            gop,
        }
    }

    /// One 33 ms step: a video frame and (about) two audio packets.
    fn step(&mut self) -> Vec<MediaPacket> {
        let key = self.frame.is_multiple_of(self.gop);
        let mut out = Vec::new();
        for i in 0..3u8 {
            let descriptor = if i == 0 { 0x10 } else { 0x00 };
            let tag = if key { 0x00 } else { 0x01 };
            out.push(MediaPacket {
                kind: TrackKind::Video,
                seq: self.video_seq,
                timestamp: self.video_ts,
                marker: i == 2,
                payload: Arc::from(vec![descriptor, tag, i, 0x9d, 0x01, 0x2a]),
                arrival: self.now,
                layer: 0,
            });
            self.video_seq += 1;
        }
        for _ in 0..2 {
            out.push(MediaPacket {
                kind: TrackKind::Audio,
                seq: self.audio_seq,
                timestamp: self.audio_ts,
                marker: false,
                payload: Arc::from(vec![0xfc; 40]),
                arrival: self.now,
                layer: 0,
            });
            self.audio_seq += 1;
            self.audio_ts = self.audio_ts.wrapping_add(960);
        }
        self.frame += 1;
        self.video_ts = self.video_ts.wrapping_add(3000);
        self.now += Duration::from_micros(33_333);
        out
    }
}

fn live_forwarder() -> Forwarder {
    let mut f = Forwarder::new(ForwarderConfig::default());
    f.handle_publisher_start(&[Codec::Opus, Codec::Vp8]);
    f
}

fn drain(f: &mut Forwarder, id: ViewerId) -> Vec<OutPacket> {
    let v = f.viewer_mut(id).expect("viewer exists");
    std::iter::from_fn(|| v.pop_packet()).collect()
}

fn run(f: &mut Forwarder, host: &mut Host, steps: usize) {
    for _ in 0..steps {
        for p in host.step() {
            f.handle_rtp(p.arrival, &p);
        }
    }
}

fn of_kind(packets: &[OutPacket], kind: TrackKind) -> Vec<&OutPacket> {
    packets.iter().filter(|p| p.kind == kind).collect()
}

fn assert_contiguous(packets: &[&OutPacket]) {
    for w in packets.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "outgoing seq must have no gap or jump");
    }
}

fn starts_keyframe(p: &OutPacket) -> bool {
    Codec::Vp8.is_keyframe_start(&p.payload)
}

#[test]
fn seq_and_timestamp_continue_across_a_host_restart() {
    let t0 = Instant::now();
    let mut f = live_forwarder();
    let viewer = ViewerId(1);
    f.add_viewer(viewer);
    f.handle_viewer_ready(t0, viewer);
    let mut host = Host::new(t0, 40_000, 1_000_000, 30);
    run(&mut f, &mut host, 60);
    let before = drain(&mut f, viewer);

    // The host drops and comes back 2 s later with a new encoder: new seq and ts bases.
    f.handle_publisher_end();
    let back_at = host.now + Duration::from_secs(2);
    f.handle_publisher_start(&[Codec::Opus, Codec::Vp8]);
    let mut host2 = Host::new(back_at, 3, 77, 30);
    run(&mut f, &mut host2, 60);
    let after = drain(&mut f, viewer);

    for kind in [TrackKind::Video, TrackKind::Audio] {
        let (b, a) = (of_kind(&before, kind), of_kind(&after, kind));
        assert!(!a.is_empty(), "{kind:?} resumes after the restart");
        let all: Vec<&OutPacket> = b.iter().chain(a.iter()).copied().collect();
        assert_contiguous(&all);
        let last_before = b.last().expect("packets before");
        let first_after = a.first().expect("packets after");
        let clock = if kind == TrackKind::Video { 90_000 } else { 48_000 };
        let advance = first_after.timestamp.wrapping_sub(last_before.timestamp);
        // About 2 s of media clock passed: never backwards, never a wild jump.
        let expected = 2 * clock;
        assert!(
            advance > expected && advance < expected + clock / 5,
            "{kind:?} timestamp advanced {advance}, expected about {expected}"
        );
    }
    assert!(starts_keyframe(of_kind(&after, TrackKind::Video)[0]));
}

#[test]
fn late_viewer_gets_the_cached_keyframe_group_without_a_keyframe_request() {
    let t0 = Instant::now();
    let mut f = live_forwarder();
    let mut host = Host::new(t0, 100, 5, 60); // keyframe every 2 s
    run(&mut f, &mut host, 45); // 1.5 s in: 15 frames since the last keyframe

    let late = ViewerId(9);
    f.add_viewer(late);
    f.handle_viewer_ready(host.now, late);
    let replay = drain(&mut f, late);
    let video = of_kind(&replay, TrackKind::Video);
    assert_eq!(video.len(), 45 * 3, "the whole group since the keyframe is replayed");
    assert!(starts_keyframe(video[0]), "replay starts with the keyframe");
    assert_eq!(f.keyframe_requests_sent(), 0, "no PLI was needed");
    assert!(f.poll_event().is_none());
    assert!(replay.iter().all(|p| p.replay), "replayed packets are marked (the forward clock skips them)");

    // Live packets continue the replayed stream seamlessly.
    run(&mut f, &mut host, 5);
    let live = drain(&mut f, late);
    assert!(live.iter().all(|p| !p.replay), "live packets are not marked as replay");
    let all: Vec<&OutPacket> = video.into_iter().chain(of_kind(&live, TrackKind::Video)).collect();
    assert_contiguous(&all);
}

#[test]
fn a_hundred_joins_within_a_second_cost_at_most_one_keyframe_request() {
    let t0 = Instant::now();
    let mut f = live_forwarder();
    // Long GOP: the cache never holds a fresh keyframe group, so joins must ask the host.
    let mut host = Host::new(t0, 100, 5, 100_000);
    run(&mut f, &mut host, 120); // 4 s in, last keyframe at 0 s: too old to replay
    let mut requests = 0;
    for i in 0..100u64 {
        let id = ViewerId(1_000 + i);
        f.add_viewer(id);
        let at = host.now + Duration::from_millis(i * 9); // 100 joins over 0.9 s
        f.handle_viewer_ready(at, id);
        f.handle_viewer_keyframe_request(at); // and each viewer asks again itself
        f.handle_timeout(at);
        while let Some(ForwarderEvent::RequestKeyframe { layer: 0 }) = f.poll_event() {
            requests += 1;
        }
    }
    assert_eq!(requests, 1, "one PLI upstream for 100 joins in under a second");

    // The host answers with a keyframe: the pending request is satisfied, not re-sent.
    host.now += Duration::from_millis(900);
    host.frame = 0;
    run(&mut f, &mut host, 10);
    f.handle_timeout(host.now + Duration::from_secs(2));
    assert!(f.poll_event().is_none(), "a keyframe satisfied the deferred request");
    for i in 0..100u64 {
        let out = drain(&mut f, ViewerId(1_000 + i));
        let video = of_kind(&out, TrackKind::Video);
        assert!(starts_keyframe(video[0]), "every viewer starts at the keyframe");
    }
}

#[test]
fn deferred_keyframe_request_is_sent_once_the_interval_ends() {
    let t0 = Instant::now();
    let mut f = live_forwarder();
    let mut host = Host::new(t0, 1, 1, 100_000);
    run(&mut f, &mut host, 120);
    f.handle_viewer_keyframe_request(host.now);
    assert_eq!(f.poll_event(), Some(ForwarderEvent::RequestKeyframe { layer: 0 }));
    f.handle_viewer_keyframe_request(host.now + Duration::from_millis(10));
    assert_eq!(f.poll_event(), None, "throttled");
    let due = host.now + Duration::from_secs(1);
    assert!(f.poll_timeout().is_some_and(|t| t <= due), "a deferred request is scheduled");
    f.handle_timeout(due - Duration::from_millis(1));
    assert_eq!(f.poll_event(), None);
    f.handle_timeout(due);
    assert_eq!(f.poll_event(), Some(ForwarderEvent::RequestKeyframe { layer: 0 }));
}

#[test]
fn a_slow_viewer_is_isolated_and_restarts_from_a_keyframe() {
    let t0 = Instant::now();
    let config = ForwarderConfig {
        viewer_queue_packets: 100,
        ..ForwarderConfig::default()
    };
    let mut f = Forwarder::new(config);
    f.handle_publisher_start(&[Codec::Opus, Codec::Vp8]);
    let (fast, slow) = (ViewerId(1), ViewerId(2));
    for id in [fast, slow] {
        f.add_viewer(id);
        f.handle_viewer_ready(t0, id);
    }
    let mut host = Host::new(t0, 500, 9, 30);
    let mut fast_got = Vec::new();
    let mut sent = 0;
    for _ in 0..90 {
        for p in host.step() {
            f.handle_rtp(p.arrival, &p);
            sent += 1;
        }
        fast_got.extend(drain(&mut f, fast)); // the fast viewer keeps up; the slow one never drains
    }
    assert_eq!(fast_got.len(), sent, "the fast viewer lost nothing");
    assert_contiguous(&of_kind(&fast_got, TrackKind::Video));
    assert!(f.drops().get(DropReason::ViewerQueueFull) > 0, "the slow viewer's overflow is counted");
    assert!(f.viewer_mut(slow).map(|v| v.queued()).unwrap_or(0) <= 100, "its queue stays bounded");

    // The slow viewer catches up: it resumes at a keyframe with no sequence gap.
    let slow_backlog = drain(&mut f, slow);
    run(&mut f, &mut host, 31);
    let slow_after = drain(&mut f, slow);
    let video_after = of_kind(&slow_after, TrackKind::Video);
    assert!(starts_keyframe(video_after[0]), "restart begins with a keyframe");
    let all: Vec<&OutPacket> = of_kind(&slow_backlog, TrackKind::Video)
        .into_iter()
        .chain(video_after)
        .collect();
    assert_contiguous(&all);
}

#[test]
fn packets_without_a_live_track_are_counted_not_forwarded() {
    let t0 = Instant::now();
    let mut f = Forwarder::new(ForwarderConfig::default());
    f.add_viewer(ViewerId(1));
    f.handle_viewer_ready(t0, ViewerId(1));
    let mut host = Host::new(t0, 1, 1, 30);
    run(&mut f, &mut host, 2);
    assert_eq!(f.drops().get(DropReason::NoTrack), 10);
    assert!(drain(&mut f, ViewerId(1)).is_empty());
}
