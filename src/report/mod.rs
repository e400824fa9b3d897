//! `cartscope report`: the day's answer for a cron job or an analyst: how many carts were
//! abandoned, what it cost, and what most likely drove it.
//!
//! `Report` is the one data model; every format renders it (`render.rs`), and its JSON form
//! is a documented, stable schema with a `version` (the input of `cartscope check --baseline`).
//! Figures come from the replay's tables in SQL; the statistics from `stats.rs`.
//!
//! The drivers ("why"): the population is the carts of the period that reached the checkout
//! (the model's second stage) and were decided, abandoned or converted, so a driver is
//! compared among carts that got as far; carts are counted, not spans. Each candidate is a
//! yes/no property of a cart: an operation slower than the model's slow threshold or than
//! its own p95, an operation that failed, a value of one of the report's attributes (span or
//! resource, e.g. `service.version` of the payment service), and numeric covariates split at
//! their median (cart value, item count, each checkout operation's latency). For each: the
//! relative risk of abandonment with a 95% interval, Fisher's exact test or the G-test
//! (`stats::association_p_value`), Benjamini-Hochberg across all candidates, a minimum
//! support, and the excess abandoned carts and value it explains; ranked by that value.

pub mod html;
pub mod render;

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::replay::model::Model;
use crate::stats::{self, TwoByTwo};
use crate::time::{Duration, Timestamp};

pub const REPORT_VERSION: u32 = 1;

/// How many abandoned carts the report lists by value, unless told.
pub const DEFAULT_TOP: usize = 10;
/// The fewest carts a driver needs, unless told.
pub const DEFAULT_MIN_SUPPORT: u64 = 20;

/// Attributes whose values are candidate drivers, unless the caller names others.
pub const DEFAULT_ATTRIBUTES: [&str; 6] = [
    "service.version",
    "user.segment",
    "cloud.region",
    "payment.method",
    "shipping.carrier",
    "deployment.environment.name",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The schema's version: fields are only ever added within a version.
    pub version: u32,
    pub generator: String,
    pub model: String,
    pub as_of: Timestamp,
    pub threshold: Duration,
    pub period: Period,
    pub summary: Summary,
    pub previous: Summary,
    /// Each summary figure against the previous period of the same length.
    pub changes: Vec<Change>,
    pub funnel: Vec<FunnelStage>,
    pub by_last_stage: Vec<Count>,
    pub by_last_operation: Vec<OperationRow>,
    /// Every operation with spans in the period, by name: the measures `cartscope check`
    /// reads for an operation (added within version 1; absent in older reports).
    #[serde(default)]
    pub operations: Vec<OperationStats>,
    pub causes: Vec<Count>,
    pub top_abandoned: Vec<TopCart>,
    pub drivers: Vec<Driver>,
    pub latency_curves: Vec<LatencyCurve>,
    /// Abandonments per hour of the period, by suspected cause.
    pub by_hour: Vec<HourRow>,
    /// Signs that the lifecycle model does not fit the data, each with its likely fix (added
    /// within version 1; absent when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Period {
    pub since: Timestamp,
    pub until: Timestamp,
}

