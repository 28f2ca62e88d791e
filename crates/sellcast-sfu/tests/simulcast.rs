//! Simulcast in the forwarding core, on virtual time: a host sending three VP8 layers, viewers
//! fitted to their estimates. Layer choice with hysteresis, switches only at the target
//! layer's keyframe, continuous numbers across a switch, pause and resume, a data-saver cap,
//! and keyframe requests throttled per layer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sellcast_sfu::{Codec, EstimateSource, Forwarder, ForwarderConfig, ForwarderEvent, LayerCap, MediaPacket, OutPacket, TrackKind, ViewerId};

/// Three layers: 320x180 at 150 kbit/s, 640x360 at 500 kbit/s, 1280x720 at 2 Mbit/s, 25 fps,
/// a keyframe on each layer every `gop` frames (or when asked).
struct Host {
    now: Instant,
    seq: [u64; 3],
    frame: u64,
    gop: u64,
    /// Bytes per frame per layer.
    frame_bytes: [usize; 3],
    sizes: [(u16, u16); 3],
    /// A keyframe was asked of this layer: the next frame on it is one.
    asked: [bool; 3],
}

impl Host {
    fn new(now: Instant, gop: u64) -> Self {
        Self {
            now,
            seq: [1_000, 20_000, 40_000],
            frame: 0,
            gop,
            frame_bytes: [150_000 / 8 / 25, 500_000 / 8 / 25, 2_000_000 / 8 / 25],
            sizes: [(320, 180), (640, 360), (1280, 720)],
            asked: [false; 3],
        }
    }

    /// One 40 ms frame on every layer (each split in 1000-byte packets), plus one audio packet.
    fn frame(&mut self, f: &mut Forwarder) {
        self.now += Duration::from_millis(40);
        let ts = (self.frame * 3600) as u32;
        for layer in 0..3 {
            let key = self.frame.is_multiple_of(self.gop) || std::mem::take(&mut self.asked[layer]);
            let packets = self.frame_bytes[layer].div_ceil(1000);
            for i in 0..packets {
                let mut payload = vec![0u8; 1000.min(self.frame_bytes[layer] - i * 1000).max(12)];
                payload[0] = if i == 0 { 0x10 } else { 0x00 };
                payload[1] = if key { 0x00 } else { 0x01 };
                if key && i == 0 {
                    let (w, h) = self.sizes[layer];
                    payload[4..7].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                    payload[7..9].copy_from_slice(&w.to_le_bytes());
                    payload[9..11].copy_from_slice(&h.to_le_bytes());
                }
                let packet = MediaPacket {
                    kind: TrackKind::Video,
                    seq: self.seq[layer],
                    timestamp: ts,
                    marker: i + 1 == packets,
                    payload: Arc::from(payload),
                    arrival: self.now,
                    layer: layer as u8,
                };
                self.seq[layer] += 1;
                f.handle_rtp(self.now, &packet);
            }
        }
        let audio = MediaPacket {
            kind: TrackKind::Audio,
            seq: 5_000 + self.frame,
            timestamp: (self.frame * 1920) as u32,
            marker: false,
            payload: Arc::from(vec![0xfc; 80]),
            arrival: self.now,
            layer: 0,
        };
        f.handle_rtp(self.now, &audio);
        self.frame += 1;
        if f.poll_timeout().is_some_and(|t| t <= self.now) {
            f.handle_timeout(self.now);
        }
        while let Some(ForwarderEvent::RequestKeyframe { layer }) = f.poll_event() {
            self.asked[usize::from(layer)] = true;
        }
    }

    fn run(&mut self, f: &mut Forwarder, seconds: u64, mut each: impl FnMut(&mut Forwarder, Instant)) {
        for _ in 0..seconds * 25 {
            self.frame(f);
            let now = self.now;
            each(f, now);
        }
    }
}

fn live() -> Forwarder {
    let mut f = Forwarder::new(ForwarderConfig::default());
    f.handle_publisher_start(&[Codec::Opus, Codec::Vp8]);
    f
}

