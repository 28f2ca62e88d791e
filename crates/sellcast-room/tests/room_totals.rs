//! The host's figures come from the room, never from adding up what a page saw: the totals a
//! room loads (the store's sums over every order, not only the recent ones it keeps for the
//! feed) plus every order committed since, in the host's snapshot and in each order frame; and
//! each order takes its units off the product's stock as the store did.

mod common;

use common::*;
use sellcast_room::{BuyAnswer, BuyTicket, ParticipantId, Role, Show, ShowRecord, ShowTotals};

const HOST: ParticipantId = ParticipantId(3);
const NOW: i64 = SALE_START + 10;

fn confirmed(order_id: i64, qty: u32) -> BuyAnswer {
    BuyAnswer::Confirmed { order_id, sale_id: Some(SALE), product_id: 0, variant_id: None, qty, price_minor: 990, currency: "EUR".into() }
}

/// A room whose store already holds 60 orders of one unit at 9.90 (more than the 50 recent
/// orders a room keeps for the feed; none of them is in `recent_orders` here).
fn room_after_60_orders() -> Show {
    let mut totals = ShowTotals::default();
    for _ in 0..60 {
        totals.add_order(PRODUCT, 1, 990, "EUR");
    }
    let mut room = room(ShowRecord { totals, ..record(100, 5) });
    room.handle_join(0, HOST, who("hana", Role::Host));
    drain(&mut room);
    room
}

/// Place and commit one buy of `qty` by a new buyer `n`.
fn buy(room: &mut Show, n: u64, qty: u32) {
    let buyer = ParticipantId(100 + n);
    let id = format!("u{n}");
    room.handle_join(0, buyer, who(&id, Role::Viewer));
    let out = frame(room, NOW, buyer, &buy_frame(SALE, qty, "k"));
    assert!(out.iter().any(|o| matches!(o, sellcast_room::Output::Buy(_))), "buy {n} goes to the store");
    room.handle_buy_outcome(NOW, &BuyTicket { identity: id, key: "k".into() }, confirmed(n as i64, qty), false, None);
}

#[test]
fn the_host_snapshot_revenue_is_the_sum_of_every_order_loaded_and_committed_since() {
    let mut room = room_after_60_orders();
    buy(&mut room, 1, 2);
    buy(&mut room, 2, 3);
    drain(&mut room);
    let out = frame(&mut room, NOW, HOST, br#"{"type":"hello"}"#);
    let snapshot = &of_type(&direct(&out, HOST), "snapshot")[0];
    let totals = &snapshot["totals"];
    assert_eq!(totals["revenue"], serde_json::json!([{ "currency": "EUR", "minor": (60 + 5) * 990 }]));
    assert_eq!((totals["orders"].as_u64(), totals["units"].as_u64()), (Some(62), Some(65)));
    assert!(totals.get("products").is_none(), "per-product sales (as long as the catalog) stay out of snapshots");
    assert_eq!(room.totals().products, vec![sellcast_room::ProductSales { product_id: PRODUCT, orders: 62, units: 65 }]);
}

#[test]
fn each_order_frame_carries_the_room_totals_with_that_order_in() {
    let mut room = room_after_60_orders();
    buy(&mut room, 1, 2);
    let out = drain(&mut room);
    let feed = &of_type(&direct(&out, HOST), "order")[0];
    assert_eq!(feed["totals"]["revenue"][0]["minor"], 62 * 990);
    assert_eq!(feed["order"]["title"], format!("product {PRODUCT}"), "the feed names the product");
    assert_eq!(feed["order"]["product_id"], PRODUCT);
    assert_eq!(feed["product_sales"], serde_json::json!({ "product_id": PRODUCT, "orders": 61, "units": 62 }));
    assert!(feed["totals"].get("products").is_none(), "an order frame stays small whatever the catalog");
}

#[test]
fn viewers_get_no_totals() {
    let mut room = room_after_60_orders();
    let viewer = ParticipantId(50);
    room.handle_join(0, viewer, who("v", Role::Viewer));
    drain(&mut room);
    let out = frame(&mut room, NOW, viewer, br#"{"type":"hello"}"#);
    let snapshot = &of_type(&direct(&out, viewer), "snapshot")[0];
    assert!(snapshot.get("totals").is_none() && snapshot.get("orders").is_none(), "{snapshot}");
}

#[test]
fn a_committed_order_takes_its_units_off_the_product_stock() {
    let mut room = room_after_60_orders();
    buy(&mut room, 1, 3);
    let out = drain(&mut room);
    assert_eq!(of_type(&direct(&out, HOST), "order")[0]["product_stock"], 97);
    assert_eq!(room.products().iter().find(|p| p.id == PRODUCT).map(|p| p.stock), Some(97));
    let out = frame(&mut room, NOW, HOST, br#"{"type":"hello"}"#);
    let snapshot = &of_type(&direct(&out, HOST), "snapshot")[0];
    assert_eq!(snapshot["products"][0]["stock"], 97, "a reloaded console shows the stock left");
}
