//! One buy inside the group-commit transaction. Order matters: a known key answers first
//! (whatever changed since; looked up by the table's primary key), then the room's verdict if
//! it sent one. A sale's buy then checks the sale window, the quantity, the variant and the
//! per-user limit; a list-price buy (no sale) the product, the quantity and the variant. Only
//! then are the units taken, each stock only if it has them (the sale's, the variant's, the
//! product's), all or none, so no stock can go below zero: the check and the decrement are
//! one conditional `UPDATE` in the order's own transaction.

use rusqlite::{params, Connection, OptionalExtension};

use sellcast_room::money::{self, MAX_ORDER_QTY};
use sellcast_room::{BuyAnswer, BuyRejection};

use crate::model::{BuyOutcome, BuyRequest};

/// Stock of the list-price buys' products and variants as read before their batch began:
/// only the broken variant (`stale_stock_check`) uses it.
pub type StaleStock = std::collections::HashMap<(bool, i64), i64>;

/// The broken variant's read of the stock, outside (before) the batch's transaction.
pub fn stock_before_batch(conn: &Connection, requests: &[BuyRequest]) -> Option<StaleStock> {
    let mut stale = StaleStock::new();
    for req in requests.iter().filter(|r| r.sale_id.is_none()) {
        if let Some(p) = req.product_id {
            let stock = conn.query_row("SELECT stock FROM products WHERE id = ?1", [p], |r| r.get(0)).ok()?;
            stale.insert((false, p), stock);
        }
        if let Some(v) = req.variant_id {
            let stock = conn.query_row("SELECT stock FROM product_variants WHERE id = ?1", [v], |r| r.get(0)).ok()?;
            stale.insert((true, v), stock);
        }
    }
    Some(stale)
}

/// One buy; `stale` is `Some` only in the broken variant (`stale_stock_check`).
pub fn execute(tx: &Connection, req: &BuyRequest, stale: Option<&StaleStock>) -> rusqlite::Result<BuyOutcome> {
    if let Some((answer, stock_left)) = previous_answer(tx, req)? {
        return Ok(BuyOutcome { answer, replayed: true, stock_left });
    }
    let (answer, stock_left) = match (req.verdict, req.sale_id) {
        (Some(reason), _) => (rejected(req, reason), None),
        (None, Some(sale_id)) => decide_sale(tx, req, sale_id)?,
        (None, None) => decide_list_price(tx, req, stale)?,
    };
    let (order_id, rejection) = match &answer {
        BuyAnswer::Confirmed { order_id, .. } => (Some(*order_id), None),
        BuyAnswer::Rejected { reason, .. } => (None, Some(reason.code())),
    };
    tx.execute(
        "INSERT INTO idempotency (room, identity, key, sale_id, product_id, order_id, rejection, stock_left)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![req.room, req.identity, req.idempotency_key, req.sale_id, req.product_id, order_id, rejection, stock_left],
    )?;
    Ok(BuyOutcome { answer, replayed: false, stock_left })
}

pub(crate) fn rejected(req: &BuyRequest, reason: BuyRejection) -> BuyAnswer {
    BuyAnswer::Rejected { sale_id: req.sale_id, product_id: req.product_id, reason }
}

fn parse_rejection(code: &str) -> Option<BuyRejection> {
    BuyRejection::ALL.into_iter().find(|r| r.code() == code)
}

/// A buy's answer, and the stock left after it when it was confirmed.
pub(crate) type Decided = (BuyAnswer, Option<u32>);

/// A stock units are taken from.
#[derive(Debug, Clone, Copy)]
enum Stock {
    Sale(i64),
    Variant(i64),
    Product(i64),
}

/// Take `qty` units off every stock in `stocks`, each only if it has them: all or none (a
/// savepoint undoes the ones taken when a later one is short). False: one was short.
fn take_units(tx: &Connection, qty: i64, stocks: &[Stock]) -> rusqlite::Result<bool> {
    tx.execute_batch("SAVEPOINT take_units")?;
    for stock in stocks {
        let taken = match *stock {
            Stock::Sale(id) => tx.execute(
                "UPDATE sales SET stock_left = stock_left - ?1 WHERE id = ?2 AND stock_left >= ?1",
                params![qty, id],
            )?,
            Stock::Variant(id) => tx.execute(
                "UPDATE product_variants SET stock = stock - ?1 WHERE id = ?2 AND stock >= ?1",
                params![qty, id],
            )?,
            Stock::Product(id) => {
                tx.execute("UPDATE products SET stock = stock - ?1 WHERE id = ?2 AND stock >= ?1", params![qty, id])?
            }
        };
        if taken != 1 {
            tx.execute_batch("ROLLBACK TO take_units; RELEASE take_units")?;
            return Ok(false);
        }
    }
    tx.execute_batch("RELEASE take_units")?;
    Ok(true)
}

