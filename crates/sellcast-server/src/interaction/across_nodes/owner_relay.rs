//! The owner's side of a room's interaction across nodes, started with its show task:
//! - every room event goes to the room's subject of the events stream, one after the other
//!   in seq order, each retried until the stream acknowledged it (the stream drops a retry it
//!   already holds, by the event's id), so the stream holds the room's seqs without gaps;
//! - latest-state frames go to the room's live subject (lost ones are replaced next tick);
//! - frames other nodes forward are handed to the show task as calls, in the order they
//!   arrived, and its answers go back to the asking node's reply subject;
//! - requests of the room's HTTP API other nodes forward (reads, product changes) are
//!   answered as the owner's own API answers them (`room_api::answer`), status and body.
//!
//! The show task never waits on NATS: it hands frames to the relay's queue and goes on. The
//! queue holds at most `QUEUE_FRAMES` (as many events as the stream keeps per room): while NATS
//! is away longer than that takes to fill, further frames are dropped and counted, and the
//! other nodes' viewers meet the gap and take a snapshot (`stream_log`), rather than the owner
//! holding an ever longer queue.
//!
//! Each event's publish expects the room subject's last message to be this owner's last one
//! ([`super::owner_fence`]). When the stream refuses that, another node has written the room
//! (it took the room over while this node was cut off): the relay is fenced. It publishes
//! nothing more, stops taking other nodes' calls (the new owner answers them), and the show
//! answers its buys `unavailable` (`ShowTask`); the node counts it (`/api/stats/cluster`,
//! `/metrics`).
//!
//! The stream fences a stale owner only at its first publish. Before that, the owner's own
//! lease tells it when to stop (`cluster::lease_standing`): once its last renewal is older than
//! the lease minus the skew grace, its buys are answered `unavailable`, its events wait in the
//! queue instead of being published, and other nodes' calls go unanswered; a renewal that
//! succeeds again lets it go on where it stopped (the waiting events are published in order).
//! When a renewal finds the room claimed by another node, the relay is fenced as above.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use futures_util::StreamExt;
use sellcast_room::{Class, Position};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use super::owner_fence::{self, FenceStep, Published};
use super::subjects::{self, HEADER_CLASS, HEADER_EPOCH, HEADER_SEQ};
use super::wire::{self, RemoteReply, RemoteRequest};
use super::RoomLinks;
use crate::cluster::lease_book::LeaseWatch;
use crate::cluster::lease_standing::LeaseStanding;
use crate::cluster::unix_millis::UnixMillis;
use crate::interaction::messages::ShowMsg;
use crate::interaction::room_api;
use crate::interaction::store_client::StoreClient;

/// Longest an event's publish waits for the stream's acknowledgement before it is retried.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before publishing an unacknowledged event again, and before subscribing again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Frames waiting for NATS, at most.
const QUEUE_FRAMES: usize = 10_000;
/// Longest reading the room subject's last message waits, after a refused publish.
const READ_LAST_TIMEOUT: Duration = Duration::from_secs(2);

/// Tells this process's relays apart in their message ids (with the node id and start time).
static RELAYS_STARTED: AtomicU64 = AtomicU64::new(0);

/// A frame of the room for the other nodes.
enum Relayed {
    /// The show read the room subject's last message at this stream sequence when it started
    /// (0: the subject is empty; `None`: the stream could not be read, so the first publish
    /// expects nothing and the ones after it expect their predecessor).
    Takeover { after: Option<u64> },
    Event { position: Position, class: Class, frame: Arc<str> },
    Live { class: Class, frame: Arc<str> },
}

/// Held by the room's show task(s); its tasks stop when it is dropped.
pub struct OwnerRelay {
    queue: mpsc::Sender<Relayed>,
    /// Frames dropped because the queue was full (NATS away for long).
    dropped: AtomicU64,
    /// Another node has written the room's stream, or holds its claim: this node no longer
    /// owns it.
    fenced: Arc<AtomicBool>,
    /// This node's claim on the room, as the lease loop last renewed it.
    lease: LeaseWatch,
    tasks: Vec<AbortHandle>,
}

