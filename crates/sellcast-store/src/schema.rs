//! Schema migrations, applied in order and recorded in `schema_version`.

use rusqlite::Connection;

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

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [version])?;
        tx.commit()?;
    }
    Ok(())
}
