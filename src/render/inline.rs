//! CSS inlining, paid once per stylesheet and element shape instead of once per message.
//!
//! Gmail and Outlook drop or ignore much of a `<style>` block, so every element of a digest
//! carries its styles in a `style` attribute, put there by css-inline. Run on a whole digest
//! it parses the page and its stylesheet every time: about 1 ms for ten papers, more than
//! the rest of a render. But when the stylesheet's rules outside at-rules use only plain
//! selectors (`p`, `.card`, `td.card`, `.chip.topic`, `*`, and lists of them), what an
//! element gets depends on nothing but its tag and its own `class`, `style` and `width`
//! attributes. So css-inline is asked once per distinct element *shape*, on a small probe
//! document holding the stylesheet and that element, and its answer is spliced into the
//! start tags of every message. The `<style>` block is replaced by what css-inline keeps of
//! it (the `@media` rules), also computed once.
//!
//! Stylesheets whose selectors look at context (descendants, children, siblings, ids,
//! attributes, pseudo-classes), documents with more than one `<style>` block, and templates
//! that put per-message values into `class` or `style` attributes (more shapes than
//! [`MAX_SHAPES`]) go through css-inline whole, every message: slower, never wrong.

use css_inline::CSSInliner;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// Distinct stylesheets remembered; past this every new one is inlined the slow way.
const MAX_SHEETS: usize = 8;
/// Distinct element shapes remembered per stylesheet. A built-in digest has about forty.
const MAX_SHAPES: usize = 4096;

/// Inlines a stylesheet into a document's elements; see the module documentation.
pub(super) struct Inliner {
    whole: CSSInliner<'static>,
    /// Keyed by the text of the document's `<style>` element, start tag to end tag.
    sheets: RwLock<HashMap<String, Arc<Sheet>>>,
}

impl std::fmt::Debug for Inliner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sheets = self.sheets.read().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Inliner").field("sheets", &sheets).finish_non_exhaustive()
    }
}

/// What is known about one stylesheet.
pub(super) struct Sheet {
    /// The `<style>` element as the template wrote it.
    element: String,
    /// Whether every inlinable rule has a plain selector (so shapes can be cached).
    plain: bool,
    /// What css-inline leaves of the `<style>` element (its at-rules), or nothing.
    kept: String,
    /// Shape key → the attributes css-inline gives that shape, ready to splice.
    shapes: RwLock<HashMap<String, Arc<str>>>,
}

impl Inliner {
    pub(super) fn new() -> Self {
        let whole = CSSInliner::options()
            .load_remote_stylesheets(false)
            .keep_link_tags(false)
            .keep_at_rules(true)
            .minify_css(true)
            .apply_width_attributes(true)
            .build();
        Inliner { whole, sheets: RwLock::new(HashMap::new()) }
    }

    /// Inlines `html`'s stylesheet into its elements.
    pub(super) fn inline(&self, html: &str) -> Result<String, String> {
        match self.sheet_of(html)? {
            Some(sheet) if sheet.plain => match self.splice(html, &sheet)? {
                Some(out) => Ok(out),
                None => self.inline_whole(html),
            },
            _ => self.inline_whole(html),
        }
    }

    /// The document's stylesheet when it can be spliced (plain selectors); `None` sends the
    /// document through [`Inliner::inline`].
    pub(super) fn plain_sheet(&self, html: &str) -> Result<Option<Arc<Sheet>>, String> {
        Ok(self.sheet_of(html)?.filter(|sheet| sheet.plain))
    }

    /// Splices `sheet`'s styles into a document or a fragment of one: the same styles each
    /// element would get in the whole document, since a plain sheet's styles depend on the
    /// element alone. `None` when there are too many shapes (or a second `<style>`).
    pub(super) fn splice_with(&self, html: &str, sheet: &Sheet) -> Result<Option<String>, String> {
        self.splice(html, sheet)
    }

    /// css-inline over the whole document: the way for stylesheets that are not plain.
    pub(super) fn inline_whole(&self, html: &str) -> Result<String, String> {
        self.whole.inline(html).map(charset_first).map_err(|e| e.to_string())
    }

