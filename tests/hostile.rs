//! Hostile and broken inputs (tests/fixtures/hostile/, made by its make.py; the large ones
//! are made here): each gives its rows, its reasons with their file and line or frame, and
//! its exit code, and no command panics, aborts, hangs or grows past 1 GB doing it.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::*;

fn hostile(name: &str) -> PathBuf {
    fixture(&format!("hostile/{name}"))
}

/// One run of the binary: how it ended, what it wrote, its peak memory.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    max_rss_mb: u64,
    timed_out: bool,
}

/// Runs cartscope with `args`, kills it after `limit`, and measures its peak RSS (wait4).
fn run_for(args: &[&OsStr], limit: Duration) -> Ran {
    use std::os::unix::process::ExitStatusExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut child = cmd()
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cartscope starts");
    let pid = child.id() as libc::pid_t;
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut s).ok();
        s
    });
    let done = Arc::new(AtomicBool::new(false));
    let timed_out = Arc::new(AtomicBool::new(false));
    {
        let (done, timed_out) = (done.clone(), timed_out.clone());
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while start.elapsed() < limit {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !done.load(Ordering::SeqCst) {
                timed_out.store(true, Ordering::SeqCst);
                // SAFETY: signals the child we spawned and have not reaped yet.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; status and usage are valid for writes.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    done.store(true, Ordering::SeqCst);
    assert_eq!(r, pid, "wait4");
    std::mem::forget(child); // reaped by wait4 above
    let status = std::process::ExitStatus::from_raw(status);
    Ran {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        max_rss_mb: usage.ru_maxrss as u64 / 1024,
        timed_out: timed_out.load(Ordering::SeqCst),
    }
}

fn os<'a>(args: &'a [&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(OsStr::new).collect()
}

/// Runs `args` (with `--data PATH` after them) and checks that it ended on its own, with an
/// exit code, without a panic and under 1 GB.
fn run_on(args: &[&str], data: &Path) -> Ran {
    let mut a = os(args);
    a.push(OsStr::new("--data"));
    a.push(data.as_os_str());
    let r = run_for(&a, Duration::from_secs(120));
    let what = format!("cartscope {args:?} --data {}", data.display());
    assert!(!r.timed_out, "{what}: did not finish in 120 s");
    assert!(r.code.is_some(), "{what}: killed by a signal\n{}", r.stderr);
    assert!(
        !r.stderr.contains("panicked"),
        "{what}: panicked\n{}",
        r.stderr
    );
    assert!(r.max_rss_mb < 1024, "{what}: {} MB", r.max_rss_mb);
    r
}

/// Runs `ingest INPUT --out OUT` with `extra` flags after them (60 s at most).
fn ingest_with(input: &Path, out: &Path, extra: &[&str]) -> Ran {
    let mut a = vec![
        OsStr::new("ingest"),
        input.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
    ];
    a.extend(extra.iter().map(OsStr::new));
    run_for(&a, Duration::from_secs(60))
}

/// The `tables -f csv` row count of `table`.
fn table_rows(r: &Ran, table: &str) -> u64 {
    r.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{table},")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {table} row in\n{}", r.stdout))
}

fn tables(data: &Path) -> Ran {
    run_on(&["tables", "-f", "csv"], data)
}

