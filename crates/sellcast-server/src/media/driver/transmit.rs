//! Between a peer's str0m instance and the driver: its events translated for the room, a
//! rewritten packet written into it, and its datagrams drained into the outbox.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use sellcast_sfu::{EstimateSource, MediaPacket, OutPacket, TrackKind};
use str0m::bwe::BweKind;
use str0m::net::Protocol;
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Event, IceConnectionState, Output};
use tokio::net::UdpSocket;
use tracing::warn;

use super::{DriverStats, PeerEvent};
use crate::media::ingest_layers::Classified;
use crate::media::offer::SessionKind;
use crate::media::outbox::Outbox;
use crate::media::peer::{Peer, PeerId};
use crate::media::tcp::links::TcpLinks;

/// Turn one str0m event into what the room cares about. Media is converted without copying
/// the payload.
pub(crate) fn translate_event(peer: &mut Peer, event: Event, now: Instant, stats: &mut DriverStats) -> Option<PeerEvent> {
    match event {
        Event::Connected => Some(PeerEvent::Connected),
        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => Some(PeerEvent::Closed),
        Event::Closed => Some(PeerEvent::Closed),
        Event::MediaAdded(m) => {
            let simulcast = m.simulcast.as_ref().is_some_and(|s| !s.recv.is_empty() || !s.send.is_empty());
            peer.handle_media_added(m.mid, m.kind, m.direction, simulcast);
            None
        }
        Event::EgressBitrateEstimate(estimate) if peer.kind == SessionKind::Watch => match estimate {
            BweKind::Twcc { estimate, .. } => Some(PeerEvent::Estimate(EstimateSource::Twcc, estimate.as_u64())),
            BweKind::Remb { estimate, .. } => Some(PeerEvent::Estimate(EstimateSource::Remb, estimate.as_u64())),
            _ => None,
        },
        Event::KeyframeRequest(r) if peer.kind == SessionKind::Watch => {
            stats.viewer_keyframe_requests += 1;
            match peer.relay_layers {
                // An edge pulling every layer asks for the layer of the m-line it names.
                Some(layers) => layers.layer_of(r.mid).map(PeerEvent::LayerKeyframeRequest),
                None => Some(PeerEvent::KeyframeRequest),
            }
        }
        Event::MediaEgressStats(egress) => {
            // Cumulative per stream: count what is new since this stream's last report.
            let kind = peer.mids.iter().position(|m| *m == Some(egress.mid))?;
            let seen = &mut peer.nacks_seen[kind];
            let nacks = egress.nacks.saturating_sub(*seen);
            stats.nacks += nacks;
            *seen = (*seen).max(egress.nacks);
            if kind != TrackKind::Video.index() {
                return None;
            }
            let packets = egress.packets.saturating_sub(peer.video_packets_seen);
            peer.video_packets_seen = peer.video_packets_seen.max(egress.packets);
            // The video's loss from the viewer's receiver reports (the estimate of last resort),
            // and its NACKs (the fast word on a layer that overflows).
            Some(PeerEvent::VideoFeedback { loss: egress.loss.filter(|l| l.is_finite()), nacks, packets })
        }
        Event::ChannelOpen(id, label) if label == "sellcast" && peer.channel.is_none() => {
            peer.channel = Some(id);
            Some(PeerEvent::ChannelOpen)
        }
        Event::ChannelData(d) if peer.channel == Some(d.id) => Some(PeerEvent::ChannelData(d.data)),
        Event::ChannelClose(id) if peer.channel == Some(id) => {
            peer.channel = None;
            Some(PeerEvent::ChannelClose)
        }
        Event::RtpPacket(p) if peer.kind == SessionKind::Publish => {
            let Some(codec) = peer.codec_of(p.header.payload_type) else {
                stats.no_payload_type += 1;
                return None;
            };
            let kind = codec.kind();
            let ssrc = *p.header.ssrc;
            peer.last_media = Some(now);
            let (layer, new_layer) = match kind {
                TrackKind::Audio => {
                    let reset = peer.audio_ssrc.is_some_and(|s| s != ssrc);
                    peer.audio_ssrc = Some(ssrc);
                    if reset {
                        return Some(PeerEvent::SourceReset);
                    }
                    (0, None)
                }
                TrackKind::Video => match peer.video_layers.slot_of(ssrc) {
                    Some(slot) => (slot, None),
                    None => {
                        let rid = p.header.ext_vals.rid.or_else(|| peer.rtc.direct_api().stream_rx(&Ssrc::from(ssrc)).and_then(|s| s.rid()));
                        match peer.video_layers.classify_new(ssrc, rid.as_deref()) {
                            Classified::Layer(slot) => (slot, None),
                            Classified::NewLayer(slot, name) => (slot, Some(name)),
                            Classified::Reset => return Some(PeerEvent::SourceReset),
                            Classified::Unknown => {
                                stats.undeclared_ssrc += 1;
                                return None;
                            }
                        }
                    }
                },
            };
            let packet = crate::media::rtp_in::media_packet(p, kind, layer);
            Some(match new_layer {
                Some(name) => PeerEvent::FirstOfLayer(packet, name),
                None => PeerEvent::Media(packet),
            })
        }
        _ => None,
    }
}

