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

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{Count, Driver, HourRow, LatencyBucket, LatencyCurve, Report};
use crate::stats;

/// The one escape for every string that is not the page's own markup: `& < > " '` become
/// entities (safe in text and in quoted attribute values), and control characters, which
/// HTML does not allow, become U+FFFD.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// [`esc`], with a line-break opportunity after each `.` before a letter, so that a narrow
/// column breaks `shipping.calculate_rates` between its words rather than anywhere (and
/// `3.3.0` not at all).
fn breakable(s: &str) -> String {
    let e = esc(s);
    let mut out = String::with_capacity(e.len());
    let mut chars = e.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '.' && chars.peek().is_some_and(|n| n.is_alphabetic()) {
            out.push_str("<wbr>");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Numbers: fixed precision, no "-0", thousands grouped for people.

/// `x` with `d` decimals; zero at that precision is written without a sign, and a value that
/// is not finite as a dash.
fn fixed(x: f64, d: usize) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let s = format!("{x:.d$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => s,
    }
}

/// Groups the integer digits of a formatted number by thousands: `255579.86` -> `255,579.86`.
fn grouped(s: &str) -> String {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", s),
    };
    let (int, frac) = match rest.find('.') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !int.chars().all(|c| c.is_ascii_digit()) {
        return s.to_string();
    }
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}{frac}")
}

fn int(n: u64) -> String {
    grouped(&n.to_string())
}

fn num(x: f64, d: usize) -> String {
    grouped(&fixed(x, d))
}

fn money(x: f64) -> String {
    num(x, 2)
}

fn pct(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    format!("{}%", fixed(100.0 * x, 1))
}

/// A signed change: `+12`, `-3.5`, `0`.
fn signed(s: String) -> String {
    if s.starts_with('-') || s == "–" || s.chars().all(|c| c == '0' || c == '.' || c == ',') {
        s
    } else {
        format!("+{s}")
    }
}

/// A p- or q-value: scientific below 0.001, else four decimals.
fn pval(p: f64) -> String {
    if !p.is_finite() {
        "–".into()
    } else if p == 0.0 {
        // The model rounds the changes' p-values to six decimals.
        "< 1e-6".into()
    } else if p < 0.001 {
        format!("{p:.2e}")
    } else {
        fixed(p, 4)
    }
}

/// An SVG coordinate: one decimal, no "-0", never NaN.
fn c(x: f64) -> String {
    let s = fixed(if x.is_finite() { x } else { 0.0 }, 1);
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// At most `max` characters of `s`, cut in the middle with an ellipsis (names that differ
/// only at their end stay apart), and whether it was cut. For chart labels; tables show
/// everything.
fn clip(s: &str, max: usize) -> (String, bool) {
    let n = s.chars().count();
    if n <= max {
        return (s.to_string(), false);
    }
    let keep = max.saturating_sub(1);
    let head = keep.div_ceil(2);
    let tail = keep - head;
    let mut t: String = s.chars().take(head).collect();
    t.push('…');
    t.extend(s.chars().skip(n - tail));
    (t, true)
}

/// Approximate width in pixels of `chars` characters of sans-serif text at `size`.
fn text_width(chars: usize, size: f64) -> f64 {
    chars as f64 * size * 0.6
}

/// A round step for about `target` axis ticks up to `max`.
fn nice_step(max: f64, target: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / target;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let step = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    } * mag;
    step.max(1.0)
}

// ---------------------------------------------------------------------------------------
// Colours: Okabe-Ito (told apart with colour blindness), each series also with its own
// pattern so that a greyscale print keeps them apart.

const BLUE: &str = "#0072B2";
const LIGHT: &str = "#d9d9d9";
const SERIES: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000",
];

/// Fill of series `i` of chart `id`: a colour, and from the second series on a pattern of
/// white lines or dots over it (declared by [`patterns`]).
fn series_fill(id: &str, i: usize, none: bool) -> String {
    if none {
        LIGHT.to_string()
    } else if i == 0 {
        SERIES[0].to_string()
    } else {
        format!("url(#{id}-p{i})")
    }
}

