//! The Parquet dataset `cartscope ingest` writes and every command can read in place:
//! a folder per table, partitioned by day (`traces/dt=2026-11-21/part-....parquet`), zstd,
//! rows sorted by time within each file so Parquet statistics prune, microsecond UTC
//! timestamps and no unsigned integers so DuckDB, Spark and Trino read it as it is.
//!
//! `_cartscope.json` (the manifest) lists every ingested input by content hash and the part
//! files it produced. It is the commit point: parts are written as `part-....parquet.pending`
//! (a name no `*.parquet` glob matches, so DuckDB, Spark or Trino reading the folder never
//! see an unfinished input), the manifest listing them is replaced atomically, and only then
//! are they renamed to `.parquet`. A crash leaves at worst pending parts: those no input
//! lists are deleted by the next ingest; those the manifest already lists are read as they
//! are and renamed into place by the next ingest. In an object store the parts are uploaded
//! under their names and the manifest's conditional put commits them; parts no input lists
//! are deleted by a later ingest once they are `ORPHAN_AGE` old (a younger one may be a
//! concurrent ingest's, not yet committed: a store has no lock to wait on).

pub mod ingest;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::array::{Array, TimestampMicrosecondArray};
use datafusion::arrow::compute::{interleave_record_batch, take_record_batch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use object_store::UpdateVersion;
use serde::{Deserialize, Serialize};

use crate::output::ROW_GROUP;
use crate::read::input::MANIFEST;
use crate::tables::schema::Table;

pub const FORMAT: &str = "cartscope-dataset";
/// 2: the parts of `traces` and `metrics` have no `derived` column (the replay keeps its rows
/// in tables of its own). Version 1 datasets read as they are (the extra column is ignored);
/// one appended to becomes version 2, so an older cartscope asks to be upgraded rather than
/// read parts it does not expect.
pub const VERSION: u32 = 2;
/// How old a part no input lists must be before an ingest into an object store deletes it
/// (`remove_remote_orphans`): longer than any one input's upload and commit takes.
pub const ORPHAN_AGE: crate::time::Duration = crate::time::Duration::from_mins(24 * 60);
/// The file in a dataset folder that an ingest holds locked while it writes there
/// (`Manifest::lock_for_ingest`); hidden, so no reader takes it for data.
pub const INGEST_LOCK: &str = ".cartscope-ingest.lock";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub inputs: Vec<IngestedInput>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IngestedInput {
    /// The path as it was given.
    pub source: String,
    /// xxh3-128 of the file's bytes: the same file under another name is not ingested twice.
    pub hash: String,
    pub bytes: u64,
    pub rows: BTreeMap<String, u64>,
    pub bad_records: u64,
    /// Part files, relative to the dataset folder.
    pub parts: Vec<String>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            inputs: Vec::new(),
        }
    }
}

