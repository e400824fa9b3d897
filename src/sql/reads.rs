//! What SQL reads of a raw export's attributes, found in its syntax before any data is loaded,
//! so that `query` (and `check`'s rules, and a shell script) parse only those attribute keys
//! (`read::projection`).
//!
//! The rules, all on the side of reading too much:
//! - `attributes['cart.id']` (any qualifier) reads that key of every attribute column named
//!   `attributes`: spans', span events', span links' and metric points'; likewise
//!   `resource_attributes[...]`, `scope_attributes[...]`, `point_attributes[...]` and
//!   `filtered_attributes[...]`.
//! - Any other mention of such a column (selected whole, passed to a function, a key that is
//!   not a string literal) reads every key of it.
//! - `*` (or `t.*`), a NATURAL join, a join USING columns and a table alias that renames
//!   columns (`spans AS s(a, b, ...)`) read every key of every attribute column of the tables
//!   the statement names; a name that is neither a table cartscope registers nor one of the
//!   statement's own CTEs (a view made earlier in a shell) reads everything.
//! - Of the span columns the replay does without (`read::projection`'s `SpanColumn`s:
//!   `parent_span_id`, `trace_state`, `flags`, ...), a statement that names a table of spans
//!   (`traces`, `spans`, `observed_traces`, `derived_traces`) reads those it names anywhere
//!   (`t.flags`, `flags`, even as another table's column or an alias), and every one when it
//!   may read columns without naming them (as above: a wildcard, NATURAL, USING, renaming).
//!   A statement that names no table of spans reads none of them.
//! - SQL that does not parse, or a statement other than a query (DDL, COPY, EXPLAIN of one),
//!   reads everything; DataFusion then reports what is wrong with it as usual.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    AccessExpr, Expr, ObjectName, Query, Select, SelectItem, Statement, Subscript, TableFactor,
    Value, Visit, Visitor,
};

use crate::read::projection::{Keys, Projection};
use crate::tables::builders::SpanColumn;

/// The kinds of attribute list behind a column name.
fn kinds(column: &str) -> &'static [Kind] {
    match column {
        "attributes" => &[Kind::Span, Kind::Event, Kind::Link, Kind::Point, Kind::Log],
        "resource_attributes" => &[Kind::Resource],
        "scope_attributes" => &[Kind::Scope],
        "point_attributes" => &[Kind::Point],
        "filtered_attributes" => &[Kind::Exemplar],
        _ => &[],
    }
}

/// The attribute columns of a relation SQL can name, or None for a name cartscope does not
/// register (which may hold anything).
fn relation_columns(name: &str) -> Option<&'static [&'static str]> {
    const SPANS: &[&str] = &["attributes", "resource_attributes", "scope_attributes"];
    const METRICS: &[&str] = &["attributes", "resource_attributes"];
    const EXEMPLARS: &[&str] = &["point_attributes", "filtered_attributes"];
    Some(match name {
        name if is_spans(name) => SPANS,
        "span_events" | "span_links" => &["attributes"],
        "metrics" | "observed_metrics" | "derived_metrics" => METRICS,
        "exemplars" | "cart_exemplars" => EXEMPLARS,
        "logs" | "cart_logs" => METRICS,
        "carts" | "cart_events" | "abandonments" | "stages" | "operation_stats" => &[],
        _ => return None,
    })
}

/// Whether a relation SQL can name is a table of spans (with the span columns).
fn is_spans(name: &str) -> bool {
    matches!(
        name,
        "traces" | "spans" | "observed_traces" | "derived_traces"
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Span,
    Resource,
    Scope,
    Event,
    Link,
    Point,
    Exemplar,
    Log,
}

#[derive(Default)]
struct Reads {
    /// Keys read by a literal subscript, per column name.
    keys: BTreeMap<String, BTreeSet<String>>,
    /// Mentions of each attribute column, and how many of them were literal subscripts.
    mentions: BTreeMap<String, (usize, usize)>,
    relations: BTreeSet<String>,
    ctes: BTreeSet<String>,
    wildcard: bool,
    everything: bool,
    /// Every name an expression mentions (the last part of `t.name`), lowercased.
    names: BTreeSet<String>,
}

fn last_ident(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.to_lowercase()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.to_lowercase()),
        _ => None,
    }
}

