//! `cartscope generate`: synthetic shop exports whose right answers are known.
//!
//! Layout of `--out DIR`: `otlp/traces.jsonl`, `otlp/metrics.jsonl` and `otlp/logs.jsonl` (the
//! export; `.gz` or `.zst` when compressed), `truth.json` beside it (never inside `otlp/`, so `--data DIR/otlp`
//! reads telemetry only), and `parquet/` with `--parquet`.
//!
//! Writes what real exporters write (OTLP/JSON lines as the Collector's file exporter does:
//! a batch of spans per line, grouped by resource and scope as an SDK groups them; the
//! metrics the instrumentation records, aggregated per 60 s export interval; the log lines the
//! services write inside their spans, with the span's trace and span ids), plain, gzip or
//! zstd, optionally Parquet, and `truth.json` (`truth.ndjson` past 100,000 carts) with every
//! cart's outcome and the totals. Carts are simulated in chunks, in parallel, and written in
//! order, so memory stays flat whatever the number of carts and one seed gives one output.

pub mod naming;
pub mod sampling;
pub mod workload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::read::otlp::values::{write_f64, write_json_str};
use crate::time::format_ns;
use workload::{CartSim, Observation, Params, Service, Span, Truth, Val};

/// Carts per written batch (one JSON line of spans per batch).
const CHUNK: u64 = 200;
/// Past this many carts the truth is written as JSON lines.
pub const TRUTH_NDJSON_ABOVE: u64 = 100_000;
const INTERVAL_NS: u64 = 60_000_000_000;
const STAGE_DURATION_BOUNDS: [f64; 8] = [30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Compress {
    #[default]
    None,
    Gzip,
    Zstd,
}

impl Compress {
    fn suffix(self) -> &'static str {
        match self {
            Compress::None => "",
            Compress::Gzip => ".gz",
            Compress::Zstd => ".zst",
        }
    }
}

/// How the truth is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum TruthFormat {
    /// truth.json up to 100,000 carts, truth.ndjson above.
    #[default]
    Auto,
    Json,
    Ndjson,
}

pub struct Options {
    pub params: Params,
    pub truth: TruthFormat,
    pub out: PathBuf,
    pub compress: Compress,
    pub parquet: bool,
    pub threads: usize,
    pub progress: bool,
}

#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Totals {
    pub carts: u64,
    pub converted: u64,
    pub abandoned: u64,
    pub active: u64,
    pub recovered: u64,
    /// abandoned / (abandoned + converted): active carts are censored, not counted.
    pub abandonment_rate: f64,
    pub abandoned_value: f64,
    pub causes: BTreeMap<String, u64>,
    pub spans: u64,
    pub noise_spans: u64,
    pub metric_points: u64,
    pub log_records: u64,
    /// Under `--sample-rate` or `--tail-sample`: the spans (of carts and noise) whose traces
    /// were kept, and so written; `spans` and `noise_spans` count every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_spans: Option<u64>,
}

pub struct Summary {
    pub totals: Totals,
    pub files: Vec<PathBuf>,
    pub bytes: u64,
}

/// A file written through a temporary file and renamed into place when complete.
struct OutFile {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
    w: Box<dyn Write>,
}

impl OutFile {
    fn create(path: PathBuf, compress: Compress) -> Result<OutFile> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot create a file in '{}'", dir.display()))?;
        let file = tmp.reopen()?;
        let buf = std::io::BufWriter::with_capacity(1 << 20, file);
        let w: Box<dyn Write> = match compress {
            Compress::None => Box::new(buf),
            // No file name or time in the header: the same input gives the same bytes.
            Compress::Gzip => Box::new(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .write(buf, flate2::Compression::new(6)),
            ),
            Compress::Zstd => Box::new(zstd::stream::write::Encoder::new(buf, 3)?.auto_finish()),
        };
        Ok(OutFile { path, tmp, w })
    }

    fn finish(self) -> Result<PathBuf> {
        let OutFile { path, tmp, mut w } = self;
        w.flush()?;
        drop(w); // finishes the compressed stream
        tmp.as_file().sync_all()?;
        let file = tmp.persist(&path).with_context(|| {
            format!(
                "cannot move the finished file into place at '{}'",
                path.display()
            )
        })?;
        crate::output::readable_by_all(&file)?;
        Ok(path)
    }
}

