//! `cartscope ingest`: runs the ingest engine (`crate::dataset::ingest`) and prints what it
//! wrote.

use std::time::Instant;

use anyhow::Result;

use crate::cli::IngestArgs;
use crate::commands::setup::Globals;
use crate::dataset::ingest::{ingest, IngestReport};
use crate::tables::schema::Table;

pub fn run(a: &IngestArgs, g: &Globals) -> Result<()> {
    let started = Instant::now();
    if a.orphan_age.is_some() && crate::read::remote::url_in(&a.out).is_none() {
        anyhow::bail!(
            "--orphan-age applies to an ingest into an object store (--out s3://...); '{}' is a local folder, locked for one ingest at a time, whose unfinished parts go at once: leave the flag out",
            a.out.display()
        );
    }
    let report = ingest(
        &a.inputs,
        &a.out,
        &g.load_options(a.strict, &crate::read::projection::Projection::everything()),
        a.orphan_age.unwrap_or(crate::dataset::ORPHAN_AGE),
    )?;
    crate::read::load::report_skipped(&report.stats);
    print_summary(&a.out, &report, started.elapsed().as_secs_f64())
}

fn fmt_time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

fn print_summary(out: &std::path::Path, r: &IngestReport, secs: f64) -> Result<()> {
    let (stats, already) = (&r.stats, &r.already);
    use std::io::Write;
    let mut w = std::io::stdout().lock();
    let mb = stats.bytes as f64 / 1e6;
    writeln!(
        w,
        "ingested {} file{} ({mb:.1} MB) into {} in {secs:.2} s ({:.0} MB/s)",
        r.written.len(),
        if r.written.len() == 1 { "" } else { "s" },
        out.display(),
        if secs > 0.0 { mb / secs } else { 0.0 }
    )?;
    let mut grid = comfy_table::Table::new();
    grid.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(["table", "rows", "first", "last"]);
    for t in Table::ALL {
        let (first, last) = r.range[t]
            .map(|(a, b)| (fmt_time(a), fmt_time(b)))
            .unwrap_or_default();
        grid.add_row([t.name().to_string(), stats.rows[t].to_string(), first, last]);
    }
    writeln!(w, "{grid}")?;
    writeln!(w, "bad records skipped: {}", stats.bad_total)?;
    for a in already {
        writeln!(w, "already ingested, passed over: {a}")?;
    }
    Ok(())
}
