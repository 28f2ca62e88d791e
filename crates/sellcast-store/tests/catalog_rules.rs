//! Products, sales, highlights and moderation lists: what each change stores, and where each
//! validation rule draws its line (the last valid value passes, the first invalid one is a typed
//! error that changes nothing).

use sellcast_room::{BuyAnswer, ProductDraft, SaleDraft};
use sellcast_store::{Ban, BuyRequest, Store, StoreError, MAX_PINS};

mod support;
use support::{Backend, Place};

async fn open(backend: Backend) -> (Place, Store) {
    let place = Place::new(backend);
    let store = place.open();
    (place, store)
}

fn draft(title: &str) -> ProductDraft {
    ProductDraft { title: title.into(), price_minor: 1999, currency: "EUR".into(), image_url: String::new(), stock: 100, variants: Vec::new() }
}

fn sale_draft(product_id: i64) -> SaleDraft {
    SaleDraft { product_id, price_minor: 500, currency: None, stock: 5, per_user_limit: 2, starts_at_ms: 1000, ends_at_ms: 2000 }
}

fn is_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Invalid(_)))
}

async fn a_created_product_is_stored_as_given_with_a_trimmed_title_in_its_own_room(backend: Backend) {
    let (_place, store) = open(backend).await;
    let d = ProductDraft { title: "  Desk lamp ".into(), price_minor: 2450, currency: "USD".into(), image_url: "/img/lamp.jpg".into(), stock: 7, variants: Vec::new() };
    let p = store.create_product("r", d).await.expect("create");
    assert_eq!((p.title.as_str(), p.price_minor, p.currency.as_str()), ("Desk lamp", 2450, "USD"));
    assert_eq!((p.image_url.as_str(), p.stock), ("/img/lamp.jpg", 7));
    assert!(p.id > 0);
    assert_eq!(store.load_room("r").await.expect("load").products, vec![p]);
    assert!(store.load_room("other").await.expect("load").products.is_empty(), "another room has none");
}

async fn product_titles_are_one_to_two_hundred_characters_after_trimming(backend: Backend) {
    let (_place, store) = open(backend).await;
    assert!(is_invalid(store.create_product("r", draft("")).await));
    assert!(is_invalid(store.create_product("r", draft("   ")).await));
    assert!(store.create_product("r", draft("x")).await.is_ok());
    // Characters, not bytes: 200 two-byte letters pass.
    assert!(store.create_product("r", draft(&"é".repeat(200))).await.is_ok());
    assert!(is_invalid(store.create_product("r", draft(&"é".repeat(201))).await));
    assert_eq!(store.load_room("r").await.expect("load").products.len(), 2);
}

async fn currency_is_three_uppercase_letters(backend: Backend) {
    let (_place, store) = open(backend).await;
    for bad in ["EU", "EURO", "eur", "Eur", "E1R", ""] {
        assert!(is_invalid(store.create_product("r", ProductDraft { currency: bad.into(), ..draft("x") }).await), "{bad:?}");
    }
    assert!(store.create_product("r", ProductDraft { currency: "JPY".into(), ..draft("x") }).await.is_ok());
}

async fn price_may_be_zero_but_not_negative(backend: Backend) {
    let (_place, store) = open(backend).await;
    assert!(store.create_product("r", ProductDraft { price_minor: 0, ..draft("free") }).await.is_ok());
    assert!(is_invalid(store.create_product("r", ProductDraft { price_minor: -1, ..draft("x") }).await));
}

async fn image_url_is_empty_https_or_a_path_of_at_most_2048_bytes(backend: Backend) {
    let (_place, store) = open(backend).await;
    let with = |url: String| ProductDraft { image_url: url, ..draft("x") };
    for ok in ["", "https://cdn.example/a.jpg", "/static/a.jpg"] {
        assert!(store.create_product("r", with(ok.into())).await.is_ok(), "{ok:?}");
    }
    for bad in ["javascript:alert(1)", "ftp://x/a.jpg", "data:image/png;base64,AA", "a.jpg", "http://cdn.example/a.jpg", "//cdn.example/a.jpg"] {
        assert!(is_invalid(store.create_product("r", with(bad.into())).await), "{bad:?}");
    }
    let longest = format!("/{}", "a".repeat(2047));
    assert!(store.create_product("r", with(longest.clone())).await.is_ok(), "2048 bytes");
    assert!(is_invalid(store.create_product("r", with(format!("{longest}a"))).await), "2049 bytes");
}

