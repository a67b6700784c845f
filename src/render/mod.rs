//! Rendering: one subscriber's ranked papers become a subject, an HTML part and a plain-text
//! part. Templates are minijinja files compiled into the binary; a folder can replace any
//! of them by name. The HTML gets its CSS inlined and the whole message is kept under
//! Gmail's clipping size.
//!
//! A run renders thousands of digests from the same few hundred papers, so what depends
//! only on a paper (its cleaned title, authors line, cut abstracts, links) is worked out
//! once per paper and shared, and CSS is inlined per element shape, not per message
//! (see [`inline`]).

mod encode;
mod inline;
pub mod latex;
pub mod text;

pub use encode::Part;

use crate::config::Subscriber;
use crate::error::{Error, Result};
use crate::model::{Frequency, Paper, PaperId, Ranked};
use crate::source::text::{clean, first_sentences, strip_tags};
use chrono::NaiveDate;
use encode::{Assembled, Fragment, Segment};
use inline::Inliner;
use minijinja::value::{Enumerator, Object, Value};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use text::wrap;

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

/// One reader's signed links (with `[web]` set): the footer's unsubscribe, manage and
/// view-in-browser links, and "More like this" / "Fewer like this" under every card.
#[derive(Debug, Clone, Default)]
pub struct ReaderLinks {
    pub unsubscribe: String,
    pub manage: String,
    pub archive: String,
    /// Per paper: ("More like this" URL, "Fewer like this" URL).
    pub votes: HashMap<PaperId, (String, String)>,
}

/// A rendered digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// A rendered digest whose parts carry their quoted-printable encoding (when lettre would
/// choose it), joined from the cards' encodings made once per run where the cards sit on
/// line boundaries (see [`Renderer::render_encoded`]): what `mail::build_encoded` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub subject: String,
    pub html: Part,
    pub text: Part,
}

impl From<Encoded> for Rendered {
    fn from(e: Encoded) -> Self {
        Rendered { subject: e.subject, html: e.html.text, text: e.text.text }
    }
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
    ("card.html", include_str!("../../templates/card.html")),
    ("card.txt", include_str!("../../templates/card.txt")),
];

/// The templates [`Renderer::render`] renders directly.
const SUBJECT: &str = "subject.txt";
const HTML: &str = "digest.html";
const TEXT: &str = "digest.txt";
/// The partials rendered once per paper (see [`CardParts`]), and the blocks of each that a
/// digest can place.
const CARD_HTML: &str = "card.html";
const CARD_TEXT: &str = "card.txt";
const CARD_HTML_BLOCKS: [&str; 2] = ["main", "links"];
const CARD_TEXT_BLOCKS: [&str; 2] = ["authors", "main"];

/// How much of an abstract a card shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
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

/// Renders digests. Build one per run and share it: templates are compiled once, and
/// each paper's text and each element's styles are worked out on first use and reused by
/// every digest after.
#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
    inliner: Inliner,
    papers: RwLock<HashMap<PaperId, Arc<PaperText>>>,
    /// Match chips by the matches they show, and cleaned topic names: the same few
    /// thousand for every reader of a run (see [`MatchText`]).
    matches: RwLock<HashMap<u64, Vec<Arc<MatchText>>>>,
    topics: RwLock<HashMap<String, Value>>,
    editions: RwLock<HashMap<NaiveDate, Value>>,
    /// The override folder, to name a template's file in errors.
    dir: Option<std::path::PathBuf>,
}

/// Papers whose text a renderer keeps; past this it starts afresh (a run has at most a few
/// thousand candidates).
const MAX_CACHED_PAPERS: usize = 50_000;

impl Renderer {
    /// Compiles the built-in templates, replaced by any file of the same name in
    /// `templates_dir`. Other files there are loaded too, so overrides can include their own
    /// partials. A template that does not compile is an error naming it.
    pub fn new(templates_dir: Option<&Path>) -> Result<Self> {
        // Typos in an override template fail loudly instead of rendering blanks, while
        // `{% if x is defined %}` still works.
        Self::with_undefined(templates_dir, UndefinedBehavior::SemiStrict)
    }

    /// A renderer for `check`: an undefined value is an error even in an `{% if %}`, so a
    /// misspelt name is caught before the first real digest meets it.
    pub fn strict(templates_dir: Option<&Path>) -> Result<Self> {
        Self::with_undefined(templates_dir, UndefinedBehavior::Strict)
    }

    fn with_undefined(templates_dir: Option<&Path>, undefined: UndefinedBehavior) -> Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(undefined);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_formatter(html_formatter);
        let wrapped = Arc::new(WrapCache::default());
        env.add_filter(
            "wrap",
            move |value: &Value, width: usize, indent: Option<&str>, first: Option<&str>| {
                wrap_filter(&wrapped, value, width, indent, first)
            },
        );
        env.add_filter("plural", plural_filter);

        let mut overridden = Vec::new();
        if let Some(dir) = templates_dir {
            for (name, source) in read_templates(dir)? {
                env.add_template_owned(name.clone(), source.clone())
                    .map_err(|e| template_error(Some(dir), &name, Some(&source), &e))?;
                overridden.push(name);
            }
        }
        for &(name, source) in BUILTIN {
            if !overridden.iter().any(|n| n == name) {
                env.add_template(name, source).map_err(|e| template_error(None, name, Some(source), &e))?;
            }
        }

