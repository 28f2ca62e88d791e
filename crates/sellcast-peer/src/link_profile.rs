//! A viewer's emulated downlink: rate, loss, delay and jitter, and how its receiver reports
//! bandwidth. Written as text (`1mbit/1%/40ms/~10ms/remb`) so the bench's `--link` and
//! `--links` take the same words as tests.
//!
//! The rate behaves like a `tbf` qdisc (the kernel here has no `netem`): a token bucket that
//! lets `burst` bytes through back to back, then holds each datagram until the bucket has
//! refilled for it (delay when over rate), and drops a datagram that would wait longer than
//! `queue` (the queue is full). Loss, delay and jitter come after the rate, as a lossy, long
//! path behind the bottleneck would add them. Jitter never reorders: a datagram is released no
//! earlier than the one before it, as on one physical link.

use std::fmt;
use std::time::{Duration, Instant};

use crate::feedback_mode::FeedbackMode;

/// The queue a rate-limited link holds before it drops (a `tbf` `latency`).
pub const DEFAULT_QUEUE: Duration = Duration::from_millis(200);

/// One emulated downlink. `Default` is an unlimited, lossless, immediate link with TWCC.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkProfile {
    /// Bits per second; `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// Fraction of datagrams lost after the bottleneck, 0.0-1.0.
    pub loss: f64,
    pub delay: Duration,
    /// Each datagram's delay varies uniformly within `delay ± jitter` (never below zero).
    pub jitter: Duration,
    /// How long a datagram may wait for the rate before it is dropped.
    pub queue: Option<Duration>,
    /// The bandwidth feedback the viewer's receiver sends.
    pub feedback: FeedbackMode,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LinkParseError {
    #[error("empty link profile")]
    Empty,
    #[error("link profile part {0:?} is not a rate (300kbit, 1mbit, unlimited), loss (1%), delay (40ms), jitter (~10ms), queue (q200ms) or feedback (twcc, remb, none)")]
    Unknown(String),
    #[error("loss {0:?} is not between 0% and 100%")]
    Loss(String),
    #[error("{0:?} given twice in one profile")]
    Twice(&'static str),
}

fn number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

fn millis(s: &str) -> Option<Duration> {
    let v = number(s.strip_suffix("ms")?)?;
    Some(Duration::from_secs_f64(v / 1000.0))
}

fn rate(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (digits, scale) = if let Some(d) = lower.strip_suffix("mbit") {
        (d, 1e6)
    } else if let Some(d) = lower.strip_suffix("kbit") {
        (d, 1e3)
    } else {
        (lower.strip_suffix("bit")?, 1.0)
    };
    let bps = number(digits)? * scale;
    (bps >= 1.0).then_some(bps as u64)
}

impl std::str::FromStr for LinkProfile {
    type Err = LinkParseError;

    /// Parts separated by `/`, in any order: a rate (`300kbit`, `1.2mbit`, `unlimited`), a loss
    /// (`2%`), a delay (`40ms`), a jitter (`~10ms`), a queue (`q300ms`) and a feedback mode
    /// (`twcc`, `remb`, `none`). Each at most once; what is left out is unlimited, lossless,
    /// immediate, a 200 ms queue and TWCC.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = LinkProfile::default();
        let mut seen = [false; 6];
        let mut once = |i: usize, name: &'static str| {
            if std::mem::replace(&mut seen[i], true) {
                Err(LinkParseError::Twice(name))
            } else {
                Ok(())
            }
        };
        let parts: Vec<&str> = s.split('/').map(str::trim).filter(|t| !t.is_empty()).collect();
        if parts.is_empty() {
            return Err(LinkParseError::Empty);
        }
        for part in parts {
            if part.eq_ignore_ascii_case("unlimited") {
                once(0, "rate")?;
            } else if let Some(bps) = rate(part) {
                once(0, "rate")?;
                p.rate_bps = Some(bps);
            } else if let Some(pct) = part.strip_suffix('%') {
                once(1, "loss")?;
                p.loss = number(pct).filter(|v| *v <= 100.0).ok_or_else(|| LinkParseError::Loss(part.to_owned()))? / 100.0;
            } else if let Some(j) = part.strip_prefix('~').and_then(millis) {
                once(3, "jitter")?;
                p.jitter = j;
            } else if let Some(q) = part.strip_prefix('q').and_then(millis) {
                once(4, "queue")?;
                p.queue = Some(q);
            } else if let Some(d) = millis(part) {
                once(2, "delay")?;
                p.delay = d;
            } else if let Ok(mode) = part.parse::<FeedbackMode>() {
                once(5, "feedback")?;
                p.feedback = mode;
            } else {
                return Err(LinkParseError::Unknown(part.to_owned()));
            }
        }
        Ok(p)
    }
}

