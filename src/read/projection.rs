//! What a question reads of a raw export: the attribute keys of each kind of record, and which
//! of the span columns the replay does not need (`SpanColumn`: parent ids, trace state, scope,
//! flags, ...). The parsers keep the other attributes out of the tables and skip their values
//! at tokenising speed (serde's `IgnoredAny`: the JSON is still checked to be well-formed,
//! nothing is built); a span column not read is left all null. The other columns of every
//! table are always read: the replay and its checks rely on them.
//!
//! The stages after this one say what they read (the replay from its lifecycle model, `query`
//! from its SQL plan); this module only holds the answer. `Projection::default()` reads
//! everything, as `ingest` does.
//!
//! What a projection changes besides speed: an attribute or span column that is not read is
//! not checked either, so a wrong-typed value there (which skips its span or data point when
//! it is read: a parent span id that is not an id, an unknown span kind) neither skips nor is
//! reported.

use std::fmt;

use crate::tables::builders::{SpanColumn, SpanColumns};

/// The attribute keys read of one kind of attribute list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Keys {
    /// Every key.
    #[default]
    All,
    /// Only these (sorted, without repeats); none at all when empty.
    Only(Vec<String>),
}

impl Keys {
    /// The keys `keys` name, and no other.
    pub fn only<I, S>(keys: I) -> Keys
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut v: Vec<String> = keys.into_iter().map(Into::into).collect();
        v.sort();
        v.dedup();
        Keys::Only(v)
    }

    pub fn none() -> Keys {
        Keys::Only(Vec::new())
    }

    /// Whether an attribute of this key is read.
    pub fn wants(&self, key: &str) -> bool {
        match self {
            Keys::All => true,
            Keys::Only(v) => v.iter().any(|k| k == key),
        }
    }

    /// Whether no attribute at all is read: the whole list can be skipped.
    pub fn is_none(&self) -> bool {
        matches!(self, Keys::Only(v) if v.is_empty())
    }

    /// These keys and those of `other`.
    pub fn union(&self, other: &Keys) -> Keys {
        match (self, other) {
            (Keys::Only(a), Keys::Only(b)) => Keys::only(a.iter().chain(b).cloned()),
            _ => Keys::All,
        }
    }

    /// Adds one key.
    pub fn with(&self, key: &str) -> Keys {
        self.union(&Keys::only([key]))
    }
}

impl fmt::Display for Keys {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Keys::All => f.write_str("every key"),
            Keys::Only(v) if v.is_empty() => f.write_str("none"),
            Keys::Only(v) => f.write_str(&v.join(", ")),
        }
    }
}

/// The attribute keys a question reads, per kind of attribute list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// Spans' `attributes` (`traces`).
    pub span: Keys,
    /// `resource_attributes` of spans and metric points. `service.name` is always read: it
    /// fills the `service_name` columns.
    pub resource: Keys,
    /// `scope_attributes` of spans and metric points.
    pub scope: Keys,
    /// Span events' `attributes` (`span_events`).
    pub event: Keys,
    /// Span links' `attributes` (`span_links`).
    pub link: Keys,
    /// Metric points' `attributes` (`metrics`).
    pub point: Keys,
    /// Exemplars' filtered attributes (`exemplars.attributes`).
    pub exemplar: Keys,
    /// Log records' `attributes` (`logs`).
    pub log: Keys,
    /// Whether log records are read at all: a question that never looks at `logs` (the
    /// replay alone) skips them whole.
    pub logs: bool,
    /// The `SpanColumn`s of `traces` read, by name (`parent_span_id`, `trace_state`, ...);
    /// the others are left null. `resource_attributes` and `scope_attributes` are not named
    /// here: they are filled when any key of them is read (`resource`, `scope`).
    pub span_columns: Keys,
}

impl Default for Projection {
    /// Everything.
    fn default() -> Projection {
        Projection {
            span: Keys::All,
            resource: Keys::All,
            scope: Keys::All,
            event: Keys::All,
            link: Keys::All,
            point: Keys::All,
            exemplar: Keys::All,
            log: Keys::All,
            logs: true,
            span_columns: Keys::All,
        }
    }
}

/// The resource attribute the `service_name` columns are taken from.
pub const SERVICE_NAME: &str = "service.name";

impl Projection {
    /// Every attribute of every record: what `ingest` reads.
    pub fn everything() -> Projection {
        Projection::default()
    }

    /// This projection, and the log records with it.
    pub fn with_logs(mut self) -> Projection {
        self.logs = true;
        self
    }

    /// No attribute at all but `service.name`; add what a question reads with `union`.
    pub fn nothing() -> Projection {
        Projection {
            span: Keys::none(),
            resource: Keys::none(),
            scope: Keys::none(),
            event: Keys::none(),
            link: Keys::none(),
            point: Keys::none(),
            exemplar: Keys::none(),
            log: Keys::none(),
            logs: false,
            span_columns: Keys::none(),
        }
    }

    /// What both read.
    pub fn union(&self, o: &Projection) -> Projection {
        Projection {
            span: self.span.union(&o.span),
            resource: self.resource.union(&o.resource),
            scope: self.scope.union(&o.scope),
            event: self.event.union(&o.event),
            link: self.link.union(&o.link),
            point: self.point.union(&o.point),
            exemplar: self.exemplar.union(&o.exemplar),
            log: self.log.union(&o.log),
            logs: self.logs || o.logs,
            span_columns: self.span_columns.union(&o.span_columns),
        }
    }

    /// The span columns the parsers fill.
    pub fn span_fills(&self) -> SpanColumns {
        SpanColumns::from_fn(|c| match c {
            SpanColumn::ResourceAttributes => !self.resource.is_none(),
            SpanColumn::ScopeAttributes => !self.scope.is_none(),
            c => self.span_columns.wants(c.name()),
        })
    }

    /// The resource keys the parsers read: the asked ones and `service.name`.
    pub fn resource_keys(&self) -> Keys {
        self.resource.with(SERVICE_NAME)
    }

    pub fn is_everything(&self) -> bool {
        *self == Projection::everything()
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "span attributes: {}; resource: {}; scope: {}; span events: {}; span links: {}; metric points: {}; exemplars: {}; log records: {}; optional span columns: {}",
            self.span,
            self.resource_keys(),
            self.scope,
            self.event,
            self.link,
            self.point,
            self.exemplar,
            if self.logs {
                self.log.to_string()
            } else {
                "not read".to_string()
            },
            match &self.span_columns {
                Keys::All => "all".to_string(),
                k => k.to_string(),
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_union_and_wants() {
        let a = Keys::only(["b", "a", "b"]);
        assert_eq!(a, Keys::Only(vec!["a".into(), "b".into()]));
        assert!(a.wants("a") && !a.wants("c"));
        assert!(Keys::none().is_none() && !a.is_none() && !Keys::All.is_none());
        assert_eq!(a.union(&Keys::only(["c"])), Keys::only(["a", "b", "c"]));
        assert_eq!(a.union(&Keys::All), Keys::All);
        assert!(Keys::All.wants("anything"));
        assert_eq!(
            Projection::nothing().resource_keys(),
            Keys::only([SERVICE_NAME])
        );
        assert!(Projection::everything().is_everything());
        assert!(!Projection::nothing().is_everything());
    }
}
