//! Rendering: one subscriber's ranked papers become a subject, an HTML part and a plain-text
//! part. Templates are minijinja files compiled into the binary; a folder can replace any
//! of them by name. The HTML gets its CSS inlined and the whole message is kept under
//! Gmail's clipping size.

pub mod latex;

use crate::config::Subscriber;
use crate::error::{Error, Result};
use crate::model::{Frequency, Ranked};
use crate::text::{clean, first_sentences, strip_tags, wrap};
use chrono::NaiveDate;
use css_inline::CSSInliner;
use minijinja::value::Value;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use std::path::Path;

/// Everything a digest template sees.
#[derive(Debug)]
pub struct DigestContext<'a> {
    pub subscriber: &'a Subscriber,
    /// The day this digest is for, in the subscriber's time zone.
    pub edition: NaiveDate,
    /// Best first.
    pub papers: &'a [Ranked<'a>],
    /// An https page that unsubscribes (linked in the footer).
    pub unsubscribe_url: Option<&'a str>,
    /// An address (or `mailto:` URL) that unsubscribes, shown when there is no page.
    pub unsubscribe_mailto: Option<&'a str>,
}

/// A rendered digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// The largest message worth sending: Gmail clips mail past about 102 KB, hiding the rest
/// of the digest and the unsubscribe link with it.
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024;

/// Room left for the headers, MIME boundaries and part headers that mail building adds.
const HEADER_HEADROOM: usize = 8 * 1024;

/// The templates every digest needs, compiled in. A file of the same name in the override
/// folder replaces one.
const BUILTIN: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("digest.html", include_str!("../../templates/digest.html")),
    ("style.css", include_str!("../../templates/style.css")),
    ("digest.txt", include_str!("../../templates/digest.txt")),
    ("subject.txt", include_str!("../../templates/subject.txt")),
];

/// The templates [`Renderer::render`] renders directly.
const SUBJECT: &str = "subject.txt";
const HTML: &str = "digest.html";
const TEXT: &str = "digest.txt";

/// How much of an abstract a card shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Summary {
    /// Two or three sentences.
    Full,
    /// One short sentence: for digests that would not fit otherwise.
    Short,
}

impl Summary {
    fn limits(self) -> (usize, usize) {
        match self {
            Summary::Full => (3, 420),
            Summary::Short => (1, 180),
        }
    }
}

/// Renders digests. Build one per run and share it: templates are compiled once.
#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
    inliner: CSSInliner<'static>,
}

impl Renderer {
    /// Compiles the built-in templates, replaced by any file of the same name in
    /// `templates_dir`. Other files there are loaded too, so overrides can include their own
    /// partials. A template that does not compile is an error naming it.
    pub fn new(templates_dir: Option<&Path>) -> Result<Self> {
        let mut env = Environment::new();
        // Typos in an override template fail loudly instead of rendering blanks, while
        // `{% if x is defined %}` still works.
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("wrap", wrap_filter);
        env.add_filter("plural", plural_filter);

        let mut overridden = Vec::new();
        if let Some(dir) = templates_dir {
            for (name, source) in read_templates(dir)? {
                env.add_template_owned(name.clone(), source)
                    .map_err(|e| template_error(&dir.join(&name).display().to_string(), &e))?;
                overridden.push(name);
            }
        }
        for &(name, source) in BUILTIN {
            if !overridden.iter().any(|n| n == name) {
                env.add_template(name, source).map_err(|e| template_error(name, &e))?;
            }
        }

        // Styles go inline because Gmail and Outlook drop or ignore much of a `<style>`
        // block; media queries (dark mode, phones) cannot be inlined and stay in one.
        // Inlining runs on each rendered message, not on the template sources: it costs
        // about 0.5 ms for ten papers in a release build (a fifth of a render), and passing
        // through an HTML parser makes even a sloppy override template well-formed, where
        // Jinja tags in a template source would not survive that parser.
        let inliner = CSSInliner::options()
            .load_remote_stylesheets(false)
            .keep_link_tags(false)
            .keep_at_rules(true)
            .minify_css(true)
            .apply_width_attributes(true)
            .build();
        Ok(Renderer { env, inliner })
    }

