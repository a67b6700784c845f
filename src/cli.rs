//! Command-line definitions (clap). Only parsing lives here; `dispatch` runs the command.

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "paper-digest",
    version,
    about = "Mail researchers a daily digest of the trending papers on their topics"
)]
pub struct Cli {
    /// Config file [default: $PAPER_DIGEST_CONFIG, else ./paper-digest.toml]
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// More log output (-v: debug, -vv: trace)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only warnings and errors
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,

    /// Log lines as text, or as one JSON object per line for log shippers
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// Pretend the current time is this (RFC 3339): reproducible runs and tests
    #[arg(long, global = true, hide = true, value_name = "RFC3339", env = "PAPER_DIGEST_NOW")]
    pub now: Option<DateTime<Utc>>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch, rank, render and send every subscriber's digest (what the systemd timer calls)
    Run,
    /// Show a subscriber's next digest without sending it or marking anything seen
    Preview(PreviewArgs),
    /// Fetch new papers into the database without sending anything
    Fetch,
    /// Validate the config and render a sample digest; with --connect also reach every source and the mail server
    Check {
        /// Perform a real SMTP EHLO / STARTTLS / AUTH (no mail sent) and reach each source
        #[arg(long)]
        connect: bool,
    },
    /// Write a commented starter config
    Init {
        /// Where to write it [default: --config, else $PAPER_DIGEST_CONFIG, else ./paper-digest.toml]
        path: Option<PathBuf>,
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
    },
    /// Show the last run and each subscriber's last delivery (reads the database, never writes it)
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Send a fresh copy of a digest on purpose (a new Message-ID)
    Resend {
        /// The subscriber's address
        #[arg(long, value_name = "EMAIL")]
        to: String,
        /// The edition (digest date); default: the latest one
        #[arg(long, value_name = "YYYY-MM-DD")]
        edition: Option<NaiveDate>,
    },
    /// Send again the digests that failed permanently (after fixing the cause), with their
    /// original Message-IDs
    Retry {
        /// Retry the failed digests (required: the only kind of retry there is)
        #[arg(long, required = true)]
        failed: bool,
        /// The edition (digest date); default: the latest one with failed digests
        #[arg(long, value_name = "YYYY-MM-DD")]
        edition: Option<NaiveDate>,
    },
    /// Say why a paper ranked where it did for a subscriber, or why it was left out
    Explain {
        #[arg(long, value_name = "EMAIL")]
        to: String,
        /// arXiv id (any form: 2411.16500v2, arXiv:2411.16500, an abs/pdf URL)
        #[arg(long, value_name = "ID")]
        paper: String,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Run on the config's cron schedule until SIGTERM/SIGINT (for hosts without systemd)
    Daemon,
    /// Serve the reader pages ([web]): subscribe, unsubscribe, manage, votes, archive, feeds
    Serve,
    /// List and change the database's subscribers and the suppression list
    Subscribers {
        #[command(subcommand)]
        action: SubscribersAction,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output
    Man,
}

#[derive(Debug, Subcommand)]
pub enum SubscribersAction {
    /// Everyone who gets a digest, where each comes from, and the suppressed addresses
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Add a confirmed subscriber to the database (no confirmation mail)
    Add {
        #[arg(value_name = "EMAIL")]
        email: String,
        /// A configured topic; repeat for more
        #[arg(long = "topic", value_name = "NAME")]
        topics: Vec<String>,
        #[arg(long, value_enum, default_value_t = FrequencyArg::Daily)]
        frequency: FrequencyArg,
    },
    /// Remove a subscriber added on the web page or with `add`
    Remove {
        #[arg(value_name = "EMAIL")]
        email: String,
    },
    /// Send an address nothing more, whatever the config says
    Suppress {
        #[arg(value_name = "EMAIL")]
        email: String,
    },
    /// Lift a suppression
    Unsuppress {
        #[arg(value_name = "EMAIL")]
        email: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FrequencyArg {
    Daily,
    Weekly,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The subscriber's address
    #[arg(long, value_name = "EMAIL")]
    pub to: String,
    #[arg(long, value_enum, default_value_t = PreviewFormat::Text)]
    pub format: PreviewFormat,
    /// Write here instead of standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Do not fetch first; use what the database holds
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreviewFormat {
    Html,
    Text,
    Eml,
    Json,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Readable lines (plain under journald)
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's JSON layer)
    Json,
}

/// What the logger needs from the command line.
#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    pub verbose: u8,
    pub quiet: bool,
    pub format: LogFormat,
}

impl Cli {
    pub fn log_options(&self) -> LogOptions {
        LogOptions { verbose: self.verbose, quiet: self.quiet, format: self.log_format }
    }
}
