//! Which of the host's layers one viewer should get, decided a few times a second from that
//! viewer's bandwidth estimate, its cap and the layers' measured bitrates.
//!
//! Going down is immediate once the estimator has pushed back (a link that cannot carry the
//! layer is queueing or losing packets now); going up waits until the higher layer has fit
//! with a margin for a while, and not right after a step down, so an estimate that wobbles
//! around a layer's bitrate does not flap between two layers (each switch costs a keyframe).
//! When even the lowest layer does not fit by a wide margin, and the viewer is losing packets,
//! for a while, the video pauses; audio and the data channel go on. An estimator that is still climbing from its
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
        let lossy = estimate.is_some_and(|e| e.lossy);
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
                let since = *self.up_since.get_or_insert(now);
                if now.saturating_duration_since(since) < config.resume_hold {
                    return Choice::Paused;
                }
                self.clear_timers();
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
                        self.last_down = Some(now);
                        return Choice::Layer(layers[lower].slot);
                    }
                    // Not even the lowest fits: go to it now, pause if it stays so.
                    let since = *self.below_since.get_or_insert(now);
                    if rank > 0 {
                        self.last_down = Some(now);
                        return Choice::Layer(layers[0].slot);
                    }
                    if lossy && !fits(0, config.pause_below_pct) && now.saturating_duration_since(since) >= config.pause_after {
                        self.clear_timers();
                        self.last_down = Some(now);
                        return Choice::Paused;
                    }
                    return Choice::Layer(slot);
                }
                self.below_since = None;
                let higher = best(config.up_margin_pct).filter(|&r| r > rank);
                let settled = self.last_down.is_none_or(|t| now.saturating_duration_since(t) >= config.after_down_hold);
                match higher {
                    Some(r) if settled => {
                        let since = *self.up_since.get_or_insert(now);
                        if now.saturating_duration_since(since) >= config.up_hold {
                            self.up_since = None;
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

    fn clear_timers(&mut self) {
        self.up_since = None;
        self.below_since = None;
    }
}
