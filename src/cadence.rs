//! Cadence: pure functions of the clock. Which edition a subscriber is due for, and when
//! the cron schedule fires next or last fired. `app` calls them for every subscriber,
//! `status` and the daemon for the schedule; they use nothing of either.
//!
//! Times are computed in the configured IANA zone, never in a fixed UTC offset, so a
//! "07:00" schedule stays at 07:00 local time across daylight-saving changes.

use crate::model::{Frequency, Subscriber};
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// The digest date ("today") at `now` in the zone `tz`: 23:30 UTC is already tomorrow in
/// Tokyo.
pub fn edition_date(now: DateTime<Utc>, tz: Tz) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

/// Whether `sub` gets a digest on the day of `now` (in the subscriber's own zone): daily
/// subscribers always, weekly ones on their weekday.
pub fn is_due(sub: &Subscriber, now: DateTime<Utc>) -> bool {
    match sub.frequency {
        Frequency::Daily => true,
        Frequency::Weekly => edition_date(now, sub.timezone).weekday() == sub.weekday,
    }
}

/// The edition `now` belongs to for `sub`: the local date for daily subscribers; for weekly
/// ones the date of the most recent `weekday` (today included), so every run of the same
/// week maps to one edition and the ledger's (subscriber, edition) key stops a second copy.
pub fn edition_key(sub: &Subscriber, now: DateTime<Utc>) -> NaiveDate {
    let today = edition_date(now, sub.timezone);
    match sub.frequency {
        Frequency::Daily => today,
        Frequency::Weekly => {
            let back = (i64::from(today.weekday().num_days_from_monday())
                - i64::from(sub.weekday.num_days_from_monday()))
            .rem_euclid(7);
            today - TimeDelta::days(back)
        }
    }
}

/// The one parser for `[digest] schedule`, used by config validation, `status` and the
/// daemon. Seconds are required, and when both day-of-month
/// and weekday are restricted both must match: tokio-cron-scheduler parses that way, and
/// `status` must predict the same instants the daemon fires at.
pub fn parse_cron(expr: &str) -> std::result::Result<Cron, croner::errors::CronError> {
    CronParser::builder().seconds(Seconds::Required).dom_and_dow(true).build().parse(expr)
}

/// The first time strictly after `after` at which `schedule` (cron with seconds, read in
/// `tz`) fires; `None` when the expression is invalid or never fires again. A wall time
/// skipped by a spring-forward change is moved past the gap; one repeated by a fall-back
/// change fires once.
pub fn next_run(schedule: &str, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = after.with_timezone(&tz);
    parse_cron(schedule).ok()?.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
}

/// The most recent time at or before `at` at which `schedule` fired, in `tz`.
pub fn previous_run(schedule: &str, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = at.with_timezone(&tz);
    parse_cron(schedule).ok()?.find_previous_occurrence(&local, true).ok().map(|t| t.with_timezone(&Utc))
}

