//! Packets as the core sees them: a received packet with its shared payload, and the
//! per-viewer rewritten copy (same payload, new numbers).

use std::sync::Arc;
use std::time::Instant;

use crate::codec::TrackKind;

/// One RTP packet from the host, already decrypted and parsed by the transport.
#[derive(Debug, Clone)]
pub struct MediaPacket {
    pub kind: TrackKind,
    /// Extended (rollover-free) sequence number.
    pub seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    /// Shared by every viewer: forwarding clones the `Arc`, never the bytes.
    pub payload: Arc<[u8]>,
    pub arrival: Instant,
    /// Which of the host's video layers (simulcast encodings) it belongs to: a slot the
    /// transport assigns in the order layers first appear, below [`MAX_LAYERS`]. 0 for audio
    /// and for a host that publishes one layer.
    ///
    /// [`MAX_LAYERS`]: crate::MAX_LAYERS
    pub layer: u8,
}

/// A packet ready for one viewer: numbers rewritten for that viewer's outgoing stream.
#[derive(Debug, Clone)]
pub struct OutPacket {
    pub kind: TrackKind,
    /// Extended outgoing sequence number (starts below 65 536, so no ROC signalling is needed).
    pub seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Arc<[u8]>,
    /// When the source packet reached the server (used as the RTP wallclock and for latency).
    pub arrival: Instant,
    /// Part of a joining viewer's keyframe-group replay (sent late on purpose), not live.
    pub replay: bool,
}
