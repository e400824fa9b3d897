//! OTLP protobuf messages: a serialized `TracesData`, `MetricsData` or `LogsData` (what the
//! Collector's file exporter writes with `format: proto`, and wire-identical to the OTLP export
//! requests), decoded into the same Arrow builders and with the same text forms as `json`.
//!
//! The message's top level is walked by hand and each `Resource*` is decoded with prost and
//! appended before the next is decoded, so only one resource's tree is in memory at a time.
//! A message that turns out to be malformed is rolled back out of the builders whole.
//!
//! Values follow `json`: attributes as text (strings raw, other scalars in their canonical
//! form, arrays and kvlists as compact JSON, bytes in standard base64), empty strings and zero
//! flags or dropped counts as null (what the JSON reader sees when the Collector leaves those
//! defaults out), and a bad value (an id of the wrong length, an unknown enum number, a count
//! beyond Int64) skips only the span or data point that carries it, with a reason in `bad`.
//! Measurements of a point's own type are always set, zeros included (proto3 cannot tell a
//! zero from an absent value, and a histogram's count of 0 is a count).

use std::fmt::Write as _;

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point, metric, number_data_point, Exemplar,
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    SummaryDataPoint,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message;

use super::json::DocCounts;
use super::values::{id_from_bytes, write_f64, write_json_str};
use crate::read::projection::{Keys, Projection};
use crate::tables::builders::{
    Attrs, EventRec, ExemplarRec, LinkRec, LogRec, MetricHead, MetricType, PointRec, SpanColumn,
    SpanColumns, SpanKind, SpanRec, StatusCode, TableBuilders, Temporality,
};

/// Which of the three OTLP data messages a serialized message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Traces,
    Metrics,
    Logs,
    Unknown,
}

/// Decodes one message into `b`. On a decode error nothing of the message stays in the builders
/// (use `b.mark()` / `b.rollback_to(mark)`) and Err(reason) is returned. Records with bad values
/// (e.g. a trace id of the wrong length) are skipped and described in `bad`, like json.rs does.
/// Only the attributes `projection` names are kept.
pub fn decode_message(
    bytes: &[u8],
    b: &mut TableBuilders,
    bad: &mut Vec<String>,
    projection: &Projection,
) -> Result<DocCounts, String> {
    let mark = b.mark();
    let bad_before = bad.len();
    let mut counts = DocCounts::default();
    let mut s = Scratch {
        res_keys: projection.resource_keys(),
        ..Scratch::default()
    };
    let s = &mut s;
    let p = projection;
    let (kind, items) = sniff_items(bytes);
    let res = match kind {
        MessageKind::Traces => each_resource(bytes, |res| {
            let rs = ResourceSpans::decode(res).map_err(prost_error)?;
            counts.spans += append_resource_spans(&rs, b, bad, s, p);
            Ok(())
        }),
        MessageKind::Metrics => each_resource(bytes, |res| {
            let rm = ResourceMetrics::decode(res).map_err(prost_error)?;
            counts.points += append_resource_metrics(&rm, b, bad, s, p);
            Ok(())
        }),
        MessageKind::Logs => each_resource(bytes, |res| {
            let rl = ResourceLogs::decode(res).map_err(prost_error)?;
            if p.logs {
                counts.logs += append_resource_logs(&rl, b, bad, s, p);
            }
            Ok(())
        }),
        MessageKind::Unknown if items > 0 => Err(format!(
            "cannot tell whether the message holds spans, metrics or log records \
             (looked at {items} records)"
        )),
        // Resources without records (or nothing at all): nothing to load, but the message
        // must still be well formed.
        MessageKind::Unknown => each_resource(bytes, |res| {
            ResourceSpans::decode(res).map_err(prost_error)?;
            Ok(())
        }),
    };
    match res {
        Ok(()) => Ok(counts),
        Err(e) => {
            if b.mark() != mark {
                b.rollback_to(mark);
            }
            bad.truncate(bad_before);
            Err(e)
        }
    }
}

fn prost_error(e: prost::DecodeError) -> String {
    let s = e.to_string();
    match s.strip_prefix("failed to decode Protobuf message: ") {
        Some(rest) => rest.to_string(),
        None => s,
    }
}

/// Calls `f` with the bytes of every top-level field 1 (the repeated `Resource*`), checking
/// that the fields around them are well formed.
fn each_resource<'a>(
    bytes: &'a [u8],
    mut f: impl FnMut(&'a [u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut w = Wire::new(bytes);
    while let Some(field) = w.field() {
        match field.map_err(|e| format!("{e} (at byte {})", w.pos))? {
            (1, Wv::Len(res)) => f(res)?,
            (1, _) => return Err("field 1 (resources) has the wrong wire type".into()),
            _ => {}
        }
    }
    Ok(())
}

// ---- wire format -------------------------------------------------------------------------

/// One field's value as the wire format gives it; only lengths are kept for fixed-size ones.
#[derive(Debug, Clone, Copy)]
enum Wv<'a> {
    Varint,
    Fixed64,
    Len(&'a [u8]),
    Fixed32,
    Group,
    EndGroup,
}

struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Wire<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Wire { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut v = 0u64;
        for i in 0..10 {
            let byte = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err("invalid varint")
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], &'static str> {
        let left = self.buf.len() - self.pos;
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= left)
            .ok_or("truncated: a field is longer than the bytes left")?;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next field, `None` at the end.
    fn field(&mut self) -> Option<Result<(u32, Wv<'a>), &'static str>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        Some(match self.field_at(0) {
            Ok((_, Wv::EndGroup)) => Err("end of a group that was not started"),
            r => r,
        })
    }

    fn field_at(&mut self, depth: u32) -> Result<(u32, Wv<'a>), &'static str> {
        let key = self.varint()?;
        let num = u32::try_from(key >> 3)
            .ok()
            .filter(|n| (1..1 << 29).contains(n))
            .ok_or("invalid field number")?;
        let v = match key & 7 {
            0 => {
                self.varint()?;
                Wv::Varint
            }
            1 => {
                self.take(8)?;
                Wv::Fixed64
            }
            2 => {
                let n = self.varint()?;
                Wv::Len(self.take(n)?)
            }
            3 => {
                // Deprecated groups: skipped the way prost skips them.
                if depth >= 100 {
                    return Err("groups nested too deep");
                }
                loop {
                    if self.pos >= self.buf.len() {
                        return Err("truncated group");
                    }
                    if let (n, Wv::EndGroup) = self.field_at(depth + 1)? {
                        if n != num {
                            return Err("mismatched end of group");
                        }
                        break;
                    }
                }
                Wv::Group
            }
            4 => Wv::EndGroup,
            5 => {
                self.take(4)?;
                Wv::Fixed32
            }
            _ => return Err("invalid wire type"),
        };
        Ok((num, v))
    }
}

/// At most this many records are looked at to tell the kind of a message.
const SNIFF_RECORDS: usize = 64;

/// Which of TracesData / MetricsData / LogsData a serialized message is, by walking the wire
/// format (not by file name): all three have field 1 = repeated Resource*; inside, field 2 =
/// repeated Scope*; inside that field 2 = repeated Span / Metric / LogRecord. A Span has
/// fixed64 fields 7/8 (start/end time) and a 16-byte field 1; a LogRecord has fixed64 field 1
/// (time); a Metric has string field 1 (name) and no fixed64 top-level fields. Empty messages
/// are Unknown. Also returns how many records were looked at to find it.
fn sniff_items(bytes: &[u8]) -> (MessageKind, usize) {
    let mut seen = 0;
    let mut top = Wire::new(bytes);
    while let Some(Ok((num, v))) = top.field() {
        let (1, Wv::Len(resource)) = (num, v) else {
            continue;
        };
        let mut r = Wire::new(resource);
        while let Some(Ok((num, v))) = r.field() {
            let (2, Wv::Len(scope)) = (num, v) else {
                continue;
            };
            let mut sc = Wire::new(scope);
            while let Some(Ok((num, v))) = sc.field() {
                let (2, Wv::Len(record)) = (num, v) else {
                    continue;
                };
                seen += 1;
                if let Some(kind) = classify(record) {
                    return (kind, seen);
                }
                if seen >= SNIFF_RECORDS {
                    return (MessageKind::Unknown, seen);
                }
            }
        }
    }
    (MessageKind::Unknown, seen)
}

