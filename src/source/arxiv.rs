//! The arXiv API (`/api/query`, Atom): newest submissions in the configured categories,
//! page by page, politely spaced, until the window or `max_results` is reached; and
//! papers by id (`id_list=`) for liked papers the store does not hold yet.

use super::http::HttpClient;
use super::text::{self, clean};
use super::{Window, ids, parse_error_xml, utf8};
use crate::config::ArxivSettings;
use crate::error::{Error, Result};
use crate::model::Paper;
use chrono::{DateTime, Utc};
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use std::collections::HashSet;
use std::time::Duration;
use url::Url;

/// The source name papers from here carry.
pub const NAME: &str = "arxiv";

/// arXiv answers at most this many ids per `id_list` request without complaint, and
/// long lists make long URLs.
const IDS_PER_REQUEST: usize = 100;

#[derive(Debug)]
pub struct Arxiv {
    base_url: String,
    search_query: String,
    max_results: usize,
    page_size: usize,
    delay: Duration,
}

/// One page of API results.
#[derive(Debug, Default)]
pub struct Page {
    /// `opensearch:totalResults`: how many results the query has in all.
    pub total: Option<usize>,
    pub papers: Vec<Paper>,
}

impl Arxiv {
    pub fn new(settings: &ArxivSettings) -> Self {
        Arxiv {
            base_url: settings.base_url.trim_end_matches('/').to_string(),
            search_query: search_query(&settings.categories, settings.query.as_deref()),
            max_results: settings.max_results,
            page_size: settings.page_size.max(1),
            delay: settings.delay,
        }
    }

    pub fn name(&self) -> &'static str {
        NAME
    }

    /// The URL of the page of results starting at `start`.
    pub fn page_url(&self, start: usize, max_results: usize) -> Result<String> {
        let mut url = api_url(&self.base_url)?;
        url.query_pairs_mut()
            .append_pair("search_query", &self.search_query)
            .append_pair("sortBy", "submittedDate")
            .append_pair("sortOrder", "descending")
            .append_pair("start", &start.to_string())
            .append_pair("max_results", &max_results.to_string());
        Ok(url.into())
    }

    /// The newest submissions, newest first, down to `window.since` or `max_results`.
    ///
    /// Pages are fetched unconditionally: a search page shifts as papers arrive, so a 304
    /// on one page says nothing about the next.
    pub async fn fetch(&self, client: &HttpClient, window: &Window) -> Result<Vec<Paper>> {
        client.set_min_gap(&self.base_url, self.delay);
        let anomaly_retries = client.settings().max_attempts.max(1);
        let mut papers = Vec::new();
        let mut seen = HashSet::new();
        let mut start = 0;
        let mut total: Option<usize> = None;
        while papers.len() < self.max_results {
            let url = self.page_url(start, self.page_size.min(self.max_results - papers.len()))?;
            let mut page = parse_page(&url, &client.get_unconditional(&url).await?)?;
            // Under load arXiv sometimes answers a page past the first with zero results
            // (and totalResults 0) although earlier pages promised more: ask again.
            let promised_more = total.is_some_and(|t| start < t);
            let mut retries = 0;
            while page.papers.is_empty() && promised_more && retries < anomaly_retries {
                retries += 1;
                tracing::warn!(
                    url,
                    retries,
                    "arXiv answered an empty page after earlier results; asking again"
                );
                page = parse_page(&url, &client.get_unconditional(&url).await?)?;
            }
            if page.papers.is_empty() {
                if promised_more {
                    tracing::warn!(
                        url,
                        kept = papers.len(),
                        "arXiv still answers an empty page; keeping the papers fetched so far"
                    );
                }
                break;
            }
            if total.is_none() {
                total = page.total;
            }
            start += page.papers.len();
            let mut past_window = false;
            for paper in page.papers {
                // Results come newest first, so the first one older than the window
                // means every later page is older too.
                if paper.published.is_some_and(|t| t < window.since) {
                    past_window = true;
                } else if papers.len() < self.max_results && seen.insert(paper.id.clone()) {
                    papers.push(paper);
                }
            }
            if past_window || total.is_some_and(|t| start >= t) {
                break;
            }
        }
        Ok(papers)
    }
}

