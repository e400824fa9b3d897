//! The lifecycle replay: every cart's life from the loaded spans, its outcome as of a point in
//! time, and what happened just before it went idle.
//!
//! How: which spans belong to which cart is DataFusion SQL generated from the lifecycle model
//! (`cart_events`, printed by `cartscope detect --explain`), so it runs wherever DataFusion
//! runs (Ballista included) and an analyst can read it. The per-cart judgement is a fold in
//! Rust over `cart_events` grouped by cart: each cart's few events ordered and judged at once.
//! It was SQL too, with ordered `last_value` aggregates and a window per cart; on this
//! machine DataFusion spent most of a replay in those (100k carts: about 5 s of 7 s; the
//! fold takes 0.2 s), where DuckDB ran the same SQL in 2.5 s.
//! The rules are listed in `FOLD_EXPLAINED`, which `--explain` prints.
//!
//! `cart_events` is held in memory, as `carts` is: the replay and the library's queries read
//! it many times, and as a view each reading would join the spans to their carts again.
//! Neither is bounded by `--memory-limit` (one row per cart, and one per cart span).
//!
//! Figures, measured on this project's 2-core machine, release build, with
//! `/usr/bin/time -v cartscope detect --data DS -f csv` on a 1,000,000-cart export
//! (`cartscope generate --carts 1000000`, 5.95M spans, ingested to a 342 MB dataset), other
//! work running: 16.1 s and peak RSS 2.9 GB with the fold; 68 s and 5.5 GB with the SQL
//! before it. The output's totals equal the generator's truth.
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
pub mod suggest;

use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListBuilder, RecordBatch,
    StringArray, StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::replay::model::Model;
use crate::tables::builders::{
    Attrs, MetricHead, MetricType, PointRec, SpanKind, SpanRec, StatusCode, TableBuilders,
    Temporality,
};
use crate::tables::schema::{self, PerTable, Table};
use crate::time::{Duration, Timestamp};

/// When and how strictly the replay judges.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub as_of: Timestamp,
    /// Overrides the model's threshold.
    pub threshold: Option<Duration>,
}

/// What the replay found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
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
    #[serde(skip_serializing_if = "is_zero")]
    pub duplicate_spans: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Keeps one row of each span (trace and span id) of each cart in `cart_events`:
