//! `cartscope ingest`: raw exports into the Parquet dataset of `dataset.rs`, appending to it;
//! a file already ingested (by content) is passed over.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use anyhow::{bail, Result};
use datafusion::arrow::array::{Array, TimestampMicrosecondArray};
use datafusion::arrow::record_batch::RecordBatch;

use crate::cli::IngestArgs;
use crate::commands::Globals;
use crate::dataset::{self, file_hash, IngestedInput, Manifest};
use crate::input::{self, InputFile};
use crate::load;
use crate::schema::Table;

/// Rows buffered per (table, day) before they are written as one sorted part file: bounds
/// memory whatever the input's size.
const PART_ROWS: usize = 512 * 1024;

#[derive(Default)]
struct Buffer {
    batches: Vec<RecordBatch>,
    rows: usize,
}

struct State {
    buffers: BTreeMap<(Table, Option<i64>), Buffer>,
    parts: Vec<String>,
    file_rows: [u64; 5],
    part_seq: usize,
    range: [Option<(i64, i64)>; 5],
    bad_before: u64,
    manifest: Manifest,
    written: Vec<(String, [u64; 5])>,
}

pub fn run(a: &IngestArgs, g: &Globals) -> Result<()> {
    let started = Instant::now();
    let report = ingest(&a.inputs, &a.out, &g.load_options(a.strict))?;
    crate::output::report_skipped(&report.stats);
    print_summary(&a.out, &report, started.elapsed().as_secs_f64())
}

/// What an ingest wrote.
pub struct IngestReport {
    pub stats: load::LoadStats,
    /// Per input written: its path and rows per table.
    pub written: Vec<(String, [u64; 5])>,
    /// Inputs passed over because their content was ingested before.
    pub already: Vec<String>,
    /// Time range per table of what was written (microseconds).
    pub range: [Option<(i64, i64)>; 5],
}

/// Ingests `inputs` into the dataset at `out` (created or appended to).
pub fn ingest(
    inputs: &[String],
    out: &std::path::Path,
    opts: &load::LoadOptions,
) -> Result<IngestReport> {
    let inputs = input::resolve(inputs)?;
    if let Some(d) = inputs.datasets.first() {
        bail!(
            "'{}' is already a cartscope dataset: ingest takes raw exports; read a dataset with --data",
            d.display()
        );
    }
    let manifest = Manifest::load_or_new(out)?;
    std::fs::create_dir_all(out)?;
    let orphans = manifest.remove_orphans(out)?;
    if orphans > 0 {
        eprintln!("cartscope: removed {orphans} unfinished part files of an interrupted ingest");
    }

    let mut todo: Vec<(InputFile, String)> = Vec::new();
    let mut seen = HashSet::new();
    let mut already = Vec::new();
    for f in inputs.files {
        let h = file_hash(&f.path)?;
        if manifest.contains(&h).is_some() || !seen.insert(h.clone()) {
            already.push(f.path.display().to_string());
        } else {
            todo.push((f, h));
        }
    }
    let files: Vec<InputFile> = todo.iter().map(|(f, _)| f.clone()).collect();
    let state = RefCell::new(State {
        buffers: BTreeMap::new(),
        parts: Vec::new(),
        file_rows: [0; 5],
        part_seq: 0,
        range: [None; 5],
        bad_before: 0,
        manifest,
        written: Vec::new(),
    });

    let flush = |st: &mut State, file: usize, only: Option<(Table, Option<i64>)>| -> Result<()> {
        let keys: Vec<_> = match only {
            Some(k) => vec![k],
            None => st.buffers.keys().copied().collect(),
        };
        for key in keys {
            let Some(buf) = st.buffers.remove(&key) else {
                continue;
            };
            if buf.rows == 0 {
                continue;
            }
            let name = format!("part-{}-{:04}.parquet", &todo[file].1[..16], st.part_seq);
            st.part_seq += 1;
            let rel = dataset::write_part(out, key.0, key.1, &name, &buf.batches)?;
            st.parts.push(rel);
        }
        Ok(())
    };

    let stats = load::load(
        &files,
        opts,
        &mut |file, table, batch| {
            let mut st = state.borrow_mut();
            st.file_rows[table.index()] += batch.num_rows() as u64;
            widen_range(&mut st.range[table.index()], table, &batch);
            for (day, part) in dataset::split_by_day(table, &batch)? {
                let buf = st.buffers.entry((table, day)).or_default();
                buf.rows += part.num_rows();
                buf.batches.push(part);
                if buf.rows >= PART_ROWS {
                    flush(&mut st, file, Some((table, day)))?;
                }
            }
            Ok(())
        },
        &mut |file, stats| {
            let mut st = state.borrow_mut();
            flush(&mut st, file, None)?;
            let (f, hash) = &todo[file];
            let rows: BTreeMap<String, u64> = Table::ALL
                .iter()
                .map(|t| (t.name().to_string(), st.file_rows[t.index()]))
                .collect();
            let bad = stats.bad_total - st.bad_before;
            st.bad_before = stats.bad_total;
            let parts = std::mem::take(&mut st.parts);
            st.manifest.inputs.push(IngestedInput {
                source: f.path.display().to_string(),
                hash: hash.clone(),
                bytes: std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0),
                rows,
                bad_records: bad,
                parts,
            });
            // Committed file by file: an interrupted ingest keeps what it finished.
            st.manifest.save(out)?;
            let file_rows = std::mem::take(&mut st.file_rows);
            st.written.push((f.path.display().to_string(), file_rows));
            st.part_seq = 0;
            Ok(())
        },
    )?;
    let st = state.into_inner();
    Ok(IngestReport {
        stats,
        written: st.written,
        already,
        range: st.range,
    })
}

fn widen_range(range: &mut Option<(i64, i64)>, table: Table, batch: &RecordBatch) {
    let Some(col) = batch.column_by_name(table.time_column()) else {
        return;
    };
    let Some(t) = col.as_any().downcast_ref::<TimestampMicrosecondArray>() else {
        return;
    };
    let (Some(lo), Some(hi)) = (
        datafusion::arrow::compute::min(t),
        datafusion::arrow::compute::max(t),
    ) else {
        return;
    };
    *range = Some(match *range {
        None => (lo, hi),
        Some((a, b)) => (a.min(lo), b.max(hi)),
    });
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
        let (first, last) = r.range[t.index()]
            .map(|(a, b)| (fmt_time(a), fmt_time(b)))
            .unwrap_or_default();
        grid.add_row([
            t.name().to_string(),
            stats.rows[t.index()].to_string(),
            first,
            last,
        ]);
    }
    writeln!(w, "{grid}")?;
    if stats.log_documents > 0 {
        writeln!(
            w,
            "log documents skipped (cartscope reads traces and metrics): {}",
            stats.log_documents
        )?;
    }
    writeln!(w, "bad records skipped: {}", stats.bad_total)?;
    for a in already {
        writeln!(w, "already ingested, passed over: {a}")?;
    }
    Ok(())
}
