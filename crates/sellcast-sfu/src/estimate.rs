//! How much a viewer's link can take, from whatever feedback that viewer gives.
//!
//! Browsers negotiate transport-wide congestion control (TWCC): the transport's send-side
//! estimator reads it and is the best source. aiortc and some WHEP players send only REMB (the
//! receiver's own estimate). Some players send neither, only receiver reports: for those a
//! loss-based controller keeps a viewer whose link drops a tenth of its packets from staying on
//! a layer it cannot carry: above the link's usual loss + 10 %, two reports in a row, it backs off to what the link
//! delivered (a rate limit passes what it carries and drops the rest), below usual + 2 % it
//! creeps up 8 % a second (the loss half of Google's congestion control, measured against the
//! link's own habit of loss), and 2 % a second past what the link delivered at its last
//! overflow, for 30 s after it. Without reports (a paused viewer) it grows 16 % a second, so the
//! viewer is tried again. Reports right after the video starts on a layer are set aside:
//! the keyframe burst overflows a slow link's queue whatever the layer's rate. NACKs that keep
//! coming in the first seconds after a climb cut at once instead (`nack_watch.rs`): the fast
//! word that the climb overflows. A source that has spoken is preferred over a weaker one
//! for the rest of the session.

use std::time::{Duration, Instant};

use crate::nack_watch::NackWatch;

/// Where an estimate came from, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EstimateSource {
    Twcc,
    Remb,
    Loss,
}

impl EstimateSource {
    pub fn name(self) -> &'static str {
        match self {
            EstimateSource::Twcc => "twcc",
            EstimateSource::Remb => "remb",
            EstimateSource::Loss => "loss",
        }
    }
}

/// Above this loss fraction (over the link's usual loss) the loss controller backs off.
const LOSS_HIGH: f32 = 0.10;
/// Below it (over the link's usual loss), the controller creeps up.
const LOSS_LOW: f32 = 0.02;
/// How fast the link's usual loss follows the reports (weight of each report). A radio link
/// loses a few percent whatever the rate; only loss above that says the rate is too high, so a
/// link that always drops 3 % is not held below what it carries.
const USUAL_LOSS_WEIGHT: f32 = 0.1;
/// Growth per second of clean reports.
const GROWTH_PER_SECOND: f64 = 0.08;
/// Growth per second above the rate the link delivered when it last overflowed, for
/// `OVERFLOW_MEMORY` after: that rate is a measurement, and growing past it at full pace only
/// schedules the next overflow (and the viewer's next freeze) a few seconds later. A link that
/// got faster is still found, more slowly, and at full pace once the memory has faded.
const GROWTH_PAST_OVERFLOW_PER_SECOND: f64 = 0.02;
const OVERFLOW_MEMORY: Duration = Duration::from_secs(30);
/// A report is news of an overflow only this long: the next one (about a second later, from
/// a browser) says whether the layer being sent now still overflows the link.
const OVERFLOW_NEWS_LASTS: Duration = Duration::from_secs(3);
/// A transport estimate that falls by more than this (percent) is the estimator reacting to
/// congestion (queueing delay or loss), not a starting guess being refined.
const FALL_PCT: u64 = 5;
/// How long evidence of congestion or loss is acted on.
const EVIDENCE_LASTS: Duration = Duration::from_secs(10);
/// After a cut the loss controller waits this long before cutting again: the reports in
/// between still describe the rate before the cut (a queue draining, reports in flight).
const CUT_HOLD: Duration = Duration::from_secs(2);
/// After the video starts on a layer (a join, a switch, a resume), reports for this long say
/// nothing about the layer's rate: its keyframe (and, on a join, the frames since it) went out
/// at once, a burst that a slow link's queue cannot hold, and the retransmissions that repair it
/// follow. The rate shows in the reports after.
const LAYER_START_GRACE: Duration = Duration::from_secs(2);
/// An overflow's cut aims this far under what the link delivered (percent), so its queue drains.
const CUT_UNDER_DELIVERED_PCT: u64 = 95;
/// With no report for this long (a paused viewer is sent no video to report on), the loss
/// controller grows as if the reports had been clean, so a paused viewer is tried again.
const SILENT_AFTER: Duration = Duration::from_secs(2);
/// A cut on a NACK burst with no loss report to say how far over the layer was assumes at most
/// this share (percent) got through: the layer does not fit, and the reports that follow refine it.
const NACK_CUT_DELIVERED_PCT: u64 = 85;
/// Growth per second while silent. Silence teaches nothing about the link: the growth only
/// schedules the next try (a paused viewer's resume), so it is twice the clean pace; the layer
/// selector doubles its wait after each try that fails.
const SILENT_GROWTH_PER_SECOND: f64 = 0.16;

