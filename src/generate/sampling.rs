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

pub use crate::report::sampling::{probability, TailPolicy};

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
}