    /// Renders one digest, shortening it to stay under [`MAX_MESSAGE_BYTES`]: first the
    /// abstracts are cut to one sentence, then the papers that still do not fit are listed
    /// by title only under "More matches".
    pub fn render(&self, ctx: &DigestContext<'_>) -> Result<Rendered> {
        let digest = Digest::new(ctx);
        let n = digest.papers.len();
        let subject = clean(&self.render_template(SUBJECT, &digest.page("", Layout::all(n)))?);

        let attempt = |layout: Layout| -> Result<(Rendered, bool)> {
            let page = digest.page(&subject, layout);
            let html = self.inline(&self.render_template(HTML, &page)?)?;
            let text = self.render_template(TEXT, &page)?;
            let fits = transfer_size(&html) + transfer_size(&text) + subject.len() + HEADER_HEADROOM
                <= MAX_MESSAGE_BYTES;
            Ok((Rendered { subject: subject.clone(), html, text }, fits))
        };

        let (full, fits) = attempt(Layout::all(n))?;
        if fits {
            return Ok(full);
        }
        let short = Layout { summary: Summary::Short, ..Layout::all(n) };
        let (rendered, fits) = attempt(short)?;
        if fits {
            return Ok(rendered);
        }
        // Fewer cards, the rest as title-only lines; and if even no cards are too many,
        // fewer of those lines.
        if let Some(r) = largest_fitting(n, |cards| attempt(Layout { cards, listed: n - cards, ..short }))? {
            return Ok(r);
        }
        let none = Layout { cards: 0, listed: 0, ..short };
        match largest_fitting(n, |listed| attempt(Layout { listed, ..none }))? {
            Some(r) => Ok(r),
            None => Ok(attempt(none)?.0),
        }
    }

    fn render_template(&self, name: &str, page: &Page<'_>) -> Result<String> {
        let template = self.env.get_template(name).map_err(|e| template_error(name, &e))?;
        template.render(Value::from_serialize(page)).map_err(|e| template_error(name, &e))
    }

    fn inline(&self, html: &str) -> Result<String> {
        let inlined = self
            .inliner
            .inline(html)
            .map_err(|e| Error::Render { name: HTML.into(), message: format!("inlining CSS: {e}") })?;
        Ok(charset_first(inlined))
    }
}

/// Moves `<meta charset>` to the top of `<head>`: the inliner puts the kept `@media` rules
/// there, and a browser opening a preview file only looks for the charset in the first
/// 1024 bytes.
fn charset_first(mut html: String) -> String {
    const META: &str = "<meta charset=\"utf-8\">";
    if let (Some(head), Some(meta)) = (html.find("<head>"), html.find(META)) {
        let at = head + "<head>".len();
        if meta > at {
            html.replace_range(meta..meta + META.len(), "");
            html.insert_str(at, META);
        }
    }
    html
}

/// The largest `k` in `0..n` for which `attempt(k)` fits, by bisection (a digest with
/// fewer cards is never larger); `None` when not even `k = 0` fits.
fn largest_fitting(
    n: usize,
    attempt: impl Fn(usize) -> Result<(Rendered, bool)>,
) -> Result<Option<Rendered>> {
    let (mut lo, mut hi) = (0, n); // `hi` is known not to fit
    let mut best = None;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let (r, fits) = attempt(mid)?;
        if fits {
            best = Some(r);
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(best)
}

/// Reads every regular file of the override folder.
fn read_templates(dir: &Path) -> Result<Vec<(String, String)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let source = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        out.push((name, source));
    }
    Ok(out)
}

fn template_error(name: &str, e: &minijinja::Error) -> Error {
    let mut message = e.to_string();
    if let Some(detail) = e.detail()
        && !message.contains(detail)
    {
        message = format!("{message}: {detail}");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
    }
    Error::Render { name: name.to_string(), message }
}

/// `{{ text | wrap(72, "   ") }}`: wraps at `width` columns; every line starts with
/// `indent`, the first with `first` when given.
fn wrap_filter(value: &str, width: usize, indent: Option<&str>, first: Option<&str>) -> String {
    let indent = indent.unwrap_or("");
    wrap(value, width, first.unwrap_or(indent), indent)
}

/// `{{ n | plural("upvote") }}` → `1 upvote`, `2 upvotes`.
fn plural_filter(n: i64, singular: &str, plural: Option<&str>) -> String {
    match (n, plural) {
        (1, _) => format!("1 {singular}"),
        (_, Some(p)) => format!("{n} {p}"),
        (_, None) => format!("{n} {singular}s"),
    }
}

