//! The forwarder around its packets: host start, end and source reset, viewers joining,
//! leaving and overflowing, and the counters the driver reads. Virtual time only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sellcast_sfu::{Codec, DropReason, Forwarder, ForwarderConfig, ForwarderEvent, MediaPacket, OutPacket, TrackKind, ViewerId};

const KEY: [u8; 2] = [0x10, 0x00];
const DELTA: [u8; 2] = [0x10, 0x01];

fn packet(kind: TrackKind, seq: u64, timestamp: u32, payload: &[u8], arrival: Instant) -> MediaPacket {
    MediaPacket { kind, seq, timestamp, marker: false, payload: Arc::from(payload), arrival, layer: 0 }
}

fn live(config: ForwarderConfig) -> Forwarder {
    let mut f = Forwarder::new(config);
    f.handle_publisher_start(&[Codec::Opus, Codec::Vp8]);
    f
}

fn ready_viewer(f: &mut Forwarder, id: ViewerId, now: Instant) {
    f.add_viewer(id);
    f.handle_viewer_ready(now, id);
}

fn drain(f: &mut Forwarder, id: ViewerId) -> Vec<OutPacket> {
    let v = f.viewer_mut(id).expect("viewer exists");
    std::iter::from_fn(|| v.pop_packet()).collect()
}

fn events(f: &mut Forwarder) -> usize {
    std::iter::from_fn(|| f.poll_event()).filter(|e| *e == ForwarderEvent::RequestKeyframe { layer: 0 }).count()
}

#[test]
fn a_live_forwarder_knows_its_codecs_until_the_host_ends() {
    let mut f = Forwarder::new(ForwarderConfig::default());
    assert!(!f.is_live());
    f.handle_publisher_start(&[Codec::Opus, Codec::H264]);
    assert!(f.is_live());
    assert_eq!((f.codec(TrackKind::Audio), f.codec(TrackKind::Video)), (Some(Codec::Opus), Some(Codec::H264)));
    f.handle_publisher_end();
    assert!(!f.is_live());
    assert_eq!(f.codec(TrackKind::Video), None);
    f.handle_publisher_start(&[Codec::Opus]);
    assert!(f.is_live(), "audio only is live too");
    assert_eq!(f.codec(TrackKind::Video), None);
}

#[test]
fn after_the_host_ends_packets_are_dropped_viewers_stay_and_the_cache_is_empty() {
    let t0 = Instant::now();
    let mut f = live(ForwarderConfig::default());
    ready_viewer(&mut f, ViewerId(1), t0);
    f.handle_rtp(t0, &packet(TrackKind::Video, 1, 0, &KEY, t0));
    assert_eq!((f.received(), f.cached_keyframe_packets()), (1, 1));
    f.handle_publisher_end();
    assert_eq!(f.cached_keyframe_packets(), 0);
    f.handle_rtp(t0, &packet(TrackKind::Video, 2, 0, &DELTA, t0));
    f.handle_rtp(t0, &packet(TrackKind::Audio, 1, 0, &[1], t0));
    assert_eq!(f.drops().get(DropReason::NoTrack), 2);
    assert_eq!(f.received(), 1, "packets on no live track are not received");
    assert_eq!(f.viewer_count(), 1);
    assert_eq!(drain(&mut f, ViewerId(1)).len(), 1);
    f.handle_viewer_keyframe_request(t0 + Duration::from_secs(5));
    assert_eq!(events(&mut f), 1, "only the join asked, nobody asks an absent host");
}

#[test]
fn the_host_ending_resets_the_keyframe_throttle_for_the_next_host() {
    let t0 = Instant::now();
    let mut f = live(ForwarderConfig::default());
    f.handle_viewer_keyframe_request(t0);
    assert_eq!(events(&mut f), 1);
    f.handle_publisher_end();
    f.handle_publisher_start(&[Codec::Opus, Codec::Vp8]);
    f.handle_viewer_keyframe_request(t0 + Duration::from_millis(100));
    assert_eq!(events(&mut f), 1, "a new host is asked at once");
    assert_eq!(f.keyframe_requests_sent(), 2);
}

