//! One module per subcommand. Each turns its arguments into real objects, runs, and prints
//! only through `output`.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::load::LoadOptions;

pub mod generate;
pub mod ingest;
pub mod query;
pub mod schema;
pub mod tables;

/// Settings every command shares.
#[derive(Debug, Clone)]
pub struct Globals {
    pub threads: usize,
    pub progress: bool,
}

impl Globals {
    pub fn load_options(&self, strict: bool) -> LoadOptions {
        LoadOptions {
            strict,
            progress: self.progress,
            threads: self.threads,
        }
    }
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let threads = match cli.threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let g = Globals {
        threads,
        progress: !cli.no_progress,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    match cli.command {
        Command::Ingest(a) => ingest::run(&a, &g),
        Command::Tables(a) => rt.block_on(tables::run(&a, &g)),
        Command::Schema(a) => schema::run(&a),
        Command::Query(a) => rt.block_on(query::run(&a, &g)),
        Command::Generate(a) => generate::run(&a, &g),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves `--data`, loads it and builds the session.
pub async fn open_data(
    data: &crate::cli::DataArgs,
    g: &Globals,
) -> Result<datafusion::prelude::SessionContext> {
    let inputs = crate::input::resolve(&data.data)?;
    let (data, _stats) = crate::session::Data::load(&inputs, &g.load_options(data.strict))?;
    crate::session::context(data, g.threads).await
}
