//! `abandonment_by_last_operation`'s exact nearest-rank p50 and p95, on a hand-built export
//! that cartscope's generator did not write, shaped to trip a percentile that is found
//! bucket first and ranked within its bucket: zero durations, negative ones (a clock that
//! is off: loaded as written), runs of equal values, values on both sides of bucket edges,
//! an operation whose spans all take the same time and one with a single span.

use crate::util::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A span whose end comes `ms_before` milliseconds before its start.
fn backwards_span(out: &mut String, cart: u32, n: u32, name: &str, at_s: u64, ms_before: u64) {
    let start = BASE_NS + at_s * S;
    let id = format!("cart-{cart:04}");
    let _ = write!(
        out,
        r#",{{"traceId":"{:032x}","spanId":"{:016x}","name":"{name}","kind":2,"startTimeUnixNano":"{start}","endTimeUnixNano":"{}","attributes":[{{"key":"cart.id","value":{{"stringValue":"{id}"}}}}],"status":{{}}}}"#,
        u128::from(cart) * 1000 + u128::from(n) + 1,
        u64::from(cart) * 1000 + u64::from(n) + 1,
        start - ms_before * 1_000_000,
    );
}

/// 400 carts that all leave: each adds an item; 150 of them then ask for a shipping quote
/// (every quote 250 ms), and one of those goes on to payment. Returns the export and every
/// span's duration by operation, as written.
fn export() -> (String, BTreeMap<&'static str, Vec<f64>>) {
    let mut spans = String::new();
    let mut durations: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for cart in 0..400u32 {
        let t = u64::from(cart) * 30;
        let id = vec![("cart.id", format!("cart-{cart:04}"))];
        // Zeros, a run of one value, and a spread whose neighbours straddle the 1.6%-wide
        // buckets (1, 2, 3 ... ms and 1000, 1001 ... ms).
        let add_ms = match cart % 9 {
            0 => 0,
            1 | 2 => 1000,
            3 => 1000 + u64::from(cart % 17),
            _ => u64::from(cart * 37 % 523),
        };
        let mut steps = vec![(0, "cart.add_item", t, add_ms)];
        if cart < 150 {
            steps.push((2, "shipping.calculate_rates", t + 10, 250));
        }
        if cart == 149 {
            steps.push((3, "payment.authorize", t + 20, 7));
        }
        for (n, name, at_s, ms) in steps {
            span(
                &mut spans,
                cart,
                n,
                Step {
                    name,
                    at_s,
                    ms,
                    error: false,
                },
                &id,
            );
            durations.entry(name).or_default().push(ms as f64);
        }
        if cart % 50 == 7 {
            // a second add_item whose clock runs backwards
            let ms_before = u64::from(cart) + 3;
            backwards_span(&mut spans, cart, 1, "cart.add_item", t + 5, ms_before);
            durations
                .entry("cart.add_item")
                .or_default()
                .push(-(ms_before as f64));
        }
    }
    (traces_line(&spans), durations)
}

fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

