//! The transfer encoding of a digest's parts, worked out once per card instead of once per
//! message.
//!
//! A digest's HTML and text parts travel as quoted-printable (RFC 2045 §6.7) whenever they
//! hold non-ASCII text or lines longer than 76 characters, which is nearly always. The
//! encoder counts a line's characters from the start of that line and ends every soft
//! line at a line break, so a fragment that starts at the start of a line and ends with a
//! line break encodes to the same bytes wherever it stands. A body whose fragments all
//! start and end at line boundaries is therefore encoded by concatenating the fragments'
//! encodings: the cards (the same for every reader) are encoded once per run, and each
//! digest encodes only the page around them. Where a fragment does not sit on line
//! boundaries (an override template may place one mid-line) the whole body is encoded as
//! before.
//!
//! The choice of encoding stays lettre's (`email_encoding`'s `Encoding::choose`, the one
//! `lettre::message::Body::new` makes), and the bytes are those of the `quoted_printable`
//! crate lettre uses, so a message is byte for byte the one lettre would build from the
//! same text.

use email_encoding::body::Encoding;
use std::sync::{Arc, OnceLock};

/// One part of a message: its text, and its quoted-printable encoding when lettre would
/// choose quoted-printable for it; `None` leaves the encoding (7bit or base64) to lettre.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part {
    pub text: String,
    pub quoted_printable: Option<Vec<u8>>,
}

/// A fragment shared by many bodies (a card's block), with its encoding made on first use.
#[derive(Debug)]
pub(super) struct Fragment {
    text: Arc<str>,
    encoded: OnceLock<Box<[u8]>>,
}

impl Fragment {
    pub(super) fn new(text: impl Into<Arc<str>>) -> Self {
        Fragment { text: text.into(), encoded: OnceLock::new() }
    }

    pub(super) fn text(&self) -> &str {
        &self.text
    }

    fn encoded(&self) -> &[u8] {
        self.encoded.get_or_init(|| encode(&self.text).into_boxed_slice())
    }
}

/// One stretch of a body: text of this message, or a shared fragment.
#[derive(Debug, Clone, Copy)]
pub(super) enum Segment<'a> {
    Own(&'a str),
    Shared(&'a Arc<Fragment>),
}

impl Segment<'_> {
    fn text(&self) -> &str {
        match self {
            Segment::Own(s) => s,
            Segment::Shared(f) => f.text(),
        }
    }
}

/// A body put together from segments, its encoding not made yet: a digest is laid out
/// (and maybe laid out again, shorter) on its text, and only the layout sent is encoded.
#[derive(Debug)]
pub(super) struct Assembled {
    text: String,
    /// Where each shared fragment starts in `text`; `None` when one does not sit on line
    /// boundaries, so the encoding must be made from the whole text.
    shared: Option<Vec<(usize, Arc<Fragment>)>>,
}

impl Assembled {
    /// The body made of `segments` in order.
    pub(super) fn new(segments: &[Segment<'_>]) -> Self {
        let len = segments.iter().map(|s| s.text().len()).sum();
        let mut text = String::with_capacity(len);
        let mut shared = Some(Vec::new());
        for segment in segments {
            if let Segment::Shared(f) = segment {
                let at_line_start = text.is_empty() || text.ends_with('\n');
                let ends_line = f.text.is_empty() || f.text.ends_with('\n');
                match &mut shared {
                    Some(list) if at_line_start && ends_line => list.push((text.len(), Arc::clone(f))),
                    _ => shared = None,
                }
            }
            text.push_str(segment.text());
        }
        Assembled { text, shared }
    }

    /// A body that is all the message's own text.
    pub(super) fn own(text: String) -> Self {
        Assembled { text, shared: Some(Vec::new()) }
    }

    pub(super) fn text(&self) -> &str {
        &self.text
    }

    pub(super) fn into_text(self) -> String {
        self.text
    }

    /// The part with its quoted-printable encoding when lettre would choose
    /// quoted-printable for the text: the shared fragments' encodings (made once) joined
    /// with the encoding of the text between them, or the whole text encoded when a
    /// fragment is off a line boundary.
    pub(super) fn into_part(self) -> Part {
        if Encoding::choose(self.text.as_str(), false) != Encoding::QuotedPrintable {
            return Part { text: self.text, quoted_printable: None };
        }
        let mut out = Vec::with_capacity(self.text.len() + self.text.len() / 8);
        let mut at = 0;
        for (start, fragment) in self.shared.iter().flatten() {
            encode_into(&self.text[at..*start], &mut out);
            out.extend_from_slice(fragment.encoded());
            at = start + fragment.text.len();
        }
        encode_into(&self.text[at..], &mut out);
        Part { text: self.text, quoted_printable: Some(out) }
    }
}

/// `text` in quoted-printable, line breaks as CRLF: what lettre sends for it.
pub(super) fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 8);
    encode_into(text, &mut out);
    out
}

