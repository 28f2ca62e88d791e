//! Room behaviours on virtual time: frames in, outputs out, the store simulated by the test.

use std::sync::Arc;

use sellcast_room::{
    BuyAnswer, Caller, Class, Identity, Output, ParticipantId, Product, Role, ShowLimits, Show, ShowRecord,
    Sale,
};
use serde_json::Value;

fn who(id: &str, role: Role) -> Identity {
    Identity { id: id.into(), name: format!("{id} name"), role }
}

fn sale(stock: u32, limit: u32) -> Sale {
    Sale {
        id: 1,
        product_id: 10,
        price_minor: 990,
        currency: "EUR".into(),
        stock_total: stock,
        stock_left: stock,
        per_user_limit: limit,
        starts_at_ms: 0,
        ends_at_ms: 600_000,
        ended_at_ms: None,
    }
}

fn room_with_sale(stock: u32, limit: u32) -> Show {
    let record = ShowRecord {
        products: vec![Product {
            id: 10,
            title: "Lipstick".into(),
            price_minor: 1500,
            currency: "EUR".into(),
            image_url: String::new(),
            stock: 100,
            variants: Vec::new(),
        }],
        sales: vec![sale(stock, limit)],
        ..ShowRecord::default()
    };
    Show::new("r".into(), 42, record, ShowLimits::default(), 1_000)
}

fn drain(room: &mut Show) -> Vec<Output> {
    std::iter::from_fn(|| room.poll_output()).collect()
}

fn json(frame: &Arc<str>) -> Value {
    serde_json::from_str(frame).expect("frames are JSON")
}

