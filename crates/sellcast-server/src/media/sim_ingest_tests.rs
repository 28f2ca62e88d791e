//! A host publishing SSRC-only simulcast (`a=ssrc-group:SIM`, no rids) has each layer's packets
//! placed in its own layer slot, in the group's order, on virtual time and without sockets:
//! the server's str0m instance is built as production builds it for a host (`plan_publish`,
//! `PeerFactory::accept`), the host is a second str0m instance sending on three SSRCs, and the
//! test shuttles datagrams between them. Control run: without `set_sim_ssrcs` in `Peer::new`
//! the three SSRCs read as one stream restarting, and this test fails.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sellcast_room::{Identity, Role as RoomRole};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind, Mid, Rid};
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Candidate, Rtc};

use super::driver::PeerEvent;
use super::memory_pair::{addr, factory, MemoryPair};
use super::offer::{plan_publish, CodecPolicy, SessionKind};
use super::peer::{Peer, PeerId};

const SERVER: &str = "127.0.0.1:5000";
const HOST: &str = "127.0.0.1:6000";
/// The host's three layers, lowest first.
const LAYERS: [u32; 3] = [0x5151_0001, 0x5151_0002, 0x5151_0003];

/// The host's offer as an SDP-munging sender writes SSRC-only simulcast: its video section
/// declares the three layers' SSRCs and a SIM group of them, and names no rids (the rid header
/// extensions are taken out, so its packets carry none). The str0m host's own video stream
/// stays unused.
fn with_sim_group(offer: &str) -> String {
    let video_at = offer.find("m=video").expect("a video section");
    let end = offer[video_at..].find("\r\nm=").map_or(offer.len(), |i| video_at + i + 2);
    let mut extra = format!("a=ssrc-group:SIM {} {} {}\r\n", LAYERS[0], LAYERS[1], LAYERS[2]);
    for ssrc in LAYERS {
        extra.push_str(&format!("a=ssrc:{ssrc} cname:sim-host\r\n"));
    }
    let munged = format!("{}{}{}", &offer[..end], extra, &offer[end..]);
    munged.split_inclusive('\n').filter(|l| !l.contains("rtp-stream-id")).collect()
}

struct Link {
    pair: MemoryPair,
    video_mid: Mid,
    /// Per layer slot: the packets the server's translation gave it, and the name it announced.
    layers: BTreeMap<u8, (usize, Option<Arc<str>>)>,
    resets: usize,
}

impl Link {
    fn new() -> Link {
        let now = Instant::now();
        let mut host = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_vp8(true).enable_opus(true, false).build(now);
        host.add_local_candidate(Candidate::host(addr(HOST), "udp").expect("candidate"));
        let mut change = host.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video_mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().expect("an offer");
        let sent = with_sim_group(&offer.to_sdp_string());

        let plan = plan_publish(&sent, CodecPolicy::Auto).expect("a valid host offer");
        let mut accepted = factory(addr(SERVER)).accept(now, Some(&plan), &sent).expect("server accepts");
        let answer = SdpAnswer::from_sdp_string(&std::mem::take(&mut accepted.answer)).expect("answer parses");
        host.sdp_api().accept_answer(pending, answer).expect("host accepts");
        // str0m sends several streams of one section only when each has a rid of its own; the
        // rids stay on this side, since the answer negotiated no rid extension.
        for (i, ssrc) in LAYERS.into_iter().enumerate() {
            host.direct_api().declare_stream_tx(Ssrc::from(ssrc), None, video_mid, Some(Rid::from(["l0", "l1", "l2"][i])));
        }

        let (show_tx, _show_rx) = crate::interaction::session_inbox::session_inbox(1024);
        let identity = Identity { id: "h".into(), name: "h".into(), role: RoomRole::Host };
        let server = Peer::new(PeerId(1), "s".into(), SessionKind::Publish, ("r".into(), identity, show_tx), accepted, now);
        Link { pair: MemoryPair::new(now, server, host), video_mid, layers: BTreeMap::new(), resets: 0 }
    }

    /// Virtual time on by `by`, counting what the server makes of the host's packets.
    fn advance(&mut self, by: Duration) {
        let (layers, resets) = (&mut self.layers, &mut self.resets);
        let on_server = |event| match event {
            PeerEvent::FirstOfLayer(p, name) => {
                let entry = layers.entry(p.layer).or_default();
                entry.0 += 1;
                entry.1 = name;
            }
            PeerEvent::Media(p) if p.kind == sellcast_sfu::TrackKind::Video => layers.entry(p.layer).or_default().0 += 1,
            PeerEvent::SourceReset => *resets += 1,
            _ => {}
        };
        self.pair.advance(by, |_| true, on_server, |_| {});
    }

    /// `frames` VP8 frames (a keyframe first) on each layer, one packet each.
    fn send_layers(&mut self, frames: u32) {
        let pt = self.pair.client.media(self.video_mid).and_then(|m| m.remote_pts().first().copied()).expect("a negotiated video payload type");
        for frame in 0..frames {
            for ssrc in LAYERS {
                let mut payload = vec![0u8; 300];
                payload[0] = 0x10;
                payload[1] = if frame == 0 { 0x00 } else { 0x01 };
                let mut api = self.pair.client.direct_api();
                let tx = api.stream_tx(&Ssrc::from(ssrc)).expect("a declared stream");
                tx.write_rtp(RtpWrite::new(pt, u64::from(100 + frame).into(), frame * 3000, self.pair.now, payload).marker(true));
                self.advance(Duration::from_millis(11));
            }
        }
    }
}

#[test]
fn ssrc_only_simulcast_layers_arrive_in_their_own_slots_in_group_order() {
    let mut link = Link::new();
    link.pair.connect(|_| true);
    link.send_layers(20);
    assert_eq!(link.resets, 0, "no layer is taken for the encoder restarting");
    let names: Vec<(u8, Option<&str>)> = link.layers.iter().map(|(slot, (_, name))| (*slot, name.as_deref())).collect();
    assert_eq!(names, vec![(0, Some("sim0")), (1, Some("sim1")), (2, Some("sim2"))]);
    for (slot, (packets, _)) in &link.layers {
        assert!(*packets >= 18, "layer {slot} got {packets} of 20 packets");
    }
    for (slot, ssrc) in LAYERS.iter().enumerate() {
        assert_eq!(link.pair.server.video_layers.ssrc_of(slot as u8), Some(*ssrc), "keyframe requests for slot {slot} go to its SSRC");
    }
}
