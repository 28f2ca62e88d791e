//! The way from the media shards into a room's show task: participants' joins and leaves, and
//! their data-channel frames.
//!
//! The two are bounded differently, because losing them costs differently. A lost `Join` or
//! `Leave` leaves a participant that never leaves (counted as a viewer, holding its rate
//! state); so lifecycle messages are never refused. They need no cap of their own: each
//! data channel yields at most one `Join` and one `Leave` (plus a `Rejoin` per restart of the
//! task), so they are bounded by the peers the shards hold. Frames are what a client controls:
//! they are refused when the frames already waiting reach `FRAME_QUEUE_BYTES`, counted in
//! bytes (a count would let a few 2 MiB SCTP messages pin gigabytes), and a frame over the
//! protocol's size limit is refused before it is queued at all. Both travel in one channel, so
//! a participant's frames stay between its `Join` and its `Leave`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sellcast_room::protocol::MAX_FRAME_BYTES;
use sellcast_room::ParticipantId;
use tokio::sync::mpsc;

use super::messages::ShowMsg;

/// Frame bytes that may wait for one room's show task. A show task takes frames far faster
/// than channels deliver them; this is reached only when it stalls (a store hiccup) or a
/// flood arrives, and it caps what the flood costs at about a megabyte per room.
pub const FRAME_QUEUE_BYTES: usize = 1024 * 1024;
/// What a queued frame costs besides its bytes (the message and the queue's slot), so a flood
/// of empty frames is bounded too.
const FRAME_OVERHEAD: usize = 64;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRefused {
    /// Over the protocol's frame limit: the sender is told with a `too_large` error.
    TooLarge,
    /// The room's frame budget is used up.
    Full,
    /// The show task is gone.
    Closed,
}

/// The shards' side of a room's session inbox (each peer holds a clone).
#[derive(Debug, Clone)]
pub struct SessionSender {
    tx: mpsc::UnboundedSender<ShowMsg>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The show task's side.
#[derive(Debug)]
pub struct SessionReceiver {
    rx: mpsc::UnboundedReceiver<ShowMsg>,
    queued: Arc<AtomicUsize>,
}

/// A session inbox whose frames may hold up to `limit` bytes (plus overhead) at once.
pub fn session_inbox(limit: usize) -> (SessionSender, SessionReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (SessionSender { tx, queued: queued.clone(), limit }, SessionReceiver { rx, queued })
}

fn cost(msg: &ShowMsg) -> usize {
    match msg {
        ShowMsg::Frame { bytes, .. } => bytes.len() + FRAME_OVERHEAD,
        _ => 0,
    }
}

impl SessionSender {
    /// How many senders exist: the registry's handle holds one, and each peer of the room one.
    pub fn holders(&self) -> usize {
        self.tx.strong_count()
    }

    /// Queue a `Join`, `Leave` or `Rejoin`: never refused while the task runs. False if the
    /// task is gone.
    pub fn lifecycle(&self, msg: ShowMsg) -> bool {
        debug_assert!(matches!(msg, ShowMsg::Join { .. } | ShowMsg::Leave { .. } | ShowMsg::Rejoin { .. }));
        self.tx.send(msg).is_ok()
    }

