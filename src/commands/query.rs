//! `cartscope query` and `cartscope queries`: SQL over the tables, from the library, a file or
//! the command line, reproducible on an old export (`NOW()` is the as-of time).

use std::io::Write;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::cli::{QueriesArgs, QueryArgs};
use crate::commands::setup::{open_data, open_replayed, Globals};
use crate::sql::library::{self, Query};

/// Finds the query where a user put it after the inputs (`cartscope query --data DIR
/// funnel`): --data takes every value up to the next flag, so clap reads the query as one
/// more input and finds none. The last of two or more inputs is the query when it is a
/// FILE.sql (never telemetry), or a bare word that is no file or folder here (an input
/// names a file, a folder, a glob or a URL): a library query's name, or a mistyped one,
/// which the library's error then names. Without a query otherwise, the error says where
/// to put one.
pub fn settle(a: &mut QueryArgs) -> Result<()> {
    if a.query.is_some() {
        return Ok(());
    }
    let inputs = &a.data.data;
    let last = match inputs.last() {
        Some(last) if inputs.len() >= 2 => last.clone(),
        _ => String::new(),
    };
    let sql_file = last.ends_with(".sql");
    let bare = !last.is_empty()
        && !std::path::Path::new(&last).exists()
        && !last.contains(['/', '\\', '.', '*', '?', '[', ':'])
        && last != "-";
    match (sql_file || bare, a.execute.is_some()) {
        (false, true) => return Ok(()),
        (false, false) => bail!(
            "give a query: a library NAME (see `cartscope queries`), a FILE.sql or -e 'SQL', before --data (`cartscope query NAME --data INPUT...`): --data reads every value after it as an input"
        ),
        (true, true) => bail!("give either -e 'SQL' or a query ('{last}'), not both"),
        (true, false) => {}
    }
    if bare {
        // A mistyped name fails here, with the names the library has.
        library::find(&library::library(&a.queries)?, &last)?;
    }
    a.query = a.data.data.pop();
    Ok(())
}

/// Which query, with its SQL rendered.
fn resolve(a: &QueryArgs) -> Result<(Query, String)> {
    let q = match (&a.execute, &a.query) {
        (Some(sql), _) => Query::parse(sql, "-e", "-e")?,
        (None, Some(name)) if name.ends_with(".sql") || std::path::Path::new(name).is_file() => {
            library::from_file(std::path::Path::new(name))?
        }
        (None, Some(name)) => library::find(&library::library(&a.queries)?, name)?,
        (None, None) => bail!("give a query: a library NAME, a FILE.sql or -e 'SQL'"),
    };
    let sql = q.render(&a.params)?;
    Ok((q, sql))
}

pub async fn run(a: &QueryArgs, g: &Globals) -> Result<()> {
    let (q, sql) = resolve(a)?;
    if a.output.is_none() {
        crate::output::refuse_binary_on_terminal(a.format)?;
    }
    // Of a raw export, only the attributes the SQL reads (and the replay's) are parsed.
    let reads = crate::sql::reads::sql_reads(&sql);
    let ctx = if a.no_replay {
        let ctx = open_data(&a.data, &a.replay.engine, g, &reads).await?;
        // now() is the as-of time here too: --as-of, else the data's latest timestamp; an
        // empty export without --as-of leaves now() alone.
        let (latest, warning) = crate::replay::data_times(&ctx, &[]).await?;
        if let Some(w) = warning {
            eprintln!("cartscope: warning: {w}");
        }
        if a.replay.as_of.is_some() || latest.is_some() {
            let as_of = crate::commands::setup::as_of(&a.replay, latest)?;
            crate::sql::session::pin_now(&ctx, as_of);
        }
        ctx
    } else {
        open_replayed(&a.data, &a.replay, g, &reads).await?.0
    };
    let name = match q.origin.as_str() {
        "builtin" => format!("'{}'", q.name),
        "-e" => "-e".to_string(),
        origin => format!("'{}' ({origin})", q.name),
    };
    let df = ctx.sql(&sql).await.map_err(|e| sql_error(&name, &sql, e))?;
    let df = match a.max_rows {
        Some(n) => df.limit(0, Some(n))?,
        None => df,
    };
    // Streamed: rows are written as they come, never all held.
    let rows = crate::sql::session::execute_fitted(&ctx, df)
        .await
        .map_err(|e| sql_error(&name, &sql, e))?;
    match &a.output {
        Some(path) => crate::output::stream_to_file(rows, a.format, path)
            .await
            .map_err(|e| query_error(&name, &sql, e)),
        None => crate::output::stream_to_stdout(rows, a.format, None)
            .await
            .map_err(|e| query_error(&name, &sql, e)),
    }
}

/// An error while the rows stream: the query's failure (located in its SQL) if DataFusion
/// raised it, else the output's.
fn query_error(name: &str, sql: &str, e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<datafusion::error::DataFusionError>() {
        Ok(d) => sql_error(name, sql, d),
        Err(e) => e,
    }
}

fn sql_error(name: &str, sql: &str, e: datafusion::error::DataFusionError) -> anyhow::Error {
    let msg = e.to_string();
    match library::locate(sql, &msg) {
        Some(at) => anyhow!("query {name} failed: {msg}\n{at}"),
        None => anyhow!("query {name} failed: {msg}"),
    }
}

pub fn list(a: &QueriesArgs) -> Result<()> {
    let lib = library::library(&a.queries)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, false),
        Field::new("parameters", DataType::Utf8, false),
        Field::new("origin", DataType::Utf8, false),
    ]));
    let params = |q: &Query| {
        q.params
            .iter()
            .map(|p| {
                format!(
                    "{}={}{}",
                    p.name,
                    p.default,
                    if p.doc.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", p.doc)
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                lib.iter().map(|q| q.name.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                lib.iter().map(|q| q.description.clone()),
            )),
            Arc::new(StringArray::from_iter_values(lib.iter().map(params))),
            Arc::new(StringArray::from_iter_values(
                lib.iter().map(|q| q.origin.clone()),
            )),
        ],
    )?;
    let mut out = std::io::stdout().lock();
    crate::output::write_batches(&mut out, a.format, &schema, &[batch], None)?;
    out.flush()?;
    Ok(())
}
