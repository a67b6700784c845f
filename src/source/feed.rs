//! Any RSS 2.0 or Atom feed (arXiv's rss.arxiv.org listings, journal tables of contents,
//! lab blogs), parsed with feed-rs. Items are keyed by the arXiv id they name, else their
//! DOI, else their canonical URL.

use super::http::{Fetched, HttpClient};
use super::{Window, ids, parse_error_xml, utf8};
use crate::config::FeedSettings;
use crate::error::{Error, Result};
use crate::model::Paper;
use crate::text::{clean, strip_tags};
use quick_xml::events::Event;
use quick_xml::reader::Reader;

#[derive(Debug)]
pub struct Feed {
    name: String,
    url: String,
}

impl Feed {
    pub fn new(settings: &FeedSettings) -> Self {
        Feed { name: settings.name.clone(), url: settings.url.clone() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The feed's items inside the window (undated items are kept). A 304 adds nothing:
    /// the items were stored when the feed last changed.
    pub async fn fetch(&self, client: &HttpClient, window: &Window) -> Result<Vec<Paper>> {
        match client.get(&self.url).await? {
            Fetched::Body(body) => {
                let mut papers = parse(&self.name, &self.url, &body)?;
                papers.retain(|p| p.published.is_none_or(|t| t >= window.since));
                Ok(papers)
            }
            Fetched::NotModified => {
                tracing::info!(url = self.url.as_str(), "feed unchanged since last run");
                Ok(Vec::new())
            }
        }
    }
}

/// The papers of one feed document, each carrying `source` as its source name.
///
/// arXiv replacement announcements (`Announce Type: replace`) are skipped: they announce
/// a new version of an old paper, which is not news.
pub fn parse(source: &str, url: &str, body: &[u8]) -> Result<Vec<Paper>> {
    check_xml(url, body)?;
    let feed = feed_rs::parser::parse(body).map_err(|e| Error::Parse {
        url: url.to_string(),
        position: None,
        message: format!("not an RSS or Atom feed: {e}"),
    })?;
    Ok(feed.entries.into_iter().filter_map(|entry| to_paper(source, url, &entry)).collect())
}

/// feed-rs is lenient with broken XML and reports no positions, so well-formedness is
/// checked first to name the line and column of the problem. Documents that are not
/// UTF-8 (feed-rs decodes other encodings itself) and JSON feeds skip the check.
fn check_xml(url: &str, body: &[u8]) -> Result<()> {
    let starts_with_markup = body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b == b'<');
    if !starts_with_markup || std::str::from_utf8(body).is_err() {
        return Ok(());
    }
    let text = utf8(url, body)?;
    let mut reader = Reader::from_str(text);
    let mut open: Vec<String> = Vec::new();
    let mut roots = 0;
    loop {
        match reader.read_event() {
            Err(e) => return Err(parse_error_xml(url, body, reader.error_position(), e.to_string())),
            Ok(Event::Start(e)) => {
                if open.is_empty() {
                    roots += 1;
                }
                open.push(e.name().as_ref().to_string());
            }
            Ok(Event::Empty(_)) if open.is_empty() => roots += 1,
            Ok(Event::End(_)) => {
                open.pop();
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
        }
    }
    if let Some(tag) = open.last() {
        return Err(parse_error_xml(
            url,
            body,
            text.len() as u64,
            format!("the document ends inside <{tag}>"),
        ));
    }
    if roots == 0 {
        return Err(parse_error_xml(url, body, 0, "no XML element found"));
    }
    Ok(())
}

fn to_paper(source: &str, feed_url: &str, entry: &feed_rs::model::Entry) -> Option<Paper> {
    let title = clean(&strip_tags(entry.title.as_ref().map_or("", |t| t.content.as_str())));
    let raw_summary = entry
        .summary
        .as_ref()
        .map(|t| t.content.clone())
        .or_else(|| entry.content.as_ref().and_then(|c| c.body.clone()))
        .unwrap_or_default();
    let summary_text = clean(&strip_tags(&raw_summary));
    let (announce, summary) = split_arxiv_announcement(&summary_text);
    if announce.is_some_and(|a| a.starts_with("replace")) {
        return None;
    }
    let link = entry
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or_else(|| entry.links.first())
        .map(|l| l.href.trim().to_string())
        .filter(|h| ids::canonical_url(h).is_some());
    let hrefs: Vec<&str> = entry.links.iter().map(|l| l.href.as_str()).collect();
    let places = hrefs.iter().copied().chain([entry.id.as_str(), raw_summary.as_str()]);

    let arxiv = places.clone().find_map(ids::find_arxiv);
    let id = if let Some(arxiv) = &arxiv {
        ids::arxiv_key(arxiv)
    } else if let Some(doi) = places.clone().find_map(|p| ids::normalize_doi(p).or_else(|| ids::find_doi(p)))
    {
        ids::doi_key(&doi)
    } else if let Some(canonical) = link.as_deref().or(Some(entry.id.as_str())).and_then(ids::canonical_url) {
        ids::url_key(&canonical)
    } else {
        tracing::warn!(url = feed_url, entry = entry.id.as_str(), "skipped a feed item without a link or id");
        return None;
    };
    if title.is_empty() {
        tracing::warn!(url = feed_url, id = id.as_str(), "skipped a feed item without a title");
        return None;
    }
    let categories = if arxiv.is_some() {
        entry.categories.iter().map(|c| clean(&c.term)).filter(|c| !c.is_empty()).collect()
    } else {
        Vec::new()
    };
    Some(Paper {
        id,
        title,
        summary: summary.to_string(),
        authors: entry
            .authors
            .iter()
            .flat_map(|p| split_authors(p.name.as_deref().unwrap_or_default()))
            .collect(),
        published: entry.published.or(entry.updated),
        categories,
        url: link,
        sources: vec![source.to_string()],
        ..Paper::default()
    })
}

/// arXiv's RSS descriptions read `arXiv:2411.16500v2 Announce Type: new Abstract: ...`:
/// the announce type, and the abstract alone.
fn split_arxiv_announcement(text: &str) -> (Option<&str>, &str) {
    if !text.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("arxiv:")) {
        return (None, text);
    }
    let Some(at) = text.find("Abstract:") else {
        return (None, text);
    };
    let head = &text[..at];
    let announce = head.find("Announce Type:").map(|i| head[i + "Announce Type:".len()..].trim());
    (announce, text[at + "Abstract:".len()..].trim())
}

/// `"Wei Zhang, Yuki Tanaka and Ann Lee"` (one dc:creator for all authors, as arXiv's
/// RSS has it) → three names; `"Smith, John"` stays one name.
fn split_authors(names: &str) -> Vec<String> {
    let names = clean(names);
    if names.is_empty() {
        return Vec::new();
    }
    let parts: Vec<String> = names
        .split(',')
        .flat_map(|p| p.split(" and "))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if parts.len() > 1 && parts.iter().all(|p| p.contains(' ')) { parts } else { vec![names] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arxiv_announcements_give_type_and_abstract() {
        let (t, a) =
            split_arxiv_announcement("arXiv:2411.16500v2 Announce Type: new Abstract: We study things.");
        assert_eq!((t, a), (Some("new"), "We study things."));
        assert_eq!(split_arxiv_announcement("Plain text."), (None, "Plain text."));
    }

    #[test]
    fn author_lists_are_split_only_when_they_are_lists() {
        assert_eq!(
            split_authors("Wei Zhang, Yuki Tanaka and Ann Lee"),
            ["Wei Zhang", "Yuki Tanaka", "Ann Lee"]
        );
        assert_eq!(split_authors("Smith, John"), ["Smith, John"]);
    }

    #[test]
    fn a_broken_feed_names_the_url_and_line() {
        let body = b"<rss version=\"2.0\"><channel>\n<item><title>x</title>\n</channel></rss>";
        let err = parse("blog", "http://h/feed.xml", body).unwrap_err().to_string();
        assert!(err.contains("http://h/feed.xml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }
}