/// overlapping exports repeat spans, and each is to count once. Of differing copies the one that ended last
/// (then the longer, then by status and name) is kept, whatever order they came in.
fn dedupe_events(parts: Vec<Vec<RecordBatch>>) -> Result<(Vec<Vec<RecordBatch>>, u64)> {
    use datafusion::arrow::compute::{cast, filter_record_batch};
    use datafusion::arrow::datatypes::DataType;
    type Rank = (i64, u64, String, String);
    /// One batch's columns, cast once, and each row's key.
    struct Cols {
        keys: Vec<Option<u128>>,
        end: Int64Array,
        ms: Float64Array,
        status: StringArray,
        op: StringArray,
    }
    let cols = |b: &RecordBatch| -> Result<Cols> {
        let col = |name: &str, ty: &DataType| -> Result<ArrayRef> {
            Ok(cast(
                b.column_by_name(name).context("a cart_events column")?,
                ty,
            )?)
        };
        let text = |name: &str| -> Result<StringArray> {
            Ok(col(name, &DataType::Utf8)?.as_string::<i32>().clone())
        };
        let (c, t, sp) = (text("cart_id")?, text("trace_id")?, text("span_id")?);
        // Per cart: a span a session gives to two carts belongs to both.
        let keys = (0..b.num_rows())
            .map(|i| {
                (c.is_valid(i) && t.is_valid(i) && sp.is_valid(i))
                    .then(|| schema::span_key(&[c.value(i), t.value(i), sp.value(i)]))
            })
            .collect();
        Ok(Cols {
            keys,
            end: col("end_time", &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .clone(),
            ms: col("duration_ms", &DataType::Float64)?
                .as_primitive::<Float64Type>()
                .clone(),
            status: text("status_code")?,
            op: text("operation")?,
        })
    };
    let rank = |c: &Cols, i: usize| -> Rank {
        let s = |a: &StringArray| a.is_valid(i).then(|| a.value(i).to_string());
        (
            if c.end.is_valid(i) {
                c.end.value(i)
            } else {
                i64::MIN
            },
            if c.ms.is_valid(i) {
                c.ms.value(i).to_bits()
            } else {
                0
            },
            s(&c.status).unwrap_or_default(),
            s(&c.op).unwrap_or_default(),
        )
    };
    let all: Vec<Vec<Cols>> = parts
        .iter()
        .map(|part| part.iter().map(&cols).collect::<Result<_>>())
        .collect::<Result<_>>()?;
    // Pass 1: the best copy of each repeated span.
    let mut first: std::collections::HashMap<u128, (usize, usize, usize)> = Default::default();
    let mut best: std::collections::HashMap<u128, ((usize, usize, usize), Rank)> =
        Default::default();
    for (p, part) in all.iter().enumerate() {
        for (bi, c) in part.iter().enumerate() {
            for (i, k) in c.keys.iter().enumerate() {
                let Some(k) = *k else { continue };
                let Some(&(fp, fb, fi)) = first.get(&k) else {
                    first.insert(k, (p, bi, i));
                    continue;
                };
                let here = rank(c, i);
                let current = match best.get(&k) {
                    Some((_, r)) => r.clone(),
                    None => rank(&all[fp][fb], fi),
                };
                if here > current {
                    best.insert(k, ((p, bi, i), here));
                } else {
                    best.entry(k).or_insert(((fp, fb, fi), current));
                }
            }
        }
    }
    if best.is_empty() {
        return Ok((parts, 0));
    }
    // Pass 2: repeated spans keep only their best copy.
    let mut dropped = 0u64;
    let mut out = Vec::with_capacity(parts.len());
    for (p, part) in parts.iter().enumerate() {
        let mut kept = Vec::with_capacity(part.len());
        for (bi, b) in part.iter().enumerate() {
            let mask: BooleanArray = all[p][bi]
                .keys
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    Some(match k.and_then(|k| best.get(&k)) {
                        Some((at, _)) => *at == (p, bi, i),
                        None => true,
                    })
                })
                .collect();
            let b = filter_record_batch(b, &mask)?;
            dropped += (mask.len() - b.num_rows()) as u64;
            kept.push(b);
        }
        out.push(kept);
    }
    Ok((out, dropped))
}

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `coalesce(t.attributes['a'], t.attributes['b'])`, or a typed NULL for no keys.
fn attr(alias: &str, keys: &[String]) -> String {
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

/// The SQL of the `cart_events` view.
pub fn cart_events_sql(m: &Model, as_of_us: i64) -> String {
    let any_stage = m
        .stages
        .iter()
        .map(|s| stage_match("t", s))
        .collect::<Vec<_>>()
        .join(" OR ");
    let (key, key_filter) = if m.keys.cart_is_user {
        (attr("t", &m.keys.user_id), format!(" AND ({any_stage})"))
    } else {
        (attr("t", &m.keys.cart_id), String::new())
    };
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
    let columns = |by: &str| {
        format!(
            "t.start_time AS time, t.end_time, {stage_name} AS stage, {stage_order} AS stage_order, \
             t.operation_name AS operation, t.trace_id, t.span_id, t.duration_ms, t.status_code, \
             {by} AS attributed_by, {user} AS user_id, \
             TRY_CAST({count} AS BIGINT) AS item_count, TRY_CAST({value} AS DOUBLE) AS total_value, \
             coalesce({success}, false) AS is_success",
            user = attr("t", &m.keys.user_id),
            count = attr("t", &m.keys.item_count),
            value = attr("t", &m.keys.total_value),
        )
    };
    let own = if m.keys.cart_is_user {
        format!("CASE WHEN {key} IS NOT NULL AND ({any_stage}) THEN 'attribute' ELSE 'trace' END")
    } else {
        format!("CASE WHEN {key} IS NOT NULL THEN 'attribute' ELSE 'trace' END")
    };
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
                  AND t.trace_id NOT IN (SELECT trace_id FROM by_trace))
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

/// Each operation's percentile duration, nearest rank: the ceil(p * n)-th smallest of its n
/// durations. One streaming pass and a selection per operation, not a sort of every span.
async fn percentiles(
    ctx: &SessionContext,
    p: f64,
) -> Result<std::collections::HashMap<String, f64>> {
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::DataType;
    use futures::StreamExt;
    let mut durations: std::collections::HashMap<String, Vec<f64>> =
        std::collections::HashMap::new();
    let mut stream = ctx
        .sql(DURATIONS_SQL)
        .await?
        .execute_stream()
        .await
        .context("the replay's percentile query failed")?;
    while let Some(b) = stream.next().await {
        let b = b.context("the replay's percentile query failed")?;
        let ops = cast(b.column(0), &DataType::Utf8)?;
        let ms = cast(b.column(1), &DataType::Float64)?;
        let (ops, ms) = (ops.as_string::<i32>(), ms.as_primitive::<Float64Type>());
        for i in 0..b.num_rows() {
            if ops.is_null(i) || ms.is_null(i) {
                continue;
            }
            let (op, d) = (ops.value(i), ms.value(i));
            match durations.get_mut(op) {
                Some(v) => v.push(d),
                None => {
                    durations.insert(op.to_string(), vec![d]);
                }
            }
        }
    }
    Ok(durations
        .into_iter()
        .filter_map(|(op, mut v)| Some((op, crate::stats::nearest_rank_unsorted(&mut v, p)?)))
        .collect())
}

/// What the fold computes per cart, for `cartscope detect --explain`.
pub const FOLD_EXPLAINED: &str = "\
-- carts: one row per cart, folded in Rust over its cart_events in (end_time, time, span_id) order
--   first_seen = min(time); last_activity = max(end_time); span_count = count of events
--   last_stage = the stage of max(stage_order); converted = any event is a success stage
--   user_id, item_count, total_value = the latest non-null value
--   last_operation, last_op_duration_ms, last_op_status, last_trace_id = of the latest event
--   came_back = in start order, an event starts >= threshold after all earlier ones ended
--   outcome = recovered (converted and came back) | converted | abandoned (idle >= the last
--             stage's threshold at the as-of time) | recovered (came back) | active
--   suspected_cause (abandoned only) = slow_response (last op > causes.slow_ms) | error
--   signals = slower_than_p95 (last op above its percentile: the nearest-rank causes.percentile
--             of its operation's durations above), error_before_idle (an error
--             within causes.error_window of last_activity), retry (an operation twice in a trace)
--   abandoned_at = last_activity + threshold";

/// How the fold judges carts: the model's rules with its durations in microseconds.
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
    /// Events per (trace, operation): more than one is a retry.
    attempts: std::collections::HashMap<(Option<&'a str>, Option<&'a str>), u32>,
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
}

impl Cart<'_> {
    /// Judges the cart and appends its row.
    fn finish(mut self, r: &Rules, out: &mut CartColumns) {
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
        let retry = self.attempts.values().any(|n| *n > 1);

        out.cart_id.append_value(self.id);
        out.user_id.append_option(self.user_id);
        out.first_seen.push(self.first_seen);
        out.last_activity.push(self.last_activity);
        out.last_stage.append_option(stage.map(|s| s.0.as_str()));
        out.item_count.push(self.item_count);
        out.total_value.push(self.total_value);
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
    user: StringArray,
    items: Int64Array,
    value: Float64Array,
    success: BooleanArray,
}

impl EventColumns {
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
            user: text("user_id")?,
            items: int("item_count")?,
            value: float("total_value")?,
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

/// Folds `cart_events` into one row per cart, in cart order: the `carts` table. The events
/// are grouped by cart (row references, nothing copied), and each cart's are ordered by
/// end_time, time and span_id (nulls last, as SQL orders them).
fn fold_carts(events: &[RecordBatch], r: &Rules) -> Result<RecordBatch> {
    let cols = events
        .iter()
        .map(EventColumns::new)
        .collect::<Result<Vec<_>>>()?;
    let mut by_cart: std::collections::HashMap<&str, Vec<(u32, u32)>> =
        std::collections::HashMap::new();
    for (bi, c) in cols.iter().enumerate() {
        for i in 0..c.cart.len() {
            // cart_events has no row without a cart.
            if c.cart.is_valid(i) {
                by_cart
                    .entry(c.cart.value(i))
                    .or_default()
                    .push((bi as u32, i as u32));
            }
        }
    }
    let mut ids: Vec<&str> = by_cart.keys().copied().collect();
    ids.sort_unstable();
    let mut out = CartColumns::default();
    for id in ids {
        let mut rows = by_cart.remove(id).unwrap_or_default();
        let key = |&(bi, i): &(u32, u32)| {
            let (c, i) = (&cols[bi as usize], i as usize);
            let end = opt(&c.end, i).map(|i| c.end.value(i));
            let time = opt(&c.time, i).map(|i| c.time.value(i));
            let span = opt(&c.span, i).map(|i| c.span.value(i));
            (
                end.is_none(),
                end,
                time.is_none(),
                time,
                span.is_none(),
                span,
            )
        };
        rows.sort_by_cached_key(key);
        let mut cart = Cart {
            id,
            ..Cart::default()
        };
        for (bi, i) in rows {
            let (c, i) = (&cols[bi as usize], i as usize);
            let t = opt(&c.time, i).map(|i| c.time.value(i));
            let e = opt(&c.end, i).map(|i| c.end.value(i));
            let order = opt(&c.order, i).map(|i| c.order.value(i));
            cart.first_seen = match (cart.first_seen, t) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            cart.last_activity = match (cart.last_activity, e) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            cart.stage_order = match (cart.stage_order, order) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(u) = text_at(&c.user, i) {
                cart.user_id = Some(u);
            }
            if let Some(j) = opt(&c.items, i) {
                cart.item_count = Some(c.items.value(j));
            }
            if let Some(j) = opt(&c.value, i) {
                cart.total_value = Some(c.value.value(j));
            }
            let (op, status, trace) = (
                text_at(&c.op, i),
                text_at(&c.status, i),
                text_at(&c.trace, i),
            );
            cart.last_operation = op;
            cart.last_op_duration_ms = opt(&c.dur, i).map(|i| c.dur.value(i));
            cart.last_op_status = status;
            cart.last_trace_id = trace;
            cart.converted |= c.success.is_valid(i) && c.success.value(i);
            cart.span_count += 1;
            cart.starts.push((t, e, text_at(&c.span, i)));
            if let (Some("error"), Some(e)) = (status, e) {
                cart.error_ends.push(e);
            }
            *cart.attempts.entry((trace, op)).or_default() += 1;
        }
        cart.finish(r, &mut out);
    }
    let ts = |v: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
    };
    let mut o = out;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(o.cart_id.finish()),
        Arc::new(o.user_id.finish()),
        ts(o.first_seen),
        ts(o.last_activity),
        Arc::new(o.last_stage.finish()),
        Arc::new(datafusion::arrow::array::Int64Array::from(o.item_count)),
        Arc::new(datafusion::arrow::array::Float64Array::from(o.total_value)),
        Arc::new(o.outcome.finish()),
        ts(o.abandoned_at),
        Arc::new(o.last_operation.finish()),
        Arc::new(datafusion::arrow::array::Float64Array::from(
            o.last_op_duration_ms,
        )),
        Arc::new(o.last_op_status.finish()),
        Arc::new(o.last_trace_id.finish()),
        Arc::new(o.suspected_cause.finish()),
        Arc::new(datafusion::arrow::array::Int64Array::from(o.span_count)),
        Arc::new(o.signals.finish()),
    ];
    Ok(RecordBatch::try_new(schema::carts_schema(), cols)?)
}

