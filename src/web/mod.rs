//! `paper-digest serve`: the reader's side over HTTP (axum). Readers subscribe with a
//! double opt-in, unsubscribe in one click (RFC 8058), manage their settings, vote on
//! papers and read their digests in the browser or as an Atom feed.
//!
//! Every per-reader URL carries a [`token`] signed with the `[web]` secret: nothing is
//! stored for it, and a forged, altered or re-purposed one gets a 4xx and changes nothing.
//! GETs never change anything (mail scanners follow every link); each change is a POST
//! from a one-button page, or RFC 8058's `List-Unsubscribe=One-Click` POST.

mod limit;
pub mod links;
mod pages;
pub mod roster;
pub mod token;

pub use links::Links;

use crate::config::{Config, Subscriber};
use crate::error::{Error, Result, exit};
use crate::logging::mask_email;
use crate::mail::{self, Envelope, Mailer};
use crate::model::{Frequency, Paper, PaperId, Ranked};
use crate::render::{DigestContext, Renderer};
use crate::store::{Item, Pending, Reader, ReaderOrigin, Store};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use limit::Limiter;
use minijinja::{Value, context};
use pages::Pages;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use token::{Purpose, Signer};
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

/// Largest request body accepted: a form with every topic ticked fits many times over.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest a request may take, reading the body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the subscribe form stays valid after it was served.
const FORM_VALID_SECS: i64 = 2 * 3600;
/// Subscribe requests per client address per window, and confirmation mails per address.
const PER_CLIENT: (u32, Duration) = (20, Duration::from_secs(600));
const PER_ADDRESS: (u32, Duration) = (3, Duration::from_secs(3600));
/// Editions in a reader's feed, and per public topic page.
const FEED_EDITIONS: usize = 30;

/// What every handler shares.
struct Web {
    cfg: Config,
    store: Arc<Store>,
    links: Links,
    pages: Pages,
    renderer: Renderer,
    mailer: Mailer,
    per_client: Limiter,
    per_address: Limiter,
    /// `--now` minus the wall clock at start: tests run the server in a pretended time.
    offset: chrono::TimeDelta,
}

impl Web {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    fn base(&self) -> &str {
        self.links.base()
    }

    fn signer(&self) -> &Signer {
        self.links.signer()
    }

    fn page(&self, status: StatusCode, name: &str, title: &str, ctx: Value) -> Response {
        let ctx = context! { base => self.base(), title => title, ..ctx };
        match self.pages.render(name, ctx) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!("{e}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error: the page could not be rendered")
                    .into_response()
            }
        }
    }

    fn message(&self, status: StatusCode, title: &str, text: &str) -> Response {
        self.page(status, "message.html", title, context! { text, alert => status.is_client_error() })
    }

    fn invalid_link(&self) -> Response {
        self.message(
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "The link may have been cut short or changed. Use the link from your most recent email.",
        )
    }

    fn failed(&self, e: &Error) -> Response {
        tracing::error!("{e}");
        self.message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "Nothing was changed. Please try again in a few minutes.",
        )
    }

    /// The reader with the settings the database holds for them, if they are one (of the
    /// config or the database). Looks up this one reader, not the whole list.
    fn subscriber(&self, key: &str) -> Result<Option<Subscriber>> {
        let reader = self.store.reader(key)?;
        Ok(match (self.cfg.subscriber(key), &reader) {
            (Some(sub), Some(r)) => Some(roster::with_settings(sub.clone(), r, &self.cfg)),
            (Some(sub), None) => Some(sub.clone()),
            (None, Some(r)) => roster::from_reader(r, &self.cfg),
            (None, None) => None,
        })
    }

    /// The topics readers may choose: the configured ones.
    fn topics(&self) -> Vec<String> {
        self.cfg.topics.keys().cloned().collect()
    }
}

