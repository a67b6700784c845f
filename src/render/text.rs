//! Plain-text layout for the text part of a digest: paragraphs wrapped to a column width.

use textwrap::core::{Word, display_width};
use textwrap::wrap_algorithms::wrap_first_fit;

/// Wraps `s` at `width` display columns for a plain-text mail (a CJK character takes two
/// columns, a combining mark none).
///
/// The first line starts with `first_indent`, the others with `indent`. Each input line
/// is wrapped on its own, first-fit. A word wider than a line is broken at the width of
/// the lines after the first (textwrap's rule), except URLs, which stay whole on a line
/// of their own so that terminals and mail clients can still open them.
pub fn wrap(s: &str, width: usize, first_indent: &str, indent: &str) -> String {
    let first_width = width.saturating_sub(display_width(first_indent));
    let rest_width = width.saturating_sub(display_width(indent));
    #[allow(clippy::cast_precision_loss, reason = "column counts are far below 2^52")]
    let line_widths = [first_width as f64, rest_width as f64];
    let mut out = String::with_capacity(s.len() + s.len() / width.max(1) * (indent.len() + 1));
    let mut words: Vec<Word<'_>> = Vec::new();
    for (n, line) in s.lines().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        words.clear();
        for word in line.split_whitespace() {
            let word = Word { word, whitespace: " ", penalty: "", width: display_width(word) };
            if word.width > rest_width && !word.word.contains("://") {
                words.extend(word.break_apart(rest_width));
            } else {
                words.push(word);
            }
        }
        if words.is_empty() {
            continue;
        }
        let widths = if n == 0 { &line_widths[..] } else { &line_widths[1..] };
        for (row, fitted) in wrap_first_fit(&words, widths).into_iter().enumerate() {
            if row > 0 {
                out.push('\n');
            }
            out.push_str(if n == 0 && row == 0 { first_indent } else { indent });
            for (k, word) in fitted.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                out.push_str(word.word);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn wide_characters_take_two_columns_and_combining_marks_none() {
        assert_eq!(wrap("日本語 日本語 日本語", 14, "", ""), "日本語 日本語\n日本語");
        let accented = "e\u{301}".repeat(8);
        assert_eq!(wrap(&format!("{accented} {accented}"), 17, "", ""), format!("{accented} {accented}"));
    }

    proptest::proptest! {
        #[test]
        fn no_line_is_wider_than_the_width_unless_it_is_a_url(
            s in "(\\PC{0,12}[ \n]){0,12}",
            width in 8usize..40,
        ) {
            for line in wrap(&s, width, "> ", "  ").lines() {
                proptest::prop_assert!(display_width(line) <= width || line.contains("://"), "{line:?}");
            }
        }
    }
}