    /// The document's first `<style>` element, learnt on first sight; `None` when it has
    /// none, or too many stylesheets were seen already.
    fn sheet_of(&self, html: &str) -> Result<Option<Arc<Sheet>>, String> {
        let Some(style) = Tags::new(html).find(|t| t.name.eq_ignore_ascii_case("style")) else {
            return Ok(None);
        };
        let element = &html[style.start..style.content_end.map_or(style.end, |(_, end)| end)];
        if let Some(sheet) = self.sheets.read().unwrap_or_else(PoisonError::into_inner).get(element) {
            return Ok(Some(Arc::clone(sheet)));
        }
        if self.sheets.read().unwrap_or_else(PoisonError::into_inner).len() >= MAX_SHEETS {
            return Ok(None);
        }
        let css = style.content_end.map_or("", |(content_end, _)| &html[style.end..content_end]);
        let sheet = Arc::new(Sheet {
            element: element.to_string(),
            plain: plain_selectors(css),
            kept: self.kept_style(element)?,
            shapes: RwLock::new(HashMap::new()),
        });
        self.sheets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(element.to_string(), Arc::clone(&sheet));
        Ok(Some(sheet))
    }

    /// What css-inline keeps of a `<style>` element: the element as it serializes it, or
    /// nothing when no at-rules are left.
    fn kept_style(&self, element: &str) -> Result<String, String> {
        let out = self
            .whole
            .inline(&format!("<html><head>{element}</head><body></body></html>"))
            .map_err(|e| e.to_string())?;
        Ok(Tags::new(&out)
            .find(|t| t.name.eq_ignore_ascii_case("style"))
            .map(|t| out[t.start..t.content_end.map_or(t.end, |(_, end)| end)].to_string())
            .unwrap_or_default())
    }

    /// The fast path: copies `html`, giving every start tag the attributes css-inline gives
    /// its shape. `None` when the document has a second `<style>` element or more shapes
    /// than are worth remembering.
    fn splice(&self, html: &str, sheet: &Sheet) -> Result<Option<String>, String> {
        let mut out = String::with_capacity(html.len() + html.len() / 2);
        let mut copied = 0;
        let mut key = String::new();
        let mut styles = 0;
        for tag in Tags::new(html) {
            if tag.name.eq_ignore_ascii_case("style") {
                styles += 1;
                if styles > 1 {
                    return Ok(None);
                }
                out.push_str(&html[copied..tag.start]);
                out.push_str(&sheet.kept);
                copied = tag.content_end.map_or(tag.end, |(_, end)| end);
                continue;
            }
            if UNSTYLED.iter().any(|n| tag.name.eq_ignore_ascii_case(n)) {
                continue;
            }
            tag.shape_key(&mut key);
            let found =
                sheet.shapes.read().unwrap_or_else(PoisonError::into_inner).get(key.as_str()).cloned();
            let attrs = match found {
                Some(attrs) => attrs,
                None => {
                    if sheet.shapes.read().unwrap_or_else(PoisonError::into_inner).len() >= MAX_SHAPES {
                        return Ok(None);
                    }
                    let attrs: Arc<str> = self.probe(sheet, &tag)?.into();
                    sheet
                        .shapes
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key.clone(), Arc::clone(&attrs));
                    attrs
                }
            };
            if attrs.is_empty() && tag.style.is_none() {
                continue;
            }
            // The tag without its own `style` (css-inline merged it into the new one), then
            // the new attributes before the closing `>` or `/>`.
            out.push_str(&html[copied..tag.start]);
            let close = if html[..tag.end].ends_with("/>") { tag.end - 2 } else { tag.end - 1 };
            match tag.style {
                Some(style) => {
                    out.push_str(html[tag.start..style.0].trim_end());
                    out.push_str(&html[style.1..close]);
                }
                None => out.push_str(&html[tag.start..close]),
            }
            out.push_str(&attrs);
            out.push_str(&html[close..tag.end]);
            copied = tag.end;
        }
        out.push_str(&html[copied..]);
        Ok(Some(out))
    }

    /// Asks css-inline what one element shape gets: ` style="…"` and, for tables, cells and
    /// images without one, ` width="…"`.
    fn probe(&self, sheet: &Sheet, tag: &Tag<'_>) -> Result<String, String> {
        let name = tag.name.to_ascii_lowercase();
        let mut element = format!("<{name} data-paper-digest-probe");
        for range in [tag.class, tag.style, tag.width].into_iter().flatten() {
            element.push(' ');
            element.push_str(&tag.html[range.0..range.1]);
        }
        element.push('>');
        let (open, close) = match name.as_str() {
            "td" | "th" => ("<table><tr>", "</tr></table>"),
            "tr" | "thead" | "tbody" | "tfoot" | "caption" | "colgroup" => ("<table>", "</table>"),
            "col" => ("<table><colgroup>", "</colgroup></table>"),
            "li" => ("<ul>", "</ul>"),
            "dt" | "dd" => ("<dl>", "</dl>"),
            "option" | "optgroup" => ("<select>", "</select>"),
            _ => ("", ""),
        };
        let end = if VOID.contains(&name.as_str()) { String::new() } else { format!("</{name}>") };
        let head = format!("<head>{}</head>", sheet.element);
        let probe = match name.as_str() {
            "html" => format!("{element}{head}<body></body></html>"),
            "body" => format!("<html>{head}{element}</body></html>"),
            _ => format!("<html>{head}<body>{open}{element}{end}{close}</body></html>"),
        };
        let out = self.whole.inline(&probe).map_err(|e| e.to_string())?;
        let Some(found) = Tags::new(&out).find(|t| t.marker) else {
            return Err(format!("css-inline lost the <{name}> probe element"));
        };
        let style = found.value(found.style).map(|v| format!(" style=\"{v}\""));
        let width =
            found.value(found.width).filter(|_| tag.width.is_none()).map(|v| format!(" width=\"{v}\""));
        Ok(style.unwrap_or_default() + &width.unwrap_or_default())
    }
}

