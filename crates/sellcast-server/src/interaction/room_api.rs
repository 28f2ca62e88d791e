//! The room's HTTP API answers that come from its show task (the product list, the show's
//! details, the orders, a buyer's own orders, the bans, product changes), as a status and a
//! JSON body rather than an HTTP response.
//!
//! Why not a response: in cluster mode only the room's owner runs its show, so a node that
//! mirrors the room sends the request to the owner (`across_nodes::wire::RemoteRequest::Api`)
//! and hands back the owner's answer. One function, [`answer`], computes it for a local
//! caller and for a caller on a mirror alike, so a mirror answers with the owner's status and
//! body byte for byte, and the owner's rules apply to both.
//!
//! The node that got the request verified the caller's token; the identity (with its role)
//! travels with the request, and [`answer`] checks the role again as the owner, so a mirror
//! that skipped its check still cannot make the owner act for a viewer.

use bytes::Bytes;
use sellcast_room::{Identity, ProductDraft, Role};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::messages::{CatalogOp, ShowMsg};
use super::store_client::{StoreClient, StoreFailure};

/// Most orders "my orders" lists.
const MY_ORDERS_LIMIT: u32 = 50;

/// One request to the room's API, with the caller's identity where the answer depends on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoomApiRequest {
    /// `GET products`: the products and sales (public).
    Products,
    /// `GET show`: title, start, avatar, host name (public).
    ShowInfo,
    /// `GET orders`: recent orders and totals (moderator and up).
    Orders { identity: Identity },
    /// `GET orders/mine`: the caller's own orders (any role; whose comes from the token).
    MyOrders { identity: Identity },
    /// `GET bans` (moderator and up).
    Bans { identity: Identity },
    /// `POST products` (no `product_id`), `PUT products/{id}` (a body), `DELETE products/{id}`
    /// (no body); host only. The body travels as sent: the owner parses it.
    Catalog { identity: Identity, product_id: Option<i64>, body: Option<String> },
}

impl RoomApiRequest {
    /// The least role the request needs, and who asks.
    fn needs(&self) -> Option<(&Identity, Role)> {
        match self {
            RoomApiRequest::Products | RoomApiRequest::ShowInfo => None,
            RoomApiRequest::MyOrders { identity } => Some((identity, Role::Viewer)),
            RoomApiRequest::Orders { identity } | RoomApiRequest::Bans { identity } => Some((identity, Role::Moderator)),
            RoomApiRequest::Catalog { identity, .. } => Some((identity, Role::Host)),
        }
    }
}

/// The room's answer: an HTTP status and its JSON body (`None`: no body, as for `204`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomApiReply {
    pub status: u16,
    pub body: Option<Value>,
}

impl RoomApiReply {
    fn ok(body: Value) -> Self {
        Self { status: 200, body: Some(body) }
    }

    fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self { status, body: Some(json!({ "type": "error", "code": code, "message": message.into() })) }
    }

    /// The show task did not answer (it panicked with the request in hand, and is restarting).
    pub fn unavailable() -> Self {
        Self::error(503, "unavailable", crate::http::error::SignalError::RoomUnavailable.to_string())
    }

    fn store(e: StoreFailure) -> Self {
        let status = match e.code() {
            sellcast_room::ErrorCode::NotFound => 404,
            sellcast_room::ErrorCode::Invalid => 400,
            _ => 503,
        };
        let code = serde_json::to_value(e.code()).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        Self::error(status, &code, e.to_string())
    }
}

/// Answer `request` for `room`, whose show task reads `show`. Never called from inside that
/// task (it waits for the task's answers).
pub async fn answer(show: &mpsc::Sender<ShowMsg>, store: &StoreClient, room: &str, request: RoomApiRequest) -> RoomApiReply {
    if let Some((who, role)) = request.needs() {
        if who.role < role {
            let message = crate::auth::AuthError::Insufficient(role).to_string();
            return RoomApiReply::error(403, "forbidden", message);
        }
    }
    match request {
        RoomApiRequest::Products => match ask(show, |reply| ShowMsg::Sales { reply }).await {
            Some((products, sales)) => RoomApiReply::ok(json!({ "products": products, "sales": sales })),
            None => RoomApiReply::unavailable(),
        },
        RoomApiRequest::ShowInfo => match ask(show, |reply| ShowMsg::ShowInfo { reply }).await {
            Some(info) => RoomApiReply::ok(json!(info)),
            None => RoomApiReply::unavailable(),
        },
        RoomApiRequest::Orders { .. } => match ask(show, |reply| ShowMsg::Orders { reply }).await {
            Some((orders, totals)) => RoomApiReply::ok(json!({ "orders": orders, "totals": totals })),
            None => RoomApiReply::unavailable(),
        },
        RoomApiRequest::Bans { .. } => match ask(show, |reply| ShowMsg::Bans { reply }).await {
            Some(bans) => {
                let bans: Vec<_> = bans
                    .into_iter()
                    .map(|(identity, ban)| json!({ "identity": identity, "until_ms": ban.until_ms, "by": ban.by }))
                    .collect();
                RoomApiReply::ok(json!({ "bans": bans }))
            }
            None => RoomApiReply::unavailable(),
        },
        RoomApiRequest::MyOrders { identity } => my_orders(store, room, &identity).await,
        RoomApiRequest::Catalog { identity, product_id, body } => catalog(show, room, &identity, product_id, body).await,
    }
}

