//! `cartscope report`: the period, the replay, the report, in one format.

use std::io::Write;

use anyhow::Result;

use crate::cli::ReportArgs;
use crate::commands::setup::{open_report, Globals, Tuning};
use crate::report::render;

pub async fn run(a: &ReportArgs, g: &Globals) -> Result<()> {
    let tuning = Tuning {
        top: a.top,
        min_support: a.min_support,
        attributes: a.attributes.clone(),
    };
    let (_, r) = open_report(&a.data, &a.replay, &a.period, &tuning, g).await?;
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
