//! A room's interaction state and the decisions on every frame: who may do what, what is
//! broadcast with which sequence number, what is answered directly, what must be made
//! durable first. No IO: the show task feeds frames, store results and ticks, and carries
//! out the [`Output`]s.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::answer::{Answer, CallId, Caller};
use crate::buy_admission::{Admission, BuyAnswer, BuyAdmission, BuyOrder, BuyTicket};
use crate::catalog::{Product, Sale, SaleDraft};
use crate::chat::{ChatDesk, ChatLimits};
use crate::event_log::EventLog;
use crate::identity::{Identity, ParticipantId};
use crate::likes::LikeCounter;
use crate::protocol::{
    encode, ChatLine, ClientFrame, DirectFrame, ErrorCode, FrameError, OrderLine, Position, RoomEvent,
    SaleCounter, Snapshot,
};
use crate::rate_limit::TokenBucket;
use crate::tally::RoomTally;

/// How the transport should treat a frame when a viewer's channel is congested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Commerce and control: always delivered, in order.
    Control,
    /// Chat: dropped for a congested viewer before anything else.
    Chat,
    /// Latest-state counters: a newer one replaces it, so it may be skipped.
    Latest,
}

/// An action that must be made durable before the room applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAction {
    Pin(Vec<i64>),
    StartSale(SaleDraft),
    EndSale(i64),
    Ban(String),
    SetBlockedWords(Vec<String>),
}

/// What the room asks its task to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A frame of one session's stream (welcome, replay or snapshot, counters, the order feed).
    Send { to: ParticipantId, frame: Arc<str>, class: Class },
    Broadcast { frame: Arc<str>, class: Class },
    /// The answer to a frame from `to`.
    Answer { to: Caller, answer: Answer },
    /// Commit this buy in the store, then call [`Show::handle_buy_outcome`].
    Buy(BuyOrder),
    /// Persist this action, then call the matching `apply_*` and [`Show::handle_persisted`].
    Persist { from: Caller, by: Identity, action: HostAction },
    /// Close this participant's session (banned).
    Kick { participant: ParticipantId },
    /// A frame was refused; the task logs it (debug for rate limits, info otherwise).
    Refused { from: Caller, identity: String, code: ErrorCode, message: String },
}

/// The durable record a [`Show`] starts from: everything its room loads from the store.
#[derive(Debug, Clone, Default)]
pub struct ShowRecord {
    pub products: Vec<Product>,
    pub sales: Vec<Sale>,
    pub pinned: Vec<i64>,
    pub banned: Vec<(String, Option<i64>)>,
    pub blocked_words: Vec<String>,
    /// Committed quantity per (sale, identity).
    pub bought: Vec<(i64, String, u32)>,
    /// Answers the store already gave, by (identity, idempotency key).
    pub answers: Vec<(String, String, BuyAnswer)>,
    pub recent_orders: Vec<OrderLine>,
    pub likes_total: u64,
}

/// The limits a show enforces: frame rates, chat, likes, replay size, pins.
#[derive(Debug, Clone)]
pub struct ShowLimits {
    pub chat: ChatLimits,
    pub replay_events: usize,
    /// The most bytes of missed events a resume replays; past it the client gets a snapshot.
    /// A transport buffers about this much for a viewer (the server's data channels take
    /// 128 KiB), and a replay it cannot take would cost the viewer its connection again.
    pub replay_bytes: usize,
    pub likes_per_user_per_tick: u32,
    /// Frames of any kind per participant: burst and per second.
    pub frame_burst: u32,
    pub frames_per_second: f64,
    pub max_pins: usize,
}

impl Default for ShowLimits {
    fn default() -> Self {
        Self {
            chat: ChatLimits::default(),
            replay_events: 2048,
            replay_bytes: 64 * 1024,
            likes_per_user_per_tick: 30,
            frame_burst: 60,
            frames_per_second: 30.0,
            max_pins: 3,
        }
    }
}

/// What became of a frame the room took.
enum Taken {
    /// Done: a call is told so now.
    Done,
    /// Waits for the store, which answers the caller when it has committed.
    AwaitsStore,
}

#[derive(Debug)]
struct Participant {
    identity: Identity,
    frames: TokenBucket,
    /// Error replies are rate-limited too, so a flood is not answered with a flood.
    errors: TokenBucket,
    muted_errors: u64,
}

