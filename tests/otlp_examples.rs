//! The twenty real OTLP/JSON files of `tests/fixtures/otlp-examples` (see its README): one
//! test per file, each loading only that file and checking the row counts, that nothing was
//! reported bad, and the specific things the README says the file shows, with values read
//! from the file. Timestamps are compared as microseconds since the epoch
//! (`CAST(ts AS BIGINT)`), so the checks do not depend on how timestamps are printed.

use crate::util::*;
use cartscope::{LoadStats, Table};
use datafusion::prelude::SessionContext;

const DIR: &str = "otlp-examples";

/// Expected rows per table ([traces, span_events, span_links, metrics, exemplars]) and
/// documents for every file; the folder test checks that the totals are their sums.
const EXPECTED: [(&str, [u64; 5], u64); 20] = [
    ("proto-examples-trace.json", [1, 0, 0, 0, 0], 1),
    ("proto-examples-metrics.json", [0, 0, 0, 4, 0], 1),
    ("proto-examples-logs.json", [0, 0, 0, 0, 0], 1),
    ("contrib-countconnector-traces.json", [3, 2, 2, 0, 0], 1),
    ("contrib-countconnector-metrics.json", [0, 0, 0, 12, 1], 1),
    ("jaeger-memory-traces.json", [4, 8, 8, 0, 0], 1),
    ("jaegerui-nodejs-fileexporter.jsonl", [4, 0, 0, 0, 0], 4),
    ("goauto-nethttp-fileexporter.jsonl", [2, 0, 0, 0, 0], 1),
    ("duckdbotlp-metrics-all-types.jsonl", [0, 0, 0, 5, 0], 5),
    (
        "duckdbotlp-temporality-enum-names.jsonl",
        [0, 0, 0, 1, 0],
        1,
    ),
    ("duckdbotlp-traces-large-attrs.jsonl", [1, 0, 0, 0, 0], 1),
    ("otlp2parquet-traces-protojson.jsonl", [19, 6, 0, 0, 0], 19),
    ("rust-serde-traces.json", [2, 2, 0, 0, 0], 1),
    ("rust-serde-metrics.json", [0, 0, 0, 2, 0], 1),
    ("datadog-mapping-mixed-metrics.json", [0, 0, 0, 15, 0], 1),
    ("gcp-histogram-exemplars.json", [0, 0, 0, 4, 4], 1),
    ("gcp-exponential-histogram.json", [0, 0, 0, 2, 0], 1),
    ("gcp-summary-snake-case.json", [0, 0, 0, 1, 0], 1),
    ("gcp-traces-concatenated.json", [45, 0, 0, 0, 0], 3),
    (
        "contrib-testbed-k8s-metrics-legacy.json",
        [0, 0, 0, 2, 0],
        1,
    ),
];

fn expected(file: &str) -> ([u64; 5], u64) {
    let (_, c, d) = EXPECTED
        .iter()
        .find(|(f, _, _)| *f == file)
        .unwrap_or_else(|| panic!("{file} not in EXPECTED"));
    (*c, *d)
}

/// Loads one example file and checks its row and document counts and that nothing in it was
/// reported bad (none of the twenty files holds a bad record).
async fn load_example(file: &str) -> (SessionContext, LoadStats) {
    let (ctx, stats) = load(&[fixture(&format!("{DIR}/{file}"))]).await;
    let (rows_expected, docs_expected) = expected(file);
    assert_eq!(stats.bad_total, 0, "{file}: bad records {:?}", stats.bad);
    assert!(stats.bad.is_empty(), "{file}: {:?}", stats.bad);
    assert_eq!(counts(&stats), rows_expected, "{file}: rows per table");
    assert_eq!(stats.documents, docs_expected, "{file}: documents");
    assert_eq!(stats.empty_documents, 0, "{file}: empty documents");
    assert!(
        stats.skipped_files.is_empty(),
        "{file}: {:?}",
        stats.skipped_files
    );
    (ctx, stats)
}

/// Rows of a query, as text (NULL as "NULL").
async fn q(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    rows(ctx, sql).await
}

/// The single column of a query, as text.
async fn col(ctx: &SessionContext, sql: &str) -> Vec<String> {
    rows(ctx, sql)
        .await
        .into_iter()
        .map(|mut r| {
            assert_eq!(r.len(), 1, "{sql}");
            r.remove(0)
        })
        .collect()
}

fn t(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|c| c.to_string()).collect()
}

