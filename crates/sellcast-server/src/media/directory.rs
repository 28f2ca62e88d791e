//! What the HTTP side may read about rooms without asking the driver: a snapshot per room,
//! written only by the driver whenever a host or viewer comes or goes.

use std::sync::Mutex;

use dashmap::DashMap;
use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RoomStatus {
    pub room: String,
    pub live: bool,
    pub viewers: usize,
    /// The host's video codec while live ("VP8" or "H264").
    pub video_codec: Option<&'static str>,
}

/// The media thread's counters, copied out twice a second (never per packet).
#[derive(Debug, Clone, Default)]
pub struct MediaStats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    /// Datagrams the socket could not take (its send buffer was full).
    pub datagrams_dropped: u64,
    /// `sendmmsg`/`sendto` calls: datagrams_out / send_syscalls is the batching achieved.
    pub send_syscalls: u64,
    pub peers: usize,
    /// Microseconds from a live packet's arrival to its copies leaving, since start.
    pub forward_latency_us: Option<Histogram<u64>>,
}

#[derive(Debug, Default)]
pub struct Directory {
    rooms: DashMap<String, RoomStatus>,
    media: Mutex<MediaStats>,
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

    pub fn media_stats(&self) -> MediaStats {
        match self.media.lock() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn publish_media(&self, stats: MediaStats) {
        match self.media.lock() {
            Ok(mut m) => *m = stats,
            Err(poisoned) => *poisoned.into_inner() = stats,
        }
    }

    pub(crate) fn publish(&self, status: RoomStatus) {
        if !status.live && status.viewers == 0 {
            self.rooms.remove(&status.room);
        } else {
            self.rooms.insert(status.room.clone(), status);
        }
    }
}
