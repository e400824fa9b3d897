//! The lifecycle replay: every cart's life from the loaded spans, its outcome as of a point in
//! time, and what happened just before it went idle.
//!
//! How: DataFusion SQL with window functions, generated from the lifecycle model, rather than
//! a hand-written sort-then-stream pass. The same plan then runs wherever DataFusion runs
//! (Ballista included), sorts and aggregates spill to disk under the session's memory limit,
//! and the rules stay readable as SQL (`cartscope detect --explain` prints them). Only what
//! SQL says badly is done in Rust afterwards, row by row over the (small) carts result:
//! the `signals` list, `abandoned_at`, and the derived rows the instrumentation's background
//! worker would have written.
//!
//! Figures, measured on this project's 2-core machine, release build, with
//! `/usr/bin/time -v cartscope detect --data DS -f csv` on a 1,000,000-cart export
//! (`cartscope generate --carts 1000000`, 5.95M spans, ingested to a 342 MB dataset):
//! 68 s, peak RSS 5.5 GB; with `--memory-limit 2GB` 71 s and 4.3 GB; with `--memory-limit 1GB`
//! 66 s and 3.4 GB, the same output byte for byte, whose totals equal the generator's truth.
//! What the cap does not bound is DataFusion's unaccounted memory (Parquet decoding buffers)
//! and the carts result itself, held in memory for the later commands (one row per cart).
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

use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, ListBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::model::Model;
use crate::otlp::builders::{
    Attrs, MetricHead, MetricType, PointRec, SpanKind, SpanRec, StatusCode, TableBuilders,
    Temporality,
};
use crate::schema::{self, Table};
use crate::timefmt::parse_duration;

/// When and how strictly the replay judges.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Nanoseconds since the epoch.
    pub as_of_ns: i64,
    /// Overrides the model's threshold.
    pub threshold_ns: Option<u64>,
}

/// What the replay found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub as_of: String,
    pub threshold: String,
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

fn stage_match(alias: &str, s: &crate::model::Stage) -> String {
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
    let mut all = vec![format!("({})", any.join(" OR "))];
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
    let stage_order = format!(
        "CASE {} END",
        m.stages
            .iter()
            .enumerate()
            .map(|(i, s)| format!("WHEN {} THEN {}", stage_match("t", s), i + 1))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let stage_name = format!(
        "CASE {} END",
        m.stages
            .iter()
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
            SELECT t.trace_id, {key} AS cart_id FROM traces t
            WHERE NOT t.derived AND t.trace_id IS NOT NULL AND {key} IS NOT NULL{key_filter}),
        trace_cart AS (SELECT trace_id, min(cart_id) AS cart_id FROM keyed GROUP BY trace_id)
        SELECT tc.cart_id, {cols}
        FROM traces t JOIN trace_cart tc ON t.trace_id = tc.trace_id
        WHERE NOT t.derived AND CAST(t.end_time AS BIGINT) <= {as_of_us}",
        cols = columns(&own)
    );
    if !m.keys.session_id.is_empty() {
        let session = attr("t", &m.keys.session_id);
        sql = format!(
            "WITH by_trace AS ({sql}),
            sessions AS (
                SELECT DISTINCT b.cart_id, {session} AS session_id
                FROM traces t JOIN by_trace b ON t.trace_id = b.trace_id AND t.span_id = b.span_id
                WHERE {session} IS NOT NULL),
            windows AS (SELECT cart_id, min(time) AS lo, max(end_time) AS hi FROM by_trace GROUP BY cart_id),
            by_session AS (
                SELECT s.cart_id, {cols}
                FROM traces t
                JOIN sessions s ON {session} = s.session_id
                JOIN windows w ON w.cart_id = s.cart_id
                WHERE NOT t.derived AND CAST(t.end_time AS BIGINT) <= {as_of_us}
                  AND t.start_time >= w.lo AND t.start_time <= w.hi
                  AND t.trace_id NOT IN (SELECT trace_id FROM by_trace))
            SELECT * FROM by_trace UNION ALL SELECT * FROM by_session",
            cols = columns("'session'")
        );
    }
    sql
}