        // Styles go inline because Gmail and Outlook drop or ignore much of a `<style>`
        // block; media queries (dark mode, phones) cannot be inlined and stay in one.
        // Inlining works on rendered messages, not on template sources (Jinja tags in a
        // template would not survive an HTML parser), but is worked out once per element
        // shape: see `inline`.
        Ok(Renderer {
            env,
            inliner: Inliner::new(),
            papers: RwLock::new(HashMap::new()),
            matches: RwLock::new(HashMap::new()),
            topics: RwLock::new(HashMap::new()),
            editions: RwLock::new(HashMap::new()),
            dir: templates_dir.map(Path::to_path_buf),
        })
    }

    /// Renders one digest, shortening it to stay under [`MAX_MESSAGE_BYTES`]: first the
    /// abstracts are cut to one sentence, then the papers that still do not fit are listed
    /// by title only under "More matches".
    pub fn render(&self, ctx: &DigestContext<'_>) -> Result<Rendered> {
        self.render_with_links(ctx, None)
    }

    /// [`Renderer::render`] with one reader's signed links in the footer and the cards.
    pub fn render_with_links(
        &self,
        ctx: &DigestContext<'_>,
        links: Option<&ReaderLinks>,
    ) -> Result<Rendered> {
        let (subject, html, text) = self.render_parts(ctx, links)?;
        Ok(Rendered { subject, html: html.into_text(), text: text.into_text() })
    }

    /// [`Renderer::render_with_links`], with each part also in quoted-printable (see
    /// [`Part`]), joined from encodings made once per card, so a message is built without
    /// encoding the cards again for every reader.
    pub fn render_encoded(&self, ctx: &DigestContext<'_>, links: Option<&ReaderLinks>) -> Result<Encoded> {
        let (subject, html, text) = self.render_parts(ctx, links)?;
        Ok(Encoded { subject, html: html.into_part(), text: text.into_part() })
    }

    /// The subject and the two parts, laid out to fit, not yet encoded.
    fn render_parts(
        &self,
        ctx: &DigestContext<'_>,
        links: Option<&ReaderLinks>,
    ) -> Result<(String, Assembled, Assembled)> {
        let digest = Digest::new(ctx, links, self);
        let n = digest.papers.len();
        let parts = |layout: Layout| -> Result<Vec<Arc<CardParts>>> {
            let cards = layout.cards.min(n);
            digest.papers[..cards].iter().map(|p| self.card_parts(&p.text, layout.summary)).collect()
        };
        let full = parts(Layout::all(n))?;
        let page = Value::from_serialize(digest.page("", Layout::all(n), &full, true));
        let subject = clean(&self.render_template(SUBJECT, &page)?);

        let attempt = |layout: Layout| -> Result<((String, Assembled, Assembled), bool)> {
            let parts = if layout.summary == Summary::Full && layout.cards >= n {
                full.clone()
            } else {
                parts(layout)?
            };
            // One template value for both parts.
            let page = Value::from_serialize(digest.page(&subject, layout, &parts, true));
            let html = self.inline_digest(&self.render_template(HTML, &page)?, &parts)?;
            let text = match Self::fill_text(&self.render_template(TEXT, &page)?, &parts) {
                Some(text) => text,
                // The template changed a card's placeholder (a filter on `paper.text.*`):
                // render it again with the cards' text itself.
                None => Assembled::own(self.render_template(
                    TEXT,
                    &Value::from_serialize(digest.page(&subject, layout, &parts, false)),
                )?),
            };
            let fits = transfer_size_bound(html.text())
                + transfer_size_bound(text.text())
                + subject.len()
                + HEADER_HEADROOM
                <= MAX_MESSAGE_BYTES;
            Ok(((subject.clone(), html, text), fits))
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

    fn render_template(&self, name: &str, page: &Value) -> Result<String> {
        let template = self.env.get_template(name).map_err(|e| template_error(None, name, None, &e))?;
        template.render(page).map_err(|e| {
            // The error may lie in a template this one extends or includes.
            let at = e.name().unwrap_or(name);
            let source = self.env.get_template(at).ok().map(|t| t.source().to_string());
            let dir = self.dir.as_deref().filter(|d| d.join(at).is_file());
            template_error(dir, name, source.as_deref(), &e)
        })
    }

    fn inline(&self, html: &str) -> Result<String> {
        self.inliner.inline(html).map_err(inline_error)
    }

    /// Inlines a rendered digest whose cards are still placeholders (see [`CardParts`]):
    /// with a plain stylesheet the page around the cards is spliced and each card's HTML
    /// goes in with the styles it was given once per run; otherwise the cards go in as
    /// rendered and the whole message is inlined.
    fn inline_digest(&self, html: &str, parts: &[Arc<CardParts>]) -> Result<Assembled> {
        let pieces = || parts.iter().flat_map(|p| p.html.iter());
        if !html.contains(PLACEHOLDER) {
            return Ok(Assembled::own(self.inline(html)?));
        }
        if let Some(sheet) = self.inliner.plain_sheet(html).map_err(inline_error)?
            && let Some(page) = self.inliner.splice_with(html, &sheet).map_err(inline_error)?
        {
            let inlined: Option<Vec<Arc<Fragment>>> = pieces()
                .map(|piece| piece.inlined(&self.inliner, &sheet))
                .collect::<std::result::Result<_, _>>()
                .map_err(inline_error)?;
            if let Some(inlined) = inlined {
                let segments = segments(&page, PLACEHOLDER, PLACEHOLDER_END, |k| inlined.get(k));
                return Ok(Assembled::new(&segments));
            }
        }
        let raw: Vec<Arc<Fragment>> =
            pieces().map(|piece| Arc::new(Fragment::new(Arc::clone(&piece.raw)))).collect();
        let filled = Assembled::new(&segments(html, PLACEHOLDER, PLACEHOLDER_END, |k| raw.get(k)));
        Ok(Assembled::own(self.inline(filled.text())?))
    }

    /// The text part with its cards put in; `None` when a card's placeholder did not
    /// survive the template intact.
    fn fill_text(text: &str, parts: &[Arc<CardParts>]) -> Option<Assembled> {
        let pieces: Vec<&Arc<Fragment>> = parts.iter().flat_map(|p| p.text.iter()).collect();
        let segments = segments(text, TEXT_PLACEHOLDER, TEXT_PLACEHOLDER_END, |k| pieces.get(k).copied());
        let intact = segments.iter().all(|s| match s {
            Segment::Own(s) => !s.contains(TEXT_MARK),
            Segment::Shared(_) => true,
        });
        intact.then(|| Assembled::new(&segments))
    }

    /// A card's paper-only parts at one abstract length, rendered from `card.html` and
    /// `card.txt` on first use and kept with the paper's text for the run.
    fn card_parts(&self, text: &Arc<PaperText>, summary: Summary) -> Result<Arc<CardParts>> {
        let slot = &text.cards[summary as usize];
        if let Some(parts) = slot.get() {
            return Ok(Arc::clone(parts));
        }
        let ctx = minijinja::context! {
            paper => Value::from_object(PaperOnly { text: Arc::clone(text), summary }),
            shortened => summary == Summary::Short,
        };
        let html = self
            .render_blocks(CARD_HTML, &ctx, &CARD_HTML_BLOCKS)?
            .into_iter()
            .map(|raw| Arc::new(HtmlPiece { raw: raw.into(), inlined: OnceLock::new() }))
            .collect();
        let text_parts = self
            .render_blocks(CARD_TEXT, &ctx, &CARD_TEXT_BLOCKS)?
            .into_iter()
            .map(|t| Arc::new(Fragment::new(t)))
            .collect();
        let parts = Arc::new(CardParts { html, text: text_parts });
        // Two threads may render the same card at once; both get the same text.
        Ok(Arc::clone(slot.get_or_init(|| parts)))
    }

    /// Renders the named blocks of a template, each once; a block the template does not
    /// define renders as nothing, so an override may leave one out.
    fn render_blocks(&self, name: &str, ctx: &Value, blocks: &[&str]) -> Result<Vec<String>> {
        let template = self.env.get_template(name).map_err(|e| template_error(None, name, None, &e))?;
        let error = |e: &minijinja::Error| {
            let at = e.name().unwrap_or(name);
            let source = self.env.get_template(at).ok().map(|t| t.source().to_string());
            let dir = self.dir.as_deref().filter(|d| d.join(at).is_file());
            template_error(dir, name, source.as_deref(), e)
        };
        let mut captured = template.render_captured(ctx).map_err(|e| error(&e))?;
        captured.with_state_mut(|state| {
            blocks
                .iter()
                .map(|block| match state.render_block(block) {
                    Ok(out) => Ok(out),
                    Err(e) if e.kind() == minijinja::ErrorKind::UnknownBlock => Ok(String::new()),
                    Err(e) => Err(error(&e)),
                })
                .collect()
        })
    }

    /// The chips and terms of a paper's matches, worked out once per distinct list.
    fn match_text(&self, matched: &[crate::model::Match]) -> Arc<MatchText> {
        let key = MatchText::key(matched);
        let same = |m: &&Arc<MatchText>| {
            m.matched.len() == matched.len()
                && m.matched.iter().zip(matched).all(|((t, f), m)| *t == m.term && *f == m.field)
        };
        if let Some(found) = self
            .matches
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .and_then(|v| v.iter().find(same))
        {
            return Arc::clone(found);
        }
        let text = Arc::new(MatchText {
            matched: matched.iter().map(|m| (m.term.clone(), m.field)).collect(),
            chips: Value::from(chips(matched)),
            terms: Value::from(terms(matched)),
        });
        let mut cache = self.matches.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_PAPERS {
            cache.clear();
        }
        cache.entry(key).or_default().push(Arc::clone(&text));
        text
    }

    /// An edition's dates as the templates show them, formatted once per day.
    fn edition(&self, day: NaiveDate) -> Value {
        if let Some(v) = self.editions.read().unwrap_or_else(PoisonError::into_inner).get(&day) {
            return v.clone();
        }
        let v = Value::from_serialize(Edition {
            iso: day.format("%Y-%m-%d").to_string(),
            long: day.format("%A, %-d %B %Y").to_string(),
            short: day.format("%b %-d").to_string(),
        });
        let mut cache = self.editions.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_PAPERS {
            cache.clear();
        }
        cache.insert(day, v.clone());
        v
    }

    /// A topic's name as a digest shows it, cleaned once.
    fn topic_name(&self, topic: &str) -> Value {
        if let Some(v) = self.topics.read().unwrap_or_else(PoisonError::into_inner).get(topic) {
            return v.clone();
        }
        let v = Value::from(clean(topic));
        let mut cache = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_PAPERS {
            cache.clear();
        }
        cache.insert(topic.to_string(), v.clone());
        v
    }

    /// A paper's text, worked out on first use. A renderer lives for one run, in which a
    /// paper id names one paper; the cheap fields are compared anyway, so a paper that
    /// changed under the same id is worked out again rather than shown stale.
    fn paper_text(&self, paper: &Paper) -> Arc<PaperText> {
        let fingerprint = PaperText::fingerprint(paper);
        if let Some(text) = self.papers.read().unwrap_or_else(PoisonError::into_inner).get(&paper.id)
            && text.fingerprint == fingerprint
        {
            return Arc::clone(text);
        }
        let text = Arc::new(PaperText::new(paper));
        let mut papers = self.papers.write().unwrap_or_else(PoisonError::into_inner);
        if papers.len() >= MAX_CACHED_PAPERS {
            papers.clear();
        }
        papers.insert(paper.id.clone(), Arc::clone(&text));
        text
    }
}

fn inline_error(mut message: String) -> Error {
    message.insert_str(0, "inlining CSS: ");
    Error::Render { name: HTML.into(), message }
}

/// Marks where a card's HTML goes in a rendered digest until the page around it has its
/// styles: `<!--paper-digest-card:K-->`, K counting the pieces of the digest's cards in
/// order. Nothing a paper or reader supplies can write it (text is escaped).
const PLACEHOLDER: &str = "<!--paper-digest-card:";
const PLACEHOLDER_END: &str = "-->";

/// The text part's placeholders: `\u{1}card:K\u{1}`. Control characters never reach a
/// template from a paper or a reader (text is cleaned of them), so one left over after
/// the cards went in means a template changed a placeholder.
const TEXT_MARK: char = '\u{1}';
const TEXT_PLACEHOLDER: &str = "\u{1}card:";
const TEXT_PLACEHOLDER_END: &str = "\u{1}";

/// Placeholders made once: a digest has at most a few hundred card pieces.
const SHARED_PLACEHOLDERS: usize = 256;

fn placeholder(k: usize) -> Value {
    static MADE: OnceLock<Vec<Value>> = OnceLock::new();
    let make = |k| Value::from_safe_string(format!("{PLACEHOLDER}{k}{PLACEHOLDER_END}"));
    match MADE.get_or_init(|| (0..SHARED_PLACEHOLDERS).map(make).collect()).get(k) {
        Some(v) => v.clone(),
        None => make(k),
    }
}

fn text_placeholder(k: usize) -> Value {
    static MADE: OnceLock<Vec<Value>> = OnceLock::new();
    let make = |k| Value::from(format!("{TEXT_PLACEHOLDER}{k}{TEXT_PLACEHOLDER_END}"));
    match MADE.get_or_init(|| (0..SHARED_PLACEHOLDERS).map(make).collect()).get(k) {
        Some(v) => v.clone(),
        None => make(k),
    }
}

/// `page` cut at its placeholders (`start`, a number, `end`), each replaced by its
/// fragment; a placeholder naming no fragment (an override that wrote one itself) stays
/// as it is.
fn segments<'a>(
    page: &'a str,
    start: &str,
    end: &str,
    fragment: impl Fn(usize) -> Option<&'a Arc<Fragment>>,
) -> Vec<Segment<'a>> {
    let mut out = Vec::with_capacity(32);
    let mut rest = page;
    let mut own = 0; // bytes of `rest` already known to be the page's own text
    while let Some(at) = rest[own..].find(start).map(|at| own + at) {
        let after = &rest[at + start.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let found = after[digits..]
            .starts_with(end)
            .then(|| after[..digits].parse().ok())
            .flatten()
            .and_then(&fragment);
        match found {
            Some(f) => {
                out.push(Segment::Own(&rest[..at]));
                out.push(Segment::Shared(f));
                rest = &after[digits + end.len()..];
                own = 0;
            }
            None => own = at + start.len(),
        }
    }
    out.push(Segment::Own(rest));
    out
}

