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
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};

use crate::dataset::Manifest;
use crate::read::input::Inputs;
use crate::read::load::{self, LoadOptions, LoadStats};
use crate::sql::engine::Engine;
use crate::tables::schema::{PerTable, Table};

/// The data behind the canonical tables.
#[derive(Default)]
pub struct Data {
    /// Raw exports, loaded into memory.
    pub mem: PerTable<Vec<RecordBatch>>,
    /// Datasets written by `cartscope ingest`, read in place.
    pub datasets: Vec<PathBuf>,
    /// The temporary dataset that raw exports too large for memory were ingested into
    /// (`Data::load`): one of `datasets`, removed when the session reading it ends.
    pub scratch: Option<tempfile::TempDir>,
}

/// Keeps `Data::scratch` alive as long as the session that reads from it.
struct SpilledInputs(#[allow(dead_code)] tempfile::TempDir);

/// Keeps a folder (`commands::setup`'s folder for a command's temporary files) as long as
/// the session.
struct RunFolder(#[allow(dead_code)] tempfile::TempDir);

/// Removes `dir` when the session ends.
pub fn keep_until_dropped(ctx: &SessionContext, dir: tempfile::TempDir) {
    ctx.state_ref()
        .write()
        .config_mut()
        .set_extension(Arc::new(RunFolder(dir)));
}

/// Decoded bytes per byte of a compressed raw export, for `in_memory_estimate`: OTLP/JSON
/// compresses 5 to 20 times (`cartscope generate --carts 10000000 --compress zstd`: 7.2 GB
/// of zstd for 32 GB of JSON).
const COMPRESSED_EXPANSION: u64 = 8;

/// About how much memory loading the raw `files` takes: the Arrow batches of an OTLP/JSON
/// export are about as large as its text (measured in bench/RESULTS.md, "The replay at
/// scale"), a compressed file's `COMPRESSED_EXPANSION` times its size.
fn in_memory_estimate(files: &[crate::read::input::InputFile]) -> u64 {
    use std::io::Read;
    files
        .iter()
        .map(|f| {
            let len = std::fs::metadata(&f.path).map_or(0, |m| m.len());
            let mut head = [0u8; 4];
            let n = std::fs::File::open(&f.path)
                .and_then(|mut r| r.read(&mut head))
                .unwrap_or(0);
            match crate::read::input::sniff_compression(&head[..n]) {
                crate::read::input::Compression::None => len,
                _ => len.saturating_mul(COMPRESSED_EXPANSION),
            }
        })
        .sum()
}

impl Data {
    /// Loads the raw files of `inputs` (reporting bad records on stderr) and keeps its
    /// datasets to be read in place.
    ///
    /// Raw exports that would take more than half the memory queries may use
    /// (`memory_limit`) are not held: they are ingested into a temporary dataset, in the
    /// bounded memory of `cartscope ingest`, and read in place from it.
    pub fn load(inputs: &Inputs, opts: &LoadOptions) -> Result<(Data, LoadStats)> {
        load::admit_unreadable(&inputs.unreadable, opts, &mut LoadStats::default())?;
        if inputs.files.iter().any(|f| f.is_stdin() || f.is_remote()) {
            // Standard input's size is known only once it is read, and it is read once:
            // never into memory it might not fit. Objects in a store are read once too (each
            // read is a download), as they stream.
            return Data::spill(inputs, opts, None);
        }
        let estimate = in_memory_estimate(&inputs.files);
        if estimate > memory_limit() as u64 / 2 {
            return Data::spill(inputs, opts, Some(estimate));
        }
        let (mem, mut stats) = load::load_into_memory(&inputs.files, opts)?;
        load::admit_unreadable(&inputs.unreadable, opts, &mut stats)?;
        report_loaded(&stats);
        Ok((
            Data {
                mem,
                datasets: inputs.datasets.clone(),
                scratch: None,
            },
            stats,
        ))
    }

    /// Ingests the raw files of `inputs` into a temporary dataset, read in place beside
    /// the datasets `inputs` names.
    /// `estimate`: the decoded size that made them go this way (standard input: none, it
    /// always does).
    fn spill(
        inputs: &Inputs,
        opts: &LoadOptions,
        estimate: Option<u64>,
    ) -> Result<(Data, LoadStats)> {
        let human = crate::output::human_bytes;
        if let Some(estimate) = estimate {
            eprintln!(
                "cartscope: note: the raw exports (about {} decoded) would take more than half the memory cartscope may use ({}): they are read through a temporary dataset instead, in bounded memory (`cartscope ingest` them once to read them in place every time, or raise --memory-limit)",
                human(estimate),
                human(memory_limit() as u64)
            );
        }
        let tmp = tempfile::Builder::new()
            .prefix("cartscope-input-")
            .tempdir()
            .context("cannot create a temporary folder for the raw exports")?;
        let raw = Inputs {
            files: inputs.files.clone(),
            datasets: Vec::new(),
            unreadable: inputs.unreadable.clone(),
        };
        let report = crate::dataset::ingest::ingest_resolved(
            raw,
            tmp.path(),
            opts,
            crate::dataset::ORPHAN_AGE,
        )?;
        report_loaded(&report.stats);
        let mut datasets = inputs.datasets.clone();
        datasets.push(tmp.path().to_path_buf());
        Ok((
            Data {
                mem: PerTable::default(),
                datasets,
                scratch: Some(tmp),
            },
            report.stats,
        ))
    }
}

/// Says on stderr what a load skipped.
fn report_loaded(stats: &LoadStats) {
    crate::read::load::report_skipped(stats);
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
    // Each sort holds this back for merging what it spilled (10 MB by default): under a
    // small --memory-limit, a share of it, so that a sort per core still fits.
    let reserve = &mut c.options_mut().execution.sort_spill_reservation_bytes;
    *reserve = (*reserve).min(memory_limit() / (8 * threads.max(1)));
    c
}

static MEMORY_LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Caps the memory of query execution (set once at start-up from --memory-limit): sorts,
/// aggregations and windows spill to temporary files instead of growing past it.
pub fn set_memory_limit(bytes: usize) {
    let _ = MEMORY_LIMIT.set(bytes);
}

/// The cap on query execution's memory: --memory-limit, else a quarter of the machine's
/// memory (6 GB of 24), so that a replay of any size spills before the machine swaps; 4 GiB
/// where the machine's memory cannot be read.
pub fn memory_limit() -> usize {
    *MEMORY_LIMIT.get_or_init(|| {
        let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            kb.checked_mul(1024)
        });
        total.map_or(4 << 30, |t| t / 4)
    })
}

