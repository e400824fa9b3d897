//! OTLP/JSON documents (TracesData, MetricsData, LogsData, or the equivalent OTLP/HTTP
//! export requests) parsed straight into Arrow builders by serde visitors: no
//! `serde_json::Value` tree, strings borrowed from the input where they have no escapes.
//!
//! Leniency follows the Collector: lowerCamelCase or snake_case keys, pre-1.0
//! `instrumentationLibrary*` keys, 64-bit integers as strings or numbers, enums as integers or
//! names, ids in hex or base64, unknown fields ignored. A wrong-typed value skips only the span
//! or data point that carries it (reported); malformed JSON skips the whole document
//! (reported, and rolled back out of the builders).

use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::values::*;
use crate::read::projection::{Keys, Projection};
use crate::tables::builders::{
    Attrs, EventRec, ExemplarRec, LinkRec, LogRec, MetricHead, MetricType, PointRec,
    SpanColumn as C, SpanKind, SpanRec, StatusCode, TableBuilders, Temporality,
};

/// What one document held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DocCounts {
    pub spans: usize,
    pub points: usize,
    pub logs: usize,
}

/// Reusable scratch space for parsing; one per worker.
#[derive(Default)]
pub struct Scratch {
    res_attrs: Attrs,
    scope_attrs: Attrs,
    span: SpanRec,
    span_attrs: Attrs,
    events: Vec<EventRec>,
    n_events: usize,
    links: Vec<LinkRec>,
    n_links: usize,
    head: MetricHead,
    points: Vec<PointRec>,
    /// Each point's first wrong-typed value, and where it is in the document.
    point_errs: Vec<Option<(String, Option<usize>)>>,
    n_points: usize,
    log: LogRec,
    log_attrs: Attrs,
    /// Records (spans, data points) skipped for a wrong-typed value, with the reason.
    pub bad: Vec<String>,
    /// Where in its document a record of `bad` went wrong, when known: (index into `bad`,
    /// byte offset of the offending field's key), so a pretty-printed document's bad record
    /// is reported at its own line.
    pub bad_at: Vec<(usize, usize)>,
    /// The attributes to read; the others are skipped unread.
    pub projection: std::sync::Arc<Projection>,
}

impl Scratch {
    fn reject(&mut self, at: Option<usize>, reason: String) {
        if let Some(at) = at {
            self.bad_at.push((self.bad.len(), at));
        }
        self.bad.push(reason);
    }
}

struct Ctx<'a> {
    b: &'a mut TableBuilders,
    p: &'a Projection,
    s: &'a mut Scratch,
    counts: DocCounts,
    /// The document, to place bad records by the keys borrowed from it.
    doc: &'a str,
}

/// A document that could not be parsed at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocError {
    /// 1-based line within the document, when serde_json knows it.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses one JSON document into `b`. On a syntax error nothing of the document stays in the
/// builders. Records skipped for bad values are left in `s.bad`.
pub fn parse_document(
    text: &str,
    b: &mut TableBuilders,
    s: &mut Scratch,
) -> Result<DocCounts, DocError> {
    let mark = b.mark();
    let bad_before = s.bad.len();
    let mut de = serde_json::Deserializer::from_str(text);
    let p = s.projection.clone();
    let mut ctx = Ctx {
        b,
        p: &p,
        s,
        counts: DocCounts::default(),
        doc: text,
    };
    let res = DocSeed(&mut ctx)
        .deserialize(&mut de)
        .and_then(|_| de.end());
    let counts = ctx.counts;
    match res {
        Ok(()) => Ok(counts),
        Err(e) => {
            b.rollback_to(mark);
            s.bad.truncate(bad_before);
            s.bad_at.retain(|&(i, _)| i < bad_before);
            let msg = e.to_string();
            let message = match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            Err(DocError {
                line: e.line(),
                column: e.column(),
                message,
            })
        }
    }
}

/// A JSON object visited with access to the parse context. `Ok(Err(reason))` means the
/// object was read but holds a wrong-typed value.
trait ObjVisit {
    fn visit<'de, A: MapAccess<'de>>(ctx: &mut Ctx, map: A) -> Result<Lv<()>, A::Error>;
}

struct Obj<'c, 'a, T>(&'c mut Ctx<'a>, PhantomData<T>);

impl<'de, T: ObjVisit> DeserializeSeed<'de> for Obj<'_, '_, T> {
    type Value = Lv<()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<()>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: ObjVisit> Visitor<'de> for Obj<'_, '_, T> {
    type Value = Lv<()>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Lv<()>, A::Error> {
        T::visit(self.0, map)
    }
    fn visit_unit<E>(self) -> Result<Lv<()>, E> {
        Ok(Ok(()))
    }
}

/// An array of objects (null is an empty array). Returns the first element's problem.
struct Each<'c, 'a, T>(&'c mut Ctx<'a>, PhantomData<T>);

impl<'de, T: ObjVisit> DeserializeSeed<'de> for Each<'_, '_, T> {
    type Value = Lv<()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<()>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: ObjVisit> Visitor<'de> for Each<'_, '_, T> {
    type Value = Lv<()>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lv<()>, A::Error> {
        let mut first = Ok(());
        while let Some(r) = seq.next_element_seed(Obj::<T>(self.0, PhantomData))? {
            if first.is_ok() {
                first = r;
            }
        }
        Ok(first)
    }
    fn visit_unit<E>(self) -> Result<Lv<()>, E> {
        Ok(Ok(()))
    }
}

fn each<'de, T: ObjVisit, A: MapAccess<'de>>(
    ctx: &mut Ctx,
    map: &mut A,
) -> Result<Lv<()>, A::Error> {
    map.next_value_seed(Each::<T>(ctx, PhantomData))
}

fn scalar<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Scalar<'de>, A::Error> {
    map.next_value::<Scalar<'de>>()
}

fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Lv<()>, A::Error> {
    map.next_value::<IgnoredAny>()?;
    Ok(Ok(()))
}

fn keep_first(err: &mut Option<String>, key: &str, r: Lv<()>) {
    if let Err(e) = r {
        if err.is_none() {
            *err = Some(format!("{key}: {e}"));
        }
    }
}

/// `keep_first` for a record that may be skipped, also keeping where its key is in `doc`.
/// Called for every field: inlined, with the error path out of line.
#[inline(always)]
fn keep_first_at(err: &mut Option<(String, Option<usize>)>, doc: &str, key: &str, r: Lv<()>) {
    if let Err(e) = r {
        first_at(err, doc, key, e);
    }
}

#[cold]
fn first_at(err: &mut Option<(String, Option<usize>)>, doc: &str, key: &str, e: String) {
    if err.is_none() {
        *err = Some((format!("{key}: {e}"), offset_in(doc, key)));
    }
}

