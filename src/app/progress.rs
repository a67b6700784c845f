//! Progress on an interactive terminal (indicatif): a spinner while fetching, a bar while
//! sending. Hidden in the journal, in a pipe and for small runs.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Progress is shown on an interactive terminal only: never in the journal or a pipe.
fn show_progress() -> bool {
    std::io::stderr().is_terminal() && !crate::logging::under_journald()
}

/// The send bar over `len` subscribers.
pub(super) fn bar(len: u64) -> ProgressBar {
    if !show_progress() || len <= 20 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{spinner} sending {pos}/{len} [{elapsed}] {wide_bar}") {
        bar.set_style(style);
    }
    bar
}

/// A spinner saying what the run waits for.
pub(super) fn spinner(message: String) -> ProgressBar {
    if !show_progress() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