/// The broken variant: the check reads the stock as it was before the batch, and the write
/// sets what that check computed. Buys of one batch all see the same stock.
fn take_units_stale(tx: &Connection, qty: i64, stocks: &[Stock], stale: &StaleStock) -> rusqlite::Result<bool> {
    for stock in stocks {
        let (key, sql) = match *stock {
            Stock::Variant(id) => ((true, id), "UPDATE product_variants SET stock = ?1 WHERE id = ?2"),
            Stock::Product(id) => ((false, id), "UPDATE products SET stock = ?1 WHERE id = ?2"),
            Stock::Sale(_) => return take_units(tx, qty, stocks),
        };
        let before = stale.get(&key).copied().unwrap_or(0);
        if before < qty {
            return Ok(false);
        }
        tx.execute(sql, params![before - qty, key.1])?;
    }
    Ok(true)
}

/// The variant named fits product `product_id`: one of its own, and one is named when it has
/// any.
fn check_variant(tx: &Connection, product_id: i64, variant_id: Option<i64>) -> rusqlite::Result<Result<(), BuyRejection>> {
    match variant_id {
        None => {
            let any: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM product_variants WHERE product_id = ?1)",
                [product_id],
                |r| r.get(0),
            )?;
            Ok(if any { Err(BuyRejection::VariantRequired) } else { Ok(()) })
        }
        Some(v) => {
            let own: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM product_variants WHERE id = ?1 AND product_id = ?2)",
                params![v, product_id],
                |r| r.get(0),
            )?;
            Ok(if own { Ok(()) } else { Err(BuyRejection::UnknownVariant) })
        }
    }
}

