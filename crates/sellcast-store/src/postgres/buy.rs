//! One buy inside the PostgreSQL group-commit transaction, with the SQLite backend's rules in
//! the same order (`buy.rs` says why that order): a known key answers first, then the room's
//! verdict, then the sale or list-price checks and the per-user limit, then the units taken,
//! each stock by one conditional `UPDATE ... WHERE stock >= qty` in the order's own
//! transaction. Under PostgreSQL's READ COMMITTED such an update waits for a concurrent writer
//! of the same row and re-checks its condition on the row as committed, so two nodes buying
//! the last unit can never both take it.

use postgres::Transaction;

use sellcast_room::money::{self, MAX_ORDER_QTY};
use sellcast_room::{BuyAnswer, BuyRejection};

use crate::buy::{answer_from_row, rejected, Decided, StoredAnswer};
use crate::model::{BuyOutcome, BuyRequest};

use super::count;
use super::statements::Statements;

/// One buy, in its own savepoint `sp` of the batch's transaction.
pub fn execute(sp: &mut Transaction<'_>, st: &mut Statements, req: &BuyRequest) -> Result<BuyOutcome, postgres::Error> {
    if let Some((answer, stock_left)) = previous_answer(sp, st, req)? {
        return Ok(BuyOutcome { answer, replayed: true, stock_left });
    }
    let (answer, stock_left) = match (req.verdict, req.sale_id) {
        (Some(reason), _) => (rejected(req, reason), None),
        (None, Some(sale_id)) => decide_sale(sp, st, req, sale_id)?,
        (None, None) => decide_list_price(sp, st, req)?,
    };
    let (order_id, rejection) = match &answer {
        BuyAnswer::Confirmed { order_id, .. } => (Some(*order_id), None),
        BuyAnswer::Rejected { reason, .. } => (None, Some(reason.code())),
    };
    let stock: Option<i64> = stock_left.map(i64::from);
    st.execute(sp, "INSERT INTO idempotency (room, identity, key, sale_id, product_id, order_id, rejection, stock_left)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[&req.room, &req.identity, &req.idempotency_key, &req.sale_id, &req.product_id, &order_id, &rejection, &stock],
    )?;
    Ok(BuyOutcome { answer, replayed: false, stock_left })
}

/// A stock units are taken from.
#[derive(Debug, Clone, Copy)]
enum Stock {
    Sale(i64),
    Variant(i64),
    Product(i64),
}

/// Take `qty` units off every stock in `stocks`, each only if it has them: all or none (a
/// nested savepoint undoes the ones taken when a later one is short). False: one was short.
fn take_units(tx: &mut Transaction<'_>, st: &mut Statements, qty: i64, stocks: &[Stock]) -> Result<bool, postgres::Error> {
    let mut sp = tx.transaction()?;
    for stock in stocks {
        let taken = match *stock {
            Stock::Sale(id) => st.execute(&mut sp, "UPDATE sales SET stock_left = stock_left - $1 WHERE id = $2 AND stock_left >= $1", &[&qty, &id])?,
            Stock::Variant(id) => st.execute(&mut sp, "UPDATE product_variants SET stock = stock - $1 WHERE id = $2 AND stock >= $1", &[&qty, &id])?,
            Stock::Product(id) => st.execute(&mut sp, "UPDATE products SET stock = stock - $1 WHERE id = $2 AND stock >= $1", &[&qty, &id])?,
        };
        if taken != 1 {
            sp.rollback()?;
            return Ok(false);
        }
    }
    sp.commit()?;
    Ok(true)
}

/// The variant named fits product `product_id`: one of its own, and one is named when it has any.
fn check_variant(tx: &mut Transaction<'_>, st: &mut Statements, product_id: i64, variant_id: Option<i64>) -> Result<Result<(), BuyRejection>, postgres::Error> {
    match variant_id {
        None => {
            let any: bool = st.query_one(tx, "SELECT EXISTS (SELECT 1 FROM product_variants WHERE product_id = $1)", &[&product_id])?.get(0);
            Ok(if any { Err(BuyRejection::VariantRequired) } else { Ok(()) })
        }
        Some(v) => {
            let own: bool = st.query_one(tx, "SELECT EXISTS (SELECT 1 FROM product_variants WHERE id = $1 AND product_id = $2)", &[&v, &product_id])?
                .get(0);
            Ok(if own { Ok(()) } else { Err(BuyRejection::UnknownVariant) })
        }
    }
}

