//! Results written as they arrive, a batch at a time, so that writing a million carts needs
//! no more memory than a batch: the machine formats stream; the terminal formats keep only
//! the rows they show (and count the rest).

use std::io::Write;

use anyhow::Result;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::json::{ArrayWriter, LineDelimitedWriter};
use datafusion::parquet::arrow::ArrowWriter;

use super::files::{writer_properties, AtomicFile};
use super::formats::{write_batches, write_delimited_rows, write_table, Format};

/// Writes batches of one schema in one format as they come; `finish` ends the output and
/// gives the writer back (flush it).
pub(crate) struct Sink<W: Write + Send> {
    schema: SchemaRef,
    inner: Inner<W>,
}

enum Inner<W: Write + Send> {
    /// CSV and TSV: the header, then each batch's rows.
    Delimited {
        w: W,
        format: Format,
        header: bool,
    },
    Ndjson(LineDelimitedWriter<W>),
    Json {
        w: ArrayWriter<W>,
        rows: bool,
    },
    Parquet(ArrowWriter<W>),
    Arrow(StreamWriter<W>),
    /// Table and markdown: the rows shown, and how many there were.
    Shown {
        w: W,
        format: Format,
        max_rows: Option<usize>,
        kept: Vec<RecordBatch>,
        shown: usize,
        total: usize,
    },
}

impl<W: Write + Send> Sink<W> {
    /// `max_rows` limits the rows of the terminal formats, as in `write_batches`.
    pub fn new(w: W, format: Format, schema: SchemaRef, max_rows: Option<usize>) -> Result<Self> {
        let inner = match format {
            Format::Csv | Format::Tsv => Inner::Delimited {
                w,
                format,
                header: false,
            },
            Format::Ndjson => Inner::Ndjson(LineDelimitedWriter::new(w)),
            Format::Json => Inner::Json {
                w: ArrayWriter::new(w),
                rows: false,
            },
            Format::Parquet => Inner::Parquet(ArrowWriter::try_new(
                w,
                schema.clone(),
                Some(writer_properties()),
            )?),
            Format::Arrow => Inner::Arrow(StreamWriter::try_new(w, &schema)?),
            Format::Table | Format::Markdown => Inner::Shown {
                w,
                format,
                max_rows,
                kept: Vec::new(),
                shown: 0,
                total: 0,
            },
        };
        Ok(Sink { schema, inner })
    }

