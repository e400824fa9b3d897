//! A small SVG kit for the charts: coordinates, colours and patterns, text that goes
//! through `esc`, and horizontal bar charts. Written by hand: an SVG crate would add a
//! dependency for a few elements and make byte-stable output harder to keep.

use std::fmt::Write as _;

use super::text::{esc, fixed};

/// An SVG coordinate: one decimal, no "-0", never NaN.
pub(super) fn c(x: f64) -> String {
    let s = fixed(if x.is_finite() { x } else { 0.0 }, 1);
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// At most `max` characters of `s`, cut in the middle with an ellipsis (names that differ
/// only at their end stay apart), and whether it was cut. For chart labels; tables show
/// everything.
pub(super) fn clip(s: &str, max: usize) -> (String, bool) {
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
pub(super) fn text_width(chars: usize, size: f64) -> f64 {
    chars as f64 * size * 0.6
}

/// A round step for about `target` axis ticks up to `max`.
pub(super) fn nice_step(max: f64, target: f64) -> f64 {
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

pub(super) const BLUE: &str = "#0072B2";
pub(super) const LIGHT: &str = "#d9d9d9";
pub(super) const SERIES: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000",
];

/// Fill of series `i` of chart `id`: a colour, and from the second series on a pattern of
/// white lines or dots over it (declared by [`patterns`]).
pub(super) fn series_fill(id: &str, i: usize, none: bool) -> String {
    if none {
        LIGHT.to_string()
    } else if i == 0 {
        SERIES[0].to_string()
    } else {
        format!("url(#{id}-p{i})")
    }
}

pub(super) fn patterns(id: &str, n: usize) -> String {
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

pub(super) const CHART_W: f64 = 900.0;

/// An `<svg>` being drawn: every text goes through [`esc`].
pub(super) struct Svg {
    pub(super) s: String,
}

impl Svg {
    pub(super) fn new(id: &str, h: f64, title: &str, desc: &str) -> Svg {
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
    pub(super) fn text(&mut self, x: f64, y: f64, anchor: &str, class: &str, t: &str) {
        let _ = write!(
            self.s,
            r#"<text x="{}" y="{}" text-anchor="{anchor}" class="{class}">{}</text>"#,
            c(x),
            c(y),
            esc(t)
        );
    }

    /// A label cut to `max` characters; when cut, the whole of it is its tooltip.
    pub(super) fn label(&mut self, x: f64, y: f64, anchor: &str, class: &str, t: &str, max: usize) {
        let (shown, cut) = clip(t, max);
        if cut {
            let _ = write!(self.s, "<g><title>{}</title>", esc(t));
            self.text(x, y, anchor, class, &shown);
            self.s.push_str("</g>");
        } else {
            self.text(x, y, anchor, class, &shown);
        }
    }

    pub(super) fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, tip: Option<&str>) {
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

    pub(super) fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, class: &str) {
        let _ = write!(
            self.s,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="{class}"/>"#,
            c(x1),
            c(y1),
            c(x2),
            c(y2)
        );
    }

    pub(super) fn raw(&mut self, markup: &str) {
        self.s.push_str(markup);
    }

    /// A low chart with only a message, for a chart with nothing to draw (the chart is still
    /// there, with its id and title, so the page keeps one shape).
    pub(super) fn empty(id: &str, title: &str, msg: &str) -> String {
        let mut svg = Svg::new(id, 40.0, title, msg);
        svg.text(CHART_W / 2.0, 25.0, "middle", "muted", msg);
        svg.finish()
    }

    pub(super) fn finish(mut self) -> String {
        self.s.push_str("</svg>");
        self.s
    }
}

pub(super) fn figure(svg: String, caption: &str) -> String {
    format!(
        "<figure>{svg}<figcaption>{}</figcaption></figure>\n",
        esc(caption)
    )
}

/// One row of a horizontal bar chart.
pub(super) struct HBar {
    pub(super) label: String,
    pub(super) value: f64,
    /// Drawn behind the bar (the funnel's previous stage), if any.
    pub(super) ghost: Option<f64>,
    pub(super) value_text: String,
    pub(super) note: String,
}

/// Horizontal bars with a label column, the value after each bar and a note column on the
/// right (the funnel and the abandonment by last operation).
pub(super) fn hbar_chart(
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
