//! The `logs` table: OTLP log records from every input form, linked to carts through their
//! traces, and the cart's last error or warning line in the report and in
//! `error_before_abandonment`. Data: a hand-made export with hostile log records (written
//! here, not by cartscope), a protobuf LogsData message built with the OpenTelemetry proto
//! types, and a generated export (`cartscope generate` writes log records inside its spans).
//! The real OpenTelemetry logs example is read in `otlp_examples`.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine;
use prost::Message;

use crate::util::*;

fn ok(args: &[&str]) -> String {
    let o = cartscope(args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).unwrap()
}

/// The rows of a command's `-f ndjson` output, and the text itself for messages.
fn ndjson(args: &[&str]) -> (Vec<serde_json::Value>, String) {
    let text = ok(args);
    let rows = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (rows, text)
}

/// Span `n` of cart `c` in the hand-made export: its trace and span ids (see `util::span`).
fn ids(c: u32, n: u32) -> (String, String) {
    let k = u64::from(c) * 1000 + u64::from(n) + 1;
    (format!("{:032x}", u128::from(k)), format!("{k:016x}"))
}

/// One log record as OTLP/JSON, with the given fields (already JSON) besides its time.
fn record(at_s: u64, fields: &str) -> String {
    format!(
        r#"{{"timeUnixNano":"{}","observedTimeUnixNano":"{}",{fields}}}"#,
        BASE_NS + at_s * S,
        BASE_NS + at_s * S + 1000
    )
}

