//! The four charts: the funnel, abandonment by last operation, latency to conversion, and
//! abandonments by hour with their causes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::svg::*;
use super::text::*;
use crate::report::{HourRow, LatencyBucket, LatencyCurve, Report};
use crate::stats;

pub(super) fn funnel_chart(r: &Report) -> String {
    let first = r.funnel.first().map_or(0, |f| f.carts);
    let rows: Vec<HBar> = r
        .funnel
        .iter()
        .enumerate()
        .map(|(i, f)| HBar {
            label: f.stage.clone(),
            value: f.carts as f64,
            ghost: (i > 0).then(|| r.funnel[i - 1].carts as f64),
            value_text: if first > 0 {
                format!("{} ({})", int(f.carts), pct(f.carts as f64 / first as f64))
            } else {
                int(f.carts)
            },
            note: if i == 0 {
                String::new()
            } else if f.dropped == 0 {
                "none".into()
            } else {
                format!("-{} ({})", int(f.dropped), pct(f.drop_rate))
            },
        })
        .collect();
    let desc = r
        .funnel
        .iter()
        .map(|f| format!("{}: {} carts", f.stage, f.carts))
        .collect::<Vec<_>>()
        .join("; ");
    hbar_chart(
        "chart-funnel",
        "Funnel: carts reaching each stage",
        &desc,
        [
            "stage",
            "carts (share of the first stage)",
            "dropped before it",
        ],
        &rows,
        Some(["reached the stage", "reached the stage before"]),
    )
}

pub(super) fn last_operation_chart(r: &Report) -> String {
    let rows: Vec<HBar> = r
        .by_last_operation
        .iter()
        .map(|o| HBar {
            label: o.operation.clone(),
            value: o.abandoned as f64,
            ghost: None,
            value_text: format!("{} ({})", int(o.abandoned), pct(o.share)),
            note: format!("p95 {} ms, errors {}", num(o.p95_ms, 0), pct(o.error_rate)),
        })
        .collect();
    let desc = r
        .by_last_operation
        .iter()
        .map(|o| format!("{}: {} abandoned", o.operation, o.abandoned))
        .collect::<Vec<_>>()
        .join("; ");
    hbar_chart(
        "chart-last-operation",
        "Abandoned carts by their last operation",
        &desc,
        [
            "last operation",
            "abandoned carts (share)",
            "that operation's p95, error rate",
        ],
        &rows,
        None,
    )
}

/// The causes in the order of the report's causes table, `none` (no suspected cause) last;
/// then any cause only the hours know.
pub(super) fn cause_order(r: &Report) -> Vec<String> {
    let mut out: Vec<String> = r
        .causes
        .iter()
        .map(|c| c.name.clone())
        .filter(|n| n != "none")
        .collect();
    for h in &r.by_hour {
        for k in h.causes.keys() {
            if k != "none" && !out.contains(k) {
                out.push(k.clone());
            }
        }
    }
    if r.causes.iter().any(|c| c.name == "none")
        || r.by_hour.iter().any(|h| h.causes.contains_key("none"))
    {
        out.push("none".into());
    }
    out
}

/// One bar of the by-hour chart: its hour and date labels and its counts.
pub(super) struct Slot<'a> {
    hour: String,
    date: String,
    causes: Option<&'a BTreeMap<String, u64>>,
}

pub(super) const HOUR_NS: i64 = 3_600_000_000_000;

