//! Parquet inputs: cartscope's own tables (written by cartscope, or by any tool that kept their
//! column names) and the OpenTelemetry Collector ClickHouse exporter's `otel_traces` table
//! exported to Parquet.
//!
//! What a file holds is decided from its column names, never its file name. Every batch leaves
//! here in the exact canonical schema of `tables/schema.rs`: timestamps of any unit become microsecond
//! UTC, maps are rebuilt with our field names (Parquet readers name them `key_value`, `key`,
//! `value`), ids become lowercase hex.

use std::fmt;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, MapArray,
    StringArray, StringBuilder, StructArray, TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::compute::{can_cast_types, cast_with_options, take, CastOptions};
use datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ProjectionMask;

use crate::tables::builders::{SpanKind, StatusCode};
use crate::tables::schema::{attributes_type, Table};

/// Rows per batch read from a Parquet file.
const BATCH_ROWS: usize = 8192;

/// The columns that identify each canonical table, in the order they are tried.
const CANONICAL: [(Table, &[&str]); 6] = [
    (
        Table::Traces,
        &["trace_id", "span_id", "operation_name", "start_time"],
    ),
    (
        Table::SpanEvents,
        &["trace_id", "span_id", "timestamp", "name"],
    ),
    (Table::SpanLinks, &["linked_trace_id"]),
    (Table::Metrics, &["name", "metric_type", "timestamp"]),
    (Table::Exemplars, &["metric_name", "point_timestamp"]),
    (Table::Logs, &["timestamp", "severity_number", "body"]),
];

/// The columns that identify the ClickHouse exporter's traces table.
const CLICKHOUSE_IDENTIFYING: &[&str] = &["TraceId", "SpanId", "SpanName", "Timestamp"];

/// Every ClickHouse column read; the rest of the file is never decoded. `Events` and `Links`
/// are the same nested columns when exported as one list of structs (`flatten_nested = 0`).
const CLICKHOUSE_COLUMNS: &[&str] = &[
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "ScopeAttributes",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
    "Events",
    "Links",
];

/// What a Parquet file holds, decided from its schema (column names), not its file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParquetKind {
    /// One of cartscope's own tables.
    Canonical(Table),
    /// The OpenTelemetry Collector ClickHouse exporter's `otel_traces` table.
    ClickHouseTraces,
    /// Neither: a one-line description of its columns (and of the nearest known table, if any).
    Unknown(String),
}

impl fmt::Display for ParquetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParquetKind::Canonical(t) => write!(f, "cartscope `{}` table", t.name()),
            ParquetKind::ClickHouseTraces => {
                write!(f, "ClickHouse exporter traces table (otel_traces)")
            }
            ParquetKind::Unknown(desc) => write!(
                f,
                "not a table cartscope knows ({desc}); cartscope reads its own tables (e.g. \
                 traces: trace_id, span_id, operation_name, start_time) and the ClickHouse \
                 exporter's otel_traces (TraceId, SpanId, SpanName, Timestamp)"
            ),
        }
    }
}

/// Decides what a Parquet file holds from its column names.
pub fn classify(schema: &Schema) -> ParquetKind {
    let has = |name: &str| schema.fields().iter().any(|f| f.name() == name);
    for (table, cols) in CANONICAL {
        if table == Table::SpanEvents && has("operation_name") {
            continue;
        }
        if cols.iter().all(|c| has(c)) {
            return ParquetKind::Canonical(table);
        }
    }
    if CLICKHOUSE_IDENTIFYING.iter().all(|c| has(c)) {
        return ParquetKind::ClickHouseTraces;
    }
    ParquetKind::Unknown(describe(schema))
}

/// "3 columns: a Int64, b Utf8, c Map; looks most like cartscope's traces but lacks start_time"
fn describe(schema: &Schema) -> String {
    const SHOWN: usize = 12;
    let fields = schema.fields();
    let mut out = match fields.len() {
        0 => "no columns".to_string(),
        1 => "1 column: ".to_string(),
        n => format!("{n} columns: "),
    };
    let shown: Vec<String> = fields
        .iter()
        .take(SHOWN)
        .map(|f| format!("{} {}", f.name(), short_type(f.data_type())))
        .collect();
    out.push_str(&shown.join(", "));
    if fields.len() > SHOWN {
        out.push_str(&format!(", and {} more", fields.len() - SHOWN));
    }
    // The nearest known table, when at least half of its identifying columns are there.
    let has = |name: &str| fields.iter().any(|f| f.name() == name);
    let candidates = CANONICAL
        .iter()
        .map(|(t, cols)| (format!("cartscope's {}", t.name()), *cols))
        .chain(std::iter::once((
            "ClickHouse's otel_traces".to_string(),
            CLICKHOUSE_IDENTIFYING,
        )));
    let mut best: Option<(usize, String, Vec<&str>)> = None;
    for (name, cols) in candidates {
        let present = cols.iter().filter(|c| has(c)).count();
        let missing: Vec<&str> = cols.iter().copied().filter(|c| !has(c)).collect();
        if present * 2 >= cols.len()
            && !missing.is_empty()
            && best.as_ref().is_none_or(|(p, _, _)| present > *p)
        {
            best = Some((present, name, missing));
        }
    }
    if let Some((_, name, missing)) = best {
        out.push_str(&format!(
            "; looks most like {name} but lacks {}",
            missing.join(", ")
        ));
    }
    out
}

fn short_type(dt: &DataType) -> String {
    match dt {
        DataType::Map(_, _) => "Map".into(),
        DataType::Struct(_) => "Struct".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("List<{}>", short_type(f.data_type()))
        }
        DataType::Dictionary(_, v) => short_type(v),
        DataType::Timestamp(unit, _) => format!("Timestamp({unit})"),
        other => format!("{other}"),
    }
}

/// Streams a Parquet file as batches in the canonical schemas, calling `emit(table, batch)` for
/// each converted batch. Errors name the file and say what is wrong and what to do.
///
/// A file that holds nothing cartscope knows is not an error here: `Ok(ParquetKind::Unknown)`
/// comes back without anything emitted, and its `Display` says why, so the caller can skip it
/// with a warning or fail. Errors returned by `emit` are passed through unchanged.
///
/// `path` may be the URL of an object in a store (`size` its size when listed): it is read
/// by ranges, the footer and then the columns used, never downloaded whole.
pub fn read_parquet(
    path: &Path,
    size: Option<u64>,
    emit: &mut dyn FnMut(Table, RecordBatch) -> Result<()>,
) -> Result<ParquetKind> {
    let shown = path.display();
    match crate::read::remote::url_in(path) {
        Some(url) => read_from(
            &shown.to_string(),
            crate::read::remote::Ranged::new(url, size)?,
            emit,
        ),
        None => read_from(
            &shown.to_string(),
            File::open(path).map_err(|e| anyhow!("{shown}: cannot open: {e}"))?,
            emit,
        ),
    }
}