/// Builds the session with every canonical table and the `spans` view registered, its
/// queries run by `engine`.
pub async fn context(data: Data, threads: usize, engine: &Engine) -> Result<SessionContext> {
    // A fair share per spilling operator (sorts and aggregations run side by side), and
    // the five largest consumers named when the cap is hit.
    let pool = datafusion::execution::memory_pool::TrackConsumersPool::new(
        datafusion::execution::memory_pool::FairSpillPool::new(memory_limit()),
        std::num::NonZeroUsize::new(5).context("five")?,
    );
    // DataFusion keeps the Parquet footers and statistics it read for the next query, in
    // caches of 50 MB and 20 MB by default. A 10M-cart dataset's 3,890 trace parts take more:
    // every query read every footer again (2.6 s each, where a query of the data took less).
    // An eighth of the cap each, outside the pool (10M-cart detect: 343 s -> 302 s, 1.16 GB
    // -> 1.18 GB peak; bench/RESULTS.md).
    let cache = memory_limit() / 8;
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .with_cache_manager(
            datafusion::execution::cache::cache_manager::CacheManagerConfig::default()
                .with_metadata_cache_limit(cache)
                .with_file_statistics_cache_limit(cache),
        )
        .build_arc()?;
    let manifests = data
        .datasets
        .iter()
        .map(|d| Manifest::load(d).map(|m| (d.clone(), m)))
        .collect::<Result<Vec<_>>>()?;
    // A dataset in an object store is read through the store its URL names.
    for d in &data.datasets {
        if let Some(url) = crate::read::remote::url_in(d) {
            let loc = crate::read::remote::locate(url)?;
            runtime.register_object_store(&loc.base, loc.store);
        }
    }
    let (parts, note) = partitions(&data, &manifests, threads);
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config(parts))
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    let ctx = engine.session(state).await?;
    ctx.state_ref()
        .write()
        .config_mut()
        .set_extension(Arc::new(Threads(threads.max(1))));
    if let Some(n) = note {
        ctx.state_ref()
            .write()
            .config_mut()
            .set_extension(Arc::new(n));
    }
    let mut data = data;
    if let Some(tmp) = data.scratch.take() {
        ctx.state_ref()
            .write()
            .config_mut()
            .set_extension(Arc::new(SpilledInputs(tmp)));
    }
    // Again after `engine.session`, which replaces a state's functions under Ballista.
    let (scalars, aggregates) = crate::sql::udf::shipped();
    for f in scalars {
        ctx.register_udf(f);
    }
    for f in aggregates {
        ctx.register_udaf(f);
    }
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
            providers.push(Arc::new(EmptyTable::new(table.schema())));
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
            ctx.register_table(derived, Arc::new(EmptyTable::new(table.schema())))?;
        }
    }
    present(&ctx).await?;
    Ok(ctx)
}

