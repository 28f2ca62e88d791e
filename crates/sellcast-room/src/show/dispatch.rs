//! Every frame from a caller, admitted or refused: size, schema and rate first (sessions), then
//! role, then the frame's own rules. What a frame changes is decided here or in the concern it
//! belongs to (chat, orders, host actions persisted first).

use crate::answer::{Answer, CallId, Caller};
use crate::identity::{Identity, ParticipantId};
use crate::identity_limits::Limit;
use crate::catalog::SaleDraft;
use crate::money;
use crate::protocol::{ClientFrame, ErrorCode, FrameError, RoomEvent};

use super::{HostAction, Output, Show};

/// What became of a frame the room took.
pub(super) enum Taken {
    /// Done: a call is told so now.
    Done,
    /// Waits for the store, which answers the caller when it has committed.
    AwaitsStore,
}

impl Show {
    /// One raw frame from a participant's data channel.
    pub fn handle_frame(&mut self, now_ms: i64, from: ParticipantId, bytes: &[u8]) {
        let Some(who) = self.participants.get(&from).map(|p| p.identity.clone()) else {
            return;
        };
        if !self.limits.try_take(now_ms, &who, Limit::Frame) {
            let error = FrameError::new(ErrorCode::RateLimited, "too many frames");
            self.refuse(now_ms, Caller::Session(from), &who.id, error);
            return;
        }
        match ClientFrame::parse(bytes) {
            Ok(frame) => {
                self.tally.frame(&frame);
                self.dispatch(now_ms, Caller::Session(from), who, frame)
            }
            Err(e) => self.refuse(now_ms, Caller::Session(from), &who.id, e),
        }
    }

    /// A parsed frame from a participant.
    pub fn handle_client_frame(&mut self, now_ms: i64, from: ParticipantId, frame: ClientFrame) {
        let Some(who) = self.participants.get(&from).map(|p| p.identity.clone()) else {
            return;
        };
        self.dispatch(now_ms, Caller::Session(from), who, frame);
    }

    /// A one-shot call (the HTTP API) from `identity`, which is not a participant. It gets
    /// exactly one [`Output::Answer`]: now, or once the store has answered (a buy, a host action).
    /// It draws on the same buckets as the identity's sessions.
    pub fn handle_call(&mut self, now_ms: i64, call: CallId, identity: Identity, frame: ClientFrame) {
        let caller = Caller::Call(call);
        self.tally.frame(&frame);
        if self.is_banned_as(&identity.id, identity.role, now_ms) {
            self.answer(caller, Answer::Refused(FrameError::new(ErrorCode::Forbidden, "banned from this room")));
            return;
        }
        if !self.limits.try_take(now_ms, &identity, Limit::Frame) {
            self.refuse(now_ms, caller, &identity.id, FrameError::new(ErrorCode::RateLimited, "too many frames"));
            return;
        }
        self.saw(&identity);
        let identity = self.named(identity);
        self.dispatch(now_ms, caller, identity, frame);
    }

