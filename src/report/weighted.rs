//! The report's tables once the traces' sampling is accounted for: the funnel, the abandoned
//! carts by suspected cause, and every operation's spans, latency and error rate, each
//! carried by its adjusted count (1/p) rather than counted as kept.
//!
//! A funnel stage the transition counter counts is its count. Any other stage counts each
//! cart seen entering it for 1/p of the trace it entered in: exact in expectation when a cart
//! enters the stage in one trace (a Horvitz-Thompson count), too high when carts are seen there
//! in several (any kept one shows the cart), which `at_most` flags. Abandoned carts with a
//! suspected cause count for the weight `sampling::estimate` gave them (the view
//! `sampling::WEIGHTS`: 1/p of the trace that decides a cart's outcome); the rest of the
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
//! The weighted percentiles are t-digest estimates (DataFusion's
//! `approx_percentile_cont_with_weight`): memory bounded per operation, not exact ranks.

use anyhow::Result;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use super::reconcile::Reconciliation;
use super::rows::{batches, floats, ints, pct, round, strings};
use super::sampling::{self, Declared, Sampling};
use crate::replay::model::Model;

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

/// The weighted tables of the period's carts (`cur`, a condition on `carts`) and spans
/// (`spans`, a condition on `observed_traces`). Call after `sampling::estimate` has made the
/// view of the carts' weights.
pub async fn tables(
    ctx: &SessionContext,
    m: &Model,
    cur: &str,
    spans: &str,
    declared: &Declared,
    (rc, sa): (Option<&Reconciliation>, &Sampling),
) -> Result<Weighted> {
    let weights = sampling::WEIGHTS;
    // Each cart's entry into each stage: its first event there, in the trace it came in.
    let otherwise = sampling::stage_coverage_sql(rc, "st.stage").unwrap_or("1.0".into());
    let period_carts = format!("SELECT cart_id FROM carts WHERE {cur}");
    let traces = sampling::trace_probability_sql(
        m,
        &format!(
            "t.trace_id IN (SELECT trace_id FROM cart_events WHERE cart_id IN ({period_carts}))"
        ),
        declared,
    );
    let b = batches(
        ctx,
        &format!(
            "WITH tp AS ({traces}),
             e AS (SELECT cart_id, stage_order, first_value(trace_id ORDER BY time, trace_id) AS trace_id,
                          min(trace_id) < max(trace_id) AS k
                   FROM cart_events WHERE cart_id IN ({period_carts}) GROUP BY cart_id, stage_order)
             SELECT st.stage, sum(CASE WHEN e.cart_id IS NULL THEN 0.0 ELSE {w} END), CAST(bool_or(e.k) AS INT)
             FROM stages st LEFT JOIN e ON e.stage_order = st.stage_order
                  LEFT JOIN tp ON tp.trace_id = e.trace_id
             GROUP BY st.stage, st.stage_order ORDER BY st.stage_order",
            w = sampling::adjusted_count_sql("tp", &otherwise),
        ),
    )
    .await?;
    let (names, entered, k) = (strings(&b, 0), floats(&b, 1), ints(&b, 2));
    let entered: Vec<f64> = entered.into_iter().map(|x| x.unwrap_or(0.0)).collect();
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
            "SELECT c.g, sum(coalesce(w.w, 1.0)) AS n
             FROM (SELECT cart_id AS id, suspected_cause AS g FROM carts
                   WHERE {cur} AND outcome = 'abandoned' AND suspected_cause IS NOT NULL) c
             LEFT JOIN {weights} w ON w.cart_id = c.id
             GROUP BY c.g ORDER BY n DESC, c.g"
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
        operations: operations(ctx, m, spans, declared).await?,
    })
}

/// Every operation's spans weighted by their trace's adjusted count, or none when no trace
/// of the period has a known probability below 1.
async fn operations(
    ctx: &SessionContext,
    m: &Model,
    spans: &str,
    declared: &Declared,
) -> Result<Vec<WeightedOperation>> {
    // Each trace judged on all its spans, inside the period or not.
    let traces = sampling::trace_probability_sql(
        m,
        &format!("t.trace_id IN (SELECT trace_id FROM observed_traces WHERE {spans})"),
        declared,
    );
    let weight = sampling::adjusted_count_sql("tp", "1.0");
    let at = |q: f64| {
        format!("approx_percentile_cont_with_weight(s.w, {q}) WITHIN GROUP (ORDER BY s.d)")
    };
    let b = batches(
        ctx,
        &format!(
            "WITH tp AS ({traces}),
             s AS (SELECT o.operation_name AS op, o.duration_ms AS d,
                          CASE WHEN o.status_code = 'error' THEN 1.0 ELSE 0.0 END AS e,
                          {weight} AS w
                   FROM observed_traces o LEFT JOIN tp ON tp.trace_id = o.trace_id
                   WHERE {spans} AND o.duration_ms IS NOT NULL AND o.operation_name IS NOT NULL)
             SELECT s.op, count(*), sum(s.w), sum(s.w * s.e) / sum(s.w), {p50}, {p95}, {p99},
                    max(s.w)
             FROM s GROUP BY s.op ORDER BY s.op",
            p50 = at(0.5),
            p95 = at(0.95),
            p99 = at(0.99),
        ),
    )
    .await?;
    let ops = strings(&b, 0);
    let (kept, sum, err) = (floats(&b, 1), floats(&b, 2), floats(&b, 3));
    let (p50, p95, p99, heaviest) = (floats(&b, 4), floats(&b, 5), floats(&b, 6), floats(&b, 7));
    if heaviest.iter().flatten().all(|w| *w <= 1.0) {
        return Ok(Vec::new());
    }
    let f = |v: &[Option<f64>], i: usize, d: i32| round(v[i].unwrap_or(0.0), d);
    Ok((0..ops.len())
        .map(|i| WeightedOperation {
            operation: ops[i].clone().unwrap_or_default(),
            spans: kept[i].unwrap_or(0.0).max(0.0) as u64,
            spans_estimated: f(&sum, i, 1),
            p50_ms: f(&p50, i, 3),
            p95_ms: f(&p95, i, 3),
            p99_ms: f(&p99, i, 3),
            error_rate: f(&err, i, 4),
        })
        .collect())
}
