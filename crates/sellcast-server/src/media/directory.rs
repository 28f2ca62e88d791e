//! What the HTTP side may read about rooms without asking the driver: a snapshot per room,
//! written only by the driver whenever a host or viewer comes or goes.

use dashmap::DashMap;
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RoomStatus {
    pub room: String,
    pub live: bool,
    pub viewers: usize,
    /// The host's video codec while live ("VP8" or "H264").
    pub video_codec: Option<&'static str>,
}

#[derive(Debug, Default)]
pub struct Directory {
    rooms: DashMap<String, RoomStatus>,
}

impl Directory {
    pub fn status(&self, room: &str) -> RoomStatus {
        self.rooms
            .get(room)
            .map(|s| s.value().clone())
            .unwrap_or_else(|| RoomStatus {
                room: room.to_string(),
                ..RoomStatus::default()
            })
    }

    pub(crate) fn publish(&self, status: RoomStatus) {
        if !status.live && status.viewers == 0 {
            self.rooms.remove(&status.room);
        } else {
            self.rooms.insert(status.room.clone(), status);
        }
    }
}
