//! The store's records and requests. The commerce types themselves (`Product`, `Sale`, their
//! drafts, `BuyAnswer`, `BuyRejection`) are `sellcast-room`'s: the store makes them durable.
//! Money is in minor units of a 3-letter currency.

use sellcast_room::{BuyAnswer, Product, Sale};
use serde::Serialize;

/// An order as stored: the row behind an `order_confirmed`, with the key that placed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    pub id: i64,
    pub room: String,
    pub sale_id: i64,
    pub identity: String,
    pub qty: u32,
    pub price_minor: i64,
    pub currency: String,
    pub idempotency_key: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ban {
    pub identity: String,
    /// `None`: forever.
    pub until_ms: Option<i64>,
}

/// The durable part of a room (catalog, sales, moderation, buys), as a room reloads it on start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DurableRoom {
    pub products: Vec<Product>,
    pub sales: Vec<Sale>,
    pub pins: Vec<i64>,
    pub bans: Vec<Ban>,
    pub blocked_words: Vec<String>,
    /// Committed quantity per (sale, identity).
    pub purchased: Vec<(i64, String, u32)>,
    /// Every answer the store gave, by (identity, idempotency key): a retry after a restart
    /// must get the same answer even when memory alone would now say otherwise.
    pub answers: Vec<(String, String, BuyAnswer)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyRequest {
    pub room: String,
    pub sale_id: i64,
    pub identity: String,
    pub qty: u32,
    pub idempotency_key: String,
    pub now_ms: i64,
}

/// The store's answer to a buy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyOutcome {
    pub answer: BuyAnswer,
    /// The key had an answer already; this is that answer, nothing new happened.
    pub replayed: bool,
    /// Stock left right after a confirmed order committed (`None` for a rejection).
    pub stock_left: Option<u32>,
}
