//! The report's tables once the traces' sampling is accounted for: the funnel, the abandoned
//! carts by suspected cause, and every operation's spans, latency and error rate, each
//! carried by its adjusted count (1/p) rather than counted as kept.
//!
//! A funnel stage the transition counter counts is its count. Any other stage counts each
//! cart seen entering it for 1/p of the trace it entered in: exact in expectation when a cart
//! enters the stage in one trace (a Horvitz-Thompson count), too high when carts are seen there
//! in several (any kept one shows the cart), which `at_most` flags. Abandoned carts with a
//! suspected cause count for the weight `sampling::estimate` gave them (in its table
//! `sampling::KEPT`: 1/p of the trace that decides a cart's outcome); the rest of the
//! abandoned carts, from the adjusted rate, have none. A cart's last trace is not the only one
//! that shows it, so weighting the carts without a cause by it would count many twice.
//! Spans count for the adjusted count of their own trace: its tracestate threshold, else the
//! model's keys on its spans, else what the flags say (`--trace-sample-rate`, or
//! `--trace-sample-policy` judged on the trace). Under a tail sampler that keeps every failed
//! and slow trace, kept spans make failures and slow requests look far more common than they
//! are; weighted, each kept ordinary span stands for the 1/p spans like it that were dropped.
//! Where no trace records its probability and the flags say nothing (the metrics alone show
//! that traces are missing), spans have no weight to carry: `operations` is empty and the
//! report's operation table stays as traced.
//!
//! The weighted percentiles are exact: the least duration whose spans and those faster weigh
//! at least p of the operation's spans (`replay::percentiles_at`, a radix selection in
//! memory that grows with the operations, not the spans). They were t-digest estimates
//! (`approx_percentile_cont_with_weight`), whose figures moved with the order the rows came
//! in: with the number of passes, so with the memory cap.

use std::collections::BTreeMap;

use anyhow::Result;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use super::entries::ENTRIES;
use super::reconcile::Reconciliation;
use super::rows::{batches, floats, ints, pct, round, strings};
use super::sampling::{self, Sampling, Weights, TRACE_P};

/// The weighted tables' own temporary tables: the period's spans (by trace pass), and the
/// same with their weights.
const WEIGHTED_SPANS: &str = "cartscope_report_weighted_spans";
const PERIOD_SPANS: &str = "cartscope_report_period_spans";

/// The weighted tables (added within report version 1, with `sampling`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Weighted {
    /// The carts that entered each stage, counted or estimated.
    pub funnel: Vec<WeightedStage>,
    /// The abandoned carts by suspected cause: each cart with one weighted, and `none` the
    /// rest of the abandoned carts estimated (from the adjusted abandonment rate and the
    /// converted carts; absent, with every share, when the rate is not known).
    pub causes: Vec<WeightedCount>,
    /// Every operation's spans in the period, each weighted by its trace's adjusted count;
    /// empty when no trace's probability is known.
    pub operations: Vec<WeightedOperation>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WeightedStage {
    pub stage: String,
    /// Carts estimated to have entered the stage, to one decimal: each cart seen entering it
    /// counts for the adjusted count of the trace it entered in.
    pub carts: f64,
    /// The share of the previous stage's estimated carts that went no further.
    pub drop_rate: f64,
    /// `metrics` where the transition counter counts the stage's entries (their count, not
    /// an estimate), else `traces`.
    pub source: String,
    /// Some cart was seen at this stage in more than one kept trace (items added in requests
    /// of their own): a cart is seen if any of them was kept, so its entry is counted for
    /// more than its chance of being seen and the estimate is too high. Under sparse sampling
    /// a stage entered over several requests may not show it: an estimated stage is exact
    /// (in expectation) only where a cart enters it in one request.
    pub at_most: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WeightedCount {
    pub name: String,
    /// Estimated abandoned carts, to one decimal.
    pub carts: f64,
    /// Their share of all estimated abandoned carts.
    pub share: Option<f64>,
}

/// The cause of abandoned carts without one, as the report's `causes` names it.
pub const NO_CAUSE: &str = "none";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WeightedOperation {
    pub operation: String,
    /// The spans kept in the traces.
    pub spans: u64,
    /// The spans there were, estimated: the sum of their adjusted counts.
    pub spans_estimated: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub error_rate: f64,
}

/// What the weighted tables are, for a reader, above them in every format.
pub const INTRO: &str = "Below, each cart and span counts for the carts or spans it stands for (1/p of its trace); a funnel stage the transition counter counts shows its count.";

/// One of the weighted tables as rows of text, for every format: a title, the columns
/// (each named, and whether it holds figures) and the rows.
pub struct Table {
    pub title: &'static str,
    pub columns: &'static [(&'static str, bool)],
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The columns' names.
    pub fn header(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.0).collect()
    }
}