/// The SQL that computes one row per cart from `cart_events`.
pub fn carts_sql(m: &Model, as_of_us: i64, threshold_us: i64) -> Result<String> {
    let stage_thr = |s: &crate::model::Stage| -> Result<i64> {
        Ok(match &s.threshold {
            Some(t) => (parse_duration(t)? / 1000) as i64,
            None => threshold_us,
        })
    };
    let mut name_case = String::from("CASE a.stage_order");
    let mut thr_case = String::from("CASE a.stage_order");
    for (i, s) in m.stages.iter().enumerate() {
        name_case.push_str(&format!(" WHEN {} THEN {}", i + 1, lit(&s.name)));
        thr_case.push_str(&format!(" WHEN {} THEN {}", i + 1, stage_thr(s)?));
    }
    name_case.push_str(" END");
    thr_case.push_str(&format!(" ELSE {threshold_us} END"));
    let window_us = (parse_duration(&m.causes.error_window)? / 1000) as i64;
    let pct = m.causes.percentile;
    let slow = m.causes.slow_ms;
    let last = "ORDER BY end_time, time, span_id";
    Ok(format!(
        "WITH ordered AS (
            SELECT cart_id, time,
                   max(end_time) OVER (PARTITION BY cart_id ORDER BY time, end_time, span_id
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
            FROM cart_events),
        came AS (
            SELECT cart_id,
                   coalesce(bool_or(CAST(time AS BIGINT) >= CAST(prev_end AS BIGINT) + {threshold_us}), false) AS came_back
            FROM ordered GROUP BY cart_id),
        agg AS (
            SELECT cart_id,
                   last_value(user_id {last}) FILTER (WHERE user_id IS NOT NULL) AS user_id,
                   min(time) AS first_seen,
                   max(end_time) AS last_activity,
                   max(stage_order) AS stage_order,
                   last_value(item_count {last}) FILTER (WHERE item_count IS NOT NULL) AS item_count,
                   last_value(total_value {last}) FILTER (WHERE total_value IS NOT NULL) AS total_value,
                   last_value(operation {last}) AS last_operation,
                   last_value(duration_ms {last}) AS last_op_duration_ms,
                   last_value(status_code {last}) AS last_op_status,
                   last_value(trace_id {last}) AS last_trace_id,
                   bool_or(is_success) AS converted,
                   count(*) AS span_count
            FROM cart_events GROUP BY cart_id),
        shaped AS (
            SELECT a.*, c.came_back, {name_case} AS last_stage, {thr_case} AS threshold_us
            FROM agg a JOIN came c ON a.cart_id = c.cart_id),
        outcomes AS (
            SELECT *,
                   CASE WHEN converted AND came_back THEN 'recovered'
                        WHEN converted THEN 'converted'
                        WHEN {as_of_us} - CAST(last_activity AS BIGINT) >= threshold_us THEN 'abandoned'
                        WHEN came_back THEN 'recovered'
                        ELSE 'active' END AS outcome
            FROM shaped),
        ranked AS (
            SELECT operation_name, duration_ms,
                   row_number() OVER (PARTITION BY operation_name ORDER BY duration_ms) AS rn,
                   count(*) OVER (PARTITION BY operation_name) AS n
            FROM traces WHERE NOT derived AND duration_ms IS NOT NULL),
        pct AS (
            SELECT operation_name, duration_ms AS p_ms FROM ranked
            WHERE rn = greatest(CAST(ceil({pct} * n) AS BIGINT), 1)),
        retried AS (
            SELECT cart_id, bool_or(n > 1) AS retry FROM (
                SELECT cart_id, trace_id, operation, count(*) AS n FROM cart_events
                GROUP BY cart_id, trace_id, operation) GROUP BY cart_id),
        errors AS (
            SELECT e.cart_id,
                   bool_or(e.status_code = 'error'
                           AND CAST(e.end_time AS BIGINT) >= CAST(o.last_activity AS BIGINT) - {window_us}) AS error_before_idle
            FROM cart_events e JOIN outcomes o ON e.cart_id = o.cart_id GROUP BY e.cart_id)
        SELECT o.cart_id, o.user_id, o.first_seen, o.last_activity, o.last_stage, o.item_count,
               o.total_value, o.outcome, o.threshold_us, o.last_operation, o.last_op_duration_ms,
               o.last_op_status, o.last_trace_id,
               CASE WHEN o.outcome = 'abandoned' THEN
                   CASE WHEN o.last_op_duration_ms > {slow} THEN 'slow_response'
                        WHEN o.last_op_status = 'error' THEN 'error' END END AS suspected_cause,
               o.span_count,
               coalesce(o.last_op_duration_ms > p.p_ms, false) AS sig_slow,
               coalesce(er.error_before_idle, false) AS sig_error,
               coalesce(r.retry, false) AS sig_retry
        FROM outcomes o
        LEFT JOIN pct p ON o.last_operation = p.operation_name
        LEFT JOIN retried r ON o.cart_id = r.cart_id
        LEFT JOIN errors er ON o.cart_id = er.cart_id
        ORDER BY o.cart_id"
    ))
}

