//! Fencing a room's owner on the events stream itself: a node that is no longer the room's
//! only writer stops at its next publish.
//!
//! The rooms bucket's lease says who should own a room, but a node that lost NATS (or was
//! stopped) for longer than its lease does not learn at once that another node took the room
//! over, and when it comes back it still holds queued events. Event ids alone do not stop it:
//! both owners number the same `(epoch, seq)`s, and the stream would keep whichever came first
//! and drop the other as a duplicate. So every event is published with JetStream's
//! `Nats-Expected-Last-Subject-Sequence`: the stream sequence of the room subject's last
//! message as this owner knows it (the message it read at takeover, then its own last accepted
//! publish). Any other writer in between makes the stream refuse the publish ("wrong last
//! sequence"), and the refused node stops owning the room.
//!
//! A retry of a publish whose acknowledgement was lost must not fence the owner itself. The
//! event's `Nats-Msg-Id` carries a token of this owner ([`event_msg_id`]), so:
//! - within the stream's duplicate window the retry is acknowledged as a duplicate, with the
//!   sequence the first try was stored at: accepted ([`after_publish`]);
//! - after it, the retry meets "wrong last sequence" (its own first try is the last message):
//!   the owner reads the subject's last message, and if its id is this very publish's, the
//!   first try was stored: accepted; any other id is another writer: fenced
//!   ([`after_reading_last`]).
//!
//! Two owners never share a message id (their tokens differ), so one owner's event is never
//! dropped as a duplicate of the other's.

/// What the stream answered to one publish of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Stored (or acknowledged as a duplicate of this owner's earlier try) at this stream
    /// sequence.
    Stored { stream_seq: u64 },
    /// Refused: the room subject's last message is not the one this owner expected.
    WrongLastSequence,
    /// No answer in time, or another error: the outcome is unknown.
    Unknown,
}

/// What the owner does next about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceStep {
    /// The event is in the stream at this sequence: the next one expects it.
    Accepted { stream_seq: u64 },
    /// Read the room subject's last message to tell a lost acknowledgement from another writer.
    ReadLast,
    /// Publish the same event again after a pause.
    Retry,
    /// Another node has written the room: stop owning it.
    Fenced,
}

/// The step after the stream's answer to a publish.
pub fn after_publish(published: Published) -> FenceStep {
    match published {
        Published::Stored { stream_seq } => FenceStep::Accepted { stream_seq },
        Published::WrongLastSequence => FenceStep::ReadLast,
        Published::Unknown => FenceStep::Retry,
    }
}

/// The step after reading the room subject's last message (its `Nats-Msg-Id`, if any, and
/// its stream sequence) following a "wrong last sequence": `ours` is the refused publish's id.
pub fn after_reading_last(last_msg_id: Option<&str>, last_stream_seq: u64, ours: &str) -> FenceStep {
    match last_msg_id {
        Some(id) if id == ours => FenceStep::Accepted { stream_seq: last_stream_seq },
        _ => FenceStep::Fenced,
    }
}

/// The `Nats-Msg-Id` of one owner's publish of an event: the event's id and the owner's token.
pub fn event_msg_id(event_id: &str, owner_token: &str) -> String {
    format!("{event_id}@{owner_token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_or_duplicate_acknowledged_event_is_accepted_at_its_sequence() {
        assert_eq!(after_publish(Published::Stored { stream_seq: 42 }), FenceStep::Accepted { stream_seq: 42 });
    }

    #[test]
    fn an_unknown_outcome_is_retried_and_a_wrong_last_sequence_is_checked_first() {
        assert_eq!(after_publish(Published::Unknown), FenceStep::Retry);
        assert_eq!(after_publish(Published::WrongLastSequence), FenceStep::ReadLast);
    }

    #[test]
    fn a_retry_refused_because_its_first_try_was_stored_is_not_fenced() {
        let ours = event_msg_id("shop:7:12", "node-a.1");
        assert_eq!(after_reading_last(Some(&ours), 90, &ours), FenceStep::Accepted { stream_seq: 90 });
    }

    #[test]
    fn another_writer_after_us_fences_us_even_under_the_same_event_id() {
        let ours = event_msg_id("shop:7:12", "node-a.1");
        let theirs = event_msg_id("shop:7:12", "node-b.1");
        assert_ne!(ours, theirs, "two owners of one event id never share a message id");
        assert_eq!(after_reading_last(Some(&theirs), 91, &ours), FenceStep::Fenced);
        assert_eq!(after_reading_last(Some(&event_msg_id("shop:7:11", "node-a.1")), 91, &ours), FenceStep::Fenced);
        assert_eq!(after_reading_last(None, 91, &ours), FenceStep::Fenced);
    }
}
