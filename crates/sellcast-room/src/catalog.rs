//! The show's products and flash sales: one definition, held in memory by the room and made
//! durable by `sellcast-store`. The room loads them from the store and updates them only after
//! the store committed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Product {
    pub id: i64,
    pub title: String,
    /// Price in minor units (cents) of `currency`.
    pub price_minor: i64,
    pub currency: String,
    pub image_url: String,
    pub stock: u32,
}

/// A product as a host submits it (over the HTTP API); the store validates it and gives it an id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductDraft {
    pub title: String,
    pub price_minor: i64,
    pub currency: String,
    #[serde(default)]
    pub image_url: String,
    pub stock: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sale {
    pub id: i64,
    pub product_id: i64,
    pub price_minor: i64,
    pub currency: String,
    pub stock_total: u32,
    /// Committed stock left (in-flight reservations are not subtracted here).
    pub stock_left: u32,
    pub per_user_limit: u32,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub ended_at_ms: Option<i64>,
}

impl Sale {
    /// Open for buying at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.ended_at_ms.is_none() && now_ms >= self.starts_at_ms && now_ms < self.ends_at_ms
    }

    /// Over, by the host's hand or the clock.
    pub fn is_over(&self, now_ms: i64) -> bool {
        self.ended_at_ms.is_some() || now_ms >= self.ends_at_ms
    }

    pub fn sold(&self) -> u32 {
        self.stock_total.saturating_sub(self.stock_left)
    }
}

/// What a host asks for when starting a sale (validated by the store before it exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleDraft {
    pub product_id: i64,
    pub price_minor: i64,
    /// `None`: the product's currency.
    pub currency: Option<String>,
    pub stock: u32,
    pub per_user_limit: u32,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}
