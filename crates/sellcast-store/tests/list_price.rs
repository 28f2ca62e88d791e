//! Buys without a flash sale: at the product's list price, taking the product's (and the
//! variant's) units in the order's own transaction, with the same typed rejections and the
//! same one-answer-per-key as a sale's buys. The orders count in the room's totals, in the
//! host's feed, in the buyer's own list and in the merchant webhook's body.
//!
//! Control run (never oversold): `SELLCAST_FAULT=stale_stock_check cargo test -p
//! sellcast-store --features fault-injection --test list_price` checks each buy against the
//! stock read before its batch began, outside the order's transaction; then
//! `a_list_price_product_is_never_oversold_by_concurrent_buyers` fails.

use sellcast_room::{BuyAnswer, BuyRejection, ProductDraft, SaleDraft, VariantDraft};
use sellcast_store::{BuyRequest, Store, StoreError, StoreOptions};

mod support;
use support::{Backend, Place};

const NOW: i64 = 1_000_000;

async fn open(backend: Backend) -> (Place, Store) {
    let place = Place::new(backend);
    let store = place.open();
    (place, store)
}

fn draft(stock: u32, variants: &[(&str, u32)]) -> ProductDraft {
    ProductDraft {
        title: "Linen shirt".into(),
        price_minor: 4500,
        currency: "EUR".into(),
        image_url: String::new(),
        stock,
        variants: variants.iter().map(|(label, stock)| VariantDraft { label: (*label).into(), stock: *stock }).collect(),
    }
}

fn buy(product_id: i64, variant_id: Option<i64>, who: &str, qty: u32, key: &str) -> BuyRequest {
    BuyRequest {
        room: "r".into(),
        sale_id: None,
        product_id: Some(product_id),
        variant_id,
        identity: who.into(),
        buyer_name: format!("{who} name"),
        qty,
        idempotency_key: key.into(),
        now_ms: NOW,
        verdict: None,
    }
}

fn rejected(product_id: i64, reason: BuyRejection) -> BuyAnswer {
    BuyAnswer::Rejected { sale_id: None, product_id: Some(product_id), reason }
}

async fn stock(store: &Store, id: i64) -> (u32, Vec<(String, u32)>) {
    let room = store.load_room("r").await.expect("load");
    let p = room.products.iter().find(|p| p.id == id).expect("product");
    (p.stock, p.variants.iter().map(|v| (v.label.clone(), v.stock)).collect())
}

async fn a_list_price_buy_is_at_the_product_price_and_takes_its_stock_once_per_key(backend: Backend) {
    let (_place, store) = open(backend).await;
    let p = store.create_product("r", draft(5, &[])).await.expect("product").id;
    let first = store.buy(buy(p, None, "ann", 2, "k1")).await.expect("buy");
    let BuyAnswer::Confirmed { sale_id, product_id, qty, price_minor, ref currency, .. } = first.answer else {
        panic!("confirmed: {first:?}");
    };
    assert_eq!((sale_id, product_id, qty, price_minor, currency.as_str()), (None, p, 2, 4500, "EUR"));
    assert_eq!(first.stock_left, Some(3), "the product's stock left is reported");
    assert_eq!(stock(&store, p).await.0, 3);
    let again = store.buy(buy(p, None, "ann", 2, "k1")).await.expect("retry");
    assert!(again.replayed, "{again:?}");
    assert_eq!(again.answer, first.answer, "a retried key gets the same order back");
    assert_eq!(stock(&store, p).await.0, 3, "and takes nothing more");
    assert_eq!(store.buy(buy(p, None, "bob", 4, "k2")).await.expect("buy").answer, rejected(p, BuyRejection::SoldOut));
    assert_eq!(stock(&store, p).await.0, 3, "a refused buy takes nothing");
}