pub fn generate(opts: &Options) -> Result<Summary> {
    let p = &opts.params;
    if !(10..=10_000_000).contains(&p.carts) {
        bail!("--carts must be between 10 and 10000000, not {}", p.carts);
    }
    let otlp = opts.out.join("otlp");
    std::fs::create_dir_all(&otlp)
        .with_context(|| format!("cannot create '{}'", otlp.display()))?;
    let sfx = opts.compress.suffix();
    let mut traces = OutFile::create(otlp.join(format!("traces.jsonl{sfx}")), opts.compress)?;
    let mut logs = OutFile::create(otlp.join(format!("logs.jsonl{sfx}")), opts.compress)?;
    let ndjson_truth = match opts.truth {
        TruthFormat::Auto => p.carts > TRUTH_NDJSON_ABOVE,
        TruthFormat::Json => false,
        TruthFormat::Ndjson => true,
    };
    let truth_name = if ndjson_truth {
        "truth.ndjson"
    } else {
        "truth.json"
    };
    let mut truth = OutFile::create(opts.out.join(truth_name), Compress::None)?;
    if !ndjson_truth {
        write!(
            truth.w,
            "{{\"version\":1,\"generator\":{},\"carts\":[",
            generator_json(p)
        )?;
    }

    let pb = crate::output::progress_bar(
        opts.progress,
        if p.carts >= 100_000 { p.carts } else { 0 },
        "generating",
    );
    let mut totals = Totals::default();
    let mut metrics = MetricsAgg::default();
    let mut first_truth = true;
    let threads = opts.threads.max(1) as u64;
    let mut next = 0u64;
    let mut line = String::with_capacity(1 << 20);
    while next < p.carts {
        // `threads` chunks at a time, one per thread, written in order.
        let starts: Vec<u64> = (0..threads)
            .map(|k| next + k * CHUNK)
            .filter(|s| *s < p.carts)
            .collect();
        let results: Vec<Vec<CartSim>> = std::thread::scope(|s| {
            let handles: Vec<_> = starts
                .iter()
                .map(|&start| {
                    s.spawn(move || {
                        (start..(start + CHUNK).min(p.carts))
                            .map(|i| workload::simulate(p, i))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("generator thread"))
                .collect()
        });
        for sims in results {
            line.clear();
            let written = write_traces_line(&mut line, &sims, p);
            if !p.sampling.is_everything() {
                *totals.exported_spans.get_or_insert(0) += written;
            }
            traces.w.write_all(line.as_bytes())?;
            line.clear();
            totals.log_records += write_logs_line(&mut line, &sims, p);
            logs.w.write_all(line.as_bytes())?;
            for sim in &sims {
                totals.spans += sim.spans.len() as u64;
                totals.noise_spans += sim.noise.len() as u64;
                metrics.add(&sim.observations);
                if let Some(t) = &sim.truth {
                    count(&mut totals, t);
                    line.clear();
                    truth_json(&mut line, t)?;
                    if ndjson_truth {
                        line.push('\n');
                    } else {
                        truth
                            .w
                            .write_all(if first_truth { b"\n" } else { b",\n" })?;
                    }
                    first_truth = false;
                    truth.w.write_all(line.as_bytes())?;
                }
            }
        }
        next += threads * CHUNK;
        pb.set_position(next.min(p.carts));
    }
    pb.finish_and_clear();
    totals.abandonment_rate = if totals.abandoned + totals.converted > 0 {
        round6(totals.abandoned as f64 / (totals.abandoned + totals.converted) as f64)
    } else {
        0.0
    };
    totals.abandoned_value = (totals.abandoned_value * 100.0).round() / 100.0;

    let mut metrics_file =
        OutFile::create(otlp.join(format!("metrics.jsonl{sfx}")), opts.compress)?;
    totals.metric_points = metrics.write(&mut *metrics_file.w, p)?;
    let totals_json = serde_json::to_string(&totals)?;
    if ndjson_truth {
        writeln!(
            truth.w,
            "{{\"totals\":{totals_json},\"generator\":{}}}",
            generator_json(p)
        )?;
    } else {
        writeln!(truth.w, "\n],\"totals\":{totals_json}}}")?;
    }
    let mut files = vec![
        traces.finish()?,
        metrics_file.finish()?,
        logs.finish()?,
        truth.finish()?,
    ];

    if opts.parquet {
        let dir = opts.out.join("parquet");
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot replace '{}'", dir.display()))?;
        }
        let inputs: Vec<String> = files[..3].iter().map(|f| f.display().to_string()).collect();
        let load = crate::read::load::LoadOptions {
            strict: true,
            progress: opts.progress,
            threads: opts.threads,
            ..Default::default()
        };
        crate::dataset::ingest::ingest(&inputs, &dir, &load, crate::dataset::ORPHAN_AGE)?;
        files.push(dir);
    }
    let bytes = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    Ok(Summary {
        totals,
        files,
        bytes,
    })
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn count(t: &mut Totals, truth: &Truth) {
    t.carts += 1;
    match truth.outcome {
        "converted" => t.converted += 1,
        "abandoned" => {
            t.abandoned += 1;
            t.abandoned_value += truth.value;
            *t.causes
                .entry(truth.suspected_cause.to_string())
                .or_default() += 1;
        }
        "active" => t.active += 1,
        _ => t.recovered += 1,
    }
}

fn generator_json(p: &Params) -> String {
    let incidents: Vec<serde_json::Value> = p
        .incidents
        .iter()
        .map(|i| {
            serde_json::json!({
                "kind": clap::ValueEnum::to_possible_value(&i.kind).map(|v| v.get_name().to_string()),
                "from": format_ns(i.from_ns as i64),
                "to": format_ns(i.to_ns as i64),
            })
        })
        .collect();
    let mut g = serde_json::json!({
        "seed": p.seed,
        "carts": p.carts,
        "end": format_ns(p.end_ns as i64),
        "window": crate::time::format_duration(p.window_ns),
        "threshold": crate::time::format_duration(p.threshold_ns),
        "naming": if p.naming.cart_keyed_by_user { "otel-demo" } else { "reference" },
        "incidents": incidents,
        "rules": "outcome: converted if it completed with no idle spell of the threshold before; recovered if it came back after such a spell and then completed or is still active; abandoned if idle at least the threshold at the end without completing; else active. last_operation: the span that ended last. suspected_cause (abandoned carts only): slow_response if it took over 2000 ms, else error if it failed, else none.",
    });
    // Only when sampled: the truth of an unsampled export is what it always was.
    if let Some(how) = p.sampling.describe() {
        g["sampling"] = how.into();
    }
    g.to_string()
}

/// An id (at most 16 bytes) in lowercase hex.
fn hex(out: &mut String, b: &[u8]) {
    let mut buf = [0u8; 32];
    if let Some(Ok(s)) = buf
        .get_mut(..2 * b.len())
        .map(|buf| const_hex::encode_to_str(b, buf))
    {
        out.push_str(s);
    }
}

fn truth_json(out: &mut String, t: &Truth) -> Result<()> {
    out.push_str(&serde_json::to_string(t)?);
    Ok(())
}

fn attr(out: &mut String, key: &str, v: &Val) {
    out.push_str("{\"key\":");
    write_json_str(out, key);
    out.push_str(",\"value\":{");
    match v {
        Val::Str(s) => {
            out.push_str("\"stringValue\":");
            write_json_str(out, s);
        }
        Val::Int(i) => {
            let _ = write!(out, "\"intValue\":\"{i}\"");
        }
        Val::Double(d) => {
            out.push_str("\"doubleValue\":");
            write_f64(out, *d);
        }
    }
    out.push_str("}}");
}

fn attrs(out: &mut String, list: &[(&str, Val)]) {
    out.push('[');
    for (i, (k, v)) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        attr(out, k, v);
    }
    out.push(']');
}

fn span_json(out: &mut String, s: &Span, trace_state: Option<&str>) {
    out.push_str("{\"traceId\":\"");
    hex(out, &s.trace_id);
    out.push_str("\",\"spanId\":\"");
    hex(out, &s.span_id);
    out.push('"');
    if let Some(ts) = trace_state {
        out.push_str(",\"traceState\":");
        write_json_str(out, ts);
    }
    if let Some(p) = s.parent {
        out.push_str(",\"parentSpanId\":\"");
        hex(out, &p);
        out.push('"');
    }
    out.push_str(",\"flags\":1,\"name\":");
    write_json_str(out, s.name);
    let _ = write!(
        out,
        ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\"",
        s.kind.otlp(),
        s.start_ns,
        s.end_ns
    );
    if !s.attrs.is_empty() {
        out.push_str(",\"attributes\":");
        attrs(out, &s.attrs);
    }
    if !s.events.is_empty() {
        out.push_str(",\"events\":[");
        for (i, e) in s.events.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"timeUnixNano\":\"{}\",\"name\":", e.time_ns);
            write_json_str(out, e.name);
            out.push_str(",\"attributes\":");
            attrs(out, &e.attrs);
            out.push('}');
        }
        out.push(']');
    }
    match &s.error {
        Some(msg) => {
            out.push_str(",\"status\":{\"message\":");
            write_json_str(out, msg);
            out.push_str(",\"code\":2}}");
        }
        None => out.push_str(",\"status\":{}}"),
    }
}