/// A JSON array of integers (strings or numbers) formatted as the list columns print.
fn int_list(v: &serde_json::Value) -> String {
    let items: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|x| match x {
            serde_json::Value::String(s) => s.parse::<i64>().expect("int string").to_string(),
            other => other.as_i64().expect("int").to_string(),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn read_json(file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(&format!("{DIR}/{file}"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

// ---- opentelemetry-proto examples ---------------------------------------------------------

#[tokio::test]
async fn proto_examples_trace() {
    // One pretty-printed TracesData document, UPPERCASE hex ids, int64 as strings, scope
    // attributes.
    let (ctx, _) = load_example("proto-examples-trace.json").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT trace_id, span_id, parent_span_id, operation_name, service_name, span_kind, \
             CAST(start_time AS BIGINT) AS start_time_us, CAST(end_time AS BIGINT) AS end_time_us, duration_ms, status_code, \
             status_message, attributes['my.span.attr'], resource_attributes['service.name'], \
             scope_name, scope_version, scope_attributes['my.scope.attribute'], \
             cardinality(scope_attributes), cardinality(attributes) FROM traces"
        )
        .await,
        t(&[&[
            "5b8efff798038103d269b633813fc60c",
            "eee19b7ec3c1b174",
            "eee19b7ec3c1b173",
            "I'm a server span",
            "my.service",
            "server",
            "1544712660000000",
            "1544712661000000",
            "1000.0",
            "unset",
            "NULL",
            "some value",
            "my.service",
            "my.library",
            "1.0.0",
            "some scope attribute",
            "1",
            "1",
        ]])
    );
}

#[tokio::test]
async fn proto_examples_metrics() {
    // sum, gauge, histogram and exponentialHistogram, one point each.
    let (ctx, _) = load_example("proto-examples-metrics.json").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT name, description, unit, metric_type, CAST(timestamp AS BIGINT) AS timestamp_us, \
             CAST(start_timestamp AS BIGINT) AS start_timestamp_us, value, int_value, is_monotonic, \
             aggregation_temporality, service_name, scope_name, scope_version \
             FROM metrics ORDER BY name"
        )
        .await,
        t(&[
            &[
                "my.counter", "I am a Counter", "1", "sum", "1544712660300000",
                "1544712660300000", "5.0", "NULL", "true", "delta", "my.service", "my.library",
                "1.0.0",
            ],
            &[
                "my.exponential.histogram", "I am an Exponential Histogram", "1",
                "exponential_histogram", "1544712660300000", "1544712660300000", "NULL", "NULL",
                "NULL", "delta", "my.service", "my.library", "1.0.0",
            ],
            &[
                "my.gauge", "I am a Gauge", "1", "gauge", "1544712660300000", "NULL", "10.0",
                "NULL", "NULL", "NULL", "my.service", "my.library", "1.0.0",
            ],
            &[
                "my.histogram", "I am a Histogram", "1", "histogram", "1544712660300000",
                "1544712660300000", "NULL", "NULL", "NULL", "delta", "my.service", "my.library",
                "1.0.0",
            ],
        ])
    );
    // The point attributes, each under its own key.
    assert_eq!(
        col(
            &ctx,
            "SELECT coalesce(attributes['my.counter.attr'], attributes['my.gauge.attr'], \
             attributes['my.histogram.attr'], attributes['my.exponential.histogram.attr']) \
             FROM metrics ORDER BY name"
        )
        .await,
        s(&["some value"; 4])
    );
    // Histogram: count "2" (string), bucketCounts ["1","1"], explicitBounds [1], min/max.
    assert_eq!(
        q(
            &ctx,
            "SELECT count, sum, min, max, bucket_counts, explicit_bounds FROM metrics \
             WHERE metric_type = 'histogram'"
        )
        .await,
        t(&[&["2", "2.0", "0.0", "2.0", "[1, 1]", "[1.0]"]])
    );
    // Exponential histogram: scale 0, zeroCount "1", positive offset 1 with ["0","2"].
    assert_eq!(
        q(
            &ctx,
            "SELECT count, sum, min, max, scale, zero_count, zero_threshold, positive_offset, \
             positive_bucket_counts, coalesce(cardinality(negative_bucket_counts), 0) \
             FROM metrics WHERE metric_type = 'exponential_histogram'"
        )
        .await,
        t(&[&["3", "10.0", "0.0", "5.0", "0", "1", "0.0", "1", "[0, 2]", "0"]])
    );
}

#[tokio::test]
async fn proto_examples_logs() {
    // A LogsData document: one row of `logs`, every AnyValue kind as text, the UPPERCASE ids
    // lowercased; no span or metric rows, and neither bad nor empty.
    let (ctx, stats) = load_example("proto-examples-logs.json").await;
    assert_eq!(stats.rows[Table::Logs], 1);
    assert_eq!(stats.bad_total, 0);
    assert_eq!(stats.empty_documents, 0);
    for table in [
        "traces",
        "span_events",
        "span_links",
        "metrics",
        "exemplars",
    ] {
        assert_eq!(
            one(&ctx, &format!("SELECT count(*) FROM {table}")).await,
            "0",
            "{table}"
        );
    }
    assert_eq!(
        q(
            &ctx,
            "SELECT CAST(timestamp AS BIGINT), CAST(observed_timestamp AS BIGINT), \
             severity_number, severity_text, body, trace_id, span_id, service_name, scope_name, \
             scope_version, attributes['string.attribute'], attributes['boolean.attribute'], \
             attributes['int.attribute'], attributes['double.attribute'], \
             attributes['array.attribute'], attributes['map.attribute'] FROM logs"
        )
        .await,
        t(&[&[
            "1544712660300000",
            "1544712660300000",
            "10",
            "Information",
            "Example log record",
            "5b8efff798038103d269b633813fc60c",
            "eee19b7ec3c1b174",
            "my.service",
            "my.library",
            "1.0.0",
            "some string",
            "true",
            "10",
            "637.704",
            "[\"many\",\"values\"]",
            "{\"some.map.key\":\"some value\"}",
        ]])
    );
}

// ---- collector-contrib countconnector testdata --------------------------------------------

#[tokio::test]
async fn contrib_countconnector_traces() {
    // Empty ids, empty scope, status with and without code, events, links, dropped counts.
    let (ctx, _) = load_example("contrib-countconnector-traces.json").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT operation_name, trace_id, span_id, parent_span_id, span_kind, status_code, \
             status_message, dropped_attributes_count, dropped_events_count, \
             dropped_links_count, CAST(start_time AS BIGINT) AS start_time_us, CAST(end_time AS BIGINT) AS end_time_us, \
             duration_ms, resource_attributes['resource-attr'], attributes['span-attr'], \
             scope_name, scope_version, cardinality(scope_attributes), service_name \
             FROM traces ORDER BY operation_name"
        )
        .await,
        t(&[
            &[
                "operationA", "NULL", "NULL", "NULL", "unspecified", "error", "status-cancelled",
                "1", "1", "NULL", "1581452772000000", "1581452773000000", "1000.000468",
                "resource-attr-val-1", "NULL", "NULL", "NULL", "0", "NULL",
            ],
            &[
                "operationB", "NULL", "NULL", "NULL", "unspecified", "unset", "NULL", "NULL",
                "NULL", "3", "1581452772000000", "1581452773000000", "1000.000468",
                "resource-attr-val-1", "NULL", "NULL", "NULL", "0", "NULL",
            ],
            &[
                "operationC", "NULL", "NULL", "NULL", "unspecified", "unset", "NULL", "5",
                "NULL", "NULL", "1581452772000000", "1581452773000000", "1000.000468",
                "resource-attr-val-2", "span-attr-val", "NULL", "NULL", "0", "NULL",
            ],
        ])
    );
    // The two events of operationA, with their dropped attribute counts.
    assert_eq!(
        q(
            &ctx,
            "SELECT name, trace_id, span_id, CAST(timestamp AS BIGINT) AS timestamp_us, \
             attributes['span-event-attr'], cardinality(attributes), dropped_attributes_count \
             FROM span_events ORDER BY name"
        )
        .await,
        t(&[
            &[
                "event",
                "NULL",
                "NULL",
                "1581452773000000",
                "NULL",
                "0",
                "2"
            ],
            &[
                "event-with-attr",
                "NULL",
                "NULL",
                "1581452773000000",
                "span-event-attr-val",
                "1",
                "2",
            ],
        ])
    );
    // The two links of operationB: empty linked ids are NULL.
    assert_eq!(
        q(
            &ctx,
            "SELECT linked_trace_id, linked_span_id, CAST(span_start_time AS BIGINT) AS span_start_time_us, \
             attributes['span-link-attr'], cardinality(attributes), dropped_attributes_count \
             FROM span_links ORDER BY cardinality(attributes) DESC"
        )
        .await,
        t(&[
            &["NULL", "NULL", "1581452772000000", "span-link-attr-val", "1", "4"],
            &["NULL", "NULL", "1581452772000000", "NULL", "0", "4"],
        ])
    );
}