    /// Queue one data-channel frame if it is within the protocol's limit and the room's
    /// frame budget has room for it.
    pub fn frame(&self, participant: ParticipantId, bytes: Vec<u8>) -> Result<(), FrameRefused> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(FrameRefused::TooLarge);
        }
        let cost = bytes.len() + FRAME_OVERHEAD;
        let reserved = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q + cost <= self.limit).then_some(q + cost));
        if reserved.is_err() {
            return Err(FrameRefused::Full);
        }
        if self.tx.send(ShowMsg::Frame { participant, bytes, read_at: Instant::now() }).is_err() {
            self.queued.fetch_sub(cost, Ordering::AcqRel);
            return Err(FrameRefused::Closed);
        }
        Ok(())
    }

    /// Frame bytes (with overhead) waiting now.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl SessionReceiver {
    /// The next message, in the order they were sent; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<ShowMsg> {
        let msg = self.rx.recv().await?;
        self.queued.fetch_sub(cost(&msg), Ordering::AcqRel);
        Some(msg)
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Option<ShowMsg> {
        let msg = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(cost(&msg), Ordering::AcqRel);
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use sellcast_room::{Identity, Role};

    use super::*;

    fn join(n: u64) -> ShowMsg {
        ShowMsg::Join { participant: ParticipantId(n), identity: Identity { id: format!("u{n}"), name: format!("u{n}"), role: Role::Viewer } }
    }

    #[test]
    fn frames_stop_at_the_byte_budget_and_lifecycle_messages_still_pass() {
        let (tx, mut rx) = session_inbox(10 * (1000 + FRAME_OVERHEAD));
        let taken = (0..50).filter(|_| tx.frame(ParticipantId(1), vec![b'x'; 1000]).is_ok()).count();
        assert_eq!(taken, 10, "ten 1000-byte frames fit");
        assert_eq!(tx.frame(ParticipantId(1), vec![b'x'; 1]), Err(FrameRefused::Full));
        for n in 0..1000 {
            assert!(tx.lifecycle(join(n)));
            assert!(tx.lifecycle(ShowMsg::Leave { participant: ParticipantId(n) }));
        }
        let mut joins_and_leaves = 0;
        let mut frames = 0;
        while let Some(msg) = rx.try_recv() {
            match msg {
                ShowMsg::Frame { .. } => frames += 1,
                _ => joins_and_leaves += 1,
            }
        }
        assert_eq!((frames, joins_and_leaves), (10, 2000));
        assert_eq!(tx.queued_bytes(), 0, "taking the frames gave their bytes back");
        assert!(tx.frame(ParticipantId(1), vec![b'x'; 1000]).is_ok());
    }

    #[test]
    fn a_frame_over_the_protocol_limit_is_refused_before_it_is_queued() {
        let (tx, mut rx) = session_inbox(FRAME_QUEUE_BYTES);
        assert_eq!(tx.frame(ParticipantId(1), vec![b' '; MAX_FRAME_BYTES + 1]), Err(FrameRefused::TooLarge));
        assert_eq!(tx.queued_bytes(), 0);
        assert!(rx.try_recv().is_none());
        assert!(tx.frame(ParticipantId(1), vec![b' '; MAX_FRAME_BYTES]).is_ok(), "the limit itself is fine");
    }

    #[test]
    fn order_is_kept_between_a_participants_join_frames_and_leave() {
        let (tx, mut rx) = session_inbox(FRAME_QUEUE_BYTES);
        assert!(tx.lifecycle(join(7)));
        assert!(tx.frame(ParticipantId(7), b"{}".to_vec()).is_ok());
        assert!(tx.lifecycle(ShowMsg::Leave { participant: ParticipantId(7) }));
        let kinds: Vec<&str> = std::iter::from_fn(|| rx.try_recv())
            .map(|m| match m {
                ShowMsg::Join { .. } => "join",
                ShowMsg::Frame { .. } => "frame",
                ShowMsg::Leave { .. } => "leave",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["join", "frame", "leave"]);
    }

    #[test]
    fn a_closed_inbox_refuses_and_keeps_no_bytes() {
        let (tx, rx) = session_inbox(FRAME_QUEUE_BYTES);
        drop(rx);
        assert_eq!(tx.frame(ParticipantId(1), b"{}".to_vec()), Err(FrameRefused::Closed));
        assert_eq!(tx.queued_bytes(), 0);
        assert!(!tx.lifecycle(join(1)));
    }
}

/// A room's show task behind a frame flood: its joins and leaves still arrive, so its
/// participant count comes back to zero.
#[cfg(test)]
mod flood_tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use sellcast_room::{Identity, ParticipantId, Role};
    use tokio::sync::{mpsc, oneshot};

    use super::FrameRefused;
    use crate::interaction::messages::ShowMsg;
    use crate::interaction::registry::{ShowHandle, ShowRegistry};
    use crate::interaction::store_client::StoreClient;
    use crate::media::router::MediaRouter;
    use crate::supervision::Supervision;

    const PEOPLE: u64 = 200;

    /// Frames from one participant until the room's budget refuses some (the task does not
    /// run meanwhile: this test's runtime has one thread and nothing here awaits).
    fn flood(room: &ShowHandle) -> usize {
        let like = br#"{"type":"like","count":1}"#;
        (0..20_000).filter(|_| room.sessions.frame(ParticipantId(1), like.to_vec()) == Err(FrameRefused::Full)).count()
    }

    /// The show's participant count, asked until it is `expected` or 10 s pass. The ask goes
    /// through the call inbox, which the task serves alongside the session inbox, so it may
    /// overtake messages still queued there: hence the polling.
    async fn participants_become(room: &ShowHandle, expected: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (done, count) = oneshot::channel();
            room.tx
                .send(ShowMsg::Drain { reconnect_after_ms: 60_000, done })
                .await
                .map_err(|_| anyhow::anyhow!("the room task is gone"))?;
            let count = count.await?;
            if count == expected {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the room counts {count} participants, not {expected}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn joins_and_leaves_reach_a_flooded_room_and_its_participants_return_to_zero() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = StoreClient::open(&dir.path().join("s.db")).map_err(|e| anyhow::anyhow!("{e}"))?;
        let supervision = Arc::new(Supervision::new(store.inner().clone()));
        let (media_tx, _media_rx) = mpsc::channel(1 << 16);
        let shows = ShowRegistry::new(store, MediaRouter::new(vec![media_tx]), tokio::runtime::Handle::current(), supervision, Default::default());
        let room = shows.get("flooded");
        let who = |n: u64| Identity { id: format!("viewer-{n}"), name: format!("viewer {n}"), role: Role::Viewer };

        assert!(flood(&room) > 0, "the flood outran the room's frame budget");
        for n in 0..PEOPLE {
            assert!(room.sessions.lifecycle(ShowMsg::Join { participant: ParticipantId(10 + n), identity: who(n) }));
        }
        participants_become(&room, PEOPLE as usize).await?;

        assert!(flood(&room) > 0, "flooded again");
        for n in 0..PEOPLE {
            assert!(room.sessions.lifecycle(ShowMsg::Leave { participant: ParticipantId(10 + n) }));
        }
        participants_become(&room, 0).await?;
        Ok(())
    }
}
