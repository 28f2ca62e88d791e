//! One room's show task: the single owner of its [`Show`]. It turns messages into core calls
//! and the core's outputs into deliveries (via the media driver), store jobs and log lines.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sellcast_room::{
    Answer, CallId, Caller, Class, ClientFrame, ErrorCode, FrameError, HostAction, Identity, Output, ParticipantId,
    RoomTally, Show,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, info_span, warn, Instrument, Span};

use super::across_nodes::owner_relay::OwnerRelay;
use super::messages::{Applied, CatalogOp, ShowMsg};
use super::session_inbox::SessionReceiver;
use super::registry::Idle;
use super::store_client::{StoreFailure, StoreClient};
use super::tally::ServerTally;
use crate::media::command::{ChatStamp, Command};
use crate::media::router::MediaRouter;

/// Likes and counters are announced on this fixed tick.
const TICK: Duration = Duration::from_millis(300);

pub fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The task that owns one room's [`Show`] and carries out its outputs.
pub struct ShowTask {
    name: String,
    store: StoreClient,
    driver: MediaRouter,
    me: mpsc::Sender<ShowMsg>,
    /// One-shot callers (HTTP) waiting for the room's answer.
    calls: HashMap<CallId, oneshot::Sender<Answer>>,
    next_call: u64,
    dropped_deliveries: u64,
    /// Answered with the participant count once draining and no buy is with the store.
    drained: Option<oneshot::Sender<usize>>,
    /// Likes-total saves handed to the store and not finished: a drain waits for them, so the
    /// total a restart loads is the one the room had.
    likes_saves: usize,
    /// Where this room's counts are added up, and what of them was added already.
    tally: Option<(Arc<ServerTally>, RoomTally)>,
    /// A span per data-channel participant (room, peer, role): log lines about one are in it.
    spans: HashMap<ParticipantId, Span>,
    /// Unloads the room once nobody has used it for a while (`registry`).
    idle: Option<Idle>,
    /// Cluster mode: the room's events and latest-state frames for the other nodes.
    relay: Option<Arc<OwnerRelay>>,
    /// While a data-channel frame is handled: when the media thread read it. A broadcast it
    /// causes carries it, so the media driver can time the chat path (`media::chat_path`).
    frame_read_at: Option<ChatStamp>,
}

impl ShowTask {
    pub fn new(name: String, store: StoreClient, driver: MediaRouter, me: mpsc::Sender<ShowMsg>) -> Self {
        Self {
            name,
            store,
            driver,
            me,
            calls: HashMap::new(),
            next_call: 0,
            dropped_deliveries: 0,
            frame_read_at: None,
            drained: None,
            likes_saves: 0,
            tally: None,
            spans: HashMap::new(),
            idle: None,
            relay: None,
        }
    }

    /// Cluster mode: relay the room's broadcasts to the other nodes (`across_nodes`).
    pub(super) fn with_relay(mut self, relay: Option<Arc<OwnerRelay>>) -> Self {
        self.relay = relay;
        self
    }

    /// Unload the room after `idle.after` without any use (see `registry`).
    pub(super) fn with_idle(mut self, idle: Idle) -> Self {
        self.idle = Some(idle);
        self
    }

    /// Nothing in the room is in use: no participant, no call or buy waiting, no drain, and
    /// no sender to the inbox but the room's own (no peer, HTTP call or store job).
    fn is_idle(&self, core: &Show) -> bool {
        core.participant_count() == 0
            && core.buys_in_flight() == 0
            && self.calls.is_empty()
            && self.drained.is_none()
            && Idle::unused(&self.me)
    }

    /// On a tick: true once the room has been idle for `idle.after` and left the registry.
    fn unloaded(&self, core: &Show, inbox: &mpsc::Receiver<ShowMsg>, idle_since: &mut Option<tokio::time::Instant>) -> bool {
        let Some(idle) = &self.idle else {
            return false;
        };
        if !self.is_idle(core) {
            *idle_since = None;
            return false;
        }
        let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
        since.elapsed() >= idle.after && idle.try_unload(&self.name, &self.me, inbox)
    }

    /// Report this show's counts into `tally` on every tick.
    pub fn with_tally(mut self, tally: Arc<ServerTally>) -> Self {
        self.tally = Some((tally, RoomTally::default()));
        self
    }

    fn report_tally(&mut self, core: &Show) {
        if let Some((totals, reported)) = &mut self.tally {
            totals.add_new(core.tally(), reported);
        }
    }

