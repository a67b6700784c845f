//! Unsubscribing: RFC 8058's one-click POST from the mailbox provider, or the one-button
//! page the footer links; both put the address on the suppression list.

use super::token::Purpose;
use super::{St, field, forbidden_origin, form, same_origin};
use crate::logging::mask_email;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use minijinja::context;

pub(super) async fn page(State(web): St, Path(token): Path<String>) -> Response {
    let Some(c) = web.signer().verify(Purpose::Unsubscribe, &token) else { return web.invalid_link() };
    web.page(
        StatusCode::OK,
        "unsubscribe.html",
        "Unsubscribe",
        context! { email => &c.subscriber, manage_url => web.links.manage(&c.subscriber) },
    )
}

/// Whether a POST is RFC 8058's one-click unsubscribe: the field `List-Unsubscribe` with
/// the value `One-Click`, sent as `multipart/form-data` (what the RFC recommends) or
/// `application/x-www-form-urlencoded` (what most providers send).
pub(super) async fn is_one_click(headers: &HeaderMap, body: &Bytes) -> bool {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Ok(boundary) = multer::parse_boundary(content_type) else {
        return field(&form(body), "List-Unsubscribe") == Some("One-Click");
    };
    let stream = futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(body.clone())));
    let mut parts = multer::Multipart::new(stream, boundary);
    while let Ok(Some(part)) = parts.next_field().await {
        if part.name() == Some("List-Unsubscribe") {
            return part.text().await.is_ok_and(|v| v.trim() == "One-Click");
        }
    }
    false
}

pub(super) async fn submit(
    State(web): St,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(c) = web.signer().verify(Purpose::Unsubscribe, &token) else { return web.invalid_link() };
    let f = form(&body);
    // RFC 8058: the mailbox provider POSTs exactly this, from its servers, without our
    // page; the signed URL is what authorizes it.
    let one_click = is_one_click(&headers, &body).await;
    if !one_click {
        if field(&f, "confirm") != Some("unsubscribe") {
            return web.message(
                StatusCode::BAD_REQUEST,
                "Nothing was changed",
                "Use the Unsubscribe button on the page this link opens.",
            );
        }
        if !same_origin(&web, &headers) {
            return forbidden_origin(&web);
        }
    }
    let reason = if one_click { "one-click" } else { "page" };
    if let Err(e) = web.store.suppress(&c.subscriber, reason, web.now()) {
        return web.failed(&e);
    }
    tracing::info!(to = %mask_email(&c.subscriber), how = reason, "unsubscribed");
    web.page(
        StatusCode::OK,
        "message.html",
        "You are unsubscribed",
        context! {
            text => format!("Nothing more will be sent to {}.", c.subscriber),
            link_url => web.links.manage(&c.subscriber),
            link_text => "Changed your mind? Subscribe again",
        },
    )
}
