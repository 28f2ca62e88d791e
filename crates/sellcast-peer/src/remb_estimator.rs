//! A receive-side bandwidth estimate for a REMB-only viewer, on time handed in.
//!
//! webrtc-rs has no receive-side estimator, so this is a small one in the manner of the
//! receive-side estimators REMB was made for: it watches the incoming rate and the queuing
//! delay (one-way delay above the lowest seen in the last 10 s; the synthetic host's trailer
//! carries the send time, on the same clock here), and runs additive-increase /
//! multiplicative-decrease on them:
//! - overuse (queuing delay over 30 ms and still rising): the estimate drops to 85 % of the
//!   incoming rate, and holds for 500 ms. A delay that is high but steady is not overuse (the
//!   delay gradient is what counts, as in GCC): a sender that paces to this estimate builds a
//!   backlog of its own, and reading that as congestion would spiral the estimate down;
//! - otherwise it grows 8 % a second, never past 1.5x the incoming rate plus 50 kbit/s (a
//!   receiver cannot vouch for far more than it has seen arrive).
//!
//! Random loss does not lower it (REMB receivers leave loss to the sender).
//!
//! Why not webrtc-rs's own GCC: `rtc::interceptor::Gcc` is public and takes time as input, but
//! it compares the filtered per-group delay change (milliseconds) with a 12.5 ms threshold
//! without upstream's trend scaling (number of deltas times a gain). Fed with this viewer's
//! arrivals, a queue growing 100 ms per second (1.3 ms per 13 ms packet group) never read as
//! overuse: its estimate rose from 720 to 960 kbit/s behind a 600 kbit/s bottleneck.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const RATE_WINDOW: Duration = Duration::from_secs(1);
const BASE_WINDOW_SLOTS: usize = 10;
const OVERUSE_DELAY_US: u64 = 30_000;
/// The smoothed queuing delay must have grown this much since the last update (250 ms).
const RISING_US: f64 = 2_000.0;
const HOLD: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct RembEstimator {
    /// (arrival, bytes) over the last second.
    arrivals: VecDeque<(Instant, usize)>,
    bytes_in_window: usize,
    /// The lowest one-way delay of each of the last 10 seconds (the base).
    base: VecDeque<(Instant, u64)>,
    /// Smoothed queuing delay, microseconds, and its value at the last update.
    queuing_us: f64,
    queuing_at_update: f64,
    estimate_bps: Option<f64>,
    last_update: Option<Instant>,
    hold_until: Option<Instant>,
    started: Option<Instant>,
}

impl Default for RembEstimator {
    fn default() -> Self {
        Self {
            arrivals: VecDeque::new(),
            bytes_in_window: 0,
            base: VecDeque::new(),
            queuing_us: 0.0,
            queuing_at_update: 0.0,
            estimate_bps: None,
            last_update: None,
            hold_until: None,
            started: None,
        }
    }
}

impl RembEstimator {
    /// A media packet of `bytes` arrived at `now`, `one_way_us` after it was sent (any fixed
    /// offset between the clocks cancels out against the base).
    pub fn handle_packet(&mut self, now: Instant, bytes: usize, one_way_us: Option<u64>) {
        self.started.get_or_insert(now);
        self.arrivals.push_back((now, bytes));
        self.bytes_in_window += bytes;
        while let Some(&(at, b)) = self.arrivals.front() {
            if now.saturating_duration_since(at) <= RATE_WINDOW {
                break;
            }
            self.arrivals.pop_front();
            self.bytes_in_window -= b;
        }
        let Some(d) = one_way_us else { return };
        match self.base.back_mut() {
            Some((slot, low)) if now.saturating_duration_since(*slot) < Duration::from_secs(1) => *low = (*low).min(d),
            _ => {
                self.base.push_back((now, d));
                if self.base.len() > BASE_WINDOW_SLOTS {
                    self.base.pop_front();
                }
            }
        }
        let base = self.base.iter().map(|(_, low)| *low).min().unwrap_or(d);
        let queuing = d.saturating_sub(base) as f64;
        self.queuing_us += (queuing - self.queuing_us) * 0.1;
    }

