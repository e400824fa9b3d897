//! The SQL library (`queries/*.sql`) on sample-data: every query is run through the binary, as a
//! user runs it, and its actual rows are checked against values computed independently: from
//! `sample-data/truth.json` (what the generator knows about every cart) and from the raw
//! OTLP/JSON export parsed here, never from the replay's own tables.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use crate::util::*;

use serde_json::{Map, Value};

/// The as-of time the sample is judged at (its latest timestamp, the default).
const AS_OF: &str = "2026-11-20T12:00:00Z";
/// The reference model's stages, in order; `completed` is the success stage.
const STAGES: [&str; 5] = ["active", "checkout", "shipping", "payment", "completed"];
const BUCKETS: [(&str, f64, f64); 5] = [
    ("<500 ms", 0.0, 500.0),
    ("500-1000 ms", 500.0, 1000.0),
    ("1000-2000 ms", 1000.0, 2000.0),
    ("2000-4000 ms", 2000.0, 4000.0),
    (">=4000 ms", 4000.0, f64::INFINITY),
];

fn data() -> String {
    root("sample-data/otlp").display().to_string()
}

type Row = Map<String, Value>;

/// Runs `cartscope ARGS --data sample-data/otlp --as-of AS_OF -f ndjson`, one object per row.
fn cartscope(args: &[&str]) -> Vec<Row> {
    let data = data();
    let mut all = args.to_vec();
    all.extend(["--data", &data, "--as-of", AS_OF, "-f", "ndjson"]);
    ndjson(&all)
}

/// Runs `cartscope ARGS` (which ask for ndjson), one object per row.
fn ndjson(args: &[&str]) -> Vec<Row> {
    let out = cmd().args(args).output().expect("cartscope runs");
    assert!(
        out.status.success(),
        "cartscope {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Row>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A library query with `--param k=v` for each of `params`.
fn query(name: &str, params: &[(&str, &str)]) -> Vec<Row> {
    let kv: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec!["query", name];
    for p in &kv {
        args.push("--param");
        args.push(p);
    }
    cartscope(&args)
}

fn sql(sql: &str) -> Vec<Row> {
    cartscope(&["query", "-e", sql])
}

/// A text cell (None when null: ndjson leaves nulls out).
fn s<'a>(r: &'a Row, k: &str) -> Option<&'a str> {
    match r.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) => Some(v),
        Some(v) => panic!("{k} is not text: {v} in {r:?}"),
    }
}

fn st<'a>(r: &'a Row, k: &str) -> &'a str {
    s(r, k).unwrap_or_else(|| panic!("{k} is null in {r:?}"))
}

fn f(r: &Row, k: &str) -> Option<f64> {
    match r.get(k) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .unwrap_or_else(|| panic!("{k} is not a number: {v}")),
        ),
    }
}

fn fl(r: &Row, k: &str) -> f64 {
    f(r, k).unwrap_or_else(|| panic!("{k} is null in {r:?}"))
}

fn int(r: &Row, k: &str) -> i64 {
    r.get(k)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("{k} is not an integer in {r:?}"))
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() <= tol, "{what}: got {got}, want {want}");
}

fn micros(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap_or_else(|e| panic!("{ts}: {e}"))
        .timestamp_micros()
}

/// Nearest-rank percentile of sorted values.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p * n as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

fn stage_index(stage: &str) -> usize {
    STAGES
        .iter()
        .position(|s| *s == stage)
        .unwrap_or_else(|| panic!("unknown stage {stage}"))
}

// ---------------------------------------------------------------------------------------------
// The truth file.

#[derive(Debug, Clone)]
struct Cart {
    id: String,
    outcome: String,
    last_stage: String,
    item_count: i64,
    value: f64,
    first_seen_us: i64,
    last_activity_us: i64,
    last_operation: String,
    last_op_duration_ms: f64,
    last_op_status: String,
    last_trace_id: String,
    suspected_cause: String,
}

