//! The show tasks' view of the durable store: `sellcast-store` calls translated into the room
//! core's types, and store errors into error codes a client understands.

use std::path::Path;
use std::sync::Arc;

use sellcast_room::{BuyAnswer, BuyOrder, BuyRejection, ErrorCode, OrderLine, Product, ShowRecord, Sale, SaleDraft};
use sellcast_store as store;
use serde::Deserialize;
use thiserror::Error;

/// A product as a host submits it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub title: String,
    pub price_minor: i64,
    pub currency: String,
    #[serde(default)]
    pub image_url: String,
    pub stock: u32,
}

/// The store's answer to a buy.
#[derive(Debug, Clone)]
pub struct BuyResult {
    pub answer: BuyAnswer,
    /// The store already had an answer for this key (a retry across a restart).
    pub replayed: bool,
    pub stock_left: Option<u32>,
}

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
    /// Currency used for sales whose product has none recorded.
    default_currency: String,
}

impl StoreClient {
    pub fn open(path: &Path) -> Result<Self, StoreFailure> {
        Ok(Self {
            store: Arc::new(store::Store::open(path)?),
            default_currency: "EUR".into(),
        })
    }

    pub fn inner(&self) -> &store::Store {
        &self.store
    }

    pub async fn load_room(&self, room: &str) -> Result<ShowRecord, StoreFailure> {
        let r = self.store.load_room(room).await?;
        let mut orders = self.store.recent_orders(room, 50).await?;
        orders.reverse();
        Ok(ShowRecord {
            products: r.products.into_iter().map(product).collect(),
            sales: r.sales.into_iter().map(sale).collect(),
            pinned: r.pins,
            banned: r.bans.into_iter().map(|b| (b.identity, b.until_ms)).collect(),
            blocked_words: r.blocked_words,
            bought: r.purchased,
            answers: r.answers.into_iter().map(|(i, k, sale, a)| (i, k, answer(a, Some(sale)).0)).collect(),
            recent_orders: orders.into_iter().map(order).collect(),
            likes_total: 0,
        })
    }

    pub async fn buy(&self, room: &str, order: &BuyOrder, now_ms: i64) -> Result<BuyResult, StoreFailure> {
        let req = store::BuyRequest {
            room: room.to_string(),
            sale_id: order.sale_id,
            identity: order.ticket.identity.clone(),
            qty: order.qty,
            idempotency_key: order.ticket.key.clone(),
            now_ms,
        };
        let outcome = self.store.buy(req).await?;
        let (answer, stock_left) = answer(outcome.result, Some(order.sale_id));
        Ok(BuyResult { answer, replayed: outcome.replayed, stock_left })
    }

    pub async fn create_product(&self, room: &str, p: ProductInput) -> Result<Product, StoreFailure> {
        Ok(product(self.store.create_product(room, draft(p)).await?))
    }

    pub async fn update_product(&self, room: &str, id: i64, p: ProductInput) -> Result<Product, StoreFailure> {
        Ok(product(self.store.update_product(room, id, draft(p)).await?))
    }

    pub async fn delete_product(&self, room: &str, id: i64) -> Result<(), StoreFailure> {
        Ok(self.store.delete_product(room, id).await?)
    }

    pub async fn set_pins(&self, room: &str, ids: Vec<i64>) -> Result<(), StoreFailure> {
        Ok(self.store.set_pins(room, ids).await?)
    }

    pub async fn create_sale(&self, room: &str, d: SaleDraft) -> Result<Sale, StoreFailure> {
        let draft = store::SaleDraft {
            product_id: d.product_id,
            price_minor: d.price_minor,
            currency: None,
            stock: d.stock,
            per_user_limit: d.per_user_limit,
            starts_at_ms: d.starts_at_ms,
            ends_at_ms: d.ends_at_ms,
        };
        let _ = &self.default_currency;
        Ok(sale(self.store.create_sale(room, draft).await?))
    }

    pub async fn end_sale(&self, room: &str, id: i64, now_ms: i64) -> Result<Sale, StoreFailure> {
        Ok(sale(self.store.end_sale(room, id, now_ms).await?))
    }

    pub async fn ban(&self, room: &str, identity: &str, until_ms: Option<i64>) -> Result<(), StoreFailure> {
        Ok(self.store.ban(room, identity, until_ms).await?)
    }

    pub async fn set_blocked_words(&self, room: &str, words: Vec<String>) -> Result<(), StoreFailure> {
        Ok(self.store.set_blocked_words(room, words).await?)
    }
}

/// A store answer in the room's terms (`sale_id` for rejections when the store has none).
fn answer(result: store::BuyResult, sale_id: Option<i64>) -> (BuyAnswer, Option<u32>) {
    match result {
        store::BuyResult::Confirmed { order_id, sale_id, qty, price_minor, currency, stock_left } => {
            (BuyAnswer::Confirmed { order_id, sale_id, qty, price_minor, currency }, Some(stock_left))
        }
        store::BuyResult::Rejected(r) => (
            BuyAnswer::Rejected {
                sale_id: sale_id.unwrap_or(0),
                reason: match r {
                    store::Rejection::SoldOut => BuyRejection::SoldOut,
                    store::Rejection::LimitReached => BuyRejection::LimitReached,
                    store::Rejection::SaleNotActive => BuyRejection::SaleNotActive,
                    store::Rejection::Invalid => BuyRejection::Invalid,
                },
            },
            None,
        ),
    }
}

fn draft(p: ProductInput) -> store::ProductDraft {
    store::ProductDraft {
        title: p.title,
        price_minor: p.price_minor,
        currency: p.currency,
        image_url: p.image_url,
        stock: p.stock,
    }
}

fn product(p: store::Product) -> Product {
    Product {
        id: p.id,
        title: p.title,
        price_minor: p.price_minor,
        currency: p.currency,
        image_url: p.image_url,
        stock: p.stock as u32,
    }
}

fn sale(s: store::Sale) -> Sale {
    Sale {
        id: s.id,
        product_id: s.product_id,
        price_minor: s.price_minor,
        currency: s.currency,
        stock_total: s.stock_total as u32,
        stock_left: s.stock_left as u32,
        per_user_limit: s.per_user_limit as u32,
        starts_at_ms: s.starts_at_ms,
        ends_at_ms: s.ends_at_ms,
        ended_at_ms: s.ended_at_ms,
    }
}

fn order(o: store::Order) -> OrderLine {
    OrderLine {
        order_id: o.id,
        sale_id: o.sale_id,
        buyer: sellcast_room::Identity { id: o.identity.clone(), name: o.identity, role: sellcast_room::Role::Viewer },
        qty: o.qty as u32,
        price_minor: o.price_minor,
        currency: o.currency,
        at_ms: o.created_at_ms,
    }
}