impl Weighted {
    /// The tables to render, in order; the operations' only when there are weighted spans.
    pub fn tables(&self) -> Vec<Table> {
        let mut out = vec![
            Table {
                title: "Funnel, weighted",
                columns: &[
                    ("stage", false),
                    ("carts", true),
                    ("drop rate", true),
                    ("counted by", false),
                ],
                rows: self
                    .funnel
                    .iter()
                    .map(|s| {
                        let at_most = if s.at_most { "at most " } else { "" };
                        vec![
                            s.stage.clone(),
                            format!("{at_most}{:.1}", s.carts),
                            pct(s.drop_rate),
                            s.source.clone(),
                        ]
                    })
                    .collect(),
            },
            Table {
                title: "Abandoned by suspected cause, weighted",
                columns: &[
                    ("suspected cause", false),
                    ("abandoned (estimated)", true),
                    ("share", true),
                ],
                rows: self
                    .causes
                    .iter()
                    .map(|c| {
                        let share = c.share.map_or("-".into(), pct);
                        vec![c.name.clone(), format!("{:.1}", c.carts), share]
                    })
                    .collect(),
            },
        ];
        if !self.operations.is_empty() {
            out.push(Table {
                title: "Operations, weighted",
                columns: &[
                    ("operation", false),
                    ("spans kept", true),
                    ("spans (estimated)", true),
                    ("p50 ms", true),
                    ("p95 ms", true),
                    ("p99 ms", true),
                    ("errors", true),
                ],
                rows: self
                    .operations
                    .iter()
                    .map(|o| {
                        vec![
                            o.operation.clone(),
                            o.spans.to_string(),
                            format!("{:.1}", o.spans_estimated),
                            format!("{:.1}", o.p50_ms),
                            format!("{:.1}", o.p95_ms),
                            format!("{:.1}", o.p99_ms),
                            format!("{:.2}%", 100.0 * o.error_rate),
                        ]
                    })
                    .collect(),
            });
        }
        out
    }
}

