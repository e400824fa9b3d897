//! Sampling-aware figures: what the period's carts were, once the traces that were not kept
//! are accounted for.
//!
//! A cart's life spans several traces (each add, then its checkout), and samplers keep or
//! drop each trace. Two things follow. Each cart seen stands for 1/p carts (p: the
//! probability its deciding trace, the one of its last event, was kept), so the counts are
//! weighted by that adjusted count. And a cart whose next stage begins a trace of its own
//! (the checkout after the adds) may have gone on in a trace that was dropped: it looks
//! abandoned without being known to be. Such carts are "abandoned, incomplete trace", and
//! the rate is given with and without them.
//!
//! Where p comes from, first found first: OpenTelemetry's threshold in the span's W3C
//! tracestate (`ot=th:...`, `ot_probability`); the model's `sampling_probability` or
//! `adjusted_count` attributes; `--trace-sample-rate` or `--trace-sample-policy`; else, when
//! the metrics' transition counter shows the traces incomplete, the coverage of the cart's
//! last stage, or of every stage together where the counter does not count that one (a
//! sampler that records nothing and is not named: right for a ratio sampler, an estimate by
//! stage for a tail sampler, which keeps traces by what happened in them).
//!
//! The rate itself: with a transition counter, the metrics counted every cart entering the
//! first stage and every conversion, unsampled: 1 - conversions / entries (less the carts
//! still active and those that came back, as the traced rate leaves them out, by their
//! shares of the carts the traces show).
//! Without one, the weighted rates with and without the incomplete carts bound it: counting
//! them as abandoned counts the conversions the sampler hid as abandonments (too high); leaving
//! them out leaves out the carts truly abandoned before their next trace (too low).
//!
//! Memory: every join to the traces' probabilities runs in passes (`Passes`, `Scratch`).
//! Each span's say is written once by range of trace ids (`SPAN_P`), and each range's
//! grouped into its traces' probabilities (`TRACE_P`); the period's carts are written
//! by the range of their deciding trace (`CARTS_BY_TRACE`), and each range's joined to its
//! traces and written with their probability and weight (`KEPT`), which every figure after
//! reads instead of joining again. The carts' events are read once, in cart order, and folded
//! per cart (`entries`: how carts went on from each stage, and each one's entry into each, for
//! the weighted funnel) by range of cart ids. What no pass bounds: the groups of carts by
//! outcome, stage, hours and probability (a few thousand), and the stages. The trace
//! passes are sized by the period's carts, while `TRACE_P` holds every trace of the export:
//! a short period of a long export makes each pass's grouping larger than its share (it
//! spills), and a join that does not fit runs again in more passes.

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use super::entries;
use super::reconcile::{ByStageHour, Reconciliation, COMPLETE};
use super::rows::{batches, count, counts, floats, ints, pct, round, strings};
use crate::replay::model::Model;
use crate::sql::passes::{lit, Passes, Scratch};
use crate::stats;

const HOUR_NS: i64 = 3_600_000_000_000;

/// A tail-sampling policy (`keep-errors,keep-slow=2s,rate=0.1`): what a Collector's tail
/// sampler keeps once it has seen the whole trace (those with an error, those with a span at
/// least so slow, and a share of the rest). `cartscope generate --tail-sample` applies it;
/// `report --trace-sample-policy` weighs the traces it kept by it.
#[derive(Debug, Clone, PartialEq)]
pub struct TailPolicy {
    pub keep_errors: bool,
    /// Keep a trace with a span at least this long (nanoseconds).
    pub keep_slow_ns: Option<u64>,
    /// The probability of keeping any other trace.
    pub rate: f64,
}

impl FromStr for TailPolicy {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<TailPolicy> {
        let mut t = TailPolicy {
            keep_errors: false,
            keep_slow_ns: None,
            rate: f64::NAN,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                None if part == "keep-errors" => t.keep_errors = true,
                None if part == "keep-slow" => t.keep_slow_ns = Some(2_000_000_000),
                Some(("keep-slow", d)) => {
                    let d: crate::time::Duration = d
                        .parse()
                        .with_context(|| format!("keep-slow={d}: a duration, such as 2s"))?;
                    t.keep_slow_ns = Some(d.ns());
                }
                Some(("rate", p)) => t.rate = probability(p)?,
                _ => bail!(
                    "unknown tail-sampling policy '{part}': use keep-errors, keep-slow[=DURATION] and rate=P, separated by commas"
                ),
            }
        }
        if t.rate.is_nan() {
            bail!("say which share of the other traces to keep: rate=P, with P from 0 to 1 (rate=0 keeps none)");
        }
        Ok(t)
    }
}

/// A probability: a number from 0 to 1.
pub fn probability(s: &str) -> Result<f64> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => bail!("'{s}' is not a probability: give a number from 0 to 1, such as 0.25"),
    }
}

