//! Text on the page: the one escape for every untrusted string, and numbers in fixed
//! precision with grouped thousands, so the same report gives the same bytes.

/// The one escape for every string that is not the page's own markup: `& < > " '` become
/// entities (safe in text and in quoted attribute values), control characters, which HTML
/// does not allow, become U+FFFD, and the invisible bidirectional controls (embeddings,
/// overrides, isolates, marks: U+202A-202E, U+2066-2069, U+200E, U+200F, U+061C) are shown
/// as `[U+202E]`: written raw, one in a cart id could reverse what follows it on the page.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{061C}' => {
                out.push_str(&format!("[U+{:04X}]", c as u32));
            }
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
pub(super) fn breakable(s: &str) -> String {
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
pub(super) fn fixed(x: f64, d: usize) -> String {
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
pub(super) fn grouped(s: &str) -> String {
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

pub(super) fn int(n: u64) -> String {
    grouped(&n.to_string())
}

pub(super) fn num(x: f64, d: usize) -> String {
    grouped(&fixed(x, d))
}

pub(super) fn money(x: f64) -> String {
    num(x, 2)
}

pub(super) fn pct(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    format!("{}%", fixed(100.0 * x, 1))
}

/// A signed change: `+12`, `-3.5`, `0`.
pub(super) fn signed(s: String) -> String {
    if s.starts_with('-') || s == "–" || s.chars().all(|c| c == '0' || c == '.' || c == ',') {
        s
    } else {
        format!("+{s}")
    }
}

/// A p- or q-value: scientific below 0.001, else four decimals.
pub(super) fn pval(p: f64) -> String {
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
