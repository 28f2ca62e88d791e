//! The show around the selling: End closes the sales, title / start / avatar, display names,
//! the coalesced "joined" and "just bought" frames, and the likes total saved for a restart.

mod common;

use common::*;
use sellcast_room::activity::ACTIVITY_INTERVAL_MS;
use sellcast_room::{BuyRejection, HostAction, Output, ParticipantId, Role, Sale, Show, ShowInfo};
use serde_json::json;

const HOST: ParticipantId = ParticipantId(1);
const ANN: ParticipantId = ParticipantId(2);
const NOW: i64 = 100_000;

fn show_with(rec: sellcast_room::ShowRecord) -> Show {
    let mut room = room(rec);
    room.handle_join(0, HOST, who("hana", Role::Host));
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    drain(&mut room);
    room
}

fn bytes(v: serde_json::Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// Carry out the one persisted action in `out` as the store would, at `now`.
fn commit(room: &mut Show, now: i64, out: &[Output]) -> Vec<Output> {
    for action in persisted(out) {
        match action {
            HostAction::EndShow => {
                let closed: Vec<Sale> =
                    room.sales().iter().filter(|s| s.ended_at_ms.is_none()).map(|s| Sale { ended_at_ms: Some(now), ..s.clone() }).collect();
                room.apply_show_ended(now, now, closed);
            }
            HostAction::SetShow(info) => room.apply_show(now, info),
            HostAction::SetName { identity, name, host } => room.apply_name(now, identity, name, host),
            other => panic!("not expected here: {other:?}"),
        }
    }
    drain(room)
}

#[test]
fn end_closes_every_open_sale_and_a_buy_after_it_is_refused_as_not_active() {
    let mut room = show_with(record(10, 1));
    let out = frame(&mut room, NOW, HOST, br#"{"type":"end_show"}"#);
    assert_eq!(persisted(&out), vec![HostAction::EndShow]);
    let out = commit(&mut room, NOW, &out);
    let ended = broadcasts_of(&out, "sale_ended");
    assert_eq!(ended.len(), 1, "the running sale ends with the show: {out:?}");
    assert_eq!(broadcasts_of(&out, "show_ended").len(), 1);
    assert!(room.sale(SALE).is_some_and(|s| s.ended_at_ms == Some(NOW)));
    assert_eq!(room.show_info().ended_at_ms, Some(NOW));
    let out = frame(&mut room, NOW + 10, ANN, &buy_frame(SALE, 1, "after-end"));
    // The room's verdict goes to the store only to be recorded as the key's answer.
    let verdicts: Vec<_> = out.iter().filter_map(|o| if let Output::Buy(b) = o { Some(b.verdict) } else { None }).collect();
    assert_eq!(verdicts, vec![Some(BuyRejection::SaleNotActive)], "no order can be made after End: {out:?}");
}

#[test]
fn the_host_sets_title_start_and_avatar_and_every_viewer_sees_them_also_in_a_snapshot() {
    let mut room = show_with(record(10, 1));
    let set = json!({"type": "set_show", "title": "  Spring drop ", "starts_at_ms": NOW + 300_000, "avatar_url": "https://cdn.example.com/hana.jpg"});
    let out = frame(&mut room, NOW, HOST, &bytes(set.clone()));
    let Some(HostAction::SetShow(info)) = persisted(&out).pop() else { panic!("persisted first: {out:?}") };
    assert_eq!(info.title, "Spring drop");
    assert_eq!(info.host_name, "hana name", "the host's name goes with the show");
    let out = commit(&mut room, NOW, &out);
    let updated = broadcasts_of(&out, "show_updated");
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["show"]["starts_at_ms"], NOW + 300_000);
    let out = frame(&mut room, NOW + 1, ANN, br#"{"type":"hello"}"#);
    let snapshot = of_type(&direct(&out, ANN), "snapshot").pop().expect("a snapshot");
    assert_eq!(snapshot["show"]["title"], "Spring drop");
    assert_eq!(snapshot["show"]["avatar_url"], "https://cdn.example.com/hana.jpg");
}

#[test]
fn only_the_host_sets_up_the_show_and_a_bad_field_is_a_typed_error() {
    let mut room = show_with(record(10, 1));
    let out = frame(&mut room, NOW, ANN, &bytes(json!({"type": "set_show", "title": "mine"})));
    assert_eq!(error_codes(&out, ANN), vec!["forbidden"]);
    for bad in [
        json!({"type": "set_show", "title": "x".repeat(101)}),
        json!({"type": "set_show", "title": "t", "avatar_url": "javascript:alert(1)"}),
        json!({"type": "set_show", "title": "t", "avatar_url": "http://plain.example/a.png"}),
        json!({"type": "set_show", "title": "t", "starts_at_ms": -5}),
    ] {
        let out = frame(&mut room, NOW, HOST, &bytes(bad.clone()));
        assert_eq!(error_codes(&out, HOST), vec!["invalid"], "{bad}");
        assert!(persisted(&out).is_empty());
    }
    assert_eq!(*room.show_info(), ShowInfo::default());
}

#[test]
fn a_chosen_name_is_used_in_chat_and_orders_and_is_loaded_again_after_a_restart() {
    let mut room = show_with(record(10, 1));
    let out = frame(&mut room, NOW, ANN, br#"{"type":"set_name","name":" Ana B "}"#);
    assert_eq!(persisted(&out), vec![HostAction::SetName { identity: "ann".into(), name: "Ana B".into(), host: false }]);
    let out = commit(&mut room, NOW, &out);
    let told = of_type(&direct(&out, ANN), "name_set");
    assert_eq!(told[0]["you"]["name"], "Ana B", "the viewer's page learns its new name");
    let out = frame(&mut room, NOW + 1, ANN, br#"{"type":"chat","text":"hi"}"#);
    assert_eq!(broadcasts_of(&out, "chat")[0]["from"]["name"], "Ana B");
    let out = frame(&mut room, NOW + 2, ANN, &buy_frame(SALE, 1, "k1"));
    let Some(Output::Buy(order)) = out.iter().find(|o| matches!(o, Output::Buy(_))) else { panic!("a buy: {out:?}") };
    assert_eq!(order.buyer_name, "Ana B", "the stored order carries the chosen name");

    // A restart loads the names from the store: a new session of ann chats as Ana B.
    let mut rec = record(10, 1);
    rec.names = vec![("ann".into(), "Ana B".into())];
    let mut again = show_with(rec);
    let out = frame(&mut again, NOW, ANN, br#"{"type":"chat","text":"back"}"#);
    assert_eq!(broadcasts_of(&out, "chat")[0]["from"]["name"], "Ana B");
}

#[test]
fn a_name_with_a_blocked_word_or_control_characters_is_refused_with_its_code() {
    let mut rec = record(10, 1);
    rec.blocked_words = vec!["scam".into()];
    let mut room = show_with(rec);
    let out = frame(&mut room, NOW, ANN, br#"{"type":"set_name","name":"ScamQueen"}"#);
    assert_eq!(error_codes(&out, ANN), vec!["blocked"]);
    let out = frame(&mut room, NOW, ANN, br#"{"type":"set_name","name":"a\u0007b"}"#);
    assert_eq!(error_codes(&out, ANN), vec!["invalid"]);
    let out = frame(&mut room, NOW, ANN, &bytes(json!({"type": "set_name", "name": "n".repeat(41)})));
    assert_eq!(error_codes(&out, ANN), vec!["invalid"]);
    assert!(persisted(&out).is_empty());
}

#[test]
fn the_host_name_goes_into_the_show_header() {
    let mut room = show_with(record(10, 1));
    let out = frame(&mut room, NOW, HOST, br#"{"type":"set_name","name":"Hana"}"#);
    let out = commit(&mut room, NOW, &out);
    assert_eq!(broadcasts_of(&out, "show_updated")[0]["show"]["host_name"], "Hana");
    assert_eq!(room.show_info().host_name, "Hana");
}

#[test]
fn a_burst_of_500_joins_is_one_activity_frame_per_interval_not_one_per_join() {
    let mut room = show_with(record(10, 1));
    room.handle_tick(NOW);
    drain(&mut room);
    for i in 0..500 {
        room.handle_join(NOW, ParticipantId(100 + i), who(&format!("v{i}"), Role::Viewer));
    }
    let mut frames = Vec::new();
    // Ticks every 300 ms for 6 s: at most two intervals' worth of frames.
    for t in (0..20).map(|i| NOW + 300 * i) {
        room.handle_tick(t);
        frames.extend(broadcasts_of(&drain(&mut room), "activity"));
    }
    assert_eq!(frames.len(), 1, "one frame for the whole burst: {frames:?}");
    assert_eq!(frames[0]["joined"]["first"]["name"], "v0 name");
    assert_eq!(frames[0]["joined"]["others"], 499);
}

#[test]
fn an_order_is_announced_with_its_buyers_name_at_most_once_per_interval() {
    let mut room = show_with(record(10, 2));
    room.handle_tick(NOW);
    drain(&mut room);
    let mut store = sellcast_room::fuzzing::FakeStore::default();
    room.handle_frame(NOW, ANN, &buy_frame(SALE, 1, "a1"));
    store.carry_out(&mut room, NOW);
    room.handle_tick(NOW + ACTIVITY_INTERVAL_MS);
    let out = drain(&mut room);
    let activity = broadcasts_of(&out, "activity");
    assert_eq!(activity.len(), 1, "{out:?}");
    assert_eq!(activity[0]["bought"]["first"]["name"], "ann name");
    assert_eq!(activity[0]["bought"]["title"], "product 10");
}

#[test]
fn the_likes_total_is_saved_every_few_seconds_while_likes_come_and_on_drain() {
    let mut rec = record(10, 1);
    rec.likes_total = 40;
    let mut room = show_with(rec);
    let saves = |out: &[Output]| out.iter().filter_map(|o| if let Output::PersistLikes { total } = o { Some(*total) } else { None }).collect::<Vec<_>>();
    let mut saved = Vec::new();
    for i in 0..20 {
        let t = NOW + 300 * i;
        room.handle_frame(t, ANN, br#"{"type":"like","count":1}"#);
        room.handle_tick(t);
        saved.extend(saves(&drain(&mut room)));
    }
    assert!((2..=4).contains(&saved.len()), "about one save per 2 s over 6 s, not one per tick: {saved:?}");
    assert!(saved.windows(2).all(|w| w[0] < w[1]) && saved[0] > 40, "{saved:?}");
    room.handle_frame(NOW + 6_000, ANN, br#"{"type":"like","count":1}"#);
    drain(&mut room);
    room.handle_drain(500);
    let on_drain = saves(&drain(&mut room));
    assert_eq!(on_drain, vec![61], "the drain saves every like counted so far (40 + 21)");
}
