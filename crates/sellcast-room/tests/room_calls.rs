//! One-shot calls (the HTTP API) on virtual time: a call is never a participant, and every
//! frame it sends gets exactly one typed answer addressed to it, now or once the store has
//! committed; sessions are answered on their own stream, never with a call's answer.

mod common;

use common::*;
use sellcast_room::{
    Answer, BuyAnswer, CallId, Caller, ClientFrame, ErrorCode, FrameError, HostAction, Output, ParticipantId, Role,
    Show,
};

const VIEWER: ParticipantId = ParticipantId(1);
const CALL: CallId = CallId(7);
const NOW: i64 = SALE_START + 10;

fn room_with_viewer() -> Show {
    let mut room = room(record(10, 3));
    room.handle_join(0, VIEWER, who("vic", Role::Viewer));
    room.handle_tick(0);
    drain(&mut room);
    room
}

fn parse(json: &str) -> ClientFrame {
    ClientFrame::parse(json.as_bytes()).expect("a valid frame")
}

/// The answers addressed to `call`, in order.
fn answers(outputs: &[Output], call: CallId) -> Vec<Answer> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Answer { to: Caller::Call(c), answer } if *c == call => Some(answer.clone()),
            _ => None,
        })
        .collect()
}

/// The one answer in `answers`.
fn only(answers: Vec<Answer>) -> Answer {
    assert_eq!(answers.len(), 1, "exactly one answer: {answers:?}");
    answers.into_iter().next().expect("one answer")
}

#[test]
fn a_calls_chat_is_accepted_once_and_the_caller_never_counts_as_a_viewer() {
    let mut room = room_with_viewer();
    room.handle_call(NOW, CALL, who("ann", Role::Viewer), parse(r#"{"type":"chat","text":"hi"}"#));
    let out = drain(&mut room);
    assert_eq!(answers(&out, CALL), vec![Answer::Accepted]);
    assert_eq!(broadcasts_of(&out, "chat").len(), 1, "the line reaches everyone");
    assert_eq!(room.participant_count(), 1, "only the session is a participant");
    room.handle_tick(NOW);
    assert!(broadcasts_of(&drain(&mut room), "counters").is_empty(), "the viewer count did not move");
}

#[test]
fn a_calls_hello_answers_with_welcome_and_snapshot_and_no_participant_id() {
    let mut room = room_with_viewer();
    room.handle_call(NOW, CALL, who("ann", Role::Viewer), parse(r#"{"type":"hello"}"#));
    let out = drain(&mut room);
    let Answer::Welcome(frames) = only(answers(&out, CALL)) else {
        panic!("one welcome answer: {out:?}")
    };
    let frames: Vec<serde_json::Value> = frames.iter().map(json).collect();
    let types: Vec<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    assert_eq!(types, ["welcome", "snapshot", "likes", "counters"]);
    assert!(frames[0].get("participant").is_none(), "a call is no participant: {}", frames[0]);
    assert!(!out.iter().any(|o| matches!(o, Output::Send { .. })), "nothing went to a session");
}

#[test]
fn a_calls_buy_is_answered_once_the_store_committed_and_not_before() {
    let mut room = room_with_viewer();
    room.handle_call(NOW, CALL, who("ann", Role::Viewer), parse(&String::from_utf8_lossy(&buy_frame(SALE, 2, "k"))));
    let out = drain(&mut room);
    assert!(answers(&out, CALL).is_empty(), "no answer before the store: {out:?}");
    let Some(Output::Buy(order)) = out.iter().find(|o| matches!(o, Output::Buy(_))).cloned() else {
        panic!("submitted to the store: {out:?}")
    };
    let answer = BuyAnswer::Confirmed { order_id: 5, sale_id: Some(SALE), product_id: 0, variant_id: None, qty: 2, price_minor: 990, currency: "EUR".into() };
    room.handle_buy_outcome(NOW + 3, &order.ticket, answer.clone(), false, Some(8));
    let out = drain(&mut room);
    assert_eq!(answers(&out, CALL), vec![Answer::Buy { key: "k".into(), answer }]);
    assert!(direct(&out, VIEWER).is_empty(), "the session saw no one else's answer");
}

#[test]
fn a_calls_failed_buy_is_answered_unavailable() {
    let mut room = room_with_viewer();
    room.handle_call(NOW, CALL, who("ann", Role::Viewer), parse(&String::from_utf8_lossy(&buy_frame(SALE, 1, "k"))));
    let Some(Output::Buy(order)) = drain(&mut room).into_iter().find(|o| matches!(o, Output::Buy(_))) else {
        panic!("submitted to the store")
    };
    room.handle_buy_failure(&order.ticket);
    let Answer::Refused(error) = only(answers(&drain(&mut room), CALL)) else {
        panic!("one refusal")
    };
    assert_eq!(error.code, ErrorCode::Unavailable);
}

#[test]
fn a_calls_host_action_is_accepted_only_after_the_store_committed_it() {
    let mut room = room_with_viewer();
    room.handle_call(NOW, CALL, who("hana", Role::Host), parse(r#"{"type":"pin","product_ids":[10]}"#));
    let out = drain(&mut room);
    assert!(answers(&out, CALL).is_empty(), "no answer before the store: {out:?}");
    assert!(out.iter().any(|o| matches!(o, Output::Persist { from: Caller::Call(CALL), action: HostAction::Pin(_), .. })));
    room.apply_pins(NOW + 1, vec![PRODUCT]);
    room.handle_persisted(Caller::Call(CALL));
    assert_eq!(answers(&drain(&mut room), CALL), vec![Answer::Accepted]);

    room.handle_call(NOW, CallId(8), who("hana", Role::Host), parse(r#"{"type":"pin","product_ids":[10]}"#));
    drain(&mut room);
    let error = FrameError::new(ErrorCode::Unavailable, "store is down");
    room.handle_persist_failure(Caller::Call(CallId(8)), error.clone());
    assert_eq!(answers(&drain(&mut room), CallId(8)), vec![Answer::Refused(error)]);
}

#[test]
fn every_refused_call_is_told_why_however_many_there_are() {
    let mut room = room_with_viewer();
    for i in 0..20 {
        room.handle_call(NOW, CallId(i), who("ann", Role::Viewer), parse(r#"{"type":"pin","product_ids":[10]}"#));
        let Answer::Refused(error) = only(answers(&drain(&mut room), CallId(i))) else {
            panic!("call {i} got one refusal")
        };
        assert_eq!(error.code, ErrorCode::Forbidden);
    }
}

#[test]
fn a_banned_caller_is_refused_and_nothing_happens() {
    let mut room = room_with_viewer();
    room.apply_ban(NOW, "eve".into(), None, Role::Moderator);
    drain(&mut room);
    room.handle_call(NOW, CALL, who("eve", Role::Viewer), parse(r#"{"type":"chat","text":"back"}"#));
    let out = drain(&mut room);
    let Answer::Refused(error) = only(answers(&out, CALL)) else {
        panic!("one refusal: {out:?}")
    };
    assert_eq!(error.code, ErrorCode::Forbidden);
    assert!(broadcasts(&out).is_empty(), "no chat line");
}

#[test]
fn a_sessions_refusal_is_an_error_frame_on_its_own_channel() {
    let mut room = room_with_viewer();
    let out = frame(&mut room, NOW, VIEWER, br#"{"type":"pin","product_ids":[10]}"#);
    assert!(out.iter().any(|o| matches!(o, Output::Answer { to: Caller::Session(VIEWER), answer: Answer::Refused(_) })));
    assert_eq!(error_codes(&out, VIEWER), ["forbidden"]);
}
