//! The ways real OTLP exports deviate from the canonical form, one small hand-made fixture
//! each (`tests/fixtures/deviations/`, described in its README), and the exact rows the
//! loader must make of them.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::util::*;
use cartscope::Location;
use cartscope::{LoadOptions, LoadStats, StrictError, Table};

fn dev(name: &str) -> PathBuf {
    fixture(&format!("deviations/{name}"))
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn table(v: &[&[&str]]) -> Vec<Vec<String>> {
    v.iter().map(|r| s(r)).collect()
}

fn no_bad(stats: &LoadStats) {
    assert_eq!(
        stats.bad_total, 0,
        "unexpected bad records: {:#?}",
        stats.bad
    );
}

/// Loads with the library directly, returning the loader's own result (for strict runs).
fn try_load(paths: &[PathBuf], strict: bool) -> anyhow::Result<LoadStats> {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let inputs = cartscope::resolve(&names)?;
    let opts = LoadOptions {
        strict,
        threads: 2,
        ..LoadOptions::default()
    };
    cartscope::load_into_memory(&inputs.files, &opts).map(|(_, stats)| stats)
}

const T0: &str = "2024-05-01T12:00:00";

// 1 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn ids_in_base64_and_uppercase_hex_become_lowercase_hex() {
    let (ctx, stats) = load(&[dev("ids-base64-and-uppercase.jsonl")]).await;
    no_bad(&stats);
    let tid = "5b8efff798038103d269b633813fc60c";
    assert_eq!(
        rows(
            &ctx,
            "SELECT operation_name, trace_id, span_id, parent_span_id FROM traces ORDER BY span_id"
        )
        .await,
        table(&[
            // base64 ids; parentSpanId "AAAAAAAAAAA=" (8 zero bytes) is no parent
            &["cart.view", tid, "eee19b7ec3c1b172", "NULL"],
            &["cart.add_item", tid, "eee19b7ec3c1b173", "eee19b7ec3c1b174"],
            // parentSpanId ""
            &["cart.checkout", tid, "eee19b7ec3c1b174", "NULL"],
            // UPPERCASE hex; parentSpanId "0000000000000000"
            &["shipping.calculate_rates", tid, "eee19b7ec3c1b175", "NULL"],
            &[
                "shipping.quote_carrier",
                tid,
                "eee19b7ec3c1b176",
                "eee19b7ec3c1b175"
            ],
        ])
    );
    assert_eq!(
        one(&ctx, "SELECT count(DISTINCT trace_id) FROM traces").await,
        "1"
    );
    assert_eq!(
        rows(
            &ctx,
            "SELECT span_id, linked_trace_id, linked_span_id FROM span_links"
        )
        .await,
        table(&[&[
            "eee19b7ec3c1b173",
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00f067aa0ba902b7"
        ]])
    );
}

// 2 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn enums_as_integers_and_as_names() {
    let (ctx, stats) = load(&[dev("enums-ints-and-names.jsonl")]).await;
    no_bad(&stats);
    assert_eq!(counts(&stats), [4, 0, 0, 4, 0]);
    assert_eq!(
        rows(
            &ctx,
            "SELECT attributes['cart.id'], operation_name, span_kind, status_code, status_message \
             FROM traces ORDER BY 1, 2"
        )
        .await,
        table(&[
            &[
                "cart-int",
                "cart.add_item",
                "server",
                "error",
                "inventory service unavailable"
            ],
            &[
                "cart-int",
                "shipping.calculate_rates",
                "client",
                "ok",
                "NULL"
            ],
            &[
                "cart-name",
                "cart.add_item",
                "server",
                "error",
                "inventory service unavailable"
            ],
            &[
                "cart-name",
                "shipping.calculate_rates",
                "client",
                "ok",
                "NULL"
            ],
        ])
    );
    assert_eq!(
        rows(
            &ctx,
            "SELECT attributes['cart.id'], name, metric_type, aggregation_temporality, is_monotonic \
             FROM metrics ORDER BY 1, 2"
        )
        .await,
        table(&[
            &["cart-int", "cart.items.added", "sum", "delta", "true"],
            &["cart-int", "cart.value", "sum", "cumulative", "false"],
            &["cart-name", "cart.items.added", "sum", "delta", "true"],
            &["cart-name", "cart.value", "sum", "cumulative", "false"],
        ])
    );
}

