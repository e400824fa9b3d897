//! One module per subcommand. Each turns its arguments into real objects, runs, and prints
//! only through `output`.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::load::LoadOptions;

pub mod check;
pub mod detect;
pub mod generate;
pub mod ingest;
pub mod query;
pub mod report;
pub mod schema;
pub mod shell;
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
            hash_inputs: false,
        }
    }
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let threads = match cli.threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    if let Some(m) = &cli.memory_limit {
        crate::session::set_memory_limit(parse_size(m)?);
    }
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
        Command::Queries(a) => query::list(&a),
        Command::Shell(a) => rt.block_on(shell::run(&a, &g)),
        Command::Generate(a) => generate::run(&a, &g),
        Command::Detect(a) => rt.block_on(detect::run(&a, &g)),
        Command::Report(a) => rt.block_on(report::run(&a, &g)),
        Command::Check(a) => return rt.block_on(check::run(&a, &g)),
        Command::Model(a) => {
            print!("{}", crate::model::preset_text(&a.print)?);
            Ok(())
        }
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

/// The as-of time the replay args ask for, given the data's latest timestamp.
pub fn as_of_ns(r: &crate::cli::ReplayArgs, latest_ns: Option<i64>) -> Result<i64> {
    match &r.as_of {
        Some(t) => {
            crate::timefmt::parse_time(t, latest_ns).map_err(|e| anyhow::anyhow!("--as-of: {e}"))
        }
        None => latest_ns.ok_or_else(|| {
            anyhow::anyhow!("the data has no timestamps to judge from: give --as-of")
        }),
    }
}

/// Opens the data and replays it: the session then has carts, cart_events, abandonments and
/// the derived rows.
pub async fn open_replayed(
    data: &crate::cli::DataArgs,
    r: &crate::cli::ReplayArgs,
    g: &Globals,
) -> Result<(
    datafusion::prelude::SessionContext,
    crate::replay::Summary,
    crate::model::Model,
)> {
    let model = crate::model::Model::load(&r.model)?;
    let threshold_ns = r
        .threshold
        .as_deref()
        .map(crate::timefmt::parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--threshold: {e}"))?;
    let ctx = open_data(data, g).await?;
    let latest = crate::replay::latest_timestamp_ns(&ctx).await?;
    let as_of = as_of_ns(r, latest)?;
    crate::session::pin_now(&ctx, as_of);
    let summary = crate::replay::run(
        &ctx,
        &model,
        &crate::replay::ReplayOptions {
            as_of_ns: as_of,
            threshold_ns,
        },
    )
    .await?;
    Ok((ctx, summary, model))
}

/// `4GB`, `512MB`, `1.5GiB`, `2000000` (bytes).
pub fn parse_size(s: &str) -> Result<usize> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--memory-limit '{s}': write a size like 4GB or 512MB"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => anyhow::bail!(
            "--memory-limit '{s}': unknown unit '{other}' (B, KB, MB, GB, KiB, MiB, GiB)"
        ),
    };
    Ok((n * scale) as usize)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("4GB").unwrap(), 4_000_000_000);
        assert_eq!(super::parse_size("512 MiB").unwrap(), 512 * 1024 * 1024);
        assert!(super::parse_size("lots").is_err());
    }
}
