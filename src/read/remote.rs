//! Inputs in object stores: `s3://bucket/prefix/`, `gs://bucket/prefix/`,
//! `az://container/prefix/` (also `abfs://`, `azure://`), and `http(s)://host/path` for one
//! file, through the `object_store` crate DataFusion itself reads Parquet with.
//!
//! Credentials, regions and endpoints come from the environment as the cloud SDKs read them
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
//! `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...: `object_store`'s
//! `from_env`). An endpoint given as `http://...` (MinIO, a local S3 server) is allowed
//! without also setting `AWS_ALLOW_HTTP`.
//!
//! A prefix is listed like a directory is walked: every object below it, in name order,
//! names starting with `.` or `_` passed over. An object is read as a stream of chunks (a
//! few megabytes in flight at most), never downloaded whole first. The store's requests run
//! on a runtime of their own, so the loader's threads (plain threads, not async) read objects
//! as they read files.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::time::Timestamp;

/// The schemes read from an object store.
const SCHEMES: [&str; 7] = ["s3", "s3a", "gs", "az", "abfs", "azure", "http"];

/// Whether an input names an object store (`s3://...`, `https://...`) rather than a path.
pub fn is_url(input: &str) -> bool {
    match input.split_once("://") {
        Some((scheme, _)) => {
            let scheme = scheme.to_ascii_lowercase();
            SCHEMES.contains(&scheme.as_str()) || scheme == "https"
        }
        None => false,
    }
}

/// An error of the store as one message. Its `Display` already tells every cause (a
/// request's URL, the server's reply); as a chain of sources it would be told again for
/// each.
fn flat(e: object_store::Error) -> anyhow::Error {
    anyhow!("{e}")
}

/// The URL a path holds, when it names an object store rather than a file (inputs and
/// datasets found in a store are kept as paths of their URLs).
pub fn url_in(path: &std::path::Path) -> Option<&str> {
    path.to_str().filter(|p| is_url(p))
}

/// The runtime every store request runs on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cartscope-store")
            .enable_all()
            .build()
            .expect("a runtime for object store requests")
    })
}

/// Runs `f` to completion on the store runtime, from any thread (async or not).
fn block<F>(f: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    runtime().spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().expect("the store runtime dropped a request")
}

/// A store and where in it an input points.
#[derive(Debug, Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    /// `scheme://authority`: the store's own URL, as DataFusion registers it.
    pub base: Url,
    /// The object or prefix inside the store.
    pub path: ObjectPath,
}

impl Location {
    /// The URL of an object of this store.
    pub fn url_of(&self, p: &ObjectPath) -> String {
        let base = self.base.as_str().trim_end_matches('/');
        format!("{base}/{p}")
    }
}

/// The store an URL points into: built from the environment once per bucket or host, then
/// shared by every object of it (one client, one pool of connections).
pub fn locate(input: &str) -> Result<Location> {
    let url = Url::parse(input).with_context(|| format!("'{input}' is not a valid URL"))?;
    let scheme = url.scheme().to_ascii_lowercase();
    url.host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("'{input}' names no bucket or host"))?;
    let base = Url::parse(&format!("{scheme}://{}", url.authority()))
        .with_context(|| format!("'{input}' is not a valid URL"))?;
    let path = ObjectPath::from_url_path(url.path())
        .with_context(|| format!("'{input}': not a valid object path"))?;
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let stores = STORES.get_or_init(Default::default);
    let known = stores
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(base.as_str())
        .cloned();
    let store = match known {
        Some(s) => s,
        None => {
            let s = build(&scheme, input, &url)?;
            stores
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(base.as_str().to_string(), s.clone());
            s
        }
    };
    Ok(Location { store, base, path })
}

