//! `cartscope shell` with stdin not a terminal: statements piped in, results on stdout, errors
//! on stderr, exit code 2 when any statement failed. And the completer over the real tables.

use std::io::{Read, Write};
use std::process::{Output, Stdio};

use crate::util::*;

fn shell(args: &[&str], input: &str) -> Output {
    let data = crate::util::root("sample-data/otlp");
    let mut all = vec!["shell", "--threads", "2", "--data", data.to_str().unwrap()];
    all.extend(args);
    piped(&all, input.as_bytes())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_scripted_session() {
    let input = "\
-- a statement over three lines runs at its ;
SELECT count(*) AS carts,
       count(DISTINCT outcome) AS outcomes
  FROM carts;
\\d
\\d carts
\\format csv
SELECT outcome, count(*) FROM carts GROUP BY 1 ORDER BY 1;
SELECT 'a;b' AS s; SELECT 1 AS one;
\\q
SELECT this_would_fail;
";
    let out = shell(&[], input);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stderr.contains("error"), "{stderr}");

    // The first result is in the default format, a table.
    let table_end = stdout.find("1 row\n").expect("a table with one row");
    let table = &stdout[..table_end];
    assert!(table.contains("│ carts ┆ outcomes │"), "{table}");
    assert!(table.contains("│  3000 ┆        4 │"), "{table}");

    // `\d`: names and types, tables and views; `traces` and `metrics` are views over the
    // observed rows and the replay's derived ones.
    let rest = &stdout[table_end..];
    for row in [
        "│ carts            ┆ table │",
        "│ cart_events      ┆ table │",
        "│ abandonments     ┆ view  │",
        "│ traces           ┆ view  │",
        "│ spans            ┆ view  │",
        "│ metrics          ┆ view  │",
        "│ observed_traces  ┆ table │",
        "│ derived_traces   ┆ table │",
        "│ observed_metrics ┆ table │",
        "│ derived_metrics  ┆ table │",
        "│ operation_stats  ┆ table │",
    ] {
        assert!(rest.contains(row), "no {row} in\n{rest}");
    }
    // `\d carts`: its columns and types (a cart always has an id).
    for row in [
        "│ cart_id             ┆ Utf8                 ┆ NO       │",
        "│ outcome             ┆ Utf8                 ┆ YES      │",
        "│ total_value         ┆ Float64              ┆ YES      │",
        "│ signals             ┆ List(Utf8)           ┆ YES      │",
    ] {
        assert!(rest.contains(row), "no {row} in\n{rest}");
    }

    // After `\format csv`, exactly these lines, and nothing after `\q`.
    let csv_at = stdout.find("outcome,count(*)\n").expect("CSV output");
    assert_eq!(
        &stdout[csv_at..],
        "outcome,count(*)\nabandoned,2021\nactive,48\nconverted,890\nrecovered,41\ns\na;b\none\n1\n"
    );
}

#[test]
fn an_sql_error_is_reported_the_shell_goes_on_and_exits_2() {
    let input = "\\format csv\nSELECT nope FROM carts;\nSELECT count(*) AS n\nFROM carts WHERE outcome = = 'x';\n\\d no_such_table\nSELECT count(*) AS n FROM carts WHERE outcome = 'active';\n";
    let out = shell(&[], input);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(stdout, "n\n48\n");
    assert!(
        stderr.contains("error in the statement at line 2: Schema error: No field named nope"),
        "{stderr}"
    );
    // A parse error is located in the input: line 4, column 28, the second `=`.
    assert!(
        stderr.contains("error in the statement at line 3: "),
        "{stderr}"
    );
    let caret = format!(
        "\nline 4: FROM carts WHERE outcome = = 'x'\n{}^\n",
        " ".repeat(8 + 27)
    );
    assert!(stderr.contains(&caret), "{stderr}");
    assert!(
        stderr.contains("no table or view named 'no_such_table'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cartscope: error: 3 statements failed"),
        "{stderr}"
    );
}

#[test]
fn a_last_statement_without_its_semicolon_still_runs() {
    let out = shell(
        &["--format", "tsv"],
        "SELECT outcome, count(*) AS n FROM carts WHERE outcome = 'active' GROUP BY 1",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "outcome\tn\nactive\t48\n");
}

#[test]
fn parquet_is_refused_before_loading() {
    let out = shell(&["--format", "parquet"], "SELECT 1;\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--format parquet is binary"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_closed_stdout_pipe_ends_the_shell_quietly() {
    let mut child = cmd()
        .args(["shell", "--threads", "2", "--format", "csv", "--data"])
        .arg(crate::util::root("sample-data/otlp"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"SELECT * FROM spans;\nSELECT * FROM spans;\nSELECT * FROM spans;\n")
        .unwrap();
    drop(stdin);
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

/// Tab completion over the replayed sample data's own information_schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_of_real_table_and_column_names() {
    let data = cartscope::DataArgs {
        data: vec![crate::util::root("sample-data/otlp").display().to_string()],
        strict: false,
    };
    let replay = cartscope::ReplayArgs {
        model: cartscope::Model::load("reference").unwrap(),
        as_of: None,
        threshold: None,
        refresh: false,
        engine: Default::default(),
    };
    let g = cartscope::Globals {
        threads: 2,
        progress: false,
        limits: Default::default(),
    };
    let everything = cartscope::Projection::everything();
    let (ctx, _) = cartscope::open_replayed(&data, &replay, &g, &everything)
        .await
        .unwrap();
    let names = cartscope::Names::load(&ctx).await.unwrap();
    let complete = |line: &str| {
        let (start, c) = names.complete("", line, line.len());
        c.into_iter()
            .map(|c| format!("{}{c}", &line[..start]))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        complete("SELECT * FROM car"),
        [
            "SELECT * FROM cart_events",
            "SELECT * FROM cart_exemplars",
            "SELECT * FROM cart_logs",
            "SELECT * FROM carts"
        ]
    );
    let anywhere = complete("car");
    for c in ["carts", "cart_events", "cart_id"] {
        assert!(anywhere.contains(&c.to_string()), "{c} not in {anywhere:?}");
    }
    assert_eq!(complete("carts.out"), ["carts.outcome"]);
    // `a.` after `FROM abandonments a`, with the cursor before the FROM.
    let line = "SELECT a.rec FROM abandonments a";
    let (start, got) = names.complete("", line, "SELECT a.rec".len());
    assert_eq!(
        (start, got),
        ("SELECT a.".len(), vec!["recovered".to_string()])
    );
}
