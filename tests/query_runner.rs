//! The query runner's promises: NOW() is the as-of time, --queries adds a folder, errors name
//! the query and what to do, with exit code 2.

use crate::util::*;

fn data() -> String {
    root("sample-data/otlp").display().to_string()
}

#[test]
fn now_and_current_timestamp_are_the_as_of_time() {
    let d = data();
    let o = cartscope(&[
        "query",
        "--data",
        &d,
        "-f",
        "csv",
        "-e",
        "SELECT now() AS a, CURRENT_TIMESTAMP AS b",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "a,b\n2026-11-20T12:00:00Z,2026-11-20T12:00:00Z\n"
    );
    let o = cartscope(&[
        "query",
        "--data",
        &d,
        "-f",
        "csv",
        "--as-of",
        "-1h",
        "-e",
        "SELECT now() AS a",
    ]);
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "a\n2026-11-20T11:00:00Z\n"
    );
    // A relative window gives the same answer on this old export whenever it runs.
    let o = cartscope(&[
        "query",
        "--data",
        &d,
        "-f",
        "csv",
        "-e",
        "SELECT count(*) AS n FROM carts WHERE last_activity > NOW() - INTERVAL '1 hour'",
    ]);
    let n: u64 = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 0 && n < 3000, "{n}");
}

#[test]
fn a_folder_of_queries_joins_the_library() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("by_outcome.sql"),
        "-- name: by_outcome\n-- description: Carts per outcome.\n-- param: outcome = abandoned\nSELECT count(*) AS n FROM carts WHERE outcome = '${outcome}'\n",
    )
    .unwrap();
    let dir = tmp.path().to_str().unwrap();
    let o = cartscope(&["queries", "--queries", dir, "-f", "csv"]);
    let list = String::from_utf8(o.stdout).unwrap();
    assert!(
        list.contains("by_outcome,Carts per outcome.,outcome=abandoned"),
        "{list}"
    );
    let d = data();
    let o = cartscope(&[
        "query",
        "by_outcome",
        "--queries",
        dir,
        "--data",
        &d,
        "-f",
        "csv",
        "--param",
        "outcome=converted",
    ]);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "n\n890\n");
}

#[test]
fn errors_name_the_query_and_exit_2() {
    let d = data();
    let o = cartscope(&["query", "funnel", "--data", &d, "--param", "nope=1"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("query 'funnel' has no parameter 'nope'"),
        "{err}"
    );
    let o = cartscope(&[
        "query",
        "high_value_abandoned",
        "--data",
        &d,
        "--param",
        "limit=ten",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8(o.stderr)
        .unwrap()
        .contains("expects a number"));
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bad.sql");
    std::fs::write(&f, "SELECT cart_id\nFROM carts WHERE outcome = ) \n").unwrap();
    let o = cartscope(&["query", f.to_str().unwrap(), "--data", &d]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("bad.sql")
            && err.contains("line 2: FROM carts WHERE outcome = )")
            && err.contains('^'),
        "{err}"
    );
    let o = cartscope(&["query", "no_such_query", "--data", &d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8(o.stderr)
        .unwrap()
        .contains("slow_shipping_before_abandonment"));
}

/// `cartscope query --data INPUT... NAME`: --data takes every value up to the next flag, so
/// the query after the inputs is told from them: a FILE.sql, or a bare word that is no file
/// or folder (a library query's name; a mistyped one gets the library's names). Without
/// one, the error says to put the query before --data; with -e too, to give one of them.
/// Data: the real JS SDK's export (tests/fixtures/real-sdk/js) and sample-data's OTLP files.
#[test]
fn a_query_named_after_the_inputs_is_the_query() {
    let js = fixture("real-sdk/js/traces.jsonl.gz").display().to_string();
    let before = cartscope(&["query", "funnel", "--data", &js, "-f", "csv"]);
    assert!(before.status.success(), "{}", stderr(&before));
    let after = cartscope(&["query", "--data", &js, "funnel", "-f", "csv"]);
    assert!(after.status.success(), "{}", stderr(&after));
    assert_eq!(stdout(&after), stdout(&before));
    assert!(stdout(&after).lines().count() > 2, "{}", stdout(&after));

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("count.sql");
    std::fs::write(&file, "SELECT count(*) AS carts FROM carts").unwrap();
    let f = file.display().to_string();
    let d = data();
    let o = cartscope(&["query", "--data", &d, &f, "-f", "csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("carts\n"), "{}", stdout(&o));

    // No query: the error says where to put one.
    let o = cartscope(&["query", "--data", &d]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("give a query") && e.contains("cartscope query NAME --data INPUT"),
        "{e}"
    );
    // A mistyped name: the library's names; beside -e: one or the other.
    for (args, said) in [
        (
            vec!["query", "--data", &d, "funel"],
            "no query named 'funel'",
        ),
        (
            vec!["query", "-e", "SELECT 1", "--data", &d, "funnel"],
            "give either -e 'SQL' or a query ('funnel'), not both",
        ),
    ] {
        let o = cartscope(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(said), "{args:?}: {}", stderr(&o));
    }
}
