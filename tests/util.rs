//! The one helper of the integration tests: run the binary, find fixtures, load files through
//! cartscope's own loader, run SQL, and read results back as strings.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cartscope::Data;
use cartscope::{LoadOptions, LoadStats};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;

/// The cartscope binary this test run built.
pub fn cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cartscope"))
}

/// Runs `cartscope ARGS` and waits for it.
pub fn cartscope(args: &[&str]) -> Output {
    cmd().args(args).output().expect("cartscope runs")
}

/// Runs `cartscope ARGS` with `input` on its stdin, written from a thread (cartscope may
/// write output before it has read everything), and waits for it.
pub fn piped(args: &[&str], input: &[u8]) -> Output {
    use std::process::Stdio;
    let mut child = cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cartscope runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&input);
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    o
}

/// Runs `cartscope generate --out OUT ARGS` and asserts that it succeeded.
pub fn generate(out: &Path, args: &[&str]) {
    let o = cmd()
        .arg("generate")
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("cartscope runs");
    assert!(
        o.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs `cartscope ingest INPUTS --out OUT` and asserts that it succeeded.
pub fn ingest(out: &Path, inputs: &[&Path]) {
    let mut c = cmd();
    c.arg("ingest").args(inputs).arg("--out").arg(out);
    let o = c.output().expect("cartscope runs");
    assert!(o.status.success(), "ingest failed: {}", stderr(&o));
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn root(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Loads the given paths (files, folders, globs or datasets) with default options.
pub async fn load(paths: &[PathBuf]) -> (SessionContext, LoadStats) {
    load_with(
        paths,
        LoadOptions {
            threads: 2,
            ..LoadOptions::default()
        },
    )
    .await
}

pub async fn load_with(paths: &[PathBuf], opts: LoadOptions) -> (SessionContext, LoadStats) {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let inputs = cartscope::resolve(&names).expect("inputs resolve");
    let (mem, stats) = cartscope::load_into_memory(&inputs.files, &opts).expect("load");
    let data = Data {
        mem,
        datasets: inputs.datasets.clone(),
        scratch: None,
    };
    let ctx = cartscope::context(data, 2, &Default::default())
        .await
        .expect("session");
    (ctx, stats)
}

pub async fn batches(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every row of the result, each cell as text (null as "NULL").
pub async fn rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in batches(ctx, sql).await {
        for r in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(r) {
                            "NULL".to_string()
                        } else {
                            cartscope::value_string(c.as_ref(), r).unwrap()
                        }
                    })
                    .collect(),
            );
        }
    }
    out
}

/// The single value of a one-row, one-column query.
pub async fn one(ctx: &SessionContext, sql: &str) -> String {
    let r = rows(ctx, sql).await;
    assert_eq!(r.len(), 1, "{sql} returned {} rows", r.len());
    assert_eq!(r[0].len(), 1, "{sql} returned {} columns", r[0].len());
    r[0][0].clone()
}

/// Row counts of the span and metric tables: [traces, span_events, span_links, metrics,
/// exemplars]. `logs` is counted on its own (`stats.rows[Table::Logs]`).
pub fn counts(stats: &LoadStats) -> [u64; 5] {
    let all = stats.rows.into_array();
    [all[0], all[1], all[2], all[3], all[4]]
}

// Exports built by hand, span by span, for tests that must not depend on cartscope's own
// generator: each span its own trace (cart * 1000 + n), OTLP/JSON as an SDK writes it.

/// The first instant of a hand-built export: 2026-11-18T11:06:40Z.
pub const BASE_NS: u64 = 1_795_000_000_000_000_000;
pub const S: u64 = 1_000_000_000;

/// One span of a cart: its name, when it starts (seconds after `BASE_NS`), how long it takes
/// and whether it failed.
pub struct Step<'a> {
    pub name: &'a str,
    pub at_s: u64,
    pub ms: u64,
    pub error: bool,
}

/// One span as an OTLP/JSON object.
pub fn span(out: &mut String, cart: u32, n: u32, step: Step, attrs: &[(&str, String)]) {
    let Step {
        name,
        at_s: start_s,
        ms,
        error,
    } = step;
    if !out.is_empty() {
        out.push(',');
    }
    let attrs: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#))
        .collect();
    let start = BASE_NS + start_s * S;
    let _ = write!(
        out,
        r#"{{"traceId":"{:032x}","spanId":"{:016x}","name":"{name}","kind":2,"startTimeUnixNano":"{start}","endTimeUnixNano":"{}","attributes":[{}],"status":{}}}"#,
        u128::from(cart) * 1000 + u128::from(n) + 1,
        u64::from(cart) * 1000 + u64::from(n) + 1,
        start + ms * 1_000_000,
        attrs.join(","),
        if error {
            r#"{"code":2,"message":"card declined"}"#
        } else {
            "{}"
        }
    );
}

/// Spans (from `span`) as one OTLP/JSON line of one resource, `service.name = shop`.
pub fn traces_line(spans: &str) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"shop"}}}}]}},"scopeSpans":[{{"scope":{{"name":"hand-made"}},"spans":[{spans}]}}]}}]}}"#
    ) + "\n"
}