impl fmt::Display for LinkProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rate_bps {
            None => write!(f, "unlimited")?,
            Some(bps) if bps % 1_000_000 == 0 => write!(f, "{}mbit", bps / 1_000_000)?,
            Some(bps) if bps % 1000 == 0 => write!(f, "{}kbit", bps / 1000)?,
            Some(bps) => write!(f, "{bps}bit")?,
        }
        if self.loss > 0.0 {
            write!(f, "/{}%", (self.loss * 1000.0).round() / 10.0)?;
        }
        if !self.delay.is_zero() {
            write!(f, "/{}ms", self.delay.as_millis())?;
        }
        if !self.jitter.is_zero() {
            write!(f, "/~{}ms", self.jitter.as_millis())?;
        }
        if let Some(q) = self.queue {
            write!(f, "/q{}ms", q.as_millis())?;
        }
        if self.feedback != FeedbackMode::Twcc {
            write!(f, "/{}", self.feedback)?;
        }
        Ok(())
    }
}

impl LinkProfile {
    /// Does this profile change anything about what arrives?
    pub fn shapes(&self) -> bool {
        self.rate_bps.is_some() || self.loss > 0.0 || !self.delay.is_zero() || !self.jitter.is_zero()
    }
}

/// The token bucket of a rate-limited link, on time handed in (no clock of its own).
#[derive(Debug, Clone)]
pub struct Shaper {
    bytes_per_sec: f64,
    burst: f64,
    queue: Duration,
    tokens: f64,
    /// When `tokens` was last brought up to date; the bucket never runs ahead of departures.
    at: Option<Instant>,
    /// When the last admitted datagram leaves the bottleneck (FIFO: no one overtakes it).
    last_departure: Option<Instant>,
}

impl Shaper {
    /// A `tbf` at `bps` whose bucket holds 20 ms at the rate (at least 3,000 bytes: two
    /// full-size datagrams always pass back to back) and whose queue holds `queue`.
    pub fn new(bps: u64, queue: Duration) -> Shaper {
        let bytes_per_sec = bps.max(1) as f64 / 8.0;
        let burst = (bytes_per_sec * 0.02).max(3000.0);
        Shaper { bytes_per_sec, burst, queue, tokens: burst, at: None, last_departure: None }
    }

    /// When a datagram of `len` bytes arriving at `now` leaves the bottleneck, or `None` when
    /// it would wait longer than the queue allows (dropped; the bucket is left as it was).
    pub fn admit(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let start = self.last_departure.map_or(now, |d| d.max(now));
        let refill = self.at.map_or(0.0, |at| start.saturating_duration_since(at).as_secs_f64() * self.bytes_per_sec);
        let tokens = (self.tokens + refill).min(self.burst);
        let need = len as f64;
        let wait = if tokens >= need { 0.0 } else { (need - tokens) / self.bytes_per_sec };
        let departure = start + Duration::from_secs_f64(wait);
        if departure.saturating_duration_since(now) > self.queue {
            return None;
        }
        self.tokens = (tokens + wait * self.bytes_per_sec - need).max(0.0);
        self.at = Some(departure);
        self.last_departure = Some(departure);
        Some(departure)
    }
}