/// Bytes a body takes once encoded the way lettre encodes it: 7bit when it is short-lined
/// ASCII, else quoted-printable, else base64 (when more than a third needs escaping).
/// Quoted-printable turns every non-ASCII byte and `=` into three bytes, so a digest
/// in UTF-8 can grow by a tenth or more on the wire.
fn transfer_size(s: &str) -> usize {
    let lines = s.lines().count().max(1);
    let long_lines = s.lines().any(|l| l.len() >= 76);
    if s.is_ascii() && !long_lines {
        return s.len() + lines; // LF becomes CRLF
    }
    let escaped = s.bytes().filter(|&b| !matches!(b, b'\t' | b' '..=b'~' | b'\n' | b'\r')).count();
    if escaped > s.len() / 3 {
        let b64 = s.len().div_ceil(3) * 4;
        return b64 + b64 / 76 * 2;
    }
    s.lines()
        .map(|line| {
            let encoded: usize =
                line.bytes().map(|b| if (b' '..=b'~').contains(&b) && b != b'=' { 1 } else { 3 }).sum();
            // Soft line breaks ("=\r\n") keep encoded lines under 76 characters.
            encoded + encoded / 73 * 3 + 2
        })
        .sum()
}

// ---------------------------------------------------------------------------------------
// What the templates see.

/// Which papers get a card, which get a title-only line, and how long the abstracts are.
#[derive(Debug, Clone, Copy)]
struct Layout {
    summary: Summary,
    /// The first `cards` papers are shown in full.
    cards: usize,
    /// The next `listed` papers appear under "More matches".
    listed: usize,
}

impl Layout {
    fn all(n: usize) -> Self {
        Layout { summary: Summary::Full, cards: n, listed: 0 }
    }
}

/// A digest prepared for the templates once; [`Digest::page`] lays it out.
#[derive(Debug)]
struct Digest {
    edition: Edition,
    subscriber: SubscriberView,
    topics: Vec<String>,
    trending: bool,
    papers: Vec<PaperView>,
    unsubscribe_url: Option<String>,
    unsubscribe_email: Option<String>,
}

/// The root of every template's context.
#[derive(Debug, Serialize)]
struct Page<'a> {
    /// Empty while the subject itself is rendered.
    subject: &'a str,
    edition: &'a Edition,
    subscriber: &'a SubscriberView,
    /// Every paper in this digest, whether shown as a card or a title line.
    count: usize,
    /// The topics these papers matched, in the subscriber's order.
    topics: &'a [String],
    /// The subscriber has no topics and gets the top trending papers.
    trending: bool,
    papers: Vec<Card<'a>>,
    more: &'a [PaperView],
    /// Papers left out entirely (only when even title lines would not fit).
    hidden: usize,
    /// Whether abstracts were shortened to fit the size budget.
    shortened: bool,
    unsubscribe_url: Option<&'a str>,
    unsubscribe_email: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct Card<'a> {
    #[serde(flatten)]
    paper: &'a PaperView,
    summary: &'a str,
}

#[derive(Debug, Serialize)]
struct Edition {
    /// `2024-11-27`
    iso: String,
    /// `Wednesday, 27 November 2024`
    long: String,
    /// `Nov 27`
    short: String,
}

#[derive(Debug, Serialize)]
struct SubscriberView {
    email: String,
    name: Option<String>,
    topics: Vec<String>,
    /// `daily` or `weekly`.
    frequency: &'static str,
}

#[derive(Debug, Serialize)]
struct PaperView {
    rank: usize,
    id: String,
    title: String,
    /// The paper's page (https), if it has one.
    url: Option<String>,
    /// First three authors, then "et al.".
    authors: String,
    summary_full: String,
    summary_short: String,
    topic: Option<String>,
    /// Matched terms with the fields they matched in: `gaussian splatting · title, abstract`.
    matched: Vec<String>,
    /// Just the matched terms, for the compact cards of a shortened digest.
    terms: Vec<String>,
    upvotes: u32,
    comments: u32,
    /// arXiv, PDF, Code, Project: those known, each an https URL.
    links: Vec<LinkView>,
}

#[derive(Debug, Serialize)]
struct LinkView {
    label: &'static str,
    url: String,
}