/// The default as-of time: the latest timestamp in the data.
pub async fn latest_timestamp_ns(ctx: &SessionContext) -> Result<Option<i64>> {
    let sql = "SELECT max(t) FROM (
        SELECT CAST(max(end_time) AS BIGINT) AS t FROM traces
        UNION ALL SELECT CAST(max(timestamp) AS BIGINT) FROM span_events
        UNION ALL SELECT CAST(max(timestamp) AS BIGINT) FROM metrics)";
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok(batches
        .first()
        .and_then(|b| b.column(0).as_primitive_opt::<Int64Type>().cloned())
        .and_then(|a| (!a.is_empty() && a.is_valid(0)).then(|| a.value(0) * 1000)))
}

/// Runs the replay and registers `carts`, `cart_events`, `abandonments` and `cart_exemplars`,
/// and adds the derived rows to `traces` and `metrics`.
pub async fn run(ctx: &SessionContext, m: &Model, opts: &ReplayOptions) -> Result<Summary> {
    let threshold_ns = opts.threshold_ns.unwrap_or_else(|| m.threshold_ns());
    let as_of_us = opts.as_of_ns.div_euclid(1000);
    let threshold_us = (threshold_ns / 1000) as i64;

    ctx.sql(&format!(
        "CREATE VIEW cart_events AS {}",
        cart_events_sql(m, as_of_us)
    ))
    .await
    .context("the lifecycle model's cart_events query failed")?;
    let raw = ctx
        .sql(&carts_sql(m, as_of_us, threshold_us)?)
        .await
        .context("the replay query failed")?
        .collect()
        .await
        .context("the replay query failed")?;
    let carts = shape_carts(&raw)?;
    let (derived, mut summary) = derive(ctx, m, &carts).await?;
    summary.as_of = crate::timefmt::format_ns(opts.as_of_ns);
    summary.threshold = crate::timefmt::format_duration(threshold_ns);

    ctx.register_table(
        "carts",
        Arc::new(MemTable::try_new(schema::carts_schema(), vec![carts])?),
    )?;
    register_stages(ctx, m)?;
    ctx.sql("CREATE VIEW abandonments AS SELECT *, outcome = 'recovered' AS recovered FROM carts WHERE outcome IN ('abandoned', 'recovered')")
        .await?;
    ctx.sql("CREATE VIEW cart_exemplars AS SELECT e.*, c.cart_id FROM exemplars e JOIN (SELECT DISTINCT trace_id, cart_id FROM cart_events) c ON e.trace_id = c.trace_id")
        .await?;
    add_rows(ctx, Table::Traces, derived[Table::Traces.index()].clone()).await?;
    add_rows(ctx, Table::Metrics, derived[Table::Metrics.index()].clone()).await?;
    // `spans` was bound to the old `traces`.
    ctx.deregister_table("spans")?;
    ctx.sql("CREATE VIEW spans AS SELECT * FROM traces").await?;
    Ok(summary)
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

async fn add_rows(ctx: &SessionContext, table: Table, batches: Vec<RecordBatch>) -> Result<()> {
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(());
    }
    let old = ctx
        .deregister_table(table.name())?
        .context("table not registered")?;
    let extra = Arc::new(MemTable::try_new(table.schema(), vec![batches])?);
    let df = ctx.read_table(old)?.union(ctx.read_table(extra)?)?;
    ctx.register_table(table.name(), df.into_view())?;
    Ok(())
}

