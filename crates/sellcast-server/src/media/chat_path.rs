//! How long a chat line spends inside the server: from the moment the media thread took the
//! sender's frame off its data channel, through the room's show task, to the end of the
//! media thread writing the line on every viewer's channel on its shard.
//!
//! Clients measure the same trip with their own scheduling mixed in (and, under attack on a
//! shared machine, the attackers' CPU time); this is the server's share alone, as
//! `forward_latency` is for media. One clock read and one histogram increment per broadcast
//! chat line, never per viewer. The histogram is cumulative; readers subtract two copies of
//! `/api/stats/media` to get a window.

use std::time::Instant;

use hdrhistogram::Histogram;

use super::command::ChatStamp;

/// The chat-path histograms of one media shard, in microseconds.
pub(crate) struct ChatPath {
    /// Frame read to line written on every channel.
    histogram: Histogram<u64>,
    /// Of that, the frame's wait for the show task (the inbox, and the task's thread being
    /// woken and scheduled).
    to_show: Histogram<u64>,
    /// Of that, the show task's own work until the line's command is queued.
    in_show: Histogram<u64>,
    /// Of that, the writing alone (the `Deliver` command taken to its end). The rest is the
    /// show task's work and the command's wait for the media thread.
    writing: Histogram<u64>,
}

impl ChatPath {
    pub(crate) fn new() -> Self {
        // 1 us .. 60 s, 2 significant digits, as `ForwardLatency`: the two add up across shards.
        let histogram = Histogram::new_with_bounds(1, 60_000_000, 2).expect("constant bounds are valid");
        Self { to_show: histogram.clone(), in_show: histogram.clone(), writing: histogram.clone(), histogram }
    }

    /// A chat line stamped `stamp`, whose `Deliver` command the driver took at `taken`, has
    /// been written to this shard's viewers at `now`.
    pub(crate) fn delivered(&mut self, stamp: ChatStamp, taken: Instant, now: Instant) {
        let us = |from: Instant, to: Instant| (to.saturating_duration_since(from).as_micros() as u64).max(1);
        self.histogram.saturating_record(us(stamp.read_at, now));
        self.to_show.saturating_record(us(stamp.read_at, stamp.handled_at));
        self.in_show.saturating_record(us(stamp.handled_at, stamp.queued_at));
        self.writing.saturating_record(us(taken, now));
    }

    pub(crate) fn in_show(&self) -> &Histogram<u64> {
        &self.in_show
    }

    pub(crate) fn to_show(&self) -> &Histogram<u64> {
        &self.to_show
    }

    pub(crate) fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    pub(crate) fn writing(&self) -> &Histogram<u64> {
        &self.writing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn measures_from_the_frame_read_to_the_delivery() {
        let mut path = ChatPath::new();
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        let stamp = |read: u64, handled: u64| ChatStamp { read_at: at(read), handled_at: at(handled), queued_at: at(handled + 20) };
        path.delivered(stamp(0, 50), t0 + Duration::from_micros(600), t0 + Duration::from_micros(700));
        path.delivered(stamp(1_000, 1_400), t0 + Duration::from_millis(2), t0 + Duration::from_millis(4));
        let h = path.histogram();
        assert_eq!(h.len(), 2);
        assert!((695..=705).contains(&h.min()), "{}", h.min());
        assert!((2_980..=3_020).contains(&h.max()), "{}", h.max());
        let w = path.writing();
        assert!((99..=101).contains(&w.min()), "{}", w.min());
        assert!((1_990..=2_010).contains(&w.max()), "{}", w.max());
        let s = path.to_show();
        assert!((49..=51).contains(&s.min()), "{}", s.min());
        assert!((398..=402).contains(&s.max()), "{}", s.max());
        assert_eq!(path.in_show().len(), 2);
        assert!((19..=21).contains(&path.in_show().max()), "{}", path.in_show().max());
    }
}