impl Drop for OwnerRelay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl OwnerRelay {
    /// Start relaying `room`, whose show task reads `show` (held weakly: the relay does not
    /// keep the room loaded).
    pub fn start(links: &Arc<RoomLinks>, room: &str, show: mpsc::WeakSender<ShowMsg>, store: StoreClient) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE_FRAMES);
        let fenced = Arc::new(AtomicBool::new(false));
        let token = format!(
            "{}.{}.{}",
            links.me().as_str(),
            crate::cluster::unix_millis::UnixMillis::now().0,
            RELAYS_STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let lease = links.lease_watch(room);
        let publisher = Publisher {
            links: links.clone(),
            room: room.to_string(),
            token,
            after: None,
            fenced: fenced.clone(),
            lease: lease.clone(),
        };
        let publisher = tokio::spawn(publisher.run(rx)).abort_handle();
        let responder = Responder { links: links.clone(), room: room.to_string(), show, store, fenced: fenced.clone(), lease: lease.clone() };
        let responder = tokio::spawn(responder.run()).abort_handle();
        info!(%room, node = %links.me().as_str(), "this node owns the room: relaying its events to the cluster");
        Self { queue, dropped: AtomicU64::new(0), fenced, lease, tasks: vec![publisher, responder] }
    }

    /// This node may not act as the room's owner now: another node has written the room's
    /// stream or holds its claim, or this node's lease may have run out for the other nodes
    /// (`cluster::lease_standing`).
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Relaxed) || self.lease.standing(UnixMillis::now()) != LeaseStanding::Owner
    }

    /// The show starts (first start on this node): its events follow the room subject's
    /// message at stream sequence `after` (see [`Relayed::Takeover`]). Queued before its first
    /// event.
    pub fn handle_takeover(&self, after: Option<u64>) {
        if self.queue.try_send(Relayed::Takeover { after }).is_err() {
            warn!("the relay's queue did not take the show's start; its first event expects nothing");
        }
    }

    /// A broadcast of the room: an event (with its position) for the stream, else a
    /// latest-state frame for the live subject.
    /// While the lease is in doubt, events still queue: they are published if a renewal
    /// succeeds, dropped if the room is lost.
    pub fn handle_broadcast(&self, frame: &Arc<str>, class: Class, position: Option<Position>) {
        if self.fenced.load(Ordering::Relaxed) {
            return;
        }
        let relayed = match position {
            Some(position) => Relayed::Event { position, class, frame: frame.clone() },
            None => Relayed::Live { class, frame: frame.clone() },
        };
        match self.queue.try_send(relayed) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    warn!(dropped, "the events stream is not taking the room's frames and the queue is full: frames dropped, other nodes' viewers will resync");
                }
            }
            // The publisher runs as long as the relay: a closed queue means the room is going away.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// The relay's publishing side: one event at a time, each expecting the last.
struct Publisher {
    links: Arc<RoomLinks>,
    room: String,
    /// This owner's part of its events' message ids (`owner_fence::event_msg_id`).
    token: String,
    /// The stream sequence of the room subject's last message as this owner knows it.
    after: Option<u64>,
    fenced: Arc<AtomicBool>,
    lease: LeaseWatch,
}

/// Stop owning the room: counted once per relay, whichever of the stream and the lease
/// told it first.
fn give_up(links: &RoomLinks, fenced: &AtomicBool) {
    if !fenced.swap(true, Ordering::Relaxed) {
        links.handle_fenced();
    }
}

impl Publisher {
    async fn run(mut self, mut rx: mpsc::Receiver<Relayed>) {
        let (events, live) = (subjects::events(&self.room), subjects::live(&self.room));
        while let Some(relayed) = rx.recv().await {
            match relayed {
                Relayed::Takeover { after } => self.after = after,
                Relayed::Event { position, class, frame } => {
                    if !self.wait_while_in_doubt(position.seq).await || !self.publish_event(&events, position, class, frame).await {
                        give_up(&self.links, &self.fenced);
                        // The queue closes with this task: the show's further frames go nowhere.
                        return;
                    }
                }
                // Latest-state frames are replaced next tick: while the lease is in doubt they
                // are not sent at all.
                Relayed::Live { .. } if self.lease.standing(UnixMillis::now()) != LeaseStanding::Owner => {}
                Relayed::Live { class, frame } => {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert(HEADER_CLASS, subjects::class_name(class));
                    let payload = bytes::Bytes::copy_from_slice(frame.as_bytes());
                    if let Err(e) = self.links.client.publish_with_headers(live.clone(), headers, payload).await {
                        debug!(room = %self.room, error = %e, "a latest-state frame was not relayed; the next tick replaces it");
                    }
                }
            }
        }
    }

