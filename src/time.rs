//! Times and durations, typed: `Timestamp` (a UTC instant in nanoseconds), `Duration`, `Day`,
//! and `TimeArg` (a time as a flag takes it: absolute, or relative to a base only the data
//! knows). Each parses from what users type (RFC 3339 `2026-11-21T10:00:00Z`, relative `-2h`,
//! durations like `30m`, `1h30m`, `2d`, days `2026-11-21`) once, at the edge (clap value
//! parsers, the model's TOML), and writes back in one form; nothing downstream parses again.

use std::fmt;
use std::str::FromStr;

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
        let part = n * scale;
        if part.is_nan() || part >= u64::MAX as f64 {
            bail!("'{s}' is too long a duration");
        }
        total = total
            .checked_add(part as u64)
            .ok_or_else(|| anyhow!("'{s}' is too long a duration"))?;
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
            let d = i64::try_from(d).map_err(|_| anyhow!("'{s}' is out of range"))?;
            let t = if s.starts_with('-') {
                base.checked_sub(d)
            } else {
                base.checked_add(d)
            };
            return t.ok_or_else(|| anyhow!("'{s}' is out of range"));
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

/// Microseconds since the epoch as RFC 3339 (any year chrono can write; else the number).
pub fn format_micros(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
        .unwrap_or_else(|| format!("{us} microseconds after 1970"))
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

/// An instant, in nanoseconds since the epoch, UTC. Written as RFC 3339 with microseconds and
/// `Z` (the precision of the tables), in text and in JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_ns(ns: i64) -> Timestamp {
        Timestamp(ns)
    }

    pub const fn ns(self) -> i64 {
        self.0
    }

    /// Microseconds since the epoch, rounded down: the tables' unit.
    pub const fn micros(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn checked_add(self, d: Duration) -> Option<Timestamp> {
        i64::try_from(d.0)
            .ok()
            .and_then(|d| self.0.checked_add(d))
            .map(Timestamp)
    }

    pub fn checked_sub(self, d: Duration) -> Option<Timestamp> {
        i64::try_from(d.0)
            .ok()
            .and_then(|d| self.0.checked_sub(d))
            .map(Timestamp)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_ns(self.0))
    }
}

impl FromStr for Timestamp {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Timestamp> {
        parse_time(s, None).map(Timestamp)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: anyhow::Error| serde::de::Error::custom(format!("{e:#}")))
    }
}

/// A length of time, in nanoseconds. Written in its shortest exact form (`1h30m`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Duration {
    pub const fn from_ns(ns: u64) -> Duration {
        Duration(ns)
    }

    pub const fn from_mins(m: u64) -> Duration {
        Duration(m * 60 * NS_PER_S as u64)
    }

    pub const fn ns(self) -> u64 {
        self.0
    }

    /// Whole microseconds, saturating: the unit the replay compares in.
    pub fn micros(self) -> i64 {
        i64::try_from(self.0 / 1000).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl FromStr for Duration {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Duration> {
        parse_duration(s).map(Duration)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: anyhow::Error| serde::de::Error::custom(format!("{e:#}")))
    }
}

/// A UTC day, as `YYYY-MM-DD`: its first instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Day(Timestamp);

impl Day {
    pub const LENGTH: Duration = Duration(86_400 * NS_PER_S as u64);

    pub fn start(self) -> Timestamp {
        self.0
    }

    /// The first instant of the next day.
    pub fn end(self) -> Timestamp {
        Timestamp(self.0 .0 + Day::LENGTH.0 as i64)
    }
}

impl FromStr for Day {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Day> {
        let d = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| anyhow!("'{s}' is not a day: write it as YYYY-MM-DD"))?;
        let ns = d
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_utc().timestamp_nanos_opt())
            .filter(|ns| ns.checked_add(Day::LENGTH.0 as i64).is_some())
            .ok_or_else(|| anyhow!("'{s}' is out of range"))?;
        Ok(Day(Timestamp(ns)))
    }
}