    /// Handle messages until every sender is gone. The inbox is borrowed: it belongs to the
    /// room's supervisor and outlives a panic here (see `registry`).
    pub async fn run(self, core: &mut Show, inbox: &mut mpsc::Receiver<ShowMsg>, sessions: &mut SessionReceiver) {
        let span = info_span!("room", room = %self.name);
        self.serve(core, inbox, sessions).instrument(span).await
    }

    async fn serve(mut self, core: &mut Show, inbox: &mut mpsc::Receiver<ShowMsg>, sessions: &mut SessionReceiver) {
        info!(room = %self.name, "show task started");
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Senders live in the registry and in peers; once all are gone the arm is switched off
        // (it would be ready with `None` forever).
        let mut sessions_open = true;
        let mut idle_since = None;
        loop {
            let mut ticked = false;
            tokio::select! {
                msg = inbox.recv() => match msg {
                    Some(m) => self.handle(core, m),
                    None => break,
                },
                msg = sessions.recv(), if sessions_open => match msg {
                    Some(m) => self.handle(core, m),
                    None => sessions_open = false,
                },
                _ = tick.tick() => {
                    core.handle_tick(wall_ms());
                    self.report_tally(core);
                    ticked = true;
                }
            }
            self.flush(core);
            self.frame_read_at = None;
            if core.buys_in_flight() == 0 && self.likes_saves == 0 {
                if let Some(done) = self.drained.take() {
                    let _ = done.send(core.participant_count());
                }
            }
            if ticked && self.unloaded(core, inbox, &mut idle_since) {
                self.report_tally(core);
                info!(room = %self.name, "room unloaded: unused");
                break;
            }
        }
    }

    fn handle(&mut self, core: &mut Show, msg: ShowMsg) {
        let now = wall_ms();
        match msg {
            ShowMsg::Join { participant, identity } => {
                let role = format!("{:?}", identity.role).to_lowercase();
                let span = info_span!("participant", room = %self.name, peer = participant.0, role, identity = %identity.id);
                debug!(parent: &span, "joined the room's data channel");
                self.spans.insert(participant, span);
                core.handle_join(now, participant, identity)
            }
            ShowMsg::Leave { participant } => {
                if let Some(span) = self.spans.remove(&participant) {
                    debug!(parent: &span, "left the room's data channel");
                }
                core.handle_leave(participant)
            }
            ShowMsg::Rejoin { participant, identity } => {
                let role = format!("{:?}", identity.role).to_lowercase();
                let span = info_span!("participant", room = %self.name, peer = participant.0, role, identity = %identity.id);
                debug!(parent: &span, "joined again after the show task restarted");
                self.spans.insert(participant, span);
                core.handle_join(now, participant, identity);
                core.handle_client_frame(now, participant, ClientFrame::Hello { resume: None });
            }
            ShowMsg::Frame { participant, bytes, read_at } => {
                let handled_at = Instant::now();
                self.frame_read_at = Some(ChatStamp { read_at, handled_at, queued_at: handled_at });
                core.handle_frame(now, participant, &bytes)
            }
            ShowMsg::Call { identity, frame, reply } => self.call(core, now, identity, frame, reply),
            ShowMsg::Catalog { op, reply } => self.catalog(op, reply),
            ShowMsg::RoomApi { request, reply } => {
                // Answered beside the task: the answer asks the task itself.
                let (me, store, room) = (self.me.clone(), self.store.clone(), self.name.clone());
                tokio::spawn(async move {
                    let _ = reply.send(super::room_api::answer(&me, &store, &room, request).await);
                });
            }
            ShowMsg::CatalogDone { result, reply } => {
                let answer = result.map(|change| match change {
                    Some(product) => {
                        core.apply_product(now, product.clone());
                        Some(product)
                    }
                    None => None,
                });
                let _ = reply.send(answer);
            }
            ShowMsg::ProductDeleted { product_id, reply } => {
                core.apply_product_deleted(now, product_id);
                let _ = reply.send(Ok(None));
            }
            ShowMsg::Sales { reply } => {
                let _ = reply.send((core.products().to_vec(), core.sales().to_vec()));
            }
            ShowMsg::IsBanned { identity, role, reply } => {
                let _ = reply.send(core.is_banned_as(&identity, role, now));
            }
            ShowMsg::Orders { reply } => {
                let _ = reply.send((core.recent_orders().cloned().collect(), core.totals().clone()));
            }
            ShowMsg::ShowInfo { reply } => {
                let _ = reply.send(core.show_info().clone());
            }
            ShowMsg::Bans { reply } => {
                let _ = reply.send(core.bans(now));
            }
            ShowMsg::BuyDone { ticket, result } => match result {
                Ok(r) => core.handle_buy_outcome(now, &ticket, r.answer, r.replayed, r.stock_left),
                Err(e) => {
                    warn!(room = %self.name, error = %e, "buy not committed");
                    core.handle_buy_failure(&ticket);
                }
            },
            ShowMsg::Persisted { from, result } => match result {
                Ok(applied) => {
                    match applied {
                        Applied::Pins(pins) => core.apply_pins(now, pins),
                        Applied::Sale(sale) => core.apply_sale(now, sale),
                        Applied::Ban(identity, until, by) => core.apply_ban(now, identity, until, by),
                        Applied::Unban(identity) => core.apply_unban(now, identity),
                        Applied::BlockedWords(words) => core.apply_blocked_words(words),
                        Applied::Show(info) => core.apply_show(now, info),
                        Applied::Name { identity, name, host } => core.apply_name(now, identity, name, host),
                        Applied::ShowEnded(at, closed) => core.apply_show_ended(now, at, closed),
                    }
                    core.handle_persisted(from);
                }
                Err(e) => core.handle_persist_failure(from, e),
            },
            #[cfg(feature = "test-hooks")]
            ShowMsg::InjectPanic { hold } => {
                std::panic::panic_any(crate::supervision::InjectedPanic { hold });
            }
            ShowMsg::NodeLikes { count } => core.handle_node_likes(count),
            ShowMsg::LikesSaved => self.likes_saves = self.likes_saves.saturating_sub(1),
            ShowMsg::Drain { reconnect_after_ms, done } => {
                core.handle_drain(reconnect_after_ms);
                self.drained = Some(done);
            }
        }
    }

