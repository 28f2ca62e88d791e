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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use sellcast_room::{Class, Position};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use super::subjects::{self, HEADER_CLASS, HEADER_EPOCH, HEADER_SEQ};
use super::wire::{self, RemoteReply, RemoteRequest};
use super::RoomLinks;
use crate::interaction::messages::ShowMsg;
use crate::interaction::room_api;
use crate::interaction::store_client::StoreClient;

/// Longest an event's publish waits for the stream's acknowledgement before it is retried.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before publishing an unacknowledged event again, and before subscribing again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Frames waiting for NATS, at most.
const QUEUE_FRAMES: usize = 10_000;

/// A frame of the room for the other nodes.
enum Relayed {
    Event { position: Position, class: Class, frame: Arc<str> },
    Live { class: Class, frame: Arc<str> },
}

/// Held by the room's show task(s); its tasks stop when it is dropped.
pub struct OwnerRelay {
    queue: mpsc::Sender<Relayed>,
    /// Frames dropped because the queue was full (NATS away for long).
    dropped: AtomicU64,
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
        let publisher = tokio::spawn(publish(links.clone(), room.to_string(), rx)).abort_handle();
        let responder = tokio::spawn(respond(links.clone(), room.to_string(), show, store)).abort_handle();
        info!(%room, node = %links.me().as_str(), "this node owns the room: relaying its events to the cluster");
        Self { queue, dropped: AtomicU64::new(0), tasks: vec![publisher, responder] }
    }

    /// A broadcast of the room: an event (with its position) for the stream, else a
    /// latest-state frame for the live subject.
    pub fn handle_broadcast(&self, frame: &Arc<str>, class: Class, position: Option<Position>) {
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

async fn publish(links: Arc<RoomLinks>, room: String, mut rx: mpsc::Receiver<Relayed>) {
    let (events, live) = (subjects::events(&room), subjects::live(&room));
    while let Some(relayed) = rx.recv().await {
        match relayed {
            Relayed::Event { position, class, frame } => publish_event(&links.js, &room, &events, position, class, frame).await,
            Relayed::Live { class, frame } => {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(HEADER_CLASS, subjects::class_name(class));
                let payload = bytes::Bytes::copy_from_slice(frame.as_bytes());
                if let Err(e) = links.client.publish_with_headers(live.clone(), headers, payload).await {
                    debug!(%room, error = %e, "a latest-state frame was not relayed; the next tick replaces it");
                }
            }
        }
    }
}

/// Publish one event until the stream acknowledged it: the next one waits, so the stream
/// never holds a seq before the one under it.
async fn publish_event(js: &jetstream::Context, room: &str, subject: &str, position: Position, class: Class, frame: Arc<str>) {
    let mut failures = 0_u64;
    loop {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(HEADER_EPOCH, position.epoch.to_string().as_str());
        headers.insert(HEADER_SEQ, position.seq.to_string().as_str());
        headers.insert(HEADER_CLASS, subjects::class_name(class));
        headers.insert("Nats-Msg-Id", subjects::event_id(room, position.epoch, position.seq).as_str());
        let payload = bytes::Bytes::copy_from_slice(frame.as_bytes());
        let acked = match js.publish_with_headers(subject.to_string(), headers, payload).await {
            Ok(ack) => match tokio::time::timeout(ACK_TIMEOUT, ack).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no acknowledgement in time".to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        match acked {
            Ok(()) => return,
            Err(error) => {
                failures += 1;
                if failures.is_power_of_two() {
                    warn!(%room, seq = position.seq, %error, failures, "the events stream did not take an event; retrying it");
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Answer the frames other nodes forward, in the order they arrive.
async fn respond(links: Arc<RoomLinks>, room: String, show: mpsc::WeakSender<ShowMsg>, store: StoreClient) {
    let subject = subjects::calls(&room);
    loop {
        let mut calls = match links.client.subscribe(subject.clone()).await {
            Ok(calls) => calls,
            Err(e) => {
                warn!(%room, error = %e, "could not take calls for the room; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        while let Some(msg) = calls.next().await {
            let request = match wire::decode::<RemoteRequest>(&msg.payload) {
                Ok(request) => request,
                Err(e) => {
                    warn!(%room, error = %e, "an undecodable call from another node; dropped");
                    continue;
                }
            };
            handle_request(&links.client, &show, &store, &room, request, msg.reply).await;
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
