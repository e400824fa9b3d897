//! What the user named with `--data` or `INPUT...`: files, directories (read recursively),
//! globs, and ingested datasets; and what each file holds, decided from its first bytes,
//! never its name.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub use crate::read::remote::Window;

/// The manifest that marks a directory as a dataset written by `cartscope ingest`.
pub const MANIFEST: &str = "_cartscope.json";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// Raw export files, in a stable order: as named, directories sorted by path.
    pub files: Vec<InputFile>,
    /// Directories written by `cartscope ingest`, or their URLs in an object store (ending
    /// in `/`).
    pub datasets: Vec<PathBuf>,
    /// What could not be read as a file: special files (a FIFO, a device, a socket) and
    /// directory entries that fail (a dangling link, a loop, no permission). Reported like
    /// bad records (and fatal under `--strict`); the rest is read.
    pub unreadable: Vec<BadRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// The file's path; `-` for standard input (`STDIN`).
    pub path: PathBuf,
    /// Found by walking a directory or expanding a glob, rather than named: a file that
    /// holds no telemetry is then noted and passed over instead of being an error.
    pub discovered: bool,
    /// Its size when known without looking at the file (an object store listed it).
    pub size: Option<u64>,
}

/// The input that names standard input (a file named `-` is `./-`).
pub const STDIN: &str = "-";

/// Whether `path` names standard input: read once, as it comes, its size unknown until then.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == STDIN
}

impl InputFile {
    pub fn is_stdin(&self) -> bool {
        is_stdin(&self.path)
    }

    /// Whether it is an object in an object store (`s3://...`); its path is then its URL.
    pub fn is_remote(&self) -> bool {
        crate::read::remote::url_in(&self.path).is_some()
    }

    /// Its size in bytes (0 when unknown: standard input, a file that went away).
    pub fn len(&self) -> u64 {
        self.size
            .or_else(|| std::fs::metadata(&self.path).ok().map(|m| m.len()))
            .unwrap_or(0)
    }
}

/// Standard input as an input, if it can be one: a terminal has no export to give.
fn stdin_input() -> Result<InputFile> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        bail!("'-' reads an export from standard input, which is a terminal here: pipe one in (`zcat export.jsonl.gz | cartscope ... --data -`) or give a file");
    }
    Ok(InputFile {
        path: PathBuf::from(STDIN),
        discovered: false,
        size: None,
    })
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') || n.starts_with('_'))
}

/// Resolves the inputs. A path that does not exist, or a glob that matches nothing, is an
/// error that names it.
pub fn resolve(inputs: &[impl AsRef<str>]) -> Result<Inputs> {
    resolve_in(inputs, Window::default())
}

/// As `resolve`, for data of `window` only: an object store's time partitions outside it
/// are not listed (files on disk are all read).
pub fn resolve_in(inputs: &[impl AsRef<str>], window: Window) -> Result<Inputs> {
    let mut out = Inputs::default();
    for input in inputs {
        let input = input.as_ref();
        let path = Path::new(input);
        if input == STDIN {
            if out.files.iter().any(InputFile::is_stdin) {
                bail!("'-' (standard input) is given twice: it can be read only once");
            }
            out.files.push(stdin_input()?);
        } else if crate::read::remote::is_url(input) {
            add_remote(&mut out, input, window)?;
        } else if path.exists() {
            add_path(&mut out, path, false)?;
        } else if is_glob(input) {
            let mut matched = false;
            let paths = glob::glob(input).with_context(|| format!("invalid glob '{input}'"))?;
            for entry in paths {
                let p =
                    entry.with_context(|| format!("cannot read a path matched by '{input}'"))?;
                matched = true;
                add_path(&mut out, &p, true)?;
            }
            if !matched {
                bail!("no file matches '{input}'");
            }
        } else {
            bail!("'{input}' does not exist: give an export file, a directory, a glob or a dataset written by `cartscope ingest`");
        }
    }
    Ok(out)
}