#[tokio::test]
async fn contrib_countconnector_metrics() {
    // asInt as a string, histogram exemplars with empty ids, summary quantiles.
    let (ctx, _) = load_example("contrib-countconnector-metrics.json").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT name, metric_type, value, int_value, is_monotonic, aggregation_temporality, \
             CAST(timestamp AS BIGINT) AS timestamp_us, CAST(start_timestamp AS BIGINT) AS start_timestamp_us, \
             coalesce(attributes['label-2'], attributes['label-3']) \
             FROM metrics WHERE metric_type IN ('gauge', 'sum') ORDER BY name, value"
        )
        .await,
        t(&[
            &[
                "counter-double", "sum", "1.23", "NULL", "true", "cumulative",
                "1581452773000000", "1581452772000000", "label-value-2",
            ],
            &[
                "counter-double", "sum", "4.56", "NULL", "true", "cumulative",
                "1581452773000000", "1581452772000000", "label-value-3",
            ],
            &[
                "counter-int", "sum", "123.0", "123", "true", "cumulative", "1581452773000000",
                "1581452772000000", "NULL",
            ],
            &[
                "counter-int", "sum", "456.0", "456", "true", "cumulative", "1581452773000000",
                "1581452772000000", "label-value-2",
            ],
            &[
                "gauge-double", "gauge", "1.23", "NULL", "NULL", "NULL", "1581452773000000",
                "1581452772000000", "label-value-2",
            ],
            &[
                "gauge-double", "gauge", "4.56", "NULL", "NULL", "NULL", "1581452773000000",
                "1581452772000000", "label-value-3",
            ],
            &[
                "gauge-int", "gauge", "123.0", "123", "NULL", "NULL", "1581452773000000",
                "1581452772000000", "NULL",
            ],
            &[
                "gauge-int", "gauge", "456.0", "456", "NULL", "NULL", "1581452773000000",
                "1581452772000000", "label-value-2",
            ],
        ])
    );
    // Histogram points: one without buckets, one with bucketCounts ["0","1"] and bounds [1].
    assert_eq!(
        q(
            &ctx,
            "SELECT name, count, sum, coalesce(cardinality(bucket_counts), 0), \
             coalesce(cardinality(explicit_bounds), 0), aggregation_temporality \
             FROM metrics WHERE metric_type = 'histogram' ORDER BY attributes['label-2'] NULLS FIRST"
        )
        .await,
        t(&[
            &["double-histogram", "1", "15.0", "0", "0", "cumulative"],
            &["double-histogram", "1", "15.0", "2", "1", "cumulative"],
        ])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT bucket_counts, explicit_bounds FROM metrics \
             WHERE metric_type = 'histogram' AND attributes['label-2'] = 'label-value-2'"
        )
        .await,
        t(&[&["[0, 1]", "[1.0]"]])
    );
    // Summary points: one without quantiles, one with quantile 0.01 -> 15.
    assert_eq!(
        q(
            &ctx,
            "SELECT name, count, sum, coalesce(cardinality(quantiles), 0), \
             coalesce(cardinality(quantile_values), 0), aggregation_temporality \
             FROM metrics WHERE metric_type = 'summary' ORDER BY attributes['label-2'] NULLS FIRST"
        )
        .await,
        t(&[
            &["double-summary", "1", "15.0", "0", "0", "NULL"],
            &["double-summary", "1", "15.0", "1", "1", "NULL"],
        ])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT quantiles, quantile_values FROM metrics \
             WHERE metric_type = 'summary' AND attributes['label-2'] = 'label-value-2'"
        )
        .await,
        t(&[&["[0.01]", "[15.0]"]])
    );
    // The exemplar: empty traceId/spanId are NULL, filteredAttributes kept.
    assert_eq!(
        q(
            &ctx,
            "SELECT metric_name, CAST(point_timestamp AS BIGINT) AS point_timestamp_us, point_attributes['label-2'], \
             CAST(timestamp AS BIGINT) AS timestamp_us, value, trace_id, span_id, \
             filtered_attributes['exemplar-attachment'] FROM exemplars"
        )
        .await,
        t(&[&[
            "double-histogram",
            "1581452773000000",
            "label-value-2",
            "1581452773000000",
            "15.0",
            "NULL",
            "NULL",
            "exemplar-attachment-value",
        ]])
    );
    assert_eq!(
        one(
            &ctx,
            "SELECT count(DISTINCT resource_attributes['resource-attr']) FROM metrics"
        )
        .await,
        "1"
    );
}

// ---- jaeger -----------------------------------------------------------------------------

#[tokio::test]
async fn jaeger_memory_traces() {
    // Two scopes with scope attributes; traceState, flags, every span kind 2-5; bytesValue
    // and doubleValue attributes; events without a name; links with attributes; status code 2
    // without a message.
    let (ctx, _) = load_example("jaeger-memory-traces.json").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT span_id, trace_id, parent_span_id, operation_name, span_kind, trace_state, \
             flags, status_code, status_message, scope_name, scope_version, \
             coalesce(scope_attributes['scope.attributes.2'], scope_attributes['scope.attributes.3']), \
             cardinality(scope_attributes), service_name, duration_ms \
             FROM traces ORDER BY span_id"
        )
        .await,
        t(&[
            &[
                "0000000000000002", "00000000000000010000000000000000", "0000000000000003",
                "test-general-conversion-2", "server", "state.2", "1", "error", "NULL",
                "testing-library-2", "1.1.1", "attribute-y", "1", "service-x", "0.005",
            ],
            &[
                "0000000000000003", "00000000000000020000000000000000", "0000000000000010",
                "test-general-conversion-3", "client", "state.3", "1", "error", "NULL",
                "testing-library-2", "1.1.1", "attribute-y", "1", "service-x", "0.005",
            ],
            &[
                "0000000000000004", "00000000000000010000000000000000", "0000000000000011",
                "test-general-conversion-4", "producer", "state.4", "1", "error", "NULL",
                "testing-library-3", "1.1.2", "attribute-y", "1", "service-x", "0.005",
            ],
            &[
                "0000000000000005", "00000000000000020000000000000000", "0000000000000010",
                "test-general-conversion-5", "consumer", "state.5", "1", "error", "NULL",
                "testing-library-3", "1.1.2", "attribute-y", "1", "service-x", "0.005",
            ],
        ])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT DISTINCT scope_name, scope_attributes['scope.attributes.2'], \
             scope_attributes['scope.attributes.3'] FROM traces ORDER BY scope_name"
        )
        .await,
        t(&[
            &["testing-library-2", "attribute-y", "NULL"],
            &["testing-library-3", "NULL", "attribute-y"],
        ])
    );
    // Every span has the same four attributes: string, int, bytes (base64 text), double.
    assert_eq!(
        q(
            &ctx,
            "SELECT DISTINCT attributes['peer.service'], attributes['peer.ipv4'], \
             attributes['blob'], attributes['temperature'], cardinality(attributes), \
             CAST(start_time AS BIGINT) AS start_time_us, CAST(end_time AS BIGINT) AS end_time_us FROM traces"
        )
        .await,
        t(&[&[
            "service-y",
            "23456",
            "AAAwOQ==",
            "72.5",
            "4",
            "1485467191639875",
            "1485467191639880",
        ]])
    );
    // Two events per span, one named and one without a name.
    assert_eq!(
        q(
            &ctx,
            "SELECT span_id, trace_id, name, attributes['event-x'], CAST(timestamp AS BIGINT) AS timestamp_us, \
             service_name FROM span_events WHERE name IS NOT NULL AND name <> '' ORDER BY span_id"
        )
        .await,
        t(&[
            &[
                "0000000000000002", "00000000000000010000000000000000", "testing-event",
                "event-y", "1485467191639875", "service-x",
            ],
            &[
                "0000000000000003", "00000000000000020000000000000000", "testing-event",
                "event-y", "1485467191639875", "service-x",
            ],
            &[
                "0000000000000004", "00000000000000010000000000000000", "testing-event",
                "event-y", "1485467191639875", "service-x",
            ],
            &[
                "0000000000000005", "00000000000000020000000000000000", "testing-event",
                "event-y", "1485467191639875", "service-x",
            ],
        ])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT span_id, attributes['x'], cardinality(attributes) FROM span_events \
             WHERE coalesce(name, '') = '' ORDER BY span_id"
        )
        .await,
        t(&[
            &["0000000000000002", "y", "1"],
            &["0000000000000003", "y", "1"],
            &["0000000000000004", "y", "1"],
            &["0000000000000005", "y", "1"],
        ])
    );
    // Two links per span, each with an attribute.
    assert_eq!(
        q(
            &ctx,
            "SELECT span_id, trace_id, linked_trace_id, linked_span_id, \
             attributes['opentracing.ref_type'], CAST(span_start_time AS BIGINT) AS span_start_time_us \
             FROM span_links WHERE span_id = '0000000000000003' ORDER BY linked_trace_id"
        )
        .await,
        t(&[
            &[
                "0000000000000003", "00000000000000020000000000000000",
                "00000000000000010000000000000000", "0000000000000004", "follows_from",
                "1485467191639875",
            ],
            &[
                "0000000000000003", "00000000000000020000000000000000",
                "00000000000000ff0000000000000000", "00000000000000ff", "child_of",
                "1485467191639875",
            ],
        ])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT attributes['opentracing.ref_type'], linked_trace_id, linked_span_id, count(*) \
             FROM span_links GROUP BY 1, 2, 3 ORDER BY 1"
        )
        .await,
        t(&[
            &[
                "child_of",
                "00000000000000ff0000000000000000",
                "00000000000000ff",
                "4"
            ],
            &[
                "follows_from",
                "00000000000000010000000000000000",
                "0000000000000004",
                "4"
            ],
        ])
    );
}