fn resource_json(out: &mut String, p: &Params, svc: Service, version: &str, region: &str) {
    let name = p.naming.services[Service::ALL.iter().position(|s| *s == svc).unwrap_or(0)];
    let list: Vec<(&str, Val)> = vec![
        ("service.name", Val::Str(name.into())),
        ("service.version", Val::Str(version.into())),
        ("service.namespace", Val::Str("shop".into())),
        ("deployment.environment.name", Val::Str("production".into())),
        ("cloud.region", Val::Str(region.into())),
        ("telemetry.sdk.language", Val::Str("go".into())),
        ("telemetry.sdk.name", Val::Str("opentelemetry".into())),
        ("telemetry.sdk.version", Val::Str("1.32.0".into())),
    ];
    out.push_str("{\"attributes\":");
    attrs(out, &list);
    out.push('}');
}

/// One line of the file exporter: every span of a batch of carts whose trace the sampling
/// keeps, grouped by resource (service, version, region) and scope, as an SDK's batch
/// processor would export them. Returns how many spans it wrote.
fn write_traces_line(out: &mut String, sims: &[CartSim], p: &Params) -> u64 {
    let mut groups: BTreeMap<(Service, &str, &str), Vec<&Span>> = BTreeMap::new();
    let mut written = 0;
    for sim in sims {
        let all = || sim.noise.iter().chain(sim.spans.iter());
        let kept = (!p.sampling.is_everything()).then(|| {
            p.sampling.kept(all().map(|s| {
                let ns = s.end_ns.saturating_sub(s.start_ns);
                (s.trace_id, s.error.is_some(), ns)
            }))
        });
        for s in all() {
            if kept.as_ref().is_some_and(|k| !k[&s.trace_id]) {
                continue;
            }
            written += 1;
            groups
                .entry((s.service, s.version, s.region))
                .or_default()
                .push(s);
        }
    }
    if groups.is_empty() {
        return 0;
    }
    let trace_state = p.sampling.trace_state();
    out.push_str("{\"resourceSpans\":[");
    for (gi, ((svc, version, region), spans)) in groups.iter().enumerate() {
        if gi > 0 {
            out.push(',');
        }
        out.push_str("{\"resource\":");
        resource_json(out, p, *svc, version, region);
        let scope = p.naming.services[Service::ALL.iter().position(|s| s == svc).unwrap_or(0)];
        out.push_str(",\"scopeSpans\":[{\"scope\":{\"name\":");
        write_json_str(out, &format!("shop/{scope}"));
        out.push_str(",\"version\":\"1.0.0\"},\"spans\":[");
        for (i, s) in spans.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            span_json(out, s, trace_state.as_deref());
        }
        out.push_str("]}],\"schemaUrl\":\"https://opentelemetry.io/schemas/1.26.0\"}");
    }
    out.push_str("]}\n");
    written
}