/// A store for `input`'s bucket or host, from the environment.
fn build(scheme: &str, input: &str, url: &Url) -> Result<Arc<dyn ObjectStore>> {
    Ok(match scheme {
        "s3" | "s3a" => {
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(input);
            let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
                .iter()
                .find_map(|k| std::env::var(k).ok());
            if endpoint.is_some_and(|e| e.starts_with("http://")) {
                b = b.with_allow_http(true);
            }
            Arc::new(
                b.build()
                    .map_err(flat)
                    .with_context(|| format!("cannot reach '{input}'"))?,
            )
        }
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(input)
                .build()
                .map_err(flat)
                .with_context(|| format!("cannot reach '{input}'"))?,
        ),
        "az" | "abfs" | "azure" => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(input)
                .build()
                .map_err(flat)
                .with_context(|| format!("cannot reach '{input}'"))?,
        ),
        "http" | "https" => {
            let origin = url.origin().ascii_serialization();
            Arc::new(
                object_store::http::HttpBuilder::new()
                    .with_url(origin)
                    .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
                    .build()
                    .map_err(flat)
                    .with_context(|| format!("cannot reach '{input}'"))?,
            )
        }
        other => bail!(
            "'{input}': the scheme {other}:// is not read; give s3://, gs://, az:// or http(s)://"
        ),
    })
}

/// One object found under a prefix: its URL and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub url: String,
    pub size: u64,
}

/// What an URL names: one object, or the objects below a prefix (sorted by name, hidden
/// names passed over), and the datasets below it.
pub struct Listing {
    /// The objects, those of the datasets left out.
    pub objects: Vec<Object>,
    /// The URL named one object rather than a prefix.
    pub single: bool,
    /// The prefixes that hold a dataset written by `cartscope ingest` (its manifest), as
    /// URLs ending in `/`, sorted.
    pub datasets: Vec<String>,
    /// Time partitions passed over unlisted, being outside the window.
    pub pruned: usize,
}

/// The span of time the data is read for, when it is known before the data is read (a
/// report's period, with margins): the prefixes of a time-partitioned layout
/// (`year=2026/month=11/day=21/hour=14/minute=05/`, as the Collector's S3 exporter writes
/// them) wholly outside it are never listed. Unbounded ends read everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl Window {
    pub fn is_bounded(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }

    /// Whether the span [start, end) has any instant in the window.
    fn meets(&self, (start, end): (i64, i64)) -> bool {
        self.from.is_none_or(|f| end > f.ns()) && self.to.is_none_or(|t| start <= t.ns())
    }

    /// Whether the span [start, end) lies wholly in the window.
    fn holds(&self, (start, end): (i64, i64)) -> bool {
        self.from.is_none_or(|f| start >= f.ns()) && self.to.is_none_or(|t| end <= t.ns() + 1)
    }
}

/// The time partition a prefix names, as [start, end) in nanoseconds: from its
/// `year=`/`month=`/`day=`/`hour=`/`minute=` parts (any depth, the coarser ones present),
/// the finest one giving its length. `None` when it names none, or names them in a way
/// not understood (then it is listed, never pruned).
fn partition_span(path: &ObjectPath) -> Option<(i64, i64)> {
    const KEYS: [&str; 5] = ["year", "month", "day", "hour", "minute"];
    let mut fields: [Option<u32>; 5] = [None; 5];
    for part in path.parts() {
        let Some((k, v)) = part.as_ref().split_once('=') else {
            continue;
        };
        if let Some(i) = KEYS.iter().position(|key| k.eq_ignore_ascii_case(key)) {
            fields[i] = Some(v.parse().ok()?);
        }
    }
    // The fields present: a run from the year down, no gap.
    let depth = fields.iter().take_while(|f| f.is_some()).count();
    if depth == 0 || fields[depth..].iter().any(Option::is_some) {
        return None;
    }
    let at = |f: [Option<u32>; 5]| -> Option<i64> {
        let date = chrono::NaiveDate::from_ymd_opt(
            i32::try_from(f[0]?).ok()?,
            f[1].unwrap_or(1),
            f[2].unwrap_or(1),
        )?;
        let t = date.and_hms_opt(f[3].unwrap_or(0), f[4].unwrap_or(0), 0)?;
        t.and_utc().timestamp_nanos_opt()
    };
    let start = at(fields)?;
    let end = match depth {
        1 => at([fields[0].map(|y| y + 1), None, None, None, None])?,
        2 => {
            let (y, m) = (fields[0]?, fields[1]?);
            let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            at([Some(y), Some(m), None, None, None])?
        }
        3 => start + 86_400 * 1_000_000_000,
        4 => start + 3_600 * 1_000_000_000,
        _ => start + 60 * 1_000_000_000,
    };
    Some((start, end))
}

