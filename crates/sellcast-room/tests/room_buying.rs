//! Buy admission in the room, each rule at its boundary: the key, the quantity, the sale window,
//! stock and per-user limits counting reservations in flight, what a store answer or failure
//! releases, and the host's live order feed.

mod common;

use common::*;
use sellcast_room::{BuyAnswer, BuyOrder, BuyRejection, BuyTicket, Output, ParticipantId, Role, Show, ShowRecord};

const ANN: ParticipantId = ParticipantId(1);
const BOB: ParticipantId = ParticipantId(2);
const HOST: ParticipantId = ParticipantId(3);
/// Inside the sale window.
const NOW: i64 = SALE_START + 10;

fn room_with(record: ShowRecord) -> Show {
    let mut room = room(record);
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    room.handle_join(0, BOB, who("bob", Role::Viewer));
    room.handle_join(0, HOST, who("hana", Role::Host));
    drain(&mut room);
    room
}

fn orders(outputs: &[Output]) -> Vec<BuyOrder> {
    outputs.iter().filter_map(|o| if let Output::Buy(b) = o { Some(b.clone()) } else { None }).collect()
}

/// Buy and return either the order sent to the store or the rejection reason answered. A
/// rejection the desk decided goes to the store with its verdict; here the store has no older
/// answer for the key, so it records and returns that verdict.
fn try_buy(room: &mut Show, now_ms: i64, from: ParticipantId, qty: u32, key: &str) -> Result<BuyOrder, String> {
    let mut out = frame(room, now_ms, from, &buy_frame(SALE, qty, key));
    if let Some(order) = orders(&out).pop() {
        let Some(reason) = order.verdict else {
            return Ok(order);
        };
        room.handle_buy_outcome(now_ms, &order.ticket, BuyAnswer::Rejected { sale_id: order.sale_id, product_id: order.product_id, reason }, false, None);
        out = drain(room);
    }
    let answers = of_type(&direct(&out, from), "buy_rejected");
    assert_eq!(answers.len(), 1, "one answer: {out:?}");
    assert_eq!(answers[0]["idempotency_key"], key);
    assert_eq!(answers[0]["sale_id"], SALE);
    Err(answers[0]["reason"].as_str().unwrap_or("?").to_string())
}

fn confirmed(order_id: i64, qty: u32) -> BuyAnswer {
    BuyAnswer::Confirmed { order_id, sale_id: Some(SALE), product_id: 0, variant_id: None, qty, price_minor: 990, currency: "EUR".into() }
}

#[test]
fn the_idempotency_key_must_be_one_to_64_characters() {
    let mut room = room_with(record(10, 5));
    assert_eq!(try_buy(&mut room, NOW, ANN, 1, "").map(|_| ()), Err("invalid".into()));
    assert_eq!(try_buy(&mut room, NOW, ANN, 1, &"é".repeat(65)).map(|_| ()), Err("invalid".into()));
    let order = try_buy(&mut room, NOW, ANN, 1, &"é".repeat(64)).expect("64 characters is a valid key");
    assert_eq!(order, BuyOrder { ticket: BuyTicket { identity: "ann".into(), key: "é".repeat(64) }, buyer_name: "ann name".into(), sale_id: Some(SALE), product_id: Some(PRODUCT), variant_id: None, qty: 1, verdict: None });
}

#[test]
fn quantity_must_be_between_one_and_the_per_user_limit() {
    let mut room = room_with(record(10, 3));
    assert_eq!(try_buy(&mut room, NOW, ANN, 0, "zero").map(|_| ()), Err("invalid".into()));
    assert_eq!(try_buy(&mut room, NOW, ANN, 4, "four").map(|_| ()), Err("invalid".into()));
    assert_eq!(try_buy(&mut room, NOW, ANN, 3, "three").map(|o| o.qty), Ok(3));
}

