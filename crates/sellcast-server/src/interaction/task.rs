//! One room's show task: the single owner of its [`Show`]. It turns messages into core calls
//! and the core's outputs into deliveries (via the media driver), store jobs and log lines.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sellcast_room::{ClientFrame, ErrorCode, FrameError, HostAction, Identity, Output, ParticipantId, Show};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::messages::{Applied, CatalogOp, ShowMsg};
use super::store_client::{StoreFailure, StoreClient};
use crate::media::command::Command;
use crate::media::router::MediaRouter;

/// Likes and counters are announced on this fixed tick.
const TICK: Duration = Duration::from_millis(300);
/// Participant ids at or above this are HTTP callers, never data channels.
const HTTP_PARTICIPANTS: u64 = 1 << 52;

pub fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

struct HttpCaller {
    reply: oneshot::Sender<Vec<Arc<str>>>,
    frames: Vec<Arc<str>>,
    /// A buy is answered later, when the store has committed.
    awaits_answer: bool,
}

/// The task that owns one room's [`Show`] and carries out its outputs.
pub struct ShowTask {
    name: String,
    store: StoreClient,
    driver: MediaRouter,
    me: mpsc::Sender<ShowMsg>,
    http: HashMap<ParticipantId, HttpCaller>,
    next_http: u64,
    dropped_deliveries: u64,
}

impl ShowTask {
    pub fn new(name: String, store: StoreClient, driver: MediaRouter, me: mpsc::Sender<ShowMsg>) -> Self {
        Self {
            name,
            store,
            driver,
            me,
            http: HashMap::new(),
            next_http: HTTP_PARTICIPANTS,
            dropped_deliveries: 0,
        }
    }

    /// Handle messages until every sender is gone. The inbox is borrowed: it belongs to the
    /// room's supervisor and outlives a panic here (see `registry`).
    pub async fn run(mut self, core: &mut Show, inbox: &mut mpsc::Receiver<ShowMsg>) {
        info!(room = %self.name, "show task started");
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = inbox.recv() => match msg {
                    Some(m) => self.handle(core, m),
                    None => break,
                },
                _ = tick.tick() => core.handle_tick(wall_ms()),
            }
            self.flush(core);
        }
    }

    fn handle(&mut self, core: &mut Show, msg: ShowMsg) {
        let now = wall_ms();
        match msg {
            ShowMsg::Join { participant, identity } => core.handle_join(now, participant, identity),
            ShowMsg::Leave { participant } => core.handle_leave(participant),
            ShowMsg::Rejoin { participant, identity } => {
                core.handle_join(now, participant, identity);
                core.handle_client_frame(now, participant, ClientFrame::Hello { resume: None });
            }
            ShowMsg::Frame { participant, bytes } => core.handle_frame(now, participant, &bytes),
            ShowMsg::Call { identity, frame, reply } => self.call(core, now, identity, frame, reply),
            ShowMsg::Catalog { op, reply } => self.catalog(op, reply),
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
            ShowMsg::IsBanned { identity, reply } => {
                let _ = reply.send(core.is_banned(&identity, now));
            }
            ShowMsg::BuyDone { ticket, result } => match result {
                Ok(r) => core.handle_buy_outcome(now, &ticket, r.answer, r.replayed, r.stock_left),
                Err(e) => {
                    warn!(room = %self.name, error = %e, "buy not committed");
                    core.handle_buy_failure(&ticket);
                }
            },
            ShowMsg::Persisted { from, result } => match result {
                Ok(Applied::Pins(pins)) => core.apply_pins(now, pins),
                Ok(Applied::Sale(sale)) => core.apply_sale(now, sale),
                Ok(Applied::Ban(identity, until)) => core.apply_ban(now, identity, until),
                Ok(Applied::BlockedWords(words)) => core.apply_blocked_words(words),
                Err(e) => core.handle_persist_failure(from, e),
            },
            #[cfg(feature = "test-hooks")]
            ShowMsg::InjectPanic { hold } => {
                std::panic::panic_any(crate::supervision::InjectedPanic { hold });
            }
        }
    }

    fn call(&mut self, core: &mut Show, now: i64, identity: Identity, frame: ClientFrame, reply: oneshot::Sender<Vec<Arc<str>>>) {
        let id = ParticipantId(self.next_http);
        self.next_http += 1;
        let awaits_answer = matches!(frame, ClientFrame::Buy { .. });
        self.http.insert(id, HttpCaller { reply, frames: Vec::new(), awaits_answer });
        core.handle_join(now, id, identity);
        core.handle_client_frame(now, id, frame);
        self.flush(core);
        // Anything that is not waiting for the store is answered now.
        if self.http.get(&id).is_some_and(|c| !c.awaits_answer) {
            self.finish_http(core, id);
        }
    }

    fn finish_http(&mut self, core: &mut Show, id: ParticipantId) {
        if let Some(caller) = self.http.remove(&id) {
            let _ = caller.reply.send(caller.frames);
        }
        core.handle_leave(id);
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
        let mut finished = Vec::new();
        while let Some(output) = core.poll_output() {
            match output {
                Output::Send { to, frame, class } => {
                    if let Some(caller) = self.http.get_mut(&to) {
                        let is_answer = ["\"type\":\"order_confirmed\"", "\"type\":\"buy_rejected\"", "\"type\":\"error\""]
                            .iter()
                            .any(|t| frame.starts_with(&format!("{{{t}")));
                        caller.frames.push(frame);
                        if is_answer && caller.awaits_answer {
                            finished.push(to);
                        }
                    } else {
                        self.deliver(Command::Deliver { room: self.name.clone(), to: Some(to), frame, class });
                    }
                }
                Output::Broadcast { frame, class } => {
                    self.deliver(Command::Deliver { room: self.name.clone(), to: None, frame, class });
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
                Output::Kick { participant } => {
                    if participant.0 < HTTP_PARTICIPANTS {
                        self.deliver(Command::Kick { peer: participant.0 });
                    }
                }
                Output::Refused { from, identity, code, message } => {
                    if code == ErrorCode::RateLimited {
                        debug!(room = %self.name, participant = from.0, %identity, ?code, %message, "frame refused");
                    } else {
                        info!(room = %self.name, participant = from.0, %identity, ?code, %message, "frame refused");
                    }
                }
            }
        }
        for id in finished {
            self.finish_http(core, id);
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
        HostAction::Ban(identity) => store
            .ban(room, &identity, None)
            .await
            .map(|()| Applied::Ban(identity, None))
            .map_err(fail),
        HostAction::SetBlockedWords(words) => store
            .set_blocked_words(room, words.clone())
            .await
            .map(|()| Applied::BlockedWords(words))
            .map_err(fail),
    }
}

