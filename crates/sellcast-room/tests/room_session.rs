//! A participant's session in the room: the welcome and snapshot on `hello`, latest-state
//! counters and likes, chat admission and history, and how floods of frames and of errors are
//! throttled.

mod common;

use common::*;
use sellcast_room::{Class, Output, ParticipantId, Role, ShowLimits, Show, ShowRecord};
use serde_json::json;

const HOST: ParticipantId = ParticipantId(1);
const ANN: ParticipantId = ParticipantId(2);
const BOB: ParticipantId = ParticipantId(3);

fn chat(room: &mut Show, now_ms: i64, from: ParticipantId, text: &str) -> Vec<Output> {
    frame(room, now_ms, from, json!({"type": "chat", "text": text}).to_string().as_bytes())
}

fn chats_accepted(out: &[Output]) -> usize {
    broadcasts_of(out, "chat").len()
}

#[test]
fn hello_answers_welcome_snapshot_likes_and_counters_in_that_order() {
    let mut rec = record(10, 2);
    rec.pinned = vec![PRODUCT];
    rec.likes_total = 100;
    // A sale that is over is not in the snapshot.
    rec.sales.push(sellcast_room::Sale { id: 2, ends_at_ms: 500, ..sale(3, 1) });
    let mut room = Show::new("show".into(), 42, rec, ShowLimits::default(), 0);
    assert_eq!(room.name(), "show");
    room.handle_join(0, HOST, who("hana", Role::Host));
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    drain(&mut room);
    chat(&mut room, 600, ANN, "hi");
    room.handle_frame(700, ANN, br#"{"type":"like","count":7}"#);
    let out = frame(&mut room, 800, ANN, br#"{"type":"hello"}"#);
    let frames = direct_classed(&out, ANN);
    let kinds: Vec<(&str, Class)> = frames.iter().map(|(f, c)| (f["type"].as_str().unwrap_or("?"), *c)).collect();
    assert_eq!(kinds, vec![("welcome", Class::Control), ("snapshot", Class::Control), ("likes", Class::Latest), ("counters", Class::Latest)]);
    let welcome = &frames[0].0;
    assert_eq!(welcome["you"], json!({"id": "ann", "name": "ann name", "role": "viewer"}));
    assert_eq!((welcome["participant"].as_u64(), welcome["epoch"].as_u64(), welcome["seq"].as_u64()), (Some(2), Some(42), Some(1)));
    assert_eq!((welcome["server_now_ms"].as_i64(), welcome["resumed"].as_bool()), (Some(800), Some(false)));
    let snap = &frames[1].0;
    assert_eq!((snap["epoch"].as_u64(), snap["seq"].as_u64(), snap["server_now_ms"].as_i64()), (Some(42), Some(1), Some(800)));
    assert_eq!(snap["products"][0]["id"], PRODUCT);
    assert_eq!(snap["pinned"], json!([PRODUCT]));
    assert_eq!(snap["sales"].as_array().map(|s| s.iter().filter_map(|x| x["id"].as_i64()).collect::<Vec<_>>()), Some(vec![SALE]));
    assert_eq!(snap["chat"][0]["text"], "hi");
    assert_eq!(snap["chat"][0]["seq"], 1);
    assert_eq!(snap["likes_total"], 107, "likes of the running tick count too");
    assert_eq!(snap["viewers"], 1, "the host is not a viewer");
    assert!(snap.get("orders").is_none() && snap.get("blocked_words").is_none(), "staff only");
    assert_eq!(frames[2].0, json!({"type": "likes", "total": 107, "delta": 0}));
    assert_eq!(frames[3].0["viewers"], 1);
    assert_eq!(frames[3].0["sales"], json!([{"sale_id": 1, "stock_left": 10, "sold": 0}, {"sale_id": 2, "stock_left": 3, "sold": 0}]));
}

#[test]
fn counters_go_out_on_the_tick_after_a_change_only() {
    let mut room = room(record(10, 2));
    room.handle_tick(10);
    assert!(broadcasts_of(&drain(&mut room), "counters").is_empty(), "nothing changed");
    room.handle_join(20, HOST, who("hana", Role::Host));
    room.handle_join(20, ANN, who("ann", Role::Viewer));
    room.handle_join(20, BOB, who("bob", Role::Viewer));
    room.handle_tick(30);
    let out = drain(&mut room);
    let counters = broadcasts_of(&out, "counters");
    assert_eq!(counters.len(), 1);
    assert_eq!(counters[0]["viewers"], 2);
    assert!(out.iter().any(|o| matches!(o, Output::Broadcast { class: Class::Latest, .. })));
    room.handle_tick(40);
    assert!(broadcasts_of(&drain(&mut room), "counters").is_empty(), "sent once per change");
    room.handle_leave(BOB);
    assert_eq!(room.participant_count(), 2);
    room.handle_tick(50);
    assert_eq!(broadcasts_of(&drain(&mut room), "counters")[0]["viewers"], 1);
    room.handle_leave(BOB);
    room.handle_tick(60);
    assert!(broadcasts_of(&drain(&mut room), "counters").is_empty(), "leaving twice changes nothing");
    // An ended sale drops out of the counters.
    room.apply_sale(70, sellcast_room::Sale { ended_at_ms: Some(70), ..sale(10, 2) });
    drain(&mut room);
    room.handle_tick(80);
    assert_eq!(broadcasts_of(&drain(&mut room), "counters")[0]["sales"], json!([]));
}

#[test]
fn likes_are_announced_with_their_running_total_once_per_tick() {
    let mut rec = record(10, 2);
    rec.likes_total = 1_000;
    let mut room = room(rec);
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    room.handle_join(0, BOB, who("bob", Role::Viewer));
    room.handle_frame(1, ANN, br#"{"type":"like","count":5}"#);
    room.handle_frame(1, BOB, br#"{"type":"like","count":3}"#);
    room.handle_tick(300);
    assert_eq!(broadcasts_of(&drain(&mut room), "likes"), vec![json!({"type": "likes", "total": 1_008, "delta": 8})]);
    room.handle_tick(600);
    assert!(broadcasts_of(&drain(&mut room), "likes").is_empty(), "a quiet tick says nothing");
    room.handle_frame(601, ANN, br#"{"type":"like","count":2}"#);
    room.handle_tick(900);
    assert_eq!(broadcasts_of(&drain(&mut room), "likes"), vec![json!({"type": "likes", "total": 1_010, "delta": 2})]);
}

#[test]
fn chat_text_is_trimmed_and_loses_control_characters_but_keeps_newlines() {
    let mut room = room(record(10, 2));
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    drain(&mut room);
    let out = chat(&mut room, 1, ANN, "  ring\u{7} the\tbell\nnow  ");
    assert_eq!(broadcasts_of(&out, "chat")[0]["text"], "ring thebell\nnow");
    assert_eq!(broadcasts_of(&out, "chat")[0]["at_ms"], 1);
    assert_eq!(error_codes(&chat(&mut room, 2, ANN, "\u{7}\u{1b}"), ANN), vec!["invalid"], "nothing left to say");
}

#[test]
fn a_viewer_chats_five_at_once_then_one_a_second_and_staff_five_times_that() {
    let mut room = room(record(10, 2));
    let moderator = ParticipantId(9);
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    room.handle_join(0, moderator, who("mo", Role::Moderator));
    drain(&mut room);
    let viewer_burst: usize = (0..10).map(|i| chats_accepted(&chat(&mut room, 0, ANN, &format!("v{i}")))).sum();
    assert_eq!(viewer_burst, 5);
    let staff_burst: usize = (0..40).map(|i| chats_accepted(&chat(&mut room, 0, moderator, &format!("m{i}")))).sum();
    assert_eq!(staff_burst, 25);
    // One second later: one more for the viewer, five more for staff.
    let viewer_next: usize = (0..5).map(|i| chats_accepted(&chat(&mut room, 1_000, ANN, &format!("w{i}")))).sum();
    let staff_next: usize = (0..10).map(|i| chats_accepted(&chat(&mut room, 1_000, moderator, &format!("n{i}")))).sum();
    assert_eq!((viewer_next, staff_next), (1, 5));
}

#[test]
fn the_room_chat_as_a_whole_is_limited_too() {
    let mut room = room(record(10, 2));
    let mut accepted = 0;
    let mut busy = 0;
    for i in 0..300u64 {
        let p = ParticipantId(100 + i);
        room.handle_join(0, p, who(&format!("u{i}"), Role::Viewer));
        let out = chat(&mut room, 0, p, "hello");
        accepted += chats_accepted(&out);
        busy += of_type(&direct(&out, p), "error").iter().filter(|e| e["code"] == "rate_limited").count();
    }
    assert_eq!((accepted, busy), (200, 100), "the room's burst is 200 messages");
}

#[test]
fn a_users_chat_allowance_is_kept_across_sessions_and_rejoins() {
    let mut room = room(record(10, 2));
    let (phone, laptop) = (ParticipantId(5), ParticipantId(6));
    room.handle_join(0, phone, who("ann", Role::Viewer));
    room.handle_join(0, laptop, who("ann", Role::Viewer));
    room.handle_join(0, BOB, who("bob", Role::Viewer));
    let burst: usize = (0..6).map(|i| chats_accepted(&chat(&mut room, 0, phone, &format!("p{i}")))).sum();
    assert_eq!(burst, 5);
    room.handle_leave(phone);
    assert_eq!(chats_accepted(&chat(&mut room, 0, laptop, "still me")), 0, "leaving one session does not reset the allowance");
    // The last session leaves and ann comes back: the allowance is ann's, not the session's.
    room.handle_leave(laptop);
    let back = ParticipantId(7);
    room.handle_join(0, back, who("ann", Role::Viewer));
    assert_eq!(chats_accepted(&chat(&mut room, 0, back, "back")), 0, "rejoining does not refill it");
    assert_eq!(chats_accepted(&chat(&mut room, 1_000, back, "later")), 1, "time does");
}

#[test]
fn the_snapshot_keeps_the_latest_50_chat_messages() {
    let mut room = room(record(10, 2));
    for i in 0..60u64 {
        let p = ParticipantId(100 + i);
        room.handle_join(0, p, who(&format!("u{i}"), Role::Viewer));
        assert_eq!(chats_accepted(&chat(&mut room, 0, p, &format!("m{i}"))), 1);
    }
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    let out = frame(&mut room, 1, ANN, br#"{"type":"hello"}"#);
    let snap = &of_type(&direct(&out, ANN), "snapshot")[0];
    let texts: Vec<&str> = snap["chat"].as_array().expect("chat").iter().filter_map(|l| l["text"].as_str()).collect();
    let expected: Vec<String> = (10..60).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected);
}

#[test]
fn frames_beyond_the_burst_are_refused_as_rate_limited() {
    let mut config = ShowLimits::default();
    config.identities.frames = sellcast_room::Rate { burst: 3, per_second: 1.0 };
    let mut room = Show::new("r".into(), 1, ShowRecord::default(), config, 0);
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.extend(error_codes(&frame(&mut room, 0, ANN, br#"{"type":"like","count":1}"#), ANN));
    }
    assert_eq!(codes, vec!["rate_limited"], "three frames pass, the fourth is refused");
    room.handle_tick(1);
    assert_eq!(broadcasts_of(&drain(&mut room), "likes")[0]["delta"], 3);
}

#[test]
fn a_flood_of_bad_frames_gets_five_errors_then_one_a_second_that_counts_the_unreported() {
    let mut room = room(record(10, 2));
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    drain(&mut room);
    let mut messages = Vec::new();
    let mut refused = 0;
    for _ in 0..8 {
        let out = frame(&mut room, 0, ANN, b"garbage");
        refused += out.iter().filter(|o| matches!(o, Output::Refused { identity, .. } if identity == "ann")).count();
        messages.extend(of_type(&direct(&out, ANN), "error").into_iter().filter_map(|e| e["message"].as_str().map(String::from)));
    }
    assert_eq!((messages.len(), refused), (5, 5), "five errors answered and logged, three muted");
    let out = frame(&mut room, 1_000, ANN, b"garbage");
    let error = &of_type(&direct(&out, ANN), "error")[0];
    assert_eq!(error["code"], "malformed");
    assert!(error["message"].as_str().is_some_and(|m| m.ends_with("(3 similar errors not reported)")), "{error}");
    let out = frame(&mut room, 2_000, ANN, b"garbage");
    let error = &of_type(&direct(&out, ANN), "error")[0];
    assert!(!error["message"].as_str().unwrap_or("").contains("not reported"), "the count starts again");
}

#[test]
fn frames_from_someone_who_never_joined_are_ignored() {
    let mut room = room(record(10, 2));
    room.handle_frame(0, ANN, br#"{"type":"chat","text":"hi"}"#);
    room.handle_frame(0, ANN, b"garbage");
    assert!(drain(&mut room).is_empty());
    assert_eq!(room.position().seq, 0);
}

#[test]
fn every_broadcast_event_advances_the_stream_position() {
    let mut room = room(record(10, 2));
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    assert_eq!(room.position(), sellcast_room::Position { epoch: 42, seq: 0 });
    chat(&mut room, 1, ANN, "a");
    room.apply_pins(2, vec![]);
    assert_eq!(room.position(), sellcast_room::Position { epoch: 42, seq: 2 });
}

#[test]
fn a_continued_show_numbers_its_events_after_the_streams_last_and_resumes_a_viewer_there() {
    let last = sellcast_room::Position { epoch: 42, seq: 17 };
    let mut room = Show::continuing("show".into(), last, record(10, 2), ShowLimits::default(), 0);
    room.handle_join(0, ANN, who("ann", Role::Viewer));
    room.handle_join(0, BOB, who("bob", Role::Viewer));
    drain(&mut room);
    let out = chat(&mut room, 1, ANN, "after the takeover");
    let sent = broadcasts_of(&out, "chat");
    assert_eq!((sent[0]["epoch"].as_u64(), sent[0]["seq"].as_u64()), (Some(42), Some(18)), "{sent:?}");
    let positions: Vec<_> = out.iter().filter_map(|o| match o {
        Output::Broadcast { position: Some(p), .. } => Some(*p),
        _ => None,
    }).collect();
    assert_eq!(positions, vec![sellcast_room::Position { epoch: 42, seq: 18 }], "what the relay publishes");

    // A viewer that saw the stream up to 17 resumes without a snapshot and gets 18 once.
    let hello = json!({ "type": "hello", "resume": { "epoch": 42, "seq": 17 } }).to_string();
    let frames = direct(&frame(&mut room, 2, BOB, hello.as_bytes()), BOB);
    assert_eq!(frames[0]["type"], "welcome");
    assert_eq!(frames[0]["resumed"], true, "{frames:?}");
    assert!(of_type(&frames, "snapshot").is_empty(), "no snapshot: {frames:?}");
    let replayed: Vec<u64> = of_type(&frames, "chat").iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(replayed, vec![18]);

    // One from before the takeover's start was never in this show's memory: a snapshot.
    let hello = json!({ "type": "hello", "resume": { "epoch": 42, "seq": 16 } }).to_string();
    let frames = direct(&frame(&mut room, 3, BOB, hello.as_bytes()), BOB);
    assert_eq!(frames[0]["resumed"], false, "{frames:?}");
    assert_eq!(of_type(&frames, "snapshot").len(), 1);
}

#[test]
fn a_continued_show_adopting_the_streams_tail_replays_from_it_and_shows_its_chat_in_a_snapshot() {
    // The old show's last three events: two chat lines, then the first one deleted.
    let mut old = Show::new("show".into(), 42, record(10, 2), ShowLimits::default(), 0);
    old.handle_join(0, HOST, who("hana", Role::Host));
    old.handle_join(0, ANN, who("ann", Role::Viewer));
    drain(&mut old);
    let mut tail = Vec::new();
    for out in [chat(&mut old, 1, ANN, "first"), chat(&mut old, 2, ANN, "second"), frame(&mut old, 3, HOST, br#"{"type":"delete_message","seq":1}"#)] {
        for o in out {
            if let Output::Broadcast { frame, position: Some(p), .. } = o {
                tail.push((p.seq, frame));
            }
        }
    }
    assert_eq!(tail.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2, 3], "two lines and a deletion");

    let mut room = Show::continuing("show".into(), old.position(), record(10, 2), ShowLimits::default(), 10);
    assert!(room.adopt_events(&tail));
    room.handle_join(10, BOB, who("bob", Role::Viewer));
    drain(&mut room);
    let hello = json!({ "type": "hello", "resume": { "epoch": 42, "seq": 1 } }).to_string();
    let frames = direct(&frame(&mut room, 11, BOB, hello.as_bytes()), BOB);
    assert_eq!(frames[0]["resumed"], true, "resumed from the adopted events: {frames:?}");
    let replayed: Vec<u64> = frames[1..].iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(replayed, vec![2, 3]);
    let frames = direct(&frame(&mut room, 12, BOB, br#"{"type":"hello"}"#), BOB);
    let snapshot = &of_type(&frames, "snapshot")[0];
    let lines: Vec<&str> = snapshot["chat"].as_array().expect("chat").iter().filter_map(|l| l["text"].as_str()).collect();
    assert_eq!(lines, vec!["second"], "the old show's chat, less the deleted line");
}
