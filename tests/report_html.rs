//! `cartscope report --format html` on sample-data: one self-contained page with its four
//! charts, the same bytes for the same input, and telemetry strings shown as text, never as
//! markup.

use std::path::Path;

use crate::util::*;

const CHARTS: [&str; 4] = [
    "chart-funnel",
    "chart-last-operation",
    "chart-latency",
    "chart-by-hour",
];

/// The HTML report of `data`, from stdout.
fn html(data: &Path, args: &[&str]) -> String {
    let o = cmd()
        .args([
            "report",
            "--data",
            data.to_str().unwrap(),
            "--format",
            "html",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).expect("the page is UTF-8")
}

/// The page's text with its line-break hints removed, to look for a table's words.
fn words(page: &str) -> String {
    page.replace("<wbr>", "")
}

#[test]
fn the_page_has_every_chart_and_section_and_nothing_external() {
    let page = html(&root("sample-data/otlp"), &[]);
    assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert_eq!(page.matches("<html").count(), 1);
    assert_eq!(page.matches("</html>").count(), 1);
    assert_eq!(page.matches("<body").count(), 1);
    assert!(!page.to_lowercase().contains("<script"), "no script at all");
    for id in CHARTS {
        let start = page
            .find(&format!("<svg id=\"{id}\""))
            .unwrap_or_else(|| panic!("no <svg> for {id}"));
        let end = start + page[start..].find("</svg>").expect("the svg is closed");
        let svg = &page[start..end];
        assert!(svg.contains("role=\"img\""), "{id}");
        assert!(svg.contains(&format!("<title id=\"{id}-title\">")), "{id}");
        // Something is drawn: bars, or points and a curve.
        assert!(
            svg.contains("<rect") || svg.contains("<circle"),
            "{id} draws nothing"
        );
        // Every coordinate is a number.
        for bad in ["NaN", "inf\"", "inf,", "inf "] {
            assert!(!svg.contains(bad), "{id} has {bad}");
        }
    }
    assert_eq!(page.matches("<svg").count(), CHARTS.len());
    assert_eq!(page.matches("</svg>").count(), CHARTS.len());
    // The by-hour chart is stacked by cause, with a legend naming them.
    let by_hour = &page[page.find("<svg id=\"chart-by-hour\"").unwrap()..];
    for cause in ["slow_response (219)", "error (52)", "none (1,750)"] {
        assert!(by_hour.contains(cause), "legend lacks {cause}");
    }
    // The latency chart has a panel, points and an interval band per operation.
    let latency = &page[page.find("<svg id=\"chart-latency\"").unwrap()..];
    for op in ["payment.authorize", "shipping.calculate_rates"] {
        assert!(latency.contains(&format!(">{op}</text>")), "{op}");
    }
    assert!(latency.contains("<polygon class=\"band\""));
    // Every section of the text report is there, with the injected causes among the drivers.
    for id in [
        "summary",
        "changes",
        "drivers",
        "by-hour",
        "latency",
        "funnel",
        "last-operation",
        "last-stage",
        "causes",
        "top-carts",
    ] {
        assert!(page.contains(&format!("<section id=\"{id}\">")), "{id}");
    }
    let text = words(&page);
    for s in [
        "69.4%",
        "95% CI 67.7% to 71.1%",
        "255,579.86",
        "shipping.calculate_rates slower than 2000 ms",
        "payment.authorize failed",
        "service.version = 3.3.0-rc1 (payment)",
        "16.59 (11.89–23.14)",
        "55862e63d0a85c43127532f850b24488",
    ] {
        assert!(text.contains(s), "the page lacks {s}");
    }
    // Self-contained: nothing is fetched (the only URL is the SVG namespace).
    for s in [
        "src=", "href=", "@import", "url(http", "<link", "<img", "<iframe",
    ] {
        assert!(!page.contains(s), "{s}");
    }
    assert_eq!(
        page.matches("://").count(),
        page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    // And it says so to the browser: no script may run, nothing may be loaded.
    assert!(page.contains("content=\"default-src 'none'; style-src 'unsafe-inline'\""));
}

#[test]
fn same_input_same_bytes_on_stdout_and_in_a_file() {
    let data = root("sample-data/otlp");
    let first = html(&data, &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.html");
    let quiet = html(&data, &["--output", out.to_str().unwrap()]);
    assert!(quiet.is_empty(), "--output writes nothing to stdout");
    let second = std::fs::read_to_string(&out).unwrap();
    assert!(first == second, "two runs differ");
}

#[test]
fn a_hostile_attribute_value_is_shown_as_text() {
    // The bad deploy's version, which the report names as a driver, becomes markup in the
    // export (written with JSON's escapes, so the file itself holds no '<').
    let dir = tempfile::tempdir().unwrap();
    let src = root("sample-data/otlp");
    let traces = std::fs::read_to_string(src.join("traces.jsonl")).unwrap();
    let from = r#""stringValue":"3.3.0-rc1""#;
    let to = r#""stringValue":"\u003cscript\u003ealert(1)\u003c/script\u003erc1""#;
    assert!(traces.contains(from));
    std::fs::write(dir.path().join("traces.jsonl"), traces.replace(from, to)).unwrap();
    std::fs::copy(src.join("metrics.jsonl"), dir.path().join("metrics.jsonl")).unwrap();

    let page = html(dir.path(), &[]);
    // It reaches the report, as the driver it was...
    assert!(
        words(&page)
            .contains("service.version = &lt;script&gt;alert(1)&lt;/script&gt;rc1 (payment)"),
        "the hostile version is not in the drivers"
    );
    // ...and only as text.
    assert!(!page.to_lowercase().contains("<script"));
    assert!(!page.contains("3.3.0-rc1"));
}