/// An object store URL: one object, or every object below a prefix, a dataset below it
/// read as one (through its manifest).
fn add_remote(out: &mut Inputs, input: &str, window: Window) -> Result<()> {
    let listing = crate::read::remote::list(input, MANIFEST, window)?;
    if listing.pruned > 0 {
        let end =
            |t: Option<crate::time::Timestamp>| t.map_or("…".to_string(), |t| t.to_string());
        eprintln!(
            "cartscope: note: {} time partition{} under '{input}' outside {} to {} passed over unlisted (the period, its previous period and margins for carts that span them)",
            listing.pruned,
            if listing.pruned == 1 { "" } else { "s" },
            end(window.from),
            end(window.to)
        );
    }
    out.datasets
        .extend(listing.datasets.iter().map(PathBuf::from));
    if listing.objects.is_empty() && listing.datasets.is_empty() {
        bail!("no object found at '{input}': give a prefix holding an export, or one object");
    }
    out.files
        .extend(listing.objects.into_iter().map(|o| InputFile {
            path: PathBuf::from(o.url),
            discovered: !listing.single,
            size: Some(o.size),
        }));
    Ok(())
}

/// What a path that is neither a regular file nor a directory is, for the report.
fn special_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

fn unreadable(path: &Path, reason: String) -> BadRecord {
    BadRecord {
        file: path.to_path_buf(),
        at: Location::File,
        reason,
    }
}

fn add_path(out: &mut Inputs, path: &Path, discovered: bool) -> Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    if !meta.is_dir() && !meta.is_file() {
        // Reading a FIFO would wait for a writer forever; a device never ends.
        out.unreadable.push(unreadable(
            path,
            format!(
                "{}: only regular files are read; skipped",
                special_kind(meta.file_type())
            ),
        ));
        return Ok(());
    }
    if meta.is_dir() {
        if path.join(MANIFEST).is_file() {
            out.datasets.push(path.to_path_buf());
            return Ok(());
        }
        let mut found = Vec::new();
        let walker = walkdir::WalkDir::new(path)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !hidden(e.path()));
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                // A dangling link, a link loop, a folder that cannot be listed: reported, and
                // the rest of the tree is read.
                Err(e) => {
                    let at = e.path().unwrap_or(path).to_path_buf();
                    let reason = if e.loop_ancestor().is_some() {
                        "a symbolic link loop; skipped".to_string()
                    } else {
                        match e.io_error() {
                            Some(io) if io.kind() == io::ErrorKind::NotFound => {
                                "a dangling symbolic link; skipped".to_string()
                            }
                            Some(io) => format!("cannot be read ({io}); skipped"),
                            None => format!("{e}; skipped"),
                        }
                    };
                    out.unreadable.push(unreadable(&at, reason));
                    continue;
                }
            };
            if entry.file_type().is_dir()
                && entry.depth() > 0
                && entry.path().join(MANIFEST).is_file()
            {
                out.datasets.push(entry.path().to_path_buf());
                continue;
            }
            // Documentation beside the data (a README) is not telemetry and not worth a note.
            let is_doc = entry.path().extension().is_some_and(|e| e == "md");
            let t = entry.file_type();
            if !t.is_file() && !t.is_dir() && !t.is_symlink() {
                out.unreadable.push(unreadable(
                    entry.path(),
                    format!("{}: only regular files are read; skipped", special_kind(t)),
                ));
                continue;
            }
            if entry.file_type().is_file()
                && !is_doc
                && !inside_dataset(entry.path(), &out.datasets)
            {
                found.push(entry.into_path());
            }
        }
        out.files.extend(found.into_iter().map(|path| InputFile {
            path,
            discovered: true,
            size: None,
        }));
    } else {
        out.files.push(InputFile {
            path: path.to_path_buf(),
            discovered,
            size: None,
        });
    }
    Ok(())
}

