//! The lifecycle replay: every cart's life from the loaded spans, its outcome as of a point in
//! time, and what happened just before it went idle.
//!
//! How: which spans belong to which cart is DataFusion SQL generated from the lifecycle model
//! (`cart_events`, printed by `cartscope detect --explain`), so it runs wherever DataFusion
//! runs (Ballista included) and an analyst can read it. DataFusion sorts its rows per cart
//! (`EVENT_ORDER`), and the per-cart judgement is a fold in Rust over that stream: each
//! cart's few events judged at once, then dropped. It was SQL too, with ordered
//! `last_value` aggregates and a window per cart; DataFusion spent most of a replay in those
//! (100k carts: about 5 s of 7 s; the fold takes 0.2 s). The rules are listed in
//! `FOLD_EXPLAINED`, which `--explain` prints.
//!
//! Every table the replay makes (`cart_events`, `carts`, the derived rows, and
//! `operation_stats`: each operation's span count, duration sum and percentiles, from the
//! passes that select the `slower_than_p95` signal's percentile, written once the fold is
//! done) is written to
//! Parquet as the fold goes and read back through listing tables (`store`): beside an
//! ingested dataset it is kept and reused by every later command with the same data, model,
//! threshold and as-of time.
//!
//! Memory. `cart_events` is one query sorted whole while a sort of every cart event fits in
//! a pass's share of `--memory-limit` (a quarter of it, at `EVENT_ROW_BYTES` an event; 100k
//! carts under 1 GB). Past that, in passes (`in_passes`): the spans' join to their carts by
//! ranges of trace ids, each a hash table of one range's traces, and the sort by ranges of
//! cart ids, each in memory, through temporary Parquet tables (`sql::passes`). What the
//! replay holds is then one pass's share, whatever the number of carts; a pass that does not
//! fit after all makes the replay start again with twice, then four times, as many passes
//! (the percentiles, the recorded abandonments and the model's fit to the spans are kept).
//! With a session key
//! (`keys.session_id`) the query also joins spans of other traces by session and is not
//! split: its join is a hash join until the pool refuses its table, then a sort-merge join,
//! whose sorts spill, then the same in one partition (not bounded by construction: a
//! sort's merge of many spill files reads a batch of each, outside the pool). Bounded by
//! construction: the fold (one sorted batch and the cart running across its end, 16k
//! folded carts before they are written) and the Parquet writers (a 64k-row group each).
//! Not bounded: the percentile selection (per distinct operation name, one sparse
//! histogram in the first pass, then per percentile asked, the model's, 0.5 and 0.95, a
//! sparse histogram or at most 64k durations) and the set of carts whose abandonment the input recorded
//! already (a string per such cart: none for most exports). Before the replay, raw exports
//! given to --data are held in memory only while they would take at most half the limit;
//! larger ones are read through a temporary dataset (`sql::session::Data::load`).
//! After the replay: `carts` and `cart_events` are written in cart_id order with cart_id
//! said never null, so that a query's merge join on cart_id (asking for nulls first) and an
//! `ORDER BY cart_id` (nulls last) both stream over them without a sort: a query whose hash
//! joins do not fit the cap runs again so (`sql::session::execute_fitted`).
//!
//! Figures, measured on this project's 2-core machine, release build, with
//! `/usr/bin/time -v cartscope detect --data DS -f csv` on a 1,000,000-cart export
//! (`cartscope generate --carts 1000000`, 5.95M spans, ingested): 16.1 s and peak RSS
//! 2.9 GB with the fold over tables held in memory; 68 s and 5.5 GB with the SQL before it.
//! The figures of the replay as it is now are in bench/RESULTS.md ("The replay at scale").
//!
//! Steps:
//! 1. `cart_events`: each span that names a cart (its cart-id attribute, or with
//!    `cart_is_user` its user on a stage span) gives its trace to that cart; every span of such
//!    a trace is the cart's ("attribute" or "trace"); optionally spans of other traces with
//!    the cart's session id inside its active window ("session").
//! 2. `carts`: per cart the first and last activity, the furthest stage, the latest known
//!    item count and value, the last operation (the span that ended last), whether it came back
//!    after an idle spell of the threshold, and its outcome: converted if it reached a success
//!    stage with no such spell before; recovered if it came back after one and then converted
//!    or is still active; abandoned if idle at least the threshold at the as-of time without
//!    converting; active otherwise (censored).
//! 3. Derived rows: a `cart.abandonment.detected` span and a `cart.state.transitions` point
//!    (cart.stage = abandoned) per abandoned cart, unless the input recorded them already.
//!    They go into `derived_traces` and `derived_metrics`, never into the input's tables;
//!    the session's `traces` and `metrics` views show both (see `sql::session`).
//!
//! The model (`model`, with the presets as `presets/*.toml`) names every span and attribute;
//! nothing about a shop's naming is a constant here.

pub mod model;
pub mod store;
pub mod suggest;

use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListBuilder, RecordBatch,
    StringArray, StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, SchemaRef, TimestampMicrosecondType};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::SessionContext;

use crate::read::projection::{Keys, Projection};
use crate::replay::model::Model;
use crate::sql::passes::{lit, Passes, Scratch};
use crate::tables::builders::{
    Attrs, MetricHead, MetricType, PointRec, SpanColumn, SpanKind, SpanRec, StatusCode,
    TableBuilders, Temporality,
};
use crate::tables::schema::{self, PerTable, Table};
use crate::time::{Duration, Timestamp};

/// When and how strictly the replay judges, and where it is kept.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub as_of: Timestamp,
    /// Overrides the model's threshold.
    pub threshold: Option<Duration>,
    /// The datasets the data is exactly (no raw files besides): the replay is kept beside
    /// the first and reused while they, the model and the clock are unchanged. Empty: the
    /// replay goes to a temporary folder.
    pub keep_beside: Vec<std::path::PathBuf>,
    /// Replay again even when a kept replay matches.
    pub refresh: bool,
    /// What the session reads of the replay afterwards (`Reads`).
    pub reads: Reads,
}

/// What a session reads of its replay. A temporary replay writes no more than that (a kept
/// one always writes everything): cart events it does not write are not registered, so a
/// query of them fails instead of finding nothing; derived rows it does not build leave
/// `derived_traces` and `derived_metrics` registered but empty (and the `traces` and
/// `metrics` views without them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reads {
    /// Carts, cart events and the derived rows.
    #[default]
    All,
    /// Carts and the derived rows, never the cart events (`detect --emit-otlp` without
    /// `--out`): `cart_events` and the views over it are not registered. Writing the events
    /// was about a tenth of a raw 100k-cart `detect` (bench/RESULTS.md).
    CartsAndDerived,
    /// Carts alone (`detect` without `--out` or `--emit-otlp`): the derived rows are counted
    /// for the summary, not built, and their tables are empty.
    Carts,
}

impl Reads {
    fn events(self) -> bool {
        self == Reads::All
    }

    fn derived(self) -> bool {
        self != Reads::Carts
    }
}

/// What the replay found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub as_of: Timestamp,
    pub threshold: Duration,
    pub carts: u64,
    pub converted: u64,
    pub abandoned: u64,
    pub active: u64,
    pub recovered: u64,
    /// abandoned / (abandoned + converted); active carts are censored.
    pub abandonment_rate: f64,
    pub abandoned_value: f64,
    pub derived_spans: u64,
    pub derived_points: u64,
    /// Abandonments the input had already recorded (not written again).
    pub recorded_abandonments: u64,
    /// Signs that the model does not fit the data, each with its likely fix (`misfits`).
    pub warnings: Vec<String>,
    /// Cart spans exported more than once (the same trace and span id), counted once.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub duplicate_spans: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Which of one cart's events (rows in sort order) to keep: one row of each span (trace and
/// span id). Overlapping exports repeat spans, and each is to count once. Of differing
/// copies the one that ended last (then the longer, then by status, name and status
/// message) is kept; of equal ones the first in sort order.
fn dedupe_cart(rows: &[(usize, usize)], cols: &[EventColumns], keep: &mut Vec<bool>) -> u64 {
    keep.clear();
    keep.resize(rows.len(), true);
    if rows.len() < 2 {
        return 0;
    }
    let span = |j: usize| {
        let (bi, i) = rows[j];
        let c = &cols[bi];
        Some((text_at(&c.trace, i)?, text_at(&c.span, i)?))
    };
    let rank = |j: usize| {
        let (bi, i) = rows[j];
        let c = &cols[bi];
        (
            opt(&c.end, i).map_or(i64::MIN, |i| c.end.value(i)),
            opt(&c.dur, i).map_or(0, |i| c.dur.value(i).to_bits()),
            text_at(&c.status, i).unwrap_or_default(),
            text_at(&c.op, i).unwrap_or_default(),
            text_at(&c.message, i).unwrap_or_default(),
        )
    };
    let mut ids: Vec<(&str, &str, usize)> = (0..rows.len())
        .filter_map(|j| span(j).map(|(t, s)| (t, s, j)))
        .collect();
    ids.sort_unstable();
    let mut dropped = 0;
    for run in ids.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        if run.len() < 2 {
            continue;
        }
        // In sort order: a later copy wins only when it ranks strictly higher.
        let mut best = run[0].2;
        for &(_, _, j) in &run[1..] {
            if rank(j) > rank(best) {
                best = j;
            }
        }
        for &(_, _, j) in run {
            if j != best {
                keep[j] = false;
                dropped += 1;
            }
        }
    }
    dropped
}

/// What the replay reads of a raw export's attributes: on spans, the model's keys and the
/// attributes its stages test, and the cart key of the abandonments the input recorded
/// already (`Deriver::new`); on metric points, that cart key and the stage attribute; of the
/// span columns a question may skip (`SpanColumn`), the status message and the span kind.
/// Every other column is read whole (`read::projection`). A change to the SQL below that
/// reads another attribute or span column must add it here: the tests compare every replay
/// from a raw export with and without this projection.
pub fn projection(m: &Model) -> Projection {
    let k = &m.keys;
    let mut span: Vec<&str> = [
        &k.cart_id,
        &k.user_id,
        &k.session_id,
        &k.item_count,
        &k.total_value,
        &k.line_price,
        &k.line_quantity,
        &k.product_id,
        &k.sampling_probability,
        &k.adjusted_count,
    ]
    .into_iter()
    .flatten()
    .map(String::as_str)
    .collect();
    for s in &m.stages {
        span.extend(s.has.iter().map(String::as_str));
        span.extend(s.conditions.keys().map(String::as_str));
    }
    span.push(&m.derived.cart_id_attribute);
    // Of the span columns a question may leave unread, the replay reads the status message
    // (a cart's cause) and, when a stage names one, the span kind.
    let mut columns = vec![SpanColumn::StatusMessage.name()];
    if m.stages.iter().any(|s| s.kind.is_some()) {
        columns.push(SpanColumn::SpanKind.name());
    }
    Projection {
        span: Keys::only(span),
        span_columns: Keys::only(columns),
        point: Keys::only([&m.derived.cart_id_attribute, &m.derived.stage_attribute]),
        ..Projection::nothing()
    }
}

