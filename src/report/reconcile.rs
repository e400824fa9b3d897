//! Data completeness: the stage transitions the metrics counted against those the trace
//! replay found.
//!
//! Metrics are not sampled; traces often are (a ratio in the SDK, a probabilistic or a tail
//! sampler in the Collector), and exporters go down. The model's transition counter (its
//! `derived.metric_name`, by `derived.stage_attribute`) counts each cart entering each stage;
//! the replay finds a cart entering a stage at the end of the first of its spans of that stage.
//! Per stage and hour, traces / metrics is the traces' effective coverage.
//!
//! Counters are read as the SDKs write them: delta points add up (each counted in the hour its
//! interval ends in, a point at 10:00:00 closing one of 09:59); cumulative points are
//! differenced within a series (its service, scope, `service.instance.id` and attributes), a
//! drop in the value or a new start time being a restart of the process, after
//! which the value counts from zero again. A series' first cumulative point counts only when
//! its start time falls in the period (else it holds counts from before).
//!
//! A stage entered through one trace (checkout: its one request) is covered as often as its
//! trace is kept, so its coverage is the sampling rate; a stage entered through several (the
//! first stage, a cart of several adds) is covered more often, since any of them shows the
//! cart. The estimated sampling rate is therefore pooled over the stages after the first whose
//! carts show about one trace each of them (`traces_per_entry`; under sampling it understates
//! the traces there were, which is why the first stage is left out whatever it shows), and
//! the verdict compares those stages:
//! alike (uniform sampling: each operation's figures unbiased, though carts whose later traces
//! were dropped look abandoned), or not (sampling that depends on what happened, such as a
//! tail sampler keeping errors, which biases the operations' figures too).

use std::collections::BTreeMap;

use anyhow::Result;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use super::rows::{batches, counts, floats, ints, round, strings};
use crate::replay::model::Model;
use crate::sql::passes::lit;
use crate::stats;
use crate::time::Timestamp;

const HOUR_NS: i64 = 3_600_000_000_000;

/// The resource attribute telling the processes of a service apart: each has its own
/// cumulative series.
pub const INSTANCE: &str = "service.instance.id";

/// A stage whose carts show at most this many traces of it each is entered through one trace.
const ONE_TRACE: f64 = 1.25;

/// Coverage at or above this is complete (a few transitions land in the next hour or period).
pub const COMPLETE: f64 = 0.98;

/// An hour with at least this many transitions on one side and none on the other is a gap.
const GAP_MIN: f64 = 5.0;

/// The metrics against the traces, for the report's "Data completeness" section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reconciliation {
    /// The counter read, and the attribute naming the stage.
    pub metric: String,
    pub stage_attribute: String,
    /// `complete`, `uniform`, `uneven`, `gap`, or `metrics_short` (the traces show more
    /// transitions than the metrics counted).
    pub verdict: String,
    /// The verdict for a reader.
    pub summary: String,
    /// Transitions found in traces / counted by the metrics, over the stages entered through
    /// one trace (over every stage when none is): the estimated sampling rate.
    pub coverage: Option<f64>,
    pub stages: Vec<StageCoverage>,
    /// Every stage together, per hour of the period with a transition on either side.
    pub hours: Vec<HourCoverage>,
    /// Hours where one side has transitions and the other none, merged when adjacent.
    pub gaps: Vec<Gap>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageCoverage {
    pub stage: String,
    /// Transitions the metrics counted in the period.
    pub metric_transitions: f64,
    /// Carts the replay saw entering the stage in the period.
    pub trace_transitions: u64,
    /// Their ratio (null without metric transitions).
    pub coverage: Option<f64>,
    /// Its 95% interval (Wilson's, the metric count as trials; null when the traces show
    /// more than the metrics).
    pub coverage_ci95: Option<[f64; 2]>,
    /// The mean number of distinct traces holding the stage's spans per cart seen entering
    /// it: about 1 for a stage entered through one request.
    pub traces_per_entry: f64,
}

