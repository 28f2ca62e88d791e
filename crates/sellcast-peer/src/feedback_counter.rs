//! An interceptor that counts the keyframe requests (PLI, FIR) and NACKs a peer receives and
//! passes every packet on untouched. Inbound RTCP stops at the end of webrtc-rs's chain unless an
//! interceptor marks it for the application; counting in the chain avoids that round trip.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// What a sender is asked for.
#[derive(Debug, Default)]
pub struct FeedbackCounts {
    /// PLI and FIR packets.
    pub keyframe_requests: AtomicU64,
    /// Generic NACK packets (each may name several lost packets).
    pub nacks: AtomicU64,
    /// Keyframe requests per media SSRC (a simulcast host answers each layer's own).
    by_ssrc: Mutex<HashMap<u32, u64>>,
}

impl FeedbackCounts {
    /// PLI/FIR packets that asked `ssrc` for a keyframe.
    pub fn keyframe_requests_for(&self, ssrc: u32) -> u64 {
        self.by_ssrc.lock().ok().and_then(|m| m.get(&ssrc).copied()).unwrap_or(0)
    }

    fn count_request(&self, ssrc: u32) {
        if let Ok(mut m) = self.by_ssrc.lock() {
            *m.entry(ssrc).or_default() += 1;
        }
    }
}

pub struct FeedbackCounter {
    count: Arc<FeedbackCounts>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl FeedbackCounter {
    pub fn new(count: Arc<FeedbackCounts>) -> Self {
        Self { count, read: VecDeque::new(), write: VecDeque::new() }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackCounter {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                let p = p.as_any();
                if let Some(pli) = p.downcast_ref::<PictureLossIndication>() {
                    self.count.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                    self.count.count_request(pli.media_ssrc);
                } else if let Some(fir) = p.downcast_ref::<FullIntraRequest>() {
                    self.count.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                    for entry in &fir.fir {
                        self.count.count_request(entry.ssrc);
                    }
                } else if p.is::<TransportLayerNack>() {
                    self.count.nacks.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for FeedbackCounter {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
