//! The forwarder's parts on their own, on virtual time: the keyframe cache's group and age
//! rules, the keyframe requester's throttle, and the munger's anchoring and rewinding.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sellcast_sfu::{KeyframeCache, KeyframeRequester, MediaPacket, RtpMunger, TrackKind};

fn video(seq: u64, timestamp: u32, arrival: Instant) -> MediaPacket {
    MediaPacket { kind: TrackKind::Video, seq, timestamp, marker: false, payload: Arc::from(vec![0u8; 4]), arrival, layer: 0 }
}

#[test]
fn a_keyframe_with_a_new_timestamp_opens_a_new_group() {
    let t0 = Instant::now();
    let mut cache = KeyframeCache::new(100, Duration::from_secs(3));
    assert!(cache.is_empty());
    cache.handle_packet(&video(1, 1000, t0), false);
    assert!(cache.is_empty(), "nothing is cached before the first keyframe");
    cache.handle_packet(&video(2, 1000, t0), true);
    cache.handle_packet(&video(3, 4000, t0), false);
    assert_eq!(cache.len(), 2);
    assert!(!cache.is_empty());
    cache.handle_packet(&video(4, 7000, t0), true);
    cache.handle_packet(&video(5, 7000, t0), false);
    let seqs: Vec<u64> = cache.replayable(t0).expect("a group").iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![4, 5]);
}

#[test]
fn several_keyframe_starts_of_one_frame_stay_one_group() {
    // H.264 sends SPS, PPS and the IDR slice as separate key units with one timestamp.
    let t0 = Instant::now();
    let mut cache = KeyframeCache::new(100, Duration::from_secs(3));
    for seq in 1..=3 {
        cache.handle_packet(&video(seq, 9000, t0), true);
    }
    cache.handle_packet(&video(4, 12000, t0), false);
    let seqs: Vec<u64> = cache.replayable(t0).expect("a group").iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
}

#[test]
fn a_group_is_replayable_up_to_its_maximum_age_inclusive() {
    let t0 = Instant::now();
    let max_age = Duration::from_secs(3);
    let mut cache = KeyframeCache::new(100, max_age);
    assert!(cache.replayable(t0).is_none(), "nothing cached");
    cache.handle_packet(&video(1, 0, t0), true);
    assert!(cache.replayable(t0 + max_age).is_some(), "exactly the maximum age");
    assert!(cache.replayable(t0 + max_age + Duration::from_nanos(1)).is_none(), "older");
}

#[test]
fn an_overlong_group_is_dropped_until_the_next_keyframe() {
    let t0 = Instant::now();
    let mut cache = KeyframeCache::new(3, Duration::from_secs(3));
    cache.handle_packet(&video(1, 0, t0), true);
    cache.handle_packet(&video(2, 0, t0), false);
    cache.handle_packet(&video(3, 0, t0), false);
    assert_eq!(cache.len(), 3);
    cache.handle_packet(&video(4, 0, t0), false);
    assert!(cache.replayable(t0).is_none());
    assert_eq!(cache.len(), 0);
    cache.handle_packet(&video(5, 0, t0), false);
    assert_eq!(cache.len(), 0, "nothing until a keyframe");
    cache.handle_packet(&video(6, 3000, t0), true);
    assert_eq!(cache.replayable(t0).map(<[MediaPacket]>::len), Some(1));
}

#[test]
fn a_cleared_cache_replays_nothing_and_waits_for_a_keyframe() {
    let t0 = Instant::now();
    let mut cache = KeyframeCache::new(100, Duration::from_secs(3));
    cache.handle_packet(&video(1, 0, t0), true);
    cache.clear();
    assert!(cache.replayable(t0).is_none());
    cache.handle_packet(&video(2, 0, t0), false);
    assert!(cache.is_empty());
}

#[test]
fn the_requester_sends_at_once_then_defers_within_the_interval_and_counts_what_it_sent() {
    let t0 = Instant::now();
    let second = Duration::from_secs(1);
    let mut r = KeyframeRequester::new(second);
    assert_eq!(r.poll_timeout(), None);
    assert!(r.handle_request(t0));
    assert!(!r.handle_request(t0 + Duration::from_millis(999)), "throttled");
    assert_eq!(r.poll_timeout(), Some(t0 + second));
    assert!(r.handle_timeout(t0 + second));
    assert!(!r.handle_timeout(t0 + second), "sent once");
    assert!(r.handle_request(t0 + 2 * second));
    assert_eq!(r.sent(), 3);
}

#[test]
fn a_reset_requester_asks_a_new_host_at_once_and_forgets_the_pending_request() {
    let t0 = Instant::now();
    let mut r = KeyframeRequester::new(Duration::from_secs(1));
    assert!(r.handle_request(t0));
    assert!(!r.handle_request(t0 + Duration::from_millis(10)));
    r.reset();
    assert_eq!(r.poll_timeout(), None, "nothing pending");
    assert!(r.handle_request(t0 + Duration::from_millis(20)), "a new host was never asked");
    assert_eq!(r.sent(), 2);
}

#[test]
fn a_keyframe_satisfies_a_pending_request() {
    let t0 = Instant::now();
    let mut r = KeyframeRequester::new(Duration::from_secs(1));
    assert!(r.handle_request(t0));
    assert!(!r.handle_request(t0));
    r.handle_keyframe();
    assert_eq!(r.poll_timeout(), None);
    assert!(!r.handle_timeout(t0 + Duration::from_secs(5)));
}

#[test]
fn an_unanchored_munger_rewrites_nothing_until_anchored_again() {
    let t0 = Instant::now();
    let mut m = RtpMunger::new(90_000, 100);
    assert_eq!(m.next_seq(), 100);
    m.anchor(1, &video(5000, 0, t0));
    assert!(m.is_anchored_to(1));
    assert!(!m.is_anchored_to(2));
    assert_eq!(m.rewrite(&video(5000, 0, t0)), Ok((100, 0)));
    assert_eq!(m.next_seq(), 101);
    m.unanchor();
    assert!(!m.is_anchored_to(1));
    assert!(m.rewrite(&video(5001, 0, t0)).is_err());
}

#[test]
fn rewinding_reuses_unsent_numbers_but_never_moves_forward() {
    let t0 = Instant::now();
    let mut m = RtpMunger::new(90_000, 100);
    m.anchor(1, &video(0, 0, t0));
    for seq in 0..5 {
        assert!(m.rewrite(&video(seq, 0, t0)).is_ok());
    }
    assert_eq!(m.next_seq(), 105);
    m.rewind_to(110);
    assert_eq!(m.next_seq(), 105, "a rewind forward is ignored");
    m.rewind_to(105);
    assert_eq!(m.next_seq(), 105);
    m.rewind_to(102);
    assert_eq!(m.next_seq(), 102);
    // The next stream continues from the first unsent number.
    m.anchor(2, &video(900, 0, t0 + Duration::from_millis(40)));
    assert_eq!(m.rewrite(&video(900, 0, t0 + Duration::from_millis(40))).map(|(s, _)| s), Ok(102));
}
