//! The fetch stage: every source for the run's window, stored in one go, and the papers
//! the topics' `like` lists name (from the store, else from arXiv).

use super::progress;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{Paper, PaperId};
use crate::source::{self, Window, http::HttpClient};
use crate::store::Store;
use chrono::{DateTime, Duration as Days, Utc};
use std::collections::HashMap;

/// What a fetch came to.
pub(super) struct Fetched {
    pub(super) ok: usize,
    pub(super) errors: Vec<(String, Error)>,
    pub(super) new_papers: usize,
}

/// How many listing days to fetch: the lookback window, or a week when a weekly
/// subscriber needs the week's best.
pub(super) fn fetch_days(cfg: &Config) -> u32 {
    if super::plan::any_weekly(cfg) { cfg.digest.lookback_days.max(7) } else { cfg.digest.lookback_days }
}

pub(super) fn window(now: DateTime<Utc>, days: u32) -> Window {
    let today = now.date_naive();
    let days_list = (0..days).rev().map(|back| today - Days::days(i64::from(back))).collect();
    Window { days: days_list, since: now - Days::days(i64::from(days)), now }
}

/// Fetches every source and stores what came back. A failed source changes nothing in the
/// store; when every source failed, the run stops here with exit 75.
pub(super) async fn fetch(cfg: &Config, store: &Store, now: DateTime<Utc>, days: u32) -> Result<Fetched> {
    let sources = source::from_config(cfg);
    let client = HttpClient::new(&cfg.http, store.http_validators()?)?;
    if let Some(ax) = &cfg.sources.arxiv
        && let Some(host) = url::Url::parse(&ax.base_url).ok().and_then(|u| u.host_str().map(str::to_owned))
    {
        client.set_min_gap(&host, ax.delay);
    }
    let window = window(now, days);
    let spin = progress::spinner(format!("fetching {} days from {} sources", days, sources.len()));
    let reports = source::fetch_all(&sources, &client, &window).await;
    spin.finish_and_clear();
    let mut papers = Vec::new();
    let mut fetched = Fetched { ok: 0, errors: Vec::new(), new_papers: 0 };
    let mut counts = Vec::new();
    for report in reports {
        match report.outcome {
            // `source::fetch_all` logged each outcome as it came.
            Ok(list) => {
                counts.push((report.source, Ok(list.len())));
                papers.extend(list);
                fetched.ok += 1;
            }
            Err(e) => {
                counts.push((report.source.clone(), Err(e.to_string())));
                fetched.errors.push((report.source, e));
            }
        }
    }
    for (name, result) in &counts {
        store.record_source(name, now, result.as_ref().map(|n| *n).map_err(String::as_str))?;
    }
    if fetched.ok == 0 && !fetched.errors.is_empty() {
        let sources = fetched.errors.into_iter().map(|(name, _)| name).collect::<Vec<_>>();
        return Err(Error::AllSourcesFailed { failed: sources.len(), sources });
    }
    let merged = source::merge_all(papers);
    fetched.new_papers = store.record_fetch(&merged, &client.validators(), now)?;
    Ok(fetched)
}

/// The papers every subscriber's `like` list names: from the store, else fetched from arXiv.
pub(super) async fn liked_papers(cfg: &Config, store: &Store) -> Vec<Paper> {
    let ids: Vec<PaperId> = cfg
        .topics
        .values()
        .flat_map(|t| &t.like)
        .map(|id| PaperId::parse(id))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut papers = store.papers(&ids).unwrap_or_default();
    let missing: Vec<String> =
        ids.iter().filter(|id| !papers.iter().any(|p| &p.id == *id)).map(|id| id.0.clone()).collect();
    if !missing.is_empty() {
        match &cfg.sources.arxiv {
            Some(ax) => match HttpClient::new(&cfg.http, HashMap::new()) {
                Ok(client) => match source::arxiv::fetch_by_ids(&client, ax, &missing).await {
                    Ok(more) => papers.extend(more),
                    Err(e) => tracing::warn!("could not fetch liked papers {}: {e}", missing.join(", ")),
                },
                Err(e) => tracing::warn!("could not fetch liked papers: {e}"),
            },
            None => tracing::warn!(
                "liked papers {} are not stored and no [sources.arxiv] is configured to fetch them",
                missing.join(", ")
            ),
        }
    }
    papers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_ends_today_and_spans_the_lookback() {
        let w = window("2024-11-27T07:00:00Z".parse().unwrap(), 3);
        let days: Vec<String> = w.days.iter().map(ToString::to_string).collect();
        assert_eq!(days, ["2024-11-25", "2024-11-26", "2024-11-27"]);
    }
}