/// 30 buyers of one unit each, all at once, on a product with 10: exactly 10 orders.
async fn a_list_price_product_is_never_oversold_by_concurrent_buyers(backend: Backend) {
    let (_place, store) = open(backend).await;
    let p = store.create_product("r", draft(10, &[])).await.expect("product").id;
    let buys: Vec<_> = (0..30)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.buy(buy(p, None, &format!("u{i}"), 1, "k")).await.expect("buy").answer })
        })
        .collect();
    let mut confirmed = 0;
    for b in buys {
        match b.await.expect("task") {
            BuyAnswer::Confirmed { .. } => confirmed += 1,
            other => assert_eq!(other, rejected(p, BuyRejection::SoldOut)),
        }
    }
    assert_eq!(confirmed, 10, "one order per unit in stock");
    assert_eq!(stock(&store, p).await.0, 0);
    let orders = store.recent_orders("r", 100).await.expect("orders");
    assert_eq!(orders.iter().map(|o| o.qty).sum::<u32>(), 10, "the orders hold exactly the stock");
}

async fn each_wrong_list_price_buy_has_its_typed_rejection(backend: Backend) {
    let (_place, store) = open(backend).await;
    let plain = store.create_product("r", draft(5, &[])).await.expect("product").id;
    let shirt = store.create_product("r", draft(0, &[("S", 2), ("M", 3)])).await.expect("product");
    let other_room = store.create_product("elsewhere", draft(5, &[])).await.expect("product").id;
    let gone = store.create_product("r", draft(5, &[])).await.expect("product").id;
    store.delete_product("r", gone).await.expect("delete");
    let s_id = shirt.variants[0].id;
    let cases = [
        (buy(9999, None, "a", 1, "1"), rejected(9999, BuyRejection::UnknownProduct)),
        (buy(other_room, None, "a", 1, "2"), rejected(other_room, BuyRejection::UnknownProduct)),
        (buy(gone, None, "a", 1, "3"), rejected(gone, BuyRejection::UnknownProduct)),
        (buy(plain, None, "a", 0, "4"), rejected(plain, BuyRejection::Invalid)),
        (buy(plain, None, "a", 100, "5"), rejected(plain, BuyRejection::Invalid)),
        (buy(shirt.id, None, "a", 1, "6"), rejected(shirt.id, BuyRejection::VariantRequired)),
        (buy(plain, Some(s_id), "a", 1, "7"), rejected(plain, BuyRejection::UnknownVariant)),
        (buy(shirt.id, Some(99_999), "a", 1, "8"), rejected(shirt.id, BuyRejection::UnknownVariant)),
        (buy(shirt.id, Some(s_id), "a", 3, "9"), rejected(shirt.id, BuyRejection::SoldOut)),
    ];
    for (req, expected) in cases {
        let key = req.idempotency_key.clone();
        assert_eq!(store.buy(req).await.expect("buy").answer, expected, "key {key}");
    }
    assert_eq!(stock(&store, plain).await.0, 5, "nothing was taken");
    assert_eq!(stock(&store, shirt.id).await, (5, vec![("S".into(), 2), ("M".into(), 3)]));
    assert!(store.recent_orders("r", 10).await.expect("orders").is_empty());
}

async fn a_variant_has_its_own_stock_and_the_product_holds_their_sum(backend: Backend) {
    let (_place, store) = open(backend).await;
    let shirt = store.create_product("r", draft(999, &[("S", 1), ("M", 3)])).await.expect("product");
    assert_eq!(shirt.stock, 4, "the sum of the variants, not the draft's stock");
    let (s, m) = (shirt.variants[0].id, shirt.variants[1].id);
    let out = store.buy(buy(shirt.id, Some(m), "ann", 2, "a")).await.expect("buy");
    assert!(matches!(out.answer, BuyAnswer::Confirmed { variant_id: Some(v), qty: 2, .. } if v == m), "{out:?}");
    assert_eq!(out.stock_left, Some(1), "the variant's stock left");
    assert!(matches!(store.buy(buy(shirt.id, Some(s), "bob", 1, "b")).await.expect("buy").answer, BuyAnswer::Confirmed { .. }));
    assert_eq!(store.buy(buy(shirt.id, Some(s), "cy", 1, "c")).await.expect("buy").answer, rejected(shirt.id, BuyRejection::SoldOut));
    assert_eq!(stock(&store, shirt.id).await, (1, vec![("S".into(), 0), ("M".into(), 1)]));
    let orders = store.recent_orders("r", 10).await.expect("orders");
    assert_eq!(orders.iter().map(|o| o.variant.as_str()).collect::<Vec<_>>(), ["S", "M"], "newest first, with the label");
}