#[test]
fn an_unknown_sale_is_invalid_and_reserves_nothing() {
    let mut room = room_with(record(10, 3));
    let out = frame(&mut room, NOW, ANN, &buy_frame(SALE + 1, 1, "k"));
    // The key may have an older answer in the store: it goes there with the desk's verdict.
    let order = orders(&out).pop().expect("to the store");
    assert_eq!((order.verdict, order.qty), (Some(BuyRejection::Invalid), 1));
    room.handle_buy_outcome(NOW, &order.ticket, BuyAnswer::Rejected { sale_id: Some(SALE + 1), product_id: None, reason: BuyRejection::Invalid }, false, None);
    let out = drain(&mut room);
    assert_eq!(room.sale(SALE).map(|s| s.stock_left), Some(10));
    let answer = &of_type(&direct(&out, ANN), "buy_rejected")[0];
    assert_eq!((answer["sale_id"].as_i64(), answer["reason"].as_str()), (Some(SALE + 1), Some("invalid")));
}

#[test]
fn a_buy_outside_the_sale_window_or_after_its_end_is_not_active() {
    let mut room = room_with(record(10, 3));
    assert_eq!(try_buy(&mut room, SALE_START - 1, ANN, 1, "early").map(|_| ()), Err("sale_not_active".into()));
    assert_eq!(try_buy(&mut room, SALE_END, ANN, 1, "late").map(|_| ()), Err("sale_not_active".into()));
    assert!(try_buy(&mut room, SALE_START, ANN, 1, "first ms").is_ok());
    assert!(try_buy(&mut room, SALE_END - 1, BOB, 1, "last ms").is_ok());
    let mut ended = record(10, 3);
    ended.sales[0].ended_at_ms = Some(SALE_START + 5);
    let mut room = room_with(ended);
    assert_eq!(try_buy(&mut room, NOW, ANN, 1, "ended").map(|_| ()), Err("sale_not_active".into()));
}

#[test]
fn stock_reserved_by_buys_in_flight_is_not_sold_twice() {
    let mut room = room_with(record(3, 3));
    assert!(try_buy(&mut room, NOW, ANN, 2, "a").is_ok());
    assert_eq!(room.buys_in_flight(), 1);
    assert_eq!(try_buy(&mut room, NOW, BOB, 2, "b").map(|_| ()), Err("sold_out".into()), "1 unreserved, 2 wanted");
    assert_eq!(try_buy(&mut room, NOW, BOB, 1, "c").map(|o| o.qty), Ok(1), "exactly the unreserved unit");
    assert_eq!(room.buys_in_flight(), 2);
    assert_eq!(try_buy(&mut room, NOW, BOB, 1, "d").map(|_| ()), Err("sold_out".into()));
}

#[test]
fn the_per_user_limit_counts_committed_and_in_flight_units() {
    let mut rec = record(20, 4);
    rec.bought = vec![(SALE, "ann".into(), 1)];
    let mut room = room_with(rec);
    assert_eq!(room.bought(SALE, "ann"), 1, "loaded from the store");
    assert!(try_buy(&mut room, NOW, ANN, 1, "a1").is_ok());
    // 1 committed + 1 in flight + 2 = 4: exactly the limit.
    assert!(try_buy(&mut room, NOW, ANN, 2, "a2").is_ok());
    assert_eq!(try_buy(&mut room, NOW, ANN, 1, "a3").map(|_| ()), Err("limit_reached".into()));
    assert!(try_buy(&mut room, NOW, BOB, 4, "b1").is_ok(), "another user has their own limit");
}

#[test]
fn a_committed_buy_counts_against_the_limit_and_its_reservation_is_released() {
    let mut room = room_with(record(10, 2));
    let first = try_buy(&mut room, NOW, ANN, 1, "a1").expect("submitted");
    let second = try_buy(&mut room, NOW, ANN, 1, "a2").expect("submitted");
    room.handle_buy_outcome(NOW, &first.ticket, confirmed(7, 1), false, Some(9));
    assert_eq!(room.bought(SALE, "ann"), 1);
    assert_eq!(room.buys_in_flight(), 1);
    // One committed plus one still in flight: the limit of 2 is used up.
    assert_eq!(try_buy(&mut room, NOW, ANN, 1, "a3").map(|_| ()), Err("limit_reached".into()));
    room.handle_buy_outcome(NOW, &second.ticket, confirmed(8, 1), false, Some(8));
    assert_eq!(room.bought(SALE, "ann"), 2);
    assert_eq!(room.buys_in_flight(), 0);
    assert_eq!(room.sale(SALE).map(|s| (s.stock_left, s.sold())), Some((8, 2)));
}

