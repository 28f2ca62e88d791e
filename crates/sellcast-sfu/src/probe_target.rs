//! What a viewer's transport-wide estimator should aim for: the `desired` bitrate it probes
//! towards (the best layer the viewer's cap allows), and the `minimum` it keeps the link
//! carrying with padding while the media sends less (what the next layer up needs).
//!
//! Why the minimum: a send-side estimator (str0m's, like Google's) only trusts what it saw
//! acknowledged, so a viewer receiving the quarter layer has an estimate tied to the quarter
//! layer's bitrate and never learns that its link would carry the half one. Padding up to the
//! next layer's need, bounded by the estimate itself and stopped on overuse, lets the
//! estimate grow into it; once the viewer is on the top layer its media holds the estimate
//! and no padding is asked for.

use crate::layer_selector::{Choice, LayerView, SelectorConfig};

/// Above the top layer's bitrate, the estimator probes this much further (percent).
const DESIRED_HEADROOM_PCT: u64 = 120;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeTarget {
    /// Keep sending at least this (media plus padding), as far as the estimate allows.
    pub minimum_bps: u64,
    /// Probe towards this.
    pub desired_bps: u64,
}

impl ProbeTarget {
    /// For a viewer whose layer is `choice` among `layers` (ranked lowest first), allowed up to
    /// rank `top`. None before the layers' bitrates are known.
    pub fn for_viewer(layers: &[LayerView], choice: Option<Choice>, top: usize, config: &SelectorConfig) -> Option<Self> {
        let top_layer = layers.get(top)?;
        if top_layer.bitrate_bps == 0 {
            return None;
        }
        // What a step up to `rank` needs in the selector's eyes: the layer with its margin, and audio.
        let need = |rank: usize| layers.get(rank).map_or(0, |l| l.bitrate_bps * config.up_margin_pct / 100 + config.audio_bps);
        let desired_bps = (top_layer.bitrate_bps * DESIRED_HEADROOM_PCT / 100 + config.audio_bps).max(need(top));
        let next = match choice {
            Some(Choice::Paused) => Some(0),
            Some(Choice::Layer(slot)) => layers.iter().position(|l| l.slot == slot).map(|r| r + 1).filter(|&r| r <= top),
            None => None,
        };
        let minimum_bps = next.map_or(0, need).min(desired_bps);
        Some(Self { minimum_bps, desired_bps })
    }

    /// Worth telling the estimator again: a change of a tenth or more in either rate (each
    /// raise of `desired` may start a probe), or the minimum turned on or off.
    pub fn differs_from(&self, last: &Self) -> bool {
        let moved = |a: u64, b: u64| a.abs_diff(b) * 10 > b;
        moved(self.desired_bps, last.desired_bps) || moved(self.minimum_bps, last.minimum_bps) || (self.minimum_bps == 0) != (last.minimum_bps == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> Vec<LayerView> {
        [(5, 150_000), (3, 500_000), (7, 1_800_000)].map(|(slot, bitrate_bps)| LayerView { slot, bitrate_bps, height: None }).to_vec()
    }

    #[test]
    fn a_viewer_below_the_top_pads_towards_the_next_layers_need() {
        let config = SelectorConfig::default();
        let t = ProbeTarget::for_viewer(&layers(), Some(Choice::Layer(5)), 2, &config).expect("target");
        assert_eq!(t.minimum_bps, 500_000 * 115 / 100 + 64_000);
        assert_eq!(t.desired_bps, 1_800_000 * 120 / 100 + 64_000);
    }

    #[test]
    fn a_viewer_on_its_top_layer_asks_for_no_padding() {
        let config = SelectorConfig::default();
        let on_top = ProbeTarget::for_viewer(&layers(), Some(Choice::Layer(7)), 2, &config).expect("target");
        assert_eq!(on_top.minimum_bps, 0);
        // A cap to the half layer makes the half layer its top.
        let capped = ProbeTarget::for_viewer(&layers(), Some(Choice::Layer(3)), 1, &config).expect("target");
        assert_eq!(capped, ProbeTarget { minimum_bps: 0, desired_bps: 500_000 * 120 / 100 + 64_000 });
    }

    #[test]
    fn a_paused_viewer_pads_towards_the_lowest_layer() {
        let config = SelectorConfig::default();
        let t = ProbeTarget::for_viewer(&layers(), Some(Choice::Paused), 2, &config).expect("target");
        assert_eq!(t.minimum_bps, 150_000 * 115 / 100 + 64_000);
    }

    #[test]
    fn no_target_before_the_layers_have_a_bitrate() {
        let mut unmeasured = layers();
        unmeasured[2].bitrate_bps = 0;
        assert_eq!(ProbeTarget::for_viewer(&unmeasured, None, 2, &SelectorConfig::default()), None);
    }

    #[test]
    fn small_changes_are_not_said_again() {
        let last = ProbeTarget { minimum_bps: 600_000, desired_bps: 2_000_000 };
        assert!(!ProbeTarget { minimum_bps: 620_000, desired_bps: 2_100_000 }.differs_from(&last));
        assert!(ProbeTarget { minimum_bps: 700_000, desired_bps: 2_000_000 }.differs_from(&last));
        assert!(ProbeTarget { minimum_bps: 0, desired_bps: 2_000_000 }.differs_from(&last));
        assert!(ProbeTarget { minimum_bps: 600_000, desired_bps: 2_300_000 }.differs_from(&last));
    }
}