fn logs_line(records: &[String]) -> String {
    format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"checkout"}}}}]}},"scopeLogs":[{{"scope":{{"name":"hand-made","version":"0.1"}},"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    ) + "\n"
}

/// Four carts, each span its own trace carrying cart.id, all abandoned by the as-of time, and
/// log records that test each rule:
/// - cart 0: INFO in its first trace, WARN (severity as the enum's name) in its second, ERROR
///   (ids in base64, as protobuf's JSON mapping writes them) in its failed payment, then an
///   INFO after the ERROR: the ERROR is its last warning-or-worse line.
/// - cart 1: a record with no severity number and the text "warning", a kvlist body.
/// - cart 2: an ERROR with no trace id: linked to no cart.
/// - cart 3: an ERROR a day later, past its abandonment: not taken.
/// - one record with a severity number that is not one: skipped and reported.
fn hand_made(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut spans = String::new();
    for cart in 0..4u32 {
        let id = format!("cart-{cart}");
        let t = u64::from(cart) * 10;
        let steps = [
            ("cart.add_item", 0, 40, false),
            ("cart.begin_checkout", 60, 80, false),
            ("payment.authorize", 120, 300, true),
        ];
        let n_steps = if cart == 0 { 3 } else { 1 };
        for (n, (name, at, ms, error)) in steps.into_iter().take(n_steps).enumerate() {
            let step = Step {
                name,
                at_s: t + at,
                ms,
                error,
            };
            span(&mut spans, cart, n as u32, step, &[("cart.id", id.clone())]);
        }
    }
    let b64 = |hex: &str| {
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let (t00, s00) = ids(0, 0);
    let (t01, s01) = ids(0, 1);
    let (t02, s02) = ids(0, 2);
    let (t10, s10) = ids(1, 0);
    let (t30, s30) = ids(3, 0);
    let records = [
        record(
            0,
            &format!(
                r#""severityNumber":9,"severityText":"INFO","body":{{"stringValue":"item added"}},"traceId":"{t00}","spanId":"{s00}""#
            ),
        ),
        record(
            60,
            &format!(
                r#""severityNumber":"SEVERITY_NUMBER_WARN","body":{{"stringValue":"quote slow"}},"traceId":"{t01}","spanId":"{s01}""#
            ),
        ),
        record(
            120,
            &format!(
                r#""severityNumber":17,"severityText":"ERROR","body":{{"stringValue":"payment.authorize failed: card declined"}},"traceId":"{}","spanId":"{}""#,
                b64(&t02),
                b64(&s02)
            ),
        ),
        record(
            121,
            &format!(
                r#""severityNumber":9,"severityText":"INFO","body":{{"stringValue":"request done"}},"traceId":"{t02}","spanId":"{s02}""#
            ),
        ),
        record(
            10,
            &format!(
                r#""severityText":"warning","body":{{"kvlistValue":{{"values":[{{"key":"event","value":{{"stringValue":"stock low"}}}},{{"key":"left","value":{{"intValue":"2"}}}}]}}}},"traceId":"{t10}","spanId":"{s10}""#
            ),
        ),
        record(
            20,
            r#""severityNumber":17,"severityText":"ERROR","body":{"stringValue":"no trace here"}"#,
        ),
        record(
            30 + 86_400,
            &format!(
                r#""severityNumber":17,"severityText":"ERROR","body":{{"stringValue":"a day late"}},"traceId":"{t30}","spanId":"{s30}""#
            ),
        ),
        record(
            31,
            r#""severityNumber":"loud","body":{"stringValue":"not a severity"}"#,
        ),
    ];
    let traces = dir.join("traces.jsonl");
    let logs = dir.join("logs.jsonl");
    std::fs::write(&traces, traces_line(&spans)).unwrap();
    // The bad record on line 2 of its file: one good line before it.
    let mut text = logs_line(&records[..1]);
    text.push_str(&logs_line(&records[1..]));
    std::fs::write(&logs, text).unwrap();
    (traces, logs)
}

/// `error_before_abandonment`'s rows over `data` as of `AS_OF`, and its text for messages.
fn error_before_abandonment(data: &str) -> (Vec<serde_json::Value>, String) {
    ndjson(&[
        "query",
        "error_before_abandonment",
        "--data",
        data,
        "--as-of",
        AS_OF,
        "-f",
        "ndjson",
    ])
}

/// Two hours after the hand-made export starts: every cart abandoned (threshold 30 min) in
/// the report's period; the late record of cart 3 comes a day after its abandonment.
const AS_OF: &str = "2026-11-18T13:06:40Z";

#[test]
fn hostile_log_records_are_read_linked_to_carts_and_the_last_warning_is_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let (traces, logs) = hand_made(tmp.path());
    let data = tmp.path().to_str().unwrap();

    // Read: seven records; the eighth skipped, named by file and line.
    let o = cartscope(&[
        "query",
        "--data",
        data,
        "-f",
        "csv",
        "-e",
        "SELECT severity_number, severity_text, body, trace_id, span_id, service_name, scope_name, \
         scope_version FROM logs ORDER BY timestamp",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (t02, s02) = ids(0, 2);
    let got = stdout(&o);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 8, "{got}");
    assert_eq!(
        lines[5],
        format!(
            "17,ERROR,payment.authorize failed: card declined,{t02},{s02},checkout,hand-made,0.1"
        )
    );
    assert!(lines[4].starts_with("13,,quote slow,"), "{got}");
    assert!(
        lines[2].starts_with(r#",warning,"{""event"":""stock low"",""left"":2}","#),
        "the kvlist body as JSON text: {got}"
    );
    assert!(lines[3].starts_with("17,ERROR,no trace here,,,"), "{got}");
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{}:2", logs.display())) && err.contains("unknown severity number"),
        "the bad record is named by file and line: {err}"
    );
    // Under --strict the bad record fails a question that reads the logs; one that does not
    // skips the log records unread (the replay alone never looks at them).
    let o = cartscope(&[
        "query",
        "--data",
        data,
        "--strict",
        "-e",
        "SELECT count(*) FROM logs",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = cartscope(&["detect", "--data", data, "--strict", "--as-of", AS_OF]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Linked: cart 0's four, cart 1's one, cart 3's late one; the record without a trace
    // belongs to no cart.
    let linked = ok(&[
        "query",
        "--data",
        data,
        "--as-of",
        AS_OF,
        "-f",
        "csv",
        "-e",
        "SELECT cart_id, count(*) AS n FROM cart_logs GROUP BY cart_id ORDER BY cart_id",
    ]);
    assert_eq!(linked, "cart_id,n\ncart-0,4\ncart-1,1\ncart-3,1\n");

    // The report's top carts: cart 0's ERROR (not the INFO after it), cart 1's warning by
    // its text, none for cart 2 (unlinked) or cart 3 (too late).
    let r = json(&["report", "--data", data, "--as-of", AS_OF, "-f", "json"]);
    let top = r["top_abandoned"].as_array().unwrap();
    assert_eq!(top.len(), 4, "{r}");
    let last = |cart: &str| -> serde_json::Value {
        top.iter().find(|c| c["cart_id"] == cart).unwrap()["last_log"].clone()
    };
    assert_eq!(last("cart-0")["severity"], "ERROR");
    assert_eq!(
        last("cart-0")["body"],
        "payment.authorize failed: card declined"
    );
    assert_eq!(last("cart-0")["time"], "2026-11-18T11:08:40.000000Z");
    assert_eq!(last("cart-1")["severity"], "warning");
    assert_eq!(last("cart-1")["body"], r#"{"event":"stock low","left":2}"#);
    assert!(last("cart-2").is_null() && last("cart-3").is_null(), "{r}");
    // The text report shows the column, the body cut to fit.
    let text = ok(&["report", "--data", data, "--as-of", AS_OF]);
    assert!(text.contains("last error/warning log"), "{text}");
    assert!(
        text.contains("ERROR: payment.authorize failed: card declined"),
        "{text}"
    );

    // error_before_abandonment: cart 0, its last operation failed, with its ERROR line.
    let (rows, q) = error_before_abandonment(data);
    assert_eq!(rows.len(), 1, "{q}");
    assert_eq!(rows[0]["cart_id"], "cart-0");
    assert_eq!(rows[0]["last_log_severity"], "ERROR");
    assert_eq!(
        rows[0]["last_log_body"],
        "payment.authorize failed: card declined"
    );
    drop(traces);
}

/// Without logs the report is what it was: no column, no `last_log` field. Data: the real JS
/// SDK's export (traces only).
#[test]
fn an_export_without_logs_reports_no_log_column() {
    let dir = fixture("real-sdk/js/traces.jsonl.gz");
    let text = ok(&["report", "--data", dir.to_str().unwrap()]);
    assert!(!text.contains("last error/warning log"), "{text}");
    let r = ok(&["report", "--data", dir.to_str().unwrap(), "-f", "json"]);
    assert!(!r.contains("last_log"));
}

/// A LogsData protobuf message (what the Collector's file exporter writes with `format:
/// proto`), built with the OpenTelemetry proto types: the same rows as its JSON.
#[test]
fn log_records_in_protobuf_read_as_in_json() {
    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue, InstrumentationScope, KeyValue,
    };
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, LogsData, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    let text = |s: &str| AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    };
    let msg = LogsData {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(text("payment")),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.payment".into(),
                    ..Default::default()
                }),
                log_records: vec![
                    LogRecord {
                        time_unix_nano: BASE_NS,
                        observed_time_unix_nano: BASE_NS + 1000,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: Some(text("card declined")),
                        attributes: vec![KeyValue {
                            key: "code.lineno".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::IntValue(42)),
                            }),
                            ..Default::default()
                        }],
                        trace_id: vec![0x5b; 16],
                        span_id: vec![0xee; 8],
                        ..Default::default()
                    },
                    // No time: the observed time stands in for it.
                    LogRecord {
                        observed_time_unix_nano: BASE_NS + 5 * S,
                        severity_number: 13,
                        body: Some(text("retrying")),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("logs.binpb");
    std::fs::write(&file, msg.encode_to_vec()).unwrap();
    let sql = "SELECT CAST(timestamp AS BIGINT) AS t, CAST(observed_timestamp AS BIGINT) AS o, \
               severity_number, severity_text, body, attributes['code.lineno'] AS line, trace_id, \
               span_id, service_name, scope_name FROM logs ORDER BY t";
    let got = ok(&[
        "query",
        "--data",
        file.to_str().unwrap(),
        "-f",
        "csv",
        "-e",
        sql,
    ]);
    let b = BASE_NS / 1000;
    assert_eq!(
        got,
        format!(
            "t,o,severity_number,severity_text,body,line,trace_id,span_id,service_name,scope_name\n\
             {b},{},17,ERROR,card declined,42,{},{},payment,io.opentelemetry.payment\n\
             {},{},13,,retrying,,,,payment,io.opentelemetry.payment\n",
            b + 1,
            "5b".repeat(16),
            "ee".repeat(8),
            b + 5_000_000,
            b + 5_000_000,
        )
    );
}

/// A generated export's log records: ingested into the dataset (and read back from its Parquet
/// as from the raw JSON), piped on stdin, and linked to the carts whose last operation failed.
#[test]
fn generated_logs_survive_ingest_and_stdin_and_name_the_failed_operation() {
    let tmp = tempfile::tempdir().unwrap();
    let gen = tmp.path().join("gen");
    generate(&gen, &["--carts", "1500", "--seed", "11"]);
    let otlp = gen.join("otlp");
    let ds = tmp.path().join("ds");
    ingest(&ds, &[&otlp]);
    let sql = "SELECT severity_text, count(*) AS n, count(DISTINCT trace_id) AS traces, \
               count(span_id) AS with_span, min(body) AS first_body FROM logs \
               GROUP BY severity_text ORDER BY severity_text";
    let raw = ok(&[
        "query",
        "--data",
        otlp.to_str().unwrap(),
        "-f",
        "csv",
        "-e",
        sql,
    ]);
    let stored = ok(&[
        "query",
        "--data",
        ds.to_str().unwrap(),
        "-f",
        "csv",
        "-e",
        sql,
    ]);
    assert_eq!(
        raw, stored,
        "the dataset holds the raw export's log records"
    );
    let severities: Vec<&str> = raw
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(severities, ["ERROR", "INFO", "WARN"], "{raw}");
    // Every record carries its span's ids.
    for l in raw.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f[1], f[3], "{l}");
    }
    // The dataset's logs Parquet, given alone, is a logs table.
    let part = walk(&ds)
        .into_iter()
        .find(|p| {
            p.to_string_lossy().contains("logs") && p.extension().is_some_and(|e| e == "parquet")
        })
        .expect("a logs part in the dataset");
    let from_part = ok(&[
        "query",
        "--data",
        part.to_str().unwrap(),
        "-f",
        "csv",
        "-e",
        "SELECT count(*) > 0 AS some FROM logs",
    ]);
    assert_eq!(from_part, "some\ntrue\n");
    // On stdin, compressed.
    let logs = std::fs::read(otlp.join("logs.jsonl")).unwrap();
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&logs).unwrap();
        e.finish().unwrap()
    };
    let o = piped(&["query", "--data", "-", "-f", "csv", "-e", sql], &gz);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), raw);

    // Each abandoned cart whose last operation failed shows that failure's ERROR line.
    let (rows, q) = ndjson(&[
        "query",
        "error_before_abandonment",
        "--data",
        ds.to_str().unwrap(),
        "-f",
        "ndjson",
    ]);
    assert!(rows.len() >= 5, "{q}");
    for r in &rows {
        assert_eq!(r["last_log_severity"], "ERROR", "{r}");
        let want = format!(
            "{} failed: {}",
            r["operation"].as_str().unwrap(),
            r["status_message"].as_str().unwrap()
        );
        assert_eq!(r["last_log_body"], want.as_str(), "{r}");
    }
    // The report's top carts: a failed last operation's cart shows its ERROR line.
    let rep = json(&[
        "report",
        "--data",
        ds.to_str().unwrap(),
        "-f",
        "json",
        "--top",
        "200",
    ]);
    let top = rep["top_abandoned"].as_array().unwrap();
    let failed: Vec<&serde_json::Value> = top
        .iter()
        .filter(|c| c["last_op_status"] == "error")
        .collect();
    assert!(!failed.is_empty(), "some top carts failed last");
    for c in failed {
        assert_eq!(c["last_log"]["severity"], "ERROR", "{c}");
        let body = c["last_log"]["body"].as_str().unwrap();
        assert!(
            body.starts_with(&format!(
                "{} failed: ",
                c["last_operation"].as_str().unwrap()
            )),
            "{c}"
        );
    }
    let mut s = String::new();
    for c in top.iter().filter(|c| !c["last_log"].is_null()) {
        let _ = writeln!(s, "{}", c["last_log"]["severity"]);
    }
    assert!(
        s.lines().all(|l| l == "\"ERROR\"" || l == "\"WARN\""),
        "{s}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn schema_logs_documents_the_table() {
    let out = ok(&["schema", "logs", "-f", "csv"]);
    let columns: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "timestamp",
            "observed_timestamp",
            "severity_number",
            "severity_text",
            "body",
            "attributes",
            "resource_attributes",
            "trace_id",
            "span_id",
            "event_name",
            "service_name",
            "scope_name",
            "scope_version",
            "flags",
            "dropped_attributes_count",
        ]
    );
}

