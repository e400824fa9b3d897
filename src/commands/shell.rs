//! `cartscope shell`: interactive SQL over the same tables `cartscope query` sees (the loaded
//! exports, then carts, cart_events and abandonments from the replay; `NOW()` is the as-of
//! time).
//!
//! On a terminal it is a line editor (rustyline) with history, tab completion of table, view
//! and column names, and backslash commands. Otherwise it reads statements from stdin without
//! prompts and exits with code 2 at the end if any of them failed, so it can be scripted.
//! Both paths feed lines to the same [`Shell`], which writes to any `impl Write`.
//!
//! A statement runs once its `;` is typed (a `;` inside quotes or comments does not count);
//! until then the prompt is the continuation prompt. That small lexer (`split_statements`)
//! stays hand-written: sqlparser's tokenizer fails on a statement half typed, and the shell
//! needs to know only where quotes, comments and `;` are.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::ValueEnum;
use datafusion::prelude::SessionContext;

use crate::output::Format;
use crate::read::projection::Projection;
use crate::sql::reads::sql_reads;

const PROMPT: &str = "cartscope> ";
const CONTINUATION: &str = "        -> ";

const COMMANDS: &[&str] = &["\\d", "\\format", "\\q", "\\?"];

/// The text formats `\format` accepts (Parquet is binary: `cartscope query -f parquet -o`).
const FORMATS: &[Format] = &[
    Format::Table,
    Format::Csv,
    Format::Tsv,
    Format::Json,
    Format::Ndjson,
    Format::Markdown,
];

