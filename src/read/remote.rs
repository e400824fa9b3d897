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
                    .with_context(|| format!("cannot reach '{input}'"))?,
            )
        }
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(input)
                .build()
                .with_context(|| format!("cannot reach '{input}'"))?,
        ),
        "az" | "abfs" | "azure" => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(input)
                .build()
                .with_context(|| format!("cannot reach '{input}'"))?,
        ),
        "http" | "https" => {
            let origin = url.origin().ascii_serialization();
            Arc::new(
                object_store::http::HttpBuilder::new()
                    .with_url(origin)
                    .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
                    .build()
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
/// names passed over), and whether the prefix holds a dataset's manifest.
pub struct Listing {
    pub objects: Vec<Object>,
    /// The URL named one object rather than a prefix.
    pub single: bool,
    /// The prefix holds a dataset written by `cartscope ingest` (its manifest), at this URL.
    pub dataset: Option<String>,
}

/// Whether a part of an object's name hides it (as a directory walk does).
fn hidden(part: &str) -> bool {
    part.starts_with('.') || part.starts_with('_')
}

/// Lists what `input` names. An http(s) URL is one file: plain HTTP servers cannot be listed.
/// `manifest` is the name of the file that marks a dataset.
pub fn list(input: &str, manifest: &str) -> Result<Listing> {
    let loc = locate(input)?;
    let scheme = loc.base.scheme().to_string();
    if scheme == "http" || scheme == "https" {
        let store = loc.store.clone();
        let path = loc.path.clone();
        let meta = block(async move { store.head(&path).await })
            .with_context(|| format!("cannot read '{input}'"))?;
        return Ok(Listing {
            objects: vec![Object {
                url: input.to_string(),
                size: meta.size,
            }],
            single: true,
            dataset: None,
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
                dataset: None,
            });
        }
    }
    let (store, prefix) = (loc.store.clone(), loc.path.clone());
    let found: Vec<object_store::ObjectMeta> = block(async move {
        let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
        store
            .list(prefix.as_ref())
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
    })
    .with_context(|| format!("cannot list '{input}'"))?;
    let depth = loc.path.parts().count();
    let dataset = found
        .iter()
        .find(|m| m.location.filename() == Some(manifest))
        .map(|m| {
            let url = loc.url_of(&m.location);
            url.trim_end_matches(manifest).to_string()
        });
    let mut objects: Vec<Object> = found
        .into_iter()
        .filter(|m| !m.location.parts().skip(depth).any(|p| hidden(p.as_ref())))
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
        dataset,
    })
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

    #[test]
    fn a_bad_url_is_an_error_that_names_it() {
        let e = locate("s3:///nobucket").unwrap_err();
        assert!(format!("{e:#}").contains("s3:///nobucket"), "{e:#}");
    }
}