/// `coalesce(t.attributes['a'], t.attributes['b'])`, or a typed NULL for no keys.
pub(crate) fn attr(alias: &str, keys: &[String]) -> String {
    match keys.len() {
        0 => "CAST(NULL AS VARCHAR)".into(),
        1 => format!("{alias}.attributes[{}]", lit(&keys[0])),
        _ => format!(
            "coalesce({})",
            keys.iter()
                .map(|k| format!("{alias}.attributes[{}]", lit(k)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn stage_match(alias: &str, s: &crate::replay::model::Stage) -> String {
    let mut any = Vec::new();
    if !s.spans.is_empty() {
        any.push(format!(
            "{alias}.operation_name IN ({})",
            s.spans
                .iter()
                .map(|n| lit(n))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(p) = &s.pattern {
        any.push(format!("{alias}.operation_name ~ {}", lit(p)));
    }
    let mut all = Vec::new();
    if !any.is_empty() {
        all.push(format!("({})", any.join(" OR ")));
    }
    if !s.has.is_empty() {
        // Spellings of one key: any of them.
        all.push(format!(
            "({})",
            s.has
                .iter()
                .map(|k| format!("{alias}.attributes[{}] IS NOT NULL", lit(k)))
                .collect::<Vec<_>>()
                .join(" OR ")
        ));
    }
    if let Some(k) = s.kind {
        all.push(format!("{alias}.span_kind = {}", lit(k.as_str())));
    }
    if !s.services.is_empty() {
        all.push(format!(
            "{alias}.service_name IN ({})",
            s.services
                .iter()
                .map(|n| lit(n))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match s.status {
        // OpenTelemetry leaves a successful span's status unset (server instrumentations
        // set ok rarely): ok means "did not fail".
        Some(StatusCode::Ok) => all.push(format!("{alias}.status_code IN ('ok', 'unset')")),
        Some(st) => all.push(format!("{alias}.status_code = {}", lit(st.as_str()))),
        None => {}
    }
    for (k, v) in &s.conditions {
        all.push(format!("{alias}.attributes[{}] = {}", lit(k), lit(v)));
    }
    format!("({})", all.join(" AND "))
}

/// A span's cart key and what else the span must be for the key to name its cart: its
/// cart-id attribute; with `cart_is_user`, its user on a stage span.
fn cart_key(m: &Model) -> (String, String) {
    if m.keys.cart_is_user {
        let any_stage = m
            .stages
            .iter()
            .map(|s| stage_match("t", s))
            .collect::<Vec<_>>()
            .join(" OR ");
        (attr("t", &m.keys.user_id), format!(" AND ({any_stage})"))
    } else {
        (attr("t", &m.keys.cart_id), String::new())
    }
}

/// A span of `observed_traces t` as a row of `cart_events` (but its cart_id), found by `by`.
fn event_columns(m: &Model, by: &str) -> String {
    // A span that matches several stages is the furthest of them (a placed order's
    // `PlaceOrder` span is both the checkout and, with its order id, the completion).
    let stage_order = format!(
        "CASE {} END",
        m.stages
            .iter()
            .enumerate()
            .rev()
            .map(|(i, s)| format!("WHEN {} THEN {}", stage_match("t", s), i + 1))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let stage_name = format!(
        "CASE {} END",
        m.stages
            .iter()
            .rev()
            .map(|s| format!("WHEN {} THEN {}", stage_match("t", s), lit(&s.name)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let success = m
        .stages
        .iter()
        .filter(|s| s.success)
        .map(|s| stage_match("t", s))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!(
        "t.start_time AS time, t.end_time, {stage_name} AS stage, {stage_order} AS stage_order, \
         t.operation_name AS operation, t.trace_id, t.span_id, t.duration_ms, t.status_code, \
         t.status_message, \
         {by} AS attributed_by, {user} AS user_id, \
         TRY_CAST({count} AS BIGINT) AS item_count, TRY_CAST({value} AS DOUBLE) AS total_value, \
         TRY_CAST({price} AS DOUBLE) * coalesce(TRY_CAST({quantity} AS DOUBLE), 1.0) AS line_value, \
         {product} AS product_id, TRY_CAST({quantity} AS DOUBLE) AS line_quantity, \
         coalesce({success}, false) AS is_success",
        user = attr("t", &m.keys.user_id),
        count = attr("t", &m.keys.item_count),
        value = attr("t", &m.keys.total_value),
        price = attr("t", &m.keys.line_price),
        quantity = attr("t", &m.keys.line_quantity),
        product = attr("t", &m.keys.product_id),
    )
}

/// How a span found by its trace came to its cart: by its own key, or by its trace.
fn attributed_by(m: &Model) -> String {
    let (key, key_filter) = cart_key(m);
    format!("CASE WHEN {key} IS NOT NULL{key_filter} THEN 'attribute' ELSE 'trace' END")
}

/// The SQL of the `cart_events` view.
pub fn cart_events_sql(m: &Model, as_of_us: i64) -> String {
    let (key, key_filter) = cart_key(m);
    let columns = |by: &str| event_columns(m, by);
    let own = attributed_by(m);
    let mut sql = format!(
        "WITH keyed AS (
            SELECT t.trace_id, {key} AS cart_id FROM observed_traces t
            WHERE t.trace_id IS NOT NULL AND {key} IS NOT NULL{key_filter}),
        trace_cart AS (SELECT trace_id, min(cart_id) AS cart_id FROM keyed GROUP BY trace_id)
        SELECT tc.cart_id, {cols}
        FROM observed_traces t JOIN trace_cart tc ON t.trace_id = tc.trace_id
        WHERE CAST(t.end_time AS BIGINT) <= {as_of_us}",
        cols = columns(&own)
    );
    if !m.keys.session_id.is_empty() {
        let session = attr("t", &m.keys.session_id);
        sql = format!(
            "WITH by_trace AS ({sql}),
            sessions AS (
                SELECT DISTINCT b.cart_id, {session} AS session_id
                FROM observed_traces t JOIN by_trace b ON t.trace_id = b.trace_id AND t.span_id = b.span_id
                WHERE {session} IS NOT NULL),
            windows AS (SELECT cart_id, min(time) AS lo, max(end_time) AS hi FROM by_trace GROUP BY cart_id),
            by_session AS (
                SELECT s.cart_id, {cols}
                FROM observed_traces t
                JOIN sessions s ON {session} = s.session_id
                JOIN windows w ON w.cart_id = s.cart_id
                WHERE CAST(t.end_time AS BIGINT) <= {as_of_us}
                  AND t.start_time >= w.lo AND t.start_time <= w.hi
                  AND t.trace_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM by_trace o WHERE o.trace_id = t.trace_id))
            SELECT * FROM by_trace UNION ALL SELECT * FROM by_session",
            cols = columns("'session'")
        );
    }
    sql
}

/// The durations each operation's percentile is taken over (for the `slower_than_p95`
/// signal): every observed span's.
pub const DURATIONS_SQL: &str = "SELECT operation_name, duration_ms FROM observed_traces \
     WHERE duration_ms IS NOT NULL AND operation_name IS NOT NULL";

/// Each operation's percentile durations at `ps`, nearest rank: the ceil(p * n)-th smallest
/// of its n durations, exactly, in memory that grows with the number of operations, not of
/// spans; its values in the order of `ps`, all selected in the same passes.
/// A radix selection: each streaming pass over the durations counts, per operation, the
/// values under the next 24 bits of their order-preserving bit pattern (16 for the last)
/// among those that share the bits fixed so far, and fixes the bits of the bucket that holds
/// the rank; once a bucket holds few enough values, the next pass keeps them and selects in
/// them. Two passes in practice: 24 bits are the sign, the exponent and 12 bits of the
/// mantissa, 4096 buckets per doubling, so that the rank's bucket holds fewer than 64k
/// durations even at millions of an operation (16 bits, 16 buckets per doubling, left more
/// at 10M carts: a third pass); at most three. The first pass's counts are the same for
/// every p (no bit is fixed yet): counted once. `sql` gives the (operation, duration) rows,
/// as `DURATIONS_SQL`. When it gives a third column, each row counts for that weight (a
/// number, at least 0): the percentile p is then the least value whose rows and the rows
/// below it weigh at least p times the operation's whole weight (weights of 1: the
/// nearest rank).
pub async fn percentiles_at(
    ctx: &SessionContext,
    sql: &str,
    ps: &[f64],
) -> Result<std::collections::HashMap<String, Vec<f64>>> {
    let ops = durations_at(ctx, sql, ps).await?;
    Ok(ops.into_iter().map(|(op, d)| (op, d.at)).collect())
}

/// One operation's durations, as `durations_at` sums and selects them.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationDurations {
    /// Its rows (those of a positive weight: the only ones selected from).
    pub spans: u64,
    /// The sum of its durations, unweighted: summed exactly in whole nanoseconds (each
    /// duration rounded to one), so that it does not depend on the order rows arrive in.
    pub total_ms: f64,
    /// Its percentiles, in the order of the `ps` asked for.
    pub at: Vec<f64>,
}

/// `percentiles_at`, with each operation's count and sum of its durations, from the same
/// passes.
pub async fn durations_at(
    ctx: &SessionContext,
    sql: &str,
    ps: &[f64],
) -> Result<std::collections::HashMap<String, OperationDurations>> {
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::DataType;
    use futures::StreamExt;
    let mut sel = Percentiles::new(ps);
    loop {
        let mut stream = ctx
            .sql(sql)
            .await?
            .execute_stream()
            .await
            .context("the percentile query failed")?;
        while let Some(b) = stream.next().await {
            let b = b.context("the percentile query failed")?;
            let ops = cast(b.column(0), &DataType::Utf8)?;
            let ms = cast(b.column(1), &DataType::Float64)?;
            let (ops, ms) = (ops.as_string::<i32>(), ms.as_primitive::<Float64Type>());
            let ws = match b.num_columns() {
                3 => Some(cast(b.column(2), &DataType::Float64)?),
                _ => None,
            };
            let ws = ws.as_ref().map(|w| w.as_primitive::<Float64Type>());
            for i in 0..b.num_rows() {
                let w = ws.map_or(Some(1.0), |w| w.is_valid(i).then(|| w.value(i)));
                if let (true, true, Some(w)) = (ops.is_valid(i), ms.is_valid(i), w) {
                    if w > 0.0 {
                        sel.see(ops.value(i), ms.value(i), w);
                    }
                }
            }
        }
        if !sel.end_pass() {
            return Ok(sel.finish());
        }
    }
}

/// How many more bits of a duration's pattern a pass of `durations_at` fixes, `bits` fixed.
fn step(bits: u32) -> u32 {
    24.min(64 - bits)
}

/// The radix selection of `durations_at`, fed one pass of (operation, duration, weight) at a
/// time. Weights of 1 sum exactly (up to 2^53 rows), so unweighted it is the nearest rank.
struct Percentiles {
    ps: Vec<f64>,
    first: bool,
    /// Per operation, one selection per p.
    sel: foldhash::HashMap<String, Op>,
}

/// One operation in `Percentiles`: its selections, and its rows and the sum of their
/// durations in nanoseconds (of the first pass).
#[derive(Default)]
struct Op {
    sels: Vec<Sel>,
    /// The first pass's histogram: every selection's until then (none has fixed a bit), so
    /// counted once whatever the number of ps, and handed to each at the pass's end.
    first: foldhash::HashMap<u32, (u64, f64)>,
    spans: u64,
    total_ns: i128,
}

/// One operation's selection.
#[derive(Default)]
struct Sel {
    /// The top `bits` bits every candidate shares.
    prefix: u64,
    bits: u32,
    /// The weight sought among the candidates, from the least (None until the first pass
    /// weighs them; unweighted, the rank sought).
    target: Option<f64>,
    /// Per bucket of the next bits: its values, and their weight.
    hist: foldhash::HashMap<u32, (u64, f64)>,
    kept: Option<Vec<(f64, f64)>>,
    done: Option<f64>,
}

impl Percentiles {
    /// Values kept for a selection once the candidates are this few.
    const FEW: u64 = 1 << 16;

    fn new(ps: &[f64]) -> Percentiles {
        Percentiles {
            ps: ps.to_vec(),
            first: true,
            sel: Default::default(),
        }
    }

    /// f64::total_cmp's order as unsigned integers.
    fn key(d: f64) -> u64 {
        let b = d.to_bits();
        if b >> 63 == 1 {
            !b
        } else {
            b | 1 << 63
        }
    }

    fn unkey(k: u64) -> f64 {
        f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
    }

    fn see(&mut self, op: &str, d: f64, w: f64) {
        let o = match self.sel.get_mut(op) {
            Some(s) => s,
            None if self.first => self.sel.entry(op.to_string()).or_insert_with(|| Op {
                sels: self.ps.iter().map(|_| Sel::default()).collect(),
                ..Op::default()
            }),
            None => return,
        };
        let k = Self::key(d);
        if self.first {
            o.spans += 1;
            // Whole nanoseconds: an integer sum is exact whatever the order. The cast clamps
            // a duration to i64's nanoseconds (292 years); 2^64 of those cannot overflow
            // an i128.
            o.total_ns += i128::from((d * 1e6).round() as i64);
            let b = o.first.entry((k >> (64 - step(0))) as u32).or_default();
            b.0 += 1;
            b.1 += w;
            return;
        }
        for s in &mut o.sels {
            if s.done.is_some() {
                continue;
            }
            if s.bits > 0 && k >> (64 - s.bits) != s.prefix {
                continue;
            }
            match &mut s.kept {
                Some(v) => v.push((d, w)),
                None => {
                    let b = s
                        .hist
                        .entry((k << s.bits >> (64 - step(s.bits))) as u32)
                        .or_default();
                    b.0 += 1;
                    b.1 += w;
                }
            }
        }
    }

    /// Narrows every open selection after a pass; whether another pass is needed.
    fn end_pass(&mut self) -> bool {
        let first = std::mem::take(&mut self.first);
        let mut open = false;
        for o in self.sel.values_mut() {
            // After the first pass, one histogram of every selection's, in bucket order.
            let shared = first.then(|| {
                let mut b: Vec<(u32, (u64, f64))> =
                    std::mem::take(&mut o.first).into_iter().collect();
                b.sort_unstable_by_key(|b| b.0);
                b
            });
            for (k, s) in o.sels.iter_mut().enumerate() {
                open |= Self::narrow(s, self.ps[k], shared.as_deref());
            }
        }
        open
    }

    /// Narrows one open selection after a pass, on its own histogram or the first pass's
    /// `shared` one; whether it is still open.
    fn narrow(s: &mut Sel, p: f64, shared: Option<&[(u32, (u64, f64))]>) -> bool {
        if s.done.is_some() {
            return false;
        }
        if let Some(mut v) = s.kept.take() {
            // The least value at which the weight below and at it reaches the target
            // (the last when rounding leaves it short).
            v.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
            let target = s.target.unwrap_or(0.0);
            let mut below = 0.0;
            let at = v.iter().position(|(_, w)| {
                below += w;
                below >= target
            });
            s.done = at.or(v.len().checked_sub(1)).map(|i| v[i].0);
            return false;
        }
        let own: Vec<(u32, (u64, f64))>;
        let buckets = match shared {
            Some(b) => b,
            None => {
                let mut b: Vec<(u32, (u64, f64))> = s.hist.drain().collect();
                b.sort_unstable_by_key(|b| b.0);
                own = b;
                &own
            }
        };
        let target = *s.target.get_or_insert_with(|| {
            let all: f64 = buckets.iter().map(|b| b.1 .1).sum();
            p * all
        });
        let mut below = 0.0;
        let last = buckets.len().saturating_sub(1);
        for (i, &(bucket, (n, w))) in buckets.iter().enumerate() {
            // The bucket that holds the target (the last, when rounding leaves the
            // sum of the weights short of it).
            if below + w >= target || i == last {
                let bits = step(s.bits);
                s.prefix = (s.prefix << bits) | u64::from(bucket);
                s.bits += bits;
                s.target = Some(target - below);
                if s.bits == 64 {
                    s.done = Some(Self::unkey(s.prefix));
                } else if n <= Self::FEW {
                    s.kept = Some(Vec::with_capacity(n as usize));
                }
                break;
            }
            below += w;
        }
        s.done.is_none()
    }

    fn finish(self) -> std::collections::HashMap<String, OperationDurations> {
        self.sel
            .into_iter()
            .filter_map(|(op, o)| {
                let at = o.sels.iter().map(|s| s.done).collect::<Option<_>>()?;
                let d = OperationDurations {
                    spans: o.spans,
                    total_ms: o.total_ns as f64 / 1e6,
                    at,
                };
                Some((op, d))
            })
            .collect()
    }
}

/// What the fold computes per cart, for `cartscope detect --explain`.
pub const FOLD_EXPLAINED: &str = "\
-- carts: one row per cart, folded in Rust over its cart_events in (end_time, time, span_id) order
--   first_seen = min(time); last_activity = max(end_time); span_count = count of events
--   last_stage = the stage of max(stage_order); converted = any event is a success stage
--   user_id, item_count, total_value = the latest non-null value; total_value, when no
--             event records one, = the sum of the line values (line price x quantity) of
--             the events that record a line price, when every line has one (a line: a
--             stage's event with a line price or a product id)
--   last_operation, last_op_duration_ms, last_op_status, last_trace_id = of the latest event
--   came_back = in start order, an event starts >= threshold after all earlier ones ended
--   outcome = recovered (converted and came back) | converted | abandoned (idle >= the last
--             stage's threshold at the as-of time) | recovered (came back) | active
--   suspected_cause (abandoned only) = slow_response (last op > causes.slow_ms) | error
--   signals = slower_than_p95 (last op above its percentile: the nearest-rank causes.percentile
--             of its operation's durations above: operation_stats.signal_ms), error_before_idle (an error
--             within causes.error_window of last_activity), retry (an operation twice in a trace)
--   abandoned_at = last_activity + threshold";

/// How the fold judges carts: the model's rules with its durations in microseconds.
#[derive(Clone)]
struct Rules {
    as_of_us: i64,
    /// Per stage (in order): its name and its idle threshold.
    stages: Vec<(String, i64)>,
    threshold_us: i64,
    window_us: i64,
    slow_ms: f64,
    /// Each operation's percentile duration.
    p_ms: std::collections::HashMap<String, f64>,
}

/// What `write` awaits that was started beside it.
struct Besides<'a> {
    durations: &'a mut Beside<std::collections::HashMap<String, OperationDurations>>,
    stats_ps: &'a StatsPs,
    deriver: &'a mut Beside<Deriver>,
}

/// The percentiles the replay selects of each operation's durations, in one set of passes:
/// the model's (for the `slower_than_p95` signal), and the median and p95 of the
/// `operation_stats` table.
struct StatsPs {
    ps: Vec<f64>,
    /// Where the model's, the median and p95 are in `ps`.
    model: usize,
    p50: usize,
    p95: usize,
}

impl StatsPs {
    fn new(model: f64) -> StatsPs {
        let mut ps = vec![model];
        let mut at = |p: f64| match ps.iter().position(|&q| q == p) {
            Some(i) => i,
            None => {
                ps.push(p);
                ps.len() - 1
            }
        };
        let (p50, p95) = (at(0.5), at(0.95));
        StatsPs {
            ps,
            model: 0,
            p50,
            p95,
        }
    }
}

/// The `operation_stats` table: per operation (in name order), its spans, the sum and mean of
/// their durations, their median and p95 (nearest rank), and the model's percentile (the
/// `slower_than_p95` signal's line). A few rows, written whole.
fn write_operation_stats(
    replay: &store::Replay,
    ops: &std::collections::HashMap<String, OperationDurations>,
    ps: &StatsPs,
) -> Result<()> {
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    let mut rows: Vec<(&String, &OperationDurations)> = ops.iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let f64s = |f: &dyn Fn(&OperationDurations) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| f(r.1))))
    };
    let batch = RecordBatch::try_new(
        schema::operation_stats_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.1.spans as i64),
            )),
            f64s(&|d| d.total_ms),
            f64s(&|d| d.total_ms / d.spans as f64),
            f64s(&|d| d.at[ps.p50]),
            f64s(&|d| d.at[ps.p95]),
            f64s(&|d| d.at[ps.model]),
        ],
    )?;
    let p = replay.path(store::OPERATION_STATS);
    let f =
        std::fs::File::create(&p).with_context(|| format!("cannot create '{}'", p.display()))?;
    let mut w = ArrowWriter::try_new(f, batch.schema(), None)?;
    w.write(&batch)?;
    w.close()?;
    Ok(())
}

impl Besides<'_> {
    /// Before the first carts are folded (the sort is done): the rules with the
    /// percentiles, and the deriver handed to the writer; false when the writer has stopped.
    async fn ready(
        &mut self,
        rules: &Rules,
        tx: &crossbeam_channel::Sender<Written>,
    ) -> Result<(Rules, bool)> {
        let model = self.stats_ps.model;
        let full = Rules {
            p_ms: (self.durations.get().await?.iter())
                .map(|(op, d)| (op.clone(), d.at[model]))
                .collect(),
            ..rules.clone()
        };
        let d = Box::new(self.deriver.get().await?.again());
        Ok((full, tx.send(Written::Deriver(d)).is_ok()))
    }
}

/// A result computed on the runtime's threads beside the replay's own queries, and awaited
/// where it is first needed. One that fails beside them (its queries share the memory the
/// replay may use) is computed again alone, as before they ran beside it; only that
/// second failure is the replay's.
struct Beside<T> {
    task: Option<tokio::task::JoinHandle<Result<T>>>,
    value: Option<T>,
    make: Box<dyn Fn() -> futures::future::BoxFuture<'static, Result<T>> + Send>,
}

impl<T: Send + 'static> Beside<T> {
    fn start<F, Fut>(make: F) -> Beside<T>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        Beside {
            task: Some(tokio::spawn(make())),
            value: None,
            make: Box::new(move || Box::pin(make())),
        }
    }

    async fn get(&mut self) -> Result<&T> {
        if self.value.is_none() {
            let beside = match self.task.take() {
                Some(task) => task.await.ok().and_then(Result::ok),
                None => None,
            };
            let v = match beside {
                Some(v) => v,
                None => (self.make)().await?,
            };
            self.value = Some(v);
        }
        Ok(self.value.as_ref().expect("set above"))
    }
}

impl<T> Drop for Beside<T> {
    /// A replay that stops early stops what it started beside it.
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// One cart's events, folded in (end_time, time, span_id) order, so the last value seen is
/// the latest. Strings are borrowed from the `cart_events` batches.
#[derive(Default)]
struct Cart<'a> {
    id: &'a str,
    first_seen: Option<i64>,
    last_activity: Option<i64>,
    stage_order: Option<i64>,
    user_id: Option<&'a str>,
    item_count: Option<i64>,
    total_value: Option<f64>,
    /// The sum of its lines' values (price x quantity), when some event records a price.
    lines_value: Option<f64>,
    /// Some line (a stage's event with a product id) records no price: the sum of the
    /// lines is not the cart's value.
    unpriced_line: bool,
    last_operation: Option<&'a str>,
    last_op_duration_ms: Option<f64>,
    last_op_status: Option<&'a str>,
    last_trace_id: Option<&'a str>,
    converted: bool,
    span_count: i64,
    /// (time, end_time, span_id) of every event, to replay them in start order.
    starts: Vec<(Option<i64>, Option<i64>, Option<&'a str>)>,
    /// End times of the failed events.
    error_ends: Vec<i64>,
    /// (trace, operation) of every event: one twice is a retry. A cart has a few events,
    /// so a list sorted at the end (a hash map per cart was 3% of a raw 100k-cart detect).
    attempts: Vec<(Option<&'a str>, Option<&'a str>)>,
}

/// The carts table's columns, built row by row.
#[derive(Default)]
struct CartColumns {
    cart_id: StringBuilder,
    user_id: StringBuilder,
    first_seen: Vec<Option<i64>>,
    last_activity: Vec<Option<i64>>,
    last_stage: StringBuilder,
    item_count: Vec<Option<i64>>,
    total_value: Vec<Option<f64>>,
    outcome: StringBuilder,
    abandoned_at: Vec<Option<i64>>,
    last_operation: StringBuilder,
    last_op_duration_ms: Vec<Option<f64>>,
    last_op_status: StringBuilder,
    last_trace_id: StringBuilder,
    suspected_cause: StringBuilder,
    span_count: Vec<i64>,
    signals: ListBuilder<StringBuilder>,
    /// Carts with a success event so far (not a column; `take` keeps it).
    converting: u64,
}

impl Cart<'_> {
    /// Judges the cart and appends its row.
    fn finish(mut self, r: &Rules, out: &mut CartColumns) {
        out.converting += u64::from(self.converted);
        // Came back: an event starting at least the threshold after every earlier event
        // (in start order) had ended. Nulls sort last, as in SQL.
        self.starts.sort_by(|a, b| {
            (a.0.is_none(), a.0, a.1.is_none(), a.1, a.2.is_none(), a.2).cmp(&(
                b.0.is_none(),
                b.0,
                b.1.is_none(),
                b.1,
                b.2.is_none(),
                b.2,
            ))
        });
        let mut prev_end: Option<i64> = None;
        let mut came_back = false;
        for (time, end, _) in &self.starts {
            if let (Some(t), Some(p)) = (time, prev_end) {
                if *t >= p.saturating_add(r.threshold_us) {
                    came_back = true;
                }
            }
            if let Some(e) = end {
                prev_end = Some(prev_end.map_or(*e, |p| p.max(*e)));
            }
        }
        let stage = self
            .stage_order
            .and_then(|o| usize::try_from(o - 1).ok())
            .and_then(|i| r.stages.get(i));
        let threshold_us = stage.map_or(r.threshold_us, |s| s.1);
        let outcome = if self.converted && came_back {
            "recovered"
        } else if self.converted {
            "converted"
        } else if self
            .last_activity
            .is_some_and(|l| r.as_of_us.saturating_sub(l) >= threshold_us)
        {
            "abandoned"
        } else if came_back {
            "recovered"
        } else {
            "active"
        };
        let abandoned = outcome == "abandoned";
        let cause = if !abandoned {
            None
        } else if self.last_op_duration_ms.is_some_and(|d| d > r.slow_ms) {
            Some("slow_response")
        } else if self.last_op_status == Some("error") {
            Some("error")
        } else {
            None
        };
        let slow = match (&self.last_operation, self.last_op_duration_ms) {
            (Some(op), Some(d)) => r.p_ms.get(*op).is_some_and(|p| d > *p),
            _ => false,
        };
        let error_before_idle = self.last_activity.is_some_and(|l| {
            self.error_ends
                .iter()
                .any(|e| *e >= l.saturating_sub(r.window_us))
        });
        self.attempts.sort_unstable();
        let retry = self.attempts.windows(2).any(|w| w[0] == w[1]);

        out.cart_id.append_value(self.id);
        out.user_id.append_option(self.user_id);
        out.first_seen.push(self.first_seen);
        out.last_activity.push(self.last_activity);
        out.last_stage.append_option(stage.map(|s| s.0.as_str()));
        out.item_count.push(self.item_count);
        // A value recorded as such wins; else the lines the cart's events record add up to
        // it, when every line records its price (the report estimates the others).
        let lines = self.lines_value.filter(|_| !self.unpriced_line);
        out.total_value.push(self.total_value.or(lines));
        out.outcome.append_value(outcome);
        out.abandoned_at.push(
            self.last_activity
                .filter(|_| abandoned)
                .map(|l| l.saturating_add(threshold_us)),
        );
        out.last_operation.append_option(self.last_operation);
        out.last_op_duration_ms.push(self.last_op_duration_ms);
        out.last_op_status.append_option(self.last_op_status);
        out.last_trace_id.append_option(self.last_trace_id);
        out.suspected_cause.append_option(cause);
        out.span_count.push(self.span_count);
        for (on, name) in [
            (slow, "slower_than_p95"),
            (error_before_idle, "error_before_idle"),
            (retry, "retry"),
        ] {
            if on {
                out.signals.values().append_value(name);
            }
        }
        out.signals.append(true);
    }
}

/// One batch of `cart_events`, its columns in the types the fold reads.
struct EventColumns {
    cart: StringArray,
    time: TimestampMicrosecondArray,
    end: TimestampMicrosecondArray,
    order: Int64Array,
    op: StringArray,
    trace: StringArray,
    span: StringArray,
    dur: Float64Array,
    status: StringArray,
    message: StringArray,
    user: StringArray,
    items: Int64Array,
    value: Float64Array,
    line: Float64Array,
    product: StringArray,
    success: BooleanArray,
}

impl EventColumns {
    /// The columns of `cart_events` the fold reads, as `new` reads them.
    const READ: [&'static str; 16] = [
        "cart_id",
        "time",
        "end_time",
        "stage_order",
        "operation",
        "trace_id",
        "span_id",
        "duration_ms",
        "status_code",
        "status_message",
        "user_id",
        "item_count",
        "total_value",
        "line_value",
        "product_id",
        "is_success",
    ];

    fn new(b: &RecordBatch) -> Result<EventColumns> {
        use datafusion::arrow::compute::cast;
        use datafusion::arrow::datatypes::{DataType, TimeUnit};
        let col = |name: &str, to: &DataType| -> Result<ArrayRef> {
            let c = b
                .column_by_name(name)
                .with_context(|| format!("cart_events has no {name}"))?;
            Ok(cast(c, to)?)
        };
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        let text = |name: &str| -> Result<StringArray> {
            Ok(col(name, &DataType::Utf8)?.as_string::<i32>().clone())
        };
        let int = |name: &str| -> Result<Int64Array> {
            Ok(col(name, &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .clone())
        };
        let float = |name: &str| -> Result<Float64Array> {
            Ok(col(name, &DataType::Float64)?
                .as_primitive::<Float64Type>()
                .clone())
        };
        Ok(EventColumns {
            cart: text("cart_id")?,
            time: col("time", &ts)?
                .as_primitive::<TimestampMicrosecondType>()
                .clone(),
            end: col("end_time", &ts)?
                .as_primitive::<TimestampMicrosecondType>()
                .clone(),
            order: int("stage_order")?,
            op: text("operation")?,
            trace: text("trace_id")?,
            span: text("span_id")?,
            dur: float("duration_ms")?,
            status: text("status_code")?,
            message: text("status_message")?,
            user: text("user_id")?,
            items: int("item_count")?,
            value: float("total_value")?,
            line: float("line_value")?,
            product: text("product_id")?,
            success: col("is_success", &DataType::Boolean)?.as_boolean().clone(),
        })
    }
}

fn text_at(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn opt<T: Array>(a: &T, i: usize) -> Option<usize> {
    a.is_valid(i).then_some(i)
}

impl<'a> Cart<'a> {
    /// Adds one event (the cart's events come in (end_time, time, span_id) order).
    fn add(&mut self, c: &'a EventColumns, i: usize) {
        let t = opt(&c.time, i).map(|i| c.time.value(i));
        let e = opt(&c.end, i).map(|i| c.end.value(i));
        let order = opt(&c.order, i).map(|i| c.order.value(i));
        self.first_seen = match (self.first_seen, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_activity = match (self.last_activity, e) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.stage_order = match (self.stage_order, order) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(u) = text_at(&c.user, i) {
            self.user_id = Some(u);
        }
        if let Some(j) = opt(&c.items, i) {
            self.item_count = Some(c.items.value(j));
        }
        if let Some(j) = opt(&c.value, i) {
            self.total_value = Some(c.value.value(j));
        }
        if let Some(j) = opt(&c.line, i) {
            self.lines_value = Some(self.lines_value.unwrap_or(0.0) + c.line.value(j));
        } else if order.is_some() && c.product.is_valid(i) {
            self.unpriced_line = true;
        }
        let (op, status, trace) = (
            text_at(&c.op, i),
            text_at(&c.status, i),
            text_at(&c.trace, i),
        );
        self.last_operation = op;
        self.last_op_duration_ms = opt(&c.dur, i).map(|i| c.dur.value(i));
        self.last_op_status = status;
        self.last_trace_id = trace;
        self.converted |= c.success.is_valid(i) && c.success.value(i);
        self.span_count += 1;
        self.starts.push((t, e, text_at(&c.span, i)));
        if let (Some("error"), Some(e)) = (status, e) {
            self.error_ends.push(e);
        }
        self.attempts.push((trace, op));
    }
}

/// The sort order the fold reads `cart_events` in: each cart's events together, ordered
/// by end_time, time and span_id (nulls last), then trace_id so that the order is total.
pub const EVENT_ORDER: &str = "cart_id, end_time ASC NULLS LAST, time ASC NULLS LAST, \
     span_id ASC NULLS LAST, trace_id ASC NULLS LAST";

/// Folds `cart_events` rows, sorted in `EVENT_ORDER`, into one `carts` row per cart,
/// appended to `out`. The batches hold whole carts (a cart's rows may run across them).
/// Returns the rows kept (each span of a cart once; see `dedupe_cart`) as (batch, row),
/// and how many repeats were dropped.
fn fold_sorted(
    batches: &[RecordBatch],
    r: &Rules,
    out: &mut CartColumns,
) -> Result<(Vec<(usize, usize)>, u64)> {
    let cols = batches
        .iter()
        .map(EventColumns::new)
        .collect::<Result<Vec<_>>>()?;
    // cart_events has no row without a cart.
    let rows: Vec<(usize, usize)> = cols
        .iter()
        .enumerate()
        .flat_map(|(bi, c)| {
            (0..c.cart.len())
                .filter(|&i| c.cart.is_valid(i))
                .map(move |i| (bi, i))
        })
        .collect();
    let cart_of = |&(bi, i): &(usize, usize)| cols[bi].cart.value(i);
    let mut kept = Vec::with_capacity(rows.len());
    let mut keep = Vec::new();
    let mut dropped = 0;
    for group in rows.chunk_by(|a, b| cart_of(a) == cart_of(b)) {
        dropped += dedupe_cart(group, &cols, &mut keep);
        let mut cart = Cart {
            id: cart_of(&group[0]),
            ..Cart::default()
        };
        for (&(bi, i), k) in group.iter().zip(&keep) {
            if *k {
                kept.push((bi, i));
                cart.add(&cols[bi], i);
            }
        }
        cart.finish(r, out);
    }
    Ok((kept, dropped))
}

impl CartColumns {
    fn len(&self) -> usize {
        self.span_count.len()
    }

    /// The rows appended so far as a `carts` batch; the builders start again empty.
    fn take(&mut self) -> Result<RecordBatch> {
        let ts = |v: Vec<Option<i64>>| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
        };
        let o = self;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(o.cart_id.finish()),
            Arc::new(o.user_id.finish()),
            ts(std::mem::take(&mut o.first_seen)),
            ts(std::mem::take(&mut o.last_activity)),
            Arc::new(o.last_stage.finish()),
            Arc::new(Int64Array::from(std::mem::take(&mut o.item_count))),
            Arc::new(Float64Array::from(std::mem::take(&mut o.total_value))),
            Arc::new(o.outcome.finish()),
            ts(std::mem::take(&mut o.abandoned_at)),
            Arc::new(o.last_operation.finish()),
            Arc::new(Float64Array::from(std::mem::take(
                &mut o.last_op_duration_ms,
            ))),
            Arc::new(o.last_op_status.finish()),
            Arc::new(o.last_trace_id.finish()),
            Arc::new(o.suspected_cause.finish()),
            Arc::new(Int64Array::from(std::mem::take(&mut o.span_count))),
            Arc::new(o.signals.finish()),
        ];
        Ok(RecordBatch::try_new(schema::carts_schema(), cols)?)
    }
}

/// The data's latest plausible time (the default as-of time) and, if there are any, a
/// warning naming the rows stamped outside `PLAUSIBLE_US`: both from one look at each time
/// column's bounds. When the data is `datasets` (nothing else), both are kept beside them
/// and read back while the datasets are unchanged (`store::times_file`).
pub async fn data_times(
    ctx: &SessionContext,
    datasets: &[std::path::PathBuf],
) -> Result<(Option<Timestamp>, Option<String>)> {
    let kept = store::times_file(datasets);
    if let Some(found) = kept.as_deref().and_then(store::read_times) {
        return Ok(found);
    }
    let b = time_bounds(ctx).await?;
    let latest = latest_timestamp(ctx, &b).await?;
    let warning = implausible_times(ctx, &b).await?;
    if let Some(file) = kept {
        store::write_times(&file, latest, warning.as_deref());
    }
    Ok((latest, warning))
}

/// The default as-of time: the latest timestamp of the spans, span events and metric points
/// in the data (of the log records when there is nothing else).
///
/// When every time column's largest value is plausible (`PLAUSIBLE_US`), that is the answer,
/// and an ingested dataset gives it from its Parquet statistics without reading a row (on
/// the 1M-cart dataset, 0.3 s of every `query` before); else the plausible times are scanned.
async fn latest_timestamp(ctx: &SessionContext, b: &TimeBounds) -> Result<Option<Timestamp>> {
    let (lo, hi) = PLAUSIBLE_US;
    let latest = if [b.end_time, b.event, b.point]
        .iter()
        .all(|(_, max)| max.is_none_or(|m| m < hi))
    {
        [b.end_time.1, b.event.1, b.point.1]
            .into_iter()
            .flatten()
            .filter(|&m| m >= lo)
            .max()
    } else {
        let sql = format!(
            "SELECT max(t) FROM (
            SELECT CAST(max(end_time) AS BIGINT) AS t FROM observed_traces
                WHERE CAST(end_time AS BIGINT) >= {lo} AND CAST(end_time AS BIGINT) < {hi}
            UNION ALL SELECT CAST(max(timestamp) AS BIGINT) FROM span_events
                WHERE CAST(timestamp AS BIGINT) >= {lo} AND CAST(timestamp AS BIGINT) < {hi}
            UNION ALL SELECT CAST(max(timestamp) AS BIGINT) FROM observed_metrics
                WHERE CAST(timestamp AS BIGINT) >= {lo} AND CAST(timestamp AS BIGINT) < {hi})"
        );
        scalar_i64(ctx, &sql).await?
    };
    // Log records only when nothing else has a time (an export of logs alone): a log line
    // written after the last span says nothing about the carts' clock.
    let latest = match latest {
        Some(t) => Some(t),
        None => {
            scalar_i64(
                ctx,
                &format!(
                    "SELECT CAST(max(timestamp) AS BIGINT) FROM logs
                     WHERE CAST(timestamp AS BIGINT) >= {lo} AND CAST(timestamp AS BIGINT) < {hi}"
                ),
            )
            .await?
        }
    };
    Ok(latest
        .and_then(|us| us.checked_mul(1000))
        .map(Timestamp::from_ns))
}

/// The smallest and largest value (microseconds) of each time column of the input.
struct TimeBounds {
    start_time: (Option<i64>, Option<i64>),
    end_time: (Option<i64>, Option<i64>),
    event: (Option<i64>, Option<i64>),
    point: (Option<i64>, Option<i64>),
}

impl TimeBounds {
    /// Whether every time is plausible: then no row needs a look.
    fn plausible(&self) -> bool {
        let (lo, hi) = PLAUSIBLE_US;
        [self.start_time, self.end_time, self.event, self.point]
            .iter()
            .all(|(min, max)| min.is_none_or(|m| m >= lo) && max.is_none_or(|m| m < hi))
    }
}

/// Each time column's bounds: plain min and max, which DataFusion answers from the Parquet
/// statistics of an ingested dataset, and from a scan of the column otherwise.
async fn time_bounds(ctx: &SessionContext) -> Result<TimeBounds> {
    let sql = "SELECT CAST(min(start_time) AS BIGINT), CAST(max(start_time) AS BIGINT),
                      CAST(min(end_time) AS BIGINT), CAST(max(end_time) AS BIGINT),
                      (SELECT CAST(min(timestamp) AS BIGINT) FROM span_events),
                      (SELECT CAST(max(timestamp) AS BIGINT) FROM span_events),
                      (SELECT CAST(min(timestamp) AS BIGINT) FROM observed_metrics),
                      (SELECT CAST(max(timestamp) AS BIGINT) FROM observed_metrics)
               FROM observed_traces";
    let batches = ctx.sql(sql).await?.collect().await?;
    let b = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .context("the time bounds query returned no row")?;
    let at = |i: usize| -> Option<i64> {
        let a = b.column(i).as_primitive_opt::<Int64Type>()?;
        a.is_valid(0).then(|| a.value(0))
    };
    Ok(TimeBounds {
        start_time: (at(0), at(1)),
        end_time: (at(2), at(3)),
        event: (at(4), at(5)),
        point: (at(6), at(7)),
    })
}

/// Timestamps outside [2000-01-01, 2200-01-01), in microseconds, are taken for a wrong clock
/// or a corrupt value (OTLP allows any u64 of nanoseconds, up to the year 2554): rows keep
/// them, but the default as-of time is not taken from them, and they are reported.
pub const PLAUSIBLE_US: (i64, i64) = (946_684_800_000_000, 7_258_118_400_000_000);

/// A warning naming the rows whose times are outside `PLAUSIBLE_US`, if there are any.
async fn implausible_times(ctx: &SessionContext, b: &TimeBounds) -> Result<Option<String>> {
    if b.plausible() {
        return Ok(None);
    }
    let (lo, hi) = PLAUSIBLE_US;
    let out = |c: &str| format!("(CAST({c} AS BIGINT) < {lo} OR CAST({c} AS BIGINT) >= {hi})");
    let sql = format!(
        "SELECT what, n, example, CAST(t AS BIGINT) FROM (
            SELECT 'span' AS what, count(*) AS n, min(trace_id || '/' || span_id) AS example,
                   max(CASE WHEN {se} THEN start_time ELSE end_time END) AS t
            FROM observed_traces WHERE {se} OR {ee}
            UNION ALL
            SELECT 'span event', count(*), min(trace_id || '/' || span_id), max(timestamp)
            FROM span_events WHERE {ev}
            UNION ALL
            SELECT 'metric point', count(*), min(name), max(timestamp)
            FROM observed_metrics WHERE {mt}) WHERE n > 0",
        se = out("start_time"),
        ee = out("end_time"),
        ev = out("timestamp"),
        mt = out("timestamp"),
    );
    let mut parts = Vec::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        use datafusion::arrow::compute::cast;
        use datafusion::arrow::datatypes::DataType;
        let what = cast(b.column(0), &DataType::Utf8)?;
        let n = cast(b.column(1), &DataType::Int64)?;
        let ex = cast(b.column(2), &DataType::Utf8)?;
        let t = cast(b.column(3), &DataType::Int64)?;
        let (what, n, ex, t) = (
            what.as_string::<i32>(),
            n.as_primitive::<Int64Type>(),
            ex.as_string::<i32>(),
            t.as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            let when = if t.is_valid(i) {
                crate::time::format_micros(t.value(i))
            } else {
                "no time".into()
            };
            parts.push(format!(
                "{} {}{} (e.g. {}, at {when})",
                n.value(i),
                what.value(i),
                if n.value(i) == 1 { "" } else { "s" },
                if ex.is_valid(i) { ex.value(i) } else { "?" },
            ));
        }
    }
    Ok((!parts.is_empty()).then(|| {
        format!(
            "{} stamped outside 2000-2200: kept, but not taken for the data's latest time (the default --as-of); check the exporter's clock",
            parts.join(", ")
        )
    }))
}

