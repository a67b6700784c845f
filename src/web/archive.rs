//! The sent editions: "view in browser", the reader's Atom feed, and the optional public
//! topic pages and feeds.

use super::token::Purpose;
use super::{FEED_EDITIONS, St, Web};
use crate::error::Result;
use crate::model::Subscriber;
use crate::model::{Frequency, Paper, PaperId, Ranked};
use crate::render::DigestContext;
use crate::store::Item;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::NaiveDate;
use minijinja::{Value, context};
use std::collections::HashMap;

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

pub(super) async fn edition(State(web): St, Path(token): Path<String>) -> Response {
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
    let ranked: Vec<Ranked<'_>> =
        sent.items.iter().filter_map(|i| papers.get(&i.id).map(|paper| i.ranked(paper))).collect();
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
        .map(|p| EntryPaper { title: crate::source::text::clean(&p.title), url: p.link() })
        .collect()
}

fn atom(web: &Web, ctx: Value) -> Response {
    match web.pages.render("feed.xml", ctx) {
        Ok(xml) => ([(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")], xml).into_response(),
        Err(e) => web.failed(&e),
    }
}

pub(super) async fn feed(State(web): St, Path(token): Path<String>) -> Response {
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

pub(super) async fn topic_page(State(web): St, Path(name): Path<String>) -> Response {
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

pub(super) async fn topic_feed(State(web): St, Path(name): Path<String>) -> Response {
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