/// Papers by arXiv id (any spelling `normalize_arxiv` accepts), via `id_list=`. Ids that
/// are not arXiv ids are skipped with a warning.
pub async fn fetch_by_ids(
    client: &HttpClient,
    settings: &ArxivSettings,
    ids: &[String],
) -> Result<Vec<Paper>> {
    let base = settings.base_url.trim_end_matches('/');
    client.set_min_gap(base, settings.delay);
    let mut wanted: Vec<String> = Vec::new();
    for raw in ids {
        match ids::normalize_arxiv(raw) {
            Some(id) if !wanted.contains(&id) => wanted.push(id),
            Some(_) => {}
            None => tracing::warn!(id = raw.as_str(), "not an arXiv id; skipped"),
        }
    }
    let mut papers = Vec::new();
    for chunk in wanted.chunks(IDS_PER_REQUEST) {
        let mut url = api_url(base)?;
        url.query_pairs_mut()
            .append_pair("id_list", &chunk.join(","))
            .append_pair("start", "0")
            .append_pair("max_results", &chunk.len().to_string());
        let url = url.to_string();
        papers.extend(parse_page(&url, &client.get_unconditional(&url).await?)?.papers);
    }
    Ok(papers)
}

/// `cat:cs.CV OR cat:cs.CL`, and `(...) AND (query)` when there is a query.
pub fn search_query(categories: &[String], query: Option<&str>) -> String {
    let cats = categories.iter().map(|c| format!("cat:{}", c.trim())).collect::<Vec<_>>().join(" OR ");
    match query.map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) if !cats.is_empty() => format!("({cats}) AND ({q})"),
        Some(q) => q.to_string(),
        None => cats,
    }
}

fn api_url(base: &str) -> Result<Url> {
    Url::parse(&format!("{base}/api/query")).map_err(|e| Error::Fetch {
        url: base.to_string(),
        status: None,
        transient: false,
        message: format!("not a valid base URL (sources.arxiv.base_url): {e}"),
    })
}

/// What an `<entry>` said, before it becomes a [`Paper`].
#[derive(Debug, Default)]
struct Entry {
    id: String,
    title: String,
    summary: String,
    authors: Vec<String>,
    published: Option<DateTime<Utc>>,
    primary: Option<String>,
    categories: Vec<String>,
    alternate: Option<String>,
}

