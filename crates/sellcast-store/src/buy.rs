//! One buy inside the group-commit transaction. Order matters: a known key answers first
//! (whatever changed since; looked up by the table's primary key), then the room's verdict if
//! it sent one, then the sale window, the quantity, the per-user limit, and only then the
//! conditional stock decrements (the product's, then the sale's), so neither can go below zero.

use rusqlite::{params, Connection, OptionalExtension};

use sellcast_room::money::{self, MAX_ORDER_QTY};
use sellcast_room::{BuyAnswer, BuyRejection};

use crate::model::{BuyOutcome, BuyRequest};

pub fn execute(tx: &Connection, req: &BuyRequest) -> rusqlite::Result<BuyOutcome> {
    if let Some((answer, stock_left)) = previous_answer(tx, req)? {
        return Ok(BuyOutcome { answer, replayed: true, stock_left });
    }
    let (answer, stock_left) = match req.verdict {
        Some(reason) => (BuyAnswer::Rejected { sale_id: req.sale_id, reason }, None),
        None => decide(tx, req)?,
    };
    let (order_id, rejection) = match &answer {
        BuyAnswer::Confirmed { order_id, .. } => (Some(*order_id), None),
        BuyAnswer::Rejected { reason, .. } => (None, Some(rejection_code(*reason))),
    };
    tx.execute(
        "INSERT INTO idempotency (room, identity, key, sale_id, order_id, rejection, stock_left) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![req.room, req.identity, req.idempotency_key, req.sale_id, order_id, rejection, stock_left],
    )?;
    Ok(BuyOutcome { answer, replayed: false, stock_left })
}

/// How a rejection is stored in `idempotency.rejection`.
fn rejection_code(reason: BuyRejection) -> &'static str {
    match reason {
        BuyRejection::SoldOut => "sold_out",
        BuyRejection::LimitReached => "limit_reached",
        BuyRejection::SaleNotActive => "sale_not_active",
        BuyRejection::Invalid => "invalid",
    }
}

fn parse_rejection(code: &str) -> Option<BuyRejection> {
    [BuyRejection::SoldOut, BuyRejection::LimitReached, BuyRejection::SaleNotActive, BuyRejection::Invalid]
        .into_iter()
        .find(|r| rejection_code(*r) == code)
}

/// A buy's answer, and the stock left after it when it was confirmed.
type Decided = (BuyAnswer, Option<u32>);

fn decide(tx: &Connection, req: &BuyRequest) -> rusqlite::Result<Decided> {
    let reject = |reason| Ok((BuyAnswer::Rejected { sale_id: req.sale_id, reason }, None));
    let sale = tx
        .query_row(
            "SELECT price_minor, currency, per_user_limit, starts_at_ms, ends_at_ms, ended_at_ms, product_id
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
                    r.get::<_, i64>(6)?,
                ))
            },
        )
        .optional()?;
    let Some((price_minor, currency, limit, starts, ends, ended, product_id)) = sale else {
        return reject(BuyRejection::SaleNotActive);
    };
    if ended.is_some() || req.now_ms < starts || req.now_ms >= ends {
        return reject(BuyRejection::SaleNotActive);
    }
    let qty = i64::from(req.qty);
    if qty < 1 || qty > limit || req.qty > MAX_ORDER_QTY || money::line_total(price_minor, req.qty).is_err() {
        return reject(BuyRejection::Invalid);
    }
    let already: i64 = tx.query_row(
        "SELECT COALESCE(SUM(qty), 0) FROM orders WHERE sale_id = ?1 AND identity = ?2",
        params![req.sale_id, req.identity],
        |r| r.get(0),
    )?;
    if already.saturating_add(qty) > limit {
        return reject(BuyRejection::LimitReached);
    }
    // The units leave the product's stock and the sale's in this one transaction, each only if
    // it has them: sales sharing a product cannot sell more than it has.
    let from_product = tx.execute(
        "UPDATE products SET stock = stock - ?1 WHERE id = ?2 AND stock >= ?1",
        params![qty, product_id],
    )?;
    if from_product != 1 {
        return reject(BuyRejection::SoldOut);
    }
    let taken = tx.execute(
        "UPDATE sales SET stock_left = stock_left - ?1 WHERE id = ?2 AND stock_left >= ?1",
        params![qty, req.sale_id],
    )?;
    if taken != 1 {
        tx.execute("UPDATE products SET stock = stock + ?1 WHERE id = ?2", params![qty, product_id])?;
        return reject(BuyRejection::SoldOut);
    }
    tx.execute(
        "INSERT INTO orders (room, sale_id, identity, qty, price_minor, currency, idempotency_key, created_at_ms, buyer_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![req.room, req.sale_id, req.identity, qty, price_minor, currency, req.idempotency_key, req.now_ms, req.buyer_name],
    )?;
    let order_id = tx.last_insert_rowid();
    let stock_left: u32 = tx.query_row("SELECT stock_left FROM sales WHERE id = ?1", [req.sale_id], |r| r.get(0))?;
    let answer = BuyAnswer::Confirmed { order_id, sale_id: req.sale_id, qty: req.qty, price_minor, currency };
    Ok((answer, Some(stock_left)))
}

fn answer_from_row(
    sale_id: i64,
    order_id: Option<i64>,
    rejection: Option<String>,
    (qty, price, currency): (Option<u32>, Option<i64>, Option<String>),
    stock_left: Option<u32>,
) -> Decided {
    let rejected = |reason| (BuyAnswer::Rejected { sale_id, reason }, None);
    match (order_id, rejection.as_deref().and_then(parse_rejection)) {
        (Some(order_id), _) => {
            let answer = BuyAnswer::Confirmed {
                order_id,
                sale_id,
                qty: qty.unwrap_or(0),
                price_minor: price.unwrap_or(0),
                currency: currency.unwrap_or_default(),
            };
            (answer, Some(stock_left.unwrap_or(0)))
        }
        (None, Some(reason)) => rejected(reason),
        (None, None) => rejected(BuyRejection::Invalid),
    }
}

fn previous_answer(tx: &Connection, req: &BuyRequest) -> rusqlite::Result<Option<Decided>> {
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
                    r.get::<_, Option<u32>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<u32>>(6)?,
                ))
            },
        )
        .optional()?;
    Ok(row.map(|(sale_id, order_id, rejection, qty, price, currency, stock_left)| {
        answer_from_row(sale_id, order_id, rejection, (qty, price, currency), stock_left)
    }))
}
