//! paper-digest mails researchers a daily digest of the trending papers that match their topics.
//!
//! The pipeline, one module a step:
//!
//! 1. [`source`] fetches paper listings (Hugging Face Daily Papers, the arXiv API, RSS/Atom feeds)
//!    politely: retries with backoff, conditional GET, body caps.
//! 2. [`store`] keeps papers, what each subscriber has seen and the delivery ledger in SQLite.
//! 3. [`rank`] scores each subscriber's unseen papers by topic and trend, with reasons.
//! 4. [`render`] turns a ranked list into HTML, plain text and a subject with minijinja.
//! 5. [`mail`] builds the MIME message and sends it with lettre (file, SMTP or sendmail).
//! 6. [`cadence`] says which edition is due and when the schedule fires; [`daemon`] runs
//!    [`app::run_once`] on that schedule for hosts without systemd.
//!
//! [`web`] is the reader's side (`serve`): subscribe, one-click unsubscribe, manage, votes,
//! the archive and feeds, all through per-reader signed links.
//!
//! [`app`] composes them; [`config`] turns the TOML file into a validated [`config::Config`].

pub mod app;
pub mod cadence;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dispatch;
pub mod error;
pub mod lock;
pub mod logging;
pub mod mail;
pub mod meaning;
pub mod model;
pub mod rank;
pub mod render;
pub mod retry;
pub mod source;
pub mod store;
pub mod web;

pub use error::{Error, Result};