/// Decoded rows per byte of the dataset's Parquet (zstd, ids unencoded): about 6 on
/// `cartscope generate`'s and the real SDKs' exports (1M carts: 298 MB of Parquet, 1.8 GB
/// of cart_events and spans in Arrow).
const PARQUET_EXPANSION: u64 = 6;

/// About how many bytes Parquet `files` hold decoded: their size times `PARQUET_EXPANSION`.
/// Parts in an object store are sized by listing their dataset (one request, not one per
/// part); `datasets` are those the parts belong to.
fn parquet_decoded(datasets: &[PathBuf], files: &[PathBuf]) -> u64 {
    let mut listed = std::collections::HashMap::new();
    for d in datasets {
        if let Some(url) = crate::read::remote::url_in(d) {
            if let Ok(sizes) = crate::read::remote::sizes(url) {
                listed.extend(sizes);
            }
        }
    }
    let on_disk: u64 = files
        .iter()
        .filter_map(|p| match listed.get(p.to_string_lossy().as_ref()) {
            Some(size) => Some(*size),
            None => std::fs::metadata(p).ok().map(|m| m.len()),
        })
        .sum();
    on_disk.saturating_mul(PARQUET_EXPANSION)
}

/// How many partitions queries run in. Sorts side by side share the memory cap, and one
/// partition's finished in-memory sort holds what another needs to take in even a single
/// batch (DataFusion does not spill a sort that is being merged): past the cap they fail
/// where one sort at a time spills and goes on (100k carts under 64 MB: two partitions
/// fail, one finishes). So when the data is larger than the cap, one partition, and a note
/// (`note_one_partition`).
/// This is the session's rule, which the replay and the report follow; `query`, `shell` and
/// `check` try each query across every thread first (`execute_fitted`).
fn partitions(
    data: &Data,
    manifests: &[(PathBuf, Manifest)],
    threads: usize,
) -> (usize, Option<OnePartition>) {
    if threads <= 1 {
        return (threads.max(1), None);
    }
    let in_memory: u64 = data
        .mem
        .values()
        .flatten()
        .map(|b| b.get_array_memory_size() as u64)
        .sum();
    let parts: Vec<PathBuf> = manifests
        .iter()
        .flat_map(|(dir, m)| Table::ALL.into_iter().flat_map(move |t| m.parts(dir, t)))
        .collect();
    let size = in_memory + parquet_decoded(&data.datasets, &parts);
    if size <= memory_limit() as u64 {
        return (threads, None);
    }
    let note = format!(
        "cartscope: note: the data (about {} decoded) is larger than the memory queries may use ({}): the replay and the report run in one partition, so that their sorts spill to disk rather than fail (a larger --memory-limit lets them use every core)",
        crate::output::human_bytes(size),
        crate::output::human_bytes(memory_limit() as u64)
    );
    (
        1,
        Some(OnePartition(
            note,
            std::sync::atomic::AtomicBool::new(false),
        )),
    )
}

/// Why the session runs in one partition (`partitions`), said once and only by work that
/// runs in it: a replay that is not found kept, and the report. A `query`, `shell` or
/// `check` over a kept replay never prints it (each of their queries picks its partitions).
struct OnePartition(String, std::sync::atomic::AtomicBool);

/// Prints why the session runs in one partition, if it does, the first time it is called.
pub fn note_one_partition(ctx: &SessionContext) {
    if let Some(n) = ctx.state().config().get_extension::<OnePartition>() {
        if !n.1.swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!("{}", n.0);
        }
    }
}

/// The threads the session was opened with (`threads`).
struct Threads(usize);

/// The threads the session was opened with: the most partitions a query runs in.
pub fn threads(ctx: &SessionContext) -> usize {
    ctx.state()
        .config()
        .get_extension::<Threads>()
        .map_or(1, |t| t.0)
}

