//! Where a show that starts on this node numbers the room's events from.
//!
//! In cluster mode a room's show can start on a node after another node ran it: the old
//! owner died (kill -9, lost power) and the room's host published again here, or the room was
//! unloaded and is loaded again. The room's event stream outlives every owner, and it is the
//! truth for the room's event log: every node's mirror and every viewer stands at some
//! `(epoch, seq)` of it. So the new show reads the last event of the room's subject (JetStream
//! "get last message for subject") and numbers its first event one after it, in the same
//! epoch. Mirrors and viewers then go on without a snapshot, and no seq is given twice or
//! skipped. The room's state (products, sales, stock, orders, bans) comes from the store as
//! always; only the numbering continues.
//!
//! What the new show does not have: the old show's events themselves. A resume from before
//! the takeover that reaches this show (not a mirror, which holds the stream's copy) takes a
//! snapshot, and that snapshot's chat history starts at the takeover. Events the old owner
//! delivered to its own viewers but never got into the stream (it died first) are lost with
//! it; only those viewers saw them.
//!
//! A room that the stream holds nothing of (new, or older than the stream keeps), or a stream
//! that cannot be read in time, starts a new epoch: every client then takes a snapshot, which
//! is always correct, only slower.

use std::time::Duration;

use async_nats::jetstream::stream::LastRawMessageErrorKind;
use sellcast_room::Position;

use super::{subjects, LinkError, RoomLinks};

/// Longest a starting show waits to read the stream's last event before it starts a new
/// epoch instead (its inbox queues meanwhile).
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// The position a show's first event comes after: the stream's last event of the room if
/// there is one, else seq 0 of `fresh_epoch` (a new epoch: clients take a snapshot).
pub fn show_start(stream_last: Option<Position>, fresh_epoch: u64) -> Position {
    stream_last.unwrap_or(Position { epoch: fresh_epoch, seq: 0 })
}

impl RoomLinks {
    /// The position of the last event of `room` the stream holds (`None`: none).
    pub async fn stream_last(&self, room: &str) -> Result<Option<Position>, LinkError> {
        let subject = subjects::events(room);
        let read = self.stream.get_last_raw_message_by_subject(&subject);
        let message = match tokio::time::timeout(READ_TIMEOUT, read).await {
            Err(_) => return Err(LinkError::Lookup("reading the stream's last event timed out".into())),
            Ok(Err(e)) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
            Ok(Err(e)) => return Err(LinkError::Lookup(e.to_string())),
            Ok(Ok(message)) => message,
        };
        match subjects::position(&message.headers) {
            Some(position) => Ok(Some(position)),
            None => Err(LinkError::Lookup("the stream's last event has no position".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_show_continues_after_the_streams_last_event_in_its_epoch() {
        let last = Position { epoch: 1_700_000_000_000, seq: 41 };
        assert_eq!(show_start(Some(last), 1_800_000_000_000), last, "same epoch; the first event is 42");
    }

    #[test]
    fn a_room_the_stream_holds_nothing_of_starts_a_new_epoch_at_zero() {
        assert_eq!(show_start(None, 1_800_000_000_000), Position { epoch: 1_800_000_000_000, seq: 0 });
    }
}