fn drain(f: &mut Forwarder, id: ViewerId) -> Vec<OutPacket> {
    let v = f.viewer_mut(id).expect("viewer exists");
    std::iter::from_fn(|| v.pop_packet()).collect()
}

fn rank(f: &Forwarder, id: ViewerId) -> Option<u8> {
    f.viewer_report(id).and_then(|r| r.layer_rank)
}

fn is_key_start(p: &OutPacket) -> bool {
    p.payload[0] & 0x10 != 0 && p.payload[1] & 0x01 == 0
}

/// A host live for two seconds, so every layer is measured, then a viewer joins with this
/// transport estimate (refreshed every frame, as feedback keeps coming).
fn with_viewer(estimate_bps: Option<u64>) -> (Forwarder, Host, ViewerId) {
    let mut f = live();
    let mut host = Host::new(Instant::now(), 50);
    host.run(&mut f, 2, |_, _| {});
    let v = ViewerId(7);
    f.add_viewer(v);
    if let Some(bps) = estimate_bps {
        // As str0m's estimator does: its starting guess, then what feedback made of it.
        f.handle_viewer_estimate(host.now, v, EstimateSource::Twcc, 5_000_000);
        f.handle_viewer_estimate(host.now, v, EstimateSource::Twcc, bps);
    }
    f.handle_viewer_ready(host.now, v);
    (f, host, v)
}

#[test]
fn each_estimate_settles_on_the_highest_layer_that_fits() {
    for (estimate, expected) in [(None, 2), (Some(3_000_000), 2), (Some(1_200_000), 1), (Some(350_000), 0)] {
        let (mut f, mut host, v) = with_viewer(estimate);
        host.run(&mut f, 6, |f, _| {
            drain(f, v);
        });
        assert_eq!(rank(&f, v), Some(expected), "estimate {estimate:?}");
        let report = f.viewer_report(v).expect("viewer");
        assert!(!report.paused);
    }
}

#[test]
fn a_switch_happens_only_at_the_target_layers_keyframe_and_numbers_stay_continuous() {
    let (mut f, mut host, v) = with_viewer(Some(3_000_000));
    let mut out = Vec::new();
    host.run(&mut f, 6, |f, _| out.extend(drain(f, v)));
    assert_eq!(rank(&f, v), Some(2), "climbed from the start layer");
    // The link shrinks: the estimate falls under the middle layer.
    f.handle_viewer_estimate(host.now, v, EstimateSource::Twcc, 400_000);
    let before = out.len();
    host.run(&mut f, 4, |f, _| out.extend(drain(f, v)));
    assert_eq!(rank(&f, v), Some(0), "down to the quarter layer");
    let video: Vec<&OutPacket> = out.iter().filter(|p| p.kind == TrackKind::Video).collect();
    // Outgoing video is one unbroken sequence across the switch, and timestamps never go back.
    for pair in video.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "no gap or repeat in the outgoing sequence");
        assert!(pair[1].timestamp.wrapping_sub(pair[0].timestamp) < 90_000, "timestamps move forward");
    }
    // Every change of packet size class (a layer switch) begins on a keyframe.
    let after: Vec<&OutPacket> = out[before..].iter().filter(|p| p.kind == TrackKind::Video).collect();
    let first_small = after.iter().position(|p| p.payload.len() < 800).expect("the quarter layer arrives");
    assert!(is_key_start(after[first_small]), "the first quarter-layer packet starts a keyframe");
    assert_eq!(f.viewer_report(v).map(|r| r.switches), Some(2), "up from the start layer, then down");
}