    fn call(&mut self, core: &mut Show, now: i64, identity: Identity, frame: ClientFrame, reply: oneshot::Sender<Answer>) {
        let id = CallId(self.next_call);
        self.next_call += 1;
        self.calls.insert(id, reply);
        core.handle_call(now, id, identity, frame);
    }

    fn catalog(&self, op: CatalogOp, reply: oneshot::Sender<Result<Option<sellcast_room::Product>, StoreFailure>>) {
        let store = self.store.clone();
        let me = self.me.clone();
        let room = self.name.clone();
        tokio::spawn(async move {
            let msg = match op {
                CatalogOp::Create(input) => ShowMsg::CatalogDone { result: store.create_product(&room, input).await.map(Some), reply },
                CatalogOp::Update(id, input) => ShowMsg::CatalogDone { result: store.update_product(&room, id, input).await.map(Some), reply },
                CatalogOp::Delete(id) => match store.delete_product(&room, id).await {
                    Ok(()) => ShowMsg::ProductDeleted { product_id: id, reply },
                    Err(e) => ShowMsg::CatalogDone { result: Err(e), reply },
                },
            };
            let _ = me.send(msg).await;
        });
    }

    /// Carry out everything the core asked for.
    fn flush(&mut self, core: &mut Show) {
        while let Some(output) = core.poll_output() {
            match output {
                Output::Send { to, frame, class } => {
                    self.deliver(Command::Deliver { room: self.name.clone(), to: Some(to), frame, class, since: None });
                }
                // A session reads its answer on its data channel; a call gets it as its reply.
                Output::Answer { to: Caller::Session(to), answer } => {
                    for frame in answer.to_frames() {
                        let class = Class::Control;
                        self.deliver(Command::Deliver { room: self.name.clone(), to: Some(to), frame, class, since: None });
                    }
                }
                Output::Answer { to: Caller::Call(id), answer } => {
                    if let Some(reply) = self.calls.remove(&id) {
                        let _ = reply.send(answer);
                    }
                }
                Output::Broadcast { frame, class, position } => {
                    if let Some(relay) = &self.relay {
                        relay.handle_broadcast(&frame, class, position);
                    }
                    let since = self.frame_read_at.map(|s| ChatStamp { queued_at: Instant::now(), ..s });
                    self.deliver(Command::Deliver { room: self.name.clone(), to: None, frame, class, since });
                }
                // A fenced owner (another node runs the room now, or this node's lease may have
                // run out) places no order: the buyer hears `unavailable` and retries with its
                // key where the room is now.
                Output::Buy(order) if self.relay.as_ref().is_some_and(|relay| relay.is_fenced()) => {
                    let (me, ticket) = (self.me.clone(), order.ticket);
                    tokio::spawn(async move {
                        let result = Err(StoreFailure::Unavailable("this node may no longer own the room".into()));
                        let _ = me.send(ShowMsg::BuyDone { ticket, result }).await;
                    });
                }
                Output::Buy(order) => {
                    let (store, me, room) = (self.store.clone(), self.me.clone(), self.name.clone());
                    tokio::spawn(async move {
                        let result = store.buy(&room, &order, wall_ms()).await;
                        let _ = me.send(ShowMsg::BuyDone { ticket: order.ticket, result }).await;
                    });
                }
                Output::Persist { from, by, action } => {
                    info!(room = %self.name, by = %by.id, role = ?by.role, ?action, "host action");
                    let (store, me, room) = (self.store.clone(), self.me.clone(), self.name.clone());
                    tokio::spawn(async move {
                        let result = persist(&store, &room, action).await;
                        let _ = me.send(ShowMsg::Persisted { from, result }).await;
                    });
                }
                Output::PersistLikes { total } => {
                    let (store, me, room) = (self.store.clone(), self.me.clone(), self.name.clone());
                    self.likes_saves += 1;
                    tokio::spawn(async move {
                        if let Err(e) = store.save_likes(&room, total).await {
                            warn!(%room, error = %e, "likes total not saved; the next save carries it");
                        }
                        let _ = me.send(ShowMsg::LikesSaved).await;
                    });
                }
                Output::Kick { participant } => self.deliver(Command::Kick { peer: participant.0 }),
                Output::VideoCap { participant, data_saver, max_height } => {
                    let cap = sellcast_sfu::LayerCap { max_height, data_saver };
                    self.deliver(Command::VideoCap { peer: participant.0, cap });
                }
                Output::Refused { from, identity, code, message } => {
                    // A data-channel participant's line is in its span; an HTTP caller's names it.
                    let span = match from {
                        Caller::Session(id) => self.spans.get(&id).cloned(),
                        Caller::Call(_) => None,
                    }
                    .unwrap_or_else(|| info_span!("http_caller", %identity));
                    if code == ErrorCode::RateLimited {
                        debug!(parent: &span, room = %self.name, caller = ?from, ?code, %message, "frame refused");
                    } else {
                        info!(parent: &span, room = %self.name, caller = ?from, ?code, %message, "frame refused");
                    }
                }
            }
        }
    }

