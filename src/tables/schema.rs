//! The canonical tables: their names, columns and types, defined here once.
//!
//! Every reader (OTLP/JSON, OTLP protobuf, Parquet) produces batches in exactly these schemas,
//! the Parquet dataset stores them, and SQL sees them. Names are snake_case so analysts never
//! have to quote them. Timestamps are microsecond UTC (what Spark, Trino and DuckDB all read);
//! there are no unsigned integers. Attribute maps are `Map<Utf8, Utf8>` so that
//! `attributes['cart.id']` works as written.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// A value for each canonical table, indexed by `Table` (`rows[Table::Traces]`).
pub type PerTable<T> = enum_map::EnumMap<Table, T>;

/// The canonical tables, in the order `cartscope schema` and `cartscope tables` list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, enum_map::Enum)]
pub enum Table {
    Traces,
    SpanEvents,
    SpanLinks,
    Metrics,
    Exemplars,
    Logs,
}

impl Table {
    pub const ALL: [Table; 6] = [
        Table::Traces,
        Table::SpanEvents,
        Table::SpanLinks,
        Table::Metrics,
        Table::Exemplars,
        Table::Logs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Traces => "traces",
            Table::SpanEvents => "span_events",
            Table::SpanLinks => "span_links",
            Table::Metrics => "metrics",
            Table::Exemplars => "exemplars",
            Table::Logs => "logs",
        }
    }

    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The column that places a row in time: it orders rows within a Parquet file and picks
    /// the `dt=` partition.
    pub fn time_column(self) -> &'static str {
        match self {
            Table::Traces => "start_time",
            Table::SpanEvents => "timestamp",
            Table::SpanLinks => "span_start_time",
            Table::Metrics => "timestamp",
            Table::Exemplars => "timestamp",
            Table::Logs => "timestamp",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Table::Traces => "one row per span (also visible as the view `spans`)",
            Table::SpanEvents => "one row per span event (exceptions, annotations)",
            Table::SpanLinks => "one row per span link",
            Table::Metrics => "one row per metric data point, every metric type",
            Table::Exemplars => {
                "one row per exemplar: links a metric point to the span that produced it"
            }
            Table::Logs => {
                "one row per log record, with the trace and span it was written in when known"
            }
        }
    }

    /// Whether the replay adds rows of its own to this table (`traces` and `metrics`). SQL
    /// then sees the table as a view over the rows read from the input (`observed_NAME`) and
    /// the rows the replay derived (`derived_NAME`), with a `derived` column to tell them
    /// apart; the stored data and the readers know only the canonical schema.
    pub fn takes_derived_rows(self) -> bool {
        matches!(self, Table::Traces | Table::Metrics)
    }

    /// The name the rows read from the input are registered under: `observed_traces`, or the
    /// table's own name for a table without derived rows.
    pub fn observed_name(self) -> &'static str {
        match self {
            Table::Traces => "observed_traces",
            Table::Metrics => "observed_metrics",
            t => t.name(),
        }
    }

    /// The name of the replay's rows for this table (`derived_traces`), if it takes any.
    pub fn derived_name(self) -> Option<&'static str> {
        match self {
            Table::Traces => Some("derived_traces"),
            Table::Metrics => Some("derived_metrics"),
            _ => None,
        }
    }

    /// The columns SQL sees under the table's name: the canonical ones, and `derived` last
    /// for a table that takes derived rows.
    pub fn view_schema(self) -> SchemaRef {
        let s = self.schema();
        if !self.takes_derived_rows() {
            return s;
        }
        let mut fields: Vec<Field> = s.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("derived", DataType::Boolean, false));
        Arc::new(Schema::new(fields))
    }

    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: OnceLock<PerTable<SchemaRef>> = OnceLock::new();
        SCHEMAS.get_or_init(|| {
            PerTable::from_fn(|t| {
                Arc::new(match t {
                    Table::Traces => traces_schema(),
                    Table::SpanEvents => span_events_schema(),
                    Table::SpanLinks => span_links_schema(),
                    Table::Metrics => metrics_schema(),
                    Table::Exemplars => exemplars_schema(),
                    Table::Logs => logs_schema(),
                })
            })
        })[self]
            .clone()
    }
}

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// `Map<Utf8, Utf8>` with arrow-rs's default field names (`entries`, `keys`, `values`). Files
/// cartscope writes read back with these names; other writers' maps (`key_value`, `key`,
/// `value`) are rebuilt to this type by `read::parquet::conform`.
pub fn attributes_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", DataType::Utf8, true),
            ])),
            false,
        )),
        false,
    )
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn ts(name: &str) -> Field {
    Field::new(name, timestamp_type(), true)
}
fn f64_(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}
fn i64_(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}
fn i32_(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}
fn map(name: &str) -> Field {
    Field::new(name, attributes_type(), true)
}