/// The default as-of time: the latest timestamp in the data.
pub async fn latest_timestamp(ctx: &SessionContext) -> Result<Option<Timestamp>> {
    let (lo, hi) = PLAUSIBLE_US;
    let sql = format!(
        "SELECT max(t) FROM (
        SELECT CAST(max(end_time) AS BIGINT) AS t FROM observed_traces
            WHERE CAST(end_time AS BIGINT) >= {lo} AND CAST(end_time AS BIGINT) < {hi}
        UNION ALL SELECT CAST(max(timestamp) AS BIGINT) FROM span_events
            WHERE CAST(timestamp AS BIGINT) >= {lo} AND CAST(timestamp AS BIGINT) < {hi}
        UNION ALL SELECT CAST(max(timestamp) AS BIGINT) FROM observed_metrics
            WHERE CAST(timestamp AS BIGINT) >= {lo} AND CAST(timestamp AS BIGINT) < {hi})"
    );
    Ok(scalar_i64(ctx, &sql)
        .await?
        .and_then(|us| us.checked_mul(1000))
        .map(Timestamp::from_ns))
}

/// Timestamps outside [2000-01-01, 2200-01-01), in microseconds, are taken for a wrong clock
/// or a corrupt value (OTLP allows any u64 of nanoseconds, up to the year 2554): rows keep
/// them, but the default as-of time is not taken from them, and they are reported.
pub const PLAUSIBLE_US: (i64, i64) = (946_684_800_000_000, 7_258_118_400_000_000);