/// Every hour from the period's start to its end (or to the last abandonment, if later),
/// with the hours without abandonments as empty bars; the report's rows as they are when
/// their hours cannot be read or the period is longer than two months.
pub(super) fn hour_slots(r: &Report) -> Vec<Slot<'_>> {
    let split = |t: i64| -> (String, String) {
        match DateTime::<Utc>::from_timestamp(t.div_euclid(1_000_000_000), 0) {
            Some(dt) => (
                dt.format("%H").to_string(),
                dt.format("%Y-%m-%d").to_string(),
            ),
            None => (t.to_string(), String::new()),
        }
    };
    let as_is = || {
        r.by_hour
            .iter()
            .map(|h| {
                let (hour, date) = split(h.hour.ns());
                Slot {
                    hour,
                    date,
                    causes: Some(&h.causes),
                }
            })
            .collect()
    };
    let rows: BTreeMap<i64, &HourRow> = r.by_hour.iter().map(|h| (h.hour.ns(), h)).collect();
    let (since, until) = (r.period.since.ns(), r.period.until.ns());
    let floor = |t: i64| t.div_euclid(HOUR_NS) * HOUR_NS;
    let start = rows
        .keys()
        .next()
        .copied()
        .unwrap_or(since)
        .min(floor(since));
    let end = rows
        .keys()
        .last()
        .copied()
        .unwrap_or(since)
        .max(floor(until - 1));
    if end < start
        || end.saturating_sub(start) / HOUR_NS > 24 * 62
        || rows.keys().any(|t| t % HOUR_NS != 0)
    {
        return as_is();
    }
    let mut out = Vec::new();
    let mut t = start;
    while t <= end {
        let Some(dt) = DateTime::<Utc>::from_timestamp(t.div_euclid(1_000_000_000), 0) else {
            return as_is();
        };
        out.push(Slot {
            hour: dt.format("%H").to_string(),
            date: dt.format("%Y-%m-%d").to_string(),
            causes: rows.get(&t).map(|h| &h.causes),
        });
        t += HOUR_NS;
    }
    out
}