/// Runs the replay, or finds it kept beside the dataset, and registers `carts`,
/// `cart_events`, `abandonments`, `cart_exemplars`, `cart_logs`, `operation_stats` and its
/// derived rows (`derived_traces`, `derived_metrics`, seen through the `traces` and `metrics`
/// views). Of a replay that is
/// not kept, only what `ReplayOptions::reads` names: without the events, `cart_events`,
/// `cart_exemplars` and `cart_logs` are not registered; without the derived rows, their
/// tables are empty.
pub async fn run(ctx: &SessionContext, m: &Model, opts: &ReplayOptions) -> Result<Summary> {
    let threshold = opts.threshold.unwrap_or(m.threshold);
    let key = if opts.keep_beside.is_empty() {
        None
    } else {
        Some(store::Key::new(
            &opts.keep_beside,
            m,
            threshold,
            opts.as_of,
        )?)
    };
    // A kept replay found damaged is replaced, as --refresh replaces one.
    let mut damaged = false;
    if let (Some(k), false) = (&key, opts.refresh) {
        if let Some(found) = store::Replay::find(&opts.keep_beside, k) {
            // A damaged replay is replayed again, as a missing one is.
            let whole = found.summary::<Summary>().and_then(|s| {
                for f in store::FILES {
                    crate::sql::session::parquet_schema(&found.path(f))?;
                }
                Ok(s)
            });
            match whole {
                Ok(summary) => {
                    // A kept replay is always written with its events.
                    register(ctx, m, &found.dir, true).await?;
                    return Ok(summary);
                }
                Err(e) => {
                    eprintln!("cartscope: note: replaying again: {e:#}");
                    damaged = true;
                }
            }
        }
    }
    crate::sql::session::note_one_partition(ctx);
    let replay = store::Replay::begin(ctx, &opts.keep_beside, key)?;
    let target = Target {
        replay: &replay,
        events: opts.reads.events() || replay.kept(),
    };
    let as_of_us = opts.as_of.micros();
    let threshold_us = threshold.micros();
    // The operations' percentiles are needed once the first carts are folded: they are
    // computed while the cart events are joined and sorted, on what those leave of the cores
    // (alone, they were a twentieth of a raw 100k-cart detect, on one core).
    let stats_ps = StatsPs::new(m.causes.percentile);
    let mut durations = Beside::start({
        let (ctx, ps) = (ctx.clone(), stats_ps.ps.clone());
        move || {
            let (ctx, ps) = (ctx.clone(), ps.clone());
            async move { durations_at(&ctx, DURATIONS_SQL, &ps).await }
        }
    });
    let rules = Rules {
        as_of_us,
        stages: m
            .stages
            .iter()
            .map(|s| {
                let thr = s.threshold.map_or(threshold_us, Duration::micros);
                (s.name.clone(), thr)
            })
            .collect(),
        threshold_us,
        window_us: m.causes.error_window.micros(),
        slow_ms: m.causes.slow_ms,
        p_ms: Default::default(),
    };
    // Which carts the input recorded as abandoned already: read beside the join and sort
    // too, and handed to the writer with the first carts.
    let mut deriver = Beside::start({
        let (ctx, m, build) = (
            ctx.clone(),
            m.clone(),
            opts.reads.derived() || replay.kept(),
        );
        move || {
            let (ctx, m) = (ctx.clone(), m.clone());
            async move { Deriver::new(&ctx, &m, build).await }
        }
    });
    // How the model fits the spans (for the warnings at the end): beside too.
    let mut fit = Beside::start({
        let (ctx, m) = (ctx.clone(), m.clone());
        move || {
            let (ctx, m) = (ctx.clone(), m.clone());
            async move { span_fit(&ctx, &m).await }
        }
    });
    crate::output::phase(
        "replay: started beside: percentiles, recorded abandonments, the model's fit to the spans",
    );
    let spans = scalar_i64(ctx, "SELECT count(*) FROM observed_traces")
        .await?
        .unwrap_or(0)
        .max(0) as u64;
    // Past the memory it may use, the replay tries again more frugally: each way in turn,
    // with the note of why.
    let (hash_join, partitions) = crate::sql::session::joins(ctx);
    let limit = crate::output::human_bytes(crate::sql::session::memory_limit() as u64);
    let mut ways: Vec<(Way, String)> = Vec::new();
    if !m.keys.session_id.is_empty() {
        // Spans joined to carts by their session as well: one query, sorted whole. A hash
        // join holds its table of every cart trace whole and cannot spill: past it, a
        // sort-merge join, which sorts both sides (sorts spill), and which DataFusion plans
        // only across two partitions or more. Side by side, one partition's sort can hold
        // what another's merge needs: past that, one partition.
        ways.push((
            Way::Whole {
                hash: hash_join,
                parts: partitions,
            },
            String::new(),
        ));
        ways.push((
            Way::Whole { hash: false, parts: partitions.max(2) },
            format!("the spans' join to their carts did not fit in the memory the replay may use ({limit}): joining by sorting instead, which spills to disk"),
        ));
        ways.push((
            Way::Whole { hash: hash_join, parts: 1 },
            format!("the replay's sorts did not fit side by side in the memory it may use ({limit}): sorting one at a time instead"),
        ));
    } else {
        // Whole when a sort of every cart event fits in a pass's share of the memory, else
        // in passes; but a pass must hold a batch of events (under about 8 MB, thousands
        // of passes of a few rows each would take hours): then whole or not at all.
        let passes_fit = Passes::budget() / EVENT_ROW_BYTES >= PASS_ROWS_AT_LEAST;
        if Passes::needed(spans, EVENT_ROW_BYTES, 1) <= 1 || !passes_fit {
            ways.push((
                Way::Whole {
                    hash: hash_join,
                    parts: partitions,
                },
                String::new(),
            ));
        }
        for more in [1, 2, 4].into_iter().filter(|_| passes_fit) {
            let note = match (more, ways.is_empty()) {
                (1, true) => String::new(),
                (1, false) => format!("the replay did not fit in the memory it may use ({limit}): replaying in passes over ranges of carts instead"),
                _ => format!("a pass of the replay did not fit in the memory it may use ({limit}): replaying again in {more} times as many passes"),
            };
            ways.push((Way::Passes { more }, note));
        }
    }
    let set = |hash: bool, parts: usize| crate::sql::session::set_joins(ctx, (hash, parts));
    let mut outcome = None;
    for (way, note) in ways {
        if !note.is_empty() {
            eprintln!("cartscope: note: {note}");
        }
        match way {
            Way::Whole { hash, parts } => set(hash, parts),
            // Each pass fits its share of the memory: every core.
            Way::Passes { .. } => set(true, crate::sql::session::threads(ctx)),
        }
        let beside = Besides {
            durations: &mut durations,
            stats_ps: &stats_ps,
            deriver: &mut deriver,
        };
        let r = write(ctx, m, &rules, beside, way, spans, &target).await;
        let done = !matches!(&r, Err(e) if crate::sql::session::exhausted(e));
        outcome = Some(r);
        if done {
            break;
        }
    }
    // Later queries keep the join that worked, on every partition.
    let worked = ctx.copied_config().options().optimizer.prefer_hash_join;
    set(worked, partitions);
    let (mut summary, converting) = match outcome {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Err(crate::sql::session::out_of_memory(e, "the replay")),
        None => anyhow::bail!("the replay was not attempted"),
    };
    summary.as_of = opts.as_of;
    summary.threshold = threshold;
    write_operation_stats(&replay, durations.get().await?, &stats_ps)?;
    crate::output::phase("replay: written");
    register(ctx, m, &replay.dir, target.events).await?;
    let fit = fit.get().await?;
    summary.warnings = misfits(ctx, m, &summary, converting, fit).await?;
    crate::output::phase("replay: misfits");
    let written = replay.dir.clone();
    let dir = replay.commit(&summary, opts.refresh || damaged)?;
    if dir != written {
        // The replay kept under its key (its pending folder renamed, or another process's
        // committed first): kept replays always have their events.
        register(ctx, m, &dir, true).await?;
    }
    crate::output::phase("replay: committed");
    Ok(summary)
}

