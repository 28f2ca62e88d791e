//! The durable record a show starts from.

use crate::catalog::{Product, Sale};
use crate::identity::Role;
use crate::protocol::OrderLine;

/// The durable record a [`Show`](super::Show) starts from: everything its room loads from the store.
#[derive(Debug, Clone, Default)]
pub struct ShowRecord {
    pub products: Vec<Product>,
    pub sales: Vec<Sale>,
    pub pinned: Vec<i64>,
    /// Banned identities: until when (`None`: for good), and the role of who banned them (a
    /// ban binds only roles below it).
    pub banned: Vec<(String, Option<i64>, Role)>,
    pub blocked_words: Vec<String>,
    /// Committed quantity per (sale, identity).
    pub bought: Vec<(i64, String, u32)>,
    pub recent_orders: Vec<OrderLine>,
    /// Sums over every committed order of the room (not only the recent ones).
    pub totals: crate::totals::ShowTotals,
    /// The likes counted so far (saved every few seconds; see `show::lifecycle`).
    pub likes_total: u64,
    /// Title, scheduled start, avatar, host name, last End.
    pub show: crate::show_info::ShowInfo,
    /// Display names chosen in this room: (identity, name).
    pub names: Vec<(String, String)>,
}