async fn an_update_replaces_the_fields_in_its_own_room_only(backend: Backend) {
    let (_place, store) = open(backend).await;
    let p = store.create_product("r", draft("old")).await.expect("create");
    let d = ProductDraft { title: " new ".into(), price_minor: 10, currency: "GBP".into(), image_url: "https://x/y.png".into(), stock: 3, variants: Vec::new() };
    let u = store.update_product("r", p.id, d.clone()).await.expect("update");
    assert_eq!((u.id, u.title.as_str(), u.price_minor, u.currency.as_str()), (p.id, "new", 10, "GBP"));
    assert_eq!((u.image_url.as_str(), u.stock), ("https://x/y.png", 3));
    assert_eq!(store.load_room("r").await.expect("load").products, vec![u]);
    assert!(matches!(store.update_product("other", p.id, d.clone()).await, Err(StoreError::NotFound(_))));
    assert!(is_invalid(store.update_product("r", p.id, ProductDraft { price_minor: -5, ..d }).await));
    assert_eq!(store.load_room("r").await.expect("load").products[0].price_minor, 10, "a rejected update changed nothing");
}

async fn a_deleted_product_leaves_the_room_and_its_highlight(backend: Backend) {
    let (_place, store) = open(backend).await;
    let keep = store.create_product("r", draft("keep")).await.expect("create");
    let gone = store.create_product("r", draft("gone")).await.expect("create");
    store.set_pins("r", vec![gone.id, keep.id]).await.expect("pins");
    assert!(matches!(store.delete_product("other", gone.id).await, Err(StoreError::NotFound(_))));
    store.delete_product("r", gone.id).await.expect("delete");
    let room = store.load_room("r").await.expect("load");
    assert_eq!(room.products, vec![keep.clone()]);
    assert_eq!(room.pins, vec![keep.id]);
    assert!(matches!(store.delete_product("r", gone.id).await, Err(StoreError::NotFound(_))), "already deleted");
    assert!(matches!(store.update_product("r", gone.id, draft("x")).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.set_pins("r", vec![gone.id]).await, Err(StoreError::NotFound(_))));
}

async fn a_sale_is_stored_as_given_with_the_product_currency_by_default(backend: Backend) {
    let (_place, store) = open(backend).await;
    let p = store.create_product("r", ProductDraft { currency: "CHF".into(), ..draft("x") }).await.expect("create");
    let s = store.create_sale("r", sale_draft(p.id)).await.expect("sale");
    assert_eq!((s.product_id, s.price_minor, s.currency.as_str()), (p.id, 500, "CHF"));
    assert_eq!((s.stock_total, s.stock_left, s.per_user_limit), (5, 5, 2));
    assert_eq!((s.starts_at_ms, s.ends_at_ms, s.ended_at_ms), (1000, 2000, None));
    let usd = store.create_sale("r", SaleDraft { currency: Some("USD".into()), ..sale_draft(p.id) }).await.expect("sale");
    assert_eq!(usd.currency, "USD");
    assert_eq!(store.load_room("r").await.expect("load").sales, vec![s, usd]);
    assert!(store.load_room("other").await.expect("load").sales.is_empty(), "another room has none");
}

async fn a_sale_needs_stock_a_limit_a_window_a_price_and_a_currency(backend: Backend) {
    let (_place, store) = open(backend).await;
    let p = store.create_product("r", draft("x")).await.expect("create");
    let d = || sale_draft(p.id);
    assert!(is_invalid(store.create_sale("r", SaleDraft { stock: 0, ..d() }).await));
    assert!(is_invalid(store.create_sale("r", SaleDraft { per_user_limit: 0, ..d() }).await));
    assert!(is_invalid(store.create_sale("r", SaleDraft { ends_at_ms: 1000, ..d() }).await), "ends when it starts");
    assert!(is_invalid(store.create_sale("r", SaleDraft { ends_at_ms: 999, ..d() }).await), "ends before it starts");
    assert!(is_invalid(store.create_sale("r", SaleDraft { price_minor: -1, ..d() }).await));
    assert!(is_invalid(store.create_sale("r", SaleDraft { currency: Some("usd".into()), ..d() }).await));
    assert!(matches!(store.create_sale("r", SaleDraft { product_id: p.id + 100, ..d() }).await, Err(StoreError::NotFound(_))));
    assert!(store.load_room("r").await.expect("load").sales.is_empty(), "no invalid sale was stored");
    // The smallest valid sale: one unit, limit one, one millisecond long, free.
    let smallest = SaleDraft { stock: 1, per_user_limit: 1, ends_at_ms: 1001, price_minor: 0, ..d() };
    assert!(store.create_sale("r", smallest).await.is_ok());
}

