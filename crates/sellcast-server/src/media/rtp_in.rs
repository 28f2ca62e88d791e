//! A host's RTP packet as str0m hands it over, turned into the forwarding core's
//! [`MediaPacket`] (moving the payload, no copy). Shared by a shard's own hosts and an edge's
//! pull from its origin, which both feed rooms the same way.

use sellcast_sfu::{MediaPacket, TrackKind};
use str0m::rtp::RtpPacket;

pub(crate) fn media_packet(p: RtpPacket, kind: TrackKind, layer: u8) -> MediaPacket {
    MediaPacket {
        kind,
        seq: *p.seq_no,
        timestamp: p.header.timestamp,
        marker: p.header.marker,
        payload: p.payload,
        arrival: p.timestamp,
        layer,
    }
}