/// Spans slower than this get a warning log line.
const SLOW_LOG_NS: u64 = 2_000_000_000;

/// A resource: the service, its version and region.
type ResourceKey<'a> = (Service, &'a str, &'a str);

/// A log line: severity number, severity text, body.
type LogLine = (u8, &'static str, String);

/// The log line a service writes inside a span, if any: (severity number, severity text,
/// body). Failures are logged as errors, slow calls as warnings and a placed order as
/// information, as a shop's services typically log them (an information line per item added
/// would make the logs a third of the export).
fn log_of(s: &Span) -> Option<LogLine> {
    if let Some(msg) = &s.error {
        return Some((17, "ERROR", format!("{} failed: {msg}", s.name)));
    }
    let ms = (s.end_ns - s.start_ns) / 1_000_000;
    if s.end_ns - s.start_ns >= SLOW_LOG_NS {
        return Some((13, "WARN", format!("{} slow: took {ms} ms", s.name)));
    }
    match s.step {
        workload::Step::Complete => Some((9, "INFO", "order placed".into())),
        _ => None,
    }
}

/// One line of logs for a batch of carts, grouped by resource as the traces are (the
/// Collector's file exporter writes logs as their own lines). Returns the records written.
fn write_logs_line(out: &mut String, sims: &[CartSim], p: &Params) -> u64 {
    let mut groups: BTreeMap<ResourceKey, Vec<(&Span, LogLine)>> = BTreeMap::new();
    for sim in sims {
        for s in sim.spans.iter() {
            if let Some(l) = log_of(s) {
                groups
                    .entry((s.service, s.version, s.region))
                    .or_default()
                    .push((s, l));
            }
        }
    }
    if groups.is_empty() {
        return 0;
    }
    let mut n = 0;
    out.push_str("{\"resourceLogs\":[");
    for (gi, ((svc, version, region), records)) in groups.iter().enumerate() {
        if gi > 0 {
            out.push(',');
        }
        out.push_str("{\"resource\":");
        resource_json(out, p, *svc, version, region);
        let scope = p.naming.services[Service::ALL.iter().position(|s| s == svc).unwrap_or(0)];
        out.push_str(",\"scopeLogs\":[{\"scope\":{\"name\":");
        write_json_str(out, &format!("shop/{scope}"));
        out.push_str("},\"logRecords\":[");
        for (i, (s, (number, text, body))) in records.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Written as the span ends, observed a moment later by the SDK's processor.
            let _ = write!(
                out,
                "{{\"timeUnixNano\":\"{}\",\"observedTimeUnixNano\":\"{}\",\"severityNumber\":{number},\"severityText\":\"{text}\",\"body\":{{\"stringValue\":",
                s.end_ns,
                s.end_ns + 1_000_000
            );
            write_json_str(out, body);
            out.push_str("},\"traceId\":\"");
            hex(out, &s.trace_id);
            out.push_str("\",\"spanId\":\"");
            hex(out, &s.span_id);
            out.push_str("\",\"flags\":1}");
            n += 1;
        }
        out.push_str("]}]}");
    }
    out.push_str("]}\n");
    n
}