fn traces_schema() -> Schema {
    Schema::new(vec![
        utf8("trace_id"),
        utf8("span_id"),
        utf8("parent_span_id"),
        utf8("trace_state"),
        utf8("operation_name"),
        utf8("service_name"),
        utf8("span_kind"),
        ts("start_time"),
        ts("end_time"),
        f64_("duration_ms"),
        utf8("status_code"),
        utf8("status_message"),
        map("attributes"),
        map("resource_attributes"),
        utf8("scope_name"),
        utf8("scope_version"),
        map("scope_attributes"),
        i64_("flags"),
        i64_("dropped_attributes_count"),
        i64_("dropped_events_count"),
        i64_("dropped_links_count"),
    ])
}

fn span_events_schema() -> Schema {
    Schema::new(vec![
        utf8("trace_id"),
        utf8("span_id"),
        ts("timestamp"),
        utf8("name"),
        map("attributes"),
        i64_("dropped_attributes_count"),
        utf8("service_name"),
    ])
}

fn span_links_schema() -> Schema {
    Schema::new(vec![
        utf8("trace_id"),
        utf8("span_id"),
        ts("span_start_time"),
        utf8("linked_trace_id"),
        utf8("linked_span_id"),
        utf8("trace_state"),
        map("attributes"),
        i64_("flags"),
        i64_("dropped_attributes_count"),
    ])
}

fn metrics_schema() -> Schema {
    Schema::new(vec![
        utf8("name"),
        utf8("description"),
        utf8("unit"),
        utf8("metric_type"),
        ts("timestamp"),
        ts("start_timestamp"),
        f64_("value"),
        i64_("int_value"),
        i64_("count"),
        f64_("sum"),
        f64_("min"),
        f64_("max"),
        Field::new("bucket_counts", list_of(DataType::Int64), true),
        Field::new("explicit_bounds", list_of(DataType::Float64), true),
        i32_("scale"),
        i64_("zero_count"),
        f64_("zero_threshold"),
        i32_("positive_offset"),
        Field::new("positive_bucket_counts", list_of(DataType::Int64), true),
        i32_("negative_offset"),
        Field::new("negative_bucket_counts", list_of(DataType::Int64), true),
        Field::new("quantiles", list_of(DataType::Float64), true),
        Field::new("quantile_values", list_of(DataType::Float64), true),
        Field::new("is_monotonic", DataType::Boolean, true),
        utf8("aggregation_temporality"),
        i64_("flags"),
        map("attributes"),
        map("resource_attributes"),
        utf8("service_name"),
        utf8("scope_name"),
        utf8("scope_version"),
    ])
}

fn exemplars_schema() -> Schema {
    Schema::new(vec![
        utf8("metric_name"),
        ts("point_timestamp"),
        map("point_attributes"),
        ts("timestamp"),
        f64_("value"),
        utf8("trace_id"),
        utf8("span_id"),
        map("filtered_attributes"),
        utf8("service_name"),
    ])
}

/// OTLP log records. `timestamp` is the record's time, or its observed time when the producer
/// left the time unset (what the OpenTelemetry data model tells consumers to use);
/// `observed_timestamp` is kept as given. `body` is an AnyValue as text: a string as it is,
/// anything else as compact JSON, like attribute values.
fn logs_schema() -> Schema {
    Schema::new(vec![
        ts("timestamp"),
        ts("observed_timestamp"),
        i32_("severity_number"),
        utf8("severity_text"),
        utf8("body"),
        map("attributes"),
        map("resource_attributes"),
        utf8("trace_id"),
        utf8("span_id"),
        utf8("event_name"),
        utf8("service_name"),
        utf8("scope_name"),
        utf8("scope_version"),
        i64_("flags"),
        i64_("dropped_attributes_count"),
    ])
}

