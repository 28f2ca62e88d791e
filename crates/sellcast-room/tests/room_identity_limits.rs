//! Limits follow the identity: chat, frame, buy and snapshot buckets are shared by every
//! session and HTTP call of one identity, survive a rejoin, and stay bounded in memory.

mod common;

use common::*;
use sellcast_room::{Answer, CallId, ClientFrame, ErrorCode, Output, ParticipantId, Role, Show, ShowLimits};

const NOW: i64 = SALE_START + 10;

fn chat_json(text: &str) -> Vec<u8> {
    serde_json::json!({"type": "chat", "text": text}).to_string().into_bytes()
}

fn chat_call(i: u64) -> ClientFrame {
    ClientFrame::Chat { text: format!("flood {i}") }
}

/// `(accepted, rate_limited)` answers of the calls in `out`.
fn call_answers(out: &[Output]) -> (usize, usize) {
    let mut counts = (0, 0);
    for o in out {
        match o {
            Output::Answer { to: sellcast_room::Caller::Call(_), answer: Answer::Accepted } => counts.0 += 1,
            Output::Answer { to: sellcast_room::Caller::Call(_), answer: Answer::Refused(e) } if e.code == ErrorCode::RateLimited => {
                counts.1 += 1
            }
            _ => {}
        }
    }
    counts
}