#[test]
fn a_better_estimate_climbs_only_after_holding_and_a_wobble_does_not_flap() {
    let (mut f, mut host, v) = with_viewer(Some(700_000));
    host.run(&mut f, 5, |f, _| {
        drain(f, v);
    });
    assert_eq!(rank(&f, v), Some(1));
    // The estimate wobbles around the top layer's bitrate for 10 s: no step up.
    let mut high = false;
    host.run(&mut f, 10, |f, now| {
        high = !high;
        f.handle_viewer_estimate(now, v, EstimateSource::Twcc, if high { 3_000_000 } else { 1_500_000 });
        drain(f, v);
    });
    assert_eq!(rank(&f, v), Some(1), "a wobbling estimate does not climb");
    f.handle_viewer_estimate(host.now, v, EstimateSource::Twcc, 3_000_000);
    let start = host.now;
    let mut climbed_at = None;
    host.run(&mut f, 8, |f, _| {
        drain(f, v);
        if climbed_at.is_none() && rank(f, v) == Some(2) {
            climbed_at = Some(());
        }
    });
    assert_eq!(rank(&f, v), Some(2), "a steady estimate climbs");
    assert!(host.now.duration_since(start) >= Duration::from_secs(2));
    assert_eq!(f.viewer_report(v).map(|r| r.switches), Some(1), "one switch, no flapping");
}

#[test]
fn video_pauses_when_nothing_fits_audio_goes_on_and_video_resumes() {
    let (mut f, mut host, v) = with_viewer(Some(3_000_000));
    host.run(&mut f, 6, |f, _| {
        drain(f, v);
    });
    f.handle_viewer_estimate(host.now, v, EstimateSource::Twcc, 100_000);
    // The first second: the estimate fell but no loss is reported yet; then 30 % loss.
    host.run(&mut f, 1, |f, _| {
        drain(f, v);
    });
    assert!(!f.viewer_report(v).expect("viewer").paused, "a low estimate alone does not pause");
    host.run(&mut f, 5, |f, now| {
        f.handle_viewer_loss(now, v, 0.3);
        drain(f, v);
    });
    let report = f.viewer_report(v).expect("viewer");
    assert!(report.paused, "100 kbit/s fits no layer: paused");
    assert_eq!(report.pauses, 1);
    assert_eq!(f.paused_viewers(), 1);
    let mut out = Vec::new();
    host.run(&mut f, 2, |f, now| {
        f.handle_viewer_loss(now, v, 0.3);
        out.extend(drain(f, v))
    });
    assert!(out.iter().all(|p| p.kind == TrackKind::Audio), "no video while paused");
    assert!(out.len() >= 45, "audio keeps flowing ({} packets in 2 s)", out.len());
    f.handle_viewer_estimate(host.now, v, EstimateSource::Twcc, 3_000_000);
    let mut out = Vec::new();
    host.run(&mut f, 6, |f, _| out.extend(drain(f, v)));
    assert!(!f.viewer_report(v).expect("viewer").paused, "resumed");
    let first_video = out.iter().find(|p| p.kind == TrackKind::Video).expect("video again");
    assert!(is_key_start(first_video), "video resumes on a keyframe");
}

#[test]
fn an_estimate_just_short_of_the_lowest_layer_keeps_it_rather_than_pausing() {
    let (mut f, mut host, v) = with_viewer(Some(3_000_000));
    host.run(&mut f, 6, |f, _| {
        drain(f, v);
    });
    // 150 kbit/s of video and 64 of audio need 214 kbit/s; 190 is short of that, but well
    // above the pause threshold (three quarters of the layer), even with heavy loss.
    f.handle_viewer_estimate(host.now, v, EstimateSource::Twcc, 190_000);
    let mut out = Vec::new();
    host.run(&mut f, 8, |f, now| {
        f.handle_viewer_loss(now, v, 0.3);
        out.extend(drain(f, v));
    });
    let report = f.viewer_report(v).expect("viewer");
    assert!(!report.paused, "kept its picture");
    assert_eq!(report.pauses, 0);
    assert_eq!(rank(&f, v), Some(0), "on the lowest layer");
    assert!(out.iter().rev().take(50).any(|p| p.kind == TrackKind::Video), "video still flows");
}