/// How `execute_fitted` and `collect_fitted` plan a try of a query (in the order `tries`
/// gives): each after the one before ran out of memory before its first row.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Try {
    /// Across every thread, joining as the session does.
    Session,
    /// Across every thread (two partitions at least), with sort-merge joins over inputs
    /// kept in their stored order. A hash join holds its whole build side, which cannot
    /// spill: joining the carts of 10M under 1 GB (1M under 64 MB) failed so. The replay's
    /// tables are stored in cart_id order, so a merge join on cart_id needs no sort: the
    /// repartitions by cart_id keep each input's order (`prefer_existing_sort`) and the
    /// join streams. Where a sort is needed after all, it spills.
    Merge,
    /// In one partition, joining as the session does: its sorts have the whole cap.
    One,
}

impl Try {
    /// How this try plans, from how the session plans across every thread (`session`).
    fn planning(self, session: Planning) -> Planning {
        match self {
            Try::Session => session,
            // DataFusion plans merge joins only across two partitions or more; on one
            // thread the two take turns.
            Try::Merge => Planning {
                hash: false,
                parts: session.parts.max(2),
                keep: true,
            },
            Try::One => Planning {
                parts: 1,
                ..session
            },
        }
    }
}

/// How the next queries are planned: whether hash joins are preferred, in how many
/// partitions, and whether repartitions keep their inputs' order (rather than sorting
/// again after them).
#[derive(Clone, Copy)]
struct Planning {
    hash: bool,
    parts: usize,
    keep: bool,
}

impl Planning {
    /// How the session plans now.
    fn of(ctx: &SessionContext) -> Planning {
        let (hash, parts) = joins(ctx);
        let keep = ctx.copied_config().options().optimizer.prefer_existing_sort;
        Planning { hash, parts, keep }
    }

    /// Makes the session plan so.
    fn apply(self, ctx: &SessionContext) {
        set_joins(ctx, (self.hash, self.parts));
        let state = ctx.state_ref();
        let mut state = state.write();
        state
            .config_mut()
            .options_mut()
            .optimizer
            .prefer_existing_sort = self.keep;
    }
}

/// `plan` made again as `way` says, from how the session plans across every thread
/// (`session`). With `CARTSCOPE_TIMINGS`, a phase says how much it reads (`reads`:
/// `scanned_bytes`, worked out only then, since it optimizes the plan and reads a footer
/// per table).
fn replan(
    ctx: &SessionContext,
    plan: &datafusion::logical_expr::LogicalPlan,
    way: Try,
    session: Planning,
    reads: Option<u64>,
) -> DataFrame {
    let planning = way.planning(session);
    planning.apply(ctx);
    if let Some(reads) = reads {
        crate::output::phase(&format!(
            "query reads about {}, runs in {} partition(s){}",
            crate::output::human_bytes(reads),
            planning.parts,
            if way == Try::Merge {
                " with merge joins"
            } else {
                ""
            }
        ));
    }
    DataFrame::new(ctx.state(), plan.clone())
}

/// The tries for `plan` (see `Try`) from how the session plans across every thread
/// (`session`): merge joins only for a plan with a join to make one of, and only where
/// hash joins are what the session prefers; one partition only where there are more.
/// Merge joins come first where they stream (`merges_in_order`): they hold no join table
/// then, and are no slower (`latency_vs_conversion` over a kept 1M-cart replay, 1.13x as
/// fast as its hash joins). Elsewhere hash joins come first: a merge join that sorts its
/// inputs took 3.6x as long (`error_before_abandonment`, the same data).
async fn tries(
    ctx: &SessionContext,
    plan: &datafusion::logical_expr::LogicalPlan,
    session: Planning,
) -> Vec<Try> {
    let mut tries = vec![Try::Session];
    if session.hash && joins_on_a_condition(plan) {
        let merge = Try::Merge.planning(session);
        if reads_only_sorted_tables(plan) && merges_in_order(ctx, plan, merge).await {
            tries.insert(0, Try::Merge);
        } else {
            tries.push(Try::Merge);
        }
    }
    if session.parts > 1 {
        tries.push(Try::One);
    }
    tries
}