#[test]
fn a_store_rejection_releases_the_reservation() {
    let mut room = room_with(record(2, 2));
    let order = try_buy(&mut room, NOW, ANN, 2, "a").expect("submitted");
    let rejected = BuyAnswer::Rejected { sale_id: Some(SALE), product_id: None, reason: BuyRejection::SoldOut };
    room.handle_buy_outcome(NOW, &order.ticket, rejected, false, None);
    let out = drain(&mut room);
    assert_eq!(of_type(&direct(&out, ANN), "buy_rejected")[0]["reason"], "sold_out");
    assert_eq!(room.bought(SALE, "ann"), 0);
    assert_eq!(try_buy(&mut room, NOW, BOB, 2, "b").map(|o| o.qty), Ok(2), "both units are free again");
}

#[test]
fn a_store_failure_answers_every_waiter_and_the_same_key_may_try_again() {
    let mut room = room_with(record(2, 2));
    let order = try_buy(&mut room, NOW, ANN, 2, "a").expect("submitted");
    let out = frame(&mut room, NOW, ANN, &buy_frame(SALE, 2, "a"));
    assert!(orders(&out).is_empty() && direct(&out, ANN).is_empty(), "a retry in flight waits for the first answer");
    room.handle_buy_failure(&order.ticket);
    let out = drain(&mut room);
    let errors = of_type(&direct(&out, ANN), "error");
    assert_eq!(errors.len(), 2, "the first request and its retry");
    assert!(errors.iter().all(|e| e["code"] == "unavailable"));
    assert_eq!(room.buys_in_flight(), 0);
    assert_eq!(try_buy(&mut room, NOW, ANN, 2, "a").map(|o| o.qty), Ok(2), "nothing was remembered or reserved");
    room.handle_buy_failure(&BuyTicket { identity: "nobody".into(), key: "x".into() });
    assert!(drain(&mut room).is_empty(), "a failure for no buy in flight answers no one");
}

#[test]
fn answers_are_remembered_per_key_even_after_conditions_change() {
    let mut room = room_with(record(10, 2));
    assert_eq!(try_buy(&mut room, SALE_START - 1, ANN, 1, "early").map(|_| ()), Err("sale_not_active".into()));
    assert_eq!(try_buy(&mut room, SALE_START - 1, ANN, 1, "early2").map(|_| ()), Err("sale_not_active".into()));
    // The sale is open now, but both keys were answered already.
    assert_eq!(try_buy(&mut room, NOW, ANN, 1, "early").map(|_| ()), Err("sale_not_active".into()));
    assert_eq!(try_buy(&mut room, NOW, ANN, 1, "early2").map(|_| ()), Err("sale_not_active".into()));
    let order = try_buy(&mut room, NOW, ANN, 1, "ok").expect("submitted");
    room.handle_buy_outcome(NOW, &order.ticket, confirmed(5, 1), false, Some(9));
    drain(&mut room);
    let out = frame(&mut room, NOW + 1, ANN, &buy_frame(SALE, 1, "ok"));
    assert!(orders(&out).is_empty(), "a confirmed key never reaches the store again");
    let confirmation = &direct(&out, ANN)[0];
    assert_eq!((confirmation["type"].as_str(), confirmation["order_id"].as_i64()), (Some("order_confirmed"), Some(5)));
}