/// At most this many match chips per paper; more say little and cost bytes.
const MAX_CHIPS: usize = 4;

impl Digest {
    fn new(ctx: &DigestContext<'_>) -> Self {
        let sub = ctx.subscriber;
        let papers: Vec<PaperView> =
            ctx.papers.iter().enumerate().map(|(i, r)| PaperView::new(i + 1, r)).collect();
        // The topics present, in the subscriber's order; all of them for an empty digest.
        let mut topics: Vec<String> = sub
            .topics
            .iter()
            .filter(|t| papers.iter().any(|p| p.topic.as_ref() == Some(*t)))
            .cloned()
            .collect();
        for p in &papers {
            if let Some(t) = &p.topic
                && !topics.contains(t)
            {
                topics.push(t.clone());
            }
        }
        if topics.is_empty() {
            topics.clone_from(&sub.topics);
        }
        Digest {
            edition: Edition {
                iso: ctx.edition.format("%Y-%m-%d").to_string(),
                long: ctx.edition.format("%A, %-d %B %Y").to_string(),
                short: ctx.edition.format("%b %-d").to_string(),
            },
            subscriber: SubscriberView {
                email: sub.email.email.to_string(),
                name: sub.email.name.as_deref().map(clean).filter(|n| !n.is_empty()),
                topics: sub.topics.clone(),
                frequency: match sub.frequency {
                    Frequency::Daily => "daily",
                    Frequency::Weekly => "weekly",
                },
            },
            topics,
            trending: sub.topics.is_empty(),
            papers,
            unsubscribe_url: ctx.unsubscribe_url.and_then(https_url),
            unsubscribe_email: ctx.unsubscribe_mailto.map(mailto_address).filter(|a| !a.is_empty()),
        }
    }

    fn page<'a>(&'a self, subject: &'a str, layout: Layout) -> Page<'a> {
        let cards = layout.cards.min(self.papers.len());
        let listed = layout.listed.min(self.papers.len() - cards);
        Page {
            subject,
            edition: &self.edition,
            subscriber: &self.subscriber,
            count: self.papers.len(),
            topics: &self.topics,
            trending: self.trending,
            papers: self.papers[..cards]
                .iter()
                .map(|paper| Card {
                    paper,
                    summary: match layout.summary {
                        Summary::Full => &paper.summary_full,
                        Summary::Short => &paper.summary_short,
                    },
                })
                .collect(),
            more: &self.papers[cards..cards + listed],
            hidden: self.papers.len() - cards - listed,
            shortened: layout.summary == Summary::Short,
            unsubscribe_url: self.unsubscribe_url.as_deref(),
            unsubscribe_email: self.unsubscribe_email.as_deref(),
        }
    }
}

impl PaperView {
    fn new(rank: usize, r: &Ranked<'_>) -> Self {
        let p = r.paper;
        let title = match clean(&latex::to_unicode(&p.title)) {
            t if t.is_empty() => p.id.to_string(),
            t => t,
        };
        // HF's one-line AI summary reads better than the abstract's opening; the abstract
        // may arrive as HTML from feeds.
        let source = p.ai_summary.as_deref().filter(|s| !s.trim().is_empty()).unwrap_or(&p.summary);
        let summary = clean(&latex::to_unicode(&strip_tags(source)));
        let cut = |level: Summary| {
            let (sentences, chars) = level.limits();
            first_sentences(&summary, sentences, chars)
        };
        let mut links = Vec::new();
        for (label, url) in [
            ("arXiv", p.arxiv_abs_url()),
            ("PDF", p.arxiv_pdf_url()),
            ("Code", p.code_url.clone()),
            ("Project", p.project_url.clone()),
        ] {
            if let Some(url) = url.as_deref().and_then(https_url)
                && !links.iter().any(|l: &LinkView| l.url == url)
            {
                links.push(LinkView { label, url });
            }
        }
        PaperView {
            rank,
            id: p.id.to_string(),
            title,
            url: p.link().as_deref().and_then(https_url),
            authors: authors_line(&p.authors),
            summary_full: cut(Summary::Full),
            summary_short: cut(Summary::Short),
            topic: r.topic.as_deref().map(clean),
            matched: chips(&r.matched),
            terms: terms(&r.matched),
            upvotes: p.upvotes,
            comments: p.comments,
            links,
        }
    }
}