fn inside_dataset(p: &Path, datasets: &[PathBuf]) -> bool {
    datasets.iter().any(|d| p.starts_with(d))
}

/// The outer layer of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// What a (decompressed) stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// OTLP/JSON: one document per line, or pretty-printed documents one after another.
    Json,
    /// The file exporter's framing: each message preceded by a 4-byte big-endian length.
    Framed,
    /// One bare protobuf message (an OTLP/HTTP request body).
    Protobuf,
    Parquet,
    Empty,
    Unknown,
}

impl fmt::Display for Content {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Content::Json => "OTLP/JSON",
            Content::Framed => "framed OTLP (protobuf or JSON)",
            Content::Protobuf => "OTLP protobuf",
            Content::Parquet => "Parquet",
            Content::Empty => "empty",
            Content::Unknown => "unknown",
        })
    }
}

pub fn sniff_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

pub fn sniff_content(head: &[u8]) -> Content {
    if head.starts_with(b"PAR1") {
        return Content::Parquet;
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    match text.iter().find(|b| !b.is_ascii_whitespace()) {
        None if head.is_empty() => return Content::Empty,
        Some(b'{' | b'[') => return Content::Json,
        _ => {}
    }
    if text.iter().all(|b| b.is_ascii_whitespace()) {
        return Content::Empty;
    }
    match head[0] {
        // A length prefix under 16 MiB starts with a zero byte.
        0x00 if head.len() >= 5 => Content::Framed,
        // A bare TracesData/MetricsData starts with field 1, wire type 2.
        0x0a => Content::Protobuf,
        // A length prefix of 16 MiB up to the 1 GiB a frame may have: framed when a frame's
        // payload follows it. (0x0a above stays a bare message, the common case: a first
        // frame of 160-176 MiB cannot be told from one by its first bytes.)
        0x01..=0x40 if head.len() >= 8 && starts_like_a_frame(&head[4..]) => Content::Framed,
        _ => Content::Unknown,
    }
}

/// A frame's payload: a protobuf message (field 1, wire type 2), a JSON document or a zstd
/// frame.
fn starts_like_a_frame(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(0x0a | b'{')) || sniff_compression(payload) == Compression::Zstd
}

/// Counts the compressed bytes read, for the progress bar.
pub struct CountingReader<R> {
    pub inner: R,
    pub counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// When given, every byte read (the file as it is on disk) is hashed as it passes.
    pub hasher: Option<FileHasher>,
}

/// xxh3-128 of a file's bytes, computed while the file is read (so ingest needs no second
/// pass over the file to know its content hash); `finish_hash` hashes what the reading left.
pub type FileHasher = std::sync::Arc<std::sync::Mutex<HashState>>;

#[derive(Default)]
pub struct HashState {
    xxh: xxhash_rust::xxh3::Xxh3,
    /// Bytes hashed so far: the file's first `len` bytes.
    len: u64,
}

impl HashState {
    pub fn update(&mut self, bytes: &[u8]) {
        self.xxh.update(bytes);
        self.len += bytes.len() as u64;
    }
}

