//! The tokenising floor of the benchmark (`bench/run.sh`): parses every line of an OTLP/JSON
//! lines file with serde_json into `IgnoredAny` (no output at all), after one UTF-8 check,
//! on one core. `cartscope ingest` is measured against this, per core used.
//!
//! `cargo run --release --manifest-path bench/floor/Cargo.toml -- FILE` prints bytes, seconds and MB/s.

use serde::de::IgnoredAny;

fn main() {
    let path = std::env::args().nth(1).expect("usage: parse_floor FILE");
    let bytes = std::fs::read(&path).expect("cannot read the file");
    let started = std::time::Instant::now();
    let text = std::str::from_utf8(&bytes).expect("not UTF-8");
    let mut docs = 0u64;
    for line in text.split('\n') {
        if line.trim().is_empty() {
            continue;
        }
        let _: IgnoredAny = serde_json::from_str(line).expect("invalid JSON");
        docs += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} bytes {docs} documents {secs:.3} s {:.1} MB/s",
        bytes.len(),
        bytes.len() as f64 / 1e6 / secs
    );
}
