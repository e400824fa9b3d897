//! The `cartscope` binary: parse the command line, run the command, and turn an error into
//! exit code 2 with the whole chain on stderr (a closed pipe is success). Everything else is
//! in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    limit_malloc_arenas();
    // Ballista says what went wrong on a cluster only through `log`: its errors, or what
    // RUST_LOG asks for.
    #[cfg(feature = "ballista")]
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let cli = cartscope::Cli::parse_args();
    match cartscope::run(cli) {
        Ok(code) => code,
        Err(e) if cartscope::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cartscope: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// glibc gives threads that allocate at once arenas of their own, up to eight per core, and
/// hands little of a fragmented arena back to the system. Ingest's parse workers build
/// batches that its writer threads free, so every arena grows: on the 1M-cart export (2.85 GB)
/// two arenas took the peak from 227 to 191 MB at the same speed (bench/RESULTS.md). A
/// `MALLOC_ARENA_MAX` set in the environment is left to rule.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes an allocator setting; it is called before any thread
        // starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
