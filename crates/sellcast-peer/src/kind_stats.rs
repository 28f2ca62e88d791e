//! What one viewer saw of one kind of media (audio or video): counts, the publisher counters
//! seen (for loss), sequence continuity and order, one-way latency from the trailer, and how far
//! RTP timestamps stray from the publisher's clock.

use std::time::Duration;

use crate::counter_set::CounterSet;
use crate::trailer::Trailer;

/// What one viewer saw of one kind of media.
#[derive(Debug, Default, Clone)]
pub struct KindStats {
    pub packets: u64,
    /// Publisher counters seen (distinct): with the publisher's own count gives loss.
    pub counters: CounterSet,
    /// Packets whose publisher counter had been seen already.
    pub duplicates: u64,
    /// Packets whose RTP seq was behind the newest seq seen (reordered, late or repeated).
    pub out_of_order: u64,
    /// Packets whose RTP seq did not follow the previous packet's (either direction).
    pub seq_jumps: u64,
    pub last_seq: Option<u16>,
    /// One-way latency samples (publisher send -> viewer receive), microseconds.
    pub latency_us: Vec<u64>,
    /// Time from the WHEP POST to the first packet of this kind.
    pub first_after: Option<Duration>,
    /// Publisher sessions seen: a new one restarts its counters, which clears `counters`.
    pub publishers: u64,
    /// The largest distance, in microseconds, between where a packet's RTP timestamp puts it
    /// and where its publisher send time does, relative to the first packet: a rewrite that
    /// jumps the timestamps (rather than following the host's clock) shows here.
    pub worst_ts_skew_us: u64,
    /// RTP clock rate of this kind (set by the reader).
    pub(crate) clock_rate: u32,
    /// (rtp timestamp, sent_us) of the first packet with a trailer: the reference for skew.
    ts_origin: Option<(u32, u64)>,
    highest_seq: Option<u16>,
    /// (counter, sent_us) of the newest trailer, to tell a new publisher from a late packet.
    newest: Option<(u64, u64)>,
}

impl KindStats {
    pub(crate) fn record_seq(&mut self, seq: u16) {
        if self.last_seq.is_some_and(|last| seq != last.wrapping_add(1)) {
            self.seq_jumps += 1;
        }
        self.last_seq = Some(seq);
        match self.highest_seq {
            // Serial-number comparison: a forward step of up to half the space is "newer".
            Some(high) if (seq.wrapping_sub(high) as i16) <= 0 => self.out_of_order += 1,
            _ => self.highest_seq = Some(seq),
        }
    }

    /// Compare the packet's RTP timestamp with its publisher send time, both measured from
    /// the first packet.
    pub(crate) fn record_ts(&mut self, ts: u32, t: &Trailer) {
        if self.clock_rate == 0 {
            return;
        }
        let Some((ts0, sent0)) = self.ts_origin else {
            self.ts_origin = Some((ts, t.sent_us));
            return;
        };
        let media_us = i64::from(ts.wrapping_sub(ts0) as i32) * 1_000_000 / i64::from(self.clock_rate);
        let sent_us = t.sent_us as i64 - sent0 as i64;
        self.worst_ts_skew_us = self.worst_ts_skew_us.max(media_us.abs_diff(sent_us));
    }

    pub(crate) fn record_trailer(&mut self, t: Trailer, now_us: u64) {
        match self.newest {
            // Counters went back while send time went forward: another publisher session.
            Some((counter, sent)) if t.counter < counter && t.sent_us > sent => {
                self.counters = CounterSet::default();
                self.publishers += 1;
                self.newest = Some((t.counter, t.sent_us));
            }
            Some((counter, _)) if t.counter <= counter => {}
            Some(_) => self.newest = Some((t.counter, t.sent_us)),
            None => {
                self.publishers = 1;
                self.newest = Some((t.counter, t.sent_us));
            }
        }
        if !self.counters.insert(t.counter) {
            self.duplicates += 1;
        }
        self.latency_us.push(now_us.saturating_sub(t.sent_us));
    }
}

impl KindStats {
    /// A fresh record that keeps only when the first packet came.
    pub(crate) fn restarted(&self) -> KindStats {
        KindStats { first_after: self.first_after, ..KindStats::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(counter: u64, sent_us: u64) -> Trailer {
        Trailer { counter, sent_us }
    }

    #[test]
    fn seq_gaps_reorders_and_duplicates_are_told_apart() {
        let mut k = KindStats::default();
        for seq in [65534u16, 65535, 0, 2, 1, 3] {
            k.record_seq(seq);
        }
        // 0 -> 2, 2 -> 1 and 1 -> 3 break continuity; only 1 arrived behind the newest.
        assert_eq!((k.seq_jumps, k.out_of_order), (3, 1));
        for (c, at) in [(0, 10), (2, 30), (1, 20), (2, 30)] {
            k.record_trailer(t(c, at), 100);
        }
        assert_eq!((k.counters.len(), k.duplicates, k.publishers), (3, 1, 1));
    }

    #[test]
    fn a_timestamp_that_leaves_the_publisher_clock_shows_as_skew() {
        let mut k = KindStats { clock_rate: 90_000, ..KindStats::default() };
        // 33 ms apart in send time and 2,970 ticks (33 ms) apart in media time: no skew.
        k.record_ts(1000, &t(0, 1_000_000));
        k.record_ts(1000 + 2970, &t(1, 1_033_000));
        assert_eq!(k.worst_ts_skew_us, 0);
        // Sent a second later but stamped one tick on (a gap bridged by a fixed step).
        k.record_ts(1000 + 2971, &t(2, 2_033_000));
        assert!(k.worst_ts_skew_us > 999_000, "{}", k.worst_ts_skew_us);
    }

    #[test]
    fn a_new_publisher_starts_a_fresh_counter_set() {
        let mut k = KindStats::default();
        for c in 0..10 {
            k.record_trailer(t(c, 1000 + c), 2000);
        }
        // Counters from 0 again, sent later: another publisher session, not ten duplicates.
        for c in 0..5 {
            k.record_trailer(t(c, 5000 + c), 6000);
        }
        assert_eq!((k.publishers, k.duplicates, k.counters.len()), (2, 0, 5));
    }
}
