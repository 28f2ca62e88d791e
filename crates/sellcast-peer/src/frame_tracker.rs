//! What a viewer could show: video frames put back together from RTP at the viewer, on time
//! handed in. A frame is complete when every packet from its first (VP8 start bit) to its last
//! (marker bit) has arrived, retransmissions included; it is *decodable* when it is a
//! keyframe or follows the last decodable frame with no packet missing in between (the frame
//! it refers to was shown). The picture freezes whenever no decodable frame arrives for a
//! while: gaps over 200 ms between decodable frames are counted as frozen time (a browser's
//! `freezeCount` uses a similar threshold at 30 fps).
//!
//! It also follows the layer a simulcast host marked in the payload (so a viewer knows which
//! layer the server sends it, and when that changed) and the RTP sequence numbers the server
//! sent (which stay continuous across layer switches), for loss after retransmission.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::counter_set::CounterSet;

/// A gap between decodable frames longer than this is a freeze.
pub const FREEZE_GAP: Duration = Duration::from_millis(200);
/// Frames not complete after this long are given up.
const GIVE_UP: Duration = Duration::from_secs(3);
/// Sequence numbers this close to the newest are not counted lost yet (a repair may be on its way).
const IN_FLIGHT: u64 = 64;

/// One video packet as the tracker needs it.
#[derive(Debug, Clone, Copy)]
pub struct VideoPacket {
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
    /// The packet begins a frame (VP8 descriptor S bit, partition 0).
    pub frame_start: bool,
    /// The packet begins a keyframe.
    pub keyframe: bool,
    /// The simulcast layer the host marked (0 lowest), if it marked one.
    pub layer: Option<u8>,
}

#[derive(Debug)]
struct Assembly {
    ts: u32,
    start: Option<u64>,
    end: Option<u64>,
    got: Vec<u64>,
    key: bool,
    layer: Option<u8>,
    first_at: Instant,
    complete: bool,
}

impl Assembly {
    fn is_complete(&self) -> bool {
        match (self.start, self.end) {
            (Some(s), Some(e)) if e >= s => self.got.len() as u64 == e - s + 1,
            _ => false,
        }
    }
}

/// What the tracker has seen since it was created (or since `reset_window`).
#[derive(Debug, Clone, Default)]
pub struct FrameStats {
    pub decodable_frames: u64,
    /// Sum of the gaps over `FREEZE_GAP` between decodable frames.
    pub frozen: Duration,
    pub freezes: u64,
    pub longest_gap: Duration,
    /// The layer of the newest decodable frame, and when each change of layer happened.
    pub layer: Option<u8>,
    pub layer_changes: Vec<(Instant, Option<u8>)>,
    /// Changes of layer whose first frame was not a keyframe: a real decoder would have shown
    /// the new layer's delta frames on the old layer's picture (kept across windows, like the
    /// layer history).
    pub layer_changes_off_keyframe: u64,
    pub last_decodable_at: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct FrameTracker {
    pending: VecDeque<Assembly>,
    /// End sequence number of the last decodable frame.
    chain_end: Option<u64>,
    highest: Option<u64>,
    seqs: CounterSet,
    window_first: Option<u64>,
    stats: FrameStats,
}

impl FrameTracker {
    /// Extend a 16-bit sequence number to 64 bits next to the highest seen.
    fn extend(&mut self, seq: u16) -> u64 {
        let Some(high) = self.highest else {
            // Start far from zero so a step back never goes below it.
            let ext = (1u64 << 32) + u64::from(seq);
            self.highest = Some(ext);
            return ext;
        };
        let delta = i64::from(seq.wrapping_sub(high as u16) as i16);
        let ext = (high as i64 + delta) as u64;
        if ext > high {
            self.highest = Some(ext);
        }
        ext
    }