/// Where the replay is written, and whether its cart events are (`ReplayOptions::reads`).
struct Target<'a> {
    replay: &'a store::Replay,
    events: bool,
}

/// What the fold hands the writer thread: first the deriver, then the rows.
enum Written {
    Deriver(Box<Deriver>),
    Events(RecordBatch),
    Carts(RecordBatch),
}

/// Carts per `carts` batch written (and derived from) at a time.
const CART_CHUNK: usize = 16 * 1024;

/// The replay's Parquet files, written as the fold goes.
struct Writers {
    /// None when the replay's cart events are not written (`ReplayOptions::reads`).
    events: Option<ArrowWriter<std::fs::File>>,
    carts: ArrowWriter<std::fs::File>,
    derived: PerTable<Option<ArrowWriter<std::fs::File>>>,
}

impl Writers {
    fn new(r: &store::Replay, events: Option<SchemaRef>) -> Result<Writers> {
        let open = |name: &str, schema: SchemaRef| -> Result<ArrowWriter<std::fs::File>> {
            let p = r.path(name);
            let f = std::fs::File::create(&p)
                .with_context(|| format!("cannot create '{}'", p.display()))?;
            // Small row groups: a writer holds one in memory, and readers split on them.
            let mut props =
                WriterProperties::builder().set_max_row_group_row_count(Some(64 * 1024));
            if r.kept() {
                props = props.set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?));
                // Ids are all different: a dictionary only costs (interning was 5% of a
                // 100k-cart detect's samples).
                for c in ["cart_id", "trace_id", "span_id", "user_id", "last_trace_id"] {
                    props = props.set_column_dictionary_enabled(c.into(), false);
                }
            } else {
                // Read once, by this session: neither compressed nor dictionary-encoded
                // (together 12% of a raw 100k-cart detect's samples, bench/RESULTS.md).
                props = props
                    .set_compression(Compression::UNCOMPRESSED)
                    .set_dictionary_enabled(false);
            }
            let props = props.build();
            Ok(ArrowWriter::try_new(f, schema, Some(props))?)
        };
        let mut derived = PerTable::default();
        derived[Table::Traces] = Some(open(store::DERIVED_TRACES, Table::Traces.schema())?);
        derived[Table::Metrics] = Some(open(store::DERIVED_METRICS, Table::Metrics.schema())?);
        Ok(Writers {
            events: events.map(|e| open(store::CART_EVENTS, e)).transpose()?,
            carts: open(store::CARTS, schema::carts_schema())?,
            derived,
        })
    }

    /// Writes a batch of carts and the rows derived from them.
    fn carts(&mut self, carts: &RecordBatch, deriver: &mut Deriver) -> Result<()> {
        self.carts.write(carts)?;
        deriver.push(carts);
        for (table, batches) in deriver.take() {
            if let Some(w) = &mut self.derived[table] {
                for b in batches {
                    w.write(&b)?;
                }
            }
        }
        Ok(())
    }

    fn close(self) -> Result<()> {
        if let Some(e) = self.events {
            e.close()?;
        }
        self.carts.close()?;
        for w in self.derived.into_values().flatten() {
            w.close()?;
        }
        Ok(())
    }
}

