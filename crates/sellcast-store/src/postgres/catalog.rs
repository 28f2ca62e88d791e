//! Products, sales, highlights, moderation lists and the room's reads on PostgreSQL: the same
//! rules as the SQLite backend's `catalog.rs` (whose validation it shares), each change its
//! own transaction.

use postgres::{Client, GenericClient, Row};

use crate::catalog::{validate_product, validate_variants, validated_sale};
use crate::error::StoreError;
use crate::model::{Ban, DurableRoom, Order};
use sellcast_room::{Product, ProductDraft, Role, Sale, SaleDraft, ShowTotals, Variant};

use super::count;

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

const PRODUCT_COLS: &str = "id, title, price_minor, currency, image_url, stock";
const SALE_COLS: &str =
    "id, product_id, price_minor, currency, stock_total, stock_left, per_user_limit, starts_at_ms, ends_at_ms, ended_at_ms";

fn product_row(r: &Row) -> Product {
    Product {
        id: r.get(0),
        title: r.get(1),
        price_minor: r.get(2),
        currency: r.get(3),
        image_url: r.get(4),
        stock: count(r.get(5)),
        variants: Vec::new(),
    }
}

fn sale_row(r: &Row) -> Sale {
    Sale {
        id: r.get(0),
        product_id: r.get(1),
        price_minor: r.get(2),
        currency: r.get(3),
        stock_total: count(r.get(4)),
        stock_left: count(r.get(5)),
        per_user_limit: count(r.get(6)),
        starts_at_ms: r.get(7),
        ends_at_ms: r.get(8),
        ended_at_ms: r.get(9),
    }
}

fn variants_of(c: &mut impl GenericClient, product_id: i64) -> Result<Vec<Variant>, StoreError> {
    let rows = c.query("SELECT id, label, stock FROM product_variants WHERE product_id = $1 ORDER BY id", &[&product_id])?;
    Ok(rows.iter().map(|r| Variant { id: r.get(0), label: r.get(1), stock: count(r.get(2)) }).collect())
}

fn product(c: &mut impl GenericClient, room: &str, id: i64) -> Result<Product, StoreError> {
    let sql = format!("SELECT {PRODUCT_COLS} FROM products WHERE id = $1 AND room = $2 AND NOT deleted");
    let row = c.query_opt(sql.as_str(), &[&id, &room])?.ok_or_else(|| StoreError::NotFound(format!("product {id}")))?;
    let mut p = product_row(&row);
    p.variants = variants_of(c, id)?;
    Ok(p)
}

pub(super) fn sale(c: &mut impl GenericClient, room: &str, id: i64) -> Result<Sale, StoreError> {
    let sql = format!("SELECT {SALE_COLS} FROM sales WHERE id = $1 AND room = $2");
    let row = c.query_opt(sql.as_str(), &[&id, &room])?.ok_or_else(|| StoreError::NotFound(format!("sale {id}")))?;
    Ok(sale_row(&row))
}

pub fn create_product(c: &mut Client, room: &str, d: &ProductDraft, now_ms: i64) -> Result<Product, StoreError> {
    validate_product(d)?;
    let stock = i64::from(validate_variants(d)?);
    let mut tx = c.transaction()?;
    let id: i64 = tx
        .query_one(
            "INSERT INTO products (room, title, price_minor, currency, image_url, stock, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[&room, &d.title.trim(), &d.price_minor, &d.currency, &d.image_url, &stock, &now_ms],
        )?
        .get(0);
    for v in &d.variants {
        tx.execute(
            "INSERT INTO product_variants (product_id, label, stock) VALUES ($1, $2, $3)",
            &[&id, &v.label.trim(), &i64::from(v.stock)],
        )?;
    }
    tx.commit()?;
    product(c, room, id)
}

/// Change a product; variants as in the SQLite backend (`catalog::update_product`).
pub fn update_product(c: &mut Client, room: &str, id: i64, d: &ProductDraft) -> Result<Product, StoreError> {
    validate_product(d)?;
    let mut tx = c.transaction()?;
    let n = tx.execute(
        "UPDATE products SET title = $1, price_minor = $2, currency = $3, image_url = $4, stock = $5
         WHERE id = $6 AND room = $7 AND NOT deleted",
        &[&d.title.trim(), &d.price_minor, &d.currency, &d.image_url, &i64::from(d.stock), &id, &room],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("product {id}")));
    }
    if !d.variants.is_empty() {
        tx.execute("UPDATE product_variants SET stock = 0 WHERE product_id = $1", &[&id])?;
        for v in &d.variants {
            tx.execute(
                "INSERT INTO product_variants (product_id, label, stock) VALUES ($1, $2, $3)
                 ON CONFLICT (product_id, label) DO UPDATE SET stock = excluded.stock",
                &[&id, &v.label.trim(), &i64::from(v.stock)],
            )?;
        }
    }
    tx.execute(
        "UPDATE products SET stock = (SELECT SUM(stock) FROM product_variants WHERE product_id = $1)
         WHERE id = $1 AND EXISTS (SELECT 1 FROM product_variants WHERE product_id = $1)",
        &[&id],
    )?;
    tx.commit()?;
    product(c, room, id)
}

