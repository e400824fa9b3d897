//! Each period cart's stages, read once: per cart pass, the cart's events in cart order and
//! folded per cart in Rust. Two things come of it:
//! - `ENTRIES`: each cart's entry into each stage, the trace of its first event there (by
//!   start time, then trace id) and whether the cart shows there in more than one trace,
//!   written by the trace pass of that trace (the weighted funnel joins it to the traces'
//!   probabilities, `sampling::TRACE_P`, pass by pass).
//! - `WentOn`: per stage, the carts that went on from it, and those of them whose first event
//!   at the next stage they reached was in another trace than their last event at this one
//!   (by end time, then trace id). `sampling` judges from it whether a cart that stopped at
//!   a stage may have gone on in a trace that was not kept.
//!
//! `cart_events` is written sorted by cart, so in the report's one partition (a session whose
//! data is larger than its cap) neither the read nor the join to the period's carts sorts;
//! across partitions the join repartitions and a pass's rows are sorted by cart. Each was a
//! grouping of (cart, stage) in SQL before: ordered `first_value`s per group, and a window
//! `lead` over each cart's stages, sorted per pass; at 10M carts the sorts spilled, and the
//! two took 111 s where 1M carts took 5.5 s.
//!
//! Memory: one cart's events, a batch of rows being built and two on their way to the writer,
//! and what the writer holds per trace pass (`Scratch`).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::{
    Array, ArrayBuilder, AsArray, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::sql::passes::{Passes, Scratch};

/// Each period cart's entry into each stage (`stage_order`, `trace_id`, `k`: the cart shows
/// at the stage in more than one trace), in folders by the trace pass of `trace_id`.
pub const ENTRIES: &str = "cartscope_report_stage_entries";

/// Per stage order: (carts that went on from it in another trace, carts that went on).
pub type WentOn = BTreeMap<i64, (u64, u64)>;

/// Rows gathered before they are sent to the writer.
const BATCH: usize = 8192;

/// Folds the events of the period's carts (`cur`, a condition on `carts`), one cart pass at a
/// time: writes `ENTRIES` by trace pass into `scratch` (registered) and says how the carts
/// went on from each stage.
pub async fn fold(
    ctx: &SessionContext,
    cur: &str,
    by_cart: &Passes,
    by_trace: &Passes,
    scratch: &mut Scratch<'_>,
) -> Result<WentOn> {
    let mut went = WentOn::new();
    for i in 0..by_cart.len() {
        let input = ctx
            .sql(&format!(
                "SELECT cart_id, stage_order, CAST(time AS BIGINT), CAST(end_time AS BIGINT),
                        trace_id
                 FROM cart_events
                 WHERE {e_range}
                   AND cart_id IN (SELECT cart_id FROM carts WHERE {cur} AND {c_range})
                 ORDER BY cart_id",
                e_range = by_cart.range(i, "cart_events.cart_id"),
                c_range = by_cart.range(i, "carts.cart_id"),
            ))
            .await?
            .execute_stream()
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let task = tokio::spawn(fold_pass(input, by_trace.clone(), tx));
        let rows =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        let out: SendableRecordBatchStream =
            Box::pin(RecordBatchStreamAdapter::new(schema(), rows));
        let written = scratch.write_stream(ENTRIES, out, by_trace.len()).await;
        let folded = task.await;
        // The writer's error first: it is the input's own (an exhausted memory pool, known by
        // its type, is run again in more passes) or the writer's; the fold's says only that
        // either stopped it.
        written?;
        let folded = folded.context("the report's fold of the carts' stages stopped")??;
        for (order, (other, all)) in folded {
            let w = went.entry(order).or_default();
            w.0 += other;
            w.1 += all;
        }
    }
    scratch.register(ENTRIES).await?;
    Ok(went)
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("stage_order", DataType::Int64, false),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("k", DataType::Boolean, false),
        Field::new("pass", DataType::Int64, false),
    ]))
}

/// One event of a cart: its stage order, start and end (microseconds), and its trace id as
/// a range of `Fold::traces`.
struct Event {
    stage: Option<i64>,
    start: Option<i64>,
    end: Option<i64>,
    trace: Option<(usize, usize)>,
}

/// The cart being read, its events, and the rows folded so far.
struct Fold {
    by_trace: Passes,
    cart: Option<String>,
    events: Vec<Event>,
    traces: String,
    went: WentOn,
    stage_order: Int64Builder,
    trace_id: StringBuilder,
    k: BooleanBuilder,
    pass: Int64Builder,
}