// 3 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn int64_as_strings_and_as_numbers() {
    let (ctx, stats) = load(&[dev("int64-strings-and-numbers.jsonl")]).await;
    no_bad(&stats);
    assert_eq!(counts(&stats), [2, 0, 0, 4, 0]);
    let span = |cart: &str| {
        s(&[
            cart,
            "2024-05-01T12:00:01.500Z",
            "2024-05-01T12:00:01.750Z",
            "250.0",
            "3",
            "1",
        ])
    };
    assert_eq!(
        rows(
            &ctx,
            "SELECT attributes['cart.id'], start_time, end_time, duration_ms, \
             attributes['cart.line_count'], dropped_attributes_count FROM traces ORDER BY 1"
        )
        .await,
        vec![span("cart-num"), span("cart-str")]
    );
    let points = |cart: &str| {
        vec![
            // 2^53 + 1: exact, never through a double
            s(&[
                cart,
                "cart.checkout.attempts",
                "9007199254740993",
                "NULL",
                "NULL",
                "2024-05-01T12:01:00Z",
            ]),
            s(&[
                cart,
                "shipping.rates.duration",
                "NULL",
                "5",
                "[1, 3, 1]",
                "2024-05-01T12:01:00Z",
            ]),
        ]
    };
    let mut want = points("cart-num");
    want.extend(points("cart-str"));
    assert_eq!(
        rows(
            &ctx,
            "SELECT attributes['cart.id'], name, int_value, count, bucket_counts, timestamp \
             FROM metrics ORDER BY 1, 2"
        )
        .await,
        want
    );
    assert_eq!(
        rows(&ctx, "SELECT DISTINCT start_timestamp, sum, explicit_bounds FROM metrics WHERE metric_type = 'histogram'").await,
        table(&[&[&format!("{T0}Z"), "7.5", "[1.0, 2.0]"]])
    );
}

// 4 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn snake_case_keys_load_like_lower_camel_case() {
    let (ctx, stats) = load(&[dev("snake-case-keys.jsonl")]).await;
    no_bad(&stats);
    assert_eq!(counts(&stats), [2, 2, 2, 10, 2]);
    // Line 1 (snake_case) and line 2 (lowerCamelCase) differ only in the span id.
    let span_cols =
        "trace_id, parent_span_id, trace_state, operation_name, service_name, span_kind, \
        start_time, end_time, duration_ms, status_code, status_message, \
        attributes['cart.id'], attributes['cart.line_count'], attributes['cart.total'], \
        attributes['cart.is_guest'], attributes['cart.skus'], attributes['cart.discount'], \
        scope_name, scope_version, scope_attributes['otel.scope.tier'], flags, \
        dropped_attributes_count, dropped_events_count, dropped_links_count";
    let want = s(&[
        "d4cda95b652f4a1592b449d5929fda1b",
        "6e0c63257de34c92",
        "shop=blue",
        "cart.add_item",
        "cart",
        "server",
        "2024-05-01T12:00:02Z",
        "2024-05-01T12:00:02.120Z",
        "120.0",
        "error",
        "out of stock",
        "cart-snake",
        "4",
        "84.5",
        "true",
        r#"["sku-1",2]"#,
        r#"{"code":"SPRING"}"#,
        "cartshop.instrumentation",
        "1.4.0",
        "web",
        "257",
        "1",
        "2",
        "3",
    ]);
    assert_eq!(
        rows(
            &ctx,
            &format!("SELECT span_id, {span_cols} FROM traces ORDER BY span_id")
        )
        .await,
        vec![
            [vec!["6e0c63257de34c93".to_string()], want.clone()].concat(),
            [vec!["6e0c63257de34c94".to_string()], want].concat(),
        ]
    );
    let ev = s(&[
        "6e0c63257de34c9",
        "2024-05-01T12:00:02.050Z",
        "inventory.checked",
        "sku-1",
        "1",
    ]);
    assert_eq!(
        rows(
            &ctx,
            "SELECT substr(span_id, 1, 15), timestamp, name, attributes['sku'], dropped_attributes_count \
             FROM span_events"
        )
        .await,
        vec![ev.clone(), ev]
    );
    let link = s(&[
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        "shop=green",
        "retry",
        "4",
    ]);
    assert_eq!(
        rows(
            &ctx,
            "SELECT linked_trace_id, linked_span_id, trace_state, attributes['link.kind'], dropped_attributes_count \
             FROM span_links"
        )
        .await,
        vec![link.clone(), link]
    );
    // Metrics: each of the five metrics twice, once per key style, identical.
    let metric_rows = rows(
        &ctx,
        "SELECT name, metric_type, service_name, attributes['cart.id'], start_timestamp, timestamp, \
         value, int_value, count, sum, min, max, bucket_counts, explicit_bounds, scale, zero_count, \
         zero_threshold, positive_offset, positive_bucket_counts, quantiles, quantile_values, \
         is_monotonic, aggregation_temporality FROM metrics ORDER BY name",
    )
    .await;
    assert_eq!(metric_rows.len(), 10);
    for pair in metric_rows.chunks(2) {
        assert_eq!(pair[0], pair[1]);
        assert_eq!(pair[0][2], "cart");
        assert_eq!(pair[0][3], "cart-snake");
        assert_eq!(pair[0][4], format!("{T0}Z"));
        assert_eq!(pair[0][5], "2024-05-01T12:01:00Z");
    }
    let by_name = |n: &str| metric_rows.iter().find(|r| r[0] == n).unwrap().clone();
    let items = by_name("cart.items.added");
    assert_eq!(
        (&items[7][..], &items[21][..], &items[22][..]),
        ("3", "true", "delta")
    );
    assert_eq!(by_name("cart.value")[6], "84.5");
    let h = by_name("shipping.rates.duration");
    assert_eq!(
        &h[8..14],
        &s(&["4", "6.5", "0.5", "3.0", "[1, 2, 1]", "[1.0, 2.0]"])[..]
    );
    assert_eq!(h[22], "cumulative");
    let e = by_name("cart.value.distribution");
    assert_eq!(
        &e[14..19],
        &s(&["1", "1", "0.001", "2", "[1, 1]"])[..],
        "scale, zero_count, zero_threshold, positive_offset, positive_bucket_counts"
    );
    let q = by_name("checkout.latency");
    assert_eq!(&q[19..21], &s(&["[0.5, 0.99]", "[0.7, 0.8]"])[..]);
    let ex = s(&[
        "shipping.rates.duration",
        "2024-05-01T12:00:30Z",
        "2.5",
        "d4cda95b652f4a1592b449d5929fda1b",
        "6e0c63257de34c92",
        "dhl",
    ]);
    assert_eq!(
        rows(
            &ctx,
            "SELECT metric_name, timestamp, value, trace_id, span_id, filtered_attributes['carrier'] FROM exemplars"
        )
        .await,
        vec![ex.clone(), ex]
    );
}

