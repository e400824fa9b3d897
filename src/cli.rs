//! The command line, typed at the edge: every value a flag takes is parsed here, by clap's
//! value parsers, into what the code uses (times, durations, sizes, models, enums), so a bad
//! value is an error that names its flag (exit code 2) and nothing downstream parses a string
//! again. A flag that does not apply with another is refused (`conflicts_with`), never
//! ignored. Building real objects from these values happens in each command's module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::generate::workload::IncidentArg;
use crate::output::Format;
use crate::replay::model::{Model, Preset};
use crate::sql::engine::Engine;
use crate::time::{Day, Duration, TimeArg, Timestamp};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (bad records may have been skipped: they are reported on stderr)
  1  a check failed (cartscope check)
  2  an error: bad arguments (a malformed value names its flag), an unreadable or unrecognised
     input, a bad record under --strict,
     an SQL error, a bad rules file or baseline (cartscope check)";

#[derive(Debug, Parser)]
#[command(
    name = "cartscope",
    version,
    about = "Why are carts abandoned? Replays every cart's life from OpenTelemetry exports.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Worker threads for reading and queries [default: the number of cores].
    #[arg(long, global = true, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,

    /// Never draw a progress bar (it is drawn only on a terminal anyway).
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// Cap the memory queries and the replay use (like 4GB or 512MB): sorts, aggregations
    /// and joins then spill to temporary files [default: a quarter of the machine's memory].
    /// Raw exports given to --data are loaded into memory while they would take at most
    /// half of it, else read through a temporary dataset (`cartscope ingest` them to read
    /// them in place every time). The loader's check for repeated spans takes up to an
    /// eighth of it besides (about 20 bytes a span). Not bounded by it: in the replay, a
    /// few things that grow with the number of operation names or of abandonments the
    /// input recorded itself.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<usize>,

    /// Write CSV and TSV cells as they are. By default a text cell starting with =, +, -, @,
    /// a tab or a carriage return gets a leading ' so that a spreadsheet does not run it as
    /// a formula (telemetry strings are whatever users typed).
    #[arg(long, global = true)]
    pub raw: bool,

    /// The largest record read whole: a line, a JSON document, a protobuf message or a
    /// (decompressed) frame. A larger one is skipped and reported; the rest of the file is
    /// read [default: 256MiB, far above any real export's].
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub max_record_size: Option<usize>,

    /// The most a compressed file may expand (decompressed bytes per compressed byte) past
    /// its first 64 MiB; beyond it the stream is taken for a decompression bomb and the rest
    /// of the file is skipped and reported [default: 250; real exports expand 5-20 times].
    #[arg(long, global = true, value_name = "RATIO", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_expansion: Option<u64>,

    /// Colour in help and error messages (the only colour cartscope prints): on a terminal
    /// unless NO_COLOR is set (auto), always, or never.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: clap::ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the command line (exiting with clap's message and code 2 on a bad one), with
    /// `--color` applied to clap's own messages: the flag has to be known before the line
    /// is parsed, so it is looked for first.
    pub fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let cmd = Cli::command().color(color_asked(&args));
        let matches = cmd.get_matches_from(&args);
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// The `--color` value on a command line, before parsing it [auto if absent or malformed:
/// the parse then says what is wrong].
fn color_asked(args: &[std::ffi::OsString]) -> clap::ColorChoice {
    use clap::ValueEnum;
    let mut asked = None;
    let mut it = args.iter().map(|a| a.to_string_lossy());
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--color" {
            asked = it.next().map(|v| v.into_owned());
        } else if let Some(v) = a.strip_prefix("--color=") {
            asked = Some(v.to_string());
        }
    }
    asked
        .and_then(|v| clap::ColorChoice::from_str(&v, false).ok())
        .unwrap_or(clap::ColorChoice::Auto)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert exports into a Parquet dataset (a folder per table, partitioned by day).
    Ingest(IngestArgs),
    /// List the tables with their row counts and time ranges.
    Tables(TablesArgs),
    /// Print the canonical table schemas.
    Schema(SchemaArgs),
    /// Run SQL over the tables: a library query by name, a FILE.sql, or -e 'SQL'.
    Query(QueryArgs),
    /// List the SQL library: names, descriptions and parameters.
    Queries(QueriesArgs),
    /// Interactive SQL over the tables: history, tab completion, \d, \format.
    Shell(ShellArgs),
    /// Write a synthetic shop export whose right answers are known (truth.json).
    Generate(GenerateArgs),
    /// Replay every cart's life and decide which were abandoned, and why.
    Detect(DetectArgs),
    /// A lifecycle model as a starting file: a preset (--print), or one suggested by the data
    /// (--suggest).
    Model(ModelArgs),
    /// The abandonment report: figures, changes against the previous period, and why.
    Report(ReportArgs),
    /// Regression checks for CI: rules on the report's measures or on SQL, with limits or
    /// tolerances against a baseline report; exit code 1 when a rule fails.
    Check(CheckArgs),
    /// Run an Apache DataFusion Ballista scheduler or executor that knows cartscope's SQL
    /// functions, for `--engine df://HOST:PORT` (needs a build with `--features ballista`).
    Ballista(BallistaArgs),
    /// Print a shell's completion script (bash, zsh, fish, powershell, elvish): see the
    /// README for where to put it.
    Completions(CompletionsArgs),
    /// The manual pages (roff): cartscope(1) on stdout, or with --out a page per command.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write cartscope.1 and a cartscope-COMMAND.1 for every command into this folder
    /// (created if missing) instead of printing cartscope(1).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BallistaArgs {
    #[command(subcommand)]
    pub role: BallistaRole,
}

