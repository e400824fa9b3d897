//! The report as one self-contained HTML page: the same sections as the text report, as
//! tables, and four charts drawn as inline SVG (funnel, abandonment by last operation, latency
//! to conversion, abandonments by hour with their causes). No script, no external font, style
//! sheet or image, so the file can be mailed, archived or printed as it is.
//!
//! Every string from telemetry or the model (operation, stage, cause, attribute value, cart
//! and trace ids) is untrusted and goes through [`esc`], in text and attribute values alike;
//! the page also forbids scripts with a Content-Security-Policy. Numbers are formatted with a
//! fixed precision and iteration follows the model's order, so the same report gives the same
//! bytes.

mod charts;
mod svg;
mod text;

use std::fmt::Write as _;

use super::reconcile::StageCoverage;
use super::{Count, Driver, Report, ValueCoverage};
use charts::*;
use svg::figure;
pub use text::esc;
use text::*;

#[derive(Clone, Copy, PartialEq)]
enum Col {
    Text,
    Num,
    /// Ids: monospace, broken anywhere.
    Code,
}

fn table(out: &mut String, heads: &[(&str, Col)], rows: &[(bool, Vec<String>)]) {
    out.push_str("<table>\n<thead><tr>");
    for (h, k) in heads {
        // Short numeric headings (a latency bucket, "p95 ms") stay on one line.
        let class = match k {
            Col::Num if h.chars().count() <= 8 => " class=\"n nw\"",
            Col::Num => " class=\"n\"",
            _ => "",
        };
        let _ = write!(out, "<th{class}>{}</th>", esc(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (strong, cells) in rows {
        out.push_str(if *strong {
            "<tr class=\"sig\">"
        } else {
            "<tr>"
        });
        for (cell, (_, k)) in cells.iter().zip(heads) {
            match k {
                Col::Text => {
                    let _ = write!(out, "<td class=\"t\">{}</td>", breakable(cell));
                }
                Col::Num => {
                    let _ = write!(out, "<td class=\"n\">{}</td>", esc(cell));
                }
                Col::Code => {
                    let _ = write!(out, "<td><code>{}</code></td>", esc(cell));
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

fn counts_table(out: &mut String, what: &str, rows: &[Count]) {
    table(
        out,
        &[
            (what, Col::Text),
            ("carts", Col::Num),
            ("recorded value", Col::Num),
            ("value known", Col::Num),
            ("estimated value (95% CI)", Col::Num),
        ],
        &rows
            .iter()
            .map(|c| {
                (
                    false,
                    vec![
                        c.name.clone(),
                        int(c.carts),
                        money(c.value),
                        known(&c.value_coverage),
                        estimated(&c.value_coverage),
                    ],
                )
            })
            .collect::<Vec<_>>(),
    );
}

/// "386 of 1,968"
fn known(c: &ValueCoverage) -> String {
    format!("{} of {}", int(c.known), int(c.carts))
}

/// "82.50 (95% CI 70.00–95.00)", the sum alone when every value is known, "–" when nothing
/// could be estimated.
fn estimated(c: &ValueCoverage) -> String {
    match (c.estimated, c.estimated_ci95) {
        (Some(e), Some([lo, hi])) if c.is_partial() => {
            format!("{} (95% CI {}–{})", money(e), money(lo), money(hi))
        }
        (Some(e), _) => money(e),
        _ => "–".into(),
    }
}

fn para(out: &mut String, class: &str, text: &str) {
    if class.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", esc(text));
    } else {
        let _ = writeln!(out, "<p class=\"{class}\">{}</p>", esc(text));
    }
}

fn section(out: &mut String, id: &str, title: &str) {
    let _ = writeln!(out, "<section id=\"{id}\">\n<h2>{}</h2>", esc(title));
}

// ---------------------------------------------------------------------------------------
// The page

/// The page's style sheet, a file beside this one.
const STYLE: &str = include_str!("style.css");

pub fn render(r: &Report) -> String {
    let mut p = String::new();
    let title = format!(
        "Cart abandonment report, {} to {}",
        r.period.since, r.period.until
    );
    let _ = write!(
        p,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"{}\">\n<title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n",
        esc(&r.generator),
        esc(&title)
    );
    let _ = writeln!(p, "<header>\n<h1>Cart abandonment report</h1>");
    para(
        &mut p,
        "meta",
        &format!(
            "Carts first seen from {} to {}, as of {} (abandonment threshold {}, model {}).",
            r.period.since, r.period.until, r.as_of, r.threshold, r.model
        ),
    );
    p.push_str("</header>\n");

    warnings(&mut p, r);
    summary(&mut p, r);
    completeness(&mut p, r);
    sampled(&mut p, r);
    changes(&mut p, r);
    drivers(&mut p, r);

    section(
        &mut p,
        "by-hour",
        "When: abandonments by hour, with their causes",
    );
    p.push_str(&figure(
        by_hour_chart(r),
        "Abandoned carts per hour of abandonment (UTC), stacked by suspected cause; \
         'none' is an abandonment with no suspected cause. Hover a bar for its count.",
    ));
    p.push_str("</section>\n");

    latency(&mut p, r);

    section(&mut p, "funnel", "Funnel");
    p.push_str(&figure(
        funnel_chart(r),
        "Carts whose furthest stage is at least each stage; the grey bar is the stage before, \
         so its uncovered part is the carts dropped in between.",
    ));
    table(
        &mut p,
        &[
            ("stage", Col::Text),
            ("carts", Col::Num),
            ("dropped", Col::Num),
            ("drop rate", Col::Num),
        ],
        &r.funnel
            .iter()
            .map(|f| {
                (
                    false,
                    vec![
                        f.stage.clone(),
                        int(f.carts),
                        int(f.dropped),
                        pct(f.drop_rate),
                    ],
                )
            })
            .collect::<Vec<_>>(),
    );
    p.push_str("</section>\n");

    section(&mut p, "last-operation", "Abandonment by last operation");
    p.push_str(&figure(
        last_operation_chart(r),
        "Abandoned carts by the last operation before they were left, with that operation's \
         latency and error rate over all its spans in the period.",
    ));
    if r.by_last_operation.is_empty() {
        para(&mut p, "empty", "No abandoned carts in this period.");
    } else {
        table(
            &mut p,
            &[
                ("operation", Col::Text),
                ("abandoned", Col::Num),
                ("share", Col::Num),
                ("spans", Col::Num),
                ("p50 ms", Col::Num),
                ("p95 ms", Col::Num),
                ("p99 ms", Col::Num),
                ("error rate", Col::Num),
                ("recorded value", Col::Num),
                ("value known", Col::Num),
                ("estimated value (95% CI)", Col::Num),
            ],
            &r.by_last_operation
                .iter()
                .map(|o| {
                    (
                        false,
                        vec![
                            o.operation.clone(),
                            int(o.abandoned),
                            pct(o.share),
                            int(o.spans),
                            num(o.p50_ms, 1),
                            num(o.p95_ms, 1),
                            num(o.p99_ms, 1),
                            pct(o.error_rate),
                            money(o.value),
                            known(&o.value_coverage),
                            estimated(&o.value_coverage),
                        ],
                    )
                })
                .collect::<Vec<_>>(),
        );
    }
    p.push_str("</section>\n");

    section(&mut p, "last-stage", "Abandonment by last stage");
    if r.by_last_stage.is_empty() {
        para(&mut p, "empty", "No abandoned carts in this period.");
    } else {
        counts_table(&mut p, "stage", &r.by_last_stage);
    }
    p.push_str("</section>\n");

    section(&mut p, "causes", "Suspected causes");
    if r.causes.is_empty() {
        para(&mut p, "empty", "No abandoned carts in this period.");
    } else {
        counts_table(&mut p, "cause", &r.causes);
    }
    p.push_str("</section>\n");

    top_carts(&mut p, r);

    let _ = writeln!(
        p,
        "<footer>{}, report schema version {}. The same input and as-of time give the same page.</footer>",
        esc(&r.generator),
        r.version
    );
    p.push_str("</main>\n</body>\n</html>\n");
    p
}

/// The replay's signs that the model does not fit the data, before any figure they put in
/// doubt.
fn warnings(p: &mut String, r: &Report) {
    if r.warnings.is_empty() {
        return;
    }
    section(p, "warnings", "Warnings: the model may not fit the data");
    p.push_str("<ul>\n");
    for w in &r.warnings {
        let _ = writeln!(p, "<li>{}</li>", esc(w));
    }
    p.push_str("</ul>\n</section>\n");
}

/// Data completeness: the metrics' stage transitions against the traces'.
fn completeness(p: &mut String, r: &Report) {
    let Some(rc) = &r.reconciliation else {
        return;
    };
    section(p, "completeness", "Data completeness");
    para(
        p,
        if rc.verdict == "complete" { "" } else { "note" },
        &format!(
            "Traces against metrics ({} by {}): {}.",
            rc.metric, rc.stage_attribute, rc.summary
        ),
    );
    // The stage's name as text, the figures as numbers.
    let heads: Vec<(&str, Col)> = StageCoverage::HEADER
        .iter()
        .enumerate()
        .map(|(k, h)| (*h, if k == 0 { Col::Text } else { Col::Num }))
        .collect();
    let rows: Vec<(bool, Vec<String>)> = rc.stages.iter().map(|s| (false, s.cells())).collect();
    table(p, &heads, &rows);
    if !rc.gaps.is_empty() {
        p.push_str("<ul>\n");
        for g in &rc.gaps {
            let _ = writeln!(p, "<li>{}</li>", esc(&g.text()));
        }
        p.push_str("</ul>\n");
    }
    p.push_str("</section>\n");
}

/// The period's carts once the sampling is accounted for.
fn sampled(p: &mut String, r: &Report) {
    let Some(sa) = &r.sampling else {
        return;
    };
    section(p, "sampling", "Sampling");
    para(p, "note", &format!("Sampling: {}.", sa.summary));
    let rows: Vec<(bool, Vec<String>)> = sa
        .rows()
        .into_iter()
        .map(|r| (false, Vec::from(r)))
        .collect();
    table(p, &[("figure", Col::Text), ("value", Col::Num)], &rows);
    if let Some(wt) = &r.weighted {
        para(p, "note", super::weighted::INTRO);
        for t in wt.tables() {
            let _ = writeln!(p, "<h3>{}</h3>", esc(t.title));
            let heads: Vec<(&str, Col)> = t
                .columns
                .iter()
                .map(|&(h, figures)| (h, if figures { Col::Num } else { Col::Text }))
                .collect();
            let rows: Vec<(bool, Vec<String>)> = t.rows.into_iter().map(|r| (false, r)).collect();
            table(p, &heads, &rows);
        }
    }
    p.push_str("</section>\n");
}

fn summary(p: &mut String, r: &Report) {
    let s = &r.summary;
    section(p, "summary", "Summary");
    let card = |p: &mut String, k: &str, v: &str, sub: &str| {
        let _ = writeln!(
            p,
            "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\">{}</div><div class=\"s\">{}</div></div>",
            esc(k),
            esc(v),
            esc(sub)
        );
    };
    p.push_str("<div class=\"cards\">\n");
    let (rate, sub) = match s.rate() {
        Some((r, [lo, hi])) => (pct(r), format!("95% CI {} to {}", pct(lo), pct(hi))),
        None => ("–".into(), "no decided carts".into()),
    };
    card(p, "Abandonment rate", &rate, &sub);
    // Never a partial sum as the whole: the recorded sum and the estimate side by side.
    let c = &s.abandoned_value_coverage;
    if c.is_partial() {
        card(
            p,
            "Abandoned value recorded",
            &money(s.abandoned_value),
            &format!(
                "value known for {} of {} abandoned carts",
                int(c.known),
                int(c.carts)
            ),
        );
        let (value, sub) = match (c.estimated, c.estimated_ci95) {
            (Some(e), Some([lo, hi])) => (
                money(e),
                format!(
                    "95% CI {} to {}; the unknown values by {}",
                    money(lo),
                    money(hi),
                    c.method
                ),
            ),
            _ => (
                "–".into(),
                "no cart of the period has a recorded value".into(),
            ),
        };
        card(
            p,
            "Abandoned value, estimated total (revenue at risk)",
            &value,
            &sub,
        );
    } else {
        card(
            p,
            "Abandoned value (revenue at risk)",
            &money(s.abandoned_value),
            &format!("{} abandoned carts, value known for all", int(s.abandoned)),
        );
    }
    card(
        p,
        "Carts",
        &int(s.carts),
        &format!(
            "{} converted, {} abandoned, {} active, {} recovered",
            int(s.converted),
            int(s.abandoned),
            int(s.active),
            int(s.recovered)
        ),
    );
    p.push_str("</div>\n");
    para(
        p,
        "note",
        "The rate is abandoned / (abandoned + converted): carts still active are not counted \
         either way. The interval is Wilson's.",
    );
    p.push_str("</section>\n");
}

fn changes(p: &mut String, r: &Report) {
    section(p, "changes", "Against the previous period");
    if r.previous.carts == 0 {
        para(
            p,
            "note",
            "The previous period of the same length has no carts, so every figure is new rather than changed.",
        );
    }
    let rows: Vec<(bool, Vec<String>)> = r
        .changes
        .iter()
        .map(|c| {
            let (now, before, change) = match c.figure.as_str() {
                "abandonment_rate" => {
                    let (now, before) = (r.summary.rate().is_some(), r.previous.rate().is_some());
                    (
                        if now { pct(c.current) } else { "–".into() },
                        if before {
                            pct(c.previous)
                        } else {
                            "–".into()
                        },
                        if now && before {
                            format!("{} points", signed(fixed(100.0 * c.change, 1)))
                        } else {
                            "–".into()
                        },
                    )
                }
                "abandoned_value" | "abandoned_value_estimated" => {
                    (money(c.current), money(c.previous), signed(money(c.change)))
                }
                _ if [c.current, c.previous, c.change]
                    .iter()
                    .all(|x| x.fract() == 0.0) =>
                {
                    (
                        num(c.current, 0),
                        num(c.previous, 0),
                        signed(num(c.change, 0)),
                    )
                }
                _ => (
                    num(c.current, 4),
                    num(c.previous, 4),
                    signed(num(c.change, 4)),
                ),
            };
            (
                c.significant,
                vec![
                    c.figure.replace('_', " "),
                    now,
                    before,
                    change,
                    c.p_value.map_or("–".into(), pval),
                    if c.significant { "yes" } else { "no" }.into(),
                ],
            )
        })
        .collect();
    table(
        p,
        &[
            ("figure", Col::Text),
            ("now", Col::Num),
            ("before", Col::Num),
            ("change", Col::Num),
            ("p", Col::Num),
            ("beyond chance", Col::Text),
        ],
        &rows,
    );
    p.push_str("</section>\n");
}

fn drivers(p: &mut String, r: &Report) {
    section(
        p,
        "drivers",
        "Why: drivers of abandonment, by the abandoned value they explain",
    );
    let shown: Vec<&Driver> = r
        .drivers
        .iter()
        .filter(|d| d.significant)
        .take(15)
        .collect();
    if shown.is_empty() {
        para(
            p,
            "empty",
            &format!(
                "No driver stands out: none of the {} candidates raises abandonment beyond chance.",
                r.drivers.len()
            ),
        );
    } else {
        let rows: Vec<(bool, Vec<String>)> = shown
            .iter()
            .map(|d| {
                (
                    false,
                    vec![
                        d.driver.clone(),
                        int(d.support),
                        int(d.abandoned),
                        format!("{} vs {}", pct(d.abandonment_rate), pct(d.baseline_rate)),
                        match (
                            d.relative_risk,
                            d.relative_risk_ci95,
                            d.relative_risk_at_least,
                        ) {
                            (Some(rr), Some([a, b]), _) => {
                                format!("{} ({}–{})", fixed(rr, 2), fixed(a, 2), fixed(b, 2))
                            }
                            (Some(rr), None, _) => fixed(rr, 2),
                            (None, _, Some(lo)) => format!("at least {}", fixed(lo, 2)),
                            _ => "–".into(),
                        },
                        pval(d.p_value),
                        pval(d.q_value),
                        num(d.excess_abandoned, 1),
                        money(d.excess_value_estimated),
                        format!(
                            "{} ({} known)",
                            money(d.excess_value),
                            int(d.abandoned_value_known)
                        ),
                    ],
                )
            })
            .collect();
        table(
            p,
            &[
                ("driver", Col::Text),
                ("carts", Col::Num),
                ("abandoned", Col::Num),
                ("rate vs baseline", Col::Num),
                ("relative risk (95% CI)", Col::Num),
                ("p", Col::Num),
                ("q", Col::Num),
                ("excess abandoned", Col::Num),
                ("excess value (estimated)", Col::Num),
                ("excess value (recorded)", Col::Num),
            ],
            &rows,
        );
        let others = r.drivers.len() - shown.len();
        para(
            p,
            "note",
            &format!(
                "Each driver is a property of a cart, judged among the carts that reached the stage \
                 where it shows: its abandonment rate against that of the carts without it, the \
                 relative risk with its 95% interval, the p-value ({}) and the q-value after \
                 Benjamini-Hochberg across all {} candidates. Shown: those with q < 0.05 and a \
                 relative risk above 1{}; {} other candidates are not beyond chance.",
                describe_tests(r),
                r.drivers.len(),
                if r.drivers.iter().filter(|d| d.significant).count() > shown.len() {
                    ", the first 15"
                } else {
                    ""
                },
                others
            ),
        );
    }
    p.push_str("</section>\n");
}

/// The tests the drivers used, by name, in the order first used.
fn describe_tests(r: &Report) -> String {
    let mut names: Vec<&str> = Vec::new();
    for d in &r.drivers {
        if !names.contains(&d.test.as_str()) {
            names.push(&d.test);
        }
    }
    if names.is_empty() {
        "association test".into()
    } else {
        names.join(" or ")
    }
}

fn latency(p: &mut String, r: &Report) {
    section(p, "latency", "Latency to conversion");
    p.push_str(&figure(
        latency_chart(r),
        "Share of carts converted by the latency of each checkout operation (the cart's \
         slowest span of it); the band and whiskers are each bucket's 95% Wilson interval, \
         n the carts in the bucket.",
    ));
    if r.latency_curves.is_empty() {
        p.push_str("</section>\n");
        return;
    }
    // One column per latency bucket when every curve has the same buckets.
    let first: Vec<String> = r.latency_curves[0]
        .buckets
        .iter()
        .map(bucket_label)
        .collect();
    let same = r
        .latency_curves
        .iter()
        .all(|c| c.buckets.iter().map(bucket_label).collect::<Vec<_>>() == first);
    let bucket_heads: Vec<String> = if same {
        first.iter().map(|b| format!("{b}\u{a0}s")).collect()
    } else {
        Vec::new()
    };
    let mut heads: Vec<(&str, Col)> = vec![
        ("operation", Col::Text),
        ("carts", Col::Num),
        ("effect of +1 s (points)", Col::Num),
        ("slope 95% CI (log-odds/s)", Col::Num),
    ];
    heads.extend(bucket_heads.iter().map(|h| (h.as_str(), Col::Num)));
    let rows: Vec<(bool, Vec<String>)> = r
        .latency_curves
        .iter()
        .map(|c| {
            let mut cells = vec![
                c.operation.clone(),
                int(c.carts),
                effect(c).map_or("no clear effect".into(), |p| signed(fixed(p, 2))),
                c.slope_ci95.map_or("–".into(), |[a, b]| {
                    format!("{} to {}", fixed(a, 3), fixed(b, 3))
                }),
            ];
            if same {
                cells.extend(
                    c.buckets
                        .iter()
                        .map(|b| b.conversion.map_or("–".into(), pct)),
                );
            }
            (false, cells)
        })
        .collect();
    table(p, &heads, &rows);
    para(
        p,
        "note",
        "The effect is the change in conversion, in percentage points, of one more second at \
         the median latency, from a logistic regression; it is stated only when the slope's \
         95% interval excludes zero.",
    );
    p.push_str("</section>\n");
}

fn top_carts(p: &mut String, r: &Report) {
    section(p, "top-carts", "Top abandoned carts by value");
    if r.top_abandoned.is_empty() {
        para(p, "empty", "No abandoned carts in this period.");
    } else {
        // The log column only when some cart has a log line, as in the text report.
        let with_logs = r.top_abandoned.iter().any(|c| c.last_log.is_some());
        let mut header = vec![
            ("cart", Col::Code),
            ("value", Col::Num),
            ("last operation", Col::Text),
            ("ms", Col::Num),
            ("status", Col::Text),
            ("cause", Col::Text),
            ("trace id", Col::Code),
        ];
        if with_logs {
            header.push(("last error/warning log", Col::Text));
        }
        table(
            p,
            &header,
            &r.top_abandoned
                .iter()
                .map(|c| {
                    let mut row = vec![
                        c.cart_id.clone(),
                        c.value_cell(money(c.value)),
                        c.last_operation.clone(),
                        num(c.last_op_duration_ms, 1),
                        c.last_op_status.clone(),
                        c.suspected_cause.clone().unwrap_or_else(|| "none".into()),
                        c.trace_id.clone(),
                    ];
                    if with_logs {
                        row.push(
                            c.last_log
                                .as_ref()
                                .map(crate::report::LogLine::cell)
                                .unwrap_or_default(),
                        );
                    }
                    (false, row)
                })
                .collect::<Vec<_>>(),
        );
        if r.top_abandoned.iter().any(|c| c.value_estimated) {
            para(p, "note", crate::report::ESTIMATED_NOTE);
        }
    }
    p.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::svg::*;
    use super::*;
    use crate::report::render::ReportFormat;

    #[test]
    fn escapes_everything_that_could_become_markup() {
        assert_eq!(
            esc(r#"<script>alert('x') & "y"</script>"#),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(esc("a\u{0}b\u{1b}c\td"), "a\u{FFFD}b\u{FFFD}c\td");
        // Bidirectional controls cannot reorder the page: they are shown, not obeyed.
        assert_eq!(
            esc("cart-\u{202E}gnp.exe\u{2066}x\u{2069}\u{200F}"),
            "cart-[U+202E]gnp.exe[U+2066]x[U+2069][U+200F]"
        );
        assert_eq!(
            breakable("service.version = 3.3.0 <b>"),
            "service.<wbr>version = 3.3.0 &lt;b&gt;"
        );
    }

    #[test]
    fn numbers_are_fixed_and_never_minus_zero() {
        assert_eq!(fixed(-0.0001, 2), "0.00");
        assert_eq!(money(255579.857), "255,579.86");
        assert_eq!(money(-1234.5), "-1,234.50");
        assert_eq!(int(1000), "1,000");
        assert_eq!(int(999), "999");
        assert_eq!(pct(f64::NAN), "–");
        assert_eq!(c(f64::NAN), "0");
        assert_eq!(c(-0.01), "0");
        assert_eq!(c(12.0), "12");
        assert_eq!(signed(fixed(0.0, 1)), "0.0");
        assert_eq!(signed(fixed(1.26, 1)), "+1.3");
        assert_eq!(pval(1.58e-30), "1.58e-30");
        assert_eq!(clip("abcdefghij", 5), ("ab…ij".to_string(), true));
        assert_eq!(clip("abc", 5), ("abc".to_string(), false));
        assert_eq!(clip("ééééééé", 4), ("éé…é".to_string(), true));
    }

    /// A report whose every string is markup, or one of a period with no carts.
    fn report(evil: &str, empty: bool) -> Report {
        use super::super::*;
        let s = |x: &str| format!("{evil}{x}");
        let summary = Summary {
            carts: 10,
            converted: 4,
            abandoned: 6,
            abandonment_rate: 0.6,
            abandonment_rate_ci95: [0.31, 0.83],
            ..Summary::default()
        };
        let bucket = |from_ms, to_ms, carts, conversion| LatencyBucket {
            from_ms,
            to_ms,
            carts,
            conversion: Some(conversion),
        };
        let count = |name: &str| Count {
            name: s(name),
            carts: 6,
            value: 12.5,
            value_coverage: Default::default(),
        };
        let stage = |name: &str, carts, dropped, drop_rate| FunnelStage {
            stage: s(name),
            carts,
            dropped,
            drop_rate,
        };
        let mut r = Report {
            version: 1,
            generator: s("gen"),
            model: s("model"),
            as_of: "2026-11-20T12:00:00Z".parse().unwrap(),
            threshold: "30m".parse().unwrap(),
            period: Period {
                since: "2026-11-19T12:00:00Z".parse().unwrap(),
                until: "2026-11-20T12:00:00Z".parse().unwrap(),
            },
            changes: super::super::changes(&summary, &Summary::default()),
            summary,
            previous: Summary::default(),
            funnel: vec![stage("a", 10, 0, 0.0), stage("b", 4, 6, 0.6)],
            by_last_stage: vec![count("a")],
            by_last_operation: vec![OperationRow {
                operation: s("op"),
                abandoned: 6,
                share: 1.0,
                spans: 10,
                p50_ms: 1.0,
                p95_ms: 2.0,
                p99_ms: 3.0,
                error_rate: 0.1,
                value: 12.5,
                value_coverage: Default::default(),
            }],
            operations: Vec::new(),
            causes: vec![count("cause")],
            top_abandoned: vec![TopCart {
                cart_id: s("cart"),
                value: 2.0,
                value_estimated: false,
                last_operation: s("op"),
                last_op_duration_ms: 1.0,
                last_op_status: s("error"),
                suspected_cause: Some(s("cause")),
                trace_id: s("trace"),
                last_log: None,
            }],
            drivers: vec![Driver {
                driver: s("driver"),
                kind: s("attribute"),
                support: 5,
                abandoned: 5,
                abandonment_rate: 1.0,
                baseline_rate: 0.0,
                relative_risk: None,
                relative_risk_ci95: None,
                relative_risk_at_least: None,
                test: s("test"),
                p_value: 0.001,
                q_value: 0.01,
                excess_abandoned: 5.0,
                excess_value: 10.0,
                excess_value_estimated: 20.0,
                abandoned_value_known: 2,
                significant: true,
            }],
            latency_curves: vec![LatencyCurve {
                operation: s("op"),
                carts: 10,
                points_per_second: Some(-3.0),
                slope: Some(-0.5),
                slope_ci95: Some([-0.9, -0.1]),
                buckets: vec![
                    bucket(0.0, Some(500.0), 6, 0.5),
                    bucket(500.0, None, 4, 0.25),
                ],
            }],
            by_hour: vec![HourRow {
                hour: "2026-11-19T13:00:00Z".parse().unwrap(),
                causes: [(s("cause"), 4), ("none".to_string(), 2)].into(),
            }],
            warnings: vec![s("stage")],
            reconciliation: None,
            sampling: None,
            weighted: None,
        };
        if empty {
            r.summary = Summary::default();
            r.changes = super::super::changes(&r.summary, &r.previous);
            r.funnel = vec![stage("a", 0, 0, 0.0), stage("b", 0, 0, 0.0)];
            r.by_last_stage.clear();
            r.by_last_operation.clear();
            r.causes.clear();
            r.top_abandoned.clear();
            r.drivers.clear();
            r.latency_curves.clear();
            r.by_hour.clear();
        }
        r
    }

    #[test]
    fn every_string_of_the_model_is_text() {
        let evil = r#"<i class='x' id="y">&amp;"#;
        let page = render(&report(evil, false));
        assert!(!page.contains("<i "), "raw markup from the model");
        let shown = "&lt;i class=&#39;x&#39; id=&quot;y&quot;&gt;&amp;amp;";
        // Generator, model, as-of, threshold, stages, operation, cause, cart, trace, status,
        // driver: each is on the page, escaped.
        assert!(page.matches(shown).count() >= 11, "{page}");
    }

    #[test]
    fn an_empty_period_draws_no_nan() {
        let page = render(&report("", true));
        for id in [
            "chart-funnel",
            "chart-last-operation",
            "chart-latency",
            "chart-by-hour",
        ] {
            assert!(page.contains(&format!("<svg id=\"{id}\"")), "{id}");
        }
        for bad in ["NaN", "inf\"", "inf,"] {
            assert!(!page.contains(bad), "{bad}");
        }
        assert!(page.contains("No abandoned carts in this period."));
    }

    /// A period without decided carts has no rate, and every format says so alike (the text
    /// report printed "0.0%" where the page printed a dash).
    #[test]
    fn every_format_shows_a_missing_rate_alike() {
        let r = report("", true);
        assert!(r.summary.rate().is_none());
        let page = render(&r);
        assert!(page.contains("<div class=\"v\">–</div><div class=\"s\">no decided carts</div>"));
        for f in [ReportFormat::Text, ReportFormat::Markdown] {
            let mut out = Vec::new();
            crate::report::render::render(&mut out, &r, f).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.contains("Abandonment rate - (no decided carts);"),
                "{text}"
            );
            assert!(!text.contains("0.0% (95% CI"), "{text}");
        }
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.0, 5.0), 1.0);
        assert_eq!(nice_step(3.0, 5.0), 1.0);
        assert_eq!(nice_step(130.0, 5.0), 50.0);
        assert_eq!(nice_step(1000.0, 5.0), 200.0);
    }
}
