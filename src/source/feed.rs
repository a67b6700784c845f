//! Any RSS 2.0, RSS 1.0 (RDF) or Atom feed (arXiv's rss.arxiv.org listings, journal
//! tables of contents, paper aggregators, lab blogs), parsed with feed-rs.
//!
//! An item's own id comes only from where an item names itself: its links and guid (an
//! arxiv.org page, or a paper page on a known aggregator), its `dc:identifier` and
//! `prism:doi`, and the `arXiv:ID` header that opens an arXiv listing's description.
//! Ids cited in the body are references, never the item's own: a blog post that cites a
//! paper is keyed by its DOI or URL, not by the paper. Descriptions are HTML; the wrapper
//! lines aggregators put around an abstract ("Authors:", "Upvotes:", "Summary:",
//! "Announce Type:") are removed here, at parse time.

use super::http::{Fetched, HttpClient};
use super::text::{self, clean, html_to_text};
use super::{Window, ids, parse_error_xml, utf8};
use crate::config::FeedSettings;
use crate::error::{Error, Result};
use crate::model::{Paper, PaperId};
use quick_xml::events::Event;

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
/// arXiv replacement announcements (`Announce Type: replace` or `replace-cross`) are
/// skipped: they announce a new version of an old paper, which is not news.
pub fn parse(source: &str, url: &str, body: &[u8]) -> Result<Vec<Paper>> {
    let extras = scan(url, body)?;
    let feed = feed_rs::parser::parse(body).map_err(|e| Error::Parse {
        url: url.to_string(),
        position: None,
        message: format!("not an RSS or Atom feed: {e}"),
    })?;
    let mut next = 0;
    let mut papers = Vec::with_capacity(feed.entries.len());
    for entry in &feed.entries {
        let extra = match_extras(&extras, &mut next, entry);
        if let Some(paper) = to_paper(source, url, entry, extra) {
            papers.push(paper);
        }
    }
    Ok(papers)
}

/// What feed-rs does not keep of an item: Dublin Core and PRISM identifiers and arXiv's
/// announce type. Read in a pass of our own, in document order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Extras {
    title: String,
    identifiers: Vec<String>,
    dois: Vec<String>,
    announce_type: Option<String>,
}

/// Feeds nest a handful of levels (rss, channel, item, a field, some XHTML). feed-rs
/// builds its elements recursively, so a document nested deeper is refused up front.
const MAX_XML_DEPTH: usize = 256;

const DC: &str = "http://purl.org/dc/elements/1.1/";
const PRISM: &str = "http://prismstandard.org/namespaces/";
const ARXIV: &str = "http://arxiv.org/schemas/atom";

/// Checks well-formedness (feed-rs is lenient with broken XML and reports no positions,
/// so this names the line and column of a problem) and collects each item's [`Extras`].
/// Documents that are not UTF-8 (feed-rs decodes other encodings itself) and JSON feeds
/// skip the check and have no extras.
fn scan(url: &str, body: &[u8]) -> Result<Vec<Extras>> {
    let starts_with_markup = body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b == b'<');
    if !starts_with_markup || std::str::from_utf8(body).is_err() {
        return Ok(Vec::new());
    }
    let text = utf8(url, body)?;
    let mut reader = quick_xml::reader::NsReader::from_str(text);
    let mut open: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut items: Vec<Extras> = Vec::new();
    // The depth of the open item element, and the namespace and local name of the item
    // child being read.
    let mut item_depth: Option<usize> = None;
    let mut field: Option<(String, String)> = None;
    let mut value = String::new();
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok(ok) => ok,
            Err(e) => return Err(parse_error_xml(url, body, reader.error_position(), e.to_string())),
        };
        let ns = match ns {
            quick_xml::name::ResolveResult::Bound(n) => n.as_ref().to_string(),
            _ => String::new(),
        };
        match event {
            Event::Start(e) => {
                if open.is_empty() {
                    roots += 1;
                }
                let local = e.local_name().as_ref().to_string();
                open.push(e.name().as_ref().to_string());
                if open.len() > MAX_XML_DEPTH {
                    return Err(parse_error_xml(
                        url,
                        body,
                        reader.buffer_position(),
                        format!("elements nest deeper than {MAX_XML_DEPTH} levels; no feed does that"),
                    ));
                }
                match item_depth {
                    None if matches!(local.as_str(), "item" | "entry") => {
                        item_depth = Some(open.len());
                        items.push(Extras::default());
                    }
                    Some(d) if open.len() == d + 1 => {
                        field = Some((ns, local));
                        value.clear();
                    }
                    _ => {}
                }
            }
            Event::Empty(_) if open.is_empty() => roots += 1,
            Event::Text(t) if field.is_some() => value.push_str(&t.xml10_content()),
            Event::CData(t) if field.is_some() => value.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if field.is_some() => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    value.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                    value.push_str(s);
                }
            }
            Event::End(_) => {
                let depth = open.len();
                open.pop();
                if item_depth == Some(depth) {
                    item_depth = None;
                } else if item_depth.is_some_and(|d| depth == d + 1)
                    && let Some((ns, local)) = field.take()
                    && let Some(item) = items.last_mut()
                {
                    let v = clean(&value);
                    match (ns.as_str(), local.as_str()) {
                        (_, "title") => item.title = text::html_title(&value),
                        (DC, "identifier") if !v.is_empty() => item.identifiers.push(v),
                        (n, "doi") if n.starts_with(PRISM) && !v.is_empty() => item.dois.push(v),
                        (ARXIV, "announce_type") if !v.is_empty() => item.announce_type = Some(v),
                        _ => {}
                    }
                }
            }
            Event::Eof => break,
            _ => {}
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
    Ok(items)
}