#[test]
fn a_rejoin_does_not_refill_the_chat_or_frame_buckets() {
    let mut config = ShowLimits::default();
    config.identities.frames = sellcast_room::Rate { burst: 8, per_second: 0.5 };
    let mut room = Show::new("r".into(), 1, record(10, 2), config, 0);
    room.handle_join(0, ParticipantId(1), who("ann", Role::Viewer));
    let sent = (0..6).filter(|i| !broadcasts_of(&frame(&mut room, 0, ParticipantId(1), &chat_json(&format!("m{i}"))), "chat").is_empty()).count();
    assert_eq!(sent, 5, "the chat burst");
    room.handle_leave(ParticipantId(1));
    room.handle_join(1, ParticipantId(2), who("ann", Role::Viewer));
    let out = frame(&mut room, 1, ParticipantId(2), &chat_json("fresh start?"));
    assert_eq!(error_codes(&out, ParticipantId(2)), vec!["rate_limited"], "the new session has ann's empty chat bucket");
    // Frames: 6 chats and 1 above spent 7 of 8; one more passes, then the next session is refused too.
    assert!(error_codes(&frame(&mut room, 2, ParticipantId(2), br#"{"type":"like","count":1}"#), ParticipantId(2)).is_empty());
    room.handle_leave(ParticipantId(2));
    room.handle_join(3, ParticipantId(3), who("ann", Role::Viewer));
    let out = frame(&mut room, 3, ParticipantId(3), br#"{"type":"like","count":1}"#);
    assert_eq!(error_codes(&out, ParticipantId(3)), vec!["rate_limited"], "the frame bucket is ann's too");
}

#[test]
fn an_http_chat_flood_with_one_token_gets_no_more_through_than_a_data_channel() {
    let mut room = room(record(10, 2));
    // Over a data channel: ann's session floods 150 chats at once.
    room.handle_join(0, ParticipantId(1), who("ann", Role::Viewer));
    let over_channel = (0..150).filter(|i| !broadcasts_of(&frame(&mut room, NOW, ParticipantId(1), &chat_json(&format!("c{i}"))), "chat").is_empty()).count();
    assert_eq!(over_channel, 5);
    // Over HTTP with bob's token: 250 calls at once draw on bob's one bucket.
    for i in 0..250 {
        room.handle_call(NOW, CallId(i), who("bob", Role::Viewer), chat_call(i));
    }
    let (accepted, limited) = call_answers(&drain(&mut room));
    assert_eq!(accepted, over_channel, "as many as over a data channel");
    assert_eq!(accepted + limited, 250, "every call answered: the rest rate_limited");
    // And ann's calls share her (spent) session bucket, even after her session left.
    room.handle_leave(ParticipantId(1));
    room.handle_call(NOW + 1, CallId(1_000), who("ann", Role::Viewer), chat_call(1));
    assert_eq!(call_answers(&drain(&mut room)), (0, 1));
}

#[test]
fn http_calls_draw_on_the_identitys_frame_bucket() {
    let mut room = room(record(10, 2));
    for i in 0..250 {
        room.handle_call(NOW, CallId(i), who("bob", Role::Viewer), ClientFrame::Like { count: 1 });
    }
    let (accepted, limited) = call_answers(&drain(&mut room));
    assert_eq!((accepted, limited), (60, 190), "the frame burst of 60, as on a data channel");
}

#[test]
fn snapshots_over_http_are_throttled_per_identity() {
    let mut room = room(record(10, 2));
    let mut welcomes = 0;
    let mut limited = 0;
    for i in 0..10 {
        room.handle_call(NOW, CallId(i), who("bob", Role::Viewer), ClientFrame::Hello { resume: None });
        for o in drain(&mut room) {
            match o {
                Output::Answer { answer: Answer::Welcome(_), .. } => welcomes += 1,
                Output::Answer { answer: Answer::Refused(e), .. } if e.code == ErrorCode::RateLimited => limited += 1,
                _ => {}
            }
        }
    }
    assert_eq!((welcomes, limited), (5, 5), "the snapshot burst of 5");
    room.handle_call(NOW + 1_000, CallId(99), who("bob", Role::Viewer), ClientFrame::Hello { resume: None });
    assert!(drain(&mut room).iter().any(|o| matches!(o, Output::Answer { answer: Answer::Welcome(_), .. })), "one more a second later");
    // Another identity is not affected; a session's first hello is always served.
    room.handle_join(NOW, ParticipantId(1), who("bob", Role::Viewer));
    let out = frame(&mut room, NOW + 1_000, ParticipantId(1), br#"{"type":"hello"}"#);
    assert_eq!(of_type(&direct(&out, ParticipantId(1)), "snapshot").len(), 1);
    let out = frame(&mut room, NOW + 1_000, ParticipantId(1), br#"{"type":"hello"}"#);
    assert_eq!(error_codes(&out, ParticipantId(1)), vec!["rate_limited"], "a second hello on the session costs a snapshot token");
}

#[test]
fn a_buy_flood_from_one_identity_is_held_to_its_buy_rate_and_nothing_is_reserved_for_the_rest() {
    let mut room = Show::new("r".into(), 1, record(1_000, 1_000), ShowLimits::default(), 0);
    room.handle_join(0, ParticipantId(1), who("ann", Role::Viewer));
    let mut to_store = 0;
    let mut not_placed = 0;
    for i in 0..40 {
        let out = frame(&mut room, NOW, ParticipantId(1), &buy_frame(SALE, 1, &format!("k{i}")));
        to_store += out.iter().filter(|o| matches!(o, Output::Buy(_))).count();
        not_placed += of_type(&direct(&out, ParticipantId(1)), "buy_not_placed").iter().filter(|f| f["code"] == "rate_limited").count();
    }
    assert_eq!((to_store, not_placed), (10, 30), "the buy burst of 10");
    assert_eq!(room.buys_in_flight(), 10);
}

#[test]
fn the_identities_tracked_stay_bounded() {
    let mut config = ShowLimits::default();
    config.identities.max_identities = 100;
    let mut room = Show::new("r".into(), 1, record(10, 2), config, 0);
    for i in 0..5_000 {
        room.handle_call(i, CallId(i as u64), who(&format!("u{i}"), Role::Viewer), ClientFrame::Like { count: 1 });
        drain(&mut room);
        assert!(room.tracked_identities() <= 100);
    }
    room.handle_tick(1_000_000);
    assert_eq!(room.tracked_identities(), 0, "all full again: forgotten");
}
