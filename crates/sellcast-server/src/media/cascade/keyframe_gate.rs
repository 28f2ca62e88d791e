//! Keyframe requests from a pulled room's mirrors, on their way to the origin.
//!
//! Each mirror (one per shard) already throttles its viewers' requests to one per layer per
//! interval, as it does towards a home shard; several shards' mirrors would still add up.
//! The gate lets at most one request per layer per [`KEYFRAME_INTERVAL`] go upstream, so the
//! origin sees an edge ask no more often than one of its own viewers' layers would.

use std::time::{Duration, Instant};

use sellcast_sfu::MAX_LAYERS;

/// At most one request per layer this often, like the forwarder's own throttle.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
pub struct KeyframeGate {
    last: [Option<Instant>; MAX_LAYERS],
}

impl KeyframeGate {
    /// Whether a request for `layer` goes upstream now (and it is then counted as sent).
    pub fn allow(&mut self, now: Instant, layer: u8) -> bool {
        let Some(last) = self.last.get_mut(usize::from(layer)) else {
            return false;
        };
        if last.is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_layer_per_interval() {
        let t0 = Instant::now();
        let mut gate = KeyframeGate::default();
        assert!(gate.allow(t0, 0));
        assert!(!gate.allow(t0 + Duration::from_millis(10), 0), "a second mirror's request is held back");
        assert!(gate.allow(t0 + Duration::from_millis(10), 1), "another layer has its own budget");
        assert!(!gate.allow(t0 + KEYFRAME_INTERVAL - Duration::from_millis(1), 0));
        assert!(gate.allow(t0 + KEYFRAME_INTERVAL, 0));
        assert!(!gate.allow(t0, MAX_LAYERS as u8), "a layer out of range is refused");
    }
}
