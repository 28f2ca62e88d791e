//! A room owned by another node, as this node serves it: the mirror stands where a show task
//! would, behind the same [`ShowHandle`](crate::interaction::registry::ShowHandle), so the
//! media plane and the HTTP API reach it as they reach a show.
//!
//! What it does, and what holds:
//! - it reads the room's events from the stream into a local copy ([`StreamLog`]) and hands
//!   each to each of its viewers once, in seq order ([`due`]): a viewer's events continue
//!   from its welcome without a gap or a repeat, whether the welcome came from the owner
//!   (a snapshot, which the stream may be behind or ahead of) or from the copy;
//! - a viewer resuming by seq is served from the copy when it holds every event after the
//!   viewer's position, waits a moment when the copy has not read that far, and otherwise
//!   gets the owner's answer to its `hello` (a replay from the owner's memory or a snapshot);
//! - every other frame goes to the owner with the viewer's identity, by request/reply, one
//!   after the other in the order they came, and the answer (a buy's outcome, a refusal)
//!   goes back to the viewer or HTTP caller that sent it;
//! - requests of the room's HTTP API (product list, show details, orders, bans, product
//!   changes) go to the owner the same way, and the owner's status and body come back
//!   ([`crate::interaction::room_api`]): a mirror never answers them from its copy, which
//!   holds events, not the room's state;
//! - a ban in the stream (`user_banned`) disconnects the banned identity's viewers here once
//!   the owner confirms the ban binds them (a ban binds only roles below its placer's, which
//!   the event does not say);
//! - likes are summed per tick ([`NodeLikes`]), one message to the owner per tick;
//! - latest-state frames (likes, counters) from the owner go to every viewer whose stream is
//!   open.
//!
//! It never runs a [`sellcast_room::Show`]: sales, stock and limits stay with the owner.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures_util::StreamExt;
use sellcast_room::protocol::DirectFrame;
use sellcast_room::{Answer, Class, ClientFrame, ErrorCode, FrameError, Identity, ParticipantId, Position, Role, ShowLimits};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, info_span, warn, Instrument};

use super::node_likes::NodeLikes;
use super::stream_log::{Replay, StreamEvent, StreamLog};
use super::subjects::{self, HEADER_CLASS};
use super::viewer_cursor::{due, Due};
use super::wire::{self, RemoteReply, RemoteRequest};
use super::RoomLinks;
use crate::interaction::messages::ShowMsg;
use crate::interaction::registry::Idle;
use crate::interaction::room_api::RoomApiReply;
use crate::interaction::session_inbox::SessionReceiver;
use crate::interaction::task::wall_ms;
use crate::media::command::Command;
use crate::media::router::MediaRouter;

/// Likes are summed, and calls and resumes checked, on this tick (the show task's).
const TICK: Duration = Duration::from_millis(300);
/// Longest a forwarded frame waits for the owner's answer (a buy waits for the store).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a resume waits for the local copy to read up to its position before the owner
/// is asked instead.
const RESUME_WAIT: Duration = Duration::from_secs(2);
/// Senders of the mirror's inbox that belong to it: the registry's handle and its own.
const MIRROR_OWN_SENDERS: usize = 2;

/// One viewer on this node.
struct MirrorViewer {
    identity: Identity,
    /// The last event it has (`None`: its stream is not open, or is being opened).
    cursor: Option<Position>,
    /// A resume waiting for the local copy, since when.
    waiting: Option<(Position, Instant)>,
}

/// Who a forwarded frame's answer goes to.
enum Asker {
    /// A viewer's frame; `hello`: the answer opens its stream.
    Session { participant: ParticipantId, hello: bool },
    Call(oneshot::Sender<Answer>),
    Banned(oneshot::Sender<bool>),
    Api(oneshot::Sender<RoomApiReply>),
    /// A viewer here whose identity the stream says was banned: kicked if the ban binds it.
    BanCheck { participant: ParticipantId },
}

struct Pending {
    asker: Asker,
    sent: Instant,
}

/// The position a welcome frame opens a stream at (the protocol's own statement of it).
#[derive(serde::Deserialize)]
struct WelcomeHead {
    epoch: u64,
    seq: u64,
}

/// A `user_banned` event's identity (the protocol's `RoomEvent::UserBanned`).
#[derive(serde::Deserialize)]
struct BannedEvent {
    #[serde(rename = "type")]
    kind: String,
    identity: Option<String>,
}

