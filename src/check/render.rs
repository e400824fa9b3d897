//! A check's outcome as text, JSON and JUnit XML, written to any `io::Write`.

use std::fmt::Write as _;

use comfy_table::{presets, Table as Grid};

use super::{num, Outcome};

/// Writes the outcome in format `f` to `w`.
pub fn render(
    w: &mut impl std::io::Write,
    o: &Outcome,
    f: super::CheckFormat,
) -> anyhow::Result<()> {
    match f {
        super::CheckFormat::Text => w.write_all(text(o).as_bytes())?,
        super::CheckFormat::Json => {
            serde_json::to_writer_pretty(&mut *w, o)?;
            w.write_all(b"\n")?;
        }
    }
    Ok(())
}

fn text(o: &Outcome) -> String {
    let mut g = Grid::new();
    g.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_header(vec!["rule", "measure", "value", "limit", "verdict"]);
    for v in &o.verdicts {
        g.add_row(vec![
            v.name.clone(),
            v.measure.clone(),
            v.value.map_or("-".into(), num),
            v.limit_text(),
            if v.passed {
                "pass".into()
            } else {
                "FAIL".into()
            },
        ]);
    }
    let mut s = format!(
        "cartscope check: rules {}{}, carts first seen {} to {}, as of {}\n{g}\n",
        o.rules_file,
        o.baseline_file
            .as_ref()
            .map_or(String::new(), |b| format!(" against baseline {b}")),
        o.period.since,
        o.period.until,
        o.as_of
    );
    for v in o.verdicts.iter().filter(|v| !v.passed) {
        let _ = writeln!(s, "FAIL {} (line {}): {}", v.name, v.line, v.message);
    }
    let _ = writeln!(
        s,
        "{} rules: {} passed, {} failed",
        o.rules,
        o.rules - o.failed,
        o.failed
    );
    s
}

/// JUnit XML, written by quick-junit: one test case per rule, failures with the value and the
/// limit. No timestamps, so the same input gives the same file.
pub fn junit(w: &mut impl std::io::Write, o: &Outcome) -> anyhow::Result<()> {
    use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new(o.rules_file.as_str());
    suite.add_properties([
        Property::new("as_of", o.as_of.to_string()),
        Property::new("since", o.period.since.to_string()),
        Property::new("until", o.period.until.to_string()),
        Property::new("baseline", o.baseline_file.clone().unwrap_or_default()),
    ]);
    for v in &o.verdicts {
        let summary = format!(
            "{} = {}, limit {}",
            v.measure,
            v.value.map_or("-".into(), num),
            v.limit_text()
        );
        let case = if v.passed {
            let mut c = TestCase::new(v.name.as_str(), TestCaseStatus::success());
            c.set_system_out(summary);
            c
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status
                .set_message(v.message.as_str())
                .set_type("regression")
                .set_description(format!("{summary} (rules line {})", v.line));
            TestCase::new(v.name.as_str(), status)
        };
        let mut case = case;
        case.set_classname("cartscope.check");
        suite.add_test_case(case);
    }
    let mut report = Report::new("cartscope check");
    report.add_test_suite(suite);
    report.serialize(&mut *w)?;
    Ok(())
}