/// Reads one cart pass's events (`cart_id`, `stage_order`, start, end, `trace_id`, ordered by
/// cart) and sends `ENTRIES`' rows to `tx`; an error of the input is sent too, so that the
/// writer stops with it.
async fn fold_pass(
    mut input: SendableRecordBatchStream,
    by_trace: Passes,
    tx: tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>,
) -> Result<WentOn> {
    let mut f = Fold::new(by_trace);
    while let Some(b) = input.next().await {
        let b = match b {
            Ok(b) => b,
            Err(e) => {
                let said = e.to_string();
                let _ = tx.send(Err(e)).await;
                anyhow::bail!("reading the carts' events: {said}");
            }
        };
        f.read(&b)?;
        if f.stage_order.len() >= BATCH {
            f.send(&tx).await?;
        }
    }
    f.end_cart();
    f.send(&tx).await?;
    Ok(f.went)
}

impl Fold {
    fn new(by_trace: Passes) -> Self {
        Fold {
            by_trace,
            cart: None,
            events: Vec::new(),
            traces: String::new(),
            went: WentOn::new(),
            stage_order: Int64Builder::new(),
            trace_id: StringBuilder::new(),
            k: BooleanBuilder::new(),
            pass: Int64Builder::new(),
        }
    }

    fn read(&mut self, b: &RecordBatch) -> Result<()> {
        use datafusion::arrow::compute::cast;
        let cart = cast(b.column(0), &DataType::Utf8)?;
        let cart = cart.as_string::<i32>();
        let stage = cast(b.column(1), &DataType::Int64)?;
        let stage = stage.as_primitive::<Int64Type>();
        let start = cast(b.column(2), &DataType::Int64)?;
        let start = start.as_primitive::<Int64Type>();
        let end = cast(b.column(3), &DataType::Int64)?;
        let end = end.as_primitive::<Int64Type>();
        let trace = cast(b.column(4), &DataType::Utf8)?;
        let trace = trace.as_string::<i32>();
        let get =
            |a: &datafusion::arrow::array::Int64Array, r: usize| a.is_valid(r).then(|| a.value(r));
        for r in 0..b.num_rows() {
            let id = cart.is_valid(r).then(|| cart.value(r));
            if self.cart.as_deref() != id {
                self.end_cart();
                self.cart = id.map(str::to_string);
            }
            let trace = trace.is_valid(r).then(|| {
                let at = self.traces.len();
                self.traces.push_str(trace.value(r));
                (at, self.traces.len())
            });
            self.events.push(Event {
                stage: get(stage, r),
                start: get(start, r),
                end: get(end, r),
                trace,
            });
        }
        Ok(())
    }

    /// Folds the cart read so far: its row of `ENTRIES` per stage, and how it went on.
    fn end_cart(&mut self) {
        let (events, traces) = (&self.events, &self.traces);
        let text = |e: &Event| e.trace.map(|(a, b)| &traces[a..b]);
        let mut order: Vec<usize> = (0..events.len())
            .filter(|&i| events[i].stage.is_some())
            .collect();
        // By stage; within one, as read.
        order.sort_by_key(|&i| events[i].stage);
        // The stage before, with the trace of its last event.
        let mut before: Option<(i64, Option<&str>)> = None;
        for group in order.chunk_by(|&a, &b| events[a].stage == events[b].stage) {
            let stage = events[group[0]].stage.unwrap_or_default();
            // By end, then trace id (NULLs last, as SQL's ascending order puts them):
            // whatever order the rows came in.
            let at_end = |i: &&usize| {
                let t = text(&events[**i]);
                (events[**i].end.is_none(), events[**i].end, t.is_none(), t)
            };
            let first = group
                .iter()
                .min_by_key(at_end)
                .and_then(|&i| text(&events[i]));
            let last = group
                .iter()
                .max_by_key(at_end)
                .and_then(|&i| text(&events[i]));
            let entry = group
                .iter()
                .map(|&i| (events[i].start, text(&events[i])))
                .min_by_key(|(start, t)| (start.is_none(), *start, t.is_none(), *t))
                .and_then(|(_, t)| t);
            let seen = group.iter().filter_map(|&i| text(&events[i]));
            let k = seen.clone().min() < seen.max();
            if let (Some((was, last_before)), Some(first)) = (before, first) {
                let w = self.went.entry(was).or_default();
                w.1 += 1;
                if last_before.is_some_and(|l| l != first) {
                    w.0 += 1;
                }
            }
            before = Some((stage, last));
            self.stage_order.append_value(stage);
            self.trace_id.append_option(entry);
            self.k.append_value(k);
            self.pass.append_value(self.by_trace.pass(entry) as i64);
        }
        self.events.clear();
        self.traces.clear();
    }

