//! cartscope: reads the OpenTelemetry traces and metrics a shop exports, replays every cart's
//! life from them and explains why carts were abandoned.
//!
//! The modules, in the order the data flows; each imports only from those above it
//! (`tests/layering.rs` checks it):
//! - foundations every stage uses: `time` (typed times and durations), `stats`, `output`
//!   (result formats, progress, atomic files);
//! - `tables`: the canonical tables' schemas and builders;
//! - `read`: inputs (files, formats, compression, OTLP JSON and protobuf, Parquet) into
//!   canonical batches;
//! - `dataset`: the Parquet dataset `ingest` writes, and the ingest engine;
//! - `sql`: the DataFusion session, cartscope's SQL functions, the query library;
//! - `replay`: the lifecycle model and the replay of every cart's life;
//! - `report` and `check`: the abandonment report and the regression checks over it;
//! - `generate`: synthetic exports whose truth is known;
//! - `cli` and `commands`: the command line as typed, and one module per subcommand.

mod time;
mod stats;
mod output;

mod tables;
mod read;
mod dataset;
mod sql;
mod replay;
mod report;
mod check;

mod generate;
mod cli;
mod commands;

// What the binary (`main.rs`) and the integration tests use, and nothing else, so that the
// compiler reports code nothing reaches.
pub use cli::{Cli, DataArgs, ReplayArgs};
pub use commands::run;
pub use commands::setup::{open_replayed, Globals};
pub use commands::shell::Names;
pub use output::{is_broken_pipe, value_string};
#[doc(hidden)]
pub use read::fuzzing;
pub use read::input::{resolve, Location};
pub use read::load::{load_into_memory, LoadOptions, LoadStats, StrictError};
pub use read::projection::{Keys, Projection};
pub use replay::model::{Model, Preset};
pub use replay::{projection as replay_projection, run as replay, Reads, ReplayOptions};
pub use sql::session::{context, Data};
pub use stats::{wilson_interval, Z_95};
pub use tables::schema::Table;
pub use time::Timestamp;