/// The estimate a decision is made on, and how much it can be trusted to mean "too little".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub source: EstimateSource,
    pub bps: u64,
    /// The estimator lowered its estimate recently: the link pushed back. A transport
    /// estimate that only ever rose is a guess still being refined (it starts low and climbs
    /// while the link carries more), and a viewer is not moved down or paused on it.
    pub congested: bool,
    /// The viewer's latest report lost well above the link's usual loss: what is being sent now
    /// overflows the link. A link that always drops a few percent (radio) is not overflowing,
    /// whatever a transport estimator that reads that loss as congestion says.
    pub overflowing: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ViewerEstimate {
    transport: Option<(EstimateSource, u64)>,
    /// The loss controller's estimate; `None` until loss was first too high.
    loss_bps: Option<u64>,
    last_loss_report: Option<Instant>,
    last_fall: Option<Instant>,
    /// When the latest report said the link overflows (`None` when it did not).
    overflowed_at: Option<Instant>,
    last_cut: Option<Instant>,
    last_growth: Option<Instant>,
    /// The link's usual loss: a slow average of the reports, each counted at most `LOSS_HIGH`
    /// (an overflow's burst of loss is not the link's habit).
    usual_loss: f32,
    /// When the video last started on a layer (see `LAYER_START_GRACE`).
    layer_started: Option<Instant>,
    /// The latest report's loss, for operators.
    last_loss: Option<f32>,
    /// What the link delivered at its last overflow, and when.
    overflow_delivered: Option<(u64, Instant)>,
    /// NACKs in the first seconds on a layer: the fast word that it overflows.
    nacks: NackWatch,
    /// The highest loss reported since the video last started on a layer (for a NACK cut).
    start_loss: Option<f32>,
}

impl ViewerEstimate {
    /// An estimate from the transport (TWCC or REMB). REMB never replaces TWCC.
    pub fn handle_transport(&mut self, now: Instant, source: EstimateSource, bps: u64) {
        match self.transport {
            Some((EstimateSource::Twcc, _)) if source != EstimateSource::Twcc => {}
            previous => {
                if previous.is_some_and(|(s, before)| s == source && bps * 100 < before * (100 - FALL_PCT)) {
                    self.last_fall = Some(now);
                }
                self.transport = Some((source, bps));
            }
        }
    }

    /// The video started on a layer: its keyframe burst is on the way. `climbed`: from a lower
    /// layer, whose NACKs are then watched. A join or a resume replays a cached keyframe group,
    /// seconds of video at once, and its repair NACKs for long after; after a step down the
    /// viewer still NACKs what the overflow lost (its resends are capped, so those stay lost).
    pub fn handle_layer_start(&mut self, now: Instant, climbed: bool) {
        self.layer_started = Some(now);
        self.start_loss = None;
        self.nacks.handle_layer_start(now, climbed);
    }

    /// NACK messages received and video packets sent since the last call, while sending at
    /// `sending_bps`. NACKs that keep coming right after the video climbed to a layer mean the
    /// layer overflows: cut now, as two overflowing reports would some seconds later, to what the
    /// loss reported since the start says got through (or `NACK_CUT_DELIVERED_PCT`).
    pub fn handle_nacks(&mut self, now: Instant, nacks: u64, packets: u64, sending_bps: u64) {
        if !self.nacks.handle_counts(now, nacks, packets) {
            return;
        }
        let usual = self.usual_loss.min(0.5);
        let reported = self.start_loss.map_or(1.0, |l| f64::from((1.0 - l.min(1.0)) / (1.0 - usual)));
        let delivered = reported.clamp(0.1, NACK_CUT_DELIVERED_PCT as f64 / 100.0);
        self.cut(now, sending_bps, delivered);
    }