#[test]
fn a_retry_the_cache_does_not_know_is_answered_by_the_store_even_when_memory_would_refuse_it() {
    // After a restart (or an eviction from the cache) ann retries the key of her committed
    // order: memory counts that order against her limit and would say `limit_reached`.
    let mut rec = record(10, 2);
    rec.bought = vec![(SALE, "ann".into(), 2)];
    let mut room = room_with(rec);
    let out = frame(&mut room, NOW, ANN, &buy_frame(SALE, 2, "k"));
    assert!(direct(&out, ANN).is_empty(), "not answered from memory: {out:?}");
    let order = orders(&out).pop().expect("asked of the store");
    assert_eq!(order.verdict, Some(BuyRejection::LimitReached), "with the desk's verdict, for a key the store does not know");
    // The store knows the key: it replays its answer instead of recording the verdict.
    room.handle_buy_outcome(NOW, &order.ticket, confirmed(77, 2), true, Some(8));
    let out = drain(&mut room);
    let c = &direct(&out, ANN)[0];
    assert_eq!(c["type"], "order_confirmed");
    assert_eq!((c["order_id"].as_i64(), c["qty"].as_u64(), c["idempotency_key"].as_str()), (Some(77), Some(2), Some("k")));
    assert_eq!((c["price_minor"].as_i64(), c["currency"].as_str(), c["sale_id"].as_i64()), (Some(990), Some("EUR"), Some(SALE)));
}

#[test]
fn a_replayed_store_answer_changes_neither_stock_nor_counts() {
    let mut room = room_with(record(10, 2));
    let order = try_buy(&mut room, NOW, ANN, 1, "a").expect("submitted");
    room.handle_buy_outcome(NOW, &order.ticket, confirmed(5, 1), true, Some(3));
    let out = drain(&mut room);
    assert_eq!(of_type(&direct(&out, ANN), "order_confirmed").len(), 1, "the buyer is answered");
    assert!(of_type(&direct(&out, HOST), "order").is_empty(), "no new order in the host feed");
    assert_eq!(room.sale(SALE).map(|s| s.stock_left), Some(10));
    assert_eq!(room.bought(SALE, "ann"), 0, "already counted when it was first committed");
}

#[test]
fn without_a_stock_report_the_order_is_counted_off_and_the_last_unit_sells_out() {
    let mut room = room_with(record(2, 2));
    let order = try_buy(&mut room, NOW, ANN, 1, "a").expect("submitted");
    room.handle_buy_outcome(NOW, &order.ticket, confirmed(5, 1), false, None);
    assert!(broadcasts_of(&drain(&mut room), "sold_out").is_empty(), "one unit left");
    assert_eq!(room.sale(SALE).map(|s| s.stock_left), Some(1));
    let order = try_buy(&mut room, NOW, BOB, 1, "b").expect("submitted");
    room.handle_buy_outcome(NOW, &order.ticket, confirmed(6, 1), false, None);
    let out = drain(&mut room);
    assert_eq!(broadcasts_of(&out, "sold_out")[0]["sale_id"], SALE);
    assert_eq!(room.sale(SALE).map(|s| s.stock_left), Some(0));
}

#[test]
fn staff_see_each_order_with_the_buyer_units_sold_and_running_revenue() {
    let mut rec = record(10, 3);
    rec.recent_orders = vec![sellcast_room::OrderLine {
        order_id: 1,
        sale_id: Some(SALE),
        product_id: PRODUCT,
        title: "Lamp".into(),
        variant_id: None,
        variant: String::new(),
        buyer: who("old", Role::Viewer),
        qty: 2,
        price_minor: 990,
        currency: "EUR".into(),
        at_ms: 5,
    }];
    let mut room = room_with(rec);
    let moderator = ParticipantId(9);
    room.handle_join(0, moderator, who("mo", Role::Moderator));
    drain(&mut room);
    let order = try_buy(&mut room, NOW, ANN, 3, "a").expect("submitted");
    room.handle_buy_outcome(NOW + 5, &order.ticket, confirmed(2, 3), false, Some(7));
    let out = drain(&mut room);
    assert!(of_type(&direct(&out, ANN), "order").is_empty(), "viewers do not get the feed");
    assert!(of_type(&direct(&out, BOB), "order").is_empty());
    for staff in [HOST, moderator] {
        let feed = of_type(&direct(&out, staff), "order");
        assert_eq!(feed.len(), 1);
        let f = &feed[0];
        assert_eq!(f["order"]["buyer"]["name"], "ann name", "the buyer as the room knows them");
        assert_eq!((f["order"]["order_id"].as_i64(), f["order"]["qty"].as_u64(), f["order"]["at_ms"].as_i64()), (Some(2), Some(3), Some(NOW + 5)));
        assert_eq!(f["sale_sold"], 3);
        assert_eq!(f["revenue_minor"], 2 * 990 + 3 * 990, "revenue includes the orders loaded at start");
    }
}

