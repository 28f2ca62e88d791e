//! One buy inside the group-commit transaction. Order matters: a known key answers first
//! (whatever changed since), then the sale window, the quantity, the per-user limit, and only
//! then the conditional stock decrement, so stock can never go below zero.

use rusqlite::{params, Connection, OptionalExtension};

use crate::model::{BuyOutcome, BuyRequest, BuyResult, Rejection};

pub fn execute(tx: &Connection, req: &BuyRequest) -> rusqlite::Result<BuyOutcome> {
    if let Some(previous) = previous_answer(tx, req)? {
        return Ok(BuyOutcome { result: previous, replayed: true });
    }
    let result = decide(tx, req)?;
    let (order_id, rejection, stock_left) = match &result {
        BuyResult::Confirmed { order_id, stock_left, .. } => (Some(*order_id), None, Some(*stock_left)),
        BuyResult::Rejected(r) => (None, Some(r.as_str()), None),
    };
    tx.execute(
        "INSERT INTO idempotency (room, identity, key, sale_id, order_id, rejection, stock_left) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![req.room, req.identity, req.idempotency_key, req.sale_id, order_id, rejection, stock_left],
    )?;
    Ok(BuyOutcome { result, replayed: false })
}

fn decide(tx: &Connection, req: &BuyRequest) -> rusqlite::Result<BuyResult> {
    let sale = tx
        .query_row(
            "SELECT price_minor, currency, per_user_limit, starts_at_ms, ends_at_ms, ended_at_ms
             FROM sales WHERE id = ?1 AND room = ?2",
            params![req.sale_id, req.room],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            },
        )
        .optional()?;
    let Some((price_minor, currency, limit, starts, ends, ended)) = sale else {
        return Ok(BuyResult::Rejected(Rejection::SaleNotActive));
    };
    if ended.is_some() || req.now_ms < starts || req.now_ms >= ends {
        return Ok(BuyResult::Rejected(Rejection::SaleNotActive));
    }
    let qty = i64::from(req.qty);
    if qty < 1 || qty > limit {
        return Ok(BuyResult::Rejected(Rejection::Invalid));
    }
    let already: i64 = tx.query_row(
        "SELECT COALESCE(SUM(qty), 0) FROM orders WHERE sale_id = ?1 AND identity = ?2",
        params![req.sale_id, req.identity],
        |r| r.get(0),
    )?;
    if already + qty > limit {
        return Ok(BuyResult::Rejected(Rejection::LimitReached));
    }
    let taken = tx.execute(
        "UPDATE sales SET stock_left = stock_left - ?1 WHERE id = ?2 AND stock_left >= ?1",
        params![qty, req.sale_id],
    )?;
    if taken != 1 {
        return Ok(BuyResult::Rejected(Rejection::SoldOut));
    }
    tx.execute(
        "INSERT INTO orders (room, sale_id, identity, qty, price_minor, currency, idempotency_key, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![req.room, req.sale_id, req.identity, qty, price_minor, currency, req.idempotency_key, req.now_ms],
    )?;
    let order_id = tx.last_insert_rowid();
    let stock_left: i64 = tx.query_row("SELECT stock_left FROM sales WHERE id = ?1", [req.sale_id], |r| r.get(0))?;
    Ok(BuyResult::Confirmed {
        order_id,
        sale_id: req.sale_id,
        qty: req.qty,
        price_minor,
        currency,
        stock_left: u32::try_from(stock_left).unwrap_or(0),
    })
}

/// Every stored answer of a room, for reloading its idempotency memory.
pub fn room_answers(conn: &Connection, room: &str) -> rusqlite::Result<Vec<(String, String, i64, BuyResult)>> {
    let mut stmt = conn.prepare(
        "SELECT i.identity, i.key, i.sale_id, i.order_id, i.rejection, o.qty, o.price_minor, o.currency, i.stock_left
         FROM idempotency i LEFT JOIN orders o ON o.id = i.order_id WHERE i.room = ?1",
    )?;
    let rows = stmt.query_map([room], |r| {
        let (identity, key, sale_id): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let answer = answer_from_row(
            sale_id,
            r.get(3)?,
            r.get(4)?,
            (r.get(5)?, r.get(6)?, r.get(7)?),
            r.get(8)?,
        );
        Ok((identity, key, sale_id, answer))
    })?;
    rows.collect()
}

fn answer_from_row(
    sale_id: i64,
    order_id: Option<i64>,
    rejection: Option<String>,
    (qty, price, currency): (Option<i64>, Option<i64>, Option<String>),
    stock_left: Option<i64>,
) -> BuyResult {
    match (order_id, rejection.as_deref().and_then(Rejection::parse)) {
        (Some(order_id), _) => BuyResult::Confirmed {
            order_id,
            sale_id,
            qty: qty.and_then(|q| u32::try_from(q).ok()).unwrap_or(0),
            price_minor: price.unwrap_or(0),
            currency: currency.unwrap_or_default(),
            stock_left: stock_left.and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
        },
        (None, Some(r)) => BuyResult::Rejected(r),
        (None, None) => BuyResult::Rejected(Rejection::Invalid),
    }
}

fn previous_answer(tx: &Connection, req: &BuyRequest) -> rusqlite::Result<Option<BuyResult>> {
    let row = tx
        .query_row(
            "SELECT i.sale_id, i.order_id, i.rejection, o.qty, o.price_minor, o.currency, i.stock_left
             FROM idempotency i
             LEFT JOIN orders o ON o.id = i.order_id
             WHERE i.room = ?1 AND i.identity = ?2 AND i.key = ?3",
            params![req.room, req.identity, req.idempotency_key],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                ))
            },
        )
        .optional()?;
    Ok(row.map(|(sale_id, order_id, rejection, qty, price, currency, stock_left)| {
        answer_from_row(sale_id, order_id, rejection, (qty, price, currency), stock_left)
    }))
}
