//! The fast word on whether a layer the video just climbed to fits the viewer's link: its NACKs.
//!
//! A receiver report comes about once a second and the loss controller sets aside those of the
//! first seconds on a layer (the start's keyframe burst), so a climb onto a layer the link cannot
//! carry overflows it for about four seconds before the reports cut it: a freeze each time. A
//! viewer NACKs within a round trip of a loss, whatever feedback it otherwise gives (browsers,
//! aiortc and players with no bandwidth feedback all NACK). A layer that overflows loses packets
//! frame after frame, so its NACKs keep coming well past the start's burst, at far more than the
//! link's usual rate (random loss NACKs in proportion to the packets sent). Within
//! `WATCH_FOR` of a watched layer start (a climb: see `ViewerEstimate::handle_layer_start` for
//! why not a join, a resume or a step down), NACKs beyond that usual rate say the layer overflows.
//!
//! Counts come in as deltas (NACK messages received and packets sent since the last call, from
//! the transport's per-stream stats), so nothing here runs per packet.

use std::time::{Duration, Instant};

/// After a layer start, a count whose interval began this soon is the start's keyframe burst
/// and its repair: not counted.
const SKIP: Duration = Duration::from_millis(300);
/// How long after a layer start NACKs are read as the layer's verdict.
const WATCH_FOR: Duration = Duration::from_secs(4);
/// Counted time needed before a verdict.
const JUDGE_AFTER: Duration = Duration::from_millis(900);
/// NACK messages per second over twice the usual that make a burst. A player that NACKs on a
/// timer (webrtc-rs every 100 ms) sends about ten a second while anything is missing; random
/// loss of a few percent on a few hundred kbit/s, about one.
const BURST_PER_SECOND: f64 = 4.0;
/// How fast the usual NACKs per packet follow the counts outside the watch, and its cap (an
/// overflow's storm is not the link's habit).
const USUAL_WEIGHT: f64 = 0.1;
const USUAL_CAP: f64 = 0.1;

#[derive(Debug, Clone, Default)]
pub struct NackWatch {
    /// When the video last started on a layer, and whether that start is watched.
    started: Option<Instant>,
    watched: bool,
    /// Since the watch began counting: NACKs, packets sent, time covered.
    nacks: u64,
    packets: u64,
    counted: Duration,
    /// A verdict was given for this start (one cut per start).
    judged: bool,
    /// When the last counts came (their interval began then).
    last: Option<Instant>,
    /// NACK messages per packet sent, as this link usually has them.
    usual_per_packet: f64,
}

impl NackWatch {
    /// The video started on a layer: watch its NACKs if `watch`. Either way the counts of the
    /// next `WATCH_FOR` are not the link's habit (a start's burst and its repair).
    pub fn handle_layer_start(&mut self, now: Instant, watch: bool) {
        self.started = Some(now);
        self.watched = watch;
        self.nacks = 0;
        self.packets = 0;
        self.counted = Duration::ZERO;
        self.judged = false;
    }

    /// NACK messages received and video packets sent since the last call. True when they say
    /// the layer the video started on overflows the link (once per start).
    pub fn handle_counts(&mut self, now: Instant, nacks: u64, packets: u64) -> bool {
        let from = self.last.replace(now);
        let Some(from) = from else {
            return false;
        };
        let interval = now.saturating_duration_since(from).min(Duration::from_secs(2));
        let recent = self.started.is_some_and(|s| now.saturating_duration_since(s) < WATCH_FOR);
        if !recent {
            if packets > 0 {
                let ratio = (nacks as f64 / packets as f64).min(USUAL_CAP);
                self.usual_per_packet += USUAL_WEIGHT * (ratio - self.usual_per_packet);
            }
            return false;
        }
        let began_after_skip = self.started.is_some_and(|s| from.saturating_duration_since(s) >= SKIP);
        if !self.watched || self.judged || !began_after_skip {
            return false;
        }
        self.nacks += nacks;
        self.packets += packets;
        self.counted += interval;
        if self.counted < JUDGE_AFTER {
            return false;
        }
        let expected = self.usual_per_packet * self.packets as f64;
        let burst = self.nacks as f64 > 2.0 * expected + BURST_PER_SECOND * self.counted.as_secs_f64();
        self.judged = burst;
        burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `per_second` NACKs and `packets_per_second` packets every 250 ms from `from` for
    /// `secs`; returns when a burst was first called, if it was.
    fn feed(w: &mut NackWatch, from: Instant, secs: f64, per_second: u64, packets_per_second: u64) -> Option<Duration> {
        let mut at = from;
        let mut called = None;
        while at < from + Duration::from_secs_f64(secs) {
            at += Duration::from_millis(250);
            if w.handle_counts(at, per_second / 4, packets_per_second / 4) && called.is_none() {
                called = Some(at.saturating_duration_since(from));
            }
        }
        called
    }

    #[test]
    fn nacks_that_keep_coming_after_a_layer_start_are_a_burst_within_two_seconds() {
        let t0 = Instant::now();
        let mut w = NackWatch::default();
        assert_eq!(feed(&mut w, t0, 10.0, 0, 50), None, "a clean link");
        let start = t0 + Duration::from_secs(10);
        w.handle_layer_start(start, true);
        // A timer-driven NACKer on a layer its link cannot carry: ten NACKs a second.
        let called = feed(&mut w, start, 4.0, 12, 150).expect("a burst");
        assert!(called <= Duration::from_secs(2), "called after {called:?}");
    }

    #[test]
    fn the_starts_own_burst_and_the_links_usual_rate_are_no_burst() {
        let t0 = Instant::now();
        let mut w = NackWatch::default();
        // 2 % random loss on the half layer (50 packets a second), each loss NACKed about twice.
        assert_eq!(feed(&mut w, t0, 20.0, 4, 100), None);
        let start = t0 + Duration::from_secs(20);
        w.handle_layer_start(start, true);
        // The keyframe's burst: many NACKs in the first 250 ms.
        assert!(!w.handle_counts(start + Duration::from_millis(250), 30, 40));
        // Then the same random loss on a layer with three times the packets.
        assert_eq!(feed(&mut w, start + Duration::from_millis(250), 4.0, 12, 300), None);
    }
}
