//! Lenient scalar values, the way the Collector reads OTLP/JSON: 64-bit integers as strings or
//! numbers, enums as integers or names, ids in hex of either case or in base64.
//!
//! A value of the wrong type is not a fatal parse error: it becomes `Err(reason)` so that the
//! one span or data point carrying it is skipped and reported, and the rest of the document
//! still loads.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Any JSON value seen where a scalar was expected. Objects and arrays are consumed and
/// remembered only as what they were, for the error message.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'de> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'de, str>),
    Compound(&'static str),
}

impl Scalar<'_> {
    pub fn describe(&self) -> String {
        match self {
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => format!("{b}"),
            Scalar::U64(n) => format!("{n}"),
            Scalar::I64(n) => format!("{n}"),
            Scalar::F64(n) => format!("{n}"),
            Scalar::Str(s) => {
                let mut s: String = s.chars().take(40).collect();
                if s.len() >= 40 {
                    s.push('…');
                }
                format!("{s:?}")
            }
            Scalar::Compound(what) => (*what).to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound("an object"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound("an array"))
    }
}

/// An object key, borrowed from the input when it has no escapes.
pub struct Key<'de>(pub Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl Key<'_> {
    /// The key in lowerCamelCase: protobuf's JSON mapping accepts the proto field names
    /// (snake_case) as well, and so do we.
    pub fn camel(&self) -> Cow<'_, str> {
        if !self.0.contains('_') {
            return Cow::Borrowed(&self.0);
        }
        let mut out = String::with_capacity(self.0.len());
        let mut upper = false;
        for c in self.0.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                out.extend(c.to_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }
}

pub type Lv<T> = Result<T, String>;

fn wrong(expected: &str, got: &Scalar) -> String {
    format!("expected {expected}, found {}", got.describe())
}

pub fn to_u64(v: &Scalar) -> Lv<Option<u64>> {
    match v {
        Scalar::Null => Ok(None),
        Scalar::U64(n) => Ok(Some(*n)),
        Scalar::I64(n) if *n >= 0 => Ok(Some(*n as u64)),
        Scalar::F64(f) if *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19 => Ok(Some(*f as u64)),
        Scalar::Str(s) => match digits_u64(s.as_bytes()) {
            // The common case (timestamps in nanoseconds as strings) without trimming.
            Some(n) => Ok(Some(n)),
            None if s.trim().is_empty() => Ok(None),
            None => s
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| wrong("an unsigned integer", v)),
        },
        _ => Err(wrong("an unsigned integer", v)),
    }
}

/// 1 to 19 ASCII digits (always within u64) as their value, or None for anything else.
fn digits_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(n)
}

/// A count or unsigned 64-bit value stored as Int64 (the schema has no unsigned integers).
pub fn to_count(v: &Scalar) -> Lv<Option<i64>> {
    match to_u64(v)? {
        None => Ok(None),
        Some(n) => i64::try_from(n)
            .map(Some)
            .map_err(|_| format!("{n} does not fit in a signed 64-bit integer")),
    }
}

pub fn to_i64(v: &Scalar) -> Lv<Option<i64>> {
    match v {
        Scalar::Null => Ok(None),
        Scalar::I64(n) => Ok(Some(*n)),
        Scalar::U64(n) => i64::try_from(*n)
            .map(Some)
            .map_err(|_| wrong("a signed 64-bit integer", v)),
        Scalar::F64(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(Some(*f as i64)),
        Scalar::Str(s) if s.trim().is_empty() => Ok(None),
        Scalar::Str(s) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| wrong("an integer", v)),
        _ => Err(wrong("an integer", v)),
    }
}

pub fn to_i32(v: &Scalar) -> Lv<Option<i32>> {
    match to_i64(v)? {
        None => Ok(None),
        Some(n) => i32::try_from(n)
            .map(Some)
            .map_err(|_| format!("{n} does not fit in a 32-bit integer")),
    }
}

pub fn to_f64(v: &Scalar) -> Lv<Option<f64>> {
    match v {
        Scalar::Null => Ok(None),
        Scalar::U64(n) => Ok(Some(*n as f64)),
        Scalar::I64(n) => Ok(Some(*n as f64)),
        Scalar::F64(f) => Ok(Some(*f)),
        Scalar::Str(s) if s.trim().is_empty() => Ok(None),
        // Protobuf's JSON mapping writes "NaN", "Infinity" and "-Infinity" as strings.
        Scalar::Str(s) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| wrong("a number", v)),
        _ => Err(wrong("a number", v)),
    }
}