#[test]
fn a_zstd_frame_is_decompressed_only_up_to_the_record_limit() {
    let f = hostile("framed-zstd-bomb.binpb");
    let r = tables(&f);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(table_rows(&r, "traces"), 2, "the frames on both sides");
    assert!(
        r.stderr.contains(&format!(
            "{}: frame 2: zstd frame decompresses to more than 268435456 bytes (--max-record-size); skipped",
            f.display()
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn implausible_times_are_kept_reported_and_not_the_default_as_of() {
    let f = hostile("implausible-times.jsonl");
    let r = run_on(&["detect", "-f", "csv"], &f);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // Year 2554 fits OTLP's u64 nanoseconds: kept, and named. Year 3000 does not: a bad
    // record of its line.
    assert!(
        r.stderr.contains(
            "cartscope: warning: 1 span (e.g. ffffffffffffffffffffffffffffffff/ffffffffffffffff, at 2554-07-21T23:34:32.709551Z) stamped outside 2000-2200"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "{}:5: span \"clock.year3000\" skipped: startTimeUnixNano: expected an unsigned integer",
            f.display()
        )),
        "{}",
        r.stderr
    );
    // Judged as of the ordinary spans: three carts, not "0 carts" in 1915 or 2554.
    assert!(
        r.stderr
            .contains("as of 2026-11-18T11:08:40.040000Z (threshold 30m): 3 carts"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout.lines().count(), 4, "{}", r.stdout);
    // The rows are all there.
    let r = tables(&f);
    assert_eq!(table_rows(&r, "traces"), 5);
}

#[test]
fn whitespace_before_the_data_is_looked_past() {
    let f = hostile("whitespace-first.jsonl");
    let r = tables(&f);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(table_rows(&r, "traces"), 1);
    // Line numbers count the blank lines passed over.
    assert!(
        r.stderr.contains(&format!("{}:202:", f.display())),
        "{}",
        r.stderr
    );
    let r = tables(&hostile("bom-whitespace.json"));
    assert_eq!(table_rows(&r, "traces"), 1, "{}", r.stderr);
    assert!(!r.stderr.contains("skipped"), "{}", r.stderr);
    // Nothing but whitespace: empty, and said to be.
    let f = hostile("only-whitespace.jsonl");
    let r = tables(&f);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(table_rows(&r, "traces"), 0);
    assert!(
        r.stderr.contains(&format!(
            "passed over '{}': empty, or only whitespace",
            f.display()
        )),
        "{}",
        r.stderr
    );
}

/// Writes a gzip or zstd stream of `prefix`, then `fill` repeated to `total` bytes, then
/// `suffix`: many small members (frames), so that making it costs nothing.
fn bomb(path: &Path, zstd: bool, prefix: &[u8], fill: u8, total: usize, suffix: &[u8]) {
    let block = vec![fill; 1 << 20];
    let compress = |data: &[u8]| -> Vec<u8> {
        if zstd {
            zstd::encode_all(data, 3).unwrap()
        } else {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
    };
    let member = compress(&block);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&compress(prefix)).unwrap();
    for _ in 0..total / block.len() {
        f.write_all(&member).unwrap();
    }
    f.write_all(&compress(suffix)).unwrap();
    f.flush().unwrap();
}

fn one_span_line(cart: &str) -> String {
    let mut s = String::new();
    span(
        &mut s,
        1,
        0,
        Step {
            name: "cart.add_item",
            at_s: 0,
            ms: 30,
            error: false,
        },
        &[("cart.id", cart.to_string())],
    );
    traces_line(&s)
}

#[test]
fn decompression_bombs_stop_at_the_expansion_limit() {
    let tmp = tempfile::tempdir().unwrap();
    for zstd in [false, true] {
        // A good line, then 4 GiB of zeros: read up to the limit, reported, the line kept.
        let f = tmp.path().join(if zstd {
            "bomb.jsonl.zst"
        } else {
            "bomb.jsonl.gz"
        });
        bomb(&f, zstd, one_span_line("a").as_bytes(), 0, 4 << 30, b"");
        let r = tables(&f);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert_eq!(table_rows(&r, "traces"), 1, "{}", r.stderr);
        assert!(
            r.stderr.contains("expands more than 250 times")
                && r.stderr
                    .contains("a decompression bomb or a corrupt stream")
                && r.stderr.contains(&f.display().to_string()),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn gigabytes_of_whitespace_are_a_bomb_unless_the_limit_is_raised() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("blank-then-data.jsonl.gz");
    // 96 MiB of spaces, then a line: it expands about 1000 times.
    bomb(
        &f,
        false,
        b"",
        b' ',
        96 << 20,
        one_span_line("late").as_bytes(),
    );
    let r = tables(&f);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(table_rows(&r, "traces"), 0);
    assert!(
        r.stderr.contains("expands more than 250 times"),
        "not skipped in silence: {}",
        r.stderr
    );
    let r = run_on(&["tables", "-f", "csv", "--max-expansion", "5000"], &f);
    assert_eq!(table_rows(&r, "traces"), 1, "{}", r.stderr);
}

#[test]
fn a_100_megabyte_line_loads_and_the_record_limit_skips_it() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("long.jsonl");
    let long = one_span_line(&"x".repeat(100 << 20));
    std::fs::write(&f, format!("{long}{}", one_span_line("b"))).unwrap();
    let r = tables(&f);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(table_rows(&r, "traces"), 2, "{}", r.stderr);
    let r = run_on(&["tables", "-f", "csv", "--max-record-size", "50MB"], &f);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(table_rows(&r, "traces"), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{}:1: the line is longer than 50000000 bytes (--max-record-size); skipped",
            f.display()
        )),
        "{}",
        r.stderr
    );
}

/// Lines over the record limit that the loader reads in one chunk with others (lines of 30
/// kB, a limit of 20 kB): each is skipped and reported, by a held load (`tables`, whose
/// chunks are 4 MiB) and by ingest (1 MiB) alike, not only the one that happened to straddle
/// a chunk's end. Hand-made lines.
#[test]
fn every_line_over_the_record_limit_is_skipped_wherever_it_falls_in_a_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("long-lines.jsonl");
    let long = |c: &str| one_span_line(&format!("{c}{}", "x".repeat(30_000)));
    std::fs::write(
        &f,
        format!(
            "{}{}{}{}",
            long("a"),
            one_span_line("b"),
            long("c"),
            long("d")
        ),
    )
    .unwrap();
    let r = run_on(&["tables", "-f", "csv", "--max-record-size", "20kB"], &f);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(table_rows(&r, "traces"), 1, "{}", r.stderr);
    for line in [1, 3, 4] {
        let needle = format!(
            "{}:{line}: the line is longer than 20000 bytes (--max-record-size); skipped",
            f.display()
        );
        assert!(r.stderr.contains(&needle), "{needle}: {}", r.stderr);
    }
    let out = tmp.path().join("ds");
    let r = ingest_with(&f, &out, &["--max-record-size", "20kB"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("3 bad records skipped"),
        "ingest skips the same lines: {}",
        r.stderr
    );
    let r = run_on(&["tables", "-f", "csv"], &out);
    assert_eq!(table_rows(&r, "traces"), 1, "{}", r.stderr);
}

#[test]
fn deep_nesting_nan_bad_utf8_and_wrong_types_are_skipped_with_their_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let deep = tmp.path().join("deep.jsonl");
    let depth = 100_000;
    let value = format!(
        "{}{{\"stringValue\":\"bottom\"}}{}",
        "{\"arrayValue\":{\"values\":[".repeat(depth),
        "]}}".repeat(depth)
    );
    let line = one_span_line("deep").replace(r#"{"stringValue":"deep"}"#, &value);
    std::fs::write(&deep, format!("{line}{}", one_span_line("ok"))).unwrap();
    let r = tables(&deep);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(table_rows(&r, "traces"), 1);
    assert!(
        r.stderr.contains(&format!("{}:1:", deep.display())),
        "{}",
        r.stderr
    );

    let f = hostile("invalid-utf8.jsonl");
    let r = tables(&f);
    assert_eq!(table_rows(&r, "traces"), 2);
    assert!(
        r.stderr.contains(&format!("{}:2:", f.display())),
        "{}",
        r.stderr
    );

    let f = hostile("wrong-types.jsonl");
    let r = tables(&f);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(table_rows(&r, "traces"), 1, "{}", r.stderr);
    assert!(r.stderr.contains("bad records skipped"), "{}", r.stderr);

    let f = hostile("nan-infinity.jsonl");
    let r = tables(&f);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(table_rows(&r, "traces"), 1, "{}", r.stderr);
    assert_eq!(table_rows(&r, "metrics"), 3, "{}", r.stderr);
}

#[test]
fn random_bytes_and_a_corrupt_parquet_footer_name_the_file() {
    for (name, why) in [
        (
            "random-bytes.bin",
            "is not OTLP/JSON, OTLP protobuf or Parquet",
        ),
        ("corrupt-footer.parquet", "not a readable Parquet file"),
    ] {
        let f = hostile(name);
        // Named: a bad record that names it and says why; fatal under --strict.
        let r = tables(&f);
        assert_eq!(r.code, Some(0), "{name}: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("cartscope: skipped: {}: ", f.display()))
                && r.stderr.contains(why),
            "{name}: {}",
            r.stderr
        );
        let r = run_on(&["tables", "-f", "csv", "--strict"], &f);
        assert_eq!(r.code, Some(2), "{name}: {}", r.stderr);
    }
    // Found in a folder beside good data: passed over or skipped, and said.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(hostile("random-bytes.bin"), tmp.path().join("a.bin")).unwrap();
    std::fs::copy(
        hostile("corrupt-footer.parquet"),
        tmp.path().join("b.parquet"),
    )
    .unwrap();
    std::fs::write(tmp.path().join("c.jsonl"), one_span_line("c")).unwrap();
    // Other JSON beside the export, as a generator's truth file lies beside its data: a
    // document a line, none of them OTLP.
    let truth = "{\"version\":1,\"carts\":[\n{\"cart_id\":\"a\",\"outcome\":\"abandoned\"},\n{\"cart_id\":\"b\"}]}\n";
    std::fs::write(tmp.path().join("d.json"), truth).unwrap();
    let r = tables(tmp.path());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(table_rows(&r, "traces"), 1);
    assert!(r.stderr.contains("a.bin"), "{}", r.stderr);
    assert!(r.stderr.contains("b.parquet"), "{}", r.stderr);
    assert!(
        r.stderr.contains("d.json': JSON, but not OTLP"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("d.json:"),
        "no record of it is read: {}",
        r.stderr
    );
    // Named, it is read, and each of its records said.
    let r = tables(&tmp.path().join("d.json"));
    assert!(r.stderr.contains("d.json:1:"), "{}", r.stderr);
}

#[test]
fn special_files_and_broken_links_are_reported_and_the_rest_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("export");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("good.jsonl"), one_span_line("g")).unwrap();
    let fifo = dir.join("pipe.jsonl");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    std::os::unix::fs::symlink(dir.join("gone.jsonl"), dir.join("dangling.jsonl")).unwrap();
    std::fs::create_dir(dir.join("loop")).unwrap();
    std::os::unix::fs::symlink(&dir, dir.join("loop/back")).unwrap();

    // The FIFO named: skipped and reported, never waited on.
    let r = tables(&fifo);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{}: a FIFO (named pipe): only regular files are read; skipped",
            fifo.display()
        )),
        "{}",
        r.stderr
    );
    let r = run_on(&["tables", "-f", "csv", "--strict"], &fifo);
    assert_eq!(r.code, Some(2), "{}", r.stderr);

    // The folder: the good file is read; each bad entry is named.
    let r = tables(&dir);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(table_rows(&r, "traces"), 1);
    for needle in [
        format!("{}: a FIFO (named pipe)", fifo.display()),
        format!(
            "{}: a dangling symbolic link; skipped",
            dir.join("dangling.jsonl").display()
        ),
        "a symbolic link loop; skipped".to_string(),
    ] {
        assert!(r.stderr.contains(&needle), "{needle}: {}", r.stderr);
    }
    let r = run_on(&["tables", "-f", "csv", "--strict"], &dir);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    // Ingest too.
    let out = tmp.path().join("ds");
    let r = ingest_with(&dir, &out, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("a FIFO"), "{}", r.stderr);
}

