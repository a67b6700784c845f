//! Cadence through the real binary: weekly digests on their weekday (with catch-up after
//! a missed one) and edition dates in each subscriber's time zone.

use crate::support::site;
use crate::support::smtp::{Faults, SmtpServer};

use site::{Site, code, hf_server, stderr};

fn last_edition(site: &Site, email: &str, now: &str) -> serde_json::Value {
    let out = site.run_at(&["status", "--json"], now);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let subs = doc["subscribers"].as_array().unwrap();
    subs.iter().find(|s| s["email"] == email).unwrap()["last_edition"].clone()
}

#[test]
fn a_weekly_digest_goes_out_on_its_weekday_and_a_missed_one_is_caught_up() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    // The listings hold November papers only: the December week brings nothing new, and
    // its edition is sent all the same, so that the catch-up shows in the ledger.
    let site = Site::with_subscribers(
        &http.url(),
        smtp.port(),
        "send_empty = true",
        "[[subscribers]]\nemail = \"wendy@example.org\"\nfrequency = \"weekly\"\nweekday = \"wednesday\"\nmax_papers = 20\n",
    );
    // Tuesday 26 November: not her day.
    let out = site.run_at(&["run"], "2024-11-26T07:00:00Z");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(smtp.messages().is_empty());
    // Wednesday: the week's best, drawn from all three listing days.
    assert_eq!(code(&site.run_at(&["run"], "2024-11-27T07:00:00Z")), 0);
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(last_edition(&site, "wendy@example.org", "2024-11-27T08:00:00Z"), "2024-11-27");
    let count: i64 = site.count("SELECT json_array_length(items) FROM deliveries");
    assert_eq!(count, 20, "a weekly digest gathers the week's best up to max_papers");
    // Thursday: nothing more.
    assert_eq!(code(&site.run_at(&["run"], "2024-11-28T07:00:00Z")), 0);
    assert_eq!(smtp.messages().len(), 1);
    // The host was down on Wednesday 4 December; Thursday's run catches that edition up.
    assert_eq!(code(&site.run_at(&["run"], "2024-12-05T07:00:00Z")), 0);
    assert_eq!(last_edition(&site, "wendy@example.org", "2024-12-05T08:00:00Z"), "2024-12-04");
}

#[test]
fn the_edition_date_follows_each_subscribers_time_zone() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::with_subscribers(
        &http.url(),
        smtp.port(),
        "",
        "[[subscribers]]\nemail = \"kenji@example.org\"\ntimezone = \"Asia/Tokyo\"\n\n[[subscribers]]\nemail = \"uma@example.org\"\n",
    );
    // 23:30 UTC on the 26th is already 08:30 on the 27th in Tokyo.
    let now = "2024-11-26T23:30:00Z";
    assert_eq!(code(&site.run_at(&["run"], now)), 0);
    assert_eq!(last_edition(&site, "kenji@example.org", now), "2024-11-27");
    assert_eq!(last_edition(&site, "uma@example.org", now), "2024-11-26");
    // Half an hour later it is the 27th in UTC too: Uma gets her next edition, Kenji nothing.
    assert_eq!(code(&site.run_at(&["run"], "2024-11-27T00:00:00Z")), 0);
    let tos: Vec<String> = smtp.messages().iter().map(|m| m.rcpt_to[0].clone()).collect();
    assert_eq!(tos.iter().filter(|t| *t == "kenji@example.org").count(), 1, "{tos:?}");
    assert_eq!(tos.iter().filter(|t| *t == "uma@example.org").count(), 2, "{tos:?}");
}
