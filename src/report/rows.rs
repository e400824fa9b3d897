//! Reading a query's result: the report's SQL helpers, shared by its parts.

use anyhow::Result;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::prelude::SessionContext;

/// A fraction as a percentage to one decimal (0.1234 -> "12.3%").
pub(crate) fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

pub(crate) async fn batches(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// Column `i` of every row as text / number / count.
pub(crate) fn strings(bs: &[RecordBatch], i: usize) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for b in bs {
        let c = datafusion::arrow::compute::cast(
            b.column(i),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .expect("cast to text");
        let a = c.as_string::<i32>();
        out.extend((0..a.len()).map(|r| a.is_valid(r).then(|| a.value(r).to_string())));
    }
    out
}

/// Column `i` of every batch cast to `T`, nulls as `None`.
fn primitives<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
    bs: &[RecordBatch],
    i: usize,
) -> Vec<Option<T::Native>> {
    let mut out = Vec::new();
    for b in bs {
        let c = datafusion::arrow::compute::cast(b.column(i), &T::DATA_TYPE)
            .expect("a numeric column casts");
        out.extend(c.as_primitive::<T>().iter());
    }
    out
}

pub(crate) fn floats(bs: &[RecordBatch], i: usize) -> Vec<Option<f64>> {
    primitives::<Float64Type>(bs, i)
}

pub(crate) fn ints(bs: &[RecordBatch], i: usize) -> Vec<Option<i64>> {
    primitives::<Int64Type>(bs, i)
}

/// The count that `sql` (one row, one column) gives: 0 when it gives none.
pub(crate) async fn count(ctx: &SessionContext, sql: &str) -> Result<u64> {
    Ok(counts(&batches(ctx, sql).await?, 0)
        .first()
        .copied()
        .unwrap_or(0))
}

/// A count column: null and negative read as 0.
pub(crate) fn counts(bs: &[RecordBatch], i: usize) -> Vec<u64> {
    ints(bs, i)
        .into_iter()
        .map(|v| v.map_or(0, |n| n.max(0) as u64))
        .collect()
}
