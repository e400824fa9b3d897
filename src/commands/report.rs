//! `cartscope report`: the period, the replay, the report, in one format.

use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::ReportArgs;
use crate::commands::{open_replayed, Globals};
use crate::report::{self, render};
use crate::timefmt::parse_time;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

pub async fn run(a: &ReportArgs, g: &Globals) -> Result<()> {
    let mut replay = a.replay.clone();
    let day = a
        .day
        .as_deref()
        .map(|d| parse_time(d, None).with_context(|| format!("--day '{d}': give it as YYYY-MM-DD")))
        .transpose()?;
    if let (Some(d), None) = (day, &replay.as_of) {
        // A daily report is judged as of the day's end.
        replay.as_of = Some(crate::timefmt::format_ns(d + DAY_NS));
    }
    let (ctx, s, model) = open_replayed(&a.data, &replay, g).await?;
    let as_of = parse_time(&s.as_of, None)?;
    let (since, until) = match day {
        Some(d) => (d, d + DAY_NS),
        None => {
            let until = match &a.until {
                Some(t) => parse_time(t, Some(as_of)).context("--until")?,
                None => as_of,
            };
            let since = match &a.since {
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
        top: a.top,
        min_support: a.min_support,
        attributes: if a.attributes.is_empty() {
            report::DEFAULT_ATTRIBUTES
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            a.attributes.clone()
        },
    };
    let r = report::build(&ctx, &model, &opts).await?;
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
