//! Which of the host's layers one viewer should get, decided a few times a second from that
//! viewer's bandwidth estimate, its cap and the layers' measured bitrates.
//!
//! Going down is immediate once the estimator has pushed back (a link that cannot carry the
//! layer is queueing or losing packets now); going up waits until the higher layer has fit
//! with a margin for a while, and not right after a step down, so an estimate that wobbles
//! around a layer's bitrate does not flap between two layers (each switch costs a keyframe).
//! A climb undone within seconds doubles the wait before the next one.
//! When even the lowest layer does not fit by a wide margin for a while, and the viewer's latest
//! report says the lowest layer still overflows its link (loss well above the link's usual),
//! the video pauses; audio and the data channel go on. A low estimate alone pauses nobody: a
//! transport estimator reads a radio link's steady few percent of loss as congestion, and a
//! viewer whose link carries the lowest layer would lose its picture for nothing. An estimator that is still climbing from its
//! starting guess moves nobody down: on a fast link it is below the bitrate it is carrying.
//! A host with one layer is never paused (see `decide`).
//! It never reads a clock: `now` comes in.

use std::time::{Duration, Instant};

use crate::estimate::Estimate;
use crate::layer_cap::LayerCap;

/// One layer as the selector sees it, in a list ranked lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerView {
    /// The forwarder's slot for the layer (stable while the host is live).
    pub slot: u8,
    pub bitrate_bps: u64,
    pub height: Option<u32>,
}

/// What a viewer is to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Layer(u8),
    Paused,
}

#[derive(Debug, Clone)]
pub struct SelectorConfig {
    /// Adapt to the estimate at all. Off: the highest layer the cap allows, never paused.
    pub adapt: bool,
    /// Kept free for audio (and RTCP) when fitting video under the estimate.
    pub audio_bps: u64,
    /// A layer counts as fitting for a step up only with this much headroom (percent).
    pub up_margin_pct: u64,
    /// How long a higher layer must keep fitting before the step up.
    pub up_hold: Duration,
    /// No step up this soon after a step down.
    pub after_down_hold: Duration,
    /// A step down this soon after a step up means the climb failed: the wait before the next
    /// step up doubles (up to `max_climb_backoff`), so an estimator that overshoots (the loss
    /// controller learns a link's rate only by overrunning it) costs the viewer a freeze every
    /// few minutes instead of every few seconds. A layer held this long resets the wait.
    pub failed_climb_window: Duration,
    pub max_climb_backoff: Duration,
    /// How long the lowest layer must not fit before the video pauses.
    pub pause_after: Duration,
    /// The lowest layer counts as not fitting, for a pause, only when the estimate is short
    /// of even this share of it (percent): an estimator tracking a link just about the lowest
    /// layer's size wobbles around it, and each pause costs the viewer its picture for seconds.
    pub pause_below_pct: u64,
    /// How long the lowest layer must fit (with the margin) before a paused video resumes.
    pub resume_hold: Duration,
    /// After the viewer's first decision the estimate is not acted on this long: the transport's
    /// first estimate is its configured starting guess, not a measurement.
    pub startup_grace: Duration,
    /// A viewer starts on the highest layer up to this bitrate (or lower, if its estimate says
    /// so with evidence), and climbs from there as its link allows: starting a phone on a slow
    /// link at the top layer would bury it in its first seconds.
    pub start_bps: u64,
}