    /// An overflow: the estimate goes under what the link delivered (`delivered` of what was sent).
    fn cut(&mut self, now: Instant, sending_bps: u64, delivered: f64) {
        self.last_cut = Some(now);
        self.overflowed_at = Some(now);
        let base = self.loss_bps.unwrap_or(u64::MAX).min(sending_bps);
        let delivered_bps = (base as f64 * delivered) as u64;
        self.overflow_delivered = Some((delivered_bps, now));
        self.loss_bps = Some(delivered_bps / 100 * CUT_UNDER_DELIVERED_PCT);
    }

    /// A receiver report: `fraction_lost` of what was sent since the last one, while sending at
    /// `sending_bps`. `ceiling_bps` is the most this viewer could ever be sent (above it the loss
    /// controller has nothing left to say and lets go).
    pub fn handle_loss(&mut self, now: Instant, fraction_lost: f32, sending_bps: u64, ceiling_bps: u64) {
        let elapsed = self
            .last_loss_report
            .map_or(Duration::from_secs(1), |t| now.saturating_duration_since(t))
            .min(Duration::from_secs(5));
        self.last_loss_report = Some(now);
        self.last_loss = Some(fraction_lost);
        self.start_loss = Some(self.start_loss.map_or(fraction_lost, |l| l.max(fraction_lost)));
        if self.layer_started.is_some_and(|t| now.saturating_duration_since(t) < LAYER_START_GRACE) {
            self.overflowed_at = None;
            return;
        }
        let usual = self.usual_loss;
        let overflow = fraction_lost > LOSS_HIGH + usual;
        let overflowed_before = self.overflowed_at.is_some_and(|t| now.saturating_duration_since(t) < OVERFLOW_NEWS_LASTS);
        self.overflowed_at = overflow.then_some(now);
        self.usual_loss += USUAL_LOSS_WEIGHT * (fraction_lost.clamp(0.0, LOSS_HIGH) - usual);
        if overflow {
            // One report alone may be one keyframe's burst (any viewer's switch makes the host
            // send one, to everyone on that layer) overrunning a short queue: a rate that is too
            // high overflows report after report.
            if !overflowed_before || self.last_cut.is_some_and(|t| now.saturating_duration_since(t) < CUT_HOLD) {
                return;
            }
            // A rate limit delivers what it carries and drops the rest: what got through, less
            // the link's usual loss, is what the link carries. (This holds because a viewer's
            // resends are capped, `RESEND_SHARE_CAP` in the server: uncapped, the resends of an
            // overflow overflowed the link too and the media's loss read two to four times the
            // excess.) Never below a tenth: a report of total loss is a link gone, not one at 0.
            let delivered = f64::from((1.0 - fraction_lost.min(1.0)) / (1.0 - usual.min(0.5))).clamp(0.1, 1.0);
            self.cut(now, sending_bps, delivered);
        } else if fraction_lost < LOSS_LOW + usual {
            self.grow(now, elapsed, ceiling_bps, self.clean_pace(now));
        }
    }

    /// Time passed without reports: after `SILENT_AFTER`, grow as for clean ones.
    pub fn handle_silence(&mut self, now: Instant, ceiling_bps: u64) {
        let Some(report) = self.last_loss_report else {
            return;
        };
        if now.saturating_duration_since(report) < SILENT_AFTER {
            return;
        }
        let since = self.last_growth.map_or(report, |g| g.max(report));
        self.grow(now, now.saturating_duration_since(since).min(Duration::from_secs(1)), ceiling_bps, SILENT_GROWTH_PER_SECOND);
    }

