//! The ranking's constants in one place, with the reasons for their values. See
//! docs/ranking.md for how they combine and which config keys adjust them per topic
//! or subscriber.

/// BM25 term-frequency saturation: the second occurrence of a keyword adds less than the
/// first, the tenth almost nothing. 1.2 is the textbook value.
pub const BM25_K1: f64 = 1.2;

/// BM25 length normalization per field (title, abstract). Titles are all short, so
/// their length says little; abstracts vary threefold and a long one mentions more
/// words by chance.
pub const BM25_B: [f64; 2] = [0.3, 0.75];

/// How much one occurrence counts per field (title, abstract) before saturation. A
/// keyword in the title is what the paper is about; in the abstract it may be an aside.
pub const FIELD_WEIGHT: [f64; 2] = [3.0, 1.0];

/// What a followed author adds to a topic score: about a rare keyword in the title.
pub const AUTHOR_SCORE: f64 = 5.0;

/// What a matching arXiv category adds: a weak signal, since one category holds
/// hundreds of papers a day.
pub const CATEGORY_SCORE: f64 = 1.0;

/// The topic score of a paper identical in wording to a liked one; a neighbour scores
/// this times its TF-IDF cosine similarity.
pub const LIKE_SCORE: f64 = 10.0;

/// Below this cosine similarity a paper is not a neighbour of a liked one: unrelated
/// abstracts share a few common words and land around 0.02–0.08.
pub const LIKE_MIN_SIMILARITY: f64 = 0.15;

/// Recency halves every this many days since publication.
pub const RECENCY_HALF_LIFE_DAYS: f64 = 2.0;