impl Default for SelectorConfig {
    fn default() -> Self {
        Self {
            adapt: true,
            audio_bps: 64_000,
            up_margin_pct: 115,
            up_hold: Duration::from_secs(2),
            after_down_hold: Duration::from_secs(4),
            failed_climb_window: Duration::from_secs(10),
            max_climb_backoff: Duration::from_secs(64),
            pause_after: Duration::from_secs(2),
            pause_below_pct: 75,
            resume_hold: Duration::from_secs(2),
            startup_grace: Duration::from_secs(2),
            start_bps: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct LayerSelector {
    choice: Option<Choice>,
    started: Option<Instant>,
    up_since: Option<Instant>,
    below_since: Option<Instant>,
    last_down: Option<Instant>,
    last_up: Option<Instant>,
    /// The current wait after a step down before climbing again (None: `after_down_hold`).
    climb_backoff: Option<Duration>,
    pauses: u64,
}

impl LayerSelector {
    pub fn choice(&self) -> Option<Choice> {
        self.choice
    }

    /// Times the video was paused for lack of bandwidth.
    pub fn pauses(&self) -> u64 {
        self.pauses
    }

    /// The last move was a climb (not undone since).
    pub(crate) fn climbed_last(&self) -> bool {
        self.last_up.is_some_and(|up| self.last_down.is_none_or(|down| up > down))
    }

    /// Decide again. Returns the new choice when it changed.
    pub fn decide(
        &mut self,
        now: Instant,
        layers: &[LayerView],
        cap: LayerCap,
        estimate: Option<Estimate>,
        config: &SelectorConfig,
    ) -> Option<Choice> {
        if layers.is_empty() {
            return None;
        }
        let top = cap.top_rank(layers.iter().map(|l| l.height));
        // One layer: nothing to fit. Pausing it on the loss controller's word would take the
        // picture from a viewer whose link merely dips, for as long as the controller takes to
        // grow back (seconds per step); such a viewer keeps its picture and recovers through
        // its bounded queue and keyframes, as before simulcast.
        let next = if !config.adapt || layers.len() == 1 {
            Choice::Layer(layers[top].slot)
        } else {
            self.adapt(now, layers, top, estimate, config)
        };
        if self.choice == Some(next) {
            return None;
        }
        if next == Choice::Paused {
            self.pauses += 1;
        }
        self.choice = Some(next);
        Some(next)
    }

    fn adapt(&mut self, now: Instant, layers: &[LayerView], top: usize, estimate: Option<Estimate>, config: &SelectorConfig) -> Choice {
        let budget = estimate.map(|e| e.bps.saturating_sub(config.audio_bps));
        let congested = estimate.is_some_and(|e| e.congested);
        let overflowing = estimate.is_some_and(|e| e.overflowing);
        let fits = |rank: usize, margin_pct: u64| {
            budget.is_none_or(|b| layers[rank].bitrate_bps.saturating_mul(margin_pct) / 100 <= b)
        };
        let best = |margin_pct: u64| (0..=top).rev().find(|&r| fits(r, margin_pct));
        let current_rank = match self.choice {
            Some(Choice::Layer(slot)) => layers.iter().position(|l| l.slot == slot),
            _ => None,
        };
        let started = *self.started.get_or_insert(now);
        let in_grace = now.saturating_duration_since(started) < config.startup_grace;
        match (self.choice, current_rank) {
            // First decision, or the layer being sent is gone: the best that fits the start
            // budget (and the estimate, if it has pushed back), never a pause (a viewer is not
            // left without a picture on a guess).
            (None, _) | (Some(Choice::Layer(_)), None) => {
                self.clear_timers();
                let start = budget.filter(|_| congested).unwrap_or(u64::MAX).min(config.start_bps);
                let rank = (0..=top).rev().find(|&r| layers[r].bitrate_bps <= start).unwrap_or(0);
                Choice::Layer(layers[rank].slot)
            }
            (Some(Choice::Paused), _) => {
                if !fits(0, config.up_margin_pct) {
                    self.up_since = None;
                    return Choice::Paused;
                }
                // A resume that failed before waits out the doubled hold first.
                let backoff = self.climb_backoff.unwrap_or(Duration::ZERO);
                if self.last_down.is_some_and(|t| now.saturating_duration_since(t) < backoff) {
                    return Choice::Paused;
                }
                let since = *self.up_since.get_or_insert(now);
                if now.saturating_duration_since(since) < config.resume_hold {
                    return Choice::Paused;
                }
                self.clear_timers();
                self.last_up = Some(now);
                Choice::Layer(layers[best(config.up_margin_pct).unwrap_or(0)].slot)
            }
            (Some(Choice::Layer(slot)), Some(rank)) => {
                if rank > top {
                    // The viewer lowered its cap: at once, whatever the estimate.
                    self.clear_timers();
                    return Choice::Layer(layers[top].slot);
                }
                if in_grace {
                    return Choice::Layer(slot);
                }
                if congested && !fits(rank, 100) {
                    self.up_since = None;
                    if let Some(lower) = best(100) {
                        self.below_since = None;
                        self.stepped_down(now, config);
                        return Choice::Layer(layers[lower].slot);
                    }
                    // Not even the lowest fits: go to it now, pause if it stays so.
                    let since = *self.below_since.get_or_insert(now);
                    if rank > 0 {
                        self.stepped_down(now, config);
                        return Choice::Layer(layers[0].slot);
                    }
                    if overflowing && !fits(0, config.pause_below_pct) && now.saturating_duration_since(since) >= config.pause_after {
                        self.clear_timers();
                        self.stepped_down(now, config);
                        return Choice::Paused;
                    }
                    return Choice::Layer(slot);
                }
                self.below_since = None;
                let higher = best(config.up_margin_pct).filter(|&r| r > rank);
                if self.last_up.is_some_and(|t| now.saturating_duration_since(t) >= config.failed_climb_window) {
                    // The last climb held: the next one waits the plain hold again.
                    self.climb_backoff = None;
                    self.last_up = None;
                }
                let hold = self.climb_backoff.unwrap_or(config.after_down_hold);
                let settled = self.last_down.is_none_or(|t| now.saturating_duration_since(t) >= hold);
                match higher {
                    Some(r) if settled => {
                        let since = *self.up_since.get_or_insert(now);
                        if now.saturating_duration_since(since) >= config.up_hold {
                            self.up_since = None;
                            self.last_up = Some(now);
                            Choice::Layer(layers[r].slot)
                        } else {
                            Choice::Layer(slot)
                        }
                    }
                    _ => {
                        self.up_since = None;
                        Choice::Layer(slot)
                    }
                }
            }
        }
    }

    /// A step down (or a pause): it starts the hold before climbing again, and doubles that
    /// hold when it undoes a recent climb.
    fn stepped_down(&mut self, now: Instant, config: &SelectorConfig) {
        if self.last_up.is_some_and(|t| now.saturating_duration_since(t) < config.failed_climb_window) {
            let doubled = self.climb_backoff.unwrap_or(config.after_down_hold).saturating_mul(2);
            self.climb_backoff = Some(doubled.min(config.max_climb_backoff));
        }
        self.last_up = None;
        self.last_down = Some(now);
    }

    fn clear_timers(&mut self) {
        self.up_since = None;
        self.below_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::EstimateSource;

    fn layers() -> Vec<LayerView> {
        [(0, 150_000, 180), (1, 500_000, 360), (2, 1_700_000, 720)].map(|(slot, bitrate_bps, h)| LayerView { slot, bitrate_bps, height: Some(h) }).to_vec()
    }

    /// An estimator that overshoots, as the loss controller does: below the top layer it sees
    /// no loss and grows until the top layer fits; on the top layer the link overflows and it
    /// falls back under it. Returns how many times the viewer climbed to the top in `secs`.
    fn climbs_with_an_overshooting_estimator(secs: u64) -> usize {
        let config = SelectorConfig::default();
        let layers = layers();
        let mut selector = LayerSelector::default();
        let start = Instant::now();
        let mut climbs = 0;
        for tick in 0..secs * 4 {
            let now = start + Duration::from_millis(250 * tick);
            let on_top = selector.choice() == Some(Choice::Layer(2));
            let estimate = if on_top {
                Estimate { source: EstimateSource::Loss, bps: 1_000_000, congested: true, overflowing: true }
            } else {
                Estimate { source: EstimateSource::Loss, bps: 5_000_000, congested: false, overflowing: false }
            };
            if let Some(Choice::Layer(2)) = selector.decide(now, &layers, LayerCap::default(), Some(estimate), &config) {
                climbs += 1;
            }
        }
        climbs
    }

    #[test]
    fn failed_climbs_back_off_so_an_overshooting_estimator_costs_few_switches() {
        // Without the backoff a climb would come every 6 s (4 s hold, 2 s of fitting): 20 in
        // two minutes. With it the holds go 8, 16, 32, 64 s.
        let climbs = climbs_with_an_overshooting_estimator(120);
        assert!((3..=6).contains(&climbs), "{climbs} climbs in 120 s");
    }

    #[test]
    fn a_climb_that_holds_resets_the_backoff() {
        let config = SelectorConfig::default();
        let layers = layers();
        let mut selector = LayerSelector::default();
        let start = Instant::now();
        let at = |s: f64| start + Duration::from_secs_f64(s);
        let fits_all = Estimate { source: EstimateSource::Loss, bps: 5_000_000, congested: false, overflowing: false };
        let pushed_back = Estimate { source: EstimateSource::Loss, bps: 1_000_000, congested: true, overflowing: true };
        let mut t = 0.0;
        // Decide every 250 ms with the estimate `e` for `secs`, or until the first change if
        // `first` (then returned, with when it came).
        let run = |selector: &mut LayerSelector, t: &mut f64, secs: f64, e: Estimate, first: bool| {
            let until = *t + secs;
            let mut last = None;
            while *t < until {
                let change = selector.decide(at(*t), &layers, LayerCap::default(), Some(e), &config);
                *t += 0.25;
                if let Some(c) = change {
                    last = Some((*t - 0.25, c));
                    if first {
                        break;
                    }
                }
            }
            last
        };
        assert_eq!(run(&mut selector, &mut t, 1.0, fits_all, true).map(|c| c.1), Some(Choice::Layer(1)), "starts on the half layer");
        // Two failed climbs: the hold is now 16 s.
        for _ in 0..2 {
            let up = run(&mut selector, &mut t, 30.0, fits_all, true).expect("climbed");
            assert_eq!(up.1, Choice::Layer(2));
            run(&mut selector, &mut t, 1.0, pushed_back, false);
        }
        assert_eq!(selector.climb_backoff, Some(Duration::from_secs(16)));
        // The third climb holds for longer than the failed-climb window: back to the plain hold.
        run(&mut selector, &mut t, 40.0, fits_all, true).expect("climbed");
        assert_eq!(selector.choice(), Some(Choice::Layer(2)));
        run(&mut selector, &mut t, 11.0, fits_all, false);
        run(&mut selector, &mut t, 1.0, pushed_back, false);
        assert_eq!(selector.climb_backoff, None, "a held climb resets the wait");
        let down_at = t;
        let up = run(&mut selector, &mut t, 30.0, fits_all, true).expect("climbed again");
        let waited = up.0 - down_at;
        assert!(waited < 8.0, "climbed after {waited} s, the plain hold and fitting time");
    }
}
