//! The operator's alert: one mail after `alerts.after_failures` failing runs in a row,
//! recorded in the ledger like any other delivery.

use crate::cadence;
use crate::config::Config;
use crate::logging::mask_email;
use crate::mail::{self, Envelope, Mailer};
use crate::store::{Kind, NewDelivery, Outcome, Store};
use chrono::{DateTime, Utc};

/// After `after_failures` failing runs in a row, one alert mail, not one per failure.
pub(super) async fn alert_if_due(cfg: &Config, store: &Store, now: DateTime<Utc>, error: &str) {
    let Some(alerts) = &cfg.alerts else { return };
    let Ok(failures) = store.consecutive_failures() else { return };
    if failures != alerts.after_failures {
        return;
    }
    let rendered = crate::render::Rendered {
        subject: format!("paper-digest: {failures} failing runs in a row"),
        text: format!(
            "paper-digest has failed {failures} runs in a row (config {}).\n\nLast error:\n{error}\n\nRun `paper-digest status` and `paper-digest check --connect` on the host.\n",
            cfg.path.display()
        ),
        html: format!(
            "<p>paper-digest has failed {failures} runs in a row.</p><p>Last error:</p><pre>{}</pre>",
            minijinja::HtmlEscape(error)
        ),
    };
    let to = alerts.email.email.to_string();
    // The alert goes through the ledger too, so `status` and the database show it was sent.
    let row = NewDelivery {
        subscriber: to.to_lowercase(),
        edition: cadence::edition_date(now, cfg.digest.timezone),
        kind: Kind::Alert,
        message_id: mail::new_message_id(&cfg.mail),
        items: Vec::new(),
    };
    let id = match store.insert_deliveries(std::slice::from_ref(&row), now) {
        Ok(ids) => ids.first().copied().flatten(),
        Err(e) => {
            tracing::error!("could not record the alert: {e}");
            None
        }
    };
    let envelope = Envelope { to: &alerts.email, message_id: &row.message_id, date: now };
    let sent = match (mail::build(&cfg.mail, &envelope, &rendered), Mailer::new(&cfg.mail)) {
        (Ok(msg), Ok(mailer)) => mailer.send(&msg, &to).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let outcome = match &sent {
        Ok(()) => {
            tracing::warn!(to = %mask_email(&to), "alert sent after {failures} failing runs");
            id.map(|id| Outcome::Sent { id })
        }
        Err(e) => {
            tracing::error!("could not send the alert: {e}");
            id.map(|id| Outcome::Failed { id, error: e.to_string() })
        }
    };
    if let Some(outcome) = outcome
        && let Err(e) = store.record_outcomes(&[outcome], now)
    {
        tracing::error!("could not record the alert: {e}");
    }
}
