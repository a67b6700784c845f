//! `paper-digest subscribers list|add|remove|suppress|unsuppress`: the operator's view of
//! the database's readers and the suppression list, beside the config's subscribers.

use super::commands::print;
use crate::cli::{FrequencyArg, SubscribersAction};
use crate::config::Config;
use crate::error::{Error, Result, exit};
use crate::model::Frequency;
use crate::store::{Reader, ReaderOrigin, Store};
use chrono::{DateTime, Utc};
use std::collections::HashSet;

pub(crate) fn run(cfg: &Config, action: SubscribersAction, now: DateTime<Utc>) -> Result<u8> {
    let store = Store::open(&cfg.digest.database)?;
    match action {
        SubscribersAction::List { json } => list(cfg, &store, json),
        SubscribersAction::Add { email, topics, frequency } => {
            let key = address(&email)?;
            if let Some(t) = topics.iter().find(|t| !cfg.topics.contains_key(*t)) {
                let known: Vec<&str> = cfg.topics.keys().map(String::as_str).collect();
                return Err(Error::NotFound(format!(
                    "`{t}` is not a topic of {} (topics: {})",
                    cfg.path.display(),
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                )));
            }
            let reader = Reader {
                subscriber: key.clone(),
                topics,
                frequency: match frequency {
                    FrequencyArg::Daily => Frequency::Daily,
                    FrequencyArg::Weekly => Frequency::Weekly,
                },
                weekday: None,
                paused: false,
                origin: if cfg.subscriber(&key).is_some() {
                    ReaderOrigin::Override
                } else {
                    ReaderOrigin::Cli
                },
                created_at: String::new(),
                updated_at: String::new(),
            };
            store.put_reader(&reader, now)?;
            let lifted = store.unsuppress(&key)?;
            say(&format!("added {key}{}", if lifted { " (its suppression was lifted)" } else { "" }))
        }
        SubscribersAction::Remove { email } => {
            let key = address(&email)?;
            if store.remove_reader(&key)? {
                let note = if cfg.subscriber(&key).is_some() {
                    "; it is still listed in the config (use `suppress` to stop its digests)"
                } else {
                    ""
                };
                say(&format!("removed {key}{note}"))
            } else {
                Err(Error::NotFound(format!(
                    "{key} is not a subscriber in the database {} (`subscribers list` shows them)",
                    store.path().display()
                )))
            }
        }
        SubscribersAction::Suppress { email } => {
            let key = address(&email)?;
            let new = store.suppress(&key, "operator", now)?;
            say(&if new {
                format!("suppressed {key}: it gets nothing more")
            } else {
                format!("{key} was suppressed already")
            })
        }
        SubscribersAction::Unsuppress { email } => {
            let key = address(&email)?;
            if store.unsuppress(&key)? {
                say(&format!("lifted the suppression of {key}"))
            } else {
                Err(Error::NotFound(format!("{key} is not on the suppression list")))
            }
        }
    }
}

fn say(line: &str) -> Result<u8> {
    print(|out| writeln!(out, "{line}"))?;
    Ok(exit::OK)
}

/// The database key of an address given on the command line.
fn address(email: &str) -> Result<String> {
    email.trim().parse::<lettre::Address>().map(|a| a.to_string().to_lowercase()).map_err(|e| {
        Error::Usage(format!("`{email}` is not an email address ({e}); expected name@example.org"))
    })
}

fn list(cfg: &Config, store: &Store, json: bool) -> Result<u8> {
    let suppressions = store.suppressions()?;
    let suppressed: HashSet<&str> = suppressions.iter().map(|s| s.subscriber.as_str()).collect();
    let readers = store.readers()?;
    let mut rows = Vec::new();
    for s in &cfg.subscribers {
        let reader = readers.iter().find(|r| r.subscriber == s.key);
        rows.push(serde_json::json!({
            "email": s.key,
            "source": "config",
            "topics": reader.map_or(&s.topics, |r| &r.topics),
            "frequency": reader.map_or(s.frequency, |r| r.frequency),
            "paused": reader.is_some_and(|r| r.paused),
            "suppressed": suppressed.contains(s.key.as_str()),
        }));
    }
    for r in readers
        .iter()
        .filter(|r| r.origin != ReaderOrigin::Override && cfg.subscriber(&r.subscriber).is_none())
    {
        rows.push(serde_json::json!({
            "email": r.subscriber,
            "source": r.origin,
            "topics": r.topics,
            "frequency": r.frequency,
            "paused": r.paused,
            "suppressed": suppressed.contains(r.subscriber.as_str()),
            "since": r.created_at,
        }));
    }
    let listed: HashSet<&str> = rows.iter().filter_map(|r| r["email"].as_str()).collect();
    let others: Vec<_> = suppressions.iter().filter(|s| !listed.contains(s.subscriber.as_str())).collect();
    print(|out| {
        if json {
            let doc = serde_json::json!({ "subscribers": rows, "suppressed": suppressions });
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            return writeln!(out);
        }
        for r in &rows {
            let state = if r["suppressed"] == true {
                "suppressed"
            } else if r["paused"] == true {
                "paused"
            } else {
                "active"
            };
            let topics: Vec<&str> =
                r["topics"].as_array().into_iter().flatten().filter_map(|t| t.as_str()).collect();
            writeln!(
                out,
                "{:<36} {:<7} {:<10} {:<7} {}",
                r["email"].as_str().unwrap_or_default(),
                r["source"].as_str().unwrap_or_default(),
                state,
                r["frequency"].as_str().unwrap_or_default(),
                if topics.is_empty() { "(trending)".to_string() } else { topics.join(", ") }
            )?;
        }
        for s in &others {
            writeln!(
                out,
                "{:<36} {:<7} {:<10} since {} ({})",
                s.subscriber, "-", "suppressed", s.created_at, s.reason
            )?;
        }
        Ok(())
    })?;
    Ok(exit::OK)
}