    pub(super) fn dispatch(&mut self, now_ms: i64, from: Caller, who: Identity, frame: ClientFrame) {
        let result = match frame {
            ClientFrame::Hello { resume } => {
                if self.can_resume(resume) || self.snapshot_allowed(now_ms, from, &who) {
                    self.hello(now_ms, from, &who, resume);
                    return;
                }
                Err(FrameError::new(ErrorCode::RateLimited, "too many snapshots: keep the stream you have, or wait"))
            }
            ClientFrame::Chat { text } => self.chat(now_ms, &who, &text).map(|()| Taken::Done),
            ClientFrame::Like { count } => {
                self.likes.handle_likes(&who.id, count);
                Ok(Taken::Done)
            }
            ClientFrame::Buy { sale_id, product_id, variant_id, qty, idempotency_key } => {
                let item = crate::buy_admission::BuyItem { sale_id, product_id, variant_id, qty };
                self.buy(now_ms, from, &who, item, &idempotency_key);
                return;
            }
            ClientFrame::Pin { product_ids } => self.host_only(&who, "pin products").and_then(|()| {
                if product_ids.len() > self.config.max_pins {
                    return Err(FrameError::new(ErrorCode::Invalid, format!("at most {} products can be highlighted", self.config.max_pins)));
                }
                if let Some(missing) = product_ids.iter().find(|id| !self.products.iter().any(|p| p.id == **id)) {
                    return Err(FrameError::new(ErrorCode::NotFound, format!("no product {missing}")));
                }
                Ok(self.persist(from, &who, HostAction::Pin(product_ids)))
            }),
            ClientFrame::StartSale { product_id, price_minor, stock, per_user_limit, starts_at_ms, ends_at_ms } => {
                self.host_only(&who, "start a sale").and_then(|()| {
                    if !self.products.iter().any(|p| p.id == product_id) {
                        return Err(FrameError::new(ErrorCode::NotFound, format!("no product {product_id}")));
                    }
                    if stock == 0 || per_user_limit == 0 || ends_at_ms <= starts_at_ms || price_minor < 0 || ends_at_ms <= now_ms {
                        return Err(FrameError::new(ErrorCode::Invalid, "a sale needs stock >= 1, a limit >= 1, a price >= 0 and an end in the future after its start"));
                    }
                    let open = self.sales.iter().filter(|s| !s.is_over(now_ms)).count();
                    if open >= self.config.max_open_sales {
                        let max = self.config.max_open_sales;
                        return Err(FrameError::new(ErrorCode::Invalid, format!("at most {max} sales can be open at once: end one first")));
                    }
                    money::check_price(price_minor)?;
                    money::check_stock(stock)?;
                    money::check_stock(per_user_limit)?;
                    let draft = SaleDraft { product_id, price_minor, currency: None, stock, per_user_limit, starts_at_ms, ends_at_ms };
                    Ok(self.persist(from, &who, HostAction::StartSale(draft)))
                })
            }
            ClientFrame::EndSale { sale_id } => self.host_only(&who, "end a sale").and_then(|()| {
                match self.sales.iter().find(|s| s.id == sale_id) {
                    Some(s) if s.ended_at_ms.is_none() => {
                        Ok(self.persist(from, &who, HostAction::EndSale(sale_id)))
                    }
                    Some(_) => Err(FrameError::new(ErrorCode::Invalid, "sale already ended")),
                    None => Err(FrameError::new(ErrorCode::NotFound, format!("no sale {sale_id}"))),
                }
            }),
            ClientFrame::DeleteMessage { seq } => self.moderator_only(&who, "delete messages").and_then(|()| {
                let author = self.chat.line(seq).map(|l| l.from.clone());
                if let Some(author) = author.filter(|a| a.id != who.id) {
                    // The role the message was sent with, or a higher one known now.
                    let role = author.role.max(self.role_of(&author.id));
                    if role >= who.role {
                        return Err(FrameError::new(ErrorCode::NotPermitted, "cannot delete the messages of someone at or above your role"));
                    }
                }
                if self.chat.delete(seq) {
                    self.broadcast_event(now_ms, RoomEvent::ChatDeleted { target_seq: seq, by: who.clone() });
                    Ok(Taken::Done)
                } else {
                    Err(FrameError::new(ErrorCode::NotFound, format!("no recent message {seq}")))
                }
            }),
            ClientFrame::Mute { identity, seconds } => self.moderator_only(&who, "mute").and_then(|()| {
                self.may_act_on(&who, &identity, "mute")?;
                self.may_lift(&who, self.chat.mute_of(&identity, now_ms).map(|m| m.by), "mute")?;
                let until_ms = now_ms + i64::from(seconds.min(7 * 24 * 3600)) * 1000;
                self.chat.mute(now_ms, &identity, until_ms, who.role);
                self.broadcast_event(now_ms, RoomEvent::UserMuted { identity, until_ms });
                Ok(Taken::Done)
            }),
            ClientFrame::Unmute { identity } => self.moderator_only(&who, "unmute").and_then(|()| {
                let Some(mute) = self.chat.mute_of(&identity, now_ms) else {
                    return Err(FrameError::new(ErrorCode::NotFound, format!("{identity} is not muted")));
                };
                self.may_lift(&who, Some(mute.by), "mute")?;
                self.chat.unmute(&identity);
                self.broadcast_event(now_ms, RoomEvent::UserUnmuted { identity });
                Ok(Taken::Done)
            }),
            ClientFrame::EndShow => self.end_show(from, &who),
            ClientFrame::SetShow { title, starts_at_ms, avatar_url } => self.set_show(now_ms, from, &who, (title, starts_at_ms, avatar_url)),
            ClientFrame::SetName { name } => self.set_name(from, &who, &name),
            ClientFrame::VideoCap { data_saver, max_height } => self.video_cap(from, &who, data_saver, max_height),
            ClientFrame::Ban { identity } => self.moderator_only(&who, "ban").and_then(|()| {
                self.may_act_on(&who, &identity, "ban")?;
                self.may_lift(&who, self.ban_of(&identity, now_ms).map(|b| b.by), "ban")?;
                Ok(self.persist(from, &who, HostAction::Ban { identity, by: who.role }))
            }),
            ClientFrame::Unban { identity } => self.moderator_only(&who, "unban").and_then(|()| {
                let Some(ban) = self.ban_of(&identity, now_ms) else {
                    return Err(FrameError::new(ErrorCode::NotFound, format!("{identity} is not banned")));
                };
                self.may_lift(&who, Some(ban.by), "ban")?;
                Ok(self.persist(from, &who, HostAction::Unban(identity)))
            }),
            ClientFrame::SetBlockedWords { words } => self.moderator_only(&who, "set blocked words").and_then(|()| {
                if words.len() > 500 || words.iter().any(|w| w.chars().count() > 64) {
                    return Err(FrameError::new(ErrorCode::Invalid, "at most 500 words of at most 64 characters"));
                }
                // Measured as staff snapshots carry it (lowercasing can lengthen a word).
                let bytes = super::snapshots::encoded_len(&crate::chat::normalize_words(words.clone()));
                if bytes > self.config.max_blocked_words_bytes {
                    let max = self.config.max_blocked_words_bytes;
                    return Err(FrameError::new(ErrorCode::Invalid, format!("the blocked words take {bytes} bytes; at most {max}")));
                }
                Ok(self.persist(from, &who, HostAction::SetBlockedWords(words)))
            }),
        };
        match result {
            Ok(Taken::Done) => self.accepted(from),
            Ok(Taken::AwaitsStore) => {}
            Err(e) => self.refuse(now_ms, from, &who.id, e),
        }
    }