#[test]
fn a_source_reset_makes_viewers_wait_for_the_new_sources_keyframe() {
    let t0 = Instant::now();
    let mut f = live(ForwarderConfig::default());
    ready_viewer(&mut f, ViewerId(1), t0);
    f.handle_rtp(t0, &packet(TrackKind::Video, 10, 0, &KEY, t0));
    f.handle_rtp(t0, &packet(TrackKind::Video, 11, 0, &DELTA, t0));
    let before = drain(&mut f, ViewerId(1));
    assert_eq!(before.len(), 2);
    f.handle_source_reset();
    assert_eq!(f.cached_keyframe_packets(), 0, "the old source's group is useless");
    let t1 = t0 + Duration::from_millis(100);
    f.handle_rtp(t1, &packet(TrackKind::Video, 500, 77, &DELTA, t1));
    assert!(drain(&mut f, ViewerId(1)).is_empty(), "a delta of the new source cannot be decoded");
    assert_eq!(f.drops().get(DropReason::WaitingForKeyframe), 1);
    f.handle_rtp(t1, &packet(TrackKind::Video, 501, 77, &KEY, t1));
    let after = drain(&mut f, ViewerId(1));
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].seq, before[1].seq + 1, "the outgoing stream continues without a gap");
}

#[test]
fn a_removed_viewer_gets_nothing_and_others_keep_receiving() {
    let t0 = Instant::now();
    let mut f = live(ForwarderConfig::default());
    for id in 1..=3 {
        ready_viewer(&mut f, ViewerId(id), t0);
    }
    f.add_viewer(ViewerId(2));
    assert_eq!(f.viewer_count(), 3, "adding twice keeps one");
    f.remove_viewer(ViewerId(2));
    assert_eq!(f.viewer_count(), 2);
    assert!(f.viewer_mut(ViewerId(2)).is_none());
    f.handle_rtp(t0, &packet(TrackKind::Video, 1, 0, &KEY, t0));
    let ids: Vec<ViewerId> = f.viewers_mut().map(|v| v.id()).collect();
    assert_eq!(ids, vec![ViewerId(1), ViewerId(3)]);
    for id in [1, 3] {
        assert_eq!(drain(&mut f, ViewerId(id)).len(), 1);
    }
}

#[test]
fn a_viewer_receives_nothing_before_it_is_ready() {
    let t0 = Instant::now();
    let mut f = live(ForwarderConfig::default());
    f.add_viewer(ViewerId(1));
    assert_eq!(f.viewer_mut(ViewerId(1)).map(|v| v.is_ready()), Some(false));
    f.handle_rtp(t0, &packet(TrackKind::Audio, 1, 0, &[1], t0));
    assert_eq!(f.drops().get(DropReason::ViewerNotReady), 1);
    f.handle_viewer_ready(t0, ViewerId(1));
    let v = f.viewer_mut(ViewerId(1)).expect("viewer");
    assert!(v.is_ready());
    assert!(v.is_waiting_for_keyframe(), "no video yet");
    assert_eq!(v.queued(), 0);
}

#[test]
fn the_driver_sees_queued_and_forwarded_counts_per_viewer() {
    let t0 = Instant::now();
    let mut f = live(ForwarderConfig::default());
    ready_viewer(&mut f, ViewerId(1), t0);
    f.handle_rtp(t0, &packet(TrackKind::Video, 1, 0, &KEY, t0));
    f.handle_rtp(t0, &packet(TrackKind::Video, 2, 0, &DELTA, t0));
    f.handle_rtp(t0, &packet(TrackKind::Audio, 1, 0, &[1], t0));
    let v = f.viewer_mut(ViewerId(1)).expect("viewer");
    assert!(!v.is_waiting_for_keyframe());
    assert_eq!((v.queued(), v.forwarded()), (3, 0));
    assert!(v.pop_packet().is_some());
    assert!(v.pop_packet().is_some());
    assert_eq!((v.queued(), v.forwarded()), (1, 2));
    assert_eq!(f.received(), 3);
}

#[test]
fn audio_keeps_the_sources_gaps_and_timestamps() {
    // Loss upstream stays visible as a gap (the viewer may NACK it), and audio is never
    // re-anchored while its source goes on.
    let t0 = Instant::now();
    let mut f = live(ForwarderConfig::default());
    ready_viewer(&mut f, ViewerId(1), t0);
    for (i, seq) in [100u64, 101, 104].into_iter().enumerate() {
        let at = t0 + Duration::from_millis(500 * i as u64);
        f.handle_rtp(at, &packet(TrackKind::Audio, seq, 960 * seq as u32, &[1], at));
    }
    let out = drain(&mut f, ViewerId(1));
    let seqs: Vec<u64> = out.iter().map(|p| p.seq - out[0].seq).collect();
    let ts: Vec<u32> = out.iter().map(|p| p.timestamp.wrapping_sub(out[0].timestamp)).collect();
    assert_eq!(seqs, vec![0, 1, 4]);
    assert_eq!(ts, vec![0, 960, 960 * 4], "source timestamps, not wall time");
}

