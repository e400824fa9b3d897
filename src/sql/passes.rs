//! Work too large for the memory cap, split so that each piece fits: `Passes` cuts a key's
//! values into ranges of about equal rows, and `Scratch` holds the tables written between
//! the steps, as Parquet in a temporary folder, by pass. Joins and sorts run one range at a
//! time (a Grace hash join written in SQL), so that a hash table or an in-memory sort holds
//! one range's rows, never all of them. The replay's fold, the report's sampling weights and
//! weighted tables, and its driver analysis use them.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::prelude::SessionContext;

/// `s` as an SQL string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Ranges of a text key that split its rows into passes of about equal size: `bounds[i]`
/// ends pass `i` and starts pass `i + 1`. One pass, no bounds, when everything fits. Which
/// row goes to which pass changes how much memory a pass takes, never the result.
#[derive(Clone)]
pub struct Passes {
    bounds: Vec<String>,
}

impl Passes {
    /// Passes for `rows` rows of `bytes_per_row` in a hash table each, so that one pass
    /// takes at most a quarter of the memory cap (times `more`), split at the values of the
    /// key that `sql` (one text column) gives: every n-th of them, sorted.
    pub async fn split(
        ctx: &SessionContext,
        sql: &str,
        rows: u64,
        bytes_per_row: usize,
        more: usize,
    ) -> Result<Self> {
        Self::split_in(ctx, sql, rows, Self::needed(rows, bytes_per_row, more)).await
    }

    /// How many passes `rows` rows of `bytes_per_row` need so that one pass takes at most a
    /// quarter of the memory cap, times `more`; at least `CARTSCOPE_MIN_PASSES` (the tests'
    /// way to run many passes on little data).
    pub fn needed(rows: u64, bytes_per_row: usize, more: usize) -> usize {
        let budget = Self::budget() as u64;
        let least = std::env::var("CARTSCOPE_MIN_PASSES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        (rows.saturating_mul(bytes_per_row as u64).div_ceil(budget) as usize).max(least) * more
    }

    /// The memory one pass may take: a quarter of the cap.
    pub fn budget() -> usize {
        (crate::sql::session::memory_limit() / 4).max(1)
    }

    /// `n` passes split at the values of the key that `sql` gives (about `rows` of them):
    /// every k-th of them, sorted, about 64 per pass.
    pub async fn split_in(ctx: &SessionContext, sql: &str, rows: u64, n: usize) -> Result<Self> {
        if n <= 1 {
            return Ok(Self { bounds: Vec::new() });
        }
        let step = (rows / (n as u64 * 64)).max(1);
        let mut seen = 0u64;
        let mut sample: Vec<String> = Vec::new();
        let mut stream = ctx.sql(sql).await?.execute_stream().await?;
        while let Some(b) = futures::StreamExt::next(&mut stream).await {
            let b = b?;
            let keys = datafusion::arrow::compute::cast(
                b.column(0),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )?;
            let keys = keys.as_string::<i32>();
            // Only the sampled keys are copied.
            let first = (step - seen % step) % step;
            sample.extend(
                (first as usize..keys.len())
                    .step_by(step as usize)
                    .filter(|&i| keys.is_valid(i))
                    .map(|i| keys.value(i).to_string()),
            );
            seen += keys.len() as u64;
        }
        sample.sort_unstable();
        let mut bounds: Vec<String> = (1..n)
            .filter_map(|i| sample.get(i * sample.len() / n).cloned())
            .collect();
        bounds.dedup();
        Ok(Self { bounds })
    }

    /// Passes split at these bounds, for tests.
    #[cfg(test)]
    pub fn from_bounds(bounds: Vec<String>) -> Self {
        Self { bounds }
    }

    pub fn len(&self) -> usize {
        self.bounds.len() + 1
    }

    /// `expr` within pass `i`, as SQL.
    pub fn range(&self, i: usize, expr: &str) -> String {
        let lo = i
            .checked_sub(1)
            .map(|j| format!("{expr} >= {}", lit(&self.bounds[j])));
        let hi = self.bounds.get(i).map(|b| format!("{expr} < {}", lit(b)));
        match (lo, hi) {
            (Some(lo), Some(hi)) => format!("{lo} AND {hi}"),
            (Some(c), None) | (None, Some(c)) => c,
            (None, None) => "true".to_string(),
        }
    }

    /// The pass of a key's value, as `of` says it in SQL.
    pub fn pass(&self, key: Option<&str>) -> usize {
        crate::sql::udf::pass_among(&self.bounds, key)
    }

    /// The pass of `expr`, as SQL (`pass_of`, a binary search of the bounds).
    pub fn of(&self, expr: &str) -> String {
        if self.bounds.is_empty() {
            return "0".to_string();
        }
        let bounds: Vec<String> = self.bounds.iter().map(|b| lit(b)).collect();
        format!("pass_of({expr}, {})", bounds.join(", "))
    }
}

/// The fewest rows of a row group, and of the rows a writer gathers per pass before it
/// writes them (`Scratch::by_pass`).
const LEAST_GROUP_ROWS: usize = 1024;
const LEAST_HELD_ROWS: usize = 1024;

/// Tables written for the queries after them: Parquet in a temporary folder (by pass, where
/// a table has passes), registered in the session until dropped.
pub struct Scratch<'a> {
    ctx: &'a SessionContext,
    dir: tempfile::TempDir,
    names: Vec<&'static str>,
    files: usize,
    /// About how many bytes a row of its tables takes in a writer's row group.
    row_bytes: usize,
    /// Each table's columns (for a table that no row was written to), and whether it is
    /// written in folders by pass.
    tables: BTreeMap<&'static str, (datafusion::arrow::datatypes::SchemaRef, bool)>,
}