fn decide_sale(tx: &mut Transaction<'_>, st: &mut Statements, req: &BuyRequest, sale_id: i64) -> Result<Decided, postgres::Error> {
    let reject = |reason| Ok((rejected(req, reason), None));
    let sale = st.query_opt(tx, "SELECT price_minor, currency, per_user_limit, starts_at_ms, ends_at_ms, ended_at_ms, product_id
         FROM sales WHERE id = $1 AND room = $2",
        &[&sale_id, &req.room],
    )?;
    let Some(sale) = sale else {
        return reject(BuyRejection::SaleNotActive);
    };
    let (price_minor, currency): (i64, String) = (sale.get(0), sale.get(1));
    let (limit, starts, ends, ended, product_id): (i64, i64, i64, Option<i64>, i64) = (sale.get(2), sale.get(3), sale.get(4), sale.get(5), sale.get(6));
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
    if let Err(reason) = check_variant(tx, st, product_id, req.variant_id)? {
        return reject(reason);
    }
    let already: i64 = st.query_one(tx, "SELECT COALESCE(SUM(qty), 0)::BIGINT FROM orders WHERE sale_id = $1 AND identity = $2", &[&sale_id, &req.identity])?
        .get(0);
    if already.saturating_add(qty) > limit {
        return reject(BuyRejection::LimitReached);
    }
    let mut stocks = vec![Stock::Product(product_id)];
    stocks.extend(req.variant_id.map(Stock::Variant));
    stocks.push(Stock::Sale(sale_id));
    if !take_units(tx, st, qty, &stocks)? {
        return reject(BuyRejection::SoldOut);
    }
    let order_id = insert_order(tx, st, req, product_id, price_minor, &currency)?;
    let stock_left = count(st.query_one(tx, "SELECT stock_left FROM sales WHERE id = $1", &[&sale_id])?.get(0));
    let answer = BuyAnswer::Confirmed { order_id, sale_id: Some(sale_id), product_id, variant_id: req.variant_id, qty: req.qty, price_minor, currency };
    Ok((answer, Some(stock_left)))
}

/// A buy at the product's list price: the stock left reported is the variant's when one was
/// bought, else the product's.
fn decide_list_price(tx: &mut Transaction<'_>, st: &mut Statements, req: &BuyRequest) -> Result<Decided, postgres::Error> {
    let reject = |reason| Ok((rejected(req, reason), None));
    let Some(product_id) = req.product_id else {
        return reject(BuyRejection::Invalid);
    };
    let product = st.query_opt(tx, "SELECT price_minor, currency FROM products WHERE id = $1 AND room = $2 AND NOT deleted",
        &[&product_id, &req.room],
    )?;
    let Some(product) = product else {
        return reject(BuyRejection::UnknownProduct);
    };
    let (price_minor, currency): (i64, String) = (product.get(0), product.get(1));
    if req.qty < 1 || req.qty > MAX_ORDER_QTY || money::line_total(price_minor, req.qty).is_err() {
        return reject(BuyRejection::Invalid);
    }
    if let Err(reason) = check_variant(tx, st, product_id, req.variant_id)? {
        return reject(reason);
    }
    let mut stocks = vec![Stock::Product(product_id)];
    stocks.extend(req.variant_id.map(Stock::Variant));
    if !take_units(tx, st, i64::from(req.qty), &stocks)? {
        return reject(BuyRejection::SoldOut);
    }
    let order_id = insert_order(tx, st, req, product_id, price_minor, &currency)?;
    let left = match req.variant_id {
        Some(v) => st.query_one(tx, "SELECT stock FROM product_variants WHERE id = $1", &[&v])?,
        None => st.query_one(tx, "SELECT stock FROM products WHERE id = $1", &[&product_id])?,
    };
    let answer = BuyAnswer::Confirmed { order_id, sale_id: None, product_id, variant_id: req.variant_id, qty: req.qty, price_minor, currency };
    Ok((answer, Some(count(left.get(0)))))
}

fn insert_order(tx: &mut Transaction<'_>, st: &mut Statements, req: &BuyRequest, product_id: i64, price_minor: i64, currency: &str) -> Result<i64, postgres::Error> {
    let row = st.query_one(tx, "INSERT INTO orders (room, sale_id, product_id, variant_id, identity, qty, price_minor, currency, idempotency_key, created_at_ms, buyer_name)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        &[
            &req.room,
            &req.sale_id,
            &product_id,
            &req.variant_id,
            &req.identity,
            &i64::from(req.qty),
            &price_minor,
            &currency,
            &req.idempotency_key,
            &req.now_ms,
            &req.buyer_name,
        ],
    )?;
    Ok(row.get(0))
}

fn previous_answer(tx: &mut Transaction<'_>, st: &mut Statements, req: &BuyRequest) -> Result<Option<Decided>, postgres::Error> {
    let row = st.query_opt(tx, "SELECT i.sale_id, i.product_id, i.order_id, i.rejection, o.product_id, o.variant_id, o.qty, o.price_minor, o.currency, i.stock_left
         FROM idempotency i
         LEFT JOIN orders o ON o.id = i.order_id
         WHERE i.room = $1 AND i.identity = $2 AND i.key = $3",
        &[&req.room, &req.identity, &req.idempotency_key],
    )?;
    Ok(row.map(|r| {
        let order = r.get::<_, Option<i64>>(4).map(|product_id| {
            (product_id, r.get::<_, Option<i64>>(5), count(r.get(6)), r.get::<_, i64>(7), r.get::<_, String>(8))
        });
        answer_from_row(StoredAnswer {
            sale_id: r.get(0),
            product_id: r.get(1),
            order_id: r.get(2),
            rejection: r.get(3),
            order,
            stock_left: r.get::<_, Option<i64>>(9).map(count),
        })
    }))
}