fn patterns(id: &str, n: usize) -> String {
    let mut s = String::from("<defs>");
    for i in 1..n {
        let colour = SERIES[i % SERIES.len()];
        let (rotate, mark) = match i % 3 {
            1 => (
                45,
                r##"<rect x="0" y="0" width="2.5" height="6" fill="#fff"/>"##,
            ),
            2 => (0, r##"<circle cx="3" cy="3" r="1.3" fill="#fff"/>"##),
            _ => (
                -45,
                r##"<rect x="0" y="0" width="1.5" height="6" fill="#fff"/>"##,
            ),
        };
        let _ = write!(
            s,
            r#"<pattern id="{id}-p{i}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate({rotate})"><rect width="6" height="6" fill="{colour}"/>{mark}</pattern>"#
        );
    }
    s.push_str("</defs>");
    s
}

// ---------------------------------------------------------------------------------------
// SVG

const CHART_W: f64 = 900.0;

/// An `<svg>` being drawn: every text goes through [`esc`].
struct Svg {
    s: String,
}

impl Svg {
    fn new(id: &str, h: f64, title: &str, desc: &str) -> Svg {
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg id="{id}" class="chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" aria-labelledby="{id}-title {id}-desc" xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{t}</title><desc id="{id}-desc">{d}</desc>"#,
            w = c(CHART_W),
            h = c(h),
            t = esc(title),
            d = esc(desc),
        );
        Svg { s }
    }

    /// Text at (x, y); `anchor` start, middle or end; `class` one of the page's svg classes.
    fn text(&mut self, x: f64, y: f64, anchor: &str, class: &str, t: &str) {
        let _ = write!(
            self.s,
            r#"<text x="{}" y="{}" text-anchor="{anchor}" class="{class}">{}</text>"#,
            c(x),
            c(y),
            esc(t)
        );
    }

    /// A label cut to `max` characters; when cut, the whole of it is its tooltip.
    fn label(&mut self, x: f64, y: f64, anchor: &str, class: &str, t: &str, max: usize) {
        let (shown, cut) = clip(t, max);
        if cut {
            let _ = write!(self.s, "<g><title>{}</title>", esc(t));
            self.text(x, y, anchor, class, &shown);
            self.s.push_str("</g>");
        } else {
            self.text(x, y, anchor, class, &shown);
        }
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, tip: Option<&str>) {
        let _ = write!(
            self.s,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}">"#,
            c(x),
            c(y),
            c(w.max(0.0)),
            c(h.max(0.0)),
            esc(fill)
        );
        if let Some(t) = tip {
            let _ = write!(self.s, "<title>{}</title>", esc(t));
        }
        self.s.push_str("</rect>");
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, class: &str) {
        let _ = write!(
            self.s,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="{class}"/>"#,
            c(x1),
            c(y1),
            c(x2),
            c(y2)
        );
    }

    fn raw(&mut self, markup: &str) {
        self.s.push_str(markup);
    }

    /// A low chart with only a message, for a chart with nothing to draw (the chart is still
    /// there, with its id and title, so the page keeps one shape).
    fn empty(id: &str, title: &str, msg: &str) -> String {
        let mut svg = Svg::new(id, 40.0, title, msg);
        svg.text(CHART_W / 2.0, 25.0, "middle", "muted", msg);
        svg.finish()
    }

    fn finish(mut self) -> String {
        self.s.push_str("</svg>");
        self.s
    }
}

fn figure(svg: String, caption: &str) -> String {
    format!(
        "<figure>{svg}<figcaption>{}</figcaption></figure>\n",
        esc(caption)
    )
}

/// One row of a horizontal bar chart.
struct HBar {
    label: String,
    value: f64,
    /// Drawn behind the bar (the funnel's previous stage), if any.
    ghost: Option<f64>,
    value_text: String,
    note: String,
}