/// Log records written by the real OpenTelemetry Python SDK (its `LoggingHandler` inside the
/// spans, exported over OTLP/HTTP and written in protobuf's JSON mapping: base64 ids, severity
/// numbers as enum names, `code.*` attributes; tests/fixtures/real-sdk/py-logs, made by
/// `bench/real-sdk/make.sh --logs`). The truth was worked out from the simulation's plan, not
/// from the export: every record count, each cart's linked records, and each abandoned cart's
/// last warning or error line.
#[test]
fn the_python_sdks_log_records_link_to_their_carts_as_the_truth_says() {
    let dir = fixture("real-sdk/py-logs");
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap();
    let end = truth["generator"]["end"].as_str().unwrap().to_string();
    let traces = dir.join("traces.jsonl.gz");
    let logs = dir.join("logs.jsonl.gz");
    let (traces, logs) = (traces.to_str().unwrap(), logs.to_str().unwrap());
    let data = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--data", traces, logs, "--as-of", &end].map(String::from));
        v
    };
    let run = |args: &[&str]| -> String {
        let args = data(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&args)
    };

    // Every record read, by severity, as the SDK wrote them.
    let by_severity = run(&[
        "query",
        "-f",
        "csv",
        "-e",
        "SELECT severity_text, severity_number, count(*) AS n, count(trace_id) AS with_trace, \
         count(attributes['code.line.number']) AS with_line FROM logs \
         GROUP BY 1, 2 ORDER BY 1",
    ]);
    let sev = &truth["totals"]["log_severities"];
    let n = |s: &str| sev[s].as_u64().unwrap();
    assert_eq!(
        by_severity,
        format!(
            "severity_text,severity_number,n,with_trace,with_line\n\
             ERROR,17,{e},{e},{e}\nINFO,9,{i},{i},{i}\nWARN,13,{w},{w},{w}\n",
            e = n("ERROR"),
            i = n("INFO"),
            w = n("WARN")
        )
    );

    // Each cart's records, linked through its traces.
    let linked = run(&[
        "query",
        "-f",
        "csv",
        "-e",
        "SELECT cart_id, count(*) AS n FROM cart_logs GROUP BY cart_id ORDER BY cart_id",
    ]);
    let got: std::collections::HashMap<String, u64> = linked
        .lines()
        .skip(1)
        .map(|l| {
            let (c, n) = l.split_once(',').unwrap();
            (c.to_string(), n.parse().unwrap())
        })
        .collect();
    let carts = truth["carts"].as_array().unwrap();
    let mut with_logs = 0;
    for c in carts {
        let want = c["log_count"].as_u64().unwrap();
        let id = c["cart_id"].as_str().unwrap();
        assert_eq!(got.get(id).copied().unwrap_or(0), want, "{id}");
        with_logs += usize::from(want > 0);
    }
    assert_eq!(got.len(), with_logs, "no cart has records it should not");

    // The report's top carts: each abandoned cart's last warning or error line.
    let report: serde_json::Value =
        serde_json::from_str(&run(&["report", "-f", "json", "--top", "1000"])).unwrap();
    let top = report["top_abandoned"].as_array().unwrap();
    let abandoned: Vec<&serde_json::Value> = carts
        .iter()
        .filter(|c| c["outcome"] == "abandoned")
        .collect();
    assert_eq!(top.len(), abandoned.len());
    let mut shown = 0;
    for want in abandoned {
        let id = want["cart_id"].as_str().unwrap();
        let got = top.iter().find(|c| c["cart_id"] == id).unwrap();
        assert_eq!(got["last_log"], want["last_log"], "{id}");
        shown += usize::from(!want["last_log"].is_null());
    }
    assert!(shown >= 10, "only {shown} carts have a last log line");
}