/// (time, value, trace id, span id) of one exemplar.
type Exemplar = (u64, f64, [u8; 16], [u8; 8]);

#[derive(Default)]
struct HistAgg {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    buckets: [u64; STAGE_DURATION_BOUNDS.len() + 1],
    /// The last exemplar per bucket, as an aligned-bucket reservoir keeps it.
    exemplars: [Option<Exemplar>; STAGE_DURATION_BOUNDS.len() + 1],
}

/// The instrumentation's metrics, aggregated per export interval. Its size depends on the
/// window's length, not on the number of carts.
#[derive(Default)]
struct MetricsAgg {
    transitions: BTreeMap<(u64, &'static str, &'static str), u64>,
    durations: BTreeMap<u64, HistAgg>,
    active: BTreeMap<u64, i64>,
}

impl MetricsAgg {
    fn add(&mut self, obs: &[Observation]) {
        for o in obs {
            match *o {
                Observation::Transition {
                    time_ns,
                    stage,
                    segment,
                } => {
                    *self
                        .transitions
                        .entry((time_ns / INTERVAL_NS, stage, segment))
                        .or_default() += 1;
                }
                Observation::StageDuration {
                    time_ns,
                    seconds,
                    trace_id,
                    span_id,
                } => {
                    let h = self.durations.entry(time_ns / INTERVAL_NS).or_default();
                    if h.count == 0 || seconds < h.min {
                        h.min = seconds;
                    }
                    if h.count == 0 || seconds > h.max {
                        h.max = seconds;
                    }
                    h.count += 1;
                    h.sum += seconds;
                    let b = STAGE_DURATION_BOUNDS
                        .iter()
                        .position(|x| seconds <= *x)
                        .unwrap_or(STAGE_DURATION_BOUNDS.len());
                    h.buckets[b] += 1;
                    if h.exemplars[b].is_none_or(|e| time_ns >= e.0) {
                        h.exemplars[b] = Some((time_ns, seconds, trace_id, span_id));
                    }
                }
                Observation::Active { time_ns, delta } => {
                    *self.active.entry(time_ns / INTERVAL_NS).or_default() += delta;
                }
            }
        }
    }

