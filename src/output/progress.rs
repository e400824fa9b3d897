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

/// Whether `CARTSCOPE_TIMINGS` is set: `phase` says something, so what it would say is
/// worth working out.
pub fn timings() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CARTSCOPE_TIMINGS").is_some())
}

/// With `CARTSCOPE_TIMINGS` set in the environment, each named phase's wall time since the
/// previous one, on stderr: where a command spends its time, for profiling (bench/), without
/// a profiler. Silent otherwise.
pub fn phase(name: &str) {
    use std::sync::Mutex;
    use std::time::Instant;
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    if !timings() {
        return;
    }
    let now = Instant::now();
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let since = last.map_or(0.0, |t| now.duration_since(t).as_secs_f64());
    eprintln!("cartscope: timing: {name}: {since:.3} s");
    *last = Some(now);
}
