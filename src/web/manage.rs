//! The manage page: topics, frequency and weekday, pause, unsubscribe, subscribe again.

use super::subscribe::frequency_name;
use super::token::Purpose;
use super::{St, Web, field, forbidden_origin, form, same_origin};
use crate::model::Frequency;
use crate::store::{Reader, ReaderOrigin};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;

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

pub(super) async fn page(State(web): St, Path(token): Path<String>) -> Response {
    let Some(c) = web.signer().verify(Purpose::Manage, &token) else { return web.invalid_link() };
    manage_view(&web, &c.subscriber, None)
}

pub(super) async fn submit(
    State(web): St,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
