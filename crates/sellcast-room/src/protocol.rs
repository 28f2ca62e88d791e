//! The data-channel protocol: JSON frames tagged by `type`. README "Event protocol" documents
//! every frame; this file is the source of truth for their shapes.
//!
//! Client frames are parsed in two steps so a client learns precisely what was wrong: first
//! the size and the `type` tag (unknown type -> `unknown_type`), then the typed body
//! (wrong fields -> `malformed`, with serde's reason).

use serde::{Deserialize, Serialize};

use crate::catalog::{Product, Sale};
use crate::identity::{Identity, ParticipantId};

/// Largest frame accepted from a client, in bytes.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// Longest chat message, in Unicode code points.
pub const MAX_CHAT_CHARS: usize = 500;
/// Longest idempotency key.
pub const MAX_KEY_CHARS: usize = 64;

/// Where a client stands in the room's event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub epoch: u64,
    pub seq: u64,
}

/// Everything a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// First frame on a channel; `resume` is the last event the client saw.
    Hello {
        #[serde(default)]
        resume: Option<Position>,
    },
    Chat {
        text: String,
    },
    /// Likes batched by the client since its last `like` frame.
    Like {
        count: u32,
    },
    /// A buy of a flash sale (`sale_id`), or of a product at its list price (`product_id`
    /// without `sale_id`). `variant_id` names the variant when the product has any.
    Buy {
        #[serde(default)]
        sale_id: Option<i64>,
        #[serde(default)]
        product_id: Option<i64>,
        #[serde(default)]
        variant_id: Option<i64>,
        qty: u32,
        idempotency_key: String,
    },
    // Host and moderator actions.
    Pin {
        product_ids: Vec<i64>,
    },
    StartSale {
        product_id: i64,
        price_minor: i64,
        stock: u32,
        per_user_limit: u32,
        starts_at_ms: i64,
        ends_at_ms: i64,
    },
    EndSale {
        sale_id: i64,
    },
    DeleteMessage {
        seq: u64,
    },
    Mute {
        identity: String,
        seconds: u32,
    },
    Ban {
        identity: String,
    },
    /// Lift a ban (persisted like the ban).
    Unban {
        identity: String,
    },
    /// Lift a mute before its end.
    Unmute {
        identity: String,
    },
    SetBlockedWords {
        words: Vec<String>,
    },
    /// The host ends the show: viewers are told it is over (not that the host is away), and
    /// every sale still open is ended.
    EndShow,
    /// The host sets the show's title, scheduled start and avatar (`show_info` checks them).
    SetShow {
        #[serde(default)]
        title: String,
        #[serde(default)]
        starts_at_ms: Option<i64>,
        #[serde(default)]
        avatar_url: String,
    },
    /// Anyone sets the name others see them by in this room.
    SetName {
        name: String,
    },
    /// A viewer caps the video layer it is sent: `data_saver` asks for the lowest layer;
    /// `max_height` is the player's displayed height in device pixels (the highest layer not
    /// taller than it is enough), `null` for no size cap. Only for viewers (see `video_cap`).
    VideoCap {
        data_saver: bool,
        #[serde(default)]
        max_height: Option<u32>,
    },
}

impl ClientFrame {
    pub const TYPES: [&'static str; 17] = [
        "hello",
        "chat",
        "like",
        "buy",
        "pin",
        "start_sale",
        "end_sale",
        "delete_message",
        "mute",
        "ban",
        "set_blocked_words",
        "unban",
        "unmute",
        "end_show",
        "set_show",
        "set_name",
        "video_cap",
    ];

    /// Parse one frame, size-limited, with a typed error for each way it can be wrong.
    pub fn parse(bytes: &[u8]) -> Result<ClientFrame, FrameError> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(FrameError::new(ErrorCode::TooLarge, format!("frame of {} bytes exceeds {MAX_FRAME_BYTES}", bytes.len())));
        }
        #[derive(Deserialize)]
        struct Tag {
            #[serde(rename = "type")]
            kind: String,
        }
        let tag: Tag = serde_json::from_slice(bytes)
            .map_err(|e| FrameError::new(ErrorCode::Malformed, format!("not a JSON object with a string `type`: {e}")))?;
        if !Self::TYPES.contains(&tag.kind.as_str()) {
            return Err(FrameError::new(ErrorCode::UnknownType, format!("unknown frame type `{}`", truncate(&tag.kind, 40))));
        }
        serde_json::from_slice(bytes).map_err(|e| FrameError::new(ErrorCode::Malformed, e.to_string()))
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Error codes a client can program against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    TooLarge,
    Malformed,
    UnknownType,
    Invalid,
    RateLimited,
    Forbidden,
    Muted,
    Blocked,
    NotFound,
    Unavailable,
    /// The viewer cannot decode the show's video codec: it gets audio and the data channel only.
    UnsupportedCodec,
    /// The caller may moderate, but not this target: its role is at or above the caller's
    /// (or the ban or mute was placed by a higher role).
    NotPermitted,
}

