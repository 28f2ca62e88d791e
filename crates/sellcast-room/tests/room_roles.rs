//! Roles in moderation: nobody bans, mutes or deletes the messages of someone at or above their
//! own role; a ban or mute binds only roles below the one that placed it; unban and unmute, with
//! the same rules.

mod common;

use common::*;
use sellcast_room::{HostAction, Output, ParticipantId, Role, Show};

const VIEWER: ParticipantId = ParticipantId(1);
const MODERATOR: ParticipantId = ParticipantId(2);
const OTHER_MODERATOR: ParticipantId = ParticipantId(3);
const HOST: ParticipantId = ParticipantId(4);

fn staffed_room() -> Show {
    let mut room = room(record(10, 2));
    room.handle_join(0, VIEWER, who("vic", Role::Viewer));
    room.handle_join(0, MODERATOR, who("mo", Role::Moderator));
    room.handle_join(0, OTHER_MODERATOR, who("max", Role::Moderator));
    room.handle_join(0, HOST, who("hana", Role::Host));
    drain(&mut room);
    room
}

fn send(room: &mut Show, now_ms: i64, from: ParticipantId, frame_json: serde_json::Value) -> Vec<Output> {
    frame(room, now_ms, from, frame_json.to_string().as_bytes())
}

fn chat_seq(room: &mut Show, now_ms: i64, from: ParticipantId, text: &str) -> u64 {
    let out = send(room, now_ms, from, serde_json::json!({"type": "chat", "text": text}));
    broadcasts_of(&out, "chat")[0]["seq"].as_u64().expect("a chat event")
}

#[test]
fn a_moderator_cannot_ban_mute_or_delete_the_host_another_moderator_or_themselves() {
    let mut room = staffed_room();
    let host_line = chat_seq(&mut room, 1, HOST, "welcome");
    let moderator_line = chat_seq(&mut room, 2, OTHER_MODERATOR, "rules: be nice");
    let frames = [
        serde_json::json!({"type": "ban", "identity": "hana"}),
        serde_json::json!({"type": "ban", "identity": "max"}),
        serde_json::json!({"type": "ban", "identity": "mo"}),
        serde_json::json!({"type": "mute", "identity": "hana", "seconds": 60}),
        serde_json::json!({"type": "mute", "identity": "max", "seconds": 60}),
        serde_json::json!({"type": "delete_message", "seq": host_line}),
        serde_json::json!({"type": "delete_message", "seq": moderator_line}),
    ];
    for (i, f) in frames.into_iter().enumerate() {
        // A second apart: a session's error replies are paced.
        let out = send(&mut room, 1_000 * (i as i64 + 1), MODERATOR, f.clone());
        assert_eq!(error_codes(&out, MODERATOR), vec!["not_permitted"], "{f}");
        assert!(broadcasts(&out).is_empty() && persisted(&out).is_empty(), "nothing happens: {f}");
    }
    // The host is not even known from a session: a staff member seen earlier keeps their role.
    room.handle_leave(HOST);
    let out = send(&mut room, 10_000, MODERATOR, serde_json::json!({"type": "ban", "identity": "hana"}));
    assert_eq!(error_codes(&out, MODERATOR), vec!["not_permitted"], "the host, offline");
}

#[test]
fn the_host_bans_a_moderator_and_a_ban_binds_only_roles_below_its_placer() {
    let mut room = staffed_room();
    let out = send(&mut room, 1, HOST, serde_json::json!({"type": "ban", "identity": "mo"}));
    assert_eq!(persisted(&out), vec![HostAction::Ban { identity: "mo".into(), by: Role::Host }]);
    room.apply_ban(2, "mo".into(), None, Role::Host);
    let out = drain(&mut room);
    assert!(out.contains(&Output::Kick { participant: MODERATOR }), "{out:?}");
    assert!(room.is_banned_as("mo", Role::Moderator, 3));

    // A moderator's ban (say on an identity not seen here, that later comes as a moderator)
    // never binds a moderator or the host, only viewers.
    room.apply_ban(4, "newmod".into(), None, Role::Moderator);
    drain(&mut room);
    room.handle_join(5, ParticipantId(10), who("newmod", Role::Moderator));
    assert!(drain(&mut room).is_empty(), "not kicked");
    room.handle_join(5, ParticipantId(11), who("newmod", Role::Viewer));
    assert_eq!(drain(&mut room), vec![Output::Kick { participant: ParticipantId(11) }]);
}

