//! The registry of show tasks. A room's show task loads the room's durable state before it
//! handles anything; messages sent meanwhile wait in its inbox.
//!
//! Only a host creates a room: a WHIP publish or a product write ([`ShowRegistry::open`]).
//! Readers ([`ShowRegistry::find`]) reach a room that is loaded or that the store knows (it
//! has products, sales, orders or moderation state); any other name is not found, and nothing
//! is started for it. A room with no participant, no peer, no call or store job in flight
//! (nobody holds a sender to its inbox but the room itself) for [`RoomLimits::idle_after`]
//! is unloaded, and loaded again from the store on next use.
//!
//! Each room runs under a supervisor that owns its inbox and lends it to the task. When the
//! task panics, only the message it was handling is lost: the supervisor reloads the room
//! from the store, starts a new [`Show`] with a new epoch (the event log was in memory), and
//! asks the media shards to join the room's open data channels again, so each client gets a
//! `welcome` and a `snapshot` and goes on as after a reconnect. Senders (HTTP handlers,
//! peers) keep the same inbox throughout; a caller whose reply was lost in the panic hears
//! that the room is unavailable and may retry (a buy with the same idempotency key).
//!
//! In cluster mode ([`ShowRegistry::join_cluster`]) a reader looking up a room that another
//! node owns gets a mirror of it (`across_nodes::room_mirror`) behind the same handle, never
//! a show of its own: one room's sales and stock are decided on one node. A room this node
//! owns (or nobody owns yet) runs its show here, whose events are relayed to the others; its
//! first start numbers its events after the last one the room's stream holds
//! (`across_nodes::show_start`), so a takeover keeps every client's place.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use sellcast_room::{Caller, Class, Output, Show, ShowLimits, ShowRecord};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::across_nodes::owner_relay::OwnerRelay;
use super::across_nodes::room_mirror::RoomMirror;
use super::across_nodes::show_start::{show_start, StreamTail};
use super::across_nodes::{Owner, RoomLinks};
use super::messages::ShowMsg;
use super::session_inbox::{session_inbox, SessionReceiver, SessionSender, FRAME_QUEUE_BYTES};
use super::store_client::StoreClient;
use super::tally::ServerTally;
use super::task::{wall_ms, ShowTask};
use crate::media::command::Command;
use crate::admission::CapHit;
use crate::media::router::MediaRouter;
use crate::supervision::{hold_if_injected, panic_message, CatchUnwind, Supervision};

/// A room that panics again this soon after its last restart waits this long before the
/// next one, so a crash loop cannot spin on the store.
const CRASH_LOOP_PAUSE: Duration = Duration::from_secs(1);
/// Longest pause between two attempts to load a room while the store cannot answer.
const LOAD_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Calls and internal messages waiting for a show task (HTTP callers wait for room here).
/// Data-channel frames and joins come through the session inbox instead.
pub const ROOM_INBOX: usize = 8192;

/// Senders of a room's inbox that belong to the room itself: the registry's handle, the
/// supervisor's and the running task's. Any other sender is someone still using the room.
const ROOM_OWN_SENDERS: usize = 3;

/// The way to a running show task: its inbox for calls, and its session inbox for the media
/// shards (joins, leaves and frames; see `session_inbox`).
#[derive(Clone)]
pub struct ShowHandle {
    pub tx: mpsc::Sender<ShowMsg>,
    pub sessions: SessionSender,
    /// Cluster mode: a mirror of a room another node owns, not a show.
    pub mirrored: bool,
}

/// How many rooms may be loaded, and when an unused one is unloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomLimits {
    pub max_rooms: usize,
    pub idle_after: Duration,
}

impl Default for RoomLimits {
    fn default() -> Self {
        Self { max_rooms: crate::admission::AdmissionLimits::default().max_rooms, idle_after: Duration::from_secs(60) }
    }
}

