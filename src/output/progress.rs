//! The progress bar: drawn on a terminal only, hidden everywhere else.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on stderr, hidden when stderr is not a terminal (cron, CI, pipes).
pub fn progress_bar(enabled: bool, total_bytes: u64, msg: &'static str) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() || total_bytes < (64 << 20) {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total_bytes);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}
