//! Result tables in every output format: a whole result at once (`write_batches`), and the
//! pieces the streaming writer (`sink`) writes a batch at a time.

use std::io::Write;

use anyhow::Result;

use super::files::writer_properties;
use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table as Grid};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

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
    /// An Apache Arrow IPC stream, as pandas, polars and DuckDB read it (binary: give
    /// --output, or pipe it).
    Arrow,
}

impl Format {
    /// Whether the format is binary, and so never written to a terminal.
    pub fn is_binary(self) -> bool {
        matches!(self, Format::Parquet | Format::Arrow)
    }
}

fn format_options() -> FormatOptions<'static> {
    FormatOptions::default()
        .with_null("")
        .with_timestamp_tz_format(Some("%Y-%m-%dT%H:%M:%S%.fZ"))
        .with_timestamp_format(Some("%Y-%m-%dT%H:%M:%S%.f"))
}

/// A cell formatter for each column of `b`.
fn formatters<'a>(
    b: &'a RecordBatch,
    opts: &'a FormatOptions<'a>,
) -> Result<Vec<ArrayFormatter<'a>>> {
    Ok(b.columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), opts))
        .collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Cell text for every row of every column.
fn cells(batches: &[RecordBatch], max_rows: Option<usize>) -> Result<Vec<Vec<String>>> {
    let opts = format_options();
    let mut rows = Vec::new();
    'outer: for b in batches {
        let fmts = formatters(b, &opts)?;
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
                Some(writer_properties()),
            )?;
            for b in limit(batches, max_rows) {
                writer.write(&b)?;
            }
            writer.close()?;
            w.write_all(&buf)?;
        }
        Format::Arrow => {
            let mut writer = datafusion::arrow::ipc::writer::StreamWriter::try_new(w, schema)?;
            for b in limit(batches, max_rows) {
                writer.write(&b)?;
            }
            writer.finish()?;
        }
        Format::Table => {
            let total: usize = batches.iter().map(|b| b.num_rows()).sum();
            write_table(w, schema, batches, max_rows, total)?;
        }
        Format::Csv | Format::Tsv => {
            write_delimited_rows(w, format, schema, batches, max_rows, true)?
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

/// The terminal table of `batches`, at most `max_rows` of the `total` rows there were.
pub(super) fn write_table(
    w: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    max_rows: Option<usize>,
    total: usize,
) -> Result<()> {
    {
        {
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
    }
    Ok(())
}

/// CSV or TSV rows of `batches` (at most `max_rows`), after the header row if asked. Each
/// cell is formatted straight into one line buffer, reused from row to row: no string per
/// cell (a 100k-cart `detect -f csv` spent a quarter of its output time allocating them).
pub(super) fn write_delimited_rows(
    w: &mut dyn Write,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    max_rows: Option<usize>,
    header_row: bool,
) -> Result<()> {
    use std::fmt::Write as _;
    let sep = if format == Format::Csv { ',' } else { '\t' };
    let raw = RAW.load(std::sync::atomic::Ordering::Relaxed);
    let text: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| !raw && !is_numeric(f.data_type()))
        .collect();
    let mut line = String::new();
    let mut cell = String::new();
    if header_row {
        for (i, f) in schema.fields().iter().enumerate() {
            push_cell(&mut line, i, f.name(), !raw, sep);
        }
        line.push('\n');
        w.write_all(line.as_bytes())?;
    }
    let opts = format_options();
    let mut left = max_rows.unwrap_or(usize::MAX);
    for b in batches {
        let fmts = formatters(b, &opts)?;
        let utc: Vec<_> = b.columns().iter().map(|c| utc_micros(c)).collect();
        for r in 0..b.num_rows() {
            if left == 0 {
                return Ok(());
            }
            left -= 1;
            line.clear();
            for (i, f) in fmts.iter().enumerate() {
                cell.clear();
                let fast = match utc[i] {
                    Some(a) => a.is_null(r) || write_utc_micros(&mut cell, a.value(r)),
                    None => false,
                };
                if !fast {
                    write!(cell, "{}", f.value(r))?;
                }
                push_cell(&mut line, i, &cell, text[i], sep);
            }
            line.push('\n');
            w.write_all(line.as_bytes())?;
        }
    }
    Ok(())
}

/// A column of UTC timestamps in microseconds (every timestamp cartscope's tables hold),
/// which `write_utc_micros` formats.
fn utc_micros(c: &dyn Array) -> Option<&datafusion::arrow::array::TimestampMicrosecondArray> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::TimeUnit;
    match c.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz))
            if &**tz == "UTC" || &**tz == "+00:00" =>
        {
            c.as_primitive_opt()
        }
        _ => None,
    }
}