    pub(super) fn host_only(&self, who: &Identity, what: &str) -> Result<(), FrameError> {
        if who.role.can_run_show() {
            Ok(())
        } else {
            Err(FrameError::new(ErrorCode::Forbidden, format!("only the host may {what}")))
        }
    }

    pub(super) fn moderator_only(&self, who: &Identity, what: &str) -> Result<(), FrameError> {
        if who.role.can_moderate() {
            Ok(())
        } else {
            Err(FrameError::new(ErrorCode::Forbidden, format!("only the host or a moderator may {what}")))
        }
    }

    /// Nobody acts on themselves or on someone at or above their own role.
    fn may_act_on(&self, who: &Identity, target: &str, what: &str) -> Result<(), FrameError> {
        if target == who.id {
            return Err(FrameError::new(ErrorCode::NotPermitted, format!("you cannot {what} yourself")));
        }
        if self.role_of(target) >= who.role {
            return Err(FrameError::new(ErrorCode::NotPermitted, format!("cannot {what} someone at or above your role")));
        }
        Ok(())
    }

    /// A ban or mute placed by a higher role is not undone (or replaced) by a lower one.
    fn may_lift(&self, who: &Identity, placed_by: Option<crate::identity::Role>, what: &str) -> Result<(), FrameError> {
        match placed_by {
            Some(by) if by > who.role => {
                Err(FrameError::new(ErrorCode::NotPermitted, format!("this {what} was placed by a higher role")))
            }
            _ => Ok(()),
        }
    }

    /// The missed events since `resume` can be replayed within the budget (no snapshot needed).
    fn can_resume(&self, resume: Option<crate::protocol::Position>) -> bool {
        let budget = self.config.replay_bytes;
        resume
            .and_then(|r| self.log.replay_after(r))
            .is_some_and(|frames| frames.iter().map(|f| f.len()).sum::<usize>() <= budget)
    }

    /// A `hello` that cannot resume builds a snapshot. A session's first one is always served
    /// (it opens the stream); a call's, or a session's next ones, draw on the identity's
    /// snapshot bucket.
    fn snapshot_allowed(&mut self, now_ms: i64, from: Caller, who: &Identity) -> bool {
        let first = match from {
            Caller::Session(id) => self.participants.get_mut(&id).is_some_and(|p| !std::mem::replace(&mut p.greeted, true)),
            Caller::Call(_) => false,
        };
        let token = self.limits.try_take(now_ms, who, Limit::Snapshot);
        first || token
    }

    pub(super) fn persist(&mut self, from: Caller, by: &Identity, action: HostAction) -> Taken {
        self.outputs.push_back(Output::Persist { from, by: by.clone(), action });
        Taken::AwaitsStore
    }

    /// Refuse a frame. A session's error replies are rate-limited, so a flood is not answered
    /// with a flood; a call always gets its one answer.
    pub(super) fn refuse(&mut self, now_ms: i64, from: Caller, identity: &str, error: FrameError) {
        self.tally.refused(error.code);
        let message = match from {
            Caller::Session(id) => {
                let Some(p) = self.participants.get_mut(&id) else {
                    return;
                };
                if !p.errors.try_take(now_ms) {
                    p.muted_errors += 1;
                    return;
                }
                let muted = std::mem::take(&mut p.muted_errors);
                if muted > 0 {
                    format!("{} ({muted} similar errors not reported)", error.message)
                } else {
                    error.message.clone()
                }
            }
            Caller::Call(_) => error.message.clone(),
        };
        self.answer(from, Answer::Refused(FrameError::new(error.code, message)));
        let identity = identity.to_string();
        self.outputs.push_back(Output::Refused { from, identity, code: error.code, message: error.message });
    }
}