#[test]
fn csv_and_tsv_cells_cannot_run_as_formulas() {
    let f = hostile("formula-cells.jsonl");
    let sql = "SELECT operation_name, attributes['cart.id'] AS cart, -1.5 AS n FROM traces ORDER BY start_time";
    let r = run_on(&["query", "--no-replay", "-f", "csv", "-e", sql], &f);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "operation_name,cart,n");
    assert_eq!(
        lines[1],
        r#""'=HYPERLINK(""http://evil.example"",""x"")","'=HYPERLINK(""http://evil.example"",""x"")",-1.5"#
    );
    assert_eq!(lines[2], "'+1+1,'+1+1,-1.5");
    assert_eq!(lines[3], "'-2+3,'-2+3,-1.5");
    assert_eq!(lines[4], "'@SUM(A1:A2),'@SUM(A1:A2),-1.5");
    assert_eq!(lines[5], "'\tTAB,'\tTAB,-1.5");
    let r = run_on(&["query", "--no-replay", "-f", "tsv", "-e", sql], &f);
    assert!(
        r.stdout.lines().any(|l| l == "'+1+1\t'+1+1\t-1.5"),
        "{}",
        r.stdout
    );
    // --raw writes them as they are.
    let r = run_on(
        &["--raw", "query", "--no-replay", "-f", "csv", "-e", sql],
        &f,
    );
    assert!(
        r.stdout.lines().any(|l| l == "+1+1,+1+1,-1.5"),
        "{}",
        r.stdout
    );
}