/// Runs the server until `shutdown` is cancelled.
pub async fn serve(cfg: Config, now: DateTime<Utc>, shutdown: CancellationToken) -> Result<u8> {
    let Some(web) = cfg.web.clone() else {
        return Err(Error::config(
            &cfg.path,
            "web",
            "`serve` needs a [web] table with at least `base_url` and a secret (see docs/web.md)",
        ));
    };
    let store = Arc::new(Store::open(&cfg.digest.database)?);
    let state = Arc::new(Web {
        links: Links::new(&web),
        pages: Pages::new(cfg.digest.templates.as_deref())?,
        renderer: Renderer::new(cfg.digest.templates.as_deref())?,
        mailer: Mailer::new(&cfg.mail)?,
        per_client: Limiter::new(PER_CLIENT.0, PER_CLIENT.1),
        per_address: Limiter::new(PER_ADDRESS.0, PER_ADDRESS.1),
        offset: now - Utc::now(),
        store,
        cfg,
    });
    let listener = tokio::net::TcpListener::bind(web.listen)
        .await
        .map_err(|e| Error::io(format!("[web] listen = {}", web.listen), e))?;
    let bound = listener.local_addr().map_err(|e| Error::io(web.listen.to_string(), e))?;
    tracing::info!(%bound, base_url = %web.base_url, "serving the reader pages");
    // Said on stdout too, for scripts and tests that bind port 0.
    println!("listening on http://{bound}");
    let app = router(state);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|e| Error::io(bound.to_string(), e))?;
    Ok(exit::OK)
}

fn router(state: Arc<Web>) -> Router {
    let mut app = Router::new()
        .route("/", get(subscribe_page))
        .route("/subscribe", get(subscribe_page).post(subscribe))
        .route("/style.css", get(stylesheet))
        .route("/healthz", get(|| async { "ok" }))
        .route("/c/{token}", get(confirm_page).post(confirm))
        .route("/u/{token}", get(unsubscribe_page).post(unsubscribe))
        .route("/m/{token}", get(manage_page).post(manage))
        .route("/more/{token}", get(vote_page_more).post(vote_more))
        .route("/fewer/{token}", get(vote_page_fewer).post(vote_fewer))
        .route("/a/{token}", get(archive))
        .route("/f/{token}", get(feed));
    if state.cfg.web.as_ref().is_some_and(|w| w.public_topics) {
        app = app.route("/topics/{name}", get(topic_page)).route("/topics/{name}/feed", get(topic_feed));
    }
    app.fallback(not_found)
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        // Tokens travel in URLs: never hand them to another site in a Referer. (Not
        // `no-referrer`: under it browsers send `Origin: null` even to this site, which
        // the cross-site check below must refuse.)
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
}

type St = State<Arc<Web>>;

async fn not_found(State(web): St) -> Response {
    web.message(StatusCode::NOT_FOUND, "Page not found", "There is no page at this address.")
}

async fn stylesheet(State(web): St) -> Response {
    match web.pages.render("style.css", context! {}) {
        Ok(css) => (
            [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")],
            css,
        )
            .into_response(),
        Err(e) => web.failed(&e),
    }
}

/// The fields of a urlencoded form; a repeated name keeps every value.
fn form(body: &[u8]) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        out.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    out
}

fn field<'f>(form: &'f HashMap<String, Vec<String>>, name: &str) -> Option<&'f str> {
    form.get(name).and_then(|v| v.first()).map(String::as_str)
}

/// Cross-site form posts are refused: a browser names the page's origin in `Origin`
/// (every current one does on POST); when it does, it must be ours. A request without
/// `Origin` is not from a browser form on another site.
fn same_origin(web: &Web, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return true };
    let ours = url::Url::parse(web.base()).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    origin == ours
}

fn forbidden_origin(web: &Web) -> Response {
    web.message(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form was sent from another site. Open the page from your email and try again.",
    )
}

