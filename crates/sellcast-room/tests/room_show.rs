//! The host running the show: highlighting products, starting and ending sales, product
//! changes, and what is announced when the store has committed each of them.

mod common;

use common::*;
use sellcast_room::{ErrorCode, FrameError, HostAction, ParticipantId, Role, Show, SaleDraft};
use serde_json::json;

const VIEWER: ParticipantId = ParticipantId(1);
const HOST: ParticipantId = ParticipantId(2);
const NOW: i64 = 100_000;

fn show() -> Show {
    let mut rec = record(10, 2);
    rec.products = (10..15).map(product).collect();
    let mut room = room(rec);
    room.handle_join(0, VIEWER, who("vic", Role::Viewer));
    room.handle_join(0, HOST, who("hana", Role::Host));
    drain(&mut room);
    room
}

fn start_sale(product_id: i64, price: i64, stock: u32, limit: u32, starts: i64, ends: i64) -> Vec<u8> {
    json!({"type": "start_sale", "product_id": product_id, "price_minor": price, "stock": stock, "per_user_limit": limit,
        "starts_at_ms": starts, "ends_at_ms": ends})
    .to_string()
    .into_bytes()
}

/// What is wrong, the frame at time `t`, the error code expected.
type SaleCase = (&'static str, fn(i64) -> Vec<u8>, &'static str);

fn a_sale(id: i64, ended_at_ms: Option<i64>) -> sellcast_room::Sale {
    sellcast_room::Sale { id, ended_at_ms, ..sale(10, 2) }
}

