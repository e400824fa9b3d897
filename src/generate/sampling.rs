//! Trace sampling as a shop's pipeline applies it, for `generate --sample-rate` and
//! `--tail-sample`: which traces reach the export. Metrics and logs are not sampled, and the
//! truth still describes every cart.
//!
//! Head sampling follows OpenTelemetry's consistent probability sampling (the
//! TraceIdRatioBased sampler of the specification's tracestate handling): a trace's
//! randomness is the least significant 56 bits of its trace id, the rejection threshold for a
//! probability p is T = round((1 - p) * 2^56), a trace is kept when its randomness is at least
//! T, and every kept span says so in its W3C tracestate as `ot=th:` and T in 14 hexadecimal
//! digits with the trailing zeros removed (`th:c` for 25%, `th:0` for every trace).
//!
//! Tail sampling is what a Collector's tail-sampling processor keeps once it has seen the
//! whole trace: those with an error (`keep-errors`), those with a span at least as slow as a
//! threshold (`keep-slow`, 2 s unless given), and a share of the rest (`rate=P`, decided on the
//! trace id as above). It writes nothing in tracestate, as the Collector's processor does not:
//! the export does not say how likely each trace was to be kept.

use std::collections::HashMap;
use std::str::FromStr;

use anyhow::{bail, Context, Result};

/// 2^56: the randomness of a trace id spans [0, 2^56).
const RANGE: f64 = 72_057_594_037_927_936.0;

/// Which traces reach the export.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Sampling {
    /// Every trace.
    #[default]
    Everything,
    /// Each trace with probability `p`, recorded in its tracestate.
    Head { p: f64 },
    /// After the trace is complete, by what it holds.
    Tail(TailPolicy),
}

/// A tail-sampling policy (`keep-errors,keep-slow=2s,rate=0.1`).
#[derive(Debug, Clone, PartialEq)]
pub struct TailPolicy {
    pub keep_errors: bool,
    /// Keep a trace with a span at least this long (nanoseconds).
    pub keep_slow_ns: Option<u64>,
    /// The probability of keeping any other trace.
    pub rate: f64,
}

impl FromStr for TailPolicy {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<TailPolicy> {
        let mut t = TailPolicy {
            keep_errors: false,
            keep_slow_ns: None,
            rate: f64::NAN,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                None if part == "keep-errors" => t.keep_errors = true,
                None if part == "keep-slow" => t.keep_slow_ns = Some(2_000_000_000),
                Some(("keep-slow", d)) => {
                    let d: crate::time::Duration = d
                        .parse()
                        .with_context(|| format!("keep-slow={d}: a duration, such as 2s"))?;
                    t.keep_slow_ns = Some(d.ns());
                }
                Some(("rate", p)) => t.rate = probability(p)?,
                _ => bail!(
                    "unknown tail-sampling policy '{part}': use keep-errors, keep-slow[=DURATION] and rate=P, separated by commas"
                ),
            }
        }
        if t.rate.is_nan() {
            bail!("say which share of the other traces to keep: rate=P, with P from 0 to 1 (rate=0 keeps none)");
        }
        Ok(t)
    }
}

/// A probability: a number from 0 to 1.
pub fn probability(s: &str) -> Result<f64> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => bail!("'{s}' is not a probability: give a number from 0 to 1, such as 0.25"),
    }
}

/// The rejection threshold of probability `p`: keep when randomness >= it.
pub fn threshold(p: f64) -> u64 {
    ((1.0 - p.clamp(0.0, 1.0)) * RANGE).round() as u64
}

