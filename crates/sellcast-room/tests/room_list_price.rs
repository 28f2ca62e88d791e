//! Buys without a flash sale, in the room: a `buy` frame with a `product_id` and no `sale_id`
//! is admitted at the product's stock (and its variant's) counting buys in flight, with a
//! typed rejection for an unknown product, a missing or unknown variant, or a quantity out of
//! range; a retried key is one order; a confirmed order reaches the host's feed with its
//! variant label and the room's totals.

mod common;

use common::*;
use sellcast_room::{BuyAnswer, BuyOrder, Output, ParticipantId, Product, Role, Show, ShowRecord, Variant};

const ANN: ParticipantId = ParticipantId(1);
const BOB: ParticipantId = ParticipantId(2);
const HOST: ParticipantId = ParticipantId(3);
const NOW: i64 = 5_000;
const PLAIN: i64 = 20;
const SHIRT: i64 = 21;
const SMALL: i64 = 201;
const MEDIUM: i64 = 202;

fn shirt() -> Product {
    Product {
        id: SHIRT,
        title: "Linen shirt".into(),
        price_minor: 4500,
        currency: "EUR".into(),
        image_url: String::new(),
        stock: 3,
        variants: vec![Variant { id: SMALL, label: "S".into(), stock: 1 }, Variant { id: MEDIUM, label: "M".into(), stock: 2 }],
    }
}

fn shop() -> Show {
    let plain = Product { id: PLAIN, stock: 3, price_minor: 1200, ..product(PLAIN) };
    let mut room = room(ShowRecord { products: vec![plain, shirt()], ..ShowRecord::default() });
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    room.handle_join(0, BOB, who("bob", Role::Viewer));
    room.handle_join(0, HOST, who("hana", Role::Host));
    drain(&mut room);
    room
}