#[derive(Debug, Subcommand)]
pub enum BallistaRole {
    /// The scheduler: plans each query into stages and hands their tasks to executors. One
    /// per cluster; runs until stopped.
    Scheduler(SchedulerArgs),
    /// An executor: runs tasks and serves their results. One or more per cluster, each with
    /// its own ports and folder; runs until stopped (Ctrl-C or SIGTERM finish its tasks
    /// first). --threads sets its task slots and --memory-limit its memory pool.
    Executor(ExecutorArgs),
}

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// The address to listen on (0.0.0.0 for every interface).
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub bind_host: String,

    /// The port clients (--engine df://HOST:PORT) and executors connect to.
    #[arg(long, short = 'p', value_name = "PORT", default_value_t = crate::sql::engine::DEFAULT_SCHEDULER_PORT)]
    pub port: u16,

    /// The host name others reach this scheduler at [default: --bind-host].
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,

    /// Ready (`GET /readyz` on its port answers 200) once this many executors have joined.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_executors: usize,
}

#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// The scheduler to join.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050", value_parser = parse_host_port)]
    pub scheduler: (String, u16),

    /// The address to listen on (0.0.0.0 for every interface).
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub bind_host: String,

    /// The host name the scheduler and clients reach this executor at [default: the address
    /// the scheduler sees it connect from].
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,

    /// The Arrow Flight port clients and other executors fetch results from.
    #[arg(long, short = 'p', value_name = "PORT", default_value_t = 50051)]
    pub port: u16,

    /// The gRPC port the scheduler sends tasks to.
    #[arg(long, value_name = "PORT", default_value_t = 50052)]
    pub grpc_port: u16,

    /// The folder for shuffle files [default: a temporary folder, removed on exit].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub data: DataArgs,

    #[command(flatten)]
    pub replay: ReplayArgs,

    #[command(flatten)]
    pub period: PeriodArgs,

    #[command(flatten)]
    pub sampled: SampledArgs,

    #[arg(long, short = 'f', value_enum, default_value_t = crate::report::render::ReportFormat::Text)]
    pub format: crate::report::render::ReportFormat,

    /// Write the report to this file (atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// How many abandoned carts to list by value.
    #[arg(long, value_name = "N", default_value_t = crate::report::DEFAULT_TOP)]
    pub top: usize,

    /// Drivers need at least this many carts.
    #[arg(long, value_name = "N", default_value_t = crate::report::DEFAULT_MIN_SUPPORT)]
    pub min_support: u64,

    /// Attributes whose values are candidate drivers (repeatable) [default: service.version,
    /// user.segment, cloud.region, payment.method, shipping.carrier, deployment.environment.name].
    #[arg(long = "attribute", value_name = "KEY")]
    pub attributes: Vec<String>,
}

/// How the traces of a report or a check were sampled, when their spans do not say.
#[derive(Debug, Args, Clone, Default)]
pub struct SampledArgs {
    /// The probability with which the export's traces were kept, for spans that record none
    /// (no `ot=th:` in their tracestate, none of the model's sampling keys): the report
    /// weighs each cart by 1/P. A number above 0 and at most 1.
    #[arg(long, value_name = "P", value_parser = parse_kept_share, allow_negative_numbers = true)]
    pub trace_sample_rate: Option<f64>,