#[tokio::test]
async fn jaegerui_nodejs_fileexporter() {
    // JSON lines, one span each; parentSpanId "" on the root; status {}.
    let (ctx, _) = load_example("jaegerui-nodejs-fileexporter.jsonl").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT span_id, parent_span_id, operation_name, span_kind, status_code, \
             status_message, scope_name, scope_version, CAST(start_time AS BIGINT) AS start_time_us, \
             CAST(end_time AS BIGINT) AS end_time_us, duration_ms FROM traces ORDER BY start_time"
        )
        .await,
        t(&[
            &[
                "eff3153be6b1fb93", "NULL", "main", "internal", "unset", "NULL", "widgets",
                "1.2.3", "1711138246940000", "1711138247116321", "176.321958",
            ],
            &[
                "49b8e9efa1e8a3b1", "eff3153be6b1fb93", "info", "internal", "unset", "NULL",
                "widgets", "1.2.3", "1711138246943000", "1711138247116150", "173.150875",
            ],
            &[
                "26f5ef9dbb885479", "49b8e9efa1e8a3b1", "ohboy.do", "internal", "unset", "NULL",
                "ohboy", "NULL", "1711138246978000", "1711138247024460", "46.460625",
            ],
            &[
                "e76628f4e6dde174", "49b8e9efa1e8a3b1", "ohboy.do", "internal", "unset", "NULL",
                "ohboy", "NULL", "1711138247025000", "1711138247096355", "71.35525",
            ],
        ])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT DISTINCT trace_id, service_name, resource_attributes['telemetry.sdk.language'], \
             resource_attributes['telemetry.sdk.version'], cardinality(resource_attributes), \
             cardinality(attributes) FROM traces"
        )
        .await,
        t(&[&["c620759e5d60fafb8ee0922b30e06bc6", "example-trace", "nodejs", "1.22.0", "4", "0"]])
    );
}

// ---- opentelemetry-go-instrumentation ---------------------------------------------------

#[tokio::test]
async fn goauto_nethttp_fileexporter() {
    // One line: one resource, two scopes, a server and a client span, status {}.
    let (ctx, _) = load_example("goauto-nethttp-fileexporter.jsonl").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT span_id, trace_id, parent_span_id, operation_name, span_kind, scope_name, \
             status_code, service_name, attributes['http.method'], attributes['http.target'], \
             CAST(start_time AS BIGINT) AS start_time_us, CAST(end_time AS BIGINT) AS end_time_us, duration_ms \
             FROM traces ORDER BY span_kind DESC"
        )
        .await,
        t(&[
            &[
                "a405d8b0ec3191e9", "17adc4a54489628b651a4b0c623ad067", "f073753f66f5a069", "GET",
                "server", "net/http", "unset", "sample-app", "GET", "/hello", "1696169828489942",
                "1696169828489976", "0.033708",
            ],
            &[
                "f073753f66f5a069", "17adc4a54489628b651a4b0c623ad067", "NULL", "/hello",
                "client", "net/http/client", "unset", "sample-app", "GET", "/hello",
                "1696169828487591", "1696169828490389", "2.798208",
            ],
        ])
    );
    assert_eq!(
        one(
            &ctx,
            "SELECT count(DISTINCT resource_attributes['telemetry.auto.version']) FROM traces \
             WHERE resource_attributes['telemetry.auto.version'] = 'v0.3.0-alpha'"
        )
        .await,
        "1"
    );
}

// ---- smithclay/duckdb-otlp ----------------------------------------------------------------

#[tokio::test]
async fn duckdbotlp_metrics_all_types() {
    // One metric type per line; counts and bucketCounts as bare numbers; asInt "-7"; negative
    // exponential buckets; no startTimeUnixNano.
    let (ctx, _) = load_example("duckdbotlp-metrics-all-types.jsonl").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT name, metric_type, description, unit, CAST(timestamp AS BIGINT) AS timestamp_us, \
             start_timestamp, service_name, scope_name FROM metrics ORDER BY timestamp"
        )
        .await,
        t(&[
            &[
                "orders.delta", "sum", "Orders delta", "1", "1640000060000000", "NULL",
                "test-service", "test-meter",
            ],
            &[
                "system.cpu.load", "gauge", "CPU load", "1", "1640000065000000", "NULL",
                "test-service", "test-meter",
            ],
            &[
                "latency.hist", "histogram", "Latency", "ms", "1640000070000000", "NULL",
                "test-service", "test-meter",
            ],
            &[
                "latency.exp", "exponential_histogram", "Exp latency", "ms", "1640000075000000",
                "NULL", "test-service", "test-meter",
            ],
            &[
                "latency.summary", "summary", "Latency summary", "ms", "1640000080000000", "NULL",
                "test-service", "test-meter",
            ],
        ])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT value, int_value, is_monotonic, aggregation_temporality, attributes['region'] \
             FROM metrics WHERE name = 'orders.delta'"
        )
        .await,
        t(&[&["-7.0", "-7", "false", "delta", "us-east"]])
    );
    assert_eq!(
        q(&ctx, "SELECT value, int_value, attributes['core'] FROM metrics WHERE name = 'system.cpu.load'")
            .await,
        t(&[&["0.75", "NULL", "0"]])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT count, sum, bucket_counts, explicit_bounds, attributes['endpoint'] \
             FROM metrics WHERE name = 'latency.hist'"
        )
        .await,
        t(&[&[
            "50",
            "250.0",
            "[5, 10, 15, 12, 8]",
            "[5.0, 10.0, 20.0, 50.0]",
            "/health"
        ]])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT count, sum, min, max, scale, zero_count, positive_offset, \
             positive_bucket_counts, negative_offset, negative_bucket_counts, attributes['endpoint'] \
             FROM metrics WHERE name = 'latency.exp'"
        )
        .await,
        t(&[&["12", "45.5", "1.0", "9.5", "3", "1", "2", "[3, 4, 2]", "-1", "[1, 0]", "/search"]])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT count, sum, quantiles, quantile_values, attributes['endpoint'] \
             FROM metrics WHERE name = 'latency.summary'"
        )
        .await,
        t(&[&["5", "18.0", "[0.5, 0.9]", "[2.0, 5.0]", "/status"]])
    );
    assert_eq!(
        col(
            &ctx,
            "SELECT resource_attributes['host.name'] FROM metrics ORDER BY timestamp"
        )
        .await,
        s(&["test-host", "test-host", "NULL", "NULL", "NULL"])
    );
}