/// The period's carts, once sampling is accounted for (absent from the report when every
/// trace was kept).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sampling {
    /// Where the probabilities of keeping each cart's trace come from: `tracestate`
    /// (OpenTelemetry's threshold), `attribute` (the model's sampling keys), `flag`
    /// (`--trace-sample-rate` or `--trace-sample-policy`) or `metrics` (each stage's coverage
    /// in the reconciliation); the one that gave most carts theirs.
    pub source: String,
    /// Decided carts seen, over decided carts estimated: the share of them the traces show.
    pub probability: f64,
    /// Each decided cart weighted by its adjusted count (1/p).
    pub converted_estimated: f64,
    pub abandoned_estimated: f64,
    /// Abandoned carts (as the traces show them) whose next stage begins a trace of its own
    /// that may not have been kept: their trace was sampled, or the metrics counted entries
    /// into a later stage, in the hours they went idle, that the traces lack.
    pub abandoned_incomplete: u64,
    /// The weighted abandonment rate counting those carts as abandoned, and without them.
    pub rate_with_incomplete: Option<f64>,
    pub rate_without_incomplete: Option<f64>,
    /// How `abandonment_rate` was estimated: `metrics` (from the transition counter's
    /// entries into the first stage and conversions) or `bounds` (no counter: it lies
    /// between the two rates above, and is not given).
    pub method: String,
    pub abandonment_rate: Option<f64>,
    pub abandonment_rate_ci95: Option<[f64; 2]>,
    /// The same in words.
    pub summary: String,
}

impl Sampling {
    /// Its figures as (figure, value) rows, for the text and HTML reports.
    pub fn rows(&self) -> Vec<[String; 2]> {
        let rate = |r: Option<f64>| r.map_or("-".to_string(), pct);
        let mut out = vec![
            ["deciding traces kept".into(), pct(self.probability)],
            [
                "converted, estimated".into(),
                format!("{:.0}", self.converted_estimated),
            ],
            [
                "abandoned, estimated".into(),
                format!("{:.0}", self.abandoned_estimated),
            ],
            [
                "abandoned, incomplete trace".into(),
                self.abandoned_incomplete.to_string(),
            ],
            ["rate counting them".into(), rate(self.rate_with_incomplete)],
            [
                "rate without them".into(),
                rate(self.rate_without_incomplete),
            ],
        ];
        if let (Some(r), Some([lo, hi])) = (self.abandonment_rate, self.abandonment_rate_ci95) {
            out.push([
                "rate from the metrics".into(),
                format!("{} (95% CI {} to {})", pct(r), pct(lo), pct(hi)),
            ]);
        }
        out
    }
}

/// How the traces were sampled where their spans do not say: `--trace-sample-rate P` or
/// `--trace-sample-policy POLICY`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Declared {
    #[default]
    Nothing,
    Rate(f64),
    Policy(TailPolicy),
}

impl Declared {
    /// Whether the flags say of some trace that it was kept with a probability below 1.
    fn below_one(&self) -> bool {
        match self {
            Declared::Nothing => false,
            Declared::Rate(p) => *p < 1.0,
            Declared::Policy(t) => t.rate < 1.0,
        }
    }
}

/// The probability a cart's deciding trace was kept, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Kept {
    p: f64,
    source: &'static str,
}

/// The decided or active carts of one outcome, last stage, idle hours and probability.
#[derive(Debug, Clone)]
struct Group {
    outcome: String,
    stage: String,
    /// The hours of its last activity and of its abandonment (hour starts, ns).
    idle: (Option<i64>, Option<i64>),
    kept: Kept,
    carts: u64,
}

/// Where a trace's probability comes from, as `Sampling::source` names it, first found
/// first: its tracestate, the model's keys on its spans, the flags, each stage's coverage.
const SOURCES: [&str; 4] = ["tracestate", "attribute", "flag", "metrics"];

/// The least probability a trace is taken to have been kept with: a weight at most 10,000.
const LEAST_P: f64 = 0.0001;

pub(super) fn double(x: f64) -> String {
    format!("CAST('{x}' AS DOUBLE)")
}

/// What the model's keys on a span (`t`) say of the probability its trace was kept: the
/// first of its `sampling_probability` keys in (0, 1], else 1 over the first of its
/// `adjusted_count` keys at least 1 (not NaN, which sorts above every number); NULL where
/// none says.
fn attribute_probability_sql(m: &Model) -> String {
    let k = &m.keys;
    let probability = k.sampling_probability.iter().map(|a| {
        format!(
            "CASE WHEN attr_double(t.attributes, {a}) > 0 AND attr_double(t.attributes, {a}) <= 1 \
             THEN attr_double(t.attributes, {a}) END",
            a = lit(a)
        )
    });
    let adjusted = k.adjusted_count.iter().map(|a| {
        format!(
            "CASE WHEN attr_double(t.attributes, {a}) >= 1 AND NOT isnan(attr_double(t.attributes, {a})) \
             THEN 1.0 / attr_double(t.attributes, {a}) END",
            a = lit(a)
        )
    });
    let attribute: Vec<String> = probability.chain(adjusted).collect();
    match attribute.len() {
        0 => "CAST(NULL AS DOUBLE)".to_string(),
        1 => attribute[0].clone(),
        _ => format!("coalesce({})", attribute.join(", ")),
    }
}

