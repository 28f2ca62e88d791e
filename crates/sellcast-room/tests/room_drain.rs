//! Draining (the server is going away): everyone is told to reconnect, buys already with the
//! store are still answered, new ones are not placed and hold nothing.

mod common;

use common::*;
use sellcast_room::{BuyOrder, Output, ParticipantId, Role, Show};

const ANN: ParticipantId = ParticipantId(1);
const LATE: ParticipantId = ParticipantId(3);
const BOB: ParticipantId = ParticipantId(2);
const NOW: i64 = SALE_START + 10;
const HINT_MS: u64 = 2_000;

fn live_room(stock: u32) -> Show {
    let mut room = room(record(stock, 5));
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    room.handle_join(0, BOB, who("bob", Role::Viewer));
    drain(&mut room);
    room
}

fn orders(outputs: &[Output]) -> Vec<BuyOrder> {
    outputs.iter().filter_map(|o| if let Output::Buy(b) = o { Some(b.clone()) } else { None }).collect()
}

fn confirm(room: &mut Show, order: &BuyOrder, order_id: i64) -> Vec<Output> {
    let answer = sellcast_room::BuyAnswer::Confirmed { order_id, sale_id: Some(SALE), product_id: 0, variant_id: None, qty: order.qty, price_minor: 990, currency: "EUR".into() };
    room.handle_buy_outcome(NOW, &order.ticket, answer, false, None);
    drain(room)
}

#[test]
fn draining_tells_everyone_to_reconnect_once_with_the_hint() {
    let mut room = live_room(10);
    room.handle_drain(HINT_MS);
    room.handle_drain(HINT_MS);
    let out = drain(&mut room);
    let frames = broadcasts_of(&out, "draining");
    assert_eq!(frames.len(), 1, "{out:?}");
    assert_eq!(frames[0]["reconnect_after_ms"], HINT_MS);
    assert!(direct(&out, BOB).is_empty(), "one broadcast reaches everyone: {out:?}");
}

#[test]
fn a_buy_taken_before_the_drain_is_still_answered_after_it() {
    let mut room = live_room(10);
    let taken = orders(&frame(&mut room, NOW, ANN, &buy_frame(SALE, 1, "before")));
    assert_eq!(taken.len(), 1);
    room.handle_drain(HINT_MS);
    drain(&mut room);
    assert_eq!(room.buys_in_flight(), 1);
    let out = confirm(&mut room, &taken[0], 7);
    let answers = of_type(&direct(&out, ANN), "order_confirmed");
    assert_eq!(answers.len(), 1, "{out:?}");
    assert_eq!(answers[0]["idempotency_key"], "before");
    assert_eq!(room.buys_in_flight(), 0);
}

#[test]
fn a_new_buy_while_draining_is_not_placed_and_reserves_nothing() {
    // One unit: if the refused buy kept its reservation, the buy after it would be sold out.
    let mut room = live_room(1);
    room.handle_drain(HINT_MS);
    drain(&mut room);
    let out = frame(&mut room, NOW, ANN, &buy_frame(SALE, 1, "during"));
    assert!(orders(&out).is_empty(), "nothing goes to the store: {out:?}");
    let refused = of_type(&direct(&out, ANN), "buy_not_placed");
    assert_eq!(refused.len(), 1, "{out:?}");
    assert_eq!(refused[0]["idempotency_key"], "during");
    assert_eq!(refused[0]["sale_id"], SALE);
    assert_eq!(refused[0]["code"], "unavailable");
    assert_eq!(room.buys_in_flight(), 0);

    // The same key again is refused again, not answered from memory as if decided.
    let again = frame(&mut room, NOW, ANN, &buy_frame(SALE, 1, "during"));
    assert_eq!(of_type(&direct(&again, ANN), "buy_not_placed").len(), 1, "{again:?}");
    assert!(of_type(&direct(&again, ANN), "buy_rejected").is_empty(), "{again:?}");
}

#[test]
fn the_same_key_sent_again_while_its_buy_is_with_the_store_gets_the_store_answer() {
    let mut room = live_room(10);
    let taken = orders(&frame(&mut room, NOW, ANN, &buy_frame(SALE, 1, "k")));
    room.handle_drain(HINT_MS);
    drain(&mut room);
    let retry = frame(&mut room, NOW, ANN, &buy_frame(SALE, 1, "k"));
    assert!(of_type(&direct(&retry, ANN), "buy_not_placed").is_empty(), "{retry:?}");
    let out = confirm(&mut room, &taken[0], 9);
    assert_eq!(of_type(&direct(&out, ANN), "order_confirmed").len(), 2, "the first send and the retry: {out:?}");
}

#[test]
fn a_participant_who_says_hello_after_the_drain_is_told_too() {
    let mut room = live_room(10);
    room.handle_drain(HINT_MS);
    drain(&mut room);
    room.handle_join(NOW, LATE, who("late", Role::Viewer));
    let out = frame(&mut room, NOW, LATE, br#"{"type":"hello"}"#);
    let told = of_type(&direct(&out, LATE), "draining");
    assert_eq!(told.len(), 1, "{out:?}");
    assert_eq!(told[0]["reconnect_after_ms"], HINT_MS);
    // Before a drain nobody is told anything of the kind.
    let mut calm = live_room(10);
    calm.handle_join(NOW, LATE, who("late", Role::Viewer));
    let out = frame(&mut calm, NOW, LATE, br#"{"type":"hello"}"#);
    assert!(of_type(&direct(&out, LATE), "draining").is_empty());
}
