//! Schema migrations, applied in order and recorded in `schema_version`.

use rusqlite::{Connection, OptionalExtension};

use crate::error::StoreError;

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    title TEXT NOT NULL,
    price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
    currency TEXT NOT NULL,
    image_url TEXT NOT NULL DEFAULT '',
    stock INTEGER NOT NULL CHECK (stock >= 0),
    created_at_ms INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX products_room ON products(room);
CREATE TABLE sales (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    product_id INTEGER NOT NULL REFERENCES products(id),
    price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
    currency TEXT NOT NULL,
    stock_total INTEGER NOT NULL CHECK (stock_total >= 1),
    stock_left INTEGER NOT NULL CHECK (stock_left >= 0 AND stock_left <= stock_total),
    per_user_limit INTEGER NOT NULL CHECK (per_user_limit >= 1),
    starts_at_ms INTEGER NOT NULL,
    ends_at_ms INTEGER NOT NULL,
    ended_at_ms INTEGER
);
CREATE INDEX sales_room ON sales(room);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    sale_id INTEGER NOT NULL REFERENCES sales(id),
    identity TEXT NOT NULL,
    qty INTEGER NOT NULL CHECK (qty >= 1),
    price_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX orders_sale_identity ON orders(sale_id, identity);
CREATE INDEX orders_room ON orders(room, id);
CREATE TABLE idempotency (
    room TEXT NOT NULL,
    identity TEXT NOT NULL,
    key TEXT NOT NULL,
    sale_id INTEGER NOT NULL,
    order_id INTEGER REFERENCES orders(id),
    rejection TEXT,
    -- Stock left right after the order committed: part of the answer a retry gets back.
    stock_left INTEGER,
    PRIMARY KEY (room, identity, key)
) WITHOUT ROWID;
CREATE TABLE bans (
    room TEXT NOT NULL,
    identity TEXT NOT NULL,
    until_ms INTEGER,
    PRIMARY KEY (room, identity)
) WITHOUT ROWID;
CREATE TABLE blocked_words (
    room TEXT NOT NULL,
    word TEXT NOT NULL,
    PRIMARY KEY (room, word)
) WITHOUT ROWID;
CREATE TABLE pins (
    room TEXT NOT NULL,
    position INTEGER NOT NULL,
    product_id INTEGER NOT NULL REFERENCES products(id),
    PRIMARY KEY (room, position)
) WITHOUT ROWID;
"#, r#"
-- The role that placed a ban: it binds only roles below it (NULL in older rows: host).
ALTER TABLE bans ADD COLUMN by_role TEXT;
"#, r#"
-- The merchant webhook's outbox: one row per committed order while a webhook is configured,
-- written in the order's own transaction (outbox.rs says why). `body` is the exact JSON the
-- webhook receives on every attempt.
CREATE TABLE webhook_outbox (
    order_id INTEGER PRIMARY KEY REFERENCES orders(id),
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    delivered_at_ms INTEGER,
    last_error TEXT
);
CREATE INDEX webhook_outbox_pending ON webhook_outbox(next_attempt_ms, order_id) WHERE delivered_at_ms IS NULL;
"#, r#"
-- Regular-price orders and product variants. An order names its product (and variant); its
-- sale is optional (NULL: bought at the product's list price). SQLite cannot drop a NOT NULL,
-- so `orders` and `idempotency` are rebuilt with every row (foreign keys are off while
-- migrations run and checked before each commits; see `migrate`).
CREATE TABLE product_variants (
    id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products(id),
    label TEXT NOT NULL,
    stock INTEGER NOT NULL CHECK (stock >= 0),
    UNIQUE (product_id, label)
);
CREATE TABLE orders_new (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    sale_id INTEGER REFERENCES sales(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    variant_id INTEGER REFERENCES product_variants(id),
    identity TEXT NOT NULL,
    qty INTEGER NOT NULL CHECK (qty >= 1),
    price_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
INSERT INTO orders_new (id, room, sale_id, product_id, variant_id, identity, qty, price_minor, currency, idempotency_key, created_at_ms)
    SELECT o.id, o.room, o.sale_id, s.product_id, NULL, o.identity, o.qty, o.price_minor, o.currency, o.idempotency_key, o.created_at_ms
    FROM orders o JOIN sales s ON s.id = o.sale_id;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE INDEX orders_sale_identity ON orders(sale_id, identity);
CREATE INDEX orders_room ON orders(room, id);
CREATE INDEX orders_room_identity ON orders(room, identity, id);
CREATE TABLE idempotency_new (
    room TEXT NOT NULL,
    identity TEXT NOT NULL,
    key TEXT NOT NULL,
    sale_id INTEGER,
    product_id INTEGER,
    order_id INTEGER REFERENCES orders(id),
    rejection TEXT,
    -- Stock left right after the order committed: part of the answer a retry gets back.
    stock_left INTEGER,
    PRIMARY KEY (room, identity, key)
) WITHOUT ROWID;
INSERT INTO idempotency_new (room, identity, key, sale_id, product_id, order_id, rejection, stock_left)
    SELECT i.room, i.identity, i.key, i.sale_id, s.product_id, i.order_id, i.rejection, i.stock_left
    FROM idempotency i LEFT JOIN sales s ON s.id = i.sale_id;
DROP TABLE idempotency;
ALTER TABLE idempotency_new RENAME TO idempotency;
"#, r#"
-- The show around the selling (show.rs): its title, scheduled start, avatar and host name, the
-- last End, and the likes total (saved every few seconds). Display names chosen per room (a
-- room's blocked words judged them). Each order keeps the name its buyer went by, so the host's
-- feed names buyers after a restart (NULL in older rows: the identity is shown).
CREATE TABLE shows (
    room TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    starts_at_ms INTEGER,
    avatar_url TEXT NOT NULL DEFAULT '',
    host_name TEXT NOT NULL DEFAULT '',
    ended_at_ms INTEGER,
    likes_total INTEGER NOT NULL DEFAULT 0 CHECK (likes_total >= 0)
) WITHOUT ROWID;
CREATE TABLE display_names (
    room TEXT NOT NULL,
    identity TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (room, identity)
) WITHOUT ROWID;
ALTER TABLE orders ADD COLUMN buyer_name TEXT;
"#];

/// Apply the migrations not applied yet. Foreign keys are off while they run (a table rebuild
/// drops a table others reference, which SQLite refuses or cascades with them on, and the
/// pragma cannot change inside a transaction); each migration commits only if
/// `foreign_key_check` finds nothing broken. The connection's setting is restored after.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let foreign_keys: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA foreign_keys=OFF")?;
    let result = apply(conn);
    conn.execute_batch(if foreign_keys == 1 { "PRAGMA foreign_keys=ON" } else { "PRAGMA foreign_keys=OFF" })?;
    result
}

fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: i64 = conn
        .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        let broken: Option<String> = tx
            .query_row("SELECT \"table\" FROM pragma_foreign_key_check LIMIT 1", [], |r| r.get(0))
            .optional()?;
        if let Some(table) = broken {
            return Err(StoreError::Invalid(format!("migration {version} would leave a broken reference in {table}")));
        }
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [version])?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database at `version`, as an older build left it (foreign keys on, as the store runs).
    fn database_at(version: usize) -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("PRAGMA foreign_keys=ON; CREATE TABLE schema_version (version INTEGER NOT NULL)").expect("pragma");
        for (i, sql) in MIGRATIONS[..version].iter().enumerate() {
            conn.execute_batch(sql).expect("old migration");
            conn.execute("INSERT INTO schema_version (version) VALUES (?1)", [i as i64 + 1]).expect("version");
        }
        conn
    }

    /// An idempotency row: key, product, order, rejection.
    type AnswerRow = (String, Option<i64>, Option<i64>, Option<String>);

    #[test]
    fn the_order_rebuild_keeps_every_row_reference_and_index() {
        let mut conn = database_at(3);
        conn.execute_batch(
            "INSERT INTO products (id, room, title, price_minor, currency, stock, created_at_ms) VALUES (7, 'r', 'Lamp', 1999, 'EUR', 8, 1);
             INSERT INTO sales (id, room, product_id, price_minor, currency, stock_total, stock_left, per_user_limit, starts_at_ms, ends_at_ms)
                 VALUES (3, 'r', 7, 990, 'EUR', 5, 3, 2, 0, 100);
             INSERT INTO orders (id, room, sale_id, identity, qty, price_minor, currency, idempotency_key, created_at_ms)
                 VALUES (11, 'r', 3, 'ann', 2, 990, 'EUR', 'k1', 50);
             INSERT INTO idempotency (room, identity, key, sale_id, order_id, stock_left) VALUES ('r', 'ann', 'k1', 3, 11, 3);
             INSERT INTO idempotency (room, identity, key, sale_id, rejection) VALUES ('r', 'bob', 'k2', 3, 'sold_out');
             INSERT INTO webhook_outbox (order_id, body, next_attempt_ms) VALUES (11, '{}', 0);",
        )
        .expect("rows of an older build");
        migrate(&mut conn).expect("migrate");
        let order: (i64, Option<i64>, i64, Option<i64>, String, u32, i64) = conn
            .query_row("SELECT id, sale_id, product_id, variant_id, identity, qty, price_minor FROM orders", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })
            .expect("the order");
        assert_eq!(order, (11, Some(3), 7, None, "ann".into(), 2, 990), "the order now names its sale's product");
        let answers: Vec<AnswerRow> = conn
            .prepare("SELECT key, product_id, order_id, rejection FROM idempotency ORDER BY key")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect())
            .expect("answers");
        assert_eq!(answers, [("k1".into(), Some(7), Some(11), None), ("k2".into(), Some(7), None, Some("sold_out".into()))]);
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("indexes");
        assert_eq!(indexes, ["orders_room", "orders_room_identity", "orders_sale_identity"]);
        let broken: i64 = conn.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).expect("check");
        assert_eq!(broken, 0);
        let on: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).expect("pragma");
        assert_eq!(on, 1, "foreign keys are on again after the migrations");
        conn.execute(
            "INSERT INTO orders (room, product_id, identity, qty, price_minor, currency, idempotency_key, created_at_ms) VALUES ('r', 7, 'cy', 1, 1999, 'EUR', 'k3', 60)",
            [],
        )
        .expect("an order without a sale");
    }
}
