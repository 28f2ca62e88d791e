//! A room's interaction state and the decisions on every frame: who may do what, what is
//! broadcast with which sequence number, what is answered directly, what must be made
//! durable first. No IO: the show task feeds frames, store results and ticks, and carries
//! out the [`Output`]s.
//!
//! One concern per file: `participants`, `dispatch` (every frame in), `chat`, `orders`,
//! `host_actions`, `lifecycle` (title, start, names, End, saved likes), `ticks`, `snapshots`,
//! `video_cap` (a viewer's cap on its video layer, for the media plane), `takeover` (the old
//! show's last events, adopted by a show continuing its stream);
//! `limits` and `record` are what a show is built from.

mod chat;
mod dispatch;
mod host_actions;
mod lifecycle;
mod limits;
mod orders;
mod participants;
mod record;
mod snapshots;
mod takeover;
mod ticks;
mod video_cap;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::activity::Activity;
use crate::answer::{Answer, Caller};
use crate::buy_admission::{BuyAdmission, BuyOrder};
use crate::catalog::{Product, Sale, SaleDraft};
use crate::chat::ChatDesk;
use crate::event_log::EventLog;
use crate::identity::{Identity, ParticipantId, Role};
use crate::identity_limits::IdentityLimits;
use crate::likes::LikeCounter;
use crate::protocol::{encode, DirectFrame, ErrorCode, OrderLine, Position, RoomEvent};
use crate::tally::RoomTally;
use crate::totals::ShowTotals;

pub use limits::ShowLimits;
use participants::Participant;
pub use record::ShowRecord;

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
    /// Ban `identity`; `by` is the banning role (the ban binds only roles below it).
    Ban { identity: String, by: Role },
    Unban(String),
    SetBlockedWords(Vec<String>),
    /// The show's title, start and avatar (checked), with the host's name.
    SetShow(crate::show_info::ShowInfo),
    /// `identity` is shown as `name` (checked) in this room; `host`: it is the host's name.
    SetName { identity: String, name: String, host: bool },
    /// End the show: every open sale ends with it.
    EndShow,
}

/// A ban as the room holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// `None`: for good.
    pub until_ms: Option<i64>,
    /// The role that placed it: it binds roles below this one only.
    pub by: Role,
}

/// What the room asks its task to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A frame of one session's stream (welcome, replay or snapshot, counters, the order feed).
    Send { to: ParticipantId, frame: Arc<str>, class: Class },
    /// A frame for every participant. `position` is `Some` for a room event: its place in the
    /// room's event stream (what a resume counts from); `None` for latest-state frames
    /// (likes, counters, activity) and notices that are not part of the stream.
    Broadcast { frame: Arc<str>, class: Class, position: Option<Position> },
    /// The answer to a frame from `to`.
    Answer { to: Caller, answer: Answer },
    /// Commit this buy in the store, then call [`Show::handle_buy_outcome`].
    Buy(BuyOrder),
    /// Persist this action, then call the matching `apply_*` and [`Show::handle_persisted`].
    Persist { from: Caller, by: Identity, action: HostAction },
    /// Close this participant's session (banned).
    Kick { participant: ParticipantId },
    /// A viewer capped the video layer its session is sent (a checked `video_cap` frame): the
    /// media plane's forwarder applies it to that session.
    VideoCap { participant: ParticipantId, data_saver: bool, max_height: Option<u32> },
    /// Save the room's likes total (best effort: a crash loses the likes since the last save).
    PersistLikes { total: u64 },
    /// A frame was refused; the task logs it (debug for rate limits, info otherwise).
    Refused { from: Caller, identity: String, code: ErrorCode, message: String },
}

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
    banned: HashMap<String, Ban>,
    /// Roles of the staff (hosts, moderators) seen in this room, so a moderator cannot act on
    /// one who is offline; a ban placed anyway would not bind them (see [`Ban::by`]).
    staff_seen: HashMap<String, Role>,
    /// Every identity's rate limits, shared by its sessions and calls.
    limits: IdentityLimits,
    chat: ChatDesk,
    likes: LikeCounter,
    buys: BuyAdmission,
    orders: VecDeque<OrderLine>,
    /// Revenue per sale, from the recent orders on and every order since.
    revenue: HashMap<i64, i64>,
    /// Sums over every committed order of the room: loaded, then one order at a time.
    totals: ShowTotals,
    counters_dirty: bool,
    /// Title, scheduled start, avatar, host name, last End.
    info: crate::show_info::ShowInfo,
    /// Display names chosen in this room, by identity: they replace the token's name.
    names: HashMap<String, String>,
    /// Joins and orders waiting for the next coalesced activity frame.
    activity: Activity,
    /// The likes total last handed to the store, and when.
    likes_saved: (u64, i64),
    /// Set once the server drains: the reconnect hint every participant is given.
    draining: Option<u64>,
    /// Frames, refusals and buy answers handled so far (read by the task for metrics).
    tally: RoomTally,
    outputs: VecDeque<Output>,
}

