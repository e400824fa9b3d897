//! The one place a DataFusion `SessionContext` is built: configuration, the canonical tables
//! (from raw exports loaded into memory and from ingested Parquet datasets), and the views.
//! Everything else receives a context and never builds its own.
//!
//! A later stage never writes into an earlier stage's tables: the rows read from the input of
//! `traces` and `metrics` are registered as `observed_traces` and `observed_metrics`, the
//! replay registers its own rows as `derived_traces` and `derived_metrics` (empty until it
//! runs), and `present` makes `traces` and `metrics` views over both, with a `derived`
//! column, so SQL written for the reference instrumentation finds the derived rows where it
//! looks for them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::dataset::Manifest;
use crate::read::input::Inputs;
use crate::read::load::{self, LoadOptions, LoadStats};
use crate::tables::schema::{PerTable, Table};

/// The data behind the canonical tables.
#[derive(Default)]
pub struct Data {
    /// Raw exports, loaded into memory.
    pub mem: PerTable<Vec<RecordBatch>>,
    /// Datasets written by `cartscope ingest`, read in place.
    pub datasets: Vec<PathBuf>,
}

impl Data {
    /// Loads the raw files of `inputs` (reporting bad records on stderr) and keeps its
    /// datasets to be read in place.
    pub fn load(inputs: &Inputs, opts: &LoadOptions) -> Result<(Data, LoadStats)> {
        load::admit_unreadable(&inputs.unreadable, opts, &mut LoadStats::default())?;
        let (mem, mut stats) = load::load_into_memory(&inputs.files, opts)?;
        load::admit_unreadable(&inputs.unreadable, opts, &mut stats)?;
        crate::read::load::report_skipped(&stats);
        if stats.log_documents > 0 {
            eprintln!(
                "cartscope: {} log document{} skipped (cartscope reads traces and metrics)",
                stats.log_documents,
                if stats.log_documents == 1 { "" } else { "s" }
            );
        }
        Ok((
            Data {
                mem,
                datasets: inputs.datasets.clone(),
            },
            stats,
        ))
    }
}

/// The session's settings. DataFusion's own `DATAFUSION_*` environment variables (e.g.
/// `DATAFUSION_EXECUTION_BATCH_SIZE`) are honoured, for tuning and for measuring; an invalid
/// one is ignored.
pub fn config(threads: usize) -> SessionConfig {
    let mut c = SessionConfig::from_env()
        .unwrap_or_default()
        .with_target_partitions(threads.max(1))
        .with_information_schema(true);
    c.options_mut().execution.time_zone = Some("UTC".into());
    c
}

static MEMORY_LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Caps the memory of query execution (set once at start-up from --memory-limit): sorts,
/// aggregations and windows spill to temporary files instead of growing past it.
pub fn set_memory_limit(bytes: usize) {
    let _ = MEMORY_LIMIT.set(bytes);
}

/// Builds the session with every canonical table and the `spans` view registered.
pub async fn context(data: Data, threads: usize) -> Result<SessionContext> {
    let ctx = match MEMORY_LIMIT.get() {
        Some(&bytes) => {
            let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
                .with_memory_limit(bytes, 1.0)
                .build_arc()?;
            SessionContext::new_with_config_rt(config(threads), runtime)
        }
        None => SessionContext::new_with_config(config(threads)),
    };
    ctx.register_udf(crate::sql::udf::AttrNumber::double());
    ctx.register_udf(crate::sql::udf::AttrNumber::int());
    let manifests = data
        .datasets
        .iter()
        .map(|d| Manifest::load(d).map(|m| (d.clone(), m)))
        .collect::<Result<Vec<_>>>()?;
    for (table, batches) in data.mem {
        let mut providers: Vec<Arc<dyn TableProvider>> = Vec::new();
        if !batches.is_empty() || manifests.is_empty() {
            providers.push(Arc::new(MemTable::try_new(table.schema(), vec![batches])?));
        }
        for (dir, manifest) in &manifests {
            let parts = manifest.parts(dir, table);
            if !parts.is_empty() {
                providers.push(listing_table(table, &parts)?);
            }
        }
        if providers.is_empty() {
            providers.push(Arc::new(MemTable::try_new(table.schema(), vec![vec![]])?));
        }
        let name = table.observed_name();
        if providers.len() == 1 {
            ctx.register_table(name, providers.remove(0))?;
        } else {
            let mut df = ctx.read_table(providers.remove(0))?;
            for p in providers {
                df = df.union(ctx.read_table(p)?)?;
            }
            ctx.register_table(name, df.into_view())?;
        }
        if let Some(derived) = table.derived_name() {
            ctx.register_table(
                derived,
                Arc::new(MemTable::try_new(table.schema(), vec![vec![]])?),
            )?;
        }
    }
    present(&ctx).await?;
    Ok(ctx)
}

/// (Re)creates the views over observed and derived rows: `traces`, `metrics`, and `spans`
/// (another name for `traces`). A view is bound to the tables as they were when it was made,
/// so whoever registers new derived rows calls this again.
pub async fn present(ctx: &SessionContext) -> Result<()> {
    for table in Table::ALL {
        let Some(derived) = table.derived_name() else {
            continue;
        };
        ctx.deregister_table(table.name())?;
        ctx.sql(&format!(
            "CREATE VIEW {} AS SELECT *, false AS derived FROM {} \
             UNION ALL SELECT *, true AS derived FROM {derived}",
            table.name(),
            table.observed_name()
        ))
        .await?;
    }
    ctx.deregister_table("spans")?;
    ctx.sql("CREATE VIEW spans AS SELECT * FROM traces").await?;
    Ok(())
}

fn listing_table(table: Table, parts: &[PathBuf]) -> Result<Arc<dyn TableProvider>> {
    let urls = parts
        .iter()
        .map(|p| {
            ListingTableUrl::parse(p.to_string_lossy())
                .with_context(|| format!("bad dataset file path '{}'", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    // The files are named one by one; a part still under its pending name (a crash cut its
    // rename short) is read all the same.
    let extension = if parts
        .iter()
        .any(|p| p.extension().is_some_and(|e| e != "parquet"))
    {
        ""
    } else {
        ".parquet"
    };
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(extension);
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(table.schema());
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// Pins `now()` and `CURRENT_TIMESTAMP` to the as-of time.
pub fn pin_now(ctx: &SessionContext, at: crate::time::Timestamp) {
    ctx.register_udf(crate::sql::udf::FixedNow::udf(at.ns()));
}

/// Runs one SQL statement and collects its result.
pub async fn run_sql(
    ctx: &SessionContext,
    sql: &str,
) -> Result<(datafusion::arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
    let df = ctx.sql(sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok((schema, batches))
}