// 5 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_fields_at_every_level_are_ignored() {
    let (ctx, stats) = load(&[dev("unknown-fields.jsonl")]).await;
    no_bad(&stats);
    assert_eq!(counts(&stats), [1, 1, 1, 1, 1]);
    assert_eq!(
        rows(
            &ctx,
            "SELECT trace_id, span_id, operation_name, service_name, span_kind, status_code, duration_ms, \
             attributes['cart.id'], attributes['cart.line_count'], scope_name, cardinality(attributes), \
             cardinality(resource_attributes) FROM traces"
        )
        .await,
        table(&[&[
            "7a3c1f0e9d8b4a6c5e2f1d0c9b8a7f6e",
            "1a2b3c4d5e6f7081",
            "cart.add_item",
            "cart",
            "server",
            "ok",
            "80.0",
            "cart-unknown",
            "2",
            "cartshop.instrumentation",
            "2",
            "1",
        ]])
    );
    assert_eq!(
        rows(&ctx, "SELECT name, timestamp FROM span_events").await,
        table(&[&["cart.validated", "2024-05-01T12:00:00.010Z"]])
    );
    assert_eq!(
        rows(
            &ctx,
            "SELECT linked_trace_id, linked_span_id FROM span_links"
        )
        .await,
        table(&[&["4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"]])
    );
    assert_eq!(
        rows(
            &ctx,
            "SELECT name, unit, metric_type, int_value, aggregation_temporality, is_monotonic, \
             attributes['cart.id'], service_name FROM metrics"
        )
        .await,
        table(&[&[
            "cart.items.added",
            "{item}",
            "sum",
            "5",
            "delta",
            "true",
            "cart-unknown",
            "cart"
        ]])
    );
    assert_eq!(
        rows(
            &ctx,
            "SELECT metric_name, value, trace_id, span_id FROM exemplars"
        )
        .await,
        table(&[&[
            "cart.items.added",
            "1.0",
            "7a3c1f0e9d8b4a6c5e2f1d0c9b8a7f6e",
            "1a2b3c4d5e6f7081"
        ]])
    );
}

// 6 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn file_exporter_lines_mixing_traces_metrics_and_logs() {
    let (ctx, stats) = load(&[dev("file-exporter-mixed.jsonl")]).await;
    no_bad(&stats);
    assert_eq!(stats.documents, 5);
    assert_eq!(stats.rows[Table::Logs], 1, "the logs line is read");
    assert_eq!(counts(&stats), [2, 0, 0, 2, 0]);
    assert_eq!(
        rows(
            &ctx,
            "SELECT operation_name, service_name, duration_ms FROM traces ORDER BY start_time"
        )
        .await,
        table(&[
            &["cart.add_item", "cart", "25.0"],
            &["shipping.calculate_rates", "shipping", "2400.0"],
        ])
    );
    assert_eq!(
        rows(
            &ctx,
            "SELECT name, int_value, timestamp FROM metrics ORDER BY timestamp"
        )
        .await,
        table(&[
            &["cart.items", "1", "2024-05-01T12:00:01Z"],
            &["cart.items", "3", "2024-05-01T12:01:01Z"],
        ])
    );
}

// 7 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn otlp_http_request_body() {
    let path = dev("otlp-http-request-body.json");
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        !bytes.contains(&b'\n'),
        "one compact document without a trailing newline"
    );
    let (ctx, stats) = load(&[path]).await;
    no_bad(&stats);
    assert_eq!(stats.documents, 1);
    assert_eq!(
        rows(
            &ctx,
            "SELECT operation_name, span_kind, parent_span_id, duration_ms, status_code, status_message, \
             attributes['cart.id'] FROM traces ORDER BY span_id"
        )
        .await,
        table(&[
            &["cart.checkout", "server", "NULL", "1800.0", "unset", "NULL", "cart-99"],
            &["shipping.calculate_rates", "client", "b7ad6b7169203331", "1500.0", "unset", "NULL", "cart-99"],
            &["payment.authorize", "client", "b7ad6b7169203331", "120.0", "error", "card declined", "cart-99"],
        ])
    );
}

