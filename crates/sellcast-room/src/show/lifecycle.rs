//! The show around the selling: its title, scheduled start and avatar, the names people go
//! by, End (which closes every open sale), the coalesced "joined" / "just bought" frames, and
//! the likes total handed to the store every few seconds.
//!
//! Title, names and End are durable host-style actions: checked here, persisted by the task,
//! applied (`apply_*`) once the store committed them.

use crate::answer::Caller;
use crate::catalog::Sale;
use crate::identity::Identity;
use crate::protocol::{DirectFrame, ErrorCode, FrameError, RoomEvent};
use crate::show_info::{checked_name, checked_show, NameError, ShowInfo};

use super::dispatch::Taken;
use super::{Class, HostAction, Output, Show};

/// The likes total goes to the store at most this often while likes come in (one small write
/// per room, not one per tick); a crash loses at most this much of it.
pub const LIKES_SAVE_EVERY_MS: i64 = 2000;

impl Show {
    /// The show as viewers see it (also the public `GET /api/rooms/{room}/show`).
    pub fn show_info(&self) -> &ShowInfo {
        &self.info
    }

    /// The name `identity` goes by here, if it chose one.
    pub fn display_name(&self, identity: &str) -> Option<&str> {
        self.names.get(identity).map(String::as_str)
    }

    /// `who` with the display name it chose in this room, if any, in place of the token's.
    pub(super) fn named(&self, mut who: Identity) -> Identity {
        if let Some(name) = self.names.get(&who.id) {
            who.name = name.clone();
        }
        who
    }

    pub(super) fn set_show(&mut self, now_ms: i64, from: Caller, who: &Identity, draft: (String, Option<i64>, String)) -> Result<Taken, FrameError> {
        self.host_only(who, "set up the show")?;
        let (title, starts_at_ms, avatar_url) = draft;
        let mut info = checked_show(&title, starts_at_ms, &avatar_url, now_ms).map_err(|e| FrameError::new(ErrorCode::Invalid, e.to_string()))?;
        info.host_name = who.name.clone();
        Ok(self.persist(from, who, HostAction::SetShow(info)))
    }

    pub(super) fn set_name(&mut self, from: Caller, who: &Identity, name: &str) -> Result<Taken, FrameError> {
        let name = checked_name(name, &self.chat.blocked_words()).map_err(|e| {
            let code = if e == NameError::Blocked { ErrorCode::Blocked } else { ErrorCode::Invalid };
            FrameError::new(code, e.to_string())
        })?;
        if self.names.get(&who.id) == Some(&name) {
            return Ok(Taken::Done);
        }
        let host = who.role.can_run_show();
        Ok(self.persist(from, who, HostAction::SetName { identity: who.id.clone(), name, host }))
    }

    pub(super) fn end_show(&mut self, from: Caller, who: &Identity) -> Result<Taken, FrameError> {
        self.host_only(who, "end the show")?;
        Ok(self.persist(from, who, HostAction::EndShow))
    }

    /// A committed title, start and avatar: everyone sees them at once.
    pub fn apply_show(&mut self, now_ms: i64, info: ShowInfo) {
        self.info = info;
        let show = self.info.clone();
        self.broadcast_event(now_ms, RoomEvent::ShowUpdated { show });
    }

    /// A committed display name. Lines already sent keep the old one; the identity's sessions
    /// are told, and all it sends from now on (chat, orders) carries the new one.
    pub fn apply_name(&mut self, now_ms: i64, identity: String, name: String, host: bool) {
        let mut told = Vec::new();
        for (id, p) in self.participants.iter_mut().filter(|(_, p)| p.identity.id == identity) {
            p.identity.name = name.clone();
            told.push((*id, p.identity.clone()));
        }
        for (to, you) in told {
            self.send(to, &DirectFrame::NameSet { you }, Class::Control);
        }
        self.names.insert(identity, name.clone());
        if host {
            self.info.host_name = name;
            let show = self.info.clone();
            self.broadcast_event(now_ms, RoomEvent::ShowUpdated { show });
        }
    }

    /// A committed End: the sales it closed are ended here too, so no buy is admitted after
    /// it, and everyone is told the show is over.
    pub fn apply_show_ended(&mut self, now_ms: i64, ended_at_ms: i64, closed: Vec<Sale>) {
        for sale in closed {
            self.apply_sale(now_ms, sale);
        }
        self.info.ended_at_ms = Some(ended_at_ms);
        self.broadcast_event(now_ms, RoomEvent::ShowEnded);
    }

    /// On each tick: the coalesced activity frame when one is due, and the likes total when it
    /// changed and was last saved [`LIKES_SAVE_EVERY_MS`] ago.
    pub(super) fn lifecycle_tick(&mut self, now_ms: i64) {
        if let Some((joined, bought)) = self.activity.poll_announcement(now_ms) {
            self.broadcast(&DirectFrame::Activity { joined, bought }, Class::Latest);
        }
        let (saved, at) = self.likes_saved;
        if self.likes.total() > saved && now_ms - at >= LIKES_SAVE_EVERY_MS {
            self.save_likes(now_ms);
        }
    }

    /// Hand the likes total to the store now if it changed (a drain does, before it exits).
    pub(super) fn save_likes(&mut self, now_ms: i64) {
        let total = self.likes.total();
        if total > self.likes_saved.0 {
            self.likes_saved = (total, now_ms);
            self.outputs.push_back(Output::PersistLikes { total });
        }
    }

    /// A viewer's session joined: announced (coalesced) as having joined.
    pub(super) fn announce_join(&mut self, who: &Identity) {
        if !who.role.can_moderate() {
            self.activity.handle_join(who);
        }
    }

    /// An order committed: announced (coalesced) as bought.
    pub(super) fn announce_order(&mut self, buyer: &Identity, product_id: i64, title: &str) {
        self.activity.handle_order(buyer, product_id, title);
    }
}