#[tokio::test]
async fn duckdbotlp_temporality_enum_names() {
    // aggregationTemporality as "AGGREGATION_TEMPORALITY_DELTA".
    let (ctx, _) = load_example("duckdbotlp-temporality-enum-names.jsonl").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT name, metric_type, aggregation_temporality, is_monotonic, value, int_value, \
             CAST(timestamp AS BIGINT) AS timestamp_us, service_name, cardinality(attributes) FROM metrics"
        )
        .await,
        t(&[&[
            "orders.delta",
            "sum",
            "delta",
            "false",
            "5.0",
            "5",
            "1640000060000000",
            "test-service",
            "0",
        ]])
    );
}

#[tokio::test]
async fn duckdbotlp_traces_large_attrs() {
    // 50 resource and 50 span attributes; the span has no timestamps, kind or status.
    let (ctx, _) = load_example("duckdbotlp-traces-large-attrs.jsonl").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT trace_id, span_id, parent_span_id, operation_name, start_time, end_time, \
             duration_ms, span_kind, status_code, status_message, cardinality(attributes), \
             cardinality(resource_attributes), service_name, scope_name FROM traces"
        )
        .await,
        t(&[&[
            "00000000000000000000000000000100",
            "0000000000000100",
            "NULL",
            "large_attrs_span",
            "NULL",
            "NULL",
            "NULL",
            "unspecified",
            "unset",
            "NULL",
            "50",
            "50",
            "NULL",
            "NULL",
        ]])
    );
    // Span attributes are attr_50..attr_99, resource attributes attr_0..attr_49.
    let mut span_keys = Vec::new();
    let mut res_keys = Vec::new();
    for i in 0..50 {
        span_keys.push(format!("attributes['attr_{}']", i + 50));
        res_keys.push(format!("resource_attributes['attr_{i}']"));
    }
    let got = q(
        &ctx,
        &format!(
            "SELECT {}, {} FROM traces",
            span_keys.join(", "),
            res_keys.join(", ")
        ),
    )
    .await;
    let want: Vec<String> = (50..100)
        .chain(0..50)
        .map(|i| format!("value_{i}"))
        .collect();
    assert_eq!(got, vec![want]);
    assert_eq!(
        q(
            &ctx,
            "SELECT attributes['attr_0'], resource_attributes['attr_50'] FROM traces"
        )
        .await,
        t(&[&["NULL", "NULL"]])
    );
}

// ---- smithclay/otlp2parquet ---------------------------------------------------------------

#[tokio::test]
async fn otlp2parquet_traces_protojson() {
    // 19 lines from protobuf json_format: base64 ids, kind as "SPAN_KIND_*" names, resource
    // schemaUrl, events.
    let (ctx, _) = load_example("otlp2parquet-traces-protojson.jsonl").await;
    // The first line: traceId "aYQql5kRA2zz6CIIbsqgBw==", spanId "Wmn8F4uo+Dc=",
    // parentSpanId "ROYdmrMPywY=".
    assert_eq!(
        q(
            &ctx,
            "SELECT trace_id, span_id, parent_span_id, operation_name, span_kind, service_name, \
             scope_name, status_code, attributes['rpc.method'], attributes['rpc.grpc.status_code'], \
             CAST(start_time AS BIGINT) AS start_time_us, CAST(end_time AS BIGINT) AS end_time_us, duration_ms \
             FROM traces WHERE span_id = '5a69fc178ba8f837'"
        )
        .await,
        t(&[&[
            "69842a979911036cf3e822086ecaa007",
            "5a69fc178ba8f837",
            "44e61d9ab30fcb06",
            "product-catalog.execute",
            "internal",
            "product-catalog",
            "product-catalog",
            "unset",
            "Get",
            "0",
            "1760738064624180",
            "1760738064991180",
            "367.0",
        ]])
    );
    // The fourth line: traceId "6D8sFPGIUo1Buw1LMt1T1A==", spanId "ronuoHpPV54=", no parent.
    assert_eq!(
        q(
            &ctx,
            "SELECT trace_id, parent_span_id, operation_name, span_kind FROM traces \
             WHERE span_id = 'ae89eea07a4f579e'"
        )
        .await,
        t(&[&[
            "e83f2c14f188528d41bb0d4b32dd53d4",
            "NULL",
            "analytics-service.execute",
            "client",
        ]])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT span_kind, count(*) FROM traces GROUP BY span_kind ORDER BY span_kind"
        )
        .await,
        t(&[&["client", "6"], &["internal", "10"], &["server", "3"]])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT count(*), count(DISTINCT trace_id), count(DISTINCT span_id), \
             count(parent_span_id), sum(CASE WHEN length(trace_id) = 32 AND length(span_id) = 16 \
             THEN 1 ELSE 0 END), sum(CASE WHEN status_code = 'unset' THEN 1 ELSE 0 END) FROM traces"
        )
        .await,
        t(&[&["19", "19", "19", "13", "19", "19"]])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT trace_id, span_id, name, CAST(timestamp AS BIGINT) AS timestamp_us, service_name \
             FROM span_events ORDER BY timestamp"
        )
        .await,
        t(&[
            &[
                "e0cb6e382a5dff72ac1dda9690813747", "8bd536cf4b778ade", "processing",
                "1760738065711680", "analytics-service",
            ],
            &[
                "e83f2c14f188528d41bb0d4b32dd53d4", "ae89eea07a4f579e", "validation",
                "1760738067673680", "analytics-service",
            ],
            &[
                "082ec45e5305f35aae40a235a49990ab", "85a85844fe7eaab3", "validation",
                "1760738069780180", "cart",
            ],
            &[
                "efbed42972af5676f7fd2361f34c1b45", "e66651fda26fe6ec", "checkpoint",
                "1760738070840180", "payment-service",
            ],
            &[
                "a1532770cb1b4de6b4d97f848f989473", "9721fa1e1dbe763f", "checkpoint",
                "1760738080683180", "kafka",
            ],
            &[
                "2811353e9fd1dcc820c114799d1fb8ce", "f21435685fb4be30", "validation",
                "1760738082845680", "api-gateway",
            ],
        ])
    );
}

// ---- opentelemetry-rust serde ---------------------------------------------------------------

#[tokio::test]
async fn rust_serde_traces() {
    // Every default emitted: droppedAttributesCount 0, traceState "", links [], status
    // message "" and code 0, schemaUrl "", resource entityRefs [].
    let (ctx, _) = load_example("rust-serde-traces.json").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT span_id, trace_id, parent_span_id, coalesce(trace_state, ''), flags, \
             operation_name, span_kind, status_code, coalesce(status_message, ''), \
             dropped_attributes_count, dropped_events_count, dropped_links_count, scope_name, \
             coalesce(scope_version, ''), cardinality(scope_attributes), service_name, \
             CAST(start_time AS BIGINT) AS start_time_us, CAST(end_time AS BIGINT) AS end_time_us, duration_ms, \
             coalesce(attributes['lemons'], attributes['ex.com/another']) \
             FROM traces ORDER BY start_time"
        )
        .await,
        t(&[
            &[
                "d58cf2d702a061e0", "9b458af7378cba65253d7042d34fc72e", "NULL", "", "1",
                "operation", "internal", "unset", "", "0", "0", "0", "ex.com/basic", "", "0",
                "basic-otlp-tracing-example", "1703985537070558", "1703985537070580", "0.021819",
                "yes",
            ],
            &[
                "cd7cf7bf939930b7", "9b458af7378cba65253d7042d34fc72e", "d58cf2d702a061e0", "",
                "1", "Sub operation...", "internal", "unset", "", "0", "0", "0", "ex.com/basic",
                "", "0", "basic-otlp-tracing-example", "1703985537070566", "1703985537070572",
                "0.00602", "five",
            ],
        ])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT span_id, name, CAST(timestamp AS BIGINT) AS timestamp_us, cardinality(attributes), \
             attributes['bogons'], dropped_attributes_count, service_name \
             FROM span_events ORDER BY timestamp"
        )
        .await,
        t(&[
            &[
                "d58cf2d702a061e0", "Nice operation!", "1703985537070563", "1", "100", "0",
                "basic-otlp-tracing-example",
            ],
            &[
                "cd7cf7bf939930b7", "Sub span event", "1703985537070567", "0", "NULL", "0",
                "basic-otlp-tracing-example",
            ],
        ])
    );
}

