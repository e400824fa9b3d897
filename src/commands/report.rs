//! `cartscope report`: the period, the replay, the report, in one format.

use anyhow::Result;

use crate::cli::ReportArgs;
use crate::commands::setup::{open_report, Globals, Tuning};
use crate::report::render;

pub async fn run(a: &ReportArgs, g: &Globals) -> Result<()> {
    let tuning = Tuning {
        top: a.top,
        min_support: a.min_support,
        attributes: a.attributes.clone(),
        sampled: a.sampled.declared(),
    };
    let (_, r) = open_report(
        &a.data,
        &a.replay,
        &a.period,
        &tuning,
        g,
        &crate::read::projection::Projection::nothing(),
    )
    .await?;
    match &a.output {
        Some(path) => crate::output::write_atomically(path, |w| render::render(w, &r, a.format)),
        None => render::render(&mut std::io::stdout().lock(), &r, a.format),
    }
}