/// The client's address: the peer, or the last `X-Forwarded-For` hop when the peer is a
/// reverse proxy on this host.
fn client(peer: SocketAddr, headers: &HeaderMap) -> String {
    if peer.ip().is_loopback()
        && let Some(forwarded) = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok())
        && let Some(last) = forwarded.rsplit(',').next().map(str::trim).filter(|s| !s.is_empty())
    {
        return last.to_string();
    }
    peer.ip().to_string()
}

// ---------------------------------------------------------------------------------------
// Subscribe (double opt-in)

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

async fn subscribe_page(State(web): St) -> Response {
    if !subscribe_on(&web) {
        return subscribe_closed(&web);
    }
    subscribe_form(&web, StatusCode::OK, None, "", &[])
}

async fn subscribe(
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

fn frequency_name(f: Frequency) -> &'static str {
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

async fn confirm_page(State(web): St, Path(token): Path<String>) -> Response {
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

async fn confirm(State(web): St, Path(token): Path<String>, headers: HeaderMap) -> Response {
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

// ---------------------------------------------------------------------------------------
// Unsubscribe (RFC 8058)

async fn unsubscribe_page(State(web): St, Path(token): Path<String>) -> Response {
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
async fn is_one_click(headers: &HeaderMap, body: &Bytes) -> bool {
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

async fn unsubscribe(State(web): St, Path(token): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
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

// ---------------------------------------------------------------------------------------
// Manage

const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
];

fn weekday_code(w: chrono::Weekday) -> &'static str {
    WEEKDAYS[w.num_days_from_monday() as usize].0
}

fn manage_view(web: &Web, key: &str, saved: Option<&str>) -> Response {
    let (suppressed, reader, sub) =
        match (web.store.is_suppressed(key), web.store.reader(key), web.subscriber(key)) {
            (Ok(s), Ok(r), Ok(sub)) => (s, r, sub),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return web.failed(&e),
        };
    let configured = web.cfg.subscriber(key);
    let paused = reader.as_ref().is_some_and(|r| r.paused);
    // What the reader follows: their saved choice, else the config's entry.
    let (chosen, frequency, weekday) = match (&reader, sub.as_ref().or(configured)) {
        (Some(r), _) => (r.topics.clone(), r.frequency, r.weekday.clone().unwrap_or_else(|| "mon".into())),
        (None, Some(s)) => (s.topics.clone(), s.frequency, weekday_code(s.weekday).to_string()),
        (None, None) => (Vec::new(), Frequency::Daily, "mon".into()),
    };
    if reader.is_none() && configured.is_none() && !suppressed {
        return web.message(
            StatusCode::NOT_FOUND,
            "No subscription",
            "This address is not subscribed. Subscribe on the front page.",
        );
    }
    web.page(
        StatusCode::OK,
        "manage.html",
        "Your subscription",
        context! {
            email => key,
            suppressed,
            topics => web.topics(),
            chosen,
            frequency => frequency_name(frequency),
            weekday,
            weekdays => WEEKDAYS.to_vec(),
            paused,
            saved,
            unsubscribe_url => web.links.unsubscribe(key),
            feed_url => web.links.feed(key),
        },
    )
}

async fn manage_page(State(web): St, Path(token): Path<String>) -> Response {
    let Some(c) = web.signer().verify(Purpose::Manage, &token) else { return web.invalid_link() };
    manage_view(&web, &c.subscriber, None)
}

async fn manage(State(web): St, Path(token): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(c) = web.signer().verify(Purpose::Manage, &token) else { return web.invalid_link() };
    if !same_origin(&web, &headers) {
        return forbidden_origin(&web);
    }
    let f = form(&body);
    let key = c.subscriber;
    let now = web.now();
    let result = match field(&f, "action") {
        // The signed link proves the mailbox, so no second confirmation is needed.
        Some("resubscribe") => web.store.unsuppress(&key).map(|_| "You are subscribed again."),
        Some("save") => {
            let known = web.topics();
            let origin = match web.store.reader(&key) {
                Ok(Some(r)) => r.origin,
                Ok(None) if web.cfg.subscriber(&key).is_some() => ReaderOrigin::Override,
                Ok(None) => ReaderOrigin::Web,
                Err(e) => return web.failed(&e),
            };
            let weekday =
                field(&f, "weekday").filter(|w| WEEKDAYS.iter().any(|d| d.0 == *w)).unwrap_or("mon");
            let reader = Reader {
                subscriber: key.clone(),
                topics: f
                    .get("topics")
                    .into_iter()
                    .flatten()
                    .filter(|t| known.contains(t))
                    .cloned()
                    .collect(),
                frequency: if field(&f, "frequency") == Some("weekly") {
                    Frequency::Weekly
                } else {
                    Frequency::Daily
                },
                weekday: Some(weekday.to_string()),
                paused: field(&f, "paused") == Some("1"),
                origin,
                created_at: String::new(),
                updated_at: String::new(),
            };
            web.store.put_reader(&reader, now).map(|()| "Saved. The next digest follows these settings.")
        }
        _ => {
            return web.message(
                StatusCode::BAD_REQUEST,
                "Nothing was changed",
                "Use the buttons on the page.",
            );
        }
    };
    match result {
        Ok(saved) => manage_view(&web, &key, Some(saved)),
        Err(e) => web.failed(&e),
    }
}

// ---------------------------------------------------------------------------------------
// Votes

fn paper_title(web: &Web, id: &str) -> String {
    web.store
        .papers(&[PaperId(id.to_string())])
        .ok()
        .and_then(|p| p.into_iter().next())
        .map_or_else(|| id.to_string(), |p| crate::text::clean(&p.title))
}

fn vote_view(web: &Web, token: &str, more: bool) -> Response {
    let purpose = if more { Purpose::Like } else { Purpose::Dislike };
    let Some(c) = web.signer().verify(purpose, token) else { return web.invalid_link() };
    let title = if more { "More like this" } else { "Fewer like this" };
    web.page(
        StatusCode::OK,
        "vote.html",
        title,
        context! { more, paper_title => paper_title(web, &c.payload) },
    )
}

fn record_vote(web: &Web, token: &str, more: bool, headers: &HeaderMap) -> Response {
    let purpose = if more { Purpose::Like } else { Purpose::Dislike };
    let Some(c) = web.signer().verify(purpose, token) else { return web.invalid_link() };
    if !same_origin(web, headers) {
        return forbidden_origin(web);
    }
    if let Err(e) =
        web.store.vote(&c.subscriber, &PaperId(c.payload.clone()), if more { 1 } else { -1 }, web.now())
    {
        return web.failed(&e);
    }
    let text = format!(
        "Thanks. Your next digests will have {} papers like “{}”.",
        if more { "more" } else { "fewer" },
        paper_title(web, &c.payload)
    );
    web.page(
        StatusCode::OK,
        "message.html",
        "Vote recorded",
        context! { text, link_url => web.links.manage(&c.subscriber), link_text => "Your settings" },
    )
}

async fn vote_page_more(State(web): St, Path(token): Path<String>) -> Response {
    vote_view(&web, &token, true)
}

async fn vote_page_fewer(State(web): St, Path(token): Path<String>) -> Response {
    vote_view(&web, &token, false)
}

async fn vote_more(State(web): St, Path(token): Path<String>, headers: HeaderMap) -> Response {
    record_vote(&web, &token, true, &headers)
}

async fn vote_fewer(State(web): St, Path(token): Path<String>, headers: HeaderMap) -> Response {
    record_vote(&web, &token, false, &headers)
}

// ---------------------------------------------------------------------------------------
// Archive and feeds

/// The papers the items name, loaded from the store, in the items' order.
fn papers_of(web: &Web, items: &[Item]) -> Result<HashMap<PaperId, Paper>> {
    let ids: Vec<PaperId> = items.iter().map(|i| i.id.clone()).collect();
    Ok(web.store.papers(&ids)?.into_iter().map(|p| (p.id.clone(), p)).collect())
}

/// A subscriber to render an edition for, when the reader has left since.
fn former(web: &Web, key: &str) -> Option<Subscriber> {
    Some(Subscriber {
        email: key.parse().ok()?,
        key: key.to_string(),
        topics: Vec::new(),
        max_papers: web.cfg.digest.max_papers,
        min_score: web.cfg.digest.min_score,
        trending_weight: web.cfg.digest.trending_weight,
        frequency: Frequency::Daily,
        weekday: chrono::Weekday::Mon,
        timezone: web.cfg.digest.timezone,
    })
}

async fn archive(State(web): St, Path(token): Path<String>) -> Response {
    let Some(c) = web.signer().verify(Purpose::Archive, &token) else { return web.invalid_link() };
    let Ok(edition) = c.payload.parse::<NaiveDate>() else { return web.invalid_link() };
    let sent = match web.store.sent_edition(&c.subscriber, edition) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return web.message(
                StatusCode::NOT_FOUND,
                "Edition not found",
                "This digest was not sent, or was removed.",
            );
        }
        Err(e) => return web.failed(&e),
    };
    let sub = match web.subscriber(&c.subscriber) {
        Ok(s) => s.or_else(|| former(&web, &c.subscriber)),
        Err(e) => return web.failed(&e),
    };
    let Some(sub) = sub else { return web.invalid_link() };
    let papers = match papers_of(&web, &sent.items) {
        Ok(p) => p,
        Err(e) => return web.failed(&e),
    };
    let ranked: Vec<Ranked<'_>> = sent
        .items
        .iter()
        .filter_map(|i| {
            papers.get(&i.id).map(|paper| Ranked {
                paper,
                score: i.score,
                topic: i.topic.clone(),
                matched: i.matched.clone(),
            })
        })
        .collect();
    let ctx = DigestContext {
        subscriber: &sub,
        edition,
        papers: &ranked,
        unsubscribe_url: None,
        unsubscribe_mailto: None,
    };
    let links = web.links.for_digest(&sub.key, edition, sent.items.iter().map(|i| &i.id));
    match web.renderer.render_with_links(&ctx, Some(&links)) {
        Ok(r) => Html(r.html).into_response(),
        Err(e) => web.failed(&e),
    }
}

#[derive(serde::Serialize)]
struct EntryPaper {
    title: String,
    url: Option<String>,
}

fn entry_papers(papers: &HashMap<PaperId, Paper>, items: &[Item]) -> Vec<EntryPaper> {
    items
        .iter()
        .filter_map(|i| papers.get(&i.id))
        .map(|p| EntryPaper { title: crate::text::clean(&p.title), url: p.link() })
        .collect()
}

fn atom(web: &Web, ctx: Value) -> Response {
    match web.pages.render("feed.xml", ctx) {
        Ok(xml) => ([(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")], xml).into_response(),
        Err(e) => web.failed(&e),
    }
}

async fn feed(State(web): St, Path(token): Path<String>) -> Response {
    let Some(c) = web.signer().verify(Purpose::Feed, &token) else { return web.invalid_link() };
    let sent = match web.store.sent_editions(&c.subscriber, None, FEED_EDITIONS) {
        Ok(s) => s,
        Err(e) => return web.failed(&e),
    };
    let mut entries = Vec::new();
    for s in &sent {
        let papers = match papers_of(&web, &s.items) {
            Ok(p) => p,
            Err(e) => return web.failed(&e),
        };
        let url = web.links.archive(&c.subscriber, s.edition);
        entries.push(context! {
            title => format!("Paper Digest · {}", s.edition.format("%A, %-d %B %Y")),
            id => format!("{url}#{}", s.edition),
            updated => &s.sent_at,
            url,
            papers => entry_papers(&papers, &s.items),
        });
    }
    let self_url = web.links.feed(&c.subscriber);
    atom(
        &web,
        context! {
            title => "Your Paper Digest",
            id => &self_url,
            updated => sent.first().map_or_else(|| crate::store::ts(web.now()), |s| s.sent_at.clone()),
            self_url,
            entries,
        },
    )
}

/// A public topic's sent editions: (edition, sent at, papers).
type TopicEdition = (NaiveDate, String, Vec<EntryPaper>);

fn topic_editions(web: &Web, name: &str) -> std::result::Result<Vec<TopicEdition>, Box<Response>> {
    if !web.cfg.topics.contains_key(name) {
        return Err(Box::new(web.message(
            StatusCode::NOT_FOUND,
            "No such topic",
            "This list has no topic of that name.",
        )));
    }
    let sent = web.store.topic_editions(name, FEED_EDITIONS).map_err(|e| Box::new(web.failed(&e)))?;
    let mut out = Vec::new();
    for s in sent {
        let papers = papers_of(web, &s.items).map_err(|e| Box::new(web.failed(&e)))?;
        out.push((s.edition, s.sent_at, entry_papers(&papers, &s.items)));
    }
    Ok(out)
}

async fn topic_page(State(web): St, Path(name): Path<String>) -> Response {
    let editions = match topic_editions(&web, &name) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let editions: Vec<Value> = editions
        .into_iter()
        .map(|(edition, _, papers)| context! { edition => edition.to_string(), papers })
        .collect();
    let feed_url = format!("{}/topics/{}/feed", web.base(), urlencode(&name));
    web.page(StatusCode::OK, "topic.html", &format!("Papers on {name}"), context! { editions, feed_url })
}

async fn topic_feed(State(web): St, Path(name): Path<String>) -> Response {
    let editions = match topic_editions(&web, &name) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let page = format!("{}/topics/{}", web.base(), urlencode(&name));
    let updated = editions.first().map_or_else(|| crate::store::ts(web.now()), |e| e.1.clone());
    let entries: Vec<Value> = editions
        .into_iter()
        .map(|(edition, sent_at, papers)| {
            context! {
                title => format!("{name} · {}", edition.format("%A, %-d %B %Y")),
                id => format!("{page}#{edition}"),
                updated => sent_at,
                url => &page,
                papers,
            }
        })
        .collect();
    atom(
        &web,
        context! { title => format!("Paper Digest: {name}"), id => &page, updated, self_url => format!("{page}/feed"), entries },
    )
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        h
    }

    #[tokio::test]
    async fn one_click_is_recognized_urlencoded_and_as_multipart_form_data() {
        let form = headers("application/x-www-form-urlencoded");
        assert!(is_one_click(&form, &Bytes::from_static(b"List-Unsubscribe=One-Click")).await);
        assert!(!is_one_click(&form, &Bytes::from_static(b"List-Unsubscribe=Two-Clicks")).await);
        assert!(!is_one_click(&form, &Bytes::from_static(b"confirm=unsubscribe")).await);
        let multipart = headers("multipart/form-data; boundary=XyZ");
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
        assert!(is_one_click(&multipart, &Bytes::from(body)).await);
        assert!(!is_one_click(&multipart, &Bytes::from(body.replace("One-Click", "No"))).await);
        assert!(!is_one_click(&multipart, &Bytes::from_static(b"garbage")).await);
    }

    #[test]
    fn the_client_is_the_peer_unless_a_local_proxy_names_it() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1, 203.0.113.7"));
        assert_eq!(client("127.0.0.1:9".parse().unwrap(), &h), "203.0.113.7");
        assert_eq!(
            client("198.51.100.2:9".parse().unwrap(), &h),
            "198.51.100.2",
            "a remote peer cannot choose"
        );
        assert_eq!(client("127.0.0.1:9".parse().unwrap(), &HeaderMap::new()), "127.0.0.1");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_body_and_content_type_is_judged_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..512), ct in "[ -~]{0,80}") {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let h = HeaderValue::from_str(&ct).map(|v| { let mut m = HeaderMap::new(); m.insert(header::CONTENT_TYPE, v); m }).unwrap_or_default();
            let _ = rt.block_on(is_one_click(&h, &Bytes::from(body)));
        }
    }
}
