//! The merchant webhook's outbox on PostgreSQL: the same rows and rules as the SQLite
//! backend's `outbox.rs`. [`owe`] runs in the buy's own savepoint, so an order and its
//! delivery commit together or not at all.

use postgres::{Client, GenericClient};

use crate::outbox::{order_body_json, OrderBodyParts, OutboxCounts, OutboxRow, MAX_ERROR_CHARS};

/// Owe the webhook a delivery of order `order_id`, in the caller's transaction.
pub fn owe(tx: &mut impl GenericClient, order_id: i64, buyer_name: &str, now_ms: i64) -> Result<(), postgres::Error> {
    let r = tx.query_one(
        "SELECT o.room, o.sale_id, o.product_id, p.title, o.qty, o.price_minor, o.currency, o.identity, o.created_at_ms,
                o.variant_id, v.label, p.price_minor, p.image_url
         FROM orders o
         LEFT JOIN products p ON p.id = o.product_id
         LEFT JOIN product_variants v ON v.id = o.variant_id
         WHERE o.id = $1",
        &[&order_id],
    )?;
    let parts = OrderBodyParts {
        room: r.get(0),
        sale_id: r.get(1),
        product_id: r.get(2),
        title: r.get(3),
        qty: r.get(4),
        unit_price_minor: r.get(5),
        currency: r.get(6),
        buyer: r.get(7),
        created_at_ms: r.get(8),
        variant_id: r.get(9),
        variant: r.get(10),
        list_price_minor: r.get(11),
        image_url: r.get(12),
    };
    let body = order_body_json(order_id, buyer_name, parts);
    tx.execute("INSERT INTO webhook_outbox (order_id, body, next_attempt_ms) VALUES ($1, $2, $3)", &[&order_id, &body, &now_ms])?;
    Ok(())
}

pub fn due(c: &mut Client, now_ms: i64, limit: u32) -> Result<Vec<OutboxRow>, postgres::Error> {
    let rows = c.query(
        "SELECT order_id, body, attempts, next_attempt_ms FROM webhook_outbox
         WHERE delivered_at_ms IS NULL AND next_attempt_ms <= $1
         ORDER BY order_id LIMIT $2",
        &[&now_ms, &i64::from(limit)],
    )?;
    Ok(rows
        .iter()
        .map(|r| OutboxRow { order_id: r.get(0), body: r.get(1), attempts: super::count(r.get(2)), next_attempt_ms: r.get(3) })
        .collect())
}

pub fn next_due_ms(c: &mut Client) -> Result<Option<i64>, postgres::Error> {
    Ok(c.query_one("SELECT MIN(next_attempt_ms) FROM webhook_outbox WHERE delivered_at_ms IS NULL", &[])?.get(0))
}

/// The receiver acknowledged order `order_id`. Marking twice keeps the first time.
pub fn mark_delivered(c: &mut Client, order_id: i64, now_ms: i64) -> Result<(), postgres::Error> {
    c.execute(
        "UPDATE webhook_outbox SET delivered_at_ms = $2, attempts = attempts + 1, last_error = NULL
         WHERE order_id = $1 AND delivered_at_ms IS NULL",
        &[&order_id, &now_ms],
    )?;
    Ok(())
}

pub fn record_failure(c: &mut Client, order_id: i64, next_attempt_ms: i64, error: &str) -> Result<(), postgres::Error> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    c.execute(
        "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_ms = $2, last_error = $3
         WHERE order_id = $1 AND delivered_at_ms IS NULL",
        &[&order_id, &next_attempt_ms, &error],
    )?;
    Ok(())
}

pub fn counts(c: &mut Client) -> Result<OutboxCounts, postgres::Error> {
    let r = c.query_one(
        "SELECT COUNT(*) FILTER (WHERE delivered_at_ms IS NULL), COUNT(*) FILTER (WHERE delivered_at_ms IS NOT NULL) FROM webhook_outbox",
        &[],
    )?;
    Ok(OutboxCounts { pending: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0), delivered: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0) })
}

pub fn order_ids(c: &mut Client) -> Result<Vec<i64>, postgres::Error> {
    Ok(c.query("SELECT order_id FROM webhook_outbox ORDER BY order_id", &[])?.iter().map(|r| r.get(0)).collect())
}
