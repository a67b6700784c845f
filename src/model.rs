//! Plain data that flows through the pipeline: papers, their ids, and ranked results.
//! No I/O here; every other module speaks in these types.

use chrono::{DateTime, Utc, Weekday};
use chrono_tz::Tz;
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The key a paper is stored under, whatever source it came from.
///
/// An arXiv paper is keyed by its normalized arXiv id without version (`2411.16500`,
/// `hep-th/9901001`); anything else by `doi:<lowercased DOI>` or, failing that,
/// `url:<canonical URL>`. [`PaperId::parse`] (beside the normalizers in
/// [`crate::source::ids`]) builds one from any spelling.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PaperId(pub String);

impl PaperId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The arXiv id when this paper is an arXiv paper.
    pub fn arxiv(&self) -> Option<&str> {
        if self.0.starts_with("doi:") || self.0.starts_with("url:") { None } else { Some(&self.0) }
    }
}

impl fmt::Display for PaperId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One paper as the pipeline knows it after fetching (and merging across sources).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Paper {
    pub id: PaperId,
    pub title: String,
    /// The abstract, cleaned of control characters and with whitespace collapsed.
    pub summary: String,
    pub authors: Vec<String>,
    pub published: Option<DateTime<Utc>>,
    /// Hugging Face upvotes: the trending signal. Zero when the source has none.
    pub upvotes: u32,
    pub comments: u32,
    /// Hugging Face's one-sentence AI summary, when it has one.
    pub ai_summary: Option<String>,
    /// Keywords a source attached (HF `ai_keywords`).
    pub keywords: Vec<String>,
    /// arXiv categories (`cs.CV`, ...).
    pub categories: Vec<String>,
    /// The paper's page: the HF paper page, the arXiv abstract, or the feed item's link.
    pub url: Option<String>,
    pub code_url: Option<String>,
    pub project_url: Option<String>,
    /// The names of every source that reported this paper (`huggingface`, `arxiv`, feed names).
    pub sources: Vec<String>,
}

impl Paper {
    /// `https://arxiv.org/abs/ID` for arXiv papers.
    pub fn arxiv_abs_url(&self) -> Option<String> {
        self.id.arxiv().map(|id| format!("https://arxiv.org/abs/{id}"))
    }

    /// `https://arxiv.org/pdf/ID` for arXiv papers.
    pub fn arxiv_pdf_url(&self) -> Option<String> {
        self.id.arxiv().map(|id| format!("https://arxiv.org/pdf/{id}"))
    }

    /// The best link for the title: the paper's page, else its arXiv abstract.
    pub fn link(&self) -> Option<String> {
        self.url.clone().or_else(|| self.arxiv_abs_url())
    }
}

/// Where in a paper a term matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Title,
    Abstract,
    Author,
    Category,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Title => "title",
            Field::Abstract => "abstract",
            Field::Author => "author",
            Field::Category => "category",
        })
    }
}

/// One reason a paper ranked: a topic term found in a field, and what it added to the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    pub term: String,
    pub field: Field,
    pub contribution: f64,
}

/// A paper with its score for one subscriber and the reasons for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked<'a> {
    pub paper: &'a Paper,
    pub score: f64,
    /// The topic that gave the best score; `None` for a trending-only subscriber.
    pub topic: Option<String>,
    pub matched: Vec<Match>,
}

/// How often a subscriber gets a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    #[default]
    Daily,
    Weekly,
}

/// How far a source's text is trusted. The APIs (Hugging Face, arXiv) give clean titles,
/// abstracts and author lists; a feed gives whatever its HTML held.
pub fn source_rank(source: &str) -> u8 {
    match source {
        "huggingface" | "arxiv" => 2,
        _ => 1,
    }
}

impl Paper {
    /// The rank of the best source that reported this paper.
    pub fn rank(&self) -> u8 {
        self.sources.iter().map(|s| source_rank(s)).max().unwrap_or(0)
    }

    /// Folds what another report of the same paper says into this one.
    ///
    /// A second report from the very same source(s) (the paper listed twice, or fetched
    /// again on a later run) replaces this one whole, so a record never mixes one report's
    /// title with another's votes. Otherwise each text field (title, abstract, authors,
    /// link) comes from the better-ranked source ([`source_rank`]: APIs over feeds), and a
    /// field one source left empty is filled by the other; counts take the highest value,
    /// the publication date the earliest, and keywords, categories and sources the union.
    pub fn merge(&mut self, other: Paper) {
        debug_assert_eq!(self.id, other.id);
        if !self.sources.is_empty() && self.sources == other.sources {
            *self = other;
            return;
        }
        let better = other.rank() > self.rank();
        take(&mut self.title, other.title, better);
        take(&mut self.summary, other.summary, better);
        if !other.authors.is_empty() && (better || self.authors.is_empty()) {
            self.authors = other.authors;
        }
        self.published = match (self.published, other.published) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.upvotes = self.upvotes.max(other.upvotes);
        self.comments = self.comments.max(other.comments);
        if self.ai_summary.is_none() {
            self.ai_summary = other.ai_summary;
        }
        union(&mut self.keywords, other.keywords);
        union(&mut self.categories, other.categories);
        union(&mut self.sources, other.sources);
        if other.url.is_some() && (better || self.url.is_none()) {
            self.url = other.url;
        }
        self.code_url = self.code_url.take().or(other.code_url);
        self.project_url = self.project_url.take().or(other.project_url);
    }
}