/// The mirror of one room.
pub struct RoomMirror {
    room: String,
    links: Arc<RoomLinks>,
    driver: MediaRouter,
    me: mpsc::Sender<ShowMsg>,
    idle: Idle,
    log: StreamLog,
    viewers: HashMap<ParticipantId, MirrorViewer>,
    likes: NodeLikes,
    pending: HashMap<u64, Pending>,
    next_call: u64,
    /// Answers from the owner come to `<replies>.<call id>`.
    replies: String,
    dropped_deliveries: u64,
}

impl RoomMirror {
    pub(in crate::interaction) fn new(room: String, links: Arc<RoomLinks>, driver: MediaRouter, me: mpsc::Sender<ShowMsg>, idle: Idle) -> Self {
        let replies = links.client.new_inbox();
        Self {
            room,
            links,
            driver,
            me,
            idle,
            log: StreamLog::new(ShowLimits::default().replay_events),
            viewers: HashMap::new(),
            likes: NodeLikes::default(),
            pending: HashMap::new(),
            next_call: 0,
            replies,
            dropped_deliveries: 0,
        }
    }

    /// Serve the room until it is unused (or NATS cannot be subscribed to at all).
    pub async fn run(self, inbox: mpsc::Receiver<ShowMsg>, sessions: SessionReceiver) {
        let span = info_span!("room_mirror", room = %self.room);
        self.serve(inbox, sessions).instrument(span).await
    }

