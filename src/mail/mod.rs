//! Mail: the MIME message for one subscriber ([`build`]) and the [`Mailer`] that delivers
//! it through lettre's file, sendmail or SMTP transport, with retries and rate limits.
//!
//! The caller owns the ledger: it stores [`new_message_id`] before the first attempt, so a
//! resend after a crash or a dropped connection carries the same Message-ID.

mod limit;
mod mailer;
mod message;
mod smtp;
mod tls;

pub use mailer::{Mailer, Wire};
pub use message::{Envelope, build, build_encoded, build_for, new_message_id};