#[tokio::test]
async fn rust_serde_metrics() {
    // metadata [], a metric with no data field at all, sum points with neither asInt nor
    // asDouble, exemplars [] and flags 0.
    let (ctx, _) = load_example("rust-serde-metrics.json").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT name, metric_type, value, int_value, is_monotonic, aggregation_temporality, \
             flags, CAST(timestamp AS BIGINT) AS timestamp_us, CAST(start_timestamp AS BIGINT) AS start_timestamp_us, \
             coalesce(attributes['mykey1'], attributes['mykey5']), cardinality(attributes), \
             coalesce(description, ''), coalesce(unit, ''), service_name, scope_name, \
             coalesce(scope_version, '') FROM metrics ORDER BY name"
        )
        .await,
        t(&[
            &[
                "counter_u64", "sum", "NULL", "NULL", "true", "cumulative", "0",
                "1734094317871514", "1734094309366798", "myvalue1", "2", "", "",
                "metrics-integration-test", "meter", "",
            ],
            &[
                "example_up_down_counter", "sum", "NULL", "NULL", "false", "cumulative", "0",
                "1734094317871548", "1734094309366941", "myvalue5", "1", "", "",
                "metrics-integration-test", "meter", "",
            ],
        ])
    );
    assert_eq!(
        one(
            &ctx,
            "SELECT count(*) FROM metrics WHERE name = 'example_histogram'"
        )
        .await,
        "0"
    );
}

// ---- DataDog opentelemetry-mapping-go -------------------------------------------------------

#[tokio::test]
async fn datadog_mapping_mixed_metrics() {
    // An empty metric {}; "attributes" on sum and histogram with no dataPoints;
    // aggregationTemporality 0; asInt and summary count as bare numbers; two metrics with the
    // same name.
    let (ctx, _) = load_example("datadog-mapping-mixed-metrics.json").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT name, metric_type, value, int_value, is_monotonic, aggregation_temporality, \
             CAST(timestamp AS BIGINT) AS timestamp_us FROM metrics \
             WHERE metric_type IN ('gauge', 'sum') ORDER BY name, timestamp, value"
        )
        .await,
        t(&[
            &[
                "double.cumulative.monotonic.sum",
                "sum",
                "4.0",
                "NULL",
                "true",
                "cumulative",
                "1667560641226420"
            ],
            &[
                "double.cumulative.monotonic.sum",
                "sum",
                "7.0",
                "NULL",
                "true",
                "cumulative",
                "1667560641226420"
            ],
            &[
                "double.cumulative.sum",
                "sum",
                "4.0",
                "NULL",
                "false",
                "cumulative",
                "1667560641226420"
            ],
            &[
                "double.delta.monotonic.sum",
                "sum",
                "2.718281828459045",
                "NULL",
                "true",
                "delta",
                "1667560641226420"
            ],
            &[
                "double.delta.sum",
                "sum",
                "2.718281828459045",
                "NULL",
                "false",
                "delta",
                "1667560641226420"
            ],
            &[
                "double.gauge",
                "gauge",
                "3.141592653589793",
                "NULL",
                "NULL",
                "NULL",
                "1667560641226420"
            ],
            &[
                "int.cumulative.monotonic.sum",
                "sum",
                "4.0",
                "4",
                "true",
                "cumulative",
                "1667560641226420"
            ],
            &[
                "int.cumulative.monotonic.sum",
                "sum",
                "7.0",
                "7",
                "true",
                "cumulative",
                "1667560641226420"
            ],
            &[
                "int.cumulative.sum",
                "sum",
                "4.0",
                "4",
                "false",
                "cumulative",
                "1667560641226420"
            ],
            &[
                "int.delta.monotonic.sum",
                "sum",
                "2.0",
                "2",
                "true",
                "delta",
                "1667560641226420"
            ],
            &[
                "int.delta.sum",
                "sum",
                "2.0",
                "2",
                "false",
                "delta",
                "1667560641226420"
            ],
            &[
                "int.gauge",
                "gauge",
                "1.0",
                "1",
                "NULL",
                "NULL",
                "1667560641226420"
            ],
        ])
    );
    // The metrics without data points (the empty one and the two "unspecified" ones) give no
    // rows; no row lacks a name.
    assert_eq!(
        one(
            &ctx,
            "SELECT count(*) FROM metrics WHERE name IS NULL OR name = '' OR name LIKE 'unspecified%'"
        )
        .await,
        "0"
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT count, sum, bucket_counts, explicit_bounds, aggregation_temporality \
             FROM metrics WHERE name = 'double.histogram'"
        )
        .await,
        t(&[&["20", "1.618033988749895", "[2, 18]", "[0.0]", "delta"]])
    );
    // The two metrics named "summary", counts as bare numbers 1 and 101.
    assert_eq!(
        q(
            &ctx,
            "SELECT metric_type, count, sum, quantiles, quantile_values, aggregation_temporality \
             FROM metrics WHERE name = 'summary' ORDER BY count"
        )
        .await,
        t(&[
            &[
                "summary",
                "1",
                "1.0",
                "[0.0, 0.5, 0.999, 1.0]",
                "[0.0, 100.0, 500.0, 600.0]",
                "NULL"
            ],
            &[
                "summary",
                "101",
                "10001.0",
                "[0.0, 0.5, 0.999, 1.0]",
                "[0.0, 100.0, 500.0, 600.0]",
                "NULL"
            ],
        ])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT DISTINCT scope_name, scope_version, service_name, \
             resource_attributes['datadog.host.name'], attributes['custom_attribute'], \
             attributes['deployment.environment'], cardinality(attributes) FROM metrics"
        )
        .await,
        t(&[&[
            "foo",
            "1.0.0",
            "NULL",
            "res-hostname",
            "custom_value",
            "dev",
            "2"
        ]])
    );
}

// ---- GoogleCloudPlatform opentelemetry-operations-go ----------------------------------------

