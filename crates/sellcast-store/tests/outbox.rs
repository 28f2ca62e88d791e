//! The merchant webhook's outbox: each new order owes exactly one delivery, written in the
//! order's own transaction, and the owed rows come out oldest first with their attempts.
//!
//! Control run (the broken variant must fail the crash test):
//! `SELLCAST_FAULT=outbox_after_commit cargo test -p sellcast-store --features fault-injection --test outbox`
//! owes the deliveries in a transaction of its own after the orders' commit, and the writer
//! dying between the two then leaves a committed order with no delivery owed.

use sellcast_room::{BuyAnswer, ProductDraft, SaleDraft};
use sellcast_store::{BuyRequest, Store, StoreOptions};
use serde_json::Value;

mod support;
use support::{Backend, Place};

const OUTBOX_ON: StoreOptions = StoreOptions { webhook_outbox: true };

struct Shop {
    store: Store,
    sale_id: i64,
    place: Place,
}

async fn shop(backend: Backend, options: StoreOptions, stock: u32) -> Shop {
    let place = Place::new(backend);
    let store = place.open_with(options);
    let draft = ProductDraft { title: "Desk lamp".into(), price_minor: 4990, currency: "EUR".into(), image_url: String::new(), stock: 50, variants: Vec::new() };
    let p = store.create_product("r", draft).await.expect("product");
    let sd = SaleDraft { product_id: p.id, price_minor: 2990, currency: None, stock, per_user_limit: 2, starts_at_ms: 0, ends_at_ms: 10_000 };
    let s = store.create_sale("r", sd).await.expect("sale");
    Shop { store, sale_id: s.id, place }
}

fn buy(shop: &Shop, who: &str, qty: u32, key: &str) -> BuyRequest {
    BuyRequest {
        room: "r".into(),
        sale_id: Some(shop.sale_id),
        product_id: None,
        variant_id: None,
        identity: who.into(),
        buyer_name: format!("{who} the buyer"),
        qty,
        idempotency_key: key.into(),
        now_ms: 5,
        verdict: None,
    }
}

fn order_ids_in(place: &Place) -> Vec<i64> {
    place.query_i64s("SELECT id FROM orders ORDER BY id")
}

async fn each_new_order_owes_one_delivery_and_replays_and_rejections_owe_none(backend: Backend) {
    let s = shop(backend, OUTBOX_ON, 3).await;
    let a = s.store.buy(buy(&s, "ann", 2, "a")).await.expect("buy");
    assert!(matches!(a.answer, BuyAnswer::Confirmed { .. }));
    assert!(s.store.buy(buy(&s, "ann", 2, "a")).await.expect("retry").replayed, "a retry replays");
    assert!(matches!(s.store.buy(buy(&s, "bob", 1, "b")).await.expect("buy").answer, BuyAnswer::Confirmed { .. }));
    assert!(matches!(s.store.buy(buy(&s, "cy", 1, "c")).await.expect("buy").answer, BuyAnswer::Rejected { .. }), "sold out");
    let orders = order_ids_in(&s.place);
    assert_eq!(orders.len(), 2);
    assert_eq!(s.store.outbox_order_ids().await.expect("ids"), orders, "one delivery per order, none for the replay or the rejection");
    let counts = s.store.outbox_counts().await.expect("counts");
    assert_eq!((counts.pending, counts.delivered), (2, 0));

    let due = s.store.outbox_due(5, 10).await.expect("due");
    let body: Value = serde_json::from_str(&due[0].body).expect("json body");
    let o = &body["order"];
    assert_eq!(body["type"], "order.created");
    assert_eq!((o["id"].as_i64(), o["room"].as_str(), o["sale_id"].as_i64()), (Some(orders[0]), Some("r"), Some(s.sale_id)));
    assert_eq!((o["title"].as_str(), o["qty"].as_i64(), o["unit_price_minor"].as_i64()), (Some("Desk lamp"), Some(2), Some(2990)));
    assert_eq!((o["total_minor"].as_i64(), o["currency"].as_str()), (Some(5980), Some("EUR")));
    assert_eq!((o["buyer"]["id"].as_str(), o["buyer"]["name"].as_str()), (Some("ann"), Some("ann the buyer")));
    assert!(o["product_id"].as_i64().is_some() && o["created_at_ms"] == 5, "{o}");
}

