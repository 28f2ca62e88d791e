//! The store's own defence, buy by buy: the sale window, the quantity, the per-user limit and
//! the stock, each checked at its boundary, and the full answer a retry gets back (also after
//! a reopen). The room checks most of this first; these tests prove the store does not rely on it.

use sellcast_room::{BuyAnswer, BuyRejection, ProductDraft, SaleDraft};
use sellcast_store::{BuyRequest, Store};

mod support;
use support::{Backend, Place};

/// Sale window used throughout: open on [START, END).
const START: i64 = 1_000_000;
const END: i64 = 2_000_000;

async fn open(backend: Backend) -> (Place, Store) {
    let place = Place::new(backend);
    let store = place.open();
    (place, store)
}

async fn sale(store: &Store, room: &str, stock: u32, limit: u32) -> i64 {
    let draft = ProductDraft { title: "Lamp".into(), price_minor: 1999, currency: "EUR".into(), image_url: String::new(), stock: 100, variants: Vec::new() };
    let p = store.create_product(room, draft).await.expect("product");
    let d = SaleDraft { product_id: p.id, price_minor: 750, currency: None, stock, per_user_limit: limit, starts_at_ms: START, ends_at_ms: END };
    store.create_sale(room, d).await.expect("sale").id
}

fn req(sale_id: i64, who: &str, qty: u32, key: &str, now_ms: i64) -> BuyRequest {
    BuyRequest { room: "r".into(), sale_id: Some(sale_id), product_id: None, variant_id: None, identity: who.into(), buyer_name: who.into(), qty, idempotency_key: key.into(), now_ms, verdict: None }
}

/// The answer to a buy, and the stock left after it (confirmed buys only).
async fn result(store: &Store, r: BuyRequest) -> (BuyAnswer, Option<u32>) {
    let outcome = store.buy(r).await.expect("buy");
    (outcome.answer, outcome.stock_left)
}

fn rejected(sale_id: i64, reason: BuyRejection) -> (BuyAnswer, Option<u32>) {
    (BuyAnswer::Rejected { sale_id: Some(sale_id), product_id: None, reason }, None)
}

async fn a_buy_is_accepted_only_inside_the_sale_window(backend: Backend) {
    let (_place, store) = open(backend).await;
    let s = sale(&store, "r", 10, 10).await;
    let not_active = rejected(s, BuyRejection::SaleNotActive);
    assert_eq!(result(&store, req(s, "a", 1, "early", START - 1)).await, not_active, "one ms before the start");
    assert!(matches!(result(&store, req(s, "a", 1, "start", START)).await, (BuyAnswer::Confirmed { .. }, Some(_))), "at the start");
    assert!(matches!(result(&store, req(s, "a", 1, "last", END - 1)).await, (BuyAnswer::Confirmed { .. }, Some(_))), "last ms");
    assert_eq!(result(&store, req(s, "a", 1, "end", END)).await, not_active, "the end is exclusive");
    assert_eq!(result(&store, req(s, "a", 1, "late", END + 1)).await, not_active, "after the end");
    assert_eq!(store.sale_totals("r", s).await.expect("totals").0, 2, "only the two buys inside the window were sold");
}

async fn an_ended_sale_rejects_buys_inside_its_window(backend: Backend) {
    let (_place, store) = open(backend).await;
    let s = sale(&store, "r", 10, 10).await;
    let ended = store.end_sale("r", s, START + 10).await.expect("end");
    assert_eq!(ended.ended_at_ms, Some(START + 10));
    let r = result(&store, req(s, "a", 1, "k", START + 20)).await;
    assert_eq!(r, rejected(s, BuyRejection::SaleNotActive));
    assert_eq!(store.sale_totals("r", s).await.expect("totals"), (0, 0));
}

async fn a_sale_of_another_room_is_not_for_sale_here(backend: Backend) {
    let (_place, store) = open(backend).await;
    let s = sale(&store, "other", 10, 10).await;
    let r = result(&store, req(s, "a", 1, "k", START)).await;
    assert_eq!(r, rejected(s, BuyRejection::SaleNotActive));
}

async fn quantity_must_be_between_one_and_the_per_user_limit(backend: Backend) {
    let (_place, store) = open(backend).await;
    let s = sale(&store, "r", 10, 3).await;
    let invalid = rejected(s, BuyRejection::Invalid);
    assert_eq!(result(&store, req(s, "zero", 0, "k0", START)).await, invalid, "zero units");
    assert_eq!(result(&store, req(s, "four", 4, "k4", START)).await, invalid, "over the limit in one buy");
    assert!(matches!(result(&store, req(s, "three", 3, "k3", START)).await, (BuyAnswer::Confirmed { qty: 3, .. }, Some(_))), "exactly the limit");
    assert!(matches!(result(&store, req(s, "one", 1, "k1", START)).await, (BuyAnswer::Confirmed { qty: 1, .. }, Some(_))), "one unit");
    assert_eq!(store.sale_totals("r", s).await.expect("totals").0, 4);
}