pub fn delete_product(c: &mut Client, room: &str, id: i64) -> Result<(), StoreError> {
    let mut tx = c.transaction()?;
    let n = tx.execute("UPDATE products SET deleted = TRUE WHERE id = $1 AND room = $2 AND NOT deleted", &[&id, &room])?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("product {id}")));
    }
    tx.execute("DELETE FROM pins WHERE room = $1 AND product_id = $2", &[&room, &id])?;
    tx.commit()?;
    Ok(())
}

pub fn create_sale(c: &mut Client, room: &str, d: &SaleDraft) -> Result<Sale, StoreError> {
    let p = product(c, room, d.product_id)?;
    let currency = validated_sale(d, &p)?;
    let id: i64 = c
        .query_one(
            "INSERT INTO sales (room, product_id, price_minor, currency, stock_total, stock_left, per_user_limit, starts_at_ms, ends_at_ms)
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8) RETURNING id",
            &[&room, &d.product_id, &d.price_minor, &currency, &i64::from(d.stock), &i64::from(d.per_user_limit), &d.starts_at_ms, &d.ends_at_ms],
        )?
        .get(0);
    sale(c, room, id)
}

pub fn end_sale(c: &mut Client, room: &str, id: i64, now_ms: i64) -> Result<Sale, StoreError> {
    let n = c.execute(
        "UPDATE sales SET ended_at_ms = $1 WHERE id = $2 AND room = $3 AND ended_at_ms IS NULL",
        &[&now_ms, &id, &room],
    )?;
    if n == 0 {
        // Either unknown or already ended: tell which.
        sale(c, room, id)?;
        return Err(invalid(format!("sale {id} has already ended")));
    }
    sale(c, room, id)
}

pub fn set_pins(c: &mut Client, room: &str, ids: &[i64]) -> Result<(), StoreError> {
    if ids.len() > crate::catalog::MAX_PINS {
        return Err(invalid(format!("at most {} products can be highlighted", crate::catalog::MAX_PINS)));
    }
    let mut tx = c.transaction()?;
    for id in ids {
        product(&mut tx, room, *id)?;
    }
    tx.execute("DELETE FROM pins WHERE room = $1", &[&room])?;
    for (i, id) in ids.iter().enumerate() {
        tx.execute("INSERT INTO pins (room, position, product_id) VALUES ($1, $2, $3)", &[&room, &(i as i64), id])?;
    }
    tx.commit()?;
    Ok(())
}

pub fn ban(c: &mut Client, room: &str, identity: &str, until_ms: Option<i64>, by: Role) -> Result<(), StoreError> {
    if identity.is_empty() || identity.len() > 256 {
        return Err(invalid("identity must be 1-256 bytes"));
    }
    c.execute(
        "INSERT INTO bans (room, identity, until_ms, by_role) VALUES ($1, $2, $3, $4)
         ON CONFLICT (room, identity) DO UPDATE SET until_ms = excluded.until_ms, by_role = excluded.by_role",
        &[&room, &identity, &until_ms, &crate::catalog::role_code(by)],
    )?;
    Ok(())
}

pub fn unban(c: &mut Client, room: &str, identity: &str) -> Result<(), StoreError> {
    c.execute("DELETE FROM bans WHERE room = $1 AND identity = $2", &[&room, &identity])?;
    Ok(())
}