/// One message to the show task and its answer; `None` when the task did not answer.
async fn ask<T>(show: &mpsc::Sender<ShowMsg>, msg: impl FnOnce(oneshot::Sender<T>) -> ShowMsg) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    show.send(msg(reply)).await.ok()?;
    answer.await.ok()
}

/// The caller's own orders, newest first: whose they are comes from the caller's token,
/// never from the request, so nobody reads another buyer's orders.
pub async fn my_orders(store: &StoreClient, room: &str, who: &Identity) -> RoomApiReply {
    match store.orders_of(room, &who.id, MY_ORDERS_LIMIT).await {
        Ok(orders) => {
            let orders: Vec<_> = orders
                .into_iter()
                .map(|o| {
                    json!({
                        "order_id": o.id,
                        "sale_id": o.sale_id,
                        "product_id": o.product_id,
                        "title": o.title,
                        "variant_id": o.variant_id,
                        "variant": o.variant,
                        "qty": o.qty,
                        "price_minor": o.price_minor,
                        "currency": o.currency,
                        "at_ms": o.created_at_ms,
                    })
                })
                .collect();
            RoomApiReply::ok(json!({ "orders": orders }))
        }
        Err(e) => RoomApiReply::store(e),
    }
}

async fn catalog(show: &mpsc::Sender<ShowMsg>, room: &str, who: &Identity, id: Option<i64>, body: Option<String>) -> RoomApiReply {
    let op = match (body, id) {
        (Some(b), id) => match serde_json::from_str::<ProductDraft>(&b) {
            Ok(input) => match id {
                Some(id) => CatalogOp::Update(id, input),
                None => CatalogOp::Create(input),
            },
            Err(e) => return RoomApiReply::error(400, "malformed", e.to_string()),
        },
        (None, Some(id)) => CatalogOp::Delete(id),
        (None, None) => return RoomApiReply::error(400, "invalid", "nothing to do"),
    };
    let created = matches!(op, CatalogOp::Create(_));
    tracing::info!(%room, by = %who.id, ?op, "product change");
    match ask(show, |reply| ShowMsg::Catalog { op, reply }).await {
        Some(Ok(Some(product))) => RoomApiReply { status: if created { 201 } else { 200 }, body: Some(json!(product)) },
        Some(Ok(None)) => RoomApiReply { status: 204, body: None },
        Some(Err(e)) => RoomApiReply::store(e),
        None => RoomApiReply::unavailable(),
    }
}

/// A request body as the text the owner parses: the API's bodies are JSON, so UTF-8.
pub fn body_text(body: &Bytes) -> Result<String, RoomApiReply> {
    String::from_utf8(body.to_vec()).map_err(|e| RoomApiReply::error(400, "malformed", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(role: Role) -> Identity {
        Identity { id: "vic".into(), name: "Vic".into(), role }
    }

    #[test]
    fn a_request_and_its_identity_arrive_as_sent() {
        for request in [
            RoomApiRequest::Products,
            RoomApiRequest::Orders { identity: who(Role::Moderator) },
            RoomApiRequest::Catalog { identity: who(Role::Host), product_id: Some(3), body: Some("{\"title\":\"Mug\"}".into()) },
        ] {
            let back: RoomApiRequest = serde_json::from_slice(&serde_json::to_vec(&request).expect("encodes")).expect("decodes");
            assert_eq!(back, request);
        }
    }

    #[test]
    fn staff_requests_name_the_role_they_need() {
        assert_eq!(RoomApiRequest::Products.needs(), None);
        let viewer = who(Role::Viewer);
        let needed = |r: &RoomApiRequest| r.needs().map(|(_, role)| role);
        assert_eq!(needed(&RoomApiRequest::Catalog { identity: viewer.clone(), product_id: None, body: None }), Some(Role::Host));
        assert_eq!(needed(&RoomApiRequest::Bans { identity: viewer.clone() }), Some(Role::Moderator));
        assert_eq!(needed(&RoomApiRequest::MyOrders { identity: viewer }), Some(Role::Viewer));
    }
}