fn truth() -> &'static Vec<Cart> {
    static T: OnceLock<Vec<Cart>> = OnceLock::new();
    T.get_or_init(|| {
        let text = std::fs::read_to_string(root("sample-data/truth.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let carts: Vec<Cart> = v["carts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let t = |k: &str| {
                    c[k].as_str()
                        .unwrap_or_else(|| panic!("{k} in {c}"))
                        .to_string()
                };
                Cart {
                    id: t("cart_id"),
                    outcome: t("outcome"),
                    last_stage: t("last_stage"),
                    item_count: c["item_count"].as_i64().unwrap(),
                    value: c["value"].as_f64().unwrap(),
                    first_seen_us: micros(&t("first_seen")),
                    last_activity_us: micros(&t("last_activity")),
                    last_operation: t("last_operation"),
                    last_op_duration_ms: c["last_op_duration_ms"].as_f64().unwrap(),
                    last_op_status: t("last_op_status"),
                    last_trace_id: t("last_trace_id"),
                    suspected_cause: t("suspected_cause"),
                }
            })
            .collect();
        assert_eq!(carts.len(), 3000);
        carts
    })
}

fn truth_by_id() -> HashMap<&'static str, &'static Cart> {
    truth().iter().map(|c| (c.id.as_str(), c)).collect()
}

fn abandoned() -> Vec<&'static Cart> {
    truth()
        .iter()
        .filter(|c| c.outcome == "abandoned")
        .collect()
}

