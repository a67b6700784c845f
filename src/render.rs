//! Rendering with minijinja. (stub: being written)

use crate::config::Subscriber;
use crate::error::Result;
use crate::model::Ranked;
use chrono::NaiveDate;
use std::path::Path;

/// Everything a digest template sees.
#[derive(Debug)]
pub struct DigestContext<'a> {
    pub subscriber: &'a Subscriber,
    pub edition: NaiveDate,
    pub papers: &'a [Ranked<'a>],
    pub unsubscribe_url: Option<&'a str>,
    pub unsubscribe_mailto: Option<&'a str>,
}

/// A rendered digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

#[derive(Debug)]
pub struct Renderer {}

impl Renderer {
    pub fn new(_templates_dir: Option<&Path>) -> Result<Self> {
        Ok(Renderer {})
    }
    pub fn render(&self, ctx: &DigestContext<'_>) -> Result<Rendered> {
        let text: Vec<String> = ctx.papers.iter().map(|r| r.paper.title.clone()).collect();
        Ok(Rendered {
            subject: format!("{} new papers", ctx.papers.len()),
            html: text.join("<br>"),
            text: text.join("\n"),
        })
    }
}