/// The extras of `entry`: the next scanned item with the same title (feed-rs drops
/// items without a link, so positions alone may drift).
fn match_extras<'a>(
    extras: &'a [Extras],
    next: &mut usize,
    entry: &feed_rs::model::Entry,
) -> Option<&'a Extras> {
    let title = text::html_title(entry.title.as_ref().map_or("", |t| t.content.as_str()));
    let found = extras.get(*next..)?.iter().position(|x| x.title == title)?;
    *next += found + 1;
    extras.get(*next - 1)
}

fn to_paper(
    source: &str,
    feed_url: &str,
    entry: &feed_rs::model::Entry,
    extra: Option<&Extras>,
) -> Option<Paper> {
    let title = text::html_title(entry.title.as_ref().map_or("", |t| t.content.as_str()));
    let raw_body = entry
        .summary
        .as_ref()
        .map(|t| t.content.clone())
        .or_else(|| entry.content.as_ref().and_then(|c| c.body.clone()))
        .unwrap_or_default();
    let wrapped = unwrap(&html_to_text(&raw_body));
    let announce = extra.and_then(|x| x.announce_type.as_deref()).or(wrapped.announce.as_deref());
    if announce.is_some_and(|a| a.trim().to_ascii_lowercase().starts_with("replace")) {
        return None;
    }
    let link = entry
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or_else(|| entry.links.first())
        .map(|l| l.href.trim().to_string())
        .filter(|h| ids::canonical_url(h).is_some());
    let Some((id, arxiv)) = own_id(entry, extra, wrapped.arxiv.as_deref(), link.as_deref()) else {
        tracing::warn!(url = feed_url, entry = entry.id.as_str(), "skipped a feed item without a link or id");
        return None;
    };
    if title.is_empty() {
        tracing::warn!(url = feed_url, id = id.as_str(), "skipped a feed item without a title");
        return None;
    }
    let categories = if arxiv {
        entry.categories.iter().map(|c| clean(&c.term)).filter(|c| !c.is_empty()).collect()
    } else {
        Vec::new()
    };
    let mut authors: Vec<String> = entry
        .authors
        .iter()
        .flat_map(|p| split_authors(p.name.as_deref().unwrap_or_default(), arxiv))
        .collect();
    if authors.is_empty()
        && let Some(line) = &wrapped.authors
    {
        authors = split_authors(line, arxiv);
    }
    Some(Paper {
        id,
        title,
        summary: text::abstract_text(&wrapped.body),
        authors,
        published: entry.published.or(entry.updated),
        categories,
        url: link,
        sources: vec![source.to_string()],
        ..Paper::default()
    })
}