    async fn send(
        &mut self,
        tx: &tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>,
    ) -> Result<()> {
        if self.stage_order.is_empty() {
            return Ok(());
        }
        let b = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(self.stage_order.finish()),
                Arc::new(self.trace_id.finish()),
                Arc::new(self.k.finish()),
                Arc::new(self.pass.finish()),
            ],
        )?;
        tx.send(Ok(b))
            .await
            .map_err(|_| anyhow::anyhow!("the writer of the carts' stage entries stopped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    /// Events as (cart, stage order, start, end, trace), in the order read.
    type Row<'a> = (&'a str, Option<i64>, i64, i64, Option<&'a str>);

    /// A row of `ENTRIES`: stage order, trace, k, pass.
    type Entry = (i64, Option<String>, bool, i64);

    fn fold(rows: &[Row], bounds: Passes) -> (WentOn, Vec<Entry>) {
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("cart_id", DataType::Utf8, false),
                Field::new("stage_order", DataType::Int64, true),
                Field::new("start", DataType::Int64, false),
                Field::new("end", DataType::Int64, false),
                Field::new("trace_id", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.4))),
            ],
        )
        .unwrap();
        let mut f = Fold::new(bounds);
        // Read in two batches, the first cart's events across both.
        f.read(&b.slice(0, 1)).unwrap();
        f.read(&b.slice(1, b.num_rows() - 1)).unwrap();
        f.end_cart();
        let (o, t, k, p) = (
            f.stage_order.finish(),
            f.trace_id.finish(),
            f.k.finish(),
            f.pass.finish(),
        );
        let rows = (0..o.len())
            .map(|i| {
                (
                    o.value(i),
                    t.is_valid(i).then(|| t.value(i).to_string()),
                    k.value(i),
                    p.value(i),
                )
            })
            .collect();
        (f.went, rows)
    }

    #[test]
    fn a_cart_that_checks_out_in_a_trace_of_its_own_went_on_apart() {
        let rows: Vec<Row> = vec![
            // Cart a: two adds in traces t1 and t2, then the checkout in t3 (read first).
            ("a", Some(1), 10, 11, Some("t1")),
            ("a", Some(2), 30, 31, Some("t3")),
            ("a", Some(1), 20, 21, Some("t2")),
            // An event of no stage: not a stage entry.
            ("a", None, 5, 6, Some("t0")),
            // Cart b: an add and the checkout in one trace; the add's trace unknown too.
            ("b", Some(1), 10, 11, Some("u1")),
            ("b", Some(1), 10, 12, None),
            ("b", Some(2), 20, 21, Some("u1")),
            // Cart c: its next stage's first event has no trace: it is not counted.
            ("c", Some(1), 10, 11, Some("v1")),
            ("c", Some(3), 20, 21, None),
            // Carts d and e: two events at stage 1 end at once; the later trace id is the
            // last, in either order read: the checkout's trace (w2) is not another.
            ("d", Some(1), 10, 20, Some("w2")),
            ("d", Some(1), 11, 20, Some("w1")),
            ("d", Some(2), 30, 31, Some("w2")),
            ("e", Some(2), 30, 31, Some("w2")),
            ("e", Some(1), 11, 20, Some("w1")),
            ("e", Some(1), 10, 20, Some("w2")),
        ];
        let (went, entries) = fold(&rows, Passes::from_bounds(vec!["t2".into()]));
        // From stage 1, a went on in another trace (t2 then t3); b's last event at stage
        // 1 has no trace, so its going on is counted but not as apart; c is not counted; d
        // and e went on in the trace they were last in.
        assert_eq!(went, WentOn::from([(1, (1, 4))]));
        assert_eq!(
            entries,
            vec![
                // a enters stage 1 in t1 and shows there in two traces: pass 0 (t1 < t2).
                (1, Some("t1".into()), true, 0),
                (2, Some("t3".into()), false, 1),
                // b: the first by start time, then by trace id (NULLs last).
                (1, Some("u1".into()), false, 1),
                (2, Some("u1".into()), false, 1),
                (1, Some("v1".into()), false, 1),
                // A NULL trace goes to the last pass.
                (3, None, false, 1),
                (1, Some("w2".into()), true, 1),
                (2, Some("w2".into()), false, 1),
                (1, Some("w2".into()), true, 1),
                (2, Some("w2".into()), false, 1),
            ]
        );
    }
}
