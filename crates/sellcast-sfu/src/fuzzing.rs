//! The body of the `rtp_codec` fuzz target (fuzz/), shared with the corpus replay test
//! (`tests/fuzz_corpus.rs`) so both run identical code.
//!
//! The input is a host's packet stream, as the media driver hands it to a room's forwarder
//! after str0m parsed and decrypted it:
//!
//! ```text
//! byte 0            bit 0: video codec (0 VP8, 1 H264); bits 1-2: viewers (1 + value);
//!                  bit 3: simulcast (a video packet's layer is its timestamp step mod 3)
//! then per packet   flags (1) | seq step (2, i16 big-endian) | ts step (2, u16 BE) | len (1) | payload
//!   flags           bit 0: video; bit 1: marker; bits 2-4: event before it (see `Event`);
//!                   bits 5-7: virtual time before it, in 20 ms steps
//! ```
//!
//! Every payload also goes through each codec's keyframe detection on its own. Sequence
//! numbers are extended the way the transport extends them (a step of at most +-32767 from the
//! last one, never below 0), so they stay in the range a real stream can reach.
//!
//! It panics on what the forwarding core promises never to do: panic on any payload or
//! sequence, queue more than a viewer's bound, or number a viewer's packets past what the
//! incoming numbers and the packets queued (live or replayed) can explain.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::{Codec, TrackKind};
use crate::forwarder::{Forwarder, ForwarderConfig, ViewerId};
use crate::packet::MediaPacket;

const HEADER: usize = 6;

/// What happens before a packet, from bits 2-4 of its flags.
fn event(forwarder: &mut Forwarder, now: Instant, flags: u8, viewers: u64, codecs: &[Codec], turn: u64) {
    let viewer = ViewerId(turn % viewers);
    match (flags >> 2) & 0x07 {
        1 => forwarder.handle_viewer_ready(now, viewer),
        2 => forwarder.handle_viewer_keyframe_request(now),
        3 => {
            forwarder.remove_viewer(viewer);
            forwarder.add_viewer(viewer);
        }
        4 => forwarder.handle_source_reset(),
        5 => forwarder.handle_publisher_start(codecs),
        6 => forwarder.handle_publisher_end(),
        7 => forwarder.handle_timeout(now),
        _ => {}
    }
}

/// Feed `data` to a forwarder as a host's packets (see the module doc). Panics if the core
/// breaks a promise.
pub fn rtp_codec(data: &[u8]) {
    for codec in [Codec::Opus, Codec::Vp8, Codec::H264] {
        let _ = codec.is_keyframe_start(data);
    }
    let Some((&setup, mut rest)) = data.split_first() else {
        return;
    };
    let video = if setup & 1 == 0 { Codec::Vp8 } else { Codec::H264 };
    let codecs = [Codec::Opus, video];
    let viewers = 1 + u64::from((setup >> 1) & 0x03);
    let config = ForwarderConfig { viewer_queue_packets: 64, keyframe_cache_packets: 32, ..ForwarderConfig::default() };
    let queue_bound = config.viewer_queue_packets;
    let mut forwarder = Forwarder::new(config);
    let mut now = Instant::now();
    forwarder.handle_publisher_start(&codecs);
    for v in 0..viewers {
        forwarder.add_viewer(ViewerId(v));
        forwarder.handle_viewer_ready(now, ViewerId(v));
    }
    let mut seq: [u64; 2] = [1_000, 20_000];
    let mut ts: [u32; 2] = [0, 0];
    let mut offered: u64 = 0;
    let mut advanced: u64 = 0;
    let mut turn = 0;
    while rest.len() >= HEADER {
        let flags = rest[0];
        let step = i64::from(i16::from_be_bytes([rest[1], rest[2]]));
        let ts_step = u32::from(u16::from_be_bytes([rest[3], rest[4]]));
        let len = usize::from(rest[5]).min(rest.len() - HEADER);
        let payload: Arc<[u8]> = rest[HEADER..HEADER + len].into();
        rest = &rest[HEADER + len..];
        for codec in codecs {
            let _ = codec.is_keyframe_start(&payload);
        }
        now += Duration::from_millis(20 * u64::from(flags >> 5));
        event(&mut forwarder, now, flags, viewers, &codecs, turn);
        turn += 1;
        let kind = if flags & 1 == 1 { TrackKind::Video } else { TrackKind::Audio };
        let k = kind.index();
        seq[k] = seq[k].saturating_add_signed(step);
        advanced += step.unsigned_abs();
        ts[k] = ts[k].wrapping_add(ts_step);
        // Bit 3 of the setup byte makes the host's video simulcast: three layers, one sequence.
        let layer = if kind == TrackKind::Video && setup & 0x08 != 0 { (ts_step % 3) as u8 } else { 0 };
        let packet = MediaPacket { kind, seq: seq[k], timestamp: ts[k], marker: flags & 2 != 0, payload, arrival: now, layer };
        forwarder.handle_rtp(now, &packet);
        offered += 1;
        while forwarder.poll_event().is_some() {}
        for viewer in forwarder.viewers_mut() {
            assert!(viewer.queued() <= queue_bound, "a viewer queued {} packets over its bound {queue_bound}", viewer.queued());
            while let Some(out) = viewer.pop_packet() {
                // Outgoing numbers follow the incoming steps (a gap stays a gap for the viewer
                // to NACK); each packet is offered live once, and each event (at most one per
                // packet) may replay the cached keyframe group (at most 32 packets).
                let limit = (1u64 << 16) + advanced + offered * (1 + 32);
                assert!(out.seq < limit, "outgoing seq {} past {limit}", out.seq);
            }
        }
    }
}
