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

/// Text for XML content and attribute values: the HTML report's escape (`&#39;` and U+FFFD
/// for control characters are valid XML 1.0 as well).
fn xml(s: &str) -> String {
    crate::report::html::esc(s)
}

/// JUnit XML: one test case per rule, failures with the value and the limit. No timestamps,
/// so the same input gives the same file.
pub fn junit(w: &mut impl std::io::Write, o: &Outcome) -> anyhow::Result<()> {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"cartscope check\" tests=\"{}\" failures=\"{}\" errors=\"0\">",
        o.rules, o.failed
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\">",
        xml(&o.rules_file),
        o.rules,
        o.failed
    );
    let _ = writeln!(s, "    <properties>");
    for (k, v) in [
        ("as_of", o.as_of.to_string()),
        ("since", o.period.since.to_string()),
        ("until", o.period.until.to_string()),
        ("baseline", o.baseline_file.clone().unwrap_or_default()),
    ] {
        let _ = writeln!(s, "      <property name=\"{k}\" value=\"{}\"/>", xml(&v));
    }
    let _ = writeln!(s, "    </properties>");
    for v in &o.verdicts {
        let _ = write!(
            s,
            "    <testcase classname=\"cartscope.check\" name=\"{}\"",
            xml(&v.name)
        );
        let summary = format!(
            "{} = {}, limit {}",
            v.measure,
            v.value.map_or("-".into(), num),
            v.limit_text()
        );
        if v.passed {
            let _ = writeln!(
                s,
                ">\n      <system-out>{}</system-out>\n    </testcase>",
                xml(&summary)
            );
        } else {
            let _ = writeln!(
                s,
                ">\n      <failure message=\"{}\" type=\"regression\">{} (rules line {})</failure>\n    </testcase>",
                xml(&v.message),
                xml(&summary),
                v.line
            );
        }
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    w.write_all(s.as_bytes())?;
    Ok(())
}