/// Why a reader could not reach a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomLookup {
    /// No host ever created it: nothing is loaded for it.
    NotFound,
    /// It exists, but the server holds as many rooms as it may.
    Full,
    /// The store could not say.
    Unavailable,
    /// Cluster mode: NATS could not say which node owns the room.
    ClusterUnavailable,
}

type Shows = Arc<DashMap<String, ShowHandle>>;

/// Every loaded room's show task, by room name.
pub struct ShowRegistry {
    shows: Shows,
    limits: RoomLimits,
    store: StoreClient,
    driver: MediaRouter,
    runtime: tokio::runtime::Handle,
    /// Every room task's counts, added up for `/metrics`.
    tally: Arc<ServerTally>,
    supervision: Arc<Supervision>,
    /// Cluster mode: the NATS side of rooms owned here and mirrored here.
    links: OnceLock<Arc<RoomLinks>>,
}

impl ShowRegistry {
    pub fn new(
        store: StoreClient,
        driver: MediaRouter,
        runtime: tokio::runtime::Handle,
        supervision: Arc<Supervision>,
        limits: RoomLimits,
    ) -> Arc<Self> {
        Arc::new(Self {
            shows: Arc::default(),
            limits,
            store,
            driver,
            runtime,
            tally: Arc::default(),
            supervision,
            links: OnceLock::new(),
        })
    }

    /// How many rooms this node stopped owning because another node wrote their stream.
    pub fn owners_fenced(&self) -> u64 {
        self.links.get().map_or(0, |links| links.owners_fenced())
    }

    /// Cluster mode: rooms owned by other nodes are mirrored, and rooms run here relay their
    /// events. Set once, before anything is served.

    pub fn join_cluster(&self, links: Arc<RoomLinks>) {
        let _ = self.links.set(links);
    }

    /// The durable store every show task writes through.
    pub fn store(&self) -> &StoreClient {
        &self.store
    }

    /// Every show task started so far.
    pub fn all(&self) -> Vec<ShowHandle> {
        self.shows.iter().map(|entry| entry.value().clone()).collect()
    }

    /// What every show task counted: frames, refusals, buy answers.
    pub fn tally(&self) -> &ServerTally {
        &self.tally
    }

    /// Show tasks loaded now (idle rooms are unloaded).
    pub fn task_count(&self) -> usize {
        self.shows.len()
    }

    /// A host's way in: the room's show task, created if needed, unless the server holds
    /// `max_rooms` rooms already.
    pub fn open(&self, room: &str) -> Result<ShowHandle, CapHit> {
        if let Some(h) = self.shows.get(room) {
            return Ok(h.value().clone());
        }
        if self.shows.len() >= self.limits.max_rooms {
            return Err(CapHit::Rooms);
        }
        Ok(self.get_with(room, None))
    }

    /// A reader's way in: the room if it is loaded, or loaded from the store if the store
    /// knows it. A name no host created is [`RoomLookup::NotFound`] and starts nothing.
    pub async fn find(&self, room: &str) -> Result<ShowHandle, RoomLookup> {
        if let Some(h) = self.shows.get(room) {
            return Ok(h.value().clone());
        }
        if let Some(links) = self.links.get() {
            match links.owner_of(room).await {
                Ok(Owner::Elsewhere(_)) => return self.mirror(room, links),
                Ok(Owner::Here | Owner::Unclaimed) => {}
                Err(e) => {
                    tracing::warn!(%room, error = %e, "the room's owner could not be looked up");
                    return Err(RoomLookup::ClusterUnavailable);
                }
            }
        }
        let record = self.store.load_room(room).await.map_err(|_| RoomLookup::Unavailable)?;
        if !created(&record) {
            return Err(RoomLookup::NotFound);
        }
        if self.shows.len() >= self.limits.max_rooms && !self.shows.contains_key(room) {
            return Err(RoomLookup::Full);
        }
        Ok(self.get_with(room, Some(record)))
    }