/// Appends a UTC timestamp in microseconds as `format_options` writes it
/// (`%Y-%m-%dT%H:%M:%S%.fZ`: the fraction's digits in threes, none when zero), without
/// chrono's format-string interpreter (a fifth of a 100k-cart `detect -f csv`'s output time).
/// False, and nothing written, for a year outside 0..=9999: the caller formats it.
fn write_utc_micros(out: &mut String, us: i64) -> bool {
    use chrono::{Datelike, Timelike};
    let Some(t) = chrono::DateTime::from_timestamp(us.div_euclid(1_000_000), 0) else {
        return false;
    };
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return false;
    }
    fn digits(out: &mut String, n: u32, width: u32) {
        for k in (0..width).rev() {
            out.push(char::from(b'0' + (n / 10u32.pow(k) % 10) as u8));
        }
    }
    digits(out, year as u32, 4);
    out.push('-');
    digits(out, t.month(), 2);
    out.push('-');
    digits(out, t.day(), 2);
    out.push('T');
    digits(out, t.hour(), 2);
    out.push(':');
    digits(out, t.minute(), 2);
    out.push(':');
    digits(out, t.second(), 2);
    let frac = us.rem_euclid(1_000_000) as u32;
    if frac != 0 {
        out.push('.');
        if frac.is_multiple_of(1000) {
            digits(out, frac / 1000, 3);
        } else {
            digits(out, frac, 6);
        }
    }
    out.push('Z');
    true
}

/// Appends one CSV or TSV cell (the `i`-th of its row) to `line`: a text cell that a
/// spreadsheet would run as a formula neutralised (`FORMULA_STARTS`), quoted for CSV where it
/// must be, tabs and newlines turned to spaces for TSV.
fn push_cell(line: &mut String, i: usize, cell: &str, text: bool, sep: char) {
    if i > 0 {
        line.push(sep);
    }
    let guard = text && cell.starts_with(FORMULA_STARTS);
    if sep == ',' && cell.contains([',', '"', '\n', '\r']) {
        line.push('"');
        if guard {
            line.push('\'');
        }
        line.push_str(&cell.replace('"', "\"\""));
        line.push('"');
    } else {
        if guard {
            line.push('\'');
        }
        if sep == '\t' {
            line.push_str(&cell.replace(['\t', '\n'], " "));
        } else {
            line.push_str(cell);
        }
    }
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

/// A text cell that a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`,
/// a tab or a carriage return: span names and attributes are whatever a shopper or a
/// service wrote) gets a leading `'`, as OWASP recommends against CSV injection. Numbers are
/// left alone: their columns are typed.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `--raw`: CSV and TSV cells as they are, formulas included.
static RAW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes CSV and TSV cells as they are from now on (`--raw`).
pub fn set_raw(raw: bool) {
    RAW.store(raw, std::sync::atomic::Ordering::Relaxed);
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

/// A size as `--memory-limit` takes it: `512.0 MB`, `1.5 GB` (decimal units).
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.1} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} KB", n / 1e3),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::TimestampMicrosecondArray;

    /// The fast timestamp cells are the bytes arrow's formatter writes with
    /// `format_options`, or are left to it.
    #[test]
    fn utc_micros_cells_match_the_arrow_formatter() {
        let mut values = vec![
            0,
            1,
            -1,
            999_000,
            1_000,
            123_456,
            1_763_640_000_000_000,
            1_763_639_999_977_898,
            951_782_400_000_000,     // 2000-02-29
            -62_135_596_800_000_000, // 0001-01-01
            -62_167_219_200_000_000, // 0000-01-01
            -62_167_219_200_000_001,
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
            253_402_300_800_000_000, // 10000-01-01
            i64::MIN,
            i64::MAX,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push((x % 4_000_000_000_000_000) as i64 - 1_000_000_000_000_000);
            values.push(((x >> 3) % 4_000_000_000_000) as i64 * 1000);
        }
        let array = TimestampMicrosecondArray::from(values.clone()).with_timezone("UTC");
        let opts = format_options();
        let f = ArrayFormatter::try_new(&array, &opts).unwrap();
        let a = utc_micros(&array).expect("a UTC microsecond column");
        let mut fast_ones = 0;
        for (i, v) in values.iter().enumerate() {
            let mut cell = String::new();
            if write_utc_micros(&mut cell, a.value(i)) {
                fast_ones += 1;
                assert_eq!(cell, f.value(i).to_string(), "{v}");
            } else {
                assert!(cell.is_empty(), "{v}");
            }
        }
        assert!(fast_ones > 40_000, "{fast_ones}");
    }
}