#[test]
fn p50_and_p95_are_the_nearest_ranks_of_every_span_however_the_durations_fall() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("traces.jsonl");
    let (text, mut durations) = export();
    std::fs::write(&file, text).unwrap();
    // Judged a day after the first cart: every cart has gone idle.
    for cap in ["1GB", "16MB"] {
        let o = cartscope(&[
            "query",
            "abandonment_by_last_operation",
            "--data",
            file.to_str().unwrap(),
            "--as-of",
            "2026-11-19T11:06:40Z",
            "--memory-limit",
            cap,
            "-f",
            "json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
        let ops: Vec<&str> = rows
            .iter()
            .map(|r| r["operation"].as_str().unwrap())
            .collect();
        assert_eq!(
            ops,
            [
                "cart.add_item",
                "shipping.calculate_rates",
                "payment.authorize"
            ],
            "{rows:?}"
        );
        assert_eq!(rows[0]["abandonments"], 250);
        for r in &rows {
            let op = r["operation"].as_str().unwrap();
            let d = durations.get_mut(op).unwrap();
            d.sort_by(f64::total_cmp);
            assert_eq!(r["spans"], d.len(), "{op}: every span of it, {r}");
            for (col, p) in [("p50_ms", 0.5), ("p95_ms", 0.95)] {
                assert_eq!(
                    r[col].as_f64().unwrap(),
                    nearest_rank(d, p),
                    "{op} {col} under {cap}: {r}"
                );
            }
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            assert!(
                (r["mean_ms"].as_f64().unwrap() - mean).abs() <= 0.0005,
                "{op}: {r}, want mean {mean}"
            );
        }
        // The shapes this export was built to have.
        let add = &durations["cart.add_item"];
        assert!(
            add[0] < 0.0 && add.contains(&0.0),
            "negative and zero durations"
        );
        assert_eq!(rows[1]["p50_ms"], 250.0);
        assert_eq!(rows[1]["p95_ms"], 250.0);
        assert_eq!(rows[2]["spans"], 1);
        assert_eq!(rows[2]["p95_ms"], 7.0);
    }
}

/// Every operation's count, mean and nearest-rank p50 and p95 over every observed span, by a
/// window over all of them: the slow, obviously right way, to hold the replay's
/// `operation_stats` (summed and selected in Rust) to.
const STATS_BY_WINDOW: &str = "
WITH ranked AS (
    SELECT operation_name, duration_ms,
           row_number() OVER (PARTITION BY operation_name ORDER BY duration_ms) AS rn,
           count(*) OVER (PARTITION BY operation_name) AS n
    FROM observed_traces
    WHERE duration_ms IS NOT NULL AND operation_name IS NOT NULL
)
SELECT operation_name, max(n) AS spans, round(avg(duration_ms), 6) AS mean_ms,
       max(CASE WHEN rn = greatest(CAST(ceil(0.5 * n) AS BIGINT), 1) THEN duration_ms END) AS p50_ms,
       max(CASE WHEN rn = greatest(CAST(ceil(0.95 * n) AS BIGINT), 1) THEN duration_ms END) AS p95_ms
FROM ranked GROUP BY operation_name ORDER BY operation_name";

const STATS_READ: &str = "
SELECT operation_name, spans, round(mean_ms, 6) AS mean_ms, p50_ms, p95_ms
FROM operation_stats ORDER BY operation_name";

/// A query's CSV (`sql` a library query's name, a .sql file or SQL text) over `data`, judged
/// at `as_of` (the data's latest time when None).
fn csv_of(data: &str, as_of: Option<&str>, sql: &str) -> String {
    let mut args = vec!["query", "--data", data, "-f", "csv"];
    if sql.contains(' ') {
        args.push("-e");
    }
    args.push(sql);
    if let Some(t) = as_of {
        args.extend(["--as-of", t]);
    }
    let o = cartscope(&args);
    assert!(o.status.success(), "{data} {sql}: {}", stderr(&o));
    stdout(&o)
}

/// The replay's `operation_stats` against a window over every span, and the library's
/// abandonment_by_last_operation (which reads it) against the query it replaced (every
/// figure from the spans by SQL, kept in tests/fixtures/oracles/): the same rows, on this
/// hand-built export (zeros, negatives, piles, a single span), on files the real
/// OpenTelemetry JS and Python SDKs wrote, on real producers' OTLP files that hold no cart
/// at all, and on the generated sample.
#[test]
fn operation_stats_and_the_query_reading_it_give_the_rows_sql_over_every_span_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("traces.jsonl");
    std::fs::write(&file, export().0).unwrap();
    let hostile = file.to_str().unwrap().to_string();
    let fixtures: Vec<String> = [
        "real-sdk/js",
        "real-sdk/py-json",
        "real-sdk/py-sampled",
        "otlp-examples/jaegerui-nodejs-fileexporter.jsonl",
        "otlp-examples/goauto-nethttp-fileexporter.jsonl",
        "otlp-examples/proto-examples-trace.json",
    ]
    .iter()
    .map(|f| fixture(f).to_str().unwrap().to_string())
    .collect();
    let sample = root("sample-data/otlp").to_str().unwrap().to_string();
    let oracle = fixture("oracles/abandonment_by_last_operation.sql");
    let mut carts_seen = 0;
    for data in std::iter::once(&hostile).chain(&fixtures).chain([&sample]) {
        // This file's carts are judged a day after the first; the others at their end.
        let as_of = (data == &hostile).then_some("2026-11-19T11:06:40Z");
        let want = csv_of(data, as_of, STATS_BY_WINDOW);
        let got = csv_of(data, as_of, STATS_READ);
        assert_eq!(got, want, "operation_stats of {data}");
        assert!(want.lines().count() > 1, "{data} has spans: {want}");
        let lib = csv_of(data, as_of, "abandonment_by_last_operation");
        let old = csv_of(data, as_of, oracle.to_str().unwrap());
        assert_eq!(lib, old, "abandonment_by_last_operation of {data}");
        carts_seen += usize::from(lib.lines().count() > 1);
    }
    // The comparison of the library's rows means something on most of them: abandonments.
    assert!(carts_seen >= 5, "{carts_seen} inputs with abandoned carts");
}