    /// How fast clean reports grow the estimate now: slowly past the last overflow's rate.
    fn clean_pace(&self, now: Instant) -> f64 {
        let remembered = self.loss_bps.is_some_and(|bps| {
            self.overflow_delivered.is_some_and(|(delivered, at)| bps >= delivered && now.saturating_duration_since(at) < OVERFLOW_MEMORY)
        });
        if remembered {
            GROWTH_PAST_OVERFLOW_PER_SECOND
        } else {
            GROWTH_PER_SECOND
        }
    }

    fn grow(&mut self, now: Instant, elapsed: Duration, ceiling_bps: u64, pace: f64) {
        self.last_growth = Some(now);
        if let Some(bps) = self.loss_bps {
            let grown = bps as f64 * (1.0 + pace * elapsed.as_secs_f64());
            self.loss_bps = (grown < ceiling_bps as f64).then_some(grown as u64);
        }
    }

    /// The latest report's loss and the link's usual loss, in permille (for operators).
    pub fn loss_permille(&self) -> (Option<u16>, u16) {
        let permille = |f: f32| (f.clamp(0.0, 1.0) * 1000.0).round() as u16;
        (self.last_loss.map(permille), permille(self.usual_loss))
    }

    /// The estimate to act on, and its source: the transport's if it ever gave one, else the
    /// loss controller's, else none (nothing says the link is short: no constraint).
    pub fn current(&self) -> Option<(EstimateSource, u64)> {
        self.transport.or(self.loss_bps.map(|b| (EstimateSource::Loss, b)))
    }