/// Highest value first, then cart id: the order the library ranks carts in.
fn by_value(mut carts: Vec<&'static Cart>) -> Vec<&'static Cart> {
    carts.sort_by(|a, b| b.value.total_cmp(&a.value).then_with(|| a.id.cmp(&b.id)));
    carts
}

// ---------------------------------------------------------------------------------------------
// The raw export, parsed here from the OTLP/JSON lines.

#[derive(Debug, Clone)]
struct Span {
    trace_id: String,
    span_id: String,
    name: String,
    start_us: i64,
    end_us: i64,
    duration_ms: f64,
    status_code: i64,
    status_message: Option<String>,
    cart_id: Option<String>,
    /// (event name, attributes)
    events: Vec<(String, HashMap<String, String>)>,
}

#[derive(Debug, Clone)]
struct Exemplar {
    metric: String,
    value: f64,
    trace_id: String,
    span_id: String,
}

struct Export {
    spans: Vec<Span>,
    exemplars: Vec<Exemplar>,
}

fn string_attrs(v: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for kv in v.as_array().into_iter().flatten() {
        if let (Some(k), Some(s)) = (kv["key"].as_str(), kv["value"]["stringValue"].as_str()) {
            out.insert(k.to_string(), s.to_string());
        }
    }
    out
}

fn nanos(v: &Value) -> i64 {
    v.as_str().unwrap().parse().unwrap()
}

fn export() -> &'static Export {
    static E: OnceLock<Export> = OnceLock::new();
    E.get_or_init(|| {
        let mut spans = Vec::new();
        let text = std::fs::read_to_string(root("sample-data/otlp/traces.jsonl")).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            for rs in v["resourceSpans"].as_array().unwrap() {
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for sp in ss["spans"].as_array().unwrap() {
                        let (start, end) = (
                            nanos(&sp["startTimeUnixNano"]),
                            nanos(&sp["endTimeUnixNano"]),
                        );
                        let attrs = string_attrs(&sp["attributes"]);
                        spans.push(Span {
                            trace_id: sp["traceId"].as_str().unwrap().to_string(),
                            span_id: sp["spanId"].as_str().unwrap().to_string(),
                            name: sp["name"].as_str().unwrap().to_string(),
                            start_us: start.div_euclid(1000),
                            end_us: end.div_euclid(1000),
                            duration_ms: (end - start) as f64 / 1e6,
                            status_code: sp["status"]["code"].as_i64().unwrap_or(0),
                            status_message: sp["status"]["message"].as_str().map(str::to_string),
                            cart_id: attrs.get("cart.id").cloned(),
                            events: sp["events"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|e| {
                                    (
                                        e["name"].as_str().unwrap().to_string(),
                                        string_attrs(&e["attributes"]),
                                    )
                                })
                                .collect(),
                        });
                    }
                }
            }
        }
        let mut exemplars = Vec::new();
        let text = std::fs::read_to_string(root("sample-data/otlp/metrics.jsonl")).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            for rm in v["resourceMetrics"].as_array().unwrap() {
                for sm in rm["scopeMetrics"].as_array().unwrap() {
                    for m in sm["metrics"].as_array().unwrap() {
                        let name = m["name"].as_str().unwrap();
                        for kind in [
                            "gauge",
                            "sum",
                            "histogram",
                            "exponentialHistogram",
                            "summary",
                        ] {
                            for dp in m[kind]["dataPoints"].as_array().into_iter().flatten() {
                                for ex in dp["exemplars"].as_array().into_iter().flatten() {
                                    let value = ex["asDouble"].as_f64().unwrap_or_else(|| {
                                        ex["asInt"].as_str().unwrap().parse::<f64>().unwrap()
                                    });
                                    exemplars.push(Exemplar {
                                        metric: name.to_string(),
                                        value,
                                        trace_id: ex["traceId"].as_str().unwrap().to_string(),
                                        span_id: ex["spanId"].as_str().unwrap().to_string(),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(
            spans.len(),
            17_846,
            "sample-data/README.md says 17,846 spans"
        );
        assert!(!exemplars.is_empty());
        Export { spans, exemplars }
    })
}

/// Each trace's cart: the (smallest) cart id any of its spans carries, as the reference model
/// attributes whole traces to the cart named on one of their spans.
fn trace_carts() -> HashMap<&'static str, &'static str> {
    let mut out: HashMap<&str, &str> = HashMap::new();
    for sp in &export().spans {
        if let Some(c) = &sp.cart_id {
            let e = out.entry(sp.trace_id.as_str()).or_insert(c.as_str());
            if c.as_str() < *e {
                *e = c.as_str();
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------

#[test]
fn slow_shipping_before_abandonment_is_the_abandoned_carts_after_a_slow_quote_by_value() {
    let check = |params: &[(&str, &str)], op: &str, threshold: f64| -> Vec<Row> {
        let rows = query("slow_shipping_before_abandonment", params);
        let want = by_value(
            abandoned()
                .into_iter()
                .filter(|c| c.last_operation == op && c.last_op_duration_ms > threshold)
                .collect(),
        );
        assert!(
            !want.is_empty(),
            "{op} over {threshold}: the sample has such carts"
        );
        let got_ids: Vec<&str> = rows.iter().map(|r| st(r, "cart_id")).collect();
        let want_ids: Vec<&str> = want.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            got_ids, want_ids,
            "{params:?}: the carts, by value descending"
        );
        for (r, c) in rows.iter().zip(&want) {
            close(fl(r, "cart_value"), c.value, 0.005, &c.id);
            close(
                fl(r, "quote_duration_ms"),
                c.last_op_duration_ms,
                0.0011,
                &c.id,
            );
            assert!(fl(r, "quote_duration_ms") > threshold);
            assert_eq!(st(r, "operation"), op);
            assert_eq!(st(r, "trace_id"), c.last_trace_id, "{}", c.id);
            assert_eq!(int(r, "item_count"), c.item_count, "{}", c.id);
            assert_eq!(st(r, "user_id").len(), "user-0000000".len());
        }
        // Sorted as numbers: the value column never rises.
        for w in rows.windows(2) {
            assert!(fl(&w[0], "cart_value") >= fl(&w[1], "cart_value"));
        }
        rows
    };
    let default = check(&[], "shipping.calculate_rates", 2000.0);
    assert_eq!(default.len(), 171);
    let slower = check(
        &[("threshold_ms", "4000")],
        "shipping.calculate_rates",
        4000.0,
    );
    assert!(slower.len() < default.len());
    let all: HashSet<&str> = default.iter().map(|r| st(r, "cart_id")).collect();
    assert!(
        slower.iter().all(|r| all.contains(st(r, "cart_id"))),
        "a subset"
    );
    // The operation is a parameter too (quotes in values are escaped, not injected).
    check(
        &[("operation", "payment.authorize"), ("threshold_ms", "5000")],
        "payment.authorize",
        5000.0,
    );
    assert!(query("slow_shipping_before_abandonment", &[("operation", "it's")]).is_empty());

    // The replay's attribution finds carts whose slow quote does not carry cart.id itself.
    let with_id: HashSet<String> = export()
        .spans
        .iter()
        .filter(|s| s.name == "shipping.calculate_rates" && s.duration_ms > 2000.0)
        .filter_map(|s| s.cart_id.clone())
        .collect();
    assert!(
        default.iter().any(|r| !with_id.contains(st(r, "cart_id"))),
        "some slow quotes lack cart.id and are still attributed"
    );
}

#[test]
fn error_before_abandonment_lists_the_failed_last_operations_with_their_exceptions() {
    let rows = query("error_before_abandonment", &[]);
    let truth = truth_by_id();
    let want: HashSet<&str> = abandoned()
        .into_iter()
        .filter(|c| c.last_op_status == "error")
        .map(|c| c.id.as_str())
        .collect();
    let got: Vec<&str> = rows.iter().map(|r| st(r, "cart_id")).collect();
    assert_eq!(got.len(), want.len(), "one row per cart");
    assert_eq!(got.iter().copied().collect::<HashSet<_>>(), want);
    assert_eq!(want.len(), 100);

    let spans: HashMap<(&str, &str), &Span> = export()
        .spans
        .iter()
        .map(|s| ((s.trace_id.as_str(), s.span_id.as_str()), s))
        .collect();
    let mut per_error: HashMap<(String, String), i64> = HashMap::new();
    for r in &rows {
        let c = truth[st(r, "cart_id")];
        assert_eq!(st(r, "operation"), c.last_operation);
        assert_eq!(st(r, "trace_id"), c.last_trace_id);
        close(fl(r, "duration_ms"), c.last_op_duration_ms, 0.0011, &c.id);
        close(fl(r, "cart_value"), c.value, 0.005, &c.id);
        assert_eq!(st(r, "last_stage"), c.last_stage);
        // The span: the cart's failed last operation, with its status message and exception.
        let sp = spans[&(st(r, "trace_id"), st(r, "span_id"))];
        assert_eq!(sp.name, c.last_operation);
        assert_eq!(sp.status_code, 2, "status error");
        close(sp.duration_ms, c.last_op_duration_ms, 1e-6, "span duration");
        assert_eq!(s(r, "status_message"), sp.status_message.as_deref());
        let (_, ex) = sp
            .events
            .iter()
            .rev()
            .find(|(n, _)| n == "exception")
            .unwrap_or_else(|| panic!("{} has no exception event", sp.span_id));
        assert_eq!(
            s(r, "exception_type"),
            ex.get("exception.type").map(String::as_str)
        );
        assert_eq!(
            s(r, "exception_message"),
            ex.get("exception.message").map(String::as_str)
        );
        *per_error
            .entry((
                c.last_operation.clone(),
                sp.status_message.clone().unwrap_or_default(),
            ))
            .or_default() += 1;
    }
    // The count per (operation, message), and the order: commonest first, then by value.
    for r in &rows {
        let k = (
            st(r, "operation").to_string(),
            s(r, "status_message").unwrap_or("").to_string(),
        );
        assert_eq!(int(r, "carts_with_this_error"), per_error[&k], "{k:?}");
    }
    assert_eq!(per_error.len(), 3);
    let key = |r: &Row| {
        (
            -int(r, "carts_with_this_error"),
            st(r, "operation").to_string(),
            s(r, "status_message").unwrap_or("").to_string(),
        )
    };
    for w in rows.windows(2) {
        let (a, b) = (key(&w[0]), key(&w[1]));
        assert!(a <= b, "{a:?} before {b:?}");
        if a == b {
            let (va, vb) = (fl(&w[0], "cart_value"), fl(&w[1], "cart_value"));
            assert!(va > vb || (va == vb && st(&w[0], "cart_id") < st(&w[1], "cart_id")));
        }
    }
}

#[test]
fn high_value_abandoned_is_the_top_abandoned_carts_by_value() {
    for (params, n) in [(vec![], 20usize), (vec![("limit", "5")], 5)] {
        let rows = query("high_value_abandoned", &params);
        let want: Vec<&Cart> = by_value(abandoned()).into_iter().take(n).collect();
        assert_eq!(rows.len(), n);
        for (r, c) in rows.iter().zip(&want) {
            assert_eq!(st(r, "cart_id"), c.id);
            close(fl(r, "cart_value"), c.value, 0.005, &c.id);
            assert_eq!(st(r, "last_operation"), c.last_operation);
            close(
                fl(r, "last_op_duration_ms"),
                c.last_op_duration_ms,
                0.0011,
                &c.id,
            );
            assert_eq!(st(r, "last_op_status"), c.last_op_status);
            assert_eq!(st(r, "last_trace_id"), c.last_trace_id);
            assert_eq!(st(r, "last_stage"), c.last_stage);
            assert_eq!(st(r, "suspected_cause"), c.suspected_cause);
            assert_eq!(int(r, "item_count"), c.item_count);
        }
    }
}

#[test]
fn abandonment_by_last_operation_shares_and_durations() {
    let rows = query("abandonment_by_last_operation", &[]);
    let ab = abandoned();
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for c in &ab {
        *counts.entry(c.last_operation.as_str()).or_default() += 1;
    }
    assert_eq!(rows.len(), counts.len());
    let mut durations: HashMap<&str, Vec<f64>> = HashMap::new();
    for sp in &export().spans {
        durations
            .entry(sp.name.as_str())
            .or_default()
            .push(sp.duration_ms);
    }
    let mut share_sum = 0.0;
    for r in &rows {
        let op = st(r, "operation");
        assert_eq!(int(r, "abandonments"), counts[op], "{op}");
        let share = counts[op] as f64 / ab.len() as f64;
        close(fl(r, "share"), share, 0.00005 + 1e-12, op);
        share_sum += fl(r, "share");
        let d = durations.get_mut(op).unwrap();
        d.sort_by(f64::total_cmp);
        assert_eq!(
            int(r, "spans"),
            d.len() as i64,
            "{op}: all its spans in the export"
        );
        close(
            fl(r, "mean_ms"),
            d.iter().sum::<f64>() / d.len() as f64,
            0.0006,
            op,
        );
        close(fl(r, "p50_ms"), nearest_rank(d, 0.5), 0.0006, op);
        close(fl(r, "p95_ms"), nearest_rank(d, 0.95), 0.0006, op);
    }
    close(share_sum, 1.0, 0.0005, "shares add up");
    // Most abandonments first.
    let got: Vec<i64> = rows.iter().map(|r| int(r, "abandonments")).collect();
    let mut sorted = got.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(got, sorted);
    assert_eq!(st(&rows[0], "operation"), "cart.add_item");
}

#[test]
fn funnel_counts_drop_off_and_time_to_convert() {
    let rows = query("funnel", &[]);
    assert_eq!(rows.len(), STAGES.len());
    let reached = |i: usize| {
        truth()
            .iter()
            .filter(|c| stage_index(&c.last_stage) >= i)
            .count() as i64
    };
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(int(r, "stage_order"), i as i64 + 1);
        assert_eq!(st(r, "stage"), STAGES[i]);
        assert_eq!(int(r, "carts"), reached(i), "{}", STAGES[i]);
        close(
            fl(r, "share_of_start"),
            reached(i) as f64 / reached(0) as f64,
            0.00005 + 1e-12,
            "share",
        );
        if i == 0 {
            assert!(f(r, "dropped_from_previous").is_none());
            assert!(f(r, "drop_off_rate").is_none());
        } else {
            let lost = reached(i - 1) - reached(i);
            assert_eq!(int(r, "dropped_from_previous"), lost, "{}", STAGES[i]);
            close(
                fl(r, "drop_off_rate"),
                lost as f64 / reached(i - 1) as f64,
                0.00005 + 1e-12,
                "drop-off",
            );
        }
    }
    assert_eq!(int(&rows[0], "carts"), 3000);

    // Time to convert: converted carts end with their checkout.complete, so first_seen to
    // last_activity in the truth is first seen to the success span's end.
    let mut secs: Vec<f64> = truth()
        .iter()
        .filter(|c| c.outcome == "converted")
        .inspect(|c| assert_eq!(c.last_operation, "checkout.complete"))
        .map(|c| (c.last_activity_us - c.first_seen_us) as f64 / 1e6)
        .collect();
    secs.sort_by(f64::total_cmp);
    assert_eq!(secs.len(), 890);
    for (i, r) in rows.iter().enumerate() {
        if STAGES[i] == "completed" {
            close(
                fl(r, "time_to_convert_p50_s"),
                nearest_rank(&secs, 0.5),
                0.0006,
                "p50",
            );
            close(
                fl(r, "time_to_convert_p95_s"),
                nearest_rank(&secs, 0.95),
                0.0006,
                "p95",
            );
        } else {
            assert!(
                f(r, "time_to_convert_p50_s").is_none() && f(r, "time_to_convert_p95_s").is_none()
            );
        }
    }
}

#[test]
fn latency_vs_conversion_buckets_the_carts_that_reached_each_operation() {
    let rows = query("latency_vs_conversion", &[]);
    let truth = truth_by_id();
    let traces = trace_carts();
    // Each cart's last span of each operation (latest end, then start, then span id).
    let mut last: HashMap<(&str, &str), &Span> = HashMap::new();
    for sp in &export().spans {
        let Some(cart) = traces.get(sp.trace_id.as_str()) else {
            continue;
        };
        let k = (*cart, sp.name.as_str());
        let later = |old: &Span| {
            (sp.end_us, sp.start_us, sp.span_id.as_str())
                > (old.end_us, old.start_us, old.span_id.as_str())
        };
        if last.get(&k).is_none_or(|old| later(old)) {
            last.insert(k, sp);
        }
    }
    // Decided carts: converted (reached the success stage) or abandoned.
    let converted = |c: &Cart| c.last_stage == "completed";
    let decided = |c: &Cart| converted(c) || c.outcome == "abandoned";

    let ops = [
        ("payment.authorize", "payment"),
        ("shipping.calculate_rates", "shipping"),
    ];
    assert_eq!(
        rows.len(),
        ops.len() * BUCKETS.len(),
        "every bucket of every operation"
    );
    for (k, (op, stage)) in ops.iter().enumerate() {
        let mine = &rows[k * BUCKETS.len()..(k + 1) * BUCKETS.len()];
        let mut total = 0;
        let mut total_converted = 0;
        for (b, r) in mine.iter().enumerate() {
            let (label, lo, hi) = BUCKETS[b];
            assert_eq!(st(r, "operation"), *op);
            assert_eq!(int(r, "bucket_order"), b as i64 + 1);
            assert_eq!(st(r, "latency_bucket"), label);
            let inside: Vec<&Cart> = last
                .iter()
                .filter(|((_, name), sp)| name == op && sp.duration_ms >= lo && sp.duration_ms < hi)
                .map(|((cart, _), _)| truth[cart])
                .filter(|c| decided(c))
                .collect();
            let conv = inside.iter().filter(|c| converted(c)).count() as i64;
            assert_eq!(int(r, "carts"), inside.len() as i64, "{op} {label}");
            assert_eq!(int(r, "converted"), conv, "{op} {label}");
            match f(r, "conversion_rate") {
                None => assert_eq!(inside.len(), 0),
                Some(rate) => {
                    assert!((0.0..=1.0).contains(&rate));
                    close(
                        rate,
                        conv as f64 / inside.len() as f64,
                        0.00005 + 1e-12,
                        label,
                    );
                }
            }
            total += int(r, "carts");
            total_converted += conv;
        }
        // The buckets add up to the decided carts that reached the operation's stage.
        let reached: Vec<&Cart> = truth
            .values()
            .copied()
            .filter(|c| stage_index(&c.last_stage) >= stage_index(stage) && decided(c))
            .collect();
        assert_eq!(total, reached.len() as i64, "{op}");
        assert_eq!(
            total_converted,
            reached.iter().filter(|c| converted(c)).count() as i64,
            "{op}"
        );
    }
    // Slow quotes convert worse: the sample's injected incident shows.
    let rate = |op: &str, b: i64| {
        rows.iter()
            .find(|r| st(r, "operation") == op && int(r, "bucket_order") == b)
            .and_then(|r| f(r, "conversion_rate"))
            .unwrap()
    };
    assert!(rate("shipping.calculate_rates", 5) < rate("shipping.calculate_rates", 1));

    // The operations are a parameter.
    let one = query(
        "latency_vs_conversion",
        &[("operations", " payment.authorize ,payment.authorize")],
    );
    assert_eq!(one.len(), BUCKETS.len());
    for (a, b) in one.iter().zip(&rows[..BUCKETS.len()]) {
        assert_eq!(a, b);
    }
}

#[test]
fn exemplar_drilldown_follows_the_slowest_points_to_their_spans_and_carts() {
    let truth = truth_by_id();
    let traces = trace_carts();
    let spans: HashMap<(&str, &str), &Span> = export()
        .spans
        .iter()
        .map(|s| ((s.trace_id.as_str(), s.span_id.as_str()), s))
        .collect();
    let mut values: Vec<f64> = export()
        .exemplars
        .iter()
        .filter(|e| e.metric == "cart.stage.duration")
        .map(|e| e.value)
        .collect();
    values.sort_by(|a, b| b.total_cmp(a));

    for (params, n) in [(vec![], 10usize), (vec![("limit", "3")], 3)] {
        let rows = query("exemplar_drilldown", &params);
        assert_eq!(rows.len(), n);
        for (r, want) in rows.iter().zip(&values) {
            assert_eq!(st(r, "metric_name"), "cart.stage.duration");
            close(
                fl(r, "exemplar_value"),
                *want,
                0.0006,
                "the slowest points, slowest first",
            );
            let (t, sid) = (st(r, "trace_id"), st(r, "span_id"));
            let ex = export()
                .exemplars
                .iter()
                .find(|e| e.trace_id == t && e.span_id == sid)
                .expect("a real exemplar");
            close(fl(r, "exemplar_value"), ex.value, 0.0006, "its value");
            let sp = spans.get(&(t, sid)).expect("the exemplar's span exists");
            assert_eq!(st(r, "operation_name"), sp.name);
            close(
                fl(r, "span_duration_ms"),
                sp.duration_ms,
                0.0006,
                "span duration",
            );
            let cart = st(r, "cart_id");
            let c = truth
                .get(cart)
                .unwrap_or_else(|| panic!("{cart} is not a cart of the truth"));
            assert_eq!(traces.get(t).copied(), Some(cart), "the trace's cart");
            assert_eq!(st(r, "outcome"), c.outcome);
            assert_eq!(st(r, "last_stage"), c.last_stage);
            close(fl(r, "cart_value"), c.value, 0.005, cart);
        }
    }
    assert!(query("exemplar_drilldown", &[("metric", "no.such.metric")]).is_empty());
}

#[test]
fn reference_correlation_runs_as_written() {
    let rows = query("reference_correlation", &[]);
    // Every abandoned cart of the sample went abandoned within 24 hours of the as-of time.
    let as_of = micros(AS_OF);
    let thirty_min = 30 * 60 * 1_000_000;
    let day = 24 * 3600 * 1_000_000;
    let ab = abandoned();
    assert!(ab
        .iter()
        .all(|c| c.last_activity_us + thirty_min > as_of - day));
    let abandoned_ids: HashSet<&str> = ab.iter().map(|c| c.id.as_str()).collect();

    // Slow quotes that carry cart.id themselves, from the loaded traces.
    let slow = sql(
        "SELECT attributes['cart.id'] AS cart_id, attributes['cart.total_value'] AS cart_value, \
                duration_ms FROM traces \
         WHERE operation_name = 'shipping.calculate_rates' AND duration_ms > 2000 \
           AND attributes['cart.id'] IS NOT NULL",
    );
    let key =
        |c: &str, v: Option<&str>, d: f64| (c.to_string(), v.map(str::to_string), d.to_bits());
    let mut want: Vec<_> = slow
        .iter()
        .filter(|r| abandoned_ids.contains(st(r, "cart_id")))
        .map(|r| key(st(r, "cart_id"), s(r, "cart_value"), fl(r, "duration_ms")))
        .collect();
    let mut got: Vec<_> = rows
        .iter()
        .map(|r| {
            key(
                st(r, "cart_id"),
                s(r, "cart_value"),
                fl(r, "shipping_calc_duration"),
            )
        })
        .collect();
    assert!(!want.is_empty());
    assert!(
        want.len() < slow.len(),
        "some slow quotes belong to carts that were not abandoned"
    );
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(rows.len(), 96);

    // Its ORDER BY sorts cart_value as text, as the article's query does: "96" before "530.89".
    let values: Vec<&str> = rows.iter().map(|r| st(r, "cart_value")).collect();
    assert!(
        values.windows(2).all(|w| w[0] >= w[1]),
        "text order, descending"
    );
    assert!(
        values
            .windows(2)
            .any(|w| w[0].parse::<f64>().unwrap() < w[1].parse::<f64>().unwrap()),
        "so not numeric order"
    );
    // The library's own query finds more: quotes without cart.id count there.
    let better = query("slow_shipping_before_abandonment", &[]);
    let found: HashSet<&str> = better.iter().map(|r| st(r, "cart_id")).collect();
    let naive: HashSet<&str> = rows.iter().map(|r| st(r, "cart_id")).collect();
    assert!(found.difference(&naive).count() > 0);
}

#[test]
fn the_library_lists_every_query_with_documented_parameters() {
    let out = cmd().args(["queries", "-f", "ndjson"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Row> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| st(r, "name")).collect();
    assert_eq!(
        names,
        [
            "slow_shipping_before_abandonment",
            "error_before_abandonment",
            "high_value_abandoned",
            "abandonment_by_last_operation",
            "funnel",
            "latency_vs_conversion",
            "exemplar_drilldown",
            "reference_correlation",
        ]
    );
    let params = |name: &str| {
        st(
            rows.iter().find(|r| st(r, "name") == name).unwrap(),
            "parameters",
        )
        .to_string()
    };
    assert_eq!(
        params("slow_shipping_before_abandonment"),
        "threshold_ms=2000 (quotes slower than this, in milliseconds); \
         operation=shipping.calculate_rates (the span name of the shipping quote)"
    );
    assert!(params("high_value_abandoned").starts_with("limit=20 ("));
    assert!(params("exemplar_drilldown").starts_with("metric=cart.stage.duration ("));
    assert!(params("exemplar_drilldown").contains("; limit=10 ("));
    for r in &rows {
        assert!(st(r, "description").len() > 40, "{}", st(r, "name"));
        assert!(!st(r, "description").contains("being written"));
    }
}

/// With session attribution two carts can share a trace, and so an exemplar: the limit still
/// counts exemplars, and the shared one is listed once per cart.
#[test]
fn exemplar_drilldown_limits_exemplars_not_rows_when_two_carts_share_a_trace() {
    let tmp = tempfile::tempdir().unwrap();
    // 2026-11-21T10:00:00Z plus milliseconds.
    let ns = |ms: u64| 1_795_172_400_000_000_000u64 + ms * 1_000_000;
    let kv = |k: &str, v: &str| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#);
    let span = |id: char, name: &str, from: u64, to: u64, attrs: String| {
        format!(
            r#"{{"traceId":"{t}","spanId":"{s}","name":"{name}","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[{attrs}]}}"#,
            ns(from),
            ns(to),
            t = id.to_string().repeat(32),
            s = id.to_string().repeat(16),
        )
    };
    // cart-1 is active 0-500 ms and cart-2 200-700 ms, both in session s1; the page view at
    // 300 ms (trace 3) carries only the session, so it belongs to both carts.
    let spans = [
        span(
            '1',
            "cart.add_item",
            0,
            500,
            format!("{},{}", kv("cart.id", "cart-1"), kv("session.id", "s1")),
        ),
        span(
            '2',
            "cart.add_item",
            200,
            700,
            format!("{},{}", kv("cart.id", "cart-2"), kv("session.id", "s1")),
        ),
        span('3', "GET /product", 300, 400, kv("session.id", "s1")),
    ];
    std::fs::write(
        tmp.path().join("traces.jsonl"),
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            spans.join(",")
        ) + "\n",
    )
    .unwrap();
    let exemplar = |id: char, value: f64| {
        format!(
            r#"{{"timeUnixNano":"{}","asDouble":{value},"traceId":"{}","spanId":"{}"}}"#,
            ns(400),
            id.to_string().repeat(32),
            id.to_string().repeat(16)
        )
    };
    std::fs::write(
        tmp.path().join("metrics.jsonl"),
        format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"page.latency","gauge":{{"dataPoints":[{{"timeUnixNano":"{}","asDouble":9,"exemplars":[{},{}]}}]}}}}]}}]}}]}}"#,
            ns(1000),
            exemplar('3', 9.0),
            exemplar('1', 5.0)
        ) + "\n",
    )
    .unwrap();
    let model = tmp.path().join("model.toml");
    let text = cartscope::Preset::Reference
        .text()
        .replace("session_id = []", "session_id = [\"session.id\"]");
    assert!(
        text.contains("session.id"),
        "the preset names no session key"
    );
    std::fs::write(&model, text).unwrap();

    let (model, dir) = (
        model.display().to_string(),
        tmp.path().display().to_string(),
    );
    let rows = |limit: &str| -> Vec<(String, String)> {
        let limit = format!("limit={limit}");
        ndjson(&[
            "query",
            "exemplar_drilldown",
            "--param",
            "metric=page.latency",
            "--param",
            &limit,
            "--model",
            &model,
            "--data",
            &dir,
            "--as-of",
            "2026-11-21T12:00:00Z",
            "-f",
            "ndjson",
        ])
        .iter()
        .map(|r| (st(r, "trace_id").to_string(), st(r, "cart_id").to_string()))
        .collect()
    };
    let t3 = "3".repeat(32);
    let t1 = "1".repeat(32);
    assert_eq!(
        rows("1"),
        [(t3.clone(), "cart-1".into()), (t3.clone(), "cart-2".into())]
    );
    assert_eq!(
        rows("2"),
        [
            (t3.clone(), "cart-1".into()),
            (t3, "cart-2".into()),
            (t1, "cart-1".into())
        ]
    );
}