fn encode_into(text: &str, out: &mut Vec<u8>) {
    if text.is_empty() {
        return;
    }
    // The encoder takes CRLF as a line break (a lone LF would be escaped), as lettre gives it.
    let crlf = crlf(text);
    out.extend_from_slice(&quoted_printable::encode(crlf.as_bytes()));
}

/// Every line break as CRLF, as lettre turns a `String` body before encoding it.
fn crlf(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\n') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    let mut rest = text;
    while let Some(at) = rest.find('\n') {
        let line = &rest[..at];
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push_str("\r\n");
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lettre_encoded(text: &str) -> Vec<u8> {
        lettre::message::Body::new_with_encoding(
            text.to_string(),
            lettre::message::header::ContentTransferEncoding::QuotedPrintable,
        )
        .map(lettre::message::Body::into_vec)
        .unwrap_or_default()
    }

    #[test]
    fn a_fragment_encodes_as_lettre_encodes_it() {
        let text = "Über Café-Szenen = 3D\n".to_string() + &"long line ".repeat(20) + "\ntrailing space \n";
        assert_eq!(encode(&text), lettre_encoded(&text));
    }

    #[test]
    fn fragments_off_line_boundaries_are_encoded_with_the_whole_text() {
        let card = Arc::new(Fragment::new("<p>é</p>\n"));
        let body = Assembled::new(&[Segment::Own("<td>"), Segment::Shared(&card), Segment::Own("</td>\n")]);
        assert!(body.shared.is_none());
        let part = body.into_part();
        assert_eq!(part.text, "<td><p>é</p>\n</td>\n");
        assert_eq!(part.quoted_printable, Some(lettre_encoded(&part.text)));
    }

    #[test]
    fn short_ascii_bodies_are_left_to_lettre_as_7bit() {
        let card = Arc::new(Fragment::new("plain ascii\n"));
        let body = Assembled::new(&[Segment::Own("head\n"), Segment::Shared(&card)]);
        assert!(body.into_part().quoted_printable.is_none());
    }

    /// Lines made of ASCII words, `=`, spaces, tabs and non-ASCII letters, some near or past
    /// 76 characters, some ending in spaces.
    fn lines() -> impl Strategy<Value = Vec<String>> {
        let piece = prop_oneof![
            Just("a".to_string()),
            Just(" ".to_string()),
            Just("\t".to_string()),
            Just("=".to_string()),
            Just("é".to_string()),
            Just("東".to_string()),
            Just("word ".to_string()),
            Just("x".repeat(70)),
            Just(".".to_string()),
        ];
        prop::collection::vec(prop::collection::vec(piece, 0..40).prop_map(|p| p.concat()), 1..12)
    }

    proptest! {
        #[test]
        fn concatenated_fragment_encodings_equal_the_whole_bodys_encoding(
            lines in lines(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            shared in prop::collection::vec(any::<bool>(), 6),
        ) {
            // Split the body at line starts into fragments, some shared, some the message's own.
            let text: String = lines.iter().flat_map(|l| [l.as_str(), "\n"]).collect();
            let starts: Vec<usize> = std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect();
            let mut at: Vec<usize> = cuts.iter().map(|c| starts[c.index(starts.len())]).collect();
            at.extend([0, text.len()]);
            at.sort_unstable();
            at.dedup();
            let fragments: Vec<Arc<Fragment>> =
                at.windows(2).map(|w| Arc::new(Fragment::new(&text[w[0]..w[1]]))).collect();
            let segments: Vec<Segment<'_>> = fragments
                .iter()
                .zip(shared.iter().cycle())
                .map(|(f, &s)| if s { Segment::Shared(f) } else { Segment::Own(f.text()) })
                .collect();
            let assembled = Assembled::new(&segments);
            prop_assert!(assembled.shared.is_some());
            let body = assembled.into_part();
            prop_assert_eq!(&body.text, &text);
            let whole = lettre_encoded(&text);
            prop_assert_eq!(&encode(&text), &whole);
            if let Some(qp) = &body.quoted_printable {
                prop_assert_eq!(qp, &whole);
                let decoded = quoted_printable::decode(qp, quoted_printable::ParseMode::Strict);
                prop_assert_eq!(decoded.ok(), Some(text.replace('\n', "\r\n").into_bytes()));
            }
            prop_assert_eq!(
                body.quoted_printable.is_some(),
                Encoding::choose(text.as_str(), false) == Encoding::QuotedPrintable
            );
        }
    }
}
