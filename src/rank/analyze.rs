//! Text analysis shared by the index and the topic queries: case and diacritic folding,
//! Unicode word segmentation, English stemming, and tolerant author-name matching.
//!
//! Papers and keywords go through the same [`Analyzer`], so "LLMs'" in an abstract and
//! "LLM" in a topic both become the token `llm`, and "LoRA" never matches inside
//! "exploration" because matching is on whole tokens, not substrings.

use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use unicode_segmentation::UnicodeSegmentation;

/// One piece of analyzed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// A stemmed word.
    Word(String),
    /// A run of hyphenated words written as one ("test-time", "pre-training"), stemmed as a
    /// single closed compound ("testtim", "pretrain"). It follows the `len` words it joins,
    /// so "pretraining" can match "pre-training" too.
    Joined { stem: String, len: usize },
    /// Punctuation that ends a phrase (".", ",", ";", brackets): "test. Time" is not
    /// the phrase "test time".
    Break,
}

/// Folds, segments and stems text. Cheap to create; holds no state between calls.
pub(crate) struct Analyzer {
    stemmer: Stemmer,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Analyzer(english)")
    }
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer { stemmer: Stemmer::create(Algorithm::English) }
    }
}

impl Analyzer {
    /// The stem of one already-folded word.
    pub(crate) fn stem(&self, folded_word: &str) -> String {
        // Snowball keeps an "s" with no vowel before it, so the acronym plurals that fill
        // ML titles ("LLMs", "GNNs") would not meet their singulars.
        if let Some(base) = folded_word.strip_suffix('s')
            && base.len() >= 2
            && base.bytes().all(|b| b.is_ascii_alphanumeric() && !b"aeiouy".contains(&b))
        {
            return base.to_string();
        }
        self.stemmer.stem(folded_word).into_owned()
    }

    /// Splits `text` into folded words and phrase breaks, calling `emit` for each piece
    /// with the word still unstemmed, so that callers can memoize stemming per word.
    ///
    /// Hyphens and apostrophes join rather than break: "test-time" is the two words
    /// `test`, `time` with nothing between them, "model's" is `model`.
    pub(crate) fn folded_pieces(text: &str, mut emit: impl FnMut(FoldedPiece<'_>)) {
        // Segmented twice in step, folded and as written: the written form tells an
        // acronym ("CLIP") from the word ("clipping", "Clip").
        let written = decompose(text);
        let folded = written.to_lowercase();
        let mut written_segments = written.split_word_bounds();
        // The words of the hyphen group being read: "state-of-the-art" is 4 words.
        let mut group: Vec<&str> = Vec::new();
        let mut prev = Prev::Other;
        for segment in folded.split_word_bounds() {
            let as_written = written_segments.next().unwrap_or(segment);
            if segment.chars().any(char::is_alphanumeric) {
                if prev != Prev::Hyphen {
                    flush(&mut group, &mut emit);
                }
                let mut written_words = split_inner(as_written).into_iter();
                for (i, w) in split_inner(segment).into_iter().enumerate() {
                    if i > 0 {
                        // An inner "." or ":" ("images.In") separates words, not groups.
                        flush(&mut group, &mut emit);
                    }
                    let caps = written_words.next().is_some_and(is_acronym);
                    emit(FoldedPiece::Word { word: w, caps });
                    group.push(w);
                }
                prev = Prev::Word;
            } else if segment.chars().all(char::is_whitespace) {
                prev = Prev::Other;
            } else if segment.chars().all(is_hyphen) && prev == Prev::Word {
                // One hyphen right after a word joins it to the next ("test-time");
                // a second one ("model--a") or a spaced one (" - ") is a dash.
                prev = Prev::Hyphen;
            } else if segment.chars().all(is_apostrophe) && prev == Prev::Word {
                // "LLMs'": a trailing apostrophe belongs to the word, it ends nothing.
                prev = Prev::Other;
            } else {
                flush(&mut group, &mut emit);
                emit(FoldedPiece::Break);
                prev = Prev::Other;
            }
        }
        flush(&mut group, &mut emit);
    }

    /// Folds, segments and stems `text` into pieces.
    pub(crate) fn pieces(&self, text: &str) -> Vec<Piece> {
        let mut out = Vec::new();
        Self::folded_pieces(text, |p| {
            out.push(match p {
                FoldedPiece::Word { word, .. } => Piece::Word(self.stem(word)),
                FoldedPiece::Joined { word, len } => Piece::Joined { stem: self.stem(word), len },
                FoldedPiece::Break => Piece::Break,
            });
        });
        out
    }

    /// The stemmed words of `text`, without breaks or joined forms: how a keyword is
    /// turned into a phrase.
    pub(crate) fn words(&self, text: &str) -> Vec<String> {
        self.pieces(text)
            .into_iter()
            .filter_map(|p| match p {
                Piece::Word(w) => Some(w),
                _ => None,
            })
            .collect()
    }

    /// The stemmed words of `text`, each with whether it was written as an acronym.
    pub(crate) fn words_with_caps(&self, text: &str) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        Self::folded_pieces(text, |p| {
            if let FoldedPiece::Word { word, caps } = p {
                out.push((self.stem(word), caps));
            }
        });
        out
    }

