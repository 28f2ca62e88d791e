//! Products, sales, highlights and moderation lists: each change is its own transaction.
//! Every input is validated here, so nothing malformed reaches a table.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::StoreError;
use sellcast_room::money::{self, AmountError};
use sellcast_room::{Product, ProductDraft, Role, Sale, SaleDraft, ShowTotals, Variant, MAX_VARIANTS, MAX_VARIANT_LABEL};

use crate::model::{Ban, DurableRoom, Order};

pub const MAX_PINS: usize = 3;

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

fn out_of_range(e: AmountError) -> StoreError {
    StoreError::Invalid(e.to_string())
}

/// A product as a host submitted it is fit to store (also the `api_bodies` fuzz target's check).
pub fn validate_product(d: &ProductDraft) -> Result<(), StoreError> {
    let title_len = d.title.trim().chars().count();
    if !(1..=200).contains(&title_len) {
        return Err(invalid("title must be 1-200 characters"));
    }
    validate_currency(&d.currency)?;
    money::check_price(d.price_minor).map_err(out_of_range)?;
    money::check_stock(d.stock).map_err(out_of_range)?;
    d.check_image_url().map_err(|e| invalid(e.to_string()))?;
    validate_variants(d).map(|_| ())
}

/// The variants of a draft are fit to store; the product's stock with them (their sum, or
/// the draft's stock without any).
pub(crate) fn validate_variants(d: &ProductDraft) -> Result<u32, StoreError> {
    if d.variants.is_empty() {
        return Ok(d.stock);
    }
    if d.variants.len() > MAX_VARIANTS {
        return Err(invalid(format!("at most {MAX_VARIANTS} variants per product")));
    }
    let mut labels = std::collections::HashSet::new();
    let mut total: u32 = 0;
    for v in &d.variants {
        let label = v.label.trim();
        let chars = label.chars().count();
        if !(1..=MAX_VARIANT_LABEL).contains(&chars) || label.chars().any(char::is_control) {
            return Err(invalid(format!("a variant label must be 1-{MAX_VARIANT_LABEL} characters")));
        }
        if !labels.insert(label) {
            return Err(invalid(format!("variant \"{label}\" is listed twice")));
        }
        money::check_stock(v.stock).map_err(out_of_range)?;
        total = total.saturating_add(v.stock);
    }
    money::check_stock(total).map_err(out_of_range)?;
    Ok(total)
}

fn validate_currency(c: &str) -> Result<(), StoreError> {
    if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(invalid("currency must be 3 uppercase letters (ISO 4217)"))
    }
}

fn product_row(r: &Row<'_>) -> rusqlite::Result<Product> {
    Ok(Product {
        id: r.get(0)?,
        title: r.get(1)?,
        price_minor: r.get(2)?,
        currency: r.get(3)?,
        image_url: r.get(4)?,
        stock: r.get(5)?,
        variants: Vec::new(),
    })
}

/// Product `id`'s variants, in the order they were added.
fn variants_of(conn: &Connection, product_id: i64) -> rusqlite::Result<Vec<Variant>> {
    conn.prepare_cached("SELECT id, label, stock FROM product_variants WHERE product_id = ?1 ORDER BY id")?
        .query_map([product_id], |r| Ok(Variant { id: r.get(0)?, label: r.get(1)?, stock: r.get(2)? }))?
        .collect()
}

const PRODUCT_COLS: &str = "id, title, price_minor, currency, image_url, stock";
const SALE_COLS: &str =
    "id, product_id, price_minor, currency, stock_total, stock_left, per_user_limit, starts_at_ms, ends_at_ms, ended_at_ms";

fn sale_row(r: &Row<'_>) -> rusqlite::Result<Sale> {
    Ok(Sale {
        id: r.get(0)?,
        product_id: r.get(1)?,
        price_minor: r.get(2)?,
        currency: r.get(3)?,
        stock_total: r.get(4)?,
        stock_left: r.get(5)?,
        per_user_limit: r.get(6)?,
        starts_at_ms: r.get(7)?,
        ends_at_ms: r.get(8)?,
        ended_at_ms: r.get(9)?,
    })
}

fn product(conn: &Connection, room: &str, id: i64) -> Result<Product, StoreError> {
    conn.query_row(
        &format!("SELECT {PRODUCT_COLS} FROM products WHERE id = ?1 AND room = ?2 AND deleted = 0"),
        params![id, room],
        product_row,
    )
    .optional()?
    .map(|mut p| {
        p.variants = variants_of(conn, id)?;
        Ok::<_, rusqlite::Error>(p)
    })
    .transpose()?
    .ok_or_else(|| StoreError::NotFound(format!("product {id}")))
}