async fn a_sale_ends_once_and_only_in_its_room(backend: Backend) {
    let (_place, store) = open(backend).await;
    let p = store.create_product("r", draft("x")).await.expect("create");
    let s = store.create_sale("r", sale_draft(p.id)).await.expect("sale");
    assert!(matches!(store.end_sale("other", s.id, 1500).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.end_sale("r", s.id + 1, 1500).await, Err(StoreError::NotFound(_))));
    let ended = store.end_sale("r", s.id, 1500).await.expect("end");
    assert_eq!(ended, sellcast_room::Sale { ended_at_ms: Some(1500), ..s });
    assert!(is_invalid(store.end_sale("r", s.id, 1600).await), "already ended");
    assert_eq!(store.load_room("r").await.expect("load").sales[0].ended_at_ms, Some(1500), "the first end time stays");
}

async fn highlights_keep_their_order_and_are_at_most_three(backend: Backend) {
    let (_place, store) = open(backend).await;
    let mut ids = Vec::new();
    for t in ["a", "b", "c", "d"] {
        ids.push(store.create_product("r", draft(t)).await.expect("create").id);
    }
    assert_eq!(MAX_PINS, 3);
    store.set_pins("r", vec![ids[2], ids[0], ids[1]]).await.expect("three");
    assert_eq!(store.load_room("r").await.expect("load").pins, vec![ids[2], ids[0], ids[1]]);
    assert!(is_invalid(store.set_pins("r", ids.clone()).await), "four");
    assert_eq!(store.load_room("r").await.expect("load").pins, vec![ids[2], ids[0], ids[1]], "a refused change keeps the old pins");
    store.set_pins("r", vec![ids[3]]).await.expect("one");
    assert_eq!(store.load_room("r").await.expect("load").pins, vec![ids[3]], "a new list replaces the old one");
    store.set_pins("r", vec![]).await.expect("none");
    assert!(store.load_room("r").await.expect("load").pins.is_empty());
}

async fn bans_are_per_identity_updatable_and_removable(backend: Backend) {
    let (_place, store) = open(backend).await;
    assert!(is_invalid(store.ban("r", "", None, sellcast_room::Role::Host).await));
    assert!(is_invalid(store.ban("r", &"x".repeat(257), None, sellcast_room::Role::Host).await));
    let longest = "x".repeat(256);
    store.ban("r", &longest, None, sellcast_room::Role::Host).await.expect("256 bytes");
    store.ban("r", "troll", Some(5000), sellcast_room::Role::Host).await.expect("ban");
    store.ban("r", "troll", Some(9000), sellcast_room::Role::Host).await.expect("extend");
    let mut bans = store.load_room("r").await.expect("load").bans;
    bans.sort_by(|a, b| a.identity.cmp(&b.identity));
    let host = sellcast_room::Role::Host;
    assert_eq!(bans, vec![Ban { identity: "troll".into(), until_ms: Some(9000), by: host }, Ban { identity: longest.clone(), until_ms: None, by: host }]);
    store.unban("r", "troll").await.expect("unban");
    assert_eq!(store.load_room("r").await.expect("load").bans, vec![Ban { identity: longest, until_ms: None, by: host }]);
    assert!(store.load_room("other").await.expect("load").bans.is_empty());
}