    /// One line per interval; returns the number of data points written.
    fn write(&self, w: &mut dyn Write, p: &Params) -> Result<u64> {
        let first = p.end_ns.saturating_sub(p.window_ns) / INTERVAL_NS;
        let last = p.end_ns / INTERVAL_NS;
        let mut active = 0i64;
        let mut points = 0;
        let mut line = String::new();
        for iv in first..last {
            let start = iv * INTERVAL_NS;
            let end = start + INTERVAL_NS;
            active += self.active.get(&iv).copied().unwrap_or(0);
            line.clear();
            line.push_str("{\"resourceMetrics\":[{\"resource\":");
            resource_json(&mut line, p, Service::Cart, "4.2.3", workload::REGIONS[0]);
            line.push_str(",\"scopeMetrics\":[{\"scope\":{\"name\":\"shop/cart\",\"version\":\"1.0.0\"},\"metrics\":[");
            // cart.state.transitions: a delta counter per stage and segment.
            let tr: Vec<_> = self
                .transitions
                .range((iv, "", "")..(iv + 1, "", ""))
                .collect();
            let mut first_metric = true;
            if !tr.is_empty() {
                first_metric = false;
                line.push_str("{\"name\":\"cart.state.transitions\",\"description\":\"Cart lifecycle state transitions\",\"unit\":\"{transition}\",\"sum\":{\"dataPoints\":[");
                for (k, ((_, stage, segment), n)) in tr.iter().enumerate() {
                    if k > 0 {
                        line.push(',');
                    }
                    line.push_str("{\"attributes\":");
                    attrs(
                        &mut line,
                        &[
                            ("cart.stage", Val::Str(stage.to_string())),
                            ("user.segment", Val::Str(segment.to_string())),
                        ],
                    );
                    let _ = write!(line, ",\"startTimeUnixNano\":\"{start}\",\"timeUnixNano\":\"{end}\",\"asInt\":\"{n}\"}}");
                    points += 1;
                }
                line.push_str("],\"aggregationTemporality\":1,\"isMonotonic\":true}}");
            }
            // cart.stage.duration: a histogram with exemplars pointing at the recording spans.
            if let Some(h) = self.durations.get(&iv) {
                if !first_metric {
                    line.push(',');
                }
                first_metric = false;
                line.push_str("{\"name\":\"cart.stage.duration\",\"description\":\"Time spent in a cart stage\",\"unit\":\"s\",\"histogram\":{\"dataPoints\":[{\"attributes\":");
                attrs(
                    &mut line,
                    &[("cart.stage", Val::Str("active_to_checkout".into()))],
                );
                let _ = write!(line, ",\"startTimeUnixNano\":\"{start}\",\"timeUnixNano\":\"{end}\",\"count\":\"{}\",\"sum\":", h.count);
                write_f64(&mut line, h.sum);
                line.push_str(",\"bucketCounts\":[");
                for (k, b) in h.buckets.iter().enumerate() {
                    let _ = write!(line, "{}\"{b}\"", if k > 0 { "," } else { "" });
                }
                line.push_str("],\"explicitBounds\":[");
                for (k, b) in STAGE_DURATION_BOUNDS.iter().enumerate() {
                    if k > 0 {
                        line.push(',');
                    }
                    write_f64(&mut line, *b);
                }
                line.push_str("],\"exemplars\":[");
                let mut fe = true;
                for (t, v, tid, sid) in h.exemplars.iter().flatten() {
                    if !fe {
                        line.push(',');
                    }
                    fe = false;
                    let _ = write!(line, "{{\"timeUnixNano\":\"{t}\",\"asDouble\":");
                    write_f64(&mut line, *v);
                    line.push_str(",\"traceId\":\"");
                    hex(&mut line, tid);
                    line.push_str("\",\"spanId\":\"");
                    hex(&mut line, sid);
                    line.push_str("\"}");
                }
                line.push_str("],\"min\":");
                write_f64(&mut line, h.min);
                line.push_str(",\"max\":");
                write_f64(&mut line, h.max);
                line.push_str("}],\"aggregationTemporality\":1}}");
                points += 1;
            }
            // cart.active: an up-down counter, cumulative.
            if !first_metric {
                line.push(',');
            }
            let _ = write!(line, "{{\"name\":\"cart.active\",\"description\":\"Carts with items, not yet converted or abandoned\",\"unit\":\"{{cart}}\",\"sum\":{{\"dataPoints\":[{{\"startTimeUnixNano\":\"{}\",\"timeUnixNano\":\"{end}\",\"asInt\":\"{active}\"}}],\"aggregationTemporality\":2,\"isMonotonic\":false}}}}", first * INTERVAL_NS);
            points += 1;
            line.push_str("]}]}]}\n");
            w.write_all(line.as_bytes())?;
        }
        Ok(points)
    }
}