/// A warning naming the rows whose times are outside `PLAUSIBLE_US`, if there are any.
pub async fn implausible_times(ctx: &SessionContext) -> Result<Option<String>> {
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

/// Runs the replay and registers `carts`, `cart_events`, `abandonments`, `cart_exemplars` and
/// its derived rows (`derived_traces`, `derived_metrics`, seen through the `traces` and
/// `metrics` views).
pub async fn run(ctx: &SessionContext, m: &Model, opts: &ReplayOptions) -> Result<Summary> {
    let threshold = opts.threshold.unwrap_or(m.threshold);
    let as_of_us = opts.as_of.micros();
    let threshold_us = threshold.micros();

    // Held in memory, as `carts` is: the replay reads it several times, and so do the
    // library's queries; as a view, each reading would join the spans to their carts again.
    let events = ctx
        .sql(&cart_events_sql(m, as_of_us))
        .await
        .context("the lifecycle model's cart_events query failed")?;
    let plan = events
        .create_physical_plan()
        .await
        .context("the lifecycle model's cart_events query failed")?;
    let events_schema = plan.schema();
    let events = datafusion::physical_plan::collect_partitioned(plan, ctx.task_ctx())
        .await
        .context("the lifecycle model's cart_events query failed")?;
    let (events, duplicates) = dedupe_events(events)?;
    let all_events: Vec<RecordBatch> = events.iter().flatten().cloned().collect();
    ctx.register_table(
        "cart_events",
        Arc::new(MemTable::try_new(events_schema, events)?),
    )?;
    let p_ms = percentiles(ctx, m.causes.percentile).await?;
    let mut stages = Vec::new();
    for s in &m.stages {
        let thr = s.threshold.map_or(threshold_us, Duration::micros);
        stages.push((s.name.clone(), thr));
    }
    let rules = Rules {
        as_of_us,
        stages,
        threshold_us,
        window_us: m.causes.error_window.micros(),
        slow_ms: m.causes.slow_ms,
        p_ms,
    };
    let carts = vec![fold_carts(&all_events, &rules)?];
    drop(all_events);
    let (derived, mut summary) = derive(ctx, m, &carts).await?;
    summary.as_of = opts.as_of;
    summary.threshold = threshold;
    summary.duplicate_spans = duplicates;

    ctx.register_table(
        "carts",
        // In cart_id order, as the fold wrote it: `ORDER BY cart_id` then costs nothing.
        Arc::new(
            MemTable::try_new(schema::carts_schema(), vec![carts])?.with_sort_order(vec![vec![
                datafusion::prelude::col("cart_id").sort(true, false),
            ]]),
        ),
    )?;
    register_stages(ctx, m)?;
    ctx.sql("CREATE VIEW abandonments AS SELECT *, outcome = 'recovered' AS recovered FROM carts WHERE outcome IN ('abandoned', 'recovered')")
        .await?;
    ctx.sql("CREATE VIEW cart_exemplars AS SELECT e.*, c.cart_id FROM exemplars e JOIN (SELECT DISTINCT trace_id, cart_id FROM cart_events) c ON e.trace_id = c.trace_id")
        .await?;
    for table in [Table::Traces, Table::Metrics] {
        let name = table.derived_name().context("a table of derived rows")?;
        let rows = MemTable::try_new(table.schema(), vec![derived[table].clone()])?;
        ctx.deregister_table(name)?;
        ctx.register_table(name, Arc::new(rows))?;
    }
    crate::sql::session::present(ctx).await?;
    summary.warnings = misfits(ctx, m, &summary).await?;
    Ok(summary)
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

/// Signs that the replay does not fit the data, each naming the likely fix: a stage that
/// matched no span, no cart converting, most spans that carry a cart or user key matched by
/// no stage, most carts with a single span. An empty list when the model fits (or when the
/// export has no carts at all, which `detect` says in its summary).
///
/// The span-level checks share one pass over `observed_traces`, grouped by span name,
/// whether the span carries a cart or user key and whether any stage matches it, with each
/// stage's matches summed alongside; the rest read the cart-level tables.
async fn misfits(ctx: &SessionContext, m: &Model, s: &Summary) -> Result<Vec<String>> {
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::DataType;
    let any_stage = m
        .stages
        .iter()
        .map(|st| stage_match("t", st))
        .collect::<Vec<_>>()
        .join(" OR ");
    let keys: Vec<String> = m
        .keys
        .cart_id
        .iter()
        .chain(&m.keys.user_id)
        .cloned()
        .collect();
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
    // Per stage, its spans; spans with a key, and those of them no stage matched, by name.
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
    for (st, spans) in m.stages.iter().zip(&stage_spans) {
        if *spans == 0 {
            out.push(format!(
                "stage '{}' of model '{}' matched no span: give its spans = [...] or pattern the names this export uses{instead}",
                st.name, m.name
            ));
        }
    }
    let converting = scalar_i64(
        ctx,
        "SELECT count(DISTINCT cart_id) FROM cart_events WHERE is_success",
    )
    .await?
    .unwrap_or(0);
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
                "{single} of {} carts have a single span: the cart key ({}) may be on one span of each cart only; check keys.cart_id, or set keys.session_id to join a cart's other traces",
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

/// The model's stages as a table, so queries see every stage, even one no span reached.
fn register_stages(ctx: &SessionContext, m: &Model) -> Result<()> {
    use datafusion::arrow::array::{BooleanArray, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = Arc::new(Schema::new(vec![
        Field::new("stage", DataType::Utf8, false),
        Field::new("stage_order", DataType::Int64, false),
        Field::new("success", DataType::Boolean, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                m.stages.iter().map(|s| s.name.clone()),
            )),
            Arc::new(Int64Array::from_iter_values(1..=m.stages.len() as i64)),
            Arc::new(BooleanArray::from(
                m.stages.iter().map(|s| s.success).collect::<Vec<_>>(),
            )),
        ],
    )?;
    ctx.register_table(
        "stages",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
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
/// cart, except those the input already has.
async fn derive(
    ctx: &SessionContext,
    m: &Model,
    carts: &[RecordBatch],
) -> Result<(PerTable<Vec<RecordBatch>>, Summary)> {
    let d = &m.derived;
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
    let mut b = TableBuilders::default();
    let mut s = Summary::default();
    let mut res = Attrs::default();
    res.push("service.name", Some(&d.service_name));
    res.push("cartscope.derived", Some("true"));
    let mut value_text = String::new();
    for batch in carts {
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
            continue;
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
            if !recorded_spans.contains(cart) {
                let mut attrs = Attrs::default();
                attrs.push(&d.cart_id_attribute, Some(cart));
                attrs.push("cart.last_stage", opt(&stage).as_deref());
                if let Some(c) = count.as_ref().filter(|c| c.is_valid(i)) {
                    attrs.push("cart.item_count", Some(&c.value(i).to_string()));
                }
                if let Some(v) = v {
                    value_text.clear();
                    crate::read::otlp::values::write_f64(&mut value_text, v);
                    attrs.push("cart.total_value", Some(&value_text));
                }
                attrs.push("cart.last_operation", opt(&op).as_deref());
                if let Some(ms) = dur.as_ref().filter(|d| d.is_valid(i)) {
                    value_text.clear();
                    crate::read::otlp::values::write_f64(&mut value_text, ms.value(i));
                    attrs.push("cart.last_op_duration_ms", Some(&value_text));
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
                b.traces.end_resource(1, 0, &res);
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
                b.metrics.end_resource(1, 0, &res);
                s.derived_points += 1;
            }
        }
    }
    let decided = s.abandoned + s.converted;
    s.abandonment_rate = if decided > 0 {
        s.abandoned as f64 / decided as f64
    } else {
        0.0
    };
    s.abandoned_value = (s.abandoned_value * 100.0).round() / 100.0;
    Ok((b.take(), s))
}

async fn string_set(ctx: &SessionContext, sql: &str) -> Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for b in ctx.sql(sql).await?.collect().await? {
        let a = b.column(0).as_string::<i32>();
        for i in 0..a.len() {
            if a.is_valid(i) {
                out.insert(a.value(i).to_string());
            }
        }
    }
    Ok(out)
}
