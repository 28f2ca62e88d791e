//! The store's records and requests. The commerce types themselves (`Product`, `Sale`, their
//! drafts, `BuyAnswer`, `BuyRejection`) are `sellcast-room`'s: the store makes them durable.
//! Money is in minor units of a 3-letter currency.

use sellcast_room::{BuyAnswer, BuyRejection, Product, Role, Sale, ShowInfo, ShowTotals};
use serde::Serialize;

/// An order as stored: the row behind an `order_confirmed`, with the key that placed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    pub id: i64,
    pub room: String,
    /// `None`: bought at the product's list price.
    pub sale_id: Option<i64>,
    /// The product, and its title as it reads now.
    pub product_id: i64,
    pub title: String,
    pub variant_id: Option<i64>,
    /// The variant's label; empty without one.
    pub variant: String,
    pub identity: String,
    /// The name the buyer goes by: the one chosen in the room now, else the one it bought with.
    pub buyer_name: String,
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
    /// The role that placed the ban: it binds only roles below this one.
    pub by: Role,
}

/// The durable part of a room (catalog, sales, moderation, buys), as a room reloads it on start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DurableRoom {
    pub products: Vec<Product>,
    pub sales: Vec<Sale>,
    pub pins: Vec<i64>,
    pub bans: Vec<Ban>,
    pub blocked_words: Vec<String>,
    /// Committed quantity per (sale, identity). Idempotency answers are not loaded: every buy
    /// the room cannot answer from its cache comes here, and the key is looked up then.
    pub purchased: Vec<(i64, String, u32)>,
    /// Sums over every order of the room.
    pub totals: ShowTotals,
    /// Title, start, avatar, host name, last End (`show.rs`).
    pub show: ShowInfo,
    pub likes_total: u64,
    /// Display names chosen in the room: (identity, name).
    pub names: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyRequest {
    pub room: String,
    /// `Some`: a flash sale's units at its price (and `product_id`, if given, must be the
    /// sale's). `None`: `product_id`'s units at its list price.
    pub sale_id: Option<i64>,
    pub product_id: Option<i64>,
    /// The variant bought; required when the product has variants.
    pub variant_id: Option<i64>,
    pub identity: String,
    /// The buyer's display name, for the merchant webhook's body.
    pub buyer_name: String,
    pub qty: u32,
    pub idempotency_key: String,
    pub now_ms: i64,
    /// `Some`: the room found the buy cannot succeed; record this rejection as the key's
    /// answer unless the key already has one (which is then replayed).
    pub verdict: Option<BuyRejection>,
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