#[test]
fn a_link_that_carries_the_lowest_layer_with_its_usual_loss_is_not_paused_on_a_low_estimate() {
    let (mut f, mut host, v) = with_viewer(Some(3_000_000));
    host.run(&mut f, 6, |f, _| {
        drain(f, v);
    });
    // The link overflowed once (the viewer was on a layer it could not carry), and a transport
    // estimator that reads the link's steady 2 % loss as congestion then says 100 kbit/s, far
    // below the lowest layer's 214. The lowest layer goes through with only the usual loss:
    // nothing overflows, so the viewer keeps its picture.
    f.handle_viewer_loss(host.now, v, 0.4);
    f.handle_viewer_estimate(host.now, v, EstimateSource::Twcc, 100_000);
    let mut next_report = host.now + Duration::from_secs(1);
    let mut out = Vec::new();
    host.run(&mut f, 10, |f, now| {
        if now >= next_report {
            f.handle_viewer_loss(now, v, 0.02);
            next_report = now + Duration::from_secs(1);
        }
        out.extend(drain(f, v));
    });
    let report = f.viewer_report(v).expect("viewer");
    assert_eq!(report.pauses, 0, "never paused");
    assert_eq!(rank(&f, v), Some(0), "on the lowest layer");
    assert!(out.iter().rev().take(50).any(|p| p.kind == TrackKind::Video), "video still flows");
}

#[test]
fn the_data_saver_cap_holds_the_lowest_layer_whatever_the_estimate() {
    let (mut f, mut host, v) = with_viewer(Some(5_000_000));
    host.run(&mut f, 6, |f, _| {
        drain(f, v);
    });
    assert_eq!(rank(&f, v), Some(2));
    f.set_viewer_cap(host.now, v, LayerCap { max_height: None, data_saver: true });
    host.run(&mut f, 4, |f, _| {
        drain(f, v);
    });
    assert_eq!(rank(&f, v), Some(0));
    f.set_viewer_cap(host.now, v, LayerCap { max_height: Some(400), data_saver: false });
    host.run(&mut f, 6, |f, _| {
        drain(f, v);
    });
    assert_eq!(rank(&f, v), Some(1), "a 400-pixel player gets the 360p layer");
}

#[test]
fn keyframe_requests_are_throttled_per_layer() {
    // No periodic keyframes: only requests produce them.
    let mut f = live();
    let mut host = Host::new(Instant::now(), u64::MAX);
    host.frame(&mut f); // frame 0 is a keyframe on every layer
    host.run(&mut f, 2, |_, _| {});
    let before = f.keyframe_requests_sent();
    // 30 viewers join over 3 s, each needing some layer; they ask a lot.
    for i in 0..30u64 {
        let v = ViewerId(100 + i);
        f.add_viewer(v);
        f.handle_viewer_estimate(host.now, v, EstimateSource::Twcc, [3_000_000, 700_000, 300_000][(i % 3) as usize]);
        f.handle_viewer_ready(host.now, v);
        for _ in 0..2 {
            f.handle_keyframe_request_from(host.now, v);
            host.frame(&mut f);
        }
    }
    let sent = f.keyframe_requests_sent() - before;
    // 2.4 s of joins, three layers, at most one request per layer per second (plus the first).
    assert!(sent <= 3 * 4, "{sent} keyframe requests for 30 joins");
    assert!(sent >= 3, "every layer was asked at least once ({sent})");
}

/// When a viewer climbed to the full layer and when it stepped back from it.
struct Climb {
    up: Option<Instant>,
    back: Option<Instant>,
}