    /// The tail sampler that kept the export's traces, for spans that record nothing: POLICY
    /// is keep-errors, keep-slow[=DURATION] (2s unless given) and rate=P for the others, as
    /// `generate --tail-sample` takes it. A trace with an error or a span that slow counts
    /// once; any other for 1/P.
    #[arg(long, value_name = "POLICY", conflicts_with = "trace_sample_rate", value_parser = parse_from::<crate::report::sampling::TailPolicy>)]
    pub trace_sample_policy: Option<crate::report::sampling::TailPolicy>,
}

impl SampledArgs {
    /// What the flags say of the sampling.
    pub fn declared(&self) -> crate::report::sampling::Declared {
        use crate::report::sampling::Declared;
        match (self.trace_sample_rate, &self.trace_sample_policy) {
            (Some(p), _) => Declared::Rate(p),
            (None, Some(t)) => Declared::Policy(t.clone()),
            (None, None) => Declared::Nothing,
        }
    }
}

fn parse_kept_share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 1.0 => Ok(p),
        _ => Err(format!(
            "'{s}' is not a sampling probability: give a number above 0 and at most 1, such as 0.25 for one trace in four"
        )),
    }
}

/// The period a report or a check is about: the carts first seen in it.
#[derive(Debug, Args, Clone, Default)]
pub struct PeriodArgs {
    /// This UTC day (carts first seen that day); judged as of its end unless --as-of.
    #[arg(long, value_name = "YYYY-MM-DD", conflicts_with_all = ["since", "until"], value_parser = parse_from::<Day>)]
    pub day: Option<Day>,

    /// Start of the period (RFC 3339 or relative to the as-of time, like -24h) [default: 24h
    /// before --until].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, value_parser = parse_from::<TimeArg>)]
    pub since: Option<TimeArg>,

    /// End of the period [default: the as-of time].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, value_parser = parse_from::<TimeArg>)]
    pub until: Option<TimeArg>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub data: DataArgs,

    #[command(flatten)]
    pub replay: ReplayArgs,

    #[command(flatten)]
    pub period: PeriodArgs,

    #[command(flatten)]
    pub sampled: SampledArgs,

    /// The rules: a TOML file of [[rule]] tables (see checks.example.toml).
    #[arg(long, value_name = "FILE", required_unless_present = "write_baseline")]
    pub rules: Option<PathBuf>,

    /// A report in JSON (`cartscope report --format json`, or --write-baseline) that rules
    /// with max_increase / max_decrease tolerances compare against.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Also write this run's report in JSON to FILE (atomically), as the next baseline.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,

    /// Also write the verdicts as JUnit XML to FILE (atomically), for CI systems to display.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    #[arg(long, short = 'f', value_enum, default_value_t = crate::check::CheckFormat::Text)]
    pub format: crate::check::CheckFormat,
}

/// Where queries run; the same for every command that replays.
#[derive(Debug, Args, Clone, Default)]
pub struct EngineArgs {
    /// Where queries run: `local` (this process), `ballista-standalone` (an Apache
    /// DataFusion Ballista scheduler and executor started in this process) or
    /// `df://HOST:PORT` (a running Ballista scheduler: `cartscope ballista`). Ballista reads
    /// ingested datasets only (`cartscope ingest`), and needs cartscope built with
    /// `--features ballista`.
    #[arg(long, value_name = "ENGINE", default_value = "local", value_parser = parse_from::<Engine>)]
    pub engine: Engine,

    /// The folder for temporary tables (a replay not kept beside a dataset, the report's
    /// passes) and spill files. On a Ballista cluster every executor must read it at the
    /// same path [default: the system's temporary folder].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

/// How the replay judges; the same for every command that replays.
#[derive(Debug, Args, Clone)]
pub struct ReplayArgs {
    /// The lifecycle model: a preset (reference, otel-demo) or a TOML file.
    #[arg(long, value_name = "PRESET|FILE", default_value = "reference", value_parser = parse_model)]
    pub model: Model,

    /// Judge as of this time: RFC 3339, or relative to the latest timestamp in the data
    /// (-2h). Default: the latest timestamp in the data, so results do not depend on today.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, value_parser = parse_from::<TimeArg>)]
    pub as_of: Option<TimeArg>,

    /// Idle time after which a cart is abandoned [default: the model's, 30m].
    #[arg(long, value_name = "DURATION", value_parser = parse_from::<Duration>)]
    pub threshold: Option<Duration>,

    /// Replay again, even when a replay of this dataset with this model, threshold and
    /// as-of time was kept from an earlier run (in DATASET/replays/).
    #[arg(long)]
    pub refresh: bool,

    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    #[command(flatten)]
    pub data: DataArgs,

