//! A sale sells the product's own units: it cannot offer more than the product has, each order
//! takes its units off the product in the order's own transaction, and sales sharing a product
//! never sell more than it has. The room's totals are SQLite's sums over every order.

use sellcast_room::{BuyAnswer, ProductDraft, SaleDraft};
use sellcast_store::{BuyRequest, Store, StoreError};

mod support;
use support::{Backend, Place};

const START: i64 = 1_000_000;
const END: i64 = 2_000_000;

async fn open(backend: Backend) -> (Place, Store) {
    let place = Place::new(backend);
    let store = place.open();
    (place, store)
}

async fn product(store: &Store, stock: u32) -> i64 {
    let draft = ProductDraft { title: "Lamp".into(), price_minor: 1999, currency: "EUR".into(), image_url: String::new(), stock, variants: Vec::new() };
    store.create_product("r", draft).await.expect("product").id
}

fn sale_draft(product_id: i64, stock: u32, limit: u32) -> SaleDraft {
    SaleDraft { product_id, price_minor: 750, currency: None, stock, per_user_limit: limit, starts_at_ms: START, ends_at_ms: END }
}

fn req(sale_id: i64, who: &str, qty: u32, key: &str) -> BuyRequest {
    BuyRequest { room: "r".into(), sale_id: Some(sale_id), product_id: None, variant_id: None, identity: who.into(), buyer_name: who.into(), qty, idempotency_key: key.into(), now_ms: START, verdict: None }
}

async fn product_stock(store: &Store, id: i64) -> u32 {
    store.load_room("r").await.expect("load").products.iter().find(|p| p.id == id).map(|p| p.stock).expect("product")
}

async fn a_sale_cannot_offer_more_units_than_the_product_has(backend: Backend) {
    let (_place, store) = open(backend).await;
    let p = product(&store, 40).await;
    let refused = store.create_sale("r", sale_draft(p, 50, 1)).await;
    match refused {
        Err(StoreError::Invalid(message)) => {
            assert!(message.contains("50 units") && message.contains("40 in stock"), "the host is told why: {message}");
        }
        other => panic!("a 50-unit sale on 40 in stock must be refused, got {other:?}"),
    }
    assert!(store.load_room("r").await.expect("load").sales.is_empty(), "nothing was written");
    let all = store.create_sale("r", sale_draft(p, 40, 1)).await.expect("the whole stock may go on sale");
    assert_eq!(all.stock_total, 40);
}

async fn each_order_takes_its_units_off_the_product_stock(backend: Backend) {
    let (_place, store) = open(backend).await;
    let p = product(&store, 40).await;
    let s = store.create_sale("r", sale_draft(p, 10, 5)).await.expect("sale").id;
    let outcome = store.buy(req(s, "a", 3, "k1")).await.expect("buy");
    assert!(matches!(outcome.answer, BuyAnswer::Confirmed { qty: 3, .. }));
    assert_eq!(product_stock(&store, p).await, 37);
    // A retry of the same key is the same order: no second decrement.
    let again = store.buy(req(s, "a", 3, "k1")).await.expect("retry");
    assert!(again.replayed);
    assert_eq!(product_stock(&store, p).await, 37);
}

/// Two sales of 10 on one product with 10 in stock, 30 buyers of one unit each alternating
/// between them: exactly 10 orders, product stock 0, never negative.
async fn sales_sharing_a_product_never_sell_more_than_it_has(backend: Backend) {
    let (_place, store) = open(backend).await;
    let p = product(&store, 10).await;
    let a = store.create_sale("r", sale_draft(p, 10, 1)).await.expect("sale a").id;
    let b = store.create_sale("r", sale_draft(p, 10, 1)).await.expect("sale b").id;
    let buys = (0..30).map(|i| {
        let store = store.clone();
        let sale = if i % 2 == 0 { a } else { b };
        tokio::spawn(async move { store.buy(req(sale, &format!("u{i}"), 1, "k")).await.expect("buy").answer })
    });
    let mut confirmed = 0;
    for buy in buys.collect::<Vec<_>>() {
        if matches!(buy.await.expect("task"), BuyAnswer::Confirmed { .. }) {
            confirmed += 1;
        }
    }
    assert_eq!(confirmed, 10, "never oversold: one order per unit in stock");
    assert_eq!(product_stock(&store, p).await, 0);
    let sold = store.sale_totals("r", a).await.expect("a").0 + store.sale_totals("r", b).await.expect("b").0;
    assert_eq!(sold, 10);
}

async fn room_totals_are_the_sums_over_every_order_not_only_the_recent_ones(backend: Backend) {
    let (_place, store) = open(backend).await;
    let lamp = product(&store, 100).await;
    let mug = product(&store, 100).await;
    let s1 = store.create_sale("r", sale_draft(lamp, 100, 3)).await.expect("sale").id;
    let s2 = store.create_sale("r", sale_draft(mug, 100, 3)).await.expect("sale").id;
    let mut expected_minor = 0;
    let mut expected_units = 0;
    for i in 0..60u32 {
        let (sale, qty) = if i % 3 == 0 { (s2, 2) } else { (s1, 1) };
        if let BuyAnswer::Confirmed { qty, price_minor, .. } = store.buy(req(sale, &format!("u{i}"), qty, "k")).await.expect("buy").answer {
            expected_minor += price_minor * i64::from(qty);
            expected_units += u64::from(qty);
        }
    }
    let totals = store.load_room("r").await.expect("load").totals;
    assert_eq!(totals.totals.orders, 60);
    assert_eq!(totals.totals.units, expected_units);
    assert_eq!(totals.totals.revenue_in("EUR"), expected_minor);
    assert_eq!(totals.units_of(lamp) + totals.units_of(mug), expected_units);
    assert_eq!(totals.units_of(mug), 40);
}

on_both_backends!(
    a_sale_cannot_offer_more_units_than_the_product_has,
    each_order_takes_its_units_off_the_product_stock,
    sales_sharing_a_product_never_sell_more_than_it_has,
    room_totals_are_the_sums_over_every_order_not_only_the_recent_ones,
);