/// Elements that carry no styles of their own.
const UNSTYLED: &[&str] = &["head", "meta", "title", "link", "script", "base", "noscript", "template"];

const VOID: &[&str] =
    &["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"];

/// Moves `<meta charset>` to the top of `<head>`: css-inline puts the kept `@media` rules
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

/// Whether every rule outside an at-rule has only plain selectors: a tag, `*`, and classes,
/// in a comma-separated list, with nothing that looks at the element's context.
/// Conservative: anything it does not recognise makes it say no.
fn plain_selectors(css: &str) -> bool {
    let css = strip_comments(css);
    let mut rest = css.as_str();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return true;
        }
        let Some(open) = rest.find('{') else {
            return false;
        };
        let prelude = rest[..open].trim();
        let Some(close) = matching_brace(rest, open) else {
            return false;
        };
        // At-rules (`@media`, `@font-face`) stay in the `<style>` block and are never
        // inlined; what they hold does not matter here.
        if prelude.contains(';') || (!prelude.starts_with('@') && !prelude.split(',').all(plain_compound)) {
            return false;
        }
        rest = &rest[close + 1..];
    }
}

/// `td`, `.card`, `td.card.wide`, `*`.
fn plain_compound(selector: &str) -> bool {
    let s = selector.trim();
    !s.is_empty()
        && !s.ends_with('.')
        && !s.contains("..")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*'))
}

fn strip_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        rest = rest[start + 2..].find("*/").map_or("", |end| &rest[start + 2 + end + 2..]);
        out.push(' ');
    }
    out.push_str(rest);
    out
}

/// The index of the `}` closing the `{` at `open`.
fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in s.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Start tags

/// A start tag in a document. Ranges are byte offsets into the document.
#[derive(Debug)]
struct Tag<'a> {
    html: &'a str,
    name: &'a str,
    /// `<` to just past `>`.
    start: usize,
    end: usize,
    /// For raw-text elements (`style`, `script`, `title`, `textarea`): where their content
    /// ends and where their end tag ends.
    content_end: Option<(usize, usize)>,
    /// Whole attributes (`class="card"`), name to end of value.
    class: Option<(usize, usize)>,
    style: Option<(usize, usize)>,
    width: Option<(usize, usize)>,
    /// Has the `data-paper-digest-probe` attribute.
    marker: bool,
}

