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

mod entries;
pub mod html;
pub mod reconcile;
pub mod render;
mod rows;
pub mod sampling;
pub mod value;
pub mod weighted;

use std::collections::BTreeMap;

use anyhow::Result;
use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::read::projection::{Keys, Projection};
use crate::replay::model::Model;
use crate::sql::passes::{lit, Passes, Scratch};
use crate::stats::{self, TwoByTwo};
use crate::time::{Duration, Timestamp};
use rows::{batches, count, counts, floats, ints, round, strings};
pub use value::ValueCoverage;

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

/// What the report reads of a raw export's attributes beyond the replay: the candidate
/// attributes, on spans and their resources (`coalesce(attributes[a], resource_attributes[a])`
/// in `build`'s drivers), the log records (the top carts' last error or warning line), and
/// every attribute of metric points with the resources' instance ids (a counter's series, to
/// difference cumulative points: `reconcile`), and every span column (the sampling estimate
/// reads trace states, the reconciliation scopes).
pub fn projection(attributes: &[String]) -> Projection {
    Projection {
        span: Keys::only(attributes),
        resource: Keys::only(attributes).with(reconcile::INSTANCE),
        point: Keys::All,
        logs: true,
        span_columns: Keys::All,
        ..Projection::nothing()
    }
}

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
    /// The stage transitions the metrics counted against those the traces show: how
    /// complete the traces are (added within version 1; absent when the export has no
    /// transition counter for the model's stages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciliation: Option<reconcile::Reconciliation>,
    /// The period's carts once the traces' sampling is accounted for (added within version
    /// 1; absent when every trace was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<sampling::Sampling>,
    /// The funnel, the abandoned carts by suspected cause, and the operations, each counted
    /// for what it stands for under the sampling (added within version 1; present with
    /// `sampling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted: Option<weighted::Weighted>,
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
    /// The recorded value of abandoned carts: revenue at risk, as far as it was recorded.
    pub abandoned_value: f64,
    /// How many abandoned carts' value was recorded, and the estimated value of all of them
    /// (added within version 1).
    #[serde(default)]
    pub abandoned_value_coverage: ValueCoverage,
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
    /// The recorded value of these carts.
    pub value: f64,
    /// How many of them had it recorded, and the estimate of all (added within version 1).
    #[serde(default)]
    pub value_coverage: ValueCoverage,
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
    /// The recorded value of the carts abandoned right after it, how many of them had it
    /// recorded, and the estimate of all (added within version 1).
    #[serde(default)]
    pub value: f64,
    #[serde(default)]
    pub value_coverage: ValueCoverage,
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
    /// The cart's recorded value, or its estimate when `value_estimated` (see `value.rs`).
    pub value: f64,
    /// The value is an estimate: the cart recorded none (added within version 1; absent
    /// when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub value_estimated: bool,
    pub last_operation: String,
    pub last_op_duration_ms: f64,
    pub last_op_status: String,
    pub suspected_cause: Option<String>,
    pub trace_id: String,
    /// The cart's last error or warning log line before it was abandoned, from the log
    /// records written in its traces (added within version 1; absent when there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_log: Option<LogLine>,
}

impl TopCart {
    /// The value as a cell, `shown` as the format writes it: `~` before an estimate.
    pub fn value_cell(&self, shown: String) -> String {
        if self.value_estimated {
            format!("~{shown}")
        } else {
            shown
        }
    }
}

/// What a table of top carts says under it when some value is estimated.
pub const ESTIMATED_NOTE: &str =
    "~ estimated: the cart recorded no value; it is estimated as the unknown values of the totals are";

/// One log record, as the report shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogLine {
    pub time: Timestamp,
    /// The record's severity text, or the name of its severity number when it has no text.
    pub severity: String,
    pub body: String,
}

impl LogLine {
    /// The line in a table cell: its severity and body, the body cut at 100 characters.
    pub fn cell(&self) -> String {
        const MAX: usize = 100;
        let body: String = self.body.chars().take(MAX).collect();
        let cut = if self.body.chars().count() > MAX {
            "..."
        } else {
            ""
        };
        format!("{}: {body}{cut}", self.severity)
    }
}

/// The severity numbers of warnings and worse (WARN is 13 to 16 in OpenTelemetry's log data
/// model), and the severity texts taken for them when a record has no number.
const WARNING_OR_WORSE: &str = "(severity_number >= 13 OR (severity_number IS NULL AND \
     upper(severity_text) IN ('WARN', 'WARNING', 'ERROR', 'CRITICAL', 'FATAL', 'SEVERE')))";

/// A warning-or-worse record's severity as said: its text, else its number's name (WARN 13
/// to 16, ERROR 17 to 20, FATAL 21 to 24), as `error_before_abandonment` names it and breaks
/// its last ties by.
const SEVERITY_SAID: &str = "coalesce(l.severity_text, CASE WHEN l.severity_number >= 21 \
     THEN 'FATAL' WHEN l.severity_number >= 17 THEN 'ERROR' ELSE 'WARN' END)";

/// A warning-or-worse record's severity as a number: its own, else its text's (as
/// `error_before_abandonment` ranks them), so that of two records at one time the worse is
/// taken whichever way each says its severity.
const SEVERITY_RANK: &str = "coalesce(l.severity_number, \
     CASE WHEN upper(l.severity_text) IN ('CRITICAL', 'FATAL') THEN 21 \
     WHEN upper(l.severity_text) IN ('ERROR', 'SEVERE') THEN 17 ELSE 13 END)";

/// Each listed cart's last error or warning log line at or before its abandonment, by cart.
pub async fn last_logs(
    ctx: &SessionContext,
    carts: &[String],
) -> Result<BTreeMap<String, LogLine>> {
    let mut out = BTreeMap::new();
    if carts.is_empty() {
        return Ok(out);
    }
    let ids: Vec<String> = carts.iter().map(|c| crate::sql::passes::lit(c)).collect();
    let b = batches(
        ctx,
        &format!(
            "SELECT cart_id, CAST(timestamp AS BIGINT), severity, body FROM (
               SELECT l.cart_id, l.timestamp, {SEVERITY_SAID} AS severity, l.body,
                      row_number() OVER (PARTITION BY l.cart_id
                                         ORDER BY l.timestamp DESC, {SEVERITY_RANK} DESC,
                                                  l.body DESC, {SEVERITY_SAID} DESC) AS rn
               FROM cart_logs l JOIN carts c ON c.cart_id = l.cart_id
               WHERE l.cart_id IN ({}) AND {WARNING_OR_WORSE}
                 AND l.timestamp IS NOT NULL AND l.timestamp <= c.abandoned_at
             ) WHERE rn = 1",
            ids.join(", ")
        ),
    )
    .await?;
    let (ids, times, severities, bodies) =
        (strings(&b, 0), ints(&b, 1), strings(&b, 2), strings(&b, 3));
    for i in 0..ids.len() {
        let (Some(id), Some(us)) = (ids[i].clone(), times[i]) else {
            continue;
        };
        out.insert(
            id,
            LogLine {
                time: Timestamp::from_ns(us.saturating_mul(1000)),
                severity: severities[i].clone().unwrap_or_default(),
                body: bodies[i].clone().unwrap_or_default(),
            },
        );
    }
    Ok(out)
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
    /// Their recorded value (the excess abandonments times the recorded value per abandoned
    /// cart with the driver).
    pub excess_value: f64,
    /// Their value with the carts whose value was not recorded estimated (see
    /// `value::Reference`): what the drivers are ranked by (added within version 1).
    #[serde(default)]
    pub excess_value_estimated: f64,
    /// Of its abandoned carts (those counted in `abandoned`), those whose value was
    /// recorded (added within version 1).
    #[serde(default)]
    pub abandoned_value_known: u64,
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
    #[serde(with = "crate::time::whole_seconds")]
    pub hour: Timestamp,
    pub causes: BTreeMap<String, u64>,
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
    /// `--trace-sample-rate` or `--trace-sample-policy`: how likely a trace was to be kept,
    /// where its spans do not say.
    pub sampled: sampling::Declared,
}

