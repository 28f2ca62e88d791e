//! The show tasks' client of the durable store: `sellcast-store` calls with the room core's own
//! types, and store errors turned into error codes a client understands.

use std::path::Path;
use std::sync::Arc;

use sellcast_room::{BuyOrder, ErrorCode, Identity, OrderLine, Product, ProductDraft, Role, Sale, SaleDraft, ShowInfo, ShowRecord};
use sellcast_store as store;
use sellcast_store::BuyOutcome;
use thiserror::Error;
use tokio::sync::Notify;

#[derive(Debug, Clone, Error)]
pub enum StoreFailure {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl StoreFailure {
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreFailure::Invalid(_) => ErrorCode::Invalid,
            StoreFailure::NotFound(_) => ErrorCode::NotFound,
            StoreFailure::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}

impl From<store::StoreError> for StoreFailure {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::Invalid(m) => StoreFailure::Invalid(m),
            store::StoreError::NotFound(m) => StoreFailure::NotFound(m),
            other => StoreFailure::Unavailable(other.to_string()),
        }
    }
}

/// The show tasks' client of the store thread: calls and answers in the room core's types.
#[derive(Clone)]
pub struct StoreClient {
    store: Arc<store::Store>,
    /// Notified after each new order commits (the webhook worker waits on it).
    order_committed: Option<Arc<Notify>>,
}

impl StoreClient {
    pub fn open(path: &Path) -> Result<Self, StoreFailure> {
        Self::open_with(path, store::StoreOptions::default(), None)
    }

    /// [`StoreClient::open`] with the store's `options`; `order_committed` is notified after
    /// each buy that committed a new order.
    pub fn open_with(path: &Path, options: store::StoreOptions, order_committed: Option<Arc<Notify>>) -> Result<Self, StoreFailure> {
        Ok(Self { store: Arc::new(store::Store::open_with(path, options)?), order_committed })
    }

    /// [`StoreClient::open_with`] on either backend: the SQLite file, or a PostgreSQL database.
    pub fn open_on(
        db: &crate::commerce_db::CommerceDb<'_>,
        options: store::StoreOptions,
        order_committed: Option<Arc<Notify>>,
    ) -> Result<Self, StoreFailure> {
        let store = match db {
            crate::commerce_db::CommerceDb::Sqlite(path) => store::Store::open_with(path, options)?,
            crate::commerce_db::CommerceDb::Postgres(url) => store::Store::connect_postgres(url, options)?,
        };
        Ok(Self { store: Arc::new(store), order_committed })
    }

    pub fn inner(&self) -> &store::Store {
        &self.store
    }

    pub async fn load_room(&self, room: &str) -> Result<ShowRecord, StoreFailure> {
        let r = self.store.load_room(room).await?;
        let mut orders = self.store.recent_orders(room, 50).await?;
        orders.reverse();
        Ok(ShowRecord {
            products: r.products,
            sales: r.sales,
            pinned: r.pins,
            banned: r.bans.into_iter().map(|b| (b.identity, b.until_ms, b.by)).collect(),
            blocked_words: r.blocked_words,
            bought: r.purchased,
            recent_orders: orders.into_iter().map(order_line).collect(),
            totals: r.totals,
            likes_total: r.likes_total,
            show: r.show,
            names: r.names,
        })
    }

    pub async fn buy(&self, room: &str, order: &BuyOrder, now_ms: i64) -> Result<BuyOutcome, StoreFailure> {
        let req = store::BuyRequest {
            room: room.to_string(),
            sale_id: order.sale_id,
            product_id: order.product_id,
            variant_id: order.variant_id,
            identity: order.ticket.identity.clone(),
            buyer_name: order.buyer_name.clone(),
            qty: order.qty,
            idempotency_key: order.ticket.key.clone(),
            now_ms,
            verdict: order.verdict,
        };
        let outcome = self.store.buy(req).await?;
        if let (false, sellcast_room::BuyAnswer::Confirmed { .. }, Some(wake)) = (outcome.replayed, &outcome.answer, &self.order_committed) {
            wake.notify_one();
        }
        Ok(outcome)
    }

    /// The orders `identity` placed in `room`, newest first (at most `limit`).
    pub async fn orders_of(&self, room: &str, identity: &str, limit: u32) -> Result<Vec<store::Order>, StoreFailure> {
        Ok(self.store.orders_of(room, identity, limit).await?)
    }

    pub async fn create_product(&self, room: &str, draft: ProductDraft) -> Result<Product, StoreFailure> {
        Ok(self.store.create_product(room, draft).await?)
    }

    pub async fn update_product(&self, room: &str, id: i64, draft: ProductDraft) -> Result<Product, StoreFailure> {
        Ok(self.store.update_product(room, id, draft).await?)
    }

    pub async fn delete_product(&self, room: &str, id: i64) -> Result<(), StoreFailure> {
        Ok(self.store.delete_product(room, id).await?)
    }

    pub async fn set_pins(&self, room: &str, ids: Vec<i64>) -> Result<(), StoreFailure> {
        Ok(self.store.set_pins(room, ids).await?)
    }

    pub async fn create_sale(&self, room: &str, draft: SaleDraft) -> Result<Sale, StoreFailure> {
        Ok(self.store.create_sale(room, draft).await?)
    }

    pub async fn end_sale(&self, room: &str, id: i64, now_ms: i64) -> Result<Sale, StoreFailure> {
        Ok(self.store.end_sale(room, id, now_ms).await?)
    }

    pub async fn ban(&self, room: &str, identity: &str, until_ms: Option<i64>, by: Role) -> Result<(), StoreFailure> {
        Ok(self.store.ban(room, identity, until_ms, by).await?)
    }

    pub async fn unban(&self, room: &str, identity: &str) -> Result<(), StoreFailure> {
        Ok(self.store.unban(room, identity).await?)
    }

    pub async fn set_show(&self, room: &str, info: ShowInfo) -> Result<ShowInfo, StoreFailure> {
        Ok(self.store.set_show(room, info).await?)
    }

    pub async fn set_display_name(&self, room: &str, identity: &str, name: &str, host: bool) -> Result<(), StoreFailure> {
        Ok(self.store.set_display_name(room, identity, name, host).await?)
    }

    pub async fn save_likes(&self, room: &str, total: u64) -> Result<(), StoreFailure> {
        Ok(self.store.save_likes(room, total).await?)
    }

    /// End the show; the sales it closed.
    pub async fn end_show(&self, room: &str, now_ms: i64) -> Result<Vec<Sale>, StoreFailure> {
        Ok(self.store.end_show(room, now_ms).await?)
    }

    pub async fn set_blocked_words(&self, room: &str, words: Vec<String>) -> Result<(), StoreFailure> {
        Ok(self.store.set_blocked_words(room, words).await?)
    }
}

/// A stored order as the host feed shows it: the buyer by the name they chose in the room, else
/// the one they bought with (the role is not stored; buyers are viewers).
fn order_line(o: store::Order) -> OrderLine {
    OrderLine {
        order_id: o.id,
        sale_id: o.sale_id,
        product_id: o.product_id,
        title: o.title,
        variant_id: o.variant_id,
        variant: o.variant,
        buyer: Identity { id: o.identity, name: o.buyer_name, role: Role::Viewer },
        qty: o.qty,
        price_minor: o.price_minor,
        currency: o.currency,
        at_ms: o.created_at_ms,
    }
}