/// A refused frame: what is sent back as `{"type":"error",...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
}

impl FrameError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The `{"type":"error",...}` frame as sent on a data channel.
    pub fn to_frame(&self) -> String {
        let frame = DirectFrame::Error { code: self.code, message: self.message.clone() };
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string(&frame).unwrap_or_else(|_| String::from("{\"type\":\"error\"}"))
    }
}

/// A direct frame as sent on a data channel.
pub(crate) fn encode(frame: &DirectFrame) -> std::sync::Arc<str> {
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_string(frame).unwrap_or_else(|_| String::from("{\"type\":\"error\"}")).into()
}

/// Typed reasons a buy is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuyRejection {
    SoldOut,
    LimitReached,
    SaleNotActive,
    Invalid,
    /// No such product in this room (a list-price buy).
    UnknownProduct,
    /// The product has variants and the buy named none.
    VariantRequired,
    /// The buy named a variant the product does not have.
    UnknownVariant,
}

impl BuyRejection {
    /// Every reason, in the order of the tally's buy outcomes after `confirmed`.
    pub const ALL: [BuyRejection; 7] = [
        BuyRejection::SoldOut,
        BuyRejection::LimitReached,
        BuyRejection::SaleNotActive,
        BuyRejection::Invalid,
        BuyRejection::UnknownProduct,
        BuyRejection::VariantRequired,
        BuyRejection::UnknownVariant,
    ];

    /// The reason's wire name (`sold_out`, ...).
    pub fn code(self) -> &'static str {
        match self {
            BuyRejection::SoldOut => "sold_out",
            BuyRejection::LimitReached => "limit_reached",
            BuyRejection::SaleNotActive => "sale_not_active",
            BuyRejection::Invalid => "invalid",
            BuyRejection::UnknownProduct => "unknown_product",
            BuyRejection::VariantRequired => "variant_required",
            BuyRejection::UnknownVariant => "unknown_variant",
        }
    }
}

/// A chat message as everyone sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatLine {
    pub seq: u64,
    pub from: Identity,
    pub text: String,
    pub at_ms: i64,
}

/// An order as the host's live feed shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderLine {
    pub order_id: i64,
    /// `None`: bought at the product's list price.
    pub sale_id: Option<i64>,
    pub product_id: i64,
    /// The product's title when the feed line was made (empty if the product is gone).
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<i64>,
    /// The variant's label ("M", "Red"); empty without a variant.
    pub variant: String,
    pub buyer: Identity,
    pub qty: u32,
    pub price_minor: i64,
    pub currency: String,
    pub at_ms: i64,
}

/// Room events every participant receives in order, each with `(epoch, seq)`. Reliable:
/// never dropped for a congested viewer, replayed on resume.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoomEvent {
    Chat { from: Identity, text: String, at_ms: i64 },
    ChatDeleted { target_seq: u64, by: Identity },
    Pinned { products: Vec<Product> },
    ProductUpdated { product: Product },
    SaleStarted { sale: Sale },
    SaleEnded { sale_id: i64, sold: u32 },
    SoldOut { sale_id: i64 },
    UserMuted { identity: String, until_ms: i64 },
    UserBanned { identity: String },
    UserUnbanned { identity: String },
    UserUnmuted { identity: String },
    /// The host ended the show (as opposed to dropping out for a while).
    ShowEnded,
    /// The show's title, start, avatar or host name changed.
    ShowUpdated { show: crate::show_info::ShowInfo },
}

/// A [`RoomEvent`] with its place in the stream and the server's clock.
#[derive(Debug, Clone, Serialize)]
pub struct Sequenced<'a> {
    pub epoch: u64,
    pub seq: u64,
    pub server_now_ms: i64,
    #[serde(flatten)]
    pub event: &'a RoomEvent,
}

/// The full state a client needs when it cannot resume from the replay buffer.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub epoch: u64,
    pub seq: u64,
    pub server_now_ms: i64,
    /// The highlighted products, then the catalog in id order as far as the snapshot's byte
    /// budget goes (see `more_products`).
    pub products: Vec<Product>,
    /// True when the catalog did not fit: the rest is read from the HTTP products list
    /// (`GET /api/rooms/{room}/products`). A snapshot must fit the channel's send buffer, or
    /// the viewer it is for is disconnected instead of served.
    pub more_products: bool,
    pub pinned: Vec<i64>,
    pub sales: Vec<Sale>,
    /// The newest chat lines that fit the snapshot's chat budget, oldest first.
    pub chat: Vec<ChatLine>,
    pub likes_total: u64,
    pub viewers: usize,
    /// Title, scheduled start, host name and avatar.
    pub show: crate::show_info::ShowInfo,
    /// Only for hosts and moderators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<Vec<OrderLine>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_words: Option<Vec<String>>,
    /// Only for hosts and moderators: what every committed order of the room adds up to (the
    /// sales per product are in the orders API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totals: Option<crate::totals::OrderTotals>,
}

