//! Throttles keyframe requests (PLI) to the host.
//!
//! However many viewers join or ask, the host sees at most one request per interval. A request
//! made inside the interval is remembered and sent when it ends, unless a keyframe arrived
//! meanwhile (which already satisfies it).

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct KeyframeRequester {
    interval: Duration,
    last_sent: Option<Instant>,
    pending: bool,
    sent: u64,
}

impl KeyframeRequester {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_sent: None,
            pending: false,
            sent: 0,
        }
    }

    /// Someone needs a keyframe. Returns true if a request should go to the host now.
    pub fn handle_request(&mut self, now: Instant) -> bool {
        if self.may_send(now) {
            self.mark_sent(now);
            true
        } else {
            self.pending = true;
            false
        }
    }

    /// A keyframe arrived from the host: whatever was pending is satisfied.
    pub fn handle_keyframe(&mut self) {
        self.pending = false;
    }

    /// Time passed. Returns true if a deferred request should go to the host now.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if self.pending && self.may_send(now) {
            self.mark_sent(now);
            true
        } else {
            false
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // `pending` is only set while throttled, so `last_sent` is known then.
        match (self.pending, self.last_sent) {
            (true, Some(last)) => Some(last + self.interval),
            _ => None,
        }
    }

    /// A new host: its encoder has never been asked.
    pub fn reset(&mut self) {
        self.last_sent = None;
        self.pending = false;
    }

    /// Requests sent to the host so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    fn may_send(&self, now: Instant) -> bool {
        self.last_sent
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval)
    }

    fn mark_sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
        self.pending = false;
        self.sent += 1;
    }
}