async fn the_per_user_limit_counts_earlier_orders_of_that_user_only(backend: Backend) {
    let (_place, store) = open(backend).await;
    let s = sale(&store, "r", 10, 3).await;
    assert!(matches!(result(&store, req(s, "ann", 2, "a1", START)).await, (BuyAnswer::Confirmed { .. }, Some(_))));
    // 2 bought, 1 more reaches the limit exactly: allowed.
    assert!(matches!(result(&store, req(s, "ann", 1, "a2", START)).await, (BuyAnswer::Confirmed { .. }, Some(_))));
    // 3 bought, 1 more is over it.
    assert_eq!(result(&store, req(s, "ann", 1, "a3", START)).await, rejected(s, BuyRejection::LimitReached));
    // 2 over it from a user with 1: also refused, and it is the limit, not the quantity check.
    assert!(matches!(result(&store, req(s, "bob", 1, "b1", START)).await, (BuyAnswer::Confirmed { .. }, Some(_))));
    assert_eq!(result(&store, req(s, "bob", 3, "b2", START)).await, rejected(s, BuyRejection::LimitReached));
    // Another user is not counted against ann's orders.
    assert!(matches!(result(&store, req(s, "cy", 3, "c1", START)).await, (BuyAnswer::Confirmed { qty: 3, .. }, Some(_))));
    assert_eq!(store.sale_totals("r", s).await.expect("totals").0, 7);
}

async fn the_last_units_sell_and_a_buy_over_the_stock_is_sold_out(backend: Backend) {
    let (_place, store) = open(backend).await;
    let s = sale(&store, "r", 3, 3).await;
    assert!(matches!(result(&store, req(s, "a", 2, "a", START)).await, (BuyAnswer::Confirmed { .. }, Some(1))));
    assert_eq!(result(&store, req(s, "b", 2, "b", START)).await, rejected(s, BuyRejection::SoldOut), "2 wanted, 1 left");
    assert!(matches!(result(&store, req(s, "c", 1, "c", START)).await, (BuyAnswer::Confirmed { .. }, Some(0))), "the last unit");
    assert_eq!(store.load_room("r").await.expect("load").sales[0].stock_left, 0);
}

async fn a_confirmation_carries_the_order_and_a_retry_gets_it_back_unchanged(backend: Backend) {
    let (place, store) = open(backend).await;
    let s = sale(&store, "r", 10, 5).await;
    let first = store.buy(req(s, "ann", 2, "k", START + 5)).await.expect("buy");
    assert!(!first.replayed);
    let BuyAnswer::Confirmed { order_id, sale_id, qty, price_minor, ref currency, .. } = first.answer else {
        panic!("not confirmed: {:?}", first.answer)
    };
    assert_eq!((sale_id, qty, price_minor, currency.as_str(), first.stock_left), (Some(s), 2, 750, "EUR", Some(8)), "sale price and currency, not the product's");
    let orders = store.recent_orders("r", 10).await.expect("orders");
    assert_eq!(orders.len(), 1);
    let o = &orders[0];
    assert_eq!((o.id, o.sale_id, o.identity.as_str(), o.qty, o.price_minor), (order_id, Some(s), "ann", 2, 750));
    assert_eq!((o.currency.as_str(), o.idempotency_key.as_str(), o.created_at_ms, o.room.as_str()), ("EUR", "k", START + 5, "r"));

    // Another buy moves the stock on; the retry still answers with the stock of its own order.
    assert!(matches!(result(&store, req(s, "bob", 1, "other", START)).await, (BuyAnswer::Confirmed { .. }, Some(7))));
    let retry = store.buy(req(s, "ann", 2, "k", START + 6)).await.expect("retry");
    assert!(retry.replayed);
    assert_eq!((&retry.answer, retry.stock_left), (&first.answer, first.stock_left));
    assert_eq!(store.sale_totals("r", s).await.expect("totals").0, 3, "the retry sold nothing");

    drop(store);
    let store = place.open();
    let retry = store.buy(req(s, "ann", 2, "k", START + 7)).await.expect("retry after reopen");
    assert!(retry.replayed);
    assert_eq!((&retry.answer, retry.stock_left), (&first.answer, first.stock_left), "the full answer survives a restart");
}

async fn each_rejection_is_stored_and_reloaded_as_itself(backend: Backend) {
    let (place, store) = open(backend).await;
    let s = sale(&store, "r", 2, 2).await;
    let cases = [
        (req(s, "a", 1, "not-active", START - 1), Some(BuyRejection::SaleNotActive)),
        (req(s, "a", 0, "invalid", START), Some(BuyRejection::Invalid)),
        (req(s, "a", 2, "ok", START), None),
        (req(s, "a", 1, "limit", START), Some(BuyRejection::LimitReached)),
        (req(s, "b", 1, "sold-out", START), Some(BuyRejection::SoldOut)),
    ];
    let mut expected = Vec::new();
    for (r, want) in cases {
        let key = r.idempotency_key.clone();
        let who = r.identity.clone();
        let got = result(&store, r).await;
        match want {
            Some(rejection) => assert_eq!(got, rejected(s, rejection), "{key}"),
            None => assert!(matches!(got, (BuyAnswer::Confirmed { .. }, Some(0))), "{key}"),
        }
        expected.push((who, key, got.0));
    }
    drop(store);
    let store = place.open();
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    for (who, key, answer) in expected {
        let again = store.buy(req(s, &who, 1, &key, START)).await.expect("retry");
        assert!(again.replayed, "{key}");
        assert_eq!(again.answer, answer, "{key}");
    }
}

on_both_backends!(
    a_buy_is_accepted_only_inside_the_sale_window,
    an_ended_sale_rejects_buys_inside_its_window,
    a_sale_of_another_room_is_not_for_sale_here,
    quantity_must_be_between_one_and_the_per_user_limit,
    the_per_user_limit_counts_earlier_orders_of_that_user_only,
    the_last_units_sell_and_a_buy_over_the_stock_is_sold_out,
    a_confirmation_carries_the_order_and_a_retry_gets_it_back_unchanged,
    each_rejection_is_stored_and_reloaded_as_itself,
);
