//! Text hygiene shared by sources and rendering: control characters out, whitespace
//! collapsed, markup stripped.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_collapses_whitespace_and_drops_controls() {
        assert_eq!(clean("  a\n\tb\u{0007}c\u{202E}d  "), "a bcd");
        assert_eq!(clean(""), "");
    }
}
