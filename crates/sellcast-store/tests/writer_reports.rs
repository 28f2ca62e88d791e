//! What the store reports about itself: the durability settings its database confirmed, and the
//! writer's counters of buys, commits and confirmations, and that no order is answered before
//! another connection can read it.

use sellcast_room::{BuyAnswer, ProductDraft, SaleDraft};
use sellcast_store::BuyRequest;

mod support;
use support::{Backend, Place};

/// SQLite: WAL and `synchronous=FULL`. PostgreSQL: `synchronous_commit = on` (its log is
/// always write-ahead), so a commit returns only once it is on disk.
async fn the_store_reports_the_durability_its_database_confirms(backend: Backend) {
    let place = Place::new(backend);
    let store = place.open();
    let d = store.durability();
    let expected = match backend {
        Backend::Sqlite => ("wal", "full"),
        Backend::Postgres => ("wal", "on"),
    };
    assert_eq!((d.journal_mode.as_str(), d.synchronous.as_str()), expected);
}

async fn writer_counters_count_buys_commits_and_confirmations_and_show_no_commit_in_flight_once_idle(backend: Backend) {
    let place = Place::new(backend);
    let store = place.open();
    let idle = store.writer_stats();
    assert_eq!((idle.buys, idle.buy_commits, idle.commit_in_flight, idle.confirmations_sent), (0, 0, false, 0));
    let draft = ProductDraft { title: "Lamp".into(), price_minor: 100, currency: "EUR".into(), image_url: String::new(), stock: 5, variants: Vec::new() };
    let p = store.create_product("r", draft).await.expect("product");
    let sd = SaleDraft { product_id: p.id, price_minor: 50, currency: None, stock: 1, per_user_limit: 1, starts_at_ms: 0, ends_at_ms: 10_000 };
    let s = store.create_sale("r", sd).await.expect("sale");
    let buy = |who: &str, key: &str| BuyRequest { room: "r".into(), sale_id: Some(s.id), product_id: None, variant_id: None, identity: who.into(), buyer_name: who.into(), qty: 1, idempotency_key: key.into(), now_ms: 5, verdict: None };
    // One after another, so each is its own batch: a confirmation, its replay, a rejection.
    assert!(matches!(store.buy(buy("ann", "a")).await.expect("buy").answer, BuyAnswer::Confirmed { .. }));
    assert!(store.buy(buy("ann", "a")).await.expect("retry").replayed);
    assert!(matches!(store.buy(buy("bob", "b")).await.expect("buy").answer, BuyAnswer::Rejected { .. }));
    let after = store.writer_stats();
    assert_eq!((after.buys, after.buy_commits), (3, 3));
    assert_eq!(after.confirmations_sent, 2, "the confirmation and its replay, not the rejection");
    // A batch is marked ended just after its answers go out: wait for that, boundedly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.writer_stats().commit_in_flight && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert!(!store.writer_stats().commit_in_flight, "every batch has ended");
    assert_eq!(store.commit_stats(), (3, 3));
}

async fn every_confirmed_order_is_already_readable_by_another_connection_when_it_is_answered(backend: Backend) {
    let place = Place::new(backend);
    let store = place.open();
    let draft = ProductDraft { title: "Lamp".into(), price_minor: 100, currency: "EUR".into(), image_url: String::new(), stock: 500, variants: Vec::new() };
    let p = store.create_product("r", draft).await.expect("product");
    let sd = SaleDraft { product_id: p.id, price_minor: 50, currency: None, stock: 200, per_user_limit: 1, starts_at_ms: 0, ends_at_ms: 10_000 };
    let s = store.create_sale("r", sd).await.expect("sale");
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        let req = BuyRequest { room: "r".into(), sale_id: Some(s.id), product_id: None, variant_id: None, identity: format!("u{i}"), buyer_name: String::new(), qty: 1, idempotency_key: "k".into(), now_ms: 5, verdict: None };
        tasks.push(tokio::spawn(async move { store.buy(req).await.expect("buy").answer }));
    }
    let mut confirmed = 0;
    for t in tasks {
        if let BuyAnswer::Confirmed { order_id, .. } = t.await.expect("task") {
            let found = place.query_i64s(&format!("SELECT COUNT(*) FROM orders WHERE id = {order_id}"));
            assert_eq!(found, [1], "order {order_id} was answered before it was committed");
            confirmed += 1;
        }
    }
    assert_eq!(confirmed, 200);
}

on_both_backends!(
    the_store_reports_the_durability_its_database_confirms,
    writer_counters_count_buys_commits_and_confirmations_and_show_no_commit_in_flight_once_idle,
);

on_both_backends!(multi_thread:
    every_confirmed_order_is_already_readable_by_another_connection_when_it_is_answered,
);
