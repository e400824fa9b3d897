//! The report's formats. Each renders the same `Report` to any `io::Write`; JSON is the
//! stable machine form. Rules about what a figure means (a period without decided carts has
//! no rate) live on the report model, so the formats agree.

use std::fmt::Write as _;

use anyhow::Result;
use comfy_table::{presets, Table as Grid};

use super::reconcile::{Reconciliation, StageCoverage};
use super::rows::pct;
use super::{LogLine, Report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ReportFormat {
    /// Tables for the terminal.
    #[default]
    Text,
    Markdown,
    /// The documented, stable schema (with a version field), for machines and baselines.
    Json,
    /// One self-contained page with the tables and charts (inline SVG), for people.
    Html,
}

/// Writes the report in format `f` to `w`.
pub fn render(w: &mut impl std::io::Write, r: &Report, f: ReportFormat) -> Result<()> {
    match f {
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut *w, r)?;
            w.write_all(b"\n")?;
        }
        ReportFormat::Text => w.write_all(text(r, Markup::Terminal).as_bytes())?,
        ReportFormat::Markdown => w.write_all(text(r, Markup::Markdown).as_bytes())?,
        ReportFormat::Html => w.write_all(super::html::render(r).as_bytes())?,
    }
    Ok(())
}

/// How the text report marks up its headings and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Markup {
    /// Plain headings and box-drawn tables, for a terminal.
    Terminal,
    /// `#` headings and pipe tables.
    Markdown,
}

/// A section's heading.
fn heading(m: Markup, s: &str) -> String {
    if m == Markup::Markdown {
        format!("\n## {s}\n\n")
    } else {
        format!("\n{s}\n")
    }
}

/// A table's heading within a section.
fn subheading(m: Markup, s: &str) -> String {
    if m == Markup::Markdown {
        format!("\n### {s}\n\n")
    } else {
        format!("\n{s}\n")
    }
}

fn table(m: Markup, header: &[&str], rows: Vec<Vec<String>>) -> String {
    if m == Markup::Markdown {
        let mut s = format!(
            "| {} |\n|{}|\n",
            header.join(" | "),
            header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
        );
        for r in rows {
            let cells: Vec<String> = r
                .iter()
                .map(|c| c.replace('|', "\\|").replace('\n', " "))
                .collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        s
    } else {
        let mut g = Grid::new();
        g.load_preset(presets::UTF8_FULL_CONDENSED)
            .set_header(header.to_vec());
        for r in rows {
            g.add_row(r);
        }
        format!("{g}\n")
    }
}

/// A name, carts, value table (by last stage, by cause): the recorded value, of how many
/// carts, and the estimate of all.
fn counts_table(m: Markup, what: &str, rows: &[super::Count]) -> String {
    table(
        m,
        &[
            what,
            "carts",
            "recorded value",
            "value known",
            "estimated value (95% CI)",
        ],
        rows.iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.carts.to_string(),
                    format!("{:.2}", c.value),
                    c.value_coverage.known_cell(),
                    c.value_coverage.estimated_text(),
                ]
            })
            .collect(),
    )
}

/// The summary's sentence on abandoned value: never a partial sum as the whole.
pub fn abandoned_value_text(s: &super::Summary) -> String {
    let c = &s.abandoned_value_coverage;
    if !c.is_partial() {
        return format!(
            "abandoned value (revenue at risk) {:.2} ({})",
            s.abandoned_value,
            c.known_text()
        );
    }
    let estimate = match (c.estimated, c.estimated_ci95) {
        (Some(e), Some([lo, hi])) => format!(
            "estimated total {e:.2} (95% CI {lo:.2} to {hi:.2}; the unknown values by {})",
            c.method
        ),
        _ => "no estimate of the rest: no cart of the period has a recorded value".into(),
    };
    format!(
        "abandoned value (revenue at risk) recorded {:.2} ({}); {estimate}",
        s.abandoned_value,
        c.known_text()
    )
}

