//! A viewer's NACK is answered by the server from its own per-viewer resend cache, on virtual
//! time and without sockets: the server-side str0m instance is built exactly as production
//! builds it (`PeerFactory::accept`), the viewer is a second str0m instance (`MemoryPair`),
//! and one video packet is dropped on the way.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sellcast_room::{Identity, Role as RoomRole};
use sellcast_sfu::{Codec, OutPacket, TrackKind};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Rtc};

use super::driver::write_packet;
use super::memory_pair::{addr, factory, MemoryPair};
use super::offer::SessionKind;
use super::peer::{Peer, PeerId};
use crate::media::video_format::{RoomFormat, VideoFormat};

const SERVER: &str = "127.0.0.1:5000";
const CLIENT: &str = "127.0.0.1:6000";
const FIRST_SEQ: u64 = 1000;
const PACKETS: u64 = 60;
const DROPPED: u64 = FIRST_SEQ + 20;

struct Link {
    pair: MemoryPair,
    received: BTreeSet<u64>,
    /// Seq of the video packet to drop once on the way to the client (None: drop nothing).
    drop_seq: Option<u16>,
    dropped_at: Option<Instant>,
    recovered_after_drop: bool,
}

/// The RTP sequence number of a datagram, if it is an (S)RTP media packet.
fn rtp_seq(d: &[u8]) -> Option<u16> {
    let is_rtp = d.len() >= 12 && (128..=191).contains(&d[0]) && !(72..=76).contains(&(d[1] & 0x7f));
    is_rtp.then(|| u16::from_be_bytes([d[2], d[3]]))
}

impl Link {
    fn new() -> Link {
        let now = Instant::now();
        let mut client = Rtc::builder().set_rtp_mode(true).build(now);
        client.add_local_candidate(Candidate::host(addr(CLIENT), "udp").expect("candidate"));
        let mut change = client.sdp_api();
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = change.apply().expect("an offer");

        let mut accepted = factory(addr(SERVER)).accept(now, None, &offer.to_sdp_string()).expect("server accepts");
        let answer = SdpAnswer::from_sdp_string(&std::mem::take(&mut accepted.answer)).expect("answer parses");
        client.sdp_api().accept_answer(pending, answer).expect("client accepts");

        let (show_tx, _show_rx) = crate::interaction::session_inbox::session_inbox(1024);
        let identity = Identity { id: "v".into(), name: "v".into(), role: RoomRole::Viewer };
        let mut server = Peer::new(PeerId(1), "s".into(), SessionKind::Watch, ("r".into(), identity, show_tx), accepted, now);
        let vp8_room = RoomFormat { audio: Some(Codec::Opus), video: Some(VideoFormat::vp8()) };
        server.choose_formats(&vp8_room).expect("the client takes VP8");
        Link { pair: MemoryPair::new(now, server, client), received: BTreeSet::new(), drop_seq: None, dropped_at: None, recovered_after_drop: false }
    }

    /// Virtual time on by `by`: the chosen packet is dropped once on the wire, and what the
    /// client receives is recorded.
    fn advance(&mut self, by: Duration) {
        let now = self.pair.now + by;
        let drop_seq = self.drop_seq;
        let dropped_at = Cell::new(self.dropped_at);
        let deliver = |d: &[u8]| {
            let seq = rtp_seq(d);
            if dropped_at.get().is_none() && seq.is_some() && seq == drop_seq {
                dropped_at.set(Some(now));
                return false;
            }
            true
        };
        let (received, recovered) = (&mut self.received, &mut self.recovered_after_drop);
        let on_client = |e| {
            if let Event::RtpPacket(p) = e {
                let seq = *p.seq_no;
                if dropped_at.get().is_some() && drop_seq.map(u64::from) == Some(seq & 0xffff) {
                    *recovered = true;
                }
                received.insert(seq);
            }
        };
        self.pair.advance(by, deliver, |_| {}, on_client);
        self.dropped_at = dropped_at.get();
    }

    /// Write synthetic VP8 packets as the driver does, 3 ms apart, then let NACKs play out.
    fn send_video(&mut self, nackable: bool) {
        for seq in FIRST_SEQ..FIRST_SEQ + PACKETS {
            let mut payload = vec![0u8; 900];
            payload[0] = if seq % 3 == 0 { 0x10 } else { 0x00 };
            payload[1] = if seq == FIRST_SEQ { 0x00 } else { 0x01 };
            let packet = OutPacket {
                kind: TrackKind::Video,
                seq,
                timestamp: (seq / 3) as u32 * 3000,
                marker: seq % 3 == 2,
                payload: Arc::from(payload),
                arrival: self.pair.now,
                replay: false,
            };
            if nackable {
                write_packet(&mut self.pair.server, &packet);
            } else {
                // Control: the same packet, but not kept for resends.
                let mid = self.pair.server.mids[TrackKind::Video.index()].expect("video mid");
                let pt = self.pair.server.out_pt(TrackKind::Video).expect("VP8 negotiated");
                let mut api = self.pair.server.rtc.direct_api();
                let tx = api.stream_tx_by_mid(mid, None).expect("video stream");
                tx.write_rtp(RtpWrite::new(pt, packet.seq.into(), packet.timestamp, packet.arrival, packet.payload.clone()).marker(packet.marker));
            }
            self.advance(Duration::from_millis(3));
        }
        for _ in 0..400 {
            self.advance(Duration::from_millis(5)); // 2 s of virtual time for NACK and resend
        }
    }
}

#[test]
fn a_lost_packet_is_resent_from_the_servers_cache() {
    let mut link = Link::new();
    link.pair.connect(|server| server.mids[TrackKind::Video.index()].is_some());
    link.drop_seq = Some(DROPPED as u16);
    link.send_video(true);
    assert!(link.dropped_at.is_some(), "the chosen packet was dropped on the wire");
    let wanted: Vec<u64> = (FIRST_SEQ..FIRST_SEQ + PACKETS).collect();
    let got: Vec<u64> = link.received.iter().copied().filter(|s| wanted.contains(s)).collect();
    assert_eq!(got, wanted, "every packet arrived, the dropped one through a resend");
    assert!(link.recovered_after_drop, "the dropped seq arrived after its first transmission was lost");
}

#[test]
fn without_the_cache_the_lost_packet_stays_lost() {
    let mut link = Link::new();
    link.pair.connect(|server| server.mids[TrackKind::Video.index()].is_some());
    link.drop_seq = Some(DROPPED as u16);
    link.send_video(false);
    assert!(link.dropped_at.is_some());
    assert!(!link.received.contains(&DROPPED), "nothing could answer the NACK");
    assert_eq!(link.received.len() as u64, PACKETS - 1);
}