/// The hash of the whole file: the bytes after those already hashed (a reader that stopped
/// early, a Parquet file read by its own reader) are read and hashed here. The same value as
/// `dataset::file_hash`.
pub fn finish_hash(path: &Path, h: &FileHasher) -> Result<String> {
    let mut st = h.lock().unwrap_or_else(|e| e.into_inner());
    // Standard input goes on where the reading stopped.
    let mut f: Box<dyn Read> = if is_stdin(path) {
        Box::new(io::stdin())
    } else if let Some(url) = crate::read::remote::url_in(path) {
        // An object is read again from its start, the bytes already hashed passed over.
        let mut r = crate::read::remote::open(url)?;
        io::copy(&mut (&mut r).take(st.len), &mut io::sink())
            .with_context(|| format!("cannot read '{url}'"))?;
        r
    } else {
        let mut f = std::fs::File::open(path)
            .with_context(|| format!("cannot open '{}'", path.display()))?;
        io::Seek::seek(&mut f, io::SeekFrom::Start(st.len))
            .with_context(|| format!("cannot read '{}'", path.display()))?;
        Box::new(f)
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read '{}'", path.display()))?;
        if n == 0 {
            break;
        }
        st.update(&buf[..n]);
    }
    Ok(format!("{:032x}", st.xxh.digest128()))
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &self.hasher {
            h.lock()
                .unwrap_or_else(|e| e.into_inner())
                .update(&buf[..n]);
        }
        self.counter
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Bytes read from a file at a time where the reader itself reads in small pieces (a
/// decompressor, the framed protobuf reader).
pub const READ_BUFFER: usize = 256 << 10;

/// Bytes any compressed file may decompress to before its expansion ratio is checked.
pub const EXPANSION_FREE: u64 = 64 << 20;

/// Stops a decompressing stream that expands more than `max_ratio` times the compressed
/// bytes read (past `EXPANSION_FREE`): a decompression bomb costs an error, not the disk
/// or the memory.
struct ExpansionGuard<R> {
    inner: R,
    compressed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    start: u64,
    out: u64,
    max_ratio: u64,
}

impl<R: Read> Read for ExpansionGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out = self.out.saturating_add(n as u64);
        if self.out > EXPANSION_FREE {
            let read = self
                .compressed
                .load(std::sync::atomic::Ordering::Relaxed)
                .saturating_sub(self.start)
                .max(1);
            if self.out > read.saturating_mul(self.max_ratio) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "it expands more than {} times ({} bytes from {read} compressed): a decompression bomb or a corrupt stream (--max-expansion raises the limit)",
                        self.max_ratio, self.out
                    ),
                ));
            }
        }
        Ok(n)
    }
}

/// Opens a file, undoes its compression, and tells what the stream holds. The returned
/// reader yields the whole decompressed stream, including the bytes looked at; it fails once
/// the stream expands more than `max_expansion` times.
pub fn open(
    path: &Path,
    counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
    hasher: Option<FileHasher>,
    max_expansion: u64,
) -> Result<(Compression, Content, Box<dyn Read + Send>)> {
    // A local file is read unbuffered: its readers ask for large pieces (up to a MiB), which
    // a file gives straight into their buffer, where a buffer here copied every byte once
    // more (that copy was 4% of a raw 100k-cart detect's samples). Standard input and object
    // stores give what they have, in pieces: those are gathered here.
    let (file, local): (Box<dyn Read + Send>, bool) = if is_stdin(path) {
        (Box::new(std::io::stdin()), false)
    } else if let Some(url) = crate::read::remote::url_in(path) {
        (crate::read::remote::open(url)?, false)
    } else {
        let f = std::fs::File::open(path)
            .with_context(|| format!("cannot open '{}'", path.display()))?;
        (Box::new(f), true)
    };
    let start = counter.load(std::sync::atomic::Ordering::Relaxed);
    let counting = CountingReader {
        inner: file,
        counter: counter.clone(),
        hasher,
    };
    let raw: Box<dyn Read + Send> = if local {
        Box::new(counting)
    } else {
        Box::new(io::BufReader::with_capacity(READ_BUFFER, counting))
    };
    let (head, raw) = peek(raw, 8).with_context(|| format!("cannot read '{}'", path.display()))?;
    let compression = sniff_compression(&head);
    let guard = |inner: Box<dyn Read + Send>| -> Box<dyn Read + Send> {
        Box::new(ExpansionGuard {
            inner,
            compressed: counter.clone(),
            start,
            out: 0,
            max_ratio: max_expansion,
        })
    };
    let stream: Box<dyn Read + Send> = match compression {
        Compression::None => raw,
        Compression::Gzip => guard(Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(READ_BUFFER, raw),
        ))),
        Compression::Zstd => guard(Box::new(
            zstd::stream::read::Decoder::new(raw)
                .with_context(|| format!("cannot start zstd decoding of '{}'", path.display()))?,
        )),
    };
    let (head, stream) = peek(stream, 4096)
        .with_context(|| format!("cannot decompress '{}' ({compression:?})", path.display()))?;
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&head);
    if head.len() == 4096 && text.iter().all(|b| b.is_ascii_whitespace()) {
        // Whitespace as far as the head goes: look past it, however long it is.
        let (content, stream) = past_whitespace(stream)
            .with_context(|| format!("cannot decompress '{}' ({compression:?})", path.display()))?;
        return Ok((compression, content, stream));
    }
    Ok((compression, sniff_content(&head), stream))
}