    /// The room's show task, started if needed, for a caller that already passed [`open`] or
    /// [`find`] (a peer joining: its room may have been unloaded in between, and is loaded
    /// again). Never holds the map entry across an await.
    ///
    /// [`open`]: ShowRegistry::open
    /// [`find`]: ShowRegistry::find
    pub fn get(&self, room: &str) -> ShowHandle {
        if let Some(h) = self.shows.get(room) {
            return h.value().clone();
        }
        self.get_with(room, None)
    }

    /// Cluster mode: the room's mirror when another node owns it (a loaded mirror, or a live
    /// claim elsewhere), so a host's or moderator's request reaches the owner; `None` when the
    /// room runs here or nobody owns it (single node: always `None`). A staff write must not
    /// start a show of its own on a node that is not the room's owner.
    pub async fn mirror_if_owned_elsewhere(&self, room: &str) -> Result<Option<ShowHandle>, RoomLookup> {
        if let Some(h) = self.shows.get(room) {
            return Ok(h.mirrored.then(|| h.value().clone()));
        }
        let Some(links) = self.links.get() else {
            return Ok(None);
        };
        match links.owner_of(room).await {
            Ok(Owner::Elsewhere(_)) => self.mirror(room, links).map(Some),
            Ok(Owner::Here | Owner::Unclaimed) => Ok(None),
            Err(e) => {
                tracing::warn!(%room, error = %e, "the room's owner could not be looked up");
                Err(RoomLookup::ClusterUnavailable)
            }
        }
    }

    /// Cluster mode: this node has just claimed `room` for its host. A mirror of it (from
    /// when another node owned it) leaves the registry, and the room's show starts here;
    /// the old mirror serves its viewers until they leave, through this node as the owner.
    pub fn claimed_here(&self, room: &str) -> Result<ShowHandle, CapHit> {
        if self.shows.remove_if(room, |_, h| h.mirrored).is_some() {
            info!(%room, "this node owns the room now: its mirror gives way to its show");
        }
        self.open(room)
    }

    /// The mirror of a room another node owns, started if needed.
    fn mirror(&self, room: &str, links: &Arc<RoomLinks>) -> Result<ShowHandle, RoomLookup> {
        if self.shows.len() >= self.limits.max_rooms && !self.shows.contains_key(room) {
            return Err(RoomLookup::Full);
        }
        let handle = self
            .shows
            .entry(room.to_string())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(ROOM_INBOX);
                let (sessions, sessions_rx) = session_inbox(FRAME_QUEUE_BYTES);
                let idle = Idle { after: self.limits.idle_after, shows: self.shows.clone() };
                let mirror = RoomMirror::new(room.to_string(), links.clone(), self.driver.clone(), tx.clone(), idle);
                self.runtime.spawn(mirror.run(rx, sessions_rx));
                ShowHandle { tx, sessions, mirrored: true }
            })
            .value()
            .clone();
        Ok(handle)
    }

    fn get_with(&self, room: &str, loaded: Option<ShowRecord>) -> ShowHandle {
        self.shows
            .entry(room.to_string())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(ROOM_INBOX);
                let (sessions, sessions_rx) = session_inbox(FRAME_QUEUE_BYTES);
                let supervisor = ShowSupervisor {
                    name: room.to_string(),
                    store: self.store.clone(),
                    driver: self.driver.clone(),
                    me: tx.clone(),
                    supervision: self.supervision.clone(),
                    tally: self.tally.clone(),
                    idle: Idle { after: self.limits.idle_after, shows: self.shows.clone() },
                    links: self.links.get().cloned(),
                };
                self.runtime.spawn(supervisor.run(rx, sessions_rx, loaded));
                ShowHandle { tx, sessions, mirrored: false }
            })
            .value()
            .clone()
    }
}

