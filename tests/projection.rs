//! Reading only what a question needs of a raw export (`read::projection`, `sql::reads`): the
//! same answers as reading everything, on files cartscope did not write (the real SDKs'
//! exports, the OTLP examples of other producers, hand-made documents) and on sample-data.
//! The peer is the dataset `ingest` writes of the same files, which keeps every attribute.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cartscope::{Keys, LoadOptions, Projection};

use crate::util::*;

/// Raw inputs, each with the model its carts follow.
fn inputs() -> Vec<(PathBuf, &'static str)> {
    vec![
        (fixture("real-sdk/js/traces.jsonl.gz"), "reference"),
        (fixture("real-sdk/py-proto/traces.binpb.gz"), "reference"),
        (fixture("real-sdk/py-json/traces.jsonl.gz"), "reference"),
        (root("sample-data/otlp"), "reference"),
    ]
}

fn ingest(raw: &Path, out: &Path) {
    crate::util::ingest(out, &[raw]);
}

/// stdout of `cartscope ARGS --data DATA`, which must succeed.
fn run_on(args: &[&str], data: &Path) -> String {
    let mut all = args.to_vec();
    all.extend(["--data", data.to_str().unwrap()]);
    let o = cartscope(&all);
    assert!(o.status.success(), "{all:?}: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn detect_report_and_queries_from_a_raw_export_match_the_whole_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    // Library queries that read attributes of spans, span events and exemplars, and ad-hoc
    // SQL that reads a whole map, a key by a non-literal, and a wildcard.
    let questions: Vec<Vec<&str>> = vec![
        vec!["detect", "-f", "csv"],
        vec!["report", "-f", "json"],
        vec!["query", "reference_correlation", "-f", "csv"],
        vec!["query", "error_before_abandonment", "-f", "csv"],
        vec!["query", "exemplar_drilldown", "-f", "csv"],
        vec![
            "query",
            "-f",
            "csv",
            "-e",
            "SELECT operation_name, count(*) AS n, max(cardinality(attributes)) AS a, \
             max(resource_attributes['service.version']) AS v \
             FROM spans GROUP BY operation_name ORDER BY operation_name",
        ],
        vec![
            "query",
            "-f",
            "csv",
            "-e",
            "SELECT s.*, c.outcome FROM spans s JOIN carts c ON s.trace_id = c.last_trace_id \
             ORDER BY s.trace_id, s.span_id LIMIT 50",
        ],
        vec![
            "query",
            "-f",
            "csv",
            "-e",
            "SELECT k, count(*) AS n FROM (SELECT unnest(map_keys(attributes)) AS k FROM spans) \
             GROUP BY k ORDER BY k",
        ],
        // Span columns the replay does without, named one by one (the others stay unread),
        // and the funnel, which reads no span at all.
        vec![
            "query",
            "-f",
            "csv",
            "-e",
            "SELECT s.operation_name, count(s.parent_span_id) AS parents, max(scope_name) AS scope, \
             max(span_kind) AS kind, sum(flags) AS flags, count(trace_state) AS states \
             FROM spans s GROUP BY s.operation_name ORDER BY s.operation_name",
        ],
        vec!["query", "funnel", "-f", "csv"],
        // A join USING columns: every span column and attribute may be read unnamed.
        vec![
            "query",
            "-f",
            "csv",
            "-e",
            "SELECT operation_name, count(*) AS n, count(DISTINCT parent_span_id) AS parents \
             FROM spans JOIN span_events USING (trace_id, span_id) \
             GROUP BY operation_name ORDER BY operation_name",
        ],
    ];
    // Each question answers with rows on some input (not every export has exemplars).
    let mut answered = vec![false; questions.len()];
    for (i, (raw, model)) in inputs().into_iter().enumerate() {
        let ds = tmp.path().join(format!("ds{i}"));
        ingest(&raw, &ds);
        for (qi, q) in questions.iter().enumerate() {
            let mut args = q.clone();
            args.extend(["--model", model]);
            let from_raw = run_on(&args, &raw);
            let from_dataset = run_on(&args, &ds);
            assert_eq!(
                from_raw,
                from_dataset,
                "{} {args:?}: the raw export read in part answers otherwise than its dataset",
                raw.display()
            );
            answered[qi] |= from_raw.lines().count() > 1;
        }
    }
    for (q, a) in questions.iter().zip(answered) {
        assert!(a, "{q:?}: no rows from any input");
    }
}

#[test]
fn a_shell_script_reads_what_its_statements_read() {
    let raw = fixture("real-sdk/js/traces.jsonl.gz");
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    ingest(&raw, &ds);
    let script =
        "\\format csv\nSELECT count(*) AS n, count(attributes['url.path']) AS paths FROM spans;\n\
                  SELECT * FROM span_links LIMIT 3;\n";
    let run = |data: &Path| {
        let o = cmd()
            .args(["shell", "--data", data.to_str().unwrap()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(script.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let from_raw = run(&raw);
    assert_eq!(from_raw, run(&ds));
    // The JS shop's spans carry url.path on its HTTP spans: the key was read.
    let paths: u64 = from_raw
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(paths > 0, "{from_raw}");
}

/// `file` loaded on one thread with `projection`.
async fn load_projected(
    file: &Path,
    projection: Projection,
) -> (datafusion::prelude::SessionContext, cartscope::LoadStats) {
    load_with(
        &[file.to_path_buf()],
        LoadOptions {
            threads: 1,
            projection: Arc::new(projection),
            ..LoadOptions::default()
        },
    )
    .await
}

/// One document with attributes of every kind, some of them unread by the projection below,
/// one of those of the wrong type, and one given with its value before its key; and span
/// columns the replay does not read (a parent, a trace state, flags, a scope).
const DOC: &str = r#"{"resourceSpans":[{"resource":{"attributes":[
  {"key":"service.name","value":{"stringValue":"cart"}},
  {"key":"host.name","value":{"stringValue":"h1"}}]},
 "scopeSpans":[{"scope":{"name":"s","attributes":[{"key":"scope.k","value":{"stringValue":"x"}}]},
  "spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708",
   "parentSpanId":"1112131415161718","traceState":"ot=th:8","flags":257,"kind":2,
   "status":{"code":2,"message":"boom"},"droppedAttributesCount":4,
   "name":"cart.add_item","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000",
   "attributes":[
     {"value":{"stringValue":"before"},"key":"unread.first"},
     {"key":"cart.id","value":{"stringValue":"c1"}},
     {"key":"bad.unread","value":{"intValue":"not a number"}},
     {"key":"deep","value":{"kvlistValue":{"values":[{"key":"a","value":{"arrayValue":{"values":[{"intValue":1}]}}}]}}},
     {"value":{"intValue":"3"},"key":"cart.item_count"}],
   "events":[{"timeUnixNano":"1700000000050000000","name":"exception","attributes":[
     {"key":"exception.type","value":{"stringValue":"E"}},
     {"key":"exception.stacktrace","value":{"stringValue":"long\nstack"}}]}]}]}]}]}
