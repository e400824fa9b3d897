//! The layout's rules, read from the source: data flows one way through the stages (a module
//! imports only from stages above it in `STAGES`, the order `src/lib.rs` lists them), no two
//! files import each other however indirectly, and the commands never import one another.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::util::root;

/// The top-level modules in the order the data flows (as `src/lib.rs` declares them).
const STAGES: &[&str] = &[
    "time", "stats", "output", "tables", "read", "dataset", "sql", "replay", "report", "check",
    "generate", "cli", "commands",
];

/// A source file as a module path: `src/read/otlp/json.rs` -> ["read", "otlp", "json"].
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn ident_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    i
}

/// Expands the path after `crate::` or `super::` at `i`: `a::b::C`, or a group
/// `a::{b, c::{D, E}}`, into every path it names. Returns the paths and where it ended.
fn paths_at(text: &str, mut i: usize, prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let b = text.as_bytes();
    let mut path = prefix;
    loop {
        if b.get(i) == Some(&b'{') {
            let mut out = Vec::new();
            i += 1;
            loop {
                while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    return (out, i + 1);
                }
                let (more, next) = paths_at(text, i, path.clone());
                out.extend(more);
                i = next;
                // Skip `as name` and anything else up to the item's end.
                while i < b.len() && b[i] != b',' && b[i] != b'}' {
                    i += 1;
                }
            }
        }
        let end = ident_end(b, i);
        if end == i {
            return (vec![path], i);
        }
        path.push(text[i..end].to_string());
        i = end;
        if text[i..].starts_with("::") {
            i += 2;
        } else {
            return (vec![path], i);
        }
    }
}

/// The code of a file without comment lines and without its `#[cfg(test)]` module (the tests
/// of a module may use anything).
fn code(text: &str) -> String {
    let mut body = text.to_string();
    if let Some(i) = body.find("#[cfg(test)]\nmod tests {") {
        // The module ends at the first closing brace in column 0 after it.
        let end = body[i..].find("\n}\n").map_or(body.len(), |j| i + j + 3);
        body.replace_range(i..end, "");
    }
    body.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module path a file names: `crate::...`, `super::...` and, in a `mod.rs` or `lib.rs`,
/// its own submodules by their names (`children`), resolved to absolute paths.
fn references(module: &[String], children: &[String], text: &str) -> Vec<Vec<String>> {
    let text = code(text);
    let mut out = Vec::new();
    for c in children {
        let needle = format!("{c}::");
        let mut from = 0;
        while let Some(at) = text[from..].find(&needle) {
            let start = from + at;
            from = start + needle.len();
            let before = text[..start].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut base = module.to_vec();
            base.push(c.clone());
            out.extend(paths_at(&text, from, base).0);
        }
    }
    for (needle, base) in [
        ("crate::", Vec::new()),
        // `super` of `a/b.rs` and of `a/b/mod.rs` alike is `a`.
        ("super::", module[..module.len().saturating_sub(1)].to_vec()),
    ] {
        let mut from = 0;
        while let Some(at) = text[from..].find(needle) {
            let start = from + at;
            let before = text[..start].chars().next_back();
            from = start + needle.len();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let (paths, end) = paths_at(&text, from, base.clone());
            out.extend(paths);
            from = end.max(from);
        }
    }
    out
}

/// The file module a path lands in: its longest prefix that is a file of `src/`.
fn resolve(files: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| files.contains(p))
}

