//! What the commands share: the global settings, and the steps that open the data, replay it
//! and build the report, so each command only orchestrates them.

use anyhow::{Context, Result};

use crate::read::input::Window;
use crate::read::load::LoadOptions;
use crate::read::projection::Projection;
use crate::replay::Reads;
use crate::time::{Day, Duration, TimeArg, Timestamp};

/// Settings every command shares.
#[derive(Debug, Clone)]
pub struct Globals {
    pub threads: usize,
    pub progress: bool,
    pub limits: crate::read::load::Limits,
}

impl Globals {
    /// How to load raw exports, reading only the attributes `reads` names.
    pub fn load_options(&self, strict: bool, reads: &Projection) -> LoadOptions {
        LoadOptions {
            strict,
            progress: self.progress,
            threads: self.threads,
            hash_inputs: false,
            limits: self.limits,
            projection: std::sync::Arc::new(reads.clone()),
            chunk: crate::read::load::CHUNK,
        }
    }
}

/// Resolves `--data`, loads it (of raw exports, only the attributes `reads` names) and
/// builds the session, whose queries `engine` runs.
pub async fn open_data(
    data: &crate::cli::DataArgs,
    engine: &crate::cli::EngineArgs,
    g: &Globals,
    reads: &Projection,
) -> Result<datafusion::prelude::SessionContext> {
    Ok(open_inputs(data, engine, g, reads, Window::default())
        .await?
        .0)
}

/// As `open_data`, with the inputs `--data` named.
async fn open_inputs(
    data: &crate::cli::DataArgs,
    engine: &crate::cli::EngineArgs,
    g: &Globals,
    reads: &Projection,
    window: Window,
) -> Result<(
    datafusion::prelude::SessionContext,
    crate::read::input::Inputs,
)> {
    crate::output::phase("start");
    engine.engine.check_built()?;
    let scratch = work_dir(engine)?;
    let inputs = crate::read::input::resolve_in(&data.data, window)?;
    if !engine.engine.is_local() {
        if let Some(d) = inputs
            .datasets
            .iter()
            .find(|d| crate::read::remote::url_in(d).is_some())
        {
            anyhow::bail!(
                "--engine {} reads datasets from a filesystem every executor shares, and '{}' is in an object store: run it with --engine local, or copy the dataset to that filesystem",
                engine.engine,
                d.display()
            );
        }
        if let Some(f) = inputs.files.first() {
            anyhow::bail!(
                "--engine {} reads ingested datasets only (every executor reads the files itself), and '{}' is a raw export: ingest it first (`cartscope ingest {} --out DATASET`) and give the dataset to --data",
                engine.engine,
                f.path.display(),
                f.path.display()
            );
        }
    }
    let opts = g.load_options(data.strict, reads);
    let (data, _stats) = crate::sql::session::Data::load(&inputs, &opts)?;
    let held: usize = data
        .mem
        .values()
        .flatten()
        .map(|b| b.get_array_memory_size())
        .sum();
    crate::output::phase(&format!(
        "load ({} held in memory)",
        crate::output::human_bytes(held as u64)
    ));
    let ctx = crate::sql::session::context(data, g.threads, &engine.engine).await?;
    if let Some(dir) = scratch {
        crate::sql::session::keep_until_dropped(&ctx, dir);
    }
    crate::output::phase("session");
    Ok((ctx, inputs))
}

/// Points every temporary file of this process (ours, DataFusion's spills, a standalone
/// Ballista executor's shuffle files) at `--work-dir`. Under `ballista-standalone`, into a
/// folder of its own there, returned to be removed with the session: Ballista's standalone
/// executor leaves its shuffle files behind otherwise.
fn work_dir(engine: &crate::cli::EngineArgs) -> Result<Option<tempfile::TempDir>> {
    let base = match &engine.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("--work-dir: cannot create '{}'", d.display()))?;
            d.clone()
        }
        None => std::env::temp_dir(),
    };
    let (dir, guard) = if engine.engine == crate::sql::engine::Engine::BallistaStandalone {
        let run = tempfile::Builder::new()
            .prefix("cartscope-run-")
            .tempdir_in(&base)
            .with_context(|| {
                format!(
                    "cannot create a folder in '{}': give --work-dir a folder that can be written",
                    base.display()
                )
            })?;
        (run.path().to_path_buf(), Some(run))
    } else if engine.work_dir.is_some() {
        (base, None)
    } else {
        return Ok(None);
    };
    // The first call decides; a process runs one command.
    let _ = tempfile::env::override_temp_dir(&dir);
    Ok(guard)
}