pub fn set_blocked_words(c: &mut Client, room: &str, words: &[String]) -> Result<(), StoreError> {
    if words.len() > 500 || words.iter().any(|w| w.chars().count() > 64) {
        return Err(invalid("at most 500 words of at most 64 characters"));
    }
    let mut tx = c.transaction()?;
    tx.execute("DELETE FROM blocked_words WHERE room = $1", &[&room])?;
    for w in words {
        let w = w.trim().to_lowercase();
        if !w.is_empty() {
            tx.execute("INSERT INTO blocked_words (room, word) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&room, &w])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub fn load_room(c: &mut Client, room: &str) -> Result<DurableRoom, StoreError> {
    // One snapshot for every read, so the parts agree with each other.
    let mut tx = c.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).read_only(true).start()?;
    let sql = format!("SELECT {PRODUCT_COLS} FROM products WHERE room = $1 AND NOT deleted ORDER BY id");
    let mut products: Vec<Product> = tx.query(sql.as_str(), &[&room])?.iter().map(product_row).collect();
    let variants = tx.query(
        "SELECT v.product_id, v.id, v.label, v.stock FROM product_variants v JOIN products p ON p.id = v.product_id
         WHERE p.room = $1 AND NOT p.deleted ORDER BY v.id",
        &[&room],
    )?;
    for r in &variants {
        let product_id: i64 = r.get(0);
        if let Some(p) = products.iter_mut().find(|p| p.id == product_id) {
            p.variants.push(Variant { id: r.get(1), label: r.get(2), stock: count(r.get(3)) });
        }
    }
    let sql = format!("SELECT {SALE_COLS} FROM sales WHERE room = $1 ORDER BY id");
    let sales = tx.query(sql.as_str(), &[&room])?.iter().map(sale_row).collect();
    let pins = tx.query("SELECT product_id FROM pins WHERE room = $1 ORDER BY position", &[&room])?.iter().map(|r| r.get(0)).collect();
    let bans = tx
        .query("SELECT identity, until_ms, by_role FROM bans WHERE room = $1", &[&room])?
        .iter()
        .map(|r| Ban { identity: r.get(0), until_ms: r.get(1), by: crate::catalog::parse_role(r.get(2)) })
        .collect();
    let blocked_words = tx.query("SELECT word FROM blocked_words WHERE room = $1 ORDER BY word", &[&room])?.iter().map(|r| r.get(0)).collect();
    let purchased = tx
        .query(
            "SELECT sale_id, identity, SUM(qty)::BIGINT FROM orders WHERE room = $1 AND sale_id IS NOT NULL
             GROUP BY sale_id, identity ORDER BY sale_id, identity",
            &[&room],
        )?
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1), count(r.get(2))))
        .collect();
    let totals = room_totals(&mut tx, room)?;
    let (show, likes_total) = super::show::load_show(&mut tx, room)?;
    let names = super::show::load_names(&mut tx, room)?;
    tx.commit()?;
    Ok(DurableRoom { products, sales, pins, bans, blocked_words, purchased, totals, show, likes_total, names })
}

/// Revenue per currency, orders and units per product, summed by PostgreSQL over every order.
fn room_totals(c: &mut impl GenericClient, room: &str) -> Result<ShowTotals, StoreError> {
    let mut totals = ShowTotals::default();
    let rows = c.query(
        "SELECT product_id, currency, COUNT(*), SUM(qty)::BIGINT, SUM(qty * price_minor)::BIGINT
         FROM orders WHERE room = $1 GROUP BY product_id, currency ORDER BY product_id, currency",
        &[&room],
    )?;
    for r in &rows {
        let (orders, units): (i64, i64) = (r.get(2), r.get(3));
        totals.add(r.get(0), u64::try_from(orders).unwrap_or(0), u64::try_from(units).unwrap_or(0), r.get::<_, &str>(1), r.get(4));
    }
    Ok(totals)
}

const ORDER_COLS: &str = "o.id, o.room, o.sale_id, o.product_id, COALESCE(p.title, ''), o.variant_id, COALESCE(v.label, ''),
    o.identity, o.qty, o.price_minor, o.currency, o.idempotency_key, o.created_at_ms, COALESCE(n.name, o.buyer_name, o.identity)
    FROM orders o LEFT JOIN products p ON p.id = o.product_id LEFT JOIN product_variants v ON v.id = o.variant_id
    LEFT JOIN display_names n ON n.room = o.room AND n.identity = o.identity";

fn order_row(r: &Row) -> Order {
    Order {
        id: r.get(0),
        room: r.get(1),
        sale_id: r.get(2),
        product_id: r.get(3),
        title: r.get(4),
        variant_id: r.get(5),
        variant: r.get(6),
        identity: r.get(7),
        qty: count(r.get(8)),
        price_minor: r.get(9),
        currency: r.get(10),
        idempotency_key: r.get(11),
        created_at_ms: r.get(12),
        buyer_name: r.get(13),
    }
}

pub fn recent_orders(c: &mut Client, room: &str, limit: u32) -> Result<Vec<Order>, StoreError> {
    let sql = format!("SELECT {ORDER_COLS} WHERE o.room = $1 ORDER BY o.id DESC LIMIT $2");
    Ok(c.query(sql.as_str(), &[&room, &i64::from(limit)])?.iter().map(order_row).collect())
}

/// The orders `identity` placed in `room`, newest first; nobody else's.
pub fn orders_of(c: &mut Client, room: &str, identity: &str, limit: u32) -> Result<Vec<Order>, StoreError> {
    let sql = format!("SELECT {ORDER_COLS} WHERE o.room = $1 AND o.identity = $2 ORDER BY o.id DESC LIMIT $3");
    Ok(c.query(sql.as_str(), &[&room, &identity, &i64::from(limit)])?.iter().map(order_row).collect())
}

/// `(units sold, revenue in minor units)` of a sale, from the orders themselves.
pub fn sale_totals(c: &mut Client, room: &str, sale_id: i64) -> Result<(i64, i64), StoreError> {
    let r = c.query_one(
        "SELECT COALESCE(SUM(qty), 0)::BIGINT, COALESCE(SUM(qty * price_minor), 0)::BIGINT FROM orders WHERE room = $1 AND sale_id = $2",
        &[&room, &sale_id],
    )?;
    Ok((r.get(0), r.get(1)))
}