#[test]
fn the_host_highlights_up_to_three_known_products() {
    let mut room = show();
    let out = frame(&mut room, NOW, HOST, br#"{"type":"pin","product_ids":[12,10,11]}"#);
    assert_eq!(persisted(&out), vec![HostAction::Pin(vec![12, 10, 11])]);
    let out = frame(&mut room, NOW, HOST, br#"{"type":"pin","product_ids":[10,11,12,13]}"#);
    assert_eq!((error_codes(&out, HOST), persisted(&out).len()), (vec!["invalid".to_string()], 0));
    let out = frame(&mut room, NOW, HOST, br#"{"type":"pin","product_ids":[10,99]}"#);
    assert_eq!((error_codes(&out, HOST), persisted(&out).len()), (vec!["not_found".to_string()], 0));
}

#[test]
fn applied_pins_are_announced_with_their_products_in_order() {
    let mut room = show();
    room.apply_pins(NOW, vec![12, 10]);
    let pinned = broadcasts_of(&drain(&mut room), "pinned");
    let ids: Vec<i64> = pinned[0]["products"].as_array().expect("products").iter().filter_map(|p| p["id"].as_i64()).collect();
    assert_eq!(ids, vec![12, 10]);
    assert_eq!(pinned[0]["products"][0]["title"], "product 12");
}

#[test]
fn a_deleted_product_leaves_the_room_and_its_highlight() {
    let mut room = show();
    room.apply_pins(NOW, vec![12, 10]);
    drain(&mut room);
    room.apply_product_deleted(NOW, 12);
    let pinned = broadcasts_of(&drain(&mut room), "pinned");
    assert_eq!(pinned.len(), 1, "the highlight changed");
    assert_eq!(pinned[0]["products"].as_array().map(|p| p.iter().filter_map(|x| x["id"].as_i64()).collect::<Vec<_>>()), Some(vec![10]));
    assert_eq!(room.products().iter().map(|p| p.id).collect::<Vec<_>>(), vec![10, 11, 13, 14]);
    room.apply_product_deleted(NOW, 13);
    assert!(drain(&mut room).is_empty(), "an unpinned product leaves silently");
    assert_eq!(room.products().iter().map(|p| p.id).collect::<Vec<_>>(), vec![10, 11, 14]);
}

#[test]
fn a_product_change_replaces_or_adds_the_product_and_is_announced() {
    let mut room = show();
    let changed = sellcast_room::Product { title: "new title".into(), ..product(11) };
    room.apply_product(NOW, changed.clone());
    let updates = broadcasts_of(&drain(&mut room), "product_updated");
    assert_eq!(updates[0]["product"]["title"], "new title");
    assert_eq!(room.products().len(), 5);
    assert_eq!(room.products().iter().find(|p| p.id == 11), Some(&changed));
    assert_eq!(room.products().iter().find(|p| p.id == 10), Some(&product(10)), "the others are untouched");
    room.apply_product(NOW, product(20));
    assert_eq!(room.products().iter().map(|p| p.id).collect::<Vec<_>>(), vec![10, 11, 12, 13, 14, 20]);
}

#[test]
fn a_valid_sale_is_persisted_as_drafted() {
    let mut room = show();
    let out = frame(&mut room, NOW, HOST, &start_sale(11, 0, 1, 1, NOW, NOW + 1));
    let draft = SaleDraft { product_id: 11, price_minor: 0, currency: None, stock: 1, per_user_limit: 1, starts_at_ms: NOW, ends_at_ms: NOW + 1 };
    assert_eq!(persisted(&out), vec![HostAction::StartSale(draft)], "free, one unit, one millisecond: the smallest valid sale");
    assert!(error_codes(&out, HOST).is_empty());
}

#[test]
fn each_invalid_sale_is_refused_before_the_store() {
    let mut room = show();
    // Error replies are rate-limited (a burst of 5, then 1 a second): one case a second.
    let cases: [SaleCase; 7] = [
        ("no stock", |t| start_sale(11, 100, 0, 1, t, t + 10), "invalid"),
        ("no limit", |t| start_sale(11, 100, 5, 0, t, t + 10), "invalid"),
        ("ends as it starts", |t| start_sale(11, 100, 5, 1, t + 10, t + 10), "invalid"),
        ("ends before it starts", |t| start_sale(11, 100, 5, 1, t + 10, t + 9), "invalid"),
        ("negative price", |t| start_sale(11, -1, 5, 1, t, t + 10), "invalid"),
        ("ends now", |t| start_sale(11, 100, 5, 1, t - 10, t), "invalid"),
        ("unknown product", |t| start_sale(99, 100, 5, 1, t, t + 10), "not_found"),
    ];
    for (i, (what, f, code)) in cases.into_iter().enumerate() {
        let t = NOW + 1_000 * i as i64;
        let out = frame(&mut room, t, HOST, &f(t));
        assert_eq!(error_codes(&out, HOST), vec![code.to_string()], "{what}");
        assert!(persisted(&out).is_empty(), "{what}");
    }
}

#[test]
fn only_the_host_runs_the_show() {
    let mut rec = record(10, 2);
    rec.products = vec![product(10)];
    let mut room = room(rec);
    let moderator = ParticipantId(3);
    room.handle_join(0, moderator, who("mo", Role::Moderator));
    drain(&mut room);
    for f in [br#"{"type":"pin","product_ids":[10]}"#.to_vec(), start_sale(10, 1, 1, 1, NOW, NOW + 10), br#"{"type":"end_sale","sale_id":1}"#.to_vec()] {
        let out = frame(&mut room, NOW, moderator, &f);
        assert_eq!(error_codes(&out, moderator), vec!["forbidden"]);
        assert!(persisted(&out).is_empty());
    }
}

#[test]
fn a_sale_ends_once_by_the_host() {
    let mut room = show();
    assert_eq!(persisted(&frame(&mut room, NOW, HOST, br#"{"type":"end_sale","sale_id":1}"#)), vec![HostAction::EndSale(1)]);
    let out = frame(&mut room, NOW, HOST, br#"{"type":"end_sale","sale_id":7}"#);
    assert_eq!((error_codes(&out, HOST), persisted(&out).len()), (vec!["not_found".to_string()], 0));
    room.apply_sale(NOW, sellcast_room::Sale { stock_left: 7, ..a_sale(1, Some(NOW)) });
    let out = drain(&mut room);
    let ended = broadcasts_of(&out, "sale_ended");
    assert_eq!((ended[0]["sale_id"].as_i64(), ended[0]["sold"].as_u64()), (Some(1), Some(3)));
    let out = frame(&mut room, NOW, HOST, br#"{"type":"end_sale","sale_id":1}"#);
    assert_eq!((error_codes(&out, HOST), persisted(&out).len()), (vec!["invalid".to_string()], 0), "already ended");
    room.apply_sale(NOW + 1, a_sale(1, Some(NOW)));
    assert!(broadcasts_of(&drain(&mut room), "sale_ended").is_empty(), "announced once");
    room.handle_tick(SALE_END + 1);
    assert!(broadcasts_of(&drain(&mut room), "sale_ended").is_empty(), "not again when its time is up");
}

#[test]
fn a_started_sale_is_announced_counted_and_open_for_buying() {
    let mut room = show();
    let new_sale = sellcast_room::Sale { id: 2, product_id: 12, starts_at_ms: NOW, ends_at_ms: NOW + 60_000, ..sale(4, 2) };
    room.apply_sale(NOW, new_sale.clone());
    let out = drain(&mut room);
    let started = broadcasts_of(&out, "sale_started");
    assert_eq!((started[0]["sale"]["id"].as_i64(), started[0]["sale"]["stock_total"].as_u64()), (Some(2), Some(4)));
    assert_eq!(room.sales().iter().map(|s| s.id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(room.sale(2), Some(&new_sale));
    assert_eq!(room.sale(3), None);
    room.handle_tick(NOW);
    let counters = broadcasts_of(&drain(&mut room), "counters");
    assert_eq!(counters[0]["sales"], json!([{"sale_id": 1, "stock_left": 10, "sold": 0}, {"sale_id": 2, "stock_left": 4, "sold": 0}]));
    let out = frame(&mut room, NOW, VIEWER, &buy_frame(2, 2, "k"));
    assert!(out.iter().any(|o| matches!(o, sellcast_room::Output::Buy(b) if b.sale_id == Some(2) && b.qty == 2)));
}

#[test]
fn a_sale_update_replaces_the_held_sale() {
    let mut room = show();
    room.apply_sale(NOW, sellcast_room::Sale { stock_left: 6, ..sale(10, 2) });
    assert_eq!(room.sales().len(), 1);
    assert_eq!(room.sale(1).map(|s| (s.stock_left, s.sold())), Some((6, 4)));
}

#[test]
fn a_sale_ends_by_the_clock_for_a_room_loaded_after_it_ended_without_a_new_announcement() {
    let mut rec = record(10, 2);
    rec.sales.push(sellcast_room::Sale { id: 2, ends_at_ms: 50, ..sale(3, 1) });
    let mut room = Show::new("r".into(), 42, rec, sellcast_room::ShowLimits::default(), 100);
    room.handle_tick(200);
    assert!(broadcasts_of(&drain(&mut room), "sale_ended").is_empty(), "it was over before the room started");
    room.handle_tick(SALE_END);
    let ended = broadcasts_of(&drain(&mut room), "sale_ended");
    assert_eq!(ended.iter().filter_map(|e| e["sale_id"].as_i64()).collect::<Vec<_>>(), vec![1]);
}

#[test]
fn a_failed_host_action_is_reported_to_whoever_asked() {
    let mut room = show();
    room.handle_persist_failure(sellcast_room::Caller::Session(HOST), FrameError::new(ErrorCode::Unavailable, "store is down"));
    let out = drain(&mut room);
    let errors = of_type(&direct(&out, HOST), "error");
    assert_eq!((errors[0]["code"].as_str(), errors[0]["message"].as_str()), (Some("unavailable"), Some("store is down")));
    assert!(direct(&out, VIEWER).is_empty());
}

#[test]
fn only_the_host_ends_the_show_and_everyone_is_told_it_ended() {
    let mut room = show();
    let out = frame(&mut room, NOW, VIEWER, br#"{"type":"end_show"}"#);
    assert_eq!(error_codes(&out, VIEWER), vec!["forbidden"]);
    assert!(broadcasts(&out).is_empty(), "a viewer's end_show changes nothing");
    let out = frame(&mut room, NOW + 1_000, HOST, br#"{"type":"end_show"}"#);
    assert_eq!(persisted(&out), vec![HostAction::EndShow], "End is made durable first (it closes the sales)");
    room.apply_show_ended(NOW + 1_000, NOW + 1_000, Vec::new());
    let out = drain(&mut room);
    let ended = broadcasts_of(&out, "show_ended");
    assert_eq!(ended.len(), 1, "one show_ended event: {out:?}");
    assert!(ended[0]["seq"].as_u64().is_some(), "an ordered room event, replayed on resume");
}