impl Tag<'_> {
    /// An attribute's value as written, without quotes.
    fn value(&self, attr: Option<(usize, usize)>) -> Option<&str> {
        let text = &self.html[attr?.0..attr?.1];
        let value = text.split_once('=')?.1.trim();
        // Only the enclosing quotes: a style may itself end in a quote (`'Segoe UI'`).
        for quote in ['"', '\''] {
            if let Some(inner) = value.strip_prefix(quote).and_then(|v| v.strip_suffix(quote)) {
                return Some(inner);
            }
        }
        Some(value)
    }

    /// What decides the styles css-inline gives this element.
    fn shape_key(&self, key: &mut String) {
        key.clear();
        key.push_str(self.name);
        for attr in [self.class, self.style, self.width] {
            key.push('\u{0}');
            if let Some((from, to)) = attr {
                key.push_str(&self.html[from..to]);
            }
        }
    }
}

/// The start tags of a document, in order, skipping comments, doctypes, end tags and the
/// content of raw-text elements. Written for the digests the templates produce (every
/// value escaped); on anything malformed it stops rather than guess.
struct Tags<'a> {
    html: &'a str,
    at: usize,
}

impl<'a> Tags<'a> {
    fn new(html: &'a str) -> Self {
        Tags { html, at: 0 }
    }
}

impl<'a> Iterator for Tags<'a> {
    type Item = Tag<'a>;

    fn next(&mut self) -> Option<Tag<'a>> {
        let html = self.html;
        let bytes = html.as_bytes();
        loop {
            let start = self.at + html.get(self.at..)?.find('<')?;
            let after = &html[start + 1..];
            if let Some(comment) = after.strip_prefix("!--") {
                self.at = start + 4 + comment.find("-->")? + 3;
                continue;
            }
            if after.starts_with(['!', '?', '/']) {
                self.at = start + 1 + after.find('>')? + 1;
                continue;
            }
            if !after.starts_with(|c: char| c.is_ascii_alphabetic()) {
                self.at = start + 1;
                continue;
            }
            let name_len = after.find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')?;
            let name = &after[..name_len];
            let mut tag = Tag {
                html,
                name,
                start,
                end: 0,
                content_end: None,
                class: None,
                style: None,
                width: None,
                marker: false,
            };
            // Attributes: name, then optionally `=` and a quoted or bare value.
            let mut i = start + 1 + name_len;
            loop {
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
                    i += 1;
                }
                if *bytes.get(i)? == b'>' {
                    break;
                }
                let attr_start = i;
                while i < bytes.len()
                    && !matches!(bytes[i], b'=' | b'>' | b'/')
                    && !bytes[i].is_ascii_whitespace()
                {
                    i += 1;
                }
                let attr_name = &html[attr_start..i];
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'=') {
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    match bytes.get(i)? {
                        &q @ (b'"' | b'\'') => i += 1 + html[i + 1..].find(char::from(q))? + 1,
                        _ => {
                            while i < bytes.len() && bytes[i] != b'>' && !bytes[i].is_ascii_whitespace() {
                                i += 1;
                            }
                        }
                    }
                }
                let range = Some((attr_start, i));
                if attr_name.eq_ignore_ascii_case("class") {
                    tag.class = range;
                } else if attr_name.eq_ignore_ascii_case("style") {
                    tag.style = range;
                } else if attr_name.eq_ignore_ascii_case("width") {
                    tag.width = range;
                } else if attr_name == "data-paper-digest-probe" {
                    tag.marker = true;
                }
            }
            tag.end = i + 1;
            self.at = tag.end;
            if RAW_TEXT.iter().any(|n| name.eq_ignore_ascii_case(n)) {
                let close = find_end_tag(&html[tag.end..], name)? + tag.end;
                let close_end = close + html[close..].find('>')? + 1;
                tag.content_end = Some((close, close_end));
                self.at = close_end;
            }
            return Some(tag);
        }
    }
}

