//! `cartscope detect`: the replay's summary and its carts, in the chosen format.

use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::DetectArgs;
use crate::commands::setup::{open_replayed, Globals};
use crate::output::Format;
use crate::read::projection::Projection;
use crate::replay::Reads;
use crate::sql::session::run_sql;

/// What the replay matched on this data, per stage and by how carts were attributed, then
/// the SQL and the fold's rules it ran. Misfit warnings go to stderr as for every replay.
async fn explain(a: &DetectArgs, g: &Globals) -> Result<()> {
    let reads = Projection::nothing();
    let (ctx, _) = open_replayed(&a.data, &a.replay, g, &reads).await?;
    let per_stage = "SELECT s.stage_order, s.stage, s.success, count(e.span_id) AS spans, \
        count(DISTINCT e.cart_id) AS carts \
        FROM stages s LEFT JOIN cart_events e ON e.stage = s.stage \
        GROUP BY s.stage_order, s.stage, s.success ORDER BY s.stage_order";
    let attribution = "SELECT attributed_by, count(*) AS spans, count(DISTINCT cart_id) AS carts \
        FROM cart_events GROUP BY attributed_by ORDER BY attributed_by";
    let mut out = std::io::stdout().lock();
    for (title, sql) in [
        ("spans and carts each stage matched", per_stage),
        (
            "how spans were given to carts (a cart counts once per way)",
            attribution,
        ),
    ] {
        let (schema, batches) = run_sql(&ctx, sql).await?;
        writeln!(out, "-- {title}")?;
        crate::output::write_batches(&mut out, a.format, &schema, &batches, None)?;
        writeln!(out)?;
    }
    let model = &a.replay.model;
    writeln!(
        out,
        "-- cart_events (as of <AS_OF_US>)\n{}\n",
        crate::replay::cart_events_sql(model, 0)
    )?;
    writeln!(
        out,
        "-- the durations of each operation, summed and selected in Rust: the table \
         operation_stats (spans, total_ms, mean_ms, p50_ms, p95_ms; signal_ms, the model's \
         percentile, is the slower_than_p95 signal's line)\n{}\n",
        crate::replay::DURATIONS_SQL
    )?;
    writeln!(out, "{}", crate::replay::FOLD_EXPLAINED)?;
    Ok(())
}

pub async fn run(a: &DetectArgs, g: &Globals) -> Result<()> {
    if a.explain {
        return explain(a, g).await;
    }
    // The carts, with --out the cart events and abandonments, with --emit-otlp the derived
    // rows: the replay's own attributes.
    let reads = Projection::nothing();
    let part = match (&a.out, &a.emit_otlp) {
        (Some(_), _) => Reads::All,
        (None, Some(_)) => Reads::CartsAndDerived,
        (None, None) => Reads::Carts,
    };
    let (ctx, s) =
        crate::commands::setup::open_replayed_part(&a.data, &a.replay, g, &reads, part).await?;
    // Streamed: the carts are written as they are read, never all held.
    let carts = ctx
        .sql("SELECT * FROM carts ORDER BY cart_id")
        .await?
        .execute_stream()
        .await?;

    // Terminal formats get the summary first; machine formats keep stdout to the rows and
    // put the summary on stderr.
    let human = matches!(a.format, Format::Table | Format::Markdown);
    let summary = format!(
        "as of {} (threshold {}): {} carts, {} converted, {} abandoned, {} active, {} recovered; \
         abandonment rate {:.1}% (abandoned / (abandoned + converted)); abandoned value {:.2}",
        s.as_of,
        s.threshold,
        s.carts,
        s.converted,
        s.abandoned,
        s.active,
        s.recovered,
        100.0 * s.abandonment_rate,
        s.abandoned_value
    );
    {
        let mut out = std::io::stdout().lock();
        if human {
            writeln!(out, "{summary}")?;
            if s.derived_spans + s.derived_points > 0 || s.recorded_abandonments > 0 {
                writeln!(
                    out,
                    "derived rows added: {} cart.abandonment.detected spans, {} metric points ({} abandonments were already recorded)",
                    s.derived_spans, s.derived_points, s.recorded_abandonments
                )?;
            }
            writeln!(out)?;
        } else {
            eprintln!("cartscope: {summary}");
        }
        out.flush()?;
    }
    let max = human.then_some(a.max_rows);
    crate::output::stream_to_stdout(carts, a.format, max).await?;
    crate::output::phase("detect: carts written");

    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create '{}'", dir.display()))?;
        for table in ["carts", "cart_events", "abandonments"] {
            let rows = ctx
                .sql(&format!("SELECT * FROM {table}"))
                .await?
                .execute_stream()
                .await?;
            let path = dir.join(format!("{table}.parquet"));
            crate::output::stream_to_file(rows, Format::Parquet, &path).await?;
        }
        eprintln!(
            "cartscope: wrote carts, cart_events and abandonments to {}",
            dir.display()
        );
    }
    if let Some(path) = &a.emit_otlp {
        emit_otlp(&ctx, path).await?;
    }
    Ok(())
}

/// The derived spans and points as OTLP/JSON lines in `path`, written atomically: a line
/// per batch of each.
async fn emit_otlp(
    ctx: &datafusion::prelude::SessionContext,
    path: &std::path::Path,
) -> Result<()> {
    use crate::output::otlp;
    use futures::StreamExt;
    let file = crate::output::AtomicFile::create(path)?;
    let mut w = file.writer()?;
    let mut lines = [0usize; 2];
    type Request = fn(&datafusion::arrow::array::RecordBatch) -> Result<serde_json::Value>;
    let tables: [(&str, Request); 2] = [
        ("derived_traces", otlp::traces_request),
        ("derived_metrics", otlp::metrics_request),
    ];
    for (n, (table, request)) in tables.into_iter().enumerate() {
        let mut rows = ctx
            .sql(&format!("SELECT * FROM {table}"))
            .await?
            .execute_stream()
            .await?;
        while let Some(b) = rows.next().await {
            let b = b?;
            if b.num_rows() == 0 {
                continue;
            }
            otlp::write_line(&mut w, &request(&b)?)
                .with_context(|| format!("cannot write '{}'", path.display()))?;
            lines[n] += 1;
        }
    }
    w.flush()
        .with_context(|| format!("cannot write '{}'", path.display()))?;
    drop(w);
    file.commit()?;
    eprintln!(
        "cartscope: wrote the derived rows as OTLP/JSON to {} ({} lines of spans, {} of metric points)",
        path.display(),
        lines[0],
        lines[1]
    );
    Ok(())
}