/// Frames sent to one participant or as latest-state counters.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DirectFrame {
    Welcome {
        you: Identity,
        /// The session's id in the room; absent for a one-shot call (HTTP), which is none.
        #[serde(skip_serializing_if = "Option::is_none")]
        participant: Option<ParticipantId>,
        epoch: u64,
        seq: u64,
        server_now_ms: i64,
        /// True when the events after `resume` follow; false when a snapshot follows.
        resumed: bool,
    },
    Snapshot(Snapshot),
    Error {
        code: ErrorCode,
        message: String,
    },
    OrderConfirmed {
        idempotency_key: String,
        order_id: i64,
        /// `None` (`null`): bought at the product's list price.
        sale_id: Option<i64>,
        product_id: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        variant_id: Option<i64>,
        qty: u32,
        price_minor: i64,
        currency: String,
    },
    BuyRejected {
        idempotency_key: String,
        sale_id: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        product_id: Option<i64>,
        reason: BuyRejection,
    },
    /// A buy the server did not take (it is draining). Not an answer for the key: nothing was
    /// reserved or remembered, and the same key may be sent again after reconnecting.
    BuyNotPlaced {
        idempotency_key: String,
        sale_id: Option<i64>,
        code: ErrorCode,
        message: String,
    },
    /// The server is going away (a restart or a deploy): reconnect after this long, plus up to
    /// as long again at random so a full room does not come back in one instant. The server
    /// closes the session itself once the buys it took are answered.
    Draining {
        reconnect_after_ms: u64,
    },
    /// Host feed: one order just committed.
    Order {
        order: OrderLine,
        /// Units the order's sale has sold (0 for a list-price order).
        sale_sold: u32,
        /// Revenue of this order's sale so far (0 for a list-price order).
        revenue_minor: i64,
        /// The room's totals with this order in.
        totals: crate::totals::OrderTotals,
        /// The product's orders and units with this order in.
        product_sales: crate::totals::ProductSales,
        /// The product's stock left after this order.
        product_stock: u32,
    },
    /// Latest like state, sent on a fixed tick.
    Likes {
        total: u64,
        delta: u64,
    },
    /// To the sessions of one identity: its display name is now `you.name`.
    NameSet {
        you: Identity,
    },
    /// Who joined and who bought since the last one, at most one per
    /// [`ACTIVITY_INTERVAL_MS`](crate::activity::ACTIVITY_INTERVAL_MS) (see `activity`).
    Activity {
        #[serde(skip_serializing_if = "Option::is_none")]
        joined: Option<crate::activity::Joined>,
        #[serde(skip_serializing_if = "Option::is_none")]
        bought: Option<crate::activity::Bought>,
    },
    /// Latest counters, sent on a fixed tick when they changed.
    Counters {
        viewers: usize,
        sales: Vec<SaleCounter>,
    },
}

