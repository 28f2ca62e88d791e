//! Per-client rate limits on signalling (WHIP and WHEP offers) and on the JSON API (`/api/...`
//! and session `DELETE`s), with `governor`'s keyed GCRA limiters: one bucket per client address (an
//! IPv6 client: its /64, see [`client_key`]).
//!
//! A limiter holds a state per address it has seen; [`RateLimiters::sweep`], run on a timer,
//! forgets every address whose bucket is full again, so memory follows the clients of the
//! last few seconds, not every address ever seen. Behind a reverse proxy every client has the
//! proxy's address: the limits are then per proxy, unless the proxy is trusted to name its
//! clients (`--trust-forwarded-for`, `http/forwarded.rs`).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::admission::client_key;

/// How long a request over its client's rate limit waits for its `429`. A client that sends
/// its next request only once the last is answered (most floods: a loop over one connection)
/// then costs the server one refusal a second per connection, where answering at once let one
/// connection make it answer thousands a second (a bench's frames flood got 5,800 refusals a
/// second); connections per address are capped (`http::connections`), so refusals per address
/// are too. A waiting refusal costs a timer, not a thread. Its `Retry-After` (at least 1 s)
/// already tells a client not to retry sooner, so an honest one loses nothing.
pub const REFUSAL_HOLD: Duration = Duration::from_secs(1);

/// How often addresses with a full bucket are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Requests per second and burst for one class of requests; `per_second == 0` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    pub const OFF: Rate = Rate { per_second: 0, burst: 0 };

    fn quota(self) -> Option<Quota> {
        let per_second = NonZeroU32::new(self.per_second)?;
        let burst = NonZeroU32::new(self.burst).unwrap_or(per_second);
        Some(Quota::per_second(per_second).allow_burst(burst))
    }
}

/// The rate limits of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// WHIP and WHEP offers.
    pub signalling: Rate,
    /// Everything under `/api/`, and session `DELETE`s.
    pub api: Rate,
}

impl Default for RateLimits {
    /// For a public server: a page needs a few signalling calls per (re)connect and about one
    /// API call per second.
    fn default() -> Self {
        Self { signalling: Rate { per_second: 5, burst: 20 }, api: Rate { per_second: 20, burst: 100 } }
    }
}

impl RateLimits {
    /// No limits: tests and local runs, where every client is 127.0.0.1.
    pub const OFF: RateLimits = RateLimits { signalling: Rate::OFF, api: Rate::OFF };
}

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Signalling,
    Api,
}

/// The limiters of a server.
pub struct RateLimiters {
    signalling: Option<DefaultKeyedRateLimiter<IpAddr>>,
    api: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    refusal_hold: Duration,
}

impl std::fmt::Debug for RateLimiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiters").field("tracked", &self.tracked()).finish()
    }
}

impl RateLimiters {
    pub fn new(limits: RateLimits) -> Arc<Self> {
        Self::holding_refusals(limits, REFUSAL_HOLD)
    }

    /// With refusals answered after `refusal_hold` instead of [`REFUSAL_HOLD`] (zero: at once).
    pub fn holding_refusals(limits: RateLimits, refusal_hold: Duration) -> Arc<Self> {
        Arc::new(Self {
            signalling: limits.signalling.quota().map(DefaultKeyedRateLimiter::keyed),
            api: limits.api.quota().map(DefaultKeyedRateLimiter::keyed),
            clock: DefaultClock::default(),
            refusal_hold,
        })
    }

    /// How long a refused request waits for its answer.
    pub fn refusal_hold(&self) -> Duration {
        self.refusal_hold
    }

    /// Count one request from `client`; Err says how long until the next one is allowed.
    /// A request whose address is unknown is let through (every transport we serve has one).
    pub fn check(&self, bucket: Bucket, client: Option<SocketAddr>) -> Result<(), Duration> {
        let limiter = match bucket {
            Bucket::Signalling => &self.signalling,
            Bucket::Api => &self.api,
        };
        let (Some(limiter), Some(client)) = (limiter, client) else {
            return Ok(());
        };
        limiter.check_key(&client_key(client.ip())).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forget addresses whose buckets are full again, and give back the memory.
    pub fn sweep(&self) {
        for limiter in [&self.signalling, &self.api].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Addresses with a state in some limiter.
    pub fn tracked(&self) -> usize {
        [&self.signalling, &self.api].into_iter().flatten().map(|l| l.len()).sum()
    }

    /// Sweep every [`SWEEP_EVERY`] until the limiters are dropped with the server.
    pub fn sweep_on_a_timer(this: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(limiters) => limiters.sweep(),
                    None => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(last: u8) -> Option<SocketAddr> {
        Some(SocketAddr::from(([192, 0, 2, last], 40_000)))
    }

    #[test]
    fn a_burst_over_the_limit_is_refused_with_a_wait_and_other_clients_are_not() {
        let limiters = RateLimiters::new(RateLimits { signalling: Rate { per_second: 1, burst: 3 }, api: Rate::OFF });
        for _ in 0..3 {
            assert_eq!(limiters.check(Bucket::Signalling, client(1)), Ok(()));
        }
        let wait = limiters.check(Bucket::Signalling, client(1)).expect_err("the 4th in a burst of 3 is refused");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(limiters.check(Bucket::Signalling, client(2)), Ok(()), "another address has its own bucket");
        for _ in 0..1_000 {
            assert_eq!(limiters.check(Bucket::Api, client(1)), Ok(()), "the API limit is off");
        }
    }

    #[test]
    fn sweeping_forgets_addresses_whose_bucket_is_full_again() {
        let limiters = RateLimiters::new(RateLimits { signalling: Rate { per_second: 1000, burst: 1 }, api: Rate::OFF });
        for last in 1..=50 {
            let _ = limiters.check(Bucket::Signalling, client(last));
        }
        assert_eq!(limiters.tracked(), 50);
        // A 1 ms emission interval: after a short wait every bucket is full again.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while limiters.tracked() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            limiters.sweep();
        }
        assert_eq!(limiters.tracked(), 0);
    }
}