/// The carts of a period: those first seen in [since, until).
fn period_filter(since_ns: i64, until_ns: i64) -> String {
    format!(
        "CAST(first_seen AS BIGINT) >= {} AND CAST(first_seen AS BIGINT) < {}",
        since_ns.div_euclid(1000),
        until_ns.div_euclid(1000)
    )
}

async fn summary_of(
    ctx: &SessionContext,
    filter: &str,
    reference: &value::Reference,
) -> Result<Summary> {
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
    let abandoned = format!("{filter} AND outcome = 'abandoned'");
    let coverage = value::coverage(ctx, reference, &abandoned, None)
        .await?
        .remove("")
        .unwrap_or_else(ValueCoverage::empty);
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
        abandoned_value_coverage: coverage,
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
    // With the unknown values estimated, when both periods have an estimate.
    let estimated = |s: &Summary| s.abandoned_value_coverage.estimated;
    if let (Some(a), Some(b)) = (estimated(cur), estimated(prev)) {
        out.push(Change {
            figure: "abandoned_value_estimated".into(),
            current: a,
            previous: b,
            change: round(a - b, 2),
            p_value: None,
            significant: false,
        });
    }
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
    value::register(ctx, m).await?;
    // Each period's unknown values are estimated from its own carts.
    let reference = value::Reference::of(ctx, &cur).await?;
    let summary = summary_of(ctx, &cur, &reference).await?;
    let previous = summary_of(ctx, &prev, &value::Reference::of(ctx, &prev).await?).await?;
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
    let abandoned = format!("{cur} AND outcome = 'abandoned'");
    let to_counts = |b: &[RecordBatch], mut cover: BTreeMap<String, ValueCoverage>| -> Vec<Count> {
        let (n, c, v) = (strings(b, 0), counts(b, 1), floats(b, 2));
        n.into_iter()
            .zip(c)
            .zip(v)
            .map(|((n, c), v)| {
                let name = n.unwrap_or_default();
                Count {
                    value_coverage: cover.remove(&name).unwrap_or_default(),
                    name,
                    carts: c,
                    value: v.unwrap_or(0.0),
                }
            })
            .collect()
    };
    let mut by_group = Vec::new();
    for col in ["last_stage", "suspected_cause"] {
        let cover = value::coverage(ctx, &reference, &abandoned, Some(col)).await?;
        by_group.push(to_counts(&batches(ctx, &grouped(col)).await?, cover));
    }
    let causes = by_group.pop().unwrap_or_default();
    let by_last_stage = by_group.pop().unwrap_or_default();

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
            "SELECT last_operation, count(*), round(coalesce(sum(total_value), 0), 2)
             FROM carts WHERE {cur} AND outcome = 'abandoned' GROUP BY 1 ORDER BY 2 DESC, 1"
        ),
    )
    .await?;
    let (ops, n, op_value) = (strings(&b, 0), counts(&b, 1), floats(&b, 2));
    let mut op_cover = value::coverage(
        ctx,
        &reference,
        &abandoned,
        Some("coalesce(last_operation, '')"),
    )
    .await?;
    let total: u64 = n.iter().sum();
    let by_last_operation = ops
        .into_iter()
        .zip(n)
        .zip(op_value)
        .map(|((op, n), v)| {
            let op = op.unwrap_or_default();
            let st = operations.iter().find(|s| s.operation == op);
            OperationRow {
                value: v.unwrap_or(0.0),
                value_coverage: op_cover.remove(&op).unwrap_or_default(),
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
            "SELECT c.cart_id, {value} AS v, c.last_operation, c.last_op_duration_ms,
                    c.last_op_status, c.suspected_cause, c.last_trace_id,
                    CAST(c.total_value IS NULL AS BIGINT)
             FROM valued_carts c WHERE {cur} AND c.outcome = 'abandoned'
             ORDER BY v DESC, c.cart_id LIMIT {}",
            o.top,
            value = reference.point_sql("c"),
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
    let estimated = ints(&b, 7);
    let ids_present: Vec<String> = ids.iter().flatten().cloned().collect();
    let mut logs = last_logs(ctx, &ids_present).await?;
    let top_abandoned = (0..ids.len())
        .map(|i| TopCart {
            cart_id: ids[i].clone().unwrap_or_default(),
            value: round(vals[i].unwrap_or(0.0), 2),
            value_estimated: estimated[i] == Some(1),
            last_operation: lops[i].clone().unwrap_or_default(),
            last_op_duration_ms: round(ldur[i].unwrap_or(0.0), 3),
            last_op_status: lst[i].clone().unwrap_or_default(),
            suspected_cause: lca[i].clone(),
            trace_id: ltr[i].clone().unwrap_or_default(),
            last_log: ids[i].as_ref().and_then(|id| logs.remove(id)),
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
    let reconciled = reconcile::reconcile(ctx, m, since_ns, until_ns).await?;
    crate::output::phase("report: metrics against traces");
    let rc = reconciled.as_ref().map(|(r, h)| (r, h));
    // Under sampling, the drivers are judged on the carts whose outcome is known: a cart
    // that may have gone on in a dropped trace would count its driver as an abandonment.
    // The weights' tables live until the drivers have read them. Their passes are sized
    // by the period's carts; if one does not fit, all of it runs again in more.
    let (sampling, known, weights, weighted) =
        match in_more_passes(("the report's sampling weights", "they"), |more| {
            sampled(ctx, m, o, (&cur, &span_period), rc, more)
        })
        .await?
        {
            Some((s, known, w, t)) => (Some(s), format!("{cur} AND {known}"), Some(w), Some(t)),
            None => {
                crate::output::phase("report: sampling");
                (None, cur.clone(), None, None)
            }
        };
    let reconciliation = reconciled.map(|(r, _)| r);
    let (drivers, latency_curves) =
        drivers(ctx, m, o, (&known, sampling.is_some()), &reference).await?;
    drop(weights);
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
        warnings: o
            .warnings
            .iter()
            .map(|w| match &sampling {
                Some(_) if w.contains(crate::replay::SINGLE_SPAN) => format!(
                    "{w} (but the traces are sampled, see Sampling: a cart of which one trace was kept shows few spans, so the sampling may explain it)"
                ),
                _ => w.clone(),
            })
            .collect(),
        reconciliation,
        sampling,
        weighted,
    })
}

/// The sampling-aware figures and the weighted tables (`None` when every trace was kept),
/// with the condition on the carts whose outcome is known and the weights' tables, in
/// `more` times the passes the period's carts call for.
async fn sampled<'a>(
    ctx: &'a SessionContext,
    m: &Model,
    o: &Options,
    (cur, spans): (&str, &str),
    rc: Option<(&reconcile::Reconciliation, &reconcile::ByStageHour)>,
    more: usize,
) -> Result<
    Option<(
        sampling::Sampling,
        String,
        sampling::Weights<'a>,
        weighted::Weighted,
    )>,
> {
    let Some((s, known, mut w)) = sampling::estimate(ctx, m, cur, &o.sampled, rc, more).await?
    else {
        return Ok(None);
    };
    crate::output::phase("report: sampling");
    let t = weighted::tables(ctx, spans, &mut w, (rc.map(|(r, _)| r), &s)).await?;
    crate::output::phase("report: weighted tables");
    Ok(Some((s, known, w, t)))
}

/// One candidate judged on its 2x2 table: its exact (or G) test, its relative risk with a
/// 95% interval, and the abandonments and value it explains. A driver without any abandonment
/// among the carts that lack it has no finite relative risk: it is reported by the lower
/// limit of its interval (`relative_risk_at_least`), and its test and excess are computed as
/// for any other. `q_value` and `significant` are set by [`rank`].
/// `exposed_bad_value`: the value of the abandoned carts with it, recorded and estimated.
fn score(kind: &str, label: &str, t: &TwoByTwo, exposed_bad_value: [f64; 2]) -> Driver {
    let (test, p) = stats::association_p_value(t);
    let excess = t.excess_bad().unwrap_or(0.0);
    let per_bad = |value: f64| {
        if t.exposed_bad > 0 {
            value / t.exposed_bad as f64
        } else {
            0.0
        }
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
        excess_value: round(excess.max(0.0) * per_bad(exposed_bad_value[0]), 2),
        excess_value_estimated: round(excess.max(0.0) * per_bad(exposed_bad_value[1]), 2),
        abandoned_value_known: 0,
        significant: false,
    }
}

/// Controls the false discovery rate across all candidates (Benjamini-Hochberg) and ranks
/// them: the significant ones first, by the abandoned value they explain (with the carts
/// whose value was not recorded estimated, so that a driver acting before checkout, where
/// values are seldom recorded, is weighed fairly). A candidate is
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
            .then(
                b.excess_value_estimated
                    .total_cmp(&a.excess_value_estimated),
            )
            .then(b.excess_value.total_cmp(&a.excess_value))
            .then(a.driver.cmp(&b.driver))
    });
}