/// The item's own key, and whether it is an arXiv paper: an arXiv id from the listing
/// header, a link or the guid; else a DOI from `dc:identifier`, `prism:doi`, a doi.org
/// link or a DOI guid; else the canonical URL of its link or guid.
fn own_id(
    entry: &feed_rs::model::Entry,
    extra: Option<&Extras>,
    header: Option<&str>,
    link: Option<&str>,
) -> Option<(PaperId, bool)> {
    let hrefs = || entry.links.iter().map(|l| l.href.as_str());
    let identifiers = || extra.into_iter().flat_map(|x| x.identifiers.iter().map(String::as_str));
    let arxiv = header
        .and_then(ids::normalize_arxiv)
        .or_else(|| hrefs().find_map(ids::arxiv_from_link))
        .or_else(|| ids::arxiv_from_link(&entry.id))
        .or_else(|| arxiv_guid(&entry.id))
        .or_else(|| identifiers().find_map(arxiv_guid));
    if let Some(arxiv) = arxiv {
        return Some((ids::arxiv_key(&arxiv), true));
    }
    let doi = identifiers()
        .chain(extra.into_iter().flat_map(|x| x.dois.iter().map(String::as_str)))
        .find_map(ids::normalize_doi)
        .or_else(|| hrefs().chain([entry.id.as_str()]).find_map(doi_link));
    if let Some(doi) = doi {
        return Some((ids::doi_key(&doi), false));
    }
    let canonical = link.or(Some(entry.id.as_str())).and_then(ids::canonical_url)?;
    Some((ids::url_key(&canonical), false))
}

/// A guid or identifier that spells an arXiv id outright (`oai:arXiv.org:ID`, `arXiv:ID`).
fn arxiv_guid(s: &str) -> Option<String> {
    let lower = s.trim().to_ascii_lowercase();
    (lower.starts_with("oai:arxiv.org:") || lower.starts_with("arxiv:"))
        .then(|| ids::normalize_arxiv(s))
        .flatten()
}

/// The DOI of a doi.org link or a `doi:` / `info:doi/` guid.
fn doi_link(s: &str) -> Option<String> {
    let lower = s.trim().to_ascii_lowercase();
    let named = [
        "https://doi.org/",
        "http://doi.org/",
        "https://dx.doi.org/",
        "http://dx.doi.org/",
        "doi:",
        "info:doi/",
    ]
    .iter()
    .any(|p| lower.starts_with(p));
    named.then(|| ids::normalize_doi(s)).flatten()
}

/// A description with its wrapper taken apart.
#[derive(Debug, Default, PartialEq, Eq)]
struct Wrapped {
    /// The `arXiv:ID` that opens an arXiv listing's description.
    arxiv: Option<String>,
    announce: Option<String>,
    authors: Option<String>,
    body: String,
}

/// Labels aggregators put before an abstract. "Summary:" and "Abstract:" introduce the
/// abstract itself; the others end at the next label or line break.
const LABELS: &[&str] =
    &["Announce Type:", "Authors:", "Author:", "Upvotes:", "Votes:", "Comments:", "Summary:", "Abstract:"];

/// Takes the wrapper lines off the start of a description's text: arXiv's
/// `arXiv:2411.16500v2 Announce Type: new Abstract: …` and aggregators'
/// `Authors: … Upvotes: 37 Summary: …`. Text that does not start with one of them is
/// the body as it is.
fn unwrap(text: &str) -> Wrapped {
    let mut out = Wrapped::default();
    let mut rest = text.trim_start();
    // A wrapper names each label once; text that repeats them past this is the body.
    for _ in 0..=LABELS.len() {
        if out.arxiv.is_none()
            && rest.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("arxiv:"))
            && let Some(id) = ids::normalize_arxiv(id_token(&rest[6..]))
        {
            out.arxiv = Some(id);
            rest = rest[6..].trim_start();
            rest = rest[id_token(rest).len()..].trim_start();
            continue;
        }
        let Some(label) =
            LABELS.iter().find(|l| rest.get(..l.len()).is_some_and(|p| p.eq_ignore_ascii_case(l)))
        else {
            break;
        };
        rest = rest[label.len()..].trim_start();
        if matches!(*label, "Summary:" | "Abstract:") {
            break;
        }
        let end = value_end(rest);
        let value = clean(&rest[..end]);
        match *label {
            "Announce Type:" => out.announce = Some(value),
            "Authors:" | "Author:" => out.authors = Some(value),
            _ => {}
        }
        rest = rest[end..].trim_start();
    }
    out.body = rest.to_string();
    out
}

