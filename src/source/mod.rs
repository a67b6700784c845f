//! The Source seam: every listing (Hugging Face, arXiv, RSS/Atom feeds) turns a fetch
//! window into papers. HTTP lives in each impl; parsing is a pure function over bytes.

pub mod arxiv;
pub mod feed;
pub mod http;
pub mod huggingface;
pub mod ids;
pub mod text;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::Paper;
use chrono::{DateTime, NaiveDate, Utc};
use http::HttpClient;

/// What a fetch covers: the listing days (oldest first, ending with today) and the instant
/// before which submissions are too old.
#[derive(Debug, Clone)]
pub struct Window {
    pub days: Vec<NaiveDate>,
    pub since: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// One source's result for a run.
#[derive(Debug)]
pub struct Report {
    pub source: String,
    pub outcome: Result<Vec<Paper>>,
}

/// A configured source.
#[derive(Debug)]
pub enum Source {
    HuggingFace(huggingface::HuggingFace),
    Arxiv(arxiv::Arxiv),
    Feed(feed::Feed),
}

impl Source {
    pub fn name(&self) -> &str {
        match self {
            Source::HuggingFace(_) => "huggingface",
            Source::Arxiv(_) => "arxiv",
            Source::Feed(f) => f.name(),
        }
    }

    pub async fn fetch(&self, client: &HttpClient, window: &Window) -> Result<Vec<Paper>> {
        match self {
            Source::HuggingFace(s) => s.fetch(client, window).await,
            Source::Arxiv(s) => s.fetch(client, window).await,
            Source::Feed(s) => s.fetch(client, window).await,
        }
    }
}

/// The enabled sources of a config, in a stable order.
pub fn from_config(cfg: &Config) -> Vec<Source> {
    let mut out = Vec::new();
    if let Some(hf) = &cfg.sources.huggingface {
        out.push(Source::HuggingFace(huggingface::HuggingFace::new(hf)));
    }
    if let Some(ax) = &cfg.sources.arxiv {
        out.push(Source::Arxiv(arxiv::Arxiv::new(ax)));
    }
    for f in &cfg.sources.feeds {
        out.push(Source::Feed(feed::Feed::new(f)));
    }
    out
}

/// Fetches every source, concurrently across hosts (the client keeps one request at a
/// time per host); one failure is reported and the others go on. Reports keep the order
/// of `sources`.
pub async fn fetch_all(sources: &[Source], client: &HttpClient, window: &Window) -> Vec<Report> {
    let fetches = sources.iter().map(|s| async move {
        let outcome = s.fetch(client, window).await;
        match &outcome {
            Ok(papers) => tracing::info!(source = s.name(), papers = papers.len(), "fetched"),
            Err(e) => tracing::warn!(source = s.name(), "source failed: {e}"),
        }
        Report { source: s.name().to_string(), outcome }
    });
    futures_util::future::join_all(fetches).await
}

/// One paper per id, whatever the number of sources that reported it.
pub fn merge_all(papers: Vec<Paper>) -> Vec<Paper> {
    let mut by_id: std::collections::BTreeMap<crate::model::PaperId, Paper> =
        std::collections::BTreeMap::new();
    for p in papers {
        match by_id.get_mut(&p.id) {
            Some(existing) => existing.merge(p),
            None => {
                by_id.insert(p.id.clone(), p);
            }
        }
    }
    by_id.into_values().collect()
}

/// A JSON syntax error as an [`Error::Parse`] naming the URL, line and column.
pub(crate) fn parse_error_json(url: &str, e: &serde_json::Error) -> Error {
    Error::Parse {
        url: url.to_string(),
        position: Some(format!("line {}, column {}", e.line(), e.column())),
        message: e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
    }
}

/// An XML problem at byte `offset` of `text` as an [`Error::Parse`] naming the URL, line,
/// column and byte offset.
pub(crate) fn parse_error_xml(url: &str, text: &[u8], offset: u64, message: impl Into<String>) -> Error {
    let offset = usize::try_from(offset).unwrap_or(usize::MAX).min(text.len());
    let before = &text[..offset];
    let line_start = before.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let line = before.split(|b| *b == b'\n').count();
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    Error::Parse {
        url: url.to_string(),
        position: Some(format!("line {line}, column {column} (byte {offset})")),
        message: message.into(),
    }
}

/// `body` as UTF-8, or a parse error at the first invalid byte.
pub(crate) fn utf8<'a>(url: &str, body: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(body)
        .map_err(|e| parse_error_xml(url, body, e.valid_up_to() as u64, "the document is not valid UTF-8"))
}
