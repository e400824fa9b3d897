//! Arrow builders for the canonical tables, shared by every reader (JSON, protobuf) and by the
//! replay when it writes derived rows.
//!
//! Readers fill small reusable records (`SpanRec`, `PointRec`, ...) and append them here, so
//! the column order of `tables/schema.rs` is known in exactly one place outside it. Resource and
//! scope columns are *deferred*: OTLP may name a span's resource after its spans, so the
//! per-span columns are appended as each span ends and the resource/scope columns are filled
//! `n` times when their object ends. Between two top-level documents every column has the same
//! length, which is what `mark`/`rollback_to` rely on to drop a malformed document whole.

use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int32Builder,
    Int64Builder, ListBuilder, MapBuilder, MapFieldNames, StringArray, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::Field;
use datafusion::arrow::record_batch::RecordBatch;

use crate::tables::schema::{PerTable, Table};

/// A 16-byte trace id or 8-byte span id, `None` when empty or all zero.
pub type TraceId = Option<[u8; 16]>;
pub type SpanId = Option<[u8; 8]>;

/// Attributes of one span, event, point or resource, kept in one reusable buffer so that
/// parsing allocates nothing per attribute and a bad record leaves no trace in the builders.
#[derive(Default, Debug, Clone)]
pub struct Attrs {
    pub buf: String,
    entries: Vec<AttrEntry>,
}

#[derive(Debug, Clone, Copy)]
struct AttrEntry {
    key: (u32, u32),
    value: Option<(u32, u32)>,
}

impl Attrs {
    pub fn clear(&mut self) {
        self.buf.clear();
        self.entries.clear();
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Records an entry whose key and value were already written into `buf` (JSON may
    /// give an attribute's value before its key). `value == None` is a null value.
    pub fn push_ranges(&mut self, key: (usize, usize), value: Option<(usize, usize)>) {
        self.entries.push(AttrEntry {
            key: (key.0 as u32, key.1 as u32),
            value: value.map(|(a, b)| (a as u32, b as u32)),
        });
    }
    pub fn push(&mut self, key: &str, value: Option<&str>) {
        let k0 = self.buf.len();
        self.buf.push_str(key);
        let k1 = self.buf.len();
        let value = value.map(|v| {
            self.buf.push_str(v);
            (k1, self.buf.len())
        });
        self.push_ranges((k0, k1), value);
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.entries.iter().map(move |e| {
            (
                &self.buf[e.key.0 as usize..e.key.1 as usize],
                e.value.map(|(s, t)| &self.buf[s as usize..t as usize]),
            )
        })
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).and_then(|(_, v)| v)
    }
}

type AttrMapBuilder = MapBuilder<StringBuilder, StringBuilder>;

fn map_field_names() -> MapFieldNames {
    MapFieldNames {
        entry: "entries".into(),
        key: "keys".into(),
        value: "values".into(),
    }
}

fn new_map() -> AttrMapBuilder {
    MapBuilder::new(
        Some(map_field_names()),
        StringBuilder::new(),
        StringBuilder::new(),
    )
}

fn append_map(b: &mut AttrMapBuilder, attrs: &Attrs) {
    for (k, v) in attrs.iter() {
        b.keys().append_value(k);
        b.values().append_option(v);
    }
    b.append(true)
        .expect("map keys and values are appended in pairs");
}

/// Appends the same map `n` times: a resource's or a scope's attributes, repeated on each of
/// its spans. The keys and values are built once and copied as whole arrays, rather than
/// value by value: the 10k-cart traces.jsonl, 8 resource attributes, ingests in 2.333
/// billion instructions against 2.378 (callgrind), to the same bytes.
fn append_map_n(b: &mut AttrMapBuilder, attrs: &Attrs, n: usize) {
    if n < 2 || attrs.is_empty() {
        for _ in 0..n {
            append_map(b, attrs);
        }
        return;
    }
    let keys = StringArray::from_iter_values(attrs.iter().map(|(k, _)| k));
    let values: StringArray = attrs.iter().map(|(_, v)| v).collect();
    for _ in 0..n {
        // As append_value, these fail only past 2 GiB of strings in one batch.
        b.keys()
            .append_array(&keys)
            .expect("attribute keys overflow a batch");
        b.values()
            .append_array(&values)
            .expect("attribute values overflow a batch");
        b.append(true)
            .expect("map keys and values are appended in pairs");
    }
}

/// Appends `v` (or null) `n` times.
fn append_str_n(b: &mut StringBuilder, v: Option<&str>, n: usize) {
    match v {
        Some(v) => b.append_value_n(v, n),
        None => b.append_nulls(n),
    }
}

fn new_ts() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

fn new_list_i64() -> ListBuilder<Int64Builder> {
    ListBuilder::new(Int64Builder::new()).with_field(Arc::new(Field::new(
        "item",
        datafusion::arrow::datatypes::DataType::Int64,
        true,
    )))
}
fn new_list_f64() -> ListBuilder<Float64Builder> {
    ListBuilder::new(Float64Builder::new()).with_field(Arc::new(Field::new(
        "item",
        datafusion::arrow::datatypes::DataType::Float64,
        true,
    )))
}

/// Nanoseconds since the epoch to microseconds; 0 (unset in OTLP) is null.
pub fn nanos_to_micros(ns: Option<u64>) -> Option<i64> {
    match ns {
        None | Some(0) => None,
        Some(n) => Some((n / 1000) as i64),
    }
}

/// An id in lowercase hex into `out`; the number of bytes written.
pub fn hex_id<const N: usize>(id: &Option<[u8; N]>, out: &mut [u8; 32]) -> Option<usize> {
    let bytes = id.as_ref()?;
    const_hex::encode_to_slice(bytes, &mut out[..2 * N]).ok()?;
    Some(2 * N)
}

fn append_id<const N: usize>(b: &mut StringBuilder, id: &Option<[u8; N]>) {
    let mut buf = [0u8; 32];
    match hex_id(id, &mut buf) {
        // Hex digits are ASCII, so this is valid UTF-8.
        Some(n) => b.append_value(std::str::from_utf8(&buf[..n]).unwrap_or_default()),
        None => b.append_null(),
    }
}

/// Span kind as stored: lowercase words, never the enum names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    pub fn from_i64(v: i64) -> Option<SpanKind> {
        Some(match v {
            0 => SpanKind::Unspecified,
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => return None,
        })
    }
    /// Accepts `SPAN_KIND_SERVER`, `SERVER`, `Server`, `server`.
    pub fn from_name(s: &str) -> Option<SpanKind> {
        let s = s.strip_prefix("SPAN_KIND_").unwrap_or(s);
        Some(match s.to_ascii_lowercase().as_str() {
            "unspecified" | "" => SpanKind::Unspecified,
            "internal" => SpanKind::Internal,
            "server" => SpanKind::Server,
            "client" => SpanKind::Client,
            "producer" => SpanKind::Producer,
            "consumer" => SpanKind::Consumer,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

/// Written and read as the stored word (`server`); read from any spelling `from_name` takes.
impl serde::Serialize for SpanKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for SpanKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SpanKind, D::Error> {
        let s = String::deserialize(d)?;
        SpanKind::from_name(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown span kind '{s}' (internal, server, client, producer or consumer)"
            ))
        })
    }
}

