//! Money and stock stay in range: prices, stock and per-buyer limits above their caps are
//! refused when a product or sale is written, a quantity above the per-order cap is refused
//! at buy, so no total can overflow.

use sellcast_room::money::{MAX_ORDER_QTY, MAX_PRICE_MINOR, MAX_STOCK};
use sellcast_room::{BuyAnswer, BuyRejection, ProductDraft, SaleDraft};
use sellcast_store::{BuyRequest, StoreError};

mod support;
use support::{Backend, Place};

fn product(price_minor: i64, stock: u32) -> ProductDraft {
    ProductDraft { title: "Lamp".into(), price_minor, currency: "EUR".into(), image_url: String::new(), stock, variants: Vec::new() }
}

fn is_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Invalid(_)))
}

async fn prices_stock_and_limits_above_their_caps_are_refused_and_at_the_caps_the_totals_fit(backend: Backend) {
    let place = Place::new(backend);
    let store = place.open();
    assert!(is_invalid(store.create_product("r", product(i64::MAX, 1)).await), "a price that overflowed totals before");
    assert!(is_invalid(store.create_product("r", product(MAX_PRICE_MINOR + 1, 1)).await));
    assert!(is_invalid(store.create_product("r", product(100, MAX_STOCK + 1)).await));
    let p = store.create_product("r", product(MAX_PRICE_MINOR, MAX_STOCK)).await.expect("at the caps");
    assert!(is_invalid(store.update_product("r", p.id, product(i64::MAX / 2, 1)).await));
    let sale = |price_minor, stock, per_user_limit| SaleDraft {
        product_id: p.id,
        price_minor,
        currency: None,
        stock,
        per_user_limit,
        starts_at_ms: 0,
        ends_at_ms: 10_000,
    };
    assert!(is_invalid(store.create_sale("r", sale(i64::MAX / 2, 10, 10)).await));
    assert!(is_invalid(store.create_sale("r", sale(100, MAX_STOCK + 1, 10)).await));
    assert!(is_invalid(store.create_sale("r", sale(100, 10, MAX_STOCK + 1)).await));
    let s = store.create_sale("r", sale(MAX_PRICE_MINOR, 1_000, 1_000)).await.expect("at the caps");
    let buy = |qty, key: &str| BuyRequest {
        room: "r".into(),
        sale_id: Some(s.id),
        product_id: None,
        variant_id: None,
        identity: "ann".into(),
        buyer_name: "Ann".into(),
        qty,
        idempotency_key: key.into(),
        now_ms: 5,
        verdict: None,
    };
    let over = store.buy(buy(MAX_ORDER_QTY + 1, "over")).await.expect("answered");
    assert_eq!(over.answer, BuyAnswer::Rejected { sale_id: Some(s.id), product_id: None, reason: BuyRejection::Invalid });
    let most = store.buy(buy(MAX_ORDER_QTY, "most")).await.expect("answered");
    assert!(matches!(most.answer, BuyAnswer::Confirmed { qty: MAX_ORDER_QTY, .. }), "{most:?}");
    let (units, revenue) = store.sale_totals("r", s.id).await.expect("totals");
    assert_eq!((units, revenue), (i64::from(MAX_ORDER_QTY), MAX_PRICE_MINOR * i64::from(MAX_ORDER_QTY)));
}

on_both_backends!(
    prices_stock_and_limits_above_their_caps_are_refused_and_at_the_caps_the_totals_fit,
);