/// A viewer with no bandwidth feedback climbs from the half layer to the full one, which its
/// link cannot carry. While on it, it NACKs on a timer (`nacks` every 250 ms: ten a second
/// while packets are missing) and its receiver reports, once a second, say 60 % is lost; after
/// the step back it goes on NACKing for `nacking_after` (what the overflow lost stays lost, its
/// resends being capped) and its next report covers the overflow too if `report_after`.
fn overflowing_climb(secs: u64, nacks: u64, nacking_after: Duration, report_after: bool) -> (Forwarder, Host, ViewerId, Climb) {
    let (mut f, mut host, v) = with_viewer(None);
    let mut climb = Climb { up: None, back: None };
    let mut next_report = host.now + Duration::from_secs(1);
    let mut next_counts = host.now + Duration::from_millis(250);
    host.run(&mut f, secs, |f, now| {
        drain(f, v);
        let on_top = rank(f, v) == Some(2);
        if on_top && climb.up.is_none() {
            climb.up = Some(now);
        }
        if climb.up.is_some() && !on_top && climb.back.is_none() {
            climb.back = Some(now);
        }
        let since_back = |d: Duration| climb.up.is_some() && climb.back.is_none_or(|b| now.saturating_duration_since(b) < d);
        if now >= next_counts {
            f.handle_viewer_nacks(now, v, if since_back(nacking_after) { nacks } else { 0 }, 60);
            next_counts = now + Duration::from_millis(250);
        }
        if now >= next_report {
            let lossy = since_back(if report_after { Duration::from_secs(1) } else { Duration::ZERO });
            f.handle_viewer_loss(now, v, if lossy { 0.6 } else { 0.0 });
            next_report = now + Duration::from_secs(1);
        }
    });
    assert!(climb.up.is_some(), "with nothing saying otherwise the viewer climbs to the full layer");
    (f, host, v, climb)
}

/// How long after the switch to the full layer the viewer stepped back, if within 6 s.
fn step_back_after_an_overflowing_climb(nacks: u64) -> Option<Duration> {
    let (_, _, _, climb) = overflowing_climb(14, nacks, Duration::ZERO, false);
    let (up, back) = (climb.up?, climb.back?);
    Some(back.saturating_duration_since(up)).filter(|d| *d <= Duration::from_secs(6))
}

#[test]
fn nacks_that_keep_coming_after_a_climb_step_the_viewer_back_within_two_and_a_half_seconds() {
    let back = step_back_after_an_overflowing_climb(3).expect("stepped back");
    assert!(back <= Duration::from_millis(2500), "stepped back {back:?} after the switch");
    // Without NACKs only the receiver reports tell, after the start's grace and two of them.
    let slow = step_back_after_an_overflowing_climb(0).expect("stepped back on the reports");
    assert!(slow > Duration::from_millis(2500), "the reports alone took {slow:?}");
    println!("stepped back {back:?} after the switch; on the reports alone {slow:?}");
}

#[test]
fn the_nacks_that_repair_a_joins_replayed_keyframe_group_cut_nothing() {
    // A viewer joins on the half layer, which its link carries; the replayed keyframe group (the
    // cached seconds of video, at once) overflows the link's queue and its repair NACKs for
    // seconds, and the first report says a third was lost.
    let (mut f, mut host, v) = with_viewer(None);
    let mut next_counts = host.now + Duration::from_millis(250);
    let joined = host.now;
    host.run(&mut f, 3, |f, now| {
        drain(f, v);
        if now >= next_counts {
            f.handle_viewer_nacks(now, v, 3, 30);
            next_counts = now + Duration::from_millis(250);
        }
        if now >= joined + Duration::from_secs(1) && now < joined + Duration::from_millis(1040) {
            f.handle_viewer_loss(now, v, 0.3);
        }
    });
    let report = f.viewer_report(v).expect("viewer");
    assert_eq!(report.estimate, None, "nothing cut on a join's burst: {report:?}");
    assert_eq!(rank(&f, v), Some(1), "still on the half layer");
}

#[test]
fn the_nacks_that_go_on_after_a_step_back_cut_nothing_more() {
    // The half layer fits: after the step back the viewer stays there, though it NACKs what the
    // overflow lost for 4 s more and its next report still covers the overflow.
    let (f, host, v, climb) = overflowing_climb(16, 3, Duration::from_secs(4), true);
    let back = climb.back.expect("stepped back");
    let report = f.viewer_report(v).expect("viewer");
    assert_eq!(report.pauses, 0, "{report:?}");
    assert_eq!(rank(&f, v), Some(1), "back on the half layer, which fits, {:?} after the step back: {report:?}", host.now.saturating_duration_since(back));
}