impl Show {
    /// A show whose events start at seq 1 of `epoch` (a new epoch tells every client to
    /// take a snapshot).
    pub fn new(name: String, epoch: u64, record: ShowRecord, config: ShowLimits, now_ms: i64) -> Self {
        Self::continuing(name, Position { epoch, seq: 0 }, record, config, now_ms)
    }

    /// A show whose first event comes after `after` in its epoch: it continues a room's event
    /// stream that another show numbered up to `after` (cluster mode: the room's new owner
    /// after its old one died), so clients keep their place instead of taking a snapshot.
    /// Its state comes from `record` (the store) as always; only the numbering continues.
    pub fn continuing(name: String, after: Position, record: ShowRecord, config: ShowLimits, now_ms: i64) -> Self {
        let mut revenue: HashMap<i64, i64> = HashMap::new();
        for o in &record.recent_orders {
            let Some(sale_id) = o.sale_id else {
                continue;
            };
            let total = revenue.entry(sale_id).or_insert(0);
            *total = crate::money::add_line(*total, o.price_minor, o.qty);
        }
        let end_announced = record.sales.iter().filter(|s| s.is_over(now_ms)).map(|s| s.id).collect();
        Self {
            log: EventLog::continuing(after, config.replay_events),
            chat: ChatDesk::new(config.chat.clone(), record.blocked_words, now_ms),
            likes: LikeCounter::new(record.likes_total, config.likes_per_user_per_tick),
            buys: BuyAdmission::new(record.bought, config.recent_answers),
            limits: IdentityLimits::new(config.identities.clone(), now_ms),
            staff_seen: HashMap::new(),
            name,
            config,
            participants: HashMap::new(),
            products: record.products,
            pinned: record.pinned,
            sales: record.sales,
            end_announced,
            banned: record.banned.into_iter().map(|(id, until_ms, by)| (id, Ban { until_ms, by })).collect(),
            orders: record.recent_orders.into_iter().collect(),
            revenue,
            totals: record.totals,
            info: record.show,
            names: record.names.into_iter().collect(),
            activity: Activity::default(),
            likes_saved: (record.likes_total, now_ms),
            counters_dirty: false,
            draining: None,
            tally: RoomTally::default(),
            outputs: VecDeque::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn broadcast_event(&mut self, now_ms: i64, event: RoomEvent) {
        let (_, frame) = self.log.append(&event, now_ms);
        let position = Some(self.log.position());
        self.outputs.push_back(Output::Broadcast { frame, class: Class::Control, position });
    }

    fn send(&mut self, to: ParticipantId, frame: &DirectFrame, class: Class) {
        self.outputs.push_back(Output::Send { to, frame: encode(frame), class });
    }

    fn broadcast(&mut self, frame: &DirectFrame, class: Class) {
        self.outputs.push_back(Output::Broadcast { frame: encode(frame), class, position: None });
    }

    /// Frames, refusals and buy answers handled so far.
    pub fn tally(&self) -> &RoomTally {
        &self.tally
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

    /// Memory and store must agree on this after every commit: used by tests and the bench.
    pub fn sale(&self, sale_id: i64) -> Option<&Sale> {
        self.sales.iter().find(|s| s.id == sale_id)
    }

    pub fn bought(&self, sale_id: i64, identity: &str) -> u32 {
        self.buys.bought(sale_id, identity)
    }

    /// What every committed order of the room adds up to.
    pub fn totals(&self) -> &ShowTotals {
        &self.totals
    }

    /// The host feed's recent orders, oldest first.
    pub fn recent_orders(&self) -> impl Iterator<Item = &OrderLine> {
        self.orders.iter()
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

    /// Buy answers cached in memory now (bounded by [`ShowLimits::recent_answers`]).
    pub fn cached_answers(&self) -> usize {
        self.buys.cached_answers()
    }

    /// Identities whose rate limits are tracked now (bounded; see `identity_limits`).
    pub fn tracked_identities(&self) -> usize {
        self.limits.tracked()
    }

    pub fn position(&self) -> Position {
        self.log.position()
    }
}