pub fn to_bool(v: &Scalar) -> Lv<Option<bool>> {
    match v {
        Scalar::Null => Ok(None),
        Scalar::Bool(b) => Ok(Some(*b)),
        Scalar::Str(s) if s == "true" => Ok(Some(true)),
        Scalar::Str(s) if s == "false" => Ok(Some(false)),
        _ => Err(wrong("true or false", v)),
    }
}

pub fn to_string(v: Scalar) -> Lv<Option<String>> {
    match v {
        Scalar::Null => Ok(None),
        Scalar::Str(s) => Ok(Some(s.into_owned())),
        other => Err(wrong("a string", &other)),
    }
}

/// An enum given as its number or its name; `from_name` gets the name as written.
pub fn to_enum<T>(
    v: &Scalar,
    what: &str,
    from_i64: impl Fn(i64) -> Option<T>,
    from_name: impl Fn(&str) -> Option<T>,
) -> Lv<Option<T>> {
    let bad = || format!("unknown {what} {}", v.describe());
    match v {
        Scalar::Null => Ok(None),
        Scalar::U64(_) | Scalar::I64(_) => {
            let n = to_i64(v)?.unwrap_or_default();
            from_i64(n).map(Some).ok_or_else(bad)
        }
        Scalar::Str(s) => match s.trim().parse::<i64>() {
            Ok(n) => from_i64(n).map(Some).ok_or_else(bad),
            Err(_) => from_name(s.trim()).map(Some).ok_or_else(bad),
        },
        _ => Err(bad()),
    }
}

/// Parses a trace id (N = 16) or span id (N = 8): hex of either case, or base64 (what
/// protobuf's canonical JSON mapping writes). Empty and all-zero ids are `None`.
pub fn parse_id<const N: usize>(s: &str) -> Lv<Option<[u8; N]>> {
    let s = if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        s.trim()
    } else {
        s
    };
    if s.is_empty() {
        return Ok(None);
    }
    let out = if let Some(out) = decode_hex::<N>(s.as_bytes()) {
        out
    } else {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
            .map_err(|_| {
                format!(
                    "{s:?} is neither {} hex digits nor base64 of {N} bytes",
                    2 * N
                )
            })?;
        if decoded.len() != N {
            return Err(format!(
                "{s:?} decodes to {} bytes, expected {N}",
                decoded.len()
            ));
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&decoded);
        out
    };
    Ok(if out.iter().all(|b| *b == 0) {
        None
    } else {
        Some(out)
    })
}

pub fn id_from_bytes<const N: usize>(b: &[u8]) -> Lv<Option<[u8; N]>> {
    if b.is_empty() {
        return Ok(None);
    }
    let arr: [u8; N] = b
        .try_into()
        .map_err(|_| format!("id has {} bytes, expected {N}", b.len()))?;
    Ok(if arr.iter().all(|x| *x == 0) {
        None
    } else {
        Some(arr)
    })
}

pub fn to_id<const N: usize>(v: &Scalar) -> Lv<Option<[u8; N]>> {
    match v {
        Scalar::Null => Ok(None),
        Scalar::Str(s) => parse_id::<N>(s),
        _ => Err(wrong("an id string", v)),
    }
}

/// Each byte's value as a hex digit (either case), or 0xff.
const HEX_DIGITS: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// `2 * N` hex digits as N bytes, or None when `b` is anything else. One table lookup per
/// digit and one check at the end: ids are most of what a span's JSON holds.
fn decode_hex<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let (hi, lo) = (HEX_DIGITS[pair[0] as usize], HEX_DIGITS[pair[1] as usize]);
        bad |= hi | lo;
        *o = (hi << 4) | lo;
    }
    (bad & 0x80 == 0).then_some(out)
}

/// Writes a double in shortest round-trip form ("0.75", "1e21"); NaN and infinities by name.
pub fn write_f64(out: &mut String, f: f64) {
    if f.is_finite() {
        let mut b = ryu::Buffer::new();
        let s = b.format_finite(f);
        out.push_str(s.strip_suffix(".0").unwrap_or(s));
    } else if f.is_nan() {
        out.push_str("NaN");
    } else if f > 0.0 {
        out.push_str("Infinity");
    } else {
        out.push_str("-Infinity");
    }
}

