//! Hugging Face Daily Papers: `GET {base_url}/api/daily_papers?date=YYYY-MM-DD&limit=50&p=N`
//! for each day of the window, page by page. The trending signal (upvotes, comments)
//! comes from here.

use super::http::{Fetched, HttpClient};
use super::text::{self, clean};
use super::{Window, ids, parse_error_json};
use crate::config::HuggingFaceSettings;
use crate::error::{Error, Result};
use crate::model::Paper;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

/// The source name papers from here carry.
pub const NAME: &str = "huggingface";

#[derive(Debug)]
pub struct HuggingFace {
    base_url: String,
}

impl HuggingFace {
    pub fn new(settings: &HuggingFaceSettings) -> Self {
        HuggingFace { base_url: settings.base_url.trim_end_matches('/').to_string() }
    }

    pub fn name(&self) -> &'static str {
        NAME
    }

    /// The listing URL of one page of one day.
    pub fn day_url(&self, day: NaiveDate, page: usize) -> String {
        format!(
            "{}/api/daily_papers?date={}&limit={PAGE_SIZE}&p={page}",
            self.base_url,
            day.format("%Y-%m-%d")
        )
    }

    /// Every listed paper of every day in the window. A day is read page by page until a
    /// page is shorter than [`PAGE_SIZE`], empty, or brings no paper not seen on earlier
    /// pages (a server that ignores `p`), up to [`MAX_PAGES`]. A first page answered 304
    /// adds nothing: the day's papers were stored when it was last fetched.
    pub async fn fetch(&self, client: &HttpClient, window: &Window) -> Result<Vec<Paper>> {
        let mut papers = Vec::new();
        for day in &window.days {
            let mut seen = std::collections::HashSet::new();
            for page in 0..MAX_PAGES {
                let url = self.day_url(*day, page);
                // Later pages shift as papers are added to the day: always fetched whole.
                let body = if page == 0 {
                    match client.get(&url).await? {
                        Fetched::Body(body) => body,
                        Fetched::NotModified => {
                            tracing::info!(url, "Hugging Face listing unchanged since last run");
                            break;
                        }
                    }
                } else {
                    client.get_unconditional(&url).await?
                };
                let listing = parse_listing(&url, &body)?;
                let new_ids = listing.papers.iter().filter(|p| seen.insert(p.id.clone())).count();
                let more = listing.items >= PAGE_SIZE && new_ids > 0;
                // A paper listed twice stays twice here: the merge keeps one report whole.
                papers.extend(listing.papers);
                if !more {
                    break;
                }
                if page + 1 == MAX_PAGES {
                    tracing::warn!(
                        url,
                        pages = MAX_PAGES,
                        "Hugging Face listing has more pages than read; the rest is left out"
                    );
                }
            }
        }
        Ok(papers)
    }
}

/// Papers asked for per page. The API pages with `limit` and `p`; a page shorter than
/// this is the day's last.
pub const PAGE_SIZE: usize = 50;

/// Pages read per day at most: 1,000 papers, far above the busiest day so far.
pub const MAX_PAGES: usize = 20;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Item {
    paper: Option<RawPaper>,
    title: Option<String>,
    #[serde(rename = "publishedAt")]
    published_at: Option<String>,
    #[serde(rename = "numComments")]
    num_comments: Option<f64>,
    #[serde(rename = "withdrawnAt")]
    withdrawn_at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPaper {
    id: Option<String>,
    title: Option<String>,
    summary: Option<String>,
    authors: Option<Vec<Option<RawAuthor>>>,
    #[serde(rename = "publishedAt")]
    published_at: Option<String>,
    upvotes: Option<f64>,
    ai_summary: Option<String>,
    ai_keywords: Option<Vec<Option<String>>>,
    #[serde(rename = "githubRepo")]
    github_repo: Option<String>,
    #[serde(rename = "projectPage")]
    project_page: Option<String>,
    #[serde(rename = "withdrawnAt")]
    withdrawn_at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAuthor {
    name: Option<String>,
}

/// One page of a Daily Papers answer: its papers and how many items it listed.
struct Listing {
    items: usize,
    papers: Vec<Paper>,
}

/// The papers of one Daily Papers answer. Malformed JSON is an error naming `url`, line
/// and column; a well-formed item of an unexpected shape is skipped with a warning so one
/// odd entry does not hide the day. Withdrawn papers (`withdrawnAt` set) are left out.
pub fn parse(url: &str, body: &[u8]) -> Result<Vec<Paper>> {
    parse_listing(url, body).map(|l| l.papers)
}

fn parse_listing(url: &str, body: &[u8]) -> Result<Listing> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| parse_error_json(url, &e))?;
    let serde_json::Value::Array(items) = value else {
        return Err(Error::Parse {
            url: url.to_string(),
            position: None,
            message: "expected a JSON array of daily papers".into(),
        });
    };
    let count = items.len();
    let mut papers = Vec::with_capacity(count);
    for (index, item) in items.into_iter().enumerate() {
        match serde_json::from_value::<Item>(item) {
            Ok(item) if withdrawn(&item) => {
                tracing::info!(url, index, "left out a withdrawn paper");
            }
            Ok(item) => {
                if let Some(paper) = to_paper(item) {
                    papers.push(paper);
                } else {
                    tracing::warn!(url, index, "skipped a daily paper without id or title");
                }
            }
            Err(e) => tracing::warn!(url, index, "skipped a daily paper of unexpected shape: {e}"),
        }
    }
    Ok(Listing { items: count, papers })
}

