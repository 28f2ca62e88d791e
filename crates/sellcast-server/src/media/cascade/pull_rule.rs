//! When an edge keeps pulling a room from its origin, and how soon it tries again after a
//! pull failed. Plain functions of the viewer count and the time.
//!
//! A pull starts when a viewer of the room arrives. It stops once the room has had no viewer
//! on this node for [`STOP_GRACE`]: a viewer that reloads its page, or the next viewer a
//! moment later, finds the pull still running (and its keyframe cache warm) instead of
//! waiting for a new one. While viewers remain, a pull that failed (the origin went away, or
//! refused) is tried again after [`retry_delay`], growing to [`MAX_RETRY`], so viewers get
//! video back within about that long once an origin answers again.

use std::time::{Duration, Instant};

/// How long a room may have no viewer on this node before its pull stops.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// The first retry after a failed pull, doubled per failure up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_millis(250);
pub const MAX_RETRY: Duration = Duration::from_secs(2);

/// What to do with a pull now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStep {
    Keep,
    Stop,
}

/// One pulled room's rule: when its last viewer left.
#[derive(Debug, Clone, Default)]
pub struct PullRule {
    empty_since: Option<Instant>,
}

impl PullRule {
    /// The room has `viewers` viewers on this node now.
    pub fn handle_viewers(&mut self, now: Instant, viewers: usize) -> PullStep {
        if viewers > 0 {
            self.empty_since = None;
            return PullStep::Keep;
        }
        let since = *self.empty_since.get_or_insert(now);
        match now.saturating_duration_since(since) >= STOP_GRACE {
            true => PullStep::Stop,
            false => PullStep::Keep,
        }
    }
}

/// The wait before try number `failures + 1`, after `failures` failed tries in a row.
pub fn retry_delay(failures: u32) -> Duration {
    FIRST_RETRY.saturating_mul(1u32 << failures.min(8)).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_stops_only_after_the_grace_with_no_viewer() {
        let t0 = Instant::now();
        let mut rule = PullRule::default();
        assert_eq!(rule.handle_viewers(t0, 3), PullStep::Keep);
        assert_eq!(rule.handle_viewers(t0 + Duration::from_millis(100), 0), PullStep::Keep, "the grace starts");
        assert_eq!(rule.handle_viewers(t0 + Duration::from_millis(100) + STOP_GRACE - Duration::from_millis(1), 0), PullStep::Keep);
        assert_eq!(rule.handle_viewers(t0 + Duration::from_millis(100) + STOP_GRACE, 0), PullStep::Stop);
    }

    #[test]
    fn a_viewer_within_the_grace_keeps_the_pull_and_restarts_the_grace() {
        let t0 = Instant::now();
        let mut rule = PullRule::default();
        assert_eq!(rule.handle_viewers(t0, 0), PullStep::Keep);
        assert_eq!(rule.handle_viewers(t0 + STOP_GRACE / 2, 1), PullStep::Keep);
        let later = t0 + STOP_GRACE + Duration::from_millis(10);
        assert_eq!(rule.handle_viewers(later, 0), PullStep::Keep, "the grace counts from the last viewer's leaving");
        assert_eq!(rule.handle_viewers(later + STOP_GRACE, 0), PullStep::Stop);
    }

    #[test]
    fn retries_back_off_and_are_capped() {
        assert_eq!(retry_delay(0), FIRST_RETRY);
        assert_eq!(retry_delay(1), FIRST_RETRY * 2);
        assert_eq!(retry_delay(2), FIRST_RETRY * 4);
        assert_eq!(retry_delay(3), MAX_RETRY);
        assert_eq!(retry_delay(40), MAX_RETRY);
    }
}