/// A time as a flag takes it: an instant, or a distance before or after a base that only the
/// data decides (`-2h` before the as-of time). `resolve` gives the instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeArg {
    At(Timestamp),
    Before(Duration),
    After(Duration),
}

impl TimeArg {
    /// The instant, counting a relative time from `base`.
    pub fn resolve(self, base: Option<Timestamp>) -> Result<Timestamp> {
        let (back, by) = match self {
            TimeArg::At(t) => return Ok(t),
            TimeArg::Before(d) => (true, d),
            TimeArg::After(d) => (false, d),
        };
        let base = base
            .ok_or_else(|| anyhow!("'{self}' is relative, but there is no time to count from"))?;
        let t = if back {
            base.checked_sub(by)
        } else {
            base.checked_add(by)
        };
        t.ok_or_else(|| anyhow!("'{self}' from {base} is out of range"))
    }
}

impl fmt::Display for TimeArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeArg::At(t) => write!(f, "{t}"),
            TimeArg::Before(d) => write!(f, "-{d}"),
            TimeArg::After(d) => write!(f, "+{d}"),
        }
    }
}

impl FromStr for TimeArg {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<TimeArg> {
        let t = s.trim();
        if let Some(rel) = t.strip_prefix('-') {
            if let Ok(d) = rel.parse() {
                return Ok(TimeArg::Before(d));
            }
        }
        if let Some(rel) = t.strip_prefix('+') {
            if let Ok(d) = rel.parse() {
                return Ok(TimeArg::After(d));
            }
        }
        t.parse().map(TimeArg::At)
    }
}

/// A timestamp written to the whole second, as SQL writes a truncated hour.
pub mod whole_seconds {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Timestamp;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        let secs = t.ns().div_euclid(1_000_000_000);
        match chrono::DateTime::from_timestamp(secs, 0) {
            Some(d) => s.collect_str(&d.format("%Y-%m-%dT%H:%M:%SZ")),
            None => s.collect_str(t),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e: anyhow::Error| serde::de::Error::custom(format!("{e:#}")))
    }
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

    #[test]
    fn typed_values_parse_once_and_write_back() {
        let t: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-21T10:00:00.000000Z");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-11-21T10:00:00.000000Z\""
        );
        let back: Timestamp = serde_json::from_str("\"2026-11-21T10:00:00.000000Z\"").unwrap();
        assert_eq!(back, t);
        let d: Duration = "1h30m".parse().unwrap();
        assert_eq!(d.to_string(), "1h30m");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1h30m\"");
        let rel: TimeArg = "-2h".parse().unwrap();
        assert_eq!(rel, TimeArg::Before(Duration::from_mins(120)));
        assert_eq!(rel.resolve(Some(t)).unwrap().ns(), t.ns() - 7200 * NS_PER_S);
        assert!(rel.resolve(None).is_err());
        assert_eq!(
            "+30m"
                .parse::<TimeArg>()
                .unwrap()
                .resolve(Some(t))
                .unwrap()
                .ns(),
            t.ns() + 1800 * NS_PER_S
        );
        assert!("soon".parse::<TimeArg>().is_err());
        let day: Day = "2026-11-21".parse().unwrap();
        assert_eq!(day.start().ns(), t.ns() - 10 * 3600 * NS_PER_S);
        assert_eq!(day.end().ns() - day.start().ns(), 86_400 * NS_PER_S);
        assert!("2026-11-21T00:00:00Z".parse::<Day>().is_err());
    }

    #[test]
    fn arithmetic_near_the_ends_is_an_error_not_a_wrap() {
        assert!(parse_duration("99999999999999d").is_err());
        assert!(parse_time("-1d", Some(i64::MIN + 5)).is_err());
        let late = Timestamp::from_ns(i64::MAX - 5);
        assert!(TimeArg::After(Duration::from_mins(1))
            .resolve(Some(late))
            .is_err());
    }
}