const RAW_TEXT: &[&str] = &["style", "script", "title", "textarea", "xmp", "noframes", "noembed", "iframe"];

/// Where `</name` first occurs in `haystack`, in any case.
fn find_end_tag(haystack: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + haystack[from..].find("</")?;
        let rest = &haystack.as_bytes()[at + 2..];
        if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes()) {
            return Some(at);
        }
        from = at + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSS: &str = include_str!("../../templates/style.css");

    #[test]
    fn the_built_in_stylesheet_is_plain() {
        assert!(plain_selectors(CSS));
    }

    #[test]
    fn selectors_that_look_at_context_are_not_plain() {
        for css in [
            ".card .title { color: red }",
            "td > p { margin: 0 }",
            "p + p { margin: 0 }",
            "a:hover { color: red }",
            "#main { color: red }",
            "a[href] { color: red }",
            "p:first-child { margin: 0 }",
            "@import url(x.css); p { margin: 0 }",
            "p { color: red",
        ] {
            assert!(!plain_selectors(css), "{css}");
        }
        for css in ["p, .a, td.b.c, * { margin: 0 }", "/* .a .b */ .c { x: y } @media (x) { .a .b { x: y } }"]
        {
            assert!(plain_selectors(css), "{css}");
        }
    }

    #[test]
    fn tags_are_found_past_comments_and_raw_text() {
        let html = "<!DOCTYPE html><html><head><style>p > a { x: y }</style><title>a <b></title></head>\
                    <body><!-- <p class=\"no\"> --><p class='a b' data-x=\"1>2\">x</p><br/><td width=5></body></html>";
        let tags: Vec<_> = Tags::new(html).map(|t| t.name).collect();
        assert_eq!(tags, ["html", "head", "style", "title", "body", "p", "br", "td"]);
        let p = Tags::new(html).find(|t| t.name == "p").expect("a p");
        assert_eq!(p.value(p.class), Some("a b"));
        let quoted = Tags::new("<p style=\"font-family:'Segoe UI'\">").next().expect("a p");
        assert_eq!(quoted.value(quoted.style), Some("font-family:'Segoe UI'"));
        let td = Tags::new(html).find(|t| t.name == "td").expect("a td");
        assert_eq!(td.value(td.width), Some("5"));
    }

    /// The fast path gives each element exactly what css-inline gives it over the whole
    /// document.
    #[test]
    fn splicing_matches_inlining_the_whole_document() {
        let html = format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>{CSS}</style></head><body>\
             <div class=\"preheader\">pre</div><table class=\"page\" width=\"100%\"><tr><td class=\"outer\">\
             <table class=\"container\"><tr><td class=\"card\"><p class=\"meta\" style=\"color: red\">#1</p>\
             <span class=\"chip topic\">t</span><a class=\"link\" href=\"https://x\">x</a><br></td></tr>\
             <tr><td class=\"gap\" height=\"14\"></td></tr></table></td></tr></table></body></html>"
        );
        let inliner = Inliner::new();
        let fast = inliner.inline(&html).expect("inlines");
        let whole = inliner.inline_whole(&html).expect("inlines");
        assert_ne!(fast, whole, "the fast path was taken");
        // The HTML parser behind css-inline adds the `<tbody>` every table implies.
        let whole: Vec<_> = styles(&whole).into_iter().filter(|(name, ..)| name != "tbody").collect();
        assert_eq!(styles(&fast), whole);
        assert!(fast.contains("@media") && !fast.contains(".title-link{"), "{fast}");
    }

    fn styles(html: &str) -> Vec<(String, Option<String>, Option<String>)> {
        Tags::new(html)
            .filter(|t| !UNSTYLED.contains(&t.name) && t.name != "style")
            .map(|t| {
                let value = |attr| t.value(attr).map(str::to_string);
                (t.name.to_string(), value(t.style), value(t.width))
            })
            .collect()
    }
}