pub(crate) fn sale(conn: &Connection, room: &str, id: i64) -> Result<Sale, StoreError> {
    conn.query_row(&format!("SELECT {SALE_COLS} FROM sales WHERE id = ?1 AND room = ?2"), params![id, room], sale_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("sale {id}")))
}

pub fn create_product(conn: &mut Connection, room: &str, d: &ProductDraft, now_ms: i64) -> Result<Product, StoreError> {
    validate_product(d)?;
    let stock = validate_variants(d)?;
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO products (room, title, price_minor, currency, image_url, stock, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![room, d.title.trim(), d.price_minor, d.currency, d.image_url, stock, now_ms],
    )?;
    let id = tx.last_insert_rowid();
    for v in &d.variants {
        tx.execute("INSERT INTO product_variants (product_id, label, stock) VALUES (?1, ?2, ?3)", params![id, v.label.trim(), v.stock])?;
    }
    tx.commit()?;
    product(conn, room, id)
}

/// Change a product. With variants in the draft, a listed label gets its stock (a new one is
/// added) and one left out keeps its row, which orders name, with no stock. Without, a
/// product that has variants keeps them. Either way a product with variants holds their sum.
pub fn update_product(conn: &mut Connection, room: &str, id: i64, d: &ProductDraft) -> Result<Product, StoreError> {
    validate_product(d)?;
    let tx = conn.transaction()?;
    let n = tx.execute(
        "UPDATE products SET title = ?1, price_minor = ?2, currency = ?3, image_url = ?4, stock = ?5
         WHERE id = ?6 AND room = ?7 AND deleted = 0",
        params![d.title.trim(), d.price_minor, d.currency, d.image_url, d.stock, id, room],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("product {id}")));
    }
    if !d.variants.is_empty() {
        tx.execute("UPDATE product_variants SET stock = 0 WHERE product_id = ?1", [id])?;
        for v in &d.variants {
            tx.execute(
                "INSERT INTO product_variants (product_id, label, stock) VALUES (?1, ?2, ?3)
                 ON CONFLICT (product_id, label) DO UPDATE SET stock = excluded.stock",
                params![id, v.label.trim(), v.stock],
            )?;
        }
    }
    tx.execute(
        "UPDATE products SET stock = (SELECT SUM(stock) FROM product_variants WHERE product_id = ?1)
         WHERE id = ?1 AND EXISTS (SELECT 1 FROM product_variants WHERE product_id = ?1)",
        [id],
    )?;
    tx.commit()?;
    product(conn, room, id)
}

pub fn delete_product(conn: &mut Connection, room: &str, id: i64) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let n = tx.execute("UPDATE products SET deleted = 1 WHERE id = ?1 AND room = ?2 AND deleted = 0", params![id, room])?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("product {id}")));
    }
    tx.execute("DELETE FROM pins WHERE room = ?1 AND product_id = ?2", params![room, id])?;
    tx.commit()?;
    Ok(())
}

/// A sale draft of product `p` is fit to store; the sale's currency (the product's unless named).
pub(crate) fn validated_sale(d: &SaleDraft, p: &Product) -> Result<String, StoreError> {
    if d.stock < 1 || d.per_user_limit < 1 {
        return Err(invalid("a sale needs stock >= 1 and per_user_limit >= 1"));
    }
    // A sale sells the product's own units: it cannot offer more than are in stock. (Each
    // order also takes its units off the product, so sales sharing a product cannot oversell.)
    if d.stock > p.stock {
        return Err(invalid(format!(
            "a sale of {} units needs {} in stock, and \"{}\" has {} in stock",
            d.stock, d.stock, p.title, p.stock
        )));
    }
    if d.ends_at_ms <= d.starts_at_ms {
        return Err(invalid("a sale must end after it starts"));
    }
    money::check_price(d.price_minor).map_err(out_of_range)?;
    money::check_stock(d.stock).map_err(out_of_range)?;
    money::check_stock(d.per_user_limit).map_err(out_of_range)?;
    let currency = d.currency.clone().unwrap_or_else(|| p.currency.clone());
    validate_currency(&currency)?;
    Ok(currency)
}