/// Where the last cart of a sorted batch starts.
fn last_cart_start(cart: &StringArray) -> usize {
    let n = cart.len();
    let last = text_at(cart, n - 1);
    (0..n)
        .rev()
        .take_while(|&i| text_at(cart, i) == last)
        .last()
        .unwrap_or(0)
}

/// How the replay gets `cart_events` in cart order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Way {
    /// One query, sorted whole (DataFusion's sort spills past the cap): its join a hash
    /// join or not, in so many partitions.
    Whole { hash: bool, parts: usize },
    /// In passes over ranges of carts (`in_passes`), `more` times as many as estimated.
    Passes { more: usize },
}

/// About how many bytes a `cart_events` row takes in a sort (Arrow, ids as text): what
/// sizes the passes by cart.
const EVENT_ROW_BYTES: usize = 240;
/// The fewest events a pass of the replay may hold: one batch.
const PASS_ROWS_AT_LEAST: usize = 8192;
/// About how many bytes a span takes in a pass by trace: its trace in the table of each
/// trace's cart, and in the grouping that makes it.
const KEYED_ROW_BYTES: usize = 120;
/// The tables of the replay in passes: every span with its event columns, by trace; and
/// every cart event, by cart.
const SPANS_BY_TRACE: &str = "cartscope_replay_spans";
const EVENTS_BY_CART: &str = "cartscope_replay_events";