#[test]
fn bidirectional_controls_cannot_reorder_the_html_report() {
    let f = hostile("bidi.jsonl");
    let r = run_on(&["report", "-f", "html", "--as-of", "+2h"], &f);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for c in ['\u{202E}', '\u{2066}', '\u{2069}', '\u{200F}'] {
        assert!(!r.stdout.contains(c), "U+{:04X} written raw", c as u32);
    }
    assert!(r.stdout.contains("cart-[U+202E]gnp.exe"), "{}", r.stdout);
}

#[test]
fn repeated_spans_count_once_and_odd_spans_are_noted() {
    let f = hostile("duplicates.jsonl");
    let r = run_on(&["detect", "-f", "ndjson", "--as-of", "+1h"], &f);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let dup = r
        .stdout
        .lines()
        .find(|l| l.contains("\"cart-dup\""))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(dup.contains("\"span_count\":2"), "{dup}");
    for note in [
        "cartscope: note: 2 spans repeat a span read before",
        "cartscope: note: 1 span without a trace or span id",
        "cartscope: note: 1 span ends before it starts",
        "cartscope: note: 2 spans of carts were exported more than once",
    ] {
        assert!(r.stderr.contains(note), "{note}: {}", r.stderr);
    }
    // The report's figures count the cart's spans once too.
    let r = run_on(&["report", "-f", "json", "--as-of", "+1h"], &f);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["summary"]["carts"], 2, "{}", r.stdout);
    // Ingest says how many it saw.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    let r = ingest_with(&f, &out, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("2 spans repeat a span read before"),
        "{}",
        r.stderr
    );
}