pub async fn run(a: &crate::cli::ShellArgs, g: &crate::commands::setup::Globals) -> Result<()> {
    if a.data.data.iter().any(|d| d == crate::read::input::STDIN) {
        bail!("--data -: the shell reads its statements from standard input, so the export cannot come from there too: give it as a file, or run one statement with `cartscope query -e SQL --data -`");
    }
    if !FORMATS.contains(&a.format) {
        bail!(
            "--format {} is binary: the shell writes text (use `cartscope query --format {0} --output FILE`)",
            format_name(a.format)
        );
    }
    // A script is read whole first, so that only the attributes its statements read are
    // parsed of raw exports; statements typed at a terminal are not known in advance.
    let script = if std::io::stdin().is_terminal() {
        None
    } else {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)?;
        Some(text)
    };
    let reads = script
        .as_deref()
        .map_or_else(Projection::everything, script_reads);
    let (ctx, summary) =
        crate::commands::setup::open_replayed(&a.data, &a.replay, g, &reads).await?;
    let mut shell = Shell::new(ctx, a.format);
    let Some(script) = script else {
        eprintln!(
            "cartscope shell: {} carts replayed as of {}. End statements with ;  \\? for help, \\q to quit.",
            summary.carts, summary.as_of
        );
        return interactive(&mut shell).await;
    };
    let failed = run_script(
        &mut shell,
        script.as_bytes(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
    .await?;
    if failed > 0 {
        bail!(
            "{failed} statement{} failed",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// What a script's statements read of raw exports' attributes (`sql::reads`); its backslash
/// commands read none.
fn script_reads(script: &str) -> Projection {
    let sql = script
        .lines()
        .filter(|l| !l.trim_start().starts_with('\\'))
        .collect::<Vec<_>>()
        .join("\n");
    let (statements, rest) = split_statements(&sql);
    statements
        .iter()
        .map(|(_, s)| *s)
        .chain([&sql[rest..]])
        .filter(|s| !s.trim().is_empty())
        .fold(Projection::nothing(), |p, s| p.union(&sql_reads(s)))
}

/// Reads statements from `input` to its end (or `\q`) without prompts: results go to `out`,
/// errors to `err`. A statement left without its `;` at the end still runs. Returns how many
/// statements and commands failed. Only a failure to write `out` is an `Err`.
pub async fn run_script(
    shell: &mut Shell,
    input: impl BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<usize> {
    for line in input.lines() {
        if shell.feed_line(&line?, out, err).await? == Flow::Quit {
            return Ok(shell.failures);
        }
    }
    shell.finish(out, err).await?;
    Ok(shell.failures)
}

/// What the caller does after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// The state of one shell session: the context, the output format and the statement being
/// typed.
pub struct Shell {
    ctx: SessionContext,
    format: Format,
    /// Script mode reports errors with the input's line numbers; interactive mode relative to
    /// the statement.
    interactive: bool,
    /// The unfinished statement, and where (line, column) its first character was.
    pending: String,
    pending_at: (usize, usize),
    /// Lines read so far.
    line_no: usize,
    failures: usize,
    /// A statement may have created or dropped a table: completion names are stale.
    names_stale: bool,
}

impl Shell {
    pub fn new(ctx: SessionContext, format: Format) -> Shell {
        Shell {
            ctx,
            format,
            interactive: false,
            pending: String::new(),
            pending_at: (1, 1),
            line_no: 0,
            failures: 0,
            names_stale: false,
        }
    }

    /// Whether a statement is being continued (the prompt is then the continuation prompt).
    pub fn is_continuing(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Forgets the statement being typed (Ctrl-C).
    pub fn reset(&mut self) {
        self.pending.clear();
    }

    /// Feeds text that may hold several lines (a multi-line entry recalled from history).
    pub async fn feed(
        &mut self,
        text: &str,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<Flow> {
        for line in text.split('\n') {
            if self.feed_line(line, out, err).await? == Flow::Quit {
                return Ok(Flow::Quit);
            }
        }
        Ok(Flow::Continue)
    }

    /// Feeds one line: a backslash command runs at once; SQL runs when its `;` arrives.
    pub async fn feed_line(
        &mut self,
        line: &str,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<Flow> {
        self.line_no += 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim();
        if trimmed.starts_with('\\') {
            if !self.pending.is_empty() {
                // Keeps the pending statement's line numbers true to the input.
                self.pending.push('\n');
            }
            return self.command(trimmed, out, err).await;
        }
        if self.pending.is_empty() {
            let word = trimmed.trim_end_matches(';').trim();
            if word.eq_ignore_ascii_case("quit") || word.eq_ignore_ascii_case("exit") {
                return Ok(Flow::Quit);
            }
            if trimmed.is_empty() {
                return Ok(Flow::Continue);
            }
            self.pending_at = (self.line_no, 1);
        }
        self.pending.push_str(line);
        self.pending.push('\n');
        let pending = std::mem::take(&mut self.pending);
        let (statements, rest) = split_statements(&pending);
        for (offset, text) in statements {
            if first_code(text).is_some() {
                let at = advance(self.pending_at, &pending[..offset]);
                self.execute(text, at, out, err).await?;
            }
        }
        if first_code(&pending[rest..]).is_some() {
            self.pending_at = advance(self.pending_at, &pending[..rest]);
            self.pending = pending[rest..].to_string();
        }
        Ok(Flow::Continue)
    }

    /// At the end of the input: runs a last statement that has no `;`.
    pub async fn finish(&mut self, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        if first_code(&pending).is_some() {
            self.execute(&pending, self.pending_at, out, err).await?;
        }
        Ok(())
    }

    fn fail(&mut self, err: &mut dyn Write, msg: &str) -> Result<Flow> {
        self.failures += 1;
        let _ = writeln!(err, "{msg}");
        let _ = err.flush();
        Ok(Flow::Continue)
    }

    /// Runs one statement (`text` without its `;`, first character at `at` in the input).
    /// SQL errors are reported and counted; only a failed write to `out` is an `Err`.
    async fn execute(
        &mut self,
        text: &str,
        at: (usize, usize),
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<()> {
        // In a script the statement is placed where it stands in the input, so the parser's
        // "Line: N, Column: M" and the `locate` caret point into the input itself.
        let sql = if self.interactive {
            text.trim().to_string()
        } else {
            format!("{}{}{}", "\n".repeat(at.0 - 1), " ".repeat(at.1 - 1), text)
        };
        let line = advance(at, &text[..first_code(text).unwrap_or(0)]).0;
        let result = async {
            let df = self.ctx.sql(&sql).await?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            let batches = crate::sql::session::collect_fitted(&self.ctx, df).await?;
            Ok::<_, datafusion::error::DataFusionError>((schema, batches))
        }
        .await;
        match result {
            Ok((schema, batches)) => {
                if schema.fields().is_empty() {
                    // DDL: CREATE VIEW, DROP TABLE ...
                    self.names_stale = true;
                    return Ok(());
                }
                crate::output::write_batches(out, self.format, &schema, &batches, None)?;
                out.flush()?;
                if changes_names(text) {
                    self.names_stale = true;
                }
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                let mut report = if self.interactive {
                    format!("error: {msg}")
                } else {
                    format!("cartscope: error in the statement at line {line}: {msg}")
                };
                if let Some(at) = crate::sql::library::locate(&sql, &msg) {
                    report.push('\n');
                    report.push_str(&at);
                }
                self.fail(err, &report)?;
                Ok(())
            }
        }
    }

    async fn command(
        &mut self,
        line: &str,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<Flow> {
        let (cmd, arg) = match line.split_once(char::is_whitespace) {
            Some((c, a)) => (c, a.trim()),
            None => (line, ""),
        };
        let cmd = cmd.trim_end_matches(';');
        let arg = arg.trim_end_matches(';').trim();
        let prefix = if self.interactive {
            "error".to_string()
        } else {
            format!("cartscope: error at line {}", self.line_no)
        };
        match cmd {
            "\\q" | "\\quit" => Ok(Flow::Quit),
            "\\?" | "\\h" | "\\help" => {
                write!(out, "{}", help(self.format))?;
                out.flush()?;
                Ok(Flow::Continue)
            }
            "\\format" | "\\f" => {
                if arg.is_empty() {
                    writeln!(out, "format: {}", format_name(self.format))?;
                    out.flush()?;
                    return Ok(Flow::Continue);
                }
                match Format::from_str(arg, true) {
                    Ok(f) if FORMATS.contains(&f) => {
                        self.format = f;
                        Ok(Flow::Continue)
                    }
                    _ => self.fail(
                        err,
                        &format!(
                            "{prefix}: unknown format '{arg}': use one of {}",
                            format_list()
                        ),
                    ),
                }
            }
            "\\d" => {
                if arg.is_empty() {
                    self.list_tables(out, err, &prefix).await
                } else {
                    self.describe(arg, out, err, &prefix).await
                }
            }
            _ => self.fail(
                err,
                &format!("{prefix}: unknown command {cmd}: \\? lists the commands"),
            ),
        }
    }

    async fn list_tables(
        &mut self,
        out: &mut dyn Write,
        err: &mut dyn Write,
        prefix: &str,
    ) -> Result<Flow> {
        let default = self.default_schema();
        let sql = format!(
            "SELECT CASE WHEN table_schema = '{s}' THEN table_name \
                    ELSE table_schema || '.' || table_name END AS name, \
                    CASE table_type WHEN 'BASE TABLE' THEN 'table' WHEN 'VIEW' THEN 'view' \
                    ELSE lower(table_type) END AS \"type\" \
             FROM information_schema.tables WHERE table_schema <> 'information_schema' \
             ORDER BY table_schema <> '{s}', table_schema, table_name",
            s = quote(&default)
        );
        self.show(&sql, out, err, prefix).await
    }

    async fn describe(
        &mut self,
        name: &str,
        out: &mut dyn Write,
        err: &mut dyn Write,
        prefix: &str,
    ) -> Result<Flow> {
        let names = match Names::load(&self.ctx).await {
            Ok(n) => n,
            Err(e) => return self.fail(err, &format!("{prefix}: {e}")),
        };
        let Some(t) = names.table(name) else {
            return self.fail(
                err,
                &format!("{prefix}: no table or view named '{name}': \\d lists them"),
            );
        };
        let sql = format!(
            "SELECT column_name AS \"column\", data_type AS \"type\", is_nullable AS nullable \
             FROM information_schema.columns WHERE table_schema = '{}' AND table_name = '{}' \
             ORDER BY ordinal_position",
            quote(&t.schema),
            quote(&t.name)
        );
        self.show(&sql, out, err, prefix).await
    }

    /// Runs internal SQL and writes its result in the current format.
    async fn show(
        &mut self,
        sql: &str,
        out: &mut dyn Write,
        err: &mut dyn Write,
        prefix: &str,
    ) -> Result<Flow> {
        let result = async {
            let df = self.ctx.sql(sql).await?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            Ok::<_, datafusion::error::DataFusionError>((schema, df.collect().await?))
        }
        .await;
        match result {
            Ok((schema, batches)) => {
                crate::output::write_batches(out, self.format, &schema, &batches, None)?;
                out.flush()?;
                Ok(Flow::Continue)
            }
            Err(e) => self.fail(err, &format!("{prefix}: {e}")),
        }
    }

    fn default_schema(&self) -> String {
        self.ctx
            .state()
            .config()
            .options()
            .catalog
            .default_schema
            .clone()
    }
}

fn help(format: Format) -> String {
    format!(
        "\
Type SQL and end it with ; to run it (a statement may span lines).
  \\d           list the tables and views
  \\d NAME      a table's or view's columns and types
  \\format F    show results as {} (now: {})
  \\?           this help
  \\q           quit (or Ctrl-D)
Tab completes table, view and column names (after `table.`, that table's columns).
Ctrl-C drops the statement being typed. NOW() is the replay's as-of time.
",
        format_list(),
        format_name(format)
    )
}

fn format_name(f: Format) -> String {
    f.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| format!("{f:?}").to_lowercase())
}

fn format_list() -> String {
    FORMATS
        .iter()
        .map(|f| format_name(*f))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Doubles single quotes for a string literal.
fn quote(s: &str) -> String {
    s.replace('\'', "''")
}

/// Whether a statement can add or remove tables and views.
fn changes_names(sql: &str) -> bool {
    let first = sql
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("");
    ["create", "drop", "alter"]
        .iter()
        .any(|k| first.eq_ignore_ascii_case(k))
}

/// The (line, column) reached from `at` after `text`; columns count characters.
fn advance(at: (usize, usize), text: &str) -> (usize, usize) {
    let (mut line, mut col) = at;
    for c in text.chars() {
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

#[derive(Clone, Copy, PartialEq)]
enum Lex {
    Code,
    Single,
    Double,
    LineComment,
    Block(u32),
}

/// Walks SQL text, calling `f(byte offset, state)` for every byte that is not inside a
/// comment opener or closer; quotes and comments are tracked so `;` in them is not code.
fn scan(text: &str, mut f: impl FnMut(usize, Lex) -> bool) {
    let b = text.as_bytes();
    let mut st = Lex::Code;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match st {
            Lex::Code => match c {
                b'-' if next == Some(b'-') => {
                    st = Lex::LineComment;
                    i += 2;
                    continue;
                }
                b'/' if next == Some(b'*') => {
                    st = Lex::Block(1);
                    i += 2;
                    continue;
                }
                _ => {
                    if !f(i, Lex::Code) {
                        return;
                    }
                    if c == b'\'' {
                        st = Lex::Single;
                    } else if c == b'"' {
                        st = Lex::Double;
                    }
                }
            },
            Lex::Single | Lex::Double => {
                let close = if st == Lex::Single { b'\'' } else { b'"' };
                if c == close {
                    st = Lex::Code;
                }
                if !f(i, Lex::Single) {
                    return;
                }
            }
            Lex::LineComment => {
                if c == b'\n' {
                    st = Lex::Code;
                }
            }
            Lex::Block(d) => {
                if c == b'*' && next == Some(b'/') {
                    st = if d == 1 { Lex::Code } else { Lex::Block(d - 1) };
                    i += 2;
                    continue;
                }
                if c == b'/' && next == Some(b'*') {
                    st = Lex::Block(d + 1);
                    i += 2;
                    continue;
                }
            }
        }
        i += 1;
    }
}

/// Splits at the `;`s outside quotes and comments: each finished statement (its byte offset
/// and text without the `;`), and the offset where the unfinished rest begins.
fn split_statements(text: &str) -> (Vec<(usize, &str)>, usize) {
    let mut out = Vec::new();
    let mut start = 0;
    scan(text, |i, st| {
        if st == Lex::Code && text.as_bytes()[i] == b';' {
            out.push((start, &text[start..i]));
            start = i + 1;
        }
        true
    });
    (out, start)
}

/// The offset of the first character that is neither blank nor in a comment.
fn first_code(text: &str) -> Option<usize> {
    let mut found = None;
    scan(text, |i, _| {
        if text.as_bytes()[i].is_ascii_whitespace() {
            true
        } else {
            found = Some(i);
            false
        }
    });
    found
}

// ---------------------------------------------------------------------------------------------
// Completion

/// One table or view and its columns, as information_schema lists them.
#[derive(Debug, Clone, Default)]
pub struct TableNames {
    pub schema: String,
    pub name: String,
    pub columns: Vec<String>,
}

/// The names tab completion offers.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub default_schema: String,
    pub tables: Vec<TableNames>,
}

const INFORMATION_SCHEMA: &str = "information_schema";

/// Words after which only a table name makes sense.
const TABLE_KEYWORDS: &[&str] = &["from", "join", "into", "table", "update", "\\d"];

/// Words that cannot be a table's alias.
const NOT_ALIAS: &[&str] = &[
    "where",
    "join",
    "inner",
    "left",
    "right",
    "full",
    "outer",
    "cross",
    "on",
    "using",
    "group",
    "order",
    "limit",
    "having",
    "union",
    "except",
    "intersect",
    "window",
    "natural",
    "offset",
    "qualify",
];

impl Names {
    /// Every table, view and column of the session, from information_schema.
    pub async fn load(ctx: &SessionContext) -> Result<Names> {
        let default_schema = ctx
            .state()
            .config()
            .options()
            .catalog
            .default_schema
            .clone();
        let mut tables: Vec<TableNames> = strings(
            ctx,
            "SELECT table_schema, table_name FROM information_schema.tables ORDER BY 1, 2",
        )
        .await?
        .into_iter()
        .map(|r| TableNames {
            schema: r[0].clone(),
            name: r[1].clone(),
            columns: Vec::new(),
        })
        .collect();
        let index: HashMap<(String, String), usize> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.schema.clone(), t.name.clone()), i))
            .collect();
        for r in strings(
            ctx,
            "SELECT table_schema, table_name, column_name FROM information_schema.columns \
             ORDER BY table_schema, table_name, ordinal_position",
        )
        .await?
        {
            if let Some(&i) = index.get(&(r[0].clone(), r[1].clone())) {
                tables[i].columns.push(r[2].clone());
            }
        }
        Ok(Names {
            default_schema,
            tables,
        })
    }

    /// The table `name` means: `schema.table` or `table`, exactly, else ignoring case; in
    /// the default schema first.
    pub fn table(&self, name: &str) -> Option<&TableNames> {
        let (schema, table) = match name.rsplit_once('.') {
            Some((s, t)) => (Some(s), t),
            None => (None, name),
        };
        let matches = |exact: bool| {
            let eq = move |a: &str, b: &str| {
                if exact {
                    a == b
                } else {
                    a.eq_ignore_ascii_case(b)
                }
            };
            self.tables
                .iter()
                .filter(move |t| eq(&t.name, table) && schema.is_none_or(|s| eq(&t.schema, s)))
        };
        for exact in [true, false] {
            let mut found: Vec<&TableNames> = matches(exact).collect();
            found.sort_by_key(|t| {
                (
                    t.schema != self.default_schema,
                    t.schema == INFORMATION_SCHEMA,
                )
            });
            if let Some(t) = found.first() {
                return Some(t);
            }
        }
        None
    }

    fn schemas(&self) -> Vec<&str> {
        let mut s: Vec<&str> = self.tables.iter().map(|t| t.schema.as_str()).collect();
        s.dedup();
        s
    }

    /// Table aliases defined in `text`: `FROM carts c`, `JOIN spans AS s`.
    fn aliases(&self, text: &str) -> HashMap<String, String> {
        let words: Vec<&str> = text
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .filter(|w| !w.is_empty())
            .collect();
        let mut out = HashMap::new();
        for i in 0..words.len() {
            if !(words[i].eq_ignore_ascii_case("from") || words[i].eq_ignore_ascii_case("join")) {
                continue;
            }
            let Some(t) = words.get(i + 1).and_then(|w| self.table(w)) else {
                continue;
            };
            let mut alias = words.get(i + 2);
            if alias.is_some_and(|a| a.eq_ignore_ascii_case("as")) {
                alias = words.get(i + 3);
            }
            if let Some(a) = alias {
                if !NOT_ALIAS.iter().any(|k| a.eq_ignore_ascii_case(k)) && !a.contains('.') {
                    out.insert(a.to_lowercase(), format!("{}.{}", t.schema, t.name));
                }
            }
        }
        out
    }

    /// Completions for the word before `pos` in `line`: where the word starts, and the
    /// candidates to put there. `before` is the earlier lines of the statement (for aliases).
    pub fn complete(&self, before: &str, line: &str, pos: usize) -> (usize, Vec<String>) {
        let head = &line[..pos];
        let lead = head.len() - head.trim_start().len();
        // A backslash command's name, then its argument.
        if head.trim_start().starts_with('\\') {
            let Some((cmd, _)) = head[lead..].split_once(char::is_whitespace) else {
                let word = &head[lead..];
                return (lead, prefixed(COMMANDS.iter().map(|c| c.to_string()), word));
            };
            if cmd == "\\format" || cmd == "\\f" {
                let start = word_start(head);
                let names = FORMATS.iter().map(|f| format_name(*f));
                return (start, prefixed(names, &head[start..]));
            }
            if cmd != "\\d" {
                return (pos, Vec::new());
            }
        }
        let start = word_start(head);
        let word = &head[start..];
        if let Some((qualifier, part)) = word.rsplit_once('.') {
            let start = start + qualifier.len() + 1;
            let aliases = self.aliases(&format!("{before}\n{line}"));
            let resolved = aliases
                .get(&qualifier.to_lowercase())
                .map(String::as_str)
                .unwrap_or(qualifier);
            if let Some(t) = self.table(resolved) {
                return (start, prefixed(t.columns.iter().cloned(), part));
            }
            let tables = self
                .tables
                .iter()
                .filter(|t| t.schema.eq_ignore_ascii_case(qualifier))
                .map(|t| t.name.clone());
            return (start, prefixed(tables, part));
        }
        let tables_only = previous_word(&head[..start])
            .is_some_and(|w| TABLE_KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k)));
        let visible = self
            .tables
            .iter()
            .filter(|t| t.schema != INFORMATION_SCHEMA);
        let table_names = visible.clone().map(|t| {
            if t.schema == self.default_schema {
                t.name.clone()
            } else {
                format!("{}.{}", t.schema, t.name)
            }
        });
        let schemas = self
            .schemas()
            .into_iter()
            .filter(|s| *s != self.default_schema)
            .map(|s| format!("{s}."))
            .collect::<Vec<_>>();
        let mut out = prefixed(table_names, word);
        out.extend(prefixed(schemas.into_iter(), word));
        if !tables_only {
            for c in prefixed(visible.flat_map(|t| t.columns.iter().cloned()), word) {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        (start, out)
    }
}

/// The candidates that start with `word` (ignoring case), sorted, without repeats.
fn prefixed(candidates: impl Iterator<Item = String>, word: &str) -> Vec<String> {
    let word = word.to_lowercase();
    let mut out: Vec<String> = candidates
        .filter(|c| c.to_lowercase().starts_with(&word))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Where the identifier (possibly qualified, `a.b`) ending at the end of `head` starts.
fn word_start(head: &str) -> usize {
    head.char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

fn previous_word(head: &str) -> Option<&str> {
    head.split(|c: char| c.is_whitespace() || c == ',' || c == '(')
        .rfind(|w| !w.is_empty())
}

/// Rows of string cells from internal SQL.
async fn strings(ctx: &SessionContext, sql: &str) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    for b in ctx.sql(sql).await?.collect().await? {
        for r in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| crate::output::value_string(c.as_ref(), r))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
    }
    Ok(rows)
}

/// The line editor's helper: completion from [`Names`]; no hints, colours or validation.
pub struct Helper {
    pub names: Names,
    /// The earlier lines of the statement being typed, for its aliases.
    pub before: String,
}

impl rustyline::completion::Completer for Helper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(self.names.complete(&self.before, line, pos))
    }
}

impl rustyline::hint::Hinter for Helper {
    type Hint = String;
}

impl rustyline::highlight::Highlighter for Helper {}

impl rustyline::validate::Validator for Helper {}

impl rustyline::Helper for Helper {}

// ---------------------------------------------------------------------------------------------
// The terminal

/// Where history is kept: `$XDG_STATE_HOME/cartscope/history`, else `~/.cartscope_history`.
fn history_path() -> Option<PathBuf> {
    history_path_from(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

fn history_path_from(
    state: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    // The XDG spec: a relative path is invalid and ignored.
    if let Some(state) = state.map(PathBuf::from).filter(|s| s.is_absolute()) {
        return Some(state.join("cartscope").join("history"));
    }
    let home = home.filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".cartscope_history"))
}

/// The history file if it can be written (created private); `None` turns history off.
fn writable_history() -> Option<PathBuf> {
    let path = history_path()?;
    std::fs::create_dir_all(path.parent()?).ok()?;
    let mut open = std::fs::OpenOptions::new();
    open.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    open.open(&path).ok()?;
    Some(path)
}

async fn interactive(shell: &mut Shell) -> Result<()> {
    use rustyline::error::ReadlineError;
    shell.interactive = true;
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .history_ignore_space(true)
        .max_history_size(5000)?
        .completion_type(rustyline::CompletionType::List)
        .behavior(rustyline::Behavior::PreferTerm)
        .build();
    let mut editor: rustyline::Editor<Helper, rustyline::history::DefaultHistory> =
        rustyline::Editor::with_config(config)?;
    let mut history = writable_history();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let names = Names::load(&shell.ctx).await.unwrap_or_default();
    editor.set_helper(Some(Helper {
        names,
        before: String::new(),
    }));
    // The lines of the statement or command being typed: one history entry once it is done.
    let mut entry = String::new();
    loop {
        if shell.names_stale {
            shell.names_stale = false;
            if let (Ok(names), Some(h)) = (Names::load(&shell.ctx).await, editor.helper_mut()) {
                h.names = names;
            }
        }
        if let Some(h) = editor.helper_mut() {
            h.before.clone_from(&shell.pending);
        }
        let prompt = if shell.is_continuing() {
            CONTINUATION
        } else {
            PROMPT
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                shell.reset();
                entry.clear();
                continue;
            }
            Err(ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if !entry.is_empty() {
            entry.push('\n');
        }
        entry.push_str(&line);
        let flow = shell
            .feed(&line, &mut std::io::stdout(), &mut std::io::stderr())
            .await?;
        if !shell.is_continuing() {
            let done = std::mem::take(&mut entry);
            if !done.trim().is_empty() {
                let _ = editor.add_history_entry(done.trim_end());
                if let Some(path) = &history {
                    if editor.append_history(path).is_err() {
                        history = None;
                    }
                }
            }
        }
        if flow == Flow::Quit {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;

    fn names() -> Names {
        let t = |name: &str, cols: &[&str]| TableNames {
            schema: "public".into(),
            name: name.into(),
            columns: cols.iter().map(|c| c.to_string()).collect(),
        };
        Names {
            default_schema: "public".into(),
            tables: vec![
                t("carts", &["cart_id", "outcome", "total_value"]),
                t("cart_events", &["cart_id", "stage", "ts"]),
                t("traces", &["trace_id", "operation_name"]),
                TableNames {
                    schema: "information_schema".into(),
                    name: "tables".into(),
                    columns: vec!["table_name".into(), "table_type".into()],
                },
            ],
        }
    }

    fn complete(line: &str) -> Vec<String> {
        let (start, c) = names().complete("", line, line.len());
        c.into_iter()
            .map(|c| format!("{}{c}", &line[..start]))
            .collect()
    }

    #[test]
    fn completes_table_names() {
        let got = complete("SELECT * FROM car");
        assert_eq!(got, ["SELECT * FROM cart_events", "SELECT * FROM carts"]);
        // Anywhere else columns are candidates too.
        let got = complete("SELECT car");
        assert!(got.contains(&"SELECT carts".to_string()), "{got:?}");
        assert!(got.contains(&"SELECT cart_events".to_string()), "{got:?}");
        assert!(got.contains(&"SELECT cart_id".to_string()), "{got:?}");
        assert_eq!(complete("select * from CAR").len(), 2);
        assert_eq!(
            complete("SELECT * FROM info"),
            ["SELECT * FROM information_schema."]
        );
    }

    #[test]
    fn completes_columns_after_a_table_or_alias() {
        assert_eq!(complete("SELECT carts.out"), ["SELECT carts.outcome"]);
        assert_eq!(
            complete("SELECT carts."),
            [
                "SELECT carts.cart_id",
                "SELECT carts.outcome",
                "SELECT carts.total_value"
            ]
        );
        assert_eq!(
            complete("SELECT information_schema.tables.table_t"),
            ["SELECT information_schema.tables.table_type"]
        );
        assert_eq!(
            complete("SELECT information_schema.ta"),
            ["SELECT information_schema.tables"]
        );
        // An alias, defined later on the line or on an earlier line of the statement.
        let line = "SELECT c.out FROM carts c";
        let (start, got) = names().complete("", line, "SELECT c.out".len());
        assert_eq!(
            (start, got),
            ("SELECT c.".len(), vec!["outcome".to_string()])
        );
        let (_, got) = names().complete("SELECT count(*)\nFROM cart_events AS e", "WHERE e.st", 10);
        assert_eq!(got, ["stage"]);
        assert!(complete("SELECT nope.o").is_empty());
    }

    #[test]
    fn completes_commands_and_formats() {
        assert_eq!(complete("\\fo"), ["\\format"]);
        assert_eq!(complete("\\format ma"), ["\\format markdown"]);
        assert_eq!(complete("\\d car"), ["\\d cart_events", "\\d carts"]);
    }

    #[test]
    fn splits_statements_outside_quotes_and_comments() {
        let text = "SELECT ';' AS a; -- x; y\nSELECT \"b;\" /* ; */ FROM t;\nSELECT";
        let (stmts, rest) = split_statements(text);
        let stmts: Vec<&str> = stmts.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            stmts,
            ["SELECT ';' AS a", " -- x; y\nSELECT \"b;\" /* ; */ FROM t"]
        );
        assert_eq!(&text[rest..], "\nSELECT");
        assert_eq!(first_code("  -- c\n /* d */ x"), Some(16));
        assert_eq!(first_code(" -- only a comment\n"), None);
    }

    async fn ctx() -> SessionContext {
        let ctx = SessionContext::new_with_config(crate::sql::session::config(1));
        let schema = Arc::new(Schema::new(vec![
            Field::new("outcome", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["abandoned", "converted"])),
                Arc::new(Int64Array::from(vec![3, 5])),
            ],
        )
        .unwrap();
        ctx.register_table(
            "carts",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
        ctx
    }

    async fn script(input: &str) -> (String, String, usize) {
        let mut shell = Shell::new(ctx().await, Format::Csv);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let failed = run_script(&mut shell, input.as_bytes(), &mut out, &mut err)
            .await
            .unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            failed,
        )
    }

    #[tokio::test]
    async fn script_runs_statements_and_commands() {
        let (out, err, failed) = script(
            "SELECT outcome,\n  n\nFROM carts ORDER BY n; SELECT 1 AS one;\n\n\\format tsv\nSELECT n FROM carts WHERE n > 4\n",
        )
        .await;
        assert_eq!(out, "outcome,n\nabandoned,3\nconverted,5\none\n1\nn\n5\n");
        assert_eq!((err.as_str(), failed), ("", 0));

        let (out, err, failed) = script("\\d\n\\d CARTS;\n").await;
        assert_eq!(
            out,
            "name,type\ncarts,table\ncolumn,type,nullable\noutcome,Utf8,NO\nn,Int64,NO\n"
        );
        assert_eq!((err.as_str(), failed), ("", 0));

        let (out, _, failed) =
            script("CREATE VIEW v AS SELECT n FROM carts;\nSELECT sum(n) AS s FROM v;\n").await;
        assert_eq!((out.as_str(), failed), ("s\n8\n", 0));
    }

    #[tokio::test]
    async fn script_reports_errors_with_input_positions_and_goes_on() {
        let (out, err, failed) =
            script("SELECT 1 AS a;\n\nSELECT n\nFROM carts WHERE n > ) ORDER BY 1;\n\\d nope\n\\bogus\n\\format xml\nSELECT 2 AS b;\n\\q\nSELECT 3 AS c;\n").await;
        assert_eq!(out, "a\n1\nb\n2\n");
        assert_eq!(failed, 4, "{err}");
        assert!(
            err.contains("cartscope: error in the statement at line 3: "),
            "{err}"
        );
        // The parser's "Line: 4, Column: 22" is the input's own line 4, column 22.
        let caret = format!(
            "\nline 4: FROM carts WHERE n > ) ORDER BY 1\n{}^\n",
            " ".repeat(8 + 21)
        );
        assert!(err.contains(&caret), "{err}");
        assert!(
            err.contains("error at line 5: no table or view named 'nope'"),
            "{err}"
        );
        assert!(
            err.contains("error at line 6: unknown command \\bogus"),
            "{err}"
        );
        assert!(
            err.contains("error at line 7: unknown format 'xml'"),
            "{err}"
        );
    }

    #[test]
    fn where_history_is_kept() {
        let p = |s: Option<&str>, h: Option<&str>| {
            history_path_from(s.map(Into::into), h.map(Into::into))
        };
        assert_eq!(
            p(Some("/st"), Some("/home/u")),
            Some(PathBuf::from("/st/cartscope/history"))
        );
        assert_eq!(
            p(Some("rel"), Some("/home/u")),
            Some(PathBuf::from("/home/u/.cartscope_history"))
        );
        assert_eq!(
            p(Some(""), Some("/home/u")),
            Some(PathBuf::from("/home/u/.cartscope_history"))
        );
        assert_eq!(p(None, None), None);
    }

    #[test]
    fn help_and_format_names() {
        assert_eq!(format_list(), "table, csv, tsv, json, ndjson, markdown");
        assert!(help(Format::Json).contains("(now: json)"));
    }
}
