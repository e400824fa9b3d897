//! Where a replay's tables are written: Parquet files read back through DataFusion's listing
//! tables, never held in memory.
//!
//! Beside an ingested dataset (`DATASET/replays/KEY/`), a replay is kept and reused: its key
//! hashes everything that determines it (each dataset's manifest, the lifecycle model, the
//! threshold, the as-of time and this cartscope's version), so a replay whose data, model
//! or clock changed is never found. A replay is written into a `.pending-PID-*` folder and
//! renamed to its key only once complete (its `summary.json` written last), so a partial
//! replay is never used: a crash leaves a pending folder, removed by the next replay once
//! its process is gone. For raw exports (or a dataset folder that cannot be written) the
//! replay goes to a temporary folder that lives as long as the session.
//!
//! Beside the replays, `times-DATAHASH.json` keeps the data's latest time and its warning
//! about implausible times (`times_file`), which every command needs before it can look
//! for a replay; it goes with the replays when the data changes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::replay::model::Model;
use crate::time::{Duration, Timestamp};

/// The files of one replay.
pub const CART_EVENTS: &str = "cart_events.parquet";
pub const CARTS: &str = "carts.parquet";
pub const DERIVED_TRACES: &str = "derived_traces.parquet";
pub const DERIVED_METRICS: &str = "derived_metrics.parquet";
pub const OPERATION_STATS: &str = "operation_stats.parquet";
/// The table files of a replay.
pub const FILES: [&str; 5] = [
    CART_EVENTS,
    CARTS,
    DERIVED_TRACES,
    DERIVED_METRICS,
    OPERATION_STATS,
];
const SUMMARY: &str = "summary.json";
const KEY: &str = "key.json";
const REPLAYS: &str = "replays";
const PENDING: &str = ".pending-";

/// Changes whenever a replay's files would come out differently from the same inputs.
// 3: cart_events has line_value; 4: product_id, line_quantity; 5: status_message;
// 6: operation_stats
const FORMAT: &str = "replay-6";

/// Complete replays kept per dataset (the newest), besides the one just written.
const KEEP: usize = 4;

/// What determines a replay, as written beside it (`key.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Key {
    /// The hash of the datasets' manifests: a replay of other data is stale.
    pub data: String,
    /// The hash of everything else: the model, the threshold, the as-of time, the version.
    pub rest: String,
}

impl Key {
    pub fn new(
        datasets: &[PathBuf],
        m: &Model,
        threshold: Duration,
        as_of: Timestamp,
    ) -> Result<Key> {
        let rest = format!(
            "{FORMAT}\0{}\0{}\0{}\0{}",
            env!("CARGO_PKG_VERSION"),
            serde_json::to_string(m)?,
            threshold.micros(),
            as_of.micros()
        );
        Ok(Key {
            data: data_hash(datasets)?,
            rest: hash(rest.as_bytes()),
        })
    }

    fn folder(&self) -> String {
        format!("{}-{}", &self.data[..16], &self.rest[..16])
    }
}

fn hash(b: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(b))
}

/// The hash of the datasets (where each is and its manifest): what every replay and the
/// time bounds of the same data share.
fn data_hash(datasets: &[PathBuf]) -> Result<String> {
    let mut data = Vec::new();
    for d in datasets {
        let manifest = crate::dataset::Manifest::path(d);
        let bytes = std::fs::read(&manifest)
            .with_context(|| format!("cannot read '{}'", manifest.display()))?;
        let canon = std::fs::canonicalize(d).unwrap_or_else(|_| d.clone());
        data.extend_from_slice(canon.to_string_lossy().as_bytes());
        data.push(0);
        data.extend_from_slice(&bytes);
        data.push(0);
    }
    Ok(hash(&data))
}

/// The data's latest plausible time and its warning about implausible ones (see
/// `replay::data_times`), kept beside the replays as `times-DATAHASH.json`: every command
/// over a dataset needs them before it can look for a kept replay, and working them out
/// reads a footer of every Parquet part (0.2-0.3 s of each query at 1M carts, 393 parts).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Times {
    /// The cartscope that wrote it: another recomputes.
    version: String,
    latest: Option<Timestamp>,
    warning: Option<String>,
}