fn sent_to(outputs: &[Output], to: ParticipantId) -> Vec<Value> {
    outputs
        .iter()
        .flat_map(|o| match o {
            Output::Send { to: t, frame, .. } if *t == to => vec![json(frame)],
            Output::Answer { to: Caller::Session(t), answer } if *t == to => answer.to_frames().iter().map(json).collect(),
            Output::Broadcast { frame, .. } => vec![json(frame)],
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn chat_is_stamped_by_the_server_and_sequenced() {
    let mut room = room_with_sale(5, 1);
    let (a, b) = (ParticipantId(1), ParticipantId(2));
    room.handle_join(0, a, who("ann", Role::Viewer));
    room.handle_join(0, b, who("bob", Role::Moderator));
    drain(&mut room);
    room.handle_frame(10, a, br#"{"type":"chat","text":"is it waterproof?"}"#);
    room.handle_frame(20, b, br#"{"type":"chat","text":"yes!"}"#);
    let out = drain(&mut room);
    let chats: Vec<Value> = out
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast { frame, class: Class::Chat, .. } => Some(json(frame)),
            _ => None,
        })
        .collect();
    assert_eq!(chats.len(), 2);
    assert_eq!(chats[0]["from"]["id"], "ann", "sender comes from the session, not the frame");
    assert_eq!(chats[1]["from"]["role"], "moderator");
    assert_eq!(chats[0]["epoch"], 42);
    assert_eq!(chats[1]["seq"].as_u64(), chats[0]["seq"].as_u64().map(|s| s + 1));
}

#[test]
fn a_reconnecting_client_gets_every_missed_event_once() {
    let mut room = room_with_sale(3, 3);
    let host = ParticipantId(1);
    let viewer = ParticipantId(2);
    room.handle_join(0, host, who("host", Role::Host));
    room.handle_join(0, viewer, who("vic", Role::Viewer));
    room.handle_frame(0, viewer, br#"{"type":"hello"}"#);
    drain(&mut room);
    room.handle_frame(1, viewer, br#"{"type":"chat","text":"one"}"#);
    let seen = room.position();
    drain(&mut room);

    // The viewer drops; meanwhile the host pins, a buy sells out the sale, chat goes on.
    room.handle_leave(viewer);
    room.apply_pins(2, vec![10]);
    room.handle_frame(3, host, br#"{"type":"chat","text":"last units!"}"#);
    room.handle_buy_outcome(
        4,
        &sellcast_room::BuyTicket { identity: "x".into(), key: "k".into() },
        BuyAnswer::Confirmed { order_id: 1, sale_id: Some(1), product_id: 0, variant_id: None, qty: 3, price_minor: 990, currency: "EUR".into() },
        false,
        Some(0),
    );
    drain(&mut room);

    let back = ParticipantId(3);
    room.handle_join(5, back, who("vic", Role::Viewer));
    let hello = format!(r#"{{"type":"hello","resume":{{"epoch":{},"seq":{}}}}}"#, seen.epoch, seen.seq);
    room.handle_frame(5, back, hello.as_bytes());
    let frames = sent_to(&drain(&mut room), back);
    assert_eq!(frames[0]["type"], "welcome");
    assert_eq!(frames[0]["resumed"], true);
    let replayed: Vec<(&str, u64)> = frames
        .iter()
        .filter(|f| f.get("seq").is_some() && f["type"] != "welcome")
        .map(|f| (f["type"].as_str().unwrap_or(""), f["seq"].as_u64().unwrap_or(0)))
        .collect();
    let expected: Vec<u64> = (seen.seq + 1..=room.position().seq).collect();
    assert_eq!(replayed.iter().map(|(_, s)| *s).collect::<Vec<_>>(), expected, "each missed seq exactly once");
    let kinds: Vec<&str> = replayed.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, vec!["pinned", "chat", "sold_out"]);

    // From another epoch (server restarted) the client gets a snapshot instead.
    let lost = ParticipantId(4);
    room.handle_join(6, lost, who("vic", Role::Viewer));
    room.handle_frame(6, lost, br#"{"type":"hello","resume":{"epoch":41,"seq":3}}"#);
    let frames = sent_to(&drain(&mut room), lost);
    assert_eq!(frames[0]["resumed"], false);
    assert_eq!(frames[1]["type"], "snapshot");
    assert_eq!(frames[1]["pinned"], serde_json::json!([10]));
    assert_eq!(frames[1]["seq"].as_u64(), Some(room.position().seq));
}

#[test]
fn buys_reserve_stock_and_retries_get_the_same_answer() {
    let mut room = room_with_sale(2, 1);
    let (a, b, c) = (ParticipantId(1), ParticipantId(2), ParticipantId(3));
    for (p, id) in [(a, "ann"), (b, "bob"), (c, "cid")] {
        room.handle_join(0, p, who(id, Role::Viewer));
    }
    drain(&mut room);
    let buy = |key: &str| format!(r#"{{"type":"buy","sale_id":1,"qty":1,"idempotency_key":"{key}"}}"#);
    room.handle_frame(10, a, buy("a1").as_bytes());
    room.handle_frame(10, a, buy("a1").as_bytes()); // retry while in flight: joins
    room.handle_frame(10, a, buy("a2").as_bytes()); // over the per-user limit of 1
    room.handle_frame(10, b, buy("b1").as_bytes());
    room.handle_frame(10, c, buy("c1").as_bytes()); // 2 units reserved: sold out from memory
    let out = drain(&mut room);
    let (orders, verdicts): (Vec<_>, Vec<_>) =
        out.iter().filter_map(|o| if let Output::Buy(b) = o { Some(b.clone()) } else { None }).partition(|b| b.verdict.is_none());
    assert_eq!(orders.len(), 2, "only buys that can succeed reach the store as reservations");
    // The others go with the desk's verdict, for the store to record unless the key is known
    // there; here it is not, so the verdicts are the answers.
    for v in &verdicts {
        let reason = v.verdict.expect("a verdict");
        room.handle_buy_outcome(15, &v.ticket, BuyAnswer::Rejected { sale_id: Some(1), product_id: None, reason }, false, None);
    }
    let out = drain(&mut room);
    let rejected: Vec<Value> = sent_to(&out, a).into_iter().chain(sent_to(&out, c)).filter(|f| f["type"] == "buy_rejected").collect();
    let reasons: Vec<&str> = rejected.iter().filter_map(|f| f["reason"].as_str()).collect();
    assert_eq!(reasons, vec!["limit_reached", "sold_out"]);

    // The store commits both; both of ann's requests get the one confirmation.
    for (i, order) in orders.iter().enumerate() {
        let answer = BuyAnswer::Confirmed { order_id: 100 + i as i64, sale_id: Some(1), product_id: 0, variant_id: None, qty: 1, price_minor: 990, currency: "EUR".into() };
        room.handle_buy_outcome(20, &order.ticket, answer, false, Some(1 - i as u32));
    }
    let out = drain(&mut room);
    let to_ann: Vec<Value> = sent_to(&out, a).into_iter().filter(|f| f["type"] == "order_confirmed").collect();
    assert_eq!(to_ann.len(), 2, "original and in-flight retry both answered");
    assert!(to_ann.iter().all(|f| f["order_id"] == 100));
    assert!(out.iter().any(|o| matches!(o, Output::Broadcast { frame, .. } if json(frame)["type"] == "sold_out")));
    assert_eq!(room.sale(1).map(|s| s.stock_left), Some(0));

    // A later retry is answered from memory with the same order.
    room.handle_frame(30, a, buy("a1").as_bytes());
    let again: Vec<Value> = sent_to(&drain(&mut room), a);
    assert_eq!(again[0]["order_id"], 100);
    // And a rejected key keeps its rejection.
    room.handle_frame(30, c, buy("c1").as_bytes());
    assert_eq!(sent_to(&drain(&mut room), c)[0]["reason"], "sold_out");
}

#[test]
fn host_actions_need_the_host_role_and_are_refused_with_a_reason() {
    let mut room = room_with_sale(5, 1);
    let (viewer, host) = (ParticipantId(1), ParticipantId(2));
    room.handle_join(0, viewer, who("eve", Role::Viewer));
    room.handle_join(0, host, who("hana", Role::Host));
    drain(&mut room);
    room.handle_frame(1, viewer, br#"{"type":"pin","product_ids":[10]}"#);
    let out = drain(&mut room);
    assert!(!out.iter().any(|o| matches!(o, Output::Persist { .. })), "nothing is persisted");
    let err = &sent_to(&out, viewer)[0];
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "forbidden");
    assert!(out.iter().any(|o| matches!(o, Output::Refused { identity, .. } if identity == "eve")), "logged");
    room.handle_frame(2, host, br#"{"type":"pin","product_ids":[10]}"#);
    assert!(drain(&mut room).iter().any(|o| matches!(o, Output::Persist { .. })));
    room.handle_frame(3, host, br#"{"type":"pin","product_ids":[99]}"#);
    assert_eq!(sent_to(&drain(&mut room), host)[0]["code"], "not_found", "unknown product");
}

#[test]
fn a_flooding_client_is_throttled_and_answered_sparingly() {
    let mut room = room_with_sale(5, 1);
    let (flood, calm) = (ParticipantId(1), ParticipantId(2));
    room.handle_join(0, flood, who("flood", Role::Viewer));
    room.handle_join(0, calm, who("calm", Role::Viewer));
    drain(&mut room);
    // 10,000 chat frames in one second, plus garbage.
    for i in 0..10_000i64 {
        room.handle_frame(i / 10, flood, br#"{"type":"chat","text":"buy my stuff"}"#);
        if i % 100 == 0 {
            room.handle_frame(i / 10, flood, b"\xff\xfe garbage");
        }
    }
    room.handle_frame(999, calm, br#"{"type":"chat","text":"hello everyone"}"#);
    let out = drain(&mut room);
    let chats: Vec<Value> = out
        .iter()
        .filter_map(|o| if let Output::Broadcast { frame, class: Class::Chat, .. } = o { Some(json(frame)) } else { None })
        .collect();
    let from_flood = chats.iter().filter(|c| c["from"]["id"] == "flood").count();
    assert!(from_flood <= 6, "flooder limited to its burst and rate: {from_flood}");
    assert!(chats.iter().any(|c| c["from"]["id"] == "calm"), "others keep chatting");
    let errors = sent_to(&out, flood).iter().filter(|f| f["type"] == "error").count();
    assert!(errors > 0 && errors <= 10, "errors are rate-limited too: {errors}");
}

#[test]
fn likes_are_summed_per_tick_and_counters_are_latest_state() {
    let latest = |out: &[Output], kind: &str| -> Vec<Value> {
        out.iter()
            .filter_map(|o| if let Output::Broadcast { frame, class: Class::Latest, .. } = o { Some(json(frame)) } else { None })
            .filter(|f| f["type"] == kind)
            .collect()
    };
    let mut room = room_with_sale(5, 1);
    let (a, b, c) = (ParticipantId(1), ParticipantId(2), ParticipantId(3));
    room.handle_join(0, a, who("ann", Role::Viewer));
    room.handle_join(0, b, who("bob", Role::Viewer));
    room.handle_join(0, c, who("cat", Role::Viewer));
    room.handle_leave(b);
    room.handle_frame(0, a, br#"{"type":"like","count":7}"#);
    room.handle_frame(0, a, br#"{"type":"like","count":500}"#);
    room.handle_frame(0, c, br#"{"type":"like","count":4}"#);
    drain(&mut room);
    room.handle_tick(300);
    let out = drain(&mut room);
    let likes = latest(&out, "likes");
    assert_eq!(likes.len(), 1, "one likes frame per tick");
    assert_eq!(likes[0]["delta"], 34, "ann capped at 30 per tick, plus cat's 4");
    assert_eq!(likes[0]["total"], 34);
    // Three joins and a leave since the last tick: one counters frame with the state now.
    let counters = latest(&out, "counters");
    assert_eq!(counters.len(), 1, "one counters frame per tick, however many changes");
    assert_eq!(counters[0]["viewers"], 2, "bob left before the tick");
    assert_eq!(counters[0]["sales"][0]["stock_left"], 5);

    // Nothing changed: no counters frame. New likes add to the total.
    room.handle_frame(301, c, br#"{"type":"like","count":2}"#);
    room.handle_tick(600);
    let out = drain(&mut room);
    assert!(latest(&out, "counters").is_empty(), "unchanged counters are not re-sent");
    let likes = latest(&out, "likes");
    assert_eq!((likes[0]["delta"].as_u64(), likes[0]["total"].as_u64()), (Some(2), Some(36)));

    room.handle_leave(c);
    room.handle_tick(900);
    let counters = latest(&drain(&mut room), "counters");
    assert_eq!(counters.len(), 1);
    assert_eq!(counters[0]["viewers"], 1, "the latest state replaces the last one sent");
}

#[test]
fn a_sale_ends_by_the_clock_once() {
    let mut room = room_with_sale(5, 1);
    room.handle_join(0, ParticipantId(1), who("ann", Role::Viewer));
    drain(&mut room);
    room.handle_tick(599_999);
    assert!(!drain(&mut room).iter().any(|o| matches!(o, Output::Broadcast { frame, .. } if json(frame)["type"] == "sale_ended")));
    room.handle_tick(600_000);
    room.handle_tick(600_300);
    let ended = drain(&mut room)
        .iter()
        .filter(|o| matches!(o, Output::Broadcast { frame, .. } if json(frame)["type"] == "sale_ended"))
        .count();
    assert_eq!(ended, 1);
}

#[test]
fn outcomes_applied_out_of_commit_order_keep_the_stock_right() {
    let mut room = room_with_sale(10, 5);
    let (a, b) = (ParticipantId(1), ParticipantId(2));
    room.handle_join(0, a, who("ann", Role::Viewer));
    room.handle_join(0, b, who("bob", Role::Viewer));
    room.handle_frame(1, a, br#"{"type":"buy","sale_id":1,"qty":1,"idempotency_key":"a"}"#);
    room.handle_frame(1, b, br#"{"type":"buy","sale_id":1,"qty":1,"idempotency_key":"b"}"#);
    let orders: Vec<_> = drain(&mut room).into_iter().filter_map(|o| if let Output::Buy(b) = o { Some(b) } else { None }).collect();
    assert_eq!(orders.len(), 2);
    // The store committed ann (9 left) then bob (8 left); the room hears bob first.
    let confirm = |id| BuyAnswer::Confirmed { order_id: id, sale_id: Some(1), product_id: 0, variant_id: None, qty: 1, price_minor: 990, currency: "EUR".into() };
    room.handle_buy_outcome(2, &orders[1].ticket, confirm(2), false, Some(8));
    room.handle_buy_outcome(2, &orders[0].ticket, confirm(1), false, Some(9));
    assert_eq!(room.sale(1).map(|s| s.stock_left), Some(8), "two sold out of ten, whatever the order");
}

#[test]
fn a_resume_whose_replay_exceeds_the_byte_budget_gets_a_snapshot() {
    let config = ShowLimits { replay_bytes: 4 * 1024, ..ShowLimits::default() };
    let mut room = Show::new("r".into(), 42, ShowRecord::default(), config, 1_000);
    let (host, viewer) = (ParticipantId(1), ParticipantId(2));
    room.handle_join(0, host, who("hal", Role::Host));
    room.handle_frame(0, host, br#"{"type":"hello"}"#);
    let from = room.position();
    // Ten 400-character lines: about 5 KiB of events, past the 4 KiB budget.
    for i in 0..10 {
        let line = format!(r#"{{"type":"chat","text":"{i} {}"}}"#, "y".repeat(400));
        room.handle_frame(1 + i, host, line.as_bytes());
    }
    drain(&mut room);
    let hello = format!(r#"{{"type":"hello","resume":{{"epoch":{},"seq":{}}}}}"#, from.epoch, from.seq);
    room.handle_join(20, viewer, who("vic", Role::Viewer));
    room.handle_frame(20, viewer, hello.as_bytes());
    let frames = sent_to(&drain(&mut room), viewer);
    assert_eq!(frames[0]["resumed"], false, "too much to replay at once: {}", frames[0]);
    assert_eq!(frames[1]["type"], "snapshot");
    assert_eq!(frames[1]["seq"].as_u64(), Some(room.position().seq));

    // Within the budget the same gap is replayed.
    let mut roomy = Show::new("r".into(), 42, ShowRecord::default(), ShowLimits::default(), 1_000);
    roomy.handle_join(0, host, who("hal", Role::Host));
    roomy.handle_frame(0, host, br#"{"type":"hello"}"#);
    for i in 0..10 {
        let line = format!(r#"{{"type":"chat","text":"{i} {}"}}"#, "y".repeat(400));
        roomy.handle_frame(1 + i, host, line.as_bytes());
    }
    drain(&mut roomy);
    roomy.handle_join(20, viewer, who("vic", Role::Viewer));
    roomy.handle_frame(20, viewer, hello.as_bytes());
    let frames = sent_to(&drain(&mut roomy), viewer);
    assert_eq!(frames[0]["resumed"], true);
    assert_eq!(frames.iter().filter(|f| f["type"] == "chat").count(), 10);
}