impl StageCoverage {
    /// The columns of a stage's row, as every format shows them.
    pub const HEADER: [&'static str; 6] = [
        "stage",
        "metric transitions",
        "in traces",
        "coverage",
        "95% CI",
        "traces per entry",
    ];

    /// The row's cells, in `HEADER`'s order.
    pub fn cells(&self) -> Vec<String> {
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        vec![
            self.stage.clone(),
            format!("{}", self.metric_transitions),
            self.trace_transitions.to_string(),
            self.coverage.map(pct).unwrap_or_else(|| "-".into()),
            self.coverage_ci95
                .map(|[lo, hi]| format!("{} to {}", pct(lo), pct(hi)))
                .unwrap_or_else(|| "-".into()),
            format!("{:.2}", self.traces_per_entry),
        ]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HourCoverage {
    #[serde(with = "crate::time::whole_seconds")]
    pub hour: Timestamp,
    pub metric_transitions: f64,
    pub trace_transitions: u64,
    pub coverage: Option<f64>,
}

impl Gap {
    /// "no traces from 2026-11-20T10:00:00.000000Z to ..."
    pub fn text(&self) -> String {
        format!("no {} from {} to {}", self.missing, self.from, self.until)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Gap {
    #[serde(with = "crate::time::whole_seconds")]
    pub from: Timestamp,
    #[serde(with = "crate::time::whole_seconds")]
    pub until: Timestamp,
    /// `traces` (the metrics counted transitions the traces do not show) or `metrics`.
    pub missing: String,
}

/// The hour a count belongs to: that of the instant before its point's time (a point at
/// 10:00:00 closes an interval of 09:59).
fn hour_of(t: i64) -> i64 {
    (t - 1).div_euclid(HOUR_NS) * HOUR_NS
}

/// Cumulative points of one series, in time order, into increments per (stage, hour).
fn difference(
    points: &[(Option<i64>, i64, f64)],
    stage: &str,
    since_ns: i64,
    until_ns: i64,
    out: &mut BTreeMap<(String, i64), f64>,
) {
    let mut prev: Option<(Option<i64>, f64)> = None;
    for &(start, t, v) in points {
        let inc = match prev {
            // The same run of the process: what it counted since the last point.
            Some((ps, pv)) if ps == start && v >= pv => v - pv,
            // A restart (a new start time, or a drop): counted from zero since it started.
            Some(_) => v,
            // The first point: counted since the series began, if it began in the period
            // (else it holds counts from before, which cannot be told apart).
            None => match start {
                Some(s) if s >= since_ns => v,
                _ => 0.0,
            },
        };
        prev = Some((start, v));
        let at = t - 1;
        if inc > 0.0 && at >= since_ns && at < until_ns {
            *out.entry((stage.to_string(), hour_of(t))).or_default() += inc;
        }
    }
}

/// The transitions the metrics counted, per (stage, hour start), in [since, until).
async fn metric_transitions(
    ctx: &SessionContext,
    m: &Model,
    since_ns: i64,
    until_ns: i64,
) -> Result<BTreeMap<(String, i64), f64>> {
    let d = &m.derived;
    let stage = format!("attributes[{}]", lit(&d.stage_attribute));
    let key = format!(
        "concat(coalesce(service_name, ''), '|', coalesce(scope_name, ''), '|',
                coalesce(resource_attributes[{}], ''), '|',
                array_to_string(map_keys(attributes), ','), '=',
                array_to_string(map_values(attributes), ','))",
        lit(INSTANCE)
    );
    // Cumulative points a little before the period too, to difference the first of it.
    let b = batches(
        ctx,
        &format!(
            "SELECT {stage}, coalesce(aggregation_temporality, 'cumulative') = 'delta',
                    CAST(start_timestamp AS BIGINT) * 1000, CAST(timestamp AS BIGINT) * 1000 AS t,
                    coalesce(value, CAST(int_value AS DOUBLE)), {key} AS series
             FROM observed_metrics
             WHERE name = {name} AND {stage} IS NOT NULL AND metric_type = 'sum'
               AND timestamp IS NOT NULL
               AND CAST(timestamp AS BIGINT) <= {until_us}
             ORDER BY series, t",
            name = lit(&d.metric_name),
            until_us = until_ns.div_euclid(1000),
        ),
    )
    .await?;
    let (stages, delta, start, time, value, series) = (
        strings(&b, 0),
        ints(&b, 1),
        ints(&b, 2),
        ints(&b, 3),
        floats(&b, 4),
        strings(&b, 5),
    );
    let mut out = BTreeMap::new();
    let mut run: Vec<(Option<i64>, i64, f64)> = Vec::new();
    for i in 0..stages.len() {
        let (Some(st), Some(t), Some(v)) = (&stages[i], time[i], value[i]) else {
            continue;
        };
        if delta[i] == Some(1) {
            let at = t - 1;
            if at >= since_ns && at < until_ns && v > 0.0 {
                *out.entry((st.clone(), hour_of(t))).or_default() += v;
            }
            continue;
        }
        run.push((start[i], t, v));
        let last = i + 1 == stages.len() || series[i + 1] != series[i] || delta[i + 1] == Some(1);
        if last {
            difference(&run, st, since_ns, until_ns, &mut out);
            run.clear();
        }
    }
    Ok(out)
}

/// The carts the replay saw entering each stage, per (stage, hour start), with the traces
/// holding the stage's spans.
async fn trace_transitions(
    ctx: &SessionContext,
    since_ns: i64,
    until_ns: i64,
) -> Result<BTreeMap<(String, i64), (u64, u64)>> {
    let b = batches(
        ctx,
        &format!(
            "WITH entry AS (
                SELECT stage, min(end_time) AS t, count(DISTINCT trace_id) AS traces
                FROM cart_events WHERE stage IS NOT NULL GROUP BY cart_id, stage)
             SELECT stage, CAST(date_trunc('hour', t) AS BIGINT) * 1000, count(*), sum(traces)
             FROM entry
             WHERE CAST(t AS BIGINT) >= {} AND CAST(t AS BIGINT) < {}
             GROUP BY 1, 2",
            since_ns.div_euclid(1000),
            until_ns.div_euclid(1000)
        ),
    )
    .await?;
    let (stage, hour, n, traces) = (strings(&b, 0), ints(&b, 1), counts(&b, 2), counts(&b, 3));
    Ok((0..stage.len())
        .filter_map(|i| Some(((stage[i].clone()?, hour[i]?), (n[i], traces[i]))))
        .collect())
}

fn ratio(traces: f64, metric: f64) -> Option<f64> {
    (metric > 0.0).then(|| round(traces / metric, 4))
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// Per (stage, hour start): the transitions the metrics counted, and those the traces show.
pub type ByStageHour = BTreeMap<(String, i64), (f64, u64)>;

/// The reconciliation of the period [since, until), with its counts per stage and hour, or
/// `None` when the export has no transition counter for the model's stages.
pub async fn reconcile(
    ctx: &SessionContext,
    m: &Model,
    since_ns: i64,
    until_ns: i64,
) -> Result<Option<(Reconciliation, ByStageHour)>> {
    let metric = metric_transitions(ctx, m, since_ns, until_ns).await?;
    let names: Vec<&str> = m.stages.iter().map(|s| s.name.as_str()).collect();
    // Only the model's stages the counter names: the others cannot be compared.
    let counted: Vec<&str> = names
        .iter()
        .copied()
        .filter(|s| metric.keys().any(|(st, _)| st == s))
        .collect();
    if counted.is_empty() {
        return Ok(None);
    }
    let traces = trace_transitions(ctx, since_ns, until_ns).await?;
    let mut stages = Vec::new();
    let mut by_hour: BTreeMap<i64, (f64, u64)> = BTreeMap::new();
    for s in &counted {
        let mut mt = 0.0;
        for ((st, h), v) in &metric {
            if st == s {
                mt += v;
                by_hour.entry(*h).or_default().0 += v;
            }
        }
        let (mut tt, mut tr) = (0u64, 0u64);
        for ((st, h), (n, t)) in &traces {
            if st == s {
                tt += n;
                tr += t;
                by_hour.entry(*h).or_default().1 += n;
            }
        }
        let n = mt.round() as u64;
        let ci = (tt <= n && n > 0).then(|| {
            let (lo, hi) = stats::wilson_interval(tt, n, stats::Z_95);
            [round(lo, 4), round(hi, 4)]
        });
        stages.push(StageCoverage {
            stage: s.to_string(),
            metric_transitions: round(mt, 3),
            trace_transitions: tt,
            coverage: ratio(tt as f64, mt),
            coverage_ci95: ci,
            traces_per_entry: if tt > 0 {
                round(tr as f64 / tt as f64, 3)
            } else {
                0.0
            },
        });
    }
    let hours: Vec<HourCoverage> = by_hour
        .iter()
        .map(|(h, (mt, tt))| HourCoverage {
            hour: Timestamp::from_ns(*h),
            metric_transitions: round(*mt, 3),
            trace_transitions: *tt,
            coverage: ratio(*tt as f64, *mt),
        })
        .collect();

    // The sampling rate: pooled over the stages entered through one trace. Not the model's
    // first stage: a cart is filled by repeated requests (adds), any of which shows it, and
    // under sampling the traces seen per cart understate how many there were.
    let one: Vec<&StageCoverage> = stages
        .iter()
        .filter(|s| {
            s.trace_transitions > 0
                && s.traces_per_entry <= ONE_TRACE
                && Some(s.stage.as_str()) != names.first().copied()
        })
        .collect();
    let pool = if one.is_empty() {
        stages.iter().collect()
    } else {
        one.clone()
    };
    let (pt, pm) = pool.iter().fold((0.0, 0.0), |(t, m), s| {
        (t + s.trace_transitions as f64, m + s.metric_transitions)
    });
    let coverage = ratio(pt, pm);
    let overall = ratio(
        stages.iter().map(|s| s.trace_transitions as f64).sum(),
        stages.iter().map(|s| s.metric_transitions).sum(),
    )
    .unwrap_or(0.0);

    // Gaps: hours with transitions on one side and none, or next to none, on the other.
    let mut gaps: Vec<Gap> = Vec::new();
    let expected = coverage.unwrap_or(1.0).max(0.01);
    for (h, (mt, tt)) in &by_hour {
        let missing = if *mt >= GAP_MIN && (*tt as f64) < 0.1 * expected * mt {
            "traces"
        } else if *tt as f64 >= GAP_MIN && *mt == 0.0 {
            "metrics"
        } else {
            continue;
        };
        let (from, until) = (Timestamp::from_ns(*h), Timestamp::from_ns(h + HOUR_NS));
        match gaps.last_mut() {
            Some(g) if g.until == from && g.missing == missing => g.until = until,
            _ => gaps.push(Gap {
                from,
                until,
                missing: missing.into(),
            }),
        }
    }

    // The verdict.
    let alike = |s: &StageCoverage| match (s.coverage, coverage) {
        (Some(c), Some(p)) => {
            let se = (p * (1.0 - p) / s.metric_transitions.max(1.0)).sqrt();
            (c - p).abs() <= (3.0 * se).max(0.03)
        }
        _ => true,
    };
    let list = |ss: &[&StageCoverage]| {
        ss.iter()
            .map(|s| format!("{} {}", s.stage, s.coverage.map(pct).unwrap_or("-".into())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (mut verdict, mut summary) = if overall > 1.0 + (1.0 - COMPLETE) {
        (
            "metrics_short",
            format!(
                "the traces show more stage transitions than the metrics counted ({}): the counter is incomplete, or counts only part of what the model calls a stage",
                list(&stages.iter().collect::<Vec<_>>())
            ),
        )
    } else if stages
        .iter()
        .all(|s| s.coverage.is_none_or(|c| c >= COMPLETE))
    {
        (
            "complete",
            "complete: the traces show every stage transition the metrics counted".to_string(),
        )
    } else if one.iter().all(|s| alike(s)) {
        let p = coverage.unwrap_or(0.0);
        (
            "uniform",
            format!(
                "uniformly sampled at about {}: each request's trace was kept with that chance whatever happened in it, so counts are about {:.1} times too low and, as a cart's life spans several traces, carts whose checkout or completion was not kept look abandoned: the abandonment rate from traces is overstated, while each operation's latency and error rate are not biased ({})",
                pct(p),
                1.0 / p.max(1e-9),
                list(&stages.iter().collect::<Vec<_>>())
            ),
        )
    } else {
        (
            "uneven",
            format!(
                "sampled unevenly by stage ({}): traces were kept by what happened in them (a tail sampler keeping errors or slow requests, say), which biases the abandonment rate, the drivers and each operation's latency and error rate; name the sampler's policy with --trace-sample-policy to weigh each trace by its own probability",
                list(&stages.iter().collect::<Vec<_>>())
            ),
        )
    };
    if !gaps.is_empty() {
        let said: Vec<String> = gaps.iter().map(Gap::text).collect();
        summary = format!(
            "a gap ({}: an exporter down?); otherwise {summary}",
            said.join("; ")
        );
        verdict = "gap";
    }
    let mut detail: ByStageHour = BTreeMap::new();
    for (k, v) in metric {
        detail.entry(k).or_default().0 += v;
    }
    for (k, (n, _)) in traces {
        detail.entry(k).or_default().1 += n;
    }
    Ok(Some((
        Reconciliation {
            metric: m.derived.metric_name.clone(),
            stage_attribute: m.derived.stage_attribute.clone(),
            verdict: verdict.into(),
            summary,
            coverage,
            stages,
            hours,
            gaps,
        },
        detail,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_counters_are_differenced_across_restarts() {
        let h = HOUR_NS;
        let mut out = BTreeMap::new();
        // Started in the period at 0; 5 by 10 min, 8 by 70 min; a restart (new start at
        // 75 min) with 2 by 80 min; a drop without a new start time, 1 by 130 min.
        let m = 60_000_000_000i64;
        let points = [
            (Some(0), 10 * m, 5.0),
            (Some(0), 70 * m, 8.0),
            (Some(75 * m), 80 * m, 2.0),
            (Some(75 * m), 130 * m, 1.0),
        ];
        difference(&points, "checkout", 0, 3 * h, &mut out);
        let got: Vec<(i64, f64)> = out.iter().map(|((_, h), v)| (*h, *v)).collect();
        // 5 by 10 min in hour 0; 3 more by 70 min in hour 1; 2 after the restart, by 80
        // min; 1 after the drop, by 130 min, in hour 2.
        assert_eq!(got, vec![(0, 5.0), (h, 5.0), (2 * h, 1.0)]);
    }

    #[test]
    fn a_series_begun_before_the_period_counts_from_its_first_point() {
        let mut out = BTreeMap::new();
        let h = HOUR_NS;
        let points = [(Some(-h), h / 2, 100.0), (Some(-h), h + 1, 104.0)];
        difference(&points, "active", 0, 2 * h, &mut out);
        // Not the 100 from before the period; the 4 since, in the hour of the second point.
        assert_eq!(
            out.into_iter().collect::<Vec<_>>(),
            vec![(("active".into(), h), 4.0)]
        );
    }
}