/// What `drivers` holds in Rust (one operation's latency observations at a time), reserved
/// in the memory pool of --memory-limit as it grows, so that the queries running beside it
/// spill sooner and the whole stays within the cap. Past the cap it holds it all the same,
/// outside the cap (a note says so): the curve needs it.
struct Held {
    reservation: datafusion::execution::memory_pool::MemoryReservation,
    over: bool,
}

impl Held {
    fn new(ctx: &SessionContext) -> Self {
        let pool = &ctx.runtime_env().memory_pool;
        Self {
            reservation: datafusion::execution::memory_pool::MemoryConsumer::new(
                "the report's driver analysis",
            )
            .register(pool),
            over: false,
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
            "cartscope: note: the report's latency curves hold more than --memory-limit leaves them ({} and growing, 32 bytes per cart that reached an operation): they go on outside the cap",
            crate::output::human_bytes(bytes as u64)
        );
    }
}

/// The candidate drivers, computed in SQL, and the latency curves.
///
/// The population's carts and their properties never come into Rust: each candidate's 2x2
/// table is counted by the engine (grouped by the candidate and the furthest stage of the
/// cart, so that Rust then counts the carts that reached the candidate's stage from a few
/// rows per candidate). Medians are exact nearest-rank selections
/// (`replay::percentiles_at`). What Rust holds: one operation's (latency, converted) pairs at
/// a time, for its logistic fit (16 bytes a cart, and as much again for its median's sort).
///
/// Its two joins, the population's carts to their events and those events to their spans'
/// attribute values, are written to temporary Parquet tables first (`Scratch`), each in
/// passes over ranges of its key whose hash tables fit the memory cap: a hash join of the
/// slices that `Passes` makes, a Grace hash join written in SQL. Sort-merge joins, whose
/// sorts spill, were tried first: at 10M carts under 1 GB (and 1M under 100 MB), the sorts
/// side by side ran out of the pool all the same ("Not enough memory to continue external
/// sort"). If a pass still does not fit, the analysis runs again with twice the passes.
///
/// Before (Rust state per cart, 100+ bytes each), 10M carts under 1 GB ran out of memory
/// after 356 s at 3.56 GB; the figures after are in bench/RESULTS.md.
async fn drivers(
    ctx: &SessionContext,
    m: &Model,
    o: &Options,
    cur: (&str, bool),
    reference: &value::Reference,
) -> Result<(Vec<Driver>, Vec<LatencyCurve>)> {
    // Each pass fits the cap by its size, across every core: hash joins and groups split by
    // partition. The session's own setting comes back for the curves and after.
    let session = crate::sql::session::joins(ctx);
    in_more_passes(("the report's driver analysis", "it"), |more| async move {
        crate::sql::session::set_joins(ctx, (true, crate::sql::session::threads(ctx)));
        let r = drivers_of(ctx, m, o, (cur, reference), more, session).await;
        crate::sql::session::set_joins(ctx, session);
        r
    })
    .await
}

/// Runs `step` (`what` it is, and the pronoun a note names it by) in `more` times the
/// passes its estimates call for: 1, then twice as many each time it runs out of memory,
/// saying so on stderr, up to 8; past that, the out-of-memory error says which flag to raise.
async fn in_more_passes<T, F, Fut>((what, pronoun): (&str, &str), mut step: F) -> Result<T>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut more = 1;
    loop {
        match step(more).await {
            Err(e) if crate::sql::session::exhausted(&e) && more < 8 => {
                more *= 2;
                let why = crate::sql::session::short_why(&e);
                let (verb, be) = if pronoun == "it" {
                    ("it", "it may")
                } else {
                    ("them", "they may")
                };
                eprintln!(
                    "cartscope: note: {what} did not fit in the memory {be} use ({}; {why}): running {verb} again in {more} times as many passes",
                    crate::output::human_bytes(crate::sql::session::memory_limit() as u64)
                );
            }
            r => return r.map_err(|e| crate::sql::session::out_of_memory(e, what)),
        }
    }
}

/// The temporary tables of `drivers`: the population's cart events (by trace range); the
/// report's attribute values of each span (by trace range); per cart and checkout
/// operation; each event's (attribute, value) pairs (by `Folders`: ranges of cart numbers
/// within a cart range); the population's carts with their numbers (by cart range).
const POP_EVENTS: &str = "cartscope_report_cart_events";
const SPAN_VALUES: &str = "cartscope_report_span_values";
const CART_OPS: &str = "cartscope_report_cart_operations";
const CART_ATTRIBUTES: &str = "cartscope_report_cart_attributes";
const POP: &str = "cartscope_report_population";