async fn a_sale_of_a_product_with_variants_takes_the_variant_the_product_and_the_sale(backend: Backend) {
    let (_place, store) = open(backend).await;
    let shirt = store.create_product("r", draft(0, &[("S", 1), ("M", 3)])).await.expect("product");
    let sale = SaleDraft { product_id: shirt.id, price_minor: 3000, currency: None, stock: 4, per_user_limit: 2, starts_at_ms: 0, ends_at_ms: NOW * 2 };
    let sale = store.create_sale("r", sale).await.expect("sale").id;
    let on_sale = |variant, who: &str, qty, key: &str| BuyRequest { sale_id: Some(sale), product_id: None, ..buy(shirt.id, variant, who, qty, key) };
    let no_variant = store.buy(on_sale(None, "ann", 1, "a0")).await.expect("buy").answer;
    assert_eq!(no_variant, BuyAnswer::Rejected { sale_id: Some(sale), product_id: None, reason: BuyRejection::VariantRequired });
    let s = shirt.variants[0].id;
    let ok = store.buy(on_sale(Some(s), "ann", 1, "a1")).await.expect("buy");
    assert!(matches!(ok.answer, BuyAnswer::Confirmed { price_minor: 3000, .. }), "{ok:?}");
    assert_eq!(ok.stock_left, Some(3), "the sale's stock left");
    let short = store.buy(on_sale(Some(s), "bob", 1, "b1")).await.expect("buy").answer;
    assert_eq!(short, BuyAnswer::Rejected { sale_id: Some(sale), product_id: None, reason: BuyRejection::SoldOut });
    assert_eq!(stock(&store, shirt.id).await, (3, vec![("S".into(), 0), ("M".into(), 3)]));
    let sale_left = store.load_room("r").await.expect("load").sales[0].stock_left;
    assert_eq!(sale_left, 3, "the short variant took nothing from the sale either");
}

async fn list_price_orders_count_in_the_totals_and_only_the_buyer_sees_them_as_theirs(backend: Backend) {
    let (_place, store) = open(backend).await;
    let p = store.create_product("r", draft(50, &[])).await.expect("product").id;
    let sale = SaleDraft { product_id: p, price_minor: 1000, currency: None, stock: 10, per_user_limit: 5, starts_at_ms: 0, ends_at_ms: NOW * 2 };
    let sale = store.create_sale("r", sale).await.expect("sale").id;
    store.buy(buy(p, None, "ann", 2, "a1")).await.expect("buy");
    store.buy(BuyRequest { sale_id: Some(sale), ..buy(p, None, "ann", 1, "a2") }).await.expect("buy");
    store.buy(buy(p, None, "bob", 1, "b1")).await.expect("buy");
    let totals = store.load_room("r").await.expect("load").totals;
    assert_eq!((totals.totals.orders, totals.totals.units), (3, 4));
    assert_eq!(totals.totals.revenue_in("EUR"), 2 * 4500 + 1000 + 4500, "list-price orders are revenue too");
    assert_eq!(totals.units_of(p), 4);
    let ann = store.orders_of("r", "ann", 50).await.expect("mine");
    assert_eq!(ann.iter().map(|o| (o.sale_id, o.qty)).collect::<Vec<_>>(), [(Some(sale), 1), (None, 2)], "newest first");
    assert!(ann.iter().all(|o| o.identity == "ann" && o.title == "Linen shirt"));
    assert_eq!(store.orders_of("r", "cy", 50).await.expect("none").len(), 0);
    assert_eq!(store.orders_of("elsewhere", "ann", 50).await.expect("other room").len(), 0);
    let purchased = store.load_room("r").await.expect("load").purchased;
    assert_eq!(purchased, vec![(sale, "ann".to_string(), 1)], "per-buyer limits count sale orders only");
}