/// `cart_events` in passes, for exports whose events do not fit a sort in memory. The
/// spans' join to their carts by trace is a Grace hash join: every span is written once,
/// with its event columns and its cart key, to a temporary table in folders by range of
/// trace ids (`SPANS_BY_TRACE`); each range then finds its traces' carts and joins its
/// spans to them, a hash table of one range's traces, and writes the events in folders by
/// range of cart ids (`EVENTS_BY_CART`). The queries returned sort one range of carts each,
/// in cart order: each an in-memory sort of a pass's share of the memory. Ranges come from
/// a sample of the keys (`Passes`), so passes are about equal whatever the ids look like.
async fn in_passes<'a>(
    ctx: &'a SessionContext,
    m: &Model,
    as_of_us: i64,
    columns: &[String],
    spans: u64,
    more: usize,
) -> Result<(Scratch<'a>, Vec<String>)> {
    let (key, key_filter) = cart_key(m);
    let by_trace = Passes::split(
        ctx,
        "SELECT trace_id FROM observed_traces WHERE trace_id IS NOT NULL",
        spans,
        KEYED_ROW_BYTES,
        more,
    )
    .await?;
    crate::output::phase("replay: trace ids sampled");
    let mut scratch = Scratch::new(ctx, "replay", EVENT_ROW_BYTES)?;
    scratch
        .write(
            SPANS_BY_TRACE,
            &format!(
                "SELECT CASE WHEN {key} IS NOT NULL{key_filter} THEN {key} END AS cart_key,
                        CAST(t.end_time AS BIGINT) <= {as_of_us} AS visible, {cols},
                        {pass} AS pass
                 FROM observed_traces t WHERE t.trace_id IS NOT NULL",
                cols = event_columns(m, &attributed_by(m)),
                pass = by_trace.of("t.trace_id"),
            ),
            Some(by_trace.len()),
        )
        .await?;
    scratch.register(SPANS_BY_TRACE).await?;
    crate::output::phase("replay: spans written by trace");
    let keyed = scalar_i64(
        ctx,
        &format!("SELECT count(cart_key) FROM {SPANS_BY_TRACE}"),
    )
    .await?
    .unwrap_or(0)
    .max(0) as u64;
    let by_cart = Passes::split_in(
        ctx,
        &format!("SELECT cart_key FROM {SPANS_BY_TRACE} WHERE cart_key IS NOT NULL"),
        keyed,
        Passes::needed(spans, EVENT_ROW_BYTES, more),
    )
    .await?;
    crate::output::phase(&format!(
        "replay: cart ids sampled, {} passes by trace and {} by cart",
        by_trace.len(),
        by_cart.len()
    ));
    let quoted = |alias: &str| {
        columns
            .iter()
            .filter(|c| *c != "cart_id")
            .map(|c| format!("{alias}\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for k in 0..by_trace.len() {
        scratch
            .write(
                EVENTS_BY_CART,
                &format!(
                    "WITH tc AS (
                         SELECT trace_id, min(cart_key) AS cart_id FROM {SPANS_BY_TRACE}
                         WHERE pass = {k} AND cart_key IS NOT NULL GROUP BY trace_id)
                     SELECT tc.cart_id, {cols}, {pass} AS pass
                     FROM tc JOIN {SPANS_BY_TRACE} s ON s.trace_id = tc.trace_id
                     WHERE s.pass = {k} AND s.visible",
                    cols = quoted("s."),
                    pass = by_cart.of("tc.cart_id"),
                ),
                Some(by_cart.len()),
            )
            .await?;
    }
    scratch.register(EVENTS_BY_CART).await?;
    crate::output::phase("replay: events written by cart");
    let all = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let queries = (0..by_cart.len())
        .map(|j| {
            format!("SELECT {all} FROM {EVENTS_BY_CART} WHERE pass = {j} ORDER BY {EVENT_ORDER}")
        })
        .collect();
    Ok((scratch, queries))
}

/// `b`'s columns as `schema` has them (a table read back from Parquet has text as views).
fn conform(b: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if b.schema().fields() == schema.fields() {
        return Ok(b);
    }
    let same_types = b
        .schema()
        .fields()
        .iter()
        .zip(schema.fields())
        .all(|(a, f)| a.data_type() == f.data_type());
    if same_types {
        // Only nullability differs: a column said never null is checked to hold none.
        return Ok(RecordBatch::try_new(schema.clone(), b.columns().to_vec())?);
    }
    let cols = schema
        .fields()
        .iter()
        .zip(b.columns())
        .map(|(f, c)| datafusion::arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// `schema` with its `cart_id` said never null: `cart_events` has no row without a cart
/// (and a batch that had one would fail to conform), and saying so lets its stored cart_id
/// order serve an ORDER BY (nulls last) and a merge join (nulls first) alike.
fn cart_id_not_null(schema: &SchemaRef) -> Result<SchemaRef> {
    use datafusion::arrow::datatypes::{Field, Schema};
    schema
        .index_of("cart_id")
        .context("cart_events has no cart_id")?;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let f = f.as_ref().clone();
            if f.name() == "cart_id" {
                f.with_nullable(false)
            } else {
                f
            }
        })
        .collect();
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

/// The replay proper: `cart_events` in cart order (`way`), streamed through the fold a few
/// carts at a time, and every table written to `r`'s Parquet files as it goes.
async fn write(
    ctx: &SessionContext,
    m: &Model,
    rules: &Rules,
    mut beside: Besides<'_>,
    way: Way,
    spans: u64,
    to: &Target<'_>,
) -> Result<(Summary, u64)> {
    let (r, events) = (to.replay, to.events);
    use datafusion::arrow::compute::{cast, concat_batches, interleave_record_batch};
    use datafusion::arrow::datatypes::DataType;
    use futures::StreamExt;
    let failed = "the lifecycle model's cart_events query failed";
    // Without the cart_events written, only the columns the fold reads are computed, sorted
    // and merged (not the stage names, how each span was attributed, the line quantities).
    let select = if events {
        "*".to_string()
    } else {
        EventColumns::READ.join(", ")
    };
    let whole = format!(
        "SELECT {select} FROM ({}) ORDER BY {EVENT_ORDER}",
        cart_events_sql(m, rules.as_of_us)
    );
    let plan = ctx
        .sql(&whole)
        .await
        .context(failed)?
        .create_physical_plan()
        .await
        .context(failed)?;
    let events_schema = cart_id_not_null(&plan.schema())?;
    let columns: Vec<String> = events_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    // The queries that give the events, one after the other, and the tables they read.
    let (_scratch, queries) = match way {
        Way::Whole { .. } => (None, vec![whole]),
        Way::Passes { more } => {
            let (scratch, queries) =
                in_passes(ctx, m, rules.as_of_us, &columns, spans, more).await?;
            (Some(scratch), queries)
        }
    };
    // Parquet is encoded on a thread of its own, while the fold reads on: a few batches
    // in flight at most.
    let mut w = Writers::new(r, events.then(|| events_schema.clone()))?;
    let (tx, rx) = crossbeam_channel::bounded::<Written>(4);
    let writer = std::thread::spawn(move || -> Result<Summary> {
        let mut deriver = None;
        for batch in rx {
            match batch {
                Written::Deriver(d) => deriver = Some(d),
                Written::Events(b) => {
                    if let Some(e) = &mut w.events {
                        e.write(&b)?;
                    }
                }
                Written::Carts(c) => {
                    let d = deriver.as_mut().context("the writer has no deriver")?;
                    w.carts(&c, d)?
                }
            }
        }
        w.close()?;
        Ok(deriver.context("the writer has no deriver")?.finish())
    });
    let mut out = CartColumns::default();
    let mut duplicates = 0;
    let mut fold = |batches: &[RecordBatch],
                    out: &mut CartColumns,
                    last: bool,
                    rules: &Rules|
     -> Result<bool> {
        let (kept, dropped) = fold_sorted(batches, rules, out)?;
        duplicates += dropped;
        let mut sent = true;
        if events && dropped == 0 {
            for b in batches {
                sent &= tx.send(Written::Events(b.clone())).is_ok();
            }
        } else if events {
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            let b = interleave_record_batch(&refs, &kept)?;
            sent &= tx.send(Written::Events(b)).is_ok();
        }
        if out.len() >= CART_CHUNK || (last && out.len() > 0) {
            sent &= tx.send(Written::Carts(out.take()?)).is_ok();
        }
        Ok(sent)
    };
    // The queries, read and folded; the writer is joined whatever happens, so that a retry
    // never writes where this attempt's writer still does.
    let read = async {
        // The rules with the percentiles, once the first events have come.
        let mut full: Option<Rules> = None;
        // The rows of the last cart seen, which may go on in the next batch, and its id.
        let mut carry: Option<(RecordBatch, Option<String>)> = None;
        // False once the writer has stopped (on an error, which joining it returns).
        let mut writing = true;
        let (mut spills, mut spilled_bytes) = (0, 0);
        'queries: for sql in &queries {
            let plan = ctx
                .sql(sql)
                .await
                .context(failed)?
                .create_physical_plan()
                .await
                .context(failed)?;
            let mut stream =
                datafusion::physical_plan::execute_stream(plan.clone(), ctx.task_ctx())
                    .context(failed)?;
            while let Some(b) = stream.next().await {
                let b = conform(b.context(failed)?, &events_schema)?;
                if b.num_rows() == 0 {
                    continue;
                }
                let cart = cast(
                    b.column_by_name("cart_id")
                        .context("cart_events has no cart_id")?,
                    &DataType::Utf8,
                )?;
                let cut = last_cart_start(cart.as_string::<i32>());
                let mut done = Vec::with_capacity(2);
                let cart = cart.as_string::<i32>();
                if let Some((c, id)) = carry.take() {
                    if cut == 0 && id.as_deref() == text_at(cart, 0) {
                        carry = Some((concat_batches(&events_schema, [&c, &b])?, id));
                        continue;
                    }
                    done.push(c);
                }
                if cut > 0 {
                    done.push(b.slice(0, cut));
                }
                carry = Some((
                    b.slice(cut, b.num_rows() - cut),
                    text_at(cart, cut).map(str::to_string),
                ));
                if done.is_empty() {
                    continue;
                }
                if full.is_none() {
                    let (r, sent) = beside.ready(rules, &tx).await?;
                    full = Some(r);
                    writing = sent;
                }
                if writing {
                    let rules = full.as_ref().expect("set above");
                    writing = fold(&done, &mut out, false, rules)?;
                }
                if !writing {
                    break 'queries;
                }
            }
            let (n, bytes) = spilled(plan.as_ref());
            spills += n;
            spilled_bytes += bytes;
        }
        if writing {
            let last = carry.map_or_else(Vec::new, |(c, _)| vec![c]);
            let rules = match full {
                Some(r) => r,
                None => beside.ready(rules, &tx).await?.0,
            };
            fold(&last, &mut out, true, &rules)?;
        }
        anyhow::Ok((spills, spilled_bytes))
    }
    .await;
    drop(tx);
    crate::output::phase("replay: cart_events sorted and folded");
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the replay's writer thread panicked"))?;
    // The reading's error first: a retry (`run`'s ways) looks at it.
    let (spills, spilled_bytes) = read?;
    let mut summary = written?;
    if spills > 0 {
        eprintln!(
            "cartscope: note: the replay spilled {} to disk {spills} times to stay within the memory it may use ({}); a larger --memory-limit would save that",
            crate::output::human_bytes(spilled_bytes as u64),
            crate::output::human_bytes(crate::sql::session::memory_limit() as u64)
        );
    }
    summary.duplicate_spans = duplicates;
    Ok((summary, out.converting))
}

/// How often a finished plan's operators spilled, and how many bytes.
fn spilled(plan: &dyn datafusion::physical_plan::ExecutionPlan) -> (usize, usize) {
    let (mut n, mut bytes) = plan.metrics().map_or((0, 0), |m| {
        (m.spill_count().unwrap_or(0), m.spilled_bytes().unwrap_or(0))
    });
    for c in plan.children() {
        let (cn, cb) = spilled(c.as_ref());
        n += cn;
        bytes += cb;
    }
    (n, bytes)
}

/// Registers the replay's tables from the files in `dir`, and the views over them.
///
/// `with_events` says whether the replay wrote its cart events: false only for a temporary
/// replay whose `ReplayOptions::reads` leaves them out, which registers neither them nor the views
/// over them. The caller says so rather than the folder: a kept replay whose events file has
/// gone must fail when it is read, not lose `cart_events` quietly.
async fn register(
    ctx: &SessionContext,
    m: &Model,
    dir: &std::path::Path,
    with_events: bool,
) -> Result<()> {
    let events = dir.join(store::CART_EVENTS);
    // A table left by an earlier replay in this session never stands in for this one's.
    ctx.deregister_table("cart_events")?;
    let events = if with_events {
        Some((
            "cart_events",
            store::CART_EVENTS,
            crate::sql::session::parquet_schema(&events)?,
            Some("cart_id"),
        ))
    } else {
        None
    };
    let tables = events.into_iter().chain([
        // In cart_id order, as the fold wrote it: `ORDER BY cart_id` then costs nothing.
        (
            "carts",
            store::CARTS,
            schema::carts_schema(),
            Some("cart_id"),
        ),
        (
            "derived_traces",
            store::DERIVED_TRACES,
            Table::Traces.schema(),
            None,
        ),
        (
            "derived_metrics",
            store::DERIVED_METRICS,
            Table::Metrics.schema(),
            None,
        ),
        (
            "operation_stats",
            store::OPERATION_STATS,
            schema::operation_stats_schema(),
            Some("operation_name"),
        ),
    ]);
    for (name, file, schema, sorted) in tables {
        let t = crate::sql::session::parquet_table(&[dir.join(file)], schema, sorted)?;
        ctx.deregister_table(name)?;
        ctx.register_table(name, t)?;
    }
    ctx.deregister_table("stages")?;
    register_stages(ctx, m).await?;
    for view in ["abandonments", "cart_exemplars", "cart_logs"] {
        ctx.deregister_table(view)?;
    }
    ctx.sql("CREATE VIEW abandonments AS SELECT *, outcome = 'recovered' AS recovered FROM carts WHERE outcome IN ('abandoned', 'recovered')")
        .await?;
    if !with_events {
        return crate::sql::session::present(ctx).await;
    }
    ctx.sql("CREATE VIEW cart_exemplars AS SELECT e.*, c.cart_id FROM exemplars e JOIN (SELECT DISTINCT trace_id, cart_id FROM cart_events) c ON e.trace_id = c.trace_id")
        .await?;
    // A log record is the cart's when it was written in one of the cart's traces: every span
    // of such a trace is the cart's, so the trace id decides and the span id points at the
    // span within it. Records without a trace id belong to no cart.
    ctx.sql("CREATE VIEW cart_logs AS SELECT c.cart_id, l.* FROM logs l JOIN (SELECT DISTINCT trace_id, cart_id FROM cart_events) c ON l.trace_id = c.trace_id")
        .await?;
    crate::sql::session::present(ctx).await?;
    Ok(())
}

/// Above this share, "most" spans or carts: a model that fits leaves few of either.
const MOST: f64 = 0.5;

/// The single value of a one-row query with one BIGINT column; `None` when it is null.
async fn scalar_i64(ctx: &SessionContext, sql: &str) -> Result<Option<i64>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok(batches
        .first()
        .and_then(|b| b.column(0).as_primitive_opt::<Int64Type>().cloned())
        .and_then(|a| (!a.is_empty() && a.is_valid(0)).then(|| a.value(0))))
}