/// About how many bytes a cart of a cart pass takes in the join of its carts to their
/// checkout events: the hash table is built of one side or the other (218 to 231 bytes a
/// row, measured by EXPLAIN ANALYZE at 1M and 10M carts; 1.7 checkout events a cart), then a
/// row per cart and operation is grouped. At 120, the 10M report's passes held 2M carts each
/// and that grouping spilled 7 times a pass (4 times in 1M's one pass).
/// Estimates: a pass that does not fit makes `drivers` run again with more passes.
const POP_ROW_BYTES: usize = 400;

/// About how many bytes a row of the population's cart events (a cart, trace and span id,
/// a stage) takes in a trace pass's join to the spans' values.
const EVENT_ROW_BYTES: usize = 240;

/// A group's carts and its abandoned carts, each counted for its weight `w` (1 unless the
/// traces were sampled). Rounded to whole carts in Rust once summed over the groups and
/// passes: rounded per group, a candidate's carts summed over its passes could come to more
/// than all the carts that reached its stage.
const WEIGHED_CARTS: &str = "sum(w)";
const WEIGHED_BAD: &str = "coalesce(sum(w) FILTER (WHERE bad), 0.0)";

/// About how many bytes a joined row of a cart's event and one of its span's attribute values
/// takes in the candidates' grouping: the grouped rows are fewer than the joined ones, each
/// its keys (attribute, cart, service, value) and its earliest stage, then joined to its
/// cart's row of the population. Measured (EXPLAIN ANALYZE of a folder's query): at 120, a
/// folder of 2.2M rows (1.1M groups) spilled its grouping 4 times at 10M carts and up to
/// twice at 1M, and a folder took 0.6 s at 10M against 0.24 s at 1M; at 240 none spills.
const ATTRIBUTE_ROW_BYTES: usize = 240;

/// Folders of `CART_ATTRIBUTES`: each cart pass's carts in `per` ranges of their numbers, so
/// that the candidates group a folder's rows at a time. A cart's number is its cart pass times
/// 2^32 plus its place (from 1) among the pass's carts in cart_id order; `most` is the most
/// carts a pass has.
struct Folders {
    /// Cart passes, each numbering its carts from `pass * PASS_NUMBERS + 1`.
    cart_passes: usize,
    per: usize,
    most: u64,
}

/// The numbers a cart pass's carts are numbered within (2^32).
const PASS_NUMBERS: u64 = 1 << 32;

impl Folders {
    /// The number of the cart `cart_id` among cart pass `pass`'s carts, as SQL over the
    /// pass's rows.
    fn number(pass: usize, cart_id: &str) -> String {
        format!("CAST({pass} * {PASS_NUMBERS} + row_number() OVER (ORDER BY {cart_id}) AS BIGINT)")
    }

    fn len(&self) -> usize {
        self.cart_passes * self.per
    }

    /// The folder of the cart numbered `cart`, as SQL.
    fn of(&self, cart: &str) -> String {
        let pass = format!("{cart} / {PASS_NUMBERS}");
        if self.per == 1 {
            return pass;
        }
        format!(
            "{pass} * {per} + ({cart} % {PASS_NUMBERS} - 1) * {per} / {most}",
            per = self.per,
            most = self.most
        )
    }

    /// Folder `i`'s carts, as SQL of their numbers `cart`: a range, which the population's
    /// row groups (written in cart order) are pruned by.
    fn range(&self, i: usize, cart: &str) -> String {
        let (pass, j) = ((i / self.per) as u64, (i % self.per) as u64);
        // The first place of folder j: the least x with x * per / most >= j.
        let first = |j: u64| pass * PASS_NUMBERS + 1 + (j * self.most).div_ceil(self.per as u64);
        format!("{cart} >= {} AND {cart} < {}", first(j), first(j + 1))
    }

    /// Folder `i`'s carts among the population's rows (`pass`, `cart`), as SQL.
    fn carts(&self, i: usize) -> String {
        format!("pass = {} AND {}", i / self.per, self.range(i, "cart"))
    }
}

/// A weighed count of carts as whole carts.
fn whole(n: f64) -> u64 {
    n.round().max(0.0) as u64
}

/// The kinds of candidate, as the SQL of `drivers_of` numbers them.
const SLOWER_THAN_THRESHOLD: i64 = 0;
const SLOWER_THAN_P95: i64 = 1;
const FAILED: i64 = 2;
const LATENCY_ABOVE_MEDIAN: i64 = 3;
const NUMBER_ABOVE_MEDIAN: i64 = 4;
const ATTRIBUTE: i64 = 5;

/// One candidate's counts among the carts that have it, by the furthest stage they reached.
struct Counted {
    /// The earliest stage the candidate shows at.
    stage: i64,
    /// (furthest stage, carts, abandoned carts).
    by_furthest: Vec<(i64, f64, f64)>,
    /// Its abandoned carts by the furthest stage they reached: their value (recorded, and
    /// with the unknown ones estimated), and how many had it recorded. Summed over those
    /// that reached the candidate's stage, as its counts are.
    bad: Vec<(i64, [f64; 2], f64)>,
}

impl Counted {
    fn new() -> Self {
        Self {
            stage: i64::MAX,
            by_furthest: Vec::new(),
            bad: Vec::new(),
        }
    }

    /// Counts more of the candidate's carts, which show it from `stage`.
    fn add(&mut self, stage: i64, by_furthest: &[(i64, f64, f64)], bad: &[(i64, [f64; 2], f64)]) {
        self.stage = self.stage.min(stage);
        self.by_furthest.extend_from_slice(by_furthest);
        self.bad.extend_from_slice(bad);
    }

    /// The value and the recorded count of its abandoned carts that reached its stage.
    fn bad_at_stage(&self) -> ([f64; 2], u64) {
        let (mut value, mut known) = ([0.0; 2], 0.0);
        for (furthest, v, k) in &self.bad {
            if *furthest >= self.stage {
                value[0] += v[0];
                value[1] += v[1];
                known += k;
            }
        }
        (value, whole(known))
    }
}

/// A SQL `CASE` of `expr` that reads `values`' doubles back exactly (`NULL` otherwise).
fn case_of(expr: &str, values: &[(String, f64)]) -> String {
    if values.is_empty() {
        return "CAST(NULL AS DOUBLE)".to_string();
    }
    let whens: String = values
        .iter()
        .map(|(k, v)| format!(" WHEN {} THEN CAST('{v}' AS DOUBLE)", lit(k)))
        .collect();
    format!("CASE {expr}{whens} END")
}

/// The stage order of the checkout: the model's second stage, its only one if it has one.
fn checkout_order(m: &Model) -> i64 {
    if m.stages.len() > 1 {
        2
    } else {
        1
    }
}

