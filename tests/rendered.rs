//! Snapshots of what people and CI systems read: the report as text and markdown, and
//! `check`'s verdicts as text and JUnit XML, on sample-data. The version of cartscope and the
//! rules file's folder are filtered out; everything else (figures, times, order) must stay
//! byte for byte, so a change to any of them is reviewed here. CI never writes new snapshots.

use crate::util::*;

/// Runs cartscope and returns stdout, asserting the exit code.
fn output(args: &[&str], code: i32) -> String {
    let o = cartscope(args);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(
        r"cartscope \d+\.\d+\.\d+(-[0-9A-Za-z.]+)?",
        "cartscope [VERSION]",
    );
    s.add_filter(&regex_escape(root("").to_str().unwrap()), "[ROOT]/");
    s
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

fn data() -> String {
    root("sample-data/otlp").display().to_string()
}

#[test]
fn report_text() {
    let text = output(&["report", "--data", &data()], 0);
    settings().bind(|| insta::assert_snapshot!(text));
}

#[test]
fn report_markdown() {
    let text = output(&["report", "--data", &data(), "-f", "markdown"], 0);
    settings().bind(|| insta::assert_snapshot!(text));
}

#[test]
fn check_text_and_junit() {
    let tmp = tempfile::tempdir().unwrap();
    let junit = tmp.path().join("check.xml");
    let rules = root("checks.example.toml");
    let text = output(
        &[
            "check",
            "--data",
            &data(),
            "--rules",
            rules.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
        0,
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    settings().bind(|| {
        insta::assert_snapshot!("check_text", text);
        insta::assert_snapshot!("check_junit", xml);
    });
}

/// A failing rule, as CI shows it: the verdict and the JUnit failure element.
#[test]
fn check_failure_text_and_junit() {
    let tmp = tempfile::tempdir().unwrap();
    let junit = tmp.path().join("check.xml");
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"shipping quotes under 3 s\"\nmeasure = \"p95_ms\"\noperation = \"shipping.calculate_rates\"\nmax = 3000\n",
    )
    .unwrap();
    let text = output(
        &[
            "check",
            "--data",
            &data(),
            "--rules",
            rules.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
        1,
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let dir = regex_escape(tmp.path().to_str().unwrap());
    let mut s = settings();
    s.add_filter(&dir, "[TMP]");
    s.bind(|| {
        insta::assert_snapshot!("check_failure_text", text);
        insta::assert_snapshot!("check_failure_junit", xml);
    });
}
