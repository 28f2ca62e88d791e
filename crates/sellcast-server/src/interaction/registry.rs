//! The registry of room tasks. A room's task is started on first use and loads the room's
//! durable state before it handles anything; messages sent meanwhile wait in its inbox.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::mpsc;

use super::messages::RoomMsg;
use super::store_port::StorePort;
use super::tally::ServerTally;
use super::task::RoomTask;
use crate::media::router::MediaRouter;

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
    /// Every room task's counts, added up for `/metrics`.
    tally: Arc<ServerTally>,
}

impl Rooms {
    pub fn new(store: StorePort, driver: MediaRouter, runtime: tokio::runtime::Handle) -> Arc<Self> {
        Arc::new(Self {
            rooms: DashMap::new(),
            store,
            driver,
            runtime,
            tally: Arc::default(),
        })
    }

    /// The durable store every room task writes through.
    pub fn store(&self) -> &StorePort {
        &self.store
    }

    /// What every room task counted: frames, refusals, buy answers.
    pub fn tally(&self) -> &ServerTally {
        &self.tally
    }

    /// Room tasks started (each runs until the server stops).
    pub fn task_count(&self) -> usize {
        self.rooms.len()
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
                let task = RoomTask::new(room.to_string(), self.store.clone(), self.driver.clone(), tx.clone())
                    .with_tally(self.tally.clone());
                self.runtime.spawn(task.run(rx));
                RoomHandle { tx }
            })
            .value()
            .clone()
    }
}
