//! Building the MIME message and sending it with lettre. (stub: being written)

use crate::config::MailSettings;
use crate::error::{Error, Result};
use crate::render::Rendered;
use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::Mailbox;

/// Who a message goes to and the identity it is sent under.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub to: &'a Mailbox,
    /// With angle brackets: `<...@domain>`.
    pub message_id: &'a str,
    pub date: DateTime<Utc>,
}

/// A fresh Message-ID in the From domain.
pub fn new_message_id(settings: &MailSettings) -> String {
    format!("<{:016x}.{:08x}@{}>", fastrand::u64(..), fastrand::u32(..), settings.from.email.domain())
}

pub fn build(settings: &MailSettings, env: &Envelope<'_>, rendered: &Rendered) -> Result<Message> {
    Message::builder()
        .from(settings.from.clone())
        .to(env.to.clone())
        .subject(rendered.subject.clone())
        .message_id(Some(env.message_id.to_string()))
        .date(env.date.into())
        .body(rendered.text.clone())
        .map_err(|e| Error::Mail {
            recipient: env.to.email.to_string(),
            transient: false,
            message: e.to_string(),
        })
}

#[derive(Debug)]
pub struct Mailer {}

impl Mailer {
    pub fn new(_settings: &MailSettings) -> Result<Self> {
        Ok(Mailer {})
    }
    /// Sends one message, retrying transient failures per the configured policy.
    pub async fn send(&self, _msg: &Message, _recipient: &str) -> Result<()> {
        Ok(())
    }
}