/// Orders kept for the host feed snapshot.
const RECENT_ORDERS: usize = 50;

/// The sans-IO interaction core of one room's live show: participants, chat, likes, pins,
/// sales and buy admission, and the ordered event stream. One show task owns it.
#[derive(Debug)]
pub struct Show {
    name: String,
    config: ShowLimits,
    log: EventLog,
    participants: HashMap<ParticipantId, Participant>,
    products: Vec<Product>,
    pinned: Vec<i64>,
    sales: Vec<Sale>,
    /// Sales whose end (by the clock) has been announced.
    end_announced: Vec<i64>,
    banned: HashMap<String, Option<i64>>,
    chat: ChatDesk,
    likes: LikeCounter,
    buys: BuyAdmission,
    orders: VecDeque<OrderLine>,
    revenue: HashMap<i64, i64>,
    counters_dirty: bool,
    /// Set once the server drains: the reconnect hint every participant is given.
    draining: Option<u64>,
    outputs: VecDeque<Output>,
    tally: RoomTally,
}

impl Show {
    pub fn new(name: String, epoch: u64, record: ShowRecord, config: ShowLimits, now_ms: i64) -> Self {
        let mut revenue = HashMap::new();
        for o in &record.recent_orders {
            *revenue.entry(o.sale_id).or_insert(0) += o.price_minor * i64::from(o.qty);
        }
        let end_announced = record.sales.iter().filter(|s| s.is_over(now_ms)).map(|s| s.id).collect();
        Self {
            log: EventLog::new(epoch, config.replay_events),
            chat: ChatDesk::new(config.chat.clone(), record.blocked_words, now_ms),
            likes: LikeCounter::new(record.likes_total, config.likes_per_user_per_tick),
            buys: BuyAdmission::new(record.bought, record.answers),
            name,
            config,
            participants: HashMap::new(),
            products: record.products,
            pinned: record.pinned,
            sales: record.sales,
            end_announced,
            banned: record.banned.into_iter().collect(),
            orders: record.recent_orders.into_iter().collect(),
            revenue,
            counters_dirty: false,
            draining: None,
            outputs: VecDeque::new(),
            tally: RoomTally::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Frames, refusals and buy answers handled so far.
    pub fn tally(&self) -> &RoomTally {
        &self.tally
    }

    pub fn is_banned(&self, identity: &str, now_ms: i64) -> bool {
        matches!(self.banned.get(identity), Some(None)) || matches!(self.banned.get(identity), Some(Some(until)) if *until > now_ms)
    }

    // ----- participants -----

    /// A session joined (its data channel opened, or an HTTP caller).
    pub fn handle_join(&mut self, now_ms: i64, id: ParticipantId, identity: Identity) {
        if self.is_banned(&identity.id, now_ms) {
            self.outputs.push_back(Output::Kick { participant: id });
            return;
        }
        let c = &self.config;
        self.participants.insert(
            id,
            Participant {
                identity,
                frames: TokenBucket::new(c.frame_burst, c.frames_per_second, now_ms),
                errors: TokenBucket::new(5, 1.0, now_ms),
                muted_errors: 0,
            },
        );
        self.counters_dirty = true;
    }

    pub fn handle_leave(&mut self, id: ParticipantId) {
        if let Some(p) = self.participants.remove(&id) {
            if !self.participants.values().any(|o| o.identity.id == p.identity.id) {
                self.chat.handle_leave(&p.identity.id);
            }
            self.counters_dirty = true;
        }
    }

    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    // ----- frames -----

    /// One raw frame from a participant's data channel.
    pub fn handle_frame(&mut self, now_ms: i64, from: ParticipantId, bytes: &[u8]) {
        let Some(p) = self.participants.get_mut(&from) else {
            return;
        };
        if !p.frames.try_take(now_ms) {
            let error = FrameError::new(ErrorCode::RateLimited, "too many frames");
            let identity = p.identity.id.clone();
            self.refuse(now_ms, Caller::Session(from), &identity, error);
            return;
        }
        match ClientFrame::parse(bytes) {
            Ok(frame) => {
                self.tally.frame(&frame);
                self.handle_client_frame(now_ms, from, frame)
            }
            Err(e) => {
                let identity = p.identity.id.clone();
                self.refuse(now_ms, Caller::Session(from), &identity, e);
            }
        }
    }

    /// A parsed frame from a participant.
    pub fn handle_client_frame(&mut self, now_ms: i64, from: ParticipantId, frame: ClientFrame) {
        let Some(who) = self.participants.get(&from).map(|p| p.identity.clone()) else {
            return;
        };
        self.dispatch(now_ms, Caller::Session(from), who, frame);
    }

    /// A one-shot call (the HTTP API) from `identity`, which is not a participant. It gets
    /// exactly one [`Output::Answer`]: now, or once the store has answered (a buy, a host action).
    pub fn handle_call(&mut self, now_ms: i64, call: CallId, identity: Identity, frame: ClientFrame) {
        let caller = Caller::Call(call);
        self.tally.frame(&frame);
        if self.is_banned(&identity.id, now_ms) {
            self.answer(caller, Answer::Refused(FrameError::new(ErrorCode::Forbidden, "banned from this room")));
            return;
        }
        self.dispatch(now_ms, caller, identity, frame);
    }

    fn dispatch(&mut self, now_ms: i64, from: Caller, who: Identity, frame: ClientFrame) {
        let result = match frame {
            ClientFrame::Hello { resume } => {
                self.hello(now_ms, from, &who, resume);
                return;
            }
            ClientFrame::Chat { text } => self.chat(now_ms, &who, &text).map(|()| Taken::Done),
            ClientFrame::Like { count } => {
                self.likes.handle_likes(&who.id, count);
                Ok(Taken::Done)
            }
            ClientFrame::Buy { sale_id, qty, idempotency_key } => {
                self.buy(now_ms, from, &who, sale_id, qty, &idempotency_key);
                return;
            }
            ClientFrame::Pin { product_ids } => self.host_only(&who, "pin products").and_then(|()| {
                if product_ids.len() > self.config.max_pins {
                    return Err(FrameError::new(ErrorCode::Invalid, format!("at most {} products can be highlighted", self.config.max_pins)));
                }
                if let Some(missing) = product_ids.iter().find(|id| !self.products.iter().any(|p| p.id == **id)) {
                    return Err(FrameError::new(ErrorCode::NotFound, format!("no product {missing}")));
                }
                Ok(self.persist(from, &who, HostAction::Pin(product_ids)))
            }),
            ClientFrame::StartSale { product_id, price_minor, stock, per_user_limit, starts_at_ms, ends_at_ms } => {
                self.host_only(&who, "start a sale").and_then(|()| {
                    if !self.products.iter().any(|p| p.id == product_id) {
                        return Err(FrameError::new(ErrorCode::NotFound, format!("no product {product_id}")));
                    }
                    if stock == 0 || per_user_limit == 0 || ends_at_ms <= starts_at_ms || price_minor < 0 || ends_at_ms <= now_ms {
                        return Err(FrameError::new(ErrorCode::Invalid, "a sale needs stock >= 1, a limit >= 1, a price >= 0 and an end in the future after its start"));
                    }
                    let draft = SaleDraft { product_id, price_minor, currency: None, stock, per_user_limit, starts_at_ms, ends_at_ms };
                    Ok(self.persist(from, &who, HostAction::StartSale(draft)))
                })
            }
            ClientFrame::EndSale { sale_id } => self.host_only(&who, "end a sale").and_then(|()| {
                match self.sales.iter().find(|s| s.id == sale_id) {
                    Some(s) if s.ended_at_ms.is_none() => {
                        Ok(self.persist(from, &who, HostAction::EndSale(sale_id)))
                    }
                    Some(_) => Err(FrameError::new(ErrorCode::Invalid, "sale already ended")),
                    None => Err(FrameError::new(ErrorCode::NotFound, format!("no sale {sale_id}"))),
                }
            }),
            ClientFrame::DeleteMessage { seq } => self.moderator_only(&who, "delete messages").and_then(|()| {
                if self.chat.delete(seq) {
                    self.broadcast_event(now_ms, RoomEvent::ChatDeleted { target_seq: seq, by: who.clone() });
                    Ok(Taken::Done)
                } else {
                    Err(FrameError::new(ErrorCode::NotFound, format!("no recent message {seq}")))
                }
            }),
            ClientFrame::Mute { identity, seconds } => self.moderator_only(&who, "mute").and_then(|()| {
                let until_ms = now_ms + i64::from(seconds.min(7 * 24 * 3600)) * 1000;
                self.chat.mute(&identity, until_ms);
                self.broadcast_event(now_ms, RoomEvent::UserMuted { identity, until_ms });
                Ok(Taken::Done)
            }),
            ClientFrame::Ban { identity } => {
                self.moderator_only(&who, "ban").map(|()| self.persist(from, &who, HostAction::Ban(identity)))
            }
            ClientFrame::SetBlockedWords { words } => self.moderator_only(&who, "set blocked words").and_then(|()| {
                if words.len() > 500 || words.iter().any(|w| w.chars().count() > 64) {
                    return Err(FrameError::new(ErrorCode::Invalid, "at most 500 words of at most 64 characters"));
                }
                Ok(self.persist(from, &who, HostAction::SetBlockedWords(words)))
            }),
        };
        match result {
            Ok(Taken::Done) => self.accepted(from),
            Ok(Taken::AwaitsStore) => {}
            Err(e) => self.refuse(now_ms, from, &who.id, e),
        }
    }

    fn host_only(&self, who: &Identity, what: &str) -> Result<(), FrameError> {
        if who.role.can_run_show() {
            Ok(())
        } else {
            Err(FrameError::new(ErrorCode::Forbidden, format!("only the host may {what}")))
        }
    }

    fn moderator_only(&self, who: &Identity, what: &str) -> Result<(), FrameError> {
        if who.role.can_moderate() {
            Ok(())
        } else {
            Err(FrameError::new(ErrorCode::Forbidden, format!("only the host or a moderator may {what}")))
        }
    }

    fn persist(&mut self, from: Caller, by: &Identity, action: HostAction) -> Taken {
        self.outputs.push_back(Output::Persist { from, by: by.clone(), action });
        Taken::AwaitsStore
    }

    /// A session gets its stream opened (welcome, then the missed events or a snapshot, then
    /// the latest counters); a call gets the same frames as its answer.
    fn hello(&mut self, now_ms: i64, from: Caller, who: &Identity, resume: Option<Position>) {
        let position = self.log.position();
        let budget = self.config.replay_bytes;
        let missed = resume
            .and_then(|r| self.log.replay_after(r))
            .filter(|frames| frames.iter().map(|f| f.len()).sum::<usize>() <= budget);
        let participant = match from {
            Caller::Session(id) => Some(id),
            Caller::Call(_) => None,
        };
        let welcome = DirectFrame::Welcome {
            you: who.clone(),
            participant,
            epoch: position.epoch,
            seq: position.seq,
            server_now_ms: now_ms,
            resumed: missed.is_some(),
        };
        let mut frames = vec![(encode(&welcome), Class::Control)];
        match missed {
            Some(replayed) => frames.extend(replayed.into_iter().map(|f| (f, Class::Control))),
            None => {
                let snapshot = self.snapshot(now_ms, who.role.can_moderate());
                frames.push((encode(&DirectFrame::Snapshot(snapshot)), Class::Control));
            }
        }
        // Latest state follows the stream position, so counters are never stale on join.
        let likes = DirectFrame::Likes { total: self.likes.total(), delta: 0 };
        frames.push((encode(&likes), Class::Latest));
        frames.push((encode(&self.counters()), Class::Latest));
        if let Some(reconnect_after_ms) = self.draining {
            frames.push((encode(&DirectFrame::Draining { reconnect_after_ms }), Class::Control));
        }
        match participant {
            Some(to) => {
                for (frame, class) in frames {
                    self.outputs.push_back(Output::Send { to, frame, class });
                }
            }
            None => self.answer(from, Answer::Welcome(frames.into_iter().map(|(f, _)| f).collect())),
        }
    }

    fn snapshot(&self, now_ms: i64, staff: bool) -> Snapshot {
        let position = self.log.position();
        Snapshot {
            epoch: position.epoch,
            seq: position.seq,
            server_now_ms: now_ms,
            products: self.products.clone(),
            pinned: self.pinned.clone(),
            sales: self.sales.iter().filter(|s| !s.is_over(now_ms)).cloned().collect(),
            chat: self.chat.history(),
            likes_total: self.likes.total(),
            viewers: self.viewer_count(),
            orders: staff.then(|| self.orders.iter().cloned().collect()),
            blocked_words: staff.then(|| self.chat.blocked_words()),
        }
    }

    fn chat(&mut self, now_ms: i64, who: &Identity, text: &str) -> Result<(), FrameError> {
        let text = self.chat.admit(now_ms, who, text)?;
        let event = RoomEvent::Chat { from: who.clone(), text: text.clone(), at_ms: now_ms };
        let (seq, frame) = self.log.append(&event, now_ms);
        self.chat.record(ChatLine { seq, from: who.clone(), text, at_ms: now_ms });
        self.outputs.push_back(Output::Broadcast { frame, class: Class::Chat });
        Ok(())
    }

    fn buy(&mut self, now_ms: i64, from: Caller, who: &Identity, sale_id: i64, qty: u32, key: &str) {
        let sale = self.sales.iter().find(|s| s.id == sale_id);
        match self.buys.admit(now_ms, from, who, sale, sale_id, qty, key) {
            Admission::Answered(answer) => self.answer(from, Answer::Buy { key: key.to_string(), answer }),
            Admission::Joined => {}
            Admission::Submit(order) if self.draining.is_some() => {
                // No new work for the store while draining: the reservation `admit` made is
                // released and nothing is remembered, so the key may be sent again elsewhere.
                let error = FrameError::new(ErrorCode::Unavailable, "the server is restarting: buy again once reconnected");
                for to in self.buys.handle_failure(&order.ticket) {
                    self.answer(to, Answer::BuyNotPlaced { key: key.to_string(), sale_id, error: error.clone() });
                }
            }
            Admission::Submit(order) => self.outputs.push_back(Output::Buy(order)),
        }
    }

    /// The server is going away. Every participant, and anyone who says `hello` later, is told
    /// to reconnect after `reconnect_after_ms`; new buys are answered `buy_not_placed`, and the
    /// buys already with the store are answered as usual when it has committed them
    /// ([`RoomCore::buys_in_flight`] counts them down to zero).
    pub fn handle_drain(&mut self, reconnect_after_ms: u64) {
        if self.draining.is_some() {
            return;
        }
        self.draining = Some(reconnect_after_ms);
        let frame = encode(&DirectFrame::Draining { reconnect_after_ms });
        self.outputs.push_back(Output::Broadcast { frame, class: Class::Control });
    }

    /// The store committed (or replayed) a buy.
    pub fn handle_buy_outcome(&mut self, now_ms: i64, ticket: &BuyTicket, answer: BuyAnswer, replayed: bool, stock_left: Option<u32>) {
        let settled = self.buys.handle_outcome(ticket, answer.clone(), replayed);
        for to in settled.waiters {
            self.answer(to, Answer::Buy { key: ticket.key.clone(), answer: answer.clone() });
        }
        let BuyAnswer::Confirmed { order_id, sale_id, qty, price_minor, currency } = answer else {
            return;
        };
        if replayed {
            return;
        }
        let Some(sale) = self.sales.iter_mut().find(|s| s.id == sale_id) else {
            return;
        };
        // Outcomes of one group commit may be applied in any order; the store's stock only ever
        // goes down, so the lowest value it reported is the committed truth. Without a report,
        // count this order off.
        sale.stock_left = match stock_left {
            Some(left) => left.min(sale.stock_left),
            None => sale.stock_left.saturating_sub(qty),
        };
        let sold_out = sale.stock_left == 0;
        let sale_sold = sale.sold();
        let buyer = settled
            .buyer
            .or_else(|| self.participants.values().find(|p| p.identity.id == ticket.identity).map(|p| p.identity.clone()))
            .unwrap_or_else(|| Identity { id: ticket.identity.clone(), name: ticket.identity.clone(), role: crate::identity::Role::Viewer });
        let order = OrderLine { order_id, sale_id, buyer, qty, price_minor, currency, at_ms: now_ms };
        let revenue = self.revenue.entry(sale_id).or_insert(0);
        *revenue += price_minor * i64::from(qty);
        let revenue_minor = *revenue;
        if self.orders.len() == RECENT_ORDERS {
            self.orders.pop_front();
        }
        self.orders.push_back(order.clone());
        let feed = DirectFrame::Order { order, sale_sold, revenue_minor };
        let staff: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.identity.role.can_moderate())
            .map(|(id, _)| *id)
            .collect();
        for to in staff {
            self.send(to, &feed, Class::Control);
        }
        self.counters_dirty = true;
        if sold_out {
            self.broadcast_event(now_ms, RoomEvent::SoldOut { sale_id });
        }
    }

    /// The store could not commit a buy: nothing happened, the buyer may retry with its key.
    pub fn handle_buy_failure(&mut self, ticket: &BuyTicket) {
        for to in self.buys.handle_failure(ticket) {
            self.tally.buy_unavailable();
            let error = FrameError::new(ErrorCode::Unavailable, "order not placed, please retry");
            self.answer(to, Answer::Refused(error));
        }
    }

    /// The show's task is being replaced (it panicked): tell every buyer still waiting for
    /// the store that its answer is unknown. The store may still commit the buy; a retry with
    /// the same key gets the store's one answer, so the buyer must retry with that key.
    pub fn abandon_buys_in_flight(&mut self) {
        for ticket in self.buys.tickets_in_flight() {
            for to in self.buys.handle_failure(&ticket) {
                let error = FrameError::new(ErrorCode::Unavailable, "the room restarted before this order was answered; retry it");
                self.answer(to, Answer::Refused(error));
            }
        }
    }

    // ----- durable host actions, applied after the store committed -----

    pub fn apply_product(&mut self, now_ms: i64, product: Product) {
        match self.products.iter_mut().find(|p| p.id == product.id) {
            Some(p) => *p = product.clone(),
            None => self.products.push(product.clone()),
        }
        self.broadcast_event(now_ms, RoomEvent::ProductUpdated { product });
    }

    pub fn apply_product_deleted(&mut self, now_ms: i64, product_id: i64) {
        self.products.retain(|p| p.id != product_id);
        if self.pinned.contains(&product_id) {
            let pins: Vec<i64> = self.pinned.iter().copied().filter(|id| *id != product_id).collect();
            self.apply_pins(now_ms, pins);
        }
    }

    pub fn apply_pins(&mut self, now_ms: i64, pins: Vec<i64>) {
        self.pinned = pins;
        let products = self
            .pinned
            .iter()
            .filter_map(|id| self.products.iter().find(|p| p.id == *id).cloned())
            .collect();
        self.broadcast_event(now_ms, RoomEvent::Pinned { products });
    }

    pub fn apply_sale(&mut self, now_ms: i64, sale: Sale) {
        let ended = sale.ended_at_ms.is_some();
        let (id, sold) = (sale.id, sale.sold());
        match self.sales.iter_mut().find(|s| s.id == sale.id) {
            Some(s) => *s = sale.clone(),
            None => self.sales.push(sale.clone()),
        }
        if ended {
            if !self.end_announced.contains(&id) {
                self.end_announced.push(id);
                self.broadcast_event(now_ms, RoomEvent::SaleEnded { sale_id: id, sold });
            }
        } else {
            self.broadcast_event(now_ms, RoomEvent::SaleStarted { sale });
        }
        self.counters_dirty = true;
    }

    pub fn apply_ban(&mut self, now_ms: i64, identity: String, until_ms: Option<i64>) {
        self.banned.insert(identity.clone(), until_ms);
        let kicked: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.identity.id == identity && !p.identity.role.can_run_show())
            .map(|(id, _)| *id)
            .collect();
        for participant in kicked {
            self.participants.remove(&participant);
            self.outputs.push_back(Output::Kick { participant });
        }
        self.broadcast_event(now_ms, RoomEvent::UserBanned { identity });
        self.counters_dirty = true;
    }

