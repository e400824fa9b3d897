//! The SQL library: `queries/*.sql`, embedded in the binary, plus any folder given with
//! `--queries DIR`. Each file opens with a header comment:
//!
//! ```sql
//! -- name: slow_shipping_before_abandonment
//! -- description: Carts abandoned right after a slow shipping quote, ranked by cart value.
//! -- param: threshold_ms = 2000  -- quotes slower than this, in milliseconds
//! SELECT ... WHERE duration_ms > ${threshold_ms}
//! ```
//!
//! `${name}` is replaced by the parameter's value: numbers (when the default is a number)
//! are checked to be numbers, anything else is inserted with its single quotes doubled, to
//! sit inside a string literal the query writes itself (`'${operation}'`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

/// The built-in queries, in the order `cartscope queries` lists them.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "slow_shipping_before_abandonment",
        include_str!("../../queries/slow_shipping_before_abandonment.sql"),
    ),
    (
        "error_before_abandonment",
        include_str!("../../queries/error_before_abandonment.sql"),
    ),
    (
        "high_value_abandoned",
        include_str!("../../queries/high_value_abandoned.sql"),
    ),
    (
        "abandonment_by_last_operation",
        include_str!("../../queries/abandonment_by_last_operation.sql"),
    ),
    ("funnel", include_str!("../../queries/funnel.sql")),
    (
        "latency_vs_conversion",
        include_str!("../../queries/latency_vs_conversion.sql"),
    ),
    (
        "exemplar_drilldown",
        include_str!("../../queries/exemplar_drilldown.sql"),
    ),
    (
        "reference_correlation",
        include_str!("../../queries/reference_correlation.sql"),
    ),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub default: String,
    pub doc: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub name: String,
    pub description: String,
    pub params: Vec<Param>,
    pub sql: String,
    /// Where it came from: `builtin` or the file's path.
    pub origin: String,
}

impl Query {
    /// Parses a query file's header and body.
    pub fn parse(text: &str, origin: &str, fallback_name: &str) -> Result<Query> {
        let mut name = None;
        let mut description = String::new();
        let mut params = Vec::new();
        let mut in_description = false;
        for line in text.lines() {
            let Some(c) = line.trim_start().strip_prefix("--") else {
                if !line.trim().is_empty() {
                    break;
                }
                continue;
            };
            let c = c.trim();
            if let Some(v) = c.strip_prefix("name:") {
                name = Some(v.trim().to_string());
                in_description = false;
            } else if let Some(v) = c.strip_prefix("description:") {
                description = v.trim().to_string();
                in_description = true;
            } else if let Some(v) = c.strip_prefix("param:") {
                in_description = false;
                let (decl, doc) = v.split_once("--").unwrap_or((v, ""));
                let (pname, default) = decl.split_once('=').ok_or_else(|| {
                    anyhow!("{origin}: `-- param: {}` needs a default: `-- param: name = value  -- what it is`", v.trim())
                })?;
                params.push(Param {
                    name: pname.trim().to_string(),
                    default: default.trim().to_string(),
                    doc: doc.trim().to_string(),
                });
            } else if in_description && !c.is_empty() {
                description.push(' ');
                description.push_str(c);
            } else {
                in_description = false;
            }
        }
        Ok(Query {
            name: name.unwrap_or_else(|| fallback_name.to_string()),
            description,
            params,
            sql: text.to_string(),
            origin: origin.to_string(),
        })
    }

