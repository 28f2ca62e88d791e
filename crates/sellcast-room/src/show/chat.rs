//! Chat lines: admitted by the chat rules, sequenced in the event log, broadcast as chat.

use crate::identity::Identity;
use crate::protocol::{ChatLine, FrameError, RoomEvent};

use super::{Class, Output, Show};

impl Show {
    pub(super) fn chat(&mut self, now_ms: i64, who: &Identity, text: &str) -> Result<(), FrameError> {
        let text = self.chat.admit(now_ms, who, text, &mut self.limits)?;
        let event = RoomEvent::Chat { from: who.clone(), text: text.clone(), at_ms: now_ms };
        let (seq, frame) = self.log.append(&event, now_ms);
        self.chat.record(ChatLine { seq, from: who.clone(), text, at_ms: now_ms });
        self.outputs.push_back(Output::Broadcast { frame, class: Class::Chat, position: Some(self.log.position()) });
        Ok(())
    }
}