    /// The closed-compound form of a hyphenated keyword ("pre-training" → `pretrain`),
    /// when it has exactly one hyphen group spanning all its words.
    pub(crate) fn closed_compound(&self, text: &str) -> Option<String> {
        let pieces = self.pieces(text);
        let words = pieces.iter().filter(|p| matches!(p, Piece::Word(_))).count();
        match pieces.iter().find_map(|p| match p {
            Piece::Joined { stem, len } => Some((stem, *len)),
            _ => None,
        }) {
            Some((stem, len)) if len == words => Some(stem.clone()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prev {
    Word,
    Hyphen,
    Other,
}

/// Ends a hyphen group, emitting its closed compound when it joined several words.
fn flush(group: &mut Vec<&str>, emit: &mut impl FnMut(FoldedPiece<'_>)) {
    if group.len() > 1 {
        let joined: String = group.concat();
        emit(FoldedPiece::Joined { word: &joined, len: group.len() });
    }
    group.clear();
}

/// A piece before stemming; see [`Piece`].
#[derive(Debug)]
pub(crate) enum FoldedPiece<'t> {
    /// A folded word; `caps` when it was written as an acronym ("CLIP", "VLMs").
    Word {
        word: &'t str,
        caps: bool,
    },
    Joined {
        word: &'t str,
        len: usize,
    },
    Break,
}

/// Lowercases and strips diacritics: "Müller" → "muller", "ﬁne-Tuning" → "fine-tuning".
/// NFKD also maps compatibility forms (ligatures, full-width letters, superscripts) to
/// their plain letters.
///
/// An apostrophe between two letters or digits is dropped too, so "model's" reads as
/// "models" (stem `model`) and "hold'em" as "holdem"; UAX #29 would otherwise keep them
/// as words of their own.
pub(crate) fn fold(text: &str) -> String {
    decompose(text).to_lowercase()
}

/// [`fold`] without the lowercasing: NFKD, combining marks and inner apostrophes dropped.
fn decompose(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.nfkd().filter(|c| !is_combining_mark(*c)).peekable();
    let mut prev_alnum = false;
    while let Some(c) = chars.next() {
        if is_apostrophe(c) && prev_alnum && chars.peek().is_some_and(|n| n.is_alphanumeric()) {
            continue;
        }
        prev_alnum = c.is_alphanumeric();
        out.push(c);
    }
    out
}

/// Whether a word as written is an acronym: at least two letters, every letter upper
/// case, a plural "s" aside ("CLIP", "VLMs", "3DGS"; not "Clip", "NeRF", "LoRA", "A").
pub(crate) fn is_acronym(written: &str) -> bool {
    let word = written
        .strip_suffix('s')
        .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2)
        .unwrap_or(written);
    let letters = word.chars().filter(|c| c.is_alphabetic()).count();
    letters >= 2 && word.chars().all(|c| !c.is_alphabetic() || c.is_uppercase())
}

fn is_hyphen(c: char) -> bool {
    matches!(c, '-' | '\u{2010}' | '\u{2011}')
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{02BC}')
}

/// Splits one UAX #29 word into the words a reader sees. UAX #29 keeps "e.g" and
/// "images.In" (a missing space) as single words; here "." or ":" between letters splits,
/// while "1.5" stays one number.
fn split_inner(segment: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = segment.char_indices().collect();
    for (i, &(at, c)) in chars.iter().enumerate() {
        let splits = match c {
            '.' | ',' => {
                let digits_around = i > 0
                    && chars[i - 1].1.is_ascii_digit()
                    && chars.get(i + 1).is_some_and(|(_, n)| n.is_ascii_digit());
                !digits_around
            }
            ':' | '\u{00B7}' => true,
            _ => false,
        };
        if splits {
            push_word(&mut out, &segment[start..at]);
            start = at + c.len_utf8();
        }
    }
    push_word(&mut out, &segment[start..]);
    out
}

fn push_word<'t>(out: &mut Vec<&'t str>, word: &'t str) {
    let word = word.trim_matches(is_apostrophe);
    if !word.is_empty() {
        out.push(word);
    }
}

/// A person's name split for matching: the surname and the given names, folded.
/// "J. R. Smith", "Smith, John" and "John Smith" all have surname `smith`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    pub(crate) surname: String,
    pub(crate) given: Vec<String>,
}

impl Name {
    /// Parses a name as written in a paper or a topic. `None` when it holds no letters.
    pub(crate) fn parse(raw: &str) -> Option<Name> {
        let folded = fold(raw);
        // "Smith, John" puts the surname first.
        let (surname_part, given_part) = match folded.split_once(',') {
            Some((s, g)) if !s.trim().is_empty() && !g.trim().is_empty() => (s.to_string(), g.to_string()),
            _ => {
                let words = name_words(&folded);
                let (last, rest) = words.split_last()?;
                return Some(Name {
                    surname: (*last).to_string(),
                    given: rest.iter().map(|w| (*w).to_string()).collect(),
                });
            }
        };
        let surname = name_words(&surname_part).last()?.to_string();
        let given = name_words(&given_part).into_iter().map(str::to_string).collect();
        Some(Name { surname, given })
    }