#[tokio::test]
async fn gcp_histogram_exemplars() {
    // Exemplars with hex ids and filteredAttributes, asDouble and asInt (a bare number)
    // exemplars; temporality as "AGGREGATION_TEMPORALITY_CUMULATIVE"; empty scope.
    let (ctx, _) = load_example("gcp-histogram-exemplars.json").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT name, attributes['some.lemons'], count, sum, bucket_counts, explicit_bounds, \
             aggregation_temporality, unit, CAST(timestamp AS BIGINT) AS timestamp_us, \
             CAST(start_timestamp AS BIGINT) AS start_timestamp_us, scope_name, service_name \
             FROM metrics ORDER BY name, attributes['some.lemons']"
        )
        .await,
        t(&[
            &[
                "simple.float64.histogram",
                "10",
                "2",
                "14.3",
                "[0, 0, 1, 0, 1, 0, 0]",
                "[1.0, 2.0, 5.0, 10.0, 20.0, 50.0]",
                "cumulative",
                "s",
                "1649443516286000",
                "1649443516286000",
                "NULL",
                "demo",
            ],
            &[
                "simple.float64.histogram",
                "13",
                "1",
                "2.5",
                "[0, 0, 1, 0, 0, 0, 0]",
                "[1.0, 2.0, 5.0, 10.0, 20.0, 50.0]",
                "cumulative",
                "s",
                "1649443516286000",
                "1649443516286000",
                "NULL",
                "demo",
            ],
            &[
                "simple.int64.histogram",
                "10",
                "2",
                "14.0",
                "[0, 0, 1, 0, 1, 0, 0]",
                "[1.0, 2.0, 5.0, 10.0, 20.0, 50.0]",
                "cumulative",
                "s",
                "1649443516286000",
                "1649443516286000",
                "NULL",
                "demo",
            ],
            &[
                "simple.int64.histogram",
                "13",
                "1",
                "2.0",
                "[0, 0, 1, 0, 0, 0, 0]",
                "[1.0, 2.0, 5.0, 10.0, 20.0, 50.0]",
                "cumulative",
                "s",
                "1649443516286000",
                "1649443516286000",
                "NULL",
                "demo",
            ],
        ])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT metric_name, point_attributes['some.lemons'], value, trace_id, span_id, \
             filtered_attributes['filtered.attribute'], cardinality(filtered_attributes), \
             CAST(timestamp AS BIGINT) AS timestamp_us, CAST(point_timestamp AS BIGINT) AS point_timestamp_us, service_name \
             FROM exemplars ORDER BY metric_name, point_attributes['some.lemons']"
        )
        .await,
        t(&[
            &[
                "simple.float64.histogram", "10", "15.5", "2499d13df7b35ae93dfa3d6ddc01da74",
                "84f9e8929bb1cd5b", "foobar", "1", "1649443516286000", "1649443516286000", "demo",
            ],
            &[
                "simple.float64.histogram", "13", "4.1", "2499d13df7b35ae93dfa3d6ddc01da74",
                "84f9e8929bb1cd5b", "foobar", "1", "1649443516286000", "1649443516286000", "demo",
            ],
            &[
                "simple.int64.histogram", "10", "12.0", "2499d13df7b35ae93dfa3d6ddc01da74",
                "84f9e8929bb1cd5b", "foobar", "1", "1649443516286000", "1649443516286000", "demo",
            ],
            &[
                "simple.int64.histogram", "13", "4.0", "2499d13df7b35ae93dfa3d6ddc01da74",
                "84f9e8929bb1cd5b", "foobar", "1", "1649443516286000", "1649443516286000", "demo",
            ],
        ])
    );
}

#[tokio::test]
async fn gcp_exponential_histogram() {
    // 113 positive buckets at offset 106 and scale 4; scale -1 with zeroCount; negative {} and
    // a negative without offset.
    let (ctx, _) = load_example("gcp-exponential-histogram.json").await;
    let doc = read_json("gcp-exponential-histogram.json");
    let point = &doc["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["exponentialHistogram"]
        ["dataPoints"][0];
    let buckets = &point["positive"]["bucketCounts"];
    assert_eq!(buckets.as_array().unwrap().len(), 113);
    let bucket_total: i64 = buckets
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(bucket_total, 10000);

    assert_eq!(
        q(
            &ctx,
            "SELECT name, metric_type, description, unit, count, scale, zero_count, \
             positive_offset, cardinality(positive_bucket_counts), positive_bucket_counts[1], \
             positive_bucket_counts[113], negative_offset, \
             coalesce(cardinality(negative_bucket_counts), 0), aggregation_temporality, \
             CAST(timestamp AS BIGINT) AS timestamp_us, CAST(start_timestamp AS BIGINT) AS start_timestamp_us, service_name, scope_name \
             FROM metrics WHERE name = 'durationhist'"
        )
        .await,
        t(&[&[
            "durationhist",
            "exponential_histogram",
            "The request latency in seconds",
            "s",
            "10000",
            "4",
            "0",
            "106",
            "113",
            "646",
            "1",
            "0",
            "0",
            "cumulative",
            "1640104132005463",
            "1640104132003289",
            "demo",
            "NULL",
        ]])
    );
    // All 113 buckets as in the file.
    assert_eq!(
        one(
            &ctx,
            "SELECT positive_bucket_counts FROM metrics WHERE name = 'durationhist'"
        )
        .await,
        int_list(buckets)
    );
    // The sum exactly: the f64 nearest 1984636.3282113941 (what `str::parse` gives), not
    // one ULP off.
    let expected_sum: f64 = "1984636.3282113941".parse().unwrap();
    assert_eq!(
        point["sum"].as_f64().unwrap(),
        expected_sum,
        "serde_json reads doubles exactly only with its `float_roundtrip` feature"
    );
    assert_eq!(
        one(
            &ctx,
            "SELECT sum = 1984636.3282113941 FROM metrics WHERE name = 'durationhist'"
        )
        .await,
        "true",
        "sum is {} not {expected_sum:?}",
        one(&ctx, "SELECT sum FROM metrics WHERE name = 'durationhist'").await,
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT count, sum, scale, zero_count, positive_offset, positive_bucket_counts, \
             negative_offset, negative_bucket_counts, aggregation_temporality, \
             CAST(timestamp AS BIGINT) AS timestamp_us, CAST(start_timestamp AS BIGINT) AS start_timestamp_us \
             FROM metrics WHERE name = 'foohist'"
        )
        .await,
        t(&[&[
            "7",
            "12.5",
            "-1",
            "1",
            "-1",
            "[1, 3, 1]",
            "0",
            "[1]",
            "cumulative",
            "1637349277484301",
            "1637349277484297",
        ]])
    );
}

#[tokio::test]
async fn gcp_summary_snake_case() {
    // A summary with the snake_case key "quantile_values".
    let (ctx, _) = load_example("gcp-summary-snake-case.json").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT name, metric_type, description, unit, count, sum, quantiles, quantile_values, \
             aggregation_temporality, attributes['foo.bar'], CAST(timestamp AS BIGINT) AS timestamp_us, \
             CAST(start_timestamp AS BIGINT) AS start_timestamp_us, service_name FROM metrics"
        )
        .await,
        t(&[&[
            "test.summary",
            "summary",
            "This is a test summary",
            "s",
            "10",
            "123.4",
            "[0.5, 0.75, 0.9]",
            "[10.2, 25.5, 100.2]",
            "NULL",
            "baz",
            "1634322234906722",
            "1634322229906722",
            "demo",
        ]])
    );
}