/// Hand one host video packet, as it came, to each edge in `relays` pulling every layer, on
/// that layer's m-line (`cascade::relay_layers`): its own SSRC there, the host's sequence
/// numbers and timestamps. No allocation here and no lock: a lookup per relay and str0m's
/// write, as for any viewer.
pub(crate) fn write_to_relays(peers: &mut HashMap<PeerId, Peer>, relays: &[PeerId], packet: &MediaPacket) {
    if packet.kind != TrackKind::Video {
        return;
    }
    for id in relays {
        let Some(peer) = peers.get_mut(id) else {
            continue;
        };
        let (true, Some(mid), Some(pt)) = (peer.connected, peer.relay_layers.and_then(|l| l.mid_of(packet.layer)), peer.out_pt(TrackKind::Video)) else {
            continue;
        };
        let mut api = peer.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            continue;
        };
        let write = RtpWrite::new(pt, packet.seq.into(), packet.timestamp, packet.arrival, packet.payload.clone())
            .marker(packet.marker)
            .nackable(true);
        tx.write_rtp(write);
    }
}

/// Hand one rewritten packet to a viewer's outgoing stream (str0m encrypts and queues it).
pub(crate) fn write_packet(peer: &mut Peer, packet: &OutPacket) {
    let (Some(mid), Some(pt)) = (peer.mids[packet.kind.index()], peer.out_pt(packet.kind)) else {
        return;
    };
    let mut api = peer.rtc.direct_api();
    let Some(tx) = api.stream_tx_by_mid(mid, None) else {
        return;
    };
    let write = RtpWrite::new(pt, packet.seq.into(), packet.timestamp, packet.arrival, packet.payload.clone())
        .marker(packet.marker)
        .nackable(packet.kind == TrackKind::Video);
    tx.write_rtp(write);
}

/// Poll a peer until it has nothing more to send, queueing its datagrams in the outbox (UDP)
/// or its TCP connection's queue.
pub(super) fn drain_transmits(
    peer: &mut Peer,
    (socket, outbox, tcp): (&UdpSocket, &mut Outbox, &mut Option<TcpLinks>),
    stats: &mut DriverStats,
    pending: &mut VecDeque<(PeerId, PeerEvent)>,
    now: Instant,
) {
    loop {
        if !peer.rtc.is_alive() {
            pending.push_back((peer.id, PeerEvent::Closed));
            return;
        }
        match peer.rtc.poll_output() {
            Ok(Output::Timeout(t)) => {
                peer.timeout = t;
                return;
            }
            Ok(Output::Transmit(t)) => match (t.proto, tcp.as_mut()) {
                (Protocol::Udp, _) => outbox.push(socket, t.destination, t.contents),
                (_, Some(tcp)) => tcp.send(t.destination, t.contents),
                // str0m sends only from our candidates, and without --tcp-port there is no
                // TCP one.
                (_, None) => {}
            },
            Ok(Output::Event(event)) => {
                if let Some(e) = translate_event(peer, event, now, stats) {
                    pending.push_back((peer.id, e));
                }
            }
            Err(e) => {
                warn!(parent: &peer.span, error = %e, "peer failed");
                pending.push_back((peer.id, PeerEvent::Closed));
                return;
            }
        }
    }
}