/// Whether every table `plan` reads (through views too) is stored in an order it declares,
/// as the replay's `carts` and `cart_events` are: only then can its merge joins stream
/// (`merges_in_order`), which is worth planning it a second time to find out (planning a
/// query over the observed tables reads a footer per file: 0.14-0.23 s at 1M carts).
fn reads_only_sorted_tables(plan: &datafusion::logical_expr::LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let (mut scans, mut sorted) = (0, true);
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scans += 1;
            sorted &=
                datafusion::datasource::source_as_provider(&scan.source).is_ok_and(|p| {
                    match p.downcast_ref::<ListingTable>() {
                        Some(t) => !t.options().file_sort_order.is_empty(),
                        None => p
                            .get_logical_plan()
                            .is_some_and(|view| reads_only_sorted_tables(&view)),
                    }
                });
        }
        Ok(if sorted {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    scans > 0 && sorted
}

/// Whether `plan` planned with merge joins (`merge`, `Try::Merge`'s planning) has a
/// merge join and no sort below any: every input of each comes in join order already (the
/// replay's tables are stored in cart_id order), so the joins stream, holding a few batches.
async fn merges_in_order(
    ctx: &SessionContext,
    plan: &datafusion::logical_expr::LogicalPlan,
    merge: Planning,
) -> bool {
    use datafusion::physical_plan::joins::SortMergeJoinExec;
    use datafusion::physical_plan::sorts::sort::SortExec;
    use datafusion::physical_plan::ExecutionPlan;
    fn walk(p: &Arc<dyn ExecutionPlan>, below: bool, joins: &mut usize, sorts: &mut bool) {
        let join = p.is::<SortMergeJoinExec>();
        *joins += usize::from(join);
        *sorts |= below && p.is::<SortExec>();
        for c in p.children() {
            walk(c, below || join, joins, sorts);
        }
    }
    let before = Planning::of(ctx);
    merge.apply(ctx);
    let physical = DataFrame::new(ctx.state(), plan.clone())
        .create_physical_plan()
        .await;
    before.apply(ctx);
    let Ok(physical) = physical else {
        return false;
    };
    let (mut joins, mut sorts) = (0, false);
    walk(&physical, false, &mut joins, &mut sorts);
    joins > 0 && !sorts
}

/// Whether `plan` (or a subquery of it) joins on a condition, which may hold equal keys.
fn joins_on_a_condition(plan: &datafusion::logical_expr::LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        // Before the plan is optimized, a join's ON condition is its filter.
        found = matches!(node, LogicalPlan::Join(j) if !j.on.is_empty() || j.filter.is_some())
            // IN and EXISTS subqueries become equi-joins when the plan is optimized.
            || matches!(node, LogicalPlan::Subquery(_));
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Before a try after the first: once the tasks of the one that failed (with `e`) have
/// given their memory back, a note that says what the next try does and why.
async fn next_try(ctx: &SessionContext, way: Try, all: usize, e: &dyn std::fmt::Display) {
    released(ctx).await;
    let cap = crate::output::human_bytes(memory_limit() as u64);
    let why = short_why(e);
    match way {
        Try::Session => eprintln!(
            "cartscope: note: the query's merge joins need more memory than the {cap} it may use ({why}): running it again with hash joins"
        ),
        Try::Merge => eprintln!(
            "cartscope: note: the query's joins need more memory than the {cap} it may use ({why}): running it again with merge joins, which stream over tables in join order and spill what they sort"
        ),
        Try::One => eprintln!(
            "cartscope: note: the query needs more memory in {all} partitions than the {cap} it may use ({why}): running it again in one partition, whose sorts spill to disk (a larger --memory-limit lets it use every core)"
        ),
    }
}

/// The first line of DataFusion's account of running out of memory: which operator, and
/// how much it asked for (not the list of the top consumers that follows).
pub fn short_why(e: &dyn std::fmt::Display) -> String {
    let why = e.to_string();
    let why = why.lines().next().unwrap_or_default();
    why.split(" with top memory consumers")
        .next()
        .unwrap_or(why)
        .to_string()
}

/// Runs one query of `query`, `shell` or `check` across every thread (the session's rule,
/// `partitions`, is for the replay and the report), and again as the next of its `tries`
/// each time it runs out of memory before its first row: joining the other way, then in
/// one partition. How much a query reads (`scanned_bytes`) is no sign of how much it holds:
/// most read many rows and keep few (a join that looks up 13k carts' spans probes all 6M
/// spans, 1.6 GB decoded at 1M carts), and they take about half the time across two cores.
/// A sort of about as much as the cap holds runs out of memory some of the time, across two
/// partitions more often than in one, whose sort has the whole cap (sorting the real JS
/// SDK's 755k spans under 24 MB: two partitions failed, one finished; under 16 MB one
/// partition failed in one run of two). The rows are streamed: the first batch has been
/// produced when this returns, so a failure later (rare: the sorts and aggregates that hold
/// memory finish before a row comes out of them) is the query's error as before. A
/// DataFrame plans with the settings of when it was made, so the query is made again for
/// each try; how the session planned before (`Planning::of`) is put back.
pub async fn execute_fitted(
    ctx: &SessionContext,
    df: DataFrame,
) -> datafusion::error::Result<datafusion::physical_plan::SendableRecordBatchStream> {
    use futures::StreamExt;
    let (_, plan) = df.into_parts();
    let before = Planning::of(ctx);
    let session = Planning {
        parts: threads(ctx),
        ..before
    };
    let all = session.parts;
    let ways = tries(ctx, &plan, session).await;
    let reads = crate::output::timings().then(|| scanned_bytes(ctx, &plan));
    let stream = async {
        let mut last = Err(datafusion::error::DataFusionError::Internal(
            "no try of the query was made".into(),
        ));
        for (i, &way) in ways.iter().enumerate() {
            if let (true, Err(e)) = (i > 0, &last) {
                next_try(ctx, way, all, e).await;
            }
            let df = replan(ctx, &plan, way, session, reads);
            if i + 1 == ways.len() {
                return df.execute_stream().await;
            }
            let mut stream = match df.execute_stream().await {
                Ok(s) => s,
                Err(e) if out_of_pool(&e) => {
                    last = Err(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            // (A forced failure stands in for the first batch even when there is none.)
            let first = match (stream.next().await, fail_for_tests(Ok(()), i)) {
                (_, Err(e)) => Some(Err(e)),
                (first, Ok(())) => first,
            };
            match first {
                Some(Err(e)) if out_of_pool(&e) => {
                    drop(stream);
                    last = Err(e);
                }
                Some(Err(e)) => return Err(e),
                first => {
                    let schema = stream.schema();
                    let rows = futures::stream::iter(first).chain(stream);
                    return Ok(Box::pin(
                        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                            schema, rows,
                        ),
                    )
                        as datafusion::physical_plan::SendableRecordBatchStream);
                }
            }
        }
        last
    }
    .await;
    before.apply(ctx);
    stream
}

/// `execute_fitted` for a query whose rows are all collected: nothing is written before
/// they are, so it runs again as the next of its tries whenever it runs out of memory.
pub async fn collect_fitted(
    ctx: &SessionContext,
    df: DataFrame,
) -> datafusion::error::Result<Vec<RecordBatch>> {
    let (_, plan) = df.into_parts();
    let before = Planning::of(ctx);
    let session = Planning {
        parts: threads(ctx),
        ..before
    };
    let all = session.parts;
    let ways = tries(ctx, &plan, session).await;
    let reads = crate::output::timings().then(|| scanned_bytes(ctx, &plan));
    let mut rows = Err(datafusion::error::DataFusionError::Internal(
        "no try of the query was made".into(),
    ));
    for (i, &way) in ways.iter().enumerate() {
        if let (true, Err(e)) = (i > 0, &rows) {
            next_try(ctx, way, all, e).await;
        }
        rows = replan(ctx, &plan, way, session, reads).collect().await;
        if i + 1 < ways.len() {
            rows = fail_for_tests(rows, i);
        }
        if !matches!(&rows, Err(e) if out_of_pool(e)) {
            break;
        }
    }
    before.apply(ctx);
    rows
}

/// `rows`, or with `CARTSCOPE_PARTITIONED_FAILS=N` an out-of-memory error in its place when
/// this is one of the first N tries (`try_no` counts from 0; the last try never fails so):
/// the tests' way to make a query's tries fail, as data too large for the cap does (at the
/// edge of the cap it does so only some of the time).
fn fail_for_tests<T>(
    rows: datafusion::error::Result<T>,
    try_no: usize,
) -> datafusion::error::Result<T> {
    let fails = std::env::var("CARTSCOPE_PARTITIONED_FAILS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if try_no < fails {
        return Err(datafusion::error::DataFusionError::ResourcesExhausted(
            format!("CARTSCOPE_PARTITIONED_FAILS={fails}"),
        ));
    }
    rows
}

/// Waits (up to a second) for the tasks of a failed query to let go of the memory they
/// held: dropping its stream aborts them, and they give their memory back as they stop,
/// which a query started at once would otherwise find still taken.
async fn released(ctx: &SessionContext) {
    let pool = ctx.runtime_env().memory_pool.clone();
    let start = std::time::Instant::now();
    while pool.reserved() > 0 && start.elapsed() < std::time::Duration::from_secs(1) {
        tokio::task::yield_now().await;
    }
}

/// Whether DataFusion ran out of its memory pool (`exhausted`, for its own error type).
fn out_of_pool(e: &datafusion::error::DataFusionError) -> bool {
    matches!(
        e.find_root(),
        datafusion::error::DataFusionError::ResourcesExhausted(_)
    )
}

/// How the next queries join: (prefer a hash join, partitions). DataFusion plans a
/// sort-merge join, whose sorts spill, only when hash joins are not preferred and there are
/// two partitions or more; a hash join's table cannot spill.
pub fn joins(ctx: &SessionContext) -> (bool, usize) {
    let c = ctx.copied_config();
    (
        c.options().optimizer.prefer_hash_join,
        c.target_partitions(),
    )
}

/// Sets how the next queries join (see `joins`).
pub fn set_joins(ctx: &SessionContext, (hash, parts): (bool, usize)) {
    let state = ctx.state_ref();
    let mut state = state.write();
    let o = state.config_mut().options_mut();
    o.optimizer.prefer_hash_join = hash;
    o.execution.target_partitions = parts.max(1);
}

/// `e` said in cartscope's terms if it is DataFusion running out of its memory pool: `what`
/// needs more memory than it may use.
pub fn out_of_memory(e: anyhow::Error, what: &str) -> anyhow::Error {
    if exhausted(&e) {
        e.context(format!(
            "{what} needs more memory than the {} it may use: raise --memory-limit",
            crate::output::human_bytes(memory_limit() as u64)
        ))
    } else {
        e
    }
}

/// Whether an error is DataFusion running out of its memory pool.
pub fn exhausted(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<datafusion::error::DataFusionError>()
            .is_some_and(out_of_pool)
    })
}

/// About how many bytes the columns a plan scans hold decoded (Parquet files by their size
/// times `PARQUET_EXPANSION`, times the share of the file the scanned columns take; in-memory
/// tables by their arrays), following views and subqueries. The plan is optimized first, so
/// that each scan names the columns the query reads. A scan of something else counts nothing.
fn scanned_bytes(ctx: &SessionContext, plan: &datafusion::logical_expr::LogicalPlan) -> u64 {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let optimized = ctx.state().optimize(plan).ok();
    let mut total = 0u64;
    let _ = optimized
        .as_ref()
        .unwrap_or(plan)
        .apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                if let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source) {
                    let bytes = provider_bytes(ctx, provider.as_ref(), scan.projection.as_deref());
                    total = total.saturating_add(bytes);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
    total
}

/// What `scanned_bytes` counts for one table, `projection` its columns read (all if `None`).
fn provider_bytes(
    ctx: &SessionContext,
    provider: &dyn TableProvider,
    projection: Option<&[usize]>,
) -> u64 {
    let schema = provider.schema();
    let read = |i: usize| projection.is_none_or(|p| p.contains(&i));
    if let Some(listing) = provider.downcast_ref::<ListingTable>() {
        let files: Vec<PathBuf> = listing
            .table_paths()
            .iter()
            .filter_map(|u| u.get_url().to_file_path().ok())
            .collect();
        // Local files only: those in an object store count for nothing here (queries over
        // them are tried across every thread first).
        let all = parquet_decoded(&[], &files);
        if projection.is_none() {
            return all;
        }
        // The files of a table share its columns: the first one's footer tells their shares.
        let share = files.first().and_then(|f| {
            let file = std::fs::File::open(f).ok()?;
            let meta = datafusion::parquet::file::metadata::ParquetMetaDataReader::new()
                .parse_and_finish(&file)
                .ok()?;
            let (mut wanted, mut total) = (0u64, 0u64);
            for rg in meta.row_groups() {
                for c in rg.columns() {
                    let size = c.compressed_size().max(0) as u64;
                    total += size;
                    let top = c.column_path().parts().first().map(String::as_str);
                    let index = top.and_then(|n| schema.index_of(n).ok());
                    if index.is_none_or(read) {
                        wanted += size;
                    }
                }
            }
            (total > 0).then(|| wanted as f64 / total as f64)
        });
        return (all as f64 * share.unwrap_or(1.0)) as u64;
    }
    if let Some(mem) = provider.downcast_ref::<MemTable>() {
        return mem
            .batches
            .iter()
            .map(|part| {
                part.try_read()
                    .map(|batches| {
                        batches
                            .iter()
                            .flat_map(|b| b.columns().iter().enumerate())
                            .filter(|(i, _)| read(*i))
                            .map(|(_, c)| c.get_array_memory_size() as u64)
                            .sum()
                    })
                    .unwrap_or(0)
            })
            .sum();
    }
    match provider.get_logical_plan() {
        Some(plan) => scanned_bytes(ctx, &plan),
        None => 0,
    }
}

/// (Re)creates the views over observed and derived rows: `traces`, `metrics`, and `spans`
/// (another name for `traces`). A view is bound to the tables as they were when it was made,
/// so whoever registers new derived rows calls this again.
pub async fn present(ctx: &SessionContext) -> Result<()> {
    for table in Table::ALL {
        let Some(derived) = table.derived_name() else {
            continue;
        };
        let observed = table.observed_name();
        // A side known to be empty is left out: the same rows, and a plan Ballista runs
        // reliably (a union with an empty table's branch made its scheduler drop a task's
        // status now and then, and the query wait for ever: see `sql::ballista`).
        let mut parts = Vec::new();
        for (name, flag) in [(observed, false), (derived, true)] {
            if !is_empty_table(ctx, name).await? {
                parts.push(format!("SELECT *, {flag} AS derived FROM {name}"));
            }
        }
        if parts.is_empty() {
            parts.push(format!("SELECT *, false AS derived FROM {observed}"));
        }
        ctx.deregister_table(table.name())?;
        ctx.sql(&format!(
            "CREATE VIEW {} AS {}",
            table.name(),
            parts.join(" UNION ALL ")
        ))
        .await?;
    }
    ctx.deregister_table("spans")?;
    ctx.sql("CREATE VIEW spans AS SELECT * FROM traces").await?;
    Ok(())
}

/// Whether `name` is registered as a table with no rows by construction (`EmptyTable`).
async fn is_empty_table(ctx: &SessionContext, name: &str) -> Result<bool> {
    let provider = ctx.table_provider(name).await?;
    Ok(provider.downcast_ref::<EmptyTable>().is_some())
}

/// A dataset's table. The spans' filters are evaluated inside the Parquet scan (filter
/// pushdown), before the other columns of a row are decoded: a question about a few spans
/// (one operation's slow ones, an exemplar's span) then skips decoding the attribute maps of
/// all the others. Measured at 1M generated carts (bench/RESULTS.md, 2026-12-06):
/// reference_correlation 1.53x-1.72x, exemplar_drilldown 1.08x-1.10x, detect and report
/// within the noise; a scan that keeps most spans pays for it (0.89x-0.94x on two such
/// ad-hoc queries). The other tables are read whole or by few rows of few columns, and pushdown
/// on `cart_events` measured slower (0.93x-0.95x): off.
fn listing_table(table: Table, parts: &[PathBuf]) -> Result<Arc<dyn TableProvider>> {
    parquet_table_with(parts, table.schema(), None, matches!(table, Table::Traces))
}

/// Parquet files, named one by one, as a table of `schema`; `sorted_by` names the column
/// each file's rows are in ascending order of, when they are. A dataset part still under
/// its pending name (a crash cut its rename short) is read all the same.
pub fn parquet_table(
    files: &[PathBuf],
    schema: datafusion::arrow::datatypes::SchemaRef,
    sorted_by: Option<&str>,
) -> Result<Arc<dyn TableProvider>> {
    parquet_table_with(files, schema, sorted_by, false)
}

/// `parquet_table`, with `pushdown`: the scan evaluates the filters it is given row by row
/// (late materialization), in the order it estimates cheapest.
fn parquet_table_with(
    files: &[PathBuf],
    schema: datafusion::arrow::datatypes::SchemaRef,
    sorted_by: Option<&str>,
    pushdown: bool,
) -> Result<Arc<dyn TableProvider>> {
    let urls = files
        .iter()
        .map(|p| {
            ListingTableUrl::parse(p.to_string_lossy())
                .with_context(|| format!("bad file path '{}'", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let extension = if files
        .iter()
        .any(|p| p.extension().is_some_and(|e| e != "parquet"))
    {
        ""
    } else {
        ".parquet"
    };
    let mut format = ParquetFormat::default();
    if pushdown {
        let mut o = format.options().clone();
        o.global.pushdown_filters = true;
        o.global.reorder_filters = true;
        format = format.with_options(o);
    }
    let mut options = ListingOptions::new(Arc::new(format)).with_file_extension(extension);
    if let Some(c) = sorted_by {
        options =
            options.with_file_sort_order(vec![vec![datafusion::prelude::col(c).sort(true, false)]]);
    }
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// The Arrow schema a Parquet file was written with.
pub fn parquet_schema(path: &std::path::Path) -> Result<datafusion::arrow::datatypes::SchemaRef> {
    let f =
        std::fs::File::open(path).with_context(|| format!("cannot open '{}'", path.display()))?;
    let b = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .with_context(|| format!("'{}' is not a readable Parquet file", path.display()))?;
    Ok(b.schema().clone())
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