/// The objects below `loc`'s prefix that may hold data of `window`: the prefix is listed a
/// level at a time, and a time partition outside the window is passed over unlisted (one
/// wholly inside is listed at once). Returns them and how many partitions were passed over.
fn list_window(
    loc: &Location,
    input: &str,
    window: Window,
) -> Result<(Vec<object_store::ObjectMeta>, usize)> {
    let (store, root) = (loc.store.clone(), loc.path.clone());
    block(async move {
        let (mut found, mut pruned) = (Vec::new(), 0);
        let mut todo = vec![root];
        while let Some(dir) = todo.pop() {
            let dir = (!dir.as_ref().is_empty()).then_some(dir);
            let level = store.list_with_delimiter(dir.as_ref()).await?;
            found.extend(level.objects);
            for sub in level.common_prefixes {
                match partition_span(&sub) {
                    Some(span) if !window.meets(span) => pruned += 1,
                    Some(span) if window.holds(span) => {
                        let all = store.list(Some(&sub)).collect::<Vec<_>>().await;
                        found.extend(all.into_iter().collect::<Result<Vec<_>, _>>()?);
                    }
                    _ => todo.push(sub),
                }
            }
        }
        Ok::<_, object_store::Error>((found, pruned))
    })
    .map_err(flat)
    .with_context(|| format!("cannot list '{input}'"))
}

/// Whether a part of an object's name hides it (as a directory walk does).
fn hidden(part: &str) -> bool {
    part.starts_with('.') || part.starts_with('_')
}

/// Lists what `input` names. An http(s) URL is one file, or the folder of a dataset (its
/// manifest found there): plain HTTP servers cannot be listed.
/// `manifest` is the name of the file that marks a dataset; time partitions outside `window`
/// are not listed.
pub fn list(input: &str, manifest: &str, window: Window) -> Result<Listing> {
    let loc = locate(input)?;
    let scheme = loc.base.scheme().to_string();
    if scheme == "http" || scheme == "https" {
        // A dataset's folder served over HTTP: its manifest is there to be read (a plain
        // server cannot list the folder, and need not: the manifest names every part).
        let folder = format!("{}/", input.trim_end_matches('/'));
        let store = loc.store.clone();
        let manifest_at = locate(&format!("{folder}{manifest}"))?.path;
        if block(async move { store.head(&manifest_at).await }).is_ok() {
            return Ok(Listing {
                objects: Vec::new(),
                single: false,
                datasets: vec![folder],
                pruned: 0,
            });
        }
        let store = loc.store.clone();
        let path = loc.path.clone();
        let meta = block(async move { store.head(&path).await })
            .map_err(flat)
            .with_context(|| format!("cannot read '{input}'"))?;
        return Ok(Listing {
            objects: vec![Object {
                url: input.to_string(),
                size: meta.size,
            }],
            single: true,
            datasets: Vec::new(),
            pruned: 0,
        });
    }
    // The URL may name one object: a prefix's listing would not find it as itself.
    if !input.ends_with('/') && !loc.path.as_ref().is_empty() {
        let (store, path) = (loc.store.clone(), loc.path.clone());
        if let Ok(meta) = block(async move { store.head(&path).await }) {
            return Ok(Listing {
                objects: vec![Object {
                    url: loc.url_of(&meta.location),
                    size: meta.size,
                }],
                single: true,
                datasets: Vec::new(),
                pruned: 0,
            });
        }
    }
    let (found, pruned) = if window.is_bounded() {
        list_window(&loc, input, window)?
    } else {
        (list_all(&loc, input)?, 0)
    };
    let depth = loc.path.parts().count();
    // A dataset is read through its manifest, never object by object (as a folder holding
    // one is on disk).
    let mut datasets: Vec<String> = found
        .iter()
        .filter(|m| m.location.filename() == Some(manifest))
        .map(|m| {
            let url = loc.url_of(&m.location);
            url.trim_end_matches(manifest).to_string()
        })
        .collect();
    datasets.sort();
    let mut objects: Vec<Object> = found
        .into_iter()
        .filter(|m| !m.location.parts().skip(depth).any(|p| hidden(p.as_ref())))
        .filter(|m| {
            let url = loc.url_of(&m.location);
            !datasets.iter().any(|d| url.starts_with(d.as_str()))
        })
        .filter(|m| !m.location.as_ref().ends_with(".md"))
        .map(|m| Object {
            url: loc.url_of(&m.location),
            size: m.size,
        })
        .collect();
    objects.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(Listing {
        objects,
        single: false,
        datasets,
        pruned,
    })
}