/// A Span, Metric or LogRecord by the numbers and wire types of its fields; `None` when the
/// record does not say.
fn classify(record: &[u8]) -> Option<MessageKind> {
    let mut traces = false;
    let mut logs = false;
    let mut metrics = false;
    let mut other_fixed64 = false;
    let mut field1 = None;
    let mut w = Wire::new(record);
    while let Some(f) = w.field() {
        match f.ok()? {
            // Span: start/end time; LogRecord: time and observed time.
            (7 | 8, Wv::Fixed64) => traces = true,
            (1 | 11, Wv::Fixed64) => logs = true,
            (_, Wv::Fixed64) => other_fixed64 = true,
            (1, Wv::Len(b)) => field1 = Some(b),
            // Span: kind, dropped attributes/events/links counts, flags.
            (6 | 10 | 12 | 14, Wv::Varint) | (16, Wv::Fixed32) => traces = true,
            // LogRecord: severity number, dropped attributes count, flags.
            (2 | 7, Wv::Varint) | (8, Wv::Fixed32) => logs = true,
            // Metric: sum (field 7 is a time in a Span and a count in a LogRecord).
            (7, Wv::Len(_)) => metrics = true,
            _ => {}
        }
    }
    match (traces, logs, metrics) {
        (true, false, false) => Some(MessageKind::Traces),
        (false, true, false) => Some(MessageKind::Logs),
        (false, false, true) => Some(MessageKind::Metrics),
        (false, false, false) if !other_fixed64 => match field1 {
            // A metric's name is text; a span's trace id is 16 bytes that rarely are.
            Some(b) if std::str::from_utf8(b).is_ok() => Some(MessageKind::Metrics),
            Some(b) if b.len() == 16 => Some(MessageKind::Traces),
            _ => None,
        },
        _ => None,
    }
}

// ---- values --------------------------------------------------------------------------------

