//! Plain-text layout for the text part of a digest: paragraphs wrapped to a column width.

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
