//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): each takes arbitrary bytes
//! through one reader the way a file's bytes go through it, and must return, never panic,
//! hang or allocate without bound. Compiled always (and unit-tested below), so they cannot
//! rot between fuzzing runs.

use std::path::Path;

use super::input::{self, InputFile};
use super::load::{self, Limits, LoadOptions};
use super::otlp::{json, proto};
use crate::tables::builders::TableBuilders;

/// The limits the targets run under: a fuzzer's inputs are small, and a record limit of
/// 1 MiB keeps any one case's memory small too.
pub const LIMITS: Limits = Limits {
    max_record: 1 << 20,
    max_expansion: 250,
    repeat_check_spans: 1 << 16,
};

/// OTLP/JSON: each line (or the whole input, when it is not JSON lines) as a document into
/// the builders, which are then finished into batches.
pub fn otlp_json(bytes: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return 0;
    };
    let mut b = TableBuilders::default();
    let mut scratch = json::Scratch::default();
    let docs: Vec<&str> = if input::looks_like_json_lines(bytes) {
        text.lines().collect()
    } else {
        vec![text]
    };
    for d in docs {
        let _ = json::parse_document(d, &mut b, &mut scratch);
    }
    b.take().into_iter().map(|(_, v)| v.len()).sum()
}

/// One OTLP protobuf message (`TracesData`, `MetricsData` or `LogsData`).
pub fn otlp_proto(bytes: &[u8]) -> usize {
    let mut b = TableBuilders::default();
    let mut bad = Vec::new();
    let _ = proto::decode_message(bytes, &mut b, &mut bad, &Default::default());
    b.take().into_iter().map(|(_, v)| v.len()).sum::<usize>() + bad.len()
}

/// A whole file through the loader: sniffing, gzip or zstd, the file exporter's frames
/// (plain or zstd), JSON, protobuf or Parquet, as `--data FILE` reads it. The bytes are
/// written to `path` first.
pub fn file(bytes: &[u8], path: &Path) -> usize {
    if std::fs::write(path, bytes).is_err() {
        return 0;
    }
    // Named, as `--data FILE` gives it: JSON that names no OTLP field is read record by
    // record (found in a folder it is passed over unread, which would hide the JSON reader).
    let files = [InputFile {
        path: path.to_path_buf(),
        discovered: false,
        size: None,
    }];
    let opts = LoadOptions {
        threads: 1,
        limits: LIMITS,
        ..LoadOptions::default()
    };
    match load::load_into_memory(&files, &opts) {
        Ok((tables, stats)) => {
            tables.into_iter().map(|(_, v)| v.len()).sum::<usize>() + stats.bad.len()
        }
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every input a fuzzer once found a problem with (fuzz/regressions/TARGET/), through its
    /// target again: each must return.
    #[test]
    fn the_fuzzers_findings_stay_fixed() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        let dir = tempfile::tempdir().unwrap();
        let mut seen = 0;
        for (target, run) in [
            ("otlp_json", otlp_json as fn(&[u8]) -> usize),
            ("otlp_proto", otlp_proto),
        ] {
            for e in std::fs::read_dir(root.join(target)).into_iter().flatten() {
                let bytes = std::fs::read(e.unwrap().path()).unwrap();
                run(&bytes);
                seen += 1;
            }
        }
        for e in std::fs::read_dir(root.join("file")).into_iter().flatten() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            file(&bytes, &dir.path().join("f"));
            seen += 1;
        }
        assert!(seen > 0, "no regression inputs under {}", root.display());
    }

    const SPAN: &str = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;

    #[test]
    fn each_entry_reads_what_it_is_given() {
        assert!(otlp_json(SPAN.as_bytes()) > 0);
        assert_eq!(otlp_json(b"\xff\xfe"), 0);
        assert_eq!(otlp_proto(b""), 0);
        let _ = otlp_proto(b"\x0a\x05\x0a\x03\x0a\x01\x00");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        assert!(file(SPAN.as_bytes(), &p) > 0);
        let _ = file(b"\x00\x00\x00\x05hello", &p);
        let _ = file(&[0x1f, 0x8b, 0x08, 0, 0, 0], &p);
    }
}
