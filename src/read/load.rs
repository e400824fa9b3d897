//! Streams raw export files into canonical batches, on every core.
//!
//! One reader thread opens each file in turn, undoes its compression and cuts it into chunks of
//! whole documents (lines, pretty-printed documents, or protobuf frames) of about a MiB (4 MiB
//! when the batches are held for queries: `HELD_CHUNK`); worker
//! threads parse chunks straight into Arrow builders; the calling thread receives the batches
//! in input order (so results are deterministic) and hands them to a sink. Every queue is
//! bounded, so memory depends on the chunk size and thread count, never on the input's size.
//!
//! Bad records never stop the run (unless `strict`) and are never dropped in silence: each is
//! counted and described with its file and line or frame.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use datafusion::arrow::record_batch::RecordBatch;

use crate::read::input::{self, BadRecord, Compression, Content, InputFile, Location};
use crate::read::otlp::json::{self, DocCounts, Scratch};
use crate::read::otlp::proto;
use crate::read::parquet;
use crate::read::projection::Projection;
use crate::tables::builders::{SpanSizes, TableBuilders};
use crate::tables::schema::{PerTable, Table};

/// Bytes of input per chunk handed to a worker (`LoadOptions::chunk`). 1 MiB against 4 MiB on
/// the 100k-cart export's ingest (bench/RESULTS.md): the same time, 60 MB less peak memory
/// (the queues hold fewer bytes).
pub const CHUNK: usize = 1 << 20;
/// The chunk of a load whose batches are held for queries (`load_into_memory`): a chunk's
/// spans are one batch, and 4 MiB makes batches of about 9,000 spans (DataFusion's are 8,192)
/// where 1 MiB made 2,200: every operator of the replay then works on a quarter as many
/// batches. A raw real-SDK detect 0.97x-1.13x over five rounds, 1.02-1.03x in the mean of six
/// alternated runs, its peak a few MB lower (bench/RESULTS.md). The cost: the chunks in the
/// queues and in the workers' hands (about five per worker thread) are 4 MiB, about 15 MiB
/// more per thread, outside --memory-limit; beside what a held load holds, little.
pub const HELD_CHUNK: usize = 4 << 20;
/// Spans checked for repeats before the check's set is sized for the whole input.
const SIZE_CHECK_AFTER: usize = 1 << 16;
/// The largest chunk buffer handed back to the reader for another chunk, in chunks.
const SPARE_AT_MOST: usize = 4;
/// A frame longer than this is taken for a corrupt length prefix, not a message.
const MAX_FRAME: usize = 1 << 30;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Stop at the first bad record.
    pub strict: bool,
    pub progress: bool,
    pub threads: usize,
    /// Hash every file's bytes (xxh3-128) as it is read, for `on_file_done`.
    pub hash_inputs: bool,
    pub limits: Limits,
    /// The attributes to read; the rest are skipped unread (`read::projection`).
    pub projection: Arc<Projection>,
    /// Bytes of input a worker parses at once (whole documents or frames of about this
    /// many), and so the rows of a batch: `CHUNK`, or `HELD_CHUNK` for batches held.
    pub chunk: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            strict: false,
            progress: false,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            hash_inputs: false,
            limits: Limits::default(),
            projection: Arc::default(),
            chunk: CHUNK,
        }
    }
}

/// What one record and one compressed stream may grow to: far above real exports, so a
/// corrupt or hostile file costs a reported skip, not all the memory there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest line, JSON document, protobuf message or decompressed frame read whole.
    pub max_record: usize,
    /// Decompressed bytes per compressed byte, past the first `input::EXPANSION_FREE` bytes.
    pub max_expansion: u64,
    /// The most spans the check for repeated spans remembers (about 20 bytes each): past
    /// them it stops, and says so; the replay still counts each span of a cart once.
    pub repeat_check_spans: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record: 256 << 20,
            max_expansion: 250,
            repeat_check_spans: 32 << 20,
        }
    }
}

/// What a load read, per file and in total.
#[derive(Debug, Default, Clone)]
pub struct LoadStats {
    pub files: usize,
    pub bytes: u64,
    pub documents: u64,
    /// JSON documents that held no spans, metrics or logs.
    pub empty_documents: u64,
    pub rows: PerTable<u64>,
    /// The first bad records in full.
    pub bad: Vec<BadRecord>,
    pub bad_total: u64,
    /// Files found in a directory or glob that hold no telemetry, with what they hold.
    pub skipped_files: Vec<(PathBuf, String)>,
    pub spans: SpanChecks,
}

/// Spans loaded as they are but worth a note: repeated (the same trace and span id twice,
/// as overlapping exports give; the replay counts each once), without a trace or span id,
/// or ending before they start.
#[derive(Debug, Clone)]
pub struct SpanChecks {
    /// 64 bits of each span's key (`span_key`): two spans of a million share them with a
    /// chance of about 3e-8, and half the bytes of the whole key make the set's inserts,
    /// which miss the cache, fewer misses. foldhash, not SipHash: SipHash and the inserts
    /// were 5% of a raw 100k-cart detect, and the keys are hashes already.
    seen: foldhash::HashSet<u64>,
    /// The most spans `seen` holds, and whether spans came past it.
    cap: usize,
    stopped: bool,
    /// Whether `seen` was sized for the whole input (`size_for`).
    sized: bool,
    pub duplicates: u64,
    pub empty_ids: u64,
    pub negative_durations: u64,
}

