//! Everything cartscope shows: result tables in every output format, the progress bar, and
//! the reporting of bad records. Renderers write to any `impl Write`, so output is testable
//! without a terminal.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table as Grid};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::input::BadRecord;

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// A table for the terminal.
    #[default]
    Table,
    Csv,
    Tsv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    Markdown,
    /// Apache Parquet (binary: give --output, or pipe it).
    Parquet,
}

/// A progress bar on stderr, hidden when stderr is not a terminal (cron, CI, pipes).
pub fn progress_bar(enabled: bool, total_bytes: u64, msg: &'static str) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() || total_bytes < (64 << 20) {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total_bytes);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}

fn format_options() -> FormatOptions<'static> {
    FormatOptions::default()
        .with_null("")
        .with_timestamp_tz_format(Some("%Y-%m-%dT%H:%M:%S%.fZ"))
        .with_timestamp_format(Some("%Y-%m-%dT%H:%M:%S%.f"))
}

/// Cell text for every row of every column.
fn cells(batches: &[RecordBatch], max_rows: Option<usize>) -> Result<Vec<Vec<String>>> {
    let opts = format_options();
    let mut rows = Vec::new();
    'outer: for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for r in 0..b.num_rows() {
            if max_rows.is_some_and(|m| rows.len() >= m) {
                break 'outer;
            }
            rows.push(
                fmts.iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>(),
            );
        }
    }
    Ok(rows)
}

fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric()
}

/// Writes `batches` (all of `schema`) in `format`. `max_rows` limits the rows shown in the
/// terminal formats; machine formats write everything they are given.
pub fn write_batches(
    w: &mut dyn Write,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    max_rows: Option<usize>,
) -> Result<()> {
    match format {
        Format::Parquet => {
            // ArrowWriter needs a Send writer; the result is buffered, then written out.
            let mut buf = Vec::new();
            let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(
                &mut buf,
                schema.clone(),
                Some(crate::dataset::writer_properties()),
            )?;
            for b in limit(batches, max_rows) {
                writer.write(&b)?;
            }
            writer.close()?;
            w.write_all(&buf)?;
        }
        Format::Table => {
            let total: usize = batches.iter().map(|b| b.num_rows()).sum();
            let rows = cells(batches, max_rows)?;
            let mut grid = Grid::new();
            grid.load_preset(presets::UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Disabled)
                .set_header(schema.fields().iter().map(|f| f.name().as_str()));
            for row in &rows {
                grid.add_row(row.iter().zip(schema.fields()).map(|(c, f)| {
                    let cell = Cell::new(c);
                    if is_numeric(f.data_type()) {
                        cell.set_alignment(CellAlignment::Right)
                    } else {
                        cell
                    }
                }));
            }
            writeln!(w, "{grid}")?;
            if rows.len() < total {
                writeln!(
                    w,
                    "{} of {total} rows shown (raise --max-rows to see more)",
                    rows.len()
                )?;
            } else {
                writeln!(w, "{total} row{}", if total == 1 { "" } else { "s" })?;
            }
        }
        Format::Csv | Format::Tsv => {
            let sep = if format == Format::Csv { ',' } else { '\t' };
            let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            write_delimited(w, &header, sep)?;
            for row in cells(batches, max_rows)? {
                write_delimited(w, &row, sep)?;
            }
        }
        Format::Markdown => {
            let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
            let header: Vec<String> = schema.fields().iter().map(|f| esc(f.name())).collect();
            writeln!(w, "| {} |", header.join(" | "))?;
            let rule: Vec<&str> = schema
                .fields()
                .iter()
                .map(|f| {
                    if is_numeric(f.data_type()) {
                        "---:"
                    } else {
                        "---"
                    }
                })
                .collect();
            writeln!(w, "| {} |", rule.join(" | "))?;
            for row in cells(batches, max_rows)? {
                let row: Vec<String> = row.iter().map(|c| esc(c)).collect();
                writeln!(w, "| {} |", row.join(" | "))?;
            }
        }
        Format::Json | Format::Ndjson => {
            let limited = limit(batches, max_rows);
            let refs: Vec<&RecordBatch> = limited.iter().collect();
            if format == Format::Json {
                let mut wr = datafusion::arrow::json::ArrayWriter::new(&mut *w);
                wr.write_batches(&refs)?;
                wr.finish()?;
                if refs.iter().all(|b| b.num_rows() == 0) {
                    // arrow writes nothing for no rows; an empty array is still JSON.
                    write!(w, "[]")?;
                }
                writeln!(w)?;
            } else {
                let mut wr = datafusion::arrow::json::LineDelimitedWriter::new(&mut *w);
                wr.write_batches(&refs)?;
                wr.finish()?;
            }
        }
    }
    Ok(())
}

