//! `cartscope check`: regression checks for CI.
//!
//! A rules file holds `[[rule]]` tables. Each rule reads one number, either a named measure
//! of the report (`measure = "abandonment_rate"`, `measure = "p95_ms"` with an `operation`,
//! ...) or the single value of an SQL query (`sql = "..."`), and bounds it: `min`/`max`
//! limits, and tolerances against a baseline report (`max_increase`, `max_decrease` in the
//! measure's units; `max_increase_pct`, `max_decrease_pct` in percent of the baseline's
//! value). Named measures are read from the `Report` model, so the same function reads the
//! current run and a baseline written by `cartscope report --format json`.
//!
//! Rules are checked whole before any data is read: an unknown measure, a missing
//! `operation`, a rate limit above 1 or a rule with no limit is an error that names the
//! file, the line and the key (exit code 2), never a rule that silently passes.

pub mod render;

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::report::weighted::Weighted;
use crate::report::Report;

/// The version of the JSON form of a check's result.
pub const CHECK_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum CheckFormat {
    /// A table of rules, values, limits and verdicts.
    #[default]
    Text,
    /// A stable schema with a version field.
    Json,
}

/// What a measure is qualified by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    /// `operation = "..."`, required.
    Operation,
    /// `stage = "..."`, required.
    Stage,
    /// `cause = "..."`, optional: the abandonments with that suspected cause.
    OptionalCause,
    /// `stage = "..."`, optional: that stage's figure rather than the whole's.
    OptionalStage,
}

struct MeasureDef {
    name: &'static str,
    needs: Needs,
    /// A fraction between 0 and 1.
    rate: bool,
}

/// The named measures, as rules files spell them.
const MEASURES: &[MeasureDef] = &[
    MeasureDef {
        name: "carts",
        needs: Needs::Nothing,
        rate: false,
    },
    MeasureDef {
        name: "converted_carts",
        needs: Needs::Nothing,
        rate: false,
    },
    MeasureDef {
        name: "abandoned_carts",
        needs: Needs::OptionalCause,
        rate: false,
    },
    MeasureDef {
        name: "active_carts",
        needs: Needs::Nothing,
        rate: false,
    },
    MeasureDef {
        name: "recovered_carts",
        needs: Needs::Nothing,
        rate: false,
    },
    MeasureDef {
        name: "abandonment_rate",
        needs: Needs::Nothing,
        rate: true,
    },
    MeasureDef {
        name: "abandonment_rate_adjusted",
        needs: Needs::Nothing,
        rate: true,
    },
    MeasureDef {
        name: "conversion_rate",
        needs: Needs::Nothing,
        rate: true,
    },
    MeasureDef {
        name: "abandoned_value",
        needs: Needs::OptionalCause,
        rate: false,
    },
    MeasureDef {
        name: "abandoned_value_estimated",
        needs: Needs::OptionalCause,
        rate: false,
    },
    MeasureDef {
        name: "trace_coverage",
        needs: Needs::OptionalStage,
        rate: true,
    },
    MeasureDef {
        name: "stage_carts",
        needs: Needs::Stage,
        rate: false,
    },
    MeasureDef {
        name: "drop_rate",
        needs: Needs::Stage,
        rate: true,
    },
    MeasureDef {
        name: "spans",
        needs: Needs::Operation,
        rate: false,
    },
    MeasureDef {
        name: "p50_ms",
        needs: Needs::Operation,
        rate: false,
    },
    MeasureDef {
        name: "p95_ms",
        needs: Needs::Operation,
        rate: false,
    },
    MeasureDef {
        name: "p99_ms",
        needs: Needs::Operation,
        rate: false,
    },
    MeasureDef {
        name: "error_rate",
        needs: Needs::Operation,
        rate: true,
    },
    // The same once the traces' sampling is accounted for (the report's weighted tables);
    // the figures as traced when every trace was kept.
    MeasureDef {
        name: "abandoned_carts_adjusted",
        needs: Needs::OptionalCause,
        rate: false,
    },
    MeasureDef {
        name: "stage_carts_adjusted",
        needs: Needs::Stage,
        rate: false,
    },
    MeasureDef {
        name: "spans_adjusted",
        needs: Needs::Operation,
        rate: false,
    },
    MeasureDef {
        name: "p50_ms_adjusted",
        needs: Needs::Operation,
        rate: false,
    },
    MeasureDef {
        name: "p95_ms_adjusted",
        needs: Needs::Operation,
        rate: false,
    },
    MeasureDef {
        name: "p99_ms_adjusted",
        needs: Needs::Operation,
        rate: false,
    },
    MeasureDef {
        name: "error_rate_adjusted",
        needs: Needs::Operation,
        rate: true,
    },
];