#[test]
fn an_unban_is_persisted_then_lets_the_identity_join_and_chat_again() {
    let mut room = staffed_room();
    room.apply_ban(1, "vic".into(), None, Role::Moderator);
    drain(&mut room);
    let out = send(&mut room, 2, MODERATOR, serde_json::json!({"type": "unban", "identity": "vic"}));
    assert_eq!(persisted(&out), vec![HostAction::Unban("vic".into())]);
    assert!(room.is_banned("vic", 2), "still banned until the store committed the unban");
    room.apply_unban(3, "vic".into());
    let out = drain(&mut room);
    assert_eq!(broadcasts_of(&out, "user_unbanned")[0]["identity"], "vic");
    assert!(!room.is_banned("vic", 3));
    let back = ParticipantId(20);
    room.handle_join(4, back, who("vic", Role::Viewer));
    assert!(drain(&mut room).is_empty(), "not kicked");
    assert_eq!(broadcasts_of(&send(&mut room, 5, back, serde_json::json!({"type": "chat", "text": "sorry"})), "chat").len(), 1);

    let out = send(&mut room, 6, MODERATOR, serde_json::json!({"type": "unban", "identity": "vic"}));
    assert_eq!(error_codes(&out, MODERATOR), vec!["not_found"], "not banned any more");
}

#[test]
fn a_moderator_cannot_lift_or_replace_what_the_host_placed() {
    let mut room = staffed_room();
    room.apply_ban(1, "troll".into(), None, Role::Host);
    drain(&mut room);
    let out = send(&mut room, 2, MODERATOR, serde_json::json!({"type": "unban", "identity": "troll"}));
    assert_eq!((error_codes(&out, MODERATOR), persisted(&out)), (vec!["not_permitted".to_string()], vec![]));
    let out = send(&mut room, 2, MODERATOR, serde_json::json!({"type": "ban", "identity": "troll"}));
    assert_eq!(error_codes(&out, MODERATOR), vec!["not_permitted"], "a moderator's ban would weaken the host's");
    let out = send(&mut room, 3, HOST, serde_json::json!({"type": "unban", "identity": "troll"}));
    assert_eq!(persisted(&out), vec![HostAction::Unban("troll".into())]);

    send(&mut room, 4, HOST, serde_json::json!({"type": "mute", "identity": "vic", "seconds": 600}));
    let out = send(&mut room, 5, MODERATOR, serde_json::json!({"type": "unmute", "identity": "vic"}));
    assert_eq!(error_codes(&out, MODERATOR), vec!["not_permitted"]);
    let out = send(&mut room, 5, MODERATOR, serde_json::json!({"type": "mute", "identity": "vic", "seconds": 0}));
    assert_eq!(error_codes(&out, MODERATOR), vec!["not_permitted"], "no shortening the host's mute");
}

#[test]
fn an_unmute_lets_the_viewer_chat_at_once_and_is_announced() {
    let mut room = staffed_room();
    send(&mut room, 1_000, MODERATOR, serde_json::json!({"type": "mute", "identity": "vic", "seconds": 600}));
    let out = send(&mut room, 2_000, VIEWER, serde_json::json!({"type": "chat", "text": "hey"}));
    assert_eq!(error_codes(&out, VIEWER), vec!["muted"]);
    let out = send(&mut room, 3_000, MODERATOR, serde_json::json!({"type": "unmute", "identity": "vic"}));
    assert_eq!(broadcasts_of(&out, "user_unmuted")[0]["identity"], "vic");
    let out = send(&mut room, 4_000, VIEWER, serde_json::json!({"type": "chat", "text": "thanks"}));
    assert_eq!(broadcasts_of(&out, "chat").len(), 1);
    let out = send(&mut room, 5_000, MODERATOR, serde_json::json!({"type": "unmute", "identity": "vic"}));
    assert_eq!(error_codes(&out, MODERATOR), vec!["not_found"]);
}

#[test]
fn staff_may_delete_their_own_messages_and_the_host_those_of_moderators() {
    let mut room = staffed_room();
    let own = chat_seq(&mut room, 1, MODERATOR, "typo");
    let out = send(&mut room, 2, MODERATOR, serde_json::json!({"type": "delete_message", "seq": own}));
    assert_eq!(broadcasts_of(&out, "chat_deleted").len(), 1);
    let moderators = chat_seq(&mut room, 3, OTHER_MODERATOR, "oops");
    let out = send(&mut room, 4, HOST, serde_json::json!({"type": "delete_message", "seq": moderators}));
    assert_eq!(broadcasts_of(&out, "chat_deleted").len(), 1);
}