#[tokio::test]
async fn gcp_traces_concatenated() {
    // Three pretty-printed documents one after another; kind as "SPAN_KIND_*" names;
    // arrayValue attributes; 45 spans over 10 resources.
    let (ctx, _) = load_example("gcp-traces-concatenated.json").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT span_kind, operation_name, scope_name, service_name, count(*) FROM traces \
             GROUP BY 1, 2, 3, 4 ORDER BY 1"
        )
        .await,
        t(&[
            &[
                "client",
                "HTTP GET",
                "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
                "demo-client",
                "15",
            ],
            &[
                "internal",
                "ExecuteRequest",
                "demo-client-tracer",
                "demo-client",
                "15"
            ],
            &[
                "server",
                "/hello",
                "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
                "demo-server",
                "15",
            ],
        ])
    );
    // The arrayValue resource attribute, as compact JSON, on every span.
    assert_eq!(
        q(
            &ctx,
            "SELECT resource_attributes['process.command_args'], resource_attributes['process.pid'], \
             count(*) FROM traces GROUP BY 1, 2 ORDER BY 2"
        )
        .await,
        t(&[&["[\"./main\"]", "2634978", "15"], &["[\"./main\"]", "2635405", "30"]])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT count(DISTINCT trace_id), count(DISTINCT span_id), count(parent_span_id), \
             sum(CASE WHEN status_code = 'unset' THEN 1 ELSE 0 END) FROM traces"
        )
        .await,
        t(&[&["15", "45", "30", "45"]])
    );
    // The first span of the first document.
    assert_eq!(
        q(
            &ctx,
            "SELECT trace_id, parent_span_id, operation_name, span_kind, \
             attributes['net.peer.port'], attributes['http.status_code'], \
             attributes['baggage key:client'], cardinality(attributes), \
             CAST(start_time AS BIGINT) AS start_time_us, CAST(end_time AS BIGINT) AS end_time_us, duration_ms, scope_version \
             FROM traces WHERE span_id = '84f9e8929bb1cd5b'"
        )
        .await,
        t(&[&[
            "2499d13df7b35ae93dfa3d6ddc01da74",
            "a514c25ace3f0a5a",
            "/hello",
            "server",
            "32878",
            "200",
            "cli",
            "17",
            "1658413463217165",
            "1658413463225568",
            "8.403229",
            "semver:0.33.0",
        ]])
    );
    // The five spans of the third document (one resource), to show all three were read.
    assert_eq!(
        q(
            &ctx,
            "SELECT span_id, trace_id, parent_span_id, operation_name, span_kind FROM traces \
             WHERE span_id IN ('9322648541febd9d', '8e86d88cc4422ec3', 'b5422aae8b757330', \
             '54fbb81b8855eaa4', '5718984a91459758') ORDER BY span_id"
        )
        .await,
        t(&[
            &[
                "54fbb81b8855eaa4",
                "44f485ec45d674c5af7e8aa13cdc412c",
                "NULL",
                "ExecuteRequest",
                "internal"
            ],
            &[
                "5718984a91459758",
                "1f513c3677589c252610a3b678fc72e5",
                "NULL",
                "ExecuteRequest",
                "internal"
            ],
            &[
                "8e86d88cc4422ec3",
                "1f513c3677589c252610a3b678fc72e5",
                "5718984a91459758",
                "HTTP GET",
                "client"
            ],
            &[
                "9322648541febd9d",
                "44f485ec45d674c5af7e8aa13cdc412c",
                "54fbb81b8855eaa4",
                "HTTP GET",
                "client"
            ],
            &[
                "b5422aae8b757330",
                "e9f20b835c1c5b95e52b04051041f3a7",
                "NULL",
                "ExecuteRequest",
                "internal"
            ],
        ])
    );
}

// ---- collector-contrib testbed (pre-1.0 keys) ----------------------------------------------

#[tokio::test]
async fn contrib_testbed_k8s_metrics_legacy() {
    // "instrumentationLibraryMetrics" / "instrumentationLibrary" instead of scopeMetrics and
    // scope; gauge points with startTimeUnixNano.
    let (ctx, _) = load_example("contrib-testbed-k8s-metrics-legacy.json").await;
    assert_eq!(
        q(
            &ctx,
            "SELECT name, metric_type, value, int_value, unit, CAST(timestamp AS BIGINT) AS timestamp_us, \
             CAST(start_timestamp AS BIGINT) AS start_timestamp_us, cardinality(attributes), scope_name, service_name \
             FROM metrics ORDER BY name DESC"
        )
        .await,
        t(&[
            &[
                "k8s.deployment.desired", "gauge", "1.0", "1", "1", "1612819531934424",
                "1612819530934424", "0", "NULL", "NULL",
            ],
            &[
                "k8s.deployment.available", "gauge", "1.0", "1", "1", "1612819531934424",
                "1612819530934424", "0", "NULL", "NULL",
            ],
        ])
    );
    assert_eq!(
        col(&ctx, "SELECT description FROM metrics ORDER BY name DESC").await,
        s(&[
            "Number of desired pods in this deployment",
            "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment",
        ])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT DISTINCT resource_attributes['k8s.deployment.name'], \
             resource_attributes['k8s.namespace.name'], resource_attributes['k8s.cluster.name'], \
             resource_attributes['k8s.deployment.uid'], \
             resource_attributes['opencensus.resourcetype'], cardinality(resource_attributes) \
             FROM metrics"
        )
        .await,
        t(&[&[
            "frontend",
            "default",
            "",
            "2d61452e-f21c-4743-bedf-cd6183d660cf",
            "k8s",
            "5"
        ]])
    );
}

// ---- the whole folder ----------------------------------------------------------------------

#[tokio::test]
async fn whole_folder_at_once() {
    let dir = fixture(DIR);
    let (ctx, stats) = load(std::slice::from_ref(&dir)).await;
    assert_eq!(stats.bad_total, 0, "{:?}", stats.bad);
    assert_eq!(
        stats.files, 20,
        "the 20 examples are read, the README is not"
    );

    // Every example file is in EXPECTED, and nothing else is there but the README.
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "README.md")
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|(f, _, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);

    let mut want = [0u64; 5];
    let mut docs = 0;
    for (_, c, d) in EXPECTED {
        for i in 0..5 {
            want[i] += c[i];
        }
        docs += d;
    }
    assert_eq!(want, [81, 18, 10, 48, 5]);
    assert_eq!(counts(&stats), want);
    assert_eq!(stats.documents, docs);
    assert_eq!(stats.documents, 47);
    assert_eq!(stats.rows[Table::Logs], 1);
    assert_eq!(stats.empty_documents, 0);

    // The README is passed over: it is not among the files read, and it is the only thing
    // passed over. (The loader drops `*.md` beside the data while walking the folder, without
    // a note, so `skipped_files` does not name it; if it ever notes it, it must be the only
    // entry there.)
    let resolved = cartscope::resolve(&[dir.display().to_string()]).unwrap();
    let mut read: Vec<String> = resolved
        .files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    read.sort();
    assert_eq!(read, listed, "the files read are exactly the 20 examples");
    assert!(
        stats
            .skipped_files
            .iter()
            .all(|(p, _)| p.file_name().is_some_and(|n| n == "README.md")),
        "only the README may be passed over: {:?}",
        stats.skipped_files
    );

    // The tables hold the same rows as when the files are loaded one by one.
    for (table, i) in [
        ("traces", 0),
        ("span_events", 1),
        ("span_links", 2),
        ("metrics", 3),
        ("exemplars", 4),
    ] {
        assert_eq!(
            one(&ctx, &format!("SELECT count(*) FROM {table}")).await,
            want[i].to_string(),
            "{table}"
        );
    }
    assert_eq!(
        q(
            &ctx,
            "SELECT metric_type, count(*) FROM metrics GROUP BY 1 ORDER BY 1"
        )
        .await,
        t(&[
            &["exponential_histogram", "4"],
            &["gauge", "10"],
            &["histogram", "9"],
            &["sum", "19"],
            &["summary", "6"],
        ])
    );
    assert_eq!(
        q(
            &ctx,
            "SELECT span_kind, count(*) FROM traces GROUP BY 1 ORDER BY 1"
        )
        .await,
        t(&[
            &["client", "23"],
            &["consumer", "1"],
            &["internal", "31"],
            &["producer", "1"],
            &["server", "21"],
            &["unspecified", "4"],
        ])
    );
}
