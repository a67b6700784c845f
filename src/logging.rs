//! Log setup with tracing: readable lines on a terminal, plain lines (no colours, no
//! timestamps, which journald adds itself) under systemd.

use crate::cli::{LogFormat, LogOptions};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Whether standard error goes to the systemd journal (systemd sets `JOURNAL_STREAM`).
pub fn under_journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

/// Installs the global subscriber. `RUST_LOG` overrides the level from `-v`/`-q`.
pub fn init(opts: &LogOptions) {
    let level = match (opts.quiet, opts.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // `-vv` is for digging: the libraries' own traces too (HTTP, SMTP, SQL), not only ours.
    let others = if opts.verbose >= 2 && !opts.quiet { "debug" } else { "warn" };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{others},paper_digest={level}")));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(opts.verbose > 0)
        .with_ansi(terminal && !under_journald() && opts.format == LogFormat::Text);
    // A second init (tests calling into the library twice) is harmless: keep the first.
    let _ = match opts.format {
        // Log shippers want every field and a timestamp, whatever the terminal.
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text if under_journald() || !terminal => builder.without_time().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// `alice@example.org` → `a***e@example.org`: enough to tell subscribers apart in
/// info-level logs without writing the full address into them.
pub fn mask_email(addr: &str) -> String {
    match addr.split_once('@') {
        Some((local, domain)) => {
            let chars: Vec<char> = local.chars().collect();
            match chars.len() {
                0 => format!("***@{domain}"),
                1 | 2 => format!("{}***@{domain}", chars[0]),
                n => format!("{}***{}@{domain}", chars[0], chars[n - 1]),
            }
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_addresses_keep_only_the_ends_of_the_local_part() {
        assert_eq!(mask_email("alice@example.org"), "a***e@example.org");
        assert_eq!(mask_email("al@example.org"), "a***@example.org");
        assert_eq!(mask_email("nonsense"), "***");
    }
}
