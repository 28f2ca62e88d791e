//! What the server negotiates with publishers and viewers that number their payload types
//! their own way (OBS/libdatachannel: H264 on 96), offer several H264 profiles, or bundle
//! sections with port 0 (GStreamer). A str0m client stands in for them; no sockets.

use std::net::SocketAddr;
use std::time::Instant;

use sellcast_sfu::{Codec, TrackKind};
use str0m::format::Codec as WireCodec;
use str0m::media::{Direction, MediaKind, Pt};
use str0m::{Candidate, Rtc};

use super::offer::{plan_publish, CodecPolicy};
use super::peer::{choose_out_pts, Accepted, PeerFactory};
use super::video_format::{H264Format, RoomFormat, VideoFormat};

fn factory() -> PeerFactory {
    let provider = str0m::crypto::from_feature_flags();
    let cert = provider.dtls_provider.generate_certificate().expect("a DTLS certificate");
    PeerFactory { cert, candidate_addr: addr(1), timeouts: Default::default(), bwe: true, transport_estimator: false }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An offer from a client with exactly these codec entries: (pt, H264 mode-1?, profile-level-id)
/// for H264, VP8 on 100 when `vp8`, Opus on 111.
fn offer(direction: Direction, h264: &[(u8, bool, u32)], vp8: bool) -> String {
    let mut builder = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false);
    for (pt, mode1, id) in h264 {
        builder.codec_config().add_h264((*pt).into(), None, *mode1, *id);
    }
    if vp8 {
        builder.codec_config().add_config(100.into(), None, WireCodec::Vp8, str0m::media::Frequency::NINETY_KHZ, None, Default::default());
    }
    let mut client = builder.build(Instant::now());
    client.add_local_candidate(Candidate::host(addr(2), "udp").expect("candidate"));
    let mut change = client.sdp_api();
    change.add_media(MediaKind::Audio, direction, None, None, None);
    change.add_media(MediaKind::Video, direction, None, None, None);
    let (offer, _pending) = change.apply().expect("an offer");
    offer.to_sdp_string()
}

fn h264_room(id: u32, mode: u8) -> RoomFormat {
    RoomFormat { audio: Some(Codec::Opus), video: Some(VideoFormat::h264(H264Format { profile_level_id: id, packetization_mode: mode })) }
}

fn video_pts_in_answer(answer: &str) -> Vec<String> {
    answer.lines().filter(|l| l.starts_with("a=rtpmap:") && (l.contains("H264") || l.contains("VP8"))).map(String::from).collect()
}

#[test]
fn obs_style_h264_publisher_is_read_on_its_own_payload_type() {
    let sdp = offer(Direction::SendOnly, &[(96, true, 0x42e01f)], false);
    let plan = plan_publish(&sdp, CodecPolicy::Auto).expect("plan");
    let accepted = factory().accept(Instant::now(), Some(&plan), &sdp).expect("accepted");
    assert_eq!(video_pts_in_answer(&accepted.answer), vec!["a=rtpmap:96 H264/90000".to_string()]);
    let video: Vec<_> = accepted.negotiated.iter().filter(|n| n.codec.kind() == TrackKind::Video).collect();
    assert_eq!(video.len(), 1, "{:?}", accepted.negotiated);
    assert_eq!((video[0].pt, video[0].codec), (Pt::from(96), Codec::H264));
    assert!(accepted.negotiated.iter().any(|n| n.pt == Pt::from(111) && n.codec == Codec::Opus));
}

#[test]
fn a_host_offering_many_h264_profiles_is_answered_with_the_one_the_room_carries() {
    let sdp = offer(Direction::SendOnly, &[(102, true, 0x42001f), (104, false, 0x42e01f), (106, true, 0x42e01f), (108, true, 0x640c1f)], false);
    let plan = plan_publish(&sdp, CodecPolicy::Auto).expect("plan");
    assert_eq!(plan.h264.map(|h| h.pt), Some(106), "constrained baseline, mode 1");
    let accepted = factory().accept(Instant::now(), Some(&plan), &sdp).expect("accepted");
    assert_eq!(video_pts_in_answer(&accepted.answer), vec!["a=rtpmap:106 H264/90000".to_string()]);
}

fn viewer(h264: &[(u8, bool, u32)], vp8: bool) -> Accepted {
    factory().accept(Instant::now(), None, &offer(Direction::RecvOnly, h264, vp8)).expect("accepted")
}