    pub fn handle_packet(&mut self, now: Instant, p: VideoPacket) {
        let ext = self.extend(p.seq);
        self.window_first.get_or_insert(ext);
        if !self.seqs.insert(ext) {
            return; // a duplicate: it changes nothing
        }
        let frame = match self.pending.iter_mut().position(|f| f.ts == p.ts) {
            Some(i) => i,
            None => {
                self.pending.push_back(Assembly { ts: p.ts, start: None, end: None, got: Vec::new(), key: false, layer: p.layer, first_at: now, complete: false });
                self.pending.len() - 1
            }
        };
        let f = &mut self.pending[frame];
        f.got.push(ext);
        if p.frame_start {
            f.start = Some(ext);
            f.key |= p.keyframe;
        }
        if p.marker {
            f.end = Some(ext);
        }
        if !f.complete && f.is_complete() {
            f.complete = true;
            self.release_decodable(now);
        }
        while self.pending.front().is_some_and(|f| now.saturating_duration_since(f.first_at) > GIVE_UP) {
            self.pending.pop_front();
        }
    }

    /// Show every complete frame that can now be decoded, oldest first.
    fn release_decodable(&mut self, now: Instant) {
        loop {
            let chain_end = self.chain_end;
            let next = self.pending.iter().position(|f| {
                f.complete && (f.key || f.start.zip(chain_end).is_some_and(|(s, e)| s == e + 1))
            });
            let Some(i) = next else { return };
            let Some(f) = self.pending.remove(i) else { return };
            // Frames older than a decodable keyframe can no longer be shown.
            if f.key {
                let start = f.start.unwrap_or(0);
                self.pending.retain(|o| o.start.is_none_or(|s| s > start));
            }
            self.chain_end = f.end;
            self.show(now, f.layer, f.key);
        }
    }

    fn show(&mut self, now: Instant, layer: Option<u8>, key: bool) {
        let s = &mut self.stats;
        if let Some(last) = s.last_decodable_at {
            let gap = now.saturating_duration_since(last);
            s.longest_gap = s.longest_gap.max(gap);
            if gap > FREEZE_GAP {
                s.frozen += gap;
                s.freezes += 1;
            }
        }
        s.last_decodable_at = Some(now);
        s.decodable_frames += 1;
        if s.layer != layer || s.layer_changes.is_empty() {
            if !key {
                s.layer_changes_off_keyframe += 1;
            }
            s.layer = layer;
            s.layer_changes.push((now, layer));
        }
    }

    pub fn stats(&self) -> &FrameStats {
        &self.stats
    }

    /// The stats as of `now`: a freeze still going on (no decodable frame for over
    /// `FREEZE_GAP`, or none at all) counts up to `now`.
    pub fn stats_at(&self, now: Instant) -> FrameStats {
        let mut s = self.stats.clone();
        if let Some(last) = s.last_decodable_at {
            let open = now.saturating_duration_since(last);
            s.longest_gap = s.longest_gap.max(open);
            if open > FREEZE_GAP {
                s.frozen += open;
                s.freezes += 1;
            }
        }
        s
    }

    /// (lost, sent) video packets since the window began: sequence numbers the server sent
    /// that never arrived, even after retransmission. The newest few are not judged yet.
    pub fn loss(&self) -> (u64, u64) {
        let (Some(first), Some(high)) = (self.window_first, self.highest) else { return (0, 0) };
        let end = high.saturating_sub(IN_FLIGHT);
        if end <= first {
            return (0, 0);
        }
        let got = self.seqs.range(first..end).count() as u64;
        (end - first - got, end - first)
    }

