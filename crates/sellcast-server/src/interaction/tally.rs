//! Every room's [`RoomTally`] added up for `/metrics`. Each room task adds what its core
//! counted since its last report, on its tick; a restarted task starts from zero and only
//! adds, so the totals never go down.

use std::sync::atomic::{AtomicU64, Ordering};

use sellcast_room::{ClientFrame, RoomTally, BUY_OUTCOMES, ERROR_CODES};

#[derive(Debug)]
pub struct ServerTally {
    frames: [AtomicU64; ClientFrame::TYPES.len()],
    refused: [AtomicU64; ERROR_CODES.len()],
    buys: [AtomicU64; BUY_OUTCOMES.len()],
}

impl Default for ServerTally {
    fn default() -> Self {
        Self {
            frames: std::array::from_fn(|_| AtomicU64::new(0)),
            refused: std::array::from_fn(|_| AtomicU64::new(0)),
            buys: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl ServerTally {
    /// Add what `now` counted beyond `reported`, then remember `now` as reported.
    pub fn add_new(&self, now: &RoomTally, reported: &mut RoomTally) {
        add(&self.frames, &now.frames, &mut reported.frames);
        add(&self.refused, &now.refused, &mut reported.refused);
        add(&self.buys, &now.buys, &mut reported.buys);
    }

    /// `(frame type, count)` of data-channel frames.
    pub fn frames(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ClientFrame::TYPES.into_iter().zip(self.frames.iter().map(|c| c.load(Ordering::Relaxed)))
    }

    /// `(error code, count)` of refused frames.
    pub fn refused(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ERROR_CODES.into_iter().zip(self.refused.iter().map(|c| c.load(Ordering::Relaxed)))
    }

    /// `(outcome, count)` of answers to buy requests.
    pub fn buys(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        BUY_OUTCOMES.into_iter().zip(self.buys.iter().map(|c| c.load(Ordering::Relaxed)))
    }
}

fn add<const N: usize>(totals: &[AtomicU64; N], now: &[u64; N], reported: &mut [u64; N]) {
    for ((total, now), reported) in totals.iter().zip(now).zip(reported.iter_mut()) {
        if *now > *reported {
            total.fetch_add(*now - *reported, Ordering::Relaxed);
            *reported = *now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_is_new_is_added() {
        let tally = ServerTally::default();
        let mut reported = RoomTally::default();
        let mut room = RoomTally::default();
        room.frames[1] = 3;
        tally.add_new(&room, &mut reported);
        tally.add_new(&room, &mut reported);
        room.frames[1] = 5;
        room.buys[0] = 1;
        tally.add_new(&room, &mut reported);
        assert_eq!(tally.frames().find(|(t, _)| *t == "chat"), Some(("chat", 5)));
        assert_eq!(tally.buys().find(|(o, _)| *o == "confirmed"), Some(("confirmed", 1)));
    }
}
