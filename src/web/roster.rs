//! Who gets a digest, once the reader's side is taken into account: the config's
//! subscribers (inline and file) minus the suppression list, with the settings readers
//! changed on the manage page, plus the readers who subscribed on the web page and
//! confirmed. "More like this" votes also become a personal topic whose `like` list is the
//! liked papers, so they keep counting after the voted paper leaves the candidate window
//! (within it, `rank::Feedback` moves its neighbours up and a disliked paper's down).

use crate::config::Config;
use crate::error::Result;
use crate::model::PaperId;
use crate::model::{Subscriber, Topic};
use crate::store::{Reader, ReaderOrigin, Store};
use chrono::Weekday;
use std::collections::{HashMap, HashSet};

/// The name of the topic made from a reader's "More like this" votes. One per voting
/// reader (topics are compiled per name), numbered.
pub fn votes_topic_name(n: usize) -> String {
    format!("your votes #{n}")
}

/// The config with the database's readers applied, or `None` when the database holds no
/// reader rows, suppressions or votes (then the config is used as it is, without a copy).
pub fn apply(cfg: &Config, store: &Store) -> Result<Option<Config>> {
    let suppressed: HashSet<String> = store.suppressions()?.into_iter().map(|s| s.subscriber).collect();
    let readers = store.readers()?;
    let feedback = store.all_feedback()?;
    if suppressed.is_empty() && readers.is_empty() && feedback.is_empty() {
        return Ok(None);
    }
    let mut out = cfg.clone();
    let by_key: HashMap<&str, &Reader> = readers.iter().map(|r| (r.subscriber.as_str(), r)).collect();
    let mut subscribers = Vec::with_capacity(cfg.subscribers.len() + readers.len());
    let mut listed = HashSet::new();
    for sub in &cfg.subscribers {
        listed.insert(sub.key.as_str());
        if suppressed.contains(&sub.key) {
            continue;
        }
        match by_key.get(sub.key.as_str()) {
            Some(r) if r.paused => {}
            Some(r) => subscribers.push(with_settings(sub.clone(), r, cfg)),
            None => subscribers.push(sub.clone()),
        }
    }
    for r in &readers {
        if listed.contains(r.subscriber.as_str())
            || suppressed.contains(&r.subscriber)
            || r.paused
            || r.origin == ReaderOrigin::Override
        {
            continue;
        }
        if let Some(sub) = from_reader(r, cfg) {
            subscribers.push(sub);
        }
    }
    // Liked papers act like a topic's `like`, for that reader alone.
    let index: HashMap<String, usize> =
        subscribers.iter().enumerate().map(|(i, s)| (s.key.clone(), i)).collect();
    for (n, (key, liked, _disliked)) in feedback.into_iter().enumerate() {
        let Some(&i) = index.get(&key) else { continue };
        // A reader without topics gets the trending list; a topic of their own would turn
        // it into a list of look-alikes, so their votes wait for the ranker's feedback input.
        if liked.is_empty() || subscribers[i].topics.is_empty() {
            continue;
        }
        let name = votes_topic_name(n + 1);
        out.topics.insert(
            name.clone(),
            Topic {
                name: name.clone(),
                keywords: Vec::new(),
                exclude: Vec::new(),
                require: Vec::new(),
                authors: Vec::new(),
                categories: Vec::new(),
                weight: 1.0,
                min_score: None,
                like: liked.into_iter().map(|PaperId(id)| id).collect(),
            },
        );
        subscribers[i].topics.push(name);
    }
    out.subscribers = subscribers;
    Ok(Some(out))
}

/// A config subscriber with the settings they chose on the manage page.
pub(crate) fn with_settings(mut sub: Subscriber, r: &Reader, cfg: &Config) -> Subscriber {
    sub.topics = known_topics(&r.topics, cfg);
    sub.frequency = r.frequency;
    sub.weekday = weekday(r.weekday.as_deref());
    sub
}

/// A reader of the database as a subscriber with the digest's defaults.
pub(crate) fn from_reader(r: &Reader, cfg: &Config) -> Option<Subscriber> {
    let email = r.subscriber.parse().ok()?;
    Some(Subscriber {
        email,
        key: r.subscriber.clone(),
        topics: known_topics(&r.topics, cfg),
        max_papers: cfg.digest.max_papers,
        min_score: cfg.digest.min_score,
        trending_weight: cfg.digest.trending_weight,
        frequency: r.frequency,
        weekday: weekday(r.weekday.as_deref()),
        timezone: cfg.digest.timezone,
    })
}