/// The largest `k` in `0..n` for which `attempt(k)` fits, by bisection (a digest with
/// fewer cards is never larger); `None` when not even `k = 0` fits.
fn largest_fitting<R>(n: usize, attempt: impl Fn(usize) -> Result<(R, bool)>) -> Result<Option<R>> {
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
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Config {
        path: dir.to_path_buf(),
        line: None,
        column: None,
        key: Some("digest.templates".into()),
        message: format!("cannot read the templates folder: {e}; expected a folder of templates (relative to the config file)"),
    })?;
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

/// A template mistake is a configuration error (exit 78): it names the template's file
/// (in the override folder `dir`, or the built-in one), the line, and for an undefined
/// value the expression that was undefined, taken from the template's `source`.
fn template_error(dir: Option<&Path>, name: &str, source: Option<&str>, e: &minijinja::Error) -> Error {
    let at = e.name().unwrap_or(name);
    let path = match dir {
        Some(dir) => dir.join(at),
        None => std::path::PathBuf::from(format!("{at} (built-in template)")),
    };
    let expression = source
        .zip(e.range())
        .and_then(|(text, range)| Some((text.get(..range.start)?, text.get(range)?)))
        .map(|(before, at)| {
            let at = at.trim().trim_start_matches("{{").trim_end_matches("}}").trim();
            // A filter reports its own call (`wrap(72)`); the undefined name is what was piped in.
            match before.trim_end().strip_suffix('|') {
                Some(head) => {
                    let from = head.rfind(['{', '(', ',']).map_or(0, |i| i + 1);
                    let piped = head[from..].trim_start_matches(['{', '%', '-']).trim();
                    format!("`{piped}` is undefined (given to `{at}`)")
                }
                None => format!("`{at}` is undefined"),
            }
        })
        .filter(|s| s.len() <= 160);
    let mut message = match (e.kind(), &expression) {
        (minijinja::ErrorKind::UndefinedError, Some(expr)) => {
            format!("{expr}; misspelt? The names a template sees are listed in docs/email.md")
        }
        (kind, _) => match e.detail() {
            Some(detail) => format!("{kind}: {detail}"),
            None => kind.to_string(),
        },
    };
    if name != at {
        message = format!("{message} (rendering {name})");
    }
    let mut cause = std::error::Error::source(e);
    while let Some(inner) = cause {
        message = format!("{message}: {inner}");
        cause = inner.source();
    }
    Error::Config { path, line: e.line(), column: None, key: None, message }
}