/// Whether a host ever left anything of this room in the store.
fn created(record: &ShowRecord) -> bool {
    !(record.products.is_empty()
        && record.sales.is_empty()
        && record.pinned.is_empty()
        && record.banned.is_empty()
        && record.blocked_words.is_empty()
        && record.recent_orders.is_empty()
        && record.show.is_unset()
        && record.names.is_empty()
        && record.likes_total == 0)
}

/// What a show task needs to unload its room when nobody uses it.
#[derive(Clone)]
pub(super) struct Idle {
    pub after: Duration,
    shows: Shows,
}

impl Idle {
    /// Remove the room from the registry if nobody but the room holds a sender to its inboxes
    /// and the call inbox is empty. Checked under the map's lock: a new sender is only ever cloned
    /// from the registry's handle under that lock, or from one counted here, so once removed
    /// nobody can reach the old inbox and the next user loads the room afresh.
    pub(super) fn try_unload(&self, room: &str, me: &mpsc::Sender<ShowMsg>, inbox: &mpsc::Receiver<ShowMsg>) -> bool {
        self.try_unload_with(room, me, inbox, ROOM_OWN_SENDERS)
    }

    /// [`Idle::try_unload`] for a task holding `own` senders of its inbox (the registry's
    /// handle's included).
    pub(super) fn try_unload_with(&self, room: &str, me: &mpsc::Sender<ShowMsg>, inbox: &mpsc::Receiver<ShowMsg>, own: usize) -> bool {
        self.shows
            .remove_if(room, |_, h| {
                // Peers hold the session inbox's sender, not the call inbox's: the room's own
                // handle is the only holder once every peer is gone.
                h.tx.same_channel(me) && me.strong_count() <= own && h.sessions.holders() <= 1 && inbox.is_empty()
            })
            .is_some()
    }

    /// Take the room out of the registry if `me` is still its inbox (a task that stops).
    pub(super) fn remove(&self, room: &str, me: &mpsc::Sender<ShowMsg>) {
        self.shows.remove_if(room, |_, h| h.tx.same_channel(me));
    }

    /// Nobody outside the room holds a sender to its inbox.
    pub(super) fn unused(me: &mpsc::Sender<ShowMsg>) -> bool {
        me.strong_count() <= ROOM_OWN_SENDERS
    }
}

/// Runs one room's show task and restarts it after a panic (see the module doc).
struct ShowSupervisor {
    name: String,
    store: StoreClient,
    driver: MediaRouter,
    me: mpsc::Sender<ShowMsg>,
    supervision: Arc<Supervision>,
    tally: Arc<ServerTally>,
    idle: Idle,
    links: Option<Arc<RoomLinks>>,
}

