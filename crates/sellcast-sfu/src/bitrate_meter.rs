//! A layer's bitrate as the server receives it: bytes counted per packet (an add), turned into
//! bits per second once per window by the forwarder's tick, smoothed so one keyframe does not
//! make a layer look twice as expensive as it is.

use std::time::{Duration, Instant};

/// Shortest window a rate is computed over; the forwarder's tick rolls it.
const WINDOW: Duration = Duration::from_millis(500);

#[derive(Debug, Default, Clone)]
pub struct BitrateMeter {
    bytes: u64,
    window_start: Option<Instant>,
    bps: u64,
}

impl BitrateMeter {
    /// One packet's payload arrived (the hot path: an add and a branch).
    pub fn add(&mut self, now: Instant, bytes: usize) {
        self.bytes += bytes as u64;
        if self.window_start.is_none() {
            self.window_start = Some(now);
        }
    }

    /// Close the window if it is long enough: the new rate weighs as much as the history.
    pub fn roll(&mut self, now: Instant) {
        let Some(start) = self.window_start else {
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        if elapsed < WINDOW {
            return;
        }
        let rate = self.bytes * 8 * 1_000_000 / elapsed.as_micros().max(1) as u64;
        self.bps = if self.bps == 0 { rate } else { (self.bps + rate) / 2 };
        self.bytes = 0;
        self.window_start = Some(now);
    }

    pub fn bps(&self) -> u64 {
        self.bps
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_reads_its_rate_and_a_burst_is_smoothed() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::default();
        // 125 packets of 1000 bytes in one second: 1 Mbit/s.
        for i in 0..125u64 {
            m.add(t0 + Duration::from_millis(i * 8), 1000);
        }
        m.roll(t0 + Duration::from_secs(1));
        assert_eq!(m.bps(), 1_000_000);
        // The next second carries a 3 Mbit/s burst: the reading moves halfway.
        m.add(t0 + Duration::from_millis(1100), 375_000);
        m.roll(t0 + Duration::from_secs(2));
        assert_eq!(m.bps(), 2_000_000);
        // A window shorter than the minimum is not closed.
        m.add(t0 + Duration::from_millis(2100), 1000);
        m.roll(t0 + Duration::from_millis(2200));
        assert_eq!(m.bps(), 2_000_000);
    }
}