/// Per span, what it says of the probability its trace was kept (`ot`: the tracestate's
/// threshold; `attr`: the model's keys) and what a tail-sampling policy judges its trace by
/// (`error`, `duration_ms`), with its trace (`trace_id`) and the pass of its trace. Only
/// the spans that say something when the flags say nothing.
fn span_probability_sql(m: &Model, declared: &Declared, by_trace: &Passes) -> String {
    let says = match declared {
        Declared::Nothing => "WHERE ot IS NOT NULL OR attr IS NOT NULL",
        _ => "",
    };
    format!(
        "SELECT * FROM (
             SELECT t.trace_id, ot_probability(t.trace_state) AS ot, {attr} AS attr,
                    t.status_code = 'error' AS error, t.duration_ms, {pass} AS pass
             FROM observed_traces t) {says}",
        attr = attribute_probability_sql(m),
        pass = by_trace.of("t.trace_id"),
    )
}

/// Per trace of `spans` (rows of `span_probability_sql`), what its spans and the flags say of
/// the probability it was kept: `ot` (the tracestate's threshold), `attr` (the model's keys)
/// and `declared` (`--trace-sample-rate`, or the policy judged on the trace).
fn trace_probability_sql(spans: &str, declared: &Declared) -> String {
    let declared = match declared {
        Declared::Nothing => "CAST(NULL AS DOUBLE)".to_string(),
        Declared::Rate(p) => double(*p),
        Declared::Policy(t) => {
            let mut notable = Vec::new();
            if t.keep_errors {
                notable.push("bool_or(t.error)".to_string());
            }
            if let Some(ns) = t.keep_slow_ns {
                notable.push(format!("max(t.duration_ms) >= {}", double(ns as f64 / 1e6)));
            }
            if notable.is_empty() {
                double(t.rate)
            } else {
                format!(
                    "CASE WHEN {} THEN 1.0 ELSE {} END",
                    notable.join(" OR "),
                    double(t.rate)
                )
            }
        }
    };
    format!(
        "SELECT t.trace_id, min(t.ot) AS ot, min(t.attr) AS attr, {declared} AS declared
         FROM {spans} t GROUP BY t.trace_id"
    )
}

/// Whether some span says its trace was kept with a probability below 1: a tracestate
/// threshold, or one of the model's sampling keys. When none does (and neither the flags
/// nor the metrics say the traces were sampled), every cart's deciding trace was kept, and
/// `estimate` need not write and group every span by trace nor join the carts to their
/// traces in passes.
///
/// One scan of `trace_state` and `attributes` that stops at the first such span; when no
/// trace was sampled, it reads every span's attribute map (18-19 s for 59.5M spans).
async fn spans_below_one(ctx: &SessionContext, m: &Model) -> Result<bool> {
    let b = batches(
        ctx,
        &format!(
            "SELECT 1 FROM observed_traces t
             WHERE ot_probability(t.trace_state) < 1 OR {} < 1 LIMIT 1",
            attribute_probability_sql(m)
        ),
    )
    .await?;
    Ok(b.iter().any(|b| b.num_rows() > 0))
}

/// Whether the metrics show traces missing (sampled, or an exporter down).
fn traces_missing(r: &Reconciliation) -> bool {
    !matches!(r.verdict.as_str(), "complete" | "metrics_short")
}

/// Whether the counter's counts can stand for the truth: it did not count fewer transitions
/// than the traces show, and no hour lacks its metrics.
pub(super) fn counter_whole(r: &Reconciliation) -> bool {
    r.verdict != "metrics_short" && !r.gaps.iter().any(|g| g.missing == "metrics")
}

/// The probability that a trace entering a stage was kept, from the metrics when they show
/// traces missing: each stage's coverage (traced transitions over counted, at most 1), else
/// the coverage of every stage together. `None` when the metrics do not show traces missing.
pub(super) fn stage_coverage_sql(rc: Option<&Reconciliation>, stage: &str) -> Option<String> {
    let r = rc.filter(|r| traces_missing(r))?;
    let positive = |c: Option<f64>| c.filter(|c| *c > 0.0).map(|c| c.min(1.0));
    let whens: String = r
        .stages
        .iter()
        .filter_map(|s| Some((s, positive(s.coverage)?)))
        .map(|(s, c)| format!(" WHEN {} THEN {}", lit(&s.stage), double(c)))
        .collect();
    let overall = positive(r.coverage);
    if whens.is_empty() && overall.is_none() {
        return None;
    }
    Some(format!(
        "CASE {stage}{whens} ELSE {} END",
        double(overall.unwrap_or(1.0))
    ))
}

/// The columns of `trace_probability_sql` that say a trace's probability, first found first
/// (the first of `SOURCES` each).
const TRACE_COLUMNS: [&str; 3] = ["ot", "attr", "declared"];

/// A trace's adjusted count (1/p, at most 1/`LEAST_P`) from the columns of
/// `trace_probability_sql` under `alias`, first found first; p is `otherwise` (SQL) where
/// none says.
pub(super) fn adjusted_count_sql(alias: &str, otherwise: &str) -> String {
    let p: Vec<String> = TRACE_COLUMNS
        .iter()
        .map(|c| format!("{alias}.{c}"))
        .collect();
    format!(
        "1.0 / greatest(coalesce({}, {otherwise}), {})",
        p.join(", "),
        double(LEAST_P)
    )
}

