//! `cartscope generate`: arguments into `generate::Options`, and the summary.

use std::io::Write;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};

use crate::cli::GenerateArgs;
use crate::commands::setup::Globals;
use crate::generate::naming::Naming;
use crate::generate::workload::{Incident, IncidentKind, Params};
use crate::generate::{self, Options};
use crate::time::{format_ns, parse_duration, parse_time};

/// Parses `KIND:FROM-TO`. FROM and TO are RFC 3339 times or `HH:MM` on the day `end` falls in.
pub fn parse_incident(s: &str, end_ns: i64) -> Result<Incident> {
    let (kind, span) = s.split_once(':').ok_or_else(|| {
        anyhow!("--incident '{s}': write it as KIND:FROM-TO, e.g. shipping-slow:10:00-12:00")
    })?;
    let kind = <IncidentKind as clap::ValueEnum>::from_str(kind, true).map_err(|_| {
        anyhow!(
            "--incident '{s}': unknown kind '{kind}' (shipping-slow, payment-errors or bad-deploy)"
        )
    })?;
    let day_start = end_ns - end_ns.rem_euclid(86_400 * 1_000_000_000);
    let at = |t: &str| -> Option<i64> {
        if let Some((h, m)) = t.split_once(':') {
            if let (Ok(h), Ok(m)) = (h.parse::<i64>(), m.parse::<i64>()) {
                if (0..=24).contains(&h) && (0..60).contains(&m) && t.len() <= 5 {
                    return Some(day_start + (h * 60 + m) * 60 * 1_000_000_000);
                }
            }
        }
        parse_time(t, None).ok()
    };
    // The '-' between FROM and TO is the one where both sides read as times.
    for (i, _) in span.match_indices('-') {
        if let (Some(from), Some(to)) = (at(&span[..i]), at(&span[i + 1..])) {
            if to <= from {
                return Err(anyhow!("--incident '{s}': it ends before it starts"));
            }
            return Ok(Incident {
                kind,
                from_ns: from as u64,
                to_ns: to as u64,
            });
        }
    }
    Err(anyhow!("--incident '{s}': FROM-TO must be two times, like 10:00-12:00 or 2026-11-20T10:00:00Z-2026-11-20T12:00:00Z"))
}

pub fn run(a: &GenerateArgs, g: &Globals) -> Result<()> {
    let started = Instant::now();
    let end = parse_time(&a.end, None).context("--end")?;
    let params = Params {
        seed: a.seed,
        carts: a.carts,
        end_ns: end as u64,
        window_ns: parse_duration(&a.window).context("--window")?,
        threshold_ns: parse_duration(&a.threshold).context("--threshold")?,
        incidents: a
            .incident
            .iter()
            .map(|s| parse_incident(s, end))
            .collect::<Result<_>>()?,
        naming: Naming::preset(a.naming),
    };
    let summary = generate::generate(&Options {
        params,
        truth: a.truth,
        out: a.out.clone(),
        compress: a.compress,
        parquet: a.parquet,
        threads: g.threads,
        progress: g.progress,
    })?;
    let secs = started.elapsed().as_secs_f64();
    let t = &summary.totals;
    let mut w = std::io::stdout().lock();
    writeln!(
        w,
        "generated {} carts ({} spans, {} metric points) ending {} in {secs:.2} s, {:.1} MB ({:.0} MB/s)",
        t.carts,
        t.spans + t.noise_spans,
        t.metric_points,
        format_ns(end),
        summary.bytes as f64 / 1e6,
        summary.bytes as f64 / 1e6 / secs.max(1e-9)
    )?;
    writeln!(
        w,
        "converted {}, abandoned {}, active {}, recovered {}: abandonment rate {:.1}%, abandoned value {:.2}",
        t.converted,
        t.abandoned,
        t.active,
        t.recovered,
        100.0 * t.abandonment_rate,
        t.abandoned_value
    )?;
    for f in &summary.files {
        writeln!(w, "wrote {}", f.display())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_in_both_forms() {
        let end = parse_time("2026-11-20T12:00:00Z", None).unwrap();
        let i = parse_incident("shipping-slow:09:00-10:30", end).unwrap();
        assert_eq!(format_ns(i.from_ns as i64), "2026-11-20T09:00:00.000000Z");
        assert_eq!(format_ns(i.to_ns as i64), "2026-11-20T10:30:00.000000Z");
        let i =
            parse_incident("bad-deploy:2026-11-19T22:00:00Z-2026-11-20T01:00:00Z", end).unwrap();
        assert_eq!(i.kind, IncidentKind::BadDeploy);
        assert_eq!(format_ns(i.to_ns as i64), "2026-11-20T01:00:00.000000Z");
        assert!(parse_incident("fire:10:00-11:00", end).is_err());
        assert!(parse_incident("shipping-slow:11:00-10:00", end).is_err());
        assert!(parse_incident("shipping-slow", end).is_err());
    }
}