const TIMES: &str = "times-";
/// Changes whenever the time bounds would come out differently from the same data.
const TIMES_FORMAT: &str = "times-1";

fn times_version() -> String {
    format!("{TIMES_FORMAT} {}", env!("CARGO_PKG_VERSION"))
}

/// Where the time bounds of `datasets` are kept, if the data is datasets.
pub fn times_file(datasets: &[PathBuf]) -> Option<PathBuf> {
    let ds = datasets.first()?;
    let data = data_hash(datasets).ok()?;
    Some(
        ds.join(REPLAYS)
            .join(format!("{TIMES}{}.json", &data[..16])),
    )
}

/// The kept (latest, warning) of `file`, if it is there and this cartscope wrote it.
pub fn read_times(file: &Path) -> Option<(Option<Timestamp>, Option<String>)> {
    let t: Times = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
    (t.version == times_version()).then_some((t.latest, t.warning))
}

/// Keeps (latest, warning) in `file`, if the dataset folder can be written (it is only
/// saved work: when it cannot, the next command works them out again).
pub fn write_times(file: &Path, latest: Option<Timestamp>, warning: Option<&str>) {
    let t = Times {
        version: times_version(),
        latest,
        warning: warning.map(str::to_string),
    };
    let _ = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .map_err(anyhow::Error::from)
        .and_then(|_| {
            crate::output::write_atomically(file, |w| {
                serde_json::to_writer(&mut *w, &t)?;
                Ok(())
            })
        });
}

/// A folder being written, or a complete replay.
pub struct Replay {
    /// Where the files are (the pending folder until `commit`).
    pub dir: PathBuf,
    /// The folder a persisted replay is renamed to; `None` for a temporary one.
    target: Option<PathBuf>,
    key: Option<Key>,
}