/// Where a label's value ends: at a line break or the next label, whichever is first.
fn value_end(s: &str) -> usize {
    let line = s.find('\n').unwrap_or(s.len());
    LABELS
        .iter()
        .filter_map(|l| s[..line].find(l).filter(|&i| i == 0 || s[..i].ends_with(char::is_whitespace)))
        .min()
        .unwrap_or(line)
}

/// The id-shaped run at the start of `s`.
fn id_token(s: &str) -> &str {
    let end =
        s.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '/'))).unwrap_or(s.len());
    s[..end].trim_end_matches('.')
}

/// One author field as a list of names.
///
/// Parenthesised affiliations are dropped (`Ann Lee (MIT, CSAIL)`), names are split at
/// commas, semicolons and "and", and mononyms are names (`…, Arvind`). A "Last, F."
/// list (`Smith, J., Doe, A. B.`, as bioRxiv writes them) pairs each surname with its
/// initials. A lone `Smith, John` outside arXiv listings is one person, given name first.
/// arXiv's RSS puts every author in one `dc:creator`, always comma-separated.
fn split_authors(field: &str, arxiv_listing: bool) -> Vec<String> {
    let field = clean(&without_parentheses(field));
    let parts: Vec<&str> = field
        .split([',', ';'])
        .flat_map(|p| p.split(" and "))
        .flat_map(|p| p.split(" & "))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let single_word = |p: &str| !p.contains(' ');
    if !arxiv_listing && parts.len() == 2 && parts.iter().all(|p| single_word(p)) && !field.contains(" and ")
    {
        return vec![format!("{} {}", parts[1], parts[0])];
    }
    let mut names: Vec<String> = Vec::with_capacity(parts.len());
    let mut after_surname = false;
    for part in parts {
        if after_surname && is_initials(part) {
            if let Some(last) = names.pop() {
                names.push(format!("{part} {last}"));
            }
            after_surname = false;
            continue;
        }
        after_surname = !arxiv_listing;
        names.push(part.to_string());
    }
    names
}

/// `J.`, `A. B.`, `M.J.`, `J.-P.`, `AB`: what a "Last, F." list puts after a surname.
fn is_initials(s: &str) -> bool {
    s.split([' ', '-']).filter(|w| !w.is_empty()).all(|w| {
        let letters = w.chars().filter(|c| *c != '.').count();
        (1..=4).contains(&letters) && w.chars().all(|c| c == '.' || c.is_uppercase())
    })
}