#[test]
fn one_viewer_overflowing_asks_the_host_for_a_keyframe_even_when_others_are_fine() {
    let t0 = Instant::now();
    let mut f = live(ForwarderConfig { viewer_queue_packets: 4, ..ForwarderConfig::default() });
    // The overflowing viewer is first, a healthy one after it.
    let (slow, fast) = (ViewerId(1), ViewerId(2));
    ready_viewer(&mut f, slow, t0);
    ready_viewer(&mut f, fast, t0);
    assert_eq!(events(&mut f), 1, "the two joins asked once: the second request was throttled");
    let t1 = t0 + Duration::from_secs(5);
    f.handle_rtp(t1, &packet(TrackKind::Video, 1, 0, &KEY, t1));
    for seq in 2..=5 {
        f.handle_rtp(t1, &packet(TrackKind::Video, seq, 0, &DELTA, t1));
        drain(&mut f, fast);
    }
    assert_eq!(f.drops().get(DropReason::ViewerQueueFull), 5, "4 queued and the one that did not fit");
    assert_eq!(events(&mut f), 1, "the slow viewer needs a keyframe");
}

#[test]
fn an_overflow_reuses_the_numbers_of_every_dropped_packet_of_each_kind() {
    let t0 = Instant::now();
    let mut f = live(ForwarderConfig { viewer_queue_packets: 3, ..ForwarderConfig::default() });
    let v = ViewerId(1);
    ready_viewer(&mut f, v, t0);
    let video = |seq, payload: &[u8]| packet(TrackKind::Video, seq, seq as u32 * 3000, payload, t0);
    let audio = |seq| packet(TrackKind::Audio, seq, seq as u32 * 960, &[1], t0);
    // Sent: video 1, audio 1. Queued then dropped: audio 2, video 2, audio 3; video 3 overflows.
    f.handle_rtp(t0, &video(1, &KEY));
    f.handle_rtp(t0, &audio(1));
    let sent = drain(&mut f, v);
    for p in [audio(2), video(2, &DELTA), audio(3), video(3, &DELTA)] {
        f.handle_rtp(t0, &p);
    }
    assert_eq!(f.viewer_mut(v).map(|x| x.queued()), Some(0), "the full queue was dropped");
    // Audio continues at once; video at the next keyframe. Neither shows a gap.
    f.handle_rtp(t0, &audio(4));
    f.handle_rtp(t0, &video(4, &KEY));
    let after = drain(&mut f, v);
    for kind in [TrackKind::Audio, TrackKind::Video] {
        let last_sent = sent.iter().rev().find(|p| p.kind == kind).map(|p| p.seq);
        let next = after.iter().find(|p| p.kind == kind).map(|p| p.seq);
        assert_eq!(next, last_sent.map(|s| s + 1), "{kind:?}");
    }
}

#[test]
fn an_overflow_by_a_packet_of_a_kind_with_nothing_queued_reuses_its_number() {
    let t0 = Instant::now();
    let mut f = live(ForwarderConfig { viewer_queue_packets: 2, ..ForwarderConfig::default() });
    let v = ViewerId(1);
    ready_viewer(&mut f, v, t0);
    f.handle_rtp(t0, &packet(TrackKind::Video, 1, 0, &KEY, t0));
    f.handle_rtp(t0, &packet(TrackKind::Audio, 1, 0, &[1], t0));
    let sent = drain(&mut f, v);
    // Two video packets fill the queue; audio 2 overflows it with no audio queued.
    f.handle_rtp(t0, &packet(TrackKind::Video, 2, 0, &DELTA, t0));
    f.handle_rtp(t0, &packet(TrackKind::Video, 3, 0, &DELTA, t0));
    f.handle_rtp(t0, &packet(TrackKind::Audio, 2, 960, &[1], t0));
    f.handle_rtp(t0, &packet(TrackKind::Audio, 3, 1920, &[1], t0));
    let after = drain(&mut f, v);
    let audio_before = sent.iter().find(|p| p.kind == TrackKind::Audio).map(|p| p.seq);
    assert_eq!(after.iter().map(|p| (p.kind, p.seq)).collect::<Vec<_>>(), vec![(TrackKind::Audio, audio_before.unwrap_or(0) + 1)]);
}