pub fn create_sale(conn: &mut Connection, room: &str, d: &SaleDraft) -> Result<Sale, StoreError> {
    let p = product(conn, room, d.product_id)?;
    let currency = validated_sale(d, &p)?;
    conn.execute(
        "INSERT INTO sales (room, product_id, price_minor, currency, stock_total, stock_left, per_user_limit, starts_at_ms, ends_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8)",
        params![room, d.product_id, d.price_minor, currency, d.stock, d.per_user_limit, d.starts_at_ms, d.ends_at_ms],
    )?;
    sale(conn, room, conn.last_insert_rowid())
}

pub fn end_sale(conn: &mut Connection, room: &str, id: i64, now_ms: i64) -> Result<Sale, StoreError> {
    let n = conn.execute(
        "UPDATE sales SET ended_at_ms = ?1 WHERE id = ?2 AND room = ?3 AND ended_at_ms IS NULL",
        params![now_ms, id, room],
    )?;
    if n == 0 {
        // Either unknown or already ended: tell which.
        sale(conn, room, id)?;
        return Err(invalid(format!("sale {id} has already ended")));
    }
    sale(conn, room, id)
}

pub fn set_pins(conn: &mut Connection, room: &str, ids: &[i64]) -> Result<(), StoreError> {
    if ids.len() > MAX_PINS {
        return Err(invalid(format!("at most {MAX_PINS} products can be highlighted")));
    }
    let tx = conn.transaction()?;
    for id in ids {
        product(&tx, room, *id)?;
    }
    tx.execute("DELETE FROM pins WHERE room = ?1", [room])?;
    for (i, id) in ids.iter().enumerate() {
        tx.execute("INSERT INTO pins (room, position, product_id) VALUES (?1, ?2, ?3)", params![room, i as i64, id])?;
    }
    tx.commit()?;
    Ok(())
}

/// How a banning role is stored in `bans.by_role` (NULL, in rows older than the column: host).
pub(crate) fn role_code(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Moderator => "moderator",
        Role::Host => "host",
    }
}

pub(crate) fn parse_role(code: Option<String>) -> Role {
    match code.as_deref() {
        Some("viewer") => Role::Viewer,
        Some("moderator") => Role::Moderator,
        _ => Role::Host,
    }
}

pub fn ban(conn: &mut Connection, room: &str, identity: &str, until_ms: Option<i64>, by: Role) -> Result<(), StoreError> {
    if identity.is_empty() || identity.len() > 256 {
        return Err(invalid("identity must be 1-256 bytes"));
    }
    conn.execute(
        "INSERT INTO bans (room, identity, until_ms, by_role) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (room, identity) DO UPDATE SET until_ms = excluded.until_ms, by_role = excluded.by_role",
        params![room, identity, until_ms, role_code(by)],
    )?;
    Ok(())
}

pub fn unban(conn: &mut Connection, room: &str, identity: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM bans WHERE room = ?1 AND identity = ?2", params![room, identity])?;
    Ok(())
}