/// Per period cart of trace pass `pass` (`CARTS_BY_TRACE`), the columns the estimate reads,
/// with the probability its deciding trace was kept (`p`) and where it came from
/// (`source`): its spans' tracestate threshold, else the model's keys on them, else what
/// the flags say of it (`TRACE_P`'s columns, of the pass's traces), else the coverage of
/// the cart's last stage (`coverage`, SQL of `c.last_stage`, when the metrics show traces
/// missing), else 1.
fn kept_sql(coverage: Option<String>, pass: usize) -> String {
    // Where p comes from, first found first: (when, p, source).
    let mut from: Vec<(String, String, &str)> = TRACE_COLUMNS
        .into_iter()
        .zip(SOURCES)
        .map(|(col, source)| (format!("tp.{col} IS NOT NULL"), format!("tp.{col}"), source))
        .collect();
    from.extend(coverage.map(|c| ("TRUE".to_string(), c, SOURCES[3])));
    let case = |then: &dyn Fn(&(String, String, &str)) -> String, otherwise: &str| {
        let whens: String = from
            .iter()
            .map(|f| format!(" WHEN {} THEN {}", f.0, then(f)))
            .collect();
        format!("CASE{whens} ELSE {otherwise} END")
    };
    let p = case(&|f| f.1.clone(), "1.0");
    let source = case(&|f| format!("'{}'", f.2), "''");
    format!(
        "SELECT c.cart_id, c.outcome, c.last_stage, c.suspected_cause, c.idle_from, c.idle_to,
                {p} AS p, {source} AS source, 1.0 / greatest({p}, {least}) AS w
         FROM (SELECT * FROM {CARTS_BY_TRACE} WHERE pass = {pass}) c
         LEFT JOIN (SELECT * FROM {TRACE_P} WHERE pass = {pass}) tp
                ON tp.trace_id = c.last_trace_id",
        least = double(LEAST_P),
    )
}

/// The period's carts (`cur`), the columns `kept_sql` reads, with the trace pass of their
/// deciding trace (none: the last).
fn carts_by_trace_sql(cur: &str, by_trace: &Passes) -> String {
    let hour = |c: &str| format!("CAST(date_trunc('hour', {c}) AS BIGINT) * 1000");
    format!(
        "SELECT cart_id, outcome, last_stage, suspected_cause, {from} AS idle_from,
                {to} AS idle_to, last_trace_id, {pass} AS pass
         FROM carts WHERE {cur}",
        from = hour("last_activity"),
        to = hour("abandoned_at"),
        pass = by_trace.of("last_trace_id"),
    )
}

/// The tables of the sampling's weights: per trace, what says the probability it was kept
/// (`trace_id`, `ot`, `attr`, `declared`: `trace_probability_sql`'s columns, and its pass),
/// for the traces where something says; per period cart, the probability of its deciding
/// trace and its weight (`kept_sql`'s columns: `w` is the adjusted count 1/p, which the
/// drivers count by).
pub const TRACE_P: &str = "cartscope_report_trace_probabilities";
pub(super) const KEPT: &str = "cartscope_report_kept";
const CARTS_BY_TRACE: &str = "cartscope_report_carts_by_trace";
const SPAN_P: &str = "cartscope_report_span_probabilities";

/// About how many bytes a period cart takes in the hash tables of the joins to its traces,
/// by trace: its deciding trace's row, or its own (an id, a few short strings and numbers),
/// and the rows of the other traces it shows in (about three in all).
const CART_TRACES_BYTES: usize = 300;

/// The weights' tables, written in `Scratch` and registered while it lives, and how the
/// joins to the traces' probabilities split: in passes over ranges of trace ids, so that no
/// hash table holds every trace.
pub struct Weights<'a> {
    pub scratch: Scratch<'a>,
    pub by_trace: Passes,
}

/// The period's carts by outcome, last stage, idle hours and the probability of their
/// deciding trace.
async fn groups(ctx: &SessionContext) -> Result<Vec<Group>> {
    let b = batches(
        ctx,
        &format!(
            "SELECT outcome, last_stage, idle_from, idle_to, p, source, count(*)
             FROM {KEPT} GROUP BY 1, 2, 3, 4, 5, 6"
        ),
    )
    .await?;
    let (outcome, stage, from, to, p, source, n) = (
        strings(&b, 0),
        strings(&b, 1),
        ints(&b, 2),
        ints(&b, 3),
        floats(&b, 4),
        strings(&b, 5),
        counts(&b, 6),
    );
    Ok((0..n.len())
        .map(|i| Group {
            outcome: outcome[i].clone().unwrap_or_default(),
            stage: stage[i].clone().unwrap_or_default(),
            idle: (from[i], to[i]),
            kept: Kept {
                p: p[i].unwrap_or(1.0).clamp(LEAST_P, 1.0),
                source: SOURCES
                    .into_iter()
                    .find(|s| Some(*s) == source[i].as_deref())
                    .unwrap_or(""),
            },
            carts: n[i],
        })
        .collect())
}

