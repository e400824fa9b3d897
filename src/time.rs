//! Times and durations as users type them: RFC 3339 (`2026-11-21T10:00:00Z`), relative to a
//! base (`-2h`), durations like `30m`, `1h30m`, `2d`.

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, SecondsFormat, Utc};

pub const NS_PER_S: i64 = 1_000_000_000;

/// Parses `90s`, `30m`, `2h`, `1d`, `1h30m`, `500ms` into nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64> {
    let s = s.trim();
    if s.is_empty() {
        bail!("empty duration: write it like 30m, 2h, 1h30m or 90s");
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| {
                anyhow!("'{s}' has a number without a unit: write 30m, 2h, 90s or 1d")
            })?;
        if digits == 0 {
            bail!("'{s}' is not a duration: write it like 30m, 2h, 1h30m or 90s");
        }
        let n: f64 = rest[..digits]
            .parse()
            .map_err(|_| anyhow!("'{s}' is not a duration"))?;
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let unit = &rest[digits..digits + unit_len];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" | "min" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            "w" => 7.0 * 86400e9,
            _ => bail!("'{s}': unknown unit '{unit}' (use ms, s, m, h, d or w)"),
        };
        total += (n * scale) as u64;
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// Parses an RFC 3339 time, or one relative to `base` (`-2h`, `+30m`), into nanoseconds since
/// the epoch.
pub fn parse_time(s: &str, base_ns: Option<i64>) -> Result<i64> {
    let s = s.trim();
    if let Some(rel) = s.strip_prefix('-').or_else(|| s.strip_prefix('+')) {
        if let Ok(d) = parse_duration(rel) {
            let base = base_ns
                .ok_or_else(|| anyhow!("'{s}' is relative, but there is no time to count from"))?;
            let d = d as i64;
            return Ok(if s.starts_with('-') {
                base - d
            } else {
                base + d
            });
        }
    }
    let t = DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_rfc3339(&format!("{s}:00Z")))
        .or_else(|_| DateTime::parse_from_rfc3339(&format!("{s}T00:00:00Z")))
        .map_err(|_| {
            anyhow!(
                "'{s}' is not a time: use RFC 3339 like 2026-11-21T10:00:00Z, or relative like -2h"
            )
        })?;
    t.timestamp_nanos_opt()
        .ok_or_else(|| anyhow!("'{s}' is out of range"))
}

/// RFC 3339 with microseconds and `Z`, the precision of the tables.
pub fn format_ns(ns: i64) -> String {
    DateTime::<Utc>::from_timestamp(ns.div_euclid(NS_PER_S), ns.rem_euclid(NS_PER_S) as u32)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// A duration in its shortest exact form (`1h30m`, `45s`).
pub fn format_duration(ns: u64) -> String {
    let mut s = String::new();
    let mut rest = ns;
    for (unit, size) in [
        ("d", 86_400_000_000_000u64),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ] {
        if rest >= size {
            s.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    if s.is_empty() {
        s = format!("{ns}ns");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), 30 * 60 * 1_000_000_000);
        assert_eq!(parse_duration("1h30m").unwrap(), 90 * 60 * 1_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("3x").is_err());
        assert_eq!(format_duration(parse_duration("1h30m").unwrap()), "1h30m");
    }

    #[test]
    fn times() {
        let t = parse_time("2026-11-21T10:00:00Z", None).unwrap();
        assert_eq!(format_ns(t), "2026-11-21T10:00:00.000000Z");
        assert_eq!(parse_time("-2h", Some(t)).unwrap(), t - 7200 * NS_PER_S);
        assert!(parse_time("-2h", None).is_err());
        assert!(parse_time("yesterday", None).is_err());
        assert_eq!(
            parse_time("2026-11-21", None).unwrap(),
            t - 10 * 3600 * NS_PER_S
        );
    }
}
