//! The registry of show tasks. A room's show task is started on first use and loads the room's
//! durable state before it handles anything; messages sent meanwhile wait in its inbox.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::mpsc;

use super::messages::ShowMsg;
use super::store_client::StoreClient;
use super::task::ShowTask;
use crate::media::router::MediaRouter;

/// Frames waiting for a show task; beyond this a flooding driver drops (and counts) frames.
pub const ROOM_INBOX: usize = 8192;

/// The way to a running show task: its inbox.
#[derive(Clone)]
pub struct ShowHandle {
    pub tx: mpsc::Sender<ShowMsg>,
}

/// Every room's show task, by room name, started on first use.
pub struct ShowRegistry {
    shows: DashMap<String, ShowHandle>,
    store: StoreClient,
    driver: MediaRouter,
    runtime: tokio::runtime::Handle,
}

impl ShowRegistry {
    pub fn new(store: StoreClient, driver: MediaRouter, runtime: tokio::runtime::Handle) -> Arc<Self> {
        Arc::new(Self {
            shows: DashMap::new(),
            store,
            driver,
            runtime,
        })
    }

    /// The durable store every show task writes through.
    pub fn store(&self) -> &StoreClient {
        &self.store
    }

    /// Every show task started so far.
    pub fn all(&self) -> Vec<ShowHandle> {
        self.shows.iter().map(|entry| entry.value().clone()).collect()
    }

    /// The room's show task, started if needed. Never holds the map entry across an await.
    pub fn get(&self, room: &str) -> ShowHandle {
        if let Some(h) = self.shows.get(room) {
            return h.value().clone();
        }
        self.shows
            .entry(room.to_string())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(ROOM_INBOX);
                let task = ShowTask::new(room.to_string(), self.store.clone(), self.driver.clone(), tx.clone());
                self.runtime.spawn(task.run(rx));
                ShowHandle { tx }
            })
            .value()
            .clone()
    }
}
