//! A node's copy of one room's event stream, read from JetStream: the room events in the
//! order the owner numbered them, kept so that a viewer on this node resumes from them.
//!
//! What holds: the copy is contiguous (every seq from its oldest to its newest, one epoch),
//! each seq is kept once whatever the stream delivers twice, and a resume is served from it
//! only when it holds every event after the viewer's position; otherwise the viewer waits
//! for the copy to catch up ([`Replay::NotYet`]) or takes a snapshot ([`Replay::Gone`]).

use std::collections::VecDeque;
use std::sync::Arc;

use sellcast_room::{Class, Position};

/// One room event as the owner published it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    pub position: Position,
    pub class: Class,
    pub frame: Arc<str>,
}

/// What taking one event from the stream did to the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The next seq: kept, and due to every viewer that is at the one before.
    Next,
    /// Already kept (a redelivery): dropped.
    Duplicate,
    /// From an epoch before the copy's (the owner has restarted since): dropped.
    Stale,
    /// The first event of a newer epoch (or the first event read at all): the copy starts
    /// again from it, and viewers of the older epoch must take a snapshot.
    NewEpoch,
    /// A seq after a gap in the same epoch: the copy starts again from it, and viewers
    /// behind the gap must take a snapshot.
    Gap,
}

/// What a viewer resuming after a position gets from the copy.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// Every event after the position, in order (none if it is the newest).
    Events(Vec<StreamEvent>),
    /// The copy has not read that far yet (or not that epoch): ask again once it has.
    NotYet,
    /// The copy no longer holds the events after it (older epoch, or evicted): snapshot.
    Gone,
}

#[derive(Debug)]
pub struct StreamLog {
    buffer: VecDeque<StreamEvent>,
    capacity: usize,
}

impl StreamLog {
    pub fn new(capacity: usize) -> Self {
        Self { buffer: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// The newest event kept, if any.
    pub fn position(&self) -> Option<Position> {
        self.buffer.back().map(|e| e.position)
    }

    pub fn handle_event(&mut self, event: StreamEvent) -> Appended {
        let outcome = match self.position() {
            None => Appended::NewEpoch,
            Some(last) if event.position.epoch < last.epoch => return Appended::Stale,
            Some(last) if event.position.epoch > last.epoch => Appended::NewEpoch,
            Some(last) if event.position.seq <= last.seq => return Appended::Duplicate,
            Some(last) if event.position.seq == last.seq + 1 => Appended::Next,
            Some(_) => Appended::Gap,
        };
        if outcome != Appended::Next {
            self.buffer.clear();
        }
        if self.buffer.len() == self.capacity {
            self.buffer.pop_front();
        }
        self.buffer.push_back(event);
        outcome
    }

    /// The events after `from` (the last one a viewer saw).
    pub fn replay_after(&self, from: Position) -> Replay {
        let (Some(oldest), Some(newest)) = (self.buffer.front(), self.buffer.back()) else {
            return Replay::NotYet;
        };
        let (oldest, newest) = (oldest.position, newest.position);
        if from.epoch > newest.epoch || (from.epoch == newest.epoch && from.seq > newest.seq) {
            return Replay::NotYet;
        }
        if from.epoch < newest.epoch || from.seq + 1 < oldest.seq {
            return Replay::Gone;
        }
        Replay::Events(self.buffer.iter().filter(|e| e.position.seq > from.seq).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: u64, seq: u64) -> Position {
        Position { epoch, seq }
    }

    fn ev(epoch: u64, seq: u64) -> StreamEvent {
        StreamEvent { position: at(epoch, seq), class: Class::Chat, frame: format!("{{\"seq\":{seq}}}").into() }
    }

    fn seqs(replay: Replay) -> Vec<u64> {
        match replay {
            Replay::Events(events) => events.iter().map(|e| e.position.seq).collect(),
            other => panic!("expected events, got {other:?}"),
        }
    }

    #[test]
    fn a_resume_gets_every_event_after_its_position_and_not_its_own() {
        let mut log = StreamLog::new(100);
        for seq in 1..=10 {
            assert_eq!(log.handle_event(ev(7, seq)), if seq == 1 { Appended::NewEpoch } else { Appended::Next });
        }
        assert_eq!(seqs(log.replay_after(at(7, 6))), vec![7, 8, 9, 10]);
        assert_eq!(seqs(log.replay_after(at(7, 0))), (1..=10).collect::<Vec<_>>());
        assert_eq!(seqs(log.replay_after(at(7, 10))), Vec::<u64>::new(), "up to date: nothing to replay");
    }

    #[test]
    fn a_redelivered_event_is_kept_once() {
        let mut log = StreamLog::new(100);
        log.handle_event(ev(7, 1));
        log.handle_event(ev(7, 2));
        assert_eq!(log.handle_event(ev(7, 2)), Appended::Duplicate);
        assert_eq!(log.handle_event(ev(7, 1)), Appended::Duplicate);
        assert_eq!(seqs(log.replay_after(at(7, 0))), vec![1, 2]);
    }

    #[test]
    fn a_position_the_copy_has_not_read_yet_waits() {
        let mut log = StreamLog::new(100);
        assert_eq!(log.replay_after(at(7, 3)), Replay::NotYet, "nothing read yet");
        log.handle_event(ev(7, 1));
        assert_eq!(log.replay_after(at(7, 3)), Replay::NotYet);
        assert_eq!(log.replay_after(at(8, 1)), Replay::NotYet, "a newer epoch than the copy's");
        log.handle_event(ev(7, 2));
        log.handle_event(ev(7, 3));
        log.handle_event(ev(7, 4));
        assert_eq!(seqs(log.replay_after(at(7, 3))), vec![4]);
    }

    #[test]
    fn an_evicted_or_older_epoch_position_needs_a_snapshot() {
        let mut log = StreamLog::new(5);
        for seq in 1..=20 {
            log.handle_event(ev(7, seq));
        }
        assert_eq!(seqs(log.replay_after(at(7, 15))), vec![16, 17, 18, 19, 20]);
        assert_eq!(log.replay_after(at(7, 14)), Replay::Gone, "15 was evicted");
        assert_eq!(log.replay_after(at(6, 20)), Replay::Gone, "the owner restarted since");
    }

    #[test]
    fn a_new_epoch_or_a_gap_starts_the_copy_again() {
        let mut log = StreamLog::new(100);
        log.handle_event(ev(7, 1));
        log.handle_event(ev(7, 2));
        assert_eq!(log.handle_event(ev(9, 1)), Appended::NewEpoch);
        assert_eq!(log.handle_event(ev(7, 3)), Appended::Stale);
        assert_eq!(log.replay_after(at(7, 2)), Replay::Gone);
        assert_eq!(log.handle_event(ev(9, 5)), Appended::Gap);
        assert_eq!(log.replay_after(at(9, 1)), Replay::Gone, "2..4 are not held: no resume across the gap");
        assert_eq!(seqs(log.replay_after(at(9, 4))), vec![5]);
    }
}