    async fn serve(mut self, mut inbox: mpsc::Receiver<ShowMsg>, mut sessions: SessionReceiver) {
        let (mut events, mut live, mut replies) = match self.subscribe().await {
            Ok(subscribed) => subscribed,
            Err(e) => {
                warn!(room = %self.room, error = %e, "could not mirror the room; it is looked up again on next use");
                self.idle.remove(&self.room, &self.me);
                return;
            }
        };
        info!(room = %self.room, "mirroring a room owned by another node");
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut sessions_open, mut live_open, mut replies_open) = (true, true, true);
        let mut idle_since = None;
        loop {
            tokio::select! {
                msg = inbox.recv() => match msg {
                    Some(m) => self.handle_msg(m).await,
                    None => break,
                },
                msg = sessions.recv(), if sessions_open => match msg {
                    Some(m) => self.handle_msg(m).await,
                    None => sessions_open = false,
                },
                msg = events.next() => match msg {
                    Some(Ok(m)) => self.handle_stream_message(&m).await,
                    Some(Err(e)) => debug!(room = %self.room, error = %e, "the events consumer reconnects"),
                    None => match self.consume().await {
                        // Read again from the start: the copy drops what it holds already.
                        Ok(again) => events = again,
                        Err(e) => {
                            warn!(room = %self.room, error = %e, "the room's events cannot be read; leaving the mirror");
                            break;
                        }
                    },
                },
                msg = live.next(), if live_open => match msg {
                    Some(m) => self.handle_live(&m),
                    None => live_open = false,
                },
                msg = replies.next(), if replies_open => match msg {
                    Some(m) => self.handle_reply(&m).await,
                    None => replies_open = false,
                },
                _ = tick.tick() => {
                    self.handle_tick().await;
                    if self.unloaded(&inbox, &mut idle_since) {
                        info!(room = %self.room, "mirror unloaded: unused");
                        break;
                    }
                }
            }
        }
        self.idle.remove(&self.room, &self.me);
    }

    async fn subscribe(&self) -> Result<(pull::Ordered, async_nats::Subscriber, async_nats::Subscriber), String> {
        let events = self.consume().await?;
        let client = &self.links.client;
        let live = client.subscribe(subjects::live(&self.room)).await.map_err(|e| e.to_string())?;
        let replies = client.subscribe(format!("{}.*", self.replies)).await.map_err(|e| e.to_string())?;
        Ok((events, live, replies))
    }

    /// The room's events from the oldest the stream keeps, then as they come.
    async fn consume(&self) -> Result<pull::Ordered, String> {
        let config = pull::OrderedConfig {
            filter_subject: subjects::events(&self.room),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        };
        let consumer = self.links.stream.create_consumer(config).await.map_err(|e| e.to_string())?;
        consumer.messages().await.map_err(|e| e.to_string())
    }

    async fn handle_msg(&mut self, msg: ShowMsg) {
        match msg {
            ShowMsg::Join { participant, identity } => {
                self.viewers.insert(participant, MirrorViewer { identity, cursor: None, waiting: None });
            }
            ShowMsg::Rejoin { participant, identity } => {
                self.viewers.insert(participant, MirrorViewer { identity, cursor: None, waiting: None });
                self.greet(participant, None).await;
            }
            ShowMsg::Leave { participant } => {
                self.viewers.remove(&participant);
            }
            ShowMsg::Frame { participant, bytes, .. } => self.handle_frame(participant, &bytes).await,
            ShowMsg::Call { identity, frame, reply } => self.call(identity, frame, reply).await,
            // A ban binds only roles below the one that placed it: never a host. A host is
            // asked here on its way to the room's owner (a redirect, or a takeover).
            ShowMsg::IsBanned { role: Role::Host, reply, .. } => {
                let _ = reply.send(false);
            }
            ShowMsg::IsBanned { identity, role, reply } => {
                self.forward(Asker::Banned(reply), RemoteRequest::IsBanned { identity, role }).await;
            }
            ShowMsg::Drain { reconnect_after_ms, done } => {
                let frame = frame_of(&DirectFrame::Draining { reconnect_after_ms });
                let all: Vec<ParticipantId> = self.viewers.keys().copied().collect();
                for to in all {
                    self.deliver(to, frame.clone(), Class::Control);
                }
                let _ = done.send(self.viewers.len());
            }
            ShowMsg::RoomApi { request, reply } => {
                self.forward(Asker::Api(reply), RemoteRequest::Api { request }).await;
            }
            // The typed reads and product changes reach a mirror as `RoomApi` (the HTTP API
            // tells a mirror from a show); sent here directly, the caller hears that the room is
            // unavailable on this node.
            other => debug!(room = %self.room, msg = ?std::mem::discriminant(&other), "not served by a mirror"),
        }
    }

    async fn handle_frame(&mut self, participant: ParticipantId, bytes: &[u8]) {
        let Some(viewer) = self.viewers.get(&participant) else {
            return;
        };
        let identity = viewer.identity.clone();
        match ClientFrame::parse(bytes) {
            Err(e) => self.deliver(participant, e.to_frame().into(), Class::Control),
            Ok(ClientFrame::Hello { resume }) => self.greet(participant, resume).await,
            Ok(ClientFrame::Like { count }) => self.likes.handle_like(&identity.id, count),
            Ok(ClientFrame::VideoCap { data_saver, max_height }) => {
                // The cap is for this node's media plane; the room refuses it from staff.
                if identity.role == Role::Viewer {
                    let cap = sellcast_sfu::LayerCap { max_height, data_saver };
                    let _ = self.driver.try_send(Command::VideoCap { peer: participant.0, cap });
                }
            }
            Ok(frame) => {
                let asker = Asker::Session { participant, hello: false };
                self.forward(asker, RemoteRequest::Call { identity, frame }).await;
            }
        }
    }

    /// An HTTP caller's frame: a resume the local copy can serve is answered here, anything
    /// else by the owner.
    async fn call(&mut self, identity: Identity, frame: ClientFrame, reply: oneshot::Sender<Answer>) {
        if let ClientFrame::Hello { resume: Some(from) } = &frame {
            if let Replay::Events(events) = self.log.replay_after(*from) {
                let at = events.last().map_or(*from, |e| e.position);
                let mut frames = vec![welcome(&identity, None, at)];
                frames.extend(events.into_iter().map(|e| e.frame));
                let _ = reply.send(Answer::Welcome(frames));
                return;
            }
        }
        self.forward(Asker::Call(reply), RemoteRequest::Call { identity, frame }).await;
    }

    /// Open a viewer's stream: from the local copy when it holds every event after `resume`,
    /// else with the owner's answer to its `hello`.
    async fn greet(&mut self, participant: ParticipantId, resume: Option<Position>) {
        let Some(viewer) = self.viewers.get_mut(&participant) else {
            return;
        };
        viewer.cursor = None;
        viewer.waiting = None;
        let Some(from) = resume else {
            self.ask_hello(participant, None).await;
            return;
        };
        match self.log.replay_after(from) {
            Replay::Events(events) => self.open_locally(participant, from, events),
            Replay::NotYet => viewer.waiting = Some((from, Instant::now())),
            Replay::Gone => self.ask_hello(participant, Some(from)).await,
        }
    }

    fn open_locally(&mut self, participant: ParticipantId, from: Position, events: Vec<StreamEvent>) {
        let Some(viewer) = self.viewers.get_mut(&participant) else {
            return;
        };
        let at = events.last().map_or(from, |e| e.position);
        viewer.cursor = Some(at);
        viewer.waiting = None;
        let opening = welcome(&viewer.identity, Some(participant), at);
        self.deliver(participant, opening, Class::Control);
        for event in events {
            self.deliver(participant, event.frame, event.class);
        }
    }

    async fn ask_hello(&mut self, participant: ParticipantId, resume: Option<Position>) {
        let Some(viewer) = self.viewers.get(&participant) else {
            return;
        };
        let identity = viewer.identity.clone();
        let asker = Asker::Session { participant, hello: true };
        self.forward(asker, RemoteRequest::Call { identity, frame: ClientFrame::Hello { resume } }).await;
    }

    /// Send `request` to the owner; its answer comes on the replies subscription.
    async fn forward(&mut self, asker: Asker, request: RemoteRequest) {
        let id = self.next_call;
        self.next_call += 1;
        let reply_to = format!("{}.{id}", self.replies);
        let sent = self.links.client.publish_with_reply(subjects::calls(&self.room), reply_to, wire::encode(&request)).await;
        match sent {
            Ok(()) => {
                self.pending.insert(id, Pending { asker, sent: Instant::now() });
            }
            Err(e) => {
                debug!(room = %self.room, error = %e, "a frame could not be forwarded to the room's owner");
                self.settle(asker, RemoteReply::Unavailable);
            }
        }
    }

    async fn handle_reply(&mut self, msg: &async_nats::Message) {
        let id = msg.subject.as_str().rsplit('.').next().and_then(|id| id.parse::<u64>().ok());
        let Some(pending) = id.and_then(|id| self.pending.remove(&id)) else {
            return;
        };
        let reply = wire::decode::<RemoteReply>(&msg.payload).unwrap_or(RemoteReply::Unavailable);
        self.settle(pending.asker, reply);
    }

    /// Hand the owner's answer to whoever asked.
    fn settle(&mut self, asker: Asker, reply: RemoteReply) {
        match (asker, reply) {
            (Asker::Session { participant, hello: true }, RemoteReply::Answer { answer: Answer::Welcome(frames) }) => {
                self.open_from_owner(participant, frames);
            }
            (Asker::Session { participant, .. }, RemoteReply::Answer { answer }) => {
                for frame in answer.to_frames() {
                    self.deliver(participant, frame, Class::Control);
                }
            }
            (Asker::Session { participant, .. }, _) => {
                let error = FrameError::new(ErrorCode::Unavailable, "the room's node did not answer; try again");
                self.deliver(participant, error.to_frame().into(), Class::Control);
            }
            (Asker::Call(reply), RemoteReply::Answer { answer }) => {
                let _ = reply.send(answer);
            }
            (Asker::Banned(reply), RemoteReply::Banned { banned }) => {
                let _ = reply.send(banned);
            }
            (Asker::Api(reply), RemoteReply::Api { reply: answer }) => {
                let _ = reply.send(answer);
            }
            (Asker::BanCheck { participant }, RemoteReply::Banned { banned: true }) => self.kick(participant),
            // Not banned (a moderator banned by a moderator), or the owner did not answer:
            // the viewer stays; the owner refuses its frames while the ban holds.
            (Asker::BanCheck { .. }, _) => {}
            // Dropping the reply tells the caller the room is unavailable.
            (Asker::Call(_) | Asker::Banned(_) | Asker::Api(_), _) => {}
        }
    }

    /// The owner's welcome (and snapshot or replay): delivered, then whatever the local copy
    /// holds after the welcome's position, so the stream continues from there.
    fn open_from_owner(&mut self, participant: ParticipantId, frames: Vec<Arc<str>>) {
        let head = frames.first().and_then(|f| serde_json::from_str::<WelcomeHead>(f).ok());
        for frame in frames {
            self.deliver(participant, frame, Class::Control);
        }
        let Some(head) = head else {
            warn!(room = %self.room, "the owner's welcome had no position; the viewer's stream stays closed");
            return;
        };
        let at = Position { epoch: head.epoch, seq: head.seq };
        let Some(viewer) = self.viewers.get_mut(&participant) else {
            return;
        };
        viewer.cursor = Some(at);
        if let Replay::Events(events) = self.log.replay_after(at) {
            for event in events {
                self.deliver_due(participant, &event);
            }
        }
    }

    async fn handle_stream_message(&mut self, msg: &async_nats::jetstream::Message) {
        let Some(event) = stream_event(msg) else {
            warn!(room = %self.room, "an event without its position in the stream; skipped");
            return;
        };
        let appended = self.log.handle_event(event.clone());
        if matches!(appended, super::stream_log::Appended::Duplicate | super::stream_log::Appended::Stale) {
            return;
        }
        if let Some(banned) = banned_identity(&event.frame) {
            self.check_banned(&banned).await;
        }
        let mut resync = Vec::new();
        let ids: Vec<ParticipantId> = self.viewers.keys().copied().collect();
        for participant in ids {
            if self.deliver_due(participant, &event) == Due::Resync {
                resync.push(participant);
            }
        }
        for participant in resync {
            let from = self.viewers.get(&participant).and_then(|v| v.cursor);
            self.greet_from_owner(participant, from).await;
        }
        self.serve_waiting(false).await;
    }

    /// The stream says `identity` was banned: ask the owner whether the ban binds each of its
    /// viewers here (by role), and disconnect those it binds, as the owner does its own.
    async fn check_banned(&mut self, identity: &str) {
        let theirs: Vec<(ParticipantId, Role)> = self
            .viewers
            .iter()
            .filter(|(_, v)| v.identity.id == identity && v.identity.role < Role::Host)
            .map(|(id, v)| (*id, v.identity.role))
            .collect();
        for (participant, role) in theirs {
            let request = RemoteRequest::IsBanned { identity: identity.to_string(), role };
            self.forward(Asker::BanCheck { participant }, request).await;
        }
    }

    /// Disconnect a banned viewer: it leaves the room here and its peer is closed.
    fn kick(&mut self, participant: ParticipantId) {
        if self.viewers.remove(&participant).is_some() {
            info!(room = %self.room, peer = participant.0, "a banned viewer disconnected");
            if self.driver.try_send(Command::Kick { peer: participant.0 }).is_err() {
                warn!(room = %self.room, peer = participant.0, "could not disconnect a banned viewer: media driver queue full; the owner refuses its frames");
            }
        }
    }

    /// A viewer that cannot continue from the copy gets the owner's answer to a resume.
    async fn greet_from_owner(&mut self, participant: ParticipantId, from: Option<Position>) {
        if let Some(viewer) = self.viewers.get_mut(&participant) {
            viewer.cursor = None;
            viewer.waiting = None;
        }
        self.ask_hello(participant, from).await;
    }

    /// Deliver `event` to `participant` if it is its next one.
    fn deliver_due(&mut self, participant: ParticipantId, event: &StreamEvent) -> Due {
        let Some(viewer) = self.viewers.get_mut(&participant) else {
            return Due::Hold;
        };
        let verdict = due(viewer.cursor, event.position);
        if verdict == Due::Deliver {
            viewer.cursor = Some(event.position);
            self.deliver(participant, event.frame.clone(), event.class);
        }
        verdict
    }

    /// Resumes waiting for the copy: served once it holds their events; after
    /// [`RESUME_WAIT`] (when `expire`), asked of the owner.
    async fn serve_waiting(&mut self, expire: bool) {
        let waiting: Vec<(ParticipantId, Position, Instant)> =
            self.viewers.iter().filter_map(|(id, v)| v.waiting.map(|(from, since)| (*id, from, since))).collect();
        for (participant, from, since) in waiting {
            match self.log.replay_after(from) {
                Replay::Events(events) => self.open_locally(participant, from, events),
                Replay::Gone => self.greet_from_owner(participant, Some(from)).await,
                Replay::NotYet if expire && since.elapsed() >= RESUME_WAIT => self.greet_from_owner(participant, Some(from)).await,
                Replay::NotYet => {}
            }
        }
    }

    fn handle_live(&mut self, msg: &async_nats::Message) {
        let class = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(HEADER_CLASS))
            .and_then(|v| subjects::parse_class(v.as_str()))
            .unwrap_or(Class::Latest);
        let Ok(text) = std::str::from_utf8(&msg.payload) else {
            return;
        };
        let frame: Arc<str> = text.into();
        let open: Vec<ParticipantId> = self.viewers.iter().filter(|(_, v)| v.cursor.is_some()).map(|(id, _)| *id).collect();
        for to in open {
            self.deliver(to, frame.clone(), class);
        }
    }

    async fn handle_tick(&mut self) {
        if let Some(count) = self.likes.poll_tick() {
            let request = wire::encode(&RemoteRequest::Likes { count });
            if let Err(e) = self.links.client.publish(subjects::calls(&self.room), request).await {
                debug!(room = %self.room, error = %e, count, "a tick's likes were not sent to the owner");
            }
        }
        let expired: Vec<u64> = self.pending.iter().filter(|(_, p)| p.sent.elapsed() >= CALL_TIMEOUT).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(pending) = self.pending.remove(&id) {
                self.settle(pending.asker, RemoteReply::Unavailable);
            }
        }
        self.serve_waiting(true).await;
    }

    /// On a tick: true once nobody has used the mirror for the idle wait and it left the
    /// registry.
    fn unloaded(&self, inbox: &mpsc::Receiver<ShowMsg>, idle_since: &mut Option<Instant>) -> bool {
        let idle = self.viewers.is_empty() && self.pending.is_empty() && self.me.strong_count() <= MIRROR_OWN_SENDERS;
        if !idle {
            *idle_since = None;
            return false;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        since.elapsed() >= self.idle.after && self.idle.try_unload_with(&self.room, &self.me, inbox, MIRROR_OWN_SENDERS)
    }

    fn deliver(&mut self, to: ParticipantId, frame: Arc<str>, class: Class) {
        let command = Command::Deliver { room: self.room.clone(), to: Some(to), frame, class, since: None };
        if self.driver.try_send(command).is_err() {
            // The media driver is saturated; the client sees the seq gap and resumes.
            self.dropped_deliveries += 1;
            if self.dropped_deliveries.is_power_of_two() {
                warn!(room = %self.room, dropped = self.dropped_deliveries, "deliveries dropped: media driver queue full");
            }
        }
    }
}