#[test]
fn each_h264_viewer_is_sent_on_its_own_compatible_payload_type() {
    let obs = h264_room(0x42e01f, 1);
    // libdatachannel / werift style: H264 on 96.
    let v = viewer(&[(96, true, 0x42e01f)], false);
    assert_eq!(choose_out_pts(&v.negotiated, v.has_video, &obs), Ok([Some(Pt::from(111)), Some(Pt::from(96))]));
    // A browser-like list: mode 0 and mode 1 of two profiles; the mode-1 CB entry wins.
    let v = viewer(&[(102, true, 0x42001f), (127, false, 0x42001f), (125, true, 0x42e01f), (108, false, 0x42e01f)], true);
    assert_eq!(choose_out_pts(&v.negotiated, v.has_video, &obs).map(|p| p[1]), Ok(Some(Pt::from(125))));
    // Only baseline mode 1: baseline decoders take constrained baseline.
    let v = viewer(&[(97, true, 0x42001f)], false);
    assert_eq!(choose_out_pts(&v.negotiated, v.has_video, &obs).map(|p| p[1]), Ok(Some(Pt::from(97))));
    // High profile (640c1f) takes a high room and a constrained-baseline room.
    let v = viewer(&[(98, true, 0x640c1f)], false);
    assert_eq!(choose_out_pts(&v.negotiated, v.has_video, &h264_room(0x640c1f, 1)).map(|p| p[1]), Ok(Some(Pt::from(98))));
    assert_eq!(choose_out_pts(&v.negotiated, v.has_video, &obs).map(|p| p[1]), Ok(Some(Pt::from(98))));
    // Main profile (4d001f).
    let v = viewer(&[(99, true, 0x4d001f)], false);
    assert_eq!(choose_out_pts(&v.negotiated, v.has_video, &h264_room(0x4d001f, 1)).map(|p| p[1]), Ok(Some(Pt::from(99))));
    // Packetization mode 0 only: a mode-0 room, not a mode-1 room.
    let v = viewer(&[(101, false, 0x42e01f)], false);
    assert_eq!(choose_out_pts(&v.negotiated, v.has_video, &h264_room(0x42e01f, 0)).map(|p| p[1]), Ok(Some(Pt::from(101))));
    assert!(choose_out_pts(&v.negotiated, v.has_video, &obs).is_err());
}

#[test]
fn a_viewer_that_cannot_decode_the_room_video_is_told_why() {
    let vp8_only = viewer(&[], true);
    let why = choose_out_pts(&vp8_only.negotiated, vp8_only.has_video, &h264_room(0x42e01f, 1)).expect_err("no H264");
    assert!(why.contains("H264 (profile-level-id 42e01f, packetization-mode 1)") && why.contains("VP8"), "{why}");
    let baseline_only = viewer(&[(96, true, 0x42e01f)], false);
    let why = choose_out_pts(&baseline_only.negotiated, baseline_only.has_video, &h264_room(0x640c1f, 1)).expect_err("cannot decode high");
    assert!(why.contains("640c1f"), "{why}");
    let h264_only = viewer(&[(96, true, 0x42e01f)], false);
    let vp8_room = RoomFormat { audio: Some(Codec::Opus), video: Some(VideoFormat::vp8()) };
    assert!(choose_out_pts(&h264_only.negotiated, h264_only.has_video, &vp8_room).is_err());
}

#[test]
fn a_bundle_only_section_with_port_zero_is_answered_live() {
    let sdp = offer(Direction::SendOnly, &[], true);
    // Max-bundle as GStreamer writes it: the second section has port 0 and a=bundle-only.
    let mut seen_video = false;
    let bundled: String = sdp
        .split_inclusive("\r\n")
        .flat_map(|line| {
            if line.starts_with("m=video ") {
                seen_video = true;
                let rest = line.splitn(3, ' ').nth(2).unwrap_or_default();
                vec![format!("m=video 0 {rest}"), "a=bundle-only\r\n".to_string()]
            } else {
                vec![line.to_string()]
            }
        })
        .collect();
    assert!(seen_video && bundled.contains("m=video 0 ") && bundled.contains("a=bundle-only"), "{bundled}");
    let plan = plan_publish(&bundled, CodecPolicy::Auto).expect("plan");
    assert_eq!(plan.video, Some(VideoFormat::vp8()));
    let accepted = factory().accept(Instant::now(), Some(&plan), &bundled).expect("accepted");
    let video_line = accepted.answer.lines().find(|l| l.starts_with("m=video")).expect("video m-line");
    assert!(!video_line.starts_with("m=video 0 "), "answered as rejected: {video_line}");
    assert!(accepted.negotiated.iter().any(|n| n.codec == Codec::Vp8));
}