/// The replay's `carts` table: one row per cart (see `replay.rs`). The first columns are the
/// ones every later command relies on, in this order.
pub fn carts_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                // Never null (every cart has an id), and said so: the replay's tables are
                // stored in cart_id order, which then serves an ORDER BY and a merge join
                // alike (they ask for nulls last and first).
                Field::new("cart_id", DataType::Utf8, false),
                utf8("user_id"),
                ts("first_seen"),
                ts("last_activity"),
                utf8("last_stage"),
                i64_("item_count"),
                f64_("total_value"),
                utf8("outcome"),
                ts("abandoned_at"),
                utf8("last_operation"),
                f64_("last_op_duration_ms"),
                utf8("last_op_status"),
                utf8("last_trace_id"),
                utf8("suspected_cause"),
                i64_("span_count"),
                Field::new("signals", list_of(DataType::Utf8), true),
            ]))
        })
        .clone()
}

/// The replay's `operation_stats`: one row per operation of the observed spans.
pub fn operation_stats_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let f = |name: &str| Field::new(name, DataType::Float64, false);
            Arc::new(Schema::new(vec![
                Field::new("operation_name", DataType::Utf8, false),
                Field::new("spans", DataType::Int64, false),
                f("total_ms"),
                f("mean_ms"),
                f("p50_ms"),
                f("p95_ms"),
                f("signal_ms"),
            ]))
        })
        .clone()
}

/// One line per column, for `cartscope schema`.
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 => "Utf8".into(),
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) => format!("Timestamp(us, {tz})"),
        DataType::Map(_, _) => "Map<Utf8, Utf8>".into(),
        DataType::List(f) => format!("List<{}>", type_name(f.data_type())),
        other => format!("{other}"),
    }
}

/// A 128-bit key for a span's identity from its parts (trace and span id, and its cart where
/// that counts): the repeat checks of the loader and the replay use it. Each part is
/// length-prefixed, so ("ab", "c") and ("a", "bc") differ.
///
/// Hashed in one call over the parts laid end to end (on the stack when they fit, as a
/// trace and span id always do): XXH3's streaming state gives the same digest, but setting
/// it up for every span was 1.7% of a raw 100k-cart `detect` (perf, real JS SDK export).
pub fn span_key(parts: &[&str]) -> u128 {
    let len: usize = parts.iter().map(|p| 8 + p.len()).sum();
    let mut stack = [0u8; 128];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let mut at = 0;
    for part in parts {
        buf[at..at + 8].copy_from_slice(&(part.len() as u64).to_le_bytes());
        buf[at + 8..at + 8 + part.len()].copy_from_slice(part.as_bytes());
        at += 8 + part.len();
    }
    xxhash_rust::xxh3::xxh3_128(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_key_is_the_streaming_digest_of_its_length_prefixed_parts() {
        // XXH3 hashes up to 128 bytes, 129 to 240 and longer inputs each its own way, and
        // span_key lays out up to 128 on the stack: cases on each side of those lines.
        let long = "x".repeat(300);
        let (edge, mid_a, mid_b) = ("e".repeat(120), "m".repeat(60), "n".repeat(74));
        for parts in [
            vec![edge.as_str()],
            vec![mid_a.as_str(), mid_b.as_str()],
            vec![],
            vec![""],
            vec!["4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"],
            vec!["ab", "c"],
            vec!["a", "bc"],
            vec![long.as_str(), "cart-1"],
        ] {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            for p in &parts {
                h.update(&(p.len() as u64).to_le_bytes());
                h.update(p.as_bytes());
            }
            assert_eq!(span_key(&parts), h.digest128(), "{parts:?}");
        }
        assert_ne!(span_key(&["ab", "c"]), span_key(&["a", "bc"]));
    }

    #[test]
    fn every_column_is_snake_case_and_unique() {
        for t in Table::ALL {
            let schema = t.schema();
            let mut seen = std::collections::HashSet::new();
            for f in schema.fields() {
                let n = f.name();
                assert!(
                    n.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                    "{}.{n} is not snake_case",
                    t.name()
                );
                assert!(seen.insert(n.clone()), "{}.{n} twice", t.name());
            }
            assert!(schema.field_with_name(t.time_column()).is_ok());
        }
    }

    #[test]
    fn no_unsigned_or_nanosecond_columns() {
        for t in Table::ALL {
            for f in t.schema().fields() {
                let dt = f.data_type();
                assert!(!dt.is_unsigned_integer(), "{}", f.name());
                if let DataType::Timestamp(unit, tz) = dt {
                    assert_eq!(*unit, TimeUnit::Microsecond);
                    assert_eq!(tz.as_deref(), Some("UTC"));
                }
            }
        }
    }
}