struct Source {
    files: BTreeSet<Vec<String>>,
    /// File module -> the file modules it references.
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn read_source() -> Source {
    let src = root("src");
    let mut texts: Vec<(Vec<String>, String)> = Vec::new();
    for e in walkdir::WalkDir::new(&src) {
        let e = e.unwrap();
        let p: PathBuf = e.path().to_path_buf();
        if p.extension().is_some_and(|x| x == "rs") && p.file_name().unwrap() != "main.rs" {
            texts.push((module_of(&src, &p), std::fs::read_to_string(&p).unwrap()));
        }
    }
    let files: BTreeSet<Vec<String>> = texts.iter().map(|t| t.0.clone()).collect();
    let mut edges = BTreeMap::new();
    for (m, text) in &texts {
        let children: Vec<String> = files
            .iter()
            .filter(|f| f.len() == m.len() + 1 && f.starts_with(m))
            .map(|f| f[m.len()].clone())
            .collect();
        let refs: BTreeSet<Vec<String>> = references(m, &children, text)
            .iter()
            .filter_map(|p| resolve(&files, p))
            .filter(|t| t != m && !t.is_empty())
            .collect();
        edges.insert(m.clone(), refs);
    }
    Source { files, edges }
}

#[test]
fn lib_declares_the_stages_in_flow_order() {
    let lib = std::fs::read_to_string(root("src/lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    assert_eq!(declared, STAGES);
}

#[test]
fn no_module_imports_from_a_later_stage() {
    let s = read_source();
    let rank = |m: &[String]| STAGES.iter().position(|s| *s == m[0]);
    let mut wrong = Vec::new();
    for (from, to) in &s.edges {
        if from.is_empty() {
            continue;
        }
        let f = rank(from).unwrap_or_else(|| panic!("{from:?} is not a stage in STAGES"));
        for t in to {
            if rank(t).unwrap() > f {
                wrong.push(format!("{} -> {}", from.join("::"), t.join("::")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports from a later stage:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn commands_never_import_each_other() {
    // What they share is in `commands::setup`.
    let s = read_source();
    let mut wrong = Vec::new();
    for (from, to) in &s.edges {
        if from.len() == 2 && from[0] == "commands" && from[1] != "setup" {
            for t in to {
                if t.len() == 2 && t[0] == "commands" && t[1] != "setup" {
                    wrong.push(format!("{} -> {}", from.join("::"), t.join("::")));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_import_cycle_between_files() {
    let s = read_source();
    // A file importing its own submodule (`mod.rs` declaring `pub mod x` and using `x::`) is
    // the module owning its parts, not a cycle; a part importing its parent's items back is.
    // Depth-first search for a back edge.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let nodes: Vec<&Vec<String>> = s.files.iter().collect();
    let mut mark: BTreeMap<&Vec<String>, Mark> = nodes.iter().map(|n| (*n, Mark::New)).collect();
    fn visit<'a>(
        n: &'a Vec<String>,
        s: &'a Source,
        mark: &mut BTreeMap<&'a Vec<String>, Mark>,
        stack: &mut Vec<&'a Vec<String>>,
    ) -> Option<Vec<String>> {
        mark.insert(n, Mark::Open);
        stack.push(n);
        for t in s.edges.get(n).into_iter().flatten() {
            match mark[t] {
                Mark::Open => {
                    let i = stack.iter().position(|x| *x == t).unwrap();
                    let mut cycle: Vec<String> = stack[i..].iter().map(|m| m.join("::")).collect();
                    cycle.push(t.join("::"));
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(t, s, mark, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        mark.insert(n, Mark::Done);
        None
    }
    for n in nodes {
        if mark[n] == Mark::New {
            if let Some(cycle) = visit(n, &s, &mut mark, &mut Vec::new()) {
                panic!("an import cycle: {}", cycle.join(" -> "));
            }
        }
    }
}

#[test]
fn the_reader_of_paths_finds_groups_and_super() {
    let m = vec!["report".to_string(), "html".to_string()];
    let refs = references(
        &m,
        &[],
        "use crate::{time::format_ns, read::{self, input::{A, B as C}}};\nuse super::Report;\n// crate::commands is a comment\nlet x = crate::stats::mean(1);",
    );
    let names: BTreeSet<String> = refs.iter().map(|p| p.join("::")).collect();
    let want: BTreeSet<String> = [
        "time::format_ns",
        "read::self",
        "read::input::A",
        "read::input::B",
        "report::Report",
        "stats::mean",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names, want);
}