    /// Whether a followed name (`self`, from a topic) refers to `author`: the surnames
    /// agree and each given name the two both have agrees, where an initial agrees with
    /// any name it starts ("J." ~ "John"). A bare surname follows every author of that name.
    pub(crate) fn matches(&self, author: &Name) -> bool {
        self.surname == author.surname
            && self.given.iter().zip(&author.given).all(|(a, b)| {
                a == b
                    || (a.chars().count() == 1 && b.starts_with(a.as_str()))
                    || (b.chars().count() == 1 && a.starts_with(b.as_str()))
            })
    }
}

/// The letter runs of a folded name: `j. r. smith-jones` → `j`, `r`, `smithjones`.
/// Hyphens inside a name are dropped so "Smith-Jones" is one surname.
fn name_words(folded: &str) -> Vec<&str> {
    folded
        .split(|c: char| c.is_whitespace() || matches!(c, '.' | ',' | '(' | ')'))
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        Analyzer::default().words(text)
    }

    #[test]
    fn folding_drops_case_and_diacritics() {
        assert_eq!(fold("Müller Ça ÉCOLE ﬁne"), "muller ca ecole fine");
    }

    #[test]
    fn plural_possessive_and_trailing_apostrophe_all_stem_to_one_token() {
        assert_eq!(words("LLMs' LLM's LLMs LLM"), ["llm", "llm", "llm", "llm"]);
    }

    #[test]
    fn hyphenated_words_are_separate_tokens_with_a_closed_form() {
        let pieces = Analyzer::default().pieces("test-time pre-training");
        assert_eq!(
            pieces,
            [
                Piece::Word("test".into()),
                Piece::Word("time".into()),
                Piece::Joined { stem: "testtim".into(), len: 2 },
                Piece::Word("pre".into()),
                Piece::Word("train".into()),
                Piece::Joined { stem: "pretrain".into(), len: 2 },
            ]
        );
    }

