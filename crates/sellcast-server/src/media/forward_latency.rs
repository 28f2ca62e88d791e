//! How long a live packet spends inside the server: from the moment str0m read the host's
//! datagram (its arrival stamp) to the end of the turn that handed the viewer's copy to the
//! kernel. This is the SFU's own share of the glass-to-glass delay, which a client-side
//! measurement mixes with the clients' scheduling.
//!
//! Per written packet it costs one push into a reused buffer; at the end of the turn one clock
//! read and one histogram increment per packet. Replayed keyframe groups are late on purpose
//! and not counted. The histogram is cumulative; the driver copies it out for `/api/stats/media`
//! twice a second, and a reader subtracts two copies to get a window.

use std::time::Instant;

use hdrhistogram::Histogram;

/// Packets remembered per turn; a turn writes one host packet to every viewer, so this covers
/// 4,096 viewers. Beyond it packets are simply not sampled.
const TURN_CAPACITY: usize = 4096;

/// The in-server forwarding latency histogram, and the packets written this turn.
pub(crate) struct ForwardLatency {
    written: Vec<Instant>,
    histogram: Histogram<u64>,
}

impl ForwardLatency {
    pub(crate) fn new() -> Self {
        // 1 us .. 60 s, 2 significant digits: a few KiB, fixed after construction.
        let histogram = Histogram::new_with_bounds(1, 60_000_000, 2).expect("constant bounds are valid");
        Self { written: Vec::with_capacity(TURN_CAPACITY), histogram }
    }

    /// A live packet that arrived at `arrival` was written to a viewer this turn.
    pub(crate) fn written(&mut self, arrival: Instant) {
        if self.written.len() < TURN_CAPACITY {
            self.written.push(arrival);
        }
    }

    /// This turn's datagrams have been handed to the kernel at `now`.
    pub(crate) fn sent(&mut self, now: Instant) {
        for arrival in self.written.drain(..) {
            let us = now.saturating_duration_since(arrival).as_micros() as u64;
            self.histogram.saturating_record(us.max(1));
        }
    }

    pub(crate) fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn measures_from_arrival_to_the_end_of_the_turn() {
        let mut latency = ForwardLatency::new();
        let t0 = Instant::now();
        latency.written(t0);
        latency.written(t0 + Duration::from_micros(300));
        latency.sent(t0 + Duration::from_micros(500));
        let h = latency.histogram();
        assert_eq!(h.len(), 2);
        assert!((195..=205).contains(&h.min()), "{}", h.min());
        assert!((495..=505).contains(&h.max()), "{}", h.max());
        // The next turn starts empty.
        latency.sent(t0 + Duration::from_secs(1));
        assert_eq!(latency.histogram().len(), 2);
    }
}
