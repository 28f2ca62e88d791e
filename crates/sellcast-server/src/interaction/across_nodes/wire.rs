//! What a node that is not a room's owner asks the owner, and what comes back (JSON over
//! NATS request/reply on `subjects::calls`).
//!
//! The identity and its role travel with every frame: nodes verify tokens at their edge
//! (the same secret on every node), and the owner applies its per-identity limits to the
//! identity named here as it does to its own viewers.

use sellcast_room::{Answer, ClientFrame, Identity, Role};
use serde::{Deserialize, Serialize};

use crate::interaction::room_api::{RoomApiReply, RoomApiRequest};

/// A request to a room's owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RemoteRequest {
    /// One frame from a viewer (data channel or HTTP) on the asking node; answered with the
    /// room's [`Answer`] to it, as a call's.
    Call { identity: Identity, frame: ClientFrame },
    /// Whether `identity` coming with `role` is turned away.
    IsBanned { identity: String, role: Role },
    /// The asking node's likes of one tick, summed (no answer).
    Likes { count: u32 },
    /// One request to the room's HTTP API (reads, product changes) from a caller on the
    /// asking node; answered with the status and body the owner's API gives (`room_api`).
    Api { request: RoomApiRequest },
}

/// The owner's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RemoteReply {
    Answer { answer: Answer },
    Banned { banned: bool },
    Api { reply: RoomApiReply },
    /// The room could not answer (restarting, or gone from this node).
    Unavailable,
}

/// What a request or reply decodes from, size-limited by NATS's own payload limit.
pub fn decode<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(payload)
}

pub fn encode<T: Serialize>(value: &T) -> bytes::Bytes {
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_vec(value).unwrap_or_default().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sellcast_room::{BuyAnswer, ErrorCode, FrameError, Position};

    #[test]
    fn a_frame_and_its_identity_arrive_as_sent() {
        let identity = Identity { id: "ann".into(), name: "Ann".into(), role: Role::Viewer };
        for frame in [
            ClientFrame::Chat { text: "hi".into() },
            ClientFrame::Hello { resume: Some(Position { epoch: 3, seq: 9 }) },
            ClientFrame::Buy { sale_id: Some(1), product_id: None, variant_id: None, qty: 2, idempotency_key: "k".into() },
        ] {
            let sent = RemoteRequest::Call { identity: identity.clone(), frame };
            assert_eq!(decode::<RemoteRequest>(&encode(&sent)).expect("decodes"), sent);
        }
    }

    #[test]
    fn buy_answers_and_refusals_arrive_as_given() {
        let confirmed = BuyAnswer::Confirmed {
            order_id: 4,
            sale_id: Some(1),
            product_id: 2,
            variant_id: None,
            qty: 1,
            price_minor: 990,
            currency: "EUR".into(),
        };
        for answer in [
            Answer::Buy { key: "k".into(), answer: confirmed },
            Answer::Refused(FrameError::new(ErrorCode::RateLimited, "slow down")),
            Answer::Welcome(vec!["{\"type\":\"welcome\"}".into()]),
            Answer::Accepted,
        ] {
            let reply = RemoteReply::Answer { answer };
            assert_eq!(decode::<RemoteReply>(&encode(&reply)).expect("decodes"), reply);
        }
    }
}
