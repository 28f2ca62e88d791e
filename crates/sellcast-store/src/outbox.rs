//! The merchant webhook's outbox: a delivery owed for every committed order.
//!
//! [`owe`] runs inside the transaction that inserts the order (the writer calls it in the
//! buy's own savepoint), so the order and the debt to deliver it commit together or not at
//! all: a crash can lose neither one without the other. The delivery worker (in the server)
//! reads due rows oldest first, and records each attempt's outcome here: a row is marked
//! delivered only after the receiver answered 2xx, so a crash mid-delivery means one more
//! delivery of the same order id (receivers drop repeats by that id), never none.
//!
//! The body is built once, at commit, and stored: every attempt sends the same bytes.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::json;

/// Longest `last_error` kept per row.
pub(crate) const MAX_ERROR_CHARS: usize = 300;

/// A delivery still owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub order_id: i64,
    /// The exact body to POST.
    pub body: String,
    /// Attempts made so far (failed ones: a delivered row is not owed).
    pub attempts: u32,
    pub next_attempt_ms: i64,
}

/// How the outbox stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    /// Orders whose delivery is owed.
    pub pending: u64,
    /// Orders the receiver acknowledged.
    pub delivered: u64,
}

/// Owe the webhook a delivery of order `order_id`, in the caller's transaction. `now_ms` is
/// when it is first due.
pub fn owe(tx: &Connection, order_id: i64, buyer_name: &str, now_ms: i64) -> rusqlite::Result<()> {
    let body = order_body(tx, order_id, buyer_name)?;
    tx.execute(
        "INSERT INTO webhook_outbox (order_id, body, next_attempt_ms) VALUES (?1, ?2, ?3)",
        params![order_id, body, now_ms],
    )?;
    Ok(())
}

/// The columns of an order (with its product and variant) that its webhook body is built from.
pub(crate) struct OrderBodyParts {
    pub room: String,
    pub sale_id: Option<i64>,
    pub product_id: Option<i64>,
    pub title: Option<String>,
    pub qty: i64,
    pub unit_price_minor: i64,
    pub currency: String,
    pub buyer: String,
    pub created_at_ms: i64,
    pub variant_id: Option<i64>,
    pub variant: Option<String>,
    pub list_price_minor: Option<i64>,
    pub image_url: Option<String>,
}

/// The webhook body of an order: everything the merchant's shop needs to take payment and
/// fulfil it, with no internals.
fn order_body(tx: &Connection, order_id: i64, buyer_name: &str) -> rusqlite::Result<String> {
    let parts = tx.query_row(
        "SELECT o.room, o.sale_id, o.product_id, p.title, o.qty, o.price_minor, o.currency, o.identity, o.created_at_ms,
                o.variant_id, v.label, p.price_minor, p.image_url
         FROM orders o
         LEFT JOIN products p ON p.id = o.product_id
         LEFT JOIN product_variants v ON v.id = o.variant_id
         WHERE o.id = ?1",
        [order_id],
        |r| {
            Ok(OrderBodyParts {
                room: r.get(0)?,
                sale_id: r.get(1)?,
                product_id: r.get(2)?,
                title: r.get(3)?,
                qty: r.get(4)?,
                unit_price_minor: r.get(5)?,
                currency: r.get(6)?,
                buyer: r.get(7)?,
                created_at_ms: r.get(8)?,
                variant_id: r.get(9)?,
                variant: r.get(10)?,
                list_price_minor: r.get(11)?,
                image_url: r.get(12)?,
            })
        },
    )?;
    Ok(order_body_json(order_id, buyer_name, parts))
}

/// The body both backends store for an order.
pub(crate) fn order_body_json(order_id: i64, buyer_name: &str, parts: OrderBodyParts) -> String {
    let OrderBodyParts {
        room,
        sale_id,
        product_id,
        title,
        qty,
        unit_price_minor,
        currency,
        buyer,
        created_at_ms,
        variant_id,
        variant,
        list_price_minor,
        image_url,
    } = parts;
    let title = title.unwrap_or_default();
    // `product` and `variant` were added beside the fields a receiver already reads; those
    // keep their names and meaning (`sale_id` is null for a list-price order).
    let variant = variant_id.map(|id| json!({ "id": id, "label": variant.unwrap_or_default() }));
    let body = json!({
        "type": "order.created",
        "order": {
            "id": order_id,
            "room": room,
            "sale_id": sale_id,
            "product_id": product_id,
            "title": title,
            "qty": qty,
            "unit_price_minor": unit_price_minor,
            "total_minor": unit_price_minor.saturating_mul(qty),
            "currency": currency,
            "buyer": { "id": buyer, "name": buyer_name },
            "created_at_ms": created_at_ms,
            "product": { "id": product_id, "title": title, "list_price_minor": list_price_minor, "image_url": image_url.unwrap_or_default() },
            "variant": variant,
        }
    });
    body.to_string()
}

/// Up to `limit` owed deliveries due at `now_ms`, oldest order first.
pub fn due(conn: &Connection, now_ms: i64, limit: u32) -> rusqlite::Result<Vec<OutboxRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT order_id, body, attempts, next_attempt_ms FROM webhook_outbox
         WHERE delivered_at_ms IS NULL AND next_attempt_ms <= ?1
         ORDER BY order_id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now_ms, limit], |r| {
        Ok(OutboxRow { order_id: r.get(0)?, body: r.get(1)?, attempts: r.get(2)?, next_attempt_ms: r.get(3)? })
    })?;
    rows.collect()
}

/// When the next owed delivery is due (`None`: nothing is owed).
pub fn next_due_ms(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT MIN(next_attempt_ms) FROM webhook_outbox WHERE delivered_at_ms IS NULL", [], |r| r.get(0))
        .optional()
        .map(Option::flatten)
}

/// The receiver acknowledged order `order_id` (a 2xx). Marking twice keeps the first time.
pub fn mark_delivered(conn: &Connection, order_id: i64, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE webhook_outbox SET delivered_at_ms = ?2, attempts = attempts + 1, last_error = NULL
         WHERE order_id = ?1 AND delivered_at_ms IS NULL",
        params![order_id, now_ms],
    )?;
    Ok(())
}

/// An attempt failed: count it, and say when to try again.
pub fn record_failure(conn: &Connection, order_id: i64, next_attempt_ms: i64, error: &str) -> rusqlite::Result<()> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    conn.execute(
        "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3
         WHERE order_id = ?1 AND delivered_at_ms IS NULL",
        params![order_id, next_attempt_ms, error],
    )?;
    Ok(())
}

pub fn counts(conn: &Connection) -> rusqlite::Result<OutboxCounts> {
    conn.query_row(
        "SELECT COALESCE(SUM(delivered_at_ms IS NULL), 0), COALESCE(SUM(delivered_at_ms IS NOT NULL), 0) FROM webhook_outbox",
        [],
        |r| Ok(OutboxCounts { pending: r.get::<_, i64>(0)? as u64, delivered: r.get::<_, i64>(1)? as u64 }),
    )
}

/// Order ids whose delivery is owed or done, oldest first (what tests compare with orders).
pub fn order_ids(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare("SELECT order_id FROM webhook_outbox ORDER BY order_id")?;
    let ids = stmt.query_map([], |r| r.get(0))?;
    ids.collect()
}