/// Writes `n` in decimal without allocating (an attribute's intValue, once per span or so).
pub fn write_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// Writes `n` in decimal without allocating.
pub fn write_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    write_u64(out, n.unsigned_abs());
}

/// Writes `s` as a JSON string literal.
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_written_as_to_string_writes_them() {
        for n in [0, 1, 9, 10, 42, -1, -10, 1234567890123, i64::MAX, i64::MIN] {
            let mut out = String::from("x");
            write_i64(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
        for n in [0, 7, 100, u64::MAX] {
            let mut out = String::new();
            write_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn ids_in_hex_of_either_case_and_base64() {
        let upper = parse_id::<16>("5B8EFFF798038103D269B633813FC60C").unwrap();
        let lower = parse_id::<16>("5b8efff798038103d269b633813fc60c").unwrap();
        assert_eq!(upper, lower);
        // base64 of the same 16 bytes
        let b64 = base64::engine::general_purpose::STANDARD.encode(upper.unwrap());
        assert_eq!(parse_id::<16>(&b64).unwrap(), upper);
        assert_eq!(parse_id::<8>("").unwrap(), None);
        assert_eq!(parse_id::<8>("0000000000000000").unwrap(), None);
        assert!(parse_id::<8>("xyz").is_err());
        assert!(parse_id::<16>("EEE19B7EC3C1B174").is_err());
        assert_eq!(
            parse_id::<8>(" 00f067aa0ba902b7\n").unwrap(),
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
    }

    #[test]
    fn hex_digits_only_in_pairs_of_the_right_count() {
        assert_eq!(decode_hex::<2>(b"aF09"), Some([0xaf, 0x09]));
        for bad in [&b"aF0g"[..], b"aF0", b"aF09a", b"a F0", b"\xff\xff\xff\xff"] {
            assert_eq!(decode_hex::<2>(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn digit_strings_up_to_nineteen_digits() {
        assert_eq!(
            digits_u64(b"1544712660000000000"),
            Some(1544712660000000000)
        );
        assert_eq!(digits_u64(b"0"), Some(0));
        assert_eq!(
            digits_u64(b"9999999999999999999"),
            Some(9999999999999999999)
        );
        for other in [
            &b""[..],
            b"12a",
            b"-1",
            b" 1",
            b"+1",
            b"18446744073709551615",
        ] {
            assert_eq!(digits_u64(other), None, "{other:?}");
        }
        // What the fast path leaves, the full parse still takes (or refuses).
        assert_eq!(
            to_u64(&Scalar::Str("18446744073709551615".into())),
            Ok(Some(u64::MAX))
        );
        assert_eq!(to_u64(&Scalar::Str(" 7 ".into())), Ok(Some(7)));
        assert_eq!(to_u64(&Scalar::Str("  ".into())), Ok(None));
        assert!(to_u64(&Scalar::Str("18446744073709551616".into())).is_err());
    }

    #[test]
    fn integers_as_strings_or_numbers() {
        assert_eq!(
            to_u64(&Scalar::Str("1544712660000000000".into())),
            Ok(Some(1544712660000000000))
        );
        assert_eq!(to_u64(&Scalar::U64(7)), Ok(Some(7)));
        assert_eq!(to_i64(&Scalar::Str("-7".into())), Ok(Some(-7)));
        assert!(to_u64(&Scalar::Bool(true)).is_err());
        assert!(to_u64(&Scalar::Str("abc".into())).is_err());
    }

    #[test]
    fn doubles_shortest_round_trip() {
        let mut s = String::new();
        write_f64(&mut s, 637.704);
        assert_eq!(s, "637.704");
        s.clear();
        write_f64(&mut s, 1.0);
        assert_eq!(s, "1");
        s.clear();
        write_f64(&mut s, 0.1 + 0.2);
        assert_eq!(s, "0.30000000000000004");
    }

    #[test]
    fn snake_keys_become_camel() {
        assert_eq!(
            Key(Cow::Borrowed("quantile_values")).camel(),
            "quantileValues"
        );
        assert_eq!(Key(Cow::Borrowed("spans")).camel(), "spans");
    }
}