/// Topics the config still defines (one may have been removed since the reader chose it).
fn known_topics(topics: &[String], cfg: &Config) -> Vec<String> {
    topics.iter().filter(|t| cfg.topics.contains_key(*t)).cloned().collect()
}

fn weekday(w: Option<&str>) -> Weekday {
    w.and_then(|w| w.parse().ok()).unwrap_or(Weekday::Mon)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Frequency;
    use chrono::{DateTime, Utc};

    fn now() -> DateTime<Utc> {
        "2024-11-27T07:00:00Z".parse().unwrap()
    }

    fn config() -> Config {
        Config::parse(
            r#"
[mail]
from = "digest@example.org"
[topics.video]
keywords = ["video"]
[topics.llm]
keywords = ["reasoning"]
[[subscribers]]
email = "alice@example.org"
topics = ["llm"]
[[subscribers]]
email = "bob@example.org"
topics = ["video"]
"#,
        )
        .unwrap()
    }

    fn reader(key: &str, origin: ReaderOrigin) -> Reader {
        Reader {
            subscriber: key.into(),
            topics: vec!["video".into(), "gone".into()],
            frequency: Frequency::Weekly,
            weekday: Some("fri".into()),
            paused: false,
            origin,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn an_empty_database_leaves_the_config_as_it_is() {
        let store = Store::open_in_memory().unwrap();
        assert!(apply(&config(), &store).unwrap().is_none());
    }

    #[test]
    fn suppressed_addresses_are_left_out_and_confirmed_readers_are_added() {
        let store = Store::open_in_memory().unwrap();
        store.suppress("bob@example.org", "one-click", now()).unwrap();
        store.put_reader(&reader("carol@example.org", ReaderOrigin::Web), now()).unwrap();
        store.put_reader(&reader("dave@example.org", ReaderOrigin::Web), now()).unwrap();
        store.suppress("dave@example.org", "one-click", now()).unwrap();
        let cfg = apply(&config(), &store).unwrap().unwrap();
        let keys: Vec<&str> = cfg.subscribers.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["alice@example.org", "carol@example.org"]);
        let carol = &cfg.subscribers[1];
        assert_eq!(carol.topics, ["video"], "a topic no longer defined is dropped");
        assert_eq!((carol.frequency, carol.weekday), (Frequency::Weekly, Weekday::Fri));
    }

    #[test]
    fn settings_from_the_manage_page_win_and_a_paused_reader_gets_nothing() {
        let store = Store::open_in_memory().unwrap();
        store.put_reader(&reader("alice@example.org", ReaderOrigin::Override), now()).unwrap();
        let mut paused = reader("bob@example.org", ReaderOrigin::Override);
        paused.paused = true;
        store.put_reader(&paused, now()).unwrap();
        let cfg = apply(&config(), &store).unwrap().unwrap();
        assert_eq!(cfg.subscribers.len(), 1);
        assert_eq!(cfg.subscribers[0].topics, ["video"]);
        assert_eq!(cfg.subscribers[0].frequency, Frequency::Weekly);
    }

    #[test]
    fn a_trending_reader_keeps_the_trending_list_after_a_vote() {
        let store = Store::open_in_memory().unwrap();
        store
            .put_reader(
                &Reader { topics: Vec::new(), ..reader("carol@example.org", ReaderOrigin::Web) },
                now(),
            )
            .unwrap();
        store.vote("carol@example.org", &PaperId("2411.1".into()), 1, now()).unwrap();
        let cfg = apply(&config(), &store).unwrap().unwrap();
        assert!(cfg.subscribers[2].topics.is_empty());
        assert_eq!(cfg.topics.len(), 2);
    }

    #[test]
    fn liked_papers_become_a_topic_of_that_reader_alone() {
        let store = Store::open_in_memory().unwrap();
        store.vote("bob@example.org", &PaperId("2411.1".into()), 1, now()).unwrap();
        let cfg = apply(&config(), &store).unwrap().unwrap();
        let name = votes_topic_name(1);
        assert_eq!(cfg.topics[&name].like, ["2411.1"]);
        assert_eq!(cfg.subscribers[1].topics, ["video".to_string(), name]);
        assert_eq!(cfg.subscribers[0].topics, ["llm"]);
    }
}