/// `drivers`, in `more` times the passes its estimates call for.
async fn drivers_of(
    ctx: &SessionContext,
    m: &Model,
    o: &Options,
    ((cur, weighted), reference): ((&str, bool), &value::Reference),
    more: usize,
    session: (bool, usize),
) -> Result<(Vec<Driver>, Vec<LatencyCurve>)> {
    let checkout_order = checkout_order(m);
    // The population: every decided cart of the period. Its carts are split into passes
    // over ranges of cart ids (`carts` and `cart_events` are in cart_id order, so each pass
    // reads only its range's row groups of them; the sampling's `KEPT` is not, and each
    // pass reads it whole, keeping its range's rows).
    let decided = format!("{cur} AND c.outcome IN ('abandoned', 'converted')");
    let carts = count(
        ctx,
        &format!("SELECT count(*) FROM carts c WHERE {decided}"),
    )
    .await?;
    let by_cart = Passes::split(
        ctx,
        &format!("SELECT c.cart_id FROM carts c WHERE {decided}"),
        carts,
        POP_ROW_BYTES,
        more,
    )
    .await?;
    let mut scratch = Scratch::new(ctx, "report", EVENT_ROW_BYTES)?;
    // Each cart with the furthest stage it reached (the order of its `last_stage`, which
    // the replay sets to the stage of its events' highest order; each driver is then judged
    // among the carts that reached the stage where it shows) and its raw weight: 1 unless
    // the traces were sampled, then its adjusted count (1/p, `sampling::KEPT`), joined by
    // pass. Written once, by pass, for every query after.
    let furthest: String = m
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| format!(" WHEN {} THEN {}", lit(&s.name), i + 1))
        .collect();
    let furthest = if furthest.is_empty() {
        "CAST(NULL AS BIGINT)".to_string()
    } else {
        format!("CASE c.last_stage{furthest} END")
    };
    for i in 0..by_cart.len() {
        let (join, rw) = if weighted {
            (
                format!(
                    " LEFT JOIN (SELECT cart_id, w FROM {} WHERE {}) sw ON sw.cart_id = c.cart_id",
                    sampling::KEPT,
                    by_cart.range(i, "cart_id")
                ),
                "coalesce(sw.w, 1.0)",
            )
        } else {
            (String::new(), "1.0")
        };
        scratch
            .write(
                POP,
                &format!(
                    "SELECT c.cart_id, c.outcome = 'abandoned' AS bad, coalesce(c.total_value, 0) AS v,
                            {ve} AS ve, CAST(c.total_value IS NOT NULL AS INT) AS vk,
                            CAST(coalesce(c.item_count, 0) AS DOUBLE) AS n, {furthest} AS furthest,
                            {rw} AS rw, {cart} AS cart, {i} AS pass
                     FROM valued_carts c{join} WHERE {decided} AND {range}",
                    cart = Folders::number(i, "c.cart_id"),
                    ve = reference.point_sql("c"),
                    range = by_cart.range(i, "c.cart_id"),
                ),
                Some(by_cart.len()),
            )
            .await?;
    }
    scratch.register(POP).await?;
    // Each cart's weight: its raw weight over their mean among the population, so that the
    // counts keep their size (the tests and intervals then read them as counts of carts).
    let weight = if weighted {
        let mean = floats(
            &batches(ctx, &format!("SELECT avg(rw) FROM {POP}")).await?,
            0,
        )
        .first()
        .copied()
        .flatten()
        .filter(|w| *w > 0.0)
        .unwrap_or(1.0);
        format!("rw / CAST('{mean}' AS DOUBLE)")
    } else {
        "1.0".to_string()
    };
    let pop = format!(
        "SELECT cart_id, cart, bad, v, ve, vk, n, furthest, {weight} AS w, pass FROM {POP}"
    );
    // The carts that reached each stage, and how many of them were abandoned.
    let b = batches(
        ctx,
        &format!(
            "WITH pop AS ({pop}) SELECT furthest, {WEIGHED_CARTS}, {WEIGHED_BAD}
             FROM pop GROUP BY furthest"
        ),
    )
    .await?;
    let at_stage: Vec<(i64, f64, f64)> = ints(&b, 0)
        .into_iter()
        .zip(floats(&b, 1))
        .zip(floats(&b, 2))
        .map(|((s, n), k)| (s.unwrap_or(0), n.unwrap_or(0.0), k.unwrap_or(0.0)))
        .collect();
    let reached = |stage: i64| {
        let (n, k) = at_stage
            .iter()
            .filter(|r| r.0 >= stage)
            .fold((0.0, 0.0), |(n, k), r| (n + r.1, k + r.2));
        (whole(n), whole(k))
    };
    let events = count(ctx, "SELECT count(*) FROM cart_events").await?;

    // Split again by trace, for the join to the spans.
    let by_trace = Passes::split(
        ctx,
        "SELECT trace_id FROM cart_events",
        events,
        EVENT_ROW_BYTES,
        more,
    )
    .await?;
    crate::output::phase(&format!(
        "report: drivers: joins in {} passes by cart and {} by trace",
        by_cart.len(),
        by_trace.len()
    ));
    // Per cart and checkout operation: its slowest span, whether one failed or was slower
    // than the operation's p95 over every observed span: as the replay selected it
    // (operation_stats, in name order; selecting it again here was 0.5 s of a 1M-cart
    // report). The p95 values enter as text that reads back as the same doubles.
    let b = batches(
        ctx,
        "SELECT operation_name, p95_ms FROM operation_stats ORDER BY operation_name",
    )
    .await?;
    let p95: Vec<(String, f64)> = strings(&b, 0)
        .into_iter()
        .zip(floats(&b, 1))
        .filter_map(|(op, p)| Some((op?, p?)))
        .collect();
    let p95 = case_of("e.operation", &p95);
    crate::output::phase("report: drivers: each operation's p95");
    for i in 0..by_cart.len() {
        // The pass's carts and their events. Each cart is known by its number from here on
        // (`Folders::number`): joins and groups on numbers, not on ids.
        let joined = format!(
            "SELECT e.*, pop.cart, pop.bad, pop.v, pop.ve, pop.vk, pop.furthest, pop.w
             FROM ({pop}) pop JOIN cart_events e ON e.cart_id = pop.cart_id
             WHERE pop.pass = {i} AND {e_in_range}",
            e_in_range = by_cart.range(i, "e.cart_id"),
        );
        scratch
            .write(
                CART_OPS,
                &format!(
                    "SELECT e.cart, e.operation, max(e.duration_ms) AS d,
                            bool_or(e.status_code = 'error') AS failed,
                            bool_or(e.duration_ms > {p95}) AS over,
                            coalesce(min(e.stage_order), {checkout_order}) AS st,
                            bool_or(e.bad) AS bad, max(e.v) AS v, max(e.ve) AS ve, max(e.vk) AS vk, max(e.furthest) AS furthest,
                            max(e.w) AS w, {i} AS pass
                     FROM ({joined}) e
                     WHERE e.stage_order >= {checkout_order} AND e.operation IS NOT NULL
                     GROUP BY e.cart, e.operation"
                ),
                Some(by_cart.len()),
            )
            .await?;
        if !o.attributes.is_empty() {
            scratch
                .write(
                    POP_EVENTS,
                    &format!(
                        "SELECT cart, trace_id, span_id, stage_order,
                                {pass} AS pass
                         FROM ({joined})",
                        pass = by_trace.of("trace_id"),
                    ),
                    Some(by_trace.len()),
                )
                .await?;
        }
    }
    scratch.register(CART_OPS).await?;
    crate::output::phase("report: drivers: operations per cart");

    // Folders of `CART_ATTRIBUTES`, each some carts of one cart pass: one a cart pass (and
    // none read) until the attributes' rows are counted below.
    let mut folders = Folders {
        cart_passes: by_cart.len(),
        per: 1,
        most: 1,
    };
    // The values of the report's attributes on each cart's spans and their resources, per
    // service: each span's values in a column per attribute (one join per attribute took 42
    // of the 55 s of a 1M-cart report; a row per value wrote and joined every span's ids
    // once per value), joined to the population's events in passes over ranges of trace ids,
    // then made (attribute, value) pairs, and written as they are (a row per event and
    // value, with its stage: null when the event is at none) by ranges of cart numbers for
    // the counts. They are grouped per cart there, once: a cart's spans are in several trace
    // passes, and grouped per trace pass here they spilled (the pairs outnumber the events
    // the passes are sized by) and left a row per cart and trace pass to group again.
    if !o.attributes.is_empty() {
        scratch.register(POP_EVENTS).await?;
        let columns: Vec<String> = (0..o.attributes.len()).map(|k| format!("a{k}")).collect();
        let values = o
            .attributes
            .iter()
            .zip(&columns)
            .map(|(a, c)| {
                format!(
                    "coalesce(attributes[{a}], resource_attributes[{a}]) AS {c}",
                    a = lit(a)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        scratch
            .write(
                SPAN_VALUES,
                &format!(
                    "SELECT * FROM (
                         SELECT trace_id, span_id, service_name, {values}, {pass} AS pass
                         FROM observed_traces)
                     WHERE coalesce({any}) IS NOT NULL",
                    pass = by_trace.of("trace_id"),
                    any = columns.join(", "),
                ),
                Some(by_trace.len()),
            )
            .await?;
        scratch.register(SPAN_VALUES).await?;
        crate::output::phase("report: drivers: attribute values per span");
        // The candidates group these rows per cart, attribute, service and value: a hash
        // table that spilled (sorts of the whole cart pass) when a cart pass held millions of
        // carts. So each cart pass is written in folders of carts few enough that a folder's
        // groups fit a pass's memory: ranges of its cart numbers. Their rows are the joined
        // rows: the population's events times the values per span.
        let spans = count(ctx, "SELECT count(*) FROM observed_traces").await?;
        let values = count(
            ctx,
            &format!(
                "SELECT {} FROM {SPAN_VALUES}",
                columns
                    .iter()
                    .map(|c| format!("count({c})"))
                    .collect::<Vec<_>>()
                    .join(" + ")
            ),
        )
        .await?;
        let pop_events = count(ctx, &format!("SELECT count(*) FROM {POP_EVENTS}")).await?;
        let most = count(
            ctx,
            &format!("SELECT max(n) FROM (SELECT count(*) AS n FROM {POP} GROUP BY pass)"),
        )
        .await?
        .max(1);
        let joined_rows = (pop_events as u128 * values as u128 / spans.max(1) as u128) as u64;
        // At most as many folders as `write_each`'s writer can hold within a pass's memory.
        let most_folders = scratch.most_folders();
        let per = Passes::needed(
            joined_rows.div_ceil(by_cart.len() as u64),
            ATTRIBUTE_ROW_BYTES,
            more,
        )
        .min(most_folders / by_cart.len())
        .max(1);
        let pairs = columns
            .iter()
            .enumerate()
            .map(|(k, c)| format!("named_struct('k', {k}, 'v', s.{c})"))
            .collect::<Vec<_>>()
            .join(", ");
        folders = Folders {
            cart_passes: by_cart.len(),
            per,
            most,
        };
        // One query per trace pass, their rows in one file a folder.
        let joins = (0..by_trace.len())
            .map(|i| {
                format!(
                    "WITH kv AS (
                         SELECT e.cart, e.stage_order, s.service_name,
                                unnest(make_array({pairs})) AS kv
                         FROM {POP_EVENTS} e
                         JOIN {SPAN_VALUES} s ON s.trace_id = e.trace_id AND s.span_id = e.span_id
                         WHERE e.pass = {i} AND s.pass = {i})
                     SELECT kv['k'] AS k, cart, service_name, kv['v'] AS value,
                            stage_order AS st, {folder} AS pass
                     FROM kv WHERE kv['v'] IS NOT NULL",
                    folder = folders.of("cart"),
                )
            })
            .collect();
        scratch
            .write_each(CART_ATTRIBUTES, joins, folders.len())
            .await?;
        scratch.register(CART_ATTRIBUTES).await?;
        crate::output::phase(&format!(
            "report: drivers: attributes per cart in {} folders for {} cart passes",
            folders.len(),
            by_cart.len()
        ));
    }
    candidates_and_curves(ctx, m, o, &pop, reached, &folders, session).await
}