#[test]
fn an_order_from_a_buyer_who_left_still_names_them_as_they_bought() {
    let mut room = room_with(record(10, 3));
    let order = try_buy(&mut room, NOW, ANN, 1, "a").expect("submitted");
    room.handle_leave(ANN);
    room.handle_buy_outcome(NOW, &order.ticket, confirmed(2, 1), false, Some(9));
    let out = drain(&mut room);
    let feed = &of_type(&direct(&out, HOST), "order")[0];
    assert_eq!(feed["order"]["buyer"], serde_json::json!({"id": "ann", "name": "ann name", "role": "viewer"}));
}

#[test]
fn the_host_snapshot_keeps_the_latest_50_orders() {
    let mut room = room_with(record(200, 1));
    for i in 0..55 {
        let ticket = BuyTicket { identity: format!("u{i}"), key: "k".into() };
        let buyer = ParticipantId(100 + i as u64);
        room.handle_join(0, buyer, who(&ticket.identity, Role::Viewer));
        assert!(try_buy(&mut room, NOW, buyer, 1, "k").is_ok());
        room.handle_buy_outcome(NOW, &ticket, confirmed(i, 1), false, None);
    }
    drain(&mut room);
    let out = frame(&mut room, NOW, HOST, br#"{"type":"hello"}"#);
    let snapshot = &of_type(&direct(&out, HOST), "snapshot")[0];
    let ids: Vec<i64> = snapshot["orders"].as_array().expect("orders for the host").iter().filter_map(|o| o["order_id"].as_i64()).collect();
    assert_eq!(ids, (5..55).collect::<Vec<i64>>(), "oldest first, the first five dropped");
    assert_eq!(room.sale(SALE).map(|s| s.stock_left), Some(145));
}

#[test]
fn an_outcome_for_a_sale_the_room_does_not_hold_changes_no_sale() {
    let mut room = room_with(record(10, 3));
    let order = try_buy(&mut room, NOW, ANN, 1, "a").expect("submitted");
    let other_sale = BuyAnswer::Confirmed { order_id: 3, sale_id: Some(SALE + 5), product_id: 0, variant_id: None, qty: 1, price_minor: 1, currency: "EUR".into() };
    room.handle_buy_outcome(NOW, &order.ticket, other_sale, false, Some(0));
    let out = drain(&mut room);
    assert_eq!(of_type(&direct(&out, ANN), "order_confirmed").len(), 1);
    assert!(broadcasts_of(&out, "sold_out").is_empty());
    assert_eq!(room.sale(SALE).map(|s| s.stock_left), Some(10));
}

#[test]
fn abandoning_buys_in_flight_tells_every_waiting_buyer_unavailable_and_forgets_nothing_else() {
    let mut room = room_with(record(10, 5));
    try_buy(&mut room, NOW, ANN, 1, "ann-1").expect("in flight");
    try_buy(&mut room, NOW, BOB, 1, "bob-1").expect("in flight");
    let answered = try_buy(&mut room, NOW, BOB, 1, "bob-2").expect("in flight");
    room.handle_buy_outcome(NOW, &answered.ticket, confirmed(7, 1), false, Some(9));
    drain(&mut room);

    room.abandon_buys_in_flight();
    let out = drain(&mut room);
    for (who, n) in [(ANN, 1), (BOB, 1), (HOST, 0)] {
        let codes = error_codes(&out, who);
        assert_eq!(codes, vec!["unavailable".to_string(); n], "{who:?}: {out:?}");
    }
    assert_eq!(room.buys_in_flight(), 0);
    // Nothing was remembered for the abandoned keys: their retry goes to the store again,
    // while the answered key keeps its answer.
    assert!(try_buy(&mut room, NOW, ANN, 1, "ann-1").is_ok(), "the retry of an abandoned key is sent to the store");
    let again = frame(&mut room, NOW, BOB, &buy_frame(SALE, 1, "bob-2"));
    assert_eq!(of_type(&direct(&again, BOB), "order_confirmed").len(), 1, "{again:?}");
}