pub(super) fn by_hour_chart(r: &Report) -> String {
    const ID: &str = "chart-by-hour";
    let causes = cause_order(r);
    let slots = hour_slots(r);
    let total = |s: &Slot| s.causes.map_or(0, |m| m.values().sum::<u64>());
    let max = slots.iter().map(total).max().unwrap_or(0);
    let sum_of = |k: &str| -> u64 {
        r.by_hour
            .iter()
            .map(|h| h.causes.get(k).copied().unwrap_or(0))
            .sum()
    };

    // The legend, wrapped over as many lines as it takes.
    let mut legend = Vec::new();
    let (mut lx, mut ly) = (50.0, 0.0);
    for (i, k) in causes.iter().enumerate() {
        let text = format!("{} ({})", clip(k, 40).0, int(sum_of(k)));
        let w = 22.0 + text_width(text.chars().count(), 12.0) + 18.0;
        if lx + w > CHART_W && lx > 50.0 {
            lx = 50.0;
            ly += 20.0;
        }
        legend.push((lx, ly, i, k, text));
        lx += w;
    }
    let top = 20.0 + ly + 30.0;
    let plot_h = 240.0;
    let bottom = 48.0;
    let h = top + plot_h + bottom;
    let desc = format!(
        "Abandoned carts per hour, stacked by suspected cause ({}); the hour is that of the abandonment.",
        causes
            .iter()
            .map(|k| format!("{k}: {}", sum_of(k)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let title = "Abandonments by hour, by suspected cause";
    if max == 0 {
        return Svg::empty(ID, title, "No abandoned carts in this period.");
    }
    let mut svg = Svg::new(ID, h, title, &desc);
    svg.raw(&patterns(ID, causes.len()));
    let fill = |i: usize| series_fill(ID, i, causes[i] == "none");
    for (x, y, i, _, text) in &legend {
        svg.rect(*x, 8.0 + y, 14.0, 14.0, &fill(*i), None);
        svg.text(x + 20.0, 19.5 + y, "start", "small", text);
    }

    let (x0, x1) = (50.0, CHART_W - 10.0);
    let step = nice_step(max as f64, 5.0);
    let ymax = (max as f64 / step).ceil() * step;
    let y = |v: f64| top + plot_h - v / ymax * plot_h;
    let mut v = 0.0;
    while v <= ymax + 1e-9 {
        svg.line(x0, y(v), x1, y(v), if v == 0.0 { "axis" } else { "grid" });
        svg.text(x0 - 6.0, y(v) + 4.0, "end", "tick", &num(v, 0));
        v += step;
    }
    svg.text(x0 - 42.0, top - 10.0, "start", "tick", "abandoned carts");

    let slot_w = (x1 - x0) / slots.len() as f64;
    let gap = (slot_w * 0.18).min(4.0);
    // Hour labels every `every` bars, so that they never touch; dates where the day changes.
    let every = [1, 2, 3, 4, 6, 12, 24, 48, 96, 168]
        .into_iter()
        .find(|k| *k as f64 * slot_w >= 26.0)
        .unwrap_or(336);
    let mut last_date_x = f64::NEG_INFINITY;
    let mut prev_date = String::new();
    for (i, s) in slots.iter().enumerate() {
        let x = x0 + slot_w * i as f64;
        let mut acc = 0u64;
        if let Some(m) = s.causes {
            for (ci, k) in causes.iter().enumerate() {
                let n = m.get(k).copied().unwrap_or(0);
                if n == 0 {
                    continue;
                }
                let (ya, yb) = (y(acc as f64), y((acc + n) as f64));
                svg.rect(
                    x + gap / 2.0,
                    yb,
                    slot_w - gap,
                    ya - yb,
                    &fill(ci),
                    Some(&format!("{} {}:00, {k}: {}", s.date, s.hour, int(n))),
                );
                acc += n;
            }
        }
        let cx = x + slot_w / 2.0;
        if i % every == 0 {
            svg.text(cx, top + plot_h + 15.0, "middle", "tick", &s.hour);
        }
        if s.date != prev_date && cx - last_date_x > 90.0 {
            svg.text(
                x.max(x0),
                top + plot_h + 32.0,
                "start",
                "tick date",
                &s.date,
            );
            last_date_x = cx;
        }
        prev_date = s.date.clone();
    }
    svg.text(
        x1,
        top + plot_h + 32.0,
        "end",
        "tick",
        "hour of abandonment (UTC)",
    );
    svg.finish()
}

/// A bucket's latency range in seconds, `0-0.5`, `4+`.
pub(super) fn bucket_label(b: &LatencyBucket) -> String {
    let s = |ms: f64| {
        let t = fixed(ms / 1000.0, 2);
        let t = t.trim_end_matches('0').trim_end_matches('.');
        if t.is_empty() {
            "0".to_string()
        } else {
            t.to_string()
        }
    };
    match b.to_ms {
        Some(to) => format!("{}–{}", s(b.from_ms), s(to)),
        None => format!("{}+", s(b.from_ms)),
    }
}

/// A bucket's conversion with its 95% Wilson interval.
#[derive(Clone, Copy)]
pub(super) struct Conversion {
    rate: f64,
    lo: f64,
    hi: f64,
}

/// The conversion of a bucket with carts, and its interval (from the converted carts).
pub(super) fn bucket_interval(b: &LatencyBucket) -> Option<Conversion> {
    let conv = b.conversion?;
    if b.carts == 0 || !conv.is_finite() {
        return None;
    }
    let k = ((conv * b.carts as f64).round().max(0.0) as u64).min(b.carts);
    let (lo, hi) = stats::wilson_interval(k, b.carts, stats::Z_95);
    Some(Conversion {
        rate: conv.clamp(0.0, 1.0),
        lo,
        hi,
    })
}

/// A curve's effect in words, stated only when its slope's 95% interval excludes zero (as the
/// text report does).
pub(super) fn effect(c: &LatencyCurve) -> Option<f64> {
    match (c.points_per_second, c.slope_ci95) {
        (Some(p), Some([lo, hi])) if lo > 0.0 || hi < 0.0 => Some(p),
        _ => None,
    }
}

pub(super) fn latency_chart(r: &Report) -> String {
    const ID: &str = "chart-latency";
    let curves = &r.latency_curves;
    let cols = curves.len().clamp(1, 3);
    let rows = curves.len().div_ceil(cols).max(1);
    let panel_h = 290.0;
    let h = panel_h * rows as f64 + 10.0;
    let desc = curves
        .iter()
        .map(|c| {
            let buckets = c
                .buckets
                .iter()
                .filter_map(|b| {
                    b.conversion
                        .map(|v| format!("{} s: {}", bucket_label(b), pct(v)))
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("{}: {buckets}", c.operation)
        })
        .collect::<Vec<_>>()
        .join("; ");
    let title = "Conversion by latency of each checkout operation";
    if curves.is_empty() {
        return Svg::empty(
            ID,
            title,
            "No operation has both converted and abandoned carts after it.",
        );
    }
    let mut svg = Svg::new(
        ID,
        h,
        title,
        &format!("Share of carts converted, by the latency of the operation. {desc}"),
    );
    // One curve takes half the width, not all of it.
    let panel_w = CHART_W / cols.max(2) as f64;
    for (i, curve) in curves.iter().enumerate() {
        let px = panel_w * (i % cols) as f64;
        let py = panel_h * (i / cols) as f64;
        let (x0, x1) = (px + 44.0, px + panel_w - 16.0);
        let (y0, y1) = (py + 64.0, py + panel_h - 52.0);
        let max_chars = ((panel_w - 20.0) / (13.0 * 0.6)) as usize;
        svg.label(
            px + 8.0,
            py + 18.0,
            "start",
            "lab strong",
            &curve.operation,
            max_chars,
        );
        let sub = match effect(curve) {
            Some(p) => format!(
                "{} points per extra second, {} carts",
                signed(fixed(p, 2)),
                int(curve.carts)
            ),
            None => format!("no clear effect, {} carts", int(curve.carts)),
        };
        svg.text(px + 8.0, py + 36.0, "start", "small", &sub);
        let y = |v: f64| y1 - v.clamp(0.0, 1.0) * (y1 - y0);
        for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
            svg.line(x0, y(t), x1, y(t), if t == 0.0 { "axis" } else { "grid" });
            svg.text(
                x0 - 5.0,
                y(t) + 4.0,
                "end",
                "tick",
                &format!("{}%", c(100.0 * t)),
            );
        }
        let n = curve.buckets.len().max(1);
        let bw = (x1 - x0) / n as f64;
        let xs = |k: usize| x0 + bw * (k as f64 + 0.5);
        for (k, b) in curve.buckets.iter().enumerate() {
            svg.text(xs(k), y1 + 15.0, "middle", "tick", &bucket_label(b));
            svg.text(
                xs(k),
                y1 + 29.0,
                "middle",
                "tick muted",
                &format!("n={}", int(b.carts)),
            );
        }
        svg.text((x0 + x1) / 2.0, y1 + 45.0, "middle", "tick", "latency (s)");
        // Runs of consecutive buckets with carts: a band and a line each; empty buckets break
        // the line rather than drawing through them.
        let points: Vec<Option<Conversion>> = curve.buckets.iter().map(bucket_interval).collect();
        let mut runs: Vec<Vec<(usize, Conversion)>> = Vec::new();
        for (k, p) in points.iter().enumerate() {
            if let Some(v) = p {
                if k == 0 || points[k - 1].is_none() {
                    runs.push(Vec::new());
                }
                if let Some(run) = runs.last_mut() {
                    run.push((k, *v));
                }
            }
        }
        for run in &runs {
            if run.len() > 1 {
                let upper = run
                    .iter()
                    .map(|(k, p)| format!("{},{}", c(xs(*k)), c(y(p.hi))));
                let lower = run
                    .iter()
                    .rev()
                    .map(|(k, p)| format!("{},{}", c(xs(*k)), c(y(p.lo))));
                let pts: Vec<String> = upper.chain(lower).collect();
                svg.raw(&format!(
                    r#"<polygon class="band" points="{}"/>"#,
                    pts.join(" ")
                ));
                let line: Vec<String> = run
                    .iter()
                    .map(|(k, p)| format!("{},{}", c(xs(*k)), c(y(p.rate))))
                    .collect();
                svg.raw(&format!(
                    r#"<polyline class="curve" points="{}"/>"#,
                    line.join(" ")
                ));
            }
        }
        for run in &runs {
            for &(k, Conversion { rate: v, lo, hi }) in run {
                svg.line(xs(k), y(lo), xs(k), y(hi), "whisker");
                let _ = write!(
                    svg.s,
                    r#"<circle class="dot" cx="{}" cy="{}" r="4"><title>{}</title></circle>"#,
                    c(xs(k)),
                    c(y(v)),
                    esc(&format!(
                        "{}, {} s: {} converted (95% CI {} to {}), {} carts",
                        curve.operation,
                        bucket_label(&curve.buckets[k]),
                        pct(v),
                        pct(lo),
                        pct(hi),
                        int(curve.buckets[k].carts)
                    ))
                );
                // Above the whisker, centred: a bucket is wider than its label, so labels
                // never meet; the halo keeps them legible over the line.
                svg.text(xs(k), y(hi) - 7.0, "middle", "val small halo", &pct(v));
            }
        }
    }
    svg.finish()
}

// ---------------------------------------------------------------------------------------
// Tables