fn decide_sale(tx: &Connection, req: &BuyRequest, sale_id: i64) -> rusqlite::Result<Decided> {
    let reject = |reason| Ok((rejected(req, reason), None));
    let sale = tx
        .query_row(
            "SELECT price_minor, currency, per_user_limit, starts_at_ms, ends_at_ms, ended_at_ms, product_id
             FROM sales WHERE id = ?1 AND room = ?2",
            params![sale_id, req.room],
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
    if req.product_id.is_some_and(|p| p != product_id) {
        return reject(BuyRejection::Invalid);
    }
    if ended.is_some() || req.now_ms < starts || req.now_ms >= ends {
        return reject(BuyRejection::SaleNotActive);
    }
    let qty = i64::from(req.qty);
    if qty < 1 || qty > limit || req.qty > MAX_ORDER_QTY || money::line_total(price_minor, req.qty).is_err() {
        return reject(BuyRejection::Invalid);
    }
    if let Err(reason) = check_variant(tx, product_id, req.variant_id)? {
        return reject(reason);
    }
    let already: i64 = tx.query_row(
        "SELECT COALESCE(SUM(qty), 0) FROM orders WHERE sale_id = ?1 AND identity = ?2",
        params![sale_id, req.identity],
        |r| r.get(0),
    )?;
    if already.saturating_add(qty) > limit {
        return reject(BuyRejection::LimitReached);
    }
    // The units leave the product's stock (and the variant's) and the sale's in this one
    // transaction, each only if it has them: sales sharing a product cannot sell more than it has.
    let mut stocks = vec![Stock::Product(product_id)];
    stocks.extend(req.variant_id.map(Stock::Variant));
    stocks.push(Stock::Sale(sale_id));
    if !take_units(tx, qty, &stocks)? {
        return reject(BuyRejection::SoldOut);
    }
    let order_id = insert_order(tx, req, product_id, price_minor, &currency)?;
    let stock_left: u32 = tx.query_row("SELECT stock_left FROM sales WHERE id = ?1", [sale_id], |r| r.get(0))?;
    let answer = BuyAnswer::Confirmed {
        order_id,
        sale_id: Some(sale_id),
        product_id,
        variant_id: req.variant_id,
        qty: req.qty,
        price_minor,
        currency,
    };
    Ok((answer, Some(stock_left)))
}

/// A buy at the product's list price: the stock left reported is the variant's when one was
/// bought, else the product's.
fn decide_list_price(tx: &Connection, req: &BuyRequest, stale: Option<&StaleStock>) -> rusqlite::Result<Decided> {
    let reject = |reason| Ok((rejected(req, reason), None));
    let Some(product_id) = req.product_id else {
        return reject(BuyRejection::Invalid);
    };
    let product = tx
        .query_row(
            "SELECT price_minor, currency FROM products WHERE id = ?1 AND room = ?2 AND deleted = 0",
            params![product_id, req.room],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()?;
    let Some((price_minor, currency)) = product else {
        return reject(BuyRejection::UnknownProduct);
    };
    if req.qty < 1 || req.qty > MAX_ORDER_QTY || money::line_total(price_minor, req.qty).is_err() {
        return reject(BuyRejection::Invalid);
    }
    if let Err(reason) = check_variant(tx, product_id, req.variant_id)? {
        return reject(reason);
    }
    let mut stocks = vec![Stock::Product(product_id)];
    stocks.extend(req.variant_id.map(Stock::Variant));
    let taken = match stale {
        Some(stale) => take_units_stale(tx, i64::from(req.qty), &stocks, stale)?,
        None => take_units(tx, i64::from(req.qty), &stocks)?,
    };
    if !taken {
        return reject(BuyRejection::SoldOut);
    }
    let order_id = insert_order(tx, req, product_id, price_minor, &currency)?;
    let stock_left: u32 = match req.variant_id {
        Some(v) => tx.query_row("SELECT stock FROM product_variants WHERE id = ?1", [v], |r| r.get(0))?,
        None => tx.query_row("SELECT stock FROM products WHERE id = ?1", [product_id], |r| r.get(0))?,
    };
    let answer = BuyAnswer::Confirmed {
        order_id,
        sale_id: None,
        product_id,
        variant_id: req.variant_id,
        qty: req.qty,
        price_minor,
        currency,
    };
    Ok((answer, Some(stock_left)))
}

fn insert_order(tx: &Connection, req: &BuyRequest, product_id: i64, price_minor: i64, currency: &str) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO orders (room, sale_id, product_id, variant_id, identity, qty, price_minor, currency, idempotency_key, created_at_ms, buyer_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            req.room,
            req.sale_id,
            product_id,
            req.variant_id,
            req.identity,
            req.qty,
            price_minor,
            currency,
            req.idempotency_key,
            req.now_ms,
            req.buyer_name
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// A stored answer: the order it placed (as stored), or the rejection it got.
pub(crate) struct StoredAnswer {
    pub sale_id: Option<i64>,
    pub product_id: Option<i64>,
    pub order_id: Option<i64>,
    pub rejection: Option<String>,
    pub order: Option<(i64, Option<i64>, u32, i64, String)>,
    pub stock_left: Option<u32>,
}

pub(crate) fn answer_from_row(row: StoredAnswer) -> Decided {
    let StoredAnswer { sale_id, product_id, order_id, rejection, order, stock_left } = row;
    let rejected = |reason| (BuyAnswer::Rejected { sale_id, product_id, reason }, None);
    match (order_id, order, rejection.as_deref().and_then(parse_rejection)) {
        (Some(order_id), Some((product_id, variant_id, qty, price_minor, currency)), _) => {
            let answer = BuyAnswer::Confirmed { order_id, sale_id, product_id, variant_id, qty, price_minor, currency };
            (answer, Some(stock_left.unwrap_or(0)))
        }
        (_, _, Some(reason)) => rejected(reason),
        _ => rejected(BuyRejection::Invalid),
    }
}

fn previous_answer(tx: &Connection, req: &BuyRequest) -> rusqlite::Result<Option<Decided>> {
    let row = tx
        .query_row(
            "SELECT i.sale_id, i.product_id, i.order_id, i.rejection, o.product_id, o.variant_id, o.qty, o.price_minor, o.currency, i.stock_left
             FROM idempotency i
             LEFT JOIN orders o ON o.id = i.order_id
             WHERE i.room = ?1 AND i.identity = ?2 AND i.key = ?3",
            params![req.room, req.identity, req.idempotency_key],
            |r| {
                let order = match r.get::<_, Option<i64>>(4)? {
                    Some(product_id) => Some((product_id, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?)),
                    None => None,
                };
                Ok(StoredAnswer {
                    sale_id: r.get(0)?,
                    product_id: r.get(1)?,
                    order_id: r.get(2)?,
                    rejection: r.get(3)?,
                    order,
                    stock_left: r.get(9)?,
                })
            },
        )
        .optional()?;
    Ok(row.map(answer_from_row))
}