/// Written and read as the stored word (`error`); read from any spelling `from_name` takes.
impl serde::Serialize for StatusCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for StatusCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StatusCode, D::Error> {
        let s = String::deserialize(d)?;
        StatusCode::from_name(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown status '{s}' (ok, error or unset)"))
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn from_i64(v: i64) -> Option<StatusCode> {
        Some(match v {
            0 => StatusCode::Unset,
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => return None,
        })
    }
    /// Accepts `STATUS_CODE_ERROR`, `ERROR`, `Error`, `error` (ClickHouse writes `Error`).
    pub fn from_name(s: &str) -> Option<StatusCode> {
        let s = s.strip_prefix("STATUS_CODE_").unwrap_or(s);
        Some(match s.to_ascii_lowercase().as_str() {
            "unset" | "" => StatusCode::Unset,
            "ok" => StatusCode::Ok,
            "error" => StatusCode::Error,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

/// One span's own fields; attributes live in a separate `Attrs`.
#[derive(Debug, Default, Clone)]
pub struct SpanRec {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: SpanId,
    pub trace_state: Option<String>,
    pub name: Option<String>,
    pub kind: SpanKind,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    pub status_code: StatusCode,
    pub status_message: Option<String>,
    pub flags: Option<i64>,
    pub dropped_attributes_count: Option<i64>,
    pub dropped_events_count: Option<i64>,
    pub dropped_links_count: Option<i64>,
}

impl SpanRec {
    pub fn duration_ms(&self) -> Option<f64> {
        match (self.start_ns, self.end_ns) {
            (Some(s), Some(e)) if s != 0 && e != 0 => Some((e as i128 - s as i128) as f64 / 1e6),
            _ => None,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct EventRec {
    pub time_ns: Option<u64>,
    pub name: Option<String>,
    pub attrs: Attrs,
    pub dropped_attributes_count: Option<i64>,
}

#[derive(Debug, Default, Clone)]
pub struct LinkRec {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub trace_state: Option<String>,
    pub attrs: Attrs,
    pub flags: Option<i64>,
    pub dropped_attributes_count: Option<i64>,
}

/// The columns of `traces` a reader may leave all null because the question does not read
/// them (`read::projection` decides); every other column is always filled. They are the span
/// fields the replay does not look at: a raw export read for `detect` builds none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, enum_map::Enum)]
pub enum SpanColumn {
    ParentSpanId,
    TraceState,
    SpanKind,
    StatusMessage,
    ResourceAttributes,
    ScopeName,
    ScopeVersion,
    ScopeAttributes,
    Flags,
    DroppedAttributesCount,
    DroppedEventsCount,
    DroppedLinksCount,
}

impl SpanColumn {
    pub const ALL: [SpanColumn; 12] = [
        SpanColumn::ParentSpanId,
        SpanColumn::TraceState,
        SpanColumn::SpanKind,
        SpanColumn::StatusMessage,
        SpanColumn::ResourceAttributes,
        SpanColumn::ScopeName,
        SpanColumn::ScopeVersion,
        SpanColumn::ScopeAttributes,
        SpanColumn::Flags,
        SpanColumn::DroppedAttributesCount,
        SpanColumn::DroppedEventsCount,
        SpanColumn::DroppedLinksCount,
    ];

    /// Its name in `tables/schema.rs`.
    pub fn name(self) -> &'static str {
        match self {
            SpanColumn::ParentSpanId => "parent_span_id",
            SpanColumn::TraceState => "trace_state",
            SpanColumn::SpanKind => "span_kind",
            SpanColumn::StatusMessage => "status_message",
            SpanColumn::ResourceAttributes => "resource_attributes",
            SpanColumn::ScopeName => "scope_name",
            SpanColumn::ScopeVersion => "scope_version",
            SpanColumn::ScopeAttributes => "scope_attributes",
            SpanColumn::Flags => "flags",
            SpanColumn::DroppedAttributesCount => "dropped_attributes_count",
            SpanColumn::DroppedEventsCount => "dropped_events_count",
            SpanColumn::DroppedLinksCount => "dropped_links_count",
        }
    }
}

/// Which of the `SpanColumn`s are filled; all of them by default.
pub type SpanColumns = enum_map::EnumMap<SpanColumn, bool>;

/// Every `SpanColumn` filled.
pub fn all_span_columns() -> SpanColumns {
    SpanColumns::from_fn(|_| true)
}

pub struct TracesBuilder {
    /// The optional columns filled; the others are finished as all-null arrays.
    fills: SpanColumns,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    trace_state: StringBuilder,
    operation_name: StringBuilder,
    service_name: StringBuilder,
    span_kind: StringBuilder,
    start_time: TimestampMicrosecondBuilder,
    end_time: TimestampMicrosecondBuilder,
    duration_ms: Float64Builder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    attributes: AttrMapBuilder,
    resource_attributes: AttrMapBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attributes: AttrMapBuilder,
    flags: Int64Builder,
    dropped_attributes_count: Int64Builder,
    dropped_events_count: Int64Builder,
    dropped_links_count: Int64Builder,
    // Links and events need their span's ids and start time, known when the span ends.
    events: SpanEventsBuilder,
    links: SpanLinksBuilder,
}

/// What one string column of a batch took: its values and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct StrSize {
    items: usize,
    bytes: usize,
}

impl StrSize {
    fn of(b: &StringBuilder) -> StrSize {
        StrSize {
            items: b.len(),
            bytes: b.values_slice().len(),
        }
    }

    fn builder(self, scale: &dyn Fn(usize) -> usize) -> StringBuilder {
        StringBuilder::with_capacity(scale(self.items), scale(self.bytes))
    }
}

/// What a map column of a batch took: its maps, keys and values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct MapSize {
    maps: usize,
    keys: StrSize,
    values: StrSize,
}

impl MapSize {
    fn of(b: &mut AttrMapBuilder) -> MapSize {
        MapSize {
            maps: b.len(),
            keys: StrSize::of(b.keys()),
            values: StrSize::of(b.values()),
        }
    }

    fn builder(self, scale: &dyn Fn(usize) -> usize) -> AttrMapBuilder {
        MapBuilder::with_capacity(
            Some(map_field_names()),
            self.keys.builder(scale),
            self.values.builder(scale),
            scale(self.maps),
        )
    }
}

/// What the spans of one batch took in the columns that hold a value per span (ids, names,
/// times, statuses, attributes), so that the next batch's builders start with room for
/// about as much (`TracesBuilder::sized_like`). Grown from nothing, each column's buffers
/// doubled a dozen times a batch, each time copied and faulted in again: about a twentieth
/// of a raw real-SDK detect's CPU (perf, the Python SDK's 100k-cart file).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpanSizes {
    spans: usize,
    trace_id: StrSize,
    span_id: StrSize,
    parent_span_id: StrSize,
    operation_name: StrSize,
    service_name: StrSize,
    span_kind: StrSize,
    status_code: StrSize,
    status_message: StrSize,
    attributes: MapSize,
    resource_attributes: MapSize,
}

impl Default for TracesBuilder {
    fn default() -> Self {
        TracesBuilder {
            fills: all_span_columns(),
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            parent_span_id: StringBuilder::new(),
            trace_state: StringBuilder::new(),
            operation_name: StringBuilder::new(),
            service_name: StringBuilder::new(),
            span_kind: StringBuilder::new(),
            start_time: new_ts(),
            end_time: new_ts(),
            duration_ms: Float64Builder::new(),
            status_code: StringBuilder::new(),
            status_message: StringBuilder::new(),
            attributes: new_map(),
            resource_attributes: new_map(),
            scope_name: StringBuilder::new(),
            scope_version: StringBuilder::new(),
            scope_attributes: new_map(),
            flags: Int64Builder::new(),
            dropped_attributes_count: Int64Builder::new(),
            dropped_events_count: Int64Builder::new(),
            dropped_links_count: Int64Builder::new(),
            events: SpanEventsBuilder::default(),
            links: SpanLinksBuilder::default(),
        }
    }
}

fn opt_str(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

impl TracesBuilder {
    /// The optional columns this builder fills.
    pub fn fills(&self) -> SpanColumns {
        self.fills
    }

    /// What the spans appended so far take (`SpanSizes`): since the last `finish`, so after a
    /// rollback those appended since it.
    pub fn sizes(&mut self) -> SpanSizes {
        SpanSizes {
            spans: self.trace_id.len(),
            trace_id: StrSize::of(&self.trace_id),
            span_id: StrSize::of(&self.span_id),
            parent_span_id: StrSize::of(&self.parent_span_id),
            operation_name: StrSize::of(&self.operation_name),
            service_name: StrSize::of(&self.service_name),
            span_kind: StrSize::of(&self.span_kind),
            status_code: StrSize::of(&self.status_code),
            status_message: StrSize::of(&self.status_message),
            attributes: MapSize::of(&mut self.attributes),
            resource_attributes: MapSize::of(&mut self.resource_attributes),
        }
    }

    /// A builder filling `fills`, with room in its per-span columns for `scale` times what
    /// `sizes` took (a sixteenth more, so that a batch about as large as the last one grows
    /// no buffer); the other columns grow as they fill. `scale` is taken at most 1, so the
    /// room is never more than a sixteenth past what `sizes` took.
    pub fn sized_like(fills: SpanColumns, sizes: &SpanSizes, scale: f64) -> TracesBuilder {
        let scale = scale.min(1.0);
        let scale = |n: usize| (n as f64 * scale * (17.0 / 16.0)) as usize;
        let spans = scale(sizes.spans);
        TracesBuilder {
            fills,
            trace_id: sizes.trace_id.builder(&scale),
            span_id: sizes.span_id.builder(&scale),
            parent_span_id: sizes.parent_span_id.builder(&scale),
            operation_name: sizes.operation_name.builder(&scale),
            service_name: sizes.service_name.builder(&scale),
            span_kind: sizes.span_kind.builder(&scale),
            start_time: TimestampMicrosecondBuilder::with_capacity(spans).with_timezone("UTC"),
            end_time: TimestampMicrosecondBuilder::with_capacity(spans).with_timezone("UTC"),
            duration_ms: Float64Builder::with_capacity(spans),
            status_code: sizes.status_code.builder(&scale),
            status_message: sizes.status_message.builder(&scale),
            attributes: sizes.attributes.builder(&scale),
            resource_attributes: sizes.resource_attributes.builder(&scale),
            ..TracesBuilder::default()
        }
    }

    /// Spans appended (not yet finished into a batch).
    pub fn spans(&self) -> usize {
        self.trace_id.len()
    }

    /// Appends one span with its events and links. Resource and scope columns follow via
    /// `end_scope` and `end_resource`.
    pub fn append_span(
        &mut self,
        s: &SpanRec,
        attrs: &Attrs,
        events: &[EventRec],
        links: &[LinkRec],
    ) {
        use SpanColumn as C;
        let fills = self.fills;
        append_id(&mut self.trace_id, &s.trace_id);
        append_id(&mut self.span_id, &s.span_id);
        if fills[C::ParentSpanId] {
            append_id(&mut self.parent_span_id, &s.parent_span_id);
        }
        if fills[C::TraceState] {
            self.trace_state.append_option(opt_str(&s.trace_state));
        }
        self.operation_name.append_option(s.name.as_deref());
        if fills[C::SpanKind] {
            self.span_kind.append_value(s.kind.as_str());
        }
        let start = nanos_to_micros(s.start_ns);
        self.start_time.append_option(start);
        self.end_time.append_option(nanos_to_micros(s.end_ns));
        self.duration_ms.append_option(s.duration_ms());
        self.status_code.append_value(s.status_code.as_str());
        if fills[C::StatusMessage] {
            self.status_message
                .append_option(opt_str(&s.status_message));
        }
        append_map(&mut self.attributes, attrs);
        if fills[C::Flags] {
            self.flags.append_option(s.flags);
        }
        if fills[C::DroppedAttributesCount] {
            self.dropped_attributes_count
                .append_option(s.dropped_attributes_count);
        }
        if fills[C::DroppedEventsCount] {
            self.dropped_events_count
                .append_option(s.dropped_events_count);
        }
        if fills[C::DroppedLinksCount] {
            self.dropped_links_count
                .append_option(s.dropped_links_count);
        }
        for e in events {
            self.events.append(s, e);
        }
        for l in links {
            self.links.append(s, start, l);
        }
    }

    /// Fills the scope columns of the last `n` spans.
    pub fn end_scope(
        &mut self,
        n: usize,
        name: Option<&str>,
        version: Option<&str>,
        attrs: &Attrs,
    ) {
        let name = name.filter(|s| !s.is_empty());
        let version = version.filter(|s| !s.is_empty());
        if self.fills[SpanColumn::ScopeName] {
            append_str_n(&mut self.scope_name, name, n);
        }
        if self.fills[SpanColumn::ScopeVersion] {
            append_str_n(&mut self.scope_version, version, n);
        }
        if self.fills[SpanColumn::ScopeAttributes] {
            append_map_n(&mut self.scope_attributes, attrs, n);
        }
    }

    /// Fills the resource columns of the last `n` spans and `n_events` events.
    pub fn end_resource(&mut self, n: usize, n_events: usize, attrs: &Attrs) {
        let service = attrs.get("service.name");
        append_str_n(&mut self.service_name, service, n);
        if self.fills[SpanColumn::ResourceAttributes] {
            append_map_n(&mut self.resource_attributes, attrs, n);
        }
        append_str_n(&mut self.events.service_name, service, n_events);
    }

    pub fn events_len(&self) -> usize {
        self.events.trace_id.len()
    }

    /// Finishes the three span tables: traces, span_events, span_links.
    pub fn finish(&mut self) -> [RecordBatch; 3] {
        use SpanColumn as C;
        let rows = self.trace_id.len();
        let fills = self.fills;
        // A column not filled is all null, of the schema's type.
        let or_null = |c: C, b: &mut dyn ArrayBuilder| -> ArrayRef {
            if fills[c] {
                b.finish()
            } else {
                let schema = Table::Traces.schema();
                let field = schema
                    .field_with_name(c.name())
                    .expect("every SpanColumn is a column of traces");
                new_null_array(field.data_type(), rows)
            }
        };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            or_null(C::ParentSpanId, &mut self.parent_span_id),
            or_null(C::TraceState, &mut self.trace_state),
            Arc::new(self.operation_name.finish()),
            Arc::new(self.service_name.finish()),
            or_null(C::SpanKind, &mut self.span_kind),
            Arc::new(self.start_time.finish()),
            Arc::new(self.end_time.finish()),
            Arc::new(self.duration_ms.finish()),
            Arc::new(self.status_code.finish()),
            or_null(C::StatusMessage, &mut self.status_message),
            Arc::new(self.attributes.finish()),
            or_null(C::ResourceAttributes, &mut self.resource_attributes),
            or_null(C::ScopeName, &mut self.scope_name),
            or_null(C::ScopeVersion, &mut self.scope_version),
            or_null(C::ScopeAttributes, &mut self.scope_attributes),
            or_null(C::Flags, &mut self.flags),
            or_null(
                C::DroppedAttributesCount,
                &mut self.dropped_attributes_count,
            ),
            or_null(C::DroppedEventsCount, &mut self.dropped_events_count),
            or_null(C::DroppedLinksCount, &mut self.dropped_links_count),
        ];
        [
            batch(Table::Traces, cols),
            self.events.finish(),
            self.links.finish(),
        ]
    }
}

fn batch(table: Table, cols: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(table.schema(), cols).unwrap_or_else(|e| {
        // Builders and schema are defined side by side; a mismatch is a programming error
        // that every test would hit at once.
        panic!(
            "builder for {} does not match its schema: {e}",
            table.name()
        )
    })
}

struct SpanEventsBuilder {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    timestamp: TimestampMicrosecondBuilder,
    name: StringBuilder,
    attributes: AttrMapBuilder,
    dropped_attributes_count: Int64Builder,
    service_name: StringBuilder,
}

impl Default for SpanEventsBuilder {
    fn default() -> Self {
        SpanEventsBuilder {
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            timestamp: new_ts(),
            name: StringBuilder::new(),
            attributes: new_map(),
            dropped_attributes_count: Int64Builder::new(),
            service_name: StringBuilder::new(),
        }
    }
}

impl SpanEventsBuilder {
    fn append(&mut self, s: &SpanRec, e: &EventRec) {
        append_id(&mut self.trace_id, &s.trace_id);
        append_id(&mut self.span_id, &s.span_id);
        self.timestamp.append_option(nanos_to_micros(e.time_ns));
        self.name.append_option(e.name.as_deref());
        append_map(&mut self.attributes, &e.attrs);
        self.dropped_attributes_count
            .append_option(e.dropped_attributes_count);
    }
    fn finish(&mut self) -> RecordBatch {
        batch(
            Table::SpanEvents,
            vec![
                Arc::new(self.trace_id.finish()),
                Arc::new(self.span_id.finish()),
                Arc::new(self.timestamp.finish()),
                Arc::new(self.name.finish()),
                Arc::new(self.attributes.finish()),
                Arc::new(self.dropped_attributes_count.finish()),
                Arc::new(self.service_name.finish()),
            ],
        )
    }
}

struct SpanLinksBuilder {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    span_start_time: TimestampMicrosecondBuilder,
    linked_trace_id: StringBuilder,
    linked_span_id: StringBuilder,
    trace_state: StringBuilder,
    attributes: AttrMapBuilder,
    flags: Int64Builder,
    dropped_attributes_count: Int64Builder,
}

impl Default for SpanLinksBuilder {
    fn default() -> Self {
        SpanLinksBuilder {
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            span_start_time: new_ts(),
            linked_trace_id: StringBuilder::new(),
            linked_span_id: StringBuilder::new(),
            trace_state: StringBuilder::new(),
            attributes: new_map(),
            flags: Int64Builder::new(),
            dropped_attributes_count: Int64Builder::new(),
        }
    }
}

impl SpanLinksBuilder {
    fn append(&mut self, s: &SpanRec, start: Option<i64>, l: &LinkRec) {
        append_id(&mut self.trace_id, &s.trace_id);
        append_id(&mut self.span_id, &s.span_id);
        self.span_start_time.append_option(start);
        append_id(&mut self.linked_trace_id, &l.trace_id);
        append_id(&mut self.linked_span_id, &l.span_id);
        self.trace_state.append_option(opt_str(&l.trace_state));
        append_map(&mut self.attributes, &l.attrs);
        self.flags.append_option(l.flags);
        self.dropped_attributes_count
            .append_option(l.dropped_attributes_count);
    }
    fn finish(&mut self) -> RecordBatch {
        batch(
            Table::SpanLinks,
            vec![
                Arc::new(self.trace_id.finish()),
                Arc::new(self.span_id.finish()),
                Arc::new(self.span_start_time.finish()),
                Arc::new(self.linked_trace_id.finish()),
                Arc::new(self.linked_span_id.finish()),
                Arc::new(self.trace_state.finish()),
                Arc::new(self.attributes.finish()),
                Arc::new(self.flags.finish()),
                Arc::new(self.dropped_attributes_count.finish()),
            ],
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricType {
    #[default]
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Gauge => "gauge",
            MetricType::Sum => "sum",
            MetricType::Histogram => "histogram",
            MetricType::ExponentialHistogram => "exponential_histogram",
            MetricType::Summary => "summary",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    Unspecified,
    Delta,
    Cumulative,
}

impl Temporality {
    pub fn from_i64(v: i64) -> Option<Temporality> {
        Some(match v {
            0 => Temporality::Unspecified,
            1 => Temporality::Delta,
            2 => Temporality::Cumulative,
            _ => return None,
        })
    }
    pub fn from_name(s: &str) -> Option<Temporality> {
        let s = s.strip_prefix("AGGREGATION_TEMPORALITY_").unwrap_or(s);
        Some(match s.to_ascii_lowercase().as_str() {
            "unspecified" | "" => Temporality::Unspecified,
            "delta" => Temporality::Delta,
            "cumulative" => Temporality::Cumulative,
            _ => return None,
        })
    }
    /// Unspecified is stored as null: the schema's values are 'delta' and 'cumulative'.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Temporality::Unspecified => None,
            Temporality::Delta => Some("delta"),
            Temporality::Cumulative => Some("cumulative"),
        }
    }
}

/// The metric a data point belongs to.
#[derive(Debug, Default, Clone)]
pub struct MetricHead {
    pub name: Option<String>,
    pub description: Option<String>,
    pub unit: Option<String>,
    pub metric_type: MetricType,
    pub is_monotonic: Option<bool>,
    pub temporality: Option<Temporality>,
}

#[derive(Debug, Default, Clone)]
pub struct ExemplarRec {
    pub time_ns: Option<u64>,
    pub value: Option<f64>,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub filtered_attrs: Attrs,
}

/// One data point of any metric type; fields a type does not have stay `None`.
#[derive(Debug, Default, Clone)]
pub struct PointRec {
    pub attrs: Attrs,
    pub start_ns: Option<u64>,
    pub time_ns: Option<u64>,
    pub value: Option<f64>,
    pub int_value: Option<i64>,
    pub count: Option<i64>,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub bucket_counts: Option<Vec<i64>>,
    pub explicit_bounds: Option<Vec<f64>>,
    pub scale: Option<i32>,
    pub zero_count: Option<i64>,
    pub zero_threshold: Option<f64>,
    pub positive: Option<(i32, Vec<i64>)>,
    pub negative: Option<(i32, Vec<i64>)>,
    pub quantiles: Option<Vec<(f64, f64)>>,
    pub flags: Option<i64>,
    pub exemplars: Vec<ExemplarRec>,
}

pub struct MetricsBuilder {
    name: StringBuilder,
    description: StringBuilder,
    unit: StringBuilder,
    metric_type: StringBuilder,
    timestamp: TimestampMicrosecondBuilder,
    start_timestamp: TimestampMicrosecondBuilder,
    value: Float64Builder,
    int_value: Int64Builder,
    count: Int64Builder,
    sum: Float64Builder,
    min: Float64Builder,
    max: Float64Builder,
    bucket_counts: ListBuilder<Int64Builder>,
    explicit_bounds: ListBuilder<Float64Builder>,
    scale: Int32Builder,
    zero_count: Int64Builder,
    zero_threshold: Float64Builder,
    positive_offset: Int32Builder,
    positive_bucket_counts: ListBuilder<Int64Builder>,
    negative_offset: Int32Builder,
    negative_bucket_counts: ListBuilder<Int64Builder>,
    quantiles: ListBuilder<Float64Builder>,
    quantile_values: ListBuilder<Float64Builder>,
    is_monotonic: BooleanBuilder,
    aggregation_temporality: StringBuilder,
    flags: Int64Builder,
    attributes: AttrMapBuilder,
    resource_attributes: AttrMapBuilder,
    service_name: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    exemplars: ExemplarsBuilder,
}

impl Default for MetricsBuilder {
    fn default() -> Self {
        MetricsBuilder {
            name: StringBuilder::new(),
            description: StringBuilder::new(),
            unit: StringBuilder::new(),
            metric_type: StringBuilder::new(),
            timestamp: new_ts(),
            start_timestamp: new_ts(),
            value: Float64Builder::new(),
            int_value: Int64Builder::new(),
            count: Int64Builder::new(),
            sum: Float64Builder::new(),
            min: Float64Builder::new(),
            max: Float64Builder::new(),
            bucket_counts: new_list_i64(),
            explicit_bounds: new_list_f64(),
            scale: Int32Builder::new(),
            zero_count: Int64Builder::new(),
            zero_threshold: Float64Builder::new(),
            positive_offset: Int32Builder::new(),
            positive_bucket_counts: new_list_i64(),
            negative_offset: Int32Builder::new(),
            negative_bucket_counts: new_list_i64(),
            quantiles: new_list_f64(),
            quantile_values: new_list_f64(),
            is_monotonic: BooleanBuilder::new(),
            aggregation_temporality: StringBuilder::new(),
            flags: Int64Builder::new(),
            attributes: new_map(),
            resource_attributes: new_map(),
            service_name: StringBuilder::new(),
            scope_name: StringBuilder::new(),
            scope_version: StringBuilder::new(),
            exemplars: ExemplarsBuilder::default(),
        }
    }
}

fn append_list_i64(b: &mut ListBuilder<Int64Builder>, v: Option<&[i64]>) {
    match v {
        Some(v) => {
            b.values().append_slice(v);
            b.append(true);
        }
        None => b.append(false),
    }
}
fn append_list_f64<I: IntoIterator<Item = f64>>(b: &mut ListBuilder<Float64Builder>, v: Option<I>) {
    match v {
        Some(v) => {
            for x in v {
                b.values().append_value(x);
            }
            b.append(true);
        }
        None => b.append(false),
    }
}

impl MetricsBuilder {
    /// Data points appended (not yet finished into a batch).
    pub fn points(&self) -> usize {
        self.name.len()
    }
    pub fn exemplars_len(&self) -> usize {
        self.exemplars.metric_name.len()
    }

    /// Appends one data point and its exemplars; resource and scope columns follow.
    pub fn append_point(&mut self, m: &MetricHead, p: &PointRec) {
        self.name.append_option(m.name.as_deref());
        self.description.append_option(opt_str(&m.description));
        self.unit.append_option(opt_str(&m.unit));
        self.metric_type.append_value(m.metric_type.as_str());
        let ts = nanos_to_micros(p.time_ns);
        self.timestamp.append_option(ts);
        self.start_timestamp
            .append_option(nanos_to_micros(p.start_ns));
        self.value.append_option(p.value);
        self.int_value.append_option(p.int_value);
        self.count.append_option(p.count);
        self.sum.append_option(p.sum);
        self.min.append_option(p.min);
        self.max.append_option(p.max);
        append_list_i64(&mut self.bucket_counts, p.bucket_counts.as_deref());
        append_list_f64(&mut self.explicit_bounds, p.explicit_bounds.clone());
        self.scale.append_option(p.scale);
        self.zero_count.append_option(p.zero_count);
        self.zero_threshold.append_option(p.zero_threshold);
        self.positive_offset
            .append_option(p.positive.as_ref().map(|b| b.0));
        append_list_i64(
            &mut self.positive_bucket_counts,
            p.positive.as_ref().map(|b| b.1.as_slice()),
        );
        self.negative_offset
            .append_option(p.negative.as_ref().map(|b| b.0));
        append_list_i64(
            &mut self.negative_bucket_counts,
            p.negative.as_ref().map(|b| b.1.as_slice()),
        );
        append_list_f64(
            &mut self.quantiles,
            p.quantiles.as_ref().map(|q| q.iter().map(|x| x.0)),
        );
        append_list_f64(
            &mut self.quantile_values,
            p.quantiles.as_ref().map(|q| q.iter().map(|x| x.1)),
        );
        self.is_monotonic.append_option(m.is_monotonic);
        self.aggregation_temporality
            .append_option(m.temporality.and_then(|t| t.as_str()));
        self.flags.append_option(p.flags);
        append_map(&mut self.attributes, &p.attrs);
        for e in &p.exemplars {
            self.exemplars.append(m, ts, &p.attrs, e);
        }
    }

    pub fn end_scope(&mut self, n: usize, name: Option<&str>, version: Option<&str>) {
        let name = name.filter(|s| !s.is_empty());
        let version = version.filter(|s| !s.is_empty());
        append_str_n(&mut self.scope_name, name, n);
        append_str_n(&mut self.scope_version, version, n);
    }

    pub fn end_resource(&mut self, n: usize, n_exemplars: usize, attrs: &Attrs) {
        let service = attrs.get("service.name");
        append_str_n(&mut self.service_name, service, n);
        append_map_n(&mut self.resource_attributes, attrs, n);
        append_str_n(&mut self.exemplars.service_name, service, n_exemplars);
    }

    /// Finishes metrics and exemplars.
    pub fn finish(&mut self) -> [RecordBatch; 2] {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.name.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(self.metric_type.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.start_timestamp.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.int_value.finish()),
            Arc::new(self.count.finish()),
            Arc::new(self.sum.finish()),
            Arc::new(self.min.finish()),
            Arc::new(self.max.finish()),
            Arc::new(self.bucket_counts.finish()),
            Arc::new(self.explicit_bounds.finish()),
            Arc::new(self.scale.finish()),
            Arc::new(self.zero_count.finish()),
            Arc::new(self.zero_threshold.finish()),
            Arc::new(self.positive_offset.finish()),
            Arc::new(self.positive_bucket_counts.finish()),
            Arc::new(self.negative_offset.finish()),
            Arc::new(self.negative_bucket_counts.finish()),
            Arc::new(self.quantiles.finish()),
            Arc::new(self.quantile_values.finish()),
            Arc::new(self.is_monotonic.finish()),
            Arc::new(self.aggregation_temporality.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.attributes.finish()),
            Arc::new(self.resource_attributes.finish()),
            Arc::new(self.service_name.finish()),
            Arc::new(self.scope_name.finish()),
            Arc::new(self.scope_version.finish()),
        ];
        [batch(Table::Metrics, cols), self.exemplars.finish()]
    }
}

struct ExemplarsBuilder {
    metric_name: StringBuilder,
    point_timestamp: TimestampMicrosecondBuilder,
    point_attributes: AttrMapBuilder,
    timestamp: TimestampMicrosecondBuilder,
    value: Float64Builder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    filtered_attributes: AttrMapBuilder,
    service_name: StringBuilder,
}

impl Default for ExemplarsBuilder {
    fn default() -> Self {
        ExemplarsBuilder {
            metric_name: StringBuilder::new(),
            point_timestamp: new_ts(),
            point_attributes: new_map(),
            timestamp: new_ts(),
            value: Float64Builder::new(),
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            filtered_attributes: new_map(),
            service_name: StringBuilder::new(),
        }
    }
}

impl ExemplarsBuilder {
    fn append(
        &mut self,
        m: &MetricHead,
        point_ts: Option<i64>,
        point_attrs: &Attrs,
        e: &ExemplarRec,
    ) {
        self.metric_name.append_option(m.name.as_deref());
        self.point_timestamp.append_option(point_ts);
        append_map(&mut self.point_attributes, point_attrs);
        self.timestamp.append_option(nanos_to_micros(e.time_ns));
        self.value.append_option(e.value);
        append_id(&mut self.trace_id, &e.trace_id);
        append_id(&mut self.span_id, &e.span_id);
        append_map(&mut self.filtered_attributes, &e.filtered_attrs);
    }
    fn finish(&mut self) -> RecordBatch {
        batch(
            Table::Exemplars,
            vec![
                Arc::new(self.metric_name.finish()),
                Arc::new(self.point_timestamp.finish()),
                Arc::new(self.point_attributes.finish()),
                Arc::new(self.timestamp.finish()),
                Arc::new(self.value.finish()),
                Arc::new(self.trace_id.finish()),
                Arc::new(self.span_id.finish()),
                Arc::new(self.filtered_attributes.finish()),
                Arc::new(self.service_name.finish()),
            ],
        )
    }
}

/// One log record as a reader sees it. `body` is the AnyValue as text.
#[derive(Debug, Default, Clone)]
pub struct LogRec {
    pub time_ns: Option<u64>,
    pub observed_ns: Option<u64>,
    pub severity_number: Option<i32>,
    pub severity_text: Option<String>,
    pub body: Option<String>,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub event_name: Option<String>,
    pub flags: Option<i64>,
    pub dropped_attributes_count: Option<i64>,
}

/// The `logs` table, with deferred resource and scope columns like the span tables.
pub struct LogsBuilder {
    timestamp: TimestampMicrosecondBuilder,
    observed_timestamp: TimestampMicrosecondBuilder,
    severity_number: Int32Builder,
    severity_text: StringBuilder,
    body: StringBuilder,
    attributes: AttrMapBuilder,
    resource_attributes: AttrMapBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    event_name: StringBuilder,
    service_name: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    flags: Int64Builder,
    dropped_attributes_count: Int64Builder,
}

impl Default for LogsBuilder {
    fn default() -> Self {
        LogsBuilder {
            timestamp: new_ts(),
            observed_timestamp: new_ts(),
            severity_number: Int32Builder::new(),
            severity_text: StringBuilder::new(),
            body: StringBuilder::new(),
            attributes: new_map(),
            resource_attributes: new_map(),
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            event_name: StringBuilder::new(),
            service_name: StringBuilder::new(),
            scope_name: StringBuilder::new(),
            scope_version: StringBuilder::new(),
            flags: Int64Builder::new(),
            dropped_attributes_count: Int64Builder::new(),
        }
    }
}

impl LogsBuilder {
    /// Log records appended (not yet finished into a batch).
    pub fn records(&self) -> usize {
        self.body.len()
    }

    /// Appends one record. Resource and scope columns follow via `end_scope` and
    /// `end_resource`.
    pub fn append(&mut self, r: &LogRec, attrs: &Attrs) {
        let observed = nanos_to_micros(r.observed_ns);
        self.timestamp
            .append_option(nanos_to_micros(r.time_ns).or(observed));
        self.observed_timestamp.append_option(observed);
        self.severity_number
            .append_option(r.severity_number.filter(|n| *n != 0));
        self.severity_text.append_option(opt_str(&r.severity_text));
        self.body.append_option(r.body.as_deref());
        append_map(&mut self.attributes, attrs);
        append_id(&mut self.trace_id, &r.trace_id);
        append_id(&mut self.span_id, &r.span_id);
        self.event_name.append_option(opt_str(&r.event_name));
        self.flags.append_option(r.flags.filter(|f| *f != 0));
        self.dropped_attributes_count
            .append_option(r.dropped_attributes_count.filter(|n| *n != 0));
    }

    /// Fills the scope columns of the last `n` records.
    pub fn end_scope(&mut self, n: usize, name: Option<&str>, version: Option<&str>) {
        append_str_n(&mut self.scope_name, name.filter(|s| !s.is_empty()), n);
        append_str_n(
            &mut self.scope_version,
            version.filter(|s| !s.is_empty()),
            n,
        );
    }

    /// Fills the resource columns of the last `n` records.
    pub fn end_resource(&mut self, n: usize, attrs: &Attrs) {
        append_str_n(&mut self.service_name, attrs.get("service.name"), n);
        append_map_n(&mut self.resource_attributes, attrs, n);
    }

    pub fn finish(&mut self) -> RecordBatch {
        batch(
            Table::Logs,
            vec![
                Arc::new(self.timestamp.finish()),
                Arc::new(self.observed_timestamp.finish()),
                Arc::new(self.severity_number.finish()),
                Arc::new(self.severity_text.finish()),
                Arc::new(self.body.finish()),
                Arc::new(self.attributes.finish()),
                Arc::new(self.resource_attributes.finish()),
                Arc::new(self.trace_id.finish()),
                Arc::new(self.span_id.finish()),
                Arc::new(self.event_name.finish()),
                Arc::new(self.service_name.finish()),
                Arc::new(self.scope_name.finish()),
                Arc::new(self.scope_version.finish()),
                Arc::new(self.flags.finish()),
                Arc::new(self.dropped_attributes_count.finish()),
            ],
        )
    }
}

/// Row counts of every table at a document boundary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mark(PerTable<usize>);

/// The builders of all six tables, filled by one worker.
#[derive(Default)]
pub struct TableBuilders {
    pub traces: TracesBuilder,
    pub metrics: MetricsBuilder,
    pub logs: LogsBuilder,
    /// Batches already cut (by `rollback_to`).
    done: Vec<PerTable<RecordBatch>>,
}

impl TableBuilders {
    /// Builders that fill only `fills` of the optional span columns.
    pub fn filling(fills: SpanColumns) -> TableBuilders {
        let mut b = TableBuilders::default();
        b.traces.fills = fills;
        b
    }

    /// As `filling`, with room for `scale` times the spans of `sizes`
    /// (`TracesBuilder::sized_like`).
    pub fn filling_like(fills: SpanColumns, sizes: &SpanSizes, scale: f64) -> TableBuilders {
        TableBuilders {
            traces: TracesBuilder::sized_like(fills, sizes, scale),
            ..TableBuilders::default()
        }
    }

    pub fn mark(&self) -> Mark {
        Mark(PerTable::from_array([
            self.traces.spans(),
            self.traces.events_len(),
            self.traces.links.trace_id.len(),
            self.metrics.points(),
            self.metrics.exemplars_len(),
            self.logs.records(),
        ]))
    }

    /// Rows held, including those already cut into batches.
    pub fn rows(&self) -> usize {
        let m = self.mark().0;
        let done: usize = self
            .done
            .iter()
            .flat_map(|arr| arr.values().map(|b| b.num_rows()))
            .sum();
        m.values().sum::<usize>() + done
    }

    /// Drops every row appended since `mark` (a document that turned out malformed).
    pub fn rollback_to(&mut self, mark: Mark) {
        // Most bad documents fail before any row is appended: then there is nothing to undo,
        // and finishing every builder for nothing cost 70 µs a bad line (a file of 200,000
        // malformed lines took 15.6 s; cargo-fuzz found it).
        if self.mark() == mark {
            return;
        }
        let batches = self.finish_all();
        let sliced = PerTable::from_fn(|t| {
            let b: &RecordBatch = &batches[t];
            b.slice(0, mark.0[t].min(b.num_rows()))
        });
        if sliced.values().any(|b| b.num_rows() > 0) {
            self.done.push(sliced);
        }
    }

    fn finish_all(&mut self) -> PerTable<RecordBatch> {
        let [t, e, l] = self.traces.finish();
        let [m, x] = self.metrics.finish();
        PerTable::from_array([t, e, l, m, x, self.logs.finish()])
    }

    /// Takes everything built so far as one batch list per table (empty batches dropped).
    pub fn take(&mut self) -> PerTable<Vec<RecordBatch>> {
        let last = self.finish_all();
        let mut out: PerTable<Vec<RecordBatch>> = PerTable::default();
        for arr in self.done.drain(..).chain(std::iter::once(last)) {
            for (t, b) in arr {
                if b.num_rows() > 0 {
                    out[t].push(b);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;

    fn repeated(attrs: &Attrs, n: usize, whole: bool) -> ArrayRef {
        let mut b = new_map();
        append_map(&mut b, attrs); // a row before, so the copies start at an offset
        if whole {
            append_map_n(&mut b, attrs, n);
        } else {
            for _ in 0..n {
                append_map(&mut b, attrs);
            }
        }
        Arc::new(b.finish())
    }

    #[test]
    fn a_rollback_with_nothing_to_undo_finishes_nothing() {
        let mut b = TableBuilders::default();
        let span = SpanRec {
            name: Some("kept".into()),
            start_ns: Some(1),
            end_ns: Some(2),
            ..SpanRec::default()
        };
        let none = Attrs::default();
        let add = |b: &mut TableBuilders| {
            b.traces.append_span(&span, &none, &[], &[]);
            b.traces.end_scope(1, None, None, &none);
            b.traces.end_resource(1, 0, &none);
        };
        add(&mut b);
        let mark = b.mark();
        // A malformed document that appended nothing: no batch is cut.
        for _ in 0..1000 {
            b.rollback_to(mark);
        }
        assert!(b.done.is_empty());
        assert_eq!(b.rows(), 1);
        // One that appended a span: cut at the mark, the kept span stays.
        add(&mut b);
        b.rollback_to(mark);
        assert_eq!(b.done.len(), 1);
        assert_eq!(b.rows(), 1);
    }

    /// A builder sized like a batch holds the same spans again without growing a buffer,
    /// and builds the same batch.
    #[test]
    fn a_builder_sized_like_a_batch_holds_as_much_again_without_growing() {
        let mut attrs = Attrs::default();
        attrs.push("cart.id", Some("cart-00042"));
        attrs.push("http.response.status_code", Some("200"));
        let mut res = Attrs::default();
        res.push("service.name", Some("checkout"));
        let fill = |b: &mut TracesBuilder| {
            for i in 0..1000u64 {
                let span = SpanRec {
                    trace_id: Some([(i % 251) as u8 + 1; 16]),
                    span_id: Some([(i % 13) as u8 + 1; 8]),
                    parent_span_id: (i % 3 == 0).then_some([7; 8]),
                    name: Some(format!("op-{}", i % 7)),
                    start_ns: Some(1_000 + i),
                    end_ns: Some(2_000 + i),
                    status_message: (i % 5 == 0).then(|| "timeout".to_string()),
                    ..SpanRec::default()
                };
                b.append_span(&span, &attrs, &[], &[]);
            }
            b.end_scope(1000, None, None, &Attrs::default());
            b.end_resource(1000, 0, &res);
        };
        let mut first = TracesBuilder::default();
        fill(&mut first);
        let sizes = first.sizes();
        let [want, _, _] = first.finish();

        let mut again = TracesBuilder::sized_like(all_span_columns(), &sizes, 1.0);
        let room = |b: &mut TracesBuilder| {
            [
                b.trace_id.values_capacity(),
                b.span_id.values_capacity(),
                b.parent_span_id.values_capacity(),
                b.operation_name.values_capacity(),
                b.status_message.values_capacity(),
                b.attributes.keys().values_capacity(),
                b.attributes.values().values_capacity(),
                b.resource_attributes.values().values_capacity(),
                b.start_time.capacity(),
                b.duration_ms.capacity(),
            ]
        };
        let before = room(&mut again);
        assert!(before.iter().all(|c| *c > 0), "{before:?}");
        fill(&mut again);
        assert_eq!(room(&mut again), before, "a buffer grew");
        assert_eq!(again.sizes(), sizes);
        let [got, _, _] = again.finish();
        assert_eq!(got, want);
    }

    #[test]
    fn a_map_repeated_whole_equals_the_map_appended_row_by_row() {
        let mut attrs = Attrs::default();
        attrs.push("service.name", Some("checkout"));
        attrs.push("empty", None);
        attrs.push("host.name", Some("node-1"));
        for n in [0, 1, 2, 5] {
            let whole = repeated(&attrs, n, true);
            assert_eq!(whole.len(), n + 1);
            assert_eq!(whole.to_data(), repeated(&attrs, n, false).to_data());
        }
        let none = Attrs::default();
        assert_eq!(
            repeated(&none, 3, true).to_data(),
            repeated(&none, 3, false).to_data()
        );
    }
}