    #[test]
    fn punctuation_breaks_phrases_but_hyphens_do_not() {
        let pieces = Analyzer::default().pieces("a test. Time");
        assert!(pieces.contains(&Piece::Break));
    }

    #[test]
    fn a_missing_space_after_a_full_stop_still_splits_words_but_numbers_stay_whole() {
        assert_eq!(words("images.In 1.5B e.g."), ["imag", "in", "1.5b", "e", "g"]);
    }

    #[test]
    fn acronyms_are_all_capitals_with_an_optional_plural_s() {
        for yes in ["CLIP", "VLMs", "3DGS", "LLM", "RLHF"] {
            assert!(is_acronym(yes), "{yes}");
        }
        for no in ["Clip", "clipping", "NeRF", "LoRA", "A", "s", "ViT", "Ss"] {
            assert!(!is_acronym(no), "{no}");
        }
    }

    #[test]
    fn pieces_remember_which_words_were_written_as_acronyms() {
        let mut seen = Vec::new();
        Analyzer::folded_pieces("CLIP-guided Clipping of VLMs", |p| {
            if let FoldedPiece::Word { word, caps } = p {
                seen.push((word.to_string(), caps));
            }
        });
        let expect = [("clip", true), ("guided", false), ("clipping", false), ("of", false), ("vlms", true)];
        assert_eq!(seen, expect.map(|(w, c)| (w.to_string(), c)));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 300,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any text, however odd its scripts and punctuation, splits into lower-case
        /// words; a word marked as an acronym keeps at least two letters.
        #[test]
        fn any_text_splits_into_folded_words_and_acronym_marks_need_letters(text in "\\PC{0,80}") {
            let mut words = Vec::new();
            Analyzer::folded_pieces(&text, |p| {
                if let FoldedPiece::Word { word, caps } = p {
                    words.push((word.to_string(), caps));
                }
            });
            for (word, caps) in words {
                proptest::prop_assert!(!word.is_empty());
                proptest::prop_assert_eq!(word.to_lowercase(), word.clone());
                if caps {
                    proptest::prop_assert!(word.chars().filter(|c| c.is_alphabetic()).count() >= 2, "{}", word);
                }
            }
        }

        /// Acronym marks never change the words themselves: "CLIP" and "clip" fold alike.
        #[test]
        fn case_changes_only_the_acronym_marks(text in "[A-Za-z .,-]{0,60}") {
            let a = Analyzer::default();
            proptest::prop_assert_eq!(a.words(&text), a.words(&text.to_uppercase()));
        }
    }

    #[test]
    fn lora_is_not_a_word_inside_exploration() {
        assert!(!words("exploration exploratory laboratory").contains(&"lora".to_string()));
    }

    #[test]
    fn closed_compound_of_a_hyphenated_keyword() {
        let a = Analyzer::default();
        assert_eq!(a.closed_compound("pre-training").as_deref(), Some("pretrain"));
        assert_eq!(a.closed_compound("pretraining"), None);
        assert_eq!(a.closed_compound("large pre-training"), None);
    }

    #[test]
    fn an_initial_matches_the_full_given_name() {
        let follow = Name::parse("J. Smith").unwrap();
        assert!(follow.matches(&Name::parse("John Smith").unwrap()));
        assert!(follow.matches(&Name::parse("J. R. Smith").unwrap()));
        assert!(follow.matches(&Name::parse("Smith, John").unwrap()));
        assert!(!follow.matches(&Name::parse("Karl Smith").unwrap()));
        assert!(!follow.matches(&Name::parse("John Smithson").unwrap()));
    }

    #[test]
    fn names_match_across_diacritics() {
        let follow = Name::parse("Zoe Muller").unwrap();
        assert!(follow.matches(&Name::parse("Zoë Müller").unwrap()));
        assert!(Name::parse("Müller").unwrap().matches(&Name::parse("Zoë Müller").unwrap()));
    }

    #[test]
    fn a_name_without_letters_is_no_name() {
        assert_eq!(Name::parse(" . , "), None);
    }
}