/// The weighted tables of the period's carts and spans (`spans`, a condition on
/// `observed_traces`), from the weights' tables that `sampling::estimate` wrote (`w`,
/// among them its carts' stage entries). Each join runs in its passes.
pub async fn tables(
    ctx: &SessionContext,
    spans: &str,
    w: &mut Weights<'_>,
    (rc, sa): (Option<&Reconciliation>, &Sampling),
) -> Result<Weighted> {
    let by_trace = &w.by_trace;
    let otherwise = sampling::stage_coverage_sql(rc, "st.stage").unwrap_or("1.0".into());
    // Per stage order: the carts estimated to have entered, and whether one shows there in
    // more than one trace; summed over the passes by trace.
    let mut by_stage: BTreeMap<i64, (f64, bool)> = BTreeMap::new();
    for i in 0..by_trace.len() {
        let b = batches(
            ctx,
            &format!(
                "SELECT st.stage_order, sum({w}), CAST(bool_or(e.k) AS INT)
                 FROM {ENTRIES} e JOIN stages st ON e.stage_order = st.stage_order
                      LEFT JOIN (SELECT * FROM {TRACE_P} WHERE pass = {i}) tp
                             ON tp.trace_id = e.trace_id
                 WHERE e.pass = {i}
                 GROUP BY st.stage_order",
                w = sampling::adjusted_count_sql("tp", &otherwise),
            ),
        )
        .await?;
        let (order, entered, k) = (ints(&b, 0), floats(&b, 1), ints(&b, 2));
        for r in 0..order.len() {
            if let Some(o) = order[r] {
                let s = by_stage.entry(o).or_default();
                s.0 += entered[r].unwrap_or(0.0);
                s.1 |= k[r].is_some_and(|k| k > 0);
            }
        }
    }
    crate::output::phase("report: weighted: funnel");
    let b = batches(
        ctx,
        "SELECT stage, stage_order FROM stages ORDER BY stage_order",
    )
    .await?;
    let names = strings(&b, 0);
    let (entered, k): (Vec<f64>, Vec<Option<i64>>) = ints(&b, 1)
        .into_iter()
        .map(|o| {
            let (n, k) = o
                .and_then(|o| by_stage.get(&o).copied())
                .unwrap_or_default();
            (n, Some(k as i64))
        })
        .unzip();
    // Where the counter counts a stage's entries, they are counted, not estimated.
    let counted = |stage: &str| {
        rc.filter(|r| sampling::counter_whole(r))?
            .stages
            .iter()
            .find(|s| s.stage == stage && s.metric_transitions > 0.0)
            .map(|s| s.metric_transitions)
    };
    let mut funnel: Vec<WeightedStage> = (0..names.len())
        .map(|i| {
            let stage = names[i].clone().unwrap_or_default();
            let (carts, source, at_most) = match counted(&stage) {
                Some(n) => (n, "metrics", false),
                None => (entered[i], "traces", k[i].is_some_and(|k| k > 0)),
            };
            WeightedStage {
                stage,
                carts: round(carts, 1),
                drop_rate: 0.0,
                source: source.into(),
                at_most,
            }
        })
        .collect();
    // A cart that reached a stage reached every stage before it (one whose spans skip a
    // stage, say), so no estimated stage counts fewer carts than the next.
    for i in (0..funnel.len().saturating_sub(1)).rev() {
        if funnel[i].source == "traces" && funnel[i].carts < funnel[i + 1].carts {
            funnel[i].carts = funnel[i + 1].carts;
        }
    }
    for i in 1..funnel.len() {
        let (before, now) = (funnel[i - 1].carts, funnel[i].carts);
        if before > 0.0 {
            funnel[i].drop_rate = round(((before - now) / before).max(0.0), 4);
        }
    }

    // The abandoned carts of each suspected cause, weighted; the rest of the abandoned carts
    // estimated (from the rate and the converted carts) have none.
    let b = batches(
        ctx,
        &format!(
            "SELECT suspected_cause AS g, sum(w) AS n FROM {}
             WHERE outcome = 'abandoned' AND suspected_cause IS NOT NULL
             GROUP BY g ORDER BY n DESC, g",
            sampling::KEPT
        ),
    )
    .await?;
    let (names, n) = (strings(&b, 0), floats(&b, 1));
    let named: f64 = n.iter().flatten().sum();
    let abandoned = sa
        .abandonment_rate
        .filter(|r| *r < 1.0)
        .map(|r| (r / (1.0 - r) * sa.converted_estimated).max(named));
    let mut causes: Vec<WeightedCount> = names
        .into_iter()
        .zip(n)
        .map(|(name, n)| WeightedCount {
            name: name.unwrap_or_default(),
            carts: n.unwrap_or(0.0),
            share: None,
        })
        .collect();
    if let Some(all) = abandoned {
        causes.push(WeightedCount {
            name: NO_CAUSE.into(),
            carts: all - named,
            share: None,
        });
        for c in &mut causes {
            c.share = (all > 0.0).then(|| round(c.carts / all, 4));
        }
    }
    for c in &mut causes {
        c.carts = round(c.carts, 1);
    }

    Ok(Weighted {
        funnel,
        causes,
        operations: operations(ctx, spans, w).await?,
    })
}