fn measure_names() -> String {
    MEASURES
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A rule as written: every key keeps its place in the file, so errors can name its line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<Spanned<String>>,
    measure: Option<Spanned<String>>,
    sql: Option<Spanned<String>>,
    operation: Option<Spanned<String>>,
    cause: Option<Spanned<String>>,
    stage: Option<Spanned<String>>,
    min: Option<Spanned<f64>>,
    max: Option<Spanned<f64>>,
    max_increase: Option<Spanned<f64>>,
    max_decrease: Option<Spanned<f64>>,
    max_increase_pct: Option<Spanned<f64>>,
    max_decrease_pct: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

/// What a rule reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Measure {
        name: String,
        operation: Option<String>,
        cause: Option<String>,
        stage: Option<String>,
    },
    Sql(String),
}

/// One bound on a rule's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    Min,
    Max,
    MaxIncrease,
    MaxDecrease,
    MaxIncreasePct,
    MaxDecreasePct,
}

impl LimitKind {
    fn key(self) -> &'static str {
        match self {
            LimitKind::Min => "min",
            LimitKind::Max => "max",
            LimitKind::MaxIncrease => "max_increase",
            LimitKind::MaxDecrease => "max_decrease",
            LimitKind::MaxIncreasePct => "max_increase_pct",
            LimitKind::MaxDecreasePct => "max_decrease_pct",
        }
    }

    fn against_baseline(self) -> bool {
        !matches!(self, LimitKind::Min | LimitKind::Max)
    }

    /// An upper bound (the value must not exceed it).
    fn upper(self) -> bool {
        matches!(
            self,
            LimitKind::Max | LimitKind::MaxIncrease | LimitKind::MaxIncreasePct
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// The line of the `[[rule]]` header.
    pub line: usize,
    pub source: Source,
    pub limits: Vec<(LimitKind, f64)>,
}

impl Rule {
    pub fn needs_baseline(&self) -> bool {
        self.limits.iter().any(|(k, _)| k.against_baseline())
    }

    /// What the rule reads, as the output shows it.
    pub fn what(&self) -> String {
        describe(&self.source)
    }
}

/// What a source reads: `abandonment_rate`, `p95_ms(shipping.calculate_rates)`, `sql`.
fn describe(source: &Source) -> String {
    match source {
        Source::Sql(_) => "sql".into(),
        Source::Measure {
            name,
            operation,
            cause,
            stage,
        } => match operation.as_ref().or(cause.as_ref()).or(stage.as_ref()) {
            Some(q) => format!("{name}({q})"),
            None => name.clone(),
        },
    }
}

/// A rules file, parsed and checked.
#[derive(Debug, Clone)]
pub struct Rules {
    pub origin: String,
    pub rules: Vec<Rule>,
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Rules {
    /// What the SQL rules read of a raw export's attributes (`sql::reads`): their
    /// `${since}`, `${until}` and `${as_of}`, unknown until the data is read, are taken for a
    /// plain value; a rule that does not render reads everything (the run then says why).
    pub fn reads(&self) -> crate::read::projection::Projection {
        use crate::read::projection::Projection;
        let mut p = Projection::nothing();
        for r in &self.rules {
            if let Source::Sql(sql) = &r.source {
                p = match self.query(r, sql, ["x", "x", "x"]).render(&[]) {
                    Ok(text) => p.union(&crate::sql::reads::sql_reads(&text)),
                    Err(_) => Projection::everything(),
                };
            }
        }
        p
    }

    /// A SQL rule as a query whose parameters `since`, `until` and `as_of` default to `values`.
    fn query(&self, rule: &Rule, sql: &str, values: [&str; 3]) -> crate::sql::library::Query {
        crate::sql::library::Query {
            name: rule.name.clone(),
            description: String::new(),
            params: ["since", "until", "as_of"]
                .iter()
                .zip(values)
                .map(|(n, v)| crate::sql::library::Param {
                    name: n.to_string(),
                    default: v.to_string(),
                    doc: String::new(),
                })
                .collect(),
            sql: sql.to_string(),
            origin: self.origin.clone(),
        }
    }

    pub fn load(path: &Path) -> Result<Rules> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the rules file '{}'", path.display()))?;
        Rules::parse(&text, &path.display().to_string())
    }

    /// Parses a rules file; every error names the file, the line and the key.
    pub fn parse(text: &str, origin: &str) -> Result<Rules> {
        let raw: RawFile = toml::from_str(text).map_err(|e| match e.span() {
            Some(s) => anyhow!(
                "rules '{origin}', line {}: {}",
                line_at(text, s.start),
                e.message().trim_end()
            ),
            None => anyhow!("rules '{origin}': {}", e.message().trim_end()),
        })?;
        if raw.rule.is_empty() {
            bail!("rules '{origin}': there is no [[rule]] in it, so nothing would be checked");
        }
        let mut rules: Vec<Rule> = Vec::new();
        for r in raw.rule {
            let line = line_at(text, r.span().start);
            let named = r.get_ref().name.is_some();
            let mut rule = check_rule(r.into_inner(), line, text).map_err(|(l, key, msg)| {
                anyhow!("rules '{origin}', line {l}, key '{key}': {msg}")
            })?;
            if !named && rules.iter().any(|p| p.name == rule.name) {
                // Two unnamed rules on one measure: told apart by their lines.
                rule.name = format!("{} (line {line})", rule.name);
            }
            if let Some(prev) = rules.iter().find(|p| p.name == rule.name) {
                bail!(
                    "rules '{origin}', line {line}, key 'name': the rule name '{}' is already used at line {}; give each rule its own name",
                    rule.name,
                    prev.line
                );
            }
            rules.push(rule);
        }
        Ok(Rules {
            origin: origin.to_string(),
            rules,
        })
    }
}

type RuleError = (usize, &'static str, String);

/// Checks one rule; an error is its line, its key and what to do.
fn check_rule(r: RawRule, line: usize, text: &str) -> Result<Rule, RuleError> {
    let at = |s: &std::ops::Range<usize>| line_at(text, s.start);
    let source = match (&r.measure, &r.sql) {
        (Some(_), Some(s)) => {
            return Err((
                at(&s.span()),
                "sql",
                "a rule reads either a measure or an sql query, not both".into(),
            ))
        }
        (None, None) => {
            return Err((
                line,
                "measure",
                format!(
                    "the rule reads nothing: give measure = \"...\" (one of {}) or sql = \"...\"",
                    measure_names()
                ),
            ))
        }
        (None, Some(sql)) => {
            for (key, v) in [
                ("operation", &r.operation),
                ("cause", &r.cause),
                ("stage", &r.stage),
            ] {
                if let Some(v) = v {
                    return Err((
                        at(&v.span()),
                        key,
                        format!("an sql rule takes no {key}: put it in the query"),
                    ));
                }
            }
            if sql.get_ref().trim().is_empty() {
                return Err((at(&sql.span()), "sql", "the query is empty".into()));
            }
            Source::Sql(sql.get_ref().clone())
        }
        (Some(m), None) => {
            let name = m.get_ref().as_str();
            let Some(def) = MEASURES.iter().find(|d| d.name == name) else {
                return Err((
                    at(&m.span()),
                    "measure",
                    format!(
                        "unknown measure '{name}': the measures are {}",
                        measure_names()
                    ),
                ));
            };
            let mut wanted = [
                ("operation", &r.operation, def.needs == Needs::Operation),
                ("cause", &r.cause, def.needs == Needs::OptionalCause),
                (
                    "stage",
                    &r.stage,
                    matches!(def.needs, Needs::Stage | Needs::OptionalStage),
                ),
            ];
            for (key, v, allowed) in &mut wanted {
                if let (Some(v), false) = (v, *allowed) {
                    return Err((
                        at(&v.span()),
                        key,
                        format!("measure '{name}' takes no {key}"),
                    ));
                }
            }
            let required = match def.needs {
                Needs::Operation => Some((
                    "operation",
                    &r.operation,
                    "the span name, like \"shipping.calculate_rates\"",
                )),
                Needs::Stage => Some((
                    "stage",
                    &r.stage,
                    "a stage of the lifecycle model, like \"payment\"",
                )),
                _ => None,
            };
            if let Some((key, None, example)) = required {
                return Err((
                    at(&m.span()),
                    key,
                    format!("measure '{name}' needs {key} = {example}"),
                ));
            }
            let get = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.get_ref().clone());
            Source::Measure {
                name: name.to_string(),
                operation: get(&r.operation),
                cause: get(&r.cause),
                stage: get(&r.stage),
            }
        }
    };
    let rate = matches!(&source, Source::Measure { name, .. }
        if MEASURES.iter().any(|d| d.name == name && d.rate));

    let mut limits = Vec::new();
    for (kind, v) in [
        (LimitKind::Min, &r.min),
        (LimitKind::Max, &r.max),
        (LimitKind::MaxIncrease, &r.max_increase),
        (LimitKind::MaxDecrease, &r.max_decrease),
        (LimitKind::MaxIncreasePct, &r.max_increase_pct),
        (LimitKind::MaxDecreasePct, &r.max_decrease_pct),
    ] {
        let Some(v) = v else { continue };
        let (l, x) = (at(&v.span()), *v.get_ref());
        if !x.is_finite() {
            return Err((l, kind.key(), "the limit must be a finite number".into()));
        }
        if kind.against_baseline() && x < 0.0 {
            return Err((
                l,
                kind.key(),
                format!("a tolerance is a size and cannot be negative (got {x})"),
            ));
        }
        if rate
            && matches!(
                kind,
                LimitKind::Min | LimitKind::Max | LimitKind::MaxIncrease | LimitKind::MaxDecrease
            )
            && !(0.0..=1.0).contains(&x)
        {
            return Err((
                l,
                kind.key(),
                format!("rates are fractions between 0 and 1 (0.75 means 75%), got {x}"),
            ));
        }
        if kind.against_baseline() {
            if let Source::Sql(_) = source {
                return Err((
                    l,
                    kind.key(),
                    "a baseline report holds measures, not SQL results: compare an sql rule with min/max, or use a named measure".into(),
                ));
            }
        }
        limits.push((kind, x));
    }
    if limits.is_empty() {
        return Err((
            line,
            "max",
            "the rule has no limit: give min, max, max_increase, max_decrease, max_increase_pct or max_decrease_pct".into(),
        ));
    }
    if let (Some(lo), Some(hi)) = (&r.min, &r.max) {
        if lo.get_ref() > hi.get_ref() {
            return Err((
                at(&lo.span()),
                "min",
                format!(
                    "min {} is above max {}: no value could pass",
                    lo.get_ref(),
                    hi.get_ref()
                ),
            ));
        }
    }
    let name = match &r.name {
        Some(n) if n.get_ref().trim().is_empty() => {
            return Err((at(&n.span()), "name", "the name is empty".into()))
        }
        Some(n) => n.get_ref().clone(),
        None => match &source {
            Source::Sql(_) => format!("sql at line {line}"),
            _ => describe(&source),
        },
    };
    Ok(Rule {
        name,
        line,
        source,
        limits,
    })
}

/// A number as the output shows it: integers without decimals, others to six places at most.
pub fn num(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{x:.0}");
    }
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Reads a named measure off a report; an error says why it cannot be read.
pub fn measure(r: &Report, source: &Source) -> Result<f64, String> {
    let Source::Measure {
        name,
        operation,
        cause,
        stage,
    } = source
    else {
        return Err("an sql rule is not a measure of the report".into());
    };
    if let Some(traced) = name.strip_suffix("_adjusted") {
        if name != "abandonment_rate_adjusted" {
            let traced = Source::Measure {
                name: traced.to_string(),
                operation: operation.clone(),
                cause: cause.clone(),
                stage: stage.clone(),
            };
            return match (&r.sampling, &r.weighted) {
                (None, _) => measure(r, &traced),
                (Some(_), Some(w)) => adjusted(r, w, &traced),
                (Some(_), None) => Err(
                    "no adjusted figures: the traces were sampled, and the report was written before cartscope weighted its tables: write the baseline again".into(),
                ),
            };
        }
    }
    let s = &r.summary;
    let cause_row = |c: &str| r.causes.iter().find(|x| x.name == c);
    let op = || {
        let o = operation.as_deref().unwrap_or_default();
        r.operations
            .iter()
            .find(|x| x.operation == o)
            .ok_or_else(|| {
                let seen: Vec<&str> = r.operations.iter().map(|x| x.operation.as_str()).collect();
                format!(
                    "no spans named '{o}' in the period{}",
                    if seen.is_empty() {
                        String::new()
                    } else {
                        format!("; the operations are {}", seen.join(", "))
                    }
                )
            })
    };
    let stage_row = || {
        let st = stage.as_deref().unwrap_or_default();
        r.funnel.iter().find(|x| x.stage == st).ok_or_else(|| {
            let names: Vec<&str> = r.funnel.iter().map(|x| x.stage.as_str()).collect();
            format!(
                "the model has no stage '{st}'; its stages are {}",
                names.join(", ")
            )
        })
    };
    Ok(match name.as_str() {
        "carts" => s.carts as f64,
        "converted_carts" => s.converted as f64,
        "active_carts" => s.active as f64,
        "recovered_carts" => s.recovered as f64,
        "abandoned_carts" => match cause {
            None => s.abandoned as f64,
            Some(c) => cause_row(c).map_or(0.0, |x| x.carts as f64),
        },
        "abandoned_value" => match cause {
            None => s.abandoned_value,
            Some(c) => cause_row(c).map_or(0.0, |x| x.value),
        },
        "abandoned_value_estimated" => {
            let cover = match cause {
                None => Some(&s.abandoned_value_coverage),
                Some(c) => cause_row(c).map(|x| &x.value_coverage),
            };
            match cover {
                // No abandoned cart of that cause: nothing at risk.
                None => 0.0,
                Some(c) if c.carts == 0 && s.abandoned > 0 => {
                    return Err(
                        "the report has no value coverage (a report written before cartscope estimated unknown values): write the baseline again".into(),
                    )
                }
                Some(c) => c.estimated.ok_or_else(|| {
                    format!(
                        "no estimate: the value of {} of {} abandoned carts is unknown and no cart of the period has a recorded value to estimate it from",
                        c.carts - c.known,
                        c.carts
                    )
                })?,
            }
        }
        // A rate of nothing is not 0: an empty or misjudged export must not pass a check.
        "abandonment_rate" | "conversion_rate" if s.converted + s.abandoned == 0 => {
            return Err(format!(
                "no cart of the period was decided (converted or abandoned) among its {} carts",
                s.carts
            ))
        }
        "abandonment_rate" => s.abandonment_rate,
        // The rate once the traces' sampling is accounted for; the rate itself when every
        // trace was kept.
        "abandonment_rate_adjusted" => match &r.sampling {
            None if s.converted + s.abandoned == 0 => {
                return Err(format!(
                    "no cart of the period was decided (converted or abandoned) among its {} carts",
                    s.carts
                ))
            }
            None => s.abandonment_rate,
            Some(sa) => sa.abandonment_rate.ok_or(
                "no abandonment rate adjusted for sampling: the traces were sampled, and the export has no transition counter for the model's first and success stages to estimate it from (the report gives the rates with and without the carts of incomplete trace, which bound it)",
            )?,
        },
        "conversion_rate" => {
            let decided = (s.converted + s.abandoned) as f64;
            (s.converted as f64 / decided * 1e6).round() / 1e6
        }
        "trace_coverage" => {
            let rc = r.reconciliation.as_ref().ok_or(
                "no trace coverage: the export has no transition counter for the model's stages to reconcile the traces with (the model's derived.metric_name by derived.stage_attribute), or the report was written before cartscope reconciled them",
            )?;
            match stage {
                None => rc
                    .coverage
                    .ok_or("no trace coverage: the metrics counted no transition in the period")?,
                Some(st) => {
                    let row = rc.stages.iter().find(|x| x.stage == *st).ok_or_else(|| {
                        let names: Vec<&str> = rc.stages.iter().map(|x| x.stage.as_str()).collect();
                        format!(
                            "no trace coverage for stage '{st}': the metrics count transitions into {}",
                            names.join(", ")
                        )
                    })?;
                    row.coverage.ok_or_else(|| {
                        format!("no trace coverage for stage '{st}': the metrics counted no transition into it in the period")
                    })?
                }
            }
        }
        "stage_carts" => stage_row()?.carts as f64,
        "drop_rate" => {
            let i = r
                .funnel
                .iter()
                .position(|x| Some(x.stage.as_str()) == stage.as_deref());
            let before = i.map(|i| r.funnel[i.saturating_sub(1)].carts);
            if before == Some(0) {
                return Err("no cart reached the stage before it".into());
            }
            stage_row()?.drop_rate
        }
        "spans" => op().map_or(0.0, |x| x.spans as f64),
        "p50_ms" => op()?.p50_ms,
        "p95_ms" => op()?.p95_ms,
        "p99_ms" => op()?.p99_ms,
        "error_rate" => op()?.error_rate,
        other => return Err(format!("unknown measure '{other}'")),
    })
}

/// The measure `traced` of a report whose traces were sampled, off its weighted tables.
fn adjusted(r: &Report, w: &Weighted, traced: &Source) -> Result<f64, String> {
    let Source::Measure {
        name,
        operation,
        cause,
        stage,
    } = traced
    else {
        return Err("an sql rule is not a measure of the report".into());
    };
    match name.as_str() {
        "abandoned_carts" => {
            // Without an adjusted rate, only the carts of a named cause are counted.
            let no_cause = crate::report::weighted::NO_CAUSE;
            let rest = cause.as_deref().is_none_or(|c| c == no_cause);
            if rest && !w.causes.iter().any(|c| c.name == no_cause) {
                return Err("no adjusted count of the abandoned carts without a suspected cause: the traces were sampled and the abandonment rate could not be adjusted (no transition counter for the model's first and success stages, or no cart converted)".into());
            }
            Ok(match cause {
                None => w.causes.iter().map(|c| c.carts).sum(),
                Some(c) => w
                    .causes
                    .iter()
                    .find(|x| x.name == *c)
                    .map_or(0.0, |x| x.carts),
            })
        }
        "stage_carts" => {
            // The traced measure names the stages the model has.
            measure(r, traced)?;
            let st = stage.as_deref().unwrap_or_default();
            Ok(w.funnel
                .iter()
                .find(|x| x.stage == st)
                .map_or(0.0, |x| x.carts))
        }
        _ => {
            let o = operation.as_deref().unwrap_or_default();
            if w.operations.is_empty() {
                return Err(format!(
                    "no adjusted figures for '{o}': the traces were sampled and none records how likely it was kept (OpenTelemetry's tracestate threshold, or the model's sampling keys); give --trace-sample-rate or --trace-sample-policy"
                ));
            }
            let row = match w.operations.iter().find(|x| x.operation == o) {
                Some(row) => row,
                None if name == "spans" => return Ok(0.0),
                // The traced measure says which operations there are.
                None => {
                    return measure(r, traced)
                        .and(Err(format!("no weighted figures for '{o}' in the report")))
                }
            };
            Ok(match name.as_str() {
                "spans" => row.spans_estimated,
                "p50_ms" => row.p50_ms,
                "p95_ms" => row.p95_ms,
                "p99_ms" => row.p99_ms,
                _ => row.error_rate,
            })
        }
    }
}

/// One bound as checked: what the value had to stay within, and whether it did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitCheck {
    pub kind: LimitKind,
    /// The number written in the rules file.
    pub limit: f64,
    /// The bound on the value: the limit itself, or the baseline moved by the tolerance.
    pub bound: Option<f64>,
    pub passed: bool,
}