impl ShowSupervisor {
    async fn run(self, mut inbox: mpsc::Receiver<ShowMsg>, mut sessions: SessionReceiver, mut loaded: Option<ShowRecord>) {
        let mut last_epoch = 0_u64;
        let mut last_panic: Option<Instant> = None;
        // One relay across restarts: other nodes' calls keep arriving in the same inbox.
        let relay = self.links.as_ref().map(|links| Arc::new(OwnerRelay::start(links, &self.name, self.me.downgrade(), self.store.clone())));
        loop {
            let record = match loaded.take() {
                Some(record) => record,
                None => self.load().await,
            };
            let now = wall_ms();
            // Clients resync on a new epoch: it must differ from the last one even when the
            // restart falls within the same millisecond.
            let fresh_epoch = (now as u64).max(last_epoch + 1);
            // The first start continues the room's stream (cluster mode: the room may have
            // run on another node). A restart after a panic does not: the relay may still
            // hold the dead show's events, and this node's clients rejoin with a snapshot.
            let tail = match (&self.links, last_panic) {
                (Some(links), None) => self.stream_tail(links).await,
                _ => StreamTail::default(),
            };
            if let (Some(relay), None) = (&relay, last_panic) {
                relay.handle_takeover(tail.stream_seq);
            }
            let start = show_start(tail.last, fresh_epoch);
            last_epoch = start.epoch;
            let epoch = start.epoch;
            let mut core = Show::continuing(self.name.clone(), start, record, ShowLimits::default(), now);
            if tail.last.is_some() {
                let adopted = core.adopt_events(&tail.events);
                info!(room = %self.name, epoch, after_seq = start.seq, adopted = adopted.then_some(tail.events.len()), "the show continues the room's event stream");
            }
            if last_panic.is_some() {
                self.supervision.show_tasks.came_back();
                info!(room = %self.name, epoch, "show task restarted; rejoining its data channels");
                // The shards' rejoins queue behind what is already in the inbox.
                if self.driver.send(Command::Rejoin { room: self.name.clone() }).await.is_err() {
                    error!(room = %self.name, "the media plane is gone; the room's channels were not rejoined");
                }
            }
            let task = ShowTask::new(self.name.clone(), self.store.clone(), self.driver.clone(), self.me.clone())
                .with_tally(self.tally.clone())
                .with_idle(self.idle.clone())
                .with_relay(relay.clone());
            match CatchUnwind(Box::pin(task.run(&mut core, &mut inbox, &mut sessions))).await {
                Ok(()) => return,
                Err(mut payload) => {
                    self.supervision.show_tasks.went_down();
                    error!(room = %self.name, panic = %panic_message(payload.as_ref()), "show task panicked; restarting it from the store");
                    self.abandon_buys(core);
                    if let Some(hold) = hold_if_injected(&mut payload) {
                        hold.wait_async().await;
                    }
                    if last_panic.is_some_and(|at| at.elapsed() < CRASH_LOOP_PAUSE) {
                        tokio::time::sleep(CRASH_LOOP_PAUSE).await;
                    }
                    last_panic = Some(Instant::now());
                }
            }
        }
    }

    /// Buyers of the dead show still waiting for the store hear `unavailable` on their data
    /// channel (HTTP callers already heard it: their replies were dropped). If the dead show is
    /// too broken for that, they hear nothing and the log says so.
    fn abandon_buys(&self, mut dead: Show) {
        let frames = catch_unwind(AssertUnwindSafe(move || {
            dead.abandon_buys_in_flight();
            let mut frames = Vec::new();
            while let Some(output) = dead.poll_output() {
                match output {
                    Output::Send { to, frame, class } => frames.push((to, frame, class)),
                    Output::Answer { to: Caller::Session(to), answer } => {
                        frames.extend(answer.to_frames().into_iter().map(|frame| (to, frame, Class::Control)));
                    }
                    _ => {}
                }
            }
            frames
        }));
        let Ok(frames) = frames else {
            error!(room = %self.name, "the dead show could not list its buys in flight; their buyers were not told");
            return;
        };
        for (to, frame, class) in frames {
            let _ = self.driver.try_send(Command::Deliver { room: self.name.clone(), to: Some(to), frame, class, since: None });
        }
    }

    /// The room's newest events in the stream, which the show continues (see
    /// `across_nodes::show_start`); none when the stream cannot be read, and the show starts a
    /// new epoch.
    async fn stream_tail(&self, links: &RoomLinks) -> StreamTail {
        match links.stream_tail(&self.name).await {
            Ok(tail) => tail,
            Err(e) => {
                warn!(room = %self.name, error = %e, "the room's event stream could not be read: a new epoch, clients take a snapshot");
                StreamTail::default()
            }
        }
    }

    /// The room's durable state. A room must not run without it (its bans would be gone), so
    /// while the store cannot answer, this waits and tries again; messages wait in the inbox.
    async fn load(&self) -> ShowRecord {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.store.load_room(&self.name).await {
                Ok(record) => return record,
                Err(e) => {
                    error!(room = %self.name, error = %e, "loading the room failed; retrying before it runs");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(LOAD_BACKOFF_MAX);
                }
            }
        }
    }
}