/// The rest of `drivers_of`, once its tables are written.
async fn candidates_and_curves(
    ctx: &SessionContext,
    m: &Model,
    o: &Options,
    pop: &str,
    reached: impl Fn(i64) -> (u64, u64),
    folders: &Folders,
    session: (bool, usize),
) -> Result<(Vec<Driver>, Vec<LatencyCurve>)> {
    let checkout_order = checkout_order(m);
    let slow = m.causes.slow_ms;
    // Each operation's stage, as its latency is judged: that of the last cart (in cart_id
    // order) it shows in.
    let b = batches(
        ctx,
        &format!(
            "SELECT operation, last_value(st ORDER BY cart) FROM {CART_OPS}
             GROUP BY operation ORDER BY operation"
        ),
    )
    .await?;
    let op_stage: BTreeMap<String, i64> = strings(&b, 0)
        .into_iter()
        .zip(ints(&b, 1))
        .filter_map(|(op, st)| Some((op?, st.unwrap_or(checkout_order))))
        .collect();
    let stages: Vec<(String, f64)> = op_stage
        .iter()
        .map(|(op, st)| (op.clone(), *st as f64))
        .collect();
    let op_stage_sql = case_of("operation", &stages);
    crate::output::phase("report: drivers: op stages");

    // The medians of the numeric covariates among the carts that reached their stage.
    let medians = crate::replay::percentiles_at(
        ctx,
        &format!(
            "WITH pop AS ({pop})
             SELECT '#value', v FROM pop WHERE furthest >= {checkout_order}
             UNION ALL SELECT '#items', n FROM pop WHERE furthest >= {checkout_order}
             UNION ALL SELECT concat('op ', operation), d FROM {CART_OPS}
                       WHERE d IS NOT NULL AND furthest >= {op_stage_sql}"
        ),
        &[0.5],
    )
    .await?;
    crate::output::phase("report: drivers: medians");
    let median = |k: &str| medians.get(k).map(|v| v[0]);
    let op_medians: Vec<(String, f64)> = op_stage
        .keys()
        .filter_map(|op| Some((op.clone(), median(&format!("op {op}"))?)))
        .collect();
    let numbers: Vec<(String, f64)> = [("#value", "v"), ("#items", "n")]
        .into_iter()
        .filter_map(|(k, col)| Some((col.to_string(), median(k)?)))
        .collect();

    // Each candidate's carts, counted by the furthest stage they reached.
    let mut counted: BTreeMap<(i64, String, Option<String>, Option<String>), Counted> =
        BTreeMap::new();
    let mut add = |b: &[RecordBatch]| {
        let (fam, a, s, v, furthest) = (
            ints(b, 0),
            strings(b, 1),
            strings(b, 2),
            strings(b, 3),
            ints(b, 4),
        );
        let (st, n, k) = (ints(b, 5), floats(b, 6), floats(b, 7));
        let (value, estimated, known) = (floats(b, 8), floats(b, 9), floats(b, 10));
        for r in 0..fam.len() {
            let (Some(f), Some(a)) = (fam[r], a[r].clone()) else {
                continue;
            };
            counted
                .entry((f, a, s[r].clone(), v[r].clone()))
                .or_insert_with(Counted::new)
                .add(
                    st[r].unwrap_or(1),
                    &[(
                        furthest[r].unwrap_or(0),
                        n[r].unwrap_or(0.0),
                        k[r].unwrap_or(0.0),
                    )],
                    &[(
                        furthest[r].unwrap_or(0),
                        [value[r].unwrap_or(0.0), estimated[r].unwrap_or(0.0)],
                        known[r].unwrap_or(0.0),
                    )],
                );
        }
    };
    // Sums of money as decimals: the same total whatever order the rows come in.
    // Each cart counts for its weight (1 unless the traces were sampled).
    let tail = format!(
        "furthest, min(st), {WEIGHED_CARTS}, {WEIGHED_BAD},
         CAST(sum(CAST(v * w AS DECIMAL(38, 6))) FILTER (WHERE bad) AS DOUBLE),
         CAST(sum(CAST(ve * w AS DECIMAL(38, 6))) FILTER (WHERE bad) AS DOUBLE),
         coalesce(sum(w) FILTER (WHERE bad AND vk = 1), 0.0)"
    );
    let mut families = vec![
        format!("SELECT {SLOWER_THAN_THRESHOLD} AS f, operation AS a, st, bad, v, ve, vk, furthest, w FROM {CART_OPS} WHERE d > {slow}"),
        format!("SELECT {SLOWER_THAN_P95}, operation, st, bad, v, ve, vk, furthest, w FROM {CART_OPS} WHERE over"),
        format!("SELECT {FAILED}, operation, st, bad, v, ve, vk, furthest, w FROM {CART_OPS} WHERE failed"),
        format!(
            "SELECT {LATENCY_ABOVE_MEDIAN}, operation, {op_stage_sql}, bad, v, ve, vk, furthest, w FROM {CART_OPS}
             WHERE d > {}",
            case_of("operation", &op_medians)
        ),
    ];
    for (col, med) in &numbers {
        families.push(format!(
            "SELECT {NUMBER_ABOVE_MEDIAN}, '{col}', {checkout_order}, bad, v, ve, vk, furthest, w FROM pop
             WHERE {col} > CAST('{med}' AS DOUBLE)"
        ));
    }
    let b = batches(
        ctx,
        &format!(
            "WITH pop AS ({pop}), f AS ({})
             SELECT f, a, CAST(NULL AS VARCHAR) AS s, CAST(NULL AS VARCHAR) AS value, {tail}
             FROM f GROUP BY f, a, furthest",
            families.join(" UNION ALL ")
        ),
    )
    .await?;
    add(&b);
    crate::output::phase("report: drivers: families");

    // The attributes' values, each cart's once: a resource attribute that varies by service
    // (a version) is told apart by its service.
    if !o.attributes.is_empty() {
        let by_service = o
            .attributes
            .iter()
            .enumerate()
            .filter(|(_, a)| a.starts_with("service."))
            .map(|(k, _)| k.to_string())
            .collect::<Vec<_>>();
        let service = if by_service.is_empty() {
            "CAST(NULL AS VARCHAR)".to_string()
        } else {
            format!(
                "CASE WHEN k IN ({}) THEN service_name END",
                by_service.join(", ")
            )
        };
        // A folder's carts have all their rows in it: (attribute, value) pairs of their
        // events, grouped once per cart, then joined to the carts' outcomes and weights.
        for i in 0..folders.len() {
            let sql = format!(
                "WITH each_service AS (
                     SELECT k, cart, service_name, value, coalesce(min(st), 1) AS st
                     FROM {CART_ATTRIBUTES} WHERE pass = {i} GROUP BY 1, 2, 3, 4),
                 each_cart AS (
                     SELECT k, cart, {service} AS s, value, min(st) AS st
                     FROM each_service GROUP BY 1, 2, 3, 4),
                 carts AS (
                     SELECT cart, bad, v, ve, vk, furthest, w FROM ({pop})
                     WHERE {carts})
                 SELECT {ATTRIBUTE}, CAST(k AS VARCHAR), s, value, {tail}
                 FROM each_cart JOIN carts USING (cart) GROUP BY k, s, value, furthest",
                carts = folders.carts(i),
            );
            add(&batches(ctx, &sql).await?);
        }
    }
    crate::output::phase("report: drivers: candidates");

    // Score every candidate among the carts that reached its stage.
    let mut scored: BTreeMap<(String, String), Counted> = BTreeMap::new();
    for ((fam, a, s, v), c) in counted {
        let (kind, label) = match fam {
            SLOWER_THAN_THRESHOLD => ("slow_operation", format!("{a} slower than {slow} ms")),
            SLOWER_THAN_P95 => ("slow_operation", format!("{a} slower than its p95")),
            FAILED => ("failed_operation", format!("{a} failed")),
            LATENCY_ABOVE_MEDIAN => {
                let med = op_medians.iter().find(|m| m.0 == a).map_or(0.0, |m| m.1);
                (
                    "numeric",
                    format!("{a} latency above its median ({})", round(med, 2)),
                )
            }
            NUMBER_ABOVE_MEDIAN => {
                let med = numbers.iter().find(|m| m.0 == a).map_or(0.0, |m| m.1);
                let name = if a == "v" { "cart value" } else { "item count" };
                (
                    "numeric",
                    format!("{name} above its median ({})", round(med, 2)),
                )
            }
            _ => {
                let Some(k) = a.parse::<usize>().ok().and_then(|k| o.attributes.get(k)) else {
                    continue;
                };
                let v = v.unwrap_or_default();
                let label = match s {
                    Some(s) => format!("{k} = {v} ({s})"),
                    None => format!("{k} = {v}"),
                };
                ("attribute", label)
            }
        };
        // Two candidates that read the same (an attribute and a value that spell another's
        // name) are one, as they always were.
        scored
            .entry((kind.to_string(), label))
            .or_insert_with(Counted::new)
            .add(c.stage, &c.by_furthest, &c.bad);
    }
    let mut out = Vec::new();
    for ((kind, label), c) in &scored {
        let (members, total_bad) = reached(c.stage);
        let (support, exposed_bad) = c
            .by_furthest
            .iter()
            .filter(|r| r.0 >= c.stage)
            .fold((0.0, 0.0), |(n, k), r| (n + r.1, k + r.2));
        let (support, exposed_bad) = (whole(support), whole(exposed_bad));
        if support < o.min_support || support == members {
            continue;
        }
        let t = TwoByTwo {
            exposed_bad,
            exposed_good: support.saturating_sub(exposed_bad),
            unexposed_bad: total_bad.saturating_sub(exposed_bad),
            unexposed_good: members
                .saturating_sub(support)
                .saturating_sub(total_bad.saturating_sub(exposed_bad)),
        };
        // Among the same carts as `abandoned`: those that reached its stage.
        let (value, known) = c.bad_at_stage();
        let mut d = score(kind, label, &t, value);
        d.abandoned_value_known = known;
        out.push(d);
    }
    rank(&mut out);

    // Latency to conversion: logistic regression of converted on seconds, per operation,
    // over its carts in cart order (its slowest span, 0 when unknown).
    let mut curves = Vec::new();
    let mut held = Held::new(ctx);
    let mut obs: Vec<(f64, bool)> = Vec::new();
    // One operation at a time, its carts pass by pass (passes are ranges of carts in
    // cart_id order): a sort of all of them at once ran out of the pool at 10M carts.
    crate::sql::session::set_joins(ctx, session);
    for op in op_stage.into_keys() {
        obs.clear();
        for i in 0..folders.cart_passes {
            let mut rows = ctx
                .sql(&format!(
                    "SELECT coalesce(d, 0), NOT bad FROM {CART_OPS}
                     WHERE pass = {i} AND operation = {} ORDER BY cart",
                    lit(&op)
                ))
                .await?
                .execute_stream()
                .await?;
            while let Some(b) = futures::StreamExt::next(&mut rows).await {
                let b = [b?];
                let (xs, ys) = (floats(&b, 0), strings(&b, 1));
                obs.extend(
                    xs.into_iter()
                        .zip(ys)
                        .map(|(x, y)| (x.unwrap_or(0.0), y.as_deref() == Some("true"))),
                );
                // The pairs, and the copy the median sorts.
                held.set(obs.capacity() * std::mem::size_of::<(f64, bool)>() * 2);
            }
        }
        curves.extend(curve(op, &obs));
    }
    Ok((out, curves))
}

