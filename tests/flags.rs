//! Every value a flag takes is typed at the edge: a malformed one exits 2 with an error that
//! names the flag, before any data is read, with or without `--no-replay`; a flag that does
//! not apply with another is refused, never silently ignored.

use crate::util::*;

/// Runs cartscope with `args` and asserts exit code 2 and an error naming `flag`.
fn refused(args: &[&str], flag: &str) {
    let o = cartscope(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(flag), "{args:?} should name {flag}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

#[test]
fn a_malformed_value_of_any_flag_exits_2_naming_the_flag() {
    let data = root("sample-data/otlp");
    let data = data.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--threads", "0", "tables", "--data", data], "--threads"),
        (&["--threads", "two", "tables", "--data", data], "--threads"),
        (
            &["--memory-limit", "lots", "tables", "--data", data],
            "--memory-limit",
        ),
        (
            &["--memory-limit", "4XB", "tables", "--data", data],
            "--memory-limit",
        ),
        (
            &["detect", "--data", data, "--as-of", "yesterday"],
            "--as-of",
        ),
        (&["detect", "--data", data, "--as-of", "-2x"], "--as-of"),
        (
            &["detect", "--data", data, "--threshold", "30"],
            "--threshold",
        ),
        (
            &["detect", "--data", data, "--model", "no-such-model"],
            "--model",
        ),
        (&["detect", "--data", data, "--format", "xml"], "--format"),
        (
            &["detect", "--data", data, "--max-rows", "all"],
            "--max-rows",
        ),
        (
            &["query", "funnel", "--data", data, "--as-of", "soon"],
            "--as-of",
        ),
        (
            &[
                "query",
                "funnel",
                "--no-replay",
                "--data",
                data,
                "--as-of",
                "soon",
            ],
            "--as-of",
        ),
        (
            &["query", "funnel", "--data", data, "--threshold", "1x"],
            "--threshold",
        ),
        (
            &["query", "funnel", "--data", data, "--max-rows", "many"],
            "--max-rows",
        ),
        (
            &["query", "funnel", "--data", data, "--param", "novalue"],
            "--param",
        ),
        (&["report", "--data", data, "--day", "2026-13-01"], "--day"),
        (
            &["report", "--data", data, "--day", "2026-11-20T00:00:00Z"],
            "--day",
        ),
        (
            &["report", "--data", data, "--since", "last week"],
            "--since",
        ),
        (&["report", "--data", data, "--until", "+-1h"], "--until"),
        (&["report", "--data", data, "--format", "pdf"], "--format"),
        (&["report", "--data", data, "--top", "x"], "--top"),
        (
            &["report", "--data", data, "--min-support", "3.5"],
            "--min-support",
        ),
        (
            &["check", "--data", data, "--rules", "r.toml", "--day", "x"],
            "--day",
        ),
        (
            &["check", "--data", data, "--rules", "r.toml", "--as-of", "x"],
            "--as-of",
        ),
        (&["shell", "--data", data, "--as-of", "x"], "--as-of"),
        (&["tables", "--data", data, "--format", "yaml"], "--format"),
        (
            &["generate", "--carts", "10", "--out", "o", "--end", "noon"],
            "--end",
        ),
        (
            &["generate", "--carts", "10", "--out", "o", "--window", "5"],
            "--window",
        ),
        (
            &[
                "generate",
                "--carts",
                "10",
                "--out",
                "o",
                "--threshold",
                "x",
            ],
            "--threshold",
        ),
        (
            &[
                "generate",
                "--carts",
                "10",
                "--out",
                "o",
                "--incident",
                "fire:1:00-2:00",
            ],
            "--incident",
        ),
        (
            &[
                "generate",
                "--carts",
                "10",
                "--out",
                "o",
                "--incident",
                "shipping-slow:11:00-10:00",
            ],
            "--incident",
        ),
        (&["generate", "--carts", "ten", "--out", "o"], "--carts"),
        (&["model", "--print", "nope"], "--print"),
    ];
    for (args, flag) in cases {
        refused(args, flag);
    }
}

#[test]
fn flags_that_do_not_apply_are_refused_not_ignored() {
    let data = root("sample-data/otlp");
    let data = data.to_str().unwrap();
    // Without the replay there is no model and no threshold to apply.
    refused(
        &[
            "query",
            "funnel",
            "--no-replay",
            "--data",
            data,
            "--model",
            "otel-demo",
        ],
        "--model",
    );
    refused(
        &[
            "query",
            "funnel",
            "--no-replay",
            "--data",
            data,
            "--threshold",
            "10m",
        ],
        "--threshold",
    );
    refused(
        &[
            "report",
            "--data",
            data,
            "--day",
            "2026-11-20",
            "--since",
            "-2h",
        ],
        "--since",
    );
}

#[test]
fn relative_and_absolute_times_are_both_typed() {
    let data = root("sample-data/otlp");
    let data = data.to_str().unwrap();
    // --as-of with --no-replay sets now(): relative to the data's latest timestamp.
    let o = cartscope(&[
        "query",
        "--no-replay",
        "--data",
        data,
        "-f",
        "csv",
        "--as-of",
        "-2h",
        "-e",
        "SELECT CAST(now() AS VARCHAR) AS now",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("2026-11-20T10:00:00"), "{}", stdout(&o));
    let o = cartscope(&[
        "detect",
        "--data",
        data,
        "-f",
        "csv",
        "--as-of",
        "2026-11-20T12:00:00Z",
        "--threshold",
        "1h30m",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("threshold 1h30m"), "{}", stderr(&o));
}