    fn deliver(&mut self, command: Command) {
        if self.driver.try_send(command).is_err() {
            // The media driver is saturated; clients detect the seq gap and resume.
            self.dropped_deliveries += 1;
            if self.dropped_deliveries.is_power_of_two() {
                warn!(room = %self.name, dropped = self.dropped_deliveries, "deliveries dropped: media driver queue full");
            }
        }
    }
}

async fn persist(store: &StoreClient, room: &str, action: HostAction) -> Result<Applied, FrameError> {
    let fail = |e: StoreFailure| FrameError::new(e.code(), e.to_string());
    match action {
        HostAction::Pin(ids) => store.set_pins(room, ids.clone()).await.map(|()| Applied::Pins(ids)).map_err(fail),
        HostAction::StartSale(draft) => store.create_sale(room, draft).await.map(Applied::Sale).map_err(fail),
        HostAction::EndSale(id) => store.end_sale(room, id, wall_ms()).await.map(Applied::Sale).map_err(fail),
        HostAction::Ban { identity, by } => store
            .ban(room, &identity, None, by)
            .await
            .map(|()| Applied::Ban(identity, None, by))
            .map_err(fail),
        HostAction::Unban(identity) => store.unban(room, &identity).await.map(|()| Applied::Unban(identity)).map_err(fail),
        HostAction::SetBlockedWords(words) => store
            .set_blocked_words(room, words.clone())
            .await
            .map(|()| Applied::BlockedWords(words))
            .map_err(fail),
        HostAction::SetShow(info) => store.set_show(room, info).await.map(Applied::Show).map_err(fail),
        HostAction::SetName { identity, name, host } => store
            .set_display_name(room, &identity, &name, host)
            .await
            .map(|()| Applied::Name { identity, name, host })
            .map_err(fail),
        HostAction::EndShow => {
            let at = wall_ms();
            store.end_show(room, at).await.map(|closed| Applied::ShowEnded(at, closed)).map_err(fail)
        }
    }
}