/// A small object read whole (a manifest), with the version it had, for a conditional
/// update of it.
pub struct Fetched {
    pub bytes: bytes::Bytes,
    pub version: object_store::UpdateVersion,
}

/// Reads the small object at `url` whole; `None` when there is none.
pub fn fetch(url: &str) -> Result<Option<Fetched>> {
    let loc = locate(url)?;
    let (store, path) = (loc.store, loc.path);
    let got = block(async move {
        let r = store.get(&path).await?;
        let version = object_store::UpdateVersion {
            e_tag: r.meta.e_tag.clone(),
            version: r.meta.version.clone(),
        };
        Ok::<_, object_store::Error>((r.bytes().await?, version))
    });
    match got {
        Ok((bytes, version)) => Ok(Some(Fetched { bytes, version })),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(flat(e)).with_context(|| format!("cannot read '{url}'")),
    }
}

/// Every object below `loc`'s prefix (`input`, its URL, named in errors).
fn list_all(loc: &Location, input: &str) -> Result<Vec<object_store::ObjectMeta>> {
    let (store, prefix) = (loc.store.clone(), loc.path.clone());
    block(async move {
        let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
        store
            .list(prefix.as_ref())
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(flat)
    .with_context(|| format!("cannot list '{input}'"))
}

/// The size of every object below the prefix `url`, by URL: one listing, rather than a
/// request per object.
pub fn sizes(url: &str) -> Result<HashMap<String, u64>> {
    Ok(listing(url)?
        .into_iter()
        .map(|(url, m)| (url, m.size))
        .collect())
}

/// Every object below the prefix `url` (one listing), by URL, with what the store says of it
/// (its size, when it was last written).
pub fn listing(url: &str) -> Result<Vec<(String, object_store::ObjectMeta)>> {
    let loc = locate(url)?;
    Ok(list_all(&loc, url)?
        .into_iter()
        .map(|m| (loc.url_of(&m.location), m))
        .collect())
}

/// Why a conditional put failed: the object changed (or appeared) since it was read.
#[derive(Debug)]
pub struct Changed;

impl std::fmt::Display for Changed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the object changed since it was read")
    }
}

impl std::error::Error for Changed {}

/// Puts `bytes` at `url` in one request (atomic: readers see the old object or the new one),
/// only if the object is still at `version` (`None`: only if there is none). A store that
/// cannot put conditionally overwrites. An object that changed meanwhile is the error
/// `Changed`. Returns the new version.
pub fn put_if(
    url: &str,
    bytes: Vec<u8>,
    version: Option<object_store::UpdateVersion>,
) -> Result<object_store::UpdateVersion> {
    let loc = locate(url)?;
    let (store, path) = (loc.store, loc.path);
    let named = url.to_string();
    let put = block(async move {
        let url = named;
        let mode = match version {
            Some(v) => object_store::PutMode::Update(v),
            None => object_store::PutMode::Create,
        };
        let payload = object_store::PutPayload::from(bytes);
        match store.put_opts(&path, payload.clone(), mode.into()).await {
            Err(object_store::Error::NotImplemented { .. }) => {
                // Said (once a run), not silent: this is what keeps two writers from losing
                // each other's work, and here nothing does.
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    eprintln!(
                        "cartscope: note: '{url}' is overwritten unconditionally (its store cannot put conditionally): two ingests at once could lose one's inputs; run one at a time"
                    )
                });
                store.put(&path, payload).await
            }
            r => r,
        }
    });
    match put {
        Ok(r) => Ok(r.into()),
        Err(
            object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. },
        ) => Err(anyhow::Error::new(Changed)).with_context(|| format!("cannot write '{url}'")),
        Err(e) => Err(flat(e)).with_context(|| format!("cannot write '{url}'")),
    }
}