/// `from` replaces `into` when it is better ranked or `into` is empty; never by nothing.
fn take(into: &mut String, from: String, better: bool) {
    if !from.is_empty() && (better || into.is_empty()) {
        *into = from;
    }
}

fn union(into: &mut Vec<String>, from: Vec<String>) {
    for s in from {
        if !into.contains(&s) {
            into.push(s);
        }
    }
}

/// A named interest: the words, authors, categories and liked papers that make a paper
/// match, validated from `[topics.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    pub name: String,
    pub keywords: Vec<String>,
    pub exclude: Vec<String>,
    pub require: Vec<String>,
    pub authors: Vec<String>,
    pub categories: Vec<String>,
    pub weight: f64,
    pub min_score: Option<f64>,
    pub like: Vec<String>,
}

/// A reader: where to send, which topics, how many papers and how often; validated from
/// the config, the subscribers file or the web page.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub email: Mailbox,
    /// Lowercased address: the subscriber's key in the database.
    pub key: String,
    pub topics: Vec<String>,
    pub max_papers: usize,
    pub min_score: f64,
    pub trending_weight: f64,
    pub frequency: Frequency,
    pub weekday: Weekday,
    pub timezone: Tz,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper(source: &str) -> Paper {
        Paper { id: PaperId("2411.16500".into()), sources: vec![source.into()], ..Paper::default() }
    }

    #[test]
    fn merging_keeps_the_best_of_each_source() {
        let mut hf = Paper { upvotes: 42, summary: "short".into(), ..paper("huggingface") };
        let arxiv =
            Paper { categories: vec!["cs.CL".into()], summary: "a longer abstract".into(), ..paper("arxiv") };
        hf.merge(arxiv);
        assert_eq!(hf.upvotes, 42);
        assert_eq!(hf.summary, "short", "both APIs rank alike: the first report's abstract stays");
        assert_eq!(hf.categories, ["cs.CL"]);
        assert_eq!(hf.sources, ["huggingface", "arxiv"]);
    }

    #[test]
    fn a_longer_feed_abstract_does_not_replace_the_api_one_in_either_order() {
        let api = Paper {
            title: "Clean title".into(),
            summary: "The clean abstract.".into(),
            authors: vec!["Wei Zhang".into()],
            upvotes: 37,
            ..paper("huggingface")
        };
        let feed = Paper {
            title: "Clean title [with feed noise]".into(),
            summary: "Authors: Wei Zhang Upvotes: 37 Summary: The clean abstract, and then some more.".into(),
            authors: vec!["Wei Zhang and others".into()],
            ..paper("hf-rss")
        };
        for (mut first, second) in [(api.clone(), feed.clone()), (feed, api)] {
            first.merge(second);
            assert_eq!(first.title, "Clean title");
            assert_eq!(first.summary, "The clean abstract.");
            assert_eq!(first.authors, ["Wei Zhang"]);
            assert_eq!(first.upvotes, 37);
        }
    }

    #[test]
    fn a_feed_fills_what_the_api_left_empty() {
        let mut api = paper("arxiv");
        api.title = "T".into();
        api.merge(Paper {
            summary: "From the feed.".into(),
            url: Some("https://b.org/p".into()),
            ..paper("blog")
        });
        assert_eq!(api.summary, "From the feed.");
        assert_eq!(api.url.as_deref(), Some("https://b.org/p"));
    }

    #[test]
    fn two_reports_from_one_source_do_not_mix_title_and_votes() {
        let mut a = Paper { title: "Title A".into(), upvotes: 3, ..paper("huggingface") };
        a.merge(Paper { title: "Title B".into(), upvotes: 9, ..paper("huggingface") });
        assert_eq!((a.title.as_str(), a.upvotes), ("Title B", 9));
        let mut a = Paper { title: "Title A".into(), upvotes: 9, ..paper("huggingface") };
        a.merge(Paper { title: "Title B".into(), upvotes: 3, ..paper("huggingface") });
        assert_eq!((a.title.as_str(), a.upvotes), ("Title B", 3));
    }
}
