//! `cartscope check`: rules in, verdicts out, and an exit code CI understands (0 every rule
//! passed, 1 a rule failed, 2 the rules, data or arguments were wrong).

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::check::{self, render, Outcome, Rules};
use crate::cli::CheckArgs;
use crate::commands::setup::{open_report, Globals, Tuning};

pub async fn run(a: &CheckArgs, g: &Globals) -> Result<ExitCode> {
    // Everything the user wrote is checked before the data is read.
    let rules = a.rules.as_deref().map(Rules::load).transpose()?;
    let baseline = a
        .baseline
        .as_deref()
        .map(check::load_baseline)
        .transpose()?;
    if let (Some(rules), None) = (&rules, &baseline) {
        if let Some(r) = rules.rules.iter().find(|r| r.needs_baseline()) {
            bail!(
                "rules '{}', line {}: rule '{}' has a tolerance against a baseline: give --baseline FILE (a report from `cartscope report --format json`)",
                rules.origin,
                r.line,
                r.name
            );
        }
    }
    let reads = rules
        .as_ref()
        .map_or_else(crate::read::projection::Projection::nothing, Rules::reads);
    let (ctx, report) = open_report(
        &a.data,
        &a.replay,
        &a.period,
        &Tuning {
            sampled: a.sampled.declared(),
            ..Tuning::default()
        },
        g,
        &reads,
    )
    .await?;
    if let Some(b) = &baseline {
        warn_if_incomparable(&report, b);
    }
    if let Some(path) = &a.write_baseline {
        crate::output::write_atomically(path, |w| {
            crate::report::render::render(w, &report, crate::report::render::ReportFormat::Json)
        })?;
    }
    let Some(rules) = rules else {
        return Ok(ExitCode::SUCCESS);
    };
    let verdicts = check::run(&rules, &report, baseline.as_ref(), &ctx).await?;
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    let outcome = Outcome {
        version: check::CHECK_VERSION,
        rules_file: rules.origin.clone(),
        baseline_file: a.baseline.as_ref().map(|p| p.display().to_string()),
        as_of: report.as_of,
        period: report.period.clone(),
        passed: failed == 0,
        rules: verdicts.len(),
        failed,
        verdicts,
    };
    if let Some(path) = &a.junit {
        crate::output::write_atomically(path, |w| render::junit(w, &outcome))?;
    }
    render::render(&mut std::io::stdout().lock(), &outcome, a.format)?;
    Ok(if outcome.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A baseline judged differently measures different things: say so, on stderr.
fn warn_if_incomparable(now: &crate::report::Report, base: &crate::report::Report) {
    let len = |r: &crate::report::Report| r.period.length_ns();
    if base.model != now.model {
        eprintln!(
            "cartscope: warning: the baseline was judged with model '{}', this run with '{}'",
            base.model, now.model
        );
    }
    if base.threshold != now.threshold {
        eprintln!(
            "cartscope: warning: the baseline's abandonment threshold is {}, this run's {}",
            base.threshold, now.threshold
        );
    }
    if len(base) != len(now) {
        eprintln!(
            "cartscope: warning: the baseline's period ({} to {}) is not as long as this run's ({} to {}): counts are not comparable",
            base.period.since, base.period.until, now.period.since, now.period.until
        );
    }
}