/// Horizontal bars with a label column, the value after each bar and a note column on the
/// right (the funnel and the abandonment by last operation).
fn hbar_chart(
    id: &str,
    title: &str,
    desc: &str,
    heads: [&str; 3],
    rows: &[HBar],
    legend: Option<[&str; 2]>,
) -> String {
    const SIZE: f64 = 13.0;
    const ROW: f64 = 30.0;
    const MAX_LABEL: usize = 34;
    if rows.is_empty() {
        return Svg::empty(id, title, "Nothing to show for this period.");
    }
    let top = if legend.is_some() { 56.0 } else { 34.0 };
    let h = top + ROW * rows.len() as f64 + 12.0;
    let mut svg = Svg::new(id, h, title, desc);
    let label_chars = rows
        .iter()
        .map(|r| r.label.chars().count().min(MAX_LABEL))
        .max()
        .unwrap_or(0)
        .max(heads[0].chars().count());
    let label_w = (text_width(label_chars, SIZE) + 16.0).clamp(90.0, 280.0);
    let value_w = text_width(
        rows.iter()
            .map(|r| r.value_text.chars().count())
            .max()
            .unwrap_or(0),
        SIZE,
    ) + 14.0;
    let note_chars = rows
        .iter()
        .map(|r| r.note.chars().count())
        .chain([heads[2].chars().count()])
        .max()
        .unwrap_or(0);
    let note_w = (text_width(note_chars, 12.0) + 16.0).min(300.0);
    let x0 = label_w;
    let bar_w = (CHART_W - label_w - value_w - note_w).max(100.0);
    let max = rows
        .iter()
        .map(|r| r.value.max(r.ghost.unwrap_or(0.0)))
        .fold(0.0, f64::max);
    let scale = if max > 0.0 { bar_w / max } else { 0.0 };

    if let Some([a, b]) = legend {
        svg.rect(x0, 8.0, 12.0, 12.0, BLUE, None);
        svg.text(x0 + 17.0, 18.5, "start", "small", a);
        let bx = x0 + 40.0 + text_width(a.chars().count(), 12.0);
        svg.rect(bx, 8.0, 12.0, 12.0, LIGHT, None);
        svg.text(bx + 17.0, 18.5, "start", "small", b);
    }
    let hy = top - 10.0;
    svg.text(x0 - 10.0, hy, "end", "head", heads[0]);
    svg.text(x0, hy, "start", "head", heads[1]);
    svg.text(CHART_W - 4.0, hy, "end", "head", heads[2]);
    for (i, r) in rows.iter().enumerate() {
        let y = top + ROW * i as f64;
        let mid = y + ROW / 2.0 + 4.5;
        svg.label(x0 - 10.0, mid, "end", "lab", &r.label, MAX_LABEL);
        if let Some(g) = r.ghost {
            svg.rect(x0, y + 5.0, g * scale, ROW - 10.0, LIGHT, None);
        }
        let w = r.value * scale;
        svg.rect(
            x0,
            y + 5.0,
            w,
            ROW - 10.0,
            BLUE,
            Some(&format!("{}: {}", r.label, r.value_text)),
        );
        svg.text(
            x0 + w.max(r.ghost.unwrap_or(0.0) * scale) + 6.0,
            mid,
            "start",
            "val",
            &r.value_text,
        );
        svg.text(CHART_W - 4.0, mid, "end", "note", &r.note);
    }
    svg.line(x0, top, x0, top + ROW * rows.len() as f64, "axis");
    svg.finish()
}

// ---------------------------------------------------------------------------------------
// The charts

