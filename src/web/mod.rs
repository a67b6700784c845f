//! `paper-digest serve`: the reader's side over HTTP (axum). Readers subscribe with a
//! double opt-in, unsubscribe in one click (RFC 8058), manage their settings, vote on
//! papers and read their digests in the browser or as an Atom feed.
//!
//! Every per-reader URL carries a [`token`] signed with the `[web]` secret: nothing is
//! stored for it, and a forged, altered or re-purposed one gets a 4xx and changes nothing.
//! GETs never change anything (mail scanners follow every link); each change is a POST
//! from a one-button page, or RFC 8058's `List-Unsubscribe=One-Click` POST.

mod archive;
mod limit;
pub mod links;
mod manage;
mod pages;
pub mod roster;
mod subscribe;
pub mod token;
mod unsubscribe;
mod vote;

pub use links::Links;

use crate::config::Config;
use crate::error::{Error, Result, exit};
use crate::mail::Mailer;
use crate::model::Subscriber;
use crate::render::Renderer;
use crate::store::Store;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use limit::Limiter;
use minijinja::{Value, context};
use pages::Pages;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use token::Signer;
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
        .route("/", get(subscribe::page))
        .route("/subscribe", get(subscribe::page).post(subscribe::submit))
        .route("/style.css", get(stylesheet))
        .route("/healthz", get(|| async { "ok" }))
        .route("/c/{token}", get(subscribe::confirm_page).post(subscribe::confirm))
        .route("/u/{token}", get(unsubscribe::page).post(unsubscribe::submit))
        .route("/m/{token}", get(manage::page).post(manage::submit))
        .route("/more/{token}", get(vote::more_page).post(vote::more))
        .route("/fewer/{token}", get(vote::fewer_page).post(vote::fewer))
        .route("/a/{token}", get(archive::edition))
        .route("/f/{token}", get(archive::feed));
    if state.cfg.web.as_ref().is_some_and(|w| w.public_topics) {
        app = app
            .route("/topics/{name}", get(archive::topic_page))
            .route("/topics/{name}/feed", get(archive::topic_feed));
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

#[cfg(test)]
mod tests {
    use super::unsubscribe::is_one_click;
    use super::*;
    use axum::body::Bytes;
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
