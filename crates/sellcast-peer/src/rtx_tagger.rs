//! Stamps the mid and repaired-rid header extensions on a simulcast host's RTX packets.
//!
//! Why: a receiver binds a simulcast RTX stream to its layer by those extensions (RFC 8852;
//! str0m maps RTX this way when the offer has `a=simulcast`, ignoring `a=ssrc` lines).
//! webrtc-rs 0.21's NACK responder builds RTX packets with no extensions at all, so without this
//! every repair of a simulcast layer would be dropped at the server. It sits wire-side of the
//! NACK responder (which is at slot 4,000) so it sees the RTX packets the responder makes; it
//! touches nothing else.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use rtc::interceptor::{Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Between the pacer (3,000) and the NACK responder (4,000).
pub(crate) const SLOT: usize = 3_500;

/// What to stamp, known once the answer fixed the extension ids.
#[derive(Debug, Default)]
pub struct RtxTags {
    tags: Mutex<Option<Tags>>,
}

#[derive(Debug)]
struct Tags {
    mid_id: u8,
    rrid_id: u8,
    mid: Bytes,
    /// RTX SSRC -> the rid of the layer it repairs.
    rids: HashMap<u32, Bytes>,
}

impl RtxTags {
    /// Stamp `mid` and each RTX SSRC's rid, with the negotiated extension ids.
    pub(crate) fn set(&self, (mid_id, rrid_id): (u8, u8), mid: &str, rids: impl IntoIterator<Item = (u32, String)>) {
        let rids = rids.into_iter().map(|(ssrc, rid)| (ssrc, Bytes::from(rid))).collect();
        if let Ok(mut t) = self.tags.lock() {
            *t = Some(Tags { mid_id, rrid_id, mid: Bytes::from(mid.to_owned()), rids });
        }
    }

    fn stamp(&self, packet: &mut rtc::rtp::packet::Packet) {
        let Ok(guard) = self.tags.lock() else { return };
        let Some(tags) = guard.as_ref() else { return };
        let Some(rid) = tags.rids.get(&packet.header.ssrc) else { return };
        // Ids were negotiated (1-14) and the values are short: a failure only leaves it unstamped.
        let _ = packet.header.set_extension(tags.mid_id, tags.mid.clone());
        let _ = packet.header.set_extension(tags.rrid_id, rid.clone());
    }
}

pub(crate) struct RtxTagger {
    tags: Arc<RtxTags>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl RtxTagger {
    pub(crate) fn new(tags: Arc<RtxTags>) -> Self {
        Self { tags, read: VecDeque::new(), write: VecDeque::new() }
    }

    pub(crate) fn slot() -> Slot {
        Slot::from(SLOT)
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtxTagger {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(p) = &mut msg.message.packet {
            self.tags.stamp(p);
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for RtxTagger {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(ssrc: u32) -> rtc::rtp::packet::Packet {
        let header = rtc::rtp::header::Header { version: 2, ssrc, ..Default::default() };
        rtc::rtp::packet::Packet { header, payload: Bytes::from_static(b"x") }
    }

    #[test]
    fn only_rtx_packets_get_the_mid_and_their_layers_repaired_rid() {
        let tags = RtxTags::default();
        let mut before = rtp(7);
        tags.stamp(&mut before);
        assert!(before.header.extensions.is_empty(), "nothing is stamped before the answer");
        tags.set((3, 5), "0", [(7, "h".to_owned())]);
        let (mut rtx, mut media) = (rtp(7), rtp(8));
        tags.stamp(&mut rtx);
        tags.stamp(&mut media);
        assert_eq!(rtx.header.get_extension(3), Some(Bytes::from_static(b"0")));
        assert_eq!(rtx.header.get_extension(5), Some(Bytes::from_static(b"h")));
        assert!(media.header.extensions.is_empty(), "a media packet (not RTX) is left alone");
    }
}
