//! `cartscope check` on sample-data: exit 0 when every rule passes, 1 when one fails (named,
//! with its value), baselines both ways, JUnit XML, and malformed rules (exit 2 with the line).

use std::path::Path;
use std::process::Output;

use crate::util::*;

fn check(args: &[&str]) -> Output {
    let data = root("sample-data/otlp");
    cmd()
        .args(["check", "--data", data.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

fn rules(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn the_example_rules_pass_on_sample_data() {
    let ex = root("checks.example.toml");
    let o = check(&["--rules", ex.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("8 rules: 8 passed, 0 failed"), "{out}");
    // Each rule is listed with its measured value: the rate agrees with the truth file.
    assert!(out.contains("abandonment rate stays below 75%"), "{out}");
    assert!(out.contains("0.694263"), "{out}");
    assert!(out.contains("abandoned_carts(slow_response)"), "{out}");
}

#[test]
fn a_failing_rule_is_named_with_its_value_and_exits_1() {
    let d = tempfile::tempdir().unwrap();
    let r = rules(
        d.path(),
        "r.toml",
        r#"
[[rule]]
name = "abandonment rate"
measure = "abandonment_rate"
max = 0.75

[[rule]]
name = "shipping quotes under 3 s"
measure = "p95_ms"
operation = "shipping.calculate_rates"
max = 3000

[[rule]]
name = "abandoned carts after an error"
sql = "SELECT count(*) FROM carts WHERE outcome = 'abandoned' AND suspected_cause = 'error' AND first_seen >= TIMESTAMP '${since}'"
min = 1
max = 10
"#,
    );
    let junit = d.path().join("out/junit.xml");
    let o = check(&["--rules", &r, "--junit", junit.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("FAIL shipping quotes under 3 s (line 7): 5669.801 > 3000 (max)"),
        "{out}"
    );
    // 52 abandonments follow an error (the truth's injected payment errors and the rc1 deploy).
    assert!(
        out.contains("FAIL abandoned carts after an error (line 13): 52 > 10 (max)"),
        "{out}"
    );
    assert!(out.contains("3 rules: 1 passed, 2 failed"), "{out}");

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 2, "{xml}");
    let root = xml.lines().nth(1).unwrap();
    assert!(
        root.starts_with("<testsuites name=\"cartscope check\""),
        "{xml}"
    );
    assert!(
        root.contains(" tests=\"3\"") && root.contains(" failures=\"2\""),
        "{xml}"
    );
    assert!(xml.contains("name=\"shipping quotes under 3 s\""), "{xml}");
    assert!(
        xml.contains("message=\"5669.801 &gt; 3000 (max)\""),
        "{xml}"
    );

    // The same verdicts as JSON, for scripts.
    let o = check(&["--rules", &r, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["version"], 1);
    assert_eq!(j["passed"], false);
    assert_eq!(j["failed"], 2);
    assert_eq!(j["verdicts"][1]["value"], 5669.801);
    assert_eq!(j["verdicts"][1]["limits"][0]["kind"], "max");
    assert_eq!(j["verdicts"][2]["value"], 52.0);
}

/// A quiet afternoon (13:00-16:00) and the slow-shipping incident (02:00-05:00 next day):
/// the same length, so counts and rates compare.
const QUIET: [&str; 4] = [
    "--since",
    "2026-11-19T13:00:00Z",
    "--until",
    "2026-11-19T16:00:00Z",
];
const SLOW: [&str; 4] = [
    "--since",
    "2026-11-20T02:00:00Z",
    "--until",
    "2026-11-20T05:00:00Z",
];

const REGRESSION_RULES: &str = r#"
[[rule]]
measure = "p95_ms"
operation = "shipping.calculate_rates"
max_increase_pct = 20

[[rule]]
measure = "abandonment_rate"
max_increase = 0.05
"#;

#[test]
fn a_baseline_catches_a_regression_and_passes_an_improvement() {
    let d = tempfile::tempdir().unwrap();
    let r = rules(d.path(), "r.toml", REGRESSION_RULES);
    let quiet = d.path().join("quiet.json");
    let slow = d.path().join("slow.json");
    // --write-baseline alone (no rules) writes the report and checks nothing.
    for (period, file) in [(QUIET, &quiet), (SLOW, &slow)] {
        let mut args = period.to_vec();
        args.extend(["--write-baseline", file.to_str().unwrap()]);
        let o = check(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let b: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(b["version"], 1);
    }

    // The incident against the quiet baseline: both rules fail, with the baseline's values.
    let mut args = SLOW.to_vec();
    args.extend(["--rules", &r, "--baseline", quiet.to_str().unwrap()]);
    let o = check(&args);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("FAIL p95_ms(shipping.calculate_rates) (line 2): 6253.719 > 4934.3424 (max_increase_pct)"),
        "{out}"
    );
    assert!(out.contains("(baseline 4111.952 + 20%)"), "{out}");
    assert!(
        out.contains("FAIL abandonment_rate (line 7): 0.734584 > 0.704987 (max_increase)"),
        "{out}"
    );

    // The quiet period against the incident's baseline is an improvement: it passes.
    let mut args = QUIET.to_vec();
    args.extend(["--rules", &r, "--baseline", slow.to_str().unwrap()]);
    let o = check(&args);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("2 rules: 2 passed, 0 failed"));

    // ... unless the rule also bounds a decrease.
    let r2 = rules(
        d.path(),
        "r2.toml",
        "[[rule]]\nmeasure = \"abandonment_rate\"\nmax_decrease_pct = 5\n",
    );
    let mut args = QUIET.to_vec();
    args.extend(["--rules", &r2, "--baseline", slow.to_str().unwrap()]);
    let o = check(&args);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("0.654987 < 0.697855 (max_decrease_pct)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn malformed_rules_exit_2_with_the_line_and_the_key() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[rule]]\nmeasure = \"abandonment_rate\"\nmax = 0.8\n\n[[rule]]\nmeasure = \"abandon_rate\"\nmax = 1\n",
            "line 6, key 'measure': unknown measure 'abandon_rate'",
        ),
        (
            "[[rule]]\nmeasure = \"error_rate\"\nmax = 0.1\n",
            "line 2, key 'operation': measure 'error_rate' needs operation",
        ),
        ("[[rule]]\nmeasure = \"carts\"\nmax = 10\nlimit = 3\n", "line 4"),
        ("[[rule]]\nmeasure = \"carts\"\nmax = \n", "line 3"),
        (
            "[[rule]]\nmeasure = \"abandonment_rate\"\nmax = 70\n",
            "line 3, key 'max': rates are fractions",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let r = rules(d.path(), &format!("bad{i}.toml"), text);
        let o = check(&["--rules", &r]);
        assert_eq!(o.status.code(), Some(2), "case {i}: {}", stdout(&o));
        let e = stderr(&o);
        assert!(e.contains(&format!("bad{i}.toml")), "case {i}: {e}");
        assert!(e.contains(want), "case {i}: {e}");
        assert!(o.stdout.is_empty(), "case {i}: no verdicts on bad rules");
    }

    // A tolerance without --baseline, and an SQL rule whose query is wrong, are errors too.
    let r = rules(d.path(), "tol.toml", REGRESSION_RULES);
    let o = check(&["--rules", &r]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 2: rule 'p95_ms(shipping.calculate_rates)' has a tolerance against a baseline: give --baseline"), "{}", stderr(&o));
    let r = rules(
        d.path(),
        "sql.toml",
        "[[rule]]\nname = \"two values\"\nsql = \"SELECT 1, 2\"\nmax = 1\n",
    );
    let o = check(&["--rules", &r]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("line 1, rule 'two values': the query must return a single value"),
        "{}",
        stderr(&o)
    );
    // A baseline that is not a report.
    let b = d.path().join("b.json");
    std::fs::write(&b, "{\"hello\": 1}").unwrap();
    let r = rules(d.path(), "ok.toml", REGRESSION_RULES);
    let o = check(&["--rules", &r, "--baseline", b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("has no version field"),
        "{}",
        stderr(&o)
    );
}