/// Every operation's spans weighted by their trace's adjusted count, or none when no trace
/// of the period has a known probability below 1. Each trace is judged on all its spans,
/// inside the period or not (`TRACE_P`). Each pass's spans joined to their traces are
/// written first; the sums and the percentiles then read them.
async fn operations(
    ctx: &SessionContext,
    spans: &str,
    w: &mut Weights<'_>,
) -> Result<Vec<WeightedOperation>> {
    // No trace's probability known: every span weighs 1.
    let known = batches(ctx, &format!("SELECT count(*) FROM {TRACE_P}")).await?;
    if ints(&known, 0).first().copied().flatten().unwrap_or(0) == 0 {
        return Ok(Vec::new());
    }
    let weight = sampling::adjusted_count_sql("tp", "1.0");
    let by_trace = &w.by_trace;
    // The period's spans, read once and written by trace pass; each pass's joined to its
    // traces.
    w.scratch
        .write(
            PERIOD_SPANS,
            &format!(
                "SELECT o.trace_id, o.operation_name AS op, o.duration_ms AS d,
                        CASE WHEN o.status_code = 'error' THEN 1.0 ELSE 0.0 END AS e,
                        {pass} AS pass
                 FROM observed_traces o
                 WHERE {spans} AND o.duration_ms IS NOT NULL AND o.operation_name IS NOT NULL",
                pass = by_trace.of("o.trace_id"),
            ),
            Some(by_trace.len()),
        )
        .await?;
    w.scratch.register(PERIOD_SPANS).await?;
    for i in 0..by_trace.len() {
        w.scratch
            .write(
                WEIGHTED_SPANS,
                &format!(
                    "SELECT s.op, s.d, s.e, {weight} AS w
                     FROM (SELECT * FROM {PERIOD_SPANS} WHERE pass = {i}) s
                     LEFT JOIN (SELECT * FROM {TRACE_P} WHERE pass = {i}) tp
                            ON tp.trace_id = s.trace_id"
                ),
                None,
            )
            .await?;
    }
    w.scratch.register(WEIGHTED_SPANS).await?;
    let b = batches(
        ctx,
        &format!(
            "SELECT op, count(*), sum(w), sum(w * e) / sum(w), max(w)
             FROM {WEIGHTED_SPANS} GROUP BY op ORDER BY op"
        ),
    )
    .await?;
    let ops = strings(&b, 0);
    let (kept, sum, err, heaviest) = (ints(&b, 1), floats(&b, 2), floats(&b, 3), floats(&b, 4));
    if heaviest.iter().flatten().all(|w| *w <= 1.0) {
        return Ok(Vec::new());
    }
    let at = crate::replay::percentiles_at(
        ctx,
        &format!("SELECT op, d, w FROM {WEIGHTED_SPANS}"),
        &[0.5, 0.95, 0.99],
    )
    .await?;
    let f = |v: &[Option<f64>], i: usize, d: i32| round(v[i].unwrap_or(0.0), d);
    Ok((0..ops.len())
        .map(|i| {
            let op = ops[i].clone().unwrap_or_default();
            let p = |k: usize| round(at.get(&op).map_or(0.0, |v| v[k]), 3);
            WeightedOperation {
                spans: kept[i].unwrap_or(0).max(0) as u64,
                spans_estimated: f(&sum, i, 1),
                p50_ms: p(0),
                p95_ms: p(1),
                p99_ms: p(2),
                error_rate: f(&err, i, 4),
                operation: op,
            }
        })
        .collect())
}