fn list_price_frame(product_id: i64, variant_id: Option<i64>, qty: u32, key: &str) -> Vec<u8> {
    let variant = variant_id.map(|v| format!(r#","variant_id":{v}"#)).unwrap_or_default();
    format!(r#"{{"type":"buy","product_id":{product_id}{variant},"qty":{qty},"idempotency_key":"{key}"}}"#).into_bytes()
}

/// The order sent to the store, with the desk's verdict if it found the buy cannot succeed.
fn submit(room: &mut Show, from: ParticipantId, product_id: i64, variant_id: Option<i64>, qty: u32, key: &str) -> BuyOrder {
    let out = frame(room, NOW, from, &list_price_frame(product_id, variant_id, qty, key));
    let orders: Vec<BuyOrder> = out.iter().filter_map(|o| if let Output::Buy(b) = o { Some(b.clone()) } else { None }).collect();
    assert_eq!(orders.len(), 1, "one buy for the store: {out:?}");
    orders[0].clone()
}

fn verdict(room: &mut Show, from: ParticipantId, product_id: i64, variant_id: Option<i64>, qty: u32, key: &str) -> Option<&'static str> {
    submit(room, from, product_id, variant_id, qty, key).verdict.map(|r| r.code())
}

fn confirm(room: &mut Show, order: &BuyOrder, order_id: i64, stock_left: u32) -> Vec<Output> {
    let answer = BuyAnswer::Confirmed {
        order_id,
        sale_id: None,
        product_id: order.product_id.unwrap_or(0),
        variant_id: order.variant_id,
        qty: order.qty,
        price_minor: 4500,
        currency: "EUR".into(),
    };
    room.handle_buy_outcome(NOW, &order.ticket, answer, false, Some(stock_left));
    drain(room)
}

#[test]
fn a_list_price_buy_goes_to_the_store_with_its_product_and_variant_and_no_sale() {
    let mut room = shop();
    let order = submit(&mut room, ANN, SHIRT, Some(MEDIUM), 2, "k");
    assert_eq!((order.sale_id, order.product_id, order.variant_id, order.qty, order.verdict), (None, Some(SHIRT), Some(MEDIUM), 2, None));
}

#[test]
fn each_wrong_list_price_buy_gets_its_typed_verdict() {
    let mut room = shop();
    assert_eq!(verdict(&mut room, ANN, 999, None, 1, "a"), Some("unknown_product"));
    assert_eq!(verdict(&mut room, ANN, SHIRT, None, 1, "b"), Some("variant_required"));
    assert_eq!(verdict(&mut room, ANN, SHIRT, Some(999), 1, "c"), Some("unknown_variant"));
    assert_eq!(verdict(&mut room, ANN, PLAIN, Some(SMALL), 1, "d"), Some("unknown_variant"));
    assert_eq!(verdict(&mut room, ANN, PLAIN, None, 0, "e"), Some("invalid"));
    assert_eq!(verdict(&mut room, ANN, PLAIN, None, 100, "f"), Some("invalid"));
    assert_eq!(verdict(&mut room, ANN, PLAIN, None, 4, "g"), Some("sold_out"));
    assert_eq!(verdict(&mut room, ANN, SHIRT, Some(SMALL), 2, "h"), Some("sold_out"), "the variant's stock, not the product's");
    let out = frame(&mut room, NOW, ANN, br#"{"type":"buy","qty":1,"idempotency_key":"i"}"#);
    let neither = out.iter().find_map(|o| if let Output::Buy(b) = o { b.verdict.map(|r| r.code()) } else { None });
    assert_eq!(neither, Some("invalid"), "neither a sale nor a product: {out:?}");
}

#[test]
fn buys_in_flight_hold_their_units_so_the_store_sees_only_buys_that_can_succeed() {
    let mut room = shop();
    let first = submit(&mut room, ANN, SHIRT, Some(MEDIUM), 2, "a");
    assert_eq!(first.verdict, None);
    assert_eq!(verdict(&mut room, BOB, SHIRT, Some(MEDIUM), 1, "b"), Some("sold_out"), "M's two units are reserved");
    assert_eq!(verdict(&mut room, BOB, SHIRT, Some(SMALL), 1, "c"), None, "S has its own unit");
    room.handle_buy_failure(&first.ticket);
    drain(&mut room);
    assert_eq!(verdict(&mut room, BOB, SHIRT, Some(MEDIUM), 1, "d"), None, "a failed buy gives its units back");
}

#[test]
fn a_retried_key_is_answered_with_its_one_order() {
    let mut room = shop();
    let order = submit(&mut room, ANN, PLAIN, None, 1, "k");
    let joined = frame(&mut room, NOW, ANN, &list_price_frame(PLAIN, None, 1, "k"));
    assert!(!joined.iter().any(|o| matches!(o, Output::Buy(_))), "a retry in flight waits for the first: {joined:?}");
    let out = confirm(&mut room, &order, 7, 2);
    let answers = of_type(&direct(&out, ANN), "order_confirmed");
    assert_eq!(answers.len(), 2, "both attempts are told: {out:?}");
    assert!(answers.iter().all(|a| a["order_id"] == 7 && a["sale_id"].is_null() && a["product_id"] == PLAIN));
    let later = frame(&mut room, NOW, ANN, &list_price_frame(PLAIN, None, 1, "k"));
    assert_eq!(of_type(&direct(&later, ANN), "order_confirmed")[0]["order_id"], 7, "later: the same order, from memory");
    assert!(!later.iter().any(|o| matches!(o, Output::Buy(_))));
}

#[test]
fn a_confirmed_list_price_order_reaches_the_host_feed_with_its_variant_and_the_totals() {
    let mut room = shop();
    let order = submit(&mut room, ANN, SHIRT, Some(SMALL), 1, "k");
    let out = confirm(&mut room, &order, 9, 0);
    let feed = of_type(&direct(&out, HOST), "order");
    assert_eq!(feed.len(), 1, "{out:?}");
    let line = &feed[0]["order"];
    assert_eq!((line["variant"].as_str(), line["variant_id"].as_i64(), line["title"].as_str()), (Some("S"), Some(SMALL), Some("Linen shirt")));
    assert!(line["sale_id"].is_null());
    assert_eq!(feed[0]["totals"]["revenue"][0]["minor"], 4500);
    assert_eq!(feed[0]["product_stock"], 2, "S's unit left the product's stock");
    assert!(of_type(&direct(&out, ANN), "order").is_empty(), "viewers do not get the feed");
    let updated = broadcasts_of(&out, "product_updated");
    assert_eq!(updated.len(), 1, "S ran out: everyone sees it");
    assert_eq!(updated[0]["product"]["variants"][0]["stock"], 0);
    assert_eq!(room.totals().totals.revenue_in("EUR"), 4500);
    assert_eq!(room.totals().units_of(SHIRT), 1);
    assert_eq!(verdict(&mut room, BOB, SHIRT, Some(SMALL), 1, "b"), Some("sold_out"));
}

#[test]
fn a_sales_buy_of_a_product_with_variants_names_one_with_units_left() {
    let sale = sellcast_room::Sale { product_id: SHIRT, stock_total: 3, stock_left: 3, per_user_limit: 3, ..sale(3, 3) };
    let plain = Product { id: PLAIN, ..product(PLAIN) };
    let mut room = room(ShowRecord { products: vec![plain, shirt()], sales: vec![sale], ..ShowRecord::default() });
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    drain(&mut room);
    let now = SALE_START + 10;
    let mut on_sale = |variant: Option<i64>, qty: u32, product: Option<i64>, key: &str| {
        let variant = variant.map(|v| format!(r#","variant_id":{v}"#)).unwrap_or_default();
        let product = product.map(|p| format!(r#","product_id":{p}"#)).unwrap_or_default();
        let bytes = format!(r#"{{"type":"buy","sale_id":{SALE}{product}{variant},"qty":{qty},"idempotency_key":"{key}"}}"#);
        let out = frame(&mut room, now, ANN, bytes.as_bytes());
        out.iter().find_map(|o| if let Output::Buy(b) = o { Some(b.verdict.map(|r| r.code())) } else { None }).expect("a buy for the store")
    };
    assert_eq!(on_sale(None, 1, None, "a"), Some("variant_required"));
    assert_eq!(on_sale(Some(999), 1, None, "b"), Some("unknown_variant"));
    assert_eq!(on_sale(Some(SMALL), 2, None, "c"), Some("sold_out"), "the sale has 3, S has 1");
    assert_eq!(on_sale(Some(SMALL), 1, Some(PLAIN), "d"), Some("invalid"), "a product that is not the sale's");
    assert_eq!(on_sale(Some(MEDIUM), 2, Some(SHIRT), "e"), None);
}