fn withdrawn(item: &Item) -> bool {
    let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
    set(&item.withdrawn_at) || item.paper.as_ref().is_some_and(|p| set(&p.withdrawn_at))
}

fn to_paper(item: Item) -> Option<Paper> {
    let raw = item.paper?;
    let raw_id = raw.id.as_deref().map(str::trim).filter(|s| !s.is_empty())?;
    let title = text::title(raw.title.as_deref().or(item.title.as_deref()).unwrap_or_default());
    if title.is_empty() {
        return None;
    }
    let (id, page) = if let Some(arxiv) = ids::normalize_arxiv(raw_id) {
        (ids::arxiv_key(&arxiv), format!("https://huggingface.co/papers/{arxiv}"))
    } else {
        let page = ids::canonical_url(&format!("https://huggingface.co/papers/{raw_id}"))?;
        (ids::url_key(&page), page)
    };
    let published = raw.published_at.as_deref().or(item.published_at.as_deref()).and_then(timestamp);
    Some(Paper {
        id,
        title,
        summary: text::abstract_text(raw.summary.as_deref().unwrap_or_default()),
        authors: raw
            .authors
            .unwrap_or_default()
            .into_iter()
            .filter_map(|a| a.and_then(|a| a.name).map(|n| clean(&n)).filter(|n| !n.is_empty()))
            .collect(),
        published,
        upvotes: count(raw.upvotes),
        comments: count(item.num_comments),
        ai_summary: raw.ai_summary.map(|s| text::abstract_text(&s)).filter(|s| !s.is_empty()),
        keywords: raw
            .ai_keywords
            .unwrap_or_default()
            .into_iter()
            .filter_map(|k| k.map(|k| clean(&k)).filter(|k| !k.is_empty()))
            .collect(),
        categories: Vec::new(),
        url: Some(page),
        code_url: raw.github_repo.and_then(|u| web_link(&u)),
        project_url: raw.project_page.and_then(|u| web_link(&u)),
        sources: vec![NAME.to_string()],
    })
}

/// Counts arrive as JSON numbers that may be negative, fractional or huge.
fn count(n: Option<f64>) -> u32 {
    n.filter(|n| n.is_finite() && *n > 0.0).map_or(0, |n| n.min(f64::from(u32::MAX)) as u32)
}

fn timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

/// Only http(s) links reach a mail; anything else (`javascript:`, garbage) is dropped.
fn web_link(s: &str) -> Option<String> {
    let s = s.trim();
    let url = url::Url::parse(s).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_null_fields_give_defaults() {
        let body = br#"[{"paper": {"id": "2411.16500v2", "title": " A\n title ", "authors": [null, {"name": null}, {"name": "Ann"}],
            "upvotes": null, "githubRepo": "javascript:alert(1)"}, "numComments": 3},
            {"paper": null}, {"paper": {"id": "x"}}, 7]"#;
        let papers = parse("http://h/api", body).unwrap();
        assert_eq!(papers.len(), 1);
        let p = &papers[0];
        assert_eq!(p.id.as_str(), "2411.16500");
        assert_eq!(p.title, "A title");
        assert_eq!(p.authors, ["Ann"]);
        assert_eq!((p.upvotes, p.comments), (0, 3));
        assert_eq!(p.code_url, None);
        assert_eq!(p.url.as_deref(), Some("https://huggingface.co/papers/2411.16500"));
        assert_eq!(p.sources, ["huggingface"]);
    }

    #[test]
    fn malformed_json_names_the_url_line_and_column() {
        let err = parse("http://h/api?date=2024-11-25", b"[\n {\"paper\": }").unwrap_err().to_string();
        assert!(err.contains("http://h/api?date=2024-11-25"), "{err}");
        assert!(err.contains("line 2, column 12"), "{err}");
    }

    #[test]
    fn withdrawn_papers_are_left_out() {
        let body = br#"[{"paper": {"id": "2411.16500", "title": "Kept", "withdrawnAt": null}},
            {"paper": {"id": "2411.16501", "title": "Gone", "withdrawnAt": "2026-04-20T08:00:00.000Z"}}]"#;
        let papers = parse("http://h/api", body).unwrap();
        let ids: Vec<&str> = papers.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["2411.16500"]);
    }

    #[test]
    fn an_object_instead_of_a_list_is_a_parse_error() {
        let err = parse("http://h/api", br#"{"error": "Invalid date"}"#).unwrap_err();
        assert!(matches!(err, Error::Parse { .. }), "{err}");
    }
}
