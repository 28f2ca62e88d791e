//! The registry of room tasks. A room's task is started on first use and loads the room's
//! durable state before it handles anything; messages sent meanwhile wait in its inbox.
//!
//! Each room runs under a supervisor that owns its inbox and lends it to the task. When the
//! task panics, only the message it was handling is lost: the supervisor reloads the room
//! from the store, starts a new core with a new epoch (the event log was in memory), and asks
//! the media shards to join the room's open data channels again, so each client gets a
//! `welcome` and a `snapshot` and goes on as after a reconnect. Senders (HTTP handlers,
//! peers) keep the same inbox throughout; a caller whose reply was lost in the panic hears
//! that the room is unavailable and may retry (a buy with the same idempotency key).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use sellcast_room::{RoomConfig, RoomCore, RoomRecord};
use tokio::sync::mpsc;
use tracing::{error, info};

use super::messages::RoomMsg;
use super::store_port::StorePort;
use super::task::{wall_ms, RoomTask};
use crate::media::command::Command;
use crate::media::router::MediaRouter;
use crate::supervision::{hold_if_injected, panic_message, CatchUnwind, Supervision};

/// A room that panics again this soon after its last restart waits this long before the
/// next one, so a crash loop cannot spin on the store.
const CRASH_LOOP_PAUSE: Duration = Duration::from_secs(1);
/// Longest pause between two attempts to load a room while the store cannot answer.
const LOAD_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Frames waiting for a room task; beyond this a flooding driver drops (and counts) frames.
pub const ROOM_INBOX: usize = 8192;

#[derive(Clone)]
pub struct RoomHandle {
    pub tx: mpsc::Sender<RoomMsg>,
}

pub struct Rooms {
    rooms: DashMap<String, RoomHandle>,
    store: StorePort,
    driver: MediaRouter,
    runtime: tokio::runtime::Handle,
    supervision: Arc<Supervision>,
}

impl Rooms {
    pub fn new(store: StorePort, driver: MediaRouter, runtime: tokio::runtime::Handle, supervision: Arc<Supervision>) -> Arc<Self> {
        Arc::new(Self {
            rooms: DashMap::new(),
            store,
            driver,
            runtime,
            supervision,
        })
    }

    /// The durable store every room task writes through.
    pub fn store(&self) -> &StorePort {
        &self.store
    }

    /// The room's task, started if needed. Never holds the map entry across an await.
    pub fn get(&self, room: &str) -> RoomHandle {
        if let Some(h) = self.rooms.get(room) {
            return h.value().clone();
        }
        self.rooms
            .entry(room.to_string())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(ROOM_INBOX);
                let supervisor = RoomSupervisor {
                    name: room.to_string(),
                    store: self.store.clone(),
                    driver: self.driver.clone(),
                    me: tx.clone(),
                    supervision: self.supervision.clone(),
                };
                self.runtime.spawn(supervisor.run(rx));
                RoomHandle { tx }
            })
            .value()
            .clone()
    }
}

/// Runs one room's task and restarts it after a panic (see the module doc).
struct RoomSupervisor {
    name: String,
    store: StorePort,
    driver: MediaRouter,
    me: mpsc::Sender<RoomMsg>,
    supervision: Arc<Supervision>,
}

impl RoomSupervisor {
    async fn run(self, mut inbox: mpsc::Receiver<RoomMsg>) {
        let mut last_epoch = 0_u64;
        let mut last_panic: Option<Instant> = None;
        loop {
            let record = self.load().await;
            let now = wall_ms();
            // Clients resync on a new epoch: it must differ from the last one even when the
            // restart falls within the same millisecond.
            let epoch = (now as u64).max(last_epoch + 1);
            last_epoch = epoch;
            let core = RoomCore::new(self.name.clone(), epoch, record, RoomConfig::default(), now);
            if last_panic.is_some() {
                self.supervision.room_tasks.came_back();
                info!(room = %self.name, epoch, "room task restarted; rejoining its data channels");
                // The shards' rejoins queue behind what is already in the inbox.
                if self.driver.send(Command::Rejoin { room: self.name.clone() }).await.is_err() {
                    error!(room = %self.name, "the media plane is gone; the room's channels were not rejoined");
                }
            }
            let task = RoomTask::new(self.name.clone(), self.store.clone(), self.driver.clone(), self.me.clone());
            match CatchUnwind(Box::pin(task.run(core, &mut inbox))).await {
                Ok(()) => return,
                Err(mut payload) => {
                    self.supervision.room_tasks.went_down();
                    error!(room = %self.name, panic = %panic_message(payload.as_ref()), "room task panicked; restarting it from the store");
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

    /// The room's durable state. A room must not run without it (its bans would be gone), so
    /// while the store cannot answer, this waits and tries again; messages wait in the inbox.
    async fn load(&self) -> RoomRecord {
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
