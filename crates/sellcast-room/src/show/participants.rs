//! Who is in the room: sessions join and leave, banned identities are turned away, and the
//! viewer count that the counters report.

use crate::identity::{Identity, ParticipantId, Role};
use crate::rate_limit::TokenBucket;

use super::{Output, Show};

/// One session. Its rate limits are its identity's (see `identity_limits`): a session that
/// leaves and joins again finds them as it left them.
#[derive(Debug)]
pub(super) struct Participant {
    pub(super) identity: Identity,
    /// Error replies are paced per session, so a flood is not answered with a flood.
    pub(super) errors: TokenBucket,
    pub(super) muted_errors: u64,
    /// Said `hello` already: a further `hello` costs a snapshot token.
    pub(super) greeted: bool,
}

impl Show {
    /// A session joined (its data channel opened, or an HTTP caller).
    pub fn handle_join(&mut self, now_ms: i64, id: ParticipantId, identity: Identity) {
        if self.is_banned_as(&identity.id, identity.role, now_ms) {
            self.outputs.push_back(Output::Kick { participant: id });
            return;
        }
        self.saw(&identity);
        let identity = self.named(identity);
        self.announce_join(&identity);
        self.participants.insert(
            id,
            Participant { identity, errors: TokenBucket::new(5, 1.0, now_ms), muted_errors: 0, greeted: false },
        );
        self.counters_dirty = true;
    }

    pub fn handle_leave(&mut self, id: ParticipantId) {
        if self.participants.remove(&id).is_some() {
            self.counters_dirty = true;
        }
    }

    /// Remember the role of staff seen in the room (they are few; viewers are not kept).
    pub(super) fn saw(&mut self, who: &Identity) {
        if who.role.can_moderate() {
            let seen = self.staff_seen.entry(who.id.clone()).or_insert(who.role);
            *seen = (*seen).max(who.role);
        }
    }

    /// The highest role `identity` is known to have here: from its sessions and the staff seen.
    pub(super) fn role_of(&self, identity: &str) -> Role {
        let present = self.participants.values().filter(|p| p.identity.id == identity).map(|p| p.identity.role).max();
        let seen = self.staff_seen.get(identity).copied();
        present.into_iter().chain(seen).max().unwrap_or(Role::Viewer)
    }

    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// Banned, as a viewer would be (bans bind viewers whoever placed them).
    pub fn is_banned(&self, identity: &str, now_ms: i64) -> bool {
        self.is_banned_as(identity, Role::Viewer, now_ms)
    }

    /// Banned when coming with `role`: a ban binds only roles below the one that placed it.
    pub fn is_banned_as(&self, identity: &str, role: Role, now_ms: i64) -> bool {
        self.ban_of(identity, now_ms).is_some_and(|b| role < b.by)
    }

    /// The ban on `identity` in force at `now_ms`.
    pub fn ban_of(&self, identity: &str, now_ms: i64) -> Option<super::Ban> {
        self.banned.get(identity).copied().filter(|b| b.until_ms.is_none_or(|until| until > now_ms))
    }

    /// Bans in force, for staff (the host page lists them with an Unban control).
    pub fn bans(&self, now_ms: i64) -> Vec<(String, super::Ban)> {
        let mut bans: Vec<(String, super::Ban)> =
            self.banned.iter().filter(|(id, _)| self.ban_of(id, now_ms).is_some()).map(|(id, b)| (id.clone(), *b)).collect();
        bans.sort_by(|a, b| a.0.cmp(&b.0));
        bans
    }

    pub(super) fn viewer_count(&self) -> usize {
        self.participants.values().filter(|p| !p.identity.role.can_run_show()).count()
    }
}