async fn the_webhook_body_of_a_list_price_order_names_its_product_and_variant(backend: Backend) {
    let place = Place::new(backend);
    let store = place.open_with(StoreOptions { webhook_outbox: true });
    let shirt = store.create_product("r", draft(0, &[("Red", 4)])).await.expect("product");
    let out = store.buy(buy(shirt.id, Some(shirt.variants[0].id), "ann", 2, "a")).await.expect("buy");
    let BuyAnswer::Confirmed { order_id, .. } = out.answer else { panic!("{out:?}") };
    let due = store.outbox_due(i64::MAX, 10).await.expect("due");
    assert_eq!(due.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&due[0].body).expect("json");
    let o = &body["order"];
    assert_eq!(o["id"], order_id);
    assert_eq!(o["sale_id"], serde_json::Value::Null, "no sale");
    assert_eq!((o["product_id"].as_i64(), o["title"].as_str()), (Some(shirt.id), Some("Linen shirt")), "existing fields kept");
    assert_eq!((o["unit_price_minor"].as_i64(), o["total_minor"].as_i64(), o["qty"].as_i64()), (Some(4500), Some(9000), Some(2)));
    assert_eq!(o["product"]["list_price_minor"], 4500);
    assert_eq!(o["variant"]["label"], "Red");
    assert_eq!(o["variant"]["id"], shirt.variants[0].id);
}

async fn bad_variants_are_refused_and_an_update_matches_them_by_label(backend: Backend) {
    let (_place, store) = open(backend).await;
    let long = "x".repeat(33);
    for bad in [vec![("", 1)], vec![(long.as_str(), 1)], vec![("S", 1), (" S ", 2)], vec![("S", 1_000_001)]] {
        assert!(matches!(store.create_product("r", draft(0, &bad)).await, Err(StoreError::Invalid(_))), "{bad:?}");
    }
    let many: Vec<(String, u32)> = (0..21).map(|i| (format!("v{i}"), 1)).collect();
    let many: Vec<(&str, u32)> = many.iter().map(|(l, s)| (l.as_str(), *s)).collect();
    assert!(matches!(store.create_product("r", draft(0, &many)).await, Err(StoreError::Invalid(_))), "at most 20");
    let shirt = store.create_product("r", draft(0, &[("S", 1), ("M", 2)])).await.expect("product");
    let updated = store.update_product("r", shirt.id, draft(0, &[("M", 5), ("L", 1)])).await.expect("update");
    let labels: Vec<(&str, u32)> = updated.variants.iter().map(|v| (v.label.as_str(), v.stock)).collect();
    assert_eq!(labels, [("S", 0), ("M", 5), ("L", 1)], "S kept for its orders, with no stock");
    assert_eq!(updated.variants[1].id, shirt.variants[1].id, "M is the same variant");
    assert_eq!(updated.stock, 6);
    let untouched = store.update_product("r", shirt.id, draft(77, &[])).await.expect("update without variants");
    assert_eq!((untouched.stock, untouched.variants.len()), (6, 3), "variants kept, stock still their sum");
}

on_both_backends!(
    a_list_price_buy_is_at_the_product_price_and_takes_its_stock_once_per_key,
    a_list_price_product_is_never_oversold_by_concurrent_buyers,
    each_wrong_list_price_buy_has_its_typed_rejection,
    a_variant_has_its_own_stock_and_the_product_holds_their_sum,
    a_sale_of_a_product_with_variants_takes_the_variant_the_product_and_the_sale,
    list_price_orders_count_in_the_totals_and_only_the_buyer_sees_them_as_theirs,
    the_webhook_body_of_a_list_price_order_names_its_product_and_variant,
    bad_variants_are_refused_and_an_update_matches_them_by_label,
);