    pub fn push(&mut self, b: &RecordBatch) -> Result<()> {
        match &mut self.inner {
            Inner::Delimited { w, format, header } => {
                write_delimited_rows(
                    w,
                    *format,
                    &self.schema,
                    std::slice::from_ref(b),
                    None,
                    !*header,
                )?;
                *header = true;
            }
            Inner::Ndjson(w) => w.write(b)?,
            Inner::Json { w, rows } => {
                if b.num_rows() > 0 {
                    w.write(b)?;
                    *rows = true;
                }
            }
            Inner::Parquet(w) => w.write(b)?,
            Inner::Arrow(w) => w.write(b)?,
            Inner::Shown {
                max_rows,
                kept,
                shown,
                total,
                ..
            } => {
                let n = b.num_rows();
                let room = max_rows.map_or(n, |m| m.saturating_sub(*shown)).min(n);
                if room > 0 {
                    kept.push(b.slice(0, room));
                    *shown += room;
                }
                *total += n;
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Result<W> {
        let schema = self.schema;
        Ok(match self.inner {
            Inner::Delimited {
                mut w,
                format,
                header,
            } => {
                if !header {
                    write_delimited_rows(&mut w, format, &schema, &[], None, true)?;
                }
                w
            }
            Inner::Ndjson(mut w) => {
                w.finish()?;
                w.into_inner()
            }
            Inner::Json { mut w, rows } => {
                w.finish()?;
                let mut w = w.into_inner();
                if !rows {
                    // arrow writes nothing for no rows; an empty array is still JSON.
                    write!(w, "[]")?;
                }
                writeln!(w)?;
                w
            }
            Inner::Parquet(w) => w.into_inner()?,
            Inner::Arrow(mut w) => {
                w.finish()?;
                w.into_inner()?
            }
            Inner::Shown {
                mut w,
                format,
                max_rows,
                kept,
                total,
                ..
            } => {
                if format == Format::Table {
                    write_table(&mut w, &schema, &kept, max_rows, total)?;
                } else {
                    write_batches(&mut w, format, &schema, &kept, max_rows)?;
                }
                w
            }
        })
    }
}

/// A binary format is written to a file or a pipe, never to a terminal.
pub fn refuse_binary_on_terminal(format: Format) -> Result<()> {
    use std::io::IsTerminal;
    if format.is_binary() && std::io::stdout().is_terminal() {
        anyhow::bail!(
            "--format {} is binary: give --output FILE, or pipe or redirect it",
            clap::ValueEnum::to_possible_value(&format)
                .map_or_else(String::new, |v| v.get_name().to_string())
        );
    }
    Ok(())
}

/// Writes a stream of batches to stdout in `format`.
pub async fn stream_to_stdout(
    stream: datafusion::physical_plan::SendableRecordBatchStream,
    format: Format,
    max_rows: Option<usize>,
) -> Result<()> {
    refuse_binary_on_terminal(format)?;
    let out = std::io::BufWriter::new(std::io::stdout());
    let sink = Sink::new(out, format, stream.schema(), max_rows)?;
    let mut w = drain(stream, sink).await?;
    w.flush()?;
    Ok(())
}

/// Writes a stream of batches to the file `path`, atomically, in `format`.
pub async fn stream_to_file(
    stream: datafusion::physical_plan::SendableRecordBatchStream,
    format: Format,
    path: &std::path::Path,
) -> Result<()> {
    use anyhow::Context;
    let file = AtomicFile::create(path)?;
    let sink = Sink::new(file.writer()?, format, stream.schema(), None)?;
    let mut w = drain(stream, sink)
        .await
        .with_context(|| format!("cannot write '{}'", path.display()))?;
    w.flush()
        .with_context(|| format!("cannot write '{}'", path.display()))?;
    drop(w);
    file.commit()
}

async fn drain<W: Write + Send>(
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    mut sink: Sink<W>,
) -> Result<W> {
    use futures::StreamExt;
    if let Inner::Delimited { .. } = sink.inner {
        return drain_delimited(stream, sink).await;
    }
    while let Some(b) = stream.next().await {
        sink.push(&b?)?;
    }
    sink.finish()
}

/// Batches whose CSV or TSV text is being formatted at once.
const FORMATTED_AHEAD: usize = 4;

/// CSV and TSV: each batch's text is formatted on a blocking thread of its own, a few
/// batches ahead of the one written, and written in order. Formatting was most of the last
/// tenth of a raw 100k-cart `detect -f csv`, on one core while the other waited.
async fn drain_delimited<W: Write + Send>(
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    sink: Sink<W>,
) -> Result<W> {
    use futures::StreamExt;
    let Sink { schema, inner } = sink;
    let Inner::Delimited { mut w, format, .. } = inner else {
        unreachable!("drain_delimited is given a delimited sink");
    };
    // The header goes with the first rows (or alone at the end), as `Sink::push` writes it.
    let mut header = false;
    let mut put = |text: &[u8], w: &mut W| -> Result<()> {
        if !header {
            write_delimited_rows(w, format, &schema, &[], None, true)?;
            header = true;
        }
        w.write_all(text)?;
        Ok(())
    };
    let mut ahead = std::collections::VecDeque::new();
    let mut failed = None;
    while let Some(b) = stream.next().await {
        let b = match b {
            Ok(b) => b,
            Err(e) => {
                // The rows before the error are written, as they were one batch at a time.
                failed = Some(e);
                break;
            }
        };
        let schema = schema.clone();
        ahead.push_back(tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
            let mut text = Vec::new();
            write_delimited_rows(&mut text, format, &schema, &[b], None, false)?;
            Ok(text)
        }));
        if ahead.len() >= FORMATTED_AHEAD {
            let next = ahead.pop_front().expect("not empty");
            put(&next.await??, &mut w)?;
        }
    }
    for next in ahead {
        put(&next.await??, &mut w)?;
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    put(&[], &mut w)?;
    Ok(w)
}