/// Where `part` starts in `doc`, when it is a slice of it (a key without escapes is borrowed
/// straight from the input).
fn offset_in(doc: &str, part: &str) -> Option<usize> {
    let (d, p) = (doc.as_ptr() as usize, part.as_ptr() as usize);
    (p >= d && p + part.len() <= d + doc.len()).then(|| p - d)
}

// ---- document ----------------------------------------------------------------------------

struct DocSeed<'c, 'a>(&'c mut Ctx<'a>);

impl<'de> DeserializeSeed<'de> for DocSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an OTLP TracesData, MetricsData or LogsData object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.0;
        while let Some(k) = map.next_key::<Key>()? {
            // Structural problems at this level cannot be narrowed to one record; they are
            // reported by the records themselves.
            match &*k.camel() {
                "resourceSpans" => {
                    each::<Resource<Spans>, _>(ctx, &mut map)?.ok();
                }
                "resourceMetrics" => {
                    each::<Resource<Metrics>, _>(ctx, &mut map)?.ok();
                }
                "resourceLogs" if ctx.p.logs => {
                    each::<Resource<Logs>, _>(ctx, &mut map)?.ok();
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

// ---- resources and scopes ------------------------------------------------------------------

/// `resource` or `scope`: attributes (into the given buffer), name and version.
struct Named<'c> {
    attrs: &'c mut Attrs,
    keys: &'c Keys,
    name: Option<String>,
    version: Option<String>,
}

impl<'de> DeserializeSeed<'de> for &mut Named<'_> {
    type Value = Lv<()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<()>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Named<'_> {
    type Value = Lv<()>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a resource or scope object")
    }
    fn visit_unit<E>(self) -> Result<Lv<()>, E> {
        Ok(Ok(()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lv<()>, A::Error> {
        let mut err = None;
        while let Some(k) = map.next_key::<Key>()? {
            let r = match &*k.camel() {
                "attributes" => map.next_value_seed(AttrList(self.attrs, self.keys))?,
                "name" => to_string(scalar(&mut map)?).map(|v| self.name = v),
                "version" => to_string(scalar(&mut map)?).map(|v| self.version = v),
                _ => skip(&mut map)?,
            };
            keep_first(&mut err, &k.0, r);
        }
        Ok(err.map_or(Ok(()), Err))
    }
}

/// What differs between `resourceSpans`, `resourceMetrics` and `resourceLogs`: the key of
/// their scopes, what their records are called, and the builders they fill.
trait Signal {
    /// The scopes' key and its pre-1.0 name.
    const SCOPES: [&'static str; 2];
    /// The records, for a report: "spans".
    const RECORDS: &'static str;
    /// The rows so far: the records and those their children (events, exemplars) added.
    fn rows(b: &TableBuilders) -> (usize, usize);
    /// Reads the scopes' array.
    fn scopes<'de, A: MapAccess<'de>>(ctx: &mut Ctx, map: &mut A) -> Result<(), A::Error>;
    /// Fills the resource columns of the last `n` records and `children` children, and
    /// counts the records.
    fn end(ctx: &mut Ctx, n: usize, children: usize);
}

/// A `resource*` object of one signal: its resource (attributes, before or after its
/// scopes) and its scopes.
struct Resource<S>(PhantomData<S>);

impl<S: Signal> ObjVisit for Resource<S> {
    fn visit<'de, A: MapAccess<'de>>(ctx: &mut Ctx, mut map: A) -> Result<Lv<()>, A::Error> {
        let (rows0, children0) = S::rows(ctx.b);
        let doc = ctx.doc;
        let resource_keys = ctx.p.resource_keys();
        ctx.s.res_attrs.clear();
        let mut res_err = None;
        // The resource and scope columns are filled even when the document turns out
        // malformed, so every column keeps one length and the rollback can cut them.
        let res: Result<(), A::Error> = (|| {
            while let Some(k) = map.next_key::<Key>()? {
                match &*k.camel() {
                    "resource" => {
                        let mut named = Named {
                            attrs: &mut ctx.s.res_attrs,
                            keys: &resource_keys,
                            name: None,
                            version: None,
                        };
                        let r = map.next_value_seed(&mut named)?;
                        keep_first_at(&mut res_err, doc, &k.0, r);
                    }
                    key if S::SCOPES.contains(&key) => S::scopes(ctx, &mut map)?,
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        })();
        let (rows, children) = S::rows(ctx.b);
        let (n, n_children) = (rows - rows0, children - children0);
        if let Some((e, at)) = res_err {
            // A resource attribute of the wrong type: keep the records, drop that attribute.
            ctx.s.reject(
                at,
                format!("resource of {n} {}: {e} (attribute dropped)", S::RECORDS),
            );
        }
        S::end(ctx, n, n_children);
        res?;
        Ok(Ok(()))
    }
}

struct Spans;

impl Signal for Spans {
    const SCOPES: [&'static str; 2] = ["scopeSpans", "instrumentationLibrarySpans"];
    const RECORDS: &'static str = "spans";
    fn rows(b: &TableBuilders) -> (usize, usize) {
        (b.traces.spans(), b.traces.events_len())
    }
    fn scopes<'de, A: MapAccess<'de>>(ctx: &mut Ctx, map: &mut A) -> Result<(), A::Error> {
        each::<ScopeSpans, _>(ctx, map)?.ok();
        Ok(())
    }
    fn end(ctx: &mut Ctx, n: usize, events: usize) {
        ctx.b.traces.end_resource(n, events, &ctx.s.res_attrs);
        ctx.counts.spans += n;
    }
}

struct ScopeSpans;

impl ObjVisit for ScopeSpans {
    fn visit<'de, A: MapAccess<'de>>(ctx: &mut Ctx, mut map: A) -> Result<Lv<()>, A::Error> {
        let spans0 = ctx.b.traces.spans();
        ctx.s.scope_attrs.clear();
        let mut name = None;
        let mut version = None;
        // The resource and scope columns are filled even when the document turns out
        // malformed, so every column keeps one length and the rollback can cut them.
        let res: Result<(), A::Error> = (|| {
            while let Some(k) = map.next_key::<Key>()? {
                match &*k.camel() {
                    "scope" | "instrumentationLibrary" => {
                        let mut named = Named {
                            attrs: &mut ctx.s.scope_attrs,
                            keys: &ctx.p.scope,
                            name: None,
                            version: None,
                        };
                        let _ = map.next_value_seed(&mut named)?;
                        name = named.name;
                        version = named.version;
                    }
                    "spans" => {
                        each::<Span, _>(ctx, &mut map)?.ok();
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        })();
        let n = ctx.b.traces.spans() - spans0;
        ctx.b
            .traces
            .end_scope(n, name.as_deref(), version.as_deref(), &ctx.s.scope_attrs);
        res?;
        Ok(Ok(()))
    }
}

// ---- spans ---------------------------------------------------------------------------------

struct Span;

impl ObjVisit for Span {
    fn visit<'de, A: MapAccess<'de>>(ctx: &mut Ctx, mut map: A) -> Result<Lv<()>, A::Error> {
        ctx.s.span = SpanRec::default();
        ctx.s.span_attrs.clear();
        ctx.s.n_events = 0;
        ctx.s.n_links = 0;
        let doc = ctx.doc;
        // A span column the question does not read is skipped unparsed, like an unread
        // attribute (`read::projection`).
        let fills = ctx.b.traces.fills();
        let mut err = None;
        while let Some(k) = map.next_key::<Key>()? {
            let sp = &mut ctx.s.span;
            let r = match &*k.camel() {
                "traceId" => to_id::<16>(&scalar(&mut map)?).map(|v| sp.trace_id = v),
                "spanId" => to_id::<8>(&scalar(&mut map)?).map(|v| sp.span_id = v),
                "parentSpanId" if fills[C::ParentSpanId] => {
                    to_id::<8>(&scalar(&mut map)?).map(|v| sp.parent_span_id = v)
                }
                "traceState" if fills[C::TraceState] => {
                    to_string(scalar(&mut map)?).map(|v| sp.trace_state = v)
                }
                "name" => to_string(scalar(&mut map)?).map(|v| sp.name = v),
                "kind" if fills[C::SpanKind] => to_enum(
                    &scalar(&mut map)?,
                    "span kind",
                    SpanKind::from_i64,
                    SpanKind::from_name,
                )
                .map(|v| sp.kind = v.unwrap_or_default()),
                "startTimeUnixNano" => to_u64(&scalar(&mut map)?).map(|v| sp.start_ns = v),
                "endTimeUnixNano" => to_u64(&scalar(&mut map)?).map(|v| sp.end_ns = v),
                "flags" if fills[C::Flags] => to_i64(&scalar(&mut map)?).map(|v| sp.flags = v),
                "droppedAttributesCount" if fills[C::DroppedAttributesCount] => {
                    to_i64(&scalar(&mut map)?).map(|v| sp.dropped_attributes_count = v)
                }
                "droppedEventsCount" if fills[C::DroppedEventsCount] => {
                    to_i64(&scalar(&mut map)?).map(|v| sp.dropped_events_count = v)
                }
                "droppedLinksCount" if fills[C::DroppedLinksCount] => {
                    to_i64(&scalar(&mut map)?).map(|v| sp.dropped_links_count = v)
                }
                "status" => map.next_value_seed(StatusSeed(sp, fills[C::StatusMessage]))?,
                "attributes" => {
                    map.next_value_seed(AttrList(&mut ctx.s.span_attrs, &ctx.p.span))?
                }
                "events" => each::<Event, _>(ctx, &mut map)?,
                "links" => each::<Link, _>(ctx, &mut map)?,
                _ => skip(&mut map)?,
            };
            keep_first_at(&mut err, doc, &k.0, r);
        }
        let s = &mut *ctx.s;
        match err {
            None => ctx.b.traces.append_span(
                &s.span,
                &s.span_attrs,
                &s.events[..s.n_events],
                &s.links[..s.n_links],
            ),
            Some((e, at)) => {
                let name = s.span.name.as_deref().unwrap_or("");
                let reason = format!("span {name:?} skipped: {e}");
                s.reject(at, reason);
            }
        }
        Ok(Ok(()))
    }
}

/// A span's status; its message only when the second field says it is read.
struct StatusSeed<'c>(&'c mut SpanRec, bool);

impl<'de> DeserializeSeed<'de> for StatusSeed<'_> {
    type Value = Lv<()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<()>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StatusSeed<'_> {
    type Value = Lv<()>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a status object")
    }
    fn visit_unit<E>(self) -> Result<Lv<()>, E> {
        Ok(Ok(()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lv<()>, A::Error> {
        let mut err = None;
        while let Some(k) = map.next_key::<Key>()? {
            let r = match &*k.camel() {
                "code" => to_enum(
                    &scalar(&mut map)?,
                    "status code",
                    StatusCode::from_i64,
                    StatusCode::from_name,
                )
                .map(|v| self.0.status_code = v.unwrap_or_default()),
                "message" if self.1 => {
                    to_string(scalar(&mut map)?).map(|v| self.0.status_message = v)
                }
                _ => skip(&mut map)?,
            };
            keep_first(&mut err, &k.0, r);
        }
        Ok(err.map_or(Ok(()), Err))
    }
}

fn next_slot<T: Default>(v: &mut Vec<T>, n: &mut usize) -> usize {
    if v.len() <= *n {
        v.push(T::default());
    }
    *n += 1;
    *n - 1
}

struct Event;

impl ObjVisit for Event {
    fn visit<'de, A: MapAccess<'de>>(ctx: &mut Ctx, mut map: A) -> Result<Lv<()>, A::Error> {
        let i = next_slot(&mut ctx.s.events, &mut ctx.s.n_events);
        let keys = &ctx.p.event;
        let e = &mut ctx.s.events[i];
        e.time_ns = None;
        e.name = None;
        e.dropped_attributes_count = None;
        e.attrs.clear();
        let mut err = None;
        while let Some(k) = map.next_key::<Key>()? {
            let r = match &*k.camel() {
                "timeUnixNano" => to_u64(&scalar(&mut map)?).map(|v| e.time_ns = v),
                "name" => to_string(scalar(&mut map)?).map(|v| e.name = v),
                "attributes" => map.next_value_seed(AttrList(&mut e.attrs, keys))?,
                "droppedAttributesCount" => {
                    to_i64(&scalar(&mut map)?).map(|v| e.dropped_attributes_count = v)
                }
                _ => skip(&mut map)?,
            };
            keep_first(&mut err, &k.0, r);
        }
        Ok(err.map_or(Ok(()), |e| Err(format!("event: {e}"))))
    }
}

struct Link;

impl ObjVisit for Link {
    fn visit<'de, A: MapAccess<'de>>(ctx: &mut Ctx, mut map: A) -> Result<Lv<()>, A::Error> {
        let i = next_slot(&mut ctx.s.links, &mut ctx.s.n_links);
        let keys = &ctx.p.link;
        let l = &mut ctx.s.links[i];
        l.trace_id = None;
        l.span_id = None;
        l.trace_state = None;
        l.flags = None;
        l.dropped_attributes_count = None;
        l.attrs.clear();
        let mut err = None;
        while let Some(k) = map.next_key::<Key>()? {
            let r = match &*k.camel() {
                "traceId" => to_id::<16>(&scalar(&mut map)?).map(|v| l.trace_id = v),
                "spanId" => to_id::<8>(&scalar(&mut map)?).map(|v| l.span_id = v),
                "traceState" => to_string(scalar(&mut map)?).map(|v| l.trace_state = v),
                "flags" => to_i64(&scalar(&mut map)?).map(|v| l.flags = v),
                "attributes" => map.next_value_seed(AttrList(&mut l.attrs, keys))?,
                "droppedAttributesCount" => {
                    to_i64(&scalar(&mut map)?).map(|v| l.dropped_attributes_count = v)
                }
                _ => skip(&mut map)?,
            };
            keep_first(&mut err, &k.0, r);
        }
        Ok(err.map_or(Ok(()), |e| Err(format!("link: {e}"))))
    }
}

// ---- attributes ----------------------------------------------------------------------------

/// `[{"key": ..., "value": AnyValue}, ...]` into an `Attrs` buffer: the attributes of the
/// given keys; the others' values are skipped unread.
struct AttrList<'c>(&'c mut Attrs, &'c Keys);

impl<'de> DeserializeSeed<'de> for AttrList<'_> {
    type Value = Lv<()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<()>, D::Error> {
        if self.1.is_none() {
            d.deserialize_ignored_any(IgnoredAny)?;
            return Ok(Ok(()));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AttrList<'_> {
    type Value = Lv<()>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of key-value objects")
    }
    fn visit_unit<E>(self) -> Result<Lv<()>, E> {
        Ok(Ok(()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lv<()>, A::Error> {
        let mut first = Ok(());
        while let Some(r) = seq.next_element_seed(KeyValueSeed(&mut *self.0, self.1))? {
            if first.is_ok() {
                first = r;
            }
        }
        Ok(first)
    }
}

struct KeyValueSeed<'c>(&'c mut Attrs, &'c Keys);

impl<'de> DeserializeSeed<'de> for KeyValueSeed<'_> {
    type Value = Lv<()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<()>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeyValueSeed<'_> {
    type Value = Lv<()>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key-value object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lv<()>, A::Error> {
        let (attrs, keys) = (self.0, self.1);
        let start = attrs.buf.len();
        let mut key = None;
        let mut value = None;
        let mut err = None;
        // An attribute of a key not read: its value (if it comes after the key) is skipped.
        let mut unread = false;
        while let Some(k) = map.next_key::<Key>()? {
            match &*k.0 {
                "key" => match scalar(&mut map)? {
                    Scalar::Str(s) if !keys.wants(&s) => unread = true,
                    Scalar::Str(s) => {
                        let k0 = attrs.buf.len();
                        attrs.buf.push_str(&s);
                        key = Some((k0, attrs.buf.len()));
                    }
                    other => {
                        err = Some(format!(
                            "attribute key: expected a string, found {}",
                            other.describe()
                        ))
                    }
                },
                "value" if unread => {
                    map.next_value::<IgnoredAny>()?;
                }
                "value" => {
                    let v0 = attrs.buf.len();
                    match map.next_value_seed(AnyValueSeed {
                        out: &mut attrs.buf,
                        nested: false,
                    })? {
                        Ok(present) => value = Some(present.then_some((v0, attrs.buf.len()))),
                        Err(e) => {
                            attrs.buf.truncate(v0);
                            err = Some(e);
                        }
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if unread {
            // Whatever came before the key (a value) goes too, read or wrong.
            attrs.buf.truncate(start);
            return Ok(Ok(()));
        }
        match (key, err) {
            (Some(key), None) => {
                attrs.push_ranges(key, value.flatten());
                Ok(Ok(()))
            }
            (key, err) => {
                let name = key.map(|(a, b)| attrs.buf[a..b].to_string());
                attrs.buf.truncate(start);
                Ok(Err(match (name, err) {
                    (Some(n), Some(e)) => format!("attribute {n:?}: {e}"),
                    (None, Some(e)) => e,
                    _ => "attribute without a key".to_string(),
                }))
            }
        }
    }
}

/// An AnyValue written as text into `out`: at the top level strings are written as they are
/// and everything else in its canonical text form; nested inside arrays and kvlists, as
/// compact JSON. Returns whether a value was present (`{}` is null).
struct AnyValueSeed<'c> {
    out: &'c mut String,
    nested: bool,
}

impl<'de> DeserializeSeed<'de> for AnyValueSeed<'_> {
    type Value = Lv<bool>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<bool>, D::Error> {
        d.deserialize_any(self)
    }
}

impl AnyValueSeed<'_> {
    fn write_scalar(&mut self, v: &Scalar) -> Lv<bool> {
        // Bare scalars where an AnyValue object belongs: accepted as their own type.
        match v {
            Scalar::Null => {
                if self.nested {
                    self.out.push_str("null");
                }
                Ok(self.nested)
            }
            Scalar::Str(s) => {
                self.write_str(s);
                Ok(true)
            }
            Scalar::Bool(b) => {
                self.out.push_str(if *b { "true" } else { "false" });
                Ok(true)
            }
            Scalar::U64(n) => {
                write_u64(self.out, *n);
                Ok(true)
            }
            Scalar::I64(n) => {
                write_i64(self.out, *n);
                Ok(true)
            }
            Scalar::F64(f) => {
                self.write_double(*f);
                Ok(true)
            }
            Scalar::Compound(what) => Err(format!("expected an AnyValue, found {what}")),
        }
    }
    fn write_str(&mut self, s: &str) {
        if self.nested {
            write_json_str(self.out, s);
        } else {
            self.out.push_str(s);
        }
    }
    fn write_double(&mut self, f: f64) {
        if self.nested && !f.is_finite() {
            self.out.push('"');
            write_f64(self.out, f);
            self.out.push('"');
        } else {
            write_f64(self.out, f);
        }
    }
}

impl<'de> Visitor<'de> for AnyValueSeed<'_> {
    type Value = Lv<bool>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an AnyValue object")
    }
    fn visit_unit<E>(mut self) -> Result<Lv<bool>, E> {
        Ok(self.write_scalar(&Scalar::Null))
    }
    fn visit_bool<E>(mut self, v: bool) -> Result<Lv<bool>, E> {
        Ok(self.write_scalar(&Scalar::Bool(v)))
    }
    fn visit_u64<E>(mut self, v: u64) -> Result<Lv<bool>, E> {
        Ok(self.write_scalar(&Scalar::U64(v)))
    }
    fn visit_i64<E>(mut self, v: i64) -> Result<Lv<bool>, E> {
        Ok(self.write_scalar(&Scalar::I64(v)))
    }
    fn visit_f64<E>(mut self, v: f64) -> Result<Lv<bool>, E> {
        Ok(self.write_scalar(&Scalar::F64(v)))
    }
    fn visit_str<E>(mut self, v: &str) -> Result<Lv<bool>, E> {
        self.write_str(v);
        Ok(Ok(true))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lv<bool>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err("expected an AnyValue, found an array".into()))
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Lv<bool>, A::Error> {
        let start = self.out.len();
        let mut result: Lv<bool> = Ok(false);
        if self.nested {
            // `{}` nested in an array is a JSON null.
            result = Ok(true);
        }
        let mut seen = false;
        while let Some(k) = map.next_key::<Key>()? {
            let key = k.camel();
            let kind = matches!(
                &*key,
                "stringValue"
                    | "boolValue"
                    | "intValue"
                    | "doubleValue"
                    | "bytesValue"
                    | "arrayValue"
                    | "kvlistValue"
            );
            if !kind || seen {
                // Not a value kind, or a second kind in one AnyValue: the first one stands.
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let r = match &*key {
                "stringValue" => match scalar(&mut map)? {
                    Scalar::Str(s) => {
                        self.write_str(&s);
                        Ok(true)
                    }
                    Scalar::Null => Ok(false),
                    other => Err(format!(
                        "stringValue: expected a string, found {}",
                        other.describe()
                    )),
                },
                "boolValue" => to_bool(&scalar(&mut map)?).map(|b| match b {
                    Some(b) => {
                        self.out.push_str(if b { "true" } else { "false" });
                        true
                    }
                    None => false,
                }),
                "intValue" => to_i64(&scalar(&mut map)?).map(|n| match n {
                    Some(n) => {
                        write_i64(self.out, n);
                        true
                    }
                    None => false,
                }),
                "doubleValue" => to_f64(&scalar(&mut map)?).map(|f| match f {
                    Some(f) => {
                        self.write_double(f);
                        true
                    }
                    None => false,
                }),
                "bytesValue" => match scalar(&mut map)? {
                    // Kept in the base64 form the JSON mapping gives.
                    Scalar::Str(s) => {
                        self.write_str(&s);
                        Ok(true)
                    }
                    Scalar::Null => Ok(false),
                    other => Err(format!(
                        "bytesValue: expected base64, found {}",
                        other.describe()
                    )),
                },
                "arrayValue" => map.next_value_seed(ListValue {
                    out: self.out,
                    kv: false,
                })?,
                "kvlistValue" => map.next_value_seed(ListValue {
                    out: self.out,
                    kv: true,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            seen = true;
            result = r;
        }
        if result.is_err() {
            self.out.truncate(start);
        } else if self.nested && self.out.len() == start {
            // Inside an array or kvlist a missing value is still a JSON value.
            self.out.push_str("null");
        }
        Ok(result)
    }
}

/// `{"values": [...]}` of an arrayValue (AnyValues) or kvlistValue (KeyValues), as JSON.
struct ListValue<'c> {
    out: &'c mut String,
    kv: bool,
}

impl<'de> DeserializeSeed<'de> for ListValue<'_> {
    type Value = Lv<bool>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<bool>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ListValue<'_> {
    type Value = Lv<bool>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object with values")
    }
    fn visit_unit<E>(self) -> Result<Lv<bool>, E> {
        self.out.push_str(if self.kv { "{}" } else { "[]" });
        Ok(Ok(true))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lv<bool>, A::Error> {
        let mut result = Ok(true);
        let mut wrote = false;
        while let Some(k) = map.next_key::<Key>()? {
            if &*k.0 == "values" && !wrote {
                wrote = true;
                result = map.next_value_seed(ListItems {
                    out: &mut *self.out,
                    kv: self.kv,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if !wrote {
            self.out.push_str(if self.kv { "{}" } else { "[]" });
        }
        Ok(result)
    }
}

struct ListItems<'c> {
    out: &'c mut String,
    kv: bool,
}

impl<'de> DeserializeSeed<'de> for ListItems<'_> {
    type Value = Lv<bool>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<bool>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ListItems<'_> {
    type Value = Lv<bool>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array")
    }
    fn visit_unit<E>(self) -> Result<Lv<bool>, E> {
        self.out.push_str(if self.kv { "{}" } else { "[]" });
        Ok(Ok(true))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lv<bool>, A::Error> {
        let mut first_err = Ok(true);
        self.out.push(if self.kv { '{' } else { '[' });
        let mut first = true;
        if self.kv {
            let mut tmp = Attrs::default();
            while let Some(r) = seq.next_element_seed(NestedKeyValue(&mut tmp))? {
                if let Err(e) = r {
                    if first_err.is_ok() {
                        first_err = Err(e);
                    }
                }
            }
            for (k, v) in tmp.iter() {
                if !first {
                    self.out.push(',');
                }
                first = false;
                write_json_str(self.out, k);
                self.out.push(':');
                self.out.push_str(v.unwrap_or("null"));
            }
        } else {
            loop {
                let mark = self.out.len();
                if !first {
                    self.out.push(',');
                }
                match seq.next_element_seed(AnyValueSeed {
                    out: &mut *self.out,
                    nested: true,
                })? {
                    None => {
                        self.out.truncate(mark);
                        break;
                    }
                    Some(Ok(_)) => first = false,
                    Some(Err(e)) => {
                        self.out.truncate(mark);
                        if first_err.is_ok() {
                            first_err = Err(e);
                        }
                    }
                }
            }
        }
        self.out.push(if self.kv { '}' } else { ']' });
        Ok(first_err)
    }
}

/// A KeyValue inside a kvlist: its value is stored as JSON text.
struct NestedKeyValue<'c>(&'c mut Attrs);

impl<'de> DeserializeSeed<'de> for NestedKeyValue<'_> {
    type Value = Lv<()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<()>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NestedKeyValue<'_> {
    type Value = Lv<()>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key-value object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lv<()>, A::Error> {
        let attrs = self.0;
        let mut key = None;
        let mut value = None;
        let mut err = None;
        while let Some(k) = map.next_key::<Key>()? {
            match &*k.0 {
                "key" => {
                    if let Scalar::Str(s) = scalar(&mut map)? {
                        let k0 = attrs.buf.len();
                        attrs.buf.push_str(&s);
                        key = Some((k0, attrs.buf.len()));
                    }
                }
                "value" => {
                    let v0 = attrs.buf.len();
                    match map.next_value_seed(AnyValueSeed {
                        out: &mut attrs.buf,
                        nested: true,
                    })? {
                        Ok(_) => value = Some((v0, attrs.buf.len())),
                        Err(e) => err = Some(e),
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(e) = err {
            return Ok(Err(e));
        }
        if let Some(key) = key {
            attrs.push_ranges(key, value);
        }
        Ok(Ok(()))
    }
}

// ---- metrics -------------------------------------------------------------------------------

// ---- logs ----------------------------------------------------------------------------------

struct Logs;

impl Signal for Logs {
    const SCOPES: [&'static str; 2] = ["scopeLogs", "instrumentationLibraryLogs"];
    const RECORDS: &'static str = "log records";
    fn rows(b: &TableBuilders) -> (usize, usize) {
        (b.logs.records(), 0)
    }
    fn scopes<'de, A: MapAccess<'de>>(ctx: &mut Ctx, map: &mut A) -> Result<(), A::Error> {
        each::<ScopeLogs, _>(ctx, map)?.ok();
        Ok(())
    }
    fn end(ctx: &mut Ctx, n: usize, _: usize) {
        ctx.b.logs.end_resource(n, &ctx.s.res_attrs);
        ctx.counts.logs += n;
    }
}

struct ScopeLogs;

impl ObjVisit for ScopeLogs {
    fn visit<'de, A: MapAccess<'de>>(ctx: &mut Ctx, mut map: A) -> Result<Lv<()>, A::Error> {
        let logs0 = ctx.b.logs.records();
        let mut name = None;
        let mut version = None;
        let res: Result<(), A::Error> = (|| {
            while let Some(k) = map.next_key::<Key>()? {
                match &*k.camel() {
                    "scope" | "instrumentationLibrary" => {
                        // Log records keep the scope's name and version, not its attributes.
                        let mut none = Attrs::default();
                        let mut named = Named {
                            attrs: &mut none,
                            keys: &Keys::none(),
                            name: None,
                            version: None,
                        };
                        let _ = map.next_value_seed(&mut named)?;
                        name = named.name;
                        version = named.version;
                    }
                    "logRecords" => {
                        each::<LogRecord, _>(ctx, &mut map)?.ok();
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        })();
        let n = ctx.b.logs.records() - logs0;
        ctx.b.logs.end_scope(n, name.as_deref(), version.as_deref());
        res?;
        Ok(Ok(()))
    }
}

/// `SEVERITY_NUMBER_WARN2` and the like: the enum's names, as protobuf's JSON may write them.
pub fn severity_from_name(name: &str) -> Option<i32> {
    const NAMES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let rest = name.strip_prefix("SEVERITY_NUMBER_")?;
    if rest == "UNSPECIFIED" {
        return Some(0);
    }
    let digits = rest.trim_start_matches(|c: char| c.is_ascii_uppercase());
    let word = &rest[..rest.len() - digits.len()];
    let base = NAMES.iter().position(|n| *n == word)? as i32 * 4 + 1;
    let step: i32 = match digits {
        "" => 0,
        "2" => 1,
        "3" => 2,
        "4" => 3,
        _ => return None,
    };
    Some(base + step)
}

struct LogRecord;

impl ObjVisit for LogRecord {
    fn visit<'de, A: MapAccess<'de>>(ctx: &mut Ctx, mut map: A) -> Result<Lv<()>, A::Error> {
        ctx.s.log = LogRec::default();
        ctx.s.log_attrs.clear();
        let doc = ctx.doc;
        let mut err = None;
        while let Some(k) = map.next_key::<Key>()? {
            let r = match &*k.camel() {
                "timeUnixNano" => to_u64(&scalar(&mut map)?).map(|v| ctx.s.log.time_ns = v),
                "observedTimeUnixNano" => {
                    to_u64(&scalar(&mut map)?).map(|v| ctx.s.log.observed_ns = v)
                }
                "severityNumber" => to_enum(
                    &scalar(&mut map)?,
                    "severity number",
                    |n| i32::try_from(n).ok().filter(|n| (0..=24).contains(n)),
                    severity_from_name,
                )
                .map(|v| ctx.s.log.severity_number = v),
                "severityText" => to_string(scalar(&mut map)?).map(|v| ctx.s.log.severity_text = v),
                "body" => {
                    let mut body = String::new();
                    match map.next_value_seed(AnyValueSeed {
                        out: &mut body,
                        nested: false,
                    })? {
                        Ok(present) => {
                            ctx.s.log.body = present.then_some(body);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                "attributes" => map.next_value_seed(AttrList(&mut ctx.s.log_attrs, &ctx.p.log))?,
                "traceId" => to_id::<16>(&scalar(&mut map)?).map(|v| ctx.s.log.trace_id = v),
                "spanId" => to_id::<8>(&scalar(&mut map)?).map(|v| ctx.s.log.span_id = v),
                "eventName" => to_string(scalar(&mut map)?).map(|v| ctx.s.log.event_name = v),
                "flags" => to_i64(&scalar(&mut map)?).map(|v| ctx.s.log.flags = v),
                "droppedAttributesCount" => {
                    to_i64(&scalar(&mut map)?).map(|v| ctx.s.log.dropped_attributes_count = v)
                }
                _ => skip(&mut map)?,
            };
            keep_first_at(&mut err, doc, &k.0, r);
        }
        let s = &mut *ctx.s;
        match err {
            None => ctx.b.logs.append(&s.log, &s.log_attrs),
            Some((e, at)) => s.reject(at, format!("log record skipped: {e}")),
        }
        Ok(Ok(()))
    }
}

struct Metrics;

impl Signal for Metrics {
    const SCOPES: [&'static str; 2] = ["scopeMetrics", "instrumentationLibraryMetrics"];
    const RECORDS: &'static str = "data points";
    fn rows(b: &TableBuilders) -> (usize, usize) {
        (b.metrics.points(), b.metrics.exemplars_len())
    }
    fn scopes<'de, A: MapAccess<'de>>(ctx: &mut Ctx, map: &mut A) -> Result<(), A::Error> {
        each::<ScopeMetrics, _>(ctx, map)?.ok();
        Ok(())
    }
    fn end(ctx: &mut Ctx, n: usize, exemplars: usize) {
        ctx.b.metrics.end_resource(n, exemplars, &ctx.s.res_attrs);
        ctx.counts.points += n;
    }
}

struct ScopeMetrics;

impl ObjVisit for ScopeMetrics {
    fn visit<'de, A: MapAccess<'de>>(ctx: &mut Ctx, mut map: A) -> Result<Lv<()>, A::Error> {
        let points0 = ctx.b.metrics.points();
        ctx.s.scope_attrs.clear();
        let mut name = None;
        let mut version = None;
        // The resource and scope columns are filled even when the document turns out
        // malformed, so every column keeps one length and the rollback can cut them.
        let res: Result<(), A::Error> = (|| {
            while let Some(k) = map.next_key::<Key>()? {
                match &*k.camel() {
                    "scope" | "instrumentationLibrary" => {
                        let mut named = Named {
                            attrs: &mut ctx.s.scope_attrs,
                            keys: &ctx.p.scope,
                            name: None,
                            version: None,
                        };
                        let _ = map.next_value_seed(&mut named)?;
                        name = named.name;
                        version = named.version;
                    }
                    "metrics" => {
                        each::<Metric, _>(ctx, &mut map)?.ok();
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        })();
        let n = ctx.b.metrics.points() - points0;
        ctx.b
            .metrics
            .end_scope(n, name.as_deref(), version.as_deref());
        res?;
        Ok(Ok(()))
    }
}

struct Metric;

impl ObjVisit for Metric {
    fn visit<'de, A: MapAccess<'de>>(ctx: &mut Ctx, mut map: A) -> Result<Lv<()>, A::Error> {
        ctx.s.head = MetricHead::default();
        ctx.s.n_points = 0;
        let doc = ctx.doc;
        let mut err = None;
        while let Some(k) = map.next_key::<Key>()? {
            let key = k.camel();
            let t = match &*key {
                "gauge" => Some(MetricType::Gauge),
                "sum" => Some(MetricType::Sum),
                "histogram" => Some(MetricType::Histogram),
                "exponentialHistogram" => Some(MetricType::ExponentialHistogram),
                "summary" => Some(MetricType::Summary),
                _ => None,
            };
            let r = if let Some(t) = t {
                ctx.s.head.metric_type = t;
                map.next_value_seed(Obj::<MetricData>(ctx, PhantomData))?
            } else {
                let h = &mut ctx.s.head;
                match &*key {
                    "name" => to_string(scalar(&mut map)?).map(|v| h.name = v),
                    "description" => to_string(scalar(&mut map)?).map(|v| h.description = v),
                    "unit" => to_string(scalar(&mut map)?).map(|v| h.unit = v),
                    _ => skip(&mut map)?,
                }
            };
            keep_first_at(&mut err, doc, &k.0, r);
        }
        let s = &mut *ctx.s;
        if let Some((e, at)) = err {
            if s.n_points > 0 {
                let name = s.head.name.as_deref().unwrap_or("");
                let reason = format!("metric {name:?}: {e} ({} data points skipped)", s.n_points);
                s.reject(at, reason);
            }
            return Ok(Ok(()));
        }
        if s.head.metric_type == MetricType::Sum && s.head.is_monotonic.is_none() {
            s.head.is_monotonic = Some(false);
        }
        for i in 0..s.n_points {
            match s.point_errs[i].take() {
                None => {
                    zero_defaults(s.head.metric_type, &mut s.points[i]);
                    ctx.b.metrics.append_point(&s.head, &s.points[i])
                }
                Some((e, at)) => {
                    let name = s.head.name.as_deref().unwrap_or("");
                    let reason = format!("data point of metric {name:?} skipped: {e}");
                    s.reject(at, reason);
                }
            }
        }
        Ok(Ok(()))
    }
}

/// Protobuf's JSON mapping leaves out zeros and empty lists, so a field a metric type always
/// has reads as 0 when absent: the same point loads alike from JSON and from protobuf.
fn zero_defaults(t: MetricType, p: &mut PointRec) {
    match t {
        MetricType::Gauge | MetricType::Sum => {}
        MetricType::Histogram => {
            p.count.get_or_insert(0);
            p.bucket_counts.get_or_insert_with(Vec::new);
            p.explicit_bounds.get_or_insert_with(Vec::new);
        }
        MetricType::ExponentialHistogram => {
            p.count.get_or_insert(0);
            p.scale.get_or_insert(0);
            p.zero_count.get_or_insert(0);
            p.zero_threshold.get_or_insert(0.0);
            p.positive.get_or_insert_with(|| (0, Vec::new()));
            p.negative.get_or_insert_with(|| (0, Vec::new()));
        }
        MetricType::Summary => {
            p.count.get_or_insert(0);
            p.sum.get_or_insert(0.0);
            p.quantiles.get_or_insert_with(Vec::new);
        }
    }
}

/// The gauge/sum/histogram/... object: data points and the metric-level fields.
struct MetricData;

impl ObjVisit for MetricData {
    fn visit<'de, A: MapAccess<'de>>(ctx: &mut Ctx, mut map: A) -> Result<Lv<()>, A::Error> {
        let mut err = None;
        while let Some(k) = map.next_key::<Key>()? {
            let r = match &*k.camel() {
                "dataPoints" => {
                    // Each point's own problem is kept beside it; this level stays clean.
                    let _ = each::<Point, _>(ctx, &mut map)?;
                    Ok(())
                }
                "aggregationTemporality" => to_enum(
                    &scalar(&mut map)?,
                    "aggregation temporality",
                    Temporality::from_i64,
                    Temporality::from_name,
                )
                .map(|v| ctx.s.head.temporality = v),
                "isMonotonic" => to_bool(&scalar(&mut map)?).map(|v| ctx.s.head.is_monotonic = v),
                _ => skip(&mut map)?,
            };
            keep_first(&mut err, &k.0, r);
        }
        Ok(err.map_or(Ok(()), Err))
    }
}

fn scalars_to<'de, T, A: MapAccess<'de>>(
    map: &mut A,
    f: impl Fn(&Scalar) -> Lv<Option<T>>,
) -> Result<Lv<Option<Vec<T>>>, A::Error> {
    let v: Option<Vec<Scalar<'de>>> = map.next_value()?;
    Ok(match v {
        None => Ok(None),
        Some(v) => v
            .iter()
            .map(|x| f(x).and_then(|o| o.ok_or_else(|| "null in an array".to_string())))
            .collect::<Lv<Vec<T>>>()
            .map(Some),
    })
}

struct Point;

impl ObjVisit for Point {
    fn visit<'de, A: MapAccess<'de>>(ctx: &mut Ctx, mut map: A) -> Result<Lv<()>, A::Error> {
        let i = next_slot(&mut ctx.s.points, &mut ctx.s.n_points);
        if ctx.s.point_errs.len() <= i {
            ctx.s.point_errs.push(None);
        }
        let doc = ctx.doc;
        let keys = &ctx.p.point;
        let exemplar_keys = &ctx.p.exemplar;
        let p = &mut ctx.s.points[i];
        let mut attrs = std::mem::take(&mut p.attrs);
        attrs.clear();
        *p = PointRec {
            attrs,
            ..PointRec::default()
        };
        let mut err = None;
        while let Some(k) = map.next_key::<Key>()? {
            let r = match &*k.camel() {
                "attributes" => map.next_value_seed(AttrList(&mut p.attrs, keys))?,
                "startTimeUnixNano" => to_u64(&scalar(&mut map)?).map(|v| p.start_ns = v),
                "timeUnixNano" => to_u64(&scalar(&mut map)?).map(|v| p.time_ns = v),
                "asDouble" => to_f64(&scalar(&mut map)?).map(|v| {
                    if v.is_some() {
                        p.value = v;
                    }
                }),
                "asInt" => to_i64(&scalar(&mut map)?).map(|v| {
                    if let Some(n) = v {
                        p.int_value = Some(n);
                        p.value = Some(n as f64);
                    }
                }),
                "count" => to_count(&scalar(&mut map)?).map(|v| p.count = v),
                "sum" => to_f64(&scalar(&mut map)?).map(|v| p.sum = v),
                "min" => to_f64(&scalar(&mut map)?).map(|v| p.min = v),
                "max" => to_f64(&scalar(&mut map)?).map(|v| p.max = v),
                "flags" => to_i64(&scalar(&mut map)?).map(|v| p.flags = v),
                "bucketCounts" => scalars_to(&mut map, to_count)?.map(|v| p.bucket_counts = v),
                "explicitBounds" => scalars_to(&mut map, to_f64)?.map(|v| p.explicit_bounds = v),
                "scale" => to_i32(&scalar(&mut map)?).map(|v| p.scale = v),
                "zeroCount" => to_count(&scalar(&mut map)?).map(|v| p.zero_count = v),
                "zeroThreshold" => to_f64(&scalar(&mut map)?).map(|v| p.zero_threshold = v),
                "positive" => map.next_value_seed(Buckets(&mut p.positive))?,
                "negative" => map.next_value_seed(Buckets(&mut p.negative))?,
                "quantileValues" => {
                    map.next_value_seed(Quantiles(p.quantiles.get_or_insert_with(Vec::new)))?
                }
                "exemplars" => map.next_value_seed(Exemplars(&mut p.exemplars, exemplar_keys))?,
                _ => skip(&mut map)?,
            };
            keep_first_at(&mut err, doc, &k.0, r);
        }
        ctx.s.point_errs[i] = err;
        Ok(Ok(()))
    }
}

/// Exponential histogram buckets: `{"offset": n, "bucketCounts": [...]}`; `{}` is offset 0
/// with no buckets.
struct Buckets<'c>(&'c mut Option<(i32, Vec<i64>)>);

impl<'de> DeserializeSeed<'de> for Buckets<'_> {
    type Value = Lv<()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<()>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Buckets<'_> {
    type Value = Lv<()>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a buckets object")
    }
    fn visit_unit<E>(self) -> Result<Lv<()>, E> {
        Ok(Ok(()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lv<()>, A::Error> {
        let mut offset = 0;
        let mut counts = Vec::new();
        let mut err = None;
        while let Some(k) = map.next_key::<Key>()? {
            let r = match &*k.camel() {
                "offset" => to_i32(&scalar(&mut map)?).map(|v| offset = v.unwrap_or(0)),
                "bucketCounts" => {
                    scalars_to(&mut map, to_count)?.map(|v| counts = v.unwrap_or_default())
                }
                _ => skip(&mut map)?,
            };
            keep_first(&mut err, &k.0, r);
        }
        *self.0 = Some((offset, counts));
        Ok(err.map_or(Ok(()), Err))
    }
}

struct Quantiles<'c>(&'c mut Vec<(f64, f64)>);

impl<'de> DeserializeSeed<'de> for Quantiles<'_> {
    type Value = Lv<()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<()>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Quantiles<'_> {
    type Value = Lv<()>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of quantile values")
    }
    fn visit_unit<E>(self) -> Result<Lv<()>, E> {
        Ok(Ok(()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lv<()>, A::Error> {
        let mut err = Ok(());
        while let Some(q) =
            seq.next_element::<std::collections::BTreeMap<Key<'de>, Scalar<'de>>>()?
        {
            let mut quantile = None;
            let mut value = None;
            for (k, v) in &q {
                match &*k.0 {
                    "quantile" => quantile = Some(to_f64(v)),
                    "value" => value = Some(to_f64(v)),
                    _ => {}
                }
            }
            // Protobuf's JSON mapping leaves out zeros: a missing field is 0.
            match (
                quantile.unwrap_or(Ok(Some(0.0))),
                value.unwrap_or(Ok(Some(0.0))),
            ) {
                (Ok(q), Ok(v)) => self.0.push((q.unwrap_or(0.0), v.unwrap_or(0.0))),
                (Err(e), _) | (_, Err(e)) => {
                    if err.is_ok() {
                        err = Err(e);
                    }
                }
            }
        }
        Ok(err)
    }
}

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Key<'_> {}
impl PartialOrd for Key<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

struct Exemplars<'c>(&'c mut Vec<ExemplarRec>, &'c Keys);

impl<'de> DeserializeSeed<'de> for Exemplars<'_> {
    type Value = Lv<()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<()>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Exemplars<'_> {
    type Value = Lv<()>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of exemplars")
    }
    fn visit_unit<E>(self) -> Result<Lv<()>, E> {
        Ok(Ok(()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lv<()>, A::Error> {
        let mut err = Ok(());
        loop {
            let mut e = ExemplarRec::default();
            match seq.next_element_seed(ExemplarSeed(&mut e, self.1))? {
                None => break,
                Some(Ok(())) => self.0.push(e),
                Some(Err(x)) => {
                    if err.is_ok() {
                        err = Err(format!("exemplar: {x}"));
                    }
                }
            }
        }
        Ok(err)
    }
}

struct ExemplarSeed<'c>(&'c mut ExemplarRec, &'c Keys);

impl<'de> DeserializeSeed<'de> for ExemplarSeed<'_> {
    type Value = Lv<()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lv<()>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ExemplarSeed<'_> {
    type Value = Lv<()>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an exemplar object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lv<()>, A::Error> {
        let e = self.0;
        let mut err = None;
        while let Some(k) = map.next_key::<Key>()? {
            let r = match &*k.camel() {
                "filteredAttributes" => {
                    map.next_value_seed(AttrList(&mut e.filtered_attrs, self.1))?
                }
                "timeUnixNano" => to_u64(&scalar(&mut map)?).map(|v| e.time_ns = v),
                "asDouble" => to_f64(&scalar(&mut map)?).map(|v| {
                    if v.is_some() {
                        e.value = v;
                    }
                }),
                "asInt" => to_i64(&scalar(&mut map)?).map(|v| {
                    if let Some(n) = v {
                        e.value = Some(n as f64);
                    }
                }),
                "traceId" => to_id::<16>(&scalar(&mut map)?).map(|v| e.trace_id = v),
                "spanId" => to_id::<8>(&scalar(&mut map)?).map(|v| e.span_id = v),
                _ => skip(&mut map)?,
            };
            keep_first(&mut err, &k.0, r);
        }
        Ok(err.map_or(Ok(()), Err))
    }
}