    /// Before an event's publish: wait while this node's lease is in doubt (no renewal for
    /// longer than the lease minus the grace). True: the lease was renewed (or never held), so
    /// publish; false: the room was lost to another node.
    async fn wait_while_in_doubt(&mut self, seq: u64) -> bool {
        let mut waited = false;
        loop {
            match self.lease.standing(UnixMillis::now()) {
                LeaseStanding::Owner => {
                    if waited {
                        info!(room = %self.room, seq, "the room's lease was renewed: publishing its events again");
                    }
                    return true;
                }
                LeaseStanding::GaveUp => {
                    warn!(room = %self.room, seq, "another node holds the room's claim: this node no longer owns the room; its events stop here");
                    return false;
                }
                LeaseStanding::Fenced => {
                    if !waited {
                        warn!(room = %self.room, seq, "the room's lease was not renewed in time: holding its events until a renewal");
                        waited = true;
                    }
                    self.lease.changed().await;
                }
            }
        }
    }

    /// Publish one event until the stream acknowledged it: the next one waits, so the stream
    /// never holds a seq before the one under it. False: another node has written the room
    /// (this node is fenced; the event is not in the stream).
    async fn publish_event(&mut self, subject: &str, position: Position, class: Class, frame: Arc<str>) -> bool {
        let room = self.room.as_str();
        let msg_id = owner_fence::event_msg_id(&subjects::event_id(room, position.epoch, position.seq), &self.token);
        let mut failures = 0_u64;
        loop {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(HEADER_EPOCH, position.epoch.to_string().as_str());
            headers.insert(HEADER_SEQ, position.seq.to_string().as_str());
            headers.insert(HEADER_CLASS, subjects::class_name(class));
            let mut message = PublishMessage::build()
                .headers(headers)
                .message_id(&msg_id)
                .payload(bytes::Bytes::copy_from_slice(frame.as_bytes()));
            if let Some(after) = self.after {
                message = message.expected_last_subject_sequence(after);
            }
            let published = publish_once(&self.links.js, subject, message).await;
            let step = match owner_fence::after_publish(published) {
                FenceStep::ReadLast => self.read_last(subject, &msg_id).await,
                step => step,
            };
            match step {
                FenceStep::Accepted { stream_seq } => {
                    self.after = Some(stream_seq);
                    return true;
                }
                FenceStep::Fenced => {
                    warn!(room, seq = position.seq, expected_after = ?self.after, "another node has written the room's events stream: this node no longer owns the room; its events stop here");
                    return false;
                }
                FenceStep::Retry | FenceStep::ReadLast => {
                    failures += 1;
                    if failures.is_power_of_two() {
                        warn!(room, seq = position.seq, failures, "the events stream did not take an event; retrying it");
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    /// After a "wrong last sequence": the room subject's last message tells whether it is this
    /// very publish (stored, its acknowledgement lost) or another writer's. `Retry` when it
    /// cannot be read.
    async fn read_last(&self, subject: &str, msg_id: &str) -> FenceStep {
        let read = self.links.stream.get_last_raw_message_by_subject(subject);
        match tokio::time::timeout(READ_LAST_TIMEOUT, read).await {
            Ok(Ok(last)) => {
                let id = last.headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str());
                owner_fence::after_reading_last(id, last.sequence, msg_id)
            }
            Ok(Err(e)) if e.kind() == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                owner_fence::after_reading_last(None, 0, msg_id)
            }
            Ok(Err(e)) => {
                debug!(room = %self.room, error = %e, "reading the room subject's last message failed");
                FenceStep::Retry
            }
            Err(_) => FenceStep::Retry,
        }
    }
}

/// One publish and its acknowledgement, as the fencing decision reads it.
async fn publish_once(js: &jetstream::Context, subject: &str, message: PublishMessage) -> Published {
    let ack = match js.send_publish(subject.to_string(), message).await {
        Ok(ack) => ack,
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => return Published::WrongLastSequence,
        Err(e) => {
            debug!(error = %e, "publishing an event failed");
            return Published::Unknown;
        }
    };
    match tokio::time::timeout(ACK_TIMEOUT, ack).await {
        Ok(Ok(ack)) => Published::Stored { stream_seq: ack.sequence },
        Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => Published::WrongLastSequence,
        Ok(Err(e)) => {
            debug!(error = %e, "an event's publish was not acknowledged");
            Published::Unknown
        }
        Err(_) => Published::Unknown,
    }
}

/// The relay's answering side: the frames other nodes forward, in the order they arrive.
///
/// Once fenced it stops listening without answering: the new owner hears the same calls and
/// its answer is the one the asking node gets. While this node's lease is in doubt it hears
/// calls but answers none (the asking node times out and asks again).
struct Responder {
    links: Arc<RoomLinks>,
    room: String,
    show: mpsc::WeakSender<ShowMsg>,
    store: StoreClient,
    fenced: Arc<AtomicBool>,
    lease: LeaseWatch,
}

impl Responder {
    async fn run(mut self) {
        let (links, room) = (self.links.clone(), self.room.clone());
        let subject = subjects::calls(&room);
        while !self.fenced.load(Ordering::Relaxed) {
            let mut calls = match links.client.subscribe(subject.clone()).await {
                Ok(calls) => calls,
                Err(e) => {
                    warn!(%room, error = %e, "could not take calls for the room; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            };
            loop {
                let msg = tokio::select! {
                    msg = calls.next() => msg,
                    () = self.lease.lost() => {
                        warn!(%room, "a renewal found the room claimed by another node: this node gives the room up");
                        give_up(&links, &self.fenced);
                        return;
                    }
                };
                let Some(msg) = msg else {
                    break;
                };
                if self.fenced.load(Ordering::Relaxed) {
                    break;
                }
                if self.lease.standing(UnixMillis::now()) != LeaseStanding::Owner {
                    debug!(%room, "a call from another node while the room's lease is in doubt: not answered");
                    continue;
                }
                let request = match wire::decode::<RemoteRequest>(&msg.payload) {
                    Ok(request) => request,
                    Err(e) => {
                        warn!(%room, error = %e, "an undecodable call from another node; dropped");
                        continue;
                    }
                };
                handle_request(&links.client, &self.show, &self.store, &room, request, msg.reply).await;
            }
        }
    }
}

async fn handle_request(
    client: &async_nats::Client,
    show: &mpsc::WeakSender<ShowMsg>,
    store: &StoreClient,
    room: &str,
    request: RemoteRequest,
    reply_to: Option<async_nats::Subject>,
) {
    let Some(show) = show.upgrade() else {
        answer(client, reply_to, RemoteReply::Unavailable).await;
        return;
    };
    match request {
        RemoteRequest::Likes { count } => {
            let _ = show.send(ShowMsg::NodeLikes { count }).await;
        }
        RemoteRequest::Call { identity, frame } => {
            let (reply, answered) = oneshot::channel();
            // Queued before the next request is read: one node's frames reach the room in
            // the order that node sent them.
            if show.send(ShowMsg::Call { identity, frame, reply }).await.is_err() {
                answer(client, reply_to, RemoteReply::Unavailable).await;
                return;
            }
            let client = client.clone();
            tokio::spawn(async move {
                let reply = match answered.await {
                    Ok(answer) => RemoteReply::Answer { answer },
                    Err(_) => RemoteReply::Unavailable,
                };
                answer(&client, reply_to, reply).await;
            });
        }
        RemoteRequest::Api { request } => {
            // Answered beside the responder, which goes on reading: a slow store write does
            // not hold up other nodes' frames.
            let (client, store, room) = (client.clone(), store.clone(), room.to_string());
            tokio::spawn(async move {
                let reply = room_api::answer(&show, &store, &room, request).await;
                answer(&client, reply_to, RemoteReply::Api { reply }).await;
            });
        }
        RemoteRequest::IsBanned { identity, role } => {
            let (reply, answered) = oneshot::channel();
            if show.send(ShowMsg::IsBanned { identity, role, reply }).await.is_err() {
                answer(client, reply_to, RemoteReply::Unavailable).await;
                return;
            }
            let client = client.clone();
            tokio::spawn(async move {
                let reply = match answered.await {
                    Ok(banned) => RemoteReply::Banned { banned },
                    Err(_) => RemoteReply::Unavailable,
                };
                answer(&client, reply_to, reply).await;
            });
        }
    }
}

async fn answer(client: &async_nats::Client, reply_to: Option<async_nats::Subject>, reply: RemoteReply) {
    let Some(to) = reply_to else {
        return;
    };
    if let Err(e) = client.publish(to, wire::encode(&reply)).await {
        debug!(error = %e, "an answer to another node was not sent; it times out there");
    }
}
