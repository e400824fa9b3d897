//! `cartscope query`: SQL over the canonical tables.

use anyhow::{Context, Result};

use crate::cli::QueryArgs;
use crate::commands::{open_data, Globals};
use crate::session::run_sql;

pub async fn run(a: &QueryArgs, g: &Globals) -> Result<()> {
    let (name, sql) = match (&a.execute, &a.file) {
        (Some(sql), _) => ("-e".to_string(), sql.clone()),
        (None, Some(path)) => (
            path.display().to_string(),
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the query file '{}'", path.display()))?,
        ),
        (None, None) => anyhow::bail!("give a query: FILE.sql or -e 'SQL'"),
    };
    let ctx = open_data(&a.data, g).await?;
    let (schema, batches) = run_sql(&ctx, &sql)
        .await
        .with_context(|| format!("query {name} failed"))?;
    match &a.output {
        Some(path) => crate::output::write_atomically(path, |w| {
            crate::output::write_batches(w, a.format, &schema, &batches, a.max_rows)
        })
        .with_context(|| format!("cannot write '{}'", path.display())),
        None => {
            let mut out = std::io::stdout().lock();
            crate::output::write_batches(&mut out, a.format, &schema, &batches, a.max_rows)
        }
    }
}