// 8 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn pretty_printed_single_and_concatenated_documents() {
    let (ctx, stats) = load(&[dev("pretty-single.json")]).await;
    no_bad(&stats);
    assert_eq!(stats.documents, 1);
    assert_eq!(
        rows(&ctx, "SELECT operation_name, span_id, start_time, duration_ms, attributes['cart.id'] FROM traces ORDER BY start_time").await,
        table(&[
            &["cart.add_item", "9f86d081884c7d61", "2024-05-01T12:00:00Z", "35.0", "cart-pretty"],
            &["cart.remove_item", "9f86d081884c7d62", "2024-05-01T12:00:03Z", "20.0", "cart-pretty"],
        ])
    );

    let (ctx, stats) = load(&[dev("pretty-concatenated.json")]).await;
    no_bad(&stats);
    assert_eq!(stats.documents, 3);
    assert_eq!(counts(&stats), [3, 0, 0, 1, 0]);
    assert_eq!(
        rows(
            &ctx,
            "SELECT operation_name, service_name, parent_span_id, duration_ms, attributes['shipping.carrier'] \
             FROM traces ORDER BY span_id"
        )
        .await,
        table(&[
            &["cart.add_item", "cart", "NULL", "35.0", "NULL"],
            &["shipping.calculate_rates", "shipping", "9f86d081884c7d63", "2600.0", "NULL"],
            &["shipping.quote_carrier", "shipping", "9f86d081884c7d64", "2400.0", "dhl"],
        ])
    );
    assert_eq!(
        rows(
            &ctx,
            "SELECT name, int_value, attributes['cart.id'] FROM metrics"
        )
        .await,
        table(&[&["cart.items", "1", "cart-concat"]])
    );
}

// 9 ----------------------------------------------------------------------------------------

const ALL_SPANS: &str = "SELECT * FROM traces ORDER BY span_id";
const ALL_POINTS: &str = "SELECT * FROM metrics ORDER BY name, timestamp";

#[tokio::test]
async fn gzip_and_zstd_files_give_the_same_rows_as_the_plain_file() {
    let (plain, stats) = load(&[dev("compressed.jsonl")]).await;
    no_bad(&stats);
    assert_eq!(counts(&stats), [3, 0, 0, 1, 0]);
    assert_eq!(
        rows(
            &plain,
            "SELECT operation_name, duration_ms FROM traces ORDER BY span_id"
        )
        .await,
        table(&[
            &["cart.add_item", "40.0"],
            &["shipping.calculate_rates", "2200.0"],
            &["cart.remove_item", "15.0"],
        ])
    );
    let spans = rows(&plain, ALL_SPANS).await;
    let points = rows(&plain, ALL_POINTS).await;
    for name in ["compressed.jsonl.gz", "compressed.jsonl.zst"] {
        let path = dev(name);
        let head = std::fs::read(&path).unwrap();
        assert!(head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]));
        let (ctx, stats) = load(&[path]).await;
        no_bad(&stats);
        assert_eq!(counts(&stats), [3, 0, 0, 1, 0], "{name}");
        assert_eq!(rows(&ctx, ALL_SPANS).await, spans, "{name}");
        assert_eq!(rows(&ctx, ALL_POINTS).await, points, "{name}");
    }
}

// 10 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn framed_json_payloads_some_zstd_compressed() {
    let path = dev("framed-json.binpb");
    let bytes = std::fs::read(&path).unwrap();
    // Walk the frames: 4-byte big-endian length, then the payload.
    let mut pos = 0;
    let mut kinds = Vec::new();
    while pos < bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let payload = &bytes[pos + 4..pos + 4 + len];
        kinds.push(if payload.starts_with(b"{") {
            "json"
        } else if payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            "zstd"
        } else {
            "?"
        });
        pos += 4 + len;
    }
    assert_eq!(kinds, ["json", "zstd", "zstd"]);

    let (ctx, stats) = load(&[path]).await;
    no_bad(&stats);
    assert_eq!(stats.documents, 3);
    assert_eq!(counts(&stats), [2, 0, 0, 1, 0]);
    assert_eq!(
        rows(&ctx, "SELECT operation_name, service_name, parent_span_id, duration_ms, attributes['cart.id'] FROM traces ORDER BY span_id").await,
        table(&[
            &["cart.add_item", "cart", "NULL", "30.0", "cart-frame"],
            &["shipping.calculate_rates", "shipping", "fcde2b2edba56bf1", "2300.0", "cart-frame"],
        ])
    );
    assert_eq!(
        rows(&ctx, "SELECT name, int_value, timestamp FROM metrics").await,
        table(&[&["cart.items", "4", "2024-05-01T12:01:00Z"]])
    );
}

