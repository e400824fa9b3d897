//! What the commands share: the global settings, and the steps that open the data, replay it
//! and build the report, so each command only orchestrates them.

use anyhow::{Context, Result};

use crate::read::load::LoadOptions;

/// Settings every command shares.
#[derive(Debug, Clone)]
pub struct Globals {
    pub threads: usize,
    pub progress: bool,
}

impl Globals {
    pub fn load_options(&self, strict: bool) -> LoadOptions {
        LoadOptions {
            strict,
            progress: self.progress,
            threads: self.threads,
            hash_inputs: false,
        }
    }
}

/// Resolves `--data`, loads it and builds the session.
pub async fn open_data(
    data: &crate::cli::DataArgs,
    g: &Globals,
) -> Result<datafusion::prelude::SessionContext> {
    let inputs = crate::read::input::resolve(&data.data)?;
    let (data, _stats) = crate::sql::session::Data::load(&inputs, &g.load_options(data.strict))?;
    crate::sql::session::context(data, g.threads).await
}

/// The as-of time the replay args ask for, given the data's latest timestamp.
pub fn as_of_ns(r: &crate::cli::ReplayArgs, latest_ns: Option<i64>) -> Result<i64> {
    match &r.as_of {
        Some(t) => {
            crate::time::parse_time(t, latest_ns).map_err(|e| anyhow::anyhow!("--as-of: {e}"))
        }
        None => latest_ns.ok_or_else(|| {
            anyhow::anyhow!("the data has no timestamps to judge from: give --as-of")
        }),
    }
}

/// Opens the data and replays it: the session then has carts, cart_events, abandonments and
/// the derived rows.
pub async fn open_replayed(
    data: &crate::cli::DataArgs,
    r: &crate::cli::ReplayArgs,
    g: &Globals,
) -> Result<(
    datafusion::prelude::SessionContext,
    crate::replay::Summary,
    crate::replay::model::Model,
)> {
    let model = crate::replay::model::Model::load(&r.model)?;
    let threshold_ns = r
        .threshold
        .as_deref()
        .map(crate::time::parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--threshold: {e}"))?;
    let ctx = open_data(data, g).await?;
    let latest = crate::replay::latest_timestamp_ns(&ctx).await?;
    let as_of = as_of_ns(r, latest)?;
    crate::sql::session::pin_now(&ctx, as_of);
    let summary = crate::replay::run(
        &ctx,
        &model,
        &crate::replay::ReplayOptions {
            as_of_ns: as_of,
            threshold_ns,
        },
    )
    .await?;
    Ok((ctx, summary, model))
}

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
            top: crate::report::DEFAULT_TOP,
            min_support: crate::report::DEFAULT_MIN_SUPPORT,
            attributes: Vec::new(),
        }
    }
}

/// Loads and replays the data and builds the report of the period; the session stays open
/// for more SQL (`cartscope check` runs its SQL rules in it).
pub async fn open_report(
    data: &crate::cli::DataArgs,
    replay: &crate::cli::ReplayArgs,
    period: &crate::cli::PeriodArgs,
    tuning: &Tuning,
    g: &Globals,
) -> Result<(datafusion::prelude::SessionContext, crate::report::Report)> {
    let mut replay = replay.clone();
    let day = period
        .day
        .as_deref()
        .map(|d| {
            crate::time::parse_time(d, None)
                .with_context(|| format!("--day '{d}': give it as YYYY-MM-DD"))
        })
        .transpose()?;
    if let (Some(d), None) = (day, &replay.as_of) {
        // A daily report is judged as of the day's end.
        replay.as_of = Some(crate::time::format_ns(d + DAY_NS));
    }
    let (ctx, s, model) = open_replayed(data, &replay, g).await?;
    let as_of = crate::time::parse_time(&s.as_of, None)?;
    let (since, until) = match day {
        Some(d) => (d, d + DAY_NS),
        None => {
            let until = match &period.until {
                Some(t) => crate::time::parse_time(t, Some(as_of)).context("--until")?,
                None => as_of,
            };
            let since = match &period.since {
                Some(t) => crate::time::parse_time(t, Some(as_of)).context("--since")?,
                None => until - DAY_NS,
            };
            (since, until)
        }
    };
    if since >= until {
        anyhow::bail!("the period is empty: --since must be before --until");
    }
    let opts = crate::report::Options {
        since_ns: since,
        until_ns: until,
        as_of_ns: as_of,
        threshold: s.threshold.clone(),
        top: tuning.top,
        min_support: tuning.min_support,
        attributes: if tuning.attributes.is_empty() {
            crate::report::DEFAULT_ATTRIBUTES
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            tuning.attributes.clone()
        },
    };
    let r = crate::report::build(&ctx, &model, &opts).await?;
    Ok((ctx, r))
}

/// `4GB`, `512MB`, `1.5GiB`, `2000000` (bytes).
pub fn parse_size(s: &str) -> Result<usize> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--memory-limit '{s}': write a size like 4GB or 512MB"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => anyhow::bail!(
            "--memory-limit '{s}': unknown unit '{other}' (B, KB, MB, GB, KiB, MiB, GiB)"
        ),
    };
    Ok((n * scale) as usize)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("4GB").unwrap(), 4_000_000_000);
        assert_eq!(super::parse_size("512 MiB").unwrap(), 512 * 1024 * 1024);
        assert!(super::parse_size("lots").is_err());
    }
}