    /// [`current`](Self::current) with how far it can be trusted at `now`.
    pub fn judged(&self, now: Instant) -> Option<Estimate> {
        let recent = |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < EVIDENCE_LASTS);
        let overflowing = self.overflowed_at.is_some_and(|t| now.saturating_duration_since(t) < OVERFLOW_NEWS_LASTS);
        self.current().map(|(source, bps)| Estimate {
            source,
            bps,
            // The loss controller only speaks after loss: its word is always evidence.
            congested: source == EstimateSource::Loss || recent(self.last_fall),
            overflowing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_that_always_loses_3_percent_still_grows_after_a_cut() {
        let t0 = Instant::now();
        let mut e = ViewerEstimate::default();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Twenty seconds of the link's usual 3 %, then an overflow's 30 %, two reports in a row,
        // cuts the estimate.
        for s in 0..20 {
            e.handle_loss(at(s), 0.03, 300_000, 3_000_000);
        }
        e.handle_loss(at(20), 0.3, 400_000, 3_000_000);
        assert_eq!(e.current(), None, "one report could be a keyframe's burst");
        e.handle_loss(at(21), 0.3, 400_000, 3_000_000);
        let cut = e.current().expect("cut").1;
        // 30 % lost where about 3.4 % is usual (the first overflow counted, capped at 10 %): the
        // link delivered 0.7 / 0.966 of 400 kbit/s; 95 % of that.
        assert!((274_000..=276_000).contains(&cut), "{cut}");
        // Back to the usual 3 %: not congestion, so it grows again.
        for s in 22..32 {
            e.handle_loss(at(s), 0.03, 300_000, 3_000_000);
        }
        let grown = e.current().expect("still constrained").1;
        // (Slowly: 2 % a second past what the link delivered at the overflow, see below.)
        assert!(grown > cut * 12 / 10, "grew from {cut} to {grown} in 10 s of usual loss");
        // Loss well over the usual still cuts.
        e.handle_loss(at(32), 0.2, grown, 3_000_000);
        e.handle_loss(at(33), 0.2, grown, 3_000_000);
        assert!(e.current().expect("cut").1 < grown);
    }

    #[test]
    fn twcc_outranks_remb_and_remb_outranks_loss() {
        let t0 = Instant::now();
        let mut e = ViewerEstimate::default();
        assert_eq!(e.current(), None);
        e.handle_loss(t0, 0.2, 1_000_000, 3_000_000);
        e.handle_loss(t0 + Duration::from_secs(1), 0.2, 1_000_000, 3_000_000);
        assert!(e.current().is_some_and(|(s, bps)| s == EstimateSource::Loss && bps < 800_000), "{:?}", e.current());
        e.handle_transport(t0, EstimateSource::Remb, 700_000);
        assert_eq!(e.current(), Some((EstimateSource::Remb, 700_000)));
        e.handle_transport(t0, EstimateSource::Twcc, 2_000_000);
        e.handle_transport(t0, EstimateSource::Remb, 100_000);
        assert_eq!(e.current(), Some((EstimateSource::Twcc, 2_000_000)), "REMB does not replace TWCC");
    }

    #[test]
    fn the_loss_controller_backs_off_on_loss_and_lets_go_after_clean_reports() {
        let t0 = Instant::now();
        let mut e = ViewerEstimate::default();
        e.handle_loss(t0, 0.01, 2_000_000, 3_000_000);
        assert_eq!(e.current(), None, "clean reports from the start: no constraint");
        e.handle_loss(t0 + Duration::from_secs(1), 0.3, 2_000_000, 3_000_000);
        e.handle_loss(t0 + Duration::from_secs(2), 0.3, 2_000_000, 3_000_000);
        // To what the link delivered (70 % of 2 Mbit/s, over a usual loss of about 1 %), less 5 %.
        let cut = e.current().map(|(_, bps)| bps).unwrap_or(0);
        assert!((1_340_000..=1_350_000).contains(&cut), "{cut}");
        e.handle_loss(t0 + Duration::from_millis(2500), 0.5, 1_700_000, 3_000_000);
        assert_eq!(e.current(), Some((EstimateSource::Loss, cut)), "no second cut within the hold");
        e.handle_loss(t0 + Duration::from_secs(3), 0.07, 1_700_000, 3_000_000);
        assert_eq!(e.current(), Some((EstimateSource::Loss, cut)), "between the thresholds: hold");
        let mut at = t0 + Duration::from_secs(3);
        let mut steps = 0;
        while e.current().is_some() {
            at += Duration::from_secs(1);
            e.handle_loss(at, 0.0, 1_700_000, 3_000_000);
            steps += 1;
            assert!(steps < 45, "clean reports must lift the constraint");
        }
        assert!(steps >= 30, "growth is gradual, 2 % a second past the overflow's rate for 30 s ({steps} steps)");
    }

    #[test]
    fn a_silent_viewer_is_tried_again() {
        let t0 = Instant::now();
        let mut e = ViewerEstimate::default();
        e.handle_loss(t0, 0.5, 200_000, 3_000_000);
        e.handle_loss(t0 + Duration::from_secs(1), 0.5, 200_000, 3_000_000);
        let cut = e.current().map(|(_, bps)| bps).unwrap_or(0);
        assert!((95_000..=97_000).contains(&cut), "{cut}");
        e.handle_silence(t0 + Duration::from_secs(2), 3_000_000);
        assert_eq!(e.current(), Some((EstimateSource::Loss, cut)), "a second of quiet is not silence");
        let mut at = t0 + Duration::from_secs(3);
        for _ in 0..20 {
            e.handle_silence(at, 3_000_000);
            at += Duration::from_secs(1);
        }
        assert!(e.current().is_some_and(|(_, bps)| bps > 300_000), "{:?}", e.current());
    }

    #[test]
    fn a_rising_estimate_is_no_evidence_and_a_falling_one_is_for_a_while() {
        let t0 = Instant::now();
        let mut e = ViewerEstimate::default();
        for (i, bps) in [1_000_000, 1_100_000, 1_500_000, 1_480_000].into_iter().enumerate() {
            e.handle_transport(t0 + Duration::from_secs(i as u64), EstimateSource::Twcc, bps);
        }
        let judged = e.judged(t0 + Duration::from_secs(4)).expect("an estimate");
        assert!(!judged.congested, "climbing (and a 1 % dip) is a guess being refined");
        e.handle_transport(t0 + Duration::from_secs(5), EstimateSource::Twcc, 600_000);
        assert!(e.judged(t0 + Duration::from_secs(6)).is_some_and(|j| j.congested && !j.overflowing));
        assert!(e.judged(t0 + Duration::from_secs(16)).is_some_and(|j| !j.congested), "evidence fades");
    }

    #[test]
    fn the_keyframe_bursts_loss_right_after_a_layer_starts_is_not_taken_for_the_rate() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut e = ViewerEstimate::default();
        e.handle_layer_start(at(0), false);
        e.handle_loss(at(900), 0.4, 500_000, 3_000_000);
        assert_eq!(e.current(), None, "the burst's loss cuts nothing");
        assert!(e.judged(at(1000)).is_none_or(|j| !j.overflowing));
        e.handle_loss(at(1900), 0.3, 500_000, 3_000_000);
        assert_eq!(e.current(), None, "nor the repair's");
        // Past the grace the layer's own rate shows: 30 % lost, report after report, is an overflow.
        e.handle_loss(at(2900), 0.3, 500_000, 3_000_000);
        e.handle_loss(at(3900), 0.3, 500_000, 3_000_000);
        let cut = e.current().map(|(_, bps)| bps).unwrap_or(0);
        assert!((335_000..=336_500).contains(&cut), "cut to 95 % of the 350 kbit/s delivered (over 1 % usual): {cut}");
    }

    #[test]
    fn a_cut_goes_to_what_the_link_delivered_however_far_over() {
        let mut e = ViewerEstimate::default();
        // 2 Mbit/s into a 300 kbit/s link: 85 % lost, 300 kbit/s delivered; 95 % of that.
        let t0 = Instant::now();
        e.handle_loss(t0, 0.85, 2_000_000, 3_000_000);
        e.handle_loss(t0 + Duration::from_secs(1), 0.85, 2_000_000, 3_000_000);
        let cut = e.current().map(|(_, bps)| bps).unwrap_or(0);
        assert!((280_000..=290_000).contains(&cut), "{cut}");
    }

    #[test]
    fn past_what_the_link_delivered_at_its_last_overflow_growth_is_slow_for_a_while() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut e = ViewerEstimate::default();
        // 2 Mbit/s into a link that delivers 1 Mbit/s: cut to 950 kbit/s.
        e.handle_loss(at(0), 0.5, 2_000_000, 3_000_000);
        e.handle_loss(at(1), 0.5, 2_000_000, 3_000_000);
        let cut = e.current().map(|(_, bps)| bps).unwrap_or(0);
        assert!((940_000..=960_000).contains(&cut), "{cut}");
        for s in 2..22 {
            e.handle_loss(at(s), 0.0, 1_000_000, 3_000_000);
        }
        let after_20s = e.current().map(|(_, bps)| bps).unwrap_or(u64::MAX);
        // At 8 % a second throughout it would be 4.7 times the cut (and long past the ceiling).
        assert!(after_20s < 1_600_000, "20 s after the overflow: {after_20s}");
        // Once the memory has faded, the full pace again.
        for s in 22..42 {
            e.handle_loss(at(s), 0.0, 1_000_000, 3_000_000);
        }
        let after_40s = e.current().map_or(u64::MAX, |(_, bps)| bps);
        assert!(after_40s > after_20s * 2, "40 s after: {after_40s}");
    }

    #[test]
    fn only_the_latest_report_says_whether_the_link_overflows() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut e = ViewerEstimate::default();
        e.handle_transport(t0, EstimateSource::Twcc, 600_000);
        for s in 0..10 {
            e.handle_loss(at(s), 0.02, 300_000, 3_000_000);
        }
        assert!(e.judged(at(10)).is_some_and(|j| !j.overflowing), "the link's usual 2 % is no overflow");
        e.handle_loss(at(10), 0.3, 300_000, 3_000_000);
        assert!(e.judged(at(11)).is_some_and(|j| j.overflowing));
        assert!(e.judged(at(14)).is_some_and(|j| !j.overflowing), "old news after 3 s without a report");
        e.handle_loss(at(12), 0.03, 300_000, 3_000_000);
        assert!(e.judged(at(12)).is_some_and(|j| !j.overflowing), "the next report is clean");
    }
}
