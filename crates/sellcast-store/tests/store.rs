//! The store on real SQLite files: reopen, concurrent buys with retries, idempotent rejections,
//! typed validation errors, and the group-commit throughput figure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sellcast_room::{BuyAnswer, BuyRejection, ProductDraft, SaleDraft};
use sellcast_store::{BuyRequest, Store, StoreError};

mod support;
use support::{Backend, Place};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn draft(title: &str) -> ProductDraft {
    ProductDraft { title: title.into(), price_minor: 1999, currency: "EUR".into(), image_url: String::new(), stock: 100, variants: Vec::new() }
}

async fn sale(store: &Store, room: &str, stock: u32, limit: u32) -> (i64, i64) {
    let p = store.create_product(room, draft("Lamp")).await.expect("product");
    let now = now_ms();
    let s = store
        .create_sale(room, SaleDraft { product_id: p.id, price_minor: 999, currency: None, stock, per_user_limit: limit, starts_at_ms: now - 1000, ends_at_ms: now + 3_600_000 })
        .await
        .expect("sale");
    (p.id, s.id)
}

fn buy(room: &str, sale_id: i64, who: &str, qty: u32, key: &str) -> BuyRequest {
    BuyRequest { room: room.into(), sale_id: Some(sale_id), product_id: None, variant_id: None, identity: who.into(), buyer_name: who.into(), qty, idempotency_key: key.into(), now_ms: now_ms(), verdict: None }
}

async fn state_survives_a_reopen(backend: Backend) {
    let place = Place::new(backend);
    let (product, sale_id) = {
        let store = place.open();
        let (p, s) = sale(&store, "r", 10, 2).await;
        store.set_pins("r", vec![p]).await.expect("pins");
        store.ban("r", "troll", None, sellcast_room::Role::Moderator).await.expect("ban");
        store.set_blocked_words("r", vec!["Spam".into(), " scam ".into()]).await.expect("words");
        let out = store.buy(buy("r", s, "ann", 2, "k1")).await.expect("buy");
        assert!(matches!(out.answer, BuyAnswer::Confirmed { qty: 2, .. }));
        assert_eq!(out.stock_left, Some(8));
        (p, s)
    };
    let store = place.open();
    let room = store.load_room("r").await.expect("load");
    assert_eq!(room.products.len(), 1);
    assert_eq!(room.pins, vec![product]);
    assert_eq!(room.sales[0].stock_left, 8);
    assert_eq!((room.bans[0].identity.as_str(), room.bans[0].by), ("troll", sellcast_room::Role::Moderator));
    assert_eq!(room.blocked_words, vec!["scam".to_string(), "spam".to_string()]);
    assert_eq!(room.purchased, vec![(sale_id, "ann".to_string(), 2)]);
    let again = store.buy(buy("r", sale_id, "ann", 2, "k1")).await.expect("retry");
    assert!(again.replayed, "a retry after a restart is answered from the record");
    assert!(store.load_room("other").await.expect("load").products.is_empty(), "rooms are separate");
}