fn text(r: &Report, m: Markup) -> String {
    let md = m == Markup::Markdown;
    let h = |s: &str| heading(m, s);
    let s = &r.summary;
    let mut out = String::new();
    if md {
        let _ = writeln!(out, "# Cart abandonment report");
    } else {
        let _ = writeln!(out, "Cart abandonment report");
    }
    let _ = writeln!(
        out,
        "{}Period {} to {}, as of {} (threshold {}, model {}).",
        if md { "\n" } else { "" },
        r.period.since,
        r.period.until,
        r.as_of,
        r.threshold,
        r.model
    );
    if !r.warnings.is_empty() {
        out.push_str(&h("Warnings: the model may not fit the data"));
        for w in &r.warnings {
            let _ = writeln!(out, "- {w}");
        }
    }
    out.push_str(&h("Summary"));
    let rate = match s.rate() {
        Some((r, [lo, hi])) => format!("{} (95% CI {} to {})", pct(r), pct(lo), pct(hi)),
        None => "- (no decided carts)".into(),
    };
    let _ = writeln!(
        out,
        "{} carts: {} converted, {} abandoned, {} active, {} recovered.\nAbandonment rate {rate}; {}.",
        s.carts,
        s.converted,
        s.abandoned,
        s.active,
        s.recovered,
        abandoned_value_text(s)
    );
    if let Some(r) = r.sampling.as_ref().and_then(|sa| sa.abandonment_rate) {
        let _ = writeln!(
            out,
            "The traces were sampled: adjusted for it, the abandonment rate is {} (see Sampling).",
            pct(r)
        );
    }
    if let Some(rc) = &r.reconciliation {
        out.push_str(&completeness(m, rc));
    }
    if let Some(sa) = &r.sampling {
        out.push_str(&h("Sampling"));
        let _ = writeln!(out, "Sampling: {}.", sa.summary);
        out.push_str(&table(
            m,
            &["figure", "value"],
            sa.rows().into_iter().map(Vec::from).collect(),
        ));
    }
    if let Some(wt) = &r.weighted {
        let _ = writeln!(
            out,
            "{}{}",
            if md { "\n" } else { "" },
            super::weighted::INTRO
        );
        for t in wt.tables() {
            out.push_str(&subheading(m, t.title));
            out.push_str(&table(m, &t.header(), t.rows));
        }
    }
    out.push_str(&h("Against the previous period"));
    // A period without decided carts has no rate, now or before.
    let (rate_now, rate_before) = (r.summary.rate().is_some(), r.previous.rate().is_some());
    if r.previous.carts == 0 {
        out.push_str(
            "The previous period of the same length has no carts: every figure is new rather than changed.\n",
        );
    }
    out.push_str(&table(
        m,
        &["figure", "now", "before", "change", "p", "beyond chance"],
        r.changes
            .iter()
            .map(|c| {
                let rate = c.figure == "abandonment_rate";
                let (now, before) = (!rate || rate_now, !rate || rate_before);
                vec![
                    c.figure.clone(),
                    if now {
                        format!("{}", c.current)
                    } else {
                        "-".into()
                    },
                    if before {
                        format!("{}", c.previous)
                    } else {
                        "-".into()
                    },
                    if !(now && before) {
                        "-".into()
                    } else {
                        format!("{:+}", c.change)
                    },
                    c.p_value.map_or("-".into(), |p| {
                        if p < 1e-4 {
                            "< 0.0001".into()
                        } else {
                            format!("{p:.4}")
                        }
                    }),
                    if c.significant {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                ]
            })
            .collect(),
    ));
    out.push_str(&h(
        "Why: drivers of abandonment, by the abandoned value they explain",
    ));
    out.push_str(&table(
        m,
        &[
            "driver",
            "carts",
            "abandoned",
            "rate vs baseline",
            "relative risk (95% CI)",
            "q",
            "excess abandoned",
            "excess value (estimated)",
            "excess value (recorded)",
        ],
        r.drivers
            .iter()
            .filter(|d| d.significant)
            .take(15)
            .map(|d| {
                vec![
                    d.driver.clone(),
                    d.support.to_string(),
                    d.abandoned.to_string(),
                    format!("{} vs {}", pct(d.abandonment_rate), pct(d.baseline_rate)),
                    match (
                        d.relative_risk,
                        d.relative_risk_ci95,
                        d.relative_risk_at_least,
                    ) {
                        (Some(rr), Some([a, b]), _) => format!("{rr:.2} ({a:.2}-{b:.2})"),
                        (None, _, Some(lo)) => format!("at least {lo:.2}"),
                        _ => "-".into(),
                    },
                    format!("{:.2e}", d.q_value),
                    format!("{:.1}", d.excess_abandoned),
                    format!("{:.2}", d.excess_value_estimated),
                    format!("{:.2} ({} known)", d.excess_value, d.abandoned_value_known),
                ]
            })
            .collect(),
    ));
    out.push_str(&h("Latency to conversion"));
    for c in &r.latency_curves {
        // Only an effect whose 95% interval excludes zero is stated; a short operation's
        // noise would otherwise read as a large per-second effect.
        match (c.points_per_second, c.slope_ci95) {
            (Some(p), Some([lo, hi])) if lo > 0.0 || hi < 0.0 => {
                let _ = writeln!(
                    out,
                    "each extra second of {} changes conversion by {:+.2} points ({} carts)",
                    c.operation, p, c.carts
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "{}: no clear effect of latency on conversion ({} carts)",
                    c.operation, c.carts
                );
            }
        }
    }
    out.push_str(&h("Funnel"));
    out.push_str(&table(
        m,
        &["stage", "carts", "dropped", "drop rate"],
        r.funnel
            .iter()
            .map(|f| {
                vec![
                    f.stage.clone(),
                    f.carts.to_string(),
                    f.dropped.to_string(),
                    pct(f.drop_rate),
                ]
            })
            .collect(),
    ));
    out.push_str(&h("Abandonment by last operation"));
    out.push_str(&table(
        m,
        &[
            "operation",
            "abandoned",
            "share",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "error rate",
            "recorded value",
            "value known",
            "estimated value (95% CI)",
        ],
        r.by_last_operation
            .iter()
            .map(|o| {
                vec![
                    o.operation.clone(),
                    o.abandoned.to_string(),
                    pct(o.share),
                    format!("{:.1}", o.p50_ms),
                    format!("{:.1}", o.p95_ms),
                    format!("{:.1}", o.p99_ms),
                    pct(o.error_rate),
                    format!("{:.2}", o.value),
                    o.value_coverage.known_cell(),
                    o.value_coverage.estimated_text(),
                ]
            })
            .collect(),
    ));
    out.push_str(&h("Abandonment by last stage"));
    out.push_str(&counts_table(m, "stage", &r.by_last_stage));
    out.push_str(&h("Suspected causes"));
    out.push_str(&counts_table(m, "cause", &r.causes));
    out.push_str(&h("Top abandoned carts by value"));
    // The log column only when some cart has a log line: exports without logs read as before.
    let with_logs = r.top_abandoned.iter().any(|c| c.last_log.is_some());
    let mut header = vec![
        "cart",
        "value",
        "last operation",
        "ms",
        "status",
        "cause",
        "trace id",
    ];
    if with_logs {
        header.push("last error/warning log");
    }
    out.push_str(&table(
        m,
        &header,
        r.top_abandoned
            .iter()
            .map(|c| {
                let mut row = vec![
                    c.cart_id.clone(),
                    c.value_cell(format!("{:.2}", c.value)),
                    c.last_operation.clone(),
                    format!("{:.1}", c.last_op_duration_ms),
                    c.last_op_status.clone(),
                    c.suspected_cause.clone().unwrap_or_else(|| "none".into()),
                    c.trace_id.clone(),
                ];
                if with_logs {
                    row.push(c.last_log.as_ref().map(LogLine::cell).unwrap_or_default());
                }
                row
            })
            .collect(),
    ));
    if r.top_abandoned.iter().any(|c| c.value_estimated) {
        out.push_str(&format!("{}\n", super::ESTIMATED_NOTE));
    }
    out
}

/// The "Data completeness" section: the metrics' stage transitions against the traces'.
fn completeness(m: Markup, rc: &Reconciliation) -> String {
    let h = |t: &str| heading(m, t);
    let mut out = h("Data completeness");
    let _ = writeln!(
        out,
        "Traces against metrics ({} by {}): {}.",
        rc.metric, rc.stage_attribute, rc.summary
    );
    out.push_str(&table(
        m,
        &StageCoverage::HEADER,
        rc.stages.iter().map(StageCoverage::cells).collect(),
    ));
    for g in &rc.gaps {
        let _ = writeln!(out, "- {}", g.text());
    }
    out
}