/// The latency curve of one operation from its carts' (slowest span in ms, converted), or
/// none when every cart past it converted (a success step) or none did.
fn curve(operation: String, obs: &[(f64, bool)]) -> Option<LatencyCurve> {
    let x: Vec<f64> = obs.iter().map(|o| o.0 / 1000.0).collect();
    let y: Vec<bool> = obs.iter().map(|o| o.1).collect();
    if y.iter().all(|v| *v == y[0]) {
        return None;
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
    Some(LatencyCurve {
        operation,
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
    })
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

    /// Every cart's folder, as `Folders::of` computes it in SQL, is the one folder whose
    /// range holds its number, and the folders share a pass's carts about evenly: numbered
    /// as `Folders::number` numbers them, in passes of different sizes.
    #[tokio::test]
    async fn a_cart_is_in_the_folder_whose_range_holds_it() {
        let ctx = SessionContext::new();
        // Pass 0 with 7 carts, pass 1 with 5, pass 2 with 1.
        let ids = |pass: usize, n: usize| -> String {
            (0..n)
                .map(|k| format!("({pass}, 'cart-{pass}-{}')", 9 - k))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let numbered = (0..3)
            .zip([7, 5, 1])
            .map(|(pass, n)| {
                format!(
                    "SELECT {} AS cart FROM (VALUES {}) AS t(pass, cart_id)",
                    Folders::number(pass, "cart_id"),
                    ids(pass, n)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        for per in [1, 2, 3, 7] {
            let f = Folders {
                cart_passes: 3,
                per,
                most: 7,
            };
            let sql = format!("SELECT cart, {} AS folder FROM ({numbered})", f.of("cart"));
            let b = batches(&ctx, &sql).await.unwrap();
            let (carts, of) = (ints(&b, 0), ints(&b, 1));
            assert_eq!(carts.len(), 13);
            let mut sizes = vec![0; f.len()];
            for (cart, folder) in carts.iter().zip(&of) {
                let (cart, folder) = (cart.unwrap(), folder.unwrap() as usize);
                sizes[folder] += 1;
                for i in 0..f.len() {
                    let sql = format!(
                        "SELECT * FROM (SELECT {cart} AS cart) WHERE {}",
                        f.range(i, "cart")
                    );
                    let inside = !batches(&ctx, &sql)
                        .await
                        .unwrap()
                        .iter()
                        .all(|b| b.num_rows() == 0);
                    assert_eq!(inside, i == folder, "cart {cart} per {per} folder {i}");
                }
            }
            // Pass 0's seven carts spread over its folders, none empty and none more than
            // one cart larger than another.
            let pass0 = &sizes[..per];
            assert!(
                pass0
                    .iter()
                    .all(|&n| n >= 7 / per && n <= 7usize.div_ceil(per)),
                "{sizes:?}"
            );
            assert_eq!(sizes.iter().sum::<usize>(), 13);
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
            [64.0 * 120.0, 64.0 * 150.0],
        );
        assert_eq!(sep.relative_risk, None);
        let lo = sep.relative_risk_at_least.unwrap();
        assert!(lo > 10.0, "{sep:?}");
        assert_eq!(sep.relative_risk_ci95.unwrap()[0], lo);
        assert_eq!(sep.test, "Fisher exact");
        assert!(sep.p_value < 1e-40, "{sep:?}");
        assert_eq!(sep.excess_abandoned, 64.0);
        assert_eq!(sep.excess_value, 64.0 * 120.0);
        assert_eq!(sep.excess_value_estimated, 64.0 * 150.0);

        let slow = score(
            "slow_operation",
            "shipping.calculate_rates slower than 2000 ms",
            &table(50, 50, 14, 366),
            [50.0 * 80.0; 2],
        );
        assert!(slow.relative_risk.unwrap() > 1.0);
        assert_eq!(slow.relative_risk_at_least, None);
        let noise = score(
            "attribute",
            "user.segment = new",
            &table(5, 45, 59, 371),
            [500.0; 2],
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
            [300.0; 2],
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
        let protective = score("attribute", "a", &table(0, 200, 150, 150), [0.0; 2]);
        assert_eq!(protective.relative_risk, Some(0.0));
        assert_eq!(protective.relative_risk_at_least, None);
        assert!(protective.p_value < 1e-20);
        let none = score("attribute", "b", &table(0, 50, 0, 50), [0.0; 2]);
        assert_eq!(none.relative_risk, None);
        assert_eq!(none.relative_risk_at_least, None);
        assert_eq!(none.p_value, 1.0);
        let mut v = vec![protective, none];
        rank(&mut v);
        assert!(v.iter().all(|d| !d.significant));
    }
}
