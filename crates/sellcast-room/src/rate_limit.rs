//! Token buckets on caller-supplied time (milliseconds), so limits are testable without clocks.

/// Allows `burst` events at once and `per_second` sustained.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_ms: f64,
    tokens: f64,
    last_ms: i64,
}

impl TokenBucket {
    pub fn new(burst: u32, per_second: f64, now_ms: i64) -> Self {
        Self {
            capacity: f64::from(burst),
            per_ms: per_second / 1000.0,
            tokens: f64::from(burst),
            last_ms: now_ms,
        }
    }

    /// Take one token if there is one.
    pub fn try_take(&mut self, now_ms: i64) -> bool {
        self.try_take_n(1, now_ms)
    }

    pub fn try_take_n(&mut self, n: u32, now_ms: i64) -> bool {
        self.refill(now_ms);
        let n = f64::from(n);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Would be at capacity at `now_ms` (nothing taken is still missing).
    pub fn is_full(&self, now_ms: i64) -> bool {
        let elapsed = (now_ms - self.last_ms).max(0) as f64;
        self.tokens + elapsed * self.per_ms >= self.capacity
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed = (now_ms - self.last_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed * self.per_ms).min(self.capacity);
        self.last_ms = self.last_ms.max(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;

    #[test]
    fn burst_then_sustained_rate() {
        let mut b = TokenBucket::new(5, 2.0, 0);
        assert_eq!((0..10).filter(|_| b.try_take(0)).count(), 5, "burst of 5");
        assert!(!b.try_take(100), "100 ms refills only 0.2 tokens");
        assert!(b.try_take(500), "500 ms refills one");
        // Over 10 s at 2/s: about 20 more, never more than rate + burst.
        let granted = (0..1000).filter(|i| b.try_take(500 + i * 10)).count();
        assert!((19..=21).contains(&granted), "granted {granted}");
    }

    #[test]
    fn time_going_backwards_grants_nothing_extra() {
        let mut b = TokenBucket::new(1, 1.0, 1_000);
        assert!(b.try_take(1_000));
        assert!(!b.try_take(0));
        assert!(!b.try_take(1_500));
        assert!(b.try_take(2_000));
    }
}