/// Bytes of a local file read and sent at a time by `upload`.
const UPLOAD_CHUNK: usize = 8 << 20;

/// Copies the local file `from` to the object `url`, in parts (a multipart upload: never
/// whole in memory, and the object appears only once complete).
pub fn upload(from: &std::path::Path, url: &str) -> Result<()> {
    let loc = locate(url)?;
    let file =
        std::fs::File::open(from).with_context(|| format!("cannot read '{}'", from.display()))?;
    let (store, path) = (loc.store, loc.path);
    let name = from.display().to_string();
    block(async move {
        let upload = store.put_multipart(&path).await?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK);
        let mut file = file;
        loop {
            let mut buf = Vec::with_capacity(UPLOAD_CHUNK);
            // A plain read, on a worker that may block (the runtime has two).
            let read = tokio::task::block_in_place(|| {
                (&mut file).take(UPLOAD_CHUNK as u64).read_to_end(&mut buf)
            });
            match read {
                Ok(0) => break,
                Ok(_) => {
                    w.wait_for_capacity(2).await?;
                    w.write(&buf);
                }
                Err(e) => {
                    // Never a truncated object: the upload is abandoned.
                    let _ = w.abort().await;
                    return Err(object_store::Error::Generic {
                        store: "file",
                        source: format!("cannot read '{name}': {e}").into(),
                    });
                }
            }
        }
        w.finish().await
    })
    .map_err(flat)
    .with_context(|| format!("cannot write '{url}'"))?;
    Ok(())
}

/// Deletes the object at `url`.
pub fn delete(url: &str) -> Result<()> {
    let loc = locate(url)?;
    let (store, path) = (loc.store, loc.path);
    block(async move { store.delete(&path).await })
        .map_err(flat)
        .with_context(|| format!("cannot delete '{url}'"))
}

/// An object read by ranges, as Parquet is (its footer first, then the column chunks it
/// needs): each range one request, nothing else downloaded.
pub struct Ranged {
    url: String,
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
}

impl Ranged {
    /// The object at `url`, of `size` bytes when the listing said (else asked for).
    pub fn new(url: &str, size: Option<u64>) -> Result<Ranged> {
        let loc = locate(url)?;
        let size = match size {
            Some(s) => s,
            None => {
                let (store, path) = (loc.store.clone(), loc.path.clone());
                block(async move { store.head(&path).await })
                    .map_err(flat)
                    .with_context(|| format!("cannot read '{url}'"))?
                    .size
            }
        };
        Ok(Ranged {
            url: url.to_string(),
            store: loc.store,
            path: loc.path,
            size,
        })
    }

    fn range(&self, start: u64, end: u64) -> datafusion::parquet::errors::Result<bytes::Bytes> {
        let (store, path) = (self.store.clone(), self.path.clone());
        block(async move { store.get_range(&path, start..end).await }).map_err(|e| {
            datafusion::parquet::errors::ParquetError::External(
                format!("{}: bytes {start}..{end}: {e}", self.url).into(),
            )
        })
    }
}

impl datafusion::parquet::file::reader::Length for Ranged {
    fn len(&self) -> u64 {
        self.size
    }
}

impl datafusion::parquet::file::reader::ChunkReader for Ranged {
    type T = io::Cursor<bytes::Bytes>;

    fn get_read(&self, start: u64) -> datafusion::parquet::errors::Result<Self::T> {
        Ok(io::Cursor::new(self.range(start, self.size)?))
    }

    fn get_bytes(
        &self,
        start: u64,
        length: usize,
    ) -> datafusion::parquet::errors::Result<bytes::Bytes> {
        self.range(start, start + length as u64)
    }
}

/// Chunks in flight between the store and the reader of one object.
const CHUNKS_IN_FLIGHT: usize = 4;

