//! `cartscope tables`: each table's row count and time range.

use anyhow::Result;

use crate::cli::TablesArgs;
use crate::commands::setup::{open_data, Globals};
use crate::sql::session::run_sql;
use crate::tables::schema::Table;

/// SQL that lists every canonical table with its rows and time range.
pub fn tables_sql() -> String {
    Table::ALL
        .iter()
        .map(|t| {
            format!(
                "SELECT '{name}' AS \"table\", count(*) AS rows, min({time}) AS first, max({time}) AS last FROM {name}",
                name = t.name(),
                time = t.time_column()
            )
        })
        .collect::<Vec<_>>()
        .join("\nUNION ALL\n")
}

pub async fn run(a: &TablesArgs, g: &Globals) -> Result<()> {
    // Everything is read: `tables` is how a user checks what an export holds and what of it is
    // bad (tests/hostile.rs), so every value is parsed and checked.
    let ctx = open_data(
        &a.data,
        &Default::default(),
        g,
        &crate::read::projection::Projection::everything(),
    )
    .await?;
    // UNION ALL does not keep order; sort by the canonical order.
    let order = Table::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| format!("WHEN '{}' THEN {i}", t.name()))
        .collect::<Vec<_>>()
        .join(" ");
    let sql = format!(
        "SELECT * FROM ({}) ORDER BY CASE \"table\" {order} END",
        tables_sql()
    );
    let (schema, batches) = run_sql(&ctx, &sql).await?;
    let mut out = std::io::stdout().lock();
    crate::output::write_batches(&mut out, a.format, &schema, &batches, None)
}
