//! Keyframe detection on each payload-descriptor layout the RFCs allow, malformed payloads,
//! and the codec facts the signalling side relies on.

use sellcast_sfu::{Codec, DropCounters, DropReason, TrackKind};

#[test]
fn codecs_have_their_rtp_names_clock_rates_and_kinds() {
    assert_eq!((Codec::Opus.name(), Codec::Opus.clock_rate(), Codec::Opus.kind()), ("opus", 48_000, TrackKind::Audio));
    assert_eq!((Codec::Vp8.name(), Codec::Vp8.clock_rate(), Codec::Vp8.kind()), ("VP8", 90_000, TrackKind::Video));
    assert_eq!((Codec::H264.name(), Codec::H264.clock_rate(), Codec::H264.kind()), ("H264", 90_000, TrackKind::Video));
    assert_eq!((TrackKind::Audio.index(), TrackKind::Video.index()), (0, 1));
}

#[test]
fn opus_packets_never_start_a_keyframe() {
    assert!(!Codec::Opus.is_keyframe_start(&[0x10, 0x00]));
    assert!(!Codec::Opus.is_keyframe_start(&[0x65]));
}

#[test]
fn vp8_plain_descriptor_reads_the_frame_tag_right_after_it() {
    assert!(Codec::Vp8.is_keyframe_start(&[0x10, 0x00]), "two bytes: descriptor and a key frame tag");
    // The byte after the tag must not be read as the tag (it would be, were X assumed).
    assert!(Codec::Vp8.is_keyframe_start(&[0x10, 0x00, 0x01]));
    assert!(!Codec::Vp8.is_keyframe_start(&[0x10]), "no frame tag");
}

#[test]
fn vp8_extended_descriptor_skips_exactly_the_fields_present() {
    // X=1,S=1 then the extension byte, each optional field set to an odd value so that
    // reading it as the frame tag would say "delta frame".
    assert!(Codec::Vp8.is_keyframe_start(&[0x90, 0x00, 0x00]), "no optional fields");
    assert!(Codec::Vp8.is_keyframe_start(&[0x90, 0x80, 0x05, 0x00]), "I: one-byte picture id");
    assert!(Codec::Vp8.is_keyframe_start(&[0x90, 0x80, 0x81, 0x03, 0x00]), "I+M: two-byte picture id");
    assert!(Codec::Vp8.is_keyframe_start(&[0x90, 0x40, 0x01, 0x00]), "L: TL0PICIDX");
    assert!(Codec::Vp8.is_keyframe_start(&[0x90, 0x20, 0x01, 0x00]), "T: TID byte");
    assert!(Codec::Vp8.is_keyframe_start(&[0x90, 0x10, 0x01, 0x00]), "K: KEYIDX byte");
    assert!(Codec::Vp8.is_keyframe_start(&[0x90, 0xf0, 0x81, 0x03, 0x01, 0x01, 0x00]), "all of them");
    assert!(!Codec::Vp8.is_keyframe_start(&[0x90, 0xf0, 0x81, 0x03, 0x01, 0x01, 0x01]), "all of them, delta frame");
    assert!(!Codec::Vp8.is_keyframe_start(&[0x90, 0x40, 0x00]), "truncated before the tag");
}

#[test]
fn h264_stap_a_finds_a_key_nal_after_other_units() {
    // STAP-A: a 3-byte non-IDR slice, then a 2-byte IDR slice.
    assert!(Codec::H264.is_keyframe_start(&[0x78, 0x00, 0x03, 0x41, 0x9a, 0x11, 0x00, 0x02, 0x65, 0x88]));
    // Same with a 2-byte first unit.
    assert!(Codec::H264.is_keyframe_start(&[0x78, 0x00, 0x02, 0x41, 0x9a, 0x00, 0x02, 0x65, 0x88]));
    assert!(!Codec::H264.is_keyframe_start(&[0x78, 0x00, 0x02, 0x41, 0x9a, 0x00, 0x02, 0x41, 0x88]), "no key unit");
}

#[test]
fn h264_truncated_stap_a_is_not_a_keyframe_and_never_reads_past_the_end() {
    assert!(!Codec::H264.is_keyframe_start(&[0x78]));
    assert!(!Codec::H264.is_keyframe_start(&[0x78, 0x00]));
    assert!(!Codec::H264.is_keyframe_start(&[0x78, 0x00, 0x01]), "a size with no unit after it");
    assert!(!Codec::H264.is_keyframe_start(&[0x78, 0x00, 0x02, 0x41, 0x9a, 0x00]));
    assert!(!Codec::H264.is_keyframe_start(&[0x7c]), "FU-A without its header");
    assert!(Codec::H264.is_keyframe_start(&[0x67, 0x42]), "SPS alone");
}

#[test]
fn drop_counters_count_each_reason_separately() {
    let mut drops = DropCounters::default();
    for (n, reason) in DropReason::ALL.iter().enumerate() {
        for _ in 0..=n {
            drops.record(*reason);
        }
    }
    let counted: Vec<(DropReason, u64)> = drops.iter().collect();
    assert_eq!(
        counted,
        vec![
            (DropReason::NoTrack, 1),
            (DropReason::WaitingForKeyframe, 2),
            (DropReason::ViewerQueueFull, 3),
            (DropReason::ViewerNotReady, 4),
            (DropReason::TooOld, 5),
        ]
    );
    assert_eq!(drops.get(DropReason::TooOld), 5);
    assert_eq!(drops.total(), 15);
}

#[test]
fn drop_reasons_have_stable_metric_names() {
    let names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(names, vec!["no_track", "waiting_for_keyframe", "viewer_queue_full", "viewer_not_ready", "too_old"]);
}