    /// The SQL with every `${param}` replaced: `given` overrides the defaults.
    pub fn render(&self, given: &[(String, String)]) -> Result<String> {
        for (k, _) in given {
            if !self.params.iter().any(|p| &p.name == k) {
                let valid = if self.params.is_empty() {
                    "it takes no parameters".to_string()
                } else {
                    format!(
                        "its parameters are {}",
                        self.params
                            .iter()
                            .map(|p| format!("{} (default {})", p.name, p.default))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                bail!("query '{}' has no parameter '{k}': {valid}", self.name);
            }
        }
        // One pass over the text, so a value that itself contains `${..}` is never expanded.
        let mut sql = String::with_capacity(self.sql.len());
        let mut rest = self.sql.as_str();
        while let Some(i) = rest.find("${") {
            sql.push_str(&rest[..i]);
            let end = rest[i..].find('}').map_or(rest.len(), |e| i + e + 1);
            let name = &rest[i + 2..end.saturating_sub(1).max(i + 2)];
            let Some(p) = self.params.iter().find(|p| p.name == name) else {
                bail!(
                    "query '{}' uses {} but its header declares no such parameter (add `-- param: NAME = default`)",
                    self.name,
                    &rest[i..end]
                );
            };
            let value = given
                .iter()
                .rev()
                .find(|(k, _)| k == &p.name)
                .map(|(_, v)| v.as_str())
                .unwrap_or(&p.default);
            let is_number = |v: &str| v.trim().parse::<f64>().is_ok_and(|f| f.is_finite());
            if is_number(&p.default) {
                if !is_number(value) {
                    bail!(
                        "--param {}={value}: query '{}' expects a number (default {})",
                        p.name,
                        self.name,
                        p.default
                    );
                }
                sql.push_str(value.trim());
            } else {
                sql.push_str(&value.replace('\'', "''"));
            }
            rest = &rest[end..];
        }
        sql.push_str(rest);
        Ok(sql)
    }
}

/// The built-in queries and those in `dirs` (a user's query with a built-in's name replaces it).
pub fn library(dirs: &[PathBuf]) -> Result<Vec<Query>> {
    let mut out: Vec<Query> = BUILTIN
        .iter()
        .map(|(name, text)| Query::parse(text, "builtin", name))
        .collect::<Result<_>>()?;
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("--queries '{}' cannot be read", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        for f in files {
            let q = from_file(&f)?;
            out.retain(|o| o.name != q.name);
            out.push(q);
        }
    }
    Ok(out)
}

pub fn from_file(path: &Path) -> Result<Query> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the query file '{}'", path.display()))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("query");
    Query::parse(&text, &path.display().to_string(), stem)
}

/// Finds a library query by name; the error lists the names.
pub fn find(lib: &[Query], name: &str) -> Result<Query> {
    lib.iter().find(|q| q.name == name).cloned().ok_or_else(|| {
        anyhow!(
            "no query named '{name}': the library has {} (see `cartscope queries`), or give a FILE.sql or -e 'SQL'",
            lib.iter().map(|q| q.name.as_str()).collect::<Vec<_>>().join(", ")
        )
    })
}

/// Shows the line an SQL parse error points at, with a caret under the column.
pub fn locate(sql: &str, err: &str) -> Option<String> {
    let at = err.find("Line: ")?;
    let rest = &err[at + 6..];
    let line: usize = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let col_at = rest.find("Column: ")?;
    let col: usize = rest[col_at + 8..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let text = sql.lines().nth(line.checked_sub(1)?)?;
    Some(format!(
        "line {line}: {text}\n{}^",
        " ".repeat(col.saturating_sub(1) + format!("line {line}: ").len())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "-- name: demo\n-- description: Demo query\n--   on two lines.\n-- param: ms = 2000  -- slower than this\n-- param: op = shipping.calculate_rates\nSELECT * FROM traces WHERE duration_ms > ${ms} AND operation_name = '${op}'\n";

    #[test]
    fn header_and_parameters() {
        let q = Query::parse(Q, "t", "x").unwrap();
        assert_eq!(q.name, "demo");
        assert_eq!(q.description, "Demo query on two lines.");
        assert_eq!(
            q.params[0],
            Param {
                name: "ms".into(),
                default: "2000".into(),
                doc: "slower than this".into()
            }
        );
        let sql = q.render(&[("op".into(), "it's".into())]).unwrap();
        assert!(sql.contains("> 2000 AND operation_name = 'it''s'"));
        let e = q
            .render(&[("nope".into(), "1".into())])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ms (default 2000), op (default shipping.calculate_rates)"),
            "{e}"
        );
        assert!(q.render(&[("ms".into(), "1; DROP".into())]).is_err());
    }

    #[test]
    fn every_builtin_parses_and_every_file_is_builtin() {
        let lib = library(&[]).unwrap();
        assert_eq!(lib.len(), BUILTIN.len());
        for q in &lib {
            assert!(!q.description.is_empty(), "{} has no description", q.name);
            q.render(&[]).unwrap();
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "sql") {
                let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
                assert!(
                    BUILTIN.iter().any(|(n, _)| *n == stem),
                    "queries/{stem}.sql is not embedded in BUILTIN"
                );
            }
        }
    }

    #[test]
    fn parse_errors_point_at_the_column() {
        let s = locate(
            "SELECT\nFROM x",
            "sql parser error: Expected: an expression, found: FROM at Line: 2, Column: 1",
        )
        .unwrap();
        assert_eq!(s, "line 2: FROM x\n        ^");
    }
}