/// Prints a value the way minijinja does, except that HTML escaping leaves `/` alone:
/// minijinja writes it as `&#x2f;`, which is valid but turns every URL in a digest into
/// `https:&#x2f;&#x2f;…` and costs bytes under Gmail's clip for no safety gained.
pub(crate) fn html_formatter(
    out: &mut minijinja::Output,
    state: &minijinja::State,
    value: &Value,
) -> std::result::Result<(), minijinja::Error> {
    match value.as_str() {
        Some(s) if state.auto_escape() == minijinja::AutoEscape::Html && !value.is_safe() => {
            let mut rest = s;
            while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
                out.write_str(&rest[..at])?;
                out.write_str(match rest.as_bytes()[at] {
                    b'&' => "&amp;",
                    b'<' => "&lt;",
                    b'>' => "&gt;",
                    b'"' => "&quot;",
                    _ => "&#39;",
                })?;
                rest = &rest[at + 1..];
            }
            out.write_str(rest).map_err(minijinja::Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// How many bytes of `s` match: counted in `u8`s a block at a time, which the compiler
/// turns into wide vector instructions (a digest is scanned three times per attempt).
fn count_bytes(s: &str, matches: impl Fn(u8) -> bool) -> usize {
    s.as_bytes()
        .chunks(255)
        .map(|block| usize::from(block.iter().fold(0u8, |n, &b| n + u8::from(matches(b)))))
        .sum()
}

/// Wrapped card lines (titles with their rank, meta and chip lines: the same for many
/// readers), by what was wrapped. Only indented text is kept: the footer's paragraph,
/// wrapped without an indent, names its reader and would only fill the cache.
#[derive(Debug, Default)]
struct WrapCache {
    lines: RwLock<HashMap<u64, Vec<(WrapKey, Value)>>>,
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct WrapKey {
    text: String,
    width: usize,
    first: String,
    indent: String,
}

/// Wrapped texts a renderer keeps; past this it starts afresh.
const MAX_WRAPPED: usize = 50_000;

impl WrapCache {
    fn get_or_wrap(&self, text: &str, width: usize, first: &str, indent: &str) -> Value {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one((text, width, first, indent));
        let same = |k: &WrapKey| k.width == width && k.text == text && k.first == first && k.indent == indent;
        if let Some(v) = self
            .lines
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&hash)
            .and_then(|list| list.iter().find(|(k, _)| same(k)))
            .map(|(_, v)| v.clone())
        {
            return v;
        }
        let v = Value::from(wrap(text, width, first, indent));
        let key = WrapKey { text: text.into(), width, first: first.into(), indent: indent.into() };
        let mut lines = self.lines.write().unwrap_or_else(PoisonError::into_inner);
        if lines.len() >= MAX_WRAPPED {
            lines.clear();
        }
        lines.entry(hash).or_default().push((key, v.clone()));
        v
    }
}

/// `{{ text | wrap(72, "   ") }}`: wraps at `width` columns; every line starts with
/// `indent`, the first with `first` when given.
fn wrap_filter(
    cache: &WrapCache,
    value: &Value,
    width: usize,
    indent: Option<&str>,
    first: Option<&str>,
) -> std::result::Result<Value, minijinja::Error> {
    // An undefined value (a misspelt name) is reported as such, so the error names it.
    let Some(text) = value.as_str() else {
        let kind = if value.is_undefined() {
            minijinja::ErrorKind::UndefinedError
        } else {
            minijinja::ErrorKind::InvalidOperation
        };
        return Err(minijinja::Error::new(kind, "`wrap` expects a string"));
    };
    let indent = indent.unwrap_or("");
    let first = first.unwrap_or(indent);
    if indent.is_empty() {
        return Ok(Value::from(wrap(text, width, first, indent)));
    }
    Ok(cache.get_or_wrap(text, width, first, indent))
}

/// `{{ n | plural("upvote") }}` → `1 upvote`, `2 upvotes`.
fn plural_filter(n: i64, singular: &str, plural: Option<&str>) -> String {
    match (n, plural) {
        (1, _) => format!("1 {singular}"),
        (_, Some(p)) => format!("{n} {p}"),
        (_, None) => format!("{n} {singular}s"),
    }
}

/// At least the bytes a body takes once encoded the way lettre encodes it: base64 when
/// more than a third of it needs escaping, else at most quoted-printable's size (7bit, for
/// short-lined ASCII, is smaller still). Quoted-printable turns every non-ASCII byte and
/// `=` into three bytes and breaks lines at 76 with `=` CRLF, so a digest in UTF-8 grows by
/// a tenth or more on the wire. An upper bound (by at most one soft break per line) that
/// costs one vectorized pass instead of an encoding.
fn transfer_size_bound(s: &str) -> usize {
    let unprintable = count_bytes(s, |b| !matches!(b, b'\t' | b' '..=b'~' | b'\n' | b'\r'));
    let equals = count_bytes(s, |b| b == b'=');
    let lines = 1 + count_bytes(s, |b| b == b'\n');
    if unprintable > s.len() / 3 {
        let b64 = s.len().div_ceil(3) * 4;
        return b64 + b64 / 76 * 2;
    }
    // Every escaped byte takes three; a soft line break ("=" CRLF) at most every 73
    // encoded characters; every LF becomes CRLF.
    let encoded = s.len() + 2 * (unprintable + equals);
    encoded + encoded / 73 * 3 + lines
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
    edition: Value,
    subscriber: SubscriberView,
    topics: Vec<String>,
    trending: bool,
    papers: Vec<PaperView>,
    unsubscribe_url: Option<String>,
    unsubscribe_email: Option<String>,
    manage_url: Option<String>,
    archive_url: Option<String>,
}

/// The root of every template's context.
#[derive(Debug, Serialize)]
struct Page<'a> {
    /// Empty while the subject itself is rendered.
    subject: &'a str,
    /// An [`Edition`].
    edition: &'a Value,
    subscriber: &'a SubscriberView,
    /// Every paper in this digest, whether shown as a card or a title line.
    count: usize,
    /// The topics these papers matched, in the subscriber's order.
    topics: &'a [String],
    /// The subscriber has no topics and gets the top trending papers.
    trending: bool,
    /// [`Card`]s.
    papers: Vec<Value>,
    /// [`Card`]s without a `summary`: title lines.
    more: Vec<Value>,
    /// Papers left out entirely (only when even title lines would not fit).
    hidden: usize,
    /// Whether abstracts were shortened to fit the size budget.
    shortened: bool,
    unsubscribe_url: Option<&'a str>,
    unsubscribe_email: Option<&'a str>,
    /// The reader's manage page (with `[web]`).
    manage_url: Option<&'a str>,
    /// This edition in the browser (with `[web]`).
    archive_url: Option<&'a str>,
}

/// A paper as the templates see it: its text, its place and matches in this digest, and
/// for a card the abstract at the length the layout chose (`summary`). An object rather
/// than a serialized map, so that rendering a digest copies none of the paper's text.
#[derive(Debug)]
struct Card {
    text: Arc<PaperText>,
    rank: usize,
    topic: Value,
    matched: Value,
    terms: Value,
    summary: Option<Summary>,
    more_like: Value,
    fewer_like: Value,
    /// For a card (not a title line): its paper-only parts, by block name (`main`,
    /// `links` as placeholders for the HTML; `authors`, `main` as text).
    html: Value,
    text_parts: Value,
}

impl Card {
    const FIELDS: &[&str] = &[
        "rank",
        "id",
        "title",
        "url",
        "authors",
        "summary_full",
        "summary_short",
        "topic",
        "matched",
        "terms",
        "upvotes",
        "comments",
        "links",
        "more_like",
        "fewer_like",
        // Last: title lines have no `summary`, `html` or `text`.
        "html",
        "text",
        "summary",
    ];
}

impl Object for Card {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let text = &self.text;
        Some(match key.as_str()? {
            "rank" => Value::from(self.rank),
            "id" => text.id.clone(),
            "title" => text.title.clone(),
            "url" => text.url.clone(),
            "authors" => text.authors.clone(),
            "summary" => match self.summary? {
                Summary::Full => text.summary_full.clone(),
                Summary::Short => text.summary_short.clone(),
            },
            "summary_full" => text.summary_full.clone(),
            "summary_short" => text.summary_short.clone(),
            "topic" => self.topic.clone(),
            "matched" => self.matched.clone(),
            "terms" => self.terms.clone(),
            "upvotes" => Value::from(text.upvotes),
            "comments" => Value::from(text.comments),
            "links" => text.links.clone(),
            "more_like" => self.more_like.clone(),
            "fewer_like" => self.fewer_like.clone(),
            "html" if self.summary.is_some() => self.html.clone(),
            "text" if self.summary.is_some() => self.text_parts.clone(),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let fields = Card::FIELDS;
        Enumerator::Str(if self.summary.is_some() { fields } else { &fields[..fields.len() - 3] })
    }
}

/// A paper as `card.html` and `card.txt` see it: only what is the same for every reader.
#[derive(Debug)]
struct PaperOnly {
    text: Arc<PaperText>,
    summary: Summary,
}

impl PaperOnly {
    const FIELDS: &[&str] = &[
        "id",
        "title",
        "url",
        "authors",
        "summary",
        "summary_full",
        "summary_short",
        "upvotes",
        "comments",
        "links",
    ];
}

impl Object for PaperOnly {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let text = &self.text;
        Some(match key.as_str()? {
            "id" => text.id.clone(),
            "title" => text.title.clone(),
            "url" => text.url.clone(),
            "authors" => text.authors.clone(),
            "summary" => match self.summary {
                Summary::Full => text.summary_full.clone(),
                Summary::Short => text.summary_short.clone(),
            },
            "summary_full" => text.summary_full.clone(),
            "summary_short" => text.summary_short.clone(),
            "upvotes" => Value::from(text.upvotes),
            "comments" => Value::from(text.comments),
            "links" => text.links.clone(),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(PaperOnly::FIELDS)
    }
}

/// A card's parts that depend on the paper alone, at one abstract length: rendered once
/// per paper per run from the blocks of `card.html` ([`CARD_HTML_BLOCKS`]) and `card.txt`
/// ([`CARD_TEXT_BLOCKS`]), and placed by every digest that shows the paper. The HTML
/// reaches the digest template as placeholders and is put in after the page around it got
/// its styles, already styled itself, so neither the template engine nor the style
/// splicing walks a card's title, abstract and links more than once a run.
#[derive(Debug)]
struct CardParts {
    html: Vec<Arc<HtmlPiece>>,
    text: Vec<Arc<Fragment>>,
}

/// One block of `card.html`: as rendered, and with the styles spliced in.
#[derive(Debug)]
struct HtmlPiece {
    raw: Arc<str>,
    /// The stylesheet (by address, for as long as the inliner keeps it) and the piece with
    /// its styles (and, made on first use, their transfer encoding).
    inlined: OnceLock<(usize, Arc<Fragment>)>,
}

impl HtmlPiece {
    /// The piece with `sheet`'s styles: worked out once and kept for the run's stylesheet.
    /// `None` when the splicing gives up (too many element shapes).
    fn inlined(
        &self,
        inliner: &Inliner,
        sheet: &Arc<inline::Sheet>,
    ) -> std::result::Result<Option<Arc<Fragment>>, String> {
        let key = Arc::as_ptr(sheet) as usize;
        if let Some((k, out)) = self.inlined.get()
            && *k == key
        {
            return Ok(Some(Arc::clone(out)));
        }
        let Some(out) = inliner.splice_with(&self.raw, sheet)? else {
            return Ok(None);
        };
        let out = Arc::new(Fragment::new(out));
        let _ = self.inlined.set((key, Arc::clone(&out)));
        Ok(Some(out))
    }
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

/// The chips and terms shown for one list of matches (term and field, in order).
#[derive(Debug)]
struct MatchText {
    matched: Vec<(String, crate::model::Field)>,
    /// Matched terms with the fields they matched in: `gaussian splatting · title, abstract`.
    chips: Value,
    /// Just the matched terms.
    terms: Value,
}

impl MatchText {
    fn key(matched: &[crate::model::Match]) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        static HASHER: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
        let mut h = HASHER.get_or_init(Default::default).build_hasher();
        for m in matched {
            m.term.hash(&mut h);
            m.field.hash(&mut h);
        }
        h.finish()
    }
}

/// A paper in one subscriber's digest.
#[derive(Debug)]
struct PaperView {
    rank: usize,
    text: Arc<PaperText>,
    /// The topic's cleaned name, or none.
    topic: Value,
    /// Matched terms with the fields they matched in: `gaussian splatting · title, abstract`.
    matched: Value,
    /// Just the matched terms, for the compact cards of a shortened digest.
    terms: Value,
    /// The vote links (with `[web]`), else none.
    more_like: Value,
    fewer_like: Value,
}

impl PaperView {
    /// The paper as a template sees it; `parts` and `first` (the index of its first HTML
    /// piece in the digest) for a card, none for a title line.
    /// The text part gets placeholders too (`text_first`), or with `literal` the cards'
    /// text itself.
    fn card(
        &self,
        summary: Option<Summary>,
        parts: Option<(&CardParts, usize, usize)>,
        literal: bool,
    ) -> Value {
        let (html, text_parts) = match parts {
            Some((parts, first, text_first)) => (
                CARD_HTML_BLOCKS
                    .iter()
                    .zip(first..)
                    .take(parts.html.len())
                    .map(|(b, k)| (*b, placeholder(k)))
                    .collect(),
                CARD_TEXT_BLOCKS
                    .iter()
                    .zip(text_first..)
                    .zip(&parts.text)
                    .map(|((b, k), text)| {
                        (*b, if literal { Value::from(text.text()) } else { text_placeholder(k) })
                    })
                    .collect(),
            ),
            None => (Value::UNDEFINED, Value::UNDEFINED),
        };
        Value::from_object(Card {
            html,
            text_parts,
            text: Arc::clone(&self.text),
            rank: self.rank,
            topic: self.topic.clone(),
            matched: self.matched.clone(),
            terms: self.terms.clone(),
            summary,
            more_like: self.more_like.clone(),
            fewer_like: self.fewer_like.clone(),
        })
    }
}

/// What a card shows that depends on the paper alone, shared by every digest of a run.
/// Held as template values (reference-counted strings), so handing them to a template
/// copies nothing.
#[derive(Debug)]
struct PaperText {
    /// Tells a changed paper from the one this was made from (see [`Renderer::paper_text`]).
    fingerprint: u64,
    id: Value,
    title: Value,
    /// The paper's page (https), if it has one; else none.
    url: Value,
    /// First three authors, then "et al.".
    authors: Value,
    summary_full: Value,
    summary_short: Value,
    upvotes: u32,
    comments: u32,
    /// arXiv, PDF, Code, Project: those known, each an https URL ([`LinkView`]s).
    links: Value,
    /// The card's rendered parts, by [`Summary`] level, made on first use.
    cards: [OnceLock<Arc<CardParts>>; 2],
}

#[derive(Debug, Serialize)]
struct LinkView {
    label: &'static str,
    url: String,
}

/// At most this many match chips per paper; more say little and cost bytes.
const MAX_CHIPS: usize = 4;

impl Digest {
    fn new(ctx: &DigestContext<'_>, links: Option<&ReaderLinks>, renderer: &Renderer) -> Self {
        let vote = |id: &PaperId| links.and_then(|l| l.votes.get(id));
        let sub = ctx.subscriber;
        let papers: Vec<PaperView> = ctx
            .papers
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let matched = renderer.match_text(&r.matched);
                PaperView {
                    rank: i + 1,
                    text: renderer.paper_text(r.paper),
                    topic: r.topic.as_deref().map_or(Value::from(()), |t| renderer.topic_name(t)),
                    matched: matched.chips.clone(),
                    terms: matched.terms.clone(),
                    more_like: Value::from(vote(&r.paper.id).map(|v| v.0.clone())),
                    fewer_like: Value::from(vote(&r.paper.id).map(|v| v.1.clone())),
                }
            })
            .collect();
        // The topics present, in the subscriber's order; all of them for an empty digest.
        let mut topics: Vec<String> = sub
            .topics
            .iter()
            .filter(|t| papers.iter().any(|p| p.topic.as_str() == Some(t.as_str())))
            .cloned()
            .collect();
        for p in &papers {
            if let Some(t) = p.topic.as_str()
                && !topics.iter().any(|have| have == t)
            {
                topics.push(t.to_string());
            }
        }
        if topics.is_empty() {
            topics.clone_from(&sub.topics);
        }
        Digest {
            edition: renderer.edition(ctx.edition),
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
            unsubscribe_url: match links {
                Some(l) => Some(l.unsubscribe.clone()),
                None => ctx.unsubscribe_url.and_then(https_url),
            },
            manage_url: links.map(|l| l.manage.clone()),
            archive_url: links.map(|l| l.archive.clone()),
            unsubscribe_email: ctx.unsubscribe_mailto.map(mailto_address).filter(|a| !a.is_empty()),
        }
    }

    /// The page at `layout`; the text part's cards as placeholders, or with `literal` as
    /// their text.
    fn page<'a>(
        &'a self,
        subject: &'a str,
        layout: Layout,
        parts: &[Arc<CardParts>],
        placeholders: bool,
    ) -> Page<'a> {
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
                .zip(parts)
                .scan((0, 0), |(first, text_first), (paper, parts)| {
                    let at = Some((&**parts, *first, *text_first));
                    let card = paper.card(Some(layout.summary), at, !placeholders);
                    *first += parts.html.len();
                    *text_first += parts.text.len();
                    Some(card)
                })
                .collect(),
            more: self.papers[cards..cards + listed]
                .iter()
                .map(|paper| paper.card(None, None, false))
                .collect(),
            hidden: self.papers.len() - cards - listed,
            shortened: layout.summary == Summary::Short,
            unsubscribe_url: self.unsubscribe_url.as_deref(),
            unsubscribe_email: self.unsubscribe_email.as_deref(),
            manage_url: self.manage_url.as_deref(),
            archive_url: self.archive_url.as_deref(),
        }
    }
}

