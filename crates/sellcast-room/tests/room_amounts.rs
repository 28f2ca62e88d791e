//! Money and stock in the room: a sale above the price, stock or limit caps is refused with an
//! `invalid` error frame, a quantity above the per-order cap is invalid, and totals never
//! overflow, even for a sale stored before the caps existed.

mod common;

use common::*;
use sellcast_room::money::{MAX_ORDER_QTY, MAX_PRICE_MINOR, MAX_STOCK};
use sellcast_room::{BuyAnswer, BuyRejection, Output, ParticipantId, Role};

const HOST: ParticipantId = ParticipantId(1);
const ANN: ParticipantId = ParticipantId(2);
const NOW: i64 = SALE_START + 10;

fn start_sale(price_minor: i64, stock: u32, per_user_limit: u32) -> Vec<u8> {
    serde_json::json!({
        "type": "start_sale", "product_id": PRODUCT, "price_minor": price_minor, "stock": stock,
        "per_user_limit": per_user_limit, "starts_at_ms": NOW, "ends_at_ms": NOW + 60_000,
    })
    .to_string()
    .into_bytes()
}

#[test]
fn a_sale_above_the_price_stock_or_limit_caps_is_refused_invalid() {
    let mut room = room(record(10, 2));
    room.handle_join(0, HOST, who("hana", Role::Host));
    drain(&mut room);
    let cases = [
        (i64::MAX, 10, 2),
        (MAX_PRICE_MINOR + 1, 10, 2),
        (100, MAX_STOCK + 1, 2),
        (100, 10, MAX_STOCK + 1),
    ];
    for (i, (price, stock, limit)) in cases.into_iter().enumerate() {
        let out = frame(&mut room, NOW + 1_000 * i as i64, HOST, &start_sale(price, stock, limit));
        assert_eq!(error_codes(&out, HOST), vec!["invalid"], "{price} {stock} {limit}");
        assert!(persisted(&out).is_empty());
    }
    let out = frame(&mut room, NOW + 10_000, HOST, &start_sale(MAX_PRICE_MINOR, MAX_STOCK, MAX_STOCK));
    assert_eq!(persisted(&out).len(), 1, "at the caps");
}

#[test]
fn a_quantity_above_the_order_cap_is_invalid_however_high_the_limit() {
    let mut room = room(record(1_000, 1_000));
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    drain(&mut room);
    let out = frame(&mut room, NOW, ANN, &buy_frame(SALE, MAX_ORDER_QTY + 1, "big"));
    let order = out.iter().find_map(|o| if let Output::Buy(b) = o { Some(b.clone()) } else { None }).expect("to the store");
    assert_eq!(order.verdict, Some(BuyRejection::Invalid));
    let out = frame(&mut room, NOW, ANN, &buy_frame(SALE, MAX_ORDER_QTY, "most"));
    let order = out.iter().find_map(|o| if let Output::Buy(b) = o { Some(b.clone()) } else { None }).expect("to the store");
    assert_eq!((order.verdict, order.qty), (None, MAX_ORDER_QTY));
}

#[test]
fn revenue_of_a_huge_price_stored_before_the_caps_does_not_overflow() {
    let mut rec = record(10, 5);
    rec.sales[0].price_minor = i64::MAX / 2;
    let mut room = room(rec);
    room.handle_join(0, HOST, who("hana", Role::Host));
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    drain(&mut room);
    let out = frame(&mut room, NOW, ANN, &buy_frame(SALE, 3, "k"));
    let order = out.iter().find_map(|o| if let Output::Buy(b) = o { Some(b.clone()) } else { None }).expect("to the store");
    let answer = BuyAnswer::Confirmed { order_id: 1, sale_id: Some(SALE), product_id: 0, variant_id: None, qty: 3, price_minor: i64::MAX / 2, currency: "EUR".into() };
    room.handle_buy_outcome(NOW, &order.ticket, answer, false, Some(7));
    let out = drain(&mut room);
    let feed = &of_type(&direct(&out, HOST), "order")[0];
    assert_eq!(feed["revenue_minor"].as_i64(), Some(i64::MAX), "held at the top, not wrapped or panicked");
}