/// Reads past leading whitespace (and a byte-order mark) of any length, in constant memory,
/// and tells what follows: JSON (handed on after as many newlines as were passed, so line
/// numbers stay right), nothing (Empty), or something else (Unknown: no other content may
/// start with whitespace).
fn past_whitespace(mut r: Box<dyn Read + Send>) -> io::Result<(Content, Box<dyn Read + Send>)> {
    let mut newlines = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = true;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok((Content::Empty, Box::new(io::empty()))),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut chunk = &buf[..n];
        if first {
            chunk = chunk.strip_prefix(b"\xef\xbb\xbf").unwrap_or(chunk);
            first = false;
        }
        match chunk.iter().position(|b| !b.is_ascii_whitespace()) {
            None => newlines += memchr::memchr_iter(b'\n', chunk).count() as u64,
            Some(p) => {
                newlines += memchr::memchr_iter(b'\n', &chunk[..p]).count() as u64;
                let rest = chunk[p..].to_vec();
                let content = if matches!(rest[0], b'{' | b'[') {
                    Content::Json
                } else {
                    Content::Unknown
                };
                let replay = io::repeat(b'\n')
                    .take(newlines)
                    .chain(io::Cursor::new(rest))
                    .chain(r);
                return Ok((content, Box::new(replay)));
            }
        }
    }
}

/// Reads up to `n` bytes and gives them back together with a reader that replays them.
fn peek(mut r: Box<dyn Read + Send>, n: usize) -> io::Result<(Vec<u8>, Box<dyn Read + Send>)> {
    let mut head = Vec::with_capacity(n);
    (&mut r).take(n as u64).read_to_end(&mut head)?;
    let replay = io::Cursor::new(head.clone()).chain(r);
    Ok((head, Box::new(replay)))
}

/// The room `read_more` first offers a reader; each time the reader fills it, twice as much.
const FIRST_STEP: usize = 64 << 10;