/// One page of the arXiv Atom API. Malformed XML is an error naming `url` and the
/// position; an error entry (arXiv's way to refuse a query) is an error carrying its text.
pub fn parse_page(url: &str, body: &[u8]) -> Result<Page> {
    let text = utf8(url, body)?;
    let mut reader = Reader::from_str(text);
    let mut page = Page::default();
    let mut path: Vec<String> = Vec::new();
    let mut buffer = String::new();
    let mut entry: Option<Entry> = None;
    let mut saw_feed = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| parse_error_xml(url, body, reader.error_position(), e.to_string()))?;
        match event {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_string();
                if path.is_empty() {
                    if name != "feed" {
                        return Err(parse_error_xml(
                            url,
                            body,
                            reader.buffer_position(),
                            format!("expected an Atom <feed>, found <{name}>"),
                        ));
                    }
                    saw_feed = true;
                }
                if name == "entry" {
                    entry = Some(Entry::default());
                }
                if let Some(entry) = entry.as_mut() {
                    entry_attributes(entry, &name, &e);
                }
                path.push(name);
                buffer.clear();
            }
            Event::Empty(e) => {
                let name = e.local_name().as_ref().to_string();
                if let Some(entry) = entry.as_mut() {
                    entry_attributes(entry, &name, &e);
                }
            }
            Event::Text(t) => buffer.push_str(&t.xml10_content()),
            Event::CData(t) => buffer.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    buffer.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                    buffer.push_str(s);
                }
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let parent = path.last().map_or("", String::as_str);
                let value = std::mem::take(&mut buffer);
                match (parent, name.as_str(), entry.as_mut()) {
                    ("feed", "totalResults", _) => page.total = value.trim().parse().ok(),
                    ("feed", "entry", Some(_)) => {
                        if let Some(done) = entry.take()
                            && let Some(paper) = to_paper(url, done)?
                        {
                            page.papers.push(paper);
                        }
                    }
                    ("entry", "id", Some(e)) => e.id = value.trim().to_string(),
                    ("entry", "title", Some(e)) => e.title = text::title(&value),
                    ("entry", "summary", Some(e)) => e.summary = text::abstract_text(&value),
                    ("entry", "published", Some(e)) => e.published = timestamp(&value),
                    ("author", "name", Some(e)) => {
                        let name = clean(&value);
                        if !name.is_empty() {
                            e.authors.push(name);
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if let Some(open) = path.last() {
        return Err(parse_error_xml(
            url,
            body,
            text.len() as u64,
            format!("the document ends inside <{open}>"),
        ));
    }
    if !saw_feed {
        return Err(parse_error_xml(url, body, 0, "expected an Atom <feed>, found no element"));
    }
    Ok(page)
}

fn entry_attributes(entry: &mut Entry, name: &str, e: &BytesStart<'_>) {
    let attr = |key: &str| -> Option<String> {
        e.try_get_attribute(key)
            .ok()
            .flatten()
            .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok())
            .map(|v| v.trim().to_string())
    };
    match name {
        "primary_category" => entry.primary = attr("term").filter(|t| !t.is_empty()),
        "category" => {
            if let Some(term) = attr("term").filter(|t| !t.is_empty() && !entry.categories.contains(t)) {
                entry.categories.push(term);
            }
        }
        "link" if attr("rel").as_deref().is_none_or(|r| r == "alternate") => entry.alternate = attr("href"),
        _ => {}
    }
}

fn to_paper(url: &str, e: Entry) -> Result<Option<Paper>> {
    if e.id.contains("arxiv.org/api/errors") {
        return Err(Error::Fetch {
            url: url.to_string(),
            status: None,
            transient: false,
            message: format!(
                "the arXiv API refused the query: {}",
                if e.summary.is_empty() { &e.title } else { &e.summary }
            ),
        });
    }
    let Some(id) =
        ids::normalize_arxiv(&e.id).or_else(|| e.alternate.as_deref().and_then(ids::normalize_arxiv))
    else {
        tracing::warn!(url, entry = e.id.as_str(), "skipped an entry without an arXiv id");
        return Ok(None);
    };
    if e.title.is_empty() {
        tracing::warn!(url, id = id.as_str(), "skipped an entry without a title");
        return Ok(None);
    }
    let mut categories: Vec<String> = e.primary.into_iter().collect();
    for c in e.categories {
        if !categories.contains(&c) {
            categories.push(c);
        }
    }
    Ok(Some(Paper {
        id: ids::arxiv_key(&id),
        title: e.title,
        summary: e.summary,
        authors: e.authors,
        published: e.published,
        categories,
        url: Some(format!("https://arxiv.org/abs/{id}")),
        sources: vec![NAME.to_string()],
        ..Paper::default()
    }))
}

fn timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">2</opensearch:totalResults>
  <entry>
    <id>http://arxiv.org/abs/2411.16500v2</id>
    <published>2024-11-24T18:59:59Z</published>
    <title>Gaussian
      Splatting &amp; Friends</title>
    <summary>  An abstract &lt;b&gt; with &#x3b1;.
</summary>
    <author><name>Wei Zhang</name></author>
    <author><name>Yuki Tanaka</name><arxiv:affiliation xmlns:arxiv="http://arxiv.org/schemas/atom">U</arxiv:affiliation></author>
    <link href="http://arxiv.org/abs/2411.16500v2" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/2411.16500v2" rel="related" type="application/pdf"/>
    <arxiv:primary_category xmlns:arxiv="http://arxiv.org/schemas/atom" term="cs.CV" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.CV" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
</feed>"#;

    #[test]
    fn an_api_page_becomes_papers_with_categories() {
        let page = parse_page("http://x/api/query", PAGE.as_bytes()).unwrap();
        assert_eq!(page.total, Some(2));
        let p = &page.papers[0];
        assert_eq!(p.id.as_str(), "2411.16500");
        assert_eq!(p.title, "Gaussian Splatting & Friends");
        assert_eq!(p.summary, "An abstract <b> with \u{3b1}.");
        assert_eq!(p.authors, ["Wei Zhang", "Yuki Tanaka"]);
        assert_eq!(p.categories, ["cs.CV", "cs.LG"]);
        assert_eq!(p.url.as_deref(), Some("https://arxiv.org/abs/2411.16500"));
        assert_eq!(p.published.map(|t| t.to_rfc3339()).as_deref(), Some("2024-11-24T18:59:59+00:00"));
    }

    #[test]
    fn the_search_query_joins_categories_and_the_query() {
        let cats = vec!["cs.CV".to_string(), "cs.CL".to_string()];
        assert_eq!(search_query(&cats, None), "cat:cs.CV OR cat:cs.CL");
        assert_eq!(search_query(&cats, Some("ti:splatting")), "(cat:cs.CV OR cat:cs.CL) AND (ti:splatting)");
        assert_eq!(search_query(&[], Some("au:hinton")), "au:hinton");
    }

    #[test]
    fn an_api_error_entry_is_an_error() {
        let body = r#"<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/api/errors#incorrect_id_format_for_1234</id>
            <title>Error</title><summary>incorrect id format for 1234</summary></entry></feed>"#;
        let err = parse_page("http://x/api/query?id_list=1234", body.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("incorrect id format for 1234"), "{err}");
    }

    #[test]
    fn truncated_xml_names_the_url_and_position() {
        let cut = &PAGE[..PAGE.find("<summary>").unwrap()];
        let err = parse_page("http://x/api/query?start=0", cut.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("http://x/api/query?start=0"), "{err}");
        assert!(err.contains("line 9"), "{err}");
        let err = parse_page("http://x/q", b"<feed><entry></feed>").unwrap_err().to_string();
        assert!(err.contains("line 1, column"), "{err}");
    }
}
