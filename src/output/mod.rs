//! How cartscope shows and writes what it found, for every stage: result tables in every
//! output format (`formats`: `Format`, `write_batches`; `sink`: streamed), the progress bar (`progress`), and files written
//! atomically, Parquet among them (`files`). Renderers write to any `impl Write`, so output is
//! testable without a terminal. A foundation: it imports nothing else of cartscope's.

mod files;
mod formats;
mod progress;
mod sink;

pub mod otlp;
pub use files::{readable_by_all, write_atomically, AtomicFile, ROW_GROUP};
pub use formats::{human_bytes, is_broken_pipe, set_raw, value_string, write_batches, Format};
pub use progress::{phase, progress_bar, timings};
pub use sink::{refuse_binary_on_terminal, stream_to_file, stream_to_stdout};
