//! The store's records and requests. Money is in minor units of a 3-letter currency.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Product {
    pub id: i64,
    pub room: String,
    pub title: String,
    pub price_minor: i64,
    pub currency: String,
    pub image_url: String,
    pub stock: i64,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDraft {
    pub title: String,
    pub price_minor: i64,
    pub currency: String,
    pub image_url: String,
    pub stock: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sale {
    pub id: i64,
    pub room: String,
    pub product_id: i64,
    pub price_minor: i64,
    pub currency: String,
    pub stock_total: i64,
    pub stock_left: i64,
    pub per_user_limit: i64,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub ended_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleDraft {
    pub product_id: i64,
    pub price_minor: i64,
    /// Defaults to the product's currency.
    pub currency: Option<String>,
    pub stock: u32,
    pub per_user_limit: u32,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    pub id: i64,
    pub room: String,
    pub sale_id: i64,
    pub identity: String,
    pub qty: i64,
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
    /// `(identity, key, sale_id, answer)`.
    pub answers: Vec<(String, String, i64, BuyResult)>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    SoldOut,
    LimitReached,
    SaleNotActive,
    Invalid,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::SoldOut => "sold_out",
            Rejection::LimitReached => "limit_reached",
            Rejection::SaleNotActive => "sale_not_active",
            Rejection::Invalid => "invalid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Rejection::SoldOut, Rejection::LimitReached, Rejection::SaleNotActive, Rejection::Invalid]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuyResult {
    Confirmed {
        order_id: i64,
        sale_id: i64,
        qty: u32,
        price_minor: i64,
        currency: String,
        /// Stock left right after this order committed.
        stock_left: u32,
    },
    Rejected(Rejection),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyOutcome {
    pub result: BuyResult,
    /// The key had an answer already; this is that answer, nothing new happened.
    pub replayed: bool,
}