/// `s` without its parenthesised parts (nested ones included); an unclosed `(` drops the
/// rest of the text.
fn without_parentheses(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arxiv_announcements_give_id_type_and_abstract() {
        let w = unwrap("arXiv:2411.16500v2 Announce Type: new \nAbstract: We study things.");
        assert_eq!(w.arxiv.as_deref(), Some("2411.16500"));
        assert_eq!(w.announce.as_deref(), Some("new"));
        assert_eq!(w.body, "We study things.");
        assert_eq!(unwrap("Plain text."), Wrapped { body: "Plain text.".into(), ..Wrapped::default() });
    }

    #[test]
    fn aggregator_wrapper_lines_are_removed() {
        let w = unwrap("Authors: Wei Zhang, Ann Lee Upvotes: 37 Summary: The abstract.");
        assert_eq!(w.authors.as_deref(), Some("Wei Zhang, Ann Lee"));
        assert_eq!(w.body, "The abstract.");
        let w = unwrap("\nAuthors: Wei Zhang\n\nUpvotes: 37\n\nSummary:\nThe abstract.\n\nSecond paragraph.");
        assert_eq!(
            (w.authors.as_deref(), clean(&w.body).as_str()),
            (Some("Wei Zhang"), "The abstract. Second paragraph.")
        );
        assert_eq!(unwrap("Summary statistics matter.").body, "Summary statistics matter.");
    }

    #[test]
    fn author_lists_with_mononyms_affiliations_and_initials_are_split() {
        assert_eq!(
            split_authors("Wei Zhang, Yuki Tanaka and Ann Lee", true),
            ["Wei Zhang", "Yuki Tanaka", "Ann Lee"]
        );
        assert_eq!(split_authors("Priya Natarajan, Arvind", true), ["Priya Natarajan", "Arvind"]);
        assert_eq!(split_authors("Deepti", true), ["Deepti"]);
        assert_eq!(
            split_authors("Wei Zhang (Tsinghua University, Beijing), Ann Lee (MIT)", true),
            ["Wei Zhang", "Ann Lee"]
        );
        assert_eq!(
            split_authors("Smith, J., Doe, A. B., Martin-Lopez, J.-P.", false),
            ["J. Smith", "A. B. Doe", "J.-P. Martin-Lopez"]
        );
        assert_eq!(split_authors("Smith, John", false), ["John Smith"]);
        assert_eq!(
            split_authors(" García, M.J., van der Berg, J. ", false),
            ["M.J. García", "J. van der Berg"]
        );
        assert_eq!(split_authors("Ada Byron", false), ["Ada Byron"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 500, failure_persistence: None, ..Default::default() })]

        #[test]
        fn unwrapping_and_author_splitting_never_panic_and_stay_bounded(
            s in "(arXiv:2411.16500v2 |Authors: |Upvotes: 3 |Summary: |Announce Type: new |Abstract: |\\(|\\)|, | and |[A-Z]\\. |\\PC{0,8}|\n){0,30}",
            arxiv in proptest::bool::ANY,
        ) {
            let w = unwrap(&s);
            proptest::prop_assert!(w.body.chars().count() <= s.chars().count());
            let names = split_authors(&s, arxiv);
            proptest::prop_assert!(names.iter().map(|n| n.chars().count()).sum::<usize>() <= s.chars().count());
            proptest::prop_assert!(names.iter().all(|n| !n.trim().is_empty()));
        }
    }

    #[test]
    fn a_broken_feed_names_the_url_and_line() {
        let body = b"<rss version=\"2.0\"><channel>\n<item><title>x</title>\n</channel></rss>";
        let err = parse("blog", "http://h/feed.xml", body).unwrap_err().to_string();
        assert!(err.contains("http://h/feed.xml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    fn item(link: &str, guid: &str, description: &str) -> Paper {
        let body = format!(
            "<rss version=\"2.0\"><channel><title>t</title><item><title>A post</title><link>{link}</link>\
             <guid>{guid}</guid><description>{description}</description></item></channel></rss>"
        );
        let papers = parse("blog", "http://h/feed", body.as_bytes()).unwrap();
        assert_eq!(papers.len(), 1);
        papers.into_iter().next().unwrap()
    }

    #[test]
    fn ids_cited_in_the_body_are_not_the_items_own() {
        let p = item(
            "https://bair.berkeley.edu/blog/2026/04/12/world-models/",
            "https://bair.berkeley.edu/blog/2026/04/12/world-models/",
            "&lt;p&gt;Building on &lt;a href=\"https://arxiv.org/abs/1312.6199\"&gt;Szegedy et al.&lt;/a&gt; (arXiv:1312.6199) and doi:10.1000/xyz&lt;/p&gt;",
        );
        assert_eq!(p.id.as_str(), "url:https://bair.berkeley.edu/blog/2026/04/12/world-models");
        assert!(p.categories.is_empty());
    }

    #[test]
    fn prism_doi_and_dc_identifier_key_an_item_before_its_link() {
        let body = br#"<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
            xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:prism="http://prismstandard.org/namespaces/basic/2.0/">
            <channel rdf:about="https://j.example.org"><title>J</title><link>https://j.example.org</link></channel>
            <item rdf:about="https://j.example.org/a/1"><title>One</title><link>https://j.example.org/a/1</link>
              <prism:doi>10.1234/ABC.1</prism:doi></item>
            <item rdf:about="https://j.example.org/a/2"><title>Two</title><link>https://j.example.org/a/2</link>
              <dc:identifier>doi:10.1234/abc.2</dc:identifier></item>
            <item rdf:about="https://j.example.org/a/3"><title>Three</title><link>https://j.example.org/a/3</link></item>
            </rdf:RDF>"#;
        let papers = parse("j", "http://h/j.rdf", body).unwrap();
        let ids: Vec<&str> = papers.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["doi:10.1234/abc.1", "doi:10.1234/abc.2", "url:https://j.example.org/a/3"]);
    }

    #[test]
    fn aggregator_links_and_doi_guids_key_the_item() {
        assert_eq!(item("https://tldr.takara.ai/p/2411.16500", "x1", "Text").id.as_str(), "2411.16500");
        assert_eq!(
            item("https://example.org/a", "https://doi.org/10.1101/2023.12.16.571984", "t").id.as_str(),
            "doi:10.1101/2023.12.16.571984"
        );
    }
}
