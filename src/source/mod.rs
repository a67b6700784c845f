//! The Source seam: every listing (Hugging Face, arXiv, RSS/Atom feeds) turns a fetch
//! window into papers. HTTP lives in each impl; parsing is a pure function over bytes.

pub mod arxiv;
pub mod feed;
pub mod http;
pub mod huggingface;
pub mod ids;

use crate::config::Config;
use crate::error::Result;
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

/// Fetches every source; one failure is reported and the others go on.
pub async fn fetch_all(sources: &[Source], client: &HttpClient, window: &Window) -> Vec<Report> {
    let mut reports = Vec::with_capacity(sources.len());
    for s in sources {
        reports.push(Report { source: s.name().to_string(), outcome: s.fetch(client, window).await });
    }
    reports
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
