//! "More like this" / "Fewer like this": a one-button page per link, the vote by POST.

use super::token::Purpose;
use super::{St, Web, forbidden_origin, same_origin};
use crate::model::PaperId;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;

fn paper_title(web: &Web, id: &str) -> String {
    web.store
        .papers(&[PaperId(id.to_string())])
        .ok()
        .and_then(|p| p.into_iter().next())
        .map_or_else(|| id.to_string(), |p| crate::source::text::clean(&p.title))
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

pub(super) async fn more_page(State(web): St, Path(token): Path<String>) -> Response {
    vote_view(&web, &token, true)
}

pub(super) async fn fewer_page(State(web): St, Path(token): Path<String>) -> Response {
    vote_view(&web, &token, false)
}

pub(super) async fn more(State(web): St, Path(token): Path<String>, headers: HeaderMap) -> Response {
    record_vote(&web, &token, true, &headers)
}

pub(super) async fn fewer(State(web): St, Path(token): Path<String>, headers: HeaderMap) -> Response {
    record_vote(&web, &token, false, &headers)
}
