//! `cartscope report`: the period, the replay, the report, in one format.

use std::io::Write;

use anyhow::{Context, Result};
use datafusion::prelude::SessionContext;

use crate::cli::{DataArgs, PeriodArgs, ReplayArgs, ReportArgs};
use crate::commands::{open_replayed, Globals};
use crate::report::{self, render, Report};
use crate::timefmt::parse_time;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// What the report lists besides its figures.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub top: usize,
    pub min_support: u64,
    pub attributes: Vec<String>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            top: report::DEFAULT_TOP,
            min_support: report::DEFAULT_MIN_SUPPORT,
            attributes: Vec::new(),
        }
    }
}

pub async fn run(a: &ReportArgs, g: &Globals) -> Result<()> {
    let tuning = Tuning {
        top: a.top,
        min_support: a.min_support,
        attributes: a.attributes.clone(),
    };
    let (_, r) = build(&a.data, &a.replay, &a.period, &tuning, g).await?;
    let text = render::render(&r, a.format)?;
    match &a.output {
        Some(path) => crate::output::write_atomically(path, |w| {
            w.write_all(text.as_bytes())?;
            Ok(())
        }),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            Ok(())
        }
    }
}

/// Loads and replays the data and builds the report of the period; the session stays open
/// for more SQL (`cartscope check` runs its SQL rules in it).
pub async fn build(
    data: &DataArgs,
    replay: &ReplayArgs,
    period: &PeriodArgs,
    tuning: &Tuning,
    g: &Globals,
) -> Result<(SessionContext, Report)> {
    let mut replay = replay.clone();
    let day = period
        .day
        .as_deref()
        .map(|d| parse_time(d, None).with_context(|| format!("--day '{d}': give it as YYYY-MM-DD")))
        .transpose()?;
    if let (Some(d), None) = (day, &replay.as_of) {
        // A daily report is judged as of the day's end.
        replay.as_of = Some(crate::timefmt::format_ns(d + DAY_NS));
    }
    let (ctx, s, model) = open_replayed(data, &replay, g).await?;
    let as_of = parse_time(&s.as_of, None)?;
    let (since, until) = match day {
        Some(d) => (d, d + DAY_NS),
        None => {
            let until = match &period.until {
                Some(t) => parse_time(t, Some(as_of)).context("--until")?,
                None => as_of,
            };
            let since = match &period.since {
                Some(t) => parse_time(t, Some(as_of)).context("--since")?,
                None => until - DAY_NS,
            };
            (since, until)
        }
    };
    if since >= until {
        anyhow::bail!("the period is empty: --since must be before --until");
    }
    let opts = report::Options {
        since_ns: since,
        until_ns: until,
        as_of_ns: as_of,
        threshold: s.threshold.clone(),
        top: tuning.top,
        min_support: tuning.min_support,
        attributes: if tuning.attributes.is_empty() {
            report::DEFAULT_ATTRIBUTES
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            tuning.attributes.clone()
        },
    };
    let r = report::build(&ctx, &model, &opts).await?;
    Ok((ctx, r))
}