fn funnel_chart(r: &Report) -> String {
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

fn last_operation_chart(r: &Report) -> String {
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
fn cause_order(r: &Report) -> Vec<String> {
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
struct Slot<'a> {
    hour: String,
    date: String,
    causes: Option<&'a BTreeMap<String, u64>>,
}

const HOUR_NS: i64 = 3_600_000_000_000;

/// Every hour from the period's start to its end (or to the last abandonment, if later),
/// with the hours without abandonments as empty bars; the report's rows as they are when
/// their hours cannot be read or the period is longer than two months.
fn hour_slots(r: &Report) -> Vec<Slot<'_>> {
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

fn by_hour_chart(r: &Report) -> String {
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
fn bucket_label(b: &LatencyBucket) -> String {
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
struct Conversion {
    rate: f64,
    lo: f64,
    hi: f64,
}

/// The conversion of a bucket with carts, and its interval (from the converted carts).
fn bucket_interval(b: &LatencyBucket) -> Option<Conversion> {
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
fn effect(c: &LatencyCurve) -> Option<f64> {
    match (c.points_per_second, c.slope_ci95) {
        (Some(p), Some([lo, hi])) if lo > 0.0 || hi < 0.0 => Some(p),
        _ => None,
    }
}

fn latency_chart(r: &Report) -> String {
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
        &[(what, Col::Text), ("carts", Col::Num), ("value", Col::Num)],
        &rows
            .iter()
            .map(|c| (false, vec![c.name.clone(), int(c.carts), money(c.value)]))
            .collect::<Vec<_>>(),
    );
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

const STYLE: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: #fff; color: #1b1b1b;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans", sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 28px 32px 48px; }
h1 { font-size: 1.7em; margin: 0 0 .2em; line-height: 1.2; }
h2 { font-size: 1.25em; margin: 2.2em 0 .6em; padding-bottom: .25em; border-bottom: 1px solid #bbb; }
p { margin: .4em 0 .8em; }
.meta, .note, figcaption { color: #4a4a4a; font-size: .9em; }
.empty { color: #4a4a4a; font-style: italic; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace;
  font-size: .92em; word-break: break-all; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 12px; margin: 1em 0; }
.card { border: 1px solid #c8c8c8; border-radius: 6px; padding: 10px 14px; }
.card .k { font-size: .85em; color: #4a4a4a; }
.card .v { font-size: 1.55em; font-weight: 650; line-height: 1.25; font-variant-numeric: tabular-nums; }
.card .s { font-size: .85em; color: #4a4a4a; }
table { border-collapse: collapse; width: 100%; margin: .4em 0 1em; font-size: .88em; }
th, td { padding: 5px 7px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top;
  overflow-wrap: break-word; }
th { border-bottom: 2px solid #888; font-weight: 600; vertical-align: bottom; }
/* Telemetry text may hold words of any length: break them anywhere, but never squeeze a
   text column below a readable width. */
td.t { overflow-wrap: anywhere; min-width: 7em; }
td.t:first-child { min-width: 12em; }
td code { overflow-wrap: anywhere; word-break: break-all; }
th.n, td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.n, th.nw { white-space: nowrap; }
tr.sig td { font-weight: 600; }
figure { margin: .6em 0 1.2em; }
figcaption { margin-top: .3em; }
svg.chart { display: block; width: 100%; height: auto; max-width: 900px; overflow: visible; }
svg.chart text { font-family: inherit; fill: #1b1b1b; }
svg.chart .lab { font-size: 13px; }
svg.chart .strong { font-weight: 650; }
svg.chart .val { font-size: 13px; font-variant-numeric: tabular-nums; }
svg.chart .head { font-size: 12px; fill: #4a4a4a; }
svg.chart .note { font-size: 12px; fill: #4a4a4a; }
svg.chart .small { font-size: 12px; }
svg.chart .tick { font-size: 11.5px; fill: #333; }
svg.chart .date { font-weight: 600; }
svg.chart .muted { fill: #666; }
svg.chart .halo { paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
svg.chart .axis { stroke: #333; stroke-width: 1; }
svg.chart .grid { stroke: #ddd; stroke-width: 1; }
svg.chart .band { fill: #0072B2; fill-opacity: .16; stroke: none; }
svg.chart .curve { fill: none; stroke: #0072B2; stroke-width: 2; }
svg.chart .whisker { stroke: #0072B2; stroke-width: 1.5; }
svg.chart .dot { fill: #0072B2; stroke: #fff; stroke-width: 1.5; }
footer { margin-top: 3em; padding-top: .6em; border-top: 1px solid #ccc; color: #4a4a4a; font-size: .85em; }
@media print {
  @page { margin: 14mm 12mm; }
  body { font-size: 10pt; color: #000; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; margin-top: 1.4em; }
  figure, .cards, tr, svg.chart { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
  .meta, .note, figcaption, .card .k, .card .s, footer, .empty { color: #000; }
  .card { border-color: #000; }
  th { border-bottom-color: #000; }
  td { border-bottom-color: #999; }
  svg.chart text, svg.chart .head, svg.chart .note, svg.chart .tick, svg.chart .muted { fill: #000; }
}
"#;

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
         <meta name=\"generator\" content=\"{}\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
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

    summary(&mut p, r);
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
    let decided = s.abandoned + s.converted;
    card(
        p,
        "Abandonment rate",
        &if decided > 0 {
            pct(s.abandonment_rate)
        } else {
            "–".into()
        },
        &if decided > 0 {
            format!(
                "95% CI {} to {}",
                pct(s.abandonment_rate_ci95[0]),
                pct(s.abandonment_rate_ci95[1])
            )
        } else {
            "no decided carts".into()
        },
    );
    card(
        p,
        "Abandoned value (revenue at risk)",
        &money(s.abandoned_value),
        &format!("{} abandoned carts", int(s.abandoned)),
    );
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
                    // A period without decided carts has no rate (the model writes 0).
                    let decided = |s: &super::Summary| s.abandoned + s.converted > 0;
                    let (now, before) = (decided(&r.summary), decided(&r.previous));
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
                "abandoned_value" => (money(c.current), money(c.previous), signed(money(c.change))),
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
                        match (d.relative_risk, d.relative_risk_ci95) {
                            (Some(rr), Some([a, b])) => {
                                format!("{} ({}–{})", fixed(rr, 2), fixed(a, 2), fixed(b, 2))
                            }
                            (Some(rr), None) => fixed(rr, 2),
                            _ => "–".into(),
                        },
                        pval(d.p_value),
                        pval(d.q_value),
                        num(d.excess_abandoned, 1),
                        money(d.excess_value),
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
                ("excess value", Col::Num),
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
        table(
            p,
            &[
                ("cart", Col::Code),
                ("value", Col::Num),
                ("last operation", Col::Text),
                ("ms", Col::Num),
                ("status", Col::Text),
                ("cause", Col::Text),
                ("trace id", Col::Code),
            ],
            &r.top_abandoned
                .iter()
                .map(|c| {
                    (
                        false,
                        vec![
                            c.cart_id.clone(),
                            money(c.value),
                            c.last_operation.clone(),
                            num(c.last_op_duration_ms, 1),
                            c.last_op_status.clone(),
                            c.suspected_cause.clone().unwrap_or_else(|| "none".into()),
                            c.trace_id.clone(),
                        ],
                    )
                })
                .collect::<Vec<_>>(),
        );
    }
    p.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_become_markup() {
        assert_eq!(
            esc(r#"<script>alert('x') & "y"</script>"#),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(esc("a\u{0}b\u{1b}c\td"), "a\u{FFFD}b\u{FFFD}c\td");
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
            }],
            operations: Vec::new(),
            causes: vec![count("cause")],
            top_abandoned: vec![TopCart {
                cart_id: s("cart"),
                value: 2.0,
                last_operation: s("op"),
                last_op_duration_ms: 1.0,
                last_op_status: s("error"),
                suspected_cause: Some(s("cause")),
                trace_id: s("trace"),
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
                test: s("test"),
                p_value: 0.001,
                q_value: 0.01,
                excess_abandoned: 5.0,
                excess_value: 10.0,
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

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.0, 5.0), 1.0);
        assert_eq!(nice_step(3.0, 5.0), 1.0);
        assert_eq!(nice_step(130.0, 5.0), 50.0);
        assert_eq!(nice_step(1000.0, 5.0), 200.0);
    }
}
