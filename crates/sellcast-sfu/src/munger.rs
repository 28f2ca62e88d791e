//! Rewrites sequence numbers and timestamps of one track for one viewer.
//!
//! Each viewer sees one continuous outgoing stream per track, whatever happens upstream: the
//! host restarting (new SSRC, new random seq/ts bases), the viewer being restarted from a
//! keyframe after overflow, or joining mid-stream through a replayed keyframe group.
//! Continuity is kept by re-anchoring: the next packet after a discontinuity gets the next
//! outgoing seq, and a timestamp advanced by the wall time elapsed since the last one sent.

use std::time::Instant;

use crate::drop_reason::DropReason;
use crate::packet::MediaPacket;

#[derive(Debug, Clone, Copy)]
struct Anchor {
    generation: u32,
    in_seq: u64,
    out_seq: u64,
    ts_offset: u32,
}

#[derive(Debug)]
pub struct RtpMunger {
    clock_rate: u32,
    anchor: Option<Anchor>,
    /// The next outgoing extended seq (one past the highest sent).
    next_seq: u64,
    /// Highest outgoing timestamp so far and the arrival time of its source packet.
    last_ts: Option<(u32, Instant)>,
}

impl RtpMunger {
    /// `first_seq` must be below 65 536 so the receiver needs no ROC signalling.
    pub fn new(clock_rate: u32, first_seq: u16) -> Self {
        Self {
            clock_rate,
            anchor: None,
            next_seq: u64::from(first_seq),
            last_ts: None,
        }
    }

    /// Is this munger anchored to the given source generation?
    pub fn is_anchored_to(&self, generation: u32) -> bool {
        self.anchor.is_some_and(|a| a.generation == generation)
    }

    /// Forget the mapping: the next packet must be anchored again.
    pub fn unanchor(&mut self) {
        self.anchor = None;
    }

    /// Make `packet` the start of a continued outgoing stream.
    pub fn anchor(&mut self, generation: u32, packet: &MediaPacket) {
        let out_ts = match self.last_ts {
            None => packet.timestamp,
            Some((ts, at)) => {
                let elapsed = packet.arrival.saturating_duration_since(at);
                let ticks = (elapsed.as_micros() as u64 * u64::from(self.clock_rate) / 1_000_000)
                    .max(1) as u32;
                ts.wrapping_add(ticks)
            }
        };
        self.anchor = Some(Anchor {
            generation,
            in_seq: packet.seq,
            out_seq: self.next_seq,
            ts_offset: out_ts.wrapping_sub(packet.timestamp),
        });
    }

    /// The outgoing (seq, timestamp) for `packet`. Must be anchored first.
    pub fn rewrite(&mut self, packet: &MediaPacket) -> Result<(u64, u32), DropReason> {
        let Some(a) = self.anchor else {
            return Err(DropReason::WaitingForKeyframe);
        };
        if packet.seq < a.in_seq {
            return Err(DropReason::TooOld);
        }
        let out_seq = a.out_seq + (packet.seq - a.in_seq);
        let out_ts = packet.timestamp.wrapping_add(a.ts_offset);
        if out_seq >= self.next_seq {
            self.next_seq = out_seq + 1;
            self.last_ts = Some((out_ts, packet.arrival));
        }
        Ok((out_seq, out_ts))
    }

    /// Packets from `seq` on were assigned but never sent (dropped from a full queue): reuse
    /// their numbers so the viewer sees no gap to NACK.
    pub fn rewind_to(&mut self, seq: u64) {
        if seq < self.next_seq {
            self.next_seq = seq;
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}