/// "A, B, C et al." for more than three authors; all of them otherwise.
fn authors_line(authors: &[String]) -> String {
    let names: Vec<String> =
        authors.iter().map(|a| clean(&latex::to_unicode(a))).filter(|a| !a.is_empty()).collect();
    if names.len() > 3 { format!("{} et al.", names[..3].join(", ")) } else { names.join(", ") }
}

/// One chip per matched term, naming the fields it matched in.
fn chips(matched: &[crate::model::Match]) -> Vec<String> {
    let mut terms: Vec<(String, Vec<String>)> = Vec::new();
    for m in matched {
        let term = clean(&m.term);
        let field = m.field.to_string();
        match terms.iter_mut().find(|(t, _)| t.eq_ignore_ascii_case(&term)) {
            Some((_, fields)) if !fields.contains(&field) => fields.push(field),
            Some(_) => {}
            None => terms.push((term, vec![field])),
        }
    }
    terms.into_iter().take(MAX_CHIPS).map(|(t, f)| format!("{t} · {}", f.join(", "))).collect()
}

/// The distinct matched terms, in order.
fn terms(matched: &[crate::model::Match]) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for m in matched {
        let term = clean(&m.term);
        if !terms.iter().any(|t| t.eq_ignore_ascii_case(&term)) {
            terms.push(term);
        }
    }
    terms
}

/// `url` as an absolute https URL: http is upgraded, anything else (relative, `javascript:`,
/// `data:`) is refused, so no link in a digest can run code or leak over plain HTTP.
fn https_url(url: &str) -> Option<String> {
    let mut u = url::Url::parse(url.trim()).ok()?;
    match u.scheme() {
        "https" => {}
        "http" => u.set_scheme("https").ok()?,
        _ => return None,
    }
    u.host_str()?;
    Some(u.to_string())
}

/// The address of `unsubscribe@example.org` or `mailto:unsubscribe@example.org?subject=x`.
fn mailto_address(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_prefix("mailto:").unwrap_or(s);
    clean(s.split('?').next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_links_survive() {
        assert_eq!(https_url("https://arxiv.org/abs/1").as_deref(), Some("https://arxiv.org/abs/1"));
        assert_eq!(https_url("http://example.org/p").as_deref(), Some("https://example.org/p"));
        assert_eq!(https_url("javascript:alert(1)"), None);
        assert_eq!(https_url("/relative"), None);
    }

    #[test]
    fn authors_beyond_three_become_et_al() {
        let names: Vec<String> = ["A", "B", "C", "D"].map(String::from).to_vec();
        assert_eq!(authors_line(&names), "A, B, C et al.");
        assert_eq!(authors_line(&names[..2]), "A, B");
    }

    #[test]
    fn the_charset_comes_first_in_the_head() {
        let html = "<html><head><style>x</style>\n<meta charset=\"utf-8\">\n</head></html>".to_string();
        assert_eq!(
            charset_first(html),
            "<html><head><meta charset=\"utf-8\"><style>x</style>\n\n</head></html>"
        );
    }

    #[test]
    fn mailto_urls_show_as_addresses() {
        assert_eq!(mailto_address("mailto:off@example.org?subject=unsubscribe"), "off@example.org");
        assert_eq!(mailto_address("off@example.org"), "off@example.org");
    }

    #[test]
    fn transfer_size_counts_quoted_printable_growth() {
        assert_eq!(transfer_size("short ascii\n"), 13);
        // Two bytes escaped (=C3=A9), eleven plain, CRLF.
        assert_eq!(transfer_size("é plus ascii"), 6 + 11 + 2);
        // Mostly non-ASCII: base64 is shorter, as lettre would pick.
        assert_eq!(transfer_size(&"é".repeat(10)), 28);
    }

    #[test]
    fn largest_fitting_finds_the_boundary() {
        let attempt = |k: usize| {
            Ok((Rendered { subject: String::new(), html: String::new(), text: k.to_string() }, k <= 7))
        };
        let best = largest_fitting(20, attempt).ok().flatten().map(|r| r.text);
        assert_eq!(best.as_deref(), Some("7"));
        assert!(
            largest_fitting(20, |_| Ok((
                Rendered { subject: String::new(), html: String::new(), text: String::new() },
                false
            )))
            .ok()
            .flatten()
            .is_none()
        );
    }
}