async fn two_thousand_concurrent_buys_sell_exactly_the_stock(backend: Backend) {
    let place = Place::new(backend);
    let store = Arc::new(place.open());
    let (_, sale_id) = sale(&store, "r", 100, 2).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..2000usize {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let who = format!("u{}", i % 400);
            let key = format!("k{i}");
            let qty = 1 + (i % 2) as u32;
            let t0 = Instant::now();
            let first = store.buy(buy("r", sale_id, &who, qty, &key)).await.expect("buy");
            let latency = t0.elapsed();
            // 30% retry: half of them racing a second copy, half after the answer.
            let retry = if i % 10 < 3 { Some(store.buy(buy("r", sale_id, &who, qty, &key)).await.expect("retry")) } else { None };
            (who, qty, first, retry, latency)
        }));
    }
    let mut sold = 0;
    let mut per_user: HashMap<String, u32> = HashMap::new();
    let mut latencies = Vec::new();
    for t in tasks {
        let (who, qty, first, retry, latency) = t.await.expect("task");
        latencies.push(latency);
        if let Some(r) = retry {
            assert!(r.replayed, "a retry never acts twice");
            assert_eq!((&r.answer, r.stock_left), (&first.answer, first.stock_left), "a retry gets the original answer");
        }
        if let BuyAnswer::Confirmed { qty: q, .. } = first.answer {
            assert_eq!(q, qty);
            sold += q;
            *per_user.entry(who).or_insert(0) += q;
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(sold, 100, "exactly the stock was sold");
    assert!(per_user.values().all(|q| *q <= 2), "nobody over the limit");
    let room = store.load_room("r").await.expect("load");
    assert_eq!(room.sales[0].stock_left, 0);
    assert_eq!(room.purchased.iter().map(|(_, _, q)| q).sum::<u32>(), 100, "orders agree with stock");
    let (buys, commits) = store.commit_stats();
    assert!(commits < buys / 4, "group commit batched {buys} buys into {commits} commits");
    latencies.sort();
    println!(
        "store_storm buys={buys} commits={commits} durable_buys_per_s={:.0} commit_latency_ms p50={:.2} p99={:.2}",
        buys as f64 / elapsed.as_secs_f64(),
        latencies[latencies.len() / 2].as_secs_f64() * 1e3,
        latencies[latencies.len() * 99 / 100].as_secs_f64() * 1e3
    );
}

async fn rejections_are_idempotent_too(backend: Backend) {
    let place = Place::new(backend);
    let store = place.open();
    let (_, sale_id) = sale(&store, "r", 1, 1).await;
    let ok = store.buy(buy("r", sale_id, "ann", 1, "a")).await.expect("buy");
    assert!(matches!(ok.answer, BuyAnswer::Confirmed { .. }));
    let late = store.buy(buy("r", sale_id, "bob", 1, "b")).await.expect("buy");
    assert_eq!(late.answer, BuyAnswer::Rejected { sale_id: Some(sale_id), product_id: None, reason: BuyRejection::SoldOut });
    store.end_sale("r", sale_id, now_ms()).await.expect("end");
    // Conditions changed (the sale is over now), the answer to the same key did not.
    let again = store.buy(buy("r", sale_id, "bob", 1, "b")).await.expect("retry");
    assert_eq!(again.answer, BuyAnswer::Rejected { sale_id: Some(sale_id), product_id: None, reason: BuyRejection::SoldOut });
    assert!(again.replayed);
    let fresh = store.buy(buy("r", sale_id, "bob", 1, "c")).await.expect("new key");
    assert_eq!(fresh.answer, BuyAnswer::Rejected { sale_id: Some(sale_id), product_id: None, reason: BuyRejection::SaleNotActive });
    let over = store.buy(buy("r", 999, "bob", 1, "d")).await.expect("unknown sale");
    assert_eq!(over.answer, BuyAnswer::Rejected { sale_id: Some(999), product_id: None, reason: BuyRejection::SaleNotActive });
}

async fn invalid_input_is_a_typed_error(backend: Backend) {
    let place = Place::new(backend);
    let store = place.open();
    let bad = |d: ProductDraft| async { store.create_product("r", d).await };
    assert!(matches!(bad(ProductDraft { title: " ".into(), ..draft("x") }).await, Err(StoreError::Invalid(_))));
    assert!(matches!(bad(ProductDraft { currency: "eur".into(), ..draft("x") }).await, Err(StoreError::Invalid(_))));
    assert!(matches!(bad(ProductDraft { price_minor: -1, ..draft("x") }).await, Err(StoreError::Invalid(_))));
    assert!(matches!(bad(ProductDraft { image_url: "javascript:alert(1)".into(), ..draft("x") }).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.update_product("r", 42, draft("x")).await, Err(StoreError::NotFound(_))));
    let p = store.create_product("r", draft("ok")).await.expect("valid");
    let now = now_ms();
    let sd = |stock, limit, start, end| SaleDraft { product_id: p.id, price_minor: 1, currency: None, stock, per_user_limit: limit, starts_at_ms: start, ends_at_ms: end };
    assert!(matches!(store.create_sale("r", sd(0, 1, now, now + 1)).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.create_sale("r", sd(1, 0, now, now + 1)).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.create_sale("r", sd(1, 1, now, now)).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.create_sale("other-room", sd(1, 1, now, now + 1)).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.set_pins("r", vec![p.id, p.id, p.id, p.id]).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.set_pins("r", vec![777]).await, Err(StoreError::NotFound(_))));
    let _ = Duration::ZERO;
}

on_both_backends!(
    state_survives_a_reopen,
    rejections_are_idempotent_too,
    invalid_input_is_a_typed_error,
);

on_both_backends!(multi_thread:
    two_thousand_concurrent_buys_sell_exactly_the_stock,
);