// 11 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_json_line_over_ten_megabytes_loads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge-lines.jsonl");
    let notes = "cart abandoned: shipping too slow; ".repeat(300_000); // 10.5 MB
    assert!(notes.len() > 10_000_000);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    // Line 1: one span with a 10.5 MB attribute.
    write!(
        f,
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"cart"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"0123456789abcdef0123456789abcdef","spanId":"0123456789abcdef","name":"cart.add_item","kind":2,"startTimeUnixNano":"1714564800000000000","endTimeUnixNano":"1714564800050000000","attributes":[{{"key":"cart.id","value":{{"stringValue":"cart-huge"}}}},{{"key":"cart.notes","value":{{"stringValue":"{notes}"}}}}]}}]}}]}}]}}"#
    )
    .unwrap();
    writeln!(f).unwrap();
    // Line 2: 40,000 spans in one line (about 11 MB).
    write!(f, r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"shipping"}}}}]}},"scopeSpans":[{{"spans":["#).unwrap();
    for i in 0..40_000u64 {
        if i > 0 {
            write!(f, ",").unwrap();
        }
        write!(
            f,
            r#"{{"traceId":"fedcba9876543210fedcba9876543210","spanId":"{:016x}","name":"shipping.calculate_rates","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[{{"key":"cart.id","value":{{"stringValue":"cart-{i:05}"}}}},{{"key":"shipping.carrier","value":{{"stringValue":"carrier-{}"}}}}]}}"#,
            0x1000_0000_0000_0000u64 + i,
            1714564800000000000u64 + i * 1_000_000,
            1714564800000000000u64 + i * 1_000_000 + 2_000_000_000,
            i % 7
        )
        .unwrap();
    }
    writeln!(f, "]}}]}}]}}").unwrap();
    // Line 3: malformed, to check that lines are still counted right after the long ones.
    writeln!(
        f,
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"name":}}]}}]}}]}}"#
    )
    .unwrap();
    drop(f);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 20_000_000, "{size}");

    let (ctx, stats) = load(std::slice::from_ref(&path)).await;
    assert_eq!(counts(&stats), [40_001, 0, 0, 0, 0]);
    assert_eq!(
        rows(
            &ctx,
            "SELECT attributes['cart.id'], length(attributes['cart.notes']), duration_ms FROM traces \
             WHERE operation_name = 'cart.add_item'"
        )
        .await,
        vec![s(&["cart-huge", &notes.len().to_string(), "50.0"])]
    );
    assert_eq!(
        one(&ctx, "SELECT attributes['cart.notes'] = repeat('cart abandoned: shipping too slow; ', 300000) FROM traces WHERE operation_name = 'cart.add_item'").await,
        "true"
    );
    assert_eq!(
        rows(
            &ctx,
            "SELECT count(*), count(DISTINCT span_id), count(DISTINCT attributes['cart.id']), min(attributes['cart.id']), \
             max(attributes['cart.id']), min(duration_ms), max(duration_ms) FROM traces \
             WHERE operation_name = 'shipping.calculate_rates'"
        )
        .await,
        vec![s(&["40000", "40000", "40000", "cart-00000", "cart-39999", "2000.0", "2000.0"])]
    );
    assert_eq!(stats.bad_total, 1, "{:#?}", stats.bad);
    assert_eq!(stats.bad[0].at, Location::Line(3), "{}", stats.bad[0]);
}

// 12 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_records_are_skipped_counted_and_located() {
    let path = dev("bad-records.jsonl");
    let (ctx, stats) = load(std::slice::from_ref(&path)).await;
    // Line 1: 2 good spans; line 2: 1; line 3 malformed (its complete first span must not
    // stay); line 4: one span with "startTimeUnixNano": true and one good span; line 5 is
    // truncated.
    assert_eq!(
        rows(
            &ctx,
            "SELECT span_id, operation_name FROM traces ORDER BY span_id"
        )
        .await,
        table(&[
            &["18ac3e7343f01601", "cart.add_item"],
            &["18ac3e7343f01602", "cart.add_item"],
            &["18ac3e7343f01603", "shipping.calculate_rates"],
            &["18ac3e7343f01606", "cart.checkout"],
        ])
    );
    assert_eq!(counts(&stats), [4, 0, 0, 0, 0]);
    assert_eq!(stats.bad_total, 3, "{:#?}", stats.bad);
    assert_eq!(stats.bad.len(), 3);
    let at: Vec<Location> = stats.bad.iter().map(|b| b.at).collect();
    assert_eq!(
        at,
        [Location::Line(3), Location::Line(4), Location::Line(5)]
    );
    for b in &stats.bad {
        assert_eq!(b.file, path, "{b}");
    }
    assert!(
        stats.bad[0].reason.contains("invalid JSON"),
        "{}",
        stats.bad[0]
    );
    assert!(
        stats.bad[1].reason.contains("cart.apply_coupon")
            && stats.bad[1].reason.contains("startTimeUnixNano"),
        "{}",
        stats.bad[1]
    );
    assert!(
        stats.bad[2].reason.contains("truncated"),
        "{}",
        stats.bad[2]
    );
    let shown = stats.bad[0].to_string();
    assert!(
        shown.starts_with(&format!("{}:3: ", path.display())),
        "{shown}"
    );

    // strict: the first bad record stops the load and is named.
    let err = try_load(std::slice::from_ref(&path), true).expect_err("strict load must fail");
    let strict = err
        .downcast_ref::<StrictError>()
        .unwrap_or_else(|| panic!("not a StrictError: {err:#}"));
    assert_eq!(strict.0.file, path);
    assert_eq!(strict.0.at, Location::Line(3));
    assert!(
        format!("{err:#}").contains(&format!("{}:3:", path.display())),
        "{err:#}"
    );
}

