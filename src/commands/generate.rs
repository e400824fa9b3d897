//! `cartscope generate`: arguments into `generate::Options`, and the summary.

use std::io::Write;
use std::time::Instant;

use anyhow::{anyhow, Result};

use crate::cli::GenerateArgs;
use crate::commands::setup::Globals;
use crate::generate::naming::Naming;
use crate::generate::sampling::Sampling;
use crate::generate::workload::Params;
use crate::generate::{self, Options};

pub fn run(a: &GenerateArgs, g: &Globals) -> Result<()> {
    let started = Instant::now();
    let end = a.end;
    let params = Params {
        seed: a.seed,
        carts: a.carts,
        end_ns: u64::try_from(end.ns())
            .map_err(|_| anyhow!("--end {end}: the export must end after 1970"))?,
        window_ns: a.window.ns(),
        threshold_ns: a.threshold.ns(),
        incidents: a
            .incident
            .iter()
            .map(|i| i.resolve(end))
            .collect::<Result<_>>()?,
        naming: Naming::preset(a.naming),
        value_recorded: a.value_recorded,
        sampling: match (a.sample_rate, &a.tail_sample) {
            (Some(p), _) => Sampling::Head { p },
            (None, Some(t)) => Sampling::Tail(t.clone()),
            (None, None) => Sampling::Everything,
        },
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
    // A cart that starts so near the end that none of its spans has ended by then is not in
    // the export (nor in the truth): said, so that a count below --carts is not a surprise.
    let late = match a.carts.saturating_sub(t.carts) {
        0 => String::new(),
        n => format!(
            " ({n} of the {} asked start too near the end for any span of theirs to have ended by then)",
            a.carts
        ),
    };
    let mut w = std::io::stdout().lock();
    writeln!(
        w,
        "generated {} carts{late} ({} spans, {} metric points) ending {} in {secs:.2} s, {:.1} MB ({:.0} MB/s)",
        t.carts,
        t.spans + t.noise_spans,
        t.metric_points,
        end,
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
