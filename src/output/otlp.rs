//! Rows of the canonical `traces` and `metrics` tables written back as OTLP/JSON lines, the
//! form the OpenTelemetry Collector's file exporter writes and its `otlpjsonfile` receiver
//! reads: one `ExportTraceServiceRequest` or `ExportMetricsServiceRequest` per line, a line
//! per batch of rows, grouped by resource and scope. `detect --emit-otlp` writes the replay's
//! derived rows this way.
//!
//! Attribute values are written as `stringValue`: the canonical tables keep them as text,
//! so their original types are not known here.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int64Array, MapArray, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use serde_json::{json, Value};

/// A key/value list from row `i` of a map column, in the map's order.
fn attributes(m: Option<&MapArray>, i: usize) -> Vec<Value> {
    let Some(m) = m.filter(|m| m.is_valid(i)) else {
        return Vec::new();
    };
    let entry = m.value(i);
    let keys = entry.column(0).as_string::<i32>();
    let values = entry.column(1).as_string::<i32>();
    (0..entry.len())
        .filter(|&j| values.is_valid(j))
        .map(|j| json!({"key": keys.value(j), "value": {"stringValue": values.value(j)}}))
        .collect()
}

fn text<'a>(b: &'a RecordBatch, name: &str) -> Result<Option<&'a StringArray>> {
    Ok(match b.column_by_name(name) {
        None => None,
        Some(c) => Some(
            c.as_string_opt::<i32>()
                .with_context(|| format!("column {name} is not text"))?,
        ),
    })
}

fn value(a: Option<&StringArray>, i: usize) -> Option<&str> {
    a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
}

fn nanos(a: Option<&TimestampMicrosecondArray>, i: usize) -> Option<String> {
    a.filter(|a| a.is_valid(i))
        .map(|a| (i128::from(a.value(i)) * 1000).to_string())
}

fn map<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a MapArray> {
    b.column_by_name(name).and_then(|c| c.as_map_opt())
}

fn times<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a TimestampMicrosecondArray> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
}

/// Rows grouped by resource (its attributes) and scope, in first-seen order made stable by
/// the key's text.
type Groups = BTreeMap<(String, String, String), (Vec<Value>, Vec<Value>)>;

fn group_key(resource: &[Value], scope: (Option<&str>, Option<&str>)) -> (String, String, String) {
    (
        serde_json::to_string(resource).unwrap_or_default(),
        scope.0.unwrap_or_default().to_string(),
        scope.1.unwrap_or_default().to_string(),
    )
}

fn scope_json(name: &str, version: &str) -> Value {
    let mut s = json!({ "name": name });
    if !version.is_empty() {
        s["version"] = json!(version);
    }
    s
}

/// OTLP's SpanKind number for the canonical text.
fn span_kind(k: Option<&str>) -> i64 {
    match k {
        Some("internal") => 1,
        Some("server") => 2,
        Some("client") => 3,
        Some("producer") => 4,
        Some("consumer") => 5,
        _ => 0,
    }
}

fn status_code(s: Option<&str>) -> i64 {
    match s {
        Some("ok") => 1,
        Some("error") => 2,
        _ => 0,
    }
}

/// One `ExportTraceServiceRequest` for the spans of `b` (rows of the canonical `traces`).
pub fn traces_request(b: &RecordBatch) -> Result<Value> {
    let col = |n| text(b, n);
    let (trace, span, parent, state) = (
        col("trace_id")?,
        col("span_id")?,
        col("parent_span_id")?,
        col("trace_state")?,
    );
    let (name, kind, code, message) = (
        col("operation_name")?,
        col("span_kind")?,
        col("status_code")?,
        col("status_message")?,
    );
    let (scope, version) = (col("scope_name")?, col("scope_version")?);
    let (start, end) = (times(b, "start_time"), times(b, "end_time"));
    let (attrs, res) = (map(b, "attributes"), map(b, "resource_attributes"));
    let mut groups = Groups::new();
    for i in 0..b.num_rows() {
        let resource = attributes(res, i);
        let key = group_key(&resource, (value(scope, i), value(version, i)));
        let mut s = json!({
            "traceId": value(trace, i).unwrap_or_default(),
            "spanId": value(span, i).unwrap_or_default(),
            "name": value(name, i).unwrap_or_default(),
            "kind": span_kind(value(kind, i)),
            "startTimeUnixNano": nanos(start, i),
            "endTimeUnixNano": nanos(end, i),
            "attributes": attributes(attrs, i),
            "status": {"code": status_code(value(code, i))},
        });
        if let Some(p) = value(parent, i).filter(|p| !p.is_empty()) {
            s["parentSpanId"] = json!(p);
        }
        if let Some(t) = value(state, i).filter(|t| !t.is_empty()) {
            s["traceState"] = json!(t);
        }
        if let Some(m) = value(message, i).filter(|m| !m.is_empty()) {
            s["status"]["message"] = json!(m);
        }
        let g = groups.entry(key).or_insert_with(|| (resource, Vec::new()));
        g.1.push(s);
    }
    let resource_spans: Vec<Value> = groups
        .into_iter()
        .map(|((_, scope, version), (resource, spans))| {
            json!({
                "resource": {"attributes": resource},
                "scopeSpans": [{"scope": scope_json(&scope, &version), "spans": spans}],
            })
        })
        .collect();
    Ok(json!({ "resourceSpans": resource_spans }))
}