impl Default for SpanChecks {
    fn default() -> Self {
        SpanChecks::with_cap(Limits::default().repeat_check_spans)
    }
}

impl SpanChecks {
    /// Checks for repeats among at most `cap` spans.
    pub fn with_cap(cap: usize) -> SpanChecks {
        SpanChecks {
            seen: Default::default(),
            cap,
            stopped: false,
            sized: false,
            duplicates: 0,
            empty_ids: 0,
            negative_durations: 0,
        }
    }

    /// Checks the spans of one `traces` batch.
    pub fn check(&mut self, batch: &RecordBatch) {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::datatypes::Float64Type;
        let col = |name: &str| batch.column_by_name(name);
        let (Some(trace), Some(span)) = (col("trace_id"), col("span_id")) else {
            return;
        };
        let (Some(trace), Some(span)) = (trace.as_string_opt::<i32>(), span.as_string_opt::<i32>())
        else {
            return;
        };
        for i in 0..batch.num_rows() {
            if trace.is_null(i) || span.is_null(i) {
                self.empty_ids += 1;
                continue;
            }
            let key = crate::tables::schema::span_key(&[trace.value(i), span.value(i)]) as u64;
            if self.seen.len() >= self.cap {
                self.stopped |= !self.seen.contains(&key);
                self.duplicates += u64::from(self.seen.contains(&key));
            } else if !self.seen.insert(key) {
                self.duplicates += 1;
            }
        }
        if let Some(d) = col("duration_ms").and_then(|d| d.as_primitive_opt::<Float64Type>()) {
            self.negative_durations += d.iter().flatten().filter(|d| *d < 0.0).count() as u64;
        }
    }

    /// Once `SIZE_CHECK_AFTER` spans are in, makes room once for the spans the whole input
    /// likely holds (`expected_spans`, `read` of `total` bytes read so far), up to the cap:
    /// a set that doubles as it grows inserts every key again each time, and faults in
    /// fresh pages (together about half of the check on a raw 100k-cart detect).
    pub fn size_for(&mut self, read: u64, total: u64) {
        if self.sized || self.seen.len() < SIZE_CHECK_AFTER {
            return;
        }
        self.sized = true;
        let spans = expected_spans(self.seen.len(), read, total).min(self.cap);
        if spans > self.seen.len() {
            self.seen.reserve(spans - self.seen.len());
        }
    }

    /// What is worth a note, one line each.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let one = |n: u64, singular: &'static str, plural: &'static str| {
            if n == 1 {
                singular
            } else {
                plural
            }
        };
        if self.duplicates > 0 {
            out.push(format!(
                "{} {} a span read before (the same trace and span id, as overlapping exports give): the replay and its figures count each once",
                self.duplicates,
                one(self.duplicates, "span repeats", "spans repeat"),
            ));
        }
        if self.stopped {
            out.push(format!(
                "the check for repeated spans remembered the first {} spans only (its share of --memory-limit): repeats among later ones are not counted here, and the replay still counts each span of a cart once",
                self.cap
            ));
        }
        if self.empty_ids > 0 {
            out.push(format!(
                "{} span{} without a trace or span id: loaded, but no cart can claim them through their trace",
                self.empty_ids,
                plural(self.empty_ids)
            ));
        }
        if self.negative_durations > 0 {
            out.push(format!(
                "{} {} (a negative duration_ms): loaded as written; a clock is off",
                self.negative_durations,
                one(
                    self.negative_durations,
                    "span ends before it starts",
                    "spans end before they start"
                ),
            ));
        }
        out
    }
}

/// The spans the whole input likely holds, `seen` in its first `read` of `total` bytes: as
/// many a byte in the rest (the reader is ahead of the parsing: a little fewer). Only from a
/// thirty-second of the input or more (Parquet files are not counted as read), and at most
/// 16 times `seen`: a wrong guess (span files first, then metrics) costs little. 0: no guess.
fn expected_spans(seen: usize, read: u64, total: u64) -> usize {
    if read == 0 || read.saturating_mul(32) < total {
        return 0;
    }
    let all = seen as u128 * total as u128 / read as u128;
    all.min(16 * seen as u128) as usize
}

pub(crate) fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// How many bad records are kept in full; the rest are only counted.
pub const BAD_SHOWN: usize = 10;

impl LoadStats {
    pub fn add_bad(&mut self, b: BadRecord) {
        self.bad_total += 1;
        if self.bad.len() < BAD_SHOWN {
            self.bad.push(b);
        }
    }
}

