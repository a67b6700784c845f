//! Text as stored: control characters out, whitespace collapsed, markup stripped (with
//! `<sup>`/`<sub>` kept as Unicode scripts), titles and abstracts capped at a word or
//! sentence boundary. Rendering reuses the same cleaning and cutting for its cards.

use unicode_segmentation::UnicodeSegmentation;

/// Removes control characters (keeping none: newlines collapse like other spaces),
/// collapses runs of whitespace to one space and trims the ends.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = !out.is_empty();
        } else if c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
        {
            // Dropped: C0/C1 controls, zero-width and bidi overrides that can hide or
            // reorder text in a mail client.
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

/// The most characters a title keeps; a longer one is cut at a word and ends with `…`.
/// Real titles stay under 250; a 2 MB "title" would crowd every digest.
pub const MAX_TITLE_CHARS: usize = 300;

/// The most characters an abstract keeps. arXiv caps abstracts at 1,920 characters and
/// journals rarely exceed 3,000; blog posts carry whole articles.
pub const MAX_ABSTRACT_CHARS: usize = 5_000;

/// A title as stored: [`clean`]ed and capped at [`MAX_TITLE_CHARS`].
pub fn title(s: &str) -> String {
    truncate_words(&clean(s), MAX_TITLE_CHARS)
}

/// An abstract as stored: [`clean`]ed and capped at [`MAX_ABSTRACT_CHARS`], at a
/// sentence boundary when one is near the cap.
pub fn abstract_text(s: &str) -> String {
    let cleaned = clean(s);
    if cleaned.chars().count() <= MAX_ABSTRACT_CHARS {
        return cleaned;
    }
    first_sentences(&cleaned, usize::MAX, MAX_ABSTRACT_CHARS)
}

/// Elements whose content is not text a reader should see.
const HIDDEN: &[&str] = &["script", "style", "template", "noscript", "iframe", "head", "title", "svg"];

/// Elements after which words must not run together.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "td",
    "th",
    "tr",
    "ul",
];

/// The text of an HTML fragment (a feed's description or content): tags, comments,
/// `<meta>`, and the content of `<script>`, `<style>` and other hidden elements removed,
/// character references decoded once, a line break at every block element.
/// `<sup>2</sup>` becomes `²` where Unicode has the characters.
///
/// Parsing is html5ever's (through `scraper`). One thing is decided before it: abstracts
/// use `<` as "less than" (`p<0.05`, `a<b and c>d`), so a `<` that does not start a
/// comment, a declaration or a tag whose attributes all have values is read as text.
/// Pass the result through [`clean`] to collapse the whitespace.
pub fn html_to_text(s: &str) -> String {
    let s = head(s, MAX_HTML_BYTES);
    if !s.contains(['<', '&']) {
        return s.to_string();
    }
    text_of(&scraper::Html::parse_fragment(&guard_less_than(s, false)))
}

/// The most HTML read of one description. Its first 64 KB hold far more text than an
/// abstract keeps ([`MAX_ABSTRACT_CHARS`]), and HTML tree building slows down with
/// nesting depth (each new element looks through the open ones), so a 20 MB body of
/// nested `<div>`s must not reach the parser whole.
pub const MAX_HTML_BYTES: usize = 64 * 1024;

/// The most HTML read of one title: far more than [`MAX_TITLE_CHARS`] of text.
const MAX_TITLE_HTML_BYTES: usize = 4 * 1024;