fn read_from<R: datafusion::parquet::file::reader::ChunkReader + 'static>(
    shown: &str,
    file: R,
    emit: &mut dyn FnMut(Table, RecordBatch) -> Result<()>,
) -> Result<ParquetKind> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        anyhow!(
            "{shown}: not a readable Parquet file ({e}); check that it is complete (not still \
             being written, not truncated by a copy) and really Parquet"
        )
    })?;
    let kind = classify(builder.schema());
    let wanted: Vec<String> = match &kind {
        ParquetKind::Canonical(t) => t
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        ParquetKind::ClickHouseTraces => CLICKHOUSE_COLUMNS.iter().map(|c| c.to_string()).collect(),
        ParquetKind::Unknown(_) => return Ok(kind),
    };
    // Decode only the columns that are used.
    let roots: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| wanted.contains(f.name()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| anyhow!("{shown}: cannot read as {kind}: {e}"))?;
    let mut rows = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| {
            anyhow!(
                "{shown}: reading failed after {rows} rows: {e}; the file may be truncated or \
                 corrupt, re-export it"
            )
        })?;
        match &kind {
            ParquetKind::Canonical(t) => {
                let out = conform(*t, &batch).map_err(|e| {
                    anyhow!(
                        "{shown}: read as cartscope's {} table (from its column names): {e:#}",
                        t.name()
                    )
                })?;
                emit(*t, out)?;
            }
            ParquetKind::ClickHouseTraces => {
                let [traces, events, links] = from_clickhouse(&batch).map_err(|e| {
                    anyhow!("{shown}: read as ClickHouse exporter traces (otel_traces): {e:#}")
                })?;
                emit(Table::Traces, traces)?;
                for (t, b) in [(Table::SpanEvents, events), (Table::SpanLinks, links)] {
                    if b.num_rows() > 0 {
                        emit(t, b)?;
                    }
                }
            }
            ParquetKind::Unknown(_) => unreachable!("returned above"),
        }
        rows += batch.num_rows();
    }
    Ok(kind)
}

/// Converts one batch in cartscope's own schema (any column order; extra columns dropped;
/// missing nullable columns filled with nulls (a `derived` column, which datasets and
/// Parquet written before the replay kept its rows apart carry, is one of the extra ones);
/// castable type differences such as nanosecond or timezone-less timestamps, Int32 vs Int64,
/// LargeUtf8 or Dictionary strings, cast to the canonical type) to the exact canonical schema.
pub fn conform(table: Table, batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = table.schema();
    let n = batch.num_rows();
    let mut cols = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name();
        let col = match batch.column_by_name(name) {
            Some(a) => to_canonical(field, a).with_context(|| format!("column `{name}`"))?,
            None if field.is_nullable() => new_null_array(field.data_type(), n),
            None => bail!("required column `{name}` is missing; add it or re-export the table"),
        };
        if !field.is_nullable() && col.null_count() > 0 {
            bail!("column `{name}` must not be null but has nulls");
        }
        cols.push(col);
    }
    RecordBatch::try_new(schema, cols).map_err(|e| {
        anyhow!(
            "converted columns do not fit the {} schema ({e}); this is a cartscope bug",
            table.name()
        )
    })
}

fn to_canonical(field: &Field, a: &ArrayRef) -> Result<ArrayRef> {
    let target = field.data_type();
    if a.data_type() == target {
        return Ok(a.clone());
    }
    Ok(match target {
        DataType::Timestamp(_, _) => {
            Arc::new(micros_utc(instants(a, TimeUnit::Microsecond, None)?))
        }
        DataType::Map(_, _) => Arc::new(attr_map(a)?),
        DataType::Utf8 if is_id_column(field.name()) && is_binary(a.data_type()) => {
            Arc::new(ids(a)?)
        }
        _ => cast_to(a, target)?,
    })
}

fn is_id_column(name: &str) -> bool {
    name.ends_with("trace_id") || name.ends_with("span_id")
}

fn is_binary(dt: &DataType) -> bool {
    match dt {
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => true,
        DataType::Dictionary(_, v) => is_binary(v),
        _ => false,
    }
}

