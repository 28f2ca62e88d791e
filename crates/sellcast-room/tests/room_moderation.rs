//! Moderation in the room: who may delete, mute, ban and block words; what each does to the
//! chat, to the banned viewer's sessions and to later joins; and the limits on each input.

mod common;

use common::*;
use sellcast_room::{HostAction, Output, ParticipantId, Role, Show};

const VIEWER: ParticipantId = ParticipantId(1);
const MODERATOR: ParticipantId = ParticipantId(2);
const HOST: ParticipantId = ParticipantId(3);

fn staffed_room() -> Show {
    let mut room = room(record(10, 2));
    room.handle_join(0, VIEWER, who("vic", Role::Viewer));
    room.handle_join(0, MODERATOR, who("mo", Role::Moderator));
    room.handle_join(0, HOST, who("hana", Role::Host));
    drain(&mut room);
    room
}

fn chat(room: &mut Show, now_ms: i64, from: ParticipantId, text: &str) -> Vec<Output> {
    frame(room, now_ms, from, serde_json::json!({"type": "chat", "text": text}).to_string().as_bytes())
}

fn chat_seq(out: &[Output]) -> u64 {
    broadcasts_of(out, "chat")[0]["seq"].as_u64().expect("a chat event")
}

fn snapshot_of(room: &mut Show, now_ms: i64, to: ParticipantId) -> serde_json::Value {
    let out = frame(room, now_ms, to, br#"{"type":"hello"}"#);
    of_type(&direct(&out, to), "snapshot").remove(0)
}

#[test]
fn a_moderator_deletes_a_message_from_history_and_everyone_is_told() {
    let mut room = staffed_room();
    let keep = chat_seq(&chat(&mut room, 1, VIEWER, "hello"));
    let bad = chat_seq(&chat(&mut room, 2, VIEWER, "rude"));
    let out = frame(&mut room, 3, MODERATOR, format!(r#"{{"type":"delete_message","seq":{bad}}}"#).as_bytes());
    let deleted = broadcasts_of(&out, "chat_deleted");
    assert_eq!(deleted.len(), 1);
    assert_eq!((deleted[0]["target_seq"].as_u64(), deleted[0]["by"]["id"].as_str()), (Some(bad), Some("mo")));
    let history: Vec<u64> = snapshot_of(&mut room, 4, VIEWER)["chat"].as_array().expect("chat").iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert_eq!(history, vec![keep]);
    let again = frame(&mut room, 5, MODERATOR, format!(r#"{{"type":"delete_message","seq":{bad}}}"#).as_bytes());
    assert_eq!(error_codes(&again, MODERATOR), vec!["not_found"], "already deleted");
    assert!(broadcasts(&again).is_empty());
}

#[test]
fn viewers_may_not_moderate() {
    let mut room = staffed_room();
    let seq = chat_seq(&chat(&mut room, 1, MODERATOR, "welcome"));
    let frames = [
        format!(r#"{{"type":"delete_message","seq":{seq}}}"#),
        r#"{"type":"mute","identity":"mo","seconds":60}"#.to_string(),
        r#"{"type":"ban","identity":"mo"}"#.to_string(),
        r#"{"type":"unban","identity":"mo"}"#.to_string(),
        r#"{"type":"unmute","identity":"mo"}"#.to_string(),
        r#"{"type":"set_blocked_words","words":["x"]}"#.to_string(),
    ];
    for (i, f) in frames.into_iter().enumerate() {
        // A second apart: a session's error replies are paced.
        let out = frame(&mut room, 2 + 1_000 * i as i64, VIEWER, f.as_bytes());
        assert_eq!(error_codes(&out, VIEWER), vec!["forbidden"], "{f}");
        assert!(broadcasts(&out).is_empty() && persisted(&out).is_empty(), "{f}");
    }
    assert_eq!(snapshot_of(&mut room, 10_000, VIEWER)["chat"].as_array().map(Vec::len), Some(1));
}

#[test]
fn a_mute_lasts_the_given_seconds_and_is_announced() {
    let mut room = staffed_room();
    let out = frame(&mut room, 1_000, MODERATOR, br#"{"type":"mute","identity":"vic","seconds":60}"#);
    let muted = broadcasts_of(&out, "user_muted");
    assert_eq!((muted[0]["identity"].as_str(), muted[0]["until_ms"].as_i64()), (Some("vic"), Some(61_000)));
    let out = chat(&mut room, 60_999, VIEWER, "let me talk");
    assert_eq!(error_codes(&out, VIEWER), vec!["muted"]);
    assert!(broadcasts(&out).is_empty());
    assert_eq!(broadcasts_of(&chat(&mut room, 61_000, VIEWER, "thanks"), "chat").len(), 1, "free again at the end");
}

#[test]
fn a_mute_is_at_most_seven_days() {
    let mut room = staffed_room();
    let out = frame(&mut room, 1_000, HOST, format!(r#"{{"type":"mute","identity":"vic","seconds":{}}}"#, u32::MAX).as_bytes());
    assert_eq!(broadcasts_of(&out, "user_muted")[0]["until_ms"], 1_000 + 7 * 24 * 3600 * 1000);
}

#[test]
fn a_ban_is_persisted_first_then_kicks_the_viewer_and_refuses_their_return() {
    let mut room = staffed_room();
    let out = frame(&mut room, 1, MODERATOR, br#"{"type":"ban","identity":"vic"}"#);
    assert_eq!(persisted(&out), vec![HostAction::Ban { identity: "vic".into(), by: Role::Moderator }]);
    assert!(out.iter().any(|o| matches!(o, Output::Persist { from, by, .. } if *from == sellcast_room::Caller::Session(MODERATOR) && by.id == "mo")));
    assert!(!out.iter().any(|o| matches!(o, Output::Kick { .. })), "nothing happens before the store committed");
    let second = ParticipantId(4);
    room.handle_join(1, second, who("vic", Role::Viewer));
    assert_eq!(room.participant_count(), 4);
    room.apply_ban(2, "vic".into(), None, Role::Moderator);
    let out = drain(&mut room);
    let mut kicked: Vec<ParticipantId> = out.iter().filter_map(|o| if let Output::Kick { participant } = o { Some(*participant) } else { None }).collect();
    kicked.sort();
    assert_eq!(kicked, vec![VIEWER, second], "every session of the banned identity");
    assert_eq!(broadcasts_of(&out, "user_banned")[0]["identity"], "vic");
    assert_eq!(room.participant_count(), 2);
    assert!(room.is_banned("vic", 1_000_000));
    room.handle_join(3, ParticipantId(5), who("vic", Role::Viewer));
    assert_eq!(drain(&mut room), vec![Output::Kick { participant: ParticipantId(5) }]);
    assert_eq!(room.participant_count(), 2);
}

#[test]
fn a_ban_never_kicks_the_host() {
    let mut room = staffed_room();
    room.apply_ban(1, "hana".into(), None, Role::Host);
    let out = drain(&mut room);
    assert!(!out.iter().any(|o| matches!(o, Output::Kick { .. })));
    assert_eq!(room.participant_count(), 3);
}

#[test]
fn a_timed_ban_ends_at_its_time_and_banned_lists_load_from_the_store() {
    let mut rec = record(10, 2);
    rec.banned = vec![("forever".into(), None, Role::Host), ("brief".into(), Some(5_000), Role::Moderator)];
    let mut room = room(rec);
    assert!(room.is_banned("forever", i64::MAX));
    assert!(room.is_banned("brief", 4_999));
    assert!(!room.is_banned("brief", 5_000));
    assert!(!room.is_banned("someone", 0));
    room.handle_join(4_999, ParticipantId(1), who("brief", Role::Viewer));
    assert_eq!(drain(&mut room), vec![Output::Kick { participant: ParticipantId(1) }]);
    room.handle_join(5_000, ParticipantId(2), who("brief", Role::Viewer));
    assert!(drain(&mut room).is_empty());
    assert_eq!(room.participant_count(), 1);
}

#[test]
fn blocked_words_are_persisted_then_applied_normalised_and_shown_to_staff_only() {
    let mut room = staffed_room();
    let out = frame(&mut room, 1, MODERATOR, br#"{"type":"set_blocked_words","words":[" Scam ","scam","","Fake"]}"#);
    assert_eq!(persisted(&out), vec![HostAction::SetBlockedWords(vec![" Scam ".into(), "scam".into(), "".into(), "Fake".into()])]);
    assert_eq!(broadcasts_of(&chat(&mut room, 2, VIEWER, "a SCAM?"), "chat").len(), 1, "not applied before the store committed");
    room.apply_blocked_words(vec![" Scam ".into(), "scam".into(), "".into(), "Fake".into()]);
    let out = chat(&mut room, 3, VIEWER, "this is a sCaMmer");
    assert_eq!(error_codes(&out, VIEWER), vec!["blocked"]);
    assert!(broadcasts(&out).is_empty());
    assert_eq!(snapshot_of(&mut room, 4, MODERATOR)["blocked_words"], serde_json::json!(["fake", "scam"]));
    assert_eq!(snapshot_of(&mut room, 4, HOST)["blocked_words"], serde_json::json!(["fake", "scam"]));
    assert!(snapshot_of(&mut room, 4, VIEWER).get("blocked_words").is_none());
}

#[test]
fn blocked_words_loaded_from_the_store_apply_at_once() {
    let mut rec = record(10, 2);
    rec.blocked_words = vec!["Spam".into(), "  ".into()];
    let mut room = room(rec);
    room.handle_join(0, VIEWER, who("vic", Role::Viewer));
    room.handle_join(0, HOST, who("hana", Role::Host));
    drain(&mut room);
    assert_eq!(error_codes(&chat(&mut room, 1, VIEWER, "SPAM here"), VIEWER), vec!["blocked"]);
    assert_eq!(broadcasts_of(&chat(&mut room, 1, VIEWER, "a lamp"), "chat").len(), 1, "an empty word blocks nothing");
    assert_eq!(snapshot_of(&mut room, 2, HOST)["blocked_words"], serde_json::json!(["spam"]));
}

#[test]
fn blocked_word_lists_are_at_most_500_words_of_at_most_64_characters() {
    let mut room = staffed_room();
    let set = |words: Vec<String>| serde_json::json!({"type": "set_blocked_words", "words": words}).to_string();
    let five_hundred: Vec<String> = (0..500).map(|i| format!("w{i}")).collect();
    assert_eq!(persisted(&frame(&mut room, 1, HOST, set(five_hundred.clone()).as_bytes())).len(), 1);
    let mut too_many = five_hundred;
    too_many.push("one more".into());
    let out = frame(&mut room, 2, HOST, set(too_many).as_bytes());
    assert_eq!((error_codes(&out, HOST), persisted(&out).len()), (vec!["invalid".to_string()], 0));
    assert_eq!(persisted(&frame(&mut room, 3, HOST, set(vec!["é".repeat(64)]).as_bytes())).len(), 1);
    let out = frame(&mut room, 4, HOST, set(vec!["é".repeat(65)]).as_bytes());
    assert_eq!((error_codes(&out, HOST), persisted(&out).len()), (vec!["invalid".to_string()], 0));
}