/// `error_before_abandonment` as of `AS_OF` over hand-made spans (one traces line) and log
/// records (one logs line; none when empty): its rows, and its text for messages.
fn failed_rows(spans: &[String], records: &[String]) -> (Vec<serde_json::Value>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let traces = tmp.path().join("traces.jsonl");
    std::fs::write(&traces, traces_line(&spans.join(","))).unwrap();
    let logs = tmp.path().join("logs.jsonl");
    let mut data = vec![traces.to_str().unwrap()];
    if !records.is_empty() {
        std::fs::write(&logs, logs_line(records)).unwrap();
        data.push(logs.to_str().unwrap());
    }
    let mut args = vec!["query", "error_before_abandonment", "--data"];
    args.extend(data);
    args.extend(["--as-of", AS_OF, "-f", "ndjson"]);
    ndjson(&args)
}

/// A trace holding many of a cart's spans and many warning lines (hand-made, each cart's
/// checkout trace: 60 database spans without cart.id and 60 warnings, then a failed payment
/// and its ERROR line): `error_before_abandonment` gives each cart one row, with the failed
/// payment and its ERROR line; a warning written after the cart's abandonment does not count.
#[test]
fn a_trace_of_many_spans_and_warnings_gives_its_cart_one_row_with_its_last_line() {
    let (mut spans, mut records) = (Vec::new(), Vec::new());
    for c in 0..3u64 {
        let trace = format!("{:032x}", 0xabc000 + c);
        let root = format!("{:016x}", c * 1000 + 1);
        let pay = format!("{:016x}", c * 1000 + 2);
        let at = |ms: u64| BASE_NS + c * 60 * S + ms * 1_000_000;
        let span = |id: &str,
                    parent: &str,
                    name: &str,
                    t0: u64,
                    t1: u64,
                    attrs: &str,
                    status: &str| {
            format!(
                r#"{{"traceId":"{trace}","spanId":"{id}","parentSpanId":"{parent}","name":"{name}","kind":2,"startTimeUnixNano":"{t0}","endTimeUnixNano":"{t1}","attributes":[{attrs}],"status":{{{status}}}}}"#
            )
        };
        let cart = format!(r#"{{"key":"cart.id","value":{{"stringValue":"cart-{c}"}}}}"#);
        spans.push(span(
            &root,
            "",
            "cart.begin_checkout",
            at(0),
            at(900),
            &cart,
            "",
        ));
        for i in 0..60 {
            let id = format!("{:016x}", c * 1000 + 10 + i);
            spans.push(span(&id, &root, "db.query", at(10 + i), at(11 + i), "", ""));
            records.push(record(
                c * 60 + 1,
                &format!(
                    r#""severityNumber":13,"severityText":"WARN","body":{{"stringValue":"pool slow {i}"}},"traceId":"{trace}","spanId":"{id}""#
                ),
            ));
        }
        spans.push(span(
            &pay,
            &root,
            "payment.authorize",
            at(1000),
            at(1300),
            &cart,
            r#""code":2,"message":"insufficient funds""#,
        ));
        records.push(record(
            c * 60 + 2,
            &format!(
                r#""severityNumber":17,"severityText":"ERROR","body":{{"stringValue":"payment failed for cart-{c}"}},"traceId":"{trace}","spanId":"{pay}""#
            ),
        ));
        // An hour later, past the cart's abandonment (30 minutes after its last span).
        records.push(record(
            c * 60 + 3600,
            &format!(
                r#""severityNumber":13,"severityText":"WARN","body":{{"stringValue":"late"}},"traceId":"{trace}","spanId":"{root}""#
            ),
        ));
    }
    let (rows, text) = failed_rows(&spans, &records);
    assert_eq!(rows.len(), 3, "{text}");
    for r in &rows {
        let c = r["cart_id"].as_str().unwrap().trim_start_matches("cart-");
        let c: u64 = c.parse().unwrap();
        assert_eq!(r["operation"], "payment.authorize", "{r}");
        assert_eq!(r["status_message"], "insufficient funds", "{r}");
        assert_eq!(r["carts_with_this_error"], 3, "{r}");
        assert_eq!(
            r["span_id"],
            format!("{:016x}", c * 1000 + 2).as_str(),
            "{r}"
        );
        assert_eq!(r["last_log_severity"], "ERROR", "{r}");
        assert_eq!(
            r["last_log_body"],
            format!("payment failed for cart-{c}").as_str(),
            "{r}"
        );
    }
}

/// A cart over three traces (hand-made): a warning in its first; its failed payment, with no
/// log line, in its second; in its third a span that ends with the payment but started
/// before it. `error_before_abandonment` names the payment (the later start wins the tie,
/// as in the replay) and the first trace's warning: each trace's lines count, not only the
/// last span's trace's.
#[test]
fn the_last_line_may_come_from_another_trace_than_the_failed_span() {
    let cart = r#"{"key":"cart.id","value":{"stringValue":"cart-7"}}"#;
    let ms = |ms: u64| BASE_NS + ms * 1_000_000;
    let span = |trace: u64, id: u64, name: &str, t0: u64, t1: u64, status: &str| {
        format!(
            r#"{{"traceId":"{trace:032x}","spanId":"{id:016x}","name":"{name}","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[{cart}],"status":{{{status}}}}}"#,
            ms(t0),
            ms(t1)
        )
    };
    let spans = [
        span(0xa1, 1, "cart.add_item", 0, 100, ""),
        span(0xb2, 2, "cart.begin_checkout", 60_000, 61_000, ""),
        span(
            0xb2,
            3,
            "payment.authorize",
            70_000,
            70_500,
            r#""code":2,"message":"card declined""#,
        ),
        span(0xc3, 4, "cart.add_item", 69_000, 70_500, ""),
    ];
    let warning = record(
        1,
        &format!(
            r#""severityNumber":13,"severityText":"WARN","body":{{"stringValue":"stock low"}},"traceId":"{:032x}","spanId":"{:016x}""#,
            0xa1, 1
        ),
    );
    let (rows, text) = failed_rows(&spans, &[warning]);
    assert_eq!(rows.len(), 1, "{text}");
    let r = &rows[0];
    assert_eq!(r["cart_id"], "cart-7", "{r}");
    assert_eq!(r["operation"], "payment.authorize", "{r}");
    assert_eq!(r["status_message"], "card declined", "{r}");
    assert_eq!(r["trace_id"], format!("{:032x}", 0xb2).as_str(), "{r}");
    assert_eq!(r["span_id"], format!("{:016x}", 3).as_str(), "{r}");
    assert_eq!(r["last_log_severity"], "WARN", "{r}");
    assert_eq!(r["last_log_body"], "stock low", "{r}");
}

/// A failed payment exported twice, as overlapping exports repeat spans (hand-made: two carts,
/// each payment in two copies that differ only in their status message): each cart is one
/// row of `error_before_abandonment`, counted once, with the message of the copy the replay
/// keeps (of copies equal in all else, the greater message).
#[test]
fn a_failed_span_exported_twice_gives_its_cart_one_row() {
    let ms = |ms: u64| BASE_NS + ms * 1_000_000;
    let mut spans = Vec::new();
    for c in 0..2u64 {
        let cart = format!(r#"{{"key":"cart.id","value":{{"stringValue":"cart-{c}"}}}}"#);
        let span = |id: u64, name: &str, t0: u64, t1: u64, status: &str| {
            format!(
                r#"{{"traceId":"{:032x}","spanId":"{id:016x}","name":"{name}","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[{cart}],"status":{{{status}}}}}"#,
                0xd0 + c,
                ms(t0),
                ms(t1)
            )
        };
        spans.push(span(1, "cart.begin_checkout", 0, 1_000, ""));
        for message in ["card declined", "card declined by issuer"] {
            spans.push(span(
                2,
                "payment.authorize",
                2_000,
                2_300,
                &format!(r#""code":2,"message":"{message}""#),
            ));
        }
    }
    let (rows, text) = failed_rows(&spans, &[]);
    assert_eq!(rows.len(), 2, "{text}");
    for r in &rows {
        assert_eq!(r["status_message"], "card declined by issuer", "{r}");
        assert_eq!(r["carts_with_this_error"], 2, "{r}");
    }
}

/// Of two warning-or-worse lines at one time, the worse is the cart's last line, whichever
/// way each says its severity: cart 0 has a WARNING by its text alone (no number) beside an
/// ERROR numbered 17, cart 1 an ERROR by its text alone beside a WARN numbered 13. The
/// report and `error_before_abandonment` both take the ERROR. Data: hand-made (two carts,
/// each one failed payment whose trace has the two records, at the same nanosecond).
#[test]
fn of_two_lines_at_one_time_the_worse_is_taken_however_its_severity_is_said() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spans = String::new();
    for cart in 0..2u32 {
        let step = Step {
            name: "payment.authorize",
            at_s: u64::from(cart) * 10,
            ms: 300,
            error: true,
        };
        span(
            &mut spans,
            cart,
            0,
            step,
            &[("cart.id", format!("cart-{cart}"))],
        );
    }
    let line = |cart: u32, severity: &str, body: &str| {
        let (t, s) = ids(cart, 0);
        record(
            u64::from(cart) * 10,
            &format!(
                r#"{severity},"body":{{"stringValue":"{body}"}},"traceId":"{t}","spanId":"{s}""#
            ),
        )
    };
    let records = [
        line(0, r#""severityText":"WARNING""#, "a retry"),
        line(
            0,
            r#""severityNumber":17,"severityText":"ERROR""#,
            "card declined",
        ),
        line(1, r#""severityText":"ERROR""#, "gateway down"),
        line(
            1,
            r#""severityNumber":13,"severityText":"WARN""#,
            "gateway slow",
        ),
    ];
    std::fs::write(tmp.path().join("traces.jsonl"), traces_line(&spans)).unwrap();
    std::fs::write(tmp.path().join("logs.jsonl"), logs_line(&records)).unwrap();
    let data = tmp.path().to_str().unwrap();
    let want = [("cart-0", "card declined"), ("cart-1", "gateway down")];

    let r = json(&["report", "--data", data, "--as-of", AS_OF, "-f", "json"]);
    let top = r["top_abandoned"].as_array().unwrap();
    for (cart, body) in want {
        let c = top.iter().find(|c| c["cart_id"] == cart).unwrap();
        assert_eq!(c["last_log"]["severity"], "ERROR", "{cart}: {c}");
        assert_eq!(c["last_log"]["body"], body, "{cart}: {c}");
    }
    let (rows, q) = error_before_abandonment(data);
    assert_eq!(rows.len(), 2, "{q}");
    for (cart, body) in want {
        let row = rows.iter().find(|r| r["cart_id"] == cart).unwrap();
        assert_eq!(row["last_log_severity"], "ERROR", "{cart}: {row}");
        assert_eq!(row["last_log_body"], body, "{cart}: {row}");
    }
}