/// The error of a `--strict` run that met a bad record.
/// Reports on stderr what a load passed over: bad records, files that hold no telemetry.
pub fn report_skipped(stats: &crate::read::load::LoadStats) {
    report_bad_records(&stats.bad, stats.bad_total);
    for (path, what) in &stats.skipped_files {
        eprintln!("cartscope: passed over '{}': {what}", path.display());
    }
    for note in stats.spans.notes() {
        eprintln!("cartscope: note: {note}");
    }
}

/// Reports skipped records on stderr: the first ones in full, then the total.
pub fn report_bad_records(bad: &[BadRecord], total: u64) {
    if total == 0 {
        return;
    }
    use std::io::Write;
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

#[derive(Debug, thiserror::Error)]
#[error("{0} (stopped by --strict; without it the record is skipped and reported)")]
pub struct StrictError(pub BadRecord);

enum Work {
    Json {
        text: Vec<u8>,
        first_line: u64,
        lines: bool,
    },
    Frames {
        frames: Vec<(u64, Vec<u8>)>,
    },
    Ready(PerTable<Vec<RecordBatch>>),
    Bad(BadRecord),
    Skipped(String),
    /// The file is read; with its content hash when asked for.
    FileDone(Option<String>),
}

struct Item {
    seq: u64,
    file: usize,
    work: Work,
}

struct Output {
    seq: u64,
    file: usize,
    tables: PerTable<Vec<RecordBatch>>,
    counts: DocCounts,
    documents: u64,
    empty: u64,
    bad: Vec<BadRecord>,
    skipped: Option<String>,
    file_done: Option<Option<String>>,
}

/// Loads `files`, calling `sink(file_index, table, batch)` with every batch, in input order.
/// What `load` calls when a file is done: its index, the stats so far, its content hash.
pub type OnFileDone<'a> = dyn FnMut(usize, &LoadStats, Option<&str>) -> Result<()> + 'a;

/// `on_file_done(file_index, stats, hash)` is called once all of a file's batches have been
/// passed on, with the file's content hash when `opts.hash_inputs`.
pub fn load(
    files: &[InputFile],
    opts: &LoadOptions,
    sink: &mut dyn FnMut(usize, Table, RecordBatch) -> Result<()>,
    on_file_done: &mut OnFileDone,
) -> Result<LoadStats> {
    let mut stats = LoadStats {
        files: files.len(),
        spans: SpanChecks::with_cap(opts.limits.repeat_check_spans),
        ..LoadStats::default()
    };
    if files.is_empty() {
        return Ok(stats);
    }
    let total_bytes: u64 = files.iter().map(|f| f.len()).sum();
    stats.bytes = total_bytes;
    let progress = crate::output::progress_bar(opts.progress, total_bytes, "reading");
    let read_bytes = Arc::new(AtomicU64::new(0));
    let cancel = Arc::new(AtomicBool::new(false));
    let threads = opts.threads.max(1);

    std::thread::scope(|scope| -> Result<()> {
        let (work_tx, work_rx) = bounded::<Item>(threads * 2);
        let (out_tx, out_rx) = bounded::<Result<Output>>(threads * 2);
        // Chunk buffers the workers are done with, back to the reader: a fresh buffer would
        // cost its pages' faults and clearing again (4% of a raw 100k-cart detect's samples).
        let (spare_tx, spare_rx) = bounded::<Vec<u8>>(threads * 2);
        {
            let read_bytes = read_bytes.clone();
            let cancel = cancel.clone();
            let out_tx = out_tx.clone();
            let hash = opts.hash_inputs;
            let cut = Cut {
                limits: opts.limits,
                chunk: opts.chunk.max(1),
            };
            scope.spawn(move || {
                let reading = read_all(files, hash, cut, &work_tx, &spare_rx, &read_bytes, &cancel);
                if let Err(e) = reading {
                    let _ = out_tx.send(Err(e));
                }
            });
        }
        for _ in 0..threads {
            let work_rx: Receiver<Item> = work_rx.clone();
            let out_tx: Sender<Result<Output>> = out_tx.clone();
            let cancel = cancel.clone();
            let max_record = opts.limits.max_record;
            let projection = opts.projection.clone();
            let spare = spare_tx.clone();
            let spare_at_most = SPARE_AT_MOST * opts.chunk.max(1);
            scope.spawn(move || {
                worker(
                    files,
                    work_rx,
                    out_tx,
                    (&spare, spare_at_most),
                    &cancel,
                    max_record,
                    projection,
                )
            });
        }
        drop(work_rx);
        drop(out_tx);
        drop(spare_tx);

        let result = (|| -> Result<()> {
            let mut next = 0u64;
            let mut pending: BTreeMap<u64, Output> = BTreeMap::new();
            for out in out_rx.iter() {
                let out = out?;
                pending.insert(out.seq, out);
                while let Some(out) = pending.remove(&next) {
                    next += 1;
                    progress.set_position(read_bytes.load(Ordering::Relaxed));
                    stats.documents += out.documents;
                    stats.empty_documents += out.empty;
                    for b in out.bad {
                        if opts.strict {
                            return Err(StrictError(b).into());
                        }
                        stats.add_bad(b);
                    }
                    if let Some(what) = out.skipped {
                        stats
                            .skipped_files
                            .push((files[out.file].path.clone(), what));
                    }
                    for (t, batches) in out.tables {
                        for b in batches {
                            stats.rows[t] += b.num_rows() as u64;
                            if t == Table::Traces {
                                stats.spans.check(&b);
                                let read = read_bytes.load(Ordering::Relaxed);
                                stats.spans.size_for(read, total_bytes);
                            }
                            sink(out.file, t, b)?;
                        }
                    }
                    if let Some(hash) = &out.file_done {
                        on_file_done(out.file, &stats, hash.as_deref())?;
                    }
                }
            }
            Ok(())
        })();
        if result.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        drop(out_rx);
        result
    })?;
    progress.finish_and_clear();
    Ok(stats)
}

/// `spare`: where chunk buffers go back to the reader, and the largest kept.
fn worker(
    files: &[InputFile],
    rx: Receiver<Item>,
    tx: Sender<Result<Output>>,
    (spare, spare_at_most): (&Sender<Vec<u8>>, usize),
    cancel: &AtomicBool,
    max_record: usize,
    projection: Arc<Projection>,
) {
    let mut scratch = Scratch::default();
    scratch.projection = projection;
    let fills = scratch.projection.span_fills();
    // The bytes of the last JSON chunk that held spans, and what its spans took (since its
    // last rollback, if any): the next JSON chunk's builders start with room for as many a
    // byte, at most a sixteenth past what those took (`sized_like`). JSON only: a protobuf
    // frame may be zstd, a few kB that decompress to the record limit, so its spans a byte
    // say nothing of the next.
    let mut last: Option<(usize, SpanSizes)> = None;
    for item in rx.iter() {
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        let path = &files[item.file].path;
        let mut out = Output {
            seq: item.seq,
            file: item.file,
            tables: Default::default(),
            counts: DocCounts::default(),
            documents: 0,
            empty: 0,
            bad: Vec::new(),
            skipped: None,
            file_done: None,
        };
        let json_bytes = match &item.work {
            Work::Json { text, .. } => text.len(),
            _ => 0,
        };
        let mut b = match &last {
            Some((was, sizes)) if json_bytes > 0 => {
                TableBuilders::filling_like(fills, sizes, json_bytes as f64 / *was as f64)
            }
            _ => TableBuilders::filling(fills),
        };
        match item.work {
            Work::Json {
                text,
                first_line,
                lines,
            } => {
                parse_json_chunk(
                    path,
                    &text,
                    (first_line, lines),
                    max_record,
                    &mut b,
                    &mut scratch,
                    &mut out,
                );
                // Kept only at about a chunk's size: a buffer a long line grew is let go.
                if text.capacity() <= spare_at_most {
                    let _ = spare.try_send(text);
                }
            }
            Work::Frames { frames } => {
                for (n, frame) in frames {
                    parse_frame(path, n, &frame, max_record, &mut b, &mut scratch, &mut out);
                }
            }
            Work::Ready(tables) => out.tables = tables,
            Work::Bad(bad) => out.bad.push(bad),
            Work::Skipped(what) => out.skipped = Some(what),
            Work::FileDone(hash) => out.file_done = Some(hash),
        }
        if json_bytes > 0 && b.traces.spans() > 0 {
            last = Some((json_bytes, b.traces.sizes()));
        }
        if b.rows() > 0 {
            // Includes batches cut by a rollback; `take` drops empty ones.
            out.tables = b.take();
        }
        if tx.send(Ok(out)).is_err() {
            return;
        }
    }
}

fn add_counts(out: &mut Output, c: DocCounts) {
    out.documents += 1;
    out.counts.spans += c.spans;
    out.counts.points += c.points;
    out.counts.logs += c.logs;
    if c == DocCounts::default() {
        out.empty += 1;
    }
}

/// `at`: the line the chunk starts at, and whether it is JSON lines. A document longer than
/// `max_record` is skipped and reported here: the reader checks only what it cannot cut, so
/// a long line inside a chunk would otherwise be read whatever the limit.
fn parse_json_chunk(
    path: &Path,
    bytes: &[u8],
    (first_line, lines): (u64, bool),
    max_record: usize,
    b: &mut TableBuilders,
    scratch: &mut Scratch,
    out: &mut Output,
) {
    // Documents as (start, end, line of start).
    let mut docs = Vec::new();
    if lines {
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
        for (line, nl) in (first_line..).zip(ends) {
            if start > bytes.len() {
                break;
            }
            let end = nl.min(bytes.len());
            if bytes[start..end].iter().any(|c| !c.is_ascii_whitespace()) {
                docs.push((start, end, line));
            }
            start = nl + 1;
        }
    } else {
        let mut line = first_line;
        let mut pos = 0;
        for (s, e) in input::split_documents(bytes) {
            line += memchr::memchr_iter(b'\n', &bytes[pos..s]).count() as u64;
            pos = s;
            // The document starts at its first non-blank byte.
            let lead = bytes[s..e]
                .iter()
                .take_while(|c| c.is_ascii_whitespace())
                .collect::<Vec<_>>();
            let lead_lines = lead.iter().filter(|c| ***c == b'\n').count() as u64;
            docs.push((s + lead.len(), e, line + lead_lines));
        }
    }
    // UTF-8 is checked once for the whole chunk; only on failure document by document.
    let whole = simdutf8::basic::from_utf8(bytes).ok();
    for (s, e, line) in docs {
        if e - s > max_record {
            out.bad.push(BadRecord {
                file: path.to_path_buf(),
                at: Location::Line(line),
                reason: too_long(lines, max_record, "skipped"),
            });
            continue;
        }
        let text = match whole {
            Some(t) => &t[s..e],
            None => match std::str::from_utf8(&bytes[s..e]) {
                Ok(t) => t,
                Err(err) => {
                    out.bad.push(BadRecord {
                        file: path.to_path_buf(),
                        at: Location::Line(line),
                        reason: format!("not valid UTF-8 ({err}); document skipped"),
                    });
                    continue;
                }
            },
        };
        parse_one_json(path, text, Location::Line(line), b, scratch, out);
    }
}

/// What a line (`lines`) or JSON document over the record limit is reported as; `then` says
/// what becomes of it.
fn too_long(lines: bool, max_record: usize, then: &str) -> String {
    let what = if lines {
        "the line is"
    } else {
        "a JSON document"
    };
    format!("{what} longer than {max_record} bytes (--max-record-size); {then}")
}

fn parse_one_json(
    path: &Path,
    text: &str,
    at: Location,
    b: &mut TableBuilders,
    scratch: &mut Scratch,
    out: &mut Output,
) {
    match json::parse_document(text, b, scratch) {
        Ok(c) => add_counts(out, c),
        Err(e) => {
            let (at, col) = match at {
                Location::Line(l) => (
                    Location::Line(l + e.line.saturating_sub(1) as u64),
                    e.column,
                ),
                other => (other, e.column),
            };
            let trimmed = text.trim_end();
            let truncated = e.message.contains("EOF");
            out.bad.push(BadRecord {
                file: path.to_path_buf(),
                at,
                reason: if truncated && !trimmed.ends_with('}') {
                    format!(
                        "document is truncated (it ends before it closes, column {col}); skipped"
                    )
                } else {
                    format!(
                        "invalid JSON at column {col}: {}; document skipped",
                        e.message
                    )
                },
            });
        }
    }
    // A bad record whose field the parser placed is reported at that field's line (in a
    // pretty-printed document, rather than at the document's first line).
    // Records come mostly in document order, so newlines are counted on from the last one
    // placed, not from the start each time (a big document may hold many bad records).
    let mut placed = scratch.bad_at.drain(..).peekable();
    let (mut seen, mut lines) = (0usize, 0u64);
    for (i, reason) in scratch.bad.drain(..).enumerate() {
        let offset = placed.next_if(|&(j, _)| j == i).map(|(_, off)| off);
        let at = match (at, offset) {
            (Location::Line(l), Some(off)) => {
                if off < seen {
                    (seen, lines) = (0, 0);
                }
                let newlines = memchr::memchr_iter(b'\n', &text.as_bytes()[seen..off]).count();
                (seen, lines) = (off, lines + newlines as u64);
                Location::Line(l + lines)
            }
            _ => at,
        };
        out.bad.push(BadRecord {
            file: path.to_path_buf(),
            at,
            reason,
        });
    }
}

fn parse_frame(
    path: &Path,
    n: u64,
    frame: &[u8],
    max_record: usize,
    b: &mut TableBuilders,
    scratch: &mut Scratch,
    out: &mut Output,
) {
    let at = Location::Frame(n);
    let bad = |reason: String| BadRecord {
        file: path.to_path_buf(),
        at,
        reason,
    };
    let decompressed;
    let payload = if input::sniff_compression(frame) == Compression::Zstd {
        // Decompressed up to the record limit, never whole: a frame can claim any size.
        let mut d = Vec::new();
        let read = zstd::stream::read::Decoder::new(frame)
            .and_then(|z| z.take(max_record as u64 + 1).read_to_end(&mut d));
        match read {
            Ok(_) if d.len() > max_record => {
                out.bad.push(bad(format!(
                    "zstd frame decompresses to more than {max_record} bytes (--max-record-size); skipped"
                )));
                return;
            }
            Ok(_) => {
                decompressed = d;
                &decompressed[..]
            }
            Err(e) => {
                out.bad
                    .push(bad(format!("zstd frame does not decompress: {e}; skipped")));
                return;
            }
        }
    } else {
        frame
    };
    if input::sniff_content(payload) == Content::Json {
        match std::str::from_utf8(payload) {
            Ok(text) => parse_one_json(path, text, at, b, scratch, out),
            Err(e) => out
                .bad
                .push(bad(format!("JSON frame is not valid UTF-8 ({e}); skipped"))),
        }
        return;
    }
    let mut reasons = Vec::new();
    match proto::decode_message(payload, b, &mut reasons, &scratch.projection) {
        Ok(c) => add_counts(out, c),
        Err(e) => out.bad.push(bad(format!(
            "protobuf message does not decode: {e}; skipped"
        ))),
    }
    out.bad.extend(reasons.into_iter().map(bad));
}

/// How the reader cuts a file: what a record and a stream may grow to, and the bytes of input
/// per work item (`LoadOptions::chunk`).
#[derive(Debug, Clone, Copy)]
struct Cut {
    limits: Limits,
    chunk: usize,
}

/// The reader thread: every file in order, cut into work items.
fn read_all(
    files: &[InputFile],
    hash: bool,
    cut: Cut,
    tx: &Sender<Item>,
    spare: &Receiver<Vec<u8>>,
    read_bytes: &Arc<AtomicU64>,
    cancel: &AtomicBool,
) -> Result<()> {
    let mut seq = 0u64;
    let mut send = |file: usize, work: Work| -> Result<()> {
        if cancel.load(Ordering::Relaxed) {
            return Err(anyhow!("cancelled"));
        }
        tx.send(Item { seq, file, work })
            .map_err(|_| anyhow!("the loader stopped"))?;
        seq += 1;
        Ok(())
    };
    for (i, f) in files.iter().enumerate() {
        let hasher = hash.then(input::FileHasher::default);
        let result = read_file(i, f, hasher.clone(), cut, spare, &mut send, read_bytes);
        match result {
            Ok(()) => {}
            // A file that breaks off mid-stream (a truncated gzip, an I/O error) is a bad
            // record of that file; the files after it still load.
            Err(e) if !cancel.load(Ordering::Relaxed) => {
                send(
                    i,
                    Work::Bad(BadRecord {
                        file: f.path.clone(),
                        at: Location::File,
                        reason: format!("{e:#}; the rest of this file is skipped"),
                    }),
                )?;
            }
            Err(e) => return Err(e),
        }
        let hash = match &hasher {
            Some(h) => Some(input::finish_hash(&f.path, h)?),
            None => None,
        };
        send(i, Work::FileDone(hash))?;
    }
    Ok(())
}

fn read_file(
    idx: usize,
    f: &InputFile,
    hasher: Option<input::FileHasher>,
    cut: Cut,
    spare: &Receiver<Vec<u8>>,
    send: &mut dyn FnMut(usize, Work) -> Result<()>,
    read_bytes: &Arc<AtomicU64>,
) -> Result<()> {
    let path = &f.path;
    let (compression, content, mut stream) =
        input::open(path, read_bytes.clone(), hasher, cut.limits.max_expansion)?;
    let max = cut.limits.max_record;
    match content {
        Content::Json => read_json(idx, f, &mut *stream, cut, spare, send).with_context(|| read_err(path, compression)),
        // Length prefixes are read 4 bytes at a time: buffered.
        Content::Framed => {
            let mut r = std::io::BufReader::with_capacity(input::READ_BUFFER, &mut *stream);
            read_frames(idx, path, &mut r, cut, send).with_context(|| read_err(path, compression))
        }
        Content::Protobuf => {
            let mut all = Vec::new();
            (&mut *stream)
                .take(max as u64 + 1)
                .read_to_end(&mut all)
                .with_context(|| read_err(path, compression))?;
            if all.len() > max {
                return send(
                    idx,
                    Work::Bad(BadRecord {
                        file: path.to_path_buf(),
                        at: Location::File,
                        reason: format!(
                            "the protobuf message is larger than {max} bytes (--max-record-size); skipped"
                        ),
                    }),
                );
            }
            send(idx, Work::Frames { frames: vec![(1, all)] })
        }
        Content::Parquet if f.is_stdin() => Err(anyhow!(
            "standard input holds Parquet, which is read from a file (its footer is at the end): save it to a file and give that"
        )),
        Content::Parquet if compression == Compression::None => {
            let kind = parquet::read_parquet(path, f.size, &mut |t, batch| {
                let mut tables: PerTable<Vec<RecordBatch>> = Default::default();
                tables[t].push(batch);
                send(idx, Work::Ready(tables))
            })?;
            if let parquet::ParquetKind::Unknown(what) = kind {
                not_telemetry(idx, f, &format!("Parquet with columns {what}"), send)?;
            }
            Ok(())
        }
        Content::Parquet => Err(anyhow!(
            "'{}' is a compressed Parquet file: decompress it first (Parquet compresses its own pages)",
            path.display()
        )),
        Content::Empty => send(idx, Work::Skipped("empty, or only whitespace".into())),
        Content::Unknown => not_telemetry(idx, f, "not OTLP/JSON, OTLP protobuf or Parquet", send),
    }
}

fn read_err(path: &Path, c: Compression) -> String {
    match c {
        Compression::None => format!("reading '{}' failed", path.display()),
        c => format!("reading '{}' ({c:?}-compressed) failed", path.display()),
    }
}

fn not_telemetry(
    idx: usize,
    f: &InputFile,
    what: &str,
    send: &mut dyn FnMut(usize, Work) -> Result<()>,
) -> Result<()> {
    if f.discovered {
        send(idx, Work::Skipped(what.to_string()))
    } else {
        Err(anyhow!(
            "'{}' is {what}: give an OTLP export (JSON, protobuf, gzip or zstd) or Parquet",
            f.path.display()
        ))
    }
}

fn read_json(
    idx: usize,
    f: &InputFile,
    r: &mut dyn Read,
    Cut { limits, chunk }: Cut,
    spare: &Receiver<Vec<u8>>,
    send: &mut dyn FnMut(usize, Work) -> Result<()>,
) -> Result<()> {
    let max_record = limits.max_record;
    // A buffer for at least `len` bytes: one a worker handed back, or a new one.
    let fresh = |len: usize| -> Vec<u8> {
        let mut v = spare.try_recv().unwrap_or_default();
        v.clear();
        v.reserve(len.max(2 * chunk));
        v
    };
    let mut buf = fresh(2 * chunk);
    let first = input::read_more(r, &mut buf, chunk);
    if buf.starts_with(b"\xef\xbb\xbf") {
        // A byte-order mark is not JSON; editors on Windows write one.
        buf.drain(..3);
    }
    // Found in a folder or by a glob, JSON that names none of OTLP's top-level fields in
    // its first MiB (`CHUNK`, whatever this load's chunk, so that every command passes over
    // the same files) is other JSON beside the export (a truth file, a configuration):
    // passed over and said, not read as a bad record per line. Named, it is read.
    if f.discovered && first.is_ok() && !input::names_otlp(&buf[..buf.len().min(CHUNK)]) {
        return send(
            idx,
            Work::Skipped(format!(
                "JSON, but not OTLP (none of resourceSpans, resourceMetrics, resourceLogs in its first {})",
                crate::output::human_bytes(CHUNK as u64)
            )),
        );
    }
    let path = &f.path;
    let lines = input::looks_like_json_lines(&buf);
    let mut line = 1u64;
    let mut scanner = input::DocScanner::default();
    let mut read = first.map(|n| n < chunk);
    loop {
        // A stream that breaks off (a truncated gzip) still hands on every whole document
        // read before the break; the break itself is the caller's to report.
        let (eof, broken) = match read {
            Ok(eof) => (eof, None),
            Err(e) => (false, Some(e)),
        };
        let cut = if eof {
            Some(buf.len())
        } else if lines {
            memchr::memrchr(b'\n', &buf).map(|p| p + 1)
        } else {
            scanner.scan(&buf)
        };
        if let Some(cut) = cut.filter(|c| *c > 0) {
            // The part document after the cut starts the next buffer, with room for a chunk
            // (at the end there is none).
            let mut rest = if eof {
                Vec::new()
            } else {
                fresh(buf.len() - cut + chunk)
            };
            rest.extend_from_slice(&buf[cut..]);
            buf.truncate(cut);
            let text = std::mem::replace(&mut buf, rest);
            if !lines && !eof {
                scanner.consumed(cut);
            }
            let newlines = memchr::memchr_iter(b'\n', &text).count() as u64;
            send(
                idx,
                Work::Json {
                    text,
                    first_line: line,
                    lines,
                },
            )?;
            line += newlines;
        }
        if let Some(e) = broken {
            return Err(
                anyhow::Error::new(e).context(format!("the stream breaks off after line {line}"))
            );
        }
        if eof {
            return Ok(());
        }
        // Without a cut the buffer holds part of one long document: it grows, up to the
        // record limit.
        if buf.len() > max_record {
            let bad = |reason: String| {
                Work::Bad(BadRecord {
                    file: path.to_path_buf(),
                    at: Location::Line(line),
                    reason,
                })
            };
            if !lines {
                return send(
                    idx,
                    bad(too_long(
                        lines,
                        max_record,
                        "the rest of the file is skipped",
                    )),
                );
            }
            send(idx, bad(too_long(lines, max_record, "skipped")))?;
            // Passed over up to the end of the line, in constant memory.
            buf.clear();
            let found = loop {
                match input::read_more(r, &mut buf, chunk) {
                    Ok(0) => break None,
                    Ok(_) => match memchr::memchr(b'\n', &buf) {
                        Some(p) => break Some(p),
                        None => buf.clear(),
                    },
                    Err(e) => {
                        return Err(anyhow::Error::new(e)
                            .context(format!("the stream breaks off in line {line}")))
                    }
                }
            };
            let Some(p) = found else { return Ok(()) };
            buf.drain(..=p);
            line += 1;
        }
        read = input::read_more(r, &mut buf, chunk).map(|n| n < chunk);
    }
}

fn read_frames(
    idx: usize,
    path: &Path,
    r: &mut dyn Read,
    Cut { limits, chunk }: Cut,
    send: &mut dyn FnMut(usize, Work) -> Result<()>,
) -> Result<()> {
    let max_record = limits.max_record;
    let mut frames = Vec::new();
    let mut size = 0usize;
    let mut n = 0u64;
    // The frames read so far are handed on before the problem that ends the file, so bad
    // records come in file order and --strict names the first.
    let ending: Result<Option<String>> = (|| loop {
        let mut len = [0u8; 4];
        let got = read_exact_or_eof(r, &mut len)?;
        if got == 0 {
            return Ok(None);
        }
        n += 1;
        if got < 4 {
            return Ok(Some(format!(
                "file ends inside the length prefix of frame {n}; skipped"
            )));
        }
        let want = u32::from_be_bytes(len) as usize;
        if want > MAX_FRAME {
            return Ok(Some(format!(
                    "length prefix {want} is not plausible: the framing is corrupt; the rest of the file is skipped"
                )));
        }
        if want > max_record {
            // Passed over unread, and the frames after it are read.
            let skipped = std::io::copy(&mut r.take(want as u64), &mut std::io::sink())?;
            if skipped < want as u64 {
                return Ok(Some(format!(
                    "frame is truncated: {skipped} of {want} bytes; skipped"
                )));
            }
            hand_on(idx, &mut frames, &mut size, send)?;
            send(
                idx,
                Work::Bad(BadRecord {
                    file: path.to_path_buf(),
                    at: Location::Frame(n),
                    reason: format!(
                        "frame of {want} bytes is larger than {max_record} (--max-record-size); skipped"
                    ),
                }),
            )?;
            continue;
        }
        let mut frame = vec![0u8; want];
        let got = read_exact_or_eof(r, &mut frame)?;
        if got < want {
            return Ok(Some(format!(
                "frame is truncated: {got} of {want} bytes; skipped"
            )));
        }
        size += want;
        frames.push((n, frame));
        if size >= chunk {
            hand_on(idx, &mut frames, &mut size, send)?;
        }
    })();
    if !frames.is_empty() {
        send(idx, Work::Frames { frames })?;
    }
    if let Some(reason) = ending? {
        send(
            idx,
            Work::Bad(BadRecord {
                file: path.to_path_buf(),
                at: Location::Frame(n),
                reason,
            }),
        )?;
    }
    Ok(())
}

/// Hands the frames read so far on to the workers.
fn hand_on(
    idx: usize,
    frames: &mut Vec<(u64, Vec<u8>)>,
    size: &mut usize,
    send: &mut dyn FnMut(usize, Work) -> Result<()>,
) -> Result<()> {
    if !frames.is_empty() {
        send(
            idx,
            Work::Frames {
                frames: std::mem::take(frames),
            },
        )?;
    }
    *size = 0;
    Ok(())
}

fn read_exact_or_eof(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Admits what the inputs could not read as files (special files, bad directory entries):
/// under `--strict` the first is the error; otherwise they are counted as bad records.
pub fn admit_unreadable(
    unreadable: &[BadRecord],
    opts: &LoadOptions,
    stats: &mut LoadStats,
) -> Result<()> {
    if let (true, Some(b)) = (opts.strict, unreadable.first()) {
        return Err(StrictError(b.clone()).into());
    }
    for b in unreadable {
        stats.add_bad(b.clone());
    }
    Ok(())
}

/// Loads everything into memory: one list of batches per table, of `HELD_CHUNK`'s input each
/// (or `opts.chunk`'s, when larger).
pub fn load_into_memory(
    files: &[InputFile],
    opts: &LoadOptions,
) -> Result<(PerTable<Vec<RecordBatch>>, LoadStats)> {
    let mut tables: PerTable<Vec<RecordBatch>> = Default::default();
    let opts = LoadOptions {
        chunk: opts.chunk.max(HELD_CHUNK),
        ..opts.clone()
    };
    let stats = load(
        files,
        &opts,
        &mut |_, t, b| {
            tables[t].push(b);
            Ok(())
        },
        &mut |_, _, _| Ok(()),
    )?;
    Ok((tables, stats))
}

#[cfg(test)]
mod tests {
    use super::expected_spans;

    #[test]
    fn the_repeat_check_is_sized_from_a_fair_share_of_the_input_only() {
        // 65,536 spans in the first 36 MB of 326 MB: about 593k in all.
        assert_eq!(expected_spans(65_536, 36 << 20, 326 << 20), 593_464);
        // Never more than 16 times what was seen, however large the rest.
        assert_eq!(expected_spans(65_536, 8 << 20, 256 << 20), 16 * 65_536);
        // Too little of the input read to guess from (a Parquet file is never counted as
        // read), or nothing: no guess.
        assert_eq!(expected_spans(65_536, 1 << 20, 64 << 20), 0);
        assert_eq!(expected_spans(65_536, 0, 1 << 30), 0);
        // Standard input: its size is not known, so no guess.
        assert_eq!(expected_spans(65_536, 40 << 20, 0), 0);
    }
}