impl<'a> Scratch<'a> {
    /// A folder for `what` (`report`, `replay`: its name's prefix and the error's words),
    /// whose tables' rows take about `row_bytes` each.
    pub fn new(ctx: &'a SessionContext, what: &str, row_bytes: usize) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cartscope-{what}-"))
            .tempdir()
            .map_err(|e| anyhow::anyhow!("cannot create a temporary folder for the {what} ({e}): set TMPDIR to a folder that can be written"))?;
        Ok(Self {
            ctx,
            dir,
            names: Vec::new(),
            files: 0,
            row_bytes,
            tables: BTreeMap::new(),
        })
    }

    fn folder(&self, name: &str) -> String {
        format!("{}/{name}/", self.dir.path().display())
    }

    /// Adds the rows of `sql` to the table `name`; in folders by their `pass` column when
    /// `passes` says how many there are (`write_by_pass`). What is held while writing takes
    /// at most a quarter of the memory cap (rows of `row_bytes`).
    pub async fn write(
        &mut self,
        name: &'static str,
        sql: &str,
        passes: Option<usize>,
    ) -> Result<()> {
        self.files += 1;
        let df = self.ctx.sql(sql).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        self.tables.insert(name, (schema, passes.is_some()));
        let budget = crate::sql::session::memory_limit() / 4;
        let Some(n) = passes else {
            let mut options = datafusion::config::TableParquetOptions::default();
            options.global.allow_single_file_parallelism = false;
            options.global.compression = Some("lz4_raw".into());
            options.global.dictionary_enabled = Some(false);
            options.global.max_row_group_size = (budget / self.row_bytes).clamp(1024, 64 * 1024);
            let file = format!("{}{}.parquet", self.folder(name), self.files);
            let write =
                datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true);
            df.write_parquet(&file, write, Some(options)).await?;
            return Ok(());
        };
        self.by_pass(name, df.execute_stream_partitioned().await?, n)
            .await
    }

    /// Adds the rows of `stream` (with a `pass` column) to the table `name`, in folders by
    /// pass: what `write` does with a query's rows, for rows computed in Rust.
    pub async fn write_stream(
        &mut self,
        name: &'static str,
        stream: datafusion::execution::SendableRecordBatchStream,
        passes: usize,
    ) -> Result<()> {
        self.files += 1;
        self.tables.insert(name, (stream.schema(), true));
        self.by_pass(name, vec![stream], passes).await
    }

    /// Adds the rows of `sqls` (queries of the same columns, a `pass` among them), run one
    /// after another, to the table `name` in folders by pass: one file a folder for them all,
    /// where a `write` each would make one a query and folder (the report's attribute
    /// pairs, a query per trace pass in 75 folders at 10M carts then, made 3,225 files of small
    /// row groups, written and read again one by one).
    pub async fn write_each(
        &mut self,
        name: &'static str,
        sqls: Vec<String>,
        passes: usize,
    ) -> Result<()> {
        use futures::{StreamExt, TryStreamExt};
        let Some(first) = sqls.first() else {
            anyhow::bail!("no query to write the temporary table {name} from");
        };
        let schema = Arc::new(self.ctx.sql(first).await?.schema().as_arrow().clone());
        let ctx = self.ctx.clone();
        let rows = futures::stream::iter(sqls)
            .then(move |sql| {
                let ctx = ctx.clone();
                async move { ctx.sql(&sql).await?.execute_stream().await }
            })
            .try_flatten();
        let stream = Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, rows),
        );
        self.write_stream(name, stream, passes).await
    }

    async fn by_pass(
        &mut self,
        name: &'static str,
        streams: Vec<datafusion::execution::SendableRecordBatchStream>,
        n: usize,
    ) -> Result<()> {
        let budget = crate::sql::session::memory_limit() / 4;
        // Per stream and pass, a row group while it fills, and a quarter of that held
        // until written.
        let group = (budget / (streams.len().max(1) * n.max(1) * self.row_bytes))
            .clamp(LEAST_GROUP_ROWS, 64 * 1024);
        let rows = (group / 4).max(LEAST_HELD_ROWS);
        let mut tasks = Vec::new();
        for (i, stream) in streams.into_iter().enumerate() {
            let out = ByPass {
                dir: self.folder(name),
                file: format!("{}-{i}", self.files),
                rows,
                group,
            };
            tasks.push(tokio::spawn(out.write(stream, n)));
        }
        for t in tasks {
            t.await
                .map_err(|e| anyhow::anyhow!("a temporary table's writer stopped: {e}"))??;
        }
        Ok(())
    }

    /// The most folders a table written by pass through one writer (`write_each`,
    /// `write_stream`) can have while what the writer holds per folder (at least a row group
    /// filling and the rows gathered for it) stays within a pass's memory.
    pub fn most_folders(&self) -> usize {
        Passes::budget() / ((LEAST_GROUP_ROWS + LEAST_HELD_ROWS) * self.row_bytes)
    }

    /// Registers the table `name` written so far (with its `pass` column if written by pass).
    pub async fn register(&mut self, name: &'static str) -> Result<()> {
        let dir = self.folder(name);
        std::fs::create_dir_all(&dir)?;
        let by_pass = self.tables.get(name).is_some_and(|t| t.1);
        // No row, no file: an empty one with the table's columns (those of its folders aside).
        let written = walkdir::WalkDir::new(&dir)
            .into_iter()
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "parquet"));
        if let (false, Some((schema, _))) = (written, self.tables.get(name)) {
            let fields: Vec<_> = schema
                .fields()
                .iter()
                .filter(|f| !(by_pass && f.name() == "pass"))
                .cloned()
                .collect();
            let folder = if by_pass {
                format!("{dir}pass=0/")
            } else {
                dir.clone()
            };
            std::fs::create_dir_all(&folder)?;
            let file = std::fs::File::create(format!("{folder}empty.parquet"))?;
            datafusion::parquet::arrow::ArrowWriter::try_new(
                file,
                Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
                None,
            )?
            .close()?;
        }
        let mut read = datafusion::prelude::ParquetReadOptions::default();
        if by_pass {
            read = read.table_partition_cols(vec![(
                "pass".to_string(),
                datafusion::arrow::datatypes::DataType::Int64,
            )]);
        }
        self.ctx.register_parquet(name, &dir, read).await?;
        self.names.push(name);
        Ok(())
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.ctx.deregister_table(*name);
        }
    }
}