/// What the misfit warning about carts of one span says of them (the report adds that
/// sampled traces explain it too).
pub const SINGLE_SPAN: &str = "have a single span";

/// How the model's stages and keys fit the spans, for `misfits`: one pass over
/// `observed_traces`, grouped by span name, whether the span carries a cart or user key and
/// whether any stage matches it, with each stage's matches summed alongside. It needs no
/// cart, so it runs beside the whole replay (started with the percentiles, awaited once the
/// carts are written).
#[derive(Debug, Clone, Default)]
struct SpanFit {
    /// Per stage, the spans it matched.
    stage_spans: Vec<i64>,
    /// Spans with a cart or user key, and those of them no stage matched.
    keyed_spans: i64,
    unmatched_spans: i64,
    /// The unmatched keyed spans by name, as (spans, name).
    unmatched: Vec<(i64, String)>,
}

/// The attributes that tie a span to a cart: the cart keys, then the user keys.
fn cart_or_user_keys(m: &Model) -> Vec<String> {
    m.keys
        .cart_id
        .iter()
        .chain(&m.keys.user_id)
        .cloned()
        .collect()
}

async fn span_fit(ctx: &SessionContext, m: &Model) -> Result<SpanFit> {
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::DataType;
    let any_stage = m
        .stages
        .iter()
        .map(|st| stage_match("t", st))
        .collect::<Vec<_>>()
        .join(" OR ");
    let keys = cart_or_user_keys(m);
    let per_stage = m
        .stages
        .iter()
        .map(|st| {
            format!(
                ", sum(CASE WHEN {} THEN 1 ELSE 0 END)",
                stage_match("t", st)
            )
        })
        .collect::<String>();
    let sql = format!(
        "SELECT t.operation_name, {keyed} IS NOT NULL, coalesce({any_stage}, false), \
         count(*){per_stage} FROM observed_traces t GROUP BY 1, 2, 3",
        keyed = attr("t", &keys),
    );
    let mut stage_spans = vec![0i64; m.stages.len()];
    let (mut keyed_spans, mut unmatched_spans) = (0i64, 0i64);
    let mut unmatched: Vec<(i64, String)> = Vec::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let int = |i: usize| -> Result<Int64Array> {
            Ok(cast(b.column(i), &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .clone())
        };
        let name = cast(b.column(0), &DataType::Utf8)?;
        let name = name.as_string::<i32>();
        let (keyed, matched) = (b.column(1).as_boolean(), b.column(2).as_boolean());
        let n = int(3)?;
        for (j, spans) in stage_spans.iter_mut().enumerate() {
            let c = int(4 + j)?;
            *spans += c.iter().flatten().sum::<i64>();
        }
        for i in 0..b.num_rows() {
            if !keyed.value(i) {
                continue;
            }
            keyed_spans += n.value(i);
            if !matched.value(i) {
                unmatched_spans += n.value(i);
                if name.is_valid(i) {
                    unmatched.push((n.value(i), name.value(i).to_string()));
                }
            }
        }
    }
    unmatched.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    Ok(SpanFit {
        stage_spans,
        keyed_spans,
        unmatched_spans,
        unmatched,
    })
}

/// Signs that the replay does not fit the data, each naming the likely fix: a stage that
/// matched no span, no cart converting, most spans that carry a cart or user key matched by
/// no stage, most carts with a single span. An empty list when the model fits (or when the
/// export has no carts at all, which `detect` says in its summary).
///
/// `fit`: the span-level pass (`span_fit`); the rest reads the cart-level tables.
/// `converting`: the carts with a success event, as the fold counted them.
async fn misfits(
    ctx: &SessionContext,
    m: &Model,
    s: &Summary,
    converting: u64,
    fit: &SpanFit,
) -> Result<Vec<String>> {
    let SpanFit {
        stage_spans,
        keyed_spans,
        unmatched_spans,
        unmatched,
    } = fit;
    let (keyed_spans, unmatched_spans) = (*keyed_spans, *unmatched_spans);
    let keys = cart_or_user_keys(m);
    let seen = unmatched
        .iter()
        .take(5)
        .map(|(c, name)| format!("'{name}' ({c})"))
        .collect::<Vec<_>>()
        .join(", ");
    let instead = if seen.is_empty() {
        String::new()
    } else {
        format!("; spans with a cart or user key that no stage matched: {seen}")
    };

    let mut out = Vec::new();
    for (st, spans) in m.stages.iter().zip(stage_spans) {
        if *spans == 0 {
            out.push(format!(
                "stage '{}' of model '{}' matched no span: give its spans = [...] or pattern the names this export uses{instead}",
                st.name, m.name
            ));
        }
    }
    if s.carts > 0 && converting == 0 {
        let success: Vec<&str> = m
            .stages
            .iter()
            .filter(|st| st.success)
            .map(|st| st.name.as_str())
            .collect();
        out.push(format!(
            "no cart converted among {} carts: the success stage{} {} of model '{}' matched no cart's span; check its span names and conditions{instead}",
            s.carts,
            if success.len() == 1 { "" } else { "s" },
            success.join(", "),
            m.name
        ));
    }
    if keyed_spans > 0 && unmatched_spans as f64 / keyed_spans as f64 > MOST {
        out.push(format!(
            "{unmatched_spans} of {keyed_spans} spans that carry a cart or user key ({}) match no stage of model '{}': add their names to the stages{instead}",
            keys.join(", "),
            m.name
        ));
    }
    if s.carts > 0 {
        let single = scalar_i64(ctx, "SELECT count(*) FROM carts WHERE span_count = 1")
            .await?
            .unwrap_or(0);
        if single as f64 / s.carts as f64 > MOST {
            out.push(format!(
                "{single} of {} carts {SINGLE_SPAN}: the cart key ({}) may be on one span of each cart only; check keys.cart_id, or set keys.session_id to join a cart's other traces",
                s.carts,
                keys.join(", ")
            ));
        }
    }
    // Every warning ends with the way to a model that fits.
    for w in &mut out {
        w.push_str("; or let `cartscope model --suggest --data ...` write a model from this data");
    }
    Ok(out)
}

/// The model's stages as a table, so queries see every stage, even one no span reached: a
/// view over `VALUES`, which a plan carries with it to wherever it runs (an in-memory table
/// cannot travel to a Ballista cluster).
async fn register_stages(ctx: &SessionContext, m: &Model) -> Result<()> {
    let rows: Vec<String> = m
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "({}, CAST({} AS BIGINT), {})",
                lit(&s.name),
                i + 1,
                s.success
            )
        })
        .collect();
    ctx.sql(&format!(
        "CREATE VIEW stages AS SELECT column1 AS stage, column2 AS stage_order, column3 AS success \
         FROM (VALUES {})",
        rows.join(", ")
    ))
    .await?;
    Ok(())
}

fn id_of<const N: usize>(seed: &str, salt: u64) -> [u8; N] {
    let h = xxhash_rust::xxh3::xxh3_128_with_seed(seed.as_bytes(), salt).to_be_bytes();
    let mut out = [0u8; N];
    out.copy_from_slice(&h[..N]);
    out[0] |= 1;
    out
}

/// The rows the instrumentation's background worker would have written for each abandoned
/// cart, except those the input already has, built a batch of carts at a time; and the
/// summary's counts.
struct Deriver {
    d: crate::replay::model::Derived,
    recorded_spans: std::collections::HashSet<String>,
    recorded_points: std::collections::HashSet<String>,
    b: TableBuilders,
    s: Summary,
    res: Attrs,
    value_text: String,
    /// Whether the rows are built, or only counted.
    build: bool,
}

impl Deriver {
    /// Reads which carts the input recorded as abandoned already (held in memory: one
    /// string per recorded cart, none for an export that records no abandonment).
    async fn new(ctx: &SessionContext, m: &Model, build: bool) -> Result<Deriver> {
        let d = m.derived.clone();
        let recorded_spans = string_set(
            ctx,
            &format!(
                "SELECT DISTINCT attributes[{}] FROM observed_traces WHERE operation_name = {} AND attributes[{}] IS NOT NULL",
                lit(&d.cart_id_attribute),
                lit(&d.span_name),
                lit(&d.cart_id_attribute)
            ),
        )
        .await?;
        let recorded_points = string_set(
            ctx,
            &format!(
                "SELECT DISTINCT attributes[{}] FROM observed_metrics WHERE name = {} AND attributes[{}] = {} AND attributes[{}] IS NOT NULL",
                lit(&d.cart_id_attribute),
                lit(&d.metric_name),
                lit(&d.stage_attribute),
                lit(&d.abandoned_stage),
                lit(&d.cart_id_attribute)
            ),
        )
        .await?;
        let mut res = Attrs::default();
        res.push("service.name", Some(&d.service_name));
        res.push("cartscope.derived", Some("true"));
        Ok(Deriver {
            d,
            recorded_spans,
            recorded_points,
            b: TableBuilders::default(),
            s: Summary::default(),
            res,
            value_text: String::new(),
            build,
        })
    }

    /// A deriver with the same recorded carts and nothing counted or derived yet (for a
    /// replay that starts again).
    fn again(&self) -> Deriver {
        Deriver {
            d: self.d.clone(),
            recorded_spans: self.recorded_spans.clone(),
            recorded_points: self.recorded_points.clone(),
            b: TableBuilders::default(),
            s: Summary::default(),
            res: self.res.clone(),
            value_text: String::new(),
            build: self.build,
        }
    }