/// Fills `buf` from `r` until it holds `want` more bytes or the stream ends; returns how many
/// bytes were added. On an error, what was read before it stays in `buf`.
///
/// The room a reader reads into is cleared first (`read` takes initialised bytes) and grown a
/// step at a time, so a small file costs at most one step (64 KiB) of clearing, and a large
/// one about what it reads. `read_to_end` of a `take(want)` did this clearing itself, and how
/// much it cleared is std's choice: the nightly std the fuzzing build uses cleared the whole
/// room reserved for a chunk (4 or 8 MiB) for a file of a few kB, a second per input there,
/// where every byte cleared is a traced comparison.
pub fn read_more(r: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
    let start = buf.len();
    let target = start + want;
    buf.reserve(want);
    let mut end = start;
    let mut step = FIRST_STEP;
    let result = loop {
        if end == target {
            break Ok(());
        }
        if end == buf.len() {
            let grow = step.min(target - end);
            buf.resize(end + grow, 0);
            step = step.saturating_mul(2);
        }
        match r.read(&mut buf[end..]) {
            Ok(0) => break Ok(()),
            Ok(n) => end += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    buf.truncate(end);
    result.map(|()| end - start)
}

/// Whether `head`, the start of a JSON file, names one of OTLP's top-level fields
/// (`resourceSpans`, `resourceMetrics`, `resourceLogs`, or their proto names): JSON that names
/// none in its first chunk is some other JSON (a truth file, a configuration).
pub fn names_otlp(head: &[u8]) -> bool {
    memchr::memmem::find_iter(head, b"\"resource").any(|at| {
        let rest = &head[at + 9..];
        [
            &b"Spans\""[..],
            b"Metrics\"",
            b"Logs\"",
            b"_spans\"",
            b"_metrics\"",
            b"_logs\"",
        ]
        .iter()
        .any(|k| rest.starts_with(k))
    })
}

/// Tracks where top-level JSON values end in a byte stream, across reads. Used for
/// pretty-printed and concatenated documents, where lines are no boundary.
#[derive(Debug, Default, Clone)]
pub struct DocScanner {
    depth: u32,
    in_str: bool,
    escape: bool,
    /// Outside any value, a stray non-JSON byte: the garbage runs to the end of the line.
    garbage: bool,
    pos: usize,
}

impl DocScanner {
    /// Scans `buf` from where the last call stopped; returns the end of the last complete
    /// top-level value (or garbage line) in `buf`, if any.
    pub fn scan(&mut self, buf: &[u8]) -> Option<usize> {
        let mut last = None;
        self.scan_with(buf, |e| last = Some(e));
        last
    }

    /// Like `scan`, calling `on_end` with the end of every value completed in `buf`.
    pub fn scan_with(&mut self, buf: &[u8], mut on_end: impl FnMut(usize)) {
        let mut i = self.pos;
        while i < buf.len() {
            let c = buf[i];
            if self.garbage {
                if c == b'\n' {
                    self.garbage = false;
                    on_end(i + 1);
                }
            } else if self.in_str {
                if self.escape {
                    self.escape = false;
                } else if c == b'\\' {
                    self.escape = true;
                } else if c == b'"' {
                    self.in_str = false;
                }
            } else {
                match c {
                    b'"' => self.in_str = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        if self.depth == 0 {
                            self.garbage = true;
                        } else {
                            self.depth -= 1;
                            if self.depth == 0 {
                                on_end(i + 1);
                            }
                        }
                    }
                    c if self.depth == 0 && !c.is_ascii_whitespace() => self.garbage = true,
                    _ => {}
                }
            }
            i += 1;
        }
        self.pos = i;
    }

    /// The buffer lost its first `n` bytes (they were handed on).
    pub fn consumed(&mut self, n: usize) {
        self.pos -= n;
    }

    /// Whether the scanner is between values.
    pub fn at_rest(&self) -> bool {
        self.depth == 0 && !self.in_str && !self.garbage
    }
}

/// Splits a chunk of complete documents into (start, end) byte ranges; a trailing
/// unfinished document is the last range.
pub fn split_documents(chunk: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    DocScanner::default().scan_with(chunk, |end| {
        out.push((start, end));
        start = end;
    });
    if chunk[start..].iter().any(|b| !b.is_ascii_whitespace()) {
        out.push((start, chunk.len()));
    }
    out
}

/// Whether a JSON stream is one document per line. Pretty-printed documents have a first
/// line that does not close and an indented (or closing) second line.
pub fn looks_like_json_lines(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let head = &head[start..];
    let Some(nl) = memchr::memchr(b'\n', head) else {
        return true;
    };
    let mut sc = DocScanner::default();
    if sc.scan(&head[..nl]).is_some() && sc.at_rest() {
        return true;
    }
    let second = &head[nl + 1..];
    !matches!(
        second.first(),
        Some(b' ' | b'\t' | b'}' | b']' | b'"' | b'\r' | b'\n')
    )
}

/// A line or frame inside a file, or the file as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Location {
    Line(u64),
    Frame(u64),
    Row(u64),
    File,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Frame(n) => write!(f, "frame {n}"),
            Location::Row(n) => write!(f, "row {n}"),
            Location::File => f.write_str("file"),
        }
    }
}

