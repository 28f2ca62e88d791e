//! When to try a failed webhook delivery again: exponential backoff with jitter, capped.
//!
//! Attempt `n` (1 = the first failure) waits a nominal `base * 2^(n-1)`, capped at `cap`, and
//! the actual delay is drawn in the upper half of that, `[nominal/2, nominal]` ("equal
//! jitter"): receivers that failed together do not all come back at once, and each wait is at
//! least as long as the one before it could have been, so gaps grow until the cap.
//! Pure: the randomness is an input.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Nominal wait after the first failure.
    pub base: Duration,
    /// Longest nominal wait.
    pub cap: Duration,
}

impl Default for Backoff {
    /// 1 s, 2 s, 4 s ... up to 10 minutes: a receiver down for an hour is tried about a dozen
    /// times in that hour, and at most 10 minutes after it is back.
    fn default() -> Self {
        Self { base: Duration::from_secs(1), cap: Duration::from_secs(600) }
    }
}

impl Backoff {
    /// The nominal wait after `failures` failed attempts in a row (0 failures: no wait).
    pub fn nominal(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let doublings = (failures - 1).min(32);
        self.base.saturating_mul(1u32 << doublings.min(31)).min(self.cap)
    }

    /// The wait after `failures` failed attempts, with `jitter` in `[0, 1)` choosing where in
    /// `[nominal/2, nominal]` it falls (out-of-range jitter is clamped).
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let nominal = self.nominal(failures);
        let half = nominal / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(3) };

    #[test]
    fn the_nominal_wait_doubles_per_failure_up_to_the_cap() {
        let waits: Vec<u128> = (0..8).map(|n| B.nominal(n).as_millis()).collect();
        assert_eq!(waits, [0, 100, 200, 400, 800, 1600, 3000, 3000]);
        assert_eq!(B.nominal(u32::MAX), Duration::from_secs(3), "no overflow however many failures");
    }

    #[test]
    fn jitter_keeps_each_wait_in_the_upper_half_of_its_nominal() {
        for n in 1..10 {
            let (low, high) = (B.delay(n, 0.0), B.delay(n, 1.0));
            assert_eq!((low, high), (B.nominal(n) / 2, B.nominal(n)), "failure {n}");
            let mid = B.delay(n, 0.5);
            assert!(low <= mid && mid <= high);
        }
        assert_eq!(B.delay(2, -3.0), B.delay(2, 0.0), "clamped");
        assert_eq!(B.delay(2, 7.0), B.delay(2, 1.0), "clamped");
    }

    #[test]
    fn waits_never_shrink_from_one_failure_to_the_next_whatever_the_jitter() {
        // The shortest wait after failure n+1 is the longest after failure n, while the next
        // nominal is below the cap (3 s here: failures 1-5 nominal 100 ms to 1.6 s).
        for n in 1..5 {
            assert!(B.delay(n + 1, 0.0) >= B.delay(n, 1.0), "failure {n}");
        }
    }
}
