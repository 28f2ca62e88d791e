//! The durable record a show starts from.

use crate::buy_admission::BuyAnswer;
use crate::catalog::{Product, Sale};
use crate::protocol::OrderLine;

/// The durable record a [`Show`](super::Show) starts from: everything its room loads from the store.
#[derive(Debug, Clone, Default)]
pub struct ShowRecord {
    pub products: Vec<Product>,
    pub sales: Vec<Sale>,
    pub pinned: Vec<i64>,
    pub banned: Vec<(String, Option<i64>)>,
    pub blocked_words: Vec<String>,
    /// Committed quantity per (sale, identity).
    pub bought: Vec<(i64, String, u32)>,
    /// Answers the store already gave, by (identity, idempotency key).
    pub answers: Vec<(String, String, BuyAnswer)>,
    pub recent_orders: Vec<OrderLine>,
    pub likes_total: u64,
}
