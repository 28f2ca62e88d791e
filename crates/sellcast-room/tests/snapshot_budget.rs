//! A snapshot fits the channel's send buffer however large the room's catalog and chat are:
//! the highlighted products and the newest chat lines always come, and the snapshot says when
//! the catalog goes on in the HTTP list.

mod common;

use common::{direct, drain, json, of_type, who};
use sellcast_room::protocol::MAX_CHAT_CHARS;
use sellcast_room::{ParticipantId, Product, Role, Sale, Show, ShowLimits, ShowRecord};

/// The largest product the store takes: a 200-character title (4-byte emoji) and a
/// 2,048-byte image URL.
fn max_product(id: i64) -> Product {
    Product {
        id,
        title: "🛍".repeat(200),
        price_minor: i64::MAX,
        currency: "EUR".into(),
        image_url: format!("https://img.example/{}", "p".repeat(2048 - 20)),
        stock: u32::MAX,
        variants: Vec::new(),
    }
}

/// A room with 500 maximal products (three highlighted) and 50 chat lines of 500 emoji.
fn crowded_room() -> Show {
    crowded_room_with(ShowRecord::default())
}

/// `record` with 500 maximal products (three highlighted), and 50 chat lines of 500 emoji.
fn crowded_room_with(record: ShowRecord) -> Show {
    let record = ShowRecord { products: (1..=500).map(max_product).collect(), pinned: vec![7, 250, 499], ..record };
    let mut room = Show::new("r".into(), 1, record, ShowLimits::default(), 0);
    for i in 0..50u64 {
        let p = ParticipantId(1000 + i);
        room.handle_join(0, p, who(&format!("chatter-{i}"), Role::Viewer));
        let text = format!("{i:02}{}", "😀".repeat(MAX_CHAT_CHARS - 2));
        room.handle_frame(10 + i as i64, p, format!(r#"{{"type":"chat","text":"{text}"}}"#).as_bytes());
    }
    drain(&mut room);
    room
}

fn snapshot_for(room: &mut Show, role: Role) -> (usize, serde_json::Value) {
    let me = ParticipantId(1);
    room.handle_join(100, me, who("joiner", role));
    room.handle_frame(100, me, br#"{"type":"hello"}"#);
    let out = drain(room);
    let frame = out
        .iter()
        .find_map(|o| match o {
            sellcast_room::Output::Send { to, frame, .. } if *to == me && json(frame)["type"] == "snapshot" => Some(frame.clone()),
            _ => None,
        })
        .expect("a snapshot for the joiner");
    assert_eq!(of_type(&direct(&out, me), "snapshot").len(), 1);
    (frame.len(), json(&frame))
}

#[test]
fn a_snapshot_of_500_maximal_products_and_50_emoji_lines_fits_the_budget() {
    let mut room = crowded_room();
    for role in [Role::Viewer, Role::Host] {
        let (len, snapshot) = snapshot_for(&mut room, role);
        assert!(len <= ShowLimits::default().snapshot_bytes, "{role:?}: a snapshot of {len} bytes");
        assert!(len <= 128 * 1024 - 4 * 1024, "{role:?}: leaves room in the 128 KiB channel buffer for the welcome");
        let ids: Vec<i64> = snapshot["products"].as_array().expect("products").iter().filter_map(|p| p["id"].as_i64()).collect();
        for pinned in [7, 250, 499] {
            assert!(ids.contains(&pinned), "{role:?}: highlighted product {pinned} is in the snapshot");
        }
        let catalog: Vec<i64> = ids.iter().copied().filter(|id| ![7, 250, 499].contains(id)).collect();
        assert!(!catalog.is_empty(), "{role:?}: some of the catalog fits");
        let expected: Vec<i64> = (1..=500).filter(|id| ![7, 250, 499].contains(id)).take(catalog.len()).collect();
        assert_eq!(catalog, expected, "{role:?}: the catalog is a prefix in id order");
        assert_eq!(snapshot["more_products"], true, "{role:?}: the snapshot says the list goes on");
        let chat: Vec<String> = snapshot["chat"].as_array().expect("chat").iter().filter_map(|l| l["text"].as_str().map(String::from)).collect();
        assert!(!chat.is_empty() && chat.len() < 50, "{role:?}: some chat, not all 50 lines: {}", chat.len());
        let newest: Vec<String> = (50 - chat.len()..50).map(|i| format!("{i:02}")).collect();
        let got: Vec<String> = chat.iter().map(|t| t.chars().take(2).collect()).collect();
        assert_eq!(got, newest, "{role:?}: the newest lines, oldest first");
    }
}

#[test]
fn a_small_room_gets_everything_and_no_more_marker() {
    let record = ShowRecord { products: (1..=5).map(max_product).collect(), ..ShowRecord::default() };
    let mut room = Show::new("r".into(), 1, record, ShowLimits::default(), 0);
    let (_, snapshot) = snapshot_for(&mut room, Role::Viewer);
    assert_eq!(snapshot["products"].as_array().map(Vec::len), Some(5));
    assert_eq!(snapshot["more_products"], false);
}

/// A sale with every number at its largest, open for good.
fn max_sale(id: i64) -> Sale {
    Sale {
        id,
        product_id: id,
        price_minor: i64::MAX,
        currency: "EUR".into(),
        stock_total: u32::MAX,
        stock_left: u32::MAX,
        per_user_limit: u32::MAX,
        starts_at_ms: 0,
        ends_at_ms: i64::MAX,
        ended_at_ms: None,
    }
}

/// The error frame `frame` earns when a host joining as `session` sends it.
fn host_error(room: &mut Show, session: u64, frame: String) -> serde_json::Value {
    let host = ParticipantId(session);
    room.handle_join(200, host, who("the-host", Role::Host));
    drain(room);
    room.handle_frame(200, host, frame.as_bytes());
    let out = direct(&drain(room), host);
    let errors = of_type(&out, "error");
    assert_eq!(errors.len(), 1, "one error for {frame}: {out:?}");
    errors[0].clone()
}

/// Every snapshot carries all open sales, the highlighted products and (for staff) the
/// blocked words, outside the chat and catalog budgets: those are capped so that a staff
/// snapshot with each at its cap still fits, and going past a cap is refused.
#[test]
fn open_sales_and_blocked_words_are_capped_so_a_full_staff_snapshot_fits() {
    let limits = ShowLimits::default();
    // The most 64-character words (4-byte emoji) under the byte cap.
    let mut words: Vec<String> = Vec::new();
    for i in 0.. {
        let mut more = words.clone();
        more.push(format!("{i:03}{}", "😀".repeat(61)));
        if serde_json::to_string(&more).map_or(usize::MAX, |j| j.len()) > limits.max_blocked_words_bytes {
            break;
        }
        words = more;
    }
    let sales = (1..=limits.max_open_sales as i64).map(max_sale).collect();
    let mut room = crowded_room_with(ShowRecord { sales, blocked_words: words.clone(), ..ShowRecord::default() });

    let (len, snapshot) = snapshot_for(&mut room, Role::Host);
    assert!(len <= limits.snapshot_bytes, "a staff snapshot of {len} bytes");
    assert_eq!(snapshot["sales"].as_array().map(Vec::len), Some(limits.max_open_sales), "every open sale");
    assert_eq!(snapshot["blocked_words"].as_array().map(Vec::len), Some(words.len()), "every blocked word");
    assert!(snapshot["products"].as_array().is_some_and(|p| p.len() > 3), "some of the catalog still fits");

    let one_more_sale = format!(
        r#"{{"type":"start_sale","product_id":{},"price_minor":100,"stock":5,"per_user_limit":1,"starts_at_ms":0,"ends_at_ms":{}}}"#,
        limits.max_open_sales + 1,
        i64::MAX
    );
    let refused = host_error(&mut room, 2, one_more_sale);
    assert_eq!(refused["code"], "invalid", "{refused}");
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("sales can be open at once")), "{refused}");

    let mut too_many = words;
    too_many.push(format!("zzz{}", "😀".repeat(61)));
    let refused = host_error(&mut room, 3, serde_json::json!({ "type": "set_blocked_words", "words": too_many }).to_string());
    assert_eq!(refused["code"], "invalid", "{refused}");
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("blocked words take")), "{refused}");
}