/// Where one stream of rows is written by its `pass` column: `dir/pass=K/file.parquet`.
///
/// DataFusion's own partitioned write splits every batch into one small batch per pass and
/// writes each at once: with 43 passes, 8192-row batches reach the writers as batches of
/// about 190 rows, and the per-batch cost of encoding ran the report's attribute values at
/// 1M carts 57% longer than with 5 passes (11.4 s -> 17.9 s). Here each pass's rows are
/// gathered (copied, so that no batch is held for a few of its rows) until `rows` of them,
/// then written in one batch.
struct ByPass {
    dir: String,
    file: String,
    /// Rows of a pass gathered before they are written.
    rows: usize,
    /// Rows of a row group.
    group: usize,
}

impl ByPass {
    async fn write(
        self,
        mut stream: datafusion::execution::SendableRecordBatchStream,
        n: usize,
    ) -> Result<()> {
        use datafusion::arrow::compute::{concat_batches, take_record_batch};
        use datafusion::parquet::arrow::ArrowWriter;
        use datafusion::parquet::basic::Compression;
        use datafusion::parquet::file::properties::WriterProperties;
        use futures::StreamExt;
        let schema = stream.schema();
        let at = schema.index_of("pass")?;
        let keep: Vec<usize> = (0..schema.fields().len()).filter(|&i| i != at).collect();
        let file_schema = Arc::new(schema.project(&keep)?);
        let props = WriterProperties::builder()
            .set_compression(Compression::LZ4_RAW)
            .set_dictionary_enabled(false)
            .set_max_row_group_row_count(Some(self.group))
            .build();
        let mut writers: Vec<Option<ArrowWriter<std::fs::File>>> = (0..n).map(|_| None).collect();
        let mut held: Vec<(Vec<RecordBatch>, usize)> = (0..n).map(|_| (Vec::new(), 0)).collect();
        let flush = |p: usize,
                     held: &mut (Vec<RecordBatch>, usize),
                     writers: &mut Vec<Option<ArrowWriter<std::fs::File>>>|
         -> Result<()> {
            if held.1 == 0 {
                return Ok(());
            }
            let batch = concat_batches(&file_schema, &held.0)?;
            *held = (Vec::new(), 0);
            let w = match &mut writers[p] {
                Some(w) => w,
                slot => {
                    let dir = format!("{}pass={p}", self.dir);
                    std::fs::create_dir_all(&dir)?;
                    let f = std::fs::File::create(format!("{dir}/{}.parquet", self.file))?;
                    slot.insert(ArrowWriter::try_new(
                        f,
                        file_schema.clone(),
                        Some(props.clone()),
                    )?)
                }
            };
            w.write(&batch)?;
            Ok(())
        };
        while let Some(b) = stream.next().await {
            let b = b?;
            if b.num_rows() == 0 {
                continue;
            }
            let pass = datafusion::arrow::compute::cast(
                b.column(at),
                &datafusion::arrow::datatypes::DataType::Int64,
            )?;
            let pass = pass.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let of = |i: usize| -> Result<usize> {
                usize::try_from(pass.value(i))
                    .ok()
                    .filter(|&p| pass.is_valid(i) && p < n)
                    .ok_or_else(|| {
                        anyhow::anyhow!("a row of a temporary table has no pass below {n}")
                    })
            };
            let b = b.project(&keep)?;
            // Rows of one pass, the usual case when the input is in key order: as it is.
            let first = of(0)?;
            let mut same = true;
            let mut by_pass: Vec<Vec<u32>> = Vec::new();
            for i in 0..b.num_rows() {
                let p = of(i)?;
                if same && p == first {
                    continue;
                }
                if same {
                    same = false;
                    by_pass = (0..n).map(|_| Vec::new()).collect();
                    by_pass[first].extend(0..i as u32);
                }
                by_pass[p].push(i as u32);
            }
            let parts: Vec<(usize, RecordBatch)> = if same {
                vec![(first, b)]
            } else {
                by_pass
                    .into_iter()
                    .enumerate()
                    .filter(|(_, ix)| !ix.is_empty())
                    .map(|(p, ix)| {
                        let ix = datafusion::arrow::array::UInt32Array::from(ix);
                        Ok((p, take_record_batch(&b, &ix)?))
                    })
                    .collect::<Result<_>>()?
            };
            for (p, part) in parts {
                held[p].1 += part.num_rows();
                held[p].0.push(part);
                if held[p].1 >= self.rows {
                    flush(p, &mut held[p], &mut writers)?;
                }
            }
        }
        for (p, h) in held.iter_mut().enumerate() {
            flush(p, h, &mut writers)?;
        }
        for w in writers.into_iter().flatten() {
            w.close()?;
        }
        Ok(())
    }
}
