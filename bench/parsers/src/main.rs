//! Parse rates of the JSON libraries on an OTLP/JSON lines file, for bench/parsers.sh.
//!
//! `parsers MODE FILE` reads the file, checks UTF-8 once, then parses every line and prints
//! `MODE bytes seconds MB/s` (the parse alone, one core). Modes:
//!
//! - `floor`: serde_json into `IgnoredAny`, the floor (as bench/floor).
//! - `serde-typed`: serde_json into borrowed OTLP structs: a typed parse with no output.
//! - `sonic-serde`: sonic-rs's serde `Deserializer` into `IgnoredAny`, as cartscope's
//!   visitors would use it.
//! - `sonic-typed`: sonic-rs into the same OTLP structs.
//! - `sonic-dom`: sonic-rs into its own `Value` tree.
//! - `simd-tape`: simd-json's tape (each line copied first, as simd-json parses in place).

// The structs are parsed and never read: the parse is what is measured.
#![allow(dead_code)]

use std::borrow::Cow;
use std::hint::black_box;

use serde::de::{self, Deserializer as _, IgnoredAny};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TracesData<'a> {
    #[serde(borrow, default)]
    resource_spans: Vec<ResourceSpans<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    #[serde(borrow, default)]
    resource: Option<Attributed<'a>>,
    #[serde(borrow, default)]
    scope_spans: Vec<ScopeSpans<'a>>,
    #[serde(borrow, default)]
    schema_url: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Attributed<'a> {
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeSpans<'a> {
    #[serde(borrow, default)]
    scope: Option<Scope<'a>>,
    #[serde(borrow, default)]
    spans: Vec<Span<'a>>,
    #[serde(borrow, default)]
    schema_url: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Scope<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Span<'a> {
    #[serde(borrow, default)]
    trace_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    span_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parent_span_id: Option<Cow<'a, str>>,
    #[serde(default)]
    flags: Option<u32>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(default)]
    kind: Option<i32>,
    #[serde(default)]
    start_time_unix_nano: Option<Num>,
    #[serde(default)]
    end_time_unix_nano: Option<Num>,
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
    #[serde(borrow, default)]
    events: Vec<Event<'a>>,
    #[serde(borrow, default)]
    status: Option<Status<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(default)]
    time_unix_nano: Option<Num>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Deserialize)]
struct Status<'a> {
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(default)]
    code: Option<i32>,
}

#[derive(Deserialize)]
struct KeyValue<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: AnyValue<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyValue<'a> {
    #[serde(borrow, default)]
    string_value: Option<Cow<'a, str>>,
    #[serde(default)]
    int_value: Option<Num>,
    #[serde(default)]
    double_value: Option<f64>,
    #[serde(default)]
    bool_value: Option<bool>,
}

/// An OTLP 64-bit integer: a decimal string or a JSON number.
struct Num(u64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer or a decimal string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(v as u64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                v.parse().map(Num).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

fn parse(mode: &str, line: &str) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    match mode {
        "floor" => serde_json::from_str::<IgnoredAny>(line)
            .map(drop)
            .map_err(|x| e(&x)),
        "serde-typed" => serde_json::from_str::<TracesData>(line)
            .map(|d| drop(black_box(d)))
            .map_err(|x| e(&x)),
        "sonic-serde" => {
            let mut de = sonic_rs::Deserializer::from_str(line);
            (&mut de)
                .deserialize_ignored_any(IgnoredAny)
                .and_then(|_| de.end())
                .map_err(|x| e(&x))
        }
        "sonic-typed" => sonic_rs::from_str::<TracesData>(line)
            .map(|d| drop(black_box(d)))
            .map_err(|x| e(&x)),
        "sonic-dom" => sonic_rs::from_str::<sonic_rs::Value>(line)
            .map(|d| drop(black_box(d)))
            .map_err(|x| e(&x)),
        "simd-tape" => {
            let mut copy = line.as_bytes().to_vec();
            simd_json::to_tape(&mut copy)
                .map(|t| drop(black_box(t)))
                .map_err(|x| e(&x))
        }
        other => Err(format!("unknown mode '{other}'")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, path] = &args[..] else {
        eprintln!("usage: parsers MODE FILE");
        std::process::exit(2);
    };
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("cannot read {path}: {e}");
        std::process::exit(1)
    });
    let started = std::time::Instant::now();
    let text = std::str::from_utf8(&bytes).unwrap_or_else(|e| {
        eprintln!("{path} is not UTF-8: {e}");
        std::process::exit(1)
    });
    for (n, line) in text.split('\n').enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if let Err(msg) = parse(mode, line) {
            eprintln!("{path}:{}: {mode}: {msg}", n + 1);
            std::process::exit(1);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{mode} {} {secs:.4} {:.1}",
        bytes.len(),
        bytes.len() as f64 / 1e6 / secs
    );
}
