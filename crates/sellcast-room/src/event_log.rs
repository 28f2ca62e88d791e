//! The room's ordered event stream: assigns `(epoch, seq)` and keeps a bounded replay buffer so
//! a reconnecting client gets exactly the events it missed — none twice, none lost — or is told
//! to take a snapshot instead.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::protocol::{Position, RoomEvent, Sequenced};

#[derive(Debug)]
pub struct EventLog {
    epoch: u64,
    /// Seq of the last event appended (0 = none yet).
    seq: u64,
    /// `(seq, encoded frame)` of the newest events.
    buffer: VecDeque<(u64, Arc<str>)>,
    capacity: usize,
}

impl EventLog {
    /// `epoch` must differ across server restarts (the room's state was rebuilt).
    pub fn new(epoch: u64, capacity: usize) -> Self {
        Self::continuing(Position { epoch, seq: 0 }, capacity)
    }

    /// A log whose first event is `after.seq + 1` in `after.epoch`: the continuation of a
    /// room's stream that another log numbered up to `after` (cluster mode: a node taking a
    /// room over from a dead owner continues the seqs the stream holds). It holds none of
    /// the events up to `after`, so a resume from before `after` takes a snapshot.
    pub fn continuing(after: Position, capacity: usize) -> Self {
        Self {
            epoch: after.epoch,
            seq: after.seq,
            buffer: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
        }
    }

    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch,
            seq: self.seq,
        }
    }

    /// Keep `tail`, the events up to this log's start as another log numbered them (`(seq,
    /// frame)`, oldest first), for replay: a continued log then resumes a client from among
    /// them too. Taken only whole and only before any event of its own: contiguous, ending at
    /// the start. False (nothing kept) otherwise.
    pub fn adopt(&mut self, tail: &[(u64, Arc<str>)]) -> bool {
        let contiguous = tail.windows(2).all(|w| w[0].0 + 1 == w[1].0);
        let ends_at_start = tail.last().is_some_and(|(seq, _)| *seq == self.seq);
        if !self.buffer.is_empty() || !contiguous || !ends_at_start {
            return false;
        }
        let skip = tail.len().saturating_sub(self.capacity);
        self.buffer.extend(tail[skip..].iter().cloned());
        true
    }

    /// Stamp and encode an event; returns its frame for broadcasting.
    pub fn append(&mut self, event: &RoomEvent, now_ms: i64) -> (u64, Arc<str>) {
        self.seq += 1;
        let framed = Sequenced {
            epoch: self.epoch,
            seq: self.seq,
            server_now_ms: now_ms,
            event,
        };
        // Serializing plain data structs with string keys cannot fail.
        let json: Arc<str> = serde_json::to_string(&framed)
            .unwrap_or_else(|_| String::from("{\"type\":\"error\"}"))
            .into();
        if self.buffer.len() == self.capacity {
            self.buffer.pop_front();
        }
        self.buffer.push_back((self.seq, json.clone()));
        (self.seq, json)
    }

    /// The frames after `from`, if the buffer still holds all of them; `None` means the client
    /// must take a snapshot (other epoch, too far behind, or from the future).
    pub fn replay_after(&self, from: Position) -> Option<Vec<Arc<str>>> {
        if from.epoch != self.epoch || from.seq > self.seq {
            return None;
        }
        if from.seq == self.seq {
            return Some(Vec::new());
        }
        let oldest = self.buffer.front().map(|(s, _)| *s)?;
        if from.seq + 1 < oldest {
            return None;
        }
        Some(
            self.buffer
                .iter()
                .filter(|(s, _)| *s > from.seq)
                .map(|(_, f)| f.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: i64) -> RoomEvent {
        RoomEvent::SoldOut { sale_id: n }
    }

    #[test]
    fn resume_gets_exactly_the_missed_events() {
        let mut log = EventLog::new(7, 100);
        for i in 0..10 {
            log.append(&ev(i), 0);
        }
        let missed = log.replay_after(Position { epoch: 7, seq: 6 }).expect("in buffer");
        let seqs: Vec<u64> = missed
            .iter()
            .map(|f| serde_json::from_str::<serde_json::Value>(f).expect("json")["seq"].as_u64().expect("seq"))
            .collect();
        assert_eq!(seqs, vec![7, 8, 9, 10]);
        assert_eq!(log.replay_after(Position { epoch: 7, seq: 10 }), Some(vec![]));
    }

    #[test]
    fn a_continued_log_numbers_after_its_start_and_replays_only_its_own_events() {
        let mut log = EventLog::continuing(Position { epoch: 7, seq: 41 }, 100);
        assert_eq!(log.position(), Position { epoch: 7, seq: 41 });
        let (seq, frame) = log.append(&ev(1), 0);
        assert_eq!(seq, 42, "the next seq after the start, in the same epoch");
        let sent: serde_json::Value = serde_json::from_str(&frame).expect("json");
        assert_eq!((sent["epoch"].as_u64(), sent["seq"].as_u64()), (Some(7), Some(42)));
        assert_eq!(log.replay_after(Position { epoch: 7, seq: 41 }), Some(vec![frame]), "a viewer at the start gets 42");
        assert_eq!(log.replay_after(Position { epoch: 7, seq: 40 }), None, "41 was never in this log: snapshot");
        let fresh = EventLog::continuing(Position { epoch: 7, seq: 41 }, 100);
        assert_eq!(fresh.replay_after(Position { epoch: 7, seq: 41 }), Some(vec![]), "up to date at the start");
        assert_eq!(fresh.replay_after(Position { epoch: 7, seq: 40 }), None);
    }

    #[test]
    fn an_adopted_tail_is_replayed_only_when_whole_and_ending_at_the_start() {
        let tail: Vec<(u64, Arc<str>)> = (39..=41).map(|s| (s, Arc::from(format!("{{\"seq\":{s}}}")))).collect();
        let mut gapped = EventLog::continuing(Position { epoch: 7, seq: 41 }, 100);
        assert!(!gapped.adopt(&[tail[0].clone(), tail[2].clone()]), "a gap");
        assert!(!gapped.adopt(&tail[..2]), "does not reach the start");
        let mut log = EventLog::continuing(Position { epoch: 7, seq: 41 }, 100);
        assert!(log.adopt(&tail));
        let (_, own) = log.append(&ev(1), 0);
        let replayed = log.replay_after(Position { epoch: 7, seq: 39 }).expect("held");
        assert_eq!(replayed, vec![tail[1].1.clone(), tail[2].1.clone(), own]);
        assert!(log.replay_after(Position { epoch: 7, seq: 37 }).is_none(), "38 was not adopted");
        assert!(!log.adopt(&tail), "not once its own events began");
    }

    #[test]
    fn too_old_other_epoch_or_future_needs_a_snapshot() {
        let mut log = EventLog::new(7, 5);
        for i in 0..20 {
            log.append(&ev(i), 0);
        }
        assert!(log.replay_after(Position { epoch: 7, seq: 15 }).is_some(), "16..20 are buffered");
        assert!(log.replay_after(Position { epoch: 7, seq: 14 }).is_none(), "15 was evicted");
        assert!(log.replay_after(Position { epoch: 6, seq: 19 }).is_none(), "server restarted");
        assert!(log.replay_after(Position { epoch: 7, seq: 21 }).is_none(), "from the future");
    }
}