impl Period {
    pub fn length_ns(&self) -> i64 {
        self.until.ns().saturating_sub(self.since.ns())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub carts: u64,
    pub converted: u64,
    pub abandoned: u64,
    pub active: u64,
    pub recovered: u64,
    /// abandoned / (abandoned + converted); active carts are censored.
    pub abandonment_rate: f64,
    pub abandonment_rate_ci95: [f64; 2],
    /// The value of abandoned carts: revenue at risk.
    pub abandoned_value: f64,
}

impl Summary {
    /// The abandonment rate and its 95% interval, or `None` for a period without decided
    /// (abandoned or converted) carts, which has no rate; the JSON writes 0 there, so read it
    /// through this. Every format shows a missing rate the same way.
    pub fn rate(&self) -> Option<(f64, [f64; 2])> {
        (self.abandoned + self.converted > 0)
            .then_some((self.abandonment_rate, self.abandonment_rate_ci95))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Change {
    pub figure: String,
    pub current: f64,
    pub previous: f64,
    pub change: f64,
    /// Two-sided p-value of the change (rates: two-proportion test; counts: Poisson
    /// approximation); null when there is nothing to compare.
    pub p_value: Option<f64>,
    /// Larger than chance at the 5% level.
    pub significant: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunnelStage {
    pub stage: String,
    pub carts: u64,
    pub dropped: u64,
    pub drop_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Count {
    pub name: String,
    pub carts: u64,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OperationRow {
    pub operation: String,
    /// Abandonments right after this operation.
    pub abandoned: u64,
    pub share: f64,
    /// Over all its spans in the period.
    pub spans: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub error_rate: f64,
}

/// An operation's latency percentiles (nearest rank) and error rate over its spans in the
/// period.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OperationStats {
    pub operation: String,
    pub spans: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub error_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopCart {
    pub cart_id: String,
    pub value: f64,
    pub last_operation: String,
    pub last_op_duration_ms: f64,
    pub last_op_status: String,
    pub suspected_cause: Option<String>,
    pub trace_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Driver {
    pub driver: String,
    /// slow_operation, failed_operation, attribute or numeric.
    pub kind: String,
    /// Carts with the property (of the population).
    pub support: u64,
    pub abandoned: u64,
    pub abandonment_rate: f64,
    pub baseline_rate: f64,
    pub relative_risk: Option<f64>,
    pub relative_risk_ci95: Option<[f64; 2]>,
    /// When no cart without the driver was abandoned, the relative risk has no finite value:
    /// `relative_risk` is null and this is the lower limit of its 95% interval (carts with the
    /// driver are abandoned at least this many times as often). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_risk_at_least: Option<f64>,
    pub test: String,
    pub p_value: f64,
    /// Benjamini-Hochberg across all candidates.
    pub q_value: f64,
    /// Abandonments beyond what the baseline rate predicts.
    pub excess_abandoned: f64,
    pub excess_value: f64,
    pub significant: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatencyCurve {
    pub operation: String,
    pub carts: u64,
    /// Points of conversion (percentage points) per extra second, at the median latency.
    pub points_per_second: Option<f64>,
    pub slope: Option<f64>,
    pub slope_ci95: Option<[f64; 2]>,
    /// Conversion by latency bucket, for the chart.
    pub buckets: Vec<LatencyBucket>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatencyBucket {
    pub from_ms: f64,
    pub to_ms: Option<f64>,
    pub carts: u64,
    pub conversion: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HourRow {
    /// The hour's start, written to the second (`2026-11-20T10:00:00Z`).
    #[serde(with = "whole_seconds")]
    pub hour: Timestamp,
    pub causes: BTreeMap<String, u64>,
}

/// A timestamp written to the whole second, as SQL writes a truncated hour.
mod whole_seconds {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::time::Timestamp;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        let secs = t.ns().div_euclid(1_000_000_000);
        match chrono::DateTime::from_timestamp(secs, 0) {
            Some(d) => s.collect_str(&d.format("%Y-%m-%dT%H:%M:%SZ")),
            None => s.collect_str(t),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e: anyhow::Error| serde::de::Error::custom(format!("{e:#}")))
    }
}

/// What to report on.
#[derive(Debug, Clone)]
pub struct Options {
    pub period: Period,
    pub as_of: Timestamp,
    pub threshold: Duration,
    /// The replay's misfit warnings, carried into the report.
    pub warnings: Vec<String>,
    pub top: usize,
    pub min_support: u64,
    pub attributes: Vec<String>,
}

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

async fn batches(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// Column `i` of every row as text / number / count.
fn strings(bs: &[RecordBatch], i: usize) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for b in bs {
        let c = datafusion::arrow::compute::cast(
            b.column(i),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .expect("cast to text");
        let a = c.as_string::<i32>();
        out.extend((0..a.len()).map(|r| a.is_valid(r).then(|| a.value(r).to_string())));
    }
    out
}

/// Column `i` of every batch cast to `T`, nulls as `None`.
fn primitives<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
    bs: &[RecordBatch],
    i: usize,
) -> Vec<Option<T::Native>> {
    let mut out = Vec::new();
    for b in bs {
        let c = datafusion::arrow::compute::cast(b.column(i), &T::DATA_TYPE)
            .expect("a numeric column casts");
        out.extend(c.as_primitive::<T>().iter());
    }
    out
}

fn floats(bs: &[RecordBatch], i: usize) -> Vec<Option<f64>> {
    primitives::<Float64Type>(bs, i)
}

fn ints(bs: &[RecordBatch], i: usize) -> Vec<Option<i64>> {
    primitives::<Int64Type>(bs, i)
}

/// A count column: null and negative read as 0.
fn counts(bs: &[RecordBatch], i: usize) -> Vec<u64> {
    ints(bs, i)
        .into_iter()
        .map(|v| v.map_or(0, |n| n.max(0) as u64))
        .collect()
}

/// The carts of a period: those first seen in [since, until).
fn period_filter(since_ns: i64, until_ns: i64) -> String {
    format!(
        "CAST(first_seen AS BIGINT) >= {} AND CAST(first_seen AS BIGINT) < {}",
        since_ns.div_euclid(1000),
        until_ns.div_euclid(1000)
    )
}

async fn summary_of(ctx: &SessionContext, filter: &str) -> Result<Summary> {
    let b = batches(
        ctx,
        &format!(
            "SELECT count(*),
                    count(*) FILTER (WHERE outcome = 'converted'),
                    count(*) FILTER (WHERE outcome = 'abandoned'),
                    count(*) FILTER (WHERE outcome = 'active'),
                    count(*) FILTER (WHERE outcome = 'recovered'),
                    coalesce(sum(total_value) FILTER (WHERE outcome = 'abandoned'), 0)
             FROM carts WHERE {filter}"
        ),
    )
    .await?;
    let c: Vec<u64> = (0..5).map(|i| counts(&b, i)[0]).collect();
    let value = floats(&b, 5)[0].unwrap_or(0.0);
    let decided = c[1] + c[2];
    let (lo, hi) = stats::wilson_interval(c[2], decided, stats::Z_95);
    Ok(Summary {
        carts: c[0],
        converted: c[1],
        abandoned: c[2],
        active: c[3],
        recovered: c[4],
        abandonment_rate: if decided > 0 {
            round(c[2] as f64 / decided as f64, 6)
        } else {
            0.0
        },
        abandonment_rate_ci95: [round(lo, 6), round(hi, 6)],
        abandoned_value: round(value, 2),
    })
}

fn changes(cur: &Summary, prev: &Summary) -> Vec<Change> {
    let mut out = Vec::new();
    let rate = |s: &Summary| (s.abandoned, s.abandoned + s.converted);
    let (x1, n1) = rate(cur);
    let (x2, n2) = rate(prev);
    let p = (n1 > 0 && n2 > 0).then(|| stats::two_proportion_z_test(x1, n1, x2, n2));
    out.push(Change {
        figure: "abandonment_rate".into(),
        current: cur.abandonment_rate,
        previous: prev.abandonment_rate,
        change: round(cur.abandonment_rate - prev.abandonment_rate, 6),
        p_value: p.map(|p| round(p, 6)),
        significant: p.is_some_and(|p| p < 0.05),
    });
    // Counts: under "no change" the two periods' counts split as a fair coin would, so the
    // exact binomial test of the split is the test (Poisson counts conditioned on their sum).
    for (name, a, b) in [
        ("carts", cur.carts, prev.carts),
        ("abandoned", cur.abandoned, prev.abandoned),
        ("converted", cur.converted, prev.converted),
    ] {
        let p = (a + b > 0).then(|| {
            let t = TwoByTwo {
                exposed_bad: a,
                exposed_good: b,
                unexposed_bad: (a + b) / 2,
                unexposed_good: (a + b) - (a + b) / 2,
            };
            stats::association_p_value(&t).1
        });
        out.push(Change {
            figure: name.into(),
            current: a as f64,
            previous: b as f64,
            change: a as f64 - b as f64,
            p_value: p.map(|p| round(p, 6)),
            significant: p.is_some_and(|p| p < 0.05),
        });
    }
    out.push(Change {
        figure: "abandoned_value".into(),
        current: cur.abandoned_value,
        previous: prev.abandoned_value,
        change: round(cur.abandoned_value - prev.abandoned_value, 2),
        p_value: None,
        significant: false,
    });
    out
}

/// Latency percentiles (nearest rank) and error rate of every operation among the spans the
/// filter keeps, by name.
async fn operation_stats(ctx: &SessionContext, span_filter: &str) -> Result<Vec<OperationStats>> {
    let spans = format!(
        "FROM observed_traces WHERE {span_filter} AND duration_ms IS NOT NULL
           AND operation_name IS NOT NULL"
    );
    let b = batches(
        ctx,
        &format!(
            "SELECT operation_name, count(*),
                    avg(CASE WHEN status_code = 'error' THEN 1.0 ELSE 0.0 END)
             {spans} GROUP BY operation_name ORDER BY operation_name"
        ),
    )
    .await?;
    let ops = strings(&b, 0);
    let spans_of = counts(&b, 1);
    let err = floats(&b, 2);
    // Nearest-rank percentiles, exactly, in memory that grows with the operations only.
    let durations = format!("SELECT operation_name, duration_ms {spans}");
    let p = crate::replay::percentiles_at(ctx, &durations, &[0.5, 0.95, 0.99]).await?;
    let at = |k: usize, op: &Option<String>| {
        op.as_deref().and_then(|op| p.get(op)).map_or(0.0, |v| v[k])
    };
    Ok((0..ops.len())
        .map(|i| OperationStats {
            operation: ops[i].clone().unwrap_or_default(),
            spans: spans_of[i],
            p50_ms: round(at(0, &ops[i]), 3),
            p95_ms: round(at(1, &ops[i]), 3),
            p99_ms: round(at(2, &ops[i]), 3),
            error_rate: round(err[i].unwrap_or(0.0), 4),
        })
        .collect())
}

/// Builds the report from a replayed session.
pub async fn build(ctx: &SessionContext, m: &Model, o: &Options) -> Result<Report> {
    let (since_ns, until_ns) = (o.period.since.ns(), o.period.until.ns());
    let cur = period_filter(since_ns, until_ns);
    let len = until_ns - since_ns;
    let prev = period_filter(since_ns.saturating_sub(len), since_ns);
    let summary = summary_of(ctx, &cur).await?;
    let previous = summary_of(ctx, &prev).await?;
    let period_carts = format!("SELECT cart_id FROM carts WHERE {cur}");

    // Funnel: carts whose furthest stage is at least each stage.
    let b = batches(
        ctx,
        &format!(
            "WITH f AS (SELECT cart_id, max(stage_order) AS s FROM cart_events
                        WHERE cart_id IN ({period_carts}) GROUP BY cart_id)
             SELECT st.stage, count(f.cart_id) FROM stages st LEFT JOIN f ON f.s >= st.stage_order
             GROUP BY st.stage, st.stage_order ORDER BY st.stage_order"
        ),
    )
    .await?;
    let names = strings(&b, 0);
    let reached = counts(&b, 1);
    let mut funnel = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let prev_c = if i == 0 { reached[0] } else { reached[i - 1] };
        let dropped = prev_c.saturating_sub(reached[i]);
        funnel.push(FunnelStage {
            stage: n.clone().unwrap_or_default(),
            carts: reached[i],
            dropped,
            drop_rate: if prev_c > 0 {
                round(dropped as f64 / prev_c as f64, 4)
            } else {
                0.0
            },
        });
    }

    let grouped = |col: &str| {
        format!(
            "SELECT coalesce({col}, 'none'), count(*), round(coalesce(sum(total_value), 0), 2) FROM carts
             WHERE {cur} AND outcome = 'abandoned' GROUP BY 1 ORDER BY 2 DESC, 1"
        )
    };
    let to_counts = |b: &[RecordBatch]| -> Vec<Count> {
        let (n, c, v) = (strings(b, 0), counts(b, 1), floats(b, 2));
        n.into_iter()
            .zip(c)
            .zip(v)
            .map(|((n, c), v)| Count {
                name: n.unwrap_or_default(),
                carts: c,
                value: v.unwrap_or(0.0),
            })
            .collect()
    };
    let by_last_stage = to_counts(&batches(ctx, &grouped("last_stage")).await?);
    let causes = to_counts(&batches(ctx, &grouped("suspected_cause")).await?);

    // By last operation, with that operation's latency and errors over the period's spans.
    let span_period = format!(
        "CAST(start_time AS BIGINT) >= {} AND CAST(start_time AS BIGINT) < {}",
        o.period.since.micros(),
        o.period.until.micros()
    );
    crate::output::phase("report: summaries, funnel, groups");
    let operations = operation_stats(ctx, &span_period).await?;
    crate::output::phase("report: operation stats");
    let b = batches(
        ctx,
        &format!(
            "SELECT last_operation, count(*) FROM carts
             WHERE {cur} AND outcome = 'abandoned' GROUP BY 1 ORDER BY 2 DESC, 1"
        ),
    )
    .await?;
    let (ops, n) = (strings(&b, 0), counts(&b, 1));
    let total: u64 = n.iter().sum();
    let by_last_operation = ops
        .into_iter()
        .zip(n)
        .map(|(op, n)| {
            let op = op.unwrap_or_default();
            let st = operations.iter().find(|s| s.operation == op);
            OperationRow {
                abandoned: n,
                share: round(n as f64 / total.max(1) as f64, 4),
                spans: st.map_or(0, |s| s.spans),
                p50_ms: st.map_or(0.0, |s| s.p50_ms),
                p95_ms: st.map_or(0.0, |s| s.p95_ms),
                p99_ms: st.map_or(0.0, |s| s.p99_ms),
                error_rate: st.map_or(0.0, |s| s.error_rate),
                operation: op,
            }
        })
        .collect();

    let b = batches(
        ctx,
        &format!(
            "SELECT cart_id, coalesce(total_value, 0), last_operation, last_op_duration_ms, last_op_status,
                    suspected_cause, last_trace_id
             FROM carts WHERE {cur} AND outcome = 'abandoned'
             ORDER BY total_value DESC NULLS LAST, cart_id LIMIT {}",
            o.top
        ),
    )
    .await?;
    let (ids, vals, lops, ldur, lst, lca, ltr) = (
        strings(&b, 0),
        floats(&b, 1),
        strings(&b, 2),
        floats(&b, 3),
        strings(&b, 4),
        strings(&b, 5),
        strings(&b, 6),
    );
    let top_abandoned = (0..ids.len())
        .map(|i| TopCart {
            cart_id: ids[i].clone().unwrap_or_default(),
            value: vals[i].unwrap_or(0.0),
            last_operation: lops[i].clone().unwrap_or_default(),
            last_op_duration_ms: round(ldur[i].unwrap_or(0.0), 3),
            last_op_status: lst[i].clone().unwrap_or_default(),
            suspected_cause: lca[i].clone(),
            trace_id: ltr[i].clone().unwrap_or_default(),
        })
        .collect();

    let b = batches(
        ctx,
        &format!(
            "SELECT CAST(date_trunc('hour', abandoned_at) AS BIGINT) AS h, coalesce(suspected_cause, 'none'), count(*)
             FROM carts WHERE {cur} AND outcome = 'abandoned' AND abandoned_at IS NOT NULL
             GROUP BY 1, 2 ORDER BY 1, 2"
        ),
    )
    .await?;
    // An abandoned cart always has its abandoned_at (its last activity plus the threshold).
    let (hours, hc, hn) = (ints(&b, 0), strings(&b, 1), counts(&b, 2));
    let mut by_hour: Vec<HourRow> = Vec::new();
    for i in 0..hours.len() {
        let Some(h) = hours[i].and_then(|us| us.checked_mul(1000)) else {
            continue;
        };
        let h = Timestamp::from_ns(h);
        if by_hour.last().is_none_or(|r| r.hour != h) {
            by_hour.push(HourRow {
                hour: h,
                causes: BTreeMap::new(),
            });
        }
        if let Some(r) = by_hour.last_mut() {
            r.causes.insert(hc[i].clone().unwrap_or_default(), hn[i]);
        }
    }

    crate::output::phase("report: last operations, top carts, hours");
    let (drivers, latency_curves) = drivers(ctx, m, o, &cur).await?;
    crate::output::phase("report: drivers and latency curves");
    Ok(Report {
        version: REPORT_VERSION,
        generator: format!("cartscope {}", env!("CARGO_PKG_VERSION")),
        model: m.name.clone(),
        as_of: o.as_of,
        threshold: o.threshold,
        period: o.period.clone(),
        changes: changes(&summary, &previous),
        summary,
        previous,
        funnel,
        by_last_stage,
        by_last_operation,
        operations,
        causes,
        top_abandoned,
        drivers,
        latency_curves,
        by_hour,
        warnings: o.warnings.clone(),
    })
}

/// One candidate judged on its 2x2 table: its exact (or G) test, its relative risk with a
/// 95% interval, and the abandonments and value it explains. A driver without any abandonment
/// among the carts that lack it has no finite relative risk: it is reported by the lower
/// limit of its interval (`relative_risk_at_least`), and its test and excess are computed as
/// for any other. `q_value` and `significant` are set by [`rank`].
fn score(kind: &str, label: &str, t: &TwoByTwo, exposed_bad_value: f64) -> Driver {
    let (test, p) = stats::association_p_value(t);
    let excess = t.excess_bad().unwrap_or(0.0);
    let per_bad = if t.exposed_bad > 0 {
        exposed_bad_value / t.exposed_bad as f64
    } else {
        0.0
    };
    let ci = t.rr_confidence_interval(stats::Z_95);
    let unbounded = t.unexposed_risk() == Some(0.0) && t.exposed_risk().is_some_and(|r| r > 0.0);
    Driver {
        driver: label.to_string(),
        kind: kind.to_string(),
        support: t.exposed_bad + t.exposed_good,
        abandoned: t.exposed_bad,
        abandonment_rate: round(t.exposed_risk().unwrap_or(0.0), 4),
        baseline_rate: round(t.unexposed_risk().unwrap_or(0.0), 4),
        relative_risk: t.relative_risk().map(|r| round(r, 4)),
        relative_risk_ci95: ci.map(|(a, b)| [round(a, 4), round(b, 4)]),
        relative_risk_at_least: ci.filter(|_| unbounded).map(|(lo, _)| round(lo, 4)),
        test: test.name().to_string(),
        p_value: p,
        q_value: 1.0,
        excess_abandoned: round(excess, 2),
        excess_value: round(excess.max(0.0) * per_bad, 2),
        significant: false,
    }
}

/// Controls the false discovery rate across all candidates (Benjamini-Hochberg) and ranks
/// them: the significant ones first, by the abandoned value they explain. A candidate is
/// significant when its q-value is below 0.05 and carts with it are abandoned more often
/// than carts without it, whether or not its relative risk is finite.
fn rank(out: &mut [Driver]) {
    let ps: Vec<f64> = out.iter().map(|d| d.p_value).collect();
    let q = stats::benjamini_hochberg(&ps);
    for (d, q) in out.iter_mut().zip(q) {
        d.q_value = q;
        d.significant = q < 0.05 && d.abandonment_rate > d.baseline_rate;
    }
    out.sort_by(|a, b| {
        b.significant
            .cmp(&a.significant)
            .then(b.excess_value.total_cmp(&a.excess_value))
            .then(a.driver.cmp(&b.driver))
    });
}

/// Runs `sql` and hands its rows to `each`, a batch at a time, never the whole result.
async fn each_batch(
    ctx: &SessionContext,
    sql: &str,
    mut each: impl FnMut(&[RecordBatch]),
) -> Result<()> {
    let mut rows = ctx.sql(sql).await?.execute_stream().await?;
    while let Some(b) = futures::StreamExt::next(&mut rows).await {
        each(&[b?]);
    }
    Ok(())
}

/// One cart's slowest span of one checkout operation (`drivers`).
struct CartOperation {
    /// The cart: its place in the population.
    cart: u32,
    /// The operation: its place in the operations' names.
    operation: u32,
    /// NaN when unknown (16 bytes a row where an `Option` takes 24).
    duration_ms: f64,
}

impl CartOperation {
    fn duration_ms(&self) -> Option<f64> {
        (!self.duration_ms.is_nan()).then_some(self.duration_ms)
    }
}

/// The candidates of `drivers`: (kind, label) -> (the stage it shows at, the carts that have
/// it, maybe twice).
#[derive(Default)]
struct Features {
    map: BTreeMap<(String, String), (i64, Vec<u32>)>,
    /// The carts' places the lists hold room for.
    room: usize,
}

impl Features {
    fn add(&mut self, kind: &str, label: String, stage: i64, i: u32) {
        let e = self
            .map
            .entry((kind.to_string(), label))
            .or_insert((stage, Vec::new()));
        e.0 = e.0.min(stage);
        let before = e.1.capacity();
        e.1.push(i);
        self.room += e.1.capacity() - before;
    }

    fn bytes(&self) -> usize {
        self.room * std::mem::size_of::<u32>()
    }
}

/// What `drivers` holds, reserved in the memory pool of --memory-limit as it grows, so that
/// the queries running beside it spill sooner and the whole stays within the cap. Past the
/// cap it holds it all the same, outside the cap (a note says so): the analysis needs it.
struct Held {
    reservation: datafusion::execution::memory_pool::MemoryReservation,
    over: bool,
}

impl Held {
    /// Reserves nothing if not `reserve`.
    fn new(ctx: &SessionContext, reserve: bool) -> Self {
        let pool = &ctx.runtime_env().memory_pool;
        Self {
            reservation: datafusion::execution::memory_pool::MemoryConsumer::new(
                "the report's driver analysis",
            )
            .register(pool),
            over: !reserve,
        }
    }

    fn set(&mut self, bytes: usize) {
        if self.over || self.reservation.try_resize(bytes).is_ok() {
            return;
        }
        // Holding what it got would starve the queries it still runs: it lets it all go.
        self.over = true;
        self.reservation.free();
        eprintln!(
            "cartscope: note: the report's driver analysis holds more than --memory-limit leaves it ({} and growing, over 100 bytes per decided cart, and 4 per property of a cart): it goes on outside the cap",
            crate::output::human_bytes(bytes as u64)
        );
    }
}

/// The population of the driver analysis and each cart's candidate properties. What it holds
/// grows with the decided carts and is reserved in the memory pool (`Held`), so it is kept
/// small: per cart, its outcome, value, item count and furthest stage, and its id in one
/// string with an index; per cart and checkout operation, 16 bytes; per cart and candidate
/// it has, 4 bytes (about 200 MB at 1M carts).
///
/// Its joins hold the population's carts (and, for the attributes, every cart event's span
/// ids: 463 MB at 1M carts) in hash tables that cannot spill: when the data is larger than
/// the memory cap, they join by sorting instead, which spills (1M carts under 1 GB: peak
/// 1.59 GB -> 1.29 GB, 1 s slower), across two partitions (DataFusion plans no sort-merge
/// join in one). Past the cap all the same (two sorts side by side, 100k carts under 64 MB),
/// it runs again as the session's other queries do, and holds its own rows outside the cap:
/// a note says so.
async fn drivers(
    ctx: &SessionContext,
    m: &Model,
    o: &Options,
    cur: &str,
) -> Result<(Vec<Driver>, Vec<LatencyCurve>)> {
    let joins = crate::sql::session::joins(ctx);
    let first = if crate::sql::session::frugal(ctx) {
        (false, joins.1.max(2))
    } else {
        joins
    };
    crate::sql::session::set_joins(ctx, first);
    let mut r = drivers_of(ctx, m, o, cur, true).await;
    if let Some(e) = r
        .as_ref()
        .err()
        .filter(|e| crate::sql::session::exhausted(e))
    {
        // The first line of DataFusion's account (which operator, how much it asked for).
        let why = e.to_string();
        let why = why.lines().next().unwrap_or_default();
        let why = why
            .split(" with top memory consumers")
            .next()
            .unwrap_or(why);
        eprintln!(
            "cartscope: note: the report's driver analysis did not fit in the memory it may use ({}; {why}): running it again with its own rows held outside that cap",
            crate::output::human_bytes(crate::sql::session::memory_limit() as u64)
        );
        crate::sql::session::set_joins(ctx, joins);
        r = drivers_of(ctx, m, o, cur, false).await;
    }
    crate::sql::session::set_joins(ctx, joins);
    r.map_err(|e| crate::sql::session::out_of_memory(e, "the report's driver analysis"))
}

/// `drivers`, its rows reserved in the memory pool if `reserve`.
async fn drivers_of(
    ctx: &SessionContext,
    m: &Model,
    o: &Options,
    cur: &str,
    reserve: bool,
) -> Result<(Vec<Driver>, Vec<LatencyCurve>)> {
    let checkout_order: i64 = if m.stages.len() > 1 { 2 } else { 1 };
    let slow = m.causes.slow_ms;
    // Every decided cart of the period with the furthest stage it reached; each driver is then
    // judged among the carts that reached the stage where it shows (its own stage).
    let pop_sql = format!(
        "SELECT c.cart_id, c.outcome = 'abandoned' AS bad, coalesce(c.total_value, 0) AS v,
                coalesce(c.item_count, 0) AS n, f.s AS furthest
         FROM carts c JOIN (SELECT cart_id, max(stage_order) AS s FROM cart_events GROUP BY cart_id) f
           ON c.cart_id = f.cart_id
         WHERE {cur} AND c.outcome IN ('abandoned', 'converted')
         ORDER BY c.cart_id"
    );
    // The carts' ids, one after another in one string, each ending where `ends` says.
    let (mut text, mut ends) = (String::new(), Vec::<usize>::new());
    let (mut bad, mut value, mut items, mut furthest) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    each_batch(ctx, &pop_sql, |b| {
        for id in strings(b, 0) {
            text.push_str(&id.unwrap_or_default());
            ends.push(text.len());
        }
        bad.extend(
            strings(b, 1)
                .into_iter()
                .map(|s| s.as_deref() == Some("true")),
        );
        value.extend(floats(b, 2));
        items.extend(floats(b, 3));
        furthest.extend(counts(b, 4).into_iter().map(|x| x as i64));
    })
    .await?;
    let n = bad.len();
    // A cart's place in the population, by its id (the last of a repeated id).
    let index: HashMap<&str, u32> = (0..n)
        .map(|i| {
            (
                &text[if i == 0 { 0 } else { ends[i - 1] }..ends[i]],
                i as u32,
            )
        })
        .collect();
    drop(ends);
    let mut held = Held::new(ctx, reserve);
    let per_cart_bytes = 1 + 3 * std::mem::size_of::<Option<f64>>();
    let index_bytes = text.capacity() + index.capacity() * (std::mem::size_of::<(&str, u32)>() + 1);
    // Per cart, and for the index of their ids; then what grows with their properties.
    let fixed = n * per_cart_bytes + index_bytes;
    let held_bytes = |per_cart: &Vec<CartOperation>, features: &Features| {
        per_cart.capacity() * std::mem::size_of::<CartOperation>() + features.bytes()
    };
    held.set(fixed);
    let cart = |id: &Option<String>| id.as_deref().and_then(|c| index.get(c).copied());
    let mut features = Features::default();

    // Operations of the checkout stages: slow, slower than their own p95, failed.
    let attrs_case = o
        .attributes
        .iter()
        .map(|k| {
            format!(
                "coalesce(t.attributes[{k}], t.resource_attributes[{k}])",
                k = lit(k)
            )
        })
        .collect::<Vec<_>>();
    // Each operation's place, by its name.
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut per_cart: Vec<CartOperation> = Vec::new();
    // Each operation's stage: that of the last cart (in cart_id order) it shows in.
    let mut op_stage: BTreeMap<String, i64> = BTreeMap::new();
    // Each operation's p95 over every observed span, written into the query as text that
    // reads back as the same double.
    let p95 = crate::replay::percentiles(ctx, crate::replay::DURATIONS_SQL, 0.95).await?;
    let mut p95: Vec<(String, f64)> = p95.into_iter().collect();
    p95.sort_by(|a, b| a.0.cmp(&b.0));
    let p95 = if p95.is_empty() {
        "CAST(NULL AS DOUBLE)".to_string()
    } else {
        let whens: String = p95
            .iter()
            .map(|(op, v)| format!(" WHEN {} THEN CAST('{v}' AS DOUBLE)", lit(op)))
            .collect();
        format!("CASE e.operation{whens} END")
    };
    each_batch(
        ctx,
        &format!(
            "WITH pop AS ({pop_sql})
             SELECT e.cart_id, e.operation, max(e.duration_ms), bool_or(e.status_code = 'error'),
                    bool_or(e.duration_ms > {p95}), coalesce(min(e.stage_order), {checkout_order})
             FROM cart_events e JOIN pop ON e.cart_id = pop.cart_id
             WHERE e.stage_order >= {checkout_order}
             GROUP BY e.cart_id, e.operation ORDER BY 1, 2"
        ),
        |b| {
            let (cid, opcol, dur, failed, over) = (
                strings(b, 0),
                strings(b, 1),
                floats(b, 2),
                strings(b, 3),
                strings(b, 4),
            );
            let stage_col = counts(b, 5);
            for r in 0..cid.len() {
                let (Some(i), Some(op)) = (cart(&cid[r]), &opcol[r]) else {
                    continue;
                };
                let d = dur[r].unwrap_or(0.0);
                let st = stage_col[r] as i64;
                op_stage.insert(op.clone(), st);
                if d > slow {
                    features.add(
                        "slow_operation",
                        format!("{op} slower than {slow} ms"),
                        st,
                        i,
                    );
                }
                if over[r].as_deref() == Some("true") {
                    features.add("slow_operation", format!("{op} slower than its p95"), st, i);
                }
                if failed[r].as_deref() == Some("true") {
                    features.add("failed_operation", format!("{op} failed"), st, i);
                }
                let operation = match ids.get(op.as_str()) {
                    Some(&id) => id,
                    None => {
                        let id = ids.len() as u32;
                        ids.insert(op.clone(), id);
                        id
                    }
                };
                per_cart.push(CartOperation {
                    cart: i,
                    operation,
                    duration_ms: dur[r].unwrap_or(f64::NAN),
                });
            }
            held.set(fixed + held_bytes(&per_cart, &features));
        },
    )
    .await?;
    per_cart.shrink_to_fit();
    crate::output::phase("report: drivers: operations per cart");

    // Attribute values of the cart's spans and their resources: every attribute from one
    // join of the cart's events to their spans (one join per attribute took 42 of the 55 s
    // of a 1M-cart report), each span's values unnested as (attribute, value) pairs.
    if !attrs_case.is_empty() {
        let pairs = attrs_case
            .iter()
            .enumerate()
            .map(|(k, expr)| format!("named_struct('k', {k}, 'v', {expr})"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "WITH pop AS ({pop_sql}),
             kv AS (
                 SELECT e.cart_id, t.service_name, e.stage_order,
                        unnest(make_array({pairs})) AS kv
                 FROM cart_events e JOIN pop ON e.cart_id = pop.cart_id
                 JOIN observed_traces t ON t.trace_id = e.trace_id AND t.span_id = e.span_id)
             SELECT kv['k'], cart_id, service_name, kv['v'], coalesce(min(stage_order), 1)
             FROM kv WHERE kv['v'] IS NOT NULL GROUP BY 1, 2, 3, 4"
        );
        each_batch(ctx, &sql, |b| {
            let (which, cid, svc, v) = (ints(b, 0), strings(b, 1), strings(b, 2), strings(b, 3));
            let st = counts(b, 4);
            for r in 0..cid.len() {
                let (Some(k), Some(i), Some(v)) = (
                    which[r].and_then(|k| o.attributes.get(k as usize)),
                    cart(&cid[r]),
                    &v[r],
                ) else {
                    continue;
                };
                // Resource attributes that vary by service (a version) are named with
                // their service.
                let label = match (&svc[r], k.starts_with("service.")) {
                    (Some(s), true) => format!("{k} = {v} ({s})"),
                    _ => format!("{k} = {v}"),
                };
                features.add("attribute", label, st[r] as i64, i);
            }
            held.set(fixed + held_bytes(&per_cart, &features));
        })
        .await?;
    }

    crate::output::phase("report: drivers: attributes per cart");
    // Numeric covariates, split at the median of the carts that reached their stage.
    let mut numeric = |name: &str, stage: i64, xs: &[Option<f64>]| {
        let mut known: Vec<f64> = (0..n)
            .filter(|&i| furthest[i] >= stage)
            .filter_map(|i| xs[i])
            .collect();
        known.sort_by(|a, b| a.total_cmp(b));
        if let Some(med) = stats::nearest_rank(&known, 0.5) {
            let label = format!("{name} above its median ({})", round(med, 2));
            for (i, x) in xs.iter().enumerate() {
                if x.is_some_and(|x| x > med) {
                    features.add("numeric", label.clone(), stage, i as u32);
                }
            }
        }
    };
    numeric("cart value", checkout_order, &value);
    numeric("item count", checkout_order, &items);
    drop(items);
    for (op, st) in &op_stage {
        let id = ids[op.as_str()];
        let mut xs = vec![None; n];
        // The cart's slowest span of the operation.
        for r in per_cart.iter().filter(|r| r.operation == id) {
            xs[r.cart as usize] = r.duration_ms();
        }
        numeric(&format!("{op} latency"), *st, &xs);
    }

    // Score every candidate among the carts that reached its stage.
    let mut reached: HashMap<i64, (u64, u64)> = HashMap::new();
    let mut out = Vec::new();
    for ((kind, label), (stage, set)) in &mut features.map {
        set.sort_unstable();
        set.dedup();
        let (members, total_bad) = *reached.entry(*stage).or_insert_with(|| {
            let at = (0..n).filter(|&i| furthest[i] >= *stage);
            let members = at.clone().count() as u64;
            (members, at.filter(|&i| bad[i]).count() as u64)
        });
        let has = |i: &&u32| furthest[**i as usize] >= *stage;
        let support = set.iter().filter(has).count() as u64;
        if support < o.min_support || support == members {
            continue;
        }
        let exposed_bad = set.iter().filter(has).filter(|&&i| bad[i as usize]).count() as u64;
        let t = TwoByTwo {
            exposed_bad,
            exposed_good: support - exposed_bad,
            unexposed_bad: total_bad - exposed_bad,
            unexposed_good: (members - support) - (total_bad - exposed_bad),
        };
        let exposed_bad_value: f64 = set
            .iter()
            .filter(|&&i| bad[i as usize])
            .map(|&i| value[i as usize].unwrap_or(0.0))
            .sum();
        out.push(score(kind, label, &t, exposed_bad_value));
    }
    drop(features);
    rank(&mut out);

    // Latency to conversion: logistic regression of converted on seconds, per operation.
    let mut curves = Vec::new();
    for op in op_stage.into_keys() {
        // The operation's carts, in cart order: (its slowest span, converted).
        let id = ids[op.as_str()];
        let obs: Vec<(f64, bool)> = per_cart
            .iter()
            .filter(|r| r.operation == id)
            .map(|r| (r.duration_ms().unwrap_or(0.0), !bad[r.cart as usize]))
            .collect();
        let x: Vec<f64> = obs.iter().map(|o| o.0 / 1000.0).collect();
        let y: Vec<bool> = obs.iter().map(|o| o.1).collect();
        if y.iter().all(|v| *v == y[0]) {
            // Every cart past it converted (a success step) or none did: no curve to draw.
            continue;
        }
        let fit = stats::logistic_fit(&x, &y);
        let mut sorted = x.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let med = stats::nearest_rank(&sorted, 0.5).unwrap_or(0.0);
        let edges = [0.0, 500.0, 1000.0, 2000.0, 4000.0];
        let buckets = edges
            .iter()
            .enumerate()
            .map(|(k, lo)| {
                let hi = edges.get(k + 1).copied();
                let inside: Vec<&(f64, bool)> = obs
                    .iter()
                    .filter(|o| o.0 >= *lo && hi.is_none_or(|h| o.0 < h))
                    .collect();
                let conv = inside.iter().filter(|o| o.1).count();
                LatencyBucket {
                    from_ms: *lo,
                    to_ms: hi,
                    carts: inside.len() as u64,
                    conversion: (!inside.is_empty())
                        .then(|| round(conv as f64 / inside.len() as f64, 4)),
                }
            })
            .collect();
        curves.push(LatencyCurve {
            operation: op,
            carts: obs.len() as u64,
            points_per_second: fit
                .as_ref()
                .map(|f| round(100.0 * stats::marginal_effect_per_unit(f, med), 3)),
            slope: fit.as_ref().map(|f| round(f.slope, 6)),
            slope_ci95: fit.as_ref().map(|f| {
                let (a, b) = f.slope_confidence_interval(stats::Z_95);
                [round(a, 6), round(b, 6)]
            }),
            buckets,
        });
    }
    Ok((out, curves))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abandoned and converted carts with the driver, then without it.
    fn table(
        exposed_bad: u64,
        exposed_good: u64,
        unexposed_bad: u64,
        unexposed_good: u64,
    ) -> TwoByTwo {
        TwoByTwo {
            exposed_bad,
            exposed_good,
            unexposed_bad,
            unexposed_good,
        }
    }

    /// No cart that reached payment without an error was abandoned: the driver separates
    /// perfectly. It is judged by its exact test, bounded below, significant, and ranked
    /// first by the value it explains, ahead of a driver with a finite relative risk.
    #[test]
    fn a_perfect_separator_is_bounded_significant_and_ranked_by_its_value() {
        let sep = score(
            "failed_operation",
            "payment.authorize failed",
            &table(64, 16, 0, 400),
            64.0 * 120.0,
        );
        assert_eq!(sep.relative_risk, None);
        let lo = sep.relative_risk_at_least.unwrap();
        assert!(lo > 10.0, "{sep:?}");
        assert_eq!(sep.relative_risk_ci95.unwrap()[0], lo);
        assert_eq!(sep.test, "Fisher exact");
        assert!(sep.p_value < 1e-40, "{sep:?}");
        assert_eq!(sep.excess_abandoned, 64.0);
        assert_eq!(sep.excess_value, 64.0 * 120.0);

        let slow = score(
            "slow_operation",
            "shipping.calculate_rates slower than 2000 ms",
            &table(50, 50, 14, 366),
            50.0 * 80.0,
        );
        assert!(slow.relative_risk.unwrap() > 1.0);
        assert_eq!(slow.relative_risk_at_least, None);
        let noise = score(
            "attribute",
            "user.segment = new",
            &table(5, 45, 59, 371),
            500.0,
        );

        let mut all = vec![noise, slow, sep];
        rank(&mut all);
        assert_eq!(all[0].driver, "payment.authorize failed");
        assert!(all[0].significant && all[1].significant);
        assert_eq!(
            all[1].driver,
            "shipping.calculate_rates slower than 2000 ms"
        );
        assert!(!all[2].significant);
    }

    /// Every cart with the driver abandoned (a zero among the converted): the relative risk is
    /// finite, its interval is corrected, and it is significant.
    #[test]
    fn every_cart_with_the_driver_abandoned() {
        let d = score(
            "failed_operation",
            "x failed",
            &table(30, 0, 100, 300),
            300.0,
        );
        assert_eq!(d.relative_risk, Some(4.0));
        assert_eq!(d.relative_risk_at_least, None);
        let [lo, hi] = d.relative_risk_ci95.unwrap();
        assert!(lo > 1.0 && hi > 4.0, "{d:?}");
        let mut v = vec![d];
        rank(&mut v);
        assert!(v[0].significant);
    }

    /// A protective property (no cart with it abandoned) is never a driver, however small its
    /// p-value; and a property with no abandonment on either side has nothing to bound.
    #[test]
    fn protective_and_empty_properties_are_not_drivers() {
        let protective = score("attribute", "a", &table(0, 200, 150, 150), 0.0);
        assert_eq!(protective.relative_risk, Some(0.0));
        assert_eq!(protective.relative_risk_at_least, None);
        assert!(protective.p_value < 1e-20);
        let none = score("attribute", "b", &table(0, 50, 0, 50), 0.0);
        assert_eq!(none.relative_risk, None);
        assert_eq!(none.relative_risk_at_least, None);
        assert_eq!(none.p_value, 1.0);
        let mut v = vec![protective, none];
        rank(&mut v);
        assert!(v.iter().all(|d| !d.significant));
    }
}
