//! How much a viewer's link can take, from whatever feedback that viewer gives.
//!
//! Browsers negotiate transport-wide congestion control (TWCC): the transport's send-side
//! estimator reads it and is the best source. aiortc and some WHEP players send only REMB (the
//! receiver's own estimate). Some players send neither, only receiver reports: for those a
//! loss-based controller (the loss half of Google's congestion control: back off above 10 %
//! loss, creep up below 2 %) keeps a viewer whose link drops a tenth of its packets from
//! staying on a layer it cannot carry. A source that has spoken is preferred over a weaker one
//! for the rest of the session.

use std::time::{Duration, Instant};

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

/// Above this loss fraction the loss controller backs off.
const LOSS_HIGH: f32 = 0.10;
/// Below it, the controller creeps up.
const LOSS_LOW: f32 = 0.02;
/// Growth per second of clean reports.
const GROWTH_PER_SECOND: f64 = 0.08;
/// A report above this loss makes the link lossy for `EVIDENCE_LASTS`.
const LOSS_EVIDENCE: f32 = 0.05;
/// A transport estimate that falls by more than this (percent) is the estimator reacting to
/// congestion (queueing delay or loss), not a starting guess being refined.
const FALL_PCT: u64 = 5;
/// How long evidence of congestion or loss is acted on.
const EVIDENCE_LASTS: Duration = Duration::from_secs(10);

/// The estimate a decision is made on, and how much it can be trusted to mean "too little".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub source: EstimateSource,
    pub bps: u64,
    /// The estimator lowered its estimate recently: the link pushed back. A transport
    /// estimate that only ever rose is a guess still being refined (it starts low and climbs
    /// while the link carries more), and a viewer is not moved down or paused on it.
    pub congested: bool,
    /// The viewer reported real loss recently: the link is dropping packets.
    pub lossy: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ViewerEstimate {
    transport: Option<(EstimateSource, u64)>,
    /// The loss controller's estimate; `None` until loss was first too high.
    loss_bps: Option<u64>,
    last_loss_report: Option<Instant>,
    last_fall: Option<Instant>,
    last_high_loss: Option<Instant>,
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

    /// A receiver report: `fraction_lost` of what was sent since the last one, while sending at
    /// `sending_bps`. `ceiling_bps` is the most this viewer could ever be sent (above it the loss
    /// controller has nothing left to say and lets go).
    pub fn handle_loss(&mut self, now: Instant, fraction_lost: f32, sending_bps: u64, ceiling_bps: u64) {
        let elapsed = self
            .last_loss_report
            .map_or(Duration::from_secs(1), |t| now.saturating_duration_since(t))
            .min(Duration::from_secs(5));
        self.last_loss_report = Some(now);
        if fraction_lost > LOSS_EVIDENCE {
            self.last_high_loss = Some(now);
        }
        if fraction_lost > LOSS_HIGH {
            let lost_permille = (fraction_lost.min(1.0) * 1000.0).round() as u64;
            let base = self.loss_bps.unwrap_or(u64::MAX).min(sending_bps);
            self.loss_bps = Some(base / 1000 * (1000 - lost_permille / 2));
        } else if fraction_lost < LOSS_LOW {
            if let Some(bps) = self.loss_bps {
                let grown = bps as f64 * (1.0 + GROWTH_PER_SECOND * elapsed.as_secs_f64());
                self.loss_bps = (grown < ceiling_bps as f64).then_some(grown as u64);
            }
        }
    }

    /// The estimate to act on, and its source: the transport's if it ever gave one, else the
    /// loss controller's, else none (nothing says the link is short: no constraint).
    pub fn current(&self) -> Option<(EstimateSource, u64)> {
        self.transport.or(self.loss_bps.map(|b| (EstimateSource::Loss, b)))
    }

    /// [`current`](Self::current) with how far it can be trusted at `now`.
    pub fn judged(&self, now: Instant) -> Option<Estimate> {
        let recent = |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < EVIDENCE_LASTS);
        let lossy = recent(self.last_high_loss);
        self.current().map(|(source, bps)| Estimate {
            source,
            bps,
            // The loss controller only speaks after loss: its word is always evidence.
            congested: source == EstimateSource::Loss || recent(self.last_fall),
            lossy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twcc_outranks_remb_and_remb_outranks_loss() {
        let t0 = Instant::now();
        let mut e = ViewerEstimate::default();
        assert_eq!(e.current(), None);
        e.handle_loss(t0, 0.2, 1_000_000, 3_000_000);
        assert_eq!(e.current(), Some((EstimateSource::Loss, 900_000)));
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
        assert_eq!(e.current(), Some((EstimateSource::Loss, 1_700_000)));
        e.handle_loss(t0 + Duration::from_secs(2), 0.05, 1_700_000, 3_000_000);
        assert_eq!(e.current(), Some((EstimateSource::Loss, 1_700_000)), "between the thresholds: hold");
        let mut at = t0 + Duration::from_secs(2);
        let mut steps = 0;
        while e.current().is_some() {
            at += Duration::from_secs(1);
            e.handle_loss(at, 0.0, 1_700_000, 3_000_000);
            steps += 1;
            assert!(steps < 20, "clean reports must lift the constraint");
        }
        assert!(steps >= 5, "growth is gradual, 8 % a second ({steps} steps)");
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
        assert!(e.judged(t0 + Duration::from_secs(6)).is_some_and(|j| j.congested && !j.lossy));
        assert!(e.judged(t0 + Duration::from_secs(16)).is_some_and(|j| !j.congested), "evidence fades");
        e.handle_loss(t0 + Duration::from_secs(17), 0.3, 600_000, 3_000_000);
        assert!(e.judged(t0 + Duration::from_secs(18)).is_some_and(|j| j.lossy));
    }
}