    /// Start a new measuring window at `now`: counts restart, the layer history and the chain
    /// stay. Gaps are measured from `now` at the earliest (as if a frame was shown then).
    pub fn reset_window(&mut self, now: Instant) {
        self.window_first = self.highest.map(|h| h + 1);
        let s = &mut self.stats;
        s.last_decodable_at = Some(now);
        s.decodable_frames = 0;
        s.frozen = Duration::ZERO;
        s.freezes = 0;
        s.longest_gap = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frame `n` of a stream with `per` packets per frame, keyframe every `gop` frames.
    fn frame(n: u32, per: u16, gop: u32) -> Vec<VideoPacket> {
        (0..per)
            .map(|i| VideoPacket {
                seq: (n as u16).wrapping_mul(per).wrapping_add(i).wrapping_add(65_000),
                ts: n * 3000,
                marker: i == per - 1,
                frame_start: i == 0,
                keyframe: i == 0 && n.is_multiple_of(gop),
                layer: Some(1),
            })
            .collect()
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_clean_stream_shows_every_frame_and_never_freezes() {
        let t0 = Instant::now();
        let mut t = FrameTracker::default();
        for n in 0..90 {
            for p in frame(n, 3, 30) {
                t.handle_packet(at(t0, u64::from(n) * 33), p);
            }
        }
        let s = t.stats();
        assert_eq!((s.decodable_frames, s.freezes, s.frozen), (90, 0, Duration::ZERO));
        assert_eq!(s.layer, Some(1));
        assert_eq!(t.loss().0, 0);
    }

    #[test]
    fn a_layer_change_on_a_delta_frame_is_counted() {
        let t0 = Instant::now();
        let mut t = FrameTracker::default();
        for n in 0..40 {
            for mut p in frame(n, 2, 30) {
                // Layer 1 until frame 10, layer 0 from its delta frame 10, layer 2 from keyframe 30.
                p.layer = Some(match n {
                    0..=9 => 1,
                    10..=29 => 0,
                    _ => 2,
                });
                t.handle_packet(at(t0, u64::from(n) * 33), p);
            }
        }
        let s = t.stats();
        assert_eq!(s.layer_changes.iter().map(|(_, l)| *l).collect::<Vec<_>>(), [Some(1), Some(0), Some(2)]);
        assert_eq!(s.layer_changes_off_keyframe, 1, "only the change at frame 10 began on a delta frame");
    }

    #[test]
    fn a_lost_packet_freezes_the_picture_until_the_next_keyframe() {
        let t0 = Instant::now();
        let mut t = FrameTracker::default();
        for n in 0..60 {
            for (i, p) in frame(n, 3, 30).into_iter().enumerate() {
                if n == 10 && i == 1 {
                    continue; // lost for good
                }
                t.handle_packet(at(t0, u64::from(n) * 33), p);
            }
        }
        let s = t.stats();
        // Frames 10-29 cannot be decoded; frame 30 (a keyframe) shows at 990 ms, 693 ms after frame 9.
        assert_eq!(s.decodable_frames, 40);
        assert_eq!(s.freezes, 1);
        assert_eq!(s.frozen, Duration::from_millis(990 - 297));
        assert_eq!(t.loss().0, 1);
    }

    #[test]
    fn a_repaired_packet_unblocks_the_frames_behind_it() {
        let t0 = Instant::now();
        let mut t = FrameTracker::default();
        let mut held = None;
        for n in 0..10 {
            for (i, p) in frame(n, 3, 30).into_iter().enumerate() {
                if n == 4 && i == 2 {
                    held = Some(p);
                    continue;
                }
                t.handle_packet(at(t0, u64::from(n) * 33), p);
            }
            if n == 6 {
                // The retransmission arrives 70 ms late: frames 4, 5 and 6 show at once.
                t.handle_packet(at(t0, 6 * 33), held.take().expect("test setup"));
            }
        }
        let s = t.stats();
        assert_eq!((s.decodable_frames, s.freezes), (10, 0));
        assert_eq!(t.loss().0, 0);
    }

    #[test]
    fn a_stream_that_stops_counts_as_frozen_up_to_now() {
        let t0 = Instant::now();
        let mut t = FrameTracker::default();
        t.reset_window(t0);
        let s = t.stats_at(at(t0, 1_000));
        assert_eq!((s.frozen, s.freezes), (Duration::from_secs(1), 1), "nothing shown since the window began");
        for n in 0..10 {
            for p in frame(n, 2, 30) {
                t.handle_packet(at(t0, 1_000 + u64::from(n) * 33), p);
            }
        }
        let s = t.stats_at(at(t0, 1_297 + 500));
        // The first frame closed a 1 s freeze; the open one (500 ms) counts too.
        assert_eq!((s.freezes, s.frozen), (2, Duration::from_millis(1_500)));
        assert_eq!(s.longest_gap, Duration::from_secs(1));
    }

    #[test]
    fn sequence_numbers_wrap_without_counting_loss() {
        let t0 = Instant::now();
        let mut t = FrameTracker::default();
        for n in 0..400 {
            for p in frame(n, 2, 30) {
                t.handle_packet(at(t0, u64::from(n) * 33), p);
            }
        }
        let (lost, sent) = t.loss();
        assert_eq!(lost, 0);
        assert!(sent > 700, "{sent}");
    }
}