/// Arrow's cast, failing (instead of writing nulls) on values that do not convert.
fn cast_to(a: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    let from = a.data_type();
    if !can_cast_types(from, to) {
        bail!(
            "has type {}, which cannot be converted to {}; convert the column before exporting \
             or drop it",
            short_type(from),
            short_type(to)
        );
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(a, to, &options).map_err(|e| {
        anyhow!(
            "cannot convert {} to {}: {e}",
            short_type(from),
            short_type(to)
        )
    })
}

fn text(a: &ArrayRef) -> Result<StringArray> {
    Ok(cast_to(a, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// Empty strings (how ClickHouse and OTLP write "absent") become nulls.
fn text_or_null(a: &ArrayRef) -> Result<StringArray> {
    let s = text(a)?;
    if s.iter().all(|v| v != Some("")) {
        return Ok(s);
    }
    Ok(s.iter().map(|v| v.filter(|v| !v.is_empty())).collect())
}

fn nanos_per(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// A column of instants as integers in `to` units since the epoch (UTC). Timestamps of any unit
/// and timezone keep their instant (Arrow stores UTC epoch values whatever the timezone).
/// `ints_are` is the unit plain integers are in; `None` refuses them, as their unit is unknown.
fn instants(a: &ArrayRef, to: TimeUnit, ints_are: Option<TimeUnit>) -> Result<Int64Array> {
    let (raw, from) = match a.data_type() {
        DataType::Null => return Ok(Int64Array::new_null(a.len())),
        DataType::Timestamp(unit, _) => (cast_to(a, &DataType::Int64)?, *unit),
        dt if dt.is_integer() => match ints_are {
            Some(unit) => (cast_to(a, &DataType::Int64)?, unit),
            None => bail!(
                "holds integers ({dt}), not timestamps, and their unit cannot be known; store \
                 it as a Parquet TIMESTAMP"
            ),
        },
        _ => {
            let ts = cast_to(
                a,
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )?;
            (cast_to(&ts, &DataType::Int64)?, TimeUnit::Microsecond)
        }
    };
    let raw = raw.as_primitive::<Int64Type>();
    let (f, t) = (nanos_per(from), nanos_per(to));
    if f == t {
        return Ok(raw.clone());
    }
    if f > t {
        let m = f / t;
        raw.try_unary(|v| {
            v.checked_mul(m).ok_or_else(|| {
                datafusion::arrow::error::ArrowError::ComputeError(format!(
                    "timestamp {v} ({from}) is out of range"
                ))
            })
        })
        .map_err(|e| anyhow!("{e}"))
    } else {
        let d = t / f;
        Ok(raw.unary(|v| v.div_euclid(d)))
    }
}

fn micros_utc(a: Int64Array) -> TimestampMicrosecondArray {
    a.reinterpret_cast::<TimestampMicrosecondType>()
        .with_timezone("UTC")
}

/// Any map (or list of two-field structs) of string-castable keys and values, rebuilt as
/// `schema::attributes_type()` exactly.
fn attr_map(a: &ArrayRef) -> Result<MapArray> {
    let (offsets, entries, nulls) = match a.data_type() {
        DataType::Null => {
            return Ok(new_null_array(&attributes_type(), a.len()).as_map().clone());
        }
        DataType::Map(_, _) => {
            let m = a.as_map();
            (m.offsets().clone(), m.entries().clone(), m.nulls().cloned())
        }
        DataType::List(f) if is_pair(f.data_type()) => {
            let l = a.as_list::<i32>();
            (
                l.offsets().clone(),
                l.values().as_struct().clone(),
                l.nulls().cloned(),
            )
        }
        DataType::LargeList(f) if is_pair(f.data_type()) => {
            let list = cast_to(a, &DataType::List(f.clone()))?;
            return attr_map(&list);
        }
        other => bail!(
            "has type {}, expected a map of strings to strings (Map<Utf8, Utf8>)",
            short_type(other)
        ),
    };
    let keys = cast_to(entries.column(0), &DataType::Utf8).context("map keys")?;
    let values = cast_to(entries.column(1), &DataType::Utf8).context("map values")?;
    if keys.null_count() > 0 {
        bail!("has null map keys");
    }
    let DataType::Map(entries_field, _) = attributes_type() else {
        unreachable!("attributes_type() is a map")
    };
    let DataType::Struct(fields) = entries_field.data_type() else {
        unreachable!("a map's entries are a struct")
    };
    let entries = StructArray::try_new(fields.clone(), vec![keys, values], None)?;
    Ok(MapArray::try_new(
        entries_field,
        offsets,
        entries,
        nulls,
        false,
    )?)
}

fn is_pair(dt: &DataType) -> bool {
    matches!(dt, DataType::Struct(f) if f.len() == 2)
}

/// Trace or span ids as lowercase hex; null when empty or all zero. Text is kept as text
/// (lowercased when it is hex); raw bytes (Binary, FixedSizeBinary) are hex-encoded unless they
/// are themselves hex text.
fn ids(a: &ArrayRef) -> Result<StringArray> {
    let mut out = StringBuilder::with_capacity(a.len(), a.len() * 32);
    let push_bytes = |out: &mut StringBuilder, v: Option<&[u8]>| match v {
        Some(b) if !b.is_empty() && b.iter().all(u8::is_ascii_hexdigit) => {
            // Validated ASCII.
            push_text(out, std::str::from_utf8(b).ok());
        }
        Some(b) if !b.is_empty() && b.iter().any(|&x| x != 0) => {
            out.append_value(const_hex::encode(b));
        }
        _ => out.append_null(),
    };
    match a.data_type() {
        DataType::Null => return Ok(StringArray::new_null(a.len())),
        DataType::FixedSizeBinary(_) => {
            for v in a.as_fixed_size_binary().iter() {
                push_bytes(&mut out, v);
            }
        }
        dt if is_binary(dt) => {
            let b = cast_to(a, &DataType::Binary)?;
            for v in b.as_binary::<i32>().iter() {
                push_bytes(&mut out, v);
            }
        }
        _ => {
            for v in text(a)?.iter() {
                push_text(&mut out, v);
            }
        }
    }
    Ok(out.finish())
}

fn push_text(out: &mut StringBuilder, v: Option<&str>) {
    let v = v.map(str::trim).unwrap_or("");
    if v.is_empty() || v.bytes().all(|b| b == b'0') {
        out.append_null();
    } else if v.bytes().all(|b| b.is_ascii_hexdigit()) {
        out.append_value(v.to_ascii_lowercase());
    } else {
        out.append_value(v);
    }
}

/// Span kinds or status codes as our lowercase words, from names in any spelling or numbers.
fn words(
    a: &ArrayRef,
    by_name: fn(&str) -> Option<&'static str>,
    by_number: fn(i64) -> Option<&'static str>,
) -> Result<StringArray> {
    if a.data_type().is_integer() {
        let n = cast_to(a, &DataType::Int64)?;
        return Ok(n
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map(|v| by_number(v).map_or_else(|| v.to_string(), str::to_string)))
            .collect());
    }
    Ok(text(a)?
        .iter()
        .map(|v| v.map(|v| by_name(v).map_or_else(|| v.to_ascii_lowercase(), str::to_string)))
        .collect())
}

fn span_kind_words(a: &ArrayRef) -> Result<StringArray> {
    words(
        a,
        |s| SpanKind::from_name(s).map(SpanKind::as_str),
        |n| SpanKind::from_i64(n).map(SpanKind::as_str),
    )
}

fn status_words(a: &ArrayRef) -> Result<StringArray> {
    words(
        a,
        |s| StatusCode::from_name(s).map(StatusCode::as_str),
        |n| StatusCode::from_i64(n).map(StatusCode::as_str),
    )
}

/// ClickHouse instants (DateTime64(9) as a Timestamp of any unit, or Int64 nanoseconds) as
/// nanoseconds; 0 (OTLP's "unset") is null.
fn ch_nanos(a: &ArrayRef) -> Result<Int64Array> {
    Ok(
        instants(a, TimeUnit::Nanosecond, Some(TimeUnit::Nanosecond))?
            .unary_opt(|v| (v != 0).then_some(v)),
    )
}

fn ch_micros(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(Arc::new(micros_utc(
        ch_nanos(a)?.unary(|v| v.div_euclid(1000)),
    )))
}

/// Converts one batch in the OpenTelemetry Collector ClickHouse exporter's traces schema to
/// (traces, span_events, span_links) batches in the canonical schema.
///
/// Every column is optional (missing ones become nulls); `Events.*` and `Links.*` may be
/// parallel list columns (ClickHouse's default `flatten_nested = 1`) or one list of structs
/// named `Events` / `Links`.
pub fn from_clickhouse(batch: &RecordBatch) -> Result<[RecordBatch; 3]> {
    let n = batch.num_rows();
    let column = |name: &str,
                  ty: &DataType,
                  f: &dyn Fn(&ArrayRef) -> Result<ArrayRef>|
     -> Result<ArrayRef> {
        match batch.column_by_name(name) {
            Some(a) => f(a).with_context(|| format!("column `{name}`")),
            None => Ok(new_null_array(ty, n)),
        }
    };
    let utf8 = DataType::Utf8;
    let map = attributes_type();
    let id = |a: &ArrayRef| Ok(Arc::new(ids(a)?) as ArrayRef);
    let opt_text = |a: &ArrayRef| Ok(Arc::new(text_or_null(a)?) as ArrayRef);
    let attrs = |a: &ArrayRef| Ok(Arc::new(attr_map(a)?) as ArrayRef);

    let trace_id = column("TraceId", &utf8, &id)?;
    let span_id = column("SpanId", &utf8, &id)?;
    let service_name = column("ServiceName", &utf8, &opt_text)?;
    let start_ns = match batch.column_by_name("Timestamp") {
        Some(a) => ch_nanos(a).context("column `Timestamp`")?,
        None => Int64Array::new_null(n),
    };
    let duration_ns = match batch.column_by_name("Duration") {
        Some(a) => cast_to(a, &DataType::Int64)
            .context("column `Duration` (nanoseconds)")?
            .as_primitive::<Int64Type>()
            .clone(),
        None => Int64Array::new_null(n),
    };
    let start: ArrayRef = Arc::new(micros_utc(start_ns.unary(|v| v.div_euclid(1000))));
    let end: Int64Array = start_ns
        .iter()
        .zip(duration_ns.iter())
        .map(|(s, d)| Some(s?.checked_add(d?)?.div_euclid(1000)))
        .collect();
    let duration_ms: Float64Array = duration_ns.unary(|d| d as f64 / 1e6);

    let traces = RecordBatch::try_new(
        Table::Traces.schema(),
        vec![
            trace_id.clone(),
            span_id.clone(),
            column("ParentSpanId", &utf8, &id)?,
            column("TraceState", &utf8, &opt_text)?,
            column("SpanName", &utf8, &|a| Ok(Arc::new(text(a)?) as ArrayRef))?,
            service_name.clone(),
            column("SpanKind", &utf8, &|a| {
                Ok(Arc::new(span_kind_words(a)?) as ArrayRef)
            })?,
            start.clone(),
            Arc::new(micros_utc(end)),
            Arc::new(duration_ms),
            column("StatusCode", &utf8, &|a| {
                Ok(Arc::new(status_words(a)?) as ArrayRef)
            })?,
            column("StatusMessage", &utf8, &opt_text)?,
            column("SpanAttributes", &map, &attrs)?,
            column("ResourceAttributes", &map, &attrs)?,
            column("ScopeName", &utf8, &opt_text)?,
            column("ScopeVersion", &utf8, &opt_text)?,
            column("ScopeAttributes", &map, &attrs)?,
            new_null_array(&DataType::Int64, n),
            new_null_array(&DataType::Int64, n),
            new_null_array(&DataType::Int64, n),
            new_null_array(&DataType::Int64, n),
        ],
    )
    .map_err(|e| {
        anyhow!("traces do not fit the canonical schema ({e}); this is a cartscope bug")
    })?;

    // Events: one row per element of the span's event lists.
    let ev_ts = nested(batch, "Events", "Timestamp")?;
    let ev_name = nested(batch, "Events", "Name")?;
    let ev_attrs = nested(batch, "Events", "Attributes")?;
    let events = {
        let lists = [ev_ts.as_ref(), ev_name.as_ref(), ev_attrs.as_ref()];
        let (span_idx, child_idx) = fan_out(n, &lists);
        let rows = span_idx.len();
        let per_span = |a: &ArrayRef| take(a.as_ref(), &span_idx, None);
        let child = |k: usize,
                     ty: &DataType,
                     f: &dyn Fn(&ArrayRef) -> Result<ArrayRef>|
         -> Result<ArrayRef> {
            match lists[k] {
                Some(l) => Ok(take(f(l.values())?.as_ref(), &child_idx[k], None)?),
                None => Ok(new_null_array(ty, rows)),
            }
        };
        RecordBatch::try_new(
            Table::SpanEvents.schema(),
            vec![
                per_span(&trace_id)?,
                per_span(&span_id)?,
                child(0, &crate::tables::schema::timestamp_type(), &ch_micros)
                    .context("column `Events.Timestamp`")?,
                child(1, &utf8, &|a| Ok(Arc::new(text(a)?) as ArrayRef))
                    .context("column `Events.Name`")?,
                child(2, &map, &attrs).context("column `Events.Attributes`")?,
                new_null_array(&DataType::Int64, rows),
                per_span(&service_name)?,
            ],
        )
        .map_err(|e| {
            anyhow!("span events do not fit the canonical schema ({e}); this is a cartscope bug")
        })?
    };

    // Links: one row per element of the span's link lists.
    let ln_trace = nested(batch, "Links", "TraceId")?;
    let ln_span = nested(batch, "Links", "SpanId")?;
    let ln_state = nested(batch, "Links", "TraceState")?;
    let ln_attrs = nested(batch, "Links", "Attributes")?;
    let links = {
        let lists = [
            ln_trace.as_ref(),
            ln_span.as_ref(),
            ln_state.as_ref(),
            ln_attrs.as_ref(),
        ];
        let (span_idx, child_idx) = fan_out(n, &lists);
        let rows = span_idx.len();
        let per_span = |a: &ArrayRef| take(a.as_ref(), &span_idx, None);
        let child = |k: usize,
                     ty: &DataType,
                     f: &dyn Fn(&ArrayRef) -> Result<ArrayRef>|
         -> Result<ArrayRef> {
            match lists[k] {
                Some(l) => Ok(take(f(l.values())?.as_ref(), &child_idx[k], None)?),
                None => Ok(new_null_array(ty, rows)),
            }
        };
        RecordBatch::try_new(
            Table::SpanLinks.schema(),
            vec![
                per_span(&trace_id)?,
                per_span(&span_id)?,
                per_span(&start)?,
                child(0, &utf8, &id).context("column `Links.TraceId`")?,
                child(1, &utf8, &id).context("column `Links.SpanId`")?,
                child(2, &utf8, &opt_text).context("column `Links.TraceState`")?,
                child(3, &map, &attrs).context("column `Links.Attributes`")?,
                new_null_array(&DataType::Int64, rows),
                new_null_array(&DataType::Int64, rows),
            ],
        )
        .map_err(|e| {
            anyhow!("span links do not fit the canonical schema ({e}); this is a cartscope bug")
        })?
    };

    Ok([traces, events, links])
}

/// The list column `group.member`, or the `member` field of a list-of-structs column `group`.
fn nested(batch: &RecordBatch, group: &str, member: &str) -> Result<Option<ListArray>> {
    let name = format!("{group}.{member}");
    if let Some(a) = batch.column_by_name(&name) {
        return as_list(a).with_context(|| format!("column `{name}`"));
    }
    let Some(a) = batch.column_by_name(group) else {
        return Ok(None);
    };
    let Some(list) = as_list(a).with_context(|| format!("column `{group}`"))? else {
        return Ok(None);
    };
    let DataType::Struct(_) = list.values().data_type() else {
        bail!(
            "column `{group}` is a list of {}, expected a list of structs",
            short_type(list.values().data_type())
        );
    };
    let Some(child) = list.values().as_struct().column_by_name(member) else {
        return Ok(None);
    };
    let field = Arc::new(Field::new("item", child.data_type().clone(), true));
    Ok(Some(ListArray::try_new(
        field,
        list.offsets().clone(),
        child.clone(),
        list.nulls().cloned(),
    )?))
}

/// Any list column as a `ListArray`; `None` for an all-null column of type Null.
fn as_list(a: &ArrayRef) -> Result<Option<ListArray>> {
    match a.data_type() {
        DataType::Null => Ok(None),
        DataType::List(_) => Ok(Some(a.as_list::<i32>().clone())),
        DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            let to = DataType::List(Arc::new(Field::new("item", f.data_type().clone(), true)));
            Ok(Some(cast_to(a, &to)?.as_list::<i32>().clone()))
        }
        other => bail!("has type {}, expected a list", short_type(other)),
    }
}

/// For parallel lists, one output row per element: the span row it came from, and for each
/// list the child index of that element (null where a list is shorter than the longest).
fn fan_out(n: usize, lists: &[Option<&ListArray>]) -> (UInt32Array, Vec<UInt32Array>) {
    let mut span_idx = Vec::new();
    let mut child_idx: Vec<Vec<Option<u32>>> = vec![Vec::new(); lists.len()];
    for i in 0..n {
        let len = |l: &ListArray| {
            if l.is_null(i) {
                0
            } else {
                l.value_length(i) as usize
            }
        };
        let m = lists.iter().flatten().map(|l| len(l)).max().unwrap_or(0);
        for j in 0..m {
            span_idx.push(i as u32);
            for (k, l) in lists.iter().enumerate() {
                child_idx[k].push(match l {
                    Some(l) if j < len(l) => Some((l.value_offsets()[i] as usize + j) as u32),
                    _ => None,
                });
            }
        }
    }
    (
        UInt32Array::from(span_idx),
        child_idx.into_iter().map(UInt32Array::from).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        DictionaryArray, Int32Array, LargeStringArray, ListBuilder, MapBuilder, MapFieldNames,
        TimestampNanosecondArray, TimestampNanosecondBuilder, UInt64Array,
    };
    use datafusion::arrow::datatypes::Int32Type;
    use datafusion::parquet::arrow::arrow_writer::ArrowWriterOptions;
    use datafusion::parquet::arrow::ArrowWriter;
    use std::collections::BTreeMap;

    type Maps<'a> = &'a [&'a [(&'a str, &'a str)]];

    /// A map column with the field names Parquet readers and other writers use.
    fn foreign_map(rows: Maps) -> ArrayRef {
        let mut b = MapBuilder::new(
            Some(MapFieldNames {
                entry: "key_value".into(),
                key: "key".into(),
                value: "value".into(),
            }),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        for row in rows {
            for (k, v) in *row {
                b.keys().append_value(k);
                b.values().append_value(v);
            }
            b.append(true).unwrap();
        }
        Arc::new(b.finish())
    }

    fn write(path: &Path, batch: &RecordBatch, skip_arrow_metadata: bool) {
        let file = File::create(path).unwrap();
        let options = ArrowWriterOptions::new().with_skip_arrow_metadata(skip_arrow_metadata);
        let mut w = ArrowWriter::try_new_with_options(file, batch.schema(), options).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
    }

    fn read_all(path: &Path) -> (ParquetKind, BTreeMap<Table, RecordBatch>) {
        let mut got: BTreeMap<Table, Vec<RecordBatch>> = BTreeMap::new();
        let kind = read_parquet(path, None, &mut |t, b| {
            got.entry(t).or_default().push(b);
            Ok(())
        })
        .unwrap();
        let got = got
            .into_iter()
            .map(|(t, bs)| {
                for b in &bs {
                    assert_eq!(b.schema(), t.schema(), "{} schema", t.name());
                }
                let b = datafusion::arrow::compute::concat_batches(&t.schema(), &bs).unwrap();
                (t, b)
            })
            .collect();
        (kind, got)
    }

    fn strs(b: &RecordBatch, col: &str) -> Vec<Option<String>> {
        text(b.column_by_name(col).unwrap())
            .unwrap()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    fn micros(b: &RecordBatch, col: &str) -> Vec<Option<i64>> {
        b.column_by_name(col)
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .collect()
    }

    fn maps(b: &RecordBatch, col: &str) -> Vec<Option<Vec<(String, String)>>> {
        let m = b.column_by_name(col).unwrap().as_map();
        (0..m.len())
            .map(|i| {
                if m.is_null(i) {
                    return None;
                }
                let e = m.value(i);
                let (k, v) = (
                    e.column(0).as_string::<i32>(),
                    e.column(1).as_string::<i32>(),
                );
                Some(
                    (0..e.len())
                        .map(|j| (k.value(j).to_string(), v.value(j).to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn canonical_round_trip_conforms_a_variant_schema() {
        // Nanosecond timestamps without timezone, another column order, LargeUtf8, dictionary
        // strings, Int32 flags, foreign map field names, an extra column, and many columns
        // missing (among them trace_state).
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "start_time",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                true,
            ),
            Field::new("operation_name", DataType::LargeUtf8, true),
            Field::new("not_ours", DataType::Int64, true),
            Field::new("span_id", DataType::Utf8, true),
            Field::new("trace_id", DataType::Utf8, true),
            Field::new(
                "service_name",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
            Field::new(
                "end_time",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                true,
            ),
            Field::new("duration_ms", DataType::Float64, true),
            Field::new("flags", DataType::Int32, true),
            Field::new("attributes", foreign_map(&[]).data_type().clone(), true),
            Field::new("status_code", DataType::Utf8, true),
        ]));
        let t0 = 1_700_000_000_123_456_789i64;
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampNanosecondArray::from(vec![Some(t0), None])),
                Arc::new(LargeStringArray::from(vec!["checkout", "add_to_cart"])),
                Arc::new(Int64Array::from(vec![7, 8])),
                Arc::new(StringArray::from(vec![
                    Some("00f067aa0ba902b7"),
                    Some("b7ad6b7169203331"),
                ])),
                Arc::new(StringArray::from(vec![
                    "4bf92f3577b34da6a3ce929d0e0e4736";
                    2
                ])),
                Arc::new(
                    vec!["frontend", "cart"]
                        .into_iter()
                        .collect::<DictionaryArray<Int32Type>>(),
                ),
                Arc::new(TimestampNanosecondArray::from(vec![
                    Some(t0 + 1_500_000),
                    None,
                ])),
                Arc::new(Float64Array::from(vec![Some(1.5), None])),
                Arc::new(Int32Array::from(vec![Some(1), None])),
                foreign_map(&[&[("cart.id", "c-1"), ("http.method", "POST")], &[]]),
                Arc::new(StringArray::from(vec!["error", "ok"])),
            ],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("whatever-name.parquet");
        write(&path, &batch, false);

        let (kind, got) = read_all(&path);
        assert_eq!(kind, ParquetKind::Canonical(Table::Traces));
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![Table::Traces]);
        let b = &got[&Table::Traces];
        assert_eq!(b.schema(), Table::Traces.schema());
        assert_eq!(b.num_rows(), 2);
        assert_eq!(
            strs(b, "trace_id"),
            vec![s("4bf92f3577b34da6a3ce929d0e0e4736"); 2]
        );
        assert_eq!(
            strs(b, "span_id"),
            vec![s("00f067aa0ba902b7"), s("b7ad6b7169203331")]
        );
        assert_eq!(
            strs(b, "operation_name"),
            vec![s("checkout"), s("add_to_cart")]
        );
        assert_eq!(strs(b, "service_name"), vec![s("frontend"), s("cart")]);
        assert_eq!(strs(b, "status_code"), vec![s("error"), s("ok")]);
        assert_eq!(micros(b, "start_time"), vec![Some(t0 / 1000), None]);
        assert_eq!(
            micros(b, "end_time"),
            vec![Some((t0 + 1_500_000) / 1000), None]
        );
        let dur = b
            .column_by_name("duration_ms")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert_eq!(dur.iter().collect::<Vec<_>>(), vec![Some(1.5), None]);
        let flags = b
            .column_by_name("flags")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(flags.iter().collect::<Vec<_>>(), vec![Some(1), None]);
        assert_eq!(
            maps(b, "attributes"),
            vec![
                pairs(&[("cart.id", "c-1"), ("http.method", "POST")]),
                pairs(&[])
            ]
        );
        // Missing columns: nulls.
        assert_eq!(strs(b, "trace_state"), vec![None, None]);
        assert_eq!(
            b.column_by_name("resource_attributes")
                .unwrap()
                .null_count(),
            2
        );
        assert!(b.column_by_name("not_ours").is_none());
    }

    #[test]
    fn conform_explains_what_cannot_be_converted() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("trace_id", DataType::Utf8, true),
            Field::new("span_id", DataType::Utf8, true),
            Field::new("operation_name", DataType::Utf8, true),
            Field::new("start_time", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a"])),
                Arc::new(StringArray::from(vec!["b"])),
                Arc::new(StringArray::from(vec!["c"])),
                Arc::new(Int64Array::from(vec![1])),
            ],
        )
        .unwrap();
        let err = format!("{:#}", conform(Table::Traces, &batch).unwrap_err());
        assert!(
            err.contains("start_time") && err.contains("TIMESTAMP"),
            "{err}"
        );
    }

    #[test]
    fn ids_are_lowercase_hex_or_null() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("5B8EFFF798038103D269B633813FC60C"),
            Some(""),
            Some("0000000000000000"),
            None,
        ]));
        let got: Vec<_> = ids(&a)
            .unwrap()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect();
        assert_eq!(
            got,
            vec![s("5b8efff798038103d269b633813fc60c"), None, None, None]
        );
        let raw: ArrayRef = Arc::new(
            datafusion::arrow::array::FixedSizeBinaryArray::try_from_iter(
                vec![vec![0xABu8, 1, 2, 3, 4, 5, 6, 7], vec![0u8; 8]].into_iter(),
            )
            .unwrap(),
        );
        let got: Vec<_> = ids(&raw)
            .unwrap()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect();
        assert_eq!(got, vec![s("ab01020304050607"), None]);
    }

    const T1: i64 = 1_717_171_717_000_000_000; // ns
    const T2: i64 = 1_717_171_720_500_000_000;

    /// Two spans as the ClickHouse exporter's `otel_traces` holds them, exported to Parquet:
    /// uppercase hex ids, both spellings of kinds and status codes, UInt64 Duration, maps with
    /// Parquet's field names, and on the first span 2 events and 1 link.
    fn clickhouse_batch() -> RecordBatch {
        let map_type = foreign_map(&[]).data_type().clone();
        let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
        let utc_ns = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "Timestamp",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
            Field::new("TraceId", DataType::Utf8, false),
            Field::new("SpanId", DataType::Utf8, false),
            Field::new("ParentSpanId", DataType::Utf8, false),
            Field::new("TraceState", DataType::Utf8, false),
            Field::new("SpanName", DataType::Utf8, false),
            Field::new("SpanKind", DataType::Utf8, false),
            Field::new("ServiceName", DataType::Utf8, false),
            Field::new("ResourceAttributes", map_type.clone(), false),
            Field::new("ScopeName", DataType::Utf8, false),
            Field::new("ScopeVersion", DataType::Utf8, false),
            Field::new("SpanAttributes", map_type.clone(), false),
            Field::new("Duration", DataType::UInt64, false),
            Field::new("StatusCode", DataType::Utf8, false),
            Field::new("StatusMessage", DataType::Utf8, false),
            Field::new("Events.Timestamp", list(utc_ns.clone()), false),
            Field::new("Events.Name", list(DataType::Utf8), false),
            Field::new("Events.Attributes", list(map_type.clone()), false),
            Field::new("Links.TraceId", list(DataType::Utf8), false),
            Field::new("Links.SpanId", list(DataType::Utf8), false),
            Field::new("Links.TraceState", list(DataType::Utf8), false),
            Field::new("Links.Attributes", list(map_type.clone()), false),
        ]));
        let names = || {
            Some(MapFieldNames {
                entry: "key_value".into(),
                key: "key".into(),
                value: "value".into(),
            })
        };
        let mut ev_ts = ListBuilder::new(TimestampNanosecondBuilder::new().with_timezone("UTC"));
        let mut ev_name = ListBuilder::new(StringBuilder::new());
        let mut ev_attrs = ListBuilder::new(MapBuilder::new(
            names(),
            StringBuilder::new(),
            StringBuilder::new(),
        ));
        // Span 1: two events.
        ev_ts.values().append_value(T1 + 100_000_000);
        ev_ts.values().append_value(T1 + 2_000_000_000);
        ev_ts.append(true);
        ev_name.values().append_value("exception");
        ev_name.values().append_value("retry");
        ev_name.append(true);
        let m = ev_attrs.values();
        m.keys().append_value("exception.type");
        m.values().append_value("PaymentDeclined");
        m.keys().append_value("exception.message");
        m.values().append_value("card expired");
        m.append(true).unwrap();
        m.keys().append_value("attempt");
        m.values().append_value("2");
        m.append(true).unwrap();
        ev_attrs.append(true);
        // Span 2: none.
        ev_ts.append(true);
        ev_name.append(true);
        ev_attrs.append(true);

        let mut ln_trace = ListBuilder::new(StringBuilder::new());
        let mut ln_span = ListBuilder::new(StringBuilder::new());
        let mut ln_state = ListBuilder::new(StringBuilder::new());
        let mut ln_attrs = ListBuilder::new(MapBuilder::new(
            names(),
            StringBuilder::new(),
            StringBuilder::new(),
        ));
        ln_trace
            .values()
            .append_value("0AF7651916CD43DD8448EB211C80319C");
        ln_trace.append(true);
        ln_span.values().append_value("B7AD6B7169203331");
        ln_span.append(true);
        ln_state.values().append_value("rojo=00f067aa0ba902b7");
        ln_state.append(true);
        let m = ln_attrs.values();
        m.keys().append_value("link.reason");
        m.values().append_value("retry-of");
        m.append(true).unwrap();
        ln_attrs.append(true);
        ln_trace.append(true);
        ln_span.append(true);
        ln_state.append(true);
        ln_attrs.append(true);

        let utf8 = |v: [&str; 2]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampNanosecondArray::from(vec![T1, T2])),
                utf8([
                    "5B8EFFF798038103D269B633813FC60C",
                    "5B8EFFF798038103D269B633813FC60C",
                ]),
                utf8(["EEE19B7EC3C1B174", "EEE19B7EC3C1B175"]),
                utf8(["", "EEE19B7EC3C1B174"]),
                utf8(["", ""]),
                utf8(["POST /api/checkout", "PlaceOrder"]),
                utf8(["SPAN_KIND_CLIENT", "Server"]),
                utf8(["frontend", "checkout"]),
                foreign_map(&[
                    &[("service.name", "frontend"), ("host.name", "web-1")],
                    &[("service.name", "checkout")],
                ]),
                utf8(["io.opentelemetry.http", ""]),
                utf8(["1.2.0", ""]),
                foreign_map(&[&[("cart.id", "c-42"), ("http.request.method", "POST")], &[]]),
                Arc::new(UInt64Array::from(vec![2_500_000_000u64, 1_200_000])),
                utf8(["STATUS_CODE_ERROR", "Error"]),
                utf8(["payment declined", ""]),
                Arc::new(ev_ts.finish()),
                Arc::new(ev_name.finish()),
                Arc::new(ev_attrs.finish()),
                Arc::new(ln_trace.finish()),
                Arc::new(ln_span.finish()),
                Arc::new(ln_state.finish()),
                Arc::new(ln_attrs.finish()),
            ],
        )
        .unwrap()
    }

    fn check_clickhouse(path: &Path) {
        let (kind, got) = read_all(path);
        assert_eq!(kind, ParquetKind::ClickHouseTraces);
        let tr = &got[&Table::Traces];
        assert_eq!(tr.num_rows(), 2);
        let trace = s("5b8efff798038103d269b633813fc60c");
        assert_eq!(strs(tr, "trace_id"), vec![trace.clone(), trace.clone()]);
        assert_eq!(
            strs(tr, "span_id"),
            vec![s("eee19b7ec3c1b174"), s("eee19b7ec3c1b175")]
        );
        assert_eq!(
            strs(tr, "parent_span_id"),
            vec![None, s("eee19b7ec3c1b174")]
        );
        assert_eq!(strs(tr, "trace_state"), vec![None, None]);
        assert_eq!(
            strs(tr, "operation_name"),
            vec![s("POST /api/checkout"), s("PlaceOrder")]
        );
        assert_eq!(strs(tr, "service_name"), vec![s("frontend"), s("checkout")]);
        assert_eq!(strs(tr, "span_kind"), vec![s("client"), s("server")]);
        assert_eq!(
            micros(tr, "start_time"),
            vec![Some(T1 / 1000), Some(T2 / 1000)]
        );
        assert_eq!(
            micros(tr, "end_time"),
            vec![
                Some((T1 + 2_500_000_000) / 1000),
                Some((T2 + 1_200_000) / 1000)
            ]
        );
        let dur = tr
            .column_by_name("duration_ms")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert_eq!(
            dur.iter().collect::<Vec<_>>(),
            vec![Some(2500.0), Some(1.2)]
        );
        assert_eq!(strs(tr, "status_code"), vec![s("error"), s("error")]);
        assert_eq!(
            strs(tr, "status_message"),
            vec![s("payment declined"), None]
        );
        assert_eq!(
            maps(tr, "attributes"),
            vec![
                pairs(&[("cart.id", "c-42"), ("http.request.method", "POST")]),
                pairs(&[])
            ]
        );
        assert_eq!(
            maps(tr, "resource_attributes"),
            vec![
                pairs(&[("service.name", "frontend"), ("host.name", "web-1")]),
                pairs(&[("service.name", "checkout")])
            ]
        );
        assert_eq!(
            strs(tr, "scope_name"),
            vec![s("io.opentelemetry.http"), None]
        );
        assert_eq!(strs(tr, "scope_version"), vec![s("1.2.0"), None]);
        assert_eq!(
            tr.column_by_name("scope_attributes").unwrap().null_count(),
            2
        );
        for c in [
            "flags",
            "dropped_attributes_count",
            "dropped_events_count",
            "dropped_links_count",
        ] {
            assert_eq!(tr.column_by_name(c).unwrap().null_count(), 2, "{c}");
        }
        assert!(tr.column_by_name("derived").is_none());

        let ev = &got[&Table::SpanEvents];
        assert_eq!(ev.num_rows(), 2);
        assert_eq!(strs(ev, "trace_id"), vec![trace.clone(), trace.clone()]);
        assert_eq!(strs(ev, "span_id"), vec![s("eee19b7ec3c1b174"); 2]);
        assert_eq!(
            micros(ev, "timestamp"),
            vec![
                Some((T1 + 100_000_000) / 1000),
                Some((T1 + 2_000_000_000) / 1000)
            ]
        );
        assert_eq!(strs(ev, "name"), vec![s("exception"), s("retry")]);
        assert_eq!(
            maps(ev, "attributes"),
            vec![
                pairs(&[
                    ("exception.type", "PaymentDeclined"),
                    ("exception.message", "card expired")
                ]),
                pairs(&[("attempt", "2")])
            ]
        );
        assert_eq!(
            ev.column_by_name("dropped_attributes_count")
                .unwrap()
                .null_count(),
            2
        );
        assert_eq!(strs(ev, "service_name"), vec![s("frontend"); 2]);

        let ln = &got[&Table::SpanLinks];
        assert_eq!(ln.num_rows(), 1);
        assert_eq!(strs(ln, "trace_id"), vec![trace]);
        assert_eq!(strs(ln, "span_id"), vec![s("eee19b7ec3c1b174")]);
        assert_eq!(micros(ln, "span_start_time"), vec![Some(T1 / 1000)]);
        assert_eq!(
            strs(ln, "linked_trace_id"),
            vec![s("0af7651916cd43dd8448eb211c80319c")]
        );
        assert_eq!(strs(ln, "linked_span_id"), vec![s("b7ad6b7169203331")]);
        assert_eq!(strs(ln, "trace_state"), vec![s("rojo=00f067aa0ba902b7")]);
        assert_eq!(
            maps(ln, "attributes"),
            vec![pairs(&[("link.reason", "retry-of")])]
        );
        assert_eq!(ln.column_by_name("flags").unwrap().null_count(), 1);
    }

    #[test]
    fn clickhouse_traces_map_onto_the_canonical_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otel_traces.parquet");
        // Like a file from ClickHouse: no embedded Arrow schema.
        write(&path, &clickhouse_batch(), true);
        check_clickhouse(&path);
    }

    #[test]
    fn clickhouse_events_as_a_list_of_structs() {
        // `flatten_nested = 0`: Events is one list of structs instead of parallel lists.
        let flat = clickhouse_batch();
        let (mut fields, mut cols) = (Vec::new(), Vec::new());
        for (f, c) in flat.schema().fields().iter().zip(flat.columns()) {
            if !f.name().starts_with("Events.") {
                fields.push(f.as_ref().clone());
                cols.push(c.clone());
            }
        }
        let member = |name: &str| {
            flat.column_by_name(&format!("Events.{name}"))
                .unwrap()
                .as_list::<i32>()
                .clone()
        };
        let (ts, name, attrs) = (member("Timestamp"), member("Name"), member("Attributes"));
        let structs = StructArray::try_new(
            vec![
                Field::new("Timestamp", ts.values().data_type().clone(), true),
                Field::new("Name", DataType::Utf8, true),
                Field::new("Attributes", attrs.values().data_type().clone(), true),
            ]
            .into(),
            vec![
                ts.values().clone(),
                name.values().clone(),
                attrs.values().clone(),
            ],
            None,
        )
        .unwrap();
        let events = ListArray::try_new(
            Arc::new(Field::new("item", structs.data_type().clone(), true)),
            ts.offsets().clone(),
            Arc::new(structs),
            None,
        )
        .unwrap();
        fields.push(Field::new("Events", events.data_type().clone(), true));
        cols.push(Arc::new(events));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        let [_, ev, _] = from_clickhouse(&batch).unwrap();
        assert_eq!(strs(&ev, "name"), vec![s("exception"), s("retry")]);
        assert_eq!(maps(&ev, "attributes")[1], pairs(&[("attempt", "2")]));
    }

    fn fixture() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/parquet/clickhouse-traces.parquet")
    }

    /// Regenerates `tests/fixtures/parquet/clickhouse-traces.parquet`:
    /// `cargo test --lib read::parquet -- --ignored write_clickhouse_fixture`
    #[test]
    #[ignore]
    fn write_clickhouse_fixture() {
        let path = fixture();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write(&path, &clickhouse_batch(), true);
        check_clickhouse(&path);
    }

    #[test]
    fn clickhouse_fixture_reads_back() {
        check_clickhouse(&fixture());
    }

    #[test]
    fn classify_by_columns() {
        for t in Table::ALL {
            assert_eq!(
                classify(&t.schema()),
                ParquetKind::Canonical(t),
                "{}",
                t.name()
            );
        }
        assert_eq!(
            classify(&clickhouse_batch().schema()),
            ParquetKind::ClickHouseTraces
        );

        let unrelated = Schema::new(vec![
            Field::new("order_id", DataType::Int64, false),
            Field::new("customer", DataType::Utf8, true),
            Field::new(
                "placed_at",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
        ]);
        let ParquetKind::Unknown(desc) = classify(&unrelated) else {
            panic!("an orders table is not a trace table");
        };
        assert!(!desc.contains('\n'), "{desc}");
        for part in [
            "3 columns",
            "order_id Int64",
            "customer Utf8",
            "placed_at Timestamp",
        ] {
            assert!(desc.contains(part), "{part} not in {desc}");
        }
        let shown = ParquetKind::Unknown(desc).to_string();
        assert!(
            shown.contains("otel_traces") && shown.contains("operation_name"),
            "{shown}"
        );

        // A near miss says what is missing.
        let near = Schema::new(vec![
            Field::new("trace_id", DataType::Utf8, true),
            Field::new("span_id", DataType::Utf8, true),
            Field::new("start_time", DataType::Int64, true),
        ]);
        let ParquetKind::Unknown(desc) = classify(&near) else {
            panic!("no operation_name, no timestamp: not a table");
        };
        assert!(desc.contains("traces but lacks operation_name"), "{desc}");
    }

    #[test]
    fn unknown_files_emit_nothing_and_broken_files_name_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.parquet");
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "order_id",
                DataType::Int64,
                true,
            )])),
            vec![Arc::new(Int64Array::from(vec![1, 2]))],
        )
        .unwrap();
        write(&path, &batch, false);
        let kind = read_parquet(&path, None, &mut |_, _| panic!("nothing to emit")).unwrap();
        assert!(matches!(kind, ParquetKind::Unknown(_)));

        let bad = dir.path().join("broken.parquet");
        std::fs::write(&bad, b"not parquet at all").unwrap();
        let err = format!(
            "{:#}",
            read_parquet(&bad, None, &mut |_, _| Ok(())).unwrap_err()
        );
        assert!(
            err.contains("broken.parquet") && err.contains("not a readable Parquet"),
            "{err}"
        );
    }
}