async fn blocked_words_are_trimmed_lowercased_deduplicated_and_replaced_as_a_list(backend: Backend) {
    let (_place, store) = open(backend).await;
    store.set_blocked_words("r", vec![" Scam ".into(), "scam".into(), "  ".into(), "Spam".into()]).await.expect("words");
    assert_eq!(store.load_room("r").await.expect("load").blocked_words, vec!["scam".to_string(), "spam".to_string()]);
    store.set_blocked_words("r", vec!["fake".into()]).await.expect("replace");
    assert_eq!(store.load_room("r").await.expect("load").blocked_words, vec!["fake".to_string()]);
}

async fn blocked_words_are_at_most_500_of_at_most_64_characters(backend: Backend) {
    let (_place, store) = open(backend).await;
    let five_hundred: Vec<String> = (0..500).map(|i| format!("w{i}")).collect();
    store.set_blocked_words("r", five_hundred.clone()).await.expect("500 words");
    assert_eq!(store.load_room("r").await.expect("load").blocked_words.len(), 500);
    let mut too_many = five_hundred;
    too_many.push("w500".into());
    assert!(is_invalid(store.set_blocked_words("r", too_many).await));
    store.set_blocked_words("r", vec!["é".repeat(64)]).await.expect("64 characters");
    assert!(is_invalid(store.set_blocked_words("r", vec!["é".repeat(65)]).await));
    assert_eq!(store.load_room("r").await.expect("load").blocked_words, vec!["é".repeat(64)], "a refused list keeps the old one");
}

async fn recent_orders_are_newest_first_up_to_the_limit_and_totals_sum_units_and_revenue(backend: Backend) {
    let (_place, store) = open(backend).await;
    let p = store.create_product("r", draft("x")).await.expect("create");
    let s = store.create_sale("r", SaleDraft { per_user_limit: 5, ..sale_draft(p.id) }).await.expect("sale");
    let buy = |who: &str, qty: u32, key: &str| BuyRequest {
        room: "r".into(),
        sale_id: Some(s.id),
        product_id: None,
        variant_id: None,
        identity: who.into(),
        buyer_name: who.into(),
        qty,
        idempotency_key: key.into(),
        now_ms: 1500,
        verdict: None,
    };
    for (who, qty, key) in [("a", 1, "k1"), ("b", 2, "k2"), ("c", 1, "k3")] {
        assert!(matches!(store.buy(buy(who, qty, key)).await.expect("buy").answer, BuyAnswer::Confirmed { .. }));
    }
    let recent = store.recent_orders("r", 2).await.expect("orders");
    assert_eq!(recent.iter().map(|o| o.identity.as_str()).collect::<Vec<_>>(), vec!["c", "b"]);
    assert_eq!(store.recent_orders("r", 10).await.expect("orders").len(), 3);
    assert!(store.recent_orders("other", 10).await.expect("orders").is_empty());
    assert_eq!(store.sale_totals("r", s.id).await.expect("totals"), (4, 2000), "4 units at 500");
    assert_eq!(store.sale_totals("other", s.id).await.expect("totals"), (0, 0));
    let room = store.load_room("r").await.expect("load");
    let mut purchased = room.purchased;
    purchased.sort();
    assert_eq!(purchased, vec![(s.id, "a".into(), 1), (s.id, "b".into(), 2), (s.id, "c".into(), 1)]);
}

on_both_backends!(
    a_created_product_is_stored_as_given_with_a_trimmed_title_in_its_own_room,
    product_titles_are_one_to_two_hundred_characters_after_trimming,
    currency_is_three_uppercase_letters,
    price_may_be_zero_but_not_negative,
    image_url_is_empty_https_or_a_path_of_at_most_2048_bytes,
    an_update_replaces_the_fields_in_its_own_room_only,
    a_deleted_product_leaves_the_room_and_its_highlight,
    a_sale_is_stored_as_given_with_the_product_currency_by_default,
    a_sale_needs_stock_a_limit_a_window_a_price_and_a_currency,
    a_sale_ends_once_and_only_in_its_room,
    highlights_keep_their_order_and_are_at_most_three,
    bans_are_per_identity_updatable_and_removable,
    blocked_words_are_trimmed_lowercased_deduplicated_and_replaced_as_a_list,
    blocked_words_are_at_most_500_of_at_most_64_characters,
    recent_orders_are_newest_first_up_to_the_limit_and_totals_sum_units_and_revenue,
);
