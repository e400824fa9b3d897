//! The `cartscope` binary: parse the command line, run the command, and turn an error into
//! exit code 2 with the whole chain on stderr (a closed pipe is success). Everything else is
//! in the library.

use std::process::ExitCode;

/// jemalloc, not glibc's malloc. The replay in passes splits and writes its rows by pass
/// through a writer per pass and partition; as the passes grow in number, glibc's free lists
/// fragment and its two arenas (one per core, capped for ingest's peak) are contended: at 10M
/// carts under 1 GB, `_int_malloc` took 11.4% of detect's CPU (4.4% at 1M) and futex wakes
/// 3.2% (0.07%). jemalloc's per-thread caches and arenas: 10M detect 474 -> 395 s at the same
/// peak (1,182 -> 1,207 MB); ingest's peak at 1M 277-286 -> 311-315 MB (bench/RESULTS.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
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