/// The `th` value of a threshold: 14 hexadecimal digits, trailing zeros removed ("0" for 0).
pub fn th(threshold: u64) -> String {
    let s = format!("{threshold:014x}");
    let t = s.trim_end_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

/// A trace's randomness: the least significant 56 bits of its id.
pub fn randomness(trace_id: &[u8; 16]) -> u64 {
    trace_id[9..]
        .iter()
        .fold(0u64, |r, b| (r << 8) | u64::from(*b))
}

impl Sampling {
    /// The tracestate every kept span carries.
    pub fn trace_state(&self) -> Option<String> {
        match self {
            Sampling::Head { p } => Some(format!("ot=th:{}", th(threshold(*p)))),
            _ => None,
        }
    }

    pub fn is_everything(&self) -> bool {
        *self == Sampling::Everything
    }

    /// Whether each trace of `spans` (every span of the traces, in any order, as its trace
    /// id, whether it failed, and its duration in nanoseconds) is kept.
    pub fn kept(
        &self,
        spans: impl Iterator<Item = ([u8; 16], bool, u64)>,
    ) -> HashMap<[u8; 16], bool> {
        let mut seen: HashMap<[u8; 16], bool> = HashMap::new();
        match self {
            Sampling::Everything => {
                for (id, _, _) in spans {
                    seen.insert(id, true);
                }
            }
            Sampling::Head { p } => {
                let t = threshold(*p);
                for (id, _, _) in spans {
                    seen.insert(id, randomness(&id) >= t);
                }
            }
            Sampling::Tail(policy) => {
                let t = threshold(policy.rate);
                for (id, failed, ns) in spans {
                    let notable = (policy.keep_errors && failed)
                        || policy.keep_slow_ns.is_some_and(|slow| ns >= slow);
                    let keep = seen.entry(id).or_insert_with(|| randomness(&id) >= t);
                    *keep |= notable;
                }
            }
        }
        seen
    }

    /// For the truth file's generator settings.
    pub fn describe(&self) -> Option<String> {
        match self {
            Sampling::Everything => None,
            Sampling::Head { p } => Some(format!("head, probability {p}")),
            Sampling::Tail(t) => Some(format!(
                "tail: {}{}rate={}",
                if t.keep_errors { "keep-errors," } else { "" },
                t.keep_slow_ns
                    .map(|n| format!("keep-slow={},", crate::time::format_duration(n)))
                    .unwrap_or_default(),
                t.rate
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_written_as_opentelemetry_does() {
        // 100% th:0, 50% th:8, 25% th:c, as the specification's examples; 10% at full
        // precision (0.9 is a little above 9/10 as a double).
        assert_eq!(th(threshold(1.0)), "0");
        assert_eq!(th(threshold(0.5)), "8");
        assert_eq!(th(threshold(0.25)), "c");
        assert_eq!(th(threshold(0.1)), "e6666666666668");
        assert_eq!(th(threshold(1.0 / 3.0)), "aaaaaaaaaaaab");
    }

    #[test]
    fn randomness_is_the_low_56_bits() {
        let mut id = [0u8; 16];
        id[8] = 0xff; // not part of it
        id[9] = 0x80;
        assert_eq!(randomness(&id), 1 << 55);
        // kept at 50% (threshold 2^55), not at 49%.
        assert!(randomness(&id) >= threshold(0.5));
        assert!(randomness(&id) < threshold(0.49));
    }

    #[test]
    fn tail_policies_parse_and_say_what_is_wrong() {
        let t: TailPolicy = "keep-errors,keep-slow,rate=0.1".parse().unwrap();
        assert_eq!(
            t,
            TailPolicy {
                keep_errors: true,
                keep_slow_ns: Some(2_000_000_000),
                rate: 0.1
            }
        );
        let t: TailPolicy = "keep-slow=500ms, rate=0".parse().unwrap();
        assert_eq!(t.keep_slow_ns, Some(500_000_000));
        for (bad, says) in [
            ("keep-errors", "rate=P"),
            ("rate=1.5", "not a probability"),
            (
                "keep-everything,rate=0.1",
                "unknown tail-sampling policy 'keep-everything'",
            ),
            ("keep-slow=fast,rate=0.1", "keep-slow=fast"),
        ] {
            let e = format!("{:#}", bad.parse::<TailPolicy>().unwrap_err());
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