/// Builds the `carts` batches: the SQL result with `abandoned_at` and `signals` in place of
/// the helper columns.
fn shape_carts(raw: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    let schema = schema::carts_schema();
    let mut out = Vec::new();
    for b in raw {
        let col = |name: &str| -> Result<&ArrayRef> {
            b.column_by_name(name)
                .with_context(|| format!("replay result has no {name}"))
        };
        let last = col("last_activity")?.as_primitive::<TimestampMicrosecondType>();
        let thr = col("threshold_us")?.as_primitive::<Int64Type>();
        let outcome = col("outcome")?.as_string::<i32>();
        let abandoned_at: TimestampMicrosecondArray = (0..b.num_rows())
            .map(|i| {
                (outcome.value(i) == "abandoned" && last.is_valid(i))
                    .then(|| last.value(i) + thr.value(i))
            })
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC");
        let flags = [
            (col("sig_slow")?.as_boolean(), "slower_than_p95"),
            (col("sig_error")?.as_boolean(), "error_before_idle"),
            (col("sig_retry")?.as_boolean(), "retry"),
        ];
        let mut signals = ListBuilder::new(StringBuilder::new());
        for i in 0..b.num_rows() {
            for (arr, name) in &flags {
                if arr.is_valid(i) && arr.value(i) {
                    signals.values().append_value(name);
                }
            }
            signals.append(true);
        }
        let signals = signals.finish();
        let mut cols: Vec<ArrayRef> = Vec::new();
        for f in schema.fields() {
            cols.push(match f.name().as_str() {
                "abandoned_at" => Arc::new(abandoned_at.clone()),
                "signals" => Arc::new(signals.clone()),
                name => {
                    let c = col(name)?;
                    datafusion::arrow::compute::cast(c, f.data_type())?
                }
            });
        }
        out.push(RecordBatch::try_new(schema.clone(), cols)?);
    }
    Ok(out)
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
) -> Result<([Vec<RecordBatch>; 5], Summary)> {
    let d = &m.derived;
    let recorded_spans = string_set(
        ctx,
        &format!(
            "SELECT DISTINCT attributes[{}] FROM traces WHERE operation_name = {} AND attributes[{}] IS NOT NULL",
            lit(&d.cart_id_attribute),
            lit(&d.span_name),
            lit(&d.cart_id_attribute)
        ),
    )
    .await?;
    let recorded_points = string_set(
        ctx,
        &format!(
            "SELECT DISTINCT attributes[{}] FROM metrics WHERE name = {} AND attributes[{}] = {} AND attributes[{}] IS NOT NULL",
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
                    crate::otlp::values::write_f64(&mut value_text, v);
                    attrs.push("cart.total_value", Some(&value_text));
                }
                attrs.push("cart.last_operation", opt(&op).as_deref());
                if let Some(ms) = dur.as_ref().filter(|d| d.is_valid(i)) {
                    value_text.clear();
                    crate::otlp::values::write_f64(&mut value_text, ms.value(i));
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
                    derived: true,
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
                    derived: true,
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