/// The as-of time the replay args ask for, given the data's latest timestamp.
pub fn as_of(r: &crate::cli::ReplayArgs, latest: Option<Timestamp>) -> Result<Timestamp> {
    match r.as_of {
        Some(t) => t.resolve(latest).context("--as-of"),
        None => latest.ok_or_else(|| {
            anyhow::anyhow!("the data has no timestamps to judge from: give --as-of")
        }),
    }
}

/// Opens the data and replays it: the session then has carts, cart_events, abandonments and
/// the derived rows. Of raw exports it reads the attributes the replay reads
/// (`replay::projection`) and those `reads` names (what the command does afterwards).
pub async fn open_replayed(
    data: &crate::cli::DataArgs,
    r: &crate::cli::ReplayArgs,
    g: &Globals,
    reads: &Projection,
) -> Result<(datafusion::prelude::SessionContext, crate::replay::Summary)> {
    open_replayed_in(data, r, g, reads, Window::default(), Reads::All).await
}

/// As `open_replayed`, for a command that reads only `part` of the replay: a replay of raw
/// files leaves the rest unwritten, and its tables empty or unregistered (`replay::Reads`).
pub async fn open_replayed_part(
    data: &crate::cli::DataArgs,
    r: &crate::cli::ReplayArgs,
    g: &Globals,
    reads: &Projection,
    part: Reads,
) -> Result<(datafusion::prelude::SessionContext, crate::replay::Summary)> {
    open_replayed_in(data, r, g, reads, Window::default(), part).await
}

/// As `open_replayed`, of the data of `window` only (see `Window`).
async fn open_replayed_in(
    data: &crate::cli::DataArgs,
    r: &crate::cli::ReplayArgs,
    g: &Globals,
    reads: &Projection,
    window: Window,
    part: Reads,
) -> Result<(datafusion::prelude::SessionContext, crate::replay::Summary)> {
    let reads = crate::replay::projection(&r.model).union(reads);
    let (ctx, inputs) = open_inputs(data, &r.engine, g, &reads, window).await?;
    // Kept beside the dataset only when the data is nothing but datasets, on this machine:
    // a dataset in an object store is replayed every time (its replays are not written
    // into the store).
    let local = |d: &std::path::PathBuf| crate::read::remote::url_in(d).is_none();
    let datasets = if inputs.files.is_empty()
        && inputs.unreadable.is_empty()
        && inputs.datasets.iter().all(local)
    {
        inputs.datasets.clone()
    } else {
        Vec::new()
    };
    let (latest, warning) = crate::replay::data_times(&ctx, &datasets).await?;
    if let Some(w) = warning {
        eprintln!("cartscope: warning: {w}");
    }
    crate::output::phase("latest and implausible times");
    let as_of = as_of(r, latest)?;
    crate::sql::session::pin_now(&ctx, as_of);
    let summary = crate::replay::run(
        &ctx,
        &r.model,
        &crate::replay::ReplayOptions {
            as_of,
            threshold: r.threshold,
            keep_beside: datasets,
            refresh: r.refresh,
            reads: part,
        },
    )
    .await?;
    for w in &summary.warnings {
        eprintln!("cartscope: warning: the model may not fit the data: {w}");
    }
    if summary.duplicate_spans > 0 {
        eprintln!(
            "cartscope: note: {} spans of carts were exported more than once (the same trace and span id): the replay counts each once",
            summary.duplicate_spans
        );
    }
    Ok((ctx, summary))
}

/// What the report lists besides its figures.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub top: usize,
    pub min_support: u64,
    pub attributes: Vec<String>,
    /// `--trace-sample-rate` or `--trace-sample-policy`.
    pub sampled: crate::report::sampling::Declared,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            top: crate::report::DEFAULT_TOP,
            min_support: crate::report::DEFAULT_MIN_SUPPORT,
            attributes: Vec::new(),
            sampled: crate::report::sampling::Declared::Nothing,
        }
    }
}