/// Per stage, whether the carts that went on from it mostly entered their next stage in
/// another trace than their last of it (the checkout after the adds): a cart that stopped
/// there may have gone on in a trace that was not kept. A stage no cart went on from counts
/// as such.
fn apart(m: &Model, went: &entries::WentOn) -> Vec<bool> {
    let mut out = vec![true; m.stages.len()];
    for (&order, &(other, all)) in went {
        if let Ok(s) = usize::try_from(order - 1) {
            if s < out.len() {
                out[s] = 2 * other > all;
            }
        }
    }
    out
}

/// Whether the metrics counted entries into any stage after `stage` in the hours `idle`
/// spans that the traces lack.
fn later_missing(m: &Model, by_hour: &ByStageHour, stage: usize, idle: (i64, i64)) -> bool {
    m.stages.iter().skip(stage + 1).any(|s| {
        let mut h = idle.0;
        while h <= idle.1 {
            if let Some(&(metric, traced)) = by_hour.get(&(s.name.clone(), h)) {
                if metric >= 1.0 && (traced as f64) < COMPLETE * metric {
                    return true;
                }
            }
            h += HOUR_NS;
        }
        false
    })
}

/// The carts whose outcome is known, as a condition on `carts`: all but the abandoned ones of
/// an incomplete trace, given as (last stage, hour of last activity, hour of abandonment) of
/// theirs and of the others abandoned.
fn known_outcome(
    incomplete: &[(String, Option<i64>, Option<i64>)],
    others: &[(String, Option<i64>, Option<i64>)],
) -> String {
    let hour = |c: &str| format!("coalesce(CAST(date_trunc('hour', {c}) AS BIGINT) * 1000, -1)");
    let mut by_stage: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (st, a, b) in incomplete {
        by_stage
            .entry(st.as_str())
            .or_default()
            .push((a.unwrap_or(-1), b.unwrap_or(-1)));
    }
    let terms: Vec<String> = by_stage
        .into_iter()
        .map(|(st, mut hours)| {
            if !others.iter().any(|o| o.0 == st) {
                return format!("last_stage = {}", lit(st));
            }
            hours.sort_unstable();
            hours.dedup();
            let pairs: Vec<String> = hours
                .iter()
                .map(|(a, b)| {
                    format!(
                        "({} = {a} AND {} = {b})",
                        hour("last_activity"),
                        hour("abandoned_at")
                    )
                })
                .collect();
            format!("(last_stage = {} AND ({}))", lit(st), pairs.join(" OR "))
        })
        .collect();
    if terms.is_empty() {
        "TRUE".into()
    } else {
        format!("NOT (outcome = 'abandoned' AND ({}))", terms.join(" OR "))
    }
}