#[test]
fn bad_records_through_the_binary() {
    let path = dev("bad-records.jsonl");
    let o = cmd()
        .args(["tables", "--strict", "-f", "csv", "--data"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("{}:3:", path.display())),
        "{stderr}"
    );
    assert!(
        !stderr.contains(":4:"),
        "strict stops at the first: {stderr}"
    );

    let o = cmd()
        .args(["tables", "-f", "csv", "--data"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "stderr: {stderr}");
    for line in [3, 4, 5] {
        assert!(
            stderr.contains(&format!("{}:{line}:", path.display())),
            "line {line}: {stderr}"
        );
    }
    assert!(stderr.contains("3 bad records skipped"), "{stderr}");
    assert!(
        stdout.lines().any(|l| l.starts_with("traces,4,")),
        "{stdout}"
    );
}

// 13 ---------------------------------------------------------------------------------------

#[test]
fn missing_path_and_empty_glob_are_errors_naming_them() {
    let missing = dev("no-such-export.jsonl");
    let o = cmd()
        .args(["tables", "--data"])
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(o.stdout.is_empty());

    let glob = format!("{}/*.nothing-matches", dev("").display());
    let o = cmd().args(["tables", "--data", &glob]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&glob), "{stderr}");

    // The library says the same.
    let err = cartscope::resolve(&[missing.display().to_string()]).unwrap_err();
    assert!(err.to_string().contains(&missing.display().to_string()));
    let err = cartscope::resolve(std::slice::from_ref(&glob)).unwrap_err();
    assert!(err.to_string().contains(&glob));
}

// 14 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn directories_are_read_recursively_and_globs_expand() {
    let tree = dev("tree");
    let (ctx, stats) = load(std::slice::from_ref(&tree)).await;
    no_bad(&stats);
    // traces.jsonl, traces.json, metrics.jsonl and notes.txt; not the hidden .staging folder.
    assert_eq!(stats.files, 4);
    assert_eq!(counts(&stats), [2, 0, 0, 1, 0]);
    assert_eq!(
        rows(
            &ctx,
            "SELECT operation_name, service_name, duration_ms FROM traces ORDER BY start_time"
        )
        .await,
        table(&[
            &["cart.checkout", "checkout", "2900.0"],
            &["shipping.calculate_rates", "shipping", "2500.0"],
        ])
    );
    assert_eq!(
        rows(&ctx, "SELECT name, int_value, timestamp FROM metrics").await,
        table(&[&["cart.items", "5", "2024-05-02T12:00:01Z"]])
    );
    assert_eq!(stats.skipped_files.len(), 1, "{:?}", stats.skipped_files);
    assert!(stats.skipped_files[0]
        .0
        .ends_with("tree/2024-05-02/notes.txt"));

    let inputs = cartscope::resolve(&[tree.display().to_string()]).unwrap();
    let rel: Vec<String> = inputs
        .files
        .iter()
        .map(|f| f.path.strip_prefix(&tree).unwrap().display().to_string())
        .collect();
    assert_eq!(
        rel,
        [
            "2024-05-01/checkout/traces.jsonl",
            "2024-05-01/shipping/traces.json",
            "2024-05-02/metrics.jsonl",
            "2024-05-02/notes.txt",
        ]
    );

    let glob = PathBuf::from(format!("{}/*/*/traces.*", tree.display()));
    let (ctx, stats) = load(&[glob]).await;
    no_bad(&stats);
    assert_eq!(stats.files, 2);
    assert_eq!(
        rows(
            &ctx,
            "SELECT operation_name FROM traces ORDER BY start_time"
        )
        .await,
        table(&[&["cart.checkout"], &["shipping.calculate_rates"]])
    );

    // A glob that matches folders reads each of them recursively.
    let glob = PathBuf::from(format!("{}/2024-05-0?", tree.display()));
    let (_, stats) = load(&[glob]).await;
    assert_eq!(counts(&stats), [2, 0, 0, 1, 0]);
}

// 15 ---------------------------------------------------------------------------------------

const ACCEPTANCE: &str = "SELECT attributes['cart.id'], duration_ms FROM traces \
    WHERE operation_name = 'shipping.calculate_rates' AND duration_ms > 2000";

