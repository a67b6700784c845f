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

/// Below this cosine similarity a paper is never a neighbour of a liked one: unrelated
/// abstracts share a few common words and land around 0.02–0.05.
pub const LIKE_MIN_SIMILARITY: f64 = 0.05;

/// A neighbour of a liked (or disliked) paper is one of its this many nearest candidates.
/// How similar two related abstracts are in absolute terms depends on their length and
/// the day's vocabulary (real abstracts on one subject often meet at only 0.10–0.15), so
/// neighbours are chosen by rank and by their similarity relative to the nearest one.
pub const NEIGHBOURS: usize = 10;

/// A neighbour is at least this fraction as similar as the nearest candidate, which
/// counts fully: what sits far below the nearest shares words, not a subject.
pub const NEIGHBOUR_RELATIVE: f64 = 0.6;

/// Recency halves every this many days since publication.
pub const RECENCY_HALF_LIFE_DAYS: f64 = 2.0;

/// A phrase whose words are not in a row still counts when they stand within this many
/// tokens of each other between two punctuation marks ("manipulation skills of a robotic
/// arm" for "robotic manipulation"): a sentence fragment, about one clause.
pub const PROXIMITY_WINDOW: usize = 8;

/// What a near (not consecutive) phrase occurrence counts, at most, against one in a row;
/// it shrinks with the window: phrase length / window.
pub const PROXIMITY_WEIGHT: f64 = 0.5;

/// A paper enters a topic only with a topic score of at least this fraction of the mean
/// of the day's [`FLOOR_REFERENCE`] best scores for the topic. A fifth of a solid match
/// is about one abstract mention of a distinctive keyword, while a passing mention of a
/// common one, or a single learned term, stays below it. Trending and recency are added
/// after this test, so they only reorder papers that passed it.
pub const FLOOR_FRACTION: f64 = 0.2;

/// How many of the day's best matches set the floor: enough that one outlier does not
/// raise it, few enough that a niche topic's handful of papers still counts as "solid".
pub const FLOOR_REFERENCE: usize = 5;

/// A keyword is judged ambiguous only when at least this many candidates use it: fewer
/// say nothing about its senses.
pub const AMBIGUITY_MIN_DF: usize = 3;

/// A keyword is ambiguous when fewer than this share of the candidates using it also
/// carry another keyword of the topic: most of its uses are in some other sense.
pub const AMBIGUITY_MIN_COHERENCE: f64 = 0.5;

/// What an ambiguous keyword counts when nothing else of the topic stands beside it:
/// enough to order such papers among themselves, not enough to pass the floor alone
/// unless it is in the title of a paper that says little else.
pub const ALONE_WEIGHT: f64 = 0.25;

/// Pseudo-relevance feedback reads the topic's this many best papers of the day, as in
/// RM3's usual setting of 10 feedback documents.
pub const FEEDBACK_DOCS: usize = 10;

/// Below this many papers over the floor there is too little to learn related terms from.
pub const FEEDBACK_MIN_DOCS: usize = 3;

/// How many related terms a topic learns per day.
pub const RELATED_TERMS: usize = 8;

/// A related term must appear in at least this many of the feedback papers, so that one
/// paper's pet word is not taken for the topic's.
pub const RELATED_MIN_DOCS: usize = 2;

/// The false discovery rate at which related terms are chosen: each word of the feedback
/// papers is tested for being over-represented there (Fisher's exact test against all the
/// day's candidates), and the Benjamini-Hochberg procedure keeps words so that about one
/// in twenty kept is expected to be chance. The usual 5%.
pub const RELATED_FDR: f64 = 0.05;

/// What nearness to the topic's core (the centroid of its best papers' TF-IDF vectors)
/// adds, in units of the day's floor, to a paper with keyword, author, category or liked
/// evidence that is at least as near as the median best paper. One floor is a fifth of
/// a solid match: enough to order papers with equal keyword evidence by how much they
/// read like the topic, never enough to stand in for a keyword.
pub const CORE_WEIGHT: f64 = 1.0;

/// What closeness in meaning (a static embedding, when configured) adds at most, in units
/// of the day's floor: a paper as close to the centroid of the topic's best papers as the
/// median of them gains one floor, enough to enter with no keyword; one as close as the
/// nearest of them gains this many. Two floors are two fifths of a solid keyword match,
/// so a paper found by meaning alone ranks under the papers that name the topic.
pub const MEANING_WEIGHT: f64 = 2.0;

/// What the strongest related term counts against a keyword of the same rarity; weaker
/// ones count in proportion to their feedback weight.
pub const RELATED_WEIGHT: f64 = 0.3;

/// A paper with no keyword, author, category or liked-paper match needs at least this
/// many distinct related terms to be considered.
pub const RELATED_MIN_MATCHED: usize = 2;

/// Rocchio feedback: a candidate identical to every liked paper gains this much topic
/// score; a neighbour gains it times its similarity relative to the liked paper's nearest
/// neighbour, averaged over the liked papers (only [`NEIGHBOURS`] move per vote). The same scale as
/// a topic's `like`, since a vote says the same thing.
pub const FEEDBACK_LIKE_SCORE: f64 = LIKE_SCORE;

/// Rocchio feedback: what a candidate identical to every disliked paper loses. Equal to
/// the pull of a like, so one vote each way cancels out on a shared neighbour.
pub const FEEDBACK_DISLIKE_SCORE: f64 = LIKE_SCORE;