"#;

#[tokio::test]
async fn the_loader_keeps_only_the_projected_attributes_and_skips_the_rest_unchecked() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("doc.json");
    std::fs::write(&file, DOC).unwrap();
    let projection = Projection {
        span: Keys::only(["cart.id", "cart.item_count"]),
        event: Keys::only(["exception.type"]),
        ..Projection::nothing()
    };
    let (ctx, stats) = load_projected(&file, projection).await;
    // The wrong-typed value is in an attribute nobody reads: not checked, the span stays.
    assert_eq!(stats.bad_total, 0, "{:?}", stats.bad);
    // No key of the resource or the scope is read, nor any span column the replay does
    // without: those columns are null; the service name and the status code are read.
    let columns = "SELECT map_keys(attributes), attributes['cart.item_count'], service_name, \
                   map_keys(resource_attributes), map_keys(scope_attributes), parent_span_id, \
                   trace_state, flags, span_kind, status_code, status_message, scope_name, \
                   dropped_attributes_count FROM spans";
    assert_eq!(
        rows(&ctx, columns).await,
        vec![vec![
            "[cart.id, cart.item_count]",
            "3",
            "cart",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "error",
            "NULL",
            "NULL",
            "NULL"
        ]]
    );
    // The replay's own projection reads the status message (and the kind, when a stage
    // names one); every other span column stays null.
    let replay = cartscope::replay_projection(&cartscope::Model::load("reference").unwrap());
    let (by_replay, _) = load_projected(&file, replay).await;
    assert_eq!(
        rows(
            &by_replay,
            "SELECT status_message, span_kind, parent_span_id FROM spans"
        )
        .await,
        vec![vec!["boom", "NULL", "NULL"]]
    );
    assert_eq!(
        rows(&ctx, "SELECT map_keys(attributes) FROM span_events").await,
        vec![vec!["[exception.type]"]]
    );

    // Asked for by name, a span column is filled.
    let named = Projection {
        span_columns: Keys::only(["parent_span_id", "span_kind", "flags"]),
        ..Projection::nothing()
    };
    let (ctx, _) = load_projected(&file, named).await;
    assert_eq!(
        rows(
            &ctx,
            "SELECT parent_span_id, span_kind, flags, trace_state FROM spans"
        )
        .await,
        vec![vec!["1112131415161718", "server", "257", "NULL"]]
    );

    // Read whole, the same document's wrong-typed value skips its span, and says so.
    let (ctx, stats) = load(std::slice::from_ref(&file)).await;
    assert_eq!(stats.bad_total, 1);
    assert!(
        stats.bad[0].reason.contains("bad.unread"),
        "{:?}",
        stats.bad
    );
    assert_eq!(one(&ctx, "SELECT count(*) FROM spans").await, "0");
}

