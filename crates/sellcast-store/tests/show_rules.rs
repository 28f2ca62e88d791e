//! The show's durable parts: title / start / avatar, display names and the buyer names in the
//! orders feed, the likes total, and End closing every open sale; each read back after a
//! reopen, as a restarted server reads them.

use sellcast_room::{BuyAnswer, BuyRejection, ProductDraft, SaleDraft, ShowInfo};
use sellcast_store::{BuyRequest, Store};

mod support;
use support::{Backend, Place};

const START: i64 = 1_000_000;
const END: i64 = 2_000_000;

async fn sale(store: &Store, room: &str) -> i64 {
    let draft = ProductDraft { title: "Lamp".into(), price_minor: 1999, currency: "EUR".into(), image_url: String::new(), stock: 100, variants: Vec::new() };
    let p = store.create_product(room, draft).await.expect("product");
    let d = SaleDraft { product_id: p.id, price_minor: 750, currency: None, stock: 10, per_user_limit: 1, starts_at_ms: START, ends_at_ms: END };
    store.create_sale(room, d).await.expect("sale").id
}

fn req(sale_id: i64, who: &str, name: &str, key: &str) -> BuyRequest {
    BuyRequest { room: "r".into(), sale_id: Some(sale_id), product_id: None, variant_id: None, identity: who.into(), buyer_name: name.into(), qty: 1, idempotency_key: key.into(), now_ms: START + 1, verdict: None }
}

async fn the_show_names_and_likes_are_read_back_after_a_reopen(backend: Backend) {
    let place = Place::new(backend);
    {
        let store = place.open();
        let info = ShowInfo { title: "Spring drop".into(), starts_at_ms: Some(START), avatar_url: "/static/a.png".into(), host_name: "Hana".into(), ended_at_ms: None };
        assert_eq!(store.set_show("r", info.clone()).await.expect("set"), info);
        store.set_display_name("r", "guest-1", "Ana", false).await.expect("name");
        store.set_display_name("r", "guest-1", "Ana B", false).await.expect("renamed");
        store.set_display_name("r", "host-1", "Hana K", true).await.expect("host name");
        store.save_likes("r", 40).await.expect("likes");
        store.save_likes("r", 35).await.expect("a late, lower save");
    }
    let store = place.open();
    let room = store.load_room("r").await.expect("load");
    assert_eq!(room.show.title, "Spring drop");
    assert_eq!(room.show.starts_at_ms, Some(START));
    assert_eq!(room.show.host_name, "Hana K", "the host's name goes into the show's header");
    assert_eq!(room.likes_total, 40, "a late save never lowers the total");
    assert_eq!(room.names, vec![("guest-1".to_string(), "Ana B".to_string()), ("host-1".to_string(), "Hana K".to_string())]);
    assert_eq!(store.load_room("other").await.expect("load").show, ShowInfo::default(), "per room");
}

async fn an_avatar_that_is_not_https_or_a_path_never_reaches_the_table(backend: Backend) {
    let place = Place::new(backend);
    let store = place.open();
    let info = ShowInfo { avatar_url: "javascript:alert(1)".into(), ..ShowInfo::default() };
    assert!(matches!(store.set_show("r", info).await, Err(sellcast_store::StoreError::Invalid(_))));
    assert!(matches!(store.set_display_name("r", "g", "a\nb", false).await, Err(sellcast_store::StoreError::Invalid(_))));
}

async fn the_orders_feed_names_each_buyer_by_the_name_they_chose_else_the_one_they_bought_with(backend: Backend) {
    let place = Place::new(backend);
    let store = place.open();
    let s = sale(&store, "r").await;
    store.buy(req(s, "guest-1", "Guest 1a2b", "k1")).await.expect("buy");
    store.buy(req(s, "guest-2", "Bo", "k2")).await.expect("buy");
    store.set_display_name("r", "guest-1", "Ana", false).await.expect("name");
    let orders = store.recent_orders("r", 10).await.expect("orders");
    let names: Vec<(&str, &str)> = orders.iter().map(|o| (o.identity.as_str(), o.buyer_name.as_str())).collect();
    assert_eq!(names, vec![("guest-2", "Bo"), ("guest-1", "Ana")]);
}

async fn end_closes_every_open_sale_in_its_transaction_and_no_buy_commits_after_it(backend: Backend) {
    let place = Place::new(backend);
    let store = place.open();
    let open = sale(&store, "r").await;
    let other = sale(&store, "r").await;
    let done = sale(&store, "r").await;
    store.end_sale("r", done, START).await.expect("ended before");
    let elsewhere = sale(&store, "x").await;
    let closed = store.end_show("r", START + 5).await.expect("end");
    let ids: Vec<i64> = closed.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![open, other], "the room's open sales, not the ended one nor another room's");
    assert!(closed.iter().all(|s| s.ended_at_ms == Some(START + 5)));
    let after = store.buy(req(open, "guest-1", "Ana", "late")).await.expect("buy").answer;
    assert_eq!(after, BuyAnswer::Rejected { sale_id: Some(open), product_id: None, reason: BuyRejection::SaleNotActive });
    let room = store.load_room("r").await.expect("load");
    assert_eq!(room.show.ended_at_ms, Some(START + 5));
    assert!(store.load_room("x").await.expect("load").sales.iter().any(|s| s.id == elsewhere && s.ended_at_ms.is_none()));
}

on_both_backends!(
    the_show_names_and_likes_are_read_back_after_a_reopen,
    an_avatar_that_is_not_https_or_a_path_never_reaches_the_table,
    the_orders_feed_names_each_buyer_by_the_name_they_chose_else_the_one_they_bought_with,
    end_closes_every_open_sale_in_its_transaction_and_no_buy_commits_after_it,
);