impl PaperText {
    /// The fields that change when a source updates a paper, and the sizes of the rest.
    fn fingerprint(p: &Paper) -> u64 {
        let lengths = [
            p.title.len(),
            p.summary.len(),
            p.ai_summary.as_ref().map_or(0, String::len),
            p.authors.len(),
            p.url.as_ref().map_or(0, String::len),
            p.code_url.as_ref().map_or(0, String::len),
            p.project_url.as_ref().map_or(0, String::len),
        ];
        let mut fingerprint = u64::from(p.upvotes) << 32 | u64::from(p.comments);
        for len in lengths {
            fingerprint = fingerprint.rotate_left(9) ^ len as u64;
        }
        fingerprint
    }

    fn new(p: &Paper) -> Self {
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
        PaperText {
            fingerprint: Self::fingerprint(p),
            id: Value::from(p.id.to_string()),
            title: Value::from(title),
            url: Value::from(p.link().as_deref().and_then(https_url)),
            authors: Value::from(authors_line(&p.authors)),
            summary_full: Value::from(cut(Summary::Full)),
            summary_short: Value::from(cut(Summary::Short)),
            upvotes: p.upvotes,
            comments: p.comments,
            links: Value::from_serialize(&links),
            cards: [OnceLock::new(), OnceLock::new()],
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
    fn mailto_urls_show_as_addresses() {
        assert_eq!(mailto_address("mailto:off@example.org?subject=unsubscribe"), "off@example.org");
        assert_eq!(mailto_address("off@example.org"), "off@example.org");
    }

    #[test]
    fn transfer_size_bound_counts_quoted_printable_growth() {
        assert_eq!(transfer_size_bound("short ascii\n"), 12 + 2);
        // Two bytes escaped (=C3=A9), eleven plain, one line.
        assert_eq!(transfer_size_bound("é plus ascii"), 6 + 11 + 1);
        // A soft line break for every 73 encoded characters.
        assert_eq!(transfer_size_bound(&"a=".repeat(40)), 160 + 2 * 3 + 1);
        // Mostly non-ASCII: base64 is shorter, as lettre would pick.
        assert_eq!(transfer_size_bound(&"é".repeat(10)), 28);
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