    #[command(flatten)]
    pub replay: ReplayArgs,

    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Show at most this many carts in the table and markdown formats.
    #[arg(long, value_name = "N", default_value_t = 25)]
    pub max_rows: usize,

    /// Also write the replay tables (carts, cart_events, abandonments) as Parquet into DIR.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Also write the replay's derived rows (the abandonment spans and the state-transition
    /// points the model names) to FILE as OTLP/JSON lines, as the instrumentation would
    /// have exported them, for a Collector's `otlpjsonfile` receiver.
    #[arg(long, value_name = "FILE")]
    pub emit_otlp: Option<PathBuf>,

    /// Explain the replay on this data instead of listing carts: the spans and carts each
    /// stage matched, how spans were given to carts, then the SQL and the fold it ran.
    #[arg(long)]
    pub explain: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["print", "suggest"])))]
pub struct ModelArgs {
    /// Print the preset as TOML.
    #[arg(long, value_name = "PRESET", value_enum)]
    pub print: Option<Preset>,

    /// Read an export and write a starting model for it as TOML, each choice commented with
    /// its evidence (needs --data).
    #[arg(long, requires = "data")]
    pub suggest: bool,

    /// The export to suggest a model for: files, directories, globs or datasets.
    #[arg(long = "data", short = 'd', value_name = "INPUT", num_args = 1.., requires = "suggest")]
    pub data: Vec<String>,

    /// Stop at the first bad record (exit code 2) instead of skipping and reporting it.
    #[arg(long, requires = "suggest")]
    pub strict: bool,

    /// Write the model to FILE (atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE", requires = "suggest")]
    pub out: Option<PathBuf>,
}

/// Where the data comes from; the same for every command that reads data.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// Exports to read: files (OTLP/JSON, OTLP protobuf, gzip/zstd, Parquet), directories
    /// (read recursively), globs, datasets written by `cartscope ingest`, or - for standard
    /// input (OTLP/JSON lines or protobuf, compressed or not).
    #[arg(long = "data", short = 'd', value_name = "INPUT", required = true, num_args = 1..)]
    pub data: Vec<String>,

    /// Stop at the first bad record (exit code 2) instead of skipping and reporting it.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Exports to convert: files, directories, globs, or - for standard input.
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<String>,

    /// The dataset folder; created if needed, appended to if it exists.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,

    /// Stop at the first bad record (exit code 2) instead of skipping and reporting it.
    #[arg(long)]
    pub strict: bool,

    /// Into an object store only: part files its manifest does not list (left by an ingest
    /// cut short) are deleted once the store says they were written this long ago, by this
    /// machine's clock [default: 1d]. A younger one may be another ingest's, uploaded and not
    /// yet committed, so it is left (never read): make it longer than one input's whole upload
    /// and commit. `0s` deletes them all: only when no other ingest writes to the dataset.
    /// (A local dataset is locked for one ingest at a time instead.)
    #[arg(long, value_name = "DURATION", value_parser = parse_from::<Duration>)]
    pub orphan_age: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct TablesArgs {
    #[command(flatten)]
    pub data: DataArgs,

    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Only this table.
    #[arg(value_name = "TABLE")]
    pub table: Option<String>,

    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// A library query's name (see `cartscope queries`) or a FILE.sql; after --data's
    /// inputs, it is told from them by not being one.
    #[arg(value_name = "NAME|FILE.sql", conflicts_with = "execute")]
    pub query: Option<String>,

    /// SQL to run, given on the command line.
    #[arg(long = "execute", short = 'e', value_name = "SQL")]
    pub execute: Option<String>,

    #[command(flatten)]
    pub data: DataArgs,

    #[command(flatten)]
    pub replay: ReplayArgs,

    /// A query parameter (repeatable): --param threshold_ms=3000.
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub params: Vec<(String, String)>,

    /// Another folder of .sql files for the library.
    #[arg(long = "queries", value_name = "DIR")]
    pub queries: Vec<PathBuf>,

    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Write the result to this file (atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Return at most this many rows.
    #[arg(long, value_name = "N")]
    pub max_rows: Option<usize>,

    /// Query the loaded tables only, without replaying carts (faster on big exports; the
    /// carts tables and derived rows are then missing). --as-of still sets now().
    #[arg(long, conflicts_with_all = ["model", "threshold"])]
    pub no_replay: bool,
}

#[derive(Debug, Args)]
pub struct QueriesArgs {
    /// Another folder of .sql files for the library.
    #[arg(long = "queries", value_name = "DIR")]
    pub queries: Vec<PathBuf>,

    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Any value with a `FromStr` whose error says what to write instead.
fn parse_from<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr<Err = anyhow::Error>,
{
    s.parse().map_err(|e: anyhow::Error| format!("{e:#}"))
}

/// A preset's name or a model file, read and checked now, so a bad model names --model.
fn parse_model(s: &str) -> Result<Model, String> {
    Model::load(s).map_err(|e| format!("{e:#}"))
}

/// `HOST:PORT`, the port from 1 to 65535.
fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not HOST:PORT"))?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 && !host.is_empty() => Ok((host.to_string(), p)),
        _ => Err(format!(
            "'{s}' is not HOST:PORT with a port from 1 to 65535"
        )),
    }
}

fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("it must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a number of threads")),
    }
}

/// `4GB`, `512MB`, `1.5GiB`, `2000000` (bytes).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size: write it like 4GB or 512MB"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "'{s}': unknown unit '{other}' (B, KB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    let bytes = n * scale;
    if bytes.is_nan() || bytes < 1.0 || bytes >= usize::MAX as f64 {
        return Err(format!("'{s}' is not a size cartscope can use"));
    }
    Ok(bytes as usize)
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// How many carts (10 to 10,000,000).
    #[arg(long, value_name = "N")]
    pub carts: u64,

    /// The folder to write into: otlp/traces.jsonl, otlp/metrics.jsonl, truth.json.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,

    /// The random seed: one seed, one output, byte for byte.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// When the export ends (RFC 3339). Fixed by default so runs are reproducible.
    #[arg(long, value_name = "TIME", default_value = "2026-11-20T12:00:00Z", value_parser = parse_from::<Timestamp>)]
    pub end: Timestamp,

    /// How long before --end the carts start.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_from::<Duration>)]
    pub window: Duration,

    /// Idle time after which a cart counts as abandoned, for the truth file.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_from::<Duration>)]
    pub threshold: Duration,

    /// How spans and attributes are named.
    #[arg(long, value_enum, default_value_t = crate::generate::naming::NamingPreset::Reference)]
    pub naming: crate::generate::naming::NamingPreset,

    /// Which spans carry the cart's value: every add to the cart; only checkout and later
    /// (then carts left before checkout have none; the truth still knows every cart's); or
    /// checkout, with each add recording its line's unit price and quantity.
    #[arg(long, value_enum, default_value_t = crate::generate::workload::ValueRecorded::EveryItem)]
    pub value_recorded: crate::generate::workload::ValueRecorded,

    /// Sample the traces as an SDK's probability sampler does: keep each trace with
    /// probability P (decided on its trace id) and write the threshold in its spans'
    /// tracestate (`ot=th:...`). Metrics, logs and the truth stay complete.
    #[arg(long, value_name = "P", value_parser = crate::generate::sampling::probability, conflicts_with = "tail_sample")]
    pub sample_rate: Option<f64>,

    /// Sample the traces as a Collector's tail sampler does, once each trace is complete:
    /// POLICY is keep-errors, keep-slow[=DURATION] (2s unless given) and rate=P for the
    /// others, separated by commas. Nothing is written in tracestate.
    #[arg(long, value_name = "POLICY", value_parser = parse_from::<crate::report::sampling::TailPolicy>)]
    pub tail_sample: Option<crate::report::sampling::TailPolicy>,

    /// Inject an incident: KIND:FROM-TO, KIND one of shipping-slow, payment-errors, bad-deploy;
    /// FROM and TO as RFC 3339 or HH:MM on the day --end falls in. Repeatable.
    #[arg(long, value_name = "KIND:FROM-TO", value_parser = parse_from::<IncidentArg>)]
    pub incident: Vec<IncidentArg>,

    /// Compress the JSON files.
    #[arg(long, value_enum, default_value_t = crate::generate::Compress::None)]
    pub compress: crate::generate::Compress,

    /// Also write the export as a Parquet dataset in DIR/parquet.
    #[arg(long)]
    pub parquet: bool,

    /// How to write the truth: truth.json, or truth.ndjson (one cart per line, totals last).
    #[arg(long, value_enum, default_value_t = crate::generate::TruthFormat::Auto)]
    pub truth: crate::generate::TruthFormat,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub data: DataArgs,

    #[command(flatten)]
    pub replay: ReplayArgs,

    /// How results are shown; `\format` switches it inside the shell.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,
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