/// A rule's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub name: String,
    pub line: usize,
    /// The measure read (`p95_ms(shipping.calculate_rates)`), or `sql`.
    pub measure: String,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
    pub limits: Vec<LimitCheck>,
    pub passed: bool,
    /// Why it failed, or why it could not be measured; empty when it passed.
    pub message: String,
}

impl Verdict {
    /// The limits as one line: `<= 0.75`, `<= 0.714 (baseline 0.694 + 0.02)`.
    pub fn limit_text(&self) -> String {
        self.limits
            .iter()
            .map(|l| {
                let op = if l.kind.upper() { "<=" } else { ">=" };
                let bound = l.bound.map_or("?".to_string(), num);
                match (l.kind, self.baseline) {
                    (LimitKind::Min | LimitKind::Max, _) => format!("{op} {bound}"),
                    (k, Some(b)) => {
                        let sign = if k.upper() { "+" } else { "-" };
                        let tol = match k {
                            LimitKind::MaxIncreasePct | LimitKind::MaxDecreasePct => {
                                format!("{}%", num(l.limit))
                            }
                            _ => num(l.limit),
                        };
                        format!("{op} {bound} (baseline {} {sign} {tol})", num(b))
                    }
                    (k, None) => format!("{op} baseline ({})", k.key()),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The outcome of a check run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub version: u32,
    pub rules_file: String,
    pub baseline_file: Option<String>,
    pub as_of: crate::time::Timestamp,
    pub period: crate::report::Period,
    pub passed: bool,
    pub rules: usize,
    pub failed: usize,
    pub verdicts: Vec<Verdict>,
}

/// Small differences of floating-point arithmetic are not regressions.
fn within(value: f64, bound: f64, upper: bool) -> bool {
    let slack = 1e-9 * bound.abs().max(1.0);
    if upper {
        value <= bound + slack
    } else {
        value >= bound - slack
    }
}

/// Judges one rule given its value (or why there is none) and the baseline's.
fn judge(
    rule: &Rule,
    value: Result<f64, String>,
    baseline: Option<Result<f64, String>>,
) -> Verdict {
    let mut v = Verdict {
        name: rule.name.clone(),
        line: rule.line,
        measure: rule.what(),
        value: value.as_ref().ok().copied(),
        baseline: baseline.as_ref().and_then(|b| b.as_ref().ok().copied()),
        limits: Vec::new(),
        passed: true,
        message: String::new(),
    };
    let mut why = Vec::new();
    if let Err(e) = &value {
        why.push(format!("not measured: {e}"));
    }
    if let Some(Err(e)) = &baseline {
        why.push(format!("not in the baseline: {e}"));
    }
    for &(kind, limit) in &rule.limits {
        let bound = match kind {
            LimitKind::Min | LimitKind::Max => Some(limit),
            LimitKind::MaxIncrease => v.baseline.map(|b| b + limit),
            LimitKind::MaxDecrease => v.baseline.map(|b| b - limit),
            LimitKind::MaxIncreasePct => v.baseline.map(|b| b + b.abs() * limit / 100.0),
            LimitKind::MaxDecreasePct => v.baseline.map(|b| b - b.abs() * limit / 100.0),
        };
        let passed = match (v.value, bound) {
            (Some(x), Some(b)) => within(x, b, kind.upper()),
            _ => false,
        };
        if let (false, Some(x), Some(b)) = (passed, v.value, bound) {
            let op = if kind.upper() { ">" } else { "<" };
            why.push(format!("{} {op} {} ({})", num(x), num(b), kind.key()));
        }
        v.limits.push(LimitCheck {
            kind,
            limit,
            bound,
            passed,
        });
    }
    v.passed = v.limits.iter().all(|l| l.passed);
    if !v.passed {
        v.message = why.join("; ");
    }
    v
}

/// The single value an sql rule's query returns: one row, one column, a number.
async fn sql_value(ctx: &SessionContext, sql: &str) -> Result<Result<f64, String>> {
    let df = ctx.sql(sql).await?;
    let batches = crate::sql::session::collect_fitted(ctx, df).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let cols = batches.first().map_or(0, |b| b.num_columns());
    if rows != 1 || cols != 1 {
        bail!(
            "the query must return a single value (one row, one column); it returned {rows} row(s) of {cols} column(s)"
        );
    }
    let b = batches.iter().find(|b| b.num_rows() == 1).expect("one row");
    let opts = CastOptions {
        safe: false,
        ..Default::default()
    };
    let c = cast_with_options(b.column(0), &DataType::Float64, &opts).map_err(|_| {
        anyhow!(
            "the query's value is of type {} and not a number",
            b.column(0).data_type()
        )
    })?;
    let a = c.as_primitive::<Float64Type>();
    Ok(if a.is_null(0) {
        Err("the query returned NULL".into())
    } else {
        Ok(a.value(0))
    })
}

/// Runs every rule: named measures off the report, sql rules in the session. `Err` only for
/// what makes the rules or the data wrong (an SQL error, a query with no single value).
pub async fn run(
    rules: &Rules,
    report: &Report,
    baseline: Option<&Report>,
    ctx: &SessionContext,
) -> Result<Vec<Verdict>> {
    let mut out = Vec::new();
    for rule in &rules.rules {
        let value = match &rule.source {
            Source::Sql(sql) => {
                let (since, until, as_of) = (
                    report.period.since.to_string(),
                    report.period.until.to_string(),
                    report.as_of.to_string(),
                );
                let q = rules.query(rule, sql, [&since, &until, &as_of]);
                let ctx_err = || {
                    format!(
                        "rules '{}', line {}, rule '{}'",
                        rules.origin, rule.line, rule.name
                    )
                };
                let text = q.render(&[]).with_context(ctx_err)?;
                sql_value(ctx, &text).await.with_context(ctx_err)?
            }
            source => measure(report, source),
        };
        let base = (rule.needs_baseline())
            .then(|| baseline.map(|b| measure(b, &rule.source)))
            .flatten();
        out.push(judge(rule, value, base));
    }
    Ok(out)
}

/// Reads a baseline: a report in JSON of this schema's version.
pub fn load_baseline(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the baseline '{}'", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "the baseline '{}' is not JSON: write one with `cartscope report --format json` or `cartscope check --write-baseline`",
            path.display()
        )
    })?;
    match v.get("version").and_then(|v| v.as_u64()) {
        Some(n) if n == crate::report::REPORT_VERSION as u64 => {}
        Some(n) => bail!(
            "the baseline '{}' is a version {n} report; this cartscope reads version {}: write it again with this version",
            path.display(),
            crate::report::REPORT_VERSION
        ),
        None => bail!(
            "the baseline '{}' has no version field: it is not a report from `cartscope report --format json`",
            path.display()
        ),
    }
    serde_json::from_value(v).with_context(|| {
        format!(
            "the baseline '{}' is not a complete report: write it with `cartscope report --format json`",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        format!("{:#}", Rules::parse(text, "r.toml").unwrap_err())
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let e = err("[[rule]]\nmeasure = \"abandonment_rate\"\nmax = 0.8\n\n[[rule]]\nmeasure = \"abandon_rate\"\nmax = 1\n");
        assert!(e.contains("line 6, key 'measure'"), "{e}");
        assert!(e.contains("unknown measure 'abandon_rate'"), "{e}");
        let e = err("[[rule]]\nmeasure = \"p95_ms\"\nmax = 2000\n");
        assert!(e.contains("line 2, key 'operation'"), "{e}");
        let e = err("[[rule]]\nmeasure = \"abandonment_rate\"\nmax = 75\n");
        assert!(
            e.contains("line 3, key 'max'") && e.contains("fractions"),
            "{e}"
        );
        let e = err("[[rule]]\nmeasure = \"carts\"\nmaxx = 75\n");
        assert!(e.contains("line 3") && e.contains("maxx"), "{e}");
        let e = err("[[rule]]\nmeasure = \"carts\"\n");
        assert!(
            e.contains("line 1, key 'max'") && e.contains("no limit"),
            "{e}"
        );
        let e = err("[[rule]]\nsql = \"SELECT 1\"\nmax_increase = 1\n");
        assert!(e.contains("line 3, key 'max_increase'"), "{e}");
        let e = err("[[rule]]\nmeasure = \"carts\"\nmin = 5\nmax = 1\n");
        assert!(e.contains("line 3, key 'min'"), "{e}");
        let e = err("[[rule]]\nmeasure = \"carts\"\nmax = \"lots\"\n");
        assert!(e.contains("line 3"), "{e}");
        let e = err("# nothing\n");
        assert!(e.contains("no [[rule]]"), "{e}");
    }

    #[test]
    fn rules_parse_with_names_and_limits() {
        let r = Rules::parse(
            "[[rule]]\nmeasure = \"p95_ms\"\noperation = \"shipping.calculate_rates\"\nmax = 2000\nmax_increase_pct = 10\n\n[[rule]]\nname = \"few payment errors\"\nsql = \"SELECT 1\"\nmax = 3\n",
            "r.toml",
        )
        .unwrap();
        assert_eq!(r.rules[0].name, "p95_ms(shipping.calculate_rates)");
        assert_eq!(r.rules[0].line, 1);
        assert!(r.rules[0].needs_baseline());
        assert_eq!(r.rules[1].name, "few payment errors");
        assert_eq!(r.rules[1].line, 7);
        assert!(!r.rules[1].needs_baseline());
    }

    #[test]
    fn tolerances_move_the_baseline() {
        let rule = Rule {
            name: "r".into(),
            line: 1,
            source: Source::Sql(String::new()),
            limits: vec![
                (LimitKind::MaxIncreasePct, 10.0),
                (LimitKind::MaxDecrease, 5.0),
            ],
        };
        let v = judge(&rule, Ok(109.0), Some(Ok(100.0)));
        assert!(v.passed, "{v:?}");
        assert_eq!(v.limits[0].bound, Some(110.0));
        let v = judge(&rule, Ok(111.0), Some(Ok(100.0)));
        assert!(!v.passed);
        assert!(v.message.contains("111 > 110"), "{}", v.message);
        let v = judge(&rule, Ok(94.0), Some(Ok(100.0)));
        assert!(!v.passed && v.message.contains("94 < 95"), "{}", v.message);
        let v = judge(&rule, Err("gone".into()), Some(Ok(100.0)));
        assert!(!v.passed && v.message.contains("not measured: gone"));
    }

    /// A report of no operations, causes or rows, with `summary`, as JSON.
    fn report_json(summary: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "version": 1, "generator": "t", "model": "m", "as_of": "2026-11-20T12:00:00Z", "threshold": "30m",
            "period": {"since": "2026-11-19T12:00:00Z", "until": "2026-11-20T12:00:00Z"},
            "summary": summary,
            "previous": {"carts": 0, "converted": 0, "abandoned": 0, "active": 0, "recovered": 0,
                        "abandonment_rate": 0.0, "abandonment_rate_ci95": [0.0, 0.0],
                        "abandoned_value": 0.0},
            "changes": [], "funnel": [], "by_last_stage": [], "by_last_operation": [],
            "causes": [], "top_abandoned": [], "drivers": [], "latency_curves": [], "by_hour": []
        })
    }

    /// A named measure, of an operation and of a cause when given.
    fn src(name: &str, operation: Option<&str>, cause: Option<&str>) -> Source {
        Source::Measure {
            name: name.into(),
            operation: operation.map(Into::into),
            cause: cause.map(Into::into),
            stage: None,
        }
    }

    #[test]
    fn a_rate_of_no_carts_is_not_measured() {
        let r: Report = serde_json::from_value(report_json(
            serde_json::json!({"carts": 3, "converted": 0, "abandoned": 0, "active": 3, "recovered": 0,
                               "abandonment_rate": 0.0, "abandonment_rate_ci95": [0.0, 0.0],
                               "abandoned_value": 0.0}),
        ))
        .unwrap();
        let m = |name: &str| src(name, None, None);
        let e = measure(&r, &m("abandonment_rate")).unwrap_err();
        assert!(e.contains("no cart of the period was decided"), "{e}");
        assert_eq!(measure(&r, &m("abandoned_carts")), Ok(0.0));
        assert_eq!(measure(&r, &m("active_carts")), Ok(3.0));
    }

    /// The `_adjusted` measures read the weighted tables of a sampled report, the traced
    /// figures of a whole one, and say what is missing when they cannot.
    #[test]
    fn adjusted_measures_read_the_weighted_tables() {
        let mut v = report_json(serde_json::json!({
            "carts": 30, "converted": 10, "abandoned": 20, "active": 0, "recovered": 0,
            "abandonment_rate": 0.667, "abandonment_rate_ci95": [0.5, 0.8], "abandoned_value": 0.0
        }));
        v["operations"] = serde_json::json!([{"operation": "pay", "spans": 10, "p50_ms": 900.0,
            "p95_ms": 3000.0, "p99_ms": 4000.0, "error_rate": 0.4}]);
        v["causes"] = serde_json::json!([{"name": "error", "carts": 4, "value": 0.0}]);
        let read = |v: &serde_json::Value, s: &Source| {
            measure(&serde_json::from_value(v.clone()).unwrap(), s)
        };
        // Every trace kept: the measure itself.
        assert_eq!(
            read(&v, &src("p50_ms_adjusted", Some("pay"), None)),
            Ok(900.0)
        );
        assert_eq!(
            read(&v, &src("abandoned_carts_adjusted", None, Some("error"))),
            Ok(4.0)
        );
        v["sampling"] = serde_json::json!({
            "source": "flag", "probability": 0.1, "converted_estimated": 100.0,
            "abandoned_estimated": 200.0, "abandoned_incomplete": 0, "rate_with_incomplete": 0.7,
            "rate_without_incomplete": 0.6, "method": "bounds", "abandonment_rate": null,
            "abandonment_rate_ci95": null, "summary": ""
        });
        v["weighted"] = serde_json::json!({
            "funnel": [],
            "causes": [{"name": "error", "carts": 4.0, "share": null}],
            "operations": [{"operation": "pay", "spans": 10, "spans_estimated": 64.0,
                            "p50_ms": 300.0, "p95_ms": 2000.0, "p99_ms": 3500.0, "error_rate": 0.06}]
        });
        assert_eq!(
            read(&v, &src("p50_ms_adjusted", Some("pay"), None)),
            Ok(300.0)
        );
        assert_eq!(
            read(&v, &src("error_rate_adjusted", Some("pay"), None)),
            Ok(0.06)
        );
        assert_eq!(
            read(&v, &src("spans_adjusted", Some("pay"), None)),
            Ok(64.0)
        );
        assert_eq!(
            read(&v, &src("spans_adjusted", Some("ship"), None)),
            Ok(0.0)
        );
        let e = read(&v, &src("p95_ms_adjusted", Some("ship"), None)).unwrap_err();
        assert!(
            e.contains("no spans named 'ship'") && e.contains("pay"),
            "{e}"
        );
        assert_eq!(
            read(&v, &src("abandoned_carts_adjusted", None, Some("error"))),
            Ok(4.0)
        );
        // Without an adjusted rate, the carts without a cause, and so all, are not counted.
        for cause in [None, Some("none")] {
            let e = read(&v, &src("abandoned_carts_adjusted", None, cause)).unwrap_err();
            assert!(e.contains("no transition counter"), "{e}");
        }
        // No trace's probability known: the operations cannot be weighted.
        v["weighted"]["operations"] = serde_json::json!([]);
        let e = read(&v, &src("error_rate_adjusted", Some("pay"), None)).unwrap_err();
        assert!(e.contains("--trace-sample-policy"), "{e}");
    }
}