/// Points grouped by resource and scope, then by metric name: each metric as OTLP/JSON,
/// its points gathered in its `sum` or `gauge` object's `dataPoints`, and which of the two.
type MetricGroups =
    BTreeMap<(String, String, String), (Vec<Value>, BTreeMap<String, (Value, &'static str)>)>;

/// One `ExportMetricsServiceRequest` for the points of `b` (rows of the canonical
/// `metrics`): sums and gauges, a metric per name within each resource and scope.
pub fn metrics_request(b: &RecordBatch) -> Result<Value> {
    let col = |n| text(b, n);
    let (name, desc, unit, kind, temporality) = (
        col("name")?,
        col("description")?,
        col("unit")?,
        col("metric_type")?,
        col("aggregation_temporality")?,
    );
    let (scope, version) = (col("scope_name")?, col("scope_version")?);
    let (at, start) = (times(b, "timestamp"), times(b, "start_timestamp"));
    let (attrs, res) = (map(b, "attributes"), map(b, "resource_attributes"));
    let double: Option<&Float64Array> = b
        .column_by_name("value")
        .and_then(|c| c.as_primitive_opt::<Float64Type>());
    let int: Option<&Int64Array> = b
        .column_by_name("int_value")
        .and_then(|c| c.as_primitive_opt::<Int64Type>());
    let monotonic: Option<&BooleanArray> = b
        .column_by_name("is_monotonic")
        .and_then(|c| c.as_boolean_opt());
    let mut groups: MetricGroups = BTreeMap::new();
    for i in 0..b.num_rows() {
        let kind = match value(kind, i).unwrap_or_default() {
            "sum" => "sum",
            "gauge" => "gauge",
            other => bail!("a {other} point cannot be written as OTLP here (sums and gauges only)"),
        };
        let mut p = json!({
            "timeUnixNano": nanos(at, i),
            "attributes": attributes(attrs, i),
        });
        if let Some(s) = nanos(start, i) {
            p["startTimeUnixNano"] = json!(s);
        }
        match (
            int.filter(|a| a.is_valid(i)),
            double.filter(|a| a.is_valid(i)),
        ) {
            (Some(a), _) => p["asInt"] = json!(a.value(i).to_string()),
            (None, Some(a)) => p["asDouble"] = json!(a.value(i)),
            (None, None) => bail!("a metric point with no value"),
        }
        let resource = attributes(res, i);
        let key = group_key(&resource, (value(scope, i), value(version, i)));
        let metric_name = value(name, i).unwrap_or_default().to_string();
        let g = groups
            .entry(key)
            .or_insert_with(|| (resource, BTreeMap::new()));
        let m = g.1.entry(metric_name.clone()).or_insert_with(|| {
            let mut m = json!({ "name": metric_name });
            if let Some(d) = value(desc, i).filter(|d| !d.is_empty()) {
                m["description"] = json!(d);
            }
            if let Some(u) = value(unit, i).filter(|u| !u.is_empty()) {
                m["unit"] = json!(u);
            }
            let mut data = if kind == "sum" {
                json!({
                    "aggregationTemporality": match value(temporality, i) {
                        Some("delta") => 1,
                        Some("cumulative") => 2,
                        _ => 0,
                    },
                    "isMonotonic": monotonic.filter(|a| a.is_valid(i)).is_some_and(|a| a.value(i)),
                })
            } else {
                json!({})
            };
            data["dataPoints"] = json!([]);
            m[kind] = data;
            (m, kind)
        });
        if let Some(points) = m.0[m.1]["dataPoints"].as_array_mut() {
            points.push(p);
        }
    }
    let resource_metrics: Vec<Value> = groups
        .into_iter()
        .map(|((_, scope, version), (resource, metrics))| {
            let metrics: Vec<Value> = metrics.into_values().map(|(m, _)| m).collect();
            json!({
                "resource": {"attributes": resource},
                "scopeMetrics": [{"scope": scope_json(&scope, &version), "metrics": metrics}],
            })
        })
        .collect();
    Ok(json!({ "resourceMetrics": resource_metrics }))
}

/// Writes `request` as one line.
pub fn write_line(w: &mut dyn Write, request: &Value) -> Result<()> {
    serde_json::to_writer(&mut *w, request)?;
    w.write_all(b"\n")?;
    Ok(())
}