/// A small, seeded pseudo-random source (xorshift64*): loss and jitter need no more.
#[derive(Debug, Clone)]
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(seed | 1)
    }

    /// Uniform in [0, 1).
    pub fn roll(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_in_any_order_and_print_back() {
        let p: LinkProfile = "1mbit/1%".parse().expect("test setup");
        assert_eq!((p.rate_bps, p.loss), (Some(1_000_000), 0.01));
        let p: LinkProfile = "remb/~10ms/300kbit/40ms/3%/q300ms".parse().expect("test setup");
        assert_eq!(p.rate_bps, Some(300_000));
        assert_eq!((p.delay, p.jitter, p.queue), (Duration::from_millis(40), Duration::from_millis(10), Some(Duration::from_millis(300))));
        assert_eq!(p.feedback, FeedbackMode::Remb);
        assert_eq!(p.to_string(), "300kbit/3%/40ms/~10ms/q300ms/remb");
        assert_eq!("unlimited".parse::<LinkProfile>().expect("test setup"), LinkProfile::default());
        assert!(!LinkProfile::default().shapes());
    }

    #[test]
    fn bad_profiles_are_refused_with_the_part_named() {
        assert_eq!("1mbit/fast".parse::<LinkProfile>(), Err(LinkParseError::Unknown("fast".into())));
        assert_eq!("1mbit/120%".parse::<LinkProfile>(), Err(LinkParseError::Loss("120%".into())));
        assert_eq!("1mbit/2mbit".parse::<LinkProfile>(), Err(LinkParseError::Twice("rate")));
        assert_eq!("".parse::<LinkProfile>(), Err(LinkParseError::Empty));
    }

    #[test]
    fn the_shaper_passes_its_burst_then_spaces_datagrams_at_the_rate() {
        let t0 = Instant::now();
        // 800 kbit/s = 100 kB/s: a 1,000-byte datagram every 10 ms once the 3,000-byte burst is spent.
        let mut s = Shaper::new(800_000, Duration::from_millis(200));
        let departures: Vec<Duration> = (0..6).map(|_| s.admit(t0, 1000).expect("test setup") - t0).collect();
        let ms: Vec<u128> = departures.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 0, 0, 10, 20, 30]);
    }

    #[test]
    fn the_shaper_drops_what_would_wait_longer_than_its_queue() {
        let t0 = Instant::now();
        let mut s = Shaper::new(80_000, Duration::from_millis(200)); // 10 kB/s: 100 ms per 1,000 bytes
        let admitted = (0..10).filter(|_| s.admit(t0, 1000).is_some()).count();
        // 3 in the burst, then departures at 100 and 200 ms; the rest would wait longer.
        assert_eq!(admitted, 5);
        // Once the queue has drained, datagrams pass again.
        assert!(s.admit(t0 + Duration::from_millis(400), 1000).is_some());
    }

    #[test]
    fn the_shaper_sustains_its_rate_over_time() {
        let t0 = Instant::now();
        let mut s = Shaper::new(600_000, Duration::from_millis(200));
        // Offer 1.2 Mbit/s for 10 s: about half arrives, at 600 kbit/s.
        let mut bytes = 0usize;
        let mut last = t0;
        for i in 0..1500u64 {
            if let Some(d) = s.admit(t0 + Duration::from_micros(i * 6_667), 1000) {
                bytes += 1000;
                last = d;
            }
        }
        let bps = bytes as f64 * 8.0 / (last - t0).as_secs_f64();
        assert!((bps - 600_000.0).abs() < 30_000.0, "{bps}");
    }

    #[test]
    fn dice_are_uniform_enough_for_a_loss_rate() {
        let mut d = Dice::new(7);
        let lost = (0..100_000).filter(|_| d.roll() < 0.03).count();
        assert!((2700..3300).contains(&lost), "{lost}");
    }
}
