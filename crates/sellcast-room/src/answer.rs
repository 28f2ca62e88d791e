//! Who a frame came from, and the typed answer the room gives it.
//!
//! A frame comes from a session (a participant's data channel) or from a one-shot call (the
//! HTTP API), and the room addresses its answer to that [`Caller`]. The room never learns what
//! carries an answer: the show task turns it into data-channel frames for a session, and the
//! HTTP handler into a response body for a call.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::buy_admission::BuyAnswer;
use crate::identity::ParticipantId;
use crate::protocol::{encode, DirectFrame, FrameError};

/// A one-shot caller (an HTTP request): never a participant, answered exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// Who sent a frame, and so who gets its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A joined participant: answered on its data channel, and only when there is something
    /// to say (a refusal, a buy's outcome).
    Session(ParticipantId),
    /// A call: every frame gets exactly one [`Answer`], `Accepted` included.
    Call(CallId),
}

/// The room's answer to one frame. Serializable so that a call from another node's viewer
/// (cluster mode) gets it back over NATS as the room gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// Taken; what it changed reaches everyone as room events. Host actions are accepted once
    /// the store committed them.
    Accepted,
    /// A call's `hello`: the frames that open a session (welcome, then a snapshot, then the
    /// latest likes and counters).
    Welcome(Vec<Arc<str>>),
    /// A buy's final answer, for its idempotency key.
    Buy { key: String, answer: BuyAnswer },
    /// A buy the server did not take (it is draining): nothing was reserved or remembered, so
    /// the same key may be sent again after reconnecting.
    BuyNotPlaced { key: String, sale_id: Option<i64>, error: FrameError },
    /// Refused; nothing happened.
    Refused(FrameError),
}

impl Answer {
    /// The answer in the data-channel protocol: the frames a client reads (none for
    /// `Accepted`, which the protocol does not acknowledge).
    pub fn to_frames(&self) -> Vec<Arc<str>> {
        match self {
            Answer::Accepted => Vec::new(),
            Answer::Welcome(frames) => frames.clone(),
            Answer::Buy { key, answer } => vec![encode(&buy_frame(key, answer))],
            Answer::BuyNotPlaced { key, sale_id, error } => vec![encode(&DirectFrame::BuyNotPlaced {
                idempotency_key: key.clone(),
                sale_id: *sale_id,
                code: error.code,
                message: error.message.clone(),
            })],
            Answer::Refused(error) => vec![error.to_frame().into()],
        }
    }
}

fn buy_frame(key: &str, answer: &BuyAnswer) -> DirectFrame {
    match answer {
        BuyAnswer::Confirmed { order_id, sale_id, product_id, variant_id, qty, price_minor, currency } => DirectFrame::OrderConfirmed {
            idempotency_key: key.to_string(),
            order_id: *order_id,
            sale_id: *sale_id,
            product_id: *product_id,
            variant_id: *variant_id,
            qty: *qty,
            price_minor: *price_minor,
            currency: currency.clone(),
        },
        BuyAnswer::Rejected { sale_id, product_id, reason } => DirectFrame::BuyRejected {
            idempotency_key: key.to_string(),
            sale_id: *sale_id,
            product_id: *product_id,
            reason: *reason,
        },
    }
}