#[tokio::test]
async fn the_protobuf_reader_keeps_only_the_projected_attributes() {
    // The Python SDK's protobuf: HTTP spans with several attributes each.
    let file = fixture("real-sdk/py-proto/traces.binpb.gz");
    let opts = |p: Projection| LoadOptions {
        threads: 1,
        projection: Arc::new(p),
        ..LoadOptions::default()
    };
    let (whole, _) = load_with(std::slice::from_ref(&file), opts(Projection::everything())).await;
    let keys =
        "SELECT DISTINCT k FROM (SELECT unnest(map_keys(attributes)) AS k FROM spans) ORDER BY k";
    let all = rows(&whole, keys).await;
    assert!(
        all.len() > 1 && all.contains(&vec!["cart.id".to_string()]),
        "{all:?}"
    );
    let projection = Projection {
        span: Keys::only(["cart.id"]),
        ..Projection::nothing()
    };
    let (part, _) = load_with(std::slice::from_ref(&file), opts(projection)).await;
    assert_eq!(rows(&part, keys).await, vec![vec!["cart.id"]]);
    let same =
        "SELECT trace_id, span_id, attributes['cart.id'], service_name FROM spans ORDER BY 1, 2";
    assert_eq!(rows(&part, same).await, rows(&whole, same).await);
}

/// A stage that names a span kind: the replay then reads the kinds of a raw export's spans
/// (`replay::projection`), and answers as from the whole dataset. The JS SDK's shop calls
/// its shipping quotes as client spans (`POST /v1/rates`); the stage below takes only those.
#[test]
fn a_stage_that_names_a_span_kind_is_matched_from_a_raw_export() {
    let raw = fixture("real-sdk/js/traces.jsonl.gz");
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    ingest(&raw, &ds);
    let from = "name = \"shipping\"\nspans = [\"shipping.calculate_rates\"]";
    let text = cartscope::Preset::Reference.text();
    assert!(text.contains(from));
    let model = tmp.path().join("kinds.toml");
    std::fs::write(
        &model,
        text.replace(
            from,
            "name = \"shipping\"\nspans = [\"shipping.calculate_rates\", \"POST /v1/rates\"]\nkind = \"client\"",
        ),
    )
    .unwrap();
    let per_stage = [
        "query",
        "-f",
        "csv",
        "--model",
        model.to_str().unwrap(),
        "-e",
        "SELECT stage, count(*) AS spans FROM cart_events GROUP BY stage ORDER BY stage",
    ];
    let from_raw = run_on(&per_stage, &raw);
    assert_eq!(from_raw, run_on(&per_stage, &ds));
    assert!(from_raw.contains("\nshipping,32\n"), "{from_raw}");
    let detect = ["detect", "-f", "csv", "--model", model.to_str().unwrap()];
    assert_eq!(run_on(&detect, &raw), run_on(&detect, &ds));
}