/// Stock and sold count of one sale, as latest state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaleCounter {
    pub sale_id: i64,
    pub stock_left: u32,
    pub sold: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_frame_type_parses_to_its_variant_and_fields() {
        let frames = [
            (r#"{"type":"hello"}"#, ClientFrame::Hello { resume: None }),
            (
                r#"{"type":"hello","resume":{"epoch":3,"seq":9}}"#,
                ClientFrame::Hello { resume: Some(Position { epoch: 3, seq: 9 }) },
            ),
            (r#"{"type":"chat","text":"hi"}"#, ClientFrame::Chat { text: "hi".into() }),
            (r#"{"type":"like","count":3}"#, ClientFrame::Like { count: 3 }),
            (
                r#"{"type":"buy","sale_id":1,"qty":2,"idempotency_key":"k1"}"#,
                ClientFrame::Buy { sale_id: Some(1), product_id: None, variant_id: None, qty: 2, idempotency_key: "k1".into() },
            ),
            (r#"{"type":"pin","product_ids":[1,2]}"#, ClientFrame::Pin { product_ids: vec![1, 2] }),
            (
                r#"{"type":"start_sale","product_id":1,"price_minor":990,"stock":10,"per_user_limit":2,"starts_at_ms":5,"ends_at_ms":60000}"#,
                ClientFrame::StartSale {
                    product_id: 1,
                    price_minor: 990,
                    stock: 10,
                    per_user_limit: 2,
                    starts_at_ms: 5,
                    ends_at_ms: 60_000,
                },
            ),
            (r#"{"type":"end_sale","sale_id":1}"#, ClientFrame::EndSale { sale_id: 1 }),
            (r#"{"type":"delete_message","seq":4}"#, ClientFrame::DeleteMessage { seq: 4 }),
            (
                r#"{"type":"mute","identity":"bob","seconds":60}"#,
                ClientFrame::Mute { identity: "bob".into(), seconds: 60 },
            ),
            (r#"{"type":"ban","identity":"bob"}"#, ClientFrame::Ban { identity: "bob".into() }),
            (
                r#"{"type":"set_blocked_words","words":["spam"]}"#,
                ClientFrame::SetBlockedWords { words: vec!["spam".into()] },
            ),
            (r#"{"type":"unban","identity":"bob"}"#, ClientFrame::Unban { identity: "bob".into() }),
            (r#"{"type":"end_show"}"#, ClientFrame::EndShow),
            (r#"{"type":"unmute","identity":"bob"}"#, ClientFrame::Unmute { identity: "bob".into() }),
            (
                r#"{"type":"set_show","title":"Spring drop","starts_at_ms":5000,"avatar_url":"https://a.example/me.png"}"#,
                ClientFrame::SetShow { title: "Spring drop".into(), starts_at_ms: Some(5000), avatar_url: "https://a.example/me.png".into() },
            ),
            (r#"{"type":"set_name","name":"Ana"}"#, ClientFrame::SetName { name: "Ana".into() }),
            (
                r#"{"type":"video_cap","data_saver":true,"max_height":720}"#,
                ClientFrame::VideoCap { data_saver: true, max_height: Some(720) },
            ),
        ];
        for (text, expected) in &frames {
            assert_eq!(ClientFrame::parse(text.as_bytes()).as_ref(), Ok(expected), "{text}");
        }
        // Every type the protocol lists is covered above.
        let covered: std::collections::BTreeSet<String> = frames
            .iter()
            .filter_map(|(t, _)| serde_json::from_str::<serde_json::Value>(t).ok())
            .filter_map(|v| v["type"].as_str().map(String::from))
            .collect();
        let listed: std::collections::BTreeSet<String> = ClientFrame::TYPES.iter().map(|t| t.to_string()).collect();
        assert_eq!(covered, listed);
    }

    #[test]
    fn a_list_price_buy_names_its_product_and_variant_and_no_sale() {
        let frame = ClientFrame::parse(br#"{"type":"buy","product_id":7,"variant_id":3,"qty":2,"idempotency_key":"k"}"#);
        let expected = ClientFrame::Buy { sale_id: None, product_id: Some(7), variant_id: Some(3), qty: 2, idempotency_key: "k".into() };
        assert_eq!(frame, Ok(expected));
        let code = |b: &[u8]| ClientFrame::parse(b).map_err(|e| e.code);
        assert_eq!(code(br#"{"type":"buy","product_id":"7","qty":1,"idempotency_key":"k"}"#), Err(ErrorCode::Malformed));
        assert_eq!(code(br#"{"type":"buy","product_id":7,"qty":1,"idempotency_key":"k","price_minor":1}"#), Err(ErrorCode::Malformed));
    }

    #[test]
    fn every_buy_rejection_has_its_wire_name() {
        for reason in BuyRejection::ALL {
            assert_eq!(serde_json::to_value(reason).expect("serializes"), reason.code());
        }
    }

    #[test]
    fn each_kind_of_bad_frame_has_its_code() {
        let code = |b: &[u8]| ClientFrame::parse(b).map_err(|e| e.code);
        assert_eq!(code(b"not json"), Err(ErrorCode::Malformed));
        assert_eq!(code(br#"{"text":"no type"}"#), Err(ErrorCode::Malformed));
        assert_eq!(code(br#"{"type":"teleport"}"#), Err(ErrorCode::UnknownType));
        assert_eq!(code(br#"{"type":"chat","text":5}"#), Err(ErrorCode::Malformed));
        assert_eq!(code(br#"{"type":"like","count":-1}"#), Err(ErrorCode::Malformed));
        assert_eq!(code(br#"{"type":"chat","text":"x","admin":true}"#), Err(ErrorCode::Malformed));
        assert_eq!(code(&vec![b' '; MAX_FRAME_BYTES + 1]), Err(ErrorCode::TooLarge));
        let megabyte = format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(1_000_000));
        assert_eq!(code(megabyte.as_bytes()), Err(ErrorCode::TooLarge), "refused before parsing");
    }

    #[test]
    fn sequenced_events_carry_their_position_and_type() {
        let event = RoomEvent::SoldOut { sale_id: 4 };
        let json = serde_json::to_value(Sequenced { epoch: 2, seq: 11, server_now_ms: 5, event: &event })
            .expect("serializable");
        assert_eq!(json["type"], "sold_out");
        assert_eq!(json["seq"], 11);
        assert_eq!(json["epoch"], 2);
        assert_eq!(json["sale_id"], 4);
    }
}