/// A title that arrives as HTML (feeds): [`html_to_text`] of its first 4 KB, then [`title`].
pub fn html_title(s: &str) -> String {
    title(&html_to_text(head(s, MAX_TITLE_HTML_BYTES)))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// [`html_to_text`] for text whose character references were already decoded (an API's
/// abstract, a stored paper): tags go, but `&amp;` stays as written, so nothing is
/// decoded twice.
pub fn strip_tags(s: &str) -> String {
    let s = head(s, MAX_HTML_BYTES);
    if !s.contains('<') {
        return s.to_string();
    }
    text_of(&scraper::Html::parse_fragment(&guard_less_than(s, true)))
}

/// The visible text of a parsed fragment, walked without recursion (documents nest
/// arbitrarily deep).
fn text_of(doc: &scraper::Html) -> String {
    use ego_tree::iter::Edge;
    use scraper::Node;
    let mut out = String::new();
    let mut hidden = 0usize;
    // Where each open <sup>/<sub> started in `out`.
    let mut scripts: Vec<(bool, usize)> = Vec::new();
    for edge in doc.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Text(t) if hidden == 0 => out.push_str(t),
                Node::Element(e) => {
                    let name = e.name();
                    if HIDDEN.contains(&name) {
                        hidden += 1;
                    } else if BLOCKS.contains(&name) {
                        out.push('\n');
                    } else if matches!(name, "sup" | "sub") {
                        scripts.push((name == "sup", out.len()));
                    }
                }
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(e) = node.value() {
                    let name = e.name();
                    if HIDDEN.contains(&name) {
                        hidden = hidden.saturating_sub(1);
                    } else if BLOCKS.contains(&name) {
                        out.push('\n');
                    } else if matches!(name, "sup" | "sub")
                        && let Some((sup, start)) = scripts.pop()
                    {
                        let inner = out.split_off(start);
                        let mapped = if sup { superscript(&inner) } else { subscript(&inner) };
                        match mapped {
                            Some(m) => out.push_str(&m),
                            None => {
                                out.push(if sup { '^' } else { '_' });
                                out.push_str(&inner);
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// `s` with every `<` that would not open markup escaped as `&lt;` (and, for text that
/// is already decoded, every `&` as `&amp;`), so the HTML parser keeps them as text.
fn guard_less_than(s: &str, escape_ampersands: bool) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for (i, c) in s.char_indices() {
        match c {
            '<' if !opens_markup(&s[i..]) => out.push_str("&lt;"),
            '&' if escape_ampersands => out.push_str("&amp;"),
            _ => out.push(c),
        }
    }
    out
}

/// Whether `s` (starting with `<`) starts a comment, a `<!…>`/`<?…>` declaration, or a
/// tag: a name, then only `name=value` attributes, then `>` or `/>`. Valueless
/// attributes are legal HTML but rare in feed markup, while "a<b and c>d" is common
/// in abstracts.
fn opens_markup(s: &str) -> bool {
    // A tag longer than this is taken as text, so that many `<a x="` without a closing
    // quote cost linear time, not quadratic.
    const MAX_TAG_BYTES: usize = 8 * 1024;
    let b = &s.as_bytes()[..s.len().min(MAX_TAG_BYTES)];
    if matches!(b.get(1), Some(b'!' | b'?')) {
        return true;
    }
    let mut i = 1;
    if b.get(i) == Some(&b'/') {
        i += 1;
    }
    if !b.get(i).is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    while b.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b':' | b'-' | b'_')) {
        i += 1;
    }
    loop {
        let before = i;
        while b.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        match b.get(i) {
            Some(b'>') => return true,
            Some(b'/') if b.get(i + 1) == Some(&b'>') => return true,
            None => return false,
            _ if i == before => return false,
            _ => {}
        }
        let name = i;
        while b.get(i).is_some_and(|c| {
            !c.is_ascii_whitespace() && !matches!(c, b'=' | b'>' | b'/' | b'<' | b'"' | b'\'')
        }) {
            i += 1;
        }
        if i == name || b.get(i) != Some(&b'=') {
            return false;
        }
        i += 1;
        match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => match b[i + 1..].iter().position(|&c| c == q) {
                Some(end) => i += end + 2,
                None => return false,
            },
            _ => {
                let value = i;
                while b
                    .get(i)
                    .is_some_and(|c| !c.is_ascii_whitespace() && !matches!(c, b'>' | b'<' | b'"' | b'\''))
                {
                    i += 1;
                }
                if i == value {
                    return false;
                }
            }
        }
    }
}

/// `s` in Unicode superscript characters, or `None` when one of them has no such form.
pub fn superscript(s: &str) -> Option<String> {
    s.chars()
        .map(|c| {
            Some(match c {
                '0' => '⁰',
                '1' => '¹',
                '2' => '²',
                '3' => '³',
                '4'..='9' => char::from_u32(u32::from(c) - u32::from('4') + 0x2074)?,
                '+' => '⁺',
                '-' | '−' => '⁻',
                '=' => '⁼',
                '(' => '⁽',
                ')' => '⁾',
                'a' => 'ᵃ',
                'b' => 'ᵇ',
                'c' => 'ᶜ',
                'd' => 'ᵈ',
                'e' => 'ᵉ',
                'f' => 'ᶠ',
                'g' => 'ᵍ',
                'h' => 'ʰ',
                'i' => 'ⁱ',
                'j' => 'ʲ',
                'k' => 'ᵏ',
                'l' => 'ˡ',
                'm' => 'ᵐ',
                'n' => 'ⁿ',
                'o' => 'ᵒ',
                'p' => 'ᵖ',
                'r' => 'ʳ',
                's' => 'ˢ',
                't' => 'ᵗ',
                'u' => 'ᵘ',
                'v' => 'ᵛ',
                'w' => 'ʷ',
                'x' => 'ˣ',
                'y' => 'ʸ',
                'z' => 'ᶻ',
                'A' => 'ᴬ',
                'B' => 'ᴮ',
                'D' => 'ᴰ',
                'E' => 'ᴱ',
                'G' => 'ᴳ',
                'H' => 'ᴴ',
                'I' => 'ᴵ',
                'J' => 'ᴶ',
                'K' => 'ᴷ',
                'L' => 'ᴸ',
                'M' => 'ᴹ',
                'N' => 'ᴺ',
                'O' => 'ᴼ',
                'P' => 'ᴾ',
                'R' => 'ᴿ',
                'T' | '⊤' => 'ᵀ',
                'U' => 'ᵁ',
                'V' => 'ⱽ',
                'W' => 'ᵂ',
                'α' => 'ᵅ',
                'β' => 'ᵝ',
                'γ' => 'ᵞ',
                'δ' => 'ᵟ',
                'θ' => 'ᶿ',
                'φ' => 'ᵠ',
                'χ' => 'ᵡ',
                '∘' => '°',
                '*' | '∗' => '*',
                '′' | '\'' => '′',
                '†' | '‡' | '°' | 'ᵀ' => c,
                _ => return None,
            })
        })
        .collect()
}

/// `s` in Unicode subscript characters, or `None` when one of them has no such form.
pub fn subscript(s: &str) -> Option<String> {
    s.chars()
        .map(|c| {
            Some(match c {
                '0'..='9' => char::from_u32(u32::from(c) - u32::from('0') + 0x2080)?,
                '+' => '₊',
                '-' | '−' => '₋',
                '=' => '₌',
                '(' => '₍',
                ')' => '₎',
                'a' => 'ₐ',
                'e' => 'ₑ',
                'h' => 'ₕ',
                'i' => 'ᵢ',
                'j' => 'ⱼ',
                'k' => 'ₖ',
                'l' => 'ₗ',
                'm' => 'ₘ',
                'n' => 'ₙ',
                'o' => 'ₒ',
                'p' => 'ₚ',
                'r' => 'ᵣ',
                's' => 'ₛ',
                't' => 'ₜ',
                'u' => 'ᵤ',
                'v' => 'ᵥ',
                'x' => 'ₓ',
                'β' => 'ᵦ',
                'γ' => 'ᵧ',
                'ρ' => 'ᵨ',
                'φ' => 'ᵩ',
                'χ' => 'ᵪ',
                _ => return None,
            })
        })
        .collect()
}

/// Sentence fragments shorter than this ("et al.", "i.e.") are joined to the next one, so
/// that a cut never stops after an abbreviation.
const MIN_SENTENCE_CHARS: usize = 25;

/// The first sentences of `s`: at most `max_sentences`, and at most `max_chars` characters
/// as long as one whole sentence fits; a first sentence longer than that is cut at a word
/// boundary and ends with `…`. `s` should already be [`clean`]ed.
pub fn first_sentences(s: &str, max_sentences: usize, max_chars: usize) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut count = 0;
    let mut pending = String::new();
    for piece in s.split_sentence_bounds() {
        pending.push_str(piece);
        if pending.trim_end().chars().count() < MIN_SENTENCE_CHARS {
            continue;
        }
        let len = pending.trim_end().chars().count();
        if count == max_sentences || chars + len > max_chars {
            break;
        }
        out.push_str(&pending);
        chars += pending.chars().count();
        count += 1;
        pending.clear();
    }
    if count < max_sentences && chars + pending.trim_end().chars().count() <= max_chars {
        out.push_str(&pending);
    }
    if out.trim().is_empty() {
        return truncate_words(s, max_chars);
    }
    out.trim_end().to_string()
}

/// `s` cut to at most `max_chars` characters at a word boundary, with `…` when cut.
pub fn truncate_words(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let limit = s.char_indices().nth(max_chars.saturating_sub(1)).map_or(s.len(), |(i, _)| i);
    let head = &s[..limit];
    let cut = head.rfind(char::is_whitespace).filter(|&i| i > 0).unwrap_or(limit);
    let head = head[..cut]
        .trim_end_matches(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '(' | '-' | '–'));
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_collapses_whitespace_and_drops_controls() {
        assert_eq!(clean("  a\n\tb\u{0007}c\u{202E}d  "), "a bcd");
        assert_eq!(clean(""), "");
    }

    #[test]
    fn html_to_text_removes_markup_and_decodes_references_once() {
        assert_eq!(
            clean(&html_to_text("<p>We show <i>x</i> &amp; y.</p><p>Next</p>")),
            "We show x & y. Next"
        );
        assert_eq!(clean(&html_to_text("<jats:p>JATS</jats:p> &#8211; &#x3b1; &bogus;")), "JATS – α &bogus;");
        assert_eq!(html_to_text("<a href=\"https://x.org\" title='t'>link</a>"), "link");
        assert_eq!(html_to_text("&amp;lt;b&amp;gt; is a tag"), "&lt;b&gt; is a tag");
        assert_eq!(html_to_text("&lt;b&gt; is a tag"), "<b> is a tag");
    }

    #[test]
    fn comments_meta_scripts_and_styles_are_not_text() {
        let card = "<!-- twitter --> <meta name=\"twitter:card\" content=\"summary\"><!--kg-card-begin: markdown-->\
            <style>.x{color:red}</style><script>var a = 1 < 2;</script><p>The post.</p><!--kg-card-end: markdown-->\
            <custom-widget data-x=\"1\">Widget text</custom-widget>";
        assert_eq!(clean(&html_to_text(card)), "The post. Widget text");
    }

    #[test]
    fn strip_tags_keeps_less_than_signs_and_references_as_written() {
        assert_eq!(strip_tags("p<0.05 in <100 samples, a<b and c>d"), "p<0.05 in <100 samples, a<b and c>d");
        assert_eq!(strip_tags("H<sub>2</sub>O and x<sup>2</sup>, e<sup>iπ</sup>"), "H₂O and x², e^iπ");
        assert_eq!(clean(&strip_tags("<p>x &amp; y</p>")), "x &amp; y");
        assert_eq!(strip_tags("1 <b>2</b> 3 < 4"), "1 2 3 < 4");
    }

    #[test]
    fn titles_and_abstracts_are_capped_at_a_boundary() {
        let huge = "word ".repeat(400_000);
        let t = title(&huge);
        assert!(t.chars().count() <= MAX_TITLE_CHARS && t.ends_with("word…"), "{t}");
        let a = abstract_text(&"A sentence of words. ".repeat(1_000));
        assert!(a.chars().count() <= MAX_ABSTRACT_CHARS && a.ends_with("words."), "{}", &a[a.len() - 30..]);
        assert_eq!(title(" Short\n title "), "Short title");
    }

    #[test]
    fn an_ampersand_before_a_multi_byte_character_is_kept_as_text() {
        assert_eq!(strip_tags("Q&A for LLMs—a survey"), "Q&A for LLMs—a survey");
        assert_eq!(html_to_text("Q&A for LLMs—a survey"), "Q&A for LLMs—a survey");
        assert_eq!(html_to_text("R&D—β&γ;&—"), "R&D—β&γ;&—");
    }

    #[test]
    fn first_sentences_cuts_at_a_sentence_boundary() {
        let s = "The first sentence is here. Second one follows it, e.g. with an abbreviation. Third. Fourth sentence.";
        assert_eq!(first_sentences(s, 1, 400), "The first sentence is here.");
        assert_eq!(
            first_sentences(s, 2, 400),
            "The first sentence is here. Second one follows it, e.g. with an abbreviation."
        );
        // A short fragment ("Third.") joins its neighbour instead of counting alone.
        assert_eq!(first_sentences(s, 3, 400), s);
        // The character budget wins over the sentence count, but one sentence always shows.
        assert_eq!(first_sentences(s, 3, 30), "The first sentence is here.");
        assert_eq!(first_sentences("One very long sentence without any end", 2, 20), "One very long…");
    }

    #[test]
    fn truncate_words_stops_at_a_word_boundary() {
        assert_eq!(truncate_words("short", 10), "short");
        assert_eq!(truncate_words("alpha beta, gamma delta", 14), "alpha beta…");
    }
}