pub fn set_blocked_words(conn: &mut Connection, room: &str, words: &[String]) -> Result<(), StoreError> {
    if words.len() > 500 || words.iter().any(|w| w.chars().count() > 64) {
        return Err(invalid("at most 500 words of at most 64 characters"));
    }
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM blocked_words WHERE room = ?1", [room])?;
    for w in words {
        let w = w.trim().to_lowercase();
        if !w.is_empty() {
            tx.execute("INSERT OR IGNORE INTO blocked_words (room, word) VALUES (?1, ?2)", params![room, w])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub fn load_room(conn: &Connection, room: &str) -> Result<DurableRoom, StoreError> {
    let mut products = conn
        .prepare(&format!("SELECT {PRODUCT_COLS} FROM products WHERE room = ?1 AND deleted = 0 ORDER BY id"))?
        .query_map([room], product_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let variants = conn
        .prepare(
            "SELECT v.product_id, v.id, v.label, v.stock FROM product_variants v JOIN products p ON p.id = v.product_id
             WHERE p.room = ?1 AND p.deleted = 0 ORDER BY v.id",
        )?
        .query_map([room], |r| Ok((r.get::<_, i64>(0)?, Variant { id: r.get(1)?, label: r.get(2)?, stock: r.get(3)? })))?
        .collect::<Result<Vec<_>, _>>()?;
    for (product_id, variant) in variants {
        if let Some(p) = products.iter_mut().find(|p| p.id == product_id) {
            p.variants.push(variant);
        }
    }
    let sales = conn
        .prepare(&format!("SELECT {SALE_COLS} FROM sales WHERE room = ?1 ORDER BY id"))?
        .query_map([room], sale_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let pins = conn
        .prepare("SELECT product_id FROM pins WHERE room = ?1 ORDER BY position")?
        .query_map([room], |r| r.get(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    let bans = conn
        .prepare("SELECT identity, until_ms, by_role FROM bans WHERE room = ?1")?
        .query_map([room], |r| Ok(Ban { identity: r.get(0)?, until_ms: r.get(1)?, by: parse_role(r.get(2)?) }))?
        .collect::<Result<Vec<_>, _>>()?;
    let blocked_words = conn
        .prepare("SELECT word FROM blocked_words WHERE room = ?1 ORDER BY word")?
        .query_map([room], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    let purchased = conn
        .prepare("SELECT sale_id, identity, SUM(qty) FROM orders WHERE room = ?1 AND sale_id IS NOT NULL GROUP BY sale_id, identity")?
        .query_map([room], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, u32>(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let totals = room_totals(conn, room)?;
    let (show, likes_total) = crate::show::load_show(conn, room)?;
    let names = crate::show::load_names(conn, room)?;
    Ok(DurableRoom { products, sales, pins, bans, blocked_words, purchased, totals, show, likes_total, names })
}

/// Revenue per currency, orders and units per product, summed by SQLite over every order of
/// `room`: the figures a host console shows, whatever it saw or missed.
pub fn room_totals(conn: &Connection, room: &str) -> Result<ShowTotals, StoreError> {
    let mut totals = ShowTotals::default();
    let rows = conn
        .prepare(
            "SELECT o.product_id, o.currency, COUNT(*), SUM(o.qty), SUM(o.qty * o.price_minor)
             FROM orders o
             WHERE o.room = ?1 GROUP BY o.product_id, o.currency ORDER BY o.product_id, o.currency",
        )?
        .query_map([room], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    for (product_id, currency, orders, units, minor) in rows {
        totals.add(product_id, u64::try_from(orders).unwrap_or(0), u64::try_from(units).unwrap_or(0), &currency, minor);
    }
    Ok(totals)
}

const ORDER_COLS: &str = "o.id, o.room, o.sale_id, o.product_id, COALESCE(p.title, ''), o.variant_id, COALESCE(v.label, ''),
    o.identity, o.qty, o.price_minor, o.currency, o.idempotency_key, o.created_at_ms, COALESCE(n.name, o.buyer_name, o.identity)
    FROM orders o LEFT JOIN products p ON p.id = o.product_id LEFT JOIN product_variants v ON v.id = o.variant_id
    LEFT JOIN display_names n ON n.room = o.room AND n.identity = o.identity";

fn order_row(r: &Row<'_>) -> rusqlite::Result<Order> {
    Ok(Order {
        id: r.get(0)?,
        room: r.get(1)?,
        sale_id: r.get(2)?,
        product_id: r.get(3)?,
        title: r.get(4)?,
        variant_id: r.get(5)?,
        variant: r.get(6)?,
        identity: r.get(7)?,
        qty: r.get(8)?,
        price_minor: r.get(9)?,
        currency: r.get(10)?,
        idempotency_key: r.get(11)?,
        created_at_ms: r.get(12)?,
        buyer_name: r.get(13)?,
    })
}

pub fn recent_orders(conn: &Connection, room: &str, limit: u32) -> Result<Vec<Order>, StoreError> {
    Ok(conn
        .prepare(&format!("SELECT {ORDER_COLS} WHERE o.room = ?1 ORDER BY o.id DESC LIMIT ?2"))?
        .query_map(params![room, limit], order_row)?
        .collect::<Result<Vec<_>, _>>()?)
}

/// The orders `identity` placed in `room`, newest first: what "my orders" lists. Nobody
/// else's: the identity is the caller's own, from its token.
pub fn orders_of(conn: &Connection, room: &str, identity: &str, limit: u32) -> Result<Vec<Order>, StoreError> {
    Ok(conn
        .prepare(&format!("SELECT {ORDER_COLS} WHERE o.room = ?1 AND o.identity = ?2 ORDER BY o.id DESC LIMIT ?3"))?
        .query_map(params![room, identity, limit], order_row)?
        .collect::<Result<Vec<_>, _>>()?)
}

/// `(units sold, revenue in minor units)` of a sale, from the orders themselves.
pub fn sale_totals(conn: &Connection, room: &str, sale_id: i64) -> Result<(i64, i64), StoreError> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(qty), 0), COALESCE(SUM(qty * price_minor), 0) FROM orders WHERE room = ?1 AND sale_id = ?2",
        params![room, sale_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}