async fn with_the_outbox_off_no_delivery_is_owed(backend: Backend) {
    let s = shop(backend, StoreOptions::default(), 3).await;
    assert!(matches!(s.store.buy(buy(&s, "ann", 1, "a")).await.expect("buy").answer, BuyAnswer::Confirmed { .. }));
    assert!(s.store.outbox_order_ids().await.expect("ids").is_empty());
}

async fn owed_rows_come_oldest_first_and_a_failed_attempt_defers_only_its_row(backend: Backend) {
    let s = shop(backend, OUTBOX_ON, 10).await;
    for who in ["ann", "bob", "cy"] {
        s.store.buy(buy(&s, who, 1, who)).await.expect("buy");
    }
    let ids: Vec<i64> = s.store.outbox_due(5, 10).await.expect("due").iter().map(|r| r.order_id).collect();
    assert_eq!(ids, order_ids_in(&s.place), "oldest first");
    assert_eq!(s.store.outbox_due(5, 2).await.expect("due").len(), 2, "the limit holds");

    s.store.outbox_failed(ids[0], 1_000, "answered HTTP 500".into()).await.expect("failure");
    s.store.outbox_delivered(ids[1], 6).await.expect("delivered");
    let now: Vec<(i64, u32)> = s.store.outbox_due(6, 10).await.expect("due").iter().map(|r| (r.order_id, r.attempts)).collect();
    assert_eq!(now, [(ids[2], 0)], "the failed row waits for its time and the delivered one is done");
    assert_eq!(s.store.outbox_next_due_ms().await.expect("next"), Some(5), "the untried row is due");
    s.store.outbox_delivered(ids[2], 7).await.expect("delivered");
    assert_eq!(s.store.outbox_next_due_ms().await.expect("next"), Some(1_000));
    let later: Vec<(i64, u32)> = s.store.outbox_due(1_000, 10).await.expect("due").iter().map(|r| (r.order_id, r.attempts)).collect();
    assert_eq!(later, [(ids[0], 1)], "due again at its time, its attempt counted");
    let counts = s.store.outbox_counts().await.expect("counts");
    assert_eq!((counts.pending, counts.delivered), (1, 2));
}

async fn the_outbox_survives_reopening_the_database(backend: Backend) {
    let s = shop(backend, OUTBOX_ON, 10).await;
    s.store.buy(buy(&s, "ann", 1, "a")).await.expect("buy");
    let reopened = s.place.open_with(OUTBOX_ON);
    assert_eq!(reopened.outbox_due(5, 10).await.expect("due").len(), 1, "still owed after a restart");
}

#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_committed_by_a_writer_that_dies_right_after_its_commit_is_still_owed_its_delivery() {
    use sellcast_store::PanicPoint;
    let s = shop(Backend::Sqlite, OUTBOX_ON, 10).await;
    s.store.inject_panic(PanicPoint::AfterCommit, None);
    let lost_answer = s.store.buy(buy(&s, "ann", 1, "a")).await;
    assert!(lost_answer.is_err(), "the writer died before answering: {lost_answer:?}");
    // The restarted writer answers the retry from the committed order.
    let retried = s.store.buy(buy(&s, "ann", 1, "a")).await.expect("the restarted writer answers");
    assert!(retried.replayed && matches!(retried.answer, BuyAnswer::Confirmed { .. }), "{retried:?}");
    let orders = order_ids_in(&s.place);
    assert_eq!(orders.len(), 1, "the order committed");
    assert_eq!(s.store.outbox_order_ids().await.expect("ids"), orders, "a committed order without its delivery owed");
}

on_both_backends!(
    each_new_order_owes_one_delivery_and_replays_and_rejections_owe_none,
    with_the_outbox_off_no_delivery_is_owed,
    owed_rows_come_oldest_first_and_a_failed_attempt_defers_only_its_row,
    the_outbox_survives_reopening_the_database,
);
