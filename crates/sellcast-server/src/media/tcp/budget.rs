//! How many frames one TCP connection may hand its shard per second. A connection that has
//! passed ICE belongs to a peer, but its frames share the shard's TCP inbox with every other
//! connection there: without a bound, one client sending as fast as TCP allows would fill it
//! and delay the others. Over budget, the connection's reader stops reading until a frame's
//! worth has refilled, so the client is pushed back by TCP itself and nothing is dropped.
//!
//! Sans-IO: time is an argument.

use std::time::{Duration, Instant};

/// A token bucket of whole frames.
#[derive(Debug, Clone)]
pub(crate) struct FrameBudget {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl FrameBudget {
    /// `per_second` frames on average, up to `burst` at once; starts full.
    pub(crate) fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let per_second = f64::from(per_second.max(1));
        let burst = f64::from(burst.max(1));
        Self { per_second, burst, tokens: burst, at: now }
    }

    /// Spend one frame. `Err(wait)`: none is left; one will be in `wait`.
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.at = now.max(self.at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_frames_come_at_the_rate() {
        let t0 = Instant::now();
        let mut budget = FrameBudget::new(1000, 50, t0);
        assert!((0..50).all(|_| budget.take(t0).is_ok()), "the burst passes at once");
        let wait = budget.take(t0).expect_err("the 51st waits");
        assert!(wait <= Duration::from_millis(1) && wait > Duration::ZERO, "{wait:?}");
        // Over one virtual second, about 1,000 more frames pass, not more.
        let mut passed = 0;
        for ms in 1..=1000u64 {
            let now = t0 + Duration::from_millis(ms);
            while budget.take(now).is_ok() {
                passed += 1;
            }
        }
        assert!((990..=1001).contains(&passed), "{passed} frames in a second at 1000/s");
    }

    #[test]
    fn a_quiet_connection_saves_up_at_most_one_burst() {
        let t0 = Instant::now();
        let mut budget = FrameBudget::new(100, 10, t0);
        let later = t0 + Duration::from_secs(60);
        let passed = (0..1000).take_while(|_| budget.take(later).is_ok()).count();
        assert_eq!(passed, 10);
    }

    #[test]
    fn time_going_backwards_gives_nothing_and_never_panics() {
        let t0 = Instant::now() + Duration::from_secs(5);
        let mut budget = FrameBudget::new(10, 1, t0);
        assert!(budget.take(t0).is_ok());
        assert!(budget.take(t0 - Duration::from_secs(3)).is_err());
        assert!(budget.take(t0 + Duration::from_millis(100)).is_ok());
    }
}
