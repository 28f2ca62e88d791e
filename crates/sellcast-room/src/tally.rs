//! What a room has handled, counted for operators: data-channel frames by type, refusals by
//! error code, and the answers given to buy requests by outcome.
//!
//! Plain integers: the show's owner is the only writer. Its task copies them out on a tick;
//! nothing here is shared or locked.

use crate::buy_admission::BuyAnswer;
use crate::protocol::{ClientFrame, ErrorCode};

/// Names of the error codes, in the order of [`RoomTally::refused`] (as sent on the wire).
pub const ERROR_CODES: [&str; 12] = [
    "too_large",
    "malformed",
    "unknown_type",
    "invalid",
    "rate_limited",
    "forbidden",
    "muted",
    "blocked",
    "not_found",
    "unavailable",
    "unsupported_codec",
    "not_permitted",
];

/// Names of the buy outcomes, in the order of [`RoomTally::buys`]. `unavailable` is a buy the
/// store could not commit (the buyer is asked to retry).
pub const BUY_OUTCOMES: [&str; 9] = [
    "confirmed",
    "sold_out",
    "limit_reached",
    "sale_not_active",
    "invalid",
    "unknown_product",
    "variant_required",
    "unknown_variant",
    "unavailable",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomTally {
    /// Frames received on data channels that parsed, by type (order of [`ClientFrame::TYPES`]).
    pub frames: [u64; ClientFrame::TYPES.len()],
    /// Frames refused, from data channels and the HTTP frames API, by code.
    pub refused: [u64; ERROR_CODES.len()],
    /// Answers given to buy requests (one per request, retries included), by outcome.
    pub buys: [u64; BUY_OUTCOMES.len()],
}

impl RoomTally {
    pub(crate) fn frame(&mut self, frame: &ClientFrame) {
        let i = match frame {
            ClientFrame::Hello { .. } => 0,
            ClientFrame::Chat { .. } => 1,
            ClientFrame::Like { .. } => 2,
            ClientFrame::Buy { .. } => 3,
            ClientFrame::Pin { .. } => 4,
            ClientFrame::StartSale { .. } => 5,
            ClientFrame::EndSale { .. } => 6,
            ClientFrame::DeleteMessage { .. } => 7,
            ClientFrame::Mute { .. } => 8,
            ClientFrame::Ban { .. } => 9,
            ClientFrame::SetBlockedWords { .. } => 10,
            ClientFrame::Unban { .. } => 11,
            ClientFrame::Unmute { .. } => 12,
            ClientFrame::EndShow => 13,
            ClientFrame::SetShow { .. } => 14,
            ClientFrame::SetName { .. } => 15,
            ClientFrame::VideoCap { .. } => 16,
        };
        self.frames[i] += 1;
    }

    pub(crate) fn refused(&mut self, code: ErrorCode) {
        let i = match code {
            ErrorCode::TooLarge => 0,
            ErrorCode::Malformed => 1,
            ErrorCode::UnknownType => 2,
            ErrorCode::Invalid => 3,
            ErrorCode::RateLimited => 4,
            ErrorCode::Forbidden => 5,
            ErrorCode::Muted => 6,
            ErrorCode::Blocked => 7,
            ErrorCode::NotFound => 8,
            ErrorCode::Unavailable => 9,
            ErrorCode::UnsupportedCodec => 10,
            ErrorCode::NotPermitted => 11,
        };
        self.refused[i] += 1;
    }

    pub(crate) fn buy_answered(&mut self, answer: &BuyAnswer) {
        let outcome = match answer {
            BuyAnswer::Confirmed { .. } => "confirmed",
            BuyAnswer::Rejected { reason, .. } => reason.code(),
        };
        if let Some(i) = BUY_OUTCOMES.iter().position(|o| *o == outcome) {
            self.buys[i] += 1;
        }
    }

    pub(crate) fn buy_unavailable(&mut self) {
        self.buys[BUY_OUTCOMES.len() - 1] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::BuyRejection;

    #[test]
    fn each_frame_type_has_the_slot_of_its_wire_name() {
        let frames = [
            (r#"{"type":"hello"}"#, "hello"),
            (r#"{"type":"chat","text":"hi"}"#, "chat"),
            (r#"{"type":"like","count":1}"#, "like"),
            (r#"{"type":"buy","sale_id":1,"qty":1,"idempotency_key":"k"}"#, "buy"),
            (r#"{"type":"pin","product_ids":[]}"#, "pin"),
            (r#"{"type":"start_sale","product_id":1,"price_minor":1,"stock":1,"per_user_limit":1,"starts_at_ms":0,"ends_at_ms":1}"#, "start_sale"),
            (r#"{"type":"end_sale","sale_id":1}"#, "end_sale"),
            (r#"{"type":"delete_message","seq":1}"#, "delete_message"),
            (r#"{"type":"mute","identity":"a","seconds":1}"#, "mute"),
            (r#"{"type":"ban","identity":"a"}"#, "ban"),
            (r#"{"type":"set_blocked_words","words":[]}"#, "set_blocked_words"),
            (r#"{"type":"unban","identity":"a"}"#, "unban"),
            (r#"{"type":"unmute","identity":"a"}"#, "unmute"),
            (r#"{"type":"end_show"}"#, "end_show"),
            (r#"{"type":"video_cap","data_saver":false,"max_height":null}"#, "video_cap"),
        ];
        for (json, name) in frames {
            let mut tally = RoomTally::default();
            let frame = ClientFrame::parse(json.as_bytes()).map_err(|e| e.message).expect("test frames parse");
            tally.frame(&frame);
            let at = ClientFrame::TYPES.iter().position(|t| *t == name).expect("a known type");
            assert_eq!(tally.frames[at], 1, "{name}");
            assert_eq!(tally.frames.iter().sum::<u64>(), 1);
        }
    }

    #[test]
    fn each_buy_rejection_has_the_slot_of_its_wire_name() {
        for reason in BuyRejection::ALL {
            let mut tally = RoomTally::default();
            tally.buy_answered(&BuyAnswer::Rejected { sale_id: None, product_id: None, reason });
            let at = BUY_OUTCOMES.iter().position(|o| *o == reason.code()).expect("a known outcome");
            assert_eq!(tally.buys[at], 1, "{reason:?}");
            assert_eq!(tally.buys.iter().sum::<u64>(), 1);
        }
    }

    #[test]
    fn each_error_code_has_the_slot_of_its_wire_name() {
        let codes = [
            ErrorCode::TooLarge,
            ErrorCode::Malformed,
            ErrorCode::UnknownType,
            ErrorCode::Invalid,
            ErrorCode::RateLimited,
            ErrorCode::Forbidden,
            ErrorCode::Muted,
            ErrorCode::Blocked,
            ErrorCode::NotFound,
            ErrorCode::Unavailable,
            ErrorCode::UnsupportedCodec,
            ErrorCode::NotPermitted,
        ];
        for code in codes {
            let mut tally = RoomTally::default();
            tally.refused(code);
            let wire = serde_json::to_value(code).expect("codes serialize");
            let at = ERROR_CODES.iter().position(|c| wire == **c).expect("a known code");
            assert_eq!(tally.refused[at], 1, "{wire}");
        }
    }
}