/// Whether the daemon, starting at `now`, missed the most recent scheduled run: no run ever
/// succeeded, or the last success started before the latest scheduled time.
pub fn missed_run(last_success: Option<DateTime<Utc>>, schedule: &str, tz: Tz, now: DateTime<Utc>) -> bool {
    match (last_success, previous_run(schedule, tz, now)) {
        (None, _) => true,
        (Some(last), Some(due)) => last < due,
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;
    use chrono_tz::{Asia::Tokyo, Europe::Berlin, UTC};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn subscriber(frequency: Frequency, weekday: Weekday, timezone: Tz) -> Subscriber {
        Subscriber {
            email: "x@example.org".parse().unwrap(),
            key: "x@example.org".into(),
            topics: Vec::new(),
            max_papers: 10,
            min_score: 0.0,
            trending_weight: 1.0,
            frequency,
            weekday,
            timezone,
        }
    }

    #[test]
    fn half_past_eleven_utc_is_already_tomorrow_in_tokyo() {
        let now = at("2024-11-25T23:30:00Z");
        assert_eq!(edition_date(now, UTC), date("2024-11-25"));
        assert_eq!(edition_date(now, Tokyo), date("2024-11-26"));
        // Tokyo is UTC+9 all year: its day turns at 15:00 UTC.
        assert_eq!(edition_date(at("2024-11-25T14:59:59Z"), Tokyo), date("2024-11-25"));
        assert_eq!(edition_date(at("2024-11-25T15:00:00Z"), Tokyo), date("2024-11-26"));
    }

    #[test]
    fn daily_subscribers_are_always_due_and_keyed_by_their_local_date() {
        let sub = subscriber(Frequency::Daily, Weekday::Mon, Tokyo);
        let now = at("2024-11-27T23:30:00Z");
        assert!(is_due(&sub, now));
        assert_eq!(edition_key(&sub, now), date("2024-11-28"));
    }

    #[test]
    fn weekly_subscribers_are_due_on_their_local_weekday() {
        // Monday 23:30 UTC is Tuesday in Tokyo.
        let now = at("2024-11-25T23:30:00Z");
        assert!(is_due(&subscriber(Frequency::Weekly, Weekday::Tue, Tokyo), now));
        assert!(!is_due(&subscriber(Frequency::Weekly, Weekday::Tue, UTC), now));
        assert!(is_due(&subscriber(Frequency::Weekly, Weekday::Mon, UTC), now));
    }

    #[test]
    fn every_run_of_a_week_maps_to_the_edition_of_its_weekday() {
        let sub = subscriber(Frequency::Weekly, Weekday::Mon, UTC);
        for day in ["2024-11-25T07:00:00Z", "2024-11-27T12:00:00Z", "2024-12-01T23:59:59Z"] {
            assert_eq!(edition_key(&sub, at(day)), date("2024-11-25"), "{day}");
        }
        assert_eq!(edition_key(&sub, at("2024-12-02T00:00:00Z")), date("2024-12-02"));
        // The subscriber's zone decides the week too: Sunday 23:30 UTC is Monday in Tokyo.
        let tokyo = subscriber(Frequency::Weekly, Weekday::Mon, Tokyo);
        assert_eq!(edition_key(&tokyo, at("2024-12-01T23:30:00Z")), date("2024-12-02"));
    }

    #[test]
    fn next_run_keeps_local_time_across_the_spring_change_in_berlin() {
        // Europe/Berlin moves from UTC+1 to UTC+2 on the last Sunday of March (2025-03-30).
        let s = "0 0 7 * * *";
        assert_eq!(next_run(s, Berlin, at("2025-03-29T05:00:00Z")), Some(at("2025-03-29T06:00:00Z")));
        assert_eq!(next_run(s, Berlin, at("2025-03-29T06:00:00Z")), Some(at("2025-03-30T05:00:00Z")));
        assert_eq!(next_run(s, Berlin, at("2025-10-25T05:00:00Z")), Some(at("2025-10-26T06:00:00Z")));
    }

    #[test]
    fn a_time_skipped_by_the_spring_change_still_fires_once() {
        // 02:30 does not exist in Berlin on 2025-03-30: it runs once, right after the gap
        // (03:00 CEST), and at 02:30 again the next day.
        let s = "0 30 2 * * *";
        let first = next_run(s, Berlin, at("2025-03-29T12:00:00Z"));
        assert_eq!(first, Some(at("2025-03-30T01:00:00Z")));
        assert_eq!(next_run(s, Berlin, at("2025-03-30T01:00:00Z")), Some(at("2025-03-31T00:30:00Z")));
    }

    #[test]
    fn a_time_repeated_by_the_autumn_change_fires_once() {
        // 02:30 happens twice in Berlin on 2025-10-26 (UTC+2, then UTC+1).
        let s = "0 30 2 * * *";
        let first = next_run(s, Berlin, at("2025-10-25T12:00:00Z")).unwrap();
        assert_eq!(first, at("2025-10-26T00:30:00Z"));
        assert_eq!(next_run(s, Berlin, first), Some(at("2025-10-27T01:30:00Z")));
    }

    #[test]
    fn next_run_follows_a_two_second_schedule_and_rejects_nonsense() {
        assert_eq!(
            next_run("*/2 * * * * *", UTC, at("2024-11-25T07:00:01Z")),
            Some(at("2024-11-25T07:00:02Z"))
        );
        assert_eq!(
            next_run("*/2 * * * * *", UTC, at("2024-11-25T07:00:02Z")),
            Some(at("2024-11-25T07:00:04Z"))
        );
        assert_eq!(next_run("0 7 * * *", UTC, at("2024-11-25T07:00:00Z")), None, "seconds are required");
        assert_eq!(next_run("every morning", UTC, at("2024-11-25T07:00:00Z")), None);
    }

    #[test]
    fn day_of_month_and_weekday_must_both_match_like_the_scheduler() {
        // 2024-12-01 is a Sunday; the first Monday that is also the 1st is 2025-09-01.
        let next = next_run("0 0 7 1 * MON", UTC, at("2024-11-25T00:00:00Z"));
        assert_eq!(next, Some(at("2025-09-01T07:00:00Z")));
    }

    #[test]
    fn a_daemon_starting_after_a_missed_morning_catches_up() {
        let s = "0 0 7 * * *";
        let now = at("2024-11-27T09:00:00Z");
        assert!(missed_run(None, s, UTC, now), "nothing ever sent");
        assert!(missed_run(Some(at("2024-11-26T07:00:03Z")), s, UTC, now), "yesterday's run only");
        assert!(!missed_run(Some(at("2024-11-27T07:00:01Z")), s, UTC, now), "this morning's ran");
        assert!(!missed_run(Some(at("2024-11-26T07:00:03Z")), s, UTC, at("2024-11-27T06:59:00Z")));
        assert_eq!(previous_run(s, Berlin, now), Some(at("2024-11-27T06:00:00Z")));
    }
}
