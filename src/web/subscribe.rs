//! The subscribe page and its double opt-in: the form, the confirmation mail, and the
//! one-button page its link opens.

use super::token::Purpose;
use super::{FORM_VALID_SECS, St, Web, client, field, forbidden_origin, form, same_origin};
use crate::error::{Error, Result};
use crate::logging::mask_email;
use crate::mail::{self, Envelope};
use crate::model::Frequency;
use crate::store::Pending;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

fn subscribe_form(
    web: &Web,
    status: StatusCode,
    error: Option<&str>,
    email: &str,
    chosen: &[String],
) -> Response {
    let issued = web.now().timestamp().to_string();
    web.page(
        status,
        "subscribe.html",
        "Subscribe to Paper Digest",
        context! {
            form_token => web.signer().sign(Purpose::Form, "", &issued),
            topics => web.topics(),
            chosen,
            email,
            error,
        },
    )
}

fn subscribe_closed(web: &Web) -> Response {
    web.message(
        StatusCode::NOT_FOUND,
        "Subscriptions are closed",
        "This list takes no new subscribers on the web.",
    )
}

fn subscribe_on(web: &Web) -> bool {
    web.cfg.web.as_ref().is_some_and(|w| w.subscribe)
}

pub(super) async fn page(State(web): St) -> Response {
    if !subscribe_on(&web) {
        return subscribe_closed(&web);
    }
    subscribe_form(&web, StatusCode::OK, None, "", &[])
}

pub(super) async fn submit(
    State(web): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !subscribe_on(&web) {
        return subscribe_closed(&web);
    }
    if !same_origin(&web, &headers) {
        return forbidden_origin(&web);
    }
    if !web.per_client.allow(&client(peer, &headers), Instant::now()) {
        return web.message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            "Too many subscription requests came from your network. Please try again later.",
        );
    }
    let f = form(&body);
    let now = web.now();
    let fresh = field(&f, "form")
        .and_then(|t| web.signer().verify(Purpose::Form, t))
        .and_then(|c| c.payload.parse::<i64>().ok())
        .is_some_and(|issued| (0..=FORM_VALID_SECS).contains(&(now.timestamp() - issued)));
    let email = field(&f, "email").unwrap_or("").trim().to_string();
    let known = web.topics();
    let chosen: Vec<String> =
        f.get("topics").into_iter().flatten().filter(|t| known.contains(t)).cloned().collect();
    if !fresh {
        return subscribe_form(
            &web,
            StatusCode::FORBIDDEN,
            Some("This form has expired. Please send it again."),
            &email,
            &chosen,
        );
    }
    let Ok(address) = email.parse::<lettre::Address>() else {
        return subscribe_form(
            &web,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("That does not look like an email address. Expected something like name@example.org."),
            &email,
            &chosen,
        );
    };
    let key = address.to_string().to_lowercase();
    let frequency =
        if field(&f, "frequency") == Some("weekly") { Frequency::Weekly } else { Frequency::Daily };
    let hours = web.cfg.web.as_ref().map_or(48, |w| w.confirm_within.as_secs() / 3600);
    // The same answer whatever happens next, so the page never tells who is subscribed.
    let answer = web.page(StatusCode::OK, "check_inbox.html", "Check your inbox", context! { hours });
    if !web.per_address.allow(&key, Instant::now()) {
        tracing::warn!(to = %mask_email(&key), "confirmation not sent: too many requests for this address");
        return answer;
    }
    let pending = Pending { subscriber: key.clone(), topics: chosen, frequency, nonce: nonce() };
    let expires = now + chrono::Duration::hours(hours as i64);
    if let Err(e) = web.store.put_pending(&pending, now, expires) {
        return web.failed(&e);
    }
    let web2 = Arc::clone(&web);
    // Off the request, so how long the mail server takes says nothing either.
    tokio::spawn(async move {
        if let Err(e) = send_confirmation(&web2, &pending, hours).await {
            tracing::error!(to = %mask_email(&pending.subscriber), "confirmation mail failed: {e}");
        }
    });
    answer
}

/// A request's nonce: only tells one request from the next (the token's signature is what
/// cannot be forged), but unpredictable anyway.
fn nonce() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

async fn send_confirmation(web: &Web, p: &Pending, hours: u64) -> Result<()> {
    let confirm_url = web.links.confirm(&p.subscriber, &p.nonce);
    let ctx = context! {
        email => &p.subscriber,
        topics => &p.topics,
        frequency => frequency_name(p.frequency),
        confirm_url,
        hours,
    };
    let rendered = crate::render::Rendered {
        subject: "Confirm your Paper Digest subscription".into(),
        text: web.pages.render("confirm_mail.txt", ctx.clone())?,
        html: web.pages.render("confirm_mail.html", ctx)?,
    };
    let to: lettre::message::Mailbox = p.subscriber.parse().map_err(|e| Error::Mail {
        recipient: p.subscriber.clone(),
        transient: false,
        message: format!("{e}"),
    })?;
    let id = mail::new_message_id(&web.cfg.mail);
    let message = mail::build_for(
        &web.cfg.mail,
        &Envelope { to: &to, message_id: &id, date: web.now() },
        &rendered,
        None,
    )?;
    web.mailer.send(&message, &p.subscriber).await?;
    tracing::info!(to = %mask_email(&p.subscriber), "confirmation mail sent");
    Ok(())
}

pub(super) fn frequency_name(f: Frequency) -> &'static str {
    match f {
        Frequency::Daily => "daily",
        Frequency::Weekly => "weekly",
    }
}

/// The request a confirmation token names, if it is still waiting.
fn pending_for(web: &Web, token: &str) -> std::result::Result<Pending, Box<Response>> {
    let Some(claims) = web.signer().verify(Purpose::Confirm, token) else {
        return Err(Box::new(web.invalid_link()));
    };
    match web.store.pending(&claims.subscriber, &claims.payload, web.now()) {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(Box::new(web.message(
            StatusCode::GONE,
            "This link has expired",
            "It was used already or is too old. Subscribe again to get a fresh link.",
        ))),
        Err(e) => Err(Box::new(web.failed(&e))),
    }
}

pub(super) async fn confirm_page(State(web): St, Path(token): Path<String>) -> Response {
    match pending_for(&web, &token) {
        Ok(p) => web.page(
            StatusCode::OK,
            "confirm.html",
            "Confirm your subscription",
            context! { email => p.subscriber, topics => p.topics, frequency => frequency_name(p.frequency) },
        ),
        Err(r) => *r,
    }
}

pub(super) async fn confirm(State(web): St, Path(token): Path<String>, headers: HeaderMap) -> Response {
    if !same_origin(&web, &headers) {
        return forbidden_origin(&web);
    }
    let p = match pending_for(&web, &token) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if let Err(e) = web.store.confirm(&p, web.now()) {
        return web.failed(&e);
    }
    tracing::info!(to = %mask_email(&p.subscriber), "subscription confirmed");
    web.page(
        StatusCode::OK,
        "message.html",
        "You are subscribed",
        context! {
            text => "Your first digest comes with the next run.",
            link_url => web.links.manage(&p.subscriber),
            link_text => "Change your settings",
        },
    )
}
