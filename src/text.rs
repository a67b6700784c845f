//! Text hygiene shared by sources and rendering: control characters out, whitespace
//! collapsed, markup stripped, abstracts cut at sentence boundaries, plain text wrapped.

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

/// HTML elements that abstracts from feeds and APIs carry (arXiv's Atom `<p>`, JATS and
/// MathML from publishers). Only these are stripped, so `p<0.05` or `<100 samples` survive.
const KNOWN_TAGS: &[&str] = &[
    "a",
    "abbr",
    "annotation",
    "b",
    "big",
    "blockquote",
    "br",
    "cite",
    "code",
    "dd",
    "div",
    "dl",
    "dt",
    "em",
    "font",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "math",
    "mfrac",
    "mi",
    "mn",
    "mo",
    "mrow",
    "msub",
    "msubsup",
    "msup",
    "ol",
    "p",
    "pre",
    "s",
    "semantics",
    "small",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "tt",
    "u",
    "ul",
];

/// Elements after which words must not run together.
const BLOCK_TAGS: &[&str] = &[
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "table",
    "td",
    "th",
    "tr",
    "ul",
];

/// Removes HTML tags and decodes character references, for abstracts that arrive as HTML.
///
/// `<sup>2</sup>` becomes `²` where Unicode has the characters. Anything that is not a
/// well-formed tag of a known HTML element stays, because abstracts use `<` as "less than".
/// The result may hold runs of spaces: pass it through [`clean`] afterwards.
pub fn strip_tags(s: &str) -> String {
    if !s.contains(['<', '&']) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(['<', '&']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with('&') {
            if let Some((decoded, len)) = entity(rest) {
                out.push(decoded);
                rest = &rest[len..];
            } else {
                out.push('&');
                rest = &rest[1..];
            }
            continue;
        }
        match tag(rest) {
            Some(Tag { name, closing: false, len }) if name == "sup" || name == "sub" => {
                let body = &rest[len..];
                let end = format!("</{name}>");
                let close = body.find(&end).or_else(|| body.find(&end.to_uppercase()));
                match close.map(|c| (&body[..c], c)) {
                    Some((inner, c)) if !inner.contains('<') => {
                        let inner = strip_tags(inner);
                        let mapped = if name == "sup" { superscript(&inner) } else { subscript(&inner) };
                        out.push_str(
                            &mapped.unwrap_or_else(|| {
                                format!("{}{inner}", if name == "sup" { '^' } else { '_' })
                            }),
                        );
                        rest = &body[c + end.len()..];
                    }
                    _ => rest = body,
                }
            }
            Some(t) => {
                if BLOCK_TAGS.contains(&t.name.as_str()) {
                    out.push(' ');
                }
                rest = &rest[t.len..];
            }
            None => {
                out.push('<');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

struct Tag {
    name: String,
    closing: bool,
    len: usize,
}

/// Parses a tag at the start of `s` (which starts with `<`): a known element name, then
/// nothing but `name=value` attributes up to `>`.
fn tag(s: &str) -> Option<Tag> {
    let b = s.as_bytes();
    let mut i = 1;
    let closing = b.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b':' || b[i] == b'-') {
        i += 1;
    }
    let name = s[start..i].to_ascii_lowercase();
    let local = name.rsplit(':').next().unwrap_or_default();
    let namespaced = name.starts_with("jats:") || name.starts_with("mml:");
    if !(KNOWN_TAGS.contains(&local) || namespaced && !local.is_empty()) {
        return None;
    }
    loop {
        let before = i;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        match b.get(i)? {
            b'>' => return Some(Tag { name: local.to_string(), closing, len: i + 1 }),
            b'/' if b.get(i + 1) == Some(&b'>') => {
                return Some(Tag { name: local.to_string(), closing, len: i + 2 });
            }
            _ if i == before => return None, // attributes must be separated by space
            _ => {}
        }
        let attr = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'-' | b'_' | b':' | b'.')) {
            i += 1;
        }
        if i == attr {
            return None;
        }
        // Valueless attributes are legal HTML but rare in abstracts, while "a<b and c>d"
        // is common: only `name=value` counts.
        if b.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        match b.get(i)? {
            q @ (b'"' | b'\'') => {
                let end = s[i + 1..].find(char::from(*q))?;
                i += end + 2;
            }
            _ => {
                let v = i;
                while i < b.len()
                    && !b[i].is_ascii_whitespace()
                    && !matches!(b[i], b'>' | b'<' | b'"' | b'\'')
                {
                    i += 1;
                }
                if i == v {
                    return None;
                }
            }
        }
    }
}

/// Decodes one character reference at the start of `s`: the character and the bytes used.
fn entity(s: &str) -> Option<(char, usize)> {
    // The longest reference we decode (`&#x10FFFF;`) is 10 bytes: look no further, and
    // never slice inside a multi-byte character that may follow a bare `&`.
    let end = s.char_indices().take(12).find(|&(_, c)| c == ';').map(|(i, _)| i)?;
    let body = &s[1..end];
    let c = if let Some(num) = body.strip_prefix('#') {
        let n = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        char::from_u32(n).filter(|c| !c.is_control() || c.is_whitespace())?
    } else {
        match body {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => ' ',
            "ndash" => '–',
            "mdash" => '—',
            "hellip" => '…',
            "lsquo" => '‘',
            "rsquo" => '’',
            "ldquo" => '“',
            "rdquo" => '”',
            "times" => '×',
            "middot" => '·',
            "le" => '≤',
            "ge" => '≥',
            "alpha" => 'α',
            "beta" => 'β',
            "gamma" => 'γ',
            "delta" => 'δ',
            "lambda" => 'λ',
            "mu" => 'μ',
            "sigma" => 'σ',
            "pi" => 'π',
            _ => return None,
        }
    };
    Some((c, end + 1))
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

/// Wraps `s` at `width` columns (counted in characters) for a plain-text mail.
///
/// The first line starts with `first_indent`, the others with `indent`. Each input line
/// is wrapped on its own. A word longer than a line is split, except URLs, which stay
/// whole on a line of their own so that terminals and mail clients can still open them.
pub fn wrap(s: &str, width: usize, first_indent: &str, indent: &str) -> String {
    let indent_cols = indent.chars().count();
    let mut out = String::with_capacity(s.len() + s.len() / width.max(1) * (indent.len() + 1));
    for (n, line) in s.lines().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let mut prefix = if n == 0 { first_indent } else { indent };
        // Columns used on the current output line; `None` until its first word.
        let mut col: Option<usize> = None;
        for word in line.split_whitespace() {
            let len = word.chars().count();
            if col.is_some_and(|c| c + 1 + len > width) {
                out.push('\n');
                prefix = indent;
                col = None;
            }
            let mut at = match col {
                Some(c) => {
                    out.push(' ');
                    c + 1
                }
                None => {
                    out.push_str(prefix);
                    prefix.chars().count()
                }
            };
            if at + len > width && !word.contains("://") {
                // No line is long enough for this word: break it where the line ends.
                for c in word.chars() {
                    if at >= width {
                        out.push('\n');
                        out.push_str(indent);
                        at = indent_cols;
                    }
                    out.push(c);
                    at += 1;
                }
            } else {
                out.push_str(word);
                at += len;
            }
            col = Some(at);
        }
    }
    out
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
    fn strip_tags_removes_html_but_keeps_less_than_signs() {
        assert_eq!(clean(&strip_tags("<p>We show <i>x</i> &amp; y.</p><p>Next</p>")), "We show x & y. Next");
        assert_eq!(strip_tags("p<0.05 in <100 samples, a<b and c>d"), "p<0.05 in <100 samples, a<b and c>d");
        assert_eq!(strip_tags("H<sub>2</sub>O and x<sup>2</sup>, e<sup>iπ</sup>"), "H₂O and x², e^iπ");
        assert_eq!(clean(&strip_tags("<jats:p>JATS</jats:p> &#8211; &#x3b1; &bogus;")), "JATS – α &bogus;");
        assert_eq!(strip_tags("<a href=\"https://x.org\" title='t'>link</a>"), "link");
    }

    #[test]
    fn an_ampersand_before_a_multi_byte_character_is_kept_as_text() {
        assert_eq!(strip_tags("Q&A for LLMs—a survey"), "Q&A for LLMs—a survey");
        assert_eq!(strip_tags("R&D—β&γ;&—"), "R&D—β&γ;&—");
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

    #[test]
    fn wrap_fills_lines_up_to_the_width() {
        let s = "the quick brown fox jumps over the lazy dog";
        assert_eq!(wrap(s, 16, "", ""), "the quick brown\nfox jumps over\nthe lazy dog");
        assert_eq!(wrap(s, 20, " 1. ", "    "), " 1. the quick brown\n    fox jumps over\n    the lazy dog");
        // URLs stay whole; other overlong words are broken.
        let url = "https://example.org/a/very/long/path/that/does/not/fit";
        assert_eq!(wrap(&format!("see {url} now"), 20, "", ""), format!("see\n{url}\nnow"));
        assert_eq!(wrap("abcdefghij", 4, "", ""), "abcd\nefgh\nij");
        assert_eq!(wrap("a\n\nb", 10, "> ", "> "), "> a\n\n> b");
    }
}