/// A stream message as the event it carries: its position and class from the headers the
/// owner wrote, its frame as published.
fn stream_event(msg: &async_nats::jetstream::Message) -> Option<StreamEvent> {
    let headers = msg.headers.as_ref()?;
    let position = subjects::position(headers)?;
    let class = headers.get(HEADER_CLASS).and_then(|v| subjects::parse_class(v.as_str())).unwrap_or(Class::Control);
    let frame: Arc<str> = std::str::from_utf8(&msg.payload).ok()?.into();
    Some(StreamEvent { position, class, frame })
}

/// The identity a `user_banned` event names; `None` for any other event (most are told
/// apart without parsing).
fn banned_identity(frame: &str) -> Option<String> {
    if !frame.contains("\"user_banned\"") {
        return None;
    }
    let event = serde_json::from_str::<BannedEvent>(frame).ok()?;
    (event.kind == "user_banned").then_some(event.identity).flatten()
}

/// The welcome of a stream opened from the local copy, at `at` (its events follow).
fn welcome(identity: &Identity, participant: Option<ParticipantId>, at: Position) -> Arc<str> {
    frame_of(&DirectFrame::Welcome {
        you: identity.clone(),
        participant,
        epoch: at.epoch,
        seq: at.seq,
        server_now_ms: wall_ms(),
        resumed: true,
    })
}

fn frame_of(frame: &DirectFrame) -> Arc<str> {
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_string(frame).unwrap_or_else(|_| String::from("{\"type\":\"error\"}")).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_user_banned_event_names_a_banned_identity() {
        let banned = r#"{"type":"user_banned","epoch":1,"seq":7,"server_now_ms":5,"identity":"mal"}"#;
        assert_eq!(banned_identity(banned), Some("mal".to_string()));
        let chat = r#"{"type":"chat","seq":8,"text":"\"user_banned\"","from":{"id":"x","name":"x","role":"viewer"}}"#;
        assert_eq!(banned_identity(chat), None, "a chat line quoting the name is not a ban");
        assert_eq!(banned_identity(r#"{"type":"user_unbanned","identity":"mal"}"#), None);
    }
}