#[tokio::test]
async fn the_issue_acceptance_query() {
    let (ctx, stats) = load(&[dev("acceptance-shipping-rates.jsonl")]).await;
    no_bad(&stats);
    let mut got = rows(&ctx, ACCEPTANCE).await;
    got.sort();
    // cart-51 took 1800 ms and cart-88 exactly 2000 ms; the 2400 ms quote_carrier span and
    // the checkout spans have other names.
    assert_eq!(
        got,
        table(&[&["cart-42", "2500.0"], &["cart-77", "3200.5"]])
    );

    let o = cmd()
        .args(["query", "-f", "csv", "-e", ACCEPTANCE, "--data"])
        .arg(dev("acceptance-shipping-rates.jsonl"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut lines: Vec<&str> = stdout.lines().skip(1).collect();
    lines.sort();
    assert_eq!(lines, ["cart-42,2500.0", "cart-77,3200.5"], "{stdout}");
}

// 16 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn attribute_values_as_text() {
    let (ctx, stats) = load(&[dev("attribute-values.jsonl")]).await;
    no_bad(&stats);
    let cases: &[(&str, &str)] = &[
        ("cart.id", "cart-values"),
        ("cart.line_count", "3"),
        ("cart.line_count_number", "3"),
        ("cart.balance_cents", "-250"),
        ("cart.big_counter", "9223372036854775807"),
        ("cart.discount_rate", "0.1"),
        ("shipping.weight_kg", "2"),
        ("cart.total", "637.704"),
        ("cart.is_guest", "true"),
        ("cart.gift_wrap", "false"),
        ("cart.skus", r#"["sku-1","sku-2"]"#),
        ("cart.mixed", r#"["a",5,1.5,2,false,null]"#),
        (
            "shipping.address",
            r#"{"country":"DE","zip":"10115","lines":["Unter den Linden 1","Mitte"],"geo":{"lat":52.5,"lon":13.4}}"#,
        ),
        (
            "shipping.parcels",
            r#"{"dims":[[30,20],[10]],"note":"say \"fragile\""}"#,
        ),
        ("cart.empty_list", "[]"),
        ("cart.empty_map", "{}"),
    ];
    for (key, want) in cases {
        assert_eq!(
            one(&ctx, &format!("SELECT attributes['{key}'] FROM traces")).await,
            *want,
            "attribute {key}"
        );
    }
    assert_eq!(
        one(&ctx, "SELECT cardinality(attributes) FROM traces").await,
        cases.len().to_string()
    );
    // The JSON forms are JSON.
    for key in [
        "cart.skus",
        "cart.mixed",
        "shipping.address",
        "shipping.parcels",
    ] {
        let text = one(&ctx, &format!("SELECT attributes['{key}'] FROM traces")).await;
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("{key}: {text}: {e}"));
    }
}

// 17 ---------------------------------------------------------------------------------------

async fn check_crlf(path: &Path) {
    let (ctx, stats) = load(&[path.to_path_buf()]).await;
    no_bad(&stats);
    assert_eq!(stats.documents, 3);
    assert_eq!(counts(&stats), [2, 0, 0, 1, 0]);
    assert_eq!(
        rows(
            &ctx,
            "SELECT operation_name, service_name, attributes['cart.id'], parent_span_id, duration_ms \
             FROM traces ORDER BY span_id"
        )
        .await,
        table(&[
            &["cart.add_item", "cart", "cart-crlf", "NULL", "30.0"],
            &["shipping.calculate_rates", "shipping", "cart-crlf", "4e07408562bedb81", "2300.0"],
        ])
    );
    assert_eq!(
        rows(
            &ctx,
            "SELECT name, int_value, attributes['cart.id'] FROM metrics"
        )
        .await,
        table(&[&["cart.items", "1", "cart-crlf"]])
    );
}

#[tokio::test]
async fn crlf_line_endings() {
    let path = dev("crlf-line-endings.jsonl");
    let text = std::fs::read(&path).unwrap();
    assert_eq!(text.windows(2).filter(|w| w == b"\r\n").count(), 3);
    check_crlf(&path).await;
}

#[tokio::test]
async fn utf8_bom_and_crlf() {
    let path = dev("bom-crlf.jsonl");
    let text = std::fs::read(&path).unwrap();
    assert!(text.starts_with(b"\xef\xbb\xbf{"));
    check_crlf(&path).await;
}

// Found while probing the items above -------------------------------------------------------

#[tokio::test]
async fn framed_json_bad_frames_are_skipped() {
    let path = dev("framed-json-bad-frames.binpb");
    let (ctx, stats) = load(std::slice::from_ref(&path)).await;
    // Frame 1 good; frame 2 malformed JSON (its complete first span must not stay); frame 3
    // good and zstd-compressed; the file ends inside frame 4.
    assert_eq!(
        rows(
            &ctx,
            "SELECT span_id, operation_name FROM traces ORDER BY span_id"
        )
        .await,
        table(&[
            &["b5bb9d8014a0f901", "cart.add_item"],
            &["b5bb9d8014a0f903", "shipping.calculate_rates"],
        ])
    );
    assert_eq!(stats.bad_total, 2, "{:#?}", stats.bad);
    let mut at: Vec<Location> = stats.bad.iter().map(|b| b.at).collect();
    at.sort();
    assert_eq!(at, [Location::Frame(2), Location::Frame(4)]);
    assert!(stats.bad.iter().all(|b| b.file == path));
}

#[tokio::test]
async fn framed_bad_records_are_in_file_order_and_strict_names_the_first() {
    let path = dev("framed-json-bad-frames.binpb");
    let (_, stats) = load(std::slice::from_ref(&path)).await;
    let at: Vec<Location> = stats.bad.iter().map(|b| b.at).collect();
    assert_eq!(
        at,
        [Location::Frame(2), Location::Frame(4)],
        "{:#?}",
        stats.bad
    );

    let err = try_load(std::slice::from_ref(&path), true).expect_err("strict load must fail");
    let strict = err
        .downcast_ref::<StrictError>()
        .unwrap_or_else(|| panic!("not a StrictError: {err:#}"));
    assert_eq!(strict.0.at, Location::Frame(2), "{err:#}");
}

#[tokio::test]
async fn truncated_gzip_keeps_the_lines_before_the_break() {
    // The gzip of 12 one-span lines, cut after byte 1061 of 1510: the first 7 lines (5194 of
    // 7950 bytes) decompress completely, the 8th breaks off.
    let path = dev("truncated.jsonl.gz");
    let (ctx, stats) = load(std::slice::from_ref(&path)).await;
    let want: Vec<Vec<String>> = (0..7)
        .map(|i| vec![format!("8527a891e22413{:02x}", 0x10 + i)])
        .collect();
    assert_eq!(
        rows(&ctx, "SELECT span_id FROM traces ORDER BY span_id").await,
        want
    );
    assert!(stats.bad_total >= 1, "the break is reported");
    assert!(stats.bad.iter().all(|b| b.file == path));
}

#[tokio::test]
async fn an_any_value_with_two_kinds_keeps_one_of_them() {
    let (ctx, stats) = load(&[dev("attribute-two-value-kinds.jsonl")]).await;
    assert_eq!(counts(&stats), [1, 0, 0, 0, 0]);
    let coupon = one(&ctx, "SELECT attributes['cart.coupon'] FROM traces").await;
    assert!(coupon == "SPRING" || coupon == "5", "got {coupon:?}");
    let lines = one(&ctx, "SELECT attributes['cart.line_count'] FROM traces").await;
    assert!(lines == "3" || lines == "3.5", "got {lines:?}");
}

#[tokio::test]
async fn a_bad_record_in_a_pretty_printed_document_is_reported_at_its_own_line() {
    let tmp = tempfile::tempdir().unwrap();
    // A blank line, then a document of many lines: the resource's attribute (line 5), the
    // second span's start time (line 23), the third span's kind (line 29) and a data point's
    // count (line 14 of the metrics file) are bad. The resource is reported after its spans,
    // though it comes first.
    let traces = tmp.path().join("traces.json");
    std::fs::write(
        &traces,
        r#"
{
  "resourceSpans": [
    {
      "resource": {
        "attributes": [
          {"key": "host.cpus", "value": {"intValue": "many"}}
        ]
      },
      "scopeSpans": [
        {
          "spans": [
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "eee19b7ec3c1b174",
              "name": "good",
              "startTimeUnixNano": "1714564800000000000"
            },
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "eee19b7ec3c1b175",
              "name": "bad",
              "startTimeUnixNano": true
            },
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "eee19b7ec3c1b176",
              "name": "worse",
              "kind": "SPAN_KIND_SIDEWAYS"
            }
          ]
        }
      ]
    }
  ]
}
"#,
    )
    .unwrap();
    let metrics = tmp.path().join("metrics.json");
    std::fs::write(
        &metrics,
        r#"{
  "resourceMetrics": [{
    "scopeMetrics": [{
      "metrics": [{
        "name": "cart.items",
        "histogram": {
          "dataPoints": [
            {
              "timeUnixNano": "1714564800000000000",
              "count": "1"
            },
            {
              "timeUnixNano": "1714564800000000000",
              "count": "many"
            }
          ]
        }
      }]
    }]
  }]
}
"#,
    )
    .unwrap();
    let stats = try_load(&[traces.clone(), metrics.clone()], false).unwrap();
    assert_eq!(stats.bad_total, 4, "{:#?}", stats.bad);
    let at: Vec<(PathBuf, Location)> = stats.bad.iter().map(|b| (b.file.clone(), b.at)).collect();
    for line in [5, 23, 29] {
        assert!(
            at.contains(&(traces.clone(), Location::Line(line))),
            "line {line}: {:#?}",
            stats.bad
        );
    }
    assert!(
        at.contains(&(metrics, Location::Line(14))),
        "{:#?}",
        stats.bad
    );
}

#[tokio::test]
async fn a_framed_file_whose_first_frame_is_over_16_mib_is_recognised() {
    // The length prefix of a frame of 16 MiB or more does not start with a zero byte.
    let notes = "x".repeat(17 << 20);
    let doc = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"cart.add_item","startTimeUnixNano":"1714564800000000000","endTimeUnixNano":"1714564800050000000","attributes":[{{"key":"cart.notes","value":{{"stringValue":"{notes}"}}}}]}}]}}]}}]}}"#
    );
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("big-frame.binpb");
    let mut bytes = (doc.len() as u32).to_be_bytes().to_vec();
    assert_ne!(bytes[0], 0);
    bytes.extend_from_slice(doc.as_bytes());
    std::fs::write(&path, bytes).unwrap();

    let (ctx, stats) = load(std::slice::from_ref(&path)).await;
    no_bad(&stats);
    assert_eq!(counts(&stats), [1, 0, 0, 0, 0]);
    assert_eq!(
        rows(
            &ctx,
            "SELECT operation_name, length(attributes['cart.notes']) FROM traces"
        )
        .await,
        table(&[&["cart.add_item", &(17 << 20).to_string()]])
    );
}
