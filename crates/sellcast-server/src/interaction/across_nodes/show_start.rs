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
//! The new show also takes the old show's last events from the stream ([`StreamTail`], those
//! among the stream's last [`TAIL_SPAN`] messages): a resume from among them is replayed, and
//! their chat lines are the history its snapshots show (`Show::adopt_events`). A resume from
//! before them takes a snapshot. Events the old owner delivered to its own viewers but never
//! got into the stream (it died first) are lost with it; only those viewers saw them.
//!
//! A room that the stream holds nothing of (new, or older than the stream keeps), or a stream
//! that cannot be read in time, starts a new epoch: every client then takes a snapshot, which
//! is always correct, only slower.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use futures_util::StreamExt;
use sellcast_room::Position;

use super::{subjects, LinkError, RoomLinks};

/// Longest a starting show waits to read the stream's last event, and then its tail, before
/// it starts without them (its inbox queues meanwhile).
const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// The tail is looked for among this many of the stream's newest messages (every room's),
/// which bounds the read at a takeover.
pub const TAIL_SPAN: u64 = 2_000;

/// The room's newest events in the stream: the last one's position, and the events of its
/// epoch up to it, `(seq, frame)` oldest first (possibly only the last few, or none).
#[derive(Debug, Default)]
pub struct StreamTail {
    pub last: Option<Position>,
    /// The stream sequence of the room subject's last message (0: none), which the show's
    /// first publish expects (`owner_fence`); `None` when the stream was not read.
    pub stream_seq: Option<u64>,
    pub events: Vec<(u64, Arc<str>)>,
}

/// The position a show's first event comes after: the stream's last event of the room if
/// there is one, else seq 0 of `fresh_epoch` (a new epoch: clients take a snapshot).
pub fn show_start(stream_last: Option<Position>, fresh_epoch: u64) -> Position {
    stream_last.unwrap_or(Position { epoch: fresh_epoch, seq: 0 })
}

impl RoomLinks {
    /// The room's last event in the stream, and the events before it (see [`StreamTail`]).
    /// The tail is best effort: if it cannot be read in time it is empty, and the show still
    /// continues after the last event.
    pub async fn stream_tail(&self, room: &str) -> Result<StreamTail, LinkError> {
        let subject = subjects::events(room);
        let read = self.stream.get_last_raw_message_by_subject(&subject);
        let message = match tokio::time::timeout(READ_TIMEOUT, read).await {
            Err(_) => return Err(LinkError::Lookup("reading the stream's last event timed out".into())),
            Ok(Err(e)) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(StreamTail { stream_seq: Some(0), ..StreamTail::default() }),
            Ok(Err(e)) => return Err(LinkError::Lookup(e.to_string())),
            Ok(Ok(message)) => message,
        };
        let Some(last) = subjects::position(&message.headers) else {
            return Err(LinkError::Lookup("the stream's last event has no position".into()));
        };
        let from = message.sequence.saturating_sub(TAIL_SPAN).max(1);
        let events = match tokio::time::timeout(READ_TIMEOUT, self.read_events(subject, from, message.sequence, last)).await {
            Ok(Ok(events)) => events,
            Ok(Err(e)) => {
                tracing::debug!(%room, error = %e, "the stream's tail was not read; the show starts without it");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        Ok(StreamTail { last: Some(last), stream_seq: Some(message.sequence), events })
    }

    /// The events of `subject` from stream sequence `from` to `to`, those of `last`'s epoch.
    async fn read_events(&self, subject: String, from: u64, to: u64, last: Position) -> Result<Vec<(u64, Arc<str>)>, String> {
        let config = pull::OrderedConfig {
            filter_subject: subject,
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from },
            ..Default::default()
        };
        let consumer = self.stream.create_consumer(config).await.map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        let mut events = Vec::new();
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| e.to_string())?;
            let at = message.info().map_err(|e| e.to_string())?.stream_sequence;
            let position = message.headers.as_ref().and_then(subjects::position);
            if let (Some(position), Ok(frame)) = (position, std::str::from_utf8(&message.payload)) {
                if position.epoch == last.epoch && position.seq <= last.seq {
                    events.push((position.seq, Arc::from(frame)));
                }
            }
            if at >= to {
                break;
            }
        }
        Ok(contiguous_end(events))
    }
}

/// The run of `events` (oldest first) that ends at the newest without a missing seq: a gap
/// (events the old owner dropped while NATS was away) ends what a resume can be served from.
fn contiguous_end(mut events: Vec<(u64, Arc<str>)>) -> Vec<(u64, Arc<str>)> {
    let mut start = events.len().saturating_sub(1);
    while start > 0 && events[start - 1].0 + 1 == events[start].0 {
        start -= 1;
    }
    events.split_off(start)
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
    fn only_the_gapless_end_of_the_tail_is_taken_over() {
        let events = |seqs: &[u64]| seqs.iter().map(|s| (*s, Arc::from(s.to_string()))).collect::<Vec<_>>();
        let seqs = |events: Vec<(u64, Arc<str>)>| events.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        assert_eq!(seqs(contiguous_end(events(&[3, 4, 7, 8, 9]))), vec![7, 8, 9]);
        assert_eq!(seqs(contiguous_end(events(&[3, 4, 5]))), vec![3, 4, 5]);
        assert_eq!(seqs(contiguous_end(Vec::new())), Vec::<u64>::new());
    }

    #[test]
    fn a_room_the_stream_holds_nothing_of_starts_a_new_epoch_at_zero() {
        assert_eq!(show_start(None, 1_800_000_000_000), Position { epoch: 1_800_000_000_000, seq: 0 });
    }
}