impl Manifest {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST)
    }

    /// The manifest of the dataset `dir`: a folder, or a prefix in an object store (its URL).
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = Self::path(dir);
        let text = match crate::read::remote::url_in(&path) {
            Some(url) => {
                let got = crate::read::remote::fetch(url)?
                    .with_context(|| format!("the dataset manifest '{url}' is gone"))?;
                String::from_utf8(got.bytes.to_vec())
                    .with_context(|| format!("'{url}' is not a cartscope dataset manifest"))?
            }
            None => std::fs::read_to_string(&path).with_context(|| {
                format!("cannot read the dataset manifest '{}'", path.display())
            })?,
        };
        Self::parse(&path, &text)
    }

    /// A manifest's text, read from `path` (named in errors).
    fn parse(path: &Path, text: &str) -> Result<Manifest> {
        let m: Manifest = serde_json::from_str(text).with_context(|| {
            format!(
                "'{}' is not a cartscope dataset manifest; was it edited by hand?",
                path.display()
            )
        })?;
        if m.format != FORMAT || m.version > VERSION {
            bail!(
                "'{}' is a dataset of format {} version {}; this cartscope reads {FORMAT} up to version {VERSION}: upgrade cartscope",
                path.display(),
                m.format,
                m.version
            );
        }
        Ok(m)
    }

    /// The manifest of `dir`, or a new one when `dir` is not a dataset yet. A non-empty
    /// folder that is not a dataset is refused, so ingest never writes into unrelated files.
    pub fn load_or_new(dir: &Path) -> Result<Manifest> {
        if Self::path(dir).exists() {
            return Self::load(dir);
        }
        if dir.exists() {
            let mut entries = std::fs::read_dir(dir)
                .with_context(|| format!("cannot read '{}'", dir.display()))?
                .filter(|e| e.as_ref().map_or(true, |e| e.file_name() != INGEST_LOCK));
            if entries.next().is_some() {
                bail!(
                    "--out '{}' is a folder that is not a cartscope dataset (no {MANIFEST}): give an empty or new folder",
                    dir.display()
                );
            }
        }
        Ok(Manifest::default())
    }

    /// Writes the manifest atomically, as this cartscope's version: parts written now lack
    /// what older versions expect.
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        self.version = VERSION;
        let text = serde_json::to_string_pretty(self)?;
        crate::output::write_atomically(&Self::path(dir), |w| {
            w.write_all(text.as_bytes())?;
            w.write_all(b"\n")?;
            Ok(())
        })
    }

    /// The manifest of the dataset at the object store prefix `url` (ending in `/`) and the
    /// version it was read at, or a new one (no version) when the prefix holds no dataset
    /// yet. A prefix holding other objects is refused, as a folder is.
    pub fn load_or_new_remote(url: &str) -> Result<(Manifest, Option<UpdateVersion>)> {
        if let Some((manifest, version)) = Self::fetch_remote(url)? {
            return Ok((manifest, Some(version)));
        }
        if let Some(other) = crate::read::remote::sizes(url)?.into_keys().min() {
            bail!("--out '{url}' holds objects that are not a cartscope dataset (no {MANIFEST}; '{other}' for one): give an empty or new prefix");
        }
        Ok((Manifest::default(), None))
    }

    /// The manifest of the dataset at the prefix `url` and the version it was read at, if
    /// there is one.
    fn fetch_remote(url: &str) -> Result<Option<(Manifest, UpdateVersion)>> {
        let path = format!("{url}{MANIFEST}");
        let Some(got) = crate::read::remote::fetch(&path)? else {
            return Ok(None);
        };
        let text = String::from_utf8(got.bytes.to_vec())
            .with_context(|| format!("'{path}' is not a cartscope dataset manifest"))?;
        Ok(Some((Self::parse(Path::new(&path), &text)?, got.version)))
    }

    /// Puts the manifest at the prefix `url`, only if it is still at `version` (the commit of
    /// an ingest into an object store: one atomic put). Another ingest's commit in between
    /// is an error rather than lost; `version` becomes the one written.
    pub fn save_remote(&mut self, url: &str, version: &mut Option<UpdateVersion>) -> Result<()> {
        self.version = VERSION;
        self.put_again_remote(url, version)
    }

    /// As `save_remote`, but this manifest as it is (its format version not raised: nothing
    /// was appended).
    pub fn put_again_remote(&self, url: &str, version: &mut Option<UpdateVersion>) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        let path = format!("{url}{MANIFEST}");
        match crate::read::remote::put_if(&path, text.into_bytes(), version.take()) {
            Ok(v) => {
                *version = Some(v);
                Ok(())
            }
            Err(e) if e.is::<crate::read::remote::Changed>() => bail!(
                "another ingest wrote to the dataset '{url}' meanwhile (its {MANIFEST} changed): this ingest's remaining inputs are not committed; run it again (inputs already ingested are passed over)"
            ),
            Err(e) => Err(e),
        }
    }

    /// As `remove_orphans`, in an object store: deletes the part objects below the prefix
    /// `url` that no input lists (uploaded by an ingest that was cut short before its commit)
    /// and that the store says were written at least `older_than` ago, by this machine's
    /// clock (`0s`: all of them, whatever the clocks say). A younger one may be another
    /// ingest's, uploaded and not yet committed (an object store has no lock to wait on, and
    /// this manifest may predate that ingest's commit): it is left, and counted in `.young`.
    /// The parts of the manifest as it is after the listing count as listed too (another
    /// ingest may have committed since this one was read), which leaves only the moment
    /// between that read and the deletes. A part the store will not delete (no permission,
    /// or any other error) is left with a note: it is never read.
    pub fn remove_remote_orphans(
        &self,
        url: &str,
        older_than: crate::time::Duration,
    ) -> Result<Orphans> {
        let age = chrono::Duration::from_std(std::time::Duration::from_nanos(older_than.ns()))
            .unwrap_or(chrono::Duration::MAX);
        let cutoff = chrono::Utc::now().checked_sub_signed(age);
        let old = |modified: chrono::DateTime<chrono::Utc>| {
            older_than.ns() == 0 || cutoff.is_some_and(|c| modified <= c)
        };
        let objects = crate::read::remote::listing(url)?;
        let now = Self::fetch_remote(url)?.map(|(m, _)| m.inputs);
        let listed: std::collections::HashSet<&str> = (self.inputs.iter())
            .chain(now.iter().flatten())
            .flat_map(|i| i.parts.iter().map(String::as_str))
            .collect();
        let mut orphans = Orphans::default();
        for (object, meta) in objects {
            let Some(rel) = object.strip_prefix(url) else {
                continue;
            };
            let in_table = Table::ALL
                .iter()
                .any(|t| rel.starts_with(&format!("{}/", t.name())));
            let is_part = rel
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with("part-"));
            if !in_table || !is_part || listed.contains(rel) {
                continue;
            }
            if !old(meta.last_modified) {
                orphans.young += 1;
                continue;
            }
            match crate::read::remote::delete(&object) {
                Ok(()) => orphans.removed += 1,
                Err(e) => eprintln!("cartscope: note: {e:#}: the part is left (it is not read)"),
            }
        }
        Ok(orphans)
    }

    pub fn contains(&self, hash: &str) -> Option<&IngestedInput> {
        self.inputs.iter().find(|i| i.hash == hash)
    }

    /// The part files of `table`, as full paths (a listed part whose rename was cut short
    /// by a crash is read under its pending name).
    pub fn parts(&self, dir: &Path, table: Table) -> Vec<PathBuf> {
        let prefix = format!("{}/", table.name());
        self.inputs
            .iter()
            .flat_map(|i| i.parts.iter())
            .filter(|p| p.starts_with(&prefix))
            .map(|p| {
                let p = dir.join(p);
                let pending = pending(&p);
                if !p.exists() && pending.exists() {
                    pending
                } else {
                    p
                }
            })
            .collect()
    }

    /// Holds the dataset folder `dir` for one ingest at a time, until the file returned is
    /// dropped (or the process ends, whatever ends it): two ingests into one folder (a cron
    /// job that overlaps the next) would each save the manifest they loaded, losing the
    /// other's inputs, and each take the other's unfinished parts for a crash's and remove
    /// them. The second waits, and says so. Where the lock file cannot be made or opened
    /// (a folder this user may only read, a lock file another user made: opened to read,
    /// which locks as well) or the file system cannot lock, the ingest goes on with a note.
    pub fn lock_for_ingest(dir: &Path) -> Result<Option<std::fs::File>> {
        let path = dir.join(INGEST_LOCK);
        let opened = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .or_else(|_| std::fs::File::open(&path));
        let unlocked = |why: &dyn std::fmt::Display| {
            eprintln!(
                "cartscope: note: cannot lock '{}' ({why}): make sure no other ingest writes to '{}' at the same time",
                path.display(),
                dir.display()
            );
        };
        let f = match opened {
            Ok(f) => f,
            Err(e) => {
                unlocked(&e);
                return Ok(None);
            }
        };
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => {
                eprintln!(
                    "cartscope: note: another ingest is writing to '{}': waiting for it to finish",
                    dir.display()
                );
                f.lock()
                    .with_context(|| format!("cannot lock '{}'", path.display()))?;
                Ok(Some(f))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                unlocked(&e);
                Ok(None)
            }
        }
    }

    /// Finishes what an interrupted ingest left: renames the pending parts the manifest
    /// lists into place, and deletes the part files no input lists.
    pub fn remove_orphans(&self, dir: &Path) -> Result<usize> {
        let listed: std::collections::HashSet<PathBuf> = self
            .inputs
            .iter()
            .flat_map(|i| i.parts.iter().map(|p| dir.join(p)))
            .collect();
        let mut removed = 0;
        for t in Table::ALL {
            let tdir = dir.join(t.name());
            if !tdir.is_dir() {
                continue;
            }
            for e in walkdir::WalkDir::new(&tdir) {
                let e = e?;
                let p = e.path();
                let is_part = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("part-") || n.starts_with(".part-"));
                if e.file_type().is_file() && is_part {
                    if let Some(done) = p.to_str().and_then(|s| s.strip_suffix(PENDING)) {
                        let done = PathBuf::from(done);
                        if listed.contains(&done) {
                            if !done.exists() {
                                std::fs::rename(p, &done).with_context(|| {
                                    format!("cannot rename '{}' into place", p.display())
                                })?;
                            } else {
                                std::fs::remove_file(p)?;
                            }
                            continue;
                        }
                    }
                }
                if e.file_type().is_file() && is_part && !listed.contains(p) {
                    std::fs::remove_file(p).with_context(|| {
                        format!("cannot remove the unfinished file '{}'", p.display())
                    })?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// xxh3-128 of a file's bytes, as hex: the hash `input::finish_hash` completes while a file
/// is read, here over the whole file.
pub fn file_hash(path: &Path) -> Result<String> {
    crate::read::input::finish_hash(path, &crate::read::input::FileHasher::default())
}

/// The `dt=` partition of each row: the UTC day of the table's time column.
fn day_of(micros: Option<i64>) -> Option<i64> {
    micros.map(|m| m.div_euclid(86_400_000_000))
}

pub fn day_label(day: Option<i64>) -> String {
    match day.and_then(|d| chrono::DateTime::from_timestamp(d * 86_400, 0)) {
        Some(t) => t.format("%Y-%m-%d").to_string(),
        None => "unknown".into(),
    }
}

fn time_array(table: Table, b: &RecordBatch) -> Result<TimestampMicrosecondArray> {
    let col = b
        .column_by_name(table.time_column())
        .with_context(|| format!("{} has no {}", table.name(), table.time_column()))?;
    match col.data_type() {
        DataType::Timestamp(_, _) => Ok(col
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .context("time column is not microseconds")?
            .clone()),
        other => bail!("time column of {} is {other}", table.name()),
    }
}

/// Splits a batch by day.
pub fn split_by_day(table: Table, b: &RecordBatch) -> Result<Vec<(Option<i64>, RecordBatch)>> {
    let t = time_array(table, b)?;
    let day = |i: usize| day_of(t.is_valid(i).then(|| t.value(i)));
    if b.num_rows() == 0 {
        return Ok(vec![]);
    }
    let first = day(0);
    if (1..b.num_rows()).all(|i| day(i) == first) {
        return Ok(vec![(first, b.clone())]);
    }
    let mut groups: BTreeMap<Option<i64>, Vec<u32>> = BTreeMap::new();
    for i in 0..b.num_rows() {
        groups.entry(day(i)).or_default().push(i as u32);
    }
    groups
        .into_iter()
        .map(|(d, idx)| Ok((d, take_record_batch(b, &UInt32Array::from(idx))?)))
        .collect()
}

/// The order of `batches`' rows by the table's time column, nulls last, ties in input order:
/// (batch, row) pairs for `interleave_record_batch`. `None` when the rows are in that order
/// already, as in an export written as spans ended, so they can be written without a copy.
fn time_order(table: Table, batches: &[RecordBatch]) -> Result<Option<Vec<(usize, usize)>>> {
    // (time, null << 63 | batch << 32 | row): unique keys, so an unstable sort gives the
    // stable order. Cheaper than a stable sort by (time, null): the 10k-cart traces.jsonl
    // ingests in 2.378 billion instructions against 2.388 (callgrind), to the same bytes.
    let mut keys: Vec<(i64, u64)> = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
    for (bi, b) in batches.iter().enumerate() {
        let t = time_array(table, b)?;
        for i in 0..b.num_rows() {
            // Nulls sort after every time.
            let (k, null) = if t.is_valid(i) {
                (t.value(i), 0)
            } else {
                (i64::MAX, 1)
            };
            keys.push((k, null << 63 | (bi as u64) << 32 | i as u64));
        }
    }
    if keys.is_sorted() {
        return Ok(None);
    }
    keys.sort_unstable();
    Ok(Some(
        keys.into_iter()
            .map(|(_, t)| ((t >> 32 & 0x7fff_ffff) as usize, (t & 0xffff_ffff) as usize))
            .collect(),
    ))
}

/// Rows gathered into time order at a time while a part is written.
const SORT_SLICE: usize = 8 * 1024;

/// Trace and span ids: random hex.
const ID_COLUMNS: [&str; 5] = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "linked_trace_id",
    "linked_span_id",
];

/// Columns whose values are (nearly) all distinct: the ids above, and these times and
/// measurements. Dictionary encoding them costs a hash-table insertion per value and then
/// falls back to plain encoding anyway, so they are written plain, as are span attribute
/// values (see `part_properties`); every other column (names, services, statuses, attribute
/// keys, resource and metric attribute values) keeps Parquet's dictionary encoding.
const DISTINCT_COLUMNS: [&str; 11] = [
    "start_time",
    "end_time",
    "duration_ms",
    "timestamp",
    "start_timestamp",
    "point_timestamp",
    "span_start_time",
    "value",
    "sum",
    "min",
    "max",
];

/// The Parquet path of an attribute map's `keys` or `values` (see `schema::attributes_type`).
fn map_leaf(map: &str, leaf: &str) -> ColumnPath {
    ColumnPath::from(vec![map.to_string(), "entries".into(), leaf.into()])
}

/// The writer settings of the dataset's part files of `table`.
pub fn part_properties(table: Table) -> WriterProperties {
    // zstd level 1 rather than 3: measured on a 100k-cart export, the same size (30.3 MB
    // either way) for less CPU.
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(ROW_GROUP));
    for c in ID_COLUMNS.into_iter().chain(DISTINCT_COLUMNS) {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    if matches!(table, Table::Traces | Table::SpanEvents | Table::SpanLinks) {
        // Span attribute values are mostly ids (cart, session, order, user): plain. On the
        // 1M-cart export, 2 runs alternated: 15.2 s against 15.7 s, and 297 MB of Parquet
        // against 302 MB. Metric attributes (routes, status codes) keep their dictionary,
        // and so do the resource's, repeated on every span.
        b = b.set_column_dictionary_enabled(map_leaf("attributes", "values"), false);
    }
    // No min/max statistics for the ids either: they are random, so a part's or a page's
    // range spans nearly every id and prunes nothing. The 10k-cart traces.jsonl: 2.313
    // billion instructions against 2.325 (callgrind), and 2.5 KB less Parquet.
    for c in ID_COLUMNS {
        b = b.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
    }
    // No min/max statistics (chunk or page) for the attribute maps' keys and values: no
    // query can prune with them (DataFusion does not push predicates into map entries), and
    // computing them was 5.6% of ingest's instructions (callgrind, 10k-cart traces.jsonl:
    // 2.41 against 2.56 billion), for files of the same size.
    for map in ["attributes", "resource_attributes", "scope_attributes"] {
        for leaf in ["keys", "values"] {
            b = b.set_column_statistics_enabled(map_leaf(map, leaf), EnabledStatistics::None);
        }
    }
    b.build()
}

/// Writes `batches` (one table, one day) sorted by time as the part file `rel` (relative to
/// `dir`). The rows are put in order a slice at a time, so writing needs little more memory
/// than the batches themselves. The file appears under its final name only once
/// complete.
/// What a part file's name ends with until the manifest lists it.
pub const PENDING: &str = ".pending";

/// The name a part is written under until it is committed.
pub fn pending(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(PENDING);
    PathBuf::from(s)
}

/// Renames the parts `rels` (relative to `dir`) from their pending names into place, once
/// the manifest lists them.
pub fn commit_parts(dir: &Path, rels: &[String]) -> Result<()> {
    for rel in rels {
        let done = dir.join(rel);
        std::fs::rename(pending(&done), &done)
            .with_context(|| format!("cannot rename '{}' into place", done.display()))?;
    }
    Ok(())
}

/// Uploads the parts `rels`, written under their pending names in the staging folder
/// `dir`, to the dataset at the object store prefix `url` under their final names, deleting
/// each staged file once it is up. Readers see them only once the manifest lists them.
pub fn upload_parts(dir: &Path, url: &str, rels: &[String]) -> Result<()> {
    for rel in rels {
        let staged = pending(&dir.join(rel));
        crate::read::remote::upload(&staged, &format!("{url}{rel}"))?;
        let _ = std::fs::remove_file(&staged);
    }
    Ok(())
}

/// Writes a part under its pending name (see `commit_parts`).
pub fn write_part(dir: &Path, table: Table, rel: &str, batches: &[RecordBatch]) -> Result<()> {
    let path = pending(&dir.join(rel));
    let schema = table.schema();
    let order = time_order(table, batches)?;
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    crate::output::write_atomically(&path, |w| {
        let mut writer =
            ArrowWriter::try_new(w, Arc::clone(&schema), Some(part_properties(table)))?;
        match &order {
            // Sorted rows are gathered a slice at a time: the writer encodes them into the
            // open row group as they come, so the sorted copy never exists whole.
            Some(order) => {
                for rows in order.chunks(SORT_SLICE) {
                    writer.write(&interleave_record_batch(&refs, rows)?)?;
                }
            }
            None => {
                for b in batches {
                    writer.write(b)?;
                }
            }
        }
        writer.close()?;
        Ok(())
    })
    .with_context(|| format!("cannot write '{}'", path.display()))?;
    Ok(())
}

/// Where the part `name` of `table` and `day` goes, relative to the dataset folder.
pub fn part_path(table: Table, day: Option<i64>, name: &str) -> String {
    format!("{}/dt={}/{name}", table.name(), day_label(day))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::ArrayRef;

    #[test]
    fn day_labels() {
        assert_eq!(day_label(day_of(Some(0))), "1970-01-01");
        assert_eq!(day_label(day_of(Some(1_763_769_600_000_000))), "2025-11-22");
        assert_eq!(day_label(day_of(Some(-1))), "1969-12-31");
        assert_eq!(day_label(None), "unknown");
    }

    fn times(v: &[Option<i64>]) -> RecordBatch {
        let a = TimestampMicrosecondArray::from(v.to_vec()).with_timezone("UTC");
        RecordBatch::try_from_iter([(Table::Traces.time_column(), Arc::new(a) as ArrayRef)])
            .unwrap()
    }

    #[test]
    fn rows_go_in_time_order_with_ties_in_input_order_and_nulls_last() {
        let batches = [
            times(&[Some(5), None, Some(1)]),
            times(&[Some(5), Some(1), None]),
        ];
        let order = time_order(Table::Traces, &batches).unwrap();
        assert_eq!(
            order,
            Some(vec![(0, 2), (1, 1), (0, 0), (1, 0), (0, 1), (1, 2)])
        );
    }

    #[test]
    fn rows_already_in_order_are_not_gathered() {
        let batches = [
            times(&[Some(1), Some(1), Some(2)]),
            times(&[Some(2), Some(3), None]),
        ];
        assert_eq!(time_order(Table::Traces, &batches).unwrap(), None);
        let batches = [times(&[Some(1), None]), times(&[Some(2)])];
        assert!(time_order(Table::Traces, &batches).unwrap().is_some());
    }
}

/// What `Manifest::remove_remote_orphans` did: the unlisted parts it deleted, and those it
/// left because they were too recent to be told from another ingest's uncommitted ones.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Orphans {
    pub removed: usize,
    pub young: usize,
}