impl Visitor for Reads {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Some(name) = last_ident(e) {
            if !kinds(&name).is_empty() {
                self.mentions.entry(name.clone()).or_default().0 += 1;
            }
            self.names.insert(name);
        }
        if let Expr::CompoundFieldAccess { root, access_chain } = e {
            // `attributes['k']` is (attributes, [k]); `t.attributes['k']` may come as
            // (t, [.attributes, k]): the column is the last name before the first subscript.
            let dots = access_chain
                .iter()
                .take_while(|a| matches!(a, AccessExpr::Dot(_)))
                .count();
            let name = match dots {
                0 => last_ident(root),
                n => match &access_chain[n - 1] {
                    AccessExpr::Dot(e) => last_ident(e),
                    AccessExpr::Subscript(_) => None,
                },
            };
            let key = match access_chain.get(dots) {
                Some(AccessExpr::Subscript(Subscript::Index {
                    index: Expr::Value(v),
                })) => match &v.value {
                    Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
                    _ => None,
                },
                _ => None,
            };
            if let (Some(name), Some(key)) = (name, key) {
                if !kinds(&name).is_empty() {
                    self.mentions.entry(name.clone()).or_default().1 += 1;
                    self.keys.entry(name).or_default().insert(key);
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
        let parts: Vec<String> =
            r.0.iter()
                .filter_map(|p| p.as_ident().map(|i| i.value.to_lowercase()))
                .collect();
        match parts.as_slice() {
            [schema, _] if schema == "information_schema" => {}
            [.., name] if parts.len() <= 3 => {
                self.relations.insert(name.clone());
            }
            _ => self.everything = true,
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_lowercase());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<()> {
        if s.projection.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(_, _)
            )
        }) {
            self.wildcard = true;
        }
        // A NATURAL join or one USING columns reads columns it does not name, as a wildcard
        // does: found in the statement's text as the parser writes it back (a string that
        // happens to hold these words only makes the statement read more).
        let text = s.to_string();
        if text.contains("NATURAL ") || text.contains(" USING") {
            self.wildcard = true;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        // `FROM spans AS s(a, b, ...)` renames the table's columns by position: every column
        // may be read under a name of the statement's own.
        if let TableFactor::Table { alias: Some(a), .. } = t {
            if !a.columns.is_empty() {
                self.wildcard = true;
            }
        }
        ControlFlow::Continue(())
    }
}

impl Reads {
    fn projection(&self) -> Projection {
        if self.everything {
            return Projection::everything();
        }
        let mut all: BTreeSet<Kind> = BTreeSet::new();
        let mut keys: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
        for (column, (mentions, subscripts)) in &self.mentions {
            if mentions > subscripts {
                all.extend(kinds(column));
            }
        }
        for (column, ks) in &self.keys {
            for k in kinds(column) {
                keys.entry(*k).or_default().extend(ks.iter().cloned());
            }
        }
        if self.wildcard {
            for r in self.relations.difference(&self.ctes) {
                match relation_columns(r) {
                    Some(columns) => {
                        for c in columns {
                            all.extend(kinds(c));
                        }
                    }
                    None => return Projection::everything(),
                }
            }
        } else if self
            .relations
            .difference(&self.ctes)
            .any(|r| relation_columns(r).is_none())
        {
            // A view or table cartscope does not know may read anything.
            return Projection::everything();
        }
        let of = |k: Kind| -> Keys {
            if all.contains(&k) {
                Keys::All
            } else {
                Keys::only(keys.get(&k).into_iter().flatten().cloned())
            }
        };
        Projection {
            span: of(Kind::Span),
            resource: of(Kind::Resource),
            scope: of(Kind::Scope),
            event: of(Kind::Event),
            link: of(Kind::Link),
            point: of(Kind::Point),
            exemplar: of(Kind::Exemplar),
            log: of(Kind::Log),
            logs: self
                .relations
                .difference(&self.ctes)
                .any(|r| r == "logs" || r == "cart_logs"),
            // Of a table of spans, the span columns the statement names; every one when it
            // may read columns without naming them (a wildcard, NATURAL, USING).
            span_columns: if !self.relations.difference(&self.ctes).any(|r| is_spans(r)) {
                Keys::none()
            } else if self.wildcard {
                Keys::All
            } else {
                Keys::only(
                    SpanColumn::ALL
                        .iter()
                        .map(|c| c.name())
                        .filter(|c| self.names.contains(*c)),
                )
            },
        }
    }
}

/// The attributes `sql` (one or more statements) reads, by the rules of the module header.
pub fn sql_reads(sql: &str) -> Projection {
    let Ok(statements) = DFParser::parse_sql(sql) else {
        return Projection::everything();
    };
    let mut r = Reads::default();
    for s in &statements {
        match s {
            DfStatement::Statement(s) if matches!(**s, Statement::Query(_)) => {
                let _ = s.visit(&mut r);
            }
            _ => return Projection::everything(),
        }
    }
    r.projection()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_keys_are_read_and_nothing_else() {
        let p = sql_reads(
            "SELECT t.attributes['cart.id'] AS c, resource_attributes['host.name'] \
             FROM traces t JOIN carts c ON t.trace_id = c.last_trace_id \
             WHERE attributes['cart.stage'] = 'x'",
        );
        let k = Keys::only(["cart.id", "cart.stage"]);
        assert_eq!(p.span, k);
        assert_eq!(p.event, k);
        assert_eq!(p.point, k);
        assert_eq!(p.resource, Keys::only(["host.name"]));
        assert_eq!(p.scope, Keys::none());
        assert_eq!(p.exemplar, Keys::none());
    }

    #[test]
    fn a_whole_column_a_wildcard_or_an_unknown_name_reads_more() {
        let p = sql_reads("SELECT map_keys(attributes) FROM span_events");
        assert_eq!(p.event, Keys::All);
        assert_eq!(p.resource, Keys::none());
        let p = sql_reads("SELECT attributes[k] FROM traces");
        assert_eq!(p.span, Keys::All);
        let p = sql_reads("SELECT * FROM carts");
        assert_eq!(p, Projection::nothing());
        let p = sql_reads("SELECT e.* FROM cart_exemplars e");
        assert_eq!(
            (p.point.clone(), p.exemplar.clone()),
            (Keys::All, Keys::All)
        );
        assert_eq!(p.span, Keys::none());
        let p = sql_reads(
            "WITH x AS (SELECT * FROM carts) SELECT * FROM x JOIN information_schema.tables t ON true",
        );
        assert_eq!(p, Projection::nothing());
        assert!(sql_reads("SELECT * FROM my_view").is_everything());
        assert!(sql_reads("SELECT n FROM my_view").is_everything());
        assert!(sql_reads("CREATE VIEW v AS SELECT 1").is_everything());
        assert!(sql_reads("SELEC nonsense").is_everything());
    }

    #[test]
    fn span_columns_are_read_where_named_and_wherever_columns_go_unnamed() {
        // Named, qualified or not, in any clause.
        let p = sql_reads(
            "SELECT s.parent_span_id, count(*) FROM spans s WHERE flags > 0 \
             GROUP BY 1 ORDER BY max(scope_name)",
        );
        assert_eq!(
            p.span_columns,
            Keys::only(["flags", "parent_span_id", "scope_name"])
        );
        // No table of spans: none, whatever the names.
        assert_eq!(
            sql_reads("SELECT trace_state FROM span_links").span_columns,
            Keys::none()
        );
        assert_eq!(sql_reads("SELECT * FROM carts").span_columns, Keys::none());
        // Spans without any of those columns: none of them.
        assert_eq!(
            sql_reads("SELECT count(*), max(duration_ms) FROM spans").span_columns,
            Keys::none()
        );
        // Read without being named: every one.
        for sql in [
            "SELECT * FROM spans",
            "SELECT s.* FROM spans s",
            "SELECT count(*) FROM spans NATURAL JOIN span_events",
            "SELECT count(*) FROM spans JOIN span_events USING (trace_id, span_id)",
            "WITH x AS (SELECT * FROM traces) SELECT count(*) FROM x",
            "SELECT count(p) FROM spans AS s(a, b, p)",
        ] {
            let p = sql_reads(sql);
            assert_eq!(p.span_columns, Keys::All, "{sql}");
            // And every key of the spans' attribute maps, which such a join may compare.
            assert_eq!((p.span, p.resource), (Keys::All, Keys::All), "{sql}");
        }
        assert!(sql_reads("SELECT flags FROM my_view").is_everything());
    }
}