/// Keeps a temporary folder alive as long as the session that reads from it.
struct Scratch(#[allow(dead_code)] tempfile::TempDir);

impl Replay {
    /// The complete replay of `key` beside `datasets[0]`, if there is one.
    pub fn find(datasets: &[PathBuf], key: &Key) -> Option<Replay> {
        let dir = datasets.first()?.join(REPLAYS).join(key.folder());
        let found: Key = serde_json::from_slice(&std::fs::read(dir.join(KEY)).ok()?).ok()?;
        (found == *key && dir.join(SUMMARY).is_file()).then(|| Replay {
            dir,
            target: None,
            key: None,
        })
    }

    /// A folder to write a new replay in: pending beside `datasets[0]` when there is a key
    /// (and the dataset folder can be written), else temporary, tied to `ctx`.
    pub fn begin(
        ctx: &datafusion::prelude::SessionContext,
        datasets: &[PathBuf],
        key: Option<Key>,
    ) -> Result<Replay> {
        if let (Some(key), Some(ds)) = (key, datasets.first()) {
            let replays = ds.join(REPLAYS);
            let made = std::fs::create_dir_all(&replays).and_then(|_| {
                tempfile::Builder::new()
                    .prefix(&format!("{PENDING}{}-", std::process::id()))
                    .tempdir_in(&replays)
            });
            match made {
                Ok(tmp) => {
                    remove_abandoned(&replays);
                    return Ok(Replay {
                        dir: tmp.keep(),
                        target: Some(replays.join(key.folder())),
                        key: Some(key),
                    });
                }
                Err(e) => eprintln!(
                    "cartscope: note: cannot keep the replay beside the dataset '{}' ({e}): it is written to a temporary folder and not reused",
                    ds.display()
                ),
            }
        }
        let tmp = tempfile::Builder::new()
            .prefix("cartscope-replay-")
            .tempdir()
            .context("cannot create a temporary folder for the replay")?;
        let dir = tmp.path().to_path_buf();
        ctx.state_ref()
            .write()
            .config_mut()
            .set_extension(Arc::new(Scratch(tmp)));
        Ok(Replay {
            dir,
            target: None,
            key: None,
        })
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn summary<S: serde::de::DeserializeOwned>(&self) -> Result<S> {
        let p = self.path(SUMMARY);
        let text = std::fs::read(&p).with_context(|| format!("cannot read '{}'", p.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("'{}' is damaged", p.display()))
    }

    /// Whether this replay is kept for later commands (beside a dataset), or lives only as
    /// long as the session.
    pub fn kept(&self) -> bool {
        self.target.is_some()
    }

    /// Writes the summary last and, for a persisted replay, renames the folder to its key
    /// and drops stale and surplus replays beside it. Returns where the files now are.
    /// When another run kept the same replay meanwhile, its copy stays (it may be being
    /// read) and this one is dropped, unless `replace` (`--refresh`) asks for this one.
    pub fn commit(mut self, s: &impl serde::Serialize, replace: bool) -> Result<PathBuf> {
        let write = |name: &str, text: String| {
            crate::output::write_atomically(&self.dir.join(name), |w| {
                w.write_all(text.as_bytes())?;
                Ok(())
            })
        };
        if let Some(key) = &self.key {
            write(KEY, serde_json::to_string_pretty(key)?)?;
        }
        write(SUMMARY, serde_json::to_string_pretty(s)?)?;
        let (Some(target), Some(key)) = (self.target.take(), self.key.take()) else {
            return Ok(self.dir.clone());
        };
        if target.exists() && !replace && target.join(SUMMARY).is_file() {
            let _ = std::fs::remove_dir_all(&self.dir);
            self.dir = target.clone();
            return Ok(target);
        }
        if target.exists() {
            // --refresh replaces the kept replay (or a partial one is in the way): move it
            // aside (a rename, so a reader never sees half a folder), then delete it.
            let old = target.with_file_name(format!(
                "{PENDING}{}-old-{}",
                std::process::id(),
                key.folder()
            ));
            let _ = std::fs::rename(&target, &old);
            let _ = std::fs::remove_dir_all(&old);
        }
        std::fs::rename(&self.dir, &target).with_context(|| {
            format!(
                "cannot move the replay '{}' to '{}'",
                self.dir.display(),
                target.display()
            )
        })?;
        if let Some(replays) = target.parent() {
            prune(replays, &key, &target);
        }
        self.dir = target.clone();
        Ok(target)
    }
}

impl Drop for Replay {
    /// A persisted replay that was not committed (an error on the way) leaves nothing.
    fn drop(&mut self) {
        if self.target.is_some() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes the pending folders of processes that are gone (a crash or a kill mid-replay).
fn remove_abandoned(replays: &Path) {
    let Ok(entries) = std::fs::read_dir(replays) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(PENDING) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| p != std::process::id() && !alive(p)) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Whether a process is running; where that cannot be told, it is taken to be.
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// Drops the replays and time bounds of other data (stale: the dataset has changed since)
/// and keeps the `KEEP` newest of the rest, besides `current`.
fn prune(replays: &Path, key: &Key, current: &Path) {
    let Ok(entries) = std::fs::read_dir(replays) else {
        return;
    };
    let mut fresh = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(h) = name.strip_prefix(TIMES) {
            // the time bounds of data that has changed since
            if !h.starts_with(&key.data[..16]) {
                let _ = std::fs::remove_file(&p);
            }
            continue;
        }
        if p == current || name.starts_with(PENDING) || !p.is_dir() {
            continue;
        }
        let k: Option<Key> = std::fs::read(p.join(KEY))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match k {
            Some(k) if k.data == key.data => {
                let at = std::fs::metadata(p.join(SUMMARY))
                    .and_then(|m| m.modified())
                    .ok();
                fresh.push((at, p));
            }
            Some(_) => {
                let _ = std::fs::remove_dir_all(&p);
            }
            // Not a replay cartscope wrote, or one being written: left alone.
            None => {}
        }
    }
    fresh.sort();
    while fresh.len() > KEEP {
        let (_, p) = fresh.remove(0);
        let _ = std::fs::remove_dir_all(&p);
    }
}