#[derive(Default)]
struct Scratch {
    res_keys: Keys,
    res_attrs: Attrs,
    scope_attrs: Attrs,
    span: SpanRec,
    span_attrs: Attrs,
    events: Vec<EventRec>,
    links: Vec<LinkRec>,
    point: PointRec,
    log_attrs: Attrs,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Flags and dropped counts: 0 is what the JSON reader sees as absent.
fn non_zero(n: u32) -> Option<i64> {
    (n != 0).then_some(i64::from(n))
}

fn id<const N: usize>(b: &[u8], key: &str) -> Result<Option<[u8; N]>, String> {
    id_from_bytes::<N>(b).map_err(|e| format!("{key}: {e}"))
}

fn count(n: u64, key: &str) -> Result<i64, String> {
    i64::try_from(n).map_err(|_| format!("{key}: {n} does not fit in a signed 64-bit integer"))
}

fn counts(v: &[u64], key: &str) -> Result<Vec<i64>, String> {
    v.iter().map(|n| count(*n, key)).collect()
}

/// Appends those of `kvs` of the given keys to `attrs`, with their values as text.
fn push_attrs(attrs: &mut Attrs, kvs: &[KeyValue], keys: &Keys) {
    for kv in kvs.iter().filter(|kv| keys.wants(&kv.key)) {
        let k0 = attrs.buf.len();
        attrs.buf.push_str(&kv.key);
        let k1 = attrs.buf.len();
        let present = kv
            .value
            .as_ref()
            .is_some_and(|v| write_any(&mut attrs.buf, v, false));
        attrs.push_ranges((k0, k1), present.then_some((k1, attrs.buf.len())));
    }
}

/// An AnyValue as text, the way `json` writes it: at the top level strings as they are and
/// other scalars in their canonical form; nested in arrays and kvlists, as compact JSON.
/// Returns whether a value was written (an empty AnyValue is null).
fn write_any(out: &mut String, v: &AnyValue, nested: bool) -> bool {
    use any_value::Value;
    match &v.value {
        // A string-table index belongs to profiles; in OTLP/JSON it is an unknown key.
        None | Some(Value::StringValueStrindex(_)) => {
            if nested {
                out.push_str("null");
            }
            return nested;
        }
        Some(Value::StringValue(s)) => {
            if nested {
                write_json_str(out, s);
            } else {
                out.push_str(s);
            }
        }
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(n)) => {
            let _ = write!(out, "{n}");
        }
        Some(Value::DoubleValue(f)) => {
            if nested && !f.is_finite() {
                out.push('"');
                write_f64(out, *f);
                out.push('"');
            } else {
                write_f64(out, *f);
            }
        }
        Some(Value::BytesValue(bytes)) => {
            // Standard base64, as the JSON mapping writes bytes (no characters to escape).
            if nested {
                out.push('"');
            }
            base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
            if nested {
                out.push('"');
            }
        }
        Some(Value::ArrayValue(a)) => {
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_any(out, item, true);
            }
            out.push(']');
        }
        Some(Value::KvlistValue(kvs)) => {
            out.push('{');
            for (i, kv) in kvs.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(out, &kv.key);
                out.push(':');
                match &kv.value {
                    Some(v) => {
                        write_any(out, v, true);
                    }
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
    }
    true
}

// ---- logs ----------------------------------------------------------------------------------

/// Appends one resource's log records; returns how many.
fn append_resource_logs(
    rl: &ResourceLogs,
    b: &mut TableBuilders,
    bad: &mut Vec<String>,
    s: &mut Scratch,
    p: &Projection,
) -> usize {
    let logs0 = b.logs.records();
    s.res_attrs.clear();
    if let Some(r) = &rl.resource {
        push_attrs(&mut s.res_attrs, &r.attributes, &s.res_keys);
    }
    for sl in &rl.scope_logs {
        let scope0 = b.logs.records();
        for lr in &sl.log_records {
            match log_rec(lr) {
                Ok(rec) => {
                    s.log_attrs.clear();
                    push_attrs(&mut s.log_attrs, &lr.attributes, &p.log);
                    b.logs.append(&rec, &s.log_attrs);
                }
                Err(e) => bad.push(format!("log record skipped: {e}")),
            }
        }
        let (name, version) = match &sl.scope {
            Some(sc) => (Some(sc.name.as_str()), Some(sc.version.as_str())),
            None => (None, None),
        };
        b.logs.end_scope(b.logs.records() - scope0, name, version);
    }
    let n = b.logs.records() - logs0;
    b.logs.end_resource(n, &s.res_attrs);
    n
}

fn log_rec(lr: &LogRecord) -> Result<LogRec, String> {
    if !(0..=24).contains(&lr.severity_number) {
        return Err(format!(
            "severityNumber: unknown severity number {}",
            lr.severity_number
        ));
    }
    let mut body = String::new();
    let has_body = lr
        .body
        .as_ref()
        .is_some_and(|v| write_any(&mut body, v, false));
    Ok(LogRec {
        time_ns: Some(lr.time_unix_nano),
        observed_ns: Some(lr.observed_time_unix_nano),
        severity_number: Some(lr.severity_number),
        severity_text: non_empty(&lr.severity_text),
        body: has_body.then_some(body),
        trace_id: id::<16>(&lr.trace_id, "traceId")?,
        span_id: id::<8>(&lr.span_id, "spanId")?,
        event_name: non_empty(&lr.event_name),
        flags: non_zero(lr.flags),
        dropped_attributes_count: non_zero(lr.dropped_attributes_count),
    })
}

// ---- spans ---------------------------------------------------------------------------------

/// Appends one resource's spans, events and links; returns the number of spans.
fn append_resource_spans(
    rs: &ResourceSpans,
    b: &mut TableBuilders,
    bad: &mut Vec<String>,
    s: &mut Scratch,
    p: &Projection,
) -> usize {
    let spans0 = b.traces.spans();
    let events0 = b.traces.events_len();
    s.res_attrs.clear();
    if let Some(r) = &rs.resource {
        push_attrs(&mut s.res_attrs, &r.attributes, &s.res_keys);
    }
    let fills = b.traces.fills();
    for ss in &rs.scope_spans {
        let scope0 = b.traces.spans();
        for sp in &ss.spans {
            match span_rec(sp, s, p, fills) {
                Ok(()) => b
                    .traces
                    .append_span(&s.span, &s.span_attrs, &s.events, &s.links),
                Err(e) => bad.push(format!("span {:?} skipped: {e}", sp.name)),
            }
        }
        s.scope_attrs.clear();
        let (name, version) = match &ss.scope {
            Some(sc) => {
                push_attrs(&mut s.scope_attrs, &sc.attributes, &p.scope);
                (Some(sc.name.as_str()), Some(sc.version.as_str()))
            }
            None => (None, None),
        };
        let n = b.traces.spans() - scope0;
        b.traces.end_scope(n, name, version, &s.scope_attrs);
    }
    let n = b.traces.spans() - spans0;
    let n_events = b.traces.events_len() - events0;
    b.traces.end_resource(n, n_events, &s.res_attrs);
    n
}

/// Fills `s.span`, `s.span_attrs`, `s.events` and `s.links` from `sp`. The span columns
/// `fills` leaves out are not checked (the parent id, the kind) nor their text copied (the
/// trace state, the status message), as the JSON reader skips them; the builder drops the
/// rest (flags, dropped counts).
fn span_rec(sp: &Span, s: &mut Scratch, p: &Projection, fills: SpanColumns) -> Result<(), String> {
    use SpanColumn as C;
    // Checked in the order the JSON mapping writes the fields, so the first problem reported
    // is the one `json` would report.
    let trace_id = id::<16>(&sp.trace_id, "traceId")?;
    let span_id = id::<8>(&sp.span_id, "spanId")?;
    let parent_span_id = if fills[C::ParentSpanId] {
        id::<8>(&sp.parent_span_id, "parentSpanId")?
    } else {
        None
    };
    let kind = if fills[C::SpanKind] {
        SpanKind::from_i64(i64::from(sp.kind))
            .ok_or_else(|| format!("kind: unknown span kind {}", sp.kind))?
    } else {
        SpanKind::default()
    };
    s.links.truncate(sp.links.len());
    s.links.resize_with(sp.links.len(), LinkRec::default);
    for (l, rec) in sp.links.iter().zip(s.links.iter_mut()) {
        let link_err = |e: String| format!("links: link: {e}");
        rec.trace_id = id::<16>(&l.trace_id, "traceId").map_err(link_err)?;
        rec.span_id = id::<8>(&l.span_id, "spanId").map_err(link_err)?;
        rec.trace_state = non_empty(&l.trace_state);
        rec.flags = non_zero(l.flags);
        rec.dropped_attributes_count = non_zero(l.dropped_attributes_count);
        rec.attrs.clear();
        push_attrs(&mut rec.attrs, &l.attributes, &p.link);
    }
    let (status_code, status_message) = match &sp.status {
        None => (StatusCode::Unset, None),
        Some(st) => (
            StatusCode::from_i64(i64::from(st.code))
                .ok_or_else(|| format!("status: code: unknown status code {}", st.code))?,
            if fills[C::StatusMessage] {
                non_empty(&st.message)
            } else {
                None
            },
        ),
    };
    s.span = SpanRec {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: if fills[C::TraceState] {
            non_empty(&sp.trace_state)
        } else {
            None
        },
        name: non_empty(&sp.name),
        kind,
        start_ns: Some(sp.start_time_unix_nano),
        end_ns: Some(sp.end_time_unix_nano),
        status_code,
        status_message,
        flags: non_zero(sp.flags),
        dropped_attributes_count: non_zero(sp.dropped_attributes_count),
        dropped_events_count: non_zero(sp.dropped_events_count),
        dropped_links_count: non_zero(sp.dropped_links_count),
    };
    s.events.truncate(sp.events.len());
    s.events.resize_with(sp.events.len(), EventRec::default);
    for (e, rec) in sp.events.iter().zip(s.events.iter_mut()) {
        rec.time_ns = Some(e.time_unix_nano);
        rec.name = non_empty(&e.name);
        rec.dropped_attributes_count = non_zero(e.dropped_attributes_count);
        rec.attrs.clear();
        push_attrs(&mut rec.attrs, &e.attributes, &p.event);
    }
    s.span_attrs.clear();
    push_attrs(&mut s.span_attrs, &sp.attributes, &p.span);
    Ok(())
}

// ---- metrics -------------------------------------------------------------------------------

/// Appends one resource's data points and exemplars; returns the number of points.
fn append_resource_metrics(
    rm: &ResourceMetrics,
    b: &mut TableBuilders,
    bad: &mut Vec<String>,
    s: &mut Scratch,
    pr: &Projection,
) -> usize {
    let points0 = b.metrics.points();
    let ex0 = b.metrics.exemplars_len();
    s.res_attrs.clear();
    if let Some(r) = &rm.resource {
        push_attrs(&mut s.res_attrs, &r.attributes, &s.res_keys);
    }
    for sm in &rm.scope_metrics {
        let scope0 = b.metrics.points();
        for m in &sm.metrics {
            append_metric(m, b, bad, &mut s.point, pr);
        }
        let n = b.metrics.points() - scope0;
        let scope = sm.scope.as_ref();
        b.metrics.end_scope(
            n,
            scope.map(|sc| sc.name.as_str()),
            scope.map(|sc| sc.version.as_str()),
        );
    }
    let n = b.metrics.points() - points0;
    let n_ex = b.metrics.exemplars_len() - ex0;
    b.metrics.end_resource(n, n_ex, &s.res_attrs);
    n
}

fn append_metric(
    m: &Metric,
    b: &mut TableBuilders,
    bad: &mut Vec<String>,
    p: &mut PointRec,
    pr: &Projection,
) {
    use metric::Data;
    let Some(data) = &m.data else {
        return;
    };
    let (metric_type, key, temporality, n_points) = match data {
        Data::Gauge(g) => (MetricType::Gauge, "gauge", None, g.data_points.len()),
        Data::Sum(x) => (
            MetricType::Sum,
            "sum",
            Some(x.aggregation_temporality),
            x.data_points.len(),
        ),
        Data::Histogram(h) => (
            MetricType::Histogram,
            "histogram",
            Some(h.aggregation_temporality),
            h.data_points.len(),
        ),
        Data::ExponentialHistogram(h) => (
            MetricType::ExponentialHistogram,
            "exponentialHistogram",
            Some(h.aggregation_temporality),
            h.data_points.len(),
        ),
        Data::Summary(x) => (MetricType::Summary, "summary", None, x.data_points.len()),
    };
    let temporality = match temporality {
        None => None,
        Some(t) => match Temporality::from_i64(i64::from(t)) {
            Some(t) => Some(t),
            None => {
                if n_points > 0 {
                    bad.push(format!(
                        "metric {:?}: {key}: aggregationTemporality: unknown aggregation \
                         temporality {t} ({n_points} data points skipped)",
                        m.name
                    ));
                }
                return;
            }
        },
    };
    let head = MetricHead {
        name: non_empty(&m.name),
        description: non_empty(&m.description),
        unit: non_empty(&m.unit),
        metric_type,
        is_monotonic: match data {
            Data::Sum(x) => Some(x.is_monotonic),
            _ => None,
        },
        temporality,
    };
    let mut emit = |r: Result<(), String>, p: &PointRec| match r {
        Ok(()) => b.metrics.append_point(&head, p),
        Err(e) => bad.push(format!("data point of metric {:?} skipped: {e}", m.name)),
    };
    match data {
        Data::Gauge(g) => g
            .data_points
            .iter()
            .for_each(|dp| emit(number_point(dp, p, pr), p)),
        Data::Sum(x) => x
            .data_points
            .iter()
            .for_each(|dp| emit(number_point(dp, p, pr), p)),
        Data::Histogram(h) => h
            .data_points
            .iter()
            .for_each(|dp| emit(histogram_point(dp, p, pr), p)),
        Data::ExponentialHistogram(h) => h
            .data_points
            .iter()
            .for_each(|dp| emit(exp_histogram_point(dp, p, pr), p)),
        Data::Summary(x) => x
            .data_points
            .iter()
            .for_each(|dp| emit(summary_point(dp, p, pr), p)),
    }
}

/// Resets `p` for the next point, keeping its attribute buffer.
fn reset_point(
    pr: &Projection,
    p: &mut PointRec,
    attributes: &[KeyValue],
    start: u64,
    time: u64,
    flags: u32,
) {
    let mut attrs = std::mem::take(&mut p.attrs);
    attrs.clear();
    push_attrs(&mut attrs, attributes, &pr.point);
    *p = PointRec {
        attrs,
        start_ns: Some(start),
        time_ns: Some(time),
        flags: non_zero(flags),
        ..PointRec::default()
    };
}

fn number_point(dp: &NumberDataPoint, p: &mut PointRec, pr: &Projection) -> Result<(), String> {
    reset_point(
        pr,
        p,
        &dp.attributes,
        dp.start_time_unix_nano,
        dp.time_unix_nano,
        dp.flags,
    );
    match dp.value {
        Some(number_data_point::Value::AsInt(n)) => {
            p.int_value = Some(n);
            p.value = Some(n as f64);
        }
        Some(number_data_point::Value::AsDouble(f)) => p.value = Some(f),
        None => {}
    }
    p.exemplars = exemplars(&dp.exemplars, &pr.exemplar)?;
    Ok(())
}

fn histogram_point(
    dp: &HistogramDataPoint,
    p: &mut PointRec,
    pr: &Projection,
) -> Result<(), String> {
    reset_point(
        pr,
        p,
        &dp.attributes,
        dp.start_time_unix_nano,
        dp.time_unix_nano,
        dp.flags,
    );
    p.count = Some(count(dp.count, "count")?);
    p.sum = dp.sum;
    p.min = dp.min;
    p.max = dp.max;
    p.bucket_counts = Some(counts(&dp.bucket_counts, "bucketCounts")?);
    p.explicit_bounds = Some(dp.explicit_bounds.clone());
    p.exemplars = exemplars(&dp.exemplars, &pr.exemplar)?;
    Ok(())
}

fn exp_histogram_point(
    dp: &ExponentialHistogramDataPoint,
    p: &mut PointRec,
    pr: &Projection,
) -> Result<(), String> {
    reset_point(
        pr,
        p,
        &dp.attributes,
        dp.start_time_unix_nano,
        dp.time_unix_nano,
        dp.flags,
    );
    let buckets = |b: &Option<exponential_histogram_data_point::Buckets>, key: &str| {
        let (offset, c) = b
            .as_ref()
            .map_or((0, &[][..]), |b| (b.offset, &b.bucket_counts[..]));
        counts(c, "bucketCounts")
            .map(|c| (offset, c))
            .map_err(|e| format!("{key}: {e}"))
    };
    p.count = Some(count(dp.count, "count")?);
    p.sum = dp.sum;
    p.min = dp.min;
    p.max = dp.max;
    p.scale = Some(dp.scale);
    p.zero_count = Some(count(dp.zero_count, "zeroCount")?);
    p.zero_threshold = Some(dp.zero_threshold);
    p.positive = Some(buckets(&dp.positive, "positive")?);
    p.negative = Some(buckets(&dp.negative, "negative")?);
    p.exemplars = exemplars(&dp.exemplars, &pr.exemplar)?;
    Ok(())
}

fn summary_point(dp: &SummaryDataPoint, p: &mut PointRec, pr: &Projection) -> Result<(), String> {
    reset_point(
        pr,
        p,
        &dp.attributes,
        dp.start_time_unix_nano,
        dp.time_unix_nano,
        dp.flags,
    );
    p.count = Some(count(dp.count, "count")?);
    p.sum = Some(dp.sum);
    p.quantiles = Some(
        dp.quantile_values
            .iter()
            .map(|q| (q.quantile, q.value))
            .collect(),
    );
    Ok(())
}

fn exemplars(list: &[Exemplar], keys: &Keys) -> Result<Vec<ExemplarRec>, String> {
    list.iter()
        .map(|e| {
            let ex_err = |x: String| format!("exemplars: exemplar: {x}");
            let mut rec = ExemplarRec {
                time_ns: Some(e.time_unix_nano),
                value: match e.value {
                    Some(exemplar::Value::AsDouble(f)) => Some(f),
                    Some(exemplar::Value::AsInt(n)) => Some(n as f64),
                    None => None,
                },
                trace_id: id::<16>(&e.trace_id, "traceId").map_err(ex_err)?,
                span_id: id::<8>(&e.span_id, "spanId").map_err(ex_err)?,
                filtered_attrs: Attrs::default(),
            };
            push_attrs(&mut rec.filtered_attrs, &e.filtered_attributes, keys);
            Ok(rec)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn sniff(bytes: &[u8]) -> MessageKind {
        sniff_items(bytes).0
    }

    use datafusion::arrow::array::{Array, ArrayRef, AsArray};
    use datafusion::arrow::compute::concat_batches;
    use datafusion::arrow::datatypes::{
        Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    };
    use datafusion::arrow::record_batch::RecordBatch;
    use opentelemetry_proto::tonic::common::v1::{
        any_value::Value, ArrayValue, InstrumentationScope, KeyValueList,
    };
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, LogsData, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        exponential_histogram_data_point::Buckets, summary_data_point::ValueAtQuantile,
        AggregationTemporality, ExponentialHistogram, Gauge, Histogram, MetricsData, ScopeMetrics,
        Sum, Summary,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{span, status, ScopeSpans, Status, TracesData};

    use super::*;
    use crate::read::otlp::values::parse_id;
    use crate::tables::schema::{PerTable, Table};

    // ---- building messages ----

    fn kv(key: &str, v: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }
    fn text(s: &str) -> Value {
        Value::StringValue(s.into())
    }
    fn any(v: Value) -> AnyValue {
        AnyValue { value: Some(v) }
    }
    fn tid(hex: &str) -> Vec<u8> {
        parse_id::<16>(hex).unwrap().unwrap().to_vec()
    }
    fn sid(hex: &str) -> Vec<u8> {
        parse_id::<8>(hex).unwrap().unwrap().to_vec()
    }
    fn resource(service: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![kv("service.name", text(service))],
            ..Default::default()
        })
    }
    fn scope(name: &str, version: &str) -> Option<InstrumentationScope> {
        Some(InstrumentationScope {
            name: name.into(),
            version: version.into(),
            ..Default::default()
        })
    }

    const T0: u64 = 1_700_000_000_000_000_000;
    const MS: u64 = 1_000_000;
    const TRACE: &str = "5b8efff798038103d269b633813fc60c";
    const SPAN: &str = "eee19b7ec3c1b174";

    // ---- reading columns ----

    fn table(tables: &PerTable<Vec<RecordBatch>>, t: Table) -> RecordBatch {
        concat_batches(&t.schema(), &tables[t]).unwrap()
    }
    fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a ArrayRef {
        b.column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }
    fn strs(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let a = col(b, name).as_string::<i32>();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
            .collect()
    }
    fn f64s(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
        col(b, name).as_primitive::<Float64Type>().iter().collect()
    }
    fn i64s(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
        col(b, name).as_primitive::<Int64Type>().iter().collect()
    }
    fn i32s(b: &RecordBatch, name: &str) -> Vec<Option<i32>> {
        col(b, name).as_primitive::<Int32Type>().iter().collect()
    }
    fn micros(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
        col(b, name)
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .collect()
    }
    fn bools(b: &RecordBatch, name: &str) -> Vec<Option<bool>> {
        col(b, name).as_boolean().iter().collect()
    }
    fn map_at(b: &RecordBatch, name: &str, row: usize) -> Vec<(String, Option<String>)> {
        let m = col(b, name).as_map();
        let entries = m.value(row);
        let keys = entries.column(0).as_string::<i32>();
        let vals = entries.column(1).as_string::<i32>();
        (0..entries.len())
            .map(|i| {
                (
                    keys.value(i).to_string(),
                    vals.is_valid(i).then(|| vals.value(i).to_string()),
                )
            })
            .collect()
    }
    fn get(map: &[(String, Option<String>)], key: &str) -> Option<String> {
        map.iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("no attribute {key} in {map:?}"))
            .1
            .clone()
    }
    fn list_i64(b: &RecordBatch, name: &str, row: usize) -> Option<Vec<i64>> {
        let l = col(b, name).as_list::<i32>();
        l.is_valid(row).then(|| {
            let v = l.value(row);
            v.as_primitive::<Int64Type>()
                .iter()
                .map(Option::unwrap)
                .collect()
        })
    }
    fn list_f64(b: &RecordBatch, name: &str, row: usize) -> Option<Vec<f64>> {
        let l = col(b, name).as_list::<i32>();
        l.is_valid(row).then(|| {
            let v = l.value(row);
            v.as_primitive::<Float64Type>()
                .iter()
                .map(Option::unwrap)
                .collect()
        })
    }
    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    /// Every kind of attribute value, with the text `json` stores for it.
    fn rich_attributes() -> Vec<KeyValue> {
        vec![
            kv("cart.id", text("cart-42")),
            kv("cart.items", Value::IntValue(-3)),
            kv("cart.total", Value::DoubleValue(59.9)),
            kv("cart.round", Value::DoubleValue(10.0)),
            kv("cart.guest", Value::BoolValue(true)),
            kv(
                "cart.skus",
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        any(text("A-\"1\"")),
                        any(Value::IntValue(2)),
                        any(Value::DoubleValue(0.5)),
                        any(Value::BoolValue(false)),
                        AnyValue { value: None },
                        any(Value::DoubleValue(f64::INFINITY)),
                        any(Value::BytesValue(vec![1, 2])),
                    ],
                }),
            ),
            kv(
                "cart.meta",
                Value::KvlistValue(KeyValueList {
                    values: vec![
                        kv("currency", text("EUR")),
                        kv("n", Value::IntValue(1)),
                        kv(
                            "tags",
                            Value::ArrayValue(ArrayValue {
                                values: vec![any(text("a\nb"))],
                            }),
                        ),
                        KeyValue {
                            key: "none".into(),
                            value: None,
                            ..Default::default()
                        },
                    ],
                }),
            ),
            kv("cart.empty", Value::ArrayValue(ArrayValue::default())),
            kv("cart.blob", Value::BytesValue(vec![0, 1, 2, 255])),
            KeyValue {
                key: "cart.null".into(),
                value: Some(AnyValue { value: None }),
                ..Default::default()
            },
        ]
    }

    fn expected_rich() -> Vec<(String, Option<String>)> {
        [
            ("cart.id", Some("cart-42")),
            ("cart.items", Some("-3")),
            ("cart.total", Some("59.9")),
            ("cart.round", Some("10")),
            ("cart.guest", Some("true")),
            (
                "cart.skus",
                Some(r#"["A-\"1\"",2,0.5,false,null,"Infinity","AQI="]"#),
            ),
            (
                "cart.meta",
                Some(r#"{"currency":"EUR","n":1,"tags":["a\nb"],"none":null}"#),
            ),
            ("cart.empty", Some("[]")),
            ("cart.blob", Some("AAEC/w==")),
            ("cart.null", None),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect()
    }

    fn good_span() -> Span {
        Span {
            trace_id: tid(TRACE),
            span_id: sid(SPAN),
            parent_span_id: sid("00f067aa0ba902b7"),
            trace_state: "rojo=1".into(),
            name: "cart.begin_checkout".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: T0,
            end_time_unix_nano: T0 + 2500 * MS,
            attributes: rich_attributes(),
            flags: 0x301,
            dropped_attributes_count: 2,
            events: vec![
                span::Event {
                    time_unix_nano: T0 + MS,
                    name: "cart.item_added".into(),
                    attributes: vec![kv("sku", text("A-1"))],
                    dropped_attributes_count: 0,
                },
                span::Event {
                    time_unix_nano: T0 + 2 * MS,
                    name: "exception".into(),
                    attributes: vec![kv("exception.type", text("Timeout"))],
                    dropped_attributes_count: 1,
                },
            ],
            links: vec![span::Link {
                trace_id: tid("0af7651916cd43dd8448eb211c80319c"),
                span_id: sid("b7ad6b7169203331"),
                trace_state: "congo=t61".into(),
                attributes: vec![kv("link.kind", text("follows"))],
                dropped_attributes_count: 0,
                flags: 0x100,
            }],
            status: Some(Status {
                message: "payment declined".into(),
                code: status::StatusCode::Error as i32,
            }),
            ..Default::default()
        }
    }

    fn traces_message() -> TracesData {
        let mut wrong_trace_id = good_span();
        wrong_trace_id.name = "bad.trace_id".into();
        wrong_trace_id.trace_id = vec![1, 2, 3];
        let mut wrong_kind = good_span();
        wrong_kind.name = "bad.kind".into();
        wrong_kind.kind = 42;
        let mut wrong_status = good_span();
        wrong_status.name = "bad.status".into();
        wrong_status.status = Some(Status {
            message: String::new(),
            code: 9,
        });
        let mut wrong_link = good_span();
        wrong_link.name = "bad.link".into();
        wrong_link.links[0].span_id = vec![7; 5];
        let plain = Span {
            trace_id: tid(TRACE),
            span_id: sid("1111111111111111"),
            name: "shipping.calculate_rates".into(),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: T0 + 10 * MS,
            end_time_unix_nano: T0 + 20 * MS,
            status: Some(Status {
                message: String::new(),
                code: status::StatusCode::Ok as i32,
            }),
            ..Default::default()
        };
        let payments = Span {
            trace_id: tid(TRACE),
            span_id: sid("2222222222222222"),
            name: "payment.authorize".into(),
            events: vec![span::Event {
                time_unix_nano: T0 + 5 * MS,
                name: "retry".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        TracesData {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            kv("service.name", text("checkout")),
                            kv("deployment.environment", text("prod")),
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![
                        ScopeSpans {
                            scope: Some(InstrumentationScope {
                                name: "cartscope.test".into(),
                                version: "1.2.3".into(),
                                attributes: vec![kv("scope.attr", Value::IntValue(7))],
                                ..Default::default()
                            }),
                            spans: vec![
                                good_span(),
                                wrong_trace_id,
                                wrong_kind,
                                wrong_status,
                                wrong_link,
                            ],
                            ..Default::default()
                        },
                        ScopeSpans {
                            scope: scope("other.scope", ""),
                            spans: vec![plain],
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                ResourceSpans {
                    resource: resource("payments"),
                    scope_spans: vec![ScopeSpans {
                        spans: vec![payments],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn spans_events_and_links() {
        let bytes = traces_message().encode_to_vec();
        assert_eq!(sniff(&bytes), MessageKind::Traces);
        let mut b = TableBuilders::default();
        let mut bad = Vec::new();
        let counts = decode_message(&bytes, &mut b, &mut bad, &Projection::default()).unwrap();
        assert_eq!(
            counts,
            DocCounts {
                spans: 3,
                points: 0,
                logs: 0
            }
        );
        assert_eq!(
            bad,
            vec![
                "span \"bad.trace_id\" skipped: traceId: id has 3 bytes, expected 16".to_string(),
                "span \"bad.kind\" skipped: kind: unknown span kind 42".to_string(),
                "span \"bad.status\" skipped: status: code: unknown status code 9".to_string(),
                "span \"bad.link\" skipped: links: link: spanId: id has 5 bytes, expected 8"
                    .to_string(),
            ]
        );
        let tables = b.take();
        let t = table(&tables, Table::Traces);
        assert_eq!(t.num_rows(), 3);
        assert_eq!(strs(&t, "trace_id"), vec![s(TRACE); 3]);
        assert_eq!(
            strs(&t, "span_id"),
            vec![s(SPAN), s("1111111111111111"), s("2222222222222222")]
        );
        assert_eq!(
            strs(&t, "parent_span_id"),
            vec![s("00f067aa0ba902b7"), None, None]
        );
        assert_eq!(strs(&t, "trace_state"), vec![s("rojo=1"), None, None]);
        assert_eq!(
            strs(&t, "operation_name"),
            vec![
                s("cart.begin_checkout"),
                s("shipping.calculate_rates"),
                s("payment.authorize")
            ]
        );
        assert_eq!(
            strs(&t, "service_name"),
            vec![s("checkout"), s("checkout"), s("payments")]
        );
        assert_eq!(
            strs(&t, "span_kind"),
            vec![s("server"), s("client"), s("unspecified")]
        );
        assert_eq!(
            micros(&t, "start_time"),
            vec![
                Some((T0 / 1000) as i64),
                Some(((T0 + 10 * MS) / 1000) as i64),
                None
            ]
        );
        assert_eq!(
            micros(&t, "end_time")[0],
            Some(((T0 + 2500 * MS) / 1000) as i64)
        );
        assert_eq!(
            f64s(&t, "duration_ms"),
            vec![Some(2500.0), Some(10.0), None]
        );
        assert_eq!(
            strs(&t, "status_code"),
            vec![s("error"), s("ok"), s("unset")]
        );
        assert_eq!(
            strs(&t, "status_message"),
            vec![s("payment declined"), None, None]
        );
        assert_eq!(map_at(&t, "attributes", 0), expected_rich());
        assert_eq!(get(&map_at(&t, "attributes", 0), "cart.items"), s("-3"));
        assert!(map_at(&t, "attributes", 1).is_empty());
        assert_eq!(
            map_at(&t, "resource_attributes", 0),
            vec![
                ("service.name".to_string(), s("checkout")),
                ("deployment.environment".to_string(), s("prod")),
            ]
        );
        assert_eq!(
            map_at(&t, "resource_attributes", 2),
            vec![("service.name".to_string(), s("payments"))]
        );
        assert_eq!(
            strs(&t, "scope_name"),
            vec![s("cartscope.test"), s("other.scope"), None]
        );
        assert_eq!(strs(&t, "scope_version"), vec![s("1.2.3"), None, None]);
        assert_eq!(
            map_at(&t, "scope_attributes", 0),
            vec![("scope.attr".to_string(), s("7"))]
        );
        assert!(map_at(&t, "scope_attributes", 1).is_empty());
        assert_eq!(i64s(&t, "flags"), vec![Some(0x301), None, None]);
        assert_eq!(
            i64s(&t, "dropped_attributes_count"),
            vec![Some(2), None, None]
        );
        assert_eq!(i64s(&t, "dropped_events_count"), vec![None; 3]);
        assert!(t.column_by_name("derived").is_none());

        let e = table(&tables, Table::SpanEvents);
        assert_eq!(e.num_rows(), 3);
        assert_eq!(strs(&e, "trace_id"), vec![s(TRACE); 3]);
        assert_eq!(
            strs(&e, "span_id"),
            vec![s(SPAN), s(SPAN), s("2222222222222222")]
        );
        assert_eq!(
            strs(&e, "name"),
            vec![s("cart.item_added"), s("exception"), s("retry")]
        );
        assert_eq!(
            micros(&e, "timestamp")[..2],
            [
                Some(((T0 + MS) / 1000) as i64),
                Some(((T0 + 2 * MS) / 1000) as i64)
            ]
        );
        assert_eq!(
            map_at(&e, "attributes", 1),
            vec![("exception.type".to_string(), s("Timeout"))]
        );
        assert_eq!(
            i64s(&e, "dropped_attributes_count"),
            vec![None, Some(1), None]
        );
        assert_eq!(
            strs(&e, "service_name"),
            vec![s("checkout"), s("checkout"), s("payments")]
        );

        let l = table(&tables, Table::SpanLinks);
        assert_eq!(l.num_rows(), 1);
        assert_eq!(strs(&l, "trace_id"), vec![s(TRACE)]);
        assert_eq!(strs(&l, "span_id"), vec![s(SPAN)]);
        assert_eq!(
            micros(&l, "span_start_time"),
            vec![Some((T0 / 1000) as i64)]
        );
        assert_eq!(
            strs(&l, "linked_trace_id"),
            vec![s("0af7651916cd43dd8448eb211c80319c")]
        );
        assert_eq!(strs(&l, "linked_span_id"), vec![s("b7ad6b7169203331")]);
        assert_eq!(strs(&l, "trace_state"), vec![s("congo=t61")]);
        assert_eq!(
            map_at(&l, "attributes", 0),
            vec![("link.kind".to_string(), s("follows"))]
        );
        assert_eq!(i64s(&l, "flags"), vec![Some(0x100)]);
        assert_eq!(i64s(&l, "dropped_attributes_count"), vec![None]);
        assert_eq!(tables[Table::Metrics].len(), 0);
    }

    /// The same attributes written as OTLP/JSON give the same map through `json`.
    #[test]
    fn attributes_match_the_json_reader() {
        let doc = format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[
                {{"key":"service.name","value":{{"stringValue":"checkout"}}}}]}},
              "scopeSpans":[{{"spans":[{{"traceId":"{TRACE}","spanId":"{SPAN}","name":"x",
                "attributes":[
                  {{"key":"cart.id","value":{{"stringValue":"cart-42"}}}},
                  {{"key":"cart.items","value":{{"intValue":"-3"}}}},
                  {{"key":"cart.total","value":{{"doubleValue":59.9}}}},
                  {{"key":"cart.round","value":{{"doubleValue":10.0}}}},
                  {{"key":"cart.guest","value":{{"boolValue":true}}}},
                  {{"key":"cart.skus","value":{{"arrayValue":{{"values":[
                    {{"stringValue":"A-\"1\""}},{{"intValue":"2"}},{{"doubleValue":0.5}},
                    {{"boolValue":false}},{{}},{{"doubleValue":"Infinity"}},{{"bytesValue":"AQI="}}]}}}}}},
                  {{"key":"cart.meta","value":{{"kvlistValue":{{"values":[
                    {{"key":"currency","value":{{"stringValue":"EUR"}}}},
                    {{"key":"n","value":{{"intValue":"1"}}}},
                    {{"key":"tags","value":{{"arrayValue":{{"values":[{{"stringValue":"a\nb"}}]}}}}}},
                    {{"key":"none"}}]}}}}}},
                  {{"key":"cart.empty","value":{{"arrayValue":{{}}}}}},
                  {{"key":"cart.blob","value":{{"bytesValue":"AAEC/w=="}}}},
                  {{"key":"cart.null","value":{{}}}}
                ]}}]}}]}}]}}"#
        );
        let mut jb = TableBuilders::default();
        let mut scratch = crate::read::otlp::json::Scratch::default();
        crate::read::otlp::json::parse_document(&doc, &mut jb, &mut scratch).unwrap();
        assert!(scratch.bad.is_empty(), "{:?}", scratch.bad);
        let from_json = table(&jb.take(), Table::Traces);

        let msg = TracesData {
            resource_spans: vec![ResourceSpans {
                resource: resource("checkout"),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: tid(TRACE),
                        span_id: sid(SPAN),
                        name: "x".into(),
                        attributes: rich_attributes(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut pb = TableBuilders::default();
        decode_message(
            &msg.encode_to_vec(),
            &mut pb,
            &mut Vec::new(),
            &Projection::default(),
        )
        .unwrap();
        let from_proto = table(&pb.take(), Table::Traces);
        assert_eq!(map_at(&from_proto, "attributes", 0), expected_rich());
        assert_eq!(
            map_at(&from_proto, "attributes", 0),
            map_at(&from_json, "attributes", 0)
        );
        assert_eq!(from_proto, from_json);
    }

    fn number(time: u64, v: Option<number_data_point::Value>) -> NumberDataPoint {
        NumberDataPoint {
            start_time_unix_nano: T0,
            time_unix_nano: time,
            value: v,
            ..Default::default()
        }
    }

    fn metrics_message() -> MetricsData {
        use number_data_point::Value as N;
        let metric = |name: &str, data: metric::Data| Metric {
            name: name.into(),
            data: Some(data),
            ..Default::default()
        };
        let mut gauge_point = number(T0 + 60_000 * MS, Some(N::AsDouble(12.5)));
        gauge_point.attributes = vec![kv("cart.stage", text("browse"))];
        gauge_point.flags = 1;
        gauge_point.exemplars = vec![
            Exemplar {
                filtered_attributes: vec![kv("user.tier", text("gold"))],
                time_unix_nano: T0 + 59_000 * MS,
                span_id: sid(SPAN),
                trace_id: tid(TRACE),
                value: Some(exemplar::Value::AsDouble(12.5)),
            },
            Exemplar {
                time_unix_nano: T0 + 59_500 * MS,
                value: Some(exemplar::Value::AsInt(4)),
                ..Default::default()
            },
        ];
        let mut bad_exemplar = number(T0, Some(N::AsInt(1)));
        bad_exemplar.exemplars = vec![Exemplar {
            trace_id: vec![9; 5],
            ..Default::default()
        }];
        let mut transitions = number(T0 + 60_000 * MS, Some(N::AsInt(3)));
        transitions.attributes = vec![kv("cart.stage", text("abandoned"))];
        MetricsData {
            resource_metrics: vec![ResourceMetrics {
                resource: resource("checkout"),
                scope_metrics: vec![
                    ScopeMetrics {
                        scope: scope("cartscope.metrics", "0.1"),
                        metrics: vec![
                            Metric {
                                description: "cart value".into(),
                                unit: "EUR".into(),
                                ..metric(
                                    "cart.value",
                                    metric::Data::Gauge(Gauge {
                                        data_points: vec![gauge_point, bad_exemplar],
                                    }),
                                )
                            },
                            metric(
                                "cart.state.transitions",
                                metric::Data::Sum(Sum {
                                    data_points: vec![transitions],
                                    aggregation_temporality: AggregationTemporality::Cumulative
                                        as i32,
                                    is_monotonic: true,
                                }),
                            ),
                            metric(
                                "cart.open",
                                metric::Data::Sum(Sum {
                                    data_points: vec![number(T0, None)],
                                    aggregation_temporality: AggregationTemporality::Delta as i32,
                                    is_monotonic: false,
                                }),
                            ),
                            metric(
                                "bad.temporality",
                                metric::Data::Sum(Sum {
                                    data_points: vec![number(T0, Some(N::AsInt(1)))],
                                    aggregation_temporality: 7,
                                    is_monotonic: true,
                                }),
                            ),
                        ],
                        ..Default::default()
                    },
                    ScopeMetrics {
                        scope: scope("cartscope.histograms", ""),
                        metrics: vec![
                            metric(
                                "checkout.duration",
                                metric::Data::Histogram(Histogram {
                                    data_points: vec![
                                        HistogramDataPoint {
                                            start_time_unix_nano: T0,
                                            time_unix_nano: T0 + 60_000 * MS,
                                            count: 4,
                                            sum: Some(10.0),
                                            bucket_counts: vec![1, 2, 1],
                                            explicit_bounds: vec![1.0, 5.0],
                                            min: Some(0.5),
                                            max: Some(6.0),
                                            ..Default::default()
                                        },
                                        HistogramDataPoint {
                                            count: u64::MAX,
                                            ..Default::default()
                                        },
                                    ],
                                    aggregation_temporality: AggregationTemporality::Delta as i32,
                                }),
                            ),
                            metric(
                                "checkout.latency",
                                metric::Data::ExponentialHistogram(ExponentialHistogram {
                                    data_points: vec![ExponentialHistogramDataPoint {
                                        time_unix_nano: T0,
                                        count: 7,
                                        sum: Some(21.5),
                                        scale: -2,
                                        zero_count: 1,
                                        zero_threshold: 0.001,
                                        positive: Some(Buckets {
                                            offset: -1,
                                            bucket_counts: vec![1, 2],
                                        }),
                                        negative: Some(Buckets {
                                            offset: 0,
                                            bucket_counts: vec![3],
                                        }),
                                        ..Default::default()
                                    }],
                                    aggregation_temporality: AggregationTemporality::Cumulative
                                        as i32,
                                }),
                            ),
                            metric(
                                "checkout.summary",
                                metric::Data::Summary(Summary {
                                    data_points: vec![SummaryDataPoint {
                                        time_unix_nano: T0,
                                        count: 10,
                                        sum: 25.0,
                                        quantile_values: vec![
                                            ValueAtQuantile {
                                                quantile: 0.5,
                                                value: 2.0,
                                            },
                                            ValueAtQuantile {
                                                quantile: 0.99,
                                                value: 9.5,
                                            },
                                        ],
                                        ..Default::default()
                                    }],
                                }),
                            ),
                            Metric {
                                name: "no.data".into(),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn every_metric_type_and_exemplars() {
        let bytes = metrics_message().encode_to_vec();
        assert_eq!(sniff(&bytes), MessageKind::Metrics);
        let mut b = TableBuilders::default();
        let mut bad = Vec::new();
        let counts = decode_message(&bytes, &mut b, &mut bad, &Projection::default()).unwrap();
        assert_eq!(counts.points, 6);
        assert_eq!(counts.spans, 0);
        assert_eq!(
            bad,
            vec![
                "data point of metric \"cart.value\" skipped: exemplars: exemplar: traceId: \
                 id has 5 bytes, expected 16"
                    .to_string(),
                "metric \"bad.temporality\": sum: aggregationTemporality: unknown aggregation \
                 temporality 7 (1 data points skipped)"
                    .to_string(),
                "data point of metric \"checkout.duration\" skipped: count: \
                 18446744073709551615 does not fit in a signed 64-bit integer"
                    .to_string(),
            ]
        );
        let tables = b.take();
        let m = table(&tables, Table::Metrics);
        assert_eq!(m.num_rows(), 6);
        assert_eq!(
            strs(&m, "name"),
            vec![
                s("cart.value"),
                s("cart.state.transitions"),
                s("cart.open"),
                s("checkout.duration"),
                s("checkout.latency"),
                s("checkout.summary")
            ]
        );
        assert_eq!(
            strs(&m, "metric_type"),
            vec![
                s("gauge"),
                s("sum"),
                s("sum"),
                s("histogram"),
                s("exponential_histogram"),
                s("summary")
            ]
        );
        assert_eq!(strs(&m, "description")[0], s("cart value"));
        assert_eq!(
            strs(&m, "unit"),
            vec![s("EUR"), None, None, None, None, None]
        );
        assert_eq!(
            micros(&m, "timestamp")[0],
            Some(((T0 + 60_000 * MS) / 1000) as i64)
        );
        assert_eq!(micros(&m, "start_timestamp")[0], Some((T0 / 1000) as i64));
        assert_eq!(micros(&m, "start_timestamp")[4], None);
        assert_eq!(
            f64s(&m, "value"),
            vec![Some(12.5), Some(3.0), None, None, None, None]
        );
        assert_eq!(
            i64s(&m, "int_value"),
            vec![None, Some(3), None, None, None, None]
        );
        assert_eq!(
            bools(&m, "is_monotonic"),
            vec![None, Some(true), Some(false), None, None, None]
        );
        assert_eq!(
            strs(&m, "aggregation_temporality"),
            vec![
                None,
                s("cumulative"),
                s("delta"),
                s("delta"),
                s("cumulative"),
                None
            ]
        );
        assert_eq!(
            i64s(&m, "flags"),
            vec![Some(1), None, None, None, None, None]
        );
        assert_eq!(
            map_at(&m, "attributes", 1),
            vec![("cart.stage".to_string(), s("abandoned"))]
        );
        // histogram
        assert_eq!(
            i64s(&m, "count"),
            vec![None, None, None, Some(4), Some(7), Some(10)]
        );
        assert_eq!(
            f64s(&m, "sum"),
            vec![None, None, None, Some(10.0), Some(21.5), Some(25.0)]
        );
        assert_eq!(f64s(&m, "min")[3], Some(0.5));
        assert_eq!(f64s(&m, "max")[3], Some(6.0));
        assert_eq!(f64s(&m, "min")[4], None);
        assert_eq!(list_i64(&m, "bucket_counts", 3), Some(vec![1, 2, 1]));
        assert_eq!(list_i64(&m, "bucket_counts", 0), None);
        assert_eq!(list_f64(&m, "explicit_bounds", 3), Some(vec![1.0, 5.0]));
        // exponential histogram
        assert_eq!(
            i32s(&m, "scale"),
            vec![None, None, None, None, Some(-2), None]
        );
        assert_eq!(i64s(&m, "zero_count")[4], Some(1));
        assert_eq!(f64s(&m, "zero_threshold")[4], Some(0.001));
        assert_eq!(i32s(&m, "positive_offset")[4], Some(-1));
        assert_eq!(list_i64(&m, "positive_bucket_counts", 4), Some(vec![1, 2]));
        assert_eq!(i32s(&m, "negative_offset")[4], Some(0));
        assert_eq!(list_i64(&m, "negative_bucket_counts", 4), Some(vec![3]));
        assert_eq!(list_i64(&m, "positive_bucket_counts", 3), None);
        // summary
        assert_eq!(list_f64(&m, "quantiles", 5), Some(vec![0.5, 0.99]));
        assert_eq!(list_f64(&m, "quantile_values", 5), Some(vec![2.0, 9.5]));
        assert_eq!(list_f64(&m, "quantiles", 4), None);
        // resource and scope
        assert_eq!(strs(&m, "service_name"), vec![s("checkout"); 6]);
        assert_eq!(
            strs(&m, "scope_name"),
            vec![
                s("cartscope.metrics"),
                s("cartscope.metrics"),
                s("cartscope.metrics"),
                s("cartscope.histograms"),
                s("cartscope.histograms"),
                s("cartscope.histograms")
            ]
        );
        assert_eq!(strs(&m, "scope_version")[0], s("0.1"));
        assert_eq!(strs(&m, "scope_version")[3], None);
        assert_eq!(
            map_at(&m, "resource_attributes", 5),
            vec![("service.name".to_string(), s("checkout"))]
        );

        let x = table(&tables, Table::Exemplars);
        assert_eq!(x.num_rows(), 2);
        assert_eq!(strs(&x, "metric_name"), vec![s("cart.value"); 2]);
        assert_eq!(strs(&x, "trace_id"), vec![s(TRACE), None]);
        assert_eq!(strs(&x, "span_id"), vec![s(SPAN), None]);
        assert_eq!(f64s(&x, "value"), vec![Some(12.5), Some(4.0)]);
        assert_eq!(
            micros(&x, "timestamp"),
            vec![
                Some(((T0 + 59_000 * MS) / 1000) as i64),
                Some(((T0 + 59_500 * MS) / 1000) as i64)
            ]
        );
        assert_eq!(
            micros(&x, "point_timestamp"),
            vec![Some(((T0 + 60_000 * MS) / 1000) as i64); 2]
        );
        assert_eq!(
            map_at(&x, "filtered_attributes", 0),
            vec![("user.tier".to_string(), s("gold"))]
        );
        assert_eq!(
            map_at(&x, "point_attributes", 1),
            vec![("cart.stage".to_string(), s("browse"))]
        );
        assert_eq!(strs(&x, "service_name"), vec![s("checkout"); 2]);
        assert_eq!(tables[Table::Traces].len(), 0);
    }

    fn logs_message(record: LogRecord) -> LogsData {
        LogsData {
            resource_logs: vec![ResourceLogs {
                resource: resource("checkout"),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn sniff_tells_the_three_kinds_apart() {
        assert_eq!(
            sniff(&traces_message().encode_to_vec()),
            MessageKind::Traces
        );
        assert_eq!(
            sniff(&metrics_message().encode_to_vec()),
            MessageKind::Metrics
        );
        let log = LogRecord {
            time_unix_nano: T0,
            severity_text: "INFO".into(),
            body: Some(any(text("cart abandoned"))),
            ..Default::default()
        };
        assert_eq!(sniff(&logs_message(log).encode_to_vec()), MessageKind::Logs);
        assert_eq!(sniff(&[]), MessageKind::Unknown);
        assert_eq!(
            sniff(&TracesData::default().encode_to_vec()),
            MessageKind::Unknown
        );
        // Resources without records say nothing.
        let bare = TracesData {
            resource_spans: vec![ResourceSpans {
                resource: resource("checkout"),
                ..Default::default()
            }],
        };
        assert_eq!(sniff(&bare.encode_to_vec()), MessageKind::Unknown);
        // Records without their timestamps, by their other fields.
        let untimed_log = LogRecord {
            severity_number: 9,
            body: Some(any(text("x"))),
            ..Default::default()
        };
        assert_eq!(
            sniff(&logs_message(untimed_log).encode_to_vec()),
            MessageKind::Logs
        );
        let untimed_span = TracesData {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: tid(TRACE),
                        span_id: sid(SPAN),
                        name: "x".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(sniff(&untimed_span.encode_to_vec()), MessageKind::Traces);
        let histogram_only = MetricsData {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "checkout.duration".into(),
                        data: Some(metric::Data::Histogram(Histogram::default())),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(sniff(&histogram_only.encode_to_vec()), MessageKind::Metrics);
        assert_eq!(sniff(b"{\"resourceSpans\":[]}"), MessageKind::Unknown);
    }

    #[test]
    fn log_records_fill_the_logs_table() {
        let log = LogRecord {
            time_unix_nano: T0,
            observed_time_unix_nano: T0 + 5_000,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(any(text("payment declined"))),
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            attributes: vec![kv("cart.id", text("c-1"))],
            ..Default::default()
        };
        let mut b = TableBuilders::default();
        let mut bad = Vec::new();
        let counts = decode_message(
            &logs_message(log).encode_to_vec(),
            &mut b,
            &mut bad,
            &Projection::default(),
        )
        .unwrap();
        assert_eq!(
            counts,
            DocCounts {
                spans: 0,
                points: 0,
                logs: 1
            }
        );
        assert!(bad.is_empty());
        let tables = b.take();
        let l = table(&tables, Table::Logs);
        assert_eq!(l.num_rows(), 1);
        assert_eq!(strs(&l, "body"), vec![s("payment declined")]);
        assert_eq!(strs(&l, "severity_text"), vec![s("ERROR")]);
        assert_eq!(strs(&l, "trace_id"), vec![Some("ab".repeat(16))]);
        assert_eq!(strs(&l, "span_id"), vec![Some("cd".repeat(8))]);
        assert_eq!(strs(&l, "service_name"), vec![s("checkout")]);
        let sev =
            col(&l, "severity_number").as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        assert_eq!(sev.value(0), 17);
        // An unknown severity skips the record, named.
        let wrong = LogRecord {
            severity_number: 31,
            ..Default::default()
        };
        let mut b = TableBuilders::default();
        decode_message(
            &logs_message(wrong).encode_to_vec(),
            &mut b,
            &mut bad,
            &Projection::default(),
        )
        .unwrap();
        assert_eq!(b.rows(), 0);
        assert_eq!(
            bad,
            vec!["log record skipped: severityNumber: unknown severity number 31".to_string()]
        );
        bad.clear();
        // Empty and record-less messages load nothing and are not errors.
        assert_eq!(
            decode_message(&[], &mut b, &mut bad, &Projection::default()),
            Ok(DocCounts::default())
        );
        assert_eq!(b.rows(), 0);
    }

    #[test]
    fn a_malformed_message_leaves_nothing_behind() {
        let mut b = TableBuilders::default();
        let mut bad = vec!["earlier".to_string()];
        // One good message first: it must survive the rollbacks.
        decode_message(
            &traces_message().encode_to_vec(),
            &mut b,
            &mut bad,
            &Projection::default(),
        )
        .unwrap();
        let bad_after_good = bad.clone();
        assert_eq!(b.rows(), 3 + 3 + 1);

        // Truncated inside the last resource: the first resource was already appended.
        let bytes = traces_message().encode_to_vec();
        for cut in [bytes.len() - 3, bytes.len() / 2, 5] {
            let err = decode_message(&bytes[..cut], &mut b, &mut bad, &Projection::default())
                .unwrap_err();
            assert!(!err.is_empty());
            assert_eq!(bad, bad_after_good, "cut at {cut}");
            assert_eq!(b.rows(), 7, "cut at {cut}: {err}");
        }

        // Lengths intact but a string that is not UTF-8 in the second resource.
        let mut bytes = traces_message().encode_to_vec();
        let at = bytes
            .windows(17)
            .position(|w| w == b"payment.authorize")
            .unwrap();
        bytes[at] = 0xff;
        let err = decode_message(&bytes, &mut b, &mut bad, &Projection::default()).unwrap_err();
        assert!(err.contains("UTF-8"), "{err}");
        assert_eq!(b.rows(), 7);
        assert_eq!(bad, bad_after_good);

        // Not protobuf at all.
        assert!(decode_message(b"\xff\xff\xff", &mut b, &mut bad, &Projection::default()).is_err());

        let tables = b.take();
        let t = table(&tables, Table::Traces);
        assert_eq!(t.num_rows(), 3);
        assert_eq!(
            strs(&t, "service_name"),
            vec![s("checkout"), s("checkout"), s("payments")]
        );
        assert_eq!(table(&tables, Table::SpanEvents).num_rows(), 3);
        assert_eq!(table(&tables, Table::SpanLinks).num_rows(), 1);
    }

    #[test]
    fn a_truncated_message_alone_gives_no_rows() {
        let bytes = metrics_message().encode_to_vec();
        let mut b = TableBuilders::default();
        let mut bad = Vec::new();
        assert!(decode_message(
            &bytes[..bytes.len() - 1],
            &mut b,
            &mut bad,
            &Projection::default()
        )
        .is_err());
        assert!(bad.is_empty());
        let tables = b.take();
        assert!(tables.values().all(|t| t.iter().all(|b| b.num_rows() == 0)));
    }

    // ---- fixtures for the integration tests ----

    const FIXTURE_T0: u64 = 1_714_564_800_000_000_000; // 2024-05-01T12:00:00Z

    /// Two TracesData of two spans each and one MetricsData of one sum point.
    fn fixture_messages() -> Vec<Vec<u8>> {
        let trace_frame = |i: u64, trace: &str, root: &str, child: &str| {
            let t0 = FIXTURE_T0 + i * 60_000 * MS;
            let cart = || vec![kv("cart.id", text("cart-42"))];
            TracesData {
                resource_spans: vec![ResourceSpans {
                    resource: resource("checkout"),
                    scope_spans: vec![ScopeSpans {
                        scope: scope("cartscope.fixtures", "1.0.0"),
                        spans: vec![
                            Span {
                                trace_id: tid(trace),
                                span_id: sid(root),
                                name: "cart.begin_checkout".into(),
                                kind: span::SpanKind::Server as i32,
                                start_time_unix_nano: t0,
                                end_time_unix_nano: t0 + 2700 * MS,
                                attributes: cart(),
                                ..Default::default()
                            },
                            Span {
                                trace_id: tid(trace),
                                span_id: sid(child),
                                parent_span_id: sid(root),
                                name: "shipping.calculate_rates".into(),
                                kind: span::SpanKind::Client as i32,
                                start_time_unix_nano: t0 + 100 * MS,
                                end_time_unix_nano: t0 + 2600 * MS,
                                attributes: cart(),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .encode_to_vec()
        };
        let metrics = MetricsData {
            resource_metrics: vec![ResourceMetrics {
                resource: resource("checkout"),
                scope_metrics: vec![ScopeMetrics {
                    scope: scope("cartscope.fixtures", "1.0.0"),
                    metrics: vec![Metric {
                        name: "cart.state.transitions".into(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: vec![NumberDataPoint {
                                attributes: vec![kv("cart.stage", text("abandoned"))],
                                start_time_unix_nano: FIXTURE_T0,
                                time_unix_nano: FIXTURE_T0 + 120_000 * MS,
                                value: Some(number_data_point::Value::AsInt(3)),
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        vec![
            trace_frame(
                0,
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
                "53995c3f42cd8ad8",
            ),
            trace_frame(
                1,
                "4bf92f3577b34da6a3ce929d0e0e4737",
                "00f067aa0ba902b8",
                "53995c3f42cd8ad9",
            ),
            metrics,
        ]
    }

    fn framed(payloads: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            out.extend_from_slice(&u32::try_from(p.len()).unwrap().to_be_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    fn unframe(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let n = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
            out.push(bytes[4..4 + n].to_vec());
            bytes = &bytes[4 + n..];
        }
        out
    }

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proto")
    }

    /// Regenerates the fixtures: `cargo test --lib otlp::proto -- --ignored write_proto_fixtures`.
    #[test]
    #[ignore]
    fn write_proto_fixtures() {
        let msgs = fixture_messages();
        let zstd_frames: Vec<Vec<u8>> = msgs
            .iter()
            .map(|m| zstd::encode_all(&m[..], 3).unwrap())
            .collect();
        let dir = fixture_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("traces-framed.binpb"), framed(&msgs)).unwrap();
        std::fs::write(dir.join("traces-framed-zstd.binpb"), framed(&zstd_frames)).unwrap();
    }

    /// The fixtures' messages load as the README says, and the files on disk (when present)
    /// hold exactly them.
    #[test]
    fn fixture_messages_load() {
        let msgs = fixture_messages();
        let mut b = TableBuilders::default();
        let mut bad = Vec::new();
        let mut total = DocCounts::default();
        let kinds: Vec<MessageKind> = msgs.iter().map(|m| sniff(m)).collect();
        assert_eq!(
            kinds,
            vec![
                MessageKind::Traces,
                MessageKind::Traces,
                MessageKind::Metrics
            ]
        );
        for m in &msgs {
            let c = decode_message(m, &mut b, &mut bad, &Projection::default()).unwrap();
            total.spans += c.spans;
            total.points += c.points;
        }
        assert!(bad.is_empty());
        assert_eq!((total.spans, total.points), (4, 1));
        let tables = b.take();
        let t = table(&tables, Table::Traces);
        assert_eq!(strs(&t, "service_name"), vec![s("checkout"); 4]);
        assert_eq!(
            f64s(&t, "duration_ms"),
            vec![Some(2700.0), Some(2500.0), Some(2700.0), Some(2500.0)]
        );
        assert_eq!(strs(&t, "operation_name")[1], s("shipping.calculate_rates"));
        for row in 0..4 {
            assert_eq!(get(&map_at(&t, "attributes", row), "cart.id"), s("cart-42"));
        }
        let m = table(&tables, Table::Metrics);
        assert_eq!(strs(&m, "name"), vec![s("cart.state.transitions")]);
        assert_eq!(i64s(&m, "int_value"), vec![Some(3)]);
        assert_eq!(
            map_at(&m, "attributes", 0),
            vec![("cart.stage".to_string(), s("abandoned"))]
        );

        let dir = fixture_dir();
        if let Ok(plain) = std::fs::read(dir.join("traces-framed.binpb")) {
            assert_eq!(
                unframe(&plain),
                msgs,
                "regenerate with write_proto_fixtures"
            );
        }
        if let Ok(z) = std::fs::read(dir.join("traces-framed-zstd.binpb")) {
            let payloads: Vec<Vec<u8>> = unframe(&z)
                .iter()
                .map(|f| zstd::decode_all(&f[..]).unwrap())
                .collect();
            assert_eq!(payloads, msgs, "regenerate with write_proto_fixtures");
        }
    }
}
