//! One module per subcommand; each turns its typed arguments into real objects, runs, and
//! prints only through `output`. The commands never import one another: what they share is
//! in `setup`. `run` dispatches.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command};
use setup::Globals;

pub mod ballista;
pub mod check;
pub mod detect;
pub mod generate;
pub mod help;
pub mod ingest;
pub mod model;
pub mod query;
pub mod report;
pub mod schema;
pub mod setup;
pub mod shell;
pub mod tables;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    crate::output::set_raw(cli.raw);
    if let Some(bytes) = cli.memory_limit {
        crate::sql::session::set_memory_limit(bytes);
    }
    let defaults = crate::read::load::Limits::default();
    let g = Globals {
        threads,
        progress: !cli.no_progress,
        limits: crate::read::load::Limits {
            max_record: cli.max_record_size.unwrap_or(defaults.max_record),
            max_expansion: cli.max_expansion.unwrap_or(defaults.max_expansion),
            // An eighth of the memory cap, at about 20 bytes a span (a hash table of 8-byte
            // keys that doubles as it grows).
            repeat_check_spans: crate::sql::session::memory_limit() / 8 / 20,
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        // Planning recurses through the plan; Ballista's (de)serialising of a plan recurses
        // deeper, and overflowed tokio's 2 MiB on the library's larger queries. Address
        // space, not memory, until used (Ballista's own binaries take 32 MiB too).
        .thread_stack_size(32 << 20)
        .enable_all()
        .build()?;
    match cli.command {
        Command::Ingest(a) => ingest::run(&a, &g),
        Command::Tables(a) => rt.block_on(tables::run(&a, &g)),
        Command::Schema(a) => schema::run(&a),
        Command::Query(mut a) => {
            query::settle(&mut a)?;
            rt.block_on(query::run(&a, &g))
        }
        Command::Queries(a) => query::list(&a),
        Command::Shell(a) => rt.block_on(shell::run(&a, &g)),
        Command::Generate(a) => generate::run(&a, &g),
        Command::Detect(a) => rt.block_on(detect::run(&a, &g)),
        Command::Report(a) => rt.block_on(report::run(&a, &g)),
        Command::Check(a) => return rt.block_on(check::run(&a, &g)),
        Command::Model(a) => rt.block_on(model::run(&a, &g)),
        Command::Ballista(a) => rt.block_on(ballista::run(&a, &g)),
        Command::Completions(a) => help::completions(&a),
        Command::Man(a) => help::man(&a),
    }?;
    Ok(ExitCode::SUCCESS)
}