    /// Counts a batch of `carts` and derives the rows of its abandoned carts.
    fn push(&mut self, batch: &RecordBatch) {
        let Deriver {
            d,
            recorded_spans,
            recorded_points,
            b,
            s,
            res,
            value_text,
            build,
        } = self;
        let (b, s, res) = (b, s, &*res);
        let str_col = |n: &str| {
            batch
                .column_by_name(n)
                .map(|c| c.as_string::<i32>().clone())
        };
        let (Some(id), Some(outcome), Some(stage), Some(op), Some(status), Some(cause)) = (
            str_col("cart_id"),
            str_col("outcome"),
            str_col("last_stage"),
            str_col("last_operation"),
            str_col("last_op_status"),
            str_col("suspected_cause"),
        ) else {
            return;
        };
        let count = batch
            .column_by_name("item_count")
            .map(|c| c.as_primitive::<Int64Type>().clone());
        let value = batch
            .column_by_name("total_value")
            .map(|c| c.as_primitive::<Float64Type>().clone());
        let dur = batch
            .column_by_name("last_op_duration_ms")
            .map(|c| c.as_primitive::<Float64Type>().clone());
        let at = batch
            .column_by_name("abandoned_at")
            .map(|c| c.as_primitive::<TimestampMicrosecondType>().clone());
        for i in 0..batch.num_rows() {
            s.carts += 1;
            match outcome.value(i) {
                "converted" => s.converted += 1,
                "active" => s.active += 1,
                "recovered" => s.recovered += 1,
                _ => {}
            }
            if outcome.value(i) != "abandoned" {
                continue;
            }
            s.abandoned += 1;
            let v = value.as_ref().filter(|v| v.is_valid(i)).map(|v| v.value(i));
            s.abandoned_value += v.unwrap_or(0.0);
            let cart = id.value(i);
            let when_ns = at
                .as_ref()
                .filter(|a| a.is_valid(i))
                .map(|a| (a.value(i) * 1000) as u64);
            let opt = |a: &StringArray| a.is_valid(i).then(|| a.value(i).to_string());
            if recorded_spans.contains(cart) || recorded_points.contains(cart) {
                s.recorded_abandonments += 1;
            }
            if !*build {
                s.derived_spans += u64::from(!recorded_spans.contains(cart));
                s.derived_points += u64::from(!recorded_points.contains(cart));
                continue;
            }
            if !recorded_spans.contains(cart) {
                let mut attrs = Attrs::default();
                attrs.push(&d.cart_id_attribute, Some(cart));
                attrs.push("cart.last_stage", opt(&stage).as_deref());
                if let Some(c) = count.as_ref().filter(|c| c.is_valid(i)) {
                    attrs.push("cart.item_count", Some(&c.value(i).to_string()));
                }
                if let Some(v) = v {
                    value_text.clear();
                    crate::read::otlp::values::write_f64(value_text, v);
                    attrs.push("cart.total_value", Some(value_text));
                }
                attrs.push("cart.last_operation", opt(&op).as_deref());
                if let Some(ms) = dur.as_ref().filter(|d| d.is_valid(i)) {
                    value_text.clear();
                    crate::read::otlp::values::write_f64(value_text, ms.value(i));
                    attrs.push("cart.last_op_duration_ms", Some(value_text));
                }
                attrs.push("cart.last_op_status", opt(&status).as_deref());
                attrs.push(
                    "cart.abandonment.suspected_cause",
                    Some(opt(&cause).as_deref().unwrap_or("none")),
                );
                let span = SpanRec {
                    trace_id: Some(id_of::<16>(cart, 1)),
                    span_id: Some(id_of::<8>(cart, 2)),
                    name: Some(d.span_name.clone()),
                    kind: SpanKind::Internal,
                    start_ns: when_ns,
                    end_ns: when_ns,
                    status_code: StatusCode::Unset,
                    ..SpanRec::default()
                };
                b.traces.append_span(&span, &attrs, &[], &[]);
                b.traces.end_scope(
                    1,
                    Some("cartscope.replay"),
                    Some(env!("CARGO_PKG_VERSION")),
                    &Attrs::default(),
                );
                b.traces.end_resource(1, 0, res);
                s.derived_spans += 1;
            }
            if !recorded_points.contains(cart) {
                let head = MetricHead {
                    name: Some(d.metric_name.clone()),
                    metric_type: MetricType::Sum,
                    is_monotonic: Some(true),
                    temporality: Some(Temporality::Delta),
                    ..MetricHead::default()
                };
                let mut p = PointRec {
                    time_ns: when_ns,
                    value: Some(1.0),
                    int_value: Some(1),
                    ..PointRec::default()
                };
                p.attrs.push(&d.stage_attribute, Some(&d.abandoned_stage));
                p.attrs.push(&d.cart_id_attribute, Some(cart));
                p.attrs.push("cart.last_stage", opt(&stage).as_deref());
                b.metrics.append_point(&head, &p);
                b.metrics
                    .end_scope(1, Some("cartscope.replay"), Some(env!("CARGO_PKG_VERSION")));
                b.metrics.end_resource(1, 0, res);
                s.derived_points += 1;
            }
        }
    }

    /// The derived rows built since the last call.
    fn take(&mut self) -> PerTable<Vec<RecordBatch>> {
        self.b.take()
    }

    /// The summary's counts, once every cart was pushed.
    fn finish(self) -> Summary {
        let mut s = self.s;
        let decided = s.abandoned + s.converted;
        s.abandonment_rate = if decided > 0 {
            s.abandoned as f64 / decided as f64
        } else {
            0.0
        };
        s.abandoned_value = (s.abandoned_value * 100.0).round() / 100.0;
        s
    }
}

/// The distinct texts of the one column `sql` gives. Its filter is applied while the
/// Parquet is read (DataFusion's `pushdown_filters`, off for other queries): the other
/// columns are decoded only for the rows that pass it, which are none in most exports (1M
/// carts: 1.6 s -> 0.25 s, `CARTSCOPE_TIMINGS=1`).
async fn string_set(ctx: &SessionContext, sql: &str) -> Result<std::collections::HashSet<String>> {
    // In a copy of the session's state: the queries beside it (`Beside`) keep theirs.
    let mut state = ctx.state();
    state
        .config_mut()
        .options_mut()
        .execution
        .parquet
        .pushdown_filters = true;
    let plan = state.create_logical_plan(sql).await?;
    let batches = datafusion::dataframe::DataFrame::new(state, plan)
        .collect()
        .await?;
    let mut out = std::collections::HashSet::new();
    for b in batches {
        let a = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )?;
        let a = a.as_string::<i32>();
        for i in 0..a.len() {
            if a.is_valid(i) {
                out.insert(a.value(i).to_string());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Percentiles;

    /// The fold reads the columns `EventColumns::READ` names and no other: a batch of those
    /// alone (what a replay that writes no cart_events sorts) is read; one without any of
    /// them is not.
    #[test]
    fn the_fold_reads_only_the_columns_it_names() {
        use super::EventColumns;
        use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        use datafusion::arrow::record_batch::RecordBatch;
        use std::sync::Arc;
        let ty = |c: &str| match c {
            "time" | "end_time" => DataType::Timestamp(TimeUnit::Microsecond, None),
            "stage_order" | "item_count" => DataType::Int64,
            "duration_ms" | "total_value" | "line_value" => DataType::Float64,
            "is_success" => DataType::Boolean,
            _ => DataType::Utf8,
        };
        let batch = |skip: Option<&str>| {
            let fields: Vec<Field> = EventColumns::READ
                .iter()
                .filter(|c| Some(**c) != skip)
                .map(|c| Field::new(*c, ty(c), true))
                .collect();
            RecordBatch::new_empty(Arc::new(Schema::new(fields)))
        };
        assert!(EventColumns::new(&batch(None)).is_ok());
        for c in EventColumns::READ {
            assert!(EventColumns::new(&batch(Some(c))).is_err(), "{c}");
        }
    }

    /// Each operation's rows and the sum of its durations: counted in the first pass only
    /// (a selection takes two or three), and summed exactly, so that the same durations in
    /// another order give the same bits; negatives, zeros and a duration too long for
    /// nanoseconds in an i64 (clamped) included.
    #[test]
    fn durations_count_every_row_once_and_sum_them_exactly() {
        // Durations as the loader makes them: whole nanoseconds over 1e6.
        let mut ns: Vec<(&str, i64)> = Vec::new();
        for i in 0..300_000i64 {
            // 1 ms to 17 min, some hundreds of thousands piled on one value: several passes.
            let v = if i % 3 == 0 {
                1_234_567
            } else {
                (i * 7_919_993) % 1_000_000_000_007
            };
            ns.push(("op", v));
        }
        for i in -50..50i64 {
            ns.push(("signed", i * 1_000_001));
        }
        let run = |rows: &mut dyn Iterator<Item = (&str, f64)>| {
            let rows: Vec<(&str, f64)> = rows.collect();
            let mut sel = Percentiles::new(&[0.5, 0.95]);
            let mut passes = 0;
            loop {
                passes += 1;
                for (op, d) in &rows {
                    sel.see(op, *d, 1.0);
                }
                if !sel.end_pass() {
                    break;
                }
            }
            (passes, sel.finish())
        };
        let (passes, got) = run(&mut ns.iter().map(|(o, n)| (*o, *n as f64 / 1e6)));
        assert!(
            passes >= 2,
            "{passes} passes: the count must not grow with them"
        );
        for op in ["op", "signed"] {
            let mine: Vec<i64> = ns.iter().filter(|r| r.0 == op).map(|r| r.1).collect();
            assert_eq!(got[op].spans, mine.len() as u64, "{op}");
            let total: i128 = mine.iter().map(|&n| i128::from(n)).sum();
            assert_eq!(got[op].total_ms, total as f64 / 1e6, "{op}");
        }
        let (_, back) = run(&mut ns.iter().rev().map(|(o, n)| (*o, *n as f64 / 1e6)));
        assert_eq!(back, got, "the same durations in the reverse order");
        // Past i64's nanoseconds: clamped, not wrapped into a negative sum.
        let (_, huge) = run(&mut [("x", 1e300), ("x", 1e300), ("x", -5.0)].into_iter());
        assert!(huge["x"].total_ms > 1e13, "{:?}", huge["x"]);
        assert_eq!(huge["x"].spans, 3);
    }

    /// The radix selection against a sort, on durations that need every kind of pass:
    /// spread out, piled on one value (past the few kept at once), negative, and mixed.
    #[test]
    fn percentiles_select_the_nearest_rank_exactly() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut data: Vec<(String, f64)> = Vec::new();
        for _ in 0..50_000 {
            data.push(("spread".into(), (next() % 1_000_000) as f64 / 7.0));
        }
        for i in 0..200_000 {
            // 4/5 of one value, the rest just beside it: one bucket, then more.
            let d = if i % 5 == 0 {
                12.5 + f64::EPSILON * (i % 3) as f64
            } else {
                12.5
            };
            data.push(("piled".into(), d));
        }
        for _ in 0..1000 {
            data.push(("signed".into(), (next() % 2000) as f64 - 1000.0));
        }
        data.push(("one".into(), 3.25));
        let ps = [0.0, 0.5, 0.95, 0.999, 1.0];
        {
            let mut sel = Percentiles::new(&ps);
            let mut passes = 0;
            loop {
                passes += 1;
                for (op, d) in &data {
                    sel.see(op, *d, 1.0);
                }
                if !sel.end_pass() {
                    break;
                }
            }
            assert!(passes <= 3, "{passes} passes");
            let got = sel.finish();
            for op in ["spread", "piled", "signed", "one"] {
                for (k, p) in ps.into_iter().enumerate() {
                    let mut v: Vec<f64> =
                        data.iter().filter(|(o, _)| o == op).map(|x| x.1).collect();
                    let want = crate::stats::nearest_rank_unsorted(&mut v, p).unwrap();
                    assert_eq!(got[op].at[k].to_bits(), want.to_bits(), "{op} at p={p}");
                }
            }
        }
        // Weighted: the least value whose rows and those below weigh at least p of all,
        // found by a sort. Weights as a sampler's adjusted counts give them (1, 2, 4, 10).
        let weight = |i: usize| [1.0, 2.0, 4.0, 10.0][i * 7 % 4];
        let mut sel = Percentiles::new(&ps);
        loop {
            for (i, (op, d)) in data.iter().enumerate() {
                sel.see(op, *d, weight(i));
            }
            if !sel.end_pass() {
                break;
            }
        }
        let got = sel.finish();
        for op in ["spread", "piled", "signed", "one"] {
            let mut v: Vec<(f64, f64)> = (0..data.len())
                .filter(|&i| data[i].0 == op)
                .map(|i| (data[i].1, weight(i)))
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            let all: f64 = v.iter().map(|x| x.1).sum();
            for (k, p) in ps.into_iter().enumerate() {
                let mut below = 0.0;
                let want = v
                    .iter()
                    .find(|x| {
                        below += x.1;
                        below >= p * all
                    })
                    .unwrap()
                    .0;
                assert_eq!(
                    got[op].at[k].to_bits(),
                    want.to_bits(),
                    "{op} weighted at p={p}"
                );
            }
        }
    }
}