/// One object as a byte stream: fetched by a task of the store runtime, handed over in the
/// chunks the store sends (a few megabytes at most waiting).
pub fn open(url: &str) -> Result<Box<dyn Read + Send>> {
    let loc = locate(url)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<bytes::Bytes>>(CHUNKS_IN_FLIGHT);
    let name = url.to_string();
    let (store, path) = (loc.store, loc.path);
    // The sender blocks while the reader is behind: on a thread of its own, never on a
    // worker of the runtime.
    std::thread::Builder::new()
        .name("cartscope-get".into())
        .spawn(move || {
            runtime().block_on(async move {
                let stream = match store.get(&path).await {
                    Ok(r) => r.into_stream(),
                    Err(e) => {
                        let _ = tx.send(Err(io::Error::other(format!("{name}: {e}"))));
                        return;
                    }
                };
                futures::pin_mut!(stream);
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| io::Error::other(format!("{name}: {e}")));
                    let failed = chunk.is_err();
                    if tx.send(chunk).is_err() || failed {
                        return; // the reader is gone, or the stream broke
                    }
                }
            })
        })
        .context("cannot start a thread to read from the store")?;
    Ok(Box::new(ObjectReader {
        rx,
        chunk: bytes::Bytes::new(),
        done: false,
    }))
}

struct ObjectReader {
    rx: std::sync::mpsc::Receiver<io::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
    done: bool,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(c)) => self.chunk = c,
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        for u in [
            "s3://bucket/prefix/",
            "S3://bucket/x",
            "gs://b/p",
            "az://c/p",
            "abfs://c@a.dfs.core.windows.net/p",
            "http://127.0.0.1:8000/traces.jsonl",
            "https://example.com/x.jsonl.gz",
        ] {
            assert!(is_url(u), "{u}");
        }
        for p in [
            "-",
            "export/",
            "./s3:/x",
            "c:\\data",
            "file.jsonl",
            "ftp://x/y",
        ] {
            assert!(!is_url(p), "{p}");
        }
    }

    fn at(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().ns()
    }

    #[test]
    fn time_partitions_are_read_from_their_keys() {
        let span = |p: &str| partition_span(&ObjectPath::from(p));
        let min = 60_000_000_000;
        assert_eq!(
            span("otlp/year=2026/month=11/day=21/hour=14/minute=05"),
            Some((at("2026-11-21T14:05:00Z"), at("2026-11-21T14:05:00Z") + min))
        );
        assert_eq!(
            span("year=2026/month=12"),
            Some((at("2026-12-01T00:00:00Z"), at("2027-01-01T00:00:00Z")))
        );
        assert_eq!(
            span("YEAR=2026"),
            Some((at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z")))
        );
        assert_eq!(
            span("x/year=2026/month=02/day=28/hour=23"),
            Some((at("2026-02-28T23:00:00Z"), at("2026-03-01T00:00:00Z")))
        );
        // Nothing understood: listed, never pruned.
        for p in [
            "otlp",
            "dt=2026-11-21",
            "year=2026/day=21",
            "month=11",
            "year=26x",
            "year=2026/month=13",
            "year=2026/month=2/day=30",
        ] {
            assert_eq!(span(p), None, "{p}");
        }
    }

    #[test]
    fn a_window_meets_or_holds_a_span() {
        let w = Window {
            from: Some(Timestamp::from_ns(100)),
            to: Some(Timestamp::from_ns(200)),
        };
        assert!(!w.meets((0, 100)) && w.meets((0, 101)));
        assert!(w.meets((200, 300)) && !w.meets((201, 300)));
        assert!(w.holds((100, 201)) && !w.holds((99, 150)) && !w.holds((150, 202)));
        let open = Window::default();
        assert!(!open.is_bounded() && open.meets((i64::MIN, i64::MIN + 1)));
        assert!(Window { from: None, ..w }.holds((i64::MIN, 150)));
    }

    #[test]
    fn a_bad_url_is_an_error_that_names_it() {
        let e = locate("s3:///nobucket").unwrap_err();
        assert!(format!("{e:#}").contains("s3:///nobucket"), "{e:#}");
    }
}