fn limit(batches: &[RecordBatch], max_rows: Option<usize>) -> Vec<RecordBatch> {
    let Some(mut left) = max_rows else {
        return batches.to_vec();
    };
    let mut out = Vec::new();
    for b in batches {
        if left == 0 {
            break;
        }
        let n = b.num_rows().min(left);
        out.push(b.slice(0, n));
        left -= n;
    }
    out
}

fn write_delimited(w: &mut dyn Write, row: &[String], sep: char) -> Result<()> {
    let mut line = String::new();
    for (i, c) in row.iter().enumerate() {
        if i > 0 {
            line.push(sep);
        }
        if sep == ',' && (c.contains([',', '"', '\n', '\r'])) {
            line.push('"');
            line.push_str(&c.replace('"', "\"\""));
            line.push('"');
        } else if sep == '\t' {
            line.push_str(&c.replace(['\t', '\n'], " "));
        } else {
            line.push_str(c);
        }
    }
    writeln!(w, "{line}")?;
    Ok(())
}

/// Reports on stderr what a load passed over: bad records, files that hold no telemetry.
pub fn report_skipped(stats: &crate::load::LoadStats) {
    report_bad_records(&stats.bad, stats.bad_total);
    for (path, what) in &stats.skipped_files {
        eprintln!("cartscope: passed over '{}': {what}", path.display());
    }
}

/// Reports skipped records on stderr: the first ones in full, then the total.
pub fn report_bad_records(bad: &[BadRecord], total: u64) {
    if total == 0 {
        return;
    }
    let mut err = std::io::stderr().lock();
    for b in bad {
        let _ = writeln!(err, "cartscope: skipped: {b}");
    }
    let more = total - bad.len() as u64;
    let _ = if more > 0 {
        writeln!(
            err,
            "cartscope: ... and {more} more; {total} bad records skipped in all (--strict stops at the first)"
        )
    } else {
        writeln!(
            err,
            "cartscope: {total} bad record{} skipped (--strict stops at the first)",
            if total == 1 { "" } else { "s" }
        )
    };
}

/// Writes a file atomically: to a temporary file beside it, then renamed over it, so a reader
/// never sees half a file and a failed run leaves the old one.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory '{}'", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in '{}'", dir.display()))?;
    {
        let mut buf = std::io::BufWriter::new(tmp.as_file_mut());
        write(&mut buf)?;
        buf.flush()
            .with_context(|| format!("cannot write '{}'", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write '{}'", path.display()))?;
    let file = tmp.persist(path).with_context(|| {
        format!(
            "cannot move the finished file into place at '{}'",
            path.display()
        )
    })?;
    readable_by_all(&file)
}

/// Temporary files are created private (0600); a finished output file is an ordinary one.
pub fn readable_by_all(file: &std::fs::File) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    let _ = file;
    Ok(())
}

/// Whether an error chain ends in a closed pipe (`cartscope ... | head`), which is success.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<datafusion::arrow::error::ArrowError>()
                .is_some_and(|a| matches!(a, datafusion::arrow::error::ArrowError::IoError(_, io) if io.kind() == std::io::ErrorKind::BrokenPipe))
    })
}

/// A small helper for array values in tests and summaries.
pub fn value_string(a: &dyn Array, i: usize) -> Result<String> {
    let opts = format_options();
    Ok(ArrayFormatter::try_new(a, &opts)?.value(i).to_string())
}
