//! The ingest engine: raw exports into the Parquet dataset of `dataset/mod.rs`, appending to
//! it; a file already ingested (by content) is passed over. `cartscope ingest` and
//! `cartscope generate --parquet` both call `ingest`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{bounded, unbounded};
use datafusion::arrow::array::{Array, TimestampMicrosecondArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::record_batch::RecordBatch;

use crate::dataset::{self, file_hash, IngestedInput, Manifest};
use crate::read::input::{self, InputFile};
use crate::read::load;
use crate::tables::schema::{PerTable, Table};

/// Rows buffered per (table, day) before they are handed to a writer as one sorted part file.
/// One row group per part: parts go to the writers while the input is still being parsed.
const PART_ROWS: usize = crate::output::ROW_GROUP;
/// Bytes of Arrow memory buffered per (table, day) before they go to a writer, whatever the
/// row count: rows with large attribute maps make smaller parts, so a writer's memory does
/// not depend on how wide the input's rows are. 12 MiB against 16 MiB on the 1M-cart export,
/// 2 runs alternated: peak 163 MB against 195 MB, the same time (15.1 s and 15.7 s).
const PART_BYTES: usize = 12 << 20;
/// Bytes of Arrow memory all buffers together may hold. Past it the largest buffer goes to a
/// writer early (as a smaller part), so an export whose rows cover many days at once still
/// ingests in bounded memory.
const BUFFER_BUDGET: usize = 3 * PART_BYTES;
/// Batches a buffer gathers before they are merged into one. A chunk with a few span events
/// gives a batch of a few rows that still holds its builders' initial capacity, tens of times
/// the rows' size; merged, they take what their rows need. Unmerged, the span events of the
/// 1M-cart export (26k rows in 2,800 batches) held 121 MB until the end of the file.
const MERGE_AT: usize = 32;

#[derive(Default)]
struct Buffer {
    batches: Vec<RecordBatch>,
    rows: usize,
    /// Arrow memory held (`get_array_memory_size`).
    bytes: usize,
}

impl Buffer {
    fn push(&mut self, table: Table, batch: RecordBatch) -> Result<()> {
        self.rows += batch.num_rows();
        self.bytes += batch.get_array_memory_size();
        self.batches.push(batch);
        if self.batches.len() >= MERGE_AT {
            let merged = concat_batches(&table.schema(), &self.batches)?;
            self.bytes = merged.get_array_memory_size();
            self.batches = vec![merged];
        }
        Ok(())
    }

    fn full(&self) -> bool {
        self.rows >= PART_ROWS || self.bytes >= PART_BYTES
    }
}

/// One part file for a writer thread to sort, encode and write.
struct Job {
    table: Table,
    rel: String,
    batches: Vec<RecordBatch>,
}

struct State {
    buffers: BTreeMap<(Table, Option<i64>), Buffer>,
    parts: Vec<String>,
    /// Part files handed to the writers and not yet reported back.
    pending: usize,
    file_rows: PerTable<u64>,
    file_range: PerTable<Option<(i64, i64)>>,
    part_seq: usize,
    range: PerTable<Option<(i64, i64)>>,
    /// Rows of inputs that turned out to be ingested already (known only once read).
    duplicate_rows: PerTable<u64>,
    bad_before: u64,
    manifest: Manifest,
    /// The dataset's prefix in an object store, and the version its manifest is at.
    remote: Option<(String, Option<object_store::UpdateVersion>)>,
    written: Vec<(String, PerTable<u64>)>,
    already: Vec<String>,
    seen: HashSet<String>,
}

/// What an ingest wrote.
pub struct IngestReport {
    pub stats: load::LoadStats,
    /// Per input written: its path and rows per table.
    pub written: Vec<(String, PerTable<u64>)>,
    /// Inputs passed over because their content was ingested before.
    pub already: Vec<String>,
    /// Time range per table of what was written (microseconds).
    pub range: PerTable<Option<(i64, i64)>>,
}

/// A name for an input's part files that no other ingest gives: from its path, size,
/// modification time and the moment.
fn part_prefix(f: &InputFile) -> String {
    let meta = std::fs::metadata(&f.path).ok();
    let mtime = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let key = format!(
        "{}\0{}\0{mtime}\0{now}\0{}",
        f.path.display(),
        meta.map_or(0, |m| m.len()),
        std::process::id()
    );
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
}

/// Ingests `inputs` into the dataset at `out` (created or appended to).
///
/// A file's content hash decides whether it was ingested before. It is computed while the
/// file is read (no second pass over a large file), except for a file whose size equals that
/// of an ingested input or of another input: only such a file can be a copy, and it is hashed
/// first so that a copy is passed over unread. Parsing runs on the loader's workers; sorting,
/// encoding and compressing the part files on as many writer threads, each fed through a
/// bounded queue, so memory stays bounded whatever the input's size.
///
/// Into an object store, parts no input lists (an interrupted ingest's) are deleted once they
/// are `orphan_age` old (`dataset::ORPHAN_AGE` unless the user said); a local dataset is held
/// by a lock instead, so its orphans go at once.
pub fn ingest(
    inputs: &[String],
    out: &std::path::Path,
    opts: &load::LoadOptions,
    orphan_age: crate::time::Duration,
) -> Result<IngestReport> {
    let inputs = input::resolve(inputs)?;
    if let Some(d) = inputs.datasets.first() {
        bail!(
            "'{}' is already a cartscope dataset: ingest takes raw exports; read a dataset with --data",
            d.display()
        );
    }
    ingest_resolved(inputs, out, opts, orphan_age)
}

/// As `ingest`, of inputs already resolved: their raw files (and what could not be read);
/// their datasets are not read.
pub fn ingest_resolved(
    inputs: input::Inputs,
    out: &std::path::Path,
    opts: &load::LoadOptions,
    orphan_age: crate::time::Duration,
) -> Result<IngestReport> {
    load::admit_unreadable(&inputs.unreadable, opts, &mut load::LoadStats::default())?;
    // Into an object store, parts are written in a temporary folder (`staging`), uploaded,
    // and committed by putting the manifest; into a folder, in place.
    let remote = crate::read::remote::url_in(out).map(|o| format!("{}/", o.trim_end_matches('/')));
    let staging;
    // Held to the end: one ingest at a time writes a local dataset.
    let _lock;
    let (manifest, out, version, orphans) = match &remote {
        Some(url) => {
            let (manifest, mut version) = Manifest::load_or_new_remote(url)?;
            let orphans = manifest.remove_remote_orphans(url, orphan_age)?;
            if orphans.young > 0 {
                let (is, they, them) = match orphans.young {
                    1 => ("is", "it", "it"),
                    _ => ("are", "they", "them"),
                };
                eprintln!(
                    "cartscope: note: {} part file{} below '{url}' {is} listed by no input and younger than {orphan_age}: another ingest may be uploading {them}, so {they} {is} left (never read); a later ingest removes {them} once {they} {is} that old, or now with --orphan-age 0s if no other ingest runs",
                    orphans.young,
                    load::plural(orphans.young as u64),
                );
            }
            if orphans.removed > 0 && version.is_some() {
                // The same manifest put again, conditionally (its format version as it was):
                // an ingest that uploaded the parts just deleted and stalled before its commit
                // (longer than --orphan-age) then fails to commit, rather than name parts
                // that are gone.
                manifest.put_again_remote(url, &mut version)?;
            }
            let orphans = orphans.removed;
            staging = tempfile::Builder::new()
                .prefix("cartscope-upload-")
                .tempdir()
                .context("cannot create a temporary folder for the parts to upload")?;
            (manifest, staging.path(), version, orphans)
        }
        None => {
            // Refused before anything is written into a folder that is no dataset (unless
            // another ingest holds it: its first parts may come before its manifest); then
            // loaded once no other ingest writes here (it may have added inputs).
            if !out.join(dataset::INGEST_LOCK).exists() {
                Manifest::load_or_new(out)?;
            }
            std::fs::create_dir_all(out)?;
            _lock = Manifest::lock_for_ingest(out)?;
            let manifest = Manifest::load_or_new(out)?;
            let orphans = manifest.remove_orphans(out)?;
            (manifest, out, None, orphans)
        }
    };
    if orphans > 0 {
        eprintln!(
            "cartscope: removed {orphans} unfinished part file{} of an interrupted ingest",
            load::plural(orphans as u64)
        );
    }

    let size = |f: &InputFile| f.len();
    let mut sizes: HashMap<u64, usize> = HashMap::new();
    for i in &manifest.inputs {
        *sizes.entry(i.bytes).or_default() += 1;
    }
    for f in inputs.files.iter().filter(|f| !f.is_stdin()) {
        *sizes.entry(size(f)).or_default() += 1;
    }
    let mut todo: Vec<(InputFile, String)> = Vec::new();
    let mut seen = HashSet::new();
    let mut already = Vec::new();
    for f in inputs.files {
        if f.is_stdin() || sizes.get(&size(&f)).copied().unwrap_or(0) < 2 {
            // Of a size no other file has (or standard input, read once): not known to be a
            // copy before it is read. Hashed while it is read.
            let prefix = part_prefix(&f);
            todo.push((f, prefix));
            continue;
        }
        let h = file_hash(&f.path)?;
        if manifest.contains(&h).is_some() || !seen.insert(h.clone()) {
            already.push(f.path.display().to_string());
        } else {
            todo.push((f, h[..16].to_string()));
        }
    }
    let files: Vec<InputFile> = todo.iter().map(|(f, _)| f.clone()).collect();
    let state = RefCell::new(State {
        buffers: BTreeMap::new(),
        parts: Vec::new(),
        pending: 0,
        file_rows: PerTable::default(),
        file_range: PerTable::default(),
        part_seq: 0,
        range: PerTable::default(),
        duplicate_rows: PerTable::default(),
        bad_before: 0,
        manifest,
        remote: remote.map(|url| (url, version)),
        written: Vec::new(),
        already,
        seen,
    });
    let opts = load::LoadOptions {
        hash_inputs: true,
        ..opts.clone()
    };
    let writers = opts.threads.max(1);

    let stats = std::thread::scope(|scope| -> Result<load::LoadStats> {
        // A rendezvous: a part is handed over only when a writer is free to take it, so at
        // most `writers` parts are held beyond the buffers being filled.
        let (job_tx, job_rx) = bounded::<Job>(0);
        let (done_tx, done_rx) = unbounded::<Result<()>>();
        for _ in 0..writers {
            let job_rx = job_rx.clone();
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                for job in job_rx.iter() {
                    let r = dataset::write_part(out, job.table, &job.rel, &job.batches);
                    if done_tx.send(r).is_err() {
                        return;
                    }
                }
            });
        }
        drop(job_rx);
        drop(done_tx);

        // Takes the writers' reports: all of them (`wait`) or those already in.
        let collect = |st: &mut State, wait: bool| -> Result<()> {
            while st.pending > 0 {
                let r = if wait {
                    done_rx
                        .recv()
                        .map_err(|_| anyhow!("the part writers stopped"))?
                } else {
                    match done_rx.try_recv() {
                        Ok(r) => r,
                        Err(_) => return Ok(()),
                    }
                };
                st.pending -= 1;
                r?;
            }
            Ok(())
        };
        let flush =
            |st: &mut State, file: usize, only: Option<(Table, Option<i64>)>| -> Result<()> {
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
                    let name = format!("part-{}-{:04}.parquet", todo[file].1, st.part_seq);
                    st.part_seq += 1;
                    let rel = dataset::part_path(key.0, key.1, &name);
                    st.parts.push(rel.clone());
                    collect(st, false)?;
                    job_tx
                        .send(Job {
                            table: key.0,
                            rel,
                            batches: buf.batches,
                        })
                        .map_err(|_| anyhow!("the part writers stopped"))?;
                    st.pending += 1;
                }
                Ok(())
            };

        let stats = load::load(
            &files,
            &opts,
            &mut |file, table, batch| {
                let mut st = state.borrow_mut();
                st.file_rows[table] += batch.num_rows() as u64;
                widen_range(&mut st.file_range[table], table, &batch);
                for (day, part) in dataset::split_by_day(table, &batch)? {
                    let buf = st.buffers.entry((table, day)).or_default();
                    buf.push(table, part)?;
                    if buf.full() {
                        flush(&mut st, file, Some((table, day)))?;
                    }
                }
                while st.buffers.values().map(|b| b.bytes).sum::<usize>() > BUFFER_BUDGET {
                    let Some(largest) = st
                        .buffers
                        .iter()
                        .max_by_key(|(_, b)| b.bytes)
                        .map(|(k, _)| *k)
                    else {
                        break;
                    };
                    flush(&mut st, file, Some(largest))?;
                }
                Ok(())
            },
            &mut |file, stats, hash| {
                let mut st = state.borrow_mut();
                flush(&mut st, file, None)?;
                collect(&mut st, true)?;
                let (f, prefix) = &todo[file];
                let hash = match hash {
                    Some(h) => h.to_string(),
                    None => file_hash(&f.path)?,
                };
                let bad = stats.bad_total - st.bad_before;
                st.bad_before = stats.bad_total;
                let parts = std::mem::take(&mut st.parts);
                let file_rows = std::mem::take(&mut st.file_rows);
                let file_range = std::mem::take(&mut st.file_range);
                st.part_seq = 0;
                // A file passed over as no telemetry (found in a folder: not OTLP, empty) is
                // not recorded as ingested: named later, it is read then.
                if stats.skipped_files.iter().any(|(p, _)| p == &f.path) {
                    return Ok(());
                }
                let copy = st.manifest.contains(&hash).is_some() || !st.seen.insert(hash.clone());
                if copy && !prefix.starts_with(&hash[..16]) {
                    // Hashed while read and found to be a copy after all (another file of its
                    // size was ingested under a different hash first): its parts go.
                    for p in &parts {
                        let _ = std::fs::remove_file(dataset::pending(&out.join(p)));
                    }
                    for (t, n) in file_rows {
                        st.duplicate_rows[t] += n;
                    }
                    st.already.push(f.path.display().to_string());
                    return Ok(());
                }
                for (t, r) in file_range {
                    if let Some((lo, hi)) = r {
                        let total = &mut st.range[t];
                        *total = Some(match *total {
                            None => (lo, hi),
                            Some((a, b)) => (a.min(lo), b.max(hi)),
                        });
                    }
                }
                let rows: BTreeMap<String, u64> = Table::ALL
                    .iter()
                    .map(|&t| (t.name().to_string(), file_rows[t]))
                    .collect();
                st.manifest.inputs.push(IngestedInput {
                    source: f.path.display().to_string(),
                    hash,
                    bytes: f.len(),
                    rows,
                    bad_records: bad,
                    parts: parts.clone(),
                });
                // Committed file by file: an interrupted ingest keeps what it finished. The
                // parts get their .parquet names only once the manifest lists them; in an
                // object store they are uploaded under them, and read only once the manifest
                // (put after them) lists them.
                let st = &mut *st;
                match &mut st.remote {
                    None => {
                        st.manifest.save(out)?;
                        dataset::commit_parts(out, &parts)?;
                    }
                    Some((url, version)) => {
                        dataset::upload_parts(out, url, &parts)?;
                        st.manifest.save_remote(url, version)?;
                    }
                }
                st.written.push((f.path.display().to_string(), file_rows));
                Ok(())
            },
        );
        drop(job_tx);
        stats
    })?;
    let st = state.into_inner();
    let mut stats = stats;
    for (t, d) in st.duplicate_rows {
        stats.rows[t] -= d;
    }
    load::admit_unreadable(&inputs.unreadable, &opts, &mut stats)?;
    Ok(IngestReport {
        stats,
        written: st.written,
        already: st.already,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::builders::TableBuilders;

    /// Small batches (a few span events per chunk) are merged, so a buffer holds what its
    /// rows need rather than a builder's initial capacity per batch.
    #[test]
    fn small_batches_are_merged_into_one() {
        let table = Table::SpanEvents;
        let one_row = {
            let mut b = TableBuilders::default();
            crate::read::otlp::json::parse_document(
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","startTimeUnixNano":"1","events":[{"timeUnixNano":"2","name":"e"}]}]}]}]}"#,
                &mut b,
                &mut Default::default(),
            )
            .unwrap();
            b.take()[table].pop().unwrap()
        };
        let mut buf = Buffer::default();
        let n = MERGE_AT * 3 + 5;
        for _ in 0..n {
            buf.push(table, one_row.clone()).unwrap();
        }
        assert_eq!(buf.rows, n);
        assert_eq!(buf.batches.iter().map(|b| b.num_rows()).sum::<usize>(), n);
        assert!(buf.batches.len() < MERGE_AT);
        // Merged, the rows take less than the unmerged batches did.
        assert!(buf.bytes < n * one_row.get_array_memory_size() / 4);
        assert_eq!(
            buf.bytes,
            buf.batches
                .iter()
                .map(|b| b.get_array_memory_size())
                .sum::<usize>()
        );
    }
}