/// The period's sampling-aware figures, or `None` when every trace of its carts was kept
/// (nothing records a probability below 1, and the metrics do not show traces missing),
/// with the condition on `carts` that keeps the carts whose outcome is known (the drivers
/// are judged among them) and the weights' tables (`KEPT` holds each cart's weight). `cur`: the period's
/// carts; `declared`: what the flags say of the sampling; `rc`: the reconciliation.
pub async fn estimate<'a>(
    ctx: &'a SessionContext,
    m: &Model,
    cur: &str,
    declared: &Declared,
    rc: Option<(&Reconciliation, &ByStageHour)>,
    more: usize,
) -> Result<Option<(Sampling, String, Weights<'a>)>> {
    let incomplete_traces = rc.is_some_and(|(r, _)| traces_missing(r));
    if !incomplete_traces && !declared.below_one() && !spans_below_one(ctx, m).await? {
        return Ok(None);
    }
    let carts = count(ctx, &format!("SELECT count(*) FROM carts WHERE {cur}")).await?;
    let split = |key: &str| format!("SELECT {key} FROM carts WHERE {cur}");
    let by_trace =
        Passes::split(ctx, &split("last_trace_id"), carts, CART_TRACES_BYTES, more).await?;
    let by_cart = Passes::split(ctx, &split("cart_id"), carts, CART_TRACES_BYTES, more).await?;
    crate::output::phase(&format!(
        "report: sampling: joins in {} passes by trace and {} by cart",
        by_trace.len(),
        by_cart.len()
    ));
    let mut scratch = Scratch::new(ctx, "report", 120)?;
    // Each trace's probability, once: what says it, from all its spans. Each span's, read
    // once and written by the pass of its trace; each pass's grouped by trace (a grouping of
    // every trace at once spilled, and its sorts took the process 50% past the cap). A trace
    // of which nothing says has no row, as a trace that was not joined.
    scratch
        .write(
            SPAN_P,
            &span_probability_sql(m, declared, &by_trace),
            Some(by_trace.len()),
        )
        .await?;
    scratch.register(SPAN_P).await?;
    let says: Vec<String> = TRACE_COLUMNS
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect();
    for i in 0..by_trace.len() {
        let traces = trace_probability_sql(
            &format!("(SELECT * FROM {SPAN_P} WHERE pass = {i})"),
            declared,
        );
        scratch
            .write(
                TRACE_P,
                &format!(
                    "SELECT *, {i} AS pass FROM ({traces}) WHERE {says}",
                    says = says.join(" OR "),
                ),
                Some(by_trace.len()),
            )
            .await?;
    }
    scratch.register(TRACE_P).await?;
    crate::output::phase("report: sampling: each trace's probability");
    // The carts, read once and written by the pass of their deciding trace; each pass's
    // joined to its traces.
    scratch
        .write(
            CARTS_BY_TRACE,
            &carts_by_trace_sql(cur, &by_trace),
            Some(by_trace.len()),
        )
        .await?;
    scratch.register(CARTS_BY_TRACE).await?;
    let coverage = stage_coverage_sql(rc.map(|(r, _)| r), "c.last_stage");
    for i in 0..by_trace.len() {
        scratch
            .write(KEPT, &kept_sql(coverage.clone(), i), None)
            .await?;
    }
    scratch.register(KEPT).await?;
    let groups = groups(ctx).await?;
    crate::output::phase("report: sampling: each cart's weight");
    if !incomplete_traces && groups.iter().all(|g| g.kept.p >= 1.0) {
        return Ok(None);
    }
    let went = entries::fold(ctx, cur, &by_cart, &by_trace, &mut scratch).await?;
    crate::output::phase("report: sampling: the carts' stages");
    let apart = apart(m, &went);
    let order = |stage: &str| m.stages.iter().position(|s| s.name == stage);

    let mut by_source: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut seen, mut conv, mut ab, mut ab_inc) = (0u64, 0.0, 0.0, 0.0);
    // Carts as the traces show them, all, still active and come back.
    let (mut shown, mut active, mut back) = (0u64, 0u64, 0u64);
    let mut incomplete = 0u64;
    let (mut hidden_keys, mut other_keys) = (Vec::new(), Vec::new());
    for g in &groups {
        let w = g.carts as f64 / g.kept.p;
        shown += g.carts;
        match g.outcome.as_str() {
            "converted" => conv += w,
            "active" => active += g.carts,
            "recovered" => back += g.carts,
            "abandoned" => {
                ab += w;
                let hidden = order(&g.stage).is_some_and(|s| {
                    let after = s + 1 < m.stages.len() && apart[s];
                    let missing = match (rc, g.idle) {
                        (Some((_, h)), (Some(a), Some(b))) => later_missing(m, h, s, (a, b.max(a))),
                        _ => false,
                    };
                    after && (g.kept.p < 1.0 || missing)
                });
                let key = (g.stage.clone(), g.idle.0, g.idle.1);
                if hidden {
                    ab_inc += w;
                    incomplete += g.carts;
                    hidden_keys.push(key);
                } else {
                    other_keys.push(key);
                }
            }
            _ => continue,
        }
        if matches!(g.outcome.as_str(), "converted" | "abandoned") {
            seen += g.carts;
            if !g.kept.source.is_empty() {
                *by_source.entry(g.kept.source).or_default() += g.carts;
            }
        }
    }
    let source = by_source
        .iter()
        .max_by_key(|(s, n)| (**n, std::cmp::Reverse(**s)))
        .map_or("metrics", |(s, _)| s)
        .to_string();
    let rate = |bad: f64, good: f64| (bad + good > 0.0).then(|| round(bad / (bad + good), 6));
    let with = rate(ab, conv);
    let without = rate(ab - ab_inc, conv);

    // From the metrics: carts entering the first stage and converting, as counted.
    let counted = |names: &[&str]| -> Option<f64> {
        let (r, _) = rc?;
        let mut total = 0.0;
        for n in names {
            total += r.stages.iter().find(|s| s.stage == *n)?.metric_transitions;
        }
        Some(total)
    };
    let first = m.stages.first().map(|s| s.name.as_str());
    let success: Vec<&str> = m
        .stages
        .iter()
        .filter(|s| s.success)
        .map(|s| s.name.as_str())
        .collect();
    let metrics_rate = first
        .and_then(|f| counted(&[f]))
        .zip(counted(&success))
        .and_then(|(entered, converted)| {
            // The carts still active, and those that came back (whose conversions the
            // counter holds), are left out as the traced rate leaves them out: as the
            // shares of the carts the traces show. (Weighting them instead counts the
            // converted carts whose completion was dropped as active.)
            let share = |n: u64| n as f64 / shown.max(1) as f64;
            let decided = entered * (1.0 - share(active) - share(back));
            let converted = converted - entered * share(back);
            (decided >= 1.0 && converted >= 0.0 && converted <= decided).then(|| {
                let (n, bad) = (decided.round() as u64, (decided - converted).round() as u64);
                let (lo, hi) = stats::wilson_interval(bad.min(n), n, stats::Z_95);
                (
                    round(1.0 - converted / decided, 6),
                    [round(lo, 6), round(hi, 6)],
                )
            })
        });
    let estimated = conv + ab;
    let probability = if estimated > 0.0 {
        round(seen as f64 / estimated, 4)
    } else {
        1.0
    };
    let from = match source.as_str() {
        "tracestate" => "OpenTelemetry's threshold in the tracestate".to_string(),
        "attribute" => "the spans' sampling attributes".to_string(),
        "flag" => match declared {
            Declared::Policy(_) => "--trace-sample-policy".to_string(),
            _ => "--trace-sample-rate".to_string(),
        },
        _ => "the metrics' count of each stage".to_string(),
    };
    let mut summary = format!(
        "traces were sampled (about {} of the decided carts' deciding traces kept, from {from}); each cart counts for 1/p carts",
        pct(probability)
    );
    if incomplete > 0 {
        summary.push_str(&format!(
            "; {incomplete} abandoned carts have an incomplete trace: their next stage begins a trace of its own, which may not have been kept (the drivers are judged without them, on the carts whose outcome is known)"
        ));
    }
    if let (Some(w), Some(wo)) = (with, without) {
        summary.push_str(&format!(
            "; the abandonment rate weighted is {} counting them, {} without them",
            pct(w),
            pct(wo)
        ));
    }
    let (method, abandonment_rate, ci) = match metrics_rate {
        Some((r, ci)) => {
            summary.push_str(&format!(
                "; from the metrics' counts of carts entering the first stage and converting, it is {} ({} to {})",
                pct(r),
                pct(ci[0]),
                pct(ci[1])
            ));
            ("metrics", Some(r), Some(ci))
        }
        None => {
            summary.push_str("; without a transition counter the true rate lies between those two");
            ("bounds", None, None)
        }
    };
    let known = known_outcome(&hidden_keys, &other_keys);
    let weights = Weights { scratch, by_trace };
    Ok(Some((
        Sampling {
            source,
            probability,
            converted_estimated: round(conv, 2),
            abandoned_estimated: round(ab, 2),
            abandoned_incomplete: incomplete,
            rate_with_incomplete: with,
            rate_without_incomplete: without,
            method: method.into(),
            abandonment_rate,
            abandonment_rate_ci95: ci,
            summary,
        },
        known,
        weights,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model::load("reference").unwrap()
    }

    fn reconciliation(
        verdict: &str,
        overall: Option<f64>,
        gaps: serde_json::Value,
    ) -> Reconciliation {
        serde_json::from_value(serde_json::json!({
            "metric": "cart.state.transitions", "stage_attribute": "cart.stage",
            "verdict": verdict, "summary": "", "coverage": overall,
            "stages": [
                {"stage": "checkout", "metric_transitions": 100.0, "trace_transitions": 25,
                 "coverage": 0.25, "coverage_ci95": [0.2, 0.3], "traces_per_entry": 1.0},
                {"stage": "completed", "metric_transitions": 0.0, "trace_transitions": 0,
                 "coverage": null, "coverage_ci95": null, "traces_per_entry": 0.0}
            ],
            "hours": [], "gaps": gaps
        }))
        .unwrap()
    }

    /// Each stage's coverage, else every stage's together, else 1; nothing when the metrics
    /// do not show traces missing. The counter stands for the truth unless it is short.
    #[test]
    fn the_coverage_falls_back_stage_by_stage() {
        let r = reconciliation("uniform", Some(0.3), serde_json::json!([]));
        let sql = stage_coverage_sql(Some(&r), "s").unwrap();
        assert_eq!(
            sql,
            "CASE s WHEN 'checkout' THEN CAST('0.25' AS DOUBLE) ELSE CAST('0.3' AS DOUBLE) END"
        );
        let r = reconciliation("uneven", None, serde_json::json!([]));
        let sql = stage_coverage_sql(Some(&r), "s").unwrap();
        assert!(sql.ends_with("ELSE CAST('1' AS DOUBLE) END"), "{sql}");
        assert!(counter_whole(&r));
        let r = reconciliation("complete", Some(1.0), serde_json::json!([]));
        assert_eq!(stage_coverage_sql(Some(&r), "s"), None);
        let r = reconciliation("metrics_short", Some(1.2), serde_json::json!([]));
        assert!(!counter_whole(&r));
        let r = reconciliation(
            "gap",
            Some(0.9),
            serde_json::json!([{"from": "2026-11-20T10:00:00Z", "until": "2026-11-20T11:00:00Z", "missing": "metrics"}]),
        );
        assert!(!counter_whole(&r));
    }

    #[test]
    fn a_later_stage_missing_from_the_traces_in_the_idle_hours_leaves_the_outcome_open() {
        let m = model();
        let h = HOUR_NS;
        let mut by_hour = ByStageHour::new();
        // Hour 0: every checkout traced; hour 1: 10 counted, 3 traced.
        by_hour.insert(("checkout".into(), 0), (10.0, 10));
        by_hour.insert(("checkout".into(), h), (10.0, 3));
        let active = 0;
        assert!(!later_missing(&m, &by_hour, active, (0, 0)));
        assert!(later_missing(&m, &by_hour, active, (0, h)));
        assert!(later_missing(&m, &by_hour, active, (h, h)));
        // Only stages after the cart's own count: a cart at checkout is not left open by
        // checkouts missing.
        let checkout = 1;
        assert!(!later_missing(&m, &by_hour, checkout, (h, h)));
    }

    #[test]
    fn the_known_outcome_leaves_out_the_incomplete_carts_by_stage_and_hours() {
        let k = |st: &str, a: i64, b: i64| (st.to_string(), Some(a), Some(b));
        assert_eq!(known_outcome(&[], &[k("active", 0, 0)]), "TRUE");
        // Every abandoned cart of the stage is incomplete: the stage alone.
        assert_eq!(
            known_outcome(
                &[k("active", 0, 0), k("active", 0, 1)],
                &[k("checkout", 0, 0)]
            ),
            "NOT (outcome = 'abandoned' AND (last_stage = 'active'))"
        );
        // Some are not: by their hours.
        let sql = known_outcome(&[k("active", 5, 6)], &[k("active", 0, 0)]);
        assert!(sql.starts_with("NOT (outcome = 'abandoned' AND ((last_stage = 'active' AND ((coalesce(CAST(date_trunc('hour', last_activity)"), "{sql}");
        assert!(
            sql.contains("= 5 AND") && sql.ends_with("= 6)))))"),
            "{sql}"
        );
    }

    /// A session whose `observed_traces` are two spans, the second with the tracestate
    /// `state` and the attribute `key` = `value`; no other table.
    async fn spans_session(state: &str, key: &str, value: &str) -> SessionContext {
        let ctx = SessionContext::new();
        for f in crate::sql::udf::shipped().0 {
            ctx.register_udf(f);
        }
        let sql = format!(
            "CREATE VIEW observed_traces AS SELECT * FROM (VALUES
                 ('t1', CAST(NULL AS VARCHAR), map(['app.cart.id'], ['c1']), 'ok', 5.0),
                 ('t2', {state}, map([{key}], [{value}]), 'error', 9.0))
             AS t(trace_id, trace_state, attributes, status_code, duration_ms)",
            state = lit(state),
            key = lit(key),
            value = lit(value),
        );
        ctx.sql(&sql).await.unwrap();
        ctx
    }

    /// `estimate` joins the carts to their deciding traces only when something may say a
    /// trace was kept with a probability below 1: a span's tracestate threshold or one of the
    /// model's sampling keys, or the flags. The session here has no `carts` table: the
    /// estimate, when it goes on (its first step counts the carts), fails, so `Ok(None)`
    /// shows it did not.
    #[tokio::test]
    async fn the_carts_are_joined_to_their_traces_only_when_something_was_sampled() {
        let m = model();
        let joined = |r: Result<Option<(Sampling, String, Weights<'_>)>>| match r {
            Ok(None) => false,
            Ok(Some(_)) => panic!("no carts, no estimate"),
            Err(e) => {
                let e = format!("{e:#}");
                assert!(e.contains("carts"), "{e}");
                true
            }
        };
        let nothing = Declared::Nothing;
        let policy = |p: &str| Declared::Policy(p.parse().unwrap());
        for (state, key, value, declared, join) in [
            ("", "http.route", "/cart", &nothing, false),
            ("ot=th:0", "sampling.probability", "1", &nothing, false),
            (
                "ot=rv:9b8233f7e3a151",
                "sampling.adjusted_count",
                "1",
                &nothing,
                false,
            ),
            (
                "congo=t61rcWkgMzE",
                "SampleRate",
                "not a number",
                &nothing,
                false,
            ),
            ("ot=th:8", "http.route", "/cart", &nothing, true),
            ("", "sampling.probability", "0.25", &nothing, true),
            ("", "sampling.adjusted_count", "4", &nothing, true),
            ("", "SampleRate", "10", &nothing, true),
            ("", "SampleRate", "NaN", &nothing, false),
            ("", "sampling.probability", "NaN", &nothing, false),
            (
                "",
                "http.route",
                "/cart",
                &policy("keep-errors,rate=1"),
                false,
            ),
            (
                "",
                "http.route",
                "/cart",
                &policy("keep-errors,rate=0.1"),
                true,
            ),
            ("", "http.route", "/cart", &Declared::Rate(1.0), false),
            ("", "http.route", "/cart", &Declared::Rate(0.5), true),
        ] {
            let ctx = spans_session(state, key, value).await;
            let r = estimate(&ctx, &m, "TRUE", declared, None, 1).await;
            assert_eq!(joined(r), join, "{state:?} {key}={value} {declared:?}");
        }
        // The metrics showing traces missing: joined whatever the spans say.
        let ctx = spans_session("", "http.route", "/cart").await;
        let rc = reconciliation("uniform", Some(0.5), serde_json::json!([]));
        let r = estimate(
            &ctx,
            &m,
            "TRUE",
            &nothing,
            Some((&rc, &ByStageHour::new())),
            1,
        )
        .await;
        assert!(joined(r));
    }

    #[test]
    fn tail_policies_parse_and_say_what_is_wrong() {
        let t: TailPolicy = "keep-errors,keep-slow,rate=0.1".parse().unwrap();
        assert_eq!(
            t,
            TailPolicy {
                keep_errors: true,
                keep_slow_ns: Some(2_000_000_000),
                rate: 0.1
            }
        );
        let t: TailPolicy = "keep-slow=500ms, rate=0".parse().unwrap();
        assert_eq!(t.keep_slow_ns, Some(500_000_000));
        for (bad, says) in [
            ("keep-errors", "rate=P"),
            ("rate=1.5", "not a probability"),
            (
                "keep-everything,rate=0.1",
                "unknown tail-sampling policy 'keep-everything'",
            ),
            ("keep-slow=fast,rate=0.1", "keep-slow=fast"),
        ] {
            let e = format!("{:#}", bad.parse::<TailPolicy>().unwrap_err());
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