/// A record that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub file: PathBuf,
    pub at: Location,
    pub reason: String,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.at {
            Location::Line(n) => write!(f, "{}:{n}: {}", self.file.display(), self.reason),
            Location::File => write!(f, "{}: {}", self.file.display(), self.reason),
            at => write!(f, "{}: {at}: {}", self.file.display(), self.reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives at most `piece` bytes a read, and remembers the largest room it was offered
    /// (std clears the room it offers a reader like this one).
    struct Pieces {
        data: io::Cursor<Vec<u8>>,
        piece: usize,
        offered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.offered
                .fetch_max(buf.len(), std::sync::atomic::Ordering::Relaxed);
            let n = buf.len().min(self.piece);
            self.data.read(&mut buf[..n])
        }
    }

    fn pieces(
        len: usize,
        piece: usize,
    ) -> (Pieces, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let offered = std::sync::Arc::default();
        let data = (0..len).map(|i| (i % 251) as u8).collect();
        let r = Pieces {
            data: io::Cursor::new(data),
            piece,
            offered: std::sync::Arc::clone(&offered),
        };
        (r, offered)
    }

    #[test]
    fn read_more_reads_exactly_what_is_asked_or_up_to_the_end() {
        let want = 1 << 20;
        for len in [
            0,
            1,
            5_000,
            FIRST_STEP,
            FIRST_STEP + 1,
            want - 1,
            want,
            want + 1,
            3 * want + 7,
        ] {
            for piece in [1_000, 1 << 20] {
                let (mut r, _) = pieces(len, piece);
                let mut buf = b"kept".to_vec();
                let mut got = Vec::new();
                loop {
                    let n = read_more(&mut r, &mut buf, want).unwrap();
                    assert_eq!(n, want.min(len - got.len()), "len {len} piece {piece}");
                    got.extend_from_slice(&buf[4..]);
                    buf.truncate(4);
                    if n < want {
                        break;
                    }
                }
                let expected: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                assert_eq!(got, expected, "len {len} piece {piece}");
                assert_eq!(&buf[..], b"kept", "what the buffer held stays");
            }
        }
    }

    /// Interrupted reads are tried again; an error ends the read with what came before it
    /// kept in the buffer, as `read_to_end` kept it.
    #[test]
    fn read_more_retries_an_interruption_and_keeps_what_came_before_an_error() {
        struct Flaky {
            calls: usize,
        }
        impl Read for Flaky {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.calls += 1;
                match self.calls {
                    1 | 3 => Err(io::ErrorKind::Interrupted.into()),
                    2 | 4 => {
                        let n = buf.len().min(100_000);
                        buf[..n].fill(b'x');
                        Ok(n)
                    }
                    _ => Err(io::Error::other("the disk went away")),
                }
            }
        }
        let mut buf = b"kept".to_vec();
        let err = read_more(&mut Flaky { calls: 0 }, &mut buf, 1 << 20).unwrap_err();
        assert_eq!(err.to_string(), "the disk went away");
        // 64 KiB offered first, then up to 100,000 bytes of the next step's room.
        assert_eq!(buf.len(), 4 + FIRST_STEP + 100_000);
        assert_eq!(&buf[..4], b"kept");
        assert!(buf[4..].iter().all(|b| *b == b'x'));
        // Nothing asked, nothing read.
        let mut buf = Vec::new();
        assert_eq!(read_more(&mut Flaky { calls: 4 }, &mut buf, 0).unwrap(), 0);
        assert!(buf.is_empty());
    }

    /// The bound that does not depend on std: room offered (and cleared) a step at a time.
    /// The stable std `cargo test` uses kept the old `read_to_end` under it too (its first
    /// reads are 8 KiB); the nightly std of the fuzzing build did not (fuzz/run.sh measures
    /// that build).
    #[test]
    fn read_more_of_a_small_stream_offers_its_reader_a_step_not_the_whole_chunk() {
        // Behind `peek`'s replayed head, as every file is read.
        let (r, offered) = pieces(5_000, usize::MAX);
        let (_, mut stream) = peek(Box::new(r), 8).unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_more(&mut stream, &mut buf, 4 << 20).unwrap(), 5_000);
        let most = offered.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            most <= FIRST_STEP,
            "offered {most} bytes of room for a 5 kB stream"
        );
    }

    #[test]
    fn scanner_finds_concatenated_pretty_documents() {
        let text = b"{\n  \"a\": \"}\"\n}\n{\n \"b\": [1, {\"c\": 2}]\n}\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(&text[docs[0].0..docs[0].1], b"{\n  \"a\": \"}\"\n}");
        assert!(std::str::from_utf8(&text[docs[1].0..docs[1].1])
            .unwrap()
            .trim()
            .starts_with("{\n \"b\""));
    }

    #[test]
    fn scanner_resumes_across_reads() {
        let mut sc = DocScanner::default();
        let mut buf = b"{\"a\": \"x\\\"".to_vec();
        assert_eq!(sc.scan(&buf), None);
        buf.extend_from_slice(b"y\"}  {\"b\"");
        let end = sc.scan(&buf).unwrap();
        assert_eq!(&buf[..end], b"{\"a\": \"x\\\"y\"}");
    }

    #[test]
    fn json_lines_or_pretty() {
        assert!(looks_like_json_lines(b"{\"a\":1}\n{\"a\":2}\n"));
        assert!(!looks_like_json_lines(b"{\n  \"a\": 1\n}\n"));
        // A malformed first line of a JSON lines file is still JSON lines.
        assert!(looks_like_json_lines(b"{\"a\":\n{\"a\":2}\n"));
    }

    #[test]
    fn names_otlp_finds_the_top_level_fields_only() {
        for yes in [
            &b"{\"resourceSpans\":[]}"[..],
            b"{\"x\":1,\n\"resource_logs\": []}",
            b"{\"resourceMetrics\" :[",
        ] {
            assert!(names_otlp(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"{\"version\":1,\"carts\":[]}"[..],
            b"{\"resource\":{}}",
            b"{\"resourceSpansX\":[]}",
            b"\"resource",
            b"",
        ] {
            assert!(!names_otlp(no), "{}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn sniffs_content() {
        assert_eq!(sniff_content(b"  {\"resourceSpans\""), Content::Json);
        assert_eq!(sniff_content(b"PAR1...."), Content::Parquet);
        assert_eq!(sniff_content(b"\x00\x00\x01\x00\x0a"), Content::Framed);
        // First frames of 16 MiB and more: protobuf, JSON and zstd payloads.
        assert_eq!(
            sniff_content(b"\x01\x10\x00\x00\x0a\x80\x80\x08"),
            Content::Framed
        );
        assert_eq!(sniff_content(b"\x01\x10\x00\x00{\"resou"), Content::Framed);
        assert_eq!(
            sniff_content(b"\x3f\x00\x00\x00\x28\xb5\x2f\xfd"),
            Content::Framed
        );
        // Beyond 1 GiB, or followed by something else: not framing.
        assert_eq!(
            sniff_content(b"\x41\x00\x00\x00\x0a\x00\x00\x00"),
            Content::Unknown
        );
        assert_eq!(sniff_content(b"\x01\x10\x00\x00hello"), Content::Unknown);
        assert_eq!(sniff_content(b" \t\r\n\n\n\n\n"), Content::Empty);
        assert_eq!(sniff_content(b"\x0a\x10"), Content::Protobuf);
        assert_eq!(sniff_content(b""), Content::Empty);
        assert_eq!(sniff_content(b"hello"), Content::Unknown);
        assert_eq!(sniff_compression(&[0x1f, 0x8b, 8]), Compression::Gzip);
    }
}