    /// Incoming bits per second over the last second.
    pub fn incoming_bps(&self) -> f64 {
        self.bytes_in_window as f64 * 8.0 / RATE_WINDOW.as_secs_f64()
    }

    /// Bring the estimate up to `now` and return it (`None` during the first second, when the
    /// incoming rate is not known yet).
    pub fn poll_estimate(&mut self, now: Instant) -> Option<u64> {
        let started = self.started?;
        if now.saturating_duration_since(started) < RATE_WINDOW {
            return None;
        }
        let incoming = self.incoming_bps();
        let dt = self.last_update.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.last_update = Some(now);
        let rising = self.queuing_us - self.queuing_at_update > RISING_US;
        self.queuing_at_update = self.queuing_us;
        let overused = self.queuing_us > OVERUSE_DELAY_US as f64 && rising;
        let held = self.hold_until.is_some_and(|t| now < t);
        let estimate = match self.estimate_bps {
            None => incoming * 1.5 + 50_000.0,
            Some(_) if overused && !held => {
                self.hold_until = Some(now + HOLD);
                incoming * 0.85
            }
            Some(e) if overused || held => e,
            Some(e) => (e * 1.08f64.powf(dt)).min(incoming * 1.5 + 50_000.0),
        };
        self.estimate_bps = Some(estimate.max(10_000.0));
        self.estimate_bps.map(|e| e as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `bps` for `secs` in 1,000-byte packets, with the queuing delay `delay_us(t)`.
    fn feed(e: &mut RembEstimator, t0: Instant, from: f64, secs: f64, bps: f64, delay_us: impl Fn(f64) -> u64) -> Vec<u64> {
        let every = 8000.0 / bps;
        let mut out = Vec::new();
        let mut t = from;
        let mut next_poll = from;
        while t < from + secs {
            let now = t0 + Duration::from_secs_f64(t);
            e.handle_packet(now, 1000, Some(20_000 + delay_us(t)));
            if t >= next_poll {
                if let Some(est) = e.poll_estimate(now) {
                    out.push(est);
                }
                next_poll += 0.25;
            }
            t += every;
        }
        out
    }

    #[test]
    fn with_no_queue_the_estimate_stays_above_what_arrives() {
        let t0 = Instant::now();
        let mut e = RembEstimator::default();
        let est = feed(&mut e, t0, 0.0, 10.0, 500_000.0, |_| 0);
        let last = *est.last().expect("test setup");
        assert!(last > 550_000 && last <= 820_000, "{last}");
    }

    #[test]
    fn a_growing_queue_brings_the_estimate_under_the_bottleneck() {
        let t0 = Instant::now();
        let mut e = RembEstimator::default();
        // The sender offers 1.5 Mbit/s but only 600 kbit/s arrives, and the queue grows to its
        // 200 ms limit: the estimate must fall to about the bottleneck, not stay above it.
        feed(&mut e, t0, 0.0, 3.0, 600_000.0, |_| 0);
        let est = feed(&mut e, t0, 3.0, 4.0, 600_000.0, |t| (((t - 3.0) * 100_000.0) as u64).min(200_000));
        let last = *est.last().expect("test setup");
        assert!(last < 600_000, "{est:?}");
        assert!(last > 300_000, "{est:?}");
    }

    #[test]
    fn a_steady_delay_is_not_overuse() {
        let t0 = Instant::now();
        let mut e = RembEstimator::default();
        // The base is set, then the delay steps up by 300 ms and stays there (a backlog that
        // neither grows nor drains): after one decrease at the step, the estimate climbs again.
        feed(&mut e, t0, 0.0, 2.0, 400_000.0, |_| 0);
        let est = feed(&mut e, t0, 2.0, 8.0, 400_000.0, |_| 300_000);
        let last = *est.last().expect("test setup");
        assert!(last > 400_000, "{est:?}");
    }

    #[test]
    fn nothing_is_estimated_in_the_first_second() {
        let t0 = Instant::now();
        let mut e = RembEstimator::default();
        e.handle_packet(t0, 1000, Some(1));
        assert_eq!(e.poll_estimate(t0 + Duration::from_millis(500)), None);
        assert!(e.poll_estimate(t0 + Duration::from_millis(1500)).is_some());
    }
}