/// Loads and replays the data and builds the report of the period; the session stays open
/// for more SQL (`cartscope check` runs its SQL rules in it: `reads` names what they read of
/// raw exports' attributes).
/// Spans may be exported (and land in a time partition) this long after they end.
const EXPORT_DELAY: Duration = Duration::from_mins(60);
/// How long before the previous period began a cart seen in it may have started, beyond the
/// idle threshold: its earlier spans are still read, so it is first seen when it was.
const CART_LIFE: Duration = Duration::from_mins(6 * 60);

/// The span of time a report or check needs, when it is known before the data is read
/// (`--day`, times given as instants, or relative to an --as-of given as one): from the
/// start of the previous period, less the threshold and `CART_LIFE`, to the as-of time and
/// `EXPORT_DELAY` after it. An end that depends on the data's latest time is left open.
fn report_window(period: &crate::cli::PeriodArgs, replay: &crate::cli::ReplayArgs) -> Window {
    let as_of = match replay.as_of {
        Some(TimeArg::At(t)) => Some(t),
        _ => None,
    };
    let until = match (period.day, period.until) {
        (Some(d), _) => Some(d.end()),
        (None, Some(t)) => t.resolve(as_of).ok(),
        (None, None) => as_of,
    };
    let since = match (period.day, period.since) {
        (Some(d), _) => Some(d.start()),
        (None, Some(t)) => t.resolve(as_of).ok(),
        (None, None) => until.and_then(|u| u.checked_sub(Day::LENGTH)),
    };
    // The longest a cart may idle and still be alive: any stage's threshold.
    let threshold = replay
        .model
        .stages
        .iter()
        .filter_map(|s| s.threshold)
        .chain(replay.threshold)
        .chain([replay.model.threshold])
        .max()
        .unwrap_or_default();
    let from = since.zip(until).and_then(|(s, u)| {
        let length = Duration::from_ns(u.ns().checked_sub(s.ns())?.try_into().ok()?);
        s.checked_sub(length)?
            .checked_sub(threshold)?
            .checked_sub(CART_LIFE)
    });
    let to = as_of.and_then(|t| t.checked_add(EXPORT_DELAY));
    Window { from, to }
}

pub async fn open_report(
    data: &crate::cli::DataArgs,
    replay: &crate::cli::ReplayArgs,
    period: &crate::cli::PeriodArgs,
    tuning: &Tuning,
    g: &Globals,
    reads: &Projection,
) -> Result<(datafusion::prelude::SessionContext, crate::report::Report)> {
    let mut replay = replay.clone();
    if let (Some(d), None) = (period.day, &replay.as_of) {
        // A daily report is judged as of the day's end.
        replay.as_of = Some(TimeArg::At(d.end()));
    }
    let attributes: Vec<String> = if tuning.attributes.is_empty() {
        crate::report::DEFAULT_ATTRIBUTES
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        tuning.attributes.clone()
    };
    let reads = crate::report::projection(&attributes).union(reads);
    let window = report_window(period, &replay);
    let (ctx, s) = open_replayed_in(data, &replay, g, &reads, window, Reads::All).await?;
    crate::sql::session::note_one_partition(&ctx);
    let as_of = s.as_of;
    let (since, until) = match period.day {
        Some(d) => (d.start(), d.end()),
        None => {
            let until = match period.until {
                Some(t) => t.resolve(Some(as_of)).context("--until")?,
                None => as_of,
            };
            let since = match period.since {
                Some(t) => t.resolve(Some(as_of)).context("--since")?,
                None => until
                    .checked_sub(Day::LENGTH)
                    .context("--until is too early for a day before it")?,
            };
            (since, until)
        }
    };
    if since >= until {
        anyhow::bail!("the period is empty: --since must be before --until");
    }
    let opts = crate::report::Options {
        period: crate::report::Period { since, until },
        as_of,
        threshold: s.threshold,
        warnings: s.warnings.clone(),
        top: tuning.top,
        min_support: tuning.min_support,
        attributes,
        sampled: tuning.sampled.clone(),
    };
    let r = crate::report::build(&ctx, &replay.model, &opts).await?;
    Ok((ctx, r))
}