    pub fn apply_blocked_words(&mut self, words: Vec<String>) {
        self.chat.set_blocked_words(words);
    }

    /// The store committed a host action and its `apply_*` ran: a call is told it is done.
    pub fn handle_persisted(&mut self, from: Caller) {
        self.accepted(from);
    }

    /// A durable action failed; tell whoever asked.
    pub fn handle_persist_failure(&mut self, to: Caller, error: FrameError) {
        self.answer(to, Answer::Refused(error));
    }

    // ----- time -----

    /// Fixed tick (every 250-500 ms): likes, counters, sales ending by the clock.
    pub fn handle_tick(&mut self, now_ms: i64) {
        if let Some((total, delta)) = self.likes.handle_tick() {
            self.broadcast(&DirectFrame::Likes { total, delta }, Class::Latest);
        }
        let ending: Vec<(i64, u32)> = self
            .sales
            .iter()
            .filter(|s| s.is_over(now_ms) && !self.end_announced.contains(&s.id))
            .map(|s| (s.id, s.sold()))
            .collect();
        for (sale_id, sold) in ending {
            self.end_announced.push(sale_id);
            self.broadcast_event(now_ms, RoomEvent::SaleEnded { sale_id, sold });
        }
        if std::mem::take(&mut self.counters_dirty) {
            let counters = self.counters();
            self.broadcast(&counters, Class::Latest);
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    // ----- helpers -----

    fn viewer_count(&self) -> usize {
        self.participants.values().filter(|p| !p.identity.role.can_run_show()).count()
    }

    fn counters(&self) -> DirectFrame {
        DirectFrame::Counters {
            viewers: self.viewer_count(),
            sales: self
                .sales
                .iter()
                .filter(|s| s.ended_at_ms.is_none())
                .map(|s| SaleCounter { sale_id: s.id, stock_left: s.stock_left, sold: s.sold() })
                .collect(),
        }
    }

    fn broadcast_event(&mut self, now_ms: i64, event: RoomEvent) {
        let (_, frame) = self.log.append(&event, now_ms);
        self.outputs.push_back(Output::Broadcast { frame, class: Class::Control });
    }

    fn send(&mut self, to: ParticipantId, frame: &DirectFrame, class: Class) {
        self.outputs.push_back(Output::Send { to, frame: encode(frame), class });
    }

    fn broadcast(&mut self, frame: &DirectFrame, class: Class) {
        self.outputs.push_back(Output::Broadcast { frame: encode(frame), class });
    }

    fn answer(&mut self, to: Caller, answer: Answer) {
        if let Answer::Buy { answer, .. } = &answer {
            self.tally.buy_answered(answer);
        }
        self.outputs.push_back(Output::Answer { to, answer });
    }

    /// Only a call is told that a frame was taken; a session sees its effects.
    fn accepted(&mut self, to: Caller) {
        if let Caller::Call(_) = to {
            self.answer(to, Answer::Accepted);
        }
    }

    /// Refuse a frame. A session's error replies are rate-limited, so a flood is not answered
    /// with a flood; a call always gets its one answer.
    fn refuse(&mut self, now_ms: i64, from: Caller, identity: &str, error: FrameError) {
        self.tally.refused(error.code);
        let message = match from {
            Caller::Session(id) => {
                let Some(p) = self.participants.get_mut(&id) else {
                    return;
                };
                if !p.errors.try_take(now_ms) {
                    p.muted_errors += 1;
                    return;
                }
                let muted = std::mem::take(&mut p.muted_errors);
                if muted > 0 {
                    format!("{} ({muted} similar errors not reported)", error.message)
                } else {
                    error.message.clone()
                }
            }
            Caller::Call(_) => error.message.clone(),
        };
        self.answer(from, Answer::Refused(FrameError::new(error.code, message)));
        let identity = identity.to_string();
        self.outputs.push_back(Output::Refused { from, identity, code: error.code, message: error.message });
    }

    /// Memory and store must agree on this after every commit: used by tests and the bench.
    pub fn sale(&self, sale_id: i64) -> Option<&Sale> {
        self.sales.iter().find(|s| s.id == sale_id)
    }

    pub fn bought(&self, sale_id: i64, identity: &str) -> u32 {
        self.buys.bought(sale_id, identity)
    }

    pub fn products(&self) -> &[Product] {
        &self.products
    }

    pub fn sales(&self) -> &[Sale] {
        &self.sales
    }

    pub fn buys_in_flight(&self) -> usize {
        self.buys.in_flight()
    }

    pub fn position(&self) -> Position {
        self.log.position()
    }
}
